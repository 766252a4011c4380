"""Spark local mode against Polars for the enrichment (issue 13 §5), on this machine.

Both start from the same loaded canonical tables (not timed) and compute the same facts:
Polars with ``effortlens.enrich.enrich_tables`` in this process, Spark with
``effortlens.spark_build.build_facts_spark`` in local mode (``local[N]``, N = the cores), from
the tables written as Parquet, to Parquet facts. Reported: wall time, CPU time (Python process
and, for Spark, its JVM), and peak RSS of each.

    .venv/bin/python bench/spark.py --size 1m            # data from bench/data/1m (made if missing)
    .venv/bin/python bench/spark.py --data path/to/folder

The machine is shared with other work: compare CPU times, and repeat when wall times look odd.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _jvms(me: psutil.Process) -> list[psutil.Process]:
    return [c for c in me.children(recursive=True) if "java" in c.name()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1m", help="bench/data/<size> (generated if missing)")
    parser.add_argument("--data", help="a data folder instead of bench/data/<size>")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", help="append the result as one JSON line to this file")
    args = parser.parse_args(argv)

    from effortlens.enrich import enrich_tables
    from effortlens.loading import load_folder
    from effortlens.settings import load_settings
    from effortlens.spark_build import build_facts_spark, local_session, write_canonical

    folder = Path(args.data) if args.data else HERE / "data" / args.size
    if not folder.is_dir():
        subprocess.run(
            [sys.executable, "-m", "effortlens.sample", "--size", args.size, "--out", str(folder)],
            check=True,
        )
    settings = load_settings()
    tables = dict(load_folder(folder, settings=settings).tables)
    n = tables["activities"].height
    me = psutil.Process()
    result: dict = {"data": str(folder), "activities": n, "cores": args.cores}

    cpu0, wall0 = _cpu(me), time.perf_counter()
    enriched = enrich_tables(tables, settings=settings)
    result["polars"] = {"wall_s": time.perf_counter() - wall0, "cpu_s": _cpu(me) - cpu0}
    del enriched

    scratch = Path(tempfile.mkdtemp(prefix="effortlens-spark-bench-"))
    try:
        canonical = write_canonical(
            {k: tables[k] for k in ("reps", "activities", "buyer_actions")}, scratch / "in"
        )
        wall0 = time.perf_counter()
        spark = local_session(cores=args.cores, shuffle_partitions=max(2, 2 * args.cores))
        started = time.perf_counter() - wall0
        jvm = _jvms(me)
        jvm_cpu0 = sum(_cpu(p) for p in jvm)
        cpu0, wall0 = _cpu(me), time.perf_counter()
        build_facts_spark(canonical, scratch / "facts", settings, spark=spark)
        wall = time.perf_counter() - wall0
        jvm_cpu = sum(_cpu(p) for p in jvm) - jvm_cpu0
        peak = max((p.memory_info().rss for p in jvm), default=0) / 2**20
        spark.stop()
        result["spark"] = {
            "session_s": started,
            "wall_s": wall,
            "cpu_s": _cpu(me) - cpu0 + jvm_cpu,
            "jvm_rss_mb_at_end": peak,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    p, s = result["polars"], result["spark"]
    print(
        f"{n:,} activities, {args.cores} cores: Polars {p['wall_s']:.1f} s wall "
        f"({p['cpu_s']:.1f} s CPU); Spark local {s['wall_s']:.1f} s wall ({s['cpu_s']:.1f} s CPU, "
        f"+{s['session_s']:.1f} s to start); Spark/Polars wall {s['wall_s'] / p['wall_s']:.0f}x, "
        f"CPU {s['cpu_s'] / max(p['cpu_s'], 1e-9):.0f}x"
    )
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
