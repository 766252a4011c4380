"""Profile one in-memory ``effortlens build`` step by step (issue 13 part 4: build speed).

Usage (from the repository root, in the project's venv; at 10M under the lock)::

    EFFORTLENS_CACHE=/tmp/el10m/cache_speed flock /tmp/el10m.lock \\
        .venv/bin/python bench/build_profile.py /tmp/el10m/data --json /tmp/profile.json

Runs :func:`effortlens.facts.build` (``force=True``, in memory unless ``--partitioned``) in
this process with the functions of each step wrapped by a timer: wall seconds, CPU seconds
(user + system of all threads, ``getrusage``) and the peak resident set *within* the step
(``VmHWM`` reset through ``/proc/self/clear_refs`` as a step starts; a step's peak includes
its nested steps'). Nested steps are indented; a function called several times is summed.
The steps are the build's real code, unchanged: only timed.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

#: (module, function) pairs timed, in the order they appear in the table.
TIMED: tuple[tuple[str, str], ...] = (
    ("effortlens.facts", "_write_build"),
    ("effortlens.adapters", "load_any"),
    ("effortlens.loading.pipeline", "_read_table"),
    ("effortlens.loading.pipeline", "validate_table"),
    ("effortlens.loading.table", "prepare"),
    ("effortlens.loading.table", "parse_table"),
    ("effortlens.loading.table", "_finish"),
    ("effortlens.loading.table", "_in_order"),
    ("effortlens.loading.table", "_quarantine_rows"),
    ("effortlens.enrich", "enrich_tables"),
    ("effortlens.enrich", "_canonical_tables"),
    ("effortlens.enrich", "with_peer_group"),
    ("effortlens.enrich", "_rep_codes"),
    ("effortlens.enrich", "attribution_rows"),
    ("effortlens.enrich", "_with_calendar"),
    ("effortlens.enrich", "_with_responses"),
    ("effortlens.enrich", "with_attribution"),
    ("effortlens.enrich", "_same_chunks"),
    ("effortlens.enrich", "_daily"),
    ("effortlens.facts", "_write_parquet"),
    ("effortlens.facts", "write_aggregates"),
    ("effortlens.roe", "streak_facts"),
    ("effortlens.habits", "touch_facts"),
    ("effortlens.touch_build", "build_touch_facts"),
    ("effortlens.touch_build", "_credits"),
    ("effortlens.habits", "candidate_pairs"),
    ("effortlens.touch_build", "credit_em"),
    ("effortlens.deviance", "practice_facts"),
    ("effortlens.touch_build", "build_practice_facts"),
    ("effortlens.facts", "practice_cells_of"),
    ("effortlens.facts", "_rep_sorted"),
    ("effortlens.flow", "verifier_facts"),
    ("effortlens.habits", "touch_cells"),
    ("effortlens.facts", "_cells"),
    ("effortlens.habits", "write_touch_codes"),
    ("effortlens.facts", "_seal"),
    ("effortlens.facts", "_sha256"),
    ("effortlens.facts", "_open_entry"),
)
#: Functions that return a lazy query: collected inside the timer (then handed back lazy), so
#: that the time of the query is the step's and not its caller's.
COLLECTED = {"practice_facts", "verifier_facts"}


def _hwm_kb() -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1))


def _reset_hwm() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Profile:
    """Timers around functions; nested calls form a tree of steps (summed per path)."""

    def __init__(self) -> None:
        self.stack: list[dict] = []
        self.rows: dict[tuple[str, ...], dict] = {}

    def wrap(self, name: str, function):
        collect = name in COLLECTED

        @functools.wraps(function)
        def timed(*args, **kwargs):
            if self.stack:  # the parent's peak so far, before this step resets the mark
                parent = self.stack[-1]
                parent["peak_kb"] = max(parent["peak_kb"], _hwm_kb())
            path = (*(s["path"][-1] for s in self.stack), name)
            _reset_hwm()
            frame = {"path": path, "peak_kb": 0, "wall": time.perf_counter(), "cpu": _cpu()}
            self.stack.append(frame)
            try:
                out = function(*args, **kwargs)
                if collect and hasattr(out, "collect") and hasattr(out, "lazy"):
                    out = out.collect().lazy()
                return out
            finally:
                self.stack.pop()
                wall = time.perf_counter() - frame["wall"]
                cpu = _cpu() - frame["cpu"]
                peak = max(frame["peak_kb"], _hwm_kb())
                row = self.rows.setdefault(path, {"calls": 0, "wall": 0.0, "cpu": 0.0, "peak": 0})
                row["calls"] += 1
                row["wall"] += wall
                row["cpu"] += cpu
                row["peak"] = max(row["peak"], peak)
                if self.stack:
                    parent = self.stack[-1]
                    parent["peak_kb"] = max(parent["peak_kb"], peak)

        return timed

    def install(self) -> None:
        for module_name, attr in TIMED:
            module = importlib.import_module(module_name)
            function = getattr(module, attr)
            wrapped = self.wrap(attr, function)
            # the name is patched wherever it was imported by the build's modules
            for other in list(sys.modules.values()):
                name = getattr(other, "__name__", "") or ""
                if not name.startswith("effortlens"):
                    continue
                if getattr(other, attr, None) is function:
                    setattr(other, attr, wrapped)


def table(rows: dict[tuple[str, ...], dict]) -> list[dict]:
    """Rows as a tree (each parent before its children, children in call order), with depth."""
    out = [
        {
            "step": path[-1],
            "path": "/".join(path),
            "depth": len(path) - 1,
            "calls": row["calls"],
            "wall_s": round(row["wall"], 2),
            "cpu_s": round(row["cpu"], 2),
            "peak_mb": row["peak"] // 1024,
        }
        for path, row in rows.items()
    ]
    # a parent's row is recorded after its children's (it ends last): order by the first
    # time each prefix of the path ended, which keeps siblings in call order
    first_seen = {r["path"]: i for i, r in reversed(list(enumerate(out)))}
    return sorted(out, key=lambda r: _tree_key(r["path"], first_seen))


def _tree_key(path: str, first_seen: dict[str, int]) -> list[int]:
    parts = path.split("/")
    return [first_seen.get("/".join(parts[: i + 1]), -1) for i in range(len(parts))]


def hook_fast_view_facts() -> None:
    """What ``facts.write_aggregates`` would call with the faster equal functions of
    :mod:`effortlens.touch_build` (the hooks proposed to the owner of facts.py)."""
    from effortlens import deviance, habits, touch_build

    habits.touch_facts = touch_build.build_touch_facts

    def practice_facts(activities):
        return touch_build.build_practice_facts(activities).lazy()

    deviance.practice_facts = practice_facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--partitioned", action="store_true")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="with the build's faster view facts (effortlens.touch_build) hooked in",
    )
    args = parser.parse_args(argv)

    for module_name in {m for m, _ in TIMED}:  # every timed module imported before patching
        importlib.import_module(module_name)
    from effortlens import facts

    if args.fast:
        hook_fast_view_facts()
    profile = Profile()
    profile.install()
    load_start = os.getloadavg()
    wall0, cpu0 = time.perf_counter(), _cpu()
    _reset_hwm()
    with open(os.devnull, "w") as quiet:
        facts.open_build(
            args.folder,
            force=True,
            progress=facts.Progress([], stream=quiet),
            partitioned=True if args.partitioned else None,
        )
    total = {
        "wall_s": round(time.perf_counter() - wall0, 1),
        "cpu_s": round(_cpu() - cpu0, 1),
        "peak_mb": max([_hwm_kb(), *(r["peak"] for r in profile.rows.values())]) // 1024,
        "load_start": [round(x, 1) for x in load_start],
        "load_end": [round(x, 1) for x in os.getloadavg()],
    }
    rows = table(profile.rows)
    print(f"{'step':<44} {'calls':>5} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}")
    for r in rows:
        label = "  " * r["depth"] + r["step"]
        print(f"{label:<44} {r['calls']:>5} {r['wall_s']:>8} {r['cpu_s']:>8} {r['peak_mb']:>8}")
    print("total", json.dumps(total))
    if args.json:
        Path(args.json).write_text(json.dumps({"total": total, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
