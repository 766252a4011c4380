"""What one Voilà kernel does for one app, without a front end: prints one JSON line.

Usage::

    python bench/kernel_probe.py return_on_effort DATA [--reuse-build]

Imports the widgets, builds the app on ``DATA`` (opening its current build and drawing every
view: the first chart), then makes five filter changes (a team; the team over the last 90
days; everything; the last 90 days; one rep of the team). Reports the time of the first draw,
the resident set right after it, one second later (``rss_settled_mb``: what a served
kernel holds while it waits for its viewer, once the allocator has returned the draw's freed
pages) and at the end (``VmRSS``), the peak (``VmHWM`` of this process:
``ru_maxrss`` could carry the peak of the process it was started from), the kernel-side time
of each filter change (every view redraws before the assignment returns) and the views that
showed a problem instead of a chart.

``--reuse-build`` opens the folder's latest build even when the EffortLens code has changed
since it was written (it patches :func:`effortlens.facts.code_version` to the version that build
recorded). It is for measuring changes to what kernels do with a build, without rebuilding a
large folder after every edit; it is wrong when the change alters what a build writes. The
JSON line says ``"reused_build": true`` when it was used.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_big import vm_mb  # noqa: E402  (one home for reading /proc/<pid>/status)


def _rss_mb() -> float:
    return vm_mb("self", "VmRSS")


def _reuse_latest_build(data: str) -> str:
    """Make this process accept ``data``'s latest build whatever code wrote it."""
    import effortlens.facts as facts

    record = facts.latest_build_record(data)
    if record is None:
        raise SystemExit(f"kernel_probe: --reuse-build, but {data} was never built")
    code = record["code"]
    facts.code_version = lambda: code
    return code


def main(app_name: str, data: str, *, reuse_build: bool = False) -> dict:
    import os

    load_start = os.getloadavg()
    started = time.perf_counter()
    import importlib

    # the page first, as a kernel imports it: its start-up configures Polars's allocator,
    # which must happen before Polars is loaded
    module = importlib.import_module(f"effortlens_widgets.apps.{app_name}")
    if reuse_build:
        _reuse_latest_build(data)
    import polars as pl

    from effortlens.filters import Filter

    imported = time.perf_counter()
    rss_import = _rss_mb()
    cpu = time.process_time()
    app = getattr(module, f"{app_name}_app")(data_dir=data)
    first = time.perf_counter() - imported
    first_cpu = time.process_time() - cpu
    rss_first = _rss_mb()
    time.sleep(1.0)  # a served kernel then waits for its viewer: what it holds meanwhile
    rss_settled = _rss_mb()
    state = app.state
    if state.enriched is None:
        return {"app": app_name, "error": app.error[:300]}
    team = state.enriched.reps["team"].drop_nulls().unique().sort()[0]
    rep = state.enriched.reps.filter(pl.col("team") == team)["rep_id"].sort()[0]
    end = state.enriched.daily["day"].max()
    start = end - dt.timedelta(days=89)
    changes, changes_cpu = [], []
    for flt in (
        Filter(teams=(team,)),
        Filter(teams=(team,), start=start, end=end),
        Filter(),
        Filter(start=start, end=end),
        Filter(reps=(rep,)),
    ):
        t, c = time.perf_counter(), time.process_time()
        state.filter = flt
        changes.append(round((time.perf_counter() - t) * 1000, 1))
        changes_cpu.append(round((time.process_time() - c) * 1000, 1))
    problems = [type(v).__name__ for v in app.views if getattr(v, "problem", "")]
    return {
        "app": app_name,
        "import_s": round(imported - started, 2),
        "first_render_s": round(first, 2),
        "first_render_cpu_s": round(first_cpu, 2),
        "rss_import_mb": round(rss_import),
        "rss_after_first_mb": round(rss_first),
        "rss_settled_mb": round(rss_settled),
        "filter_changes_ms": changes,
        "filter_changes_cpu_ms": changes_cpu,
        "rss_end_mb": round(_rss_mb()),
        "peak_mb": vm_mb("self", "VmHWM"),  # this kernel's own high-water mark
        "views_with_problem": problems,
        "load_average": [round(v, 1) for v in (*load_start[:1], os.getloadavg()[0])],
        "reused_build": reuse_build,
    }


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--reuse-build"]
    print(json.dumps(main(args[0], args[1], reuse_build="--reuse-build" in sys.argv)))
