"""Benchmark of one large build (issue 13 part 4: 100M activities in <= 8 GB, <= 4 minutes).

Usage (from the repository root, in the project's venv)::

    python bench/build_big.py /tmp/el100m/data --cache-dir /tmp/el100m/cache \\
        --label 100m --results bench/RESULTS.md

Runs ``effortlens build DATA --force`` (partitioned unless ``--in-memory``) in a child process
and reports its wall time, CPU time and
peak resident set (the child's own ``VmHWM``, read by the child as it exits; ``maxrss`` from
``wait4`` is the largest of it and of the processes it waited for — not the build's workers,
which are children of a fork server it never waits for; the resident set of the whole
process tree, summed, is sampled every second: the figure to read), with the time,
resident set and load average at each step of the build, and the load average sampled every
second. A guard stops the child if its resident set passes ``--limit-mb`` (default 7,800):
the machine is shared.

CPU time is that of the whole process tree: the build runs in a cgroup of its own (cgroup v1
``cpuacct``, where this process may make one: as root), which counts every process it starts,
waited for or not, split into user and system time; each step's CPU s is read from it as the
step starts. Without a cgroup it is ``wait4``'s (the build and the processes it waited for,
counted when they were reaped: a worker process that runs several steps' calls is counted at
the step it ends in), said in ``cpu_source``. Then, unless ``--no-warm``, a warm
``effortlens roe DATA --json`` with the current build (wall, CPU, peak) checks the result is
usable. The figures go to the JSON
file given and, with ``--results``, to the "100M build" section of RESULTS.md (between its
markers; the rest of the file is left alone).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from results_file import replace_section

HERE = Path(__file__).resolve().parent
#: Where a cgroup of the build's own is made (cgroup v1's CPU accounting).
CPUACCT = Path("/sys/fs/cgroup/cpuacct")
#: The environment variable naming that cgroup's folder to the build (its steps' CPU s).
CGROUP_ENV = "EFFORTLENS_BENCH_CGROUP"
#: Its section of RESULTS.md (:func:`results_file.replace_section`).
SECTION = "big-build"


def vm_mb(pid: int | str, field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of process ``pid`` in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the build spawns a process per chunk and partition)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _cgroup() -> Path | None:
    """A new cpuacct cgroup for one measured run (``None`` where none can be made)."""
    group = CPUACCT / f"effortlens_bench.{os.getpid()}.{time.monotonic_ns()}"
    try:
        group.mkdir()
    except OSError:
        return None
    return group


def tree_cpu(group: Path) -> dict:
    """CPU s of every process that ran in ``group``: total, user and system.

    Examples
    --------
    >>> sorted(tree_cpu(CPUACCT))  # doctest: +SKIP
    ['cpu_s', 'system_s', 'user_s']
    """
    total = int((group / "cpuacct.usage").read_text()) / 1e9
    ticks = dict(line.split() for line in (group / "cpuacct.stat").read_text().splitlines())
    hz = os.sysconf("SC_CLK_TCK")
    return {
        "cpu_s": round(total, 1),
        "user_s": round(int(ticks["user"]) / hz, 1),
        "system_s": round(int(ticks["system"]) / hz, 1),
    }


def _cpu_now() -> float:
    """The build's CPU s so far: its cgroup's (the whole tree) when it runs in one, else its
    own and that of the child processes it has waited for."""
    group = os.environ.get(CGROUP_ENV)
    if group:
        try:
            return int((Path(group) / "cpuacct.usage").read_text()) / 1e9
        except OSError:
            pass
    return sum(os.times()[:4])


def child(folder: str, *, cache_dir: str | None, partitioned: bool | None) -> int:
    """The build itself (in the child): steps logged as JSON lines on stderr, VmHWM at exit."""
    from effortlens import facts

    started = time.perf_counter()

    class Logged(facts.Progress):
        def _draw(self, label: str) -> None:
            record = {
                "step": label,
                "at_s": round(time.perf_counter() - started, 1),
                "cpu_s": round(_cpu_now(), 1),
                "rss_mb": vm_mb("self", "VmRSS"),
                "hwm_mb": vm_mb("self", "VmHWM"),
                "load": [round(x, 1) for x in os.getloadavg()],
            }
            # one write a line: two threads of the build (the practice side's lane and the
            # main one) draw steps, and print() may interleave their text on stderr
            sys.stderr.flush()
            os.write(2, ("STEP " + json.dumps(record) + "\n").encode())

    built = facts.open_build(
        folder,
        cache_dir=cache_dir,
        force=True,
        progress=Logged(facts.BUILD_STEPS, stream=None),
        **({} if partitioned is None else {"partitioned": partitioned}),
    )
    report = built.data.report.to_dict()
    files = built.manifest["files"]
    print(
        json.dumps(
            {
                "build": built.manifest.get("build"),
                "path": str(built.path),
                "files": len(files),
                "bytes": sum(f["bytes"] for f in files.values()),
                "read": {t: r["read"] for t, r in report.items() if isinstance(r, dict)},
                "loaded": {t: r["loaded"] for t, r in report.items() if isinstance(r, dict)},
                "daily_rows": _daily_rows(built),
                "vm_hwm_mb": vm_mb("self", "VmHWM"),
            }
        )
    )
    return 0


def _daily_rows(built) -> int:
    """The roll-up's rows, from the manifest where it counts them: reading the roll-up (18M
    rows at 100M, ~3.4 CPU s) only to count it would add to the measured wall what
    ``effortlens build`` never does."""
    rows = built.manifest["files"].get("daily.parquet", {}).get("rows")
    return built.enriched.daily.height if rows is None else rows


def _measured(argv: list[str], *, limit_mb: int, env: dict) -> dict:
    """Run ``argv``; wall, CPU (the whole tree's from a cgroup, else ``wait4``), sampled RSS
    and load; stop it above ``limit_mb``."""
    import tempfile

    group = _cgroup()
    env = dict(env)
    env.pop(CGROUP_ENV, None)
    if group is not None:
        env[CGROUP_ENV] = str(group)

    def join_group() -> None:  # in the child, before it runs anything
        (group / "tasks").write_text(str(os.getpid()))

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=err,
            text=True,
            env=env,
            preexec_fn=join_group if group is not None else None,
        )
        samples: list[list[float]] = []
        stopped: list[int] = []
        done = threading.Event()

        def watch() -> None:
            while not done.wait(1.0):
                rss = sum(vm_mb(p, "VmRSS") for p in _tree(proc.pid))  # the whole tree
                samples.append([round(time.perf_counter() - started, 1), rss, os.getloadavg()[0]])
                if rss > limit_mb and not stopped:
                    stopped.append(rss)
                    os.kill(proc.pid, signal.SIGKILL)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage, reaped here
        done.set()
        wall = time.perf_counter() - started
        watcher.join(timeout=5)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    steps = [json.loads(line[5:]) for line in stderr.splitlines() if line.startswith("STEP ")]
    waited = round(usage.ru_utime + usage.ru_stime, 1)
    user, system = round(usage.ru_utime, 1), round(usage.ru_stime, 1)
    cpu: dict = {"cpu_s": waited, "user_s": user, "system_s": system}
    if group is not None:
        time.sleep(0.5)  # processes killed with the build (parent-death signal) end
        cpu = tree_cpu(group)
        try:
            group.rmdir()
        except OSError:  # a process of the build outlived it: left for inspection
            cpu["left_running"] = (group / "tasks").read_text().split()
    return {
        "rc": proc.returncode,
        "wall_s": round(wall, 1),
        **cpu,
        "cpu_source": "cgroup (whole process tree)" if group is not None else "wait4",
        "cpu_wait4_s": waited,
        "maxrss_mb": usage.ru_maxrss // 1024,
        "steps": steps,
        "rss_samples": samples[:: max(1, len(samples) // 120)],
        "all_samples": samples,
        "max_sampled_rss_mb": max((s[1] for s in samples), default=0),
        "stopped_at_mb": stopped[0] if stopped else None,
        "stdout": stdout[-4000:],
        "stderr": "\n".join(x for x in stderr.splitlines() if not x.startswith("STEP "))[-2000:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data")
    parser.add_argument("--cache-dir")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--in-memory", dest="partitioned", action="store_const", const=False)
    how.add_argument("--partitioned", dest="partitioned", action="store_const", const=True)
    parser.add_argument("--limit-mb", type=int, default=7_800)
    parser.add_argument("--no-warm", action="store_true")
    parser.add_argument("--label", default="")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--results", help="RESULTS.md to write the section into")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.data, cache_dir=args.cache_dir, partitioned=args.partitioned)

    env = dict(os.environ)
    if args.cache_dir:
        env["EFFORTLENS_CACHE"] = args.cache_dir
    folder = str(Path(args.data).resolve())
    figures: dict = {
        "data": folder,
        "started": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "load_at_start": [round(x, 1) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    flag = {None: [], True: ["--partitioned"], False: ["--in-memory"]}[args.partitioned]
    run = _measured(
        [sys.executable, __file__, folder, "--child", *flag]
        + (["--cache-dir", args.cache_dir] if args.cache_dir else []),
        limit_mb=args.limit_mb,
        env=env,
    )
    try:
        run["result"] = json.loads(run["stdout"].strip().splitlines()[-1])
    except (ValueError, IndexError):
        run["result"] = None
    run.pop("stdout")
    figures["build"] = run
    figures["load_after_build"] = [round(x, 1) for x in os.getloadavg()]
    if not args.no_warm and run["rc"] == 0:
        warm = _measured(
            [sys.executable, "-m", "effortlens.cli", "roe", folder, "--json"],
            limit_mb=args.limit_mb,
            env=env,
        )
        warm.pop("stdout")
        figures["warm_roe"] = warm
    figures["load_at_end"] = [round(x, 1) for x in os.getloadavg()]
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    if args.results:
        write_section(figures, Path(args.results), label=args.label or Path(folder).name)
    print(json.dumps({k: v for k, v in figures.items() if k != "build"}, indent=1))
    print(
        json.dumps(
            {k: v for k, v in run.items() if k not in ("rss_samples", "all_samples", "steps")},
            indent=1,
        )
    )
    for s in per_step(run):
        print(
            f"{s['step']:<45} at {s['at_s']:7.1f} s  wall {s['wall_s']:7.1f} s  "
            f"CPU {s['cpu_step_s']} s  tree peak {s['tree_peak_mb']:,} MB  load {s['load']}"
        )
    return 0 if run["rc"] == 0 else 1


def per_step(run: dict) -> list[dict]:
    """Each step's wall and CPU seconds (to the next step) and the largest sampled resident
    set of the process tree while it ran."""
    steps = run["steps"]
    samples = run.get("all_samples") or run["rss_samples"]
    out = []
    for i, s in enumerate(steps):
        end = steps[i + 1]["at_s"] if i + 1 < len(steps) else run["wall_s"]
        following = steps[i + 1].get("cpu_s") if i + 1 < len(steps) else None
        if following is None and i + 1 == len(steps) and run.get("cpu_source", "").startswith("cg"):
            following = run["cpu_s"]  # the same counter: the whole tree's, to its end
        cpu = None
        if s.get("cpu_s") is not None and following is not None:
            cpu = round(following - s["cpu_s"], 1)
        inside = [rss for at, rss, _ in samples if s["at_s"] <= at <= end + 1]
        out.append(
            {
                **s,
                "wall_s": round(end - s["at_s"], 1),
                "cpu_step_s": cpu,
                "tree_peak_mb": max(inside, default=0),
            }
        )
    return out


def write_section(figures: dict, path: Path, *, label: str) -> None:
    """Replace the big-build section of ``path`` (between its markers) with ``figures``."""
    run = figures["build"]
    result = run.get("result") or {}
    peak = result.get("vm_hwm_mb") or run["max_sampled_rss_mb"]
    lines = [
        f"### Measured: {label} ({figures['started']}, `python bench/build_big.py`)",
        "",
        f"Load average at start {figures['load_at_start']}, after the build "
        f"{figures['load_after_build']}, at end {figures['load_at_end']} "
        f"({figures['cpus']} cores).",
        "",
        "| step | wall s | CPU s | peak MB |",
        "|---|---:|---:|---:|",
        f"| `effortlens build --force` ({result.get('build', 'failed')}) | {run['wall_s']:.0f} | "
        f"{run['cpu_s']:.0f} (user {run.get('user_s')}, system {run.get('system_s')}; "
        f"{run.get('cpu_source', 'wait4')}) | {peak:,} (build process VmHWM); "
        f"{run['maxrss_mb']:,} (largest process waited for, wait4); "
        f"{run['max_sampled_rss_mb']:,} (process tree, sampled) |",
    ]
    warm = figures.get("warm_roe")
    if warm:
        lines.append(
            f"| warm `effortlens roe --json` | {warm['wall_s']:.1f} | {warm['cpu_s']:.1f} | "
            f"{warm['max_sampled_rss_mb']:,} (sampled) |"
        )
    lines += [
        "",
        "Steps of the build (wall and CPU s of the step: the build process and its finished"
        " child processes; the largest resident set of the whole process tree sampled during"
        " the step; load average at its start):",
        "",
        "| step | starts at s | wall s | CPU s | tree peak MB | load at start |",
        "|---|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {s['step']} | {s['at_s']:.0f} | {s['wall_s']:.0f} | "
        f"{s['cpu_step_s'] if s['cpu_step_s'] is not None else '—'} | {s['tree_peak_mb']:,} | "
        f"{s['load']} |"
        for s in per_step(run)
    ]
    if result:
        lines += [
            "",
            f"Rows read {result['read']}, loaded {result['loaded']}; daily roll-up "
            f"{result['daily_rows']:,} rows; {result['files']} files, "
            f"{result['bytes'] / 2**30:,.1f} GiB.",
        ]
    if run["stopped_at_mb"]:
        lines += ["", f"**Stopped by the guard at {run['stopped_at_mb']:,} MB.**"]
    replace_section(path, lines, name=SECTION)


if __name__ == "__main__":
    sys.exit(main())
