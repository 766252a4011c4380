"""A build killed outright leaves nothing behind: no working folder, no worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from effortlens.cache import scratch_dir


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_scratch_dir_sweeps_folders_of_dead_builds_only(tmp_path):
    builds = tmp_path / "builds"
    dead = builds / f".0123abcd-{_dead_pid()}-a1b2c3d4"
    live = builds / f".partitioned-{os.getpid()}-e5f6g7h8"
    finished = builds / "0123abcd"  # a sealed build: never a working folder
    for folder in (dead, live, finished):
        (folder / "parts").mkdir(parents=True)
        (folder / "parts" / "x.parquet").write_bytes(b"x" * 1000)

    new = scratch_dir(builds, "0123abcd")

    assert not dead.exists()
    assert live.exists()
    assert finished.exists()
    assert new.is_dir() and new.name.startswith(f".0123abcd-{os.getpid()}-")


def test_killed_build_leaves_no_worker_and_the_next_build_sweeps_its_folder(tmp_path):
    builds = tmp_path / "builds"
    started = tmp_path / "started"
    # a build that holds a working folder and waits in a worker process, as a partitioned
    # build does at 100M activities
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from effortlens.cache import scratch_dir
        from effortlens.loading.pipeline import in_child

        scratch = scratch_dir(Path({str(builds)!r}), "partitioned")
        Path({str(started)!r}).write_text(str(scratch))
        in_child(time.sleep, 120)
        """
    )
    build = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and not workers:
            time.sleep(0.2)
            workers = [
                p
                for p in psutil.Process(build.pid).children(recursive=True)
                if "spawn_main" in " ".join(p.cmdline())
            ]
        assert workers, "the build's worker never started"
        assert started.exists()
        time.sleep(1.0)  # the worker has run its initializer by the time it takes the task
    finally:
        build.send_signal(signal.SIGKILL)
        build.wait()

    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"worker {[p.pid for p in alive]} outlived the killed build"
    scratch = Path(started.read_text())
    assert scratch.is_dir()  # nothing ran to clean it

    scratch_dir(builds, "0123abcd")  # the next build starts

    assert not scratch.exists()
