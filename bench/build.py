"""Benchmark of built facts (issue 13): cold build, warm CLI, warm queries vs DuckDB, kernels.

Usage (from the repository root, in the project's venv)::

    python bench/build.py DATA                 # writes the "Built facts" section of RESULTS.md
    python bench/build.py DATA --apps return_on_effort habits --no-cold

Every step runs in a fresh subprocess, so each peak resident set (``ru_maxrss``) is its own,
and the wall and CPU times (user + system, all threads) of the whole process are reported:

- ``cold build``: ``effortlens build DATA --force`` (load, validate, enrich, write, checksums);
- ``warm roe``: ``effortlens roe DATA --json`` with a current build (verify, scan, compute);
- ``warm query``: weekly ROE per team from the built ``daily.parquet``, by EffortLens
  (:func:`effortlens.facts.open_build` then :func:`effortlens.roe.roe_by`) and by DuckDB
  reading the same Parquet file; the two tables are checked equal;
- ``kernel <app>``: what a Voilà kernel does for one app (``bench/kernel_probe.py``): import,
  open the build, draw every view (the first chart), then four filter changes; its resident
  set after the first draw and the kernel-side time of each filter change.

``$EFFORTLENS_CACHE`` selects the cache (default: the per-user cache directory). The machine is
shared: the load average is recorded beside the figures, and CPU times suffer much less from
other work than wall times do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from results_file import replace_section

HERE = Path(__file__).resolve().parent
APPS = (
    "return_on_effort",
    "positive_deviance",
    "buyer_journey",
    "habits",
    "interventions",
    "organisation",
    "rep_mirror",
    "pattern_session",
)
#: Its section of RESULTS.md (:func:`results_file.replace_section`).
SECTION = "built-facts"


def _run(argv: list[str], *, env: dict | None = None) -> dict:
    """Run ``argv`` under ``/usr/bin/time``: its wall time, CPU time, own peak RSS, stdout."""
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        started = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-o", stats.name, "-f", "%M %U %S", *argv],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        wall = time.perf_counter() - started
        peak_kb, user, system = stats.read().split()[-3:]
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(float(user) + float(system), 2),
        "peak_mb": round(int(peak_kb) / 1024),
        "rc": done.returncode,
        "stdout": done.stdout,
        "stderr": done.stderr[-2000:],
    }


#: Run EffortLens through this script (see ``--launcher``), else the installed package.
LAUNCHER: list[str] = []


def _python(*args: str) -> list[str]:
    return [sys.executable, *LAUNCHER, *args]


def warm_query(folder: str, impl: str) -> dict:
    """Weekly ROE per team from the built facts (runs in its own process)."""
    started = time.perf_counter()
    if impl == "effortlens":
        import polars as pl

        from effortlens.facts import open_build
        from effortlens.roe import roe_by

        built = open_build(folder)
        table = roe_by(built.enriched.daily, by=["team", "week"])
        out = table.select("team", "week", "activities", "responded", "response_weight")
        rows = out.sort("team", "week").with_columns(pl.col("week").cast(pl.String)).rows()
    else:
        import duckdb

        from effortlens.facts import open_build

        daily = open_build(folder).path / "daily.parquet"  # verified, as EffortLens reads it
        rows = duckdb.sql(
            f"""
            select team, cast(week as varchar), sum(activities)::bigint,
                   sum(responded)::bigint, sum(response_weight)
            from read_parquet('{daily}') where is_customer_facing
            group by all order by 1, 2
            """
        ).fetchall()
    wall = time.perf_counter() - started
    return {
        "inner_s": round(wall, 3),
        "cells": len(rows),
        "checksum": [
            round(sum(r[2] for r in rows)),
            round(sum(r[3] for r in rows)),
            round(sum(r[4] or 0 for r in rows), 3),
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", help="data folder (e.g. bench/data/10m)")
    parser.add_argument("--apps", nargs="*", default=list(APPS))
    parser.add_argument("--no-cold", action="store_true", help="skip the cold build")
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--label", default="", help="name of the data set in the report")
    parser.add_argument(
        "--launcher",
        help="a script that runs `-m MODULE ARGS` or `SCRIPT ARGS` with a frozen copy of the code "
        "(so that edits to the working tree during the run do not make the build stale)",
    )
    parser.add_argument("--query", choices=["effortlens", "duckdb"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.query:
        print(json.dumps(warm_query(args.data, args.query)))
        return 0

    folder = str(Path(args.data).resolve())
    if args.launcher:
        LAUNCHER[:] = [args.launcher]
    load = os.getloadavg()
    figures: dict = {"data": folder, "load_at_start": [round(x, 1) for x in load]}
    cli = _python("-m", "effortlens.cli")
    if not args.no_cold:
        figures["cold_build"] = _run([*cli, "build", folder, "--force"])
    else:
        _run([*cli, "build", folder])  # make sure it is current
    figures["warm_roe"] = [_run([*cli, "roe", folder, "--json"]) for _ in range(3)]
    for impl in ("effortlens", "duckdb"):
        runs = [_run(_python(__file__, folder, "--query", impl)) for _ in range(3)]
        figures[f"query_{impl}"] = [{**r, **json.loads(r["stdout"])} for r in runs]
    figures["kernels"] = {}
    for app in args.apps:
        run = _run(_python(str(HERE / "kernel_probe.py"), app, folder))
        try:
            figures["kernels"][app] = {**json.loads(run["stdout"].strip().splitlines()[-1]), **run}
        except (ValueError, IndexError):
            figures["kernels"][app] = {"error": run["stderr"][-500:], **run}
    figures["load_at_end"] = [round(x, 1) for x in os.getloadavg()]
    for step in figures.values():  # keep the report small
        for run in step if isinstance(step, list) else [step]:
            if isinstance(run, dict):
                run.pop("stdout", None)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    write_section(figures, Path(args.results), label=args.label or Path(folder).name)
    print(json.dumps(figures, indent=1))
    return 0


def _median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else float("nan")


def write_section(figures: dict, path: Path, *, label: str) -> None:
    """Replace the built-facts section of ``path`` (between its markers) with ``figures``."""
    lines = [
        f"## Built facts: {label}",
        "",
        f"Written by `python bench/build.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        f"Load average at start {figures['load_at_start']}, at end {figures['load_at_end']} "
        "(2 cores: above 2 the machine was shared, and wall times are inflated; CPU times are "
        "user + system of all threads).",
        "",
        "| step | wall s | CPU s | peak MB |",
        "|---|---:|---:|---:|",
    ]
    cold = figures.get("cold_build")
    if cold:
        lines.append(
            f"| cold `effortlens build` | {cold['wall_s']:.1f} | {cold['cpu_s']:.1f} | "
            f"{cold['peak_mb']:,} |"
        )
    warm = figures["warm_roe"]
    lines.append(
        f"| warm `effortlens roe --json` (median of {len(warm)}) | "
        f"{_median([r['wall_s'] for r in warm]):.2f} | {_median([r['cpu_s'] for r in warm]):.2f}"
        f" | {max(r['peak_mb'] for r in warm):,} |"
    )
    ours, duck = figures["query_effortlens"], figures["query_duckdb"]
    for name, runs in (("EffortLens", ours), ("DuckDB", duck)):
        lines.append(
            f"| weekly ROE per team from the built facts, {name} (process) | "
            f"{_median([r['wall_s'] for r in runs]):.2f} | "
            f"{_median([r['cpu_s'] for r in runs]):.2f} | {max(r['peak_mb'] for r in runs):,} |"
        )
    same = ours[0]["checksum"] == duck[0]["checksum"] and ours[0]["cells"] == duck[0]["cells"]
    ratio = _median([r["wall_s"] for r in duck]) / max(_median([r["wall_s"] for r in ours]), 1e-9)
    lines += [
        "",
        "Warm query, timed inside the process (open and verify the build, then compute; the "
        "table's process figures add Python start-up and imports): EffortLens "
        f"{_median([r['inner_s'] for r in ours]):.2f} s, DuckDB "
        f"{_median([r['inner_s'] for r in duck]):.2f} s; DuckDB's process takes "
        f"{ratio:.2f}× EffortLens's wall time. Same numbers: "
        f"{'yes' if same else 'NO'} ({ours[0]['cells']:,} team × week cells).",
        "",
        "| kernel (one app) | first draw s | RSS after first draw MB | filter changes ms | "
        "peak MB | problems |",
        "|---|---:|---:|---|---:|---|",
    ]
    for app, k in figures["kernels"].items():
        if "error" in k:
            error = re.sub(r"[|\n]", " ", k["error"])[:120]
            lines.append(f"| {app} | failed | | | | {error} |")
            continue
        lines.append(
            f"| {app} | {k['first_render_s']:.2f} | {k['rss_after_first_mb']:,} | "
            f"{', '.join(str(x) for x in k['filter_changes_ms'])} | {k['peak_mb']:,} | "
            f"{', '.join(k['views_with_problem']) or '–'} |"
        )
    replace_section(path, lines, name=SECTION)


if __name__ == "__main__":
    sys.exit(main())
