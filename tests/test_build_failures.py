"""A build that fails says so at once, in words: the step, the partition and the cause (a child
killed outright: most often out of memory; a full disk: the folder and the space needed), with
its scratch deleted and the previous build left usable. Real child processes throughout."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from effortlens import cli, facts, partitioned
from effortlens.build_failure import BuildFailed, DiskFull, is_disk_full
from effortlens.facts import open_build
from effortlens.partitioned import Children, each_in_children
from effortlens.settings import load_settings

# code run in a child (a builtin: the child needs nothing of this module)
_SLEEP = "__import__('time').sleep(120)"
_KILLED = "__import__('os').kill(__import__('os').getpid(), 9)"
_SLOW_KILLED = "__import__('time').sleep(1) or __import__('os').kill(__import__('os').getpid(), 9)"


def _settings(**limits):
    s = load_settings()
    return dataclasses.replace(s, limits=dataclasses.replace(s.limits, **limits))


def _leftovers(cache: Path) -> list[str]:
    """Working folders of a build left in ``cache`` (scratch, staging, a build put aside)."""
    return sorted(p.name for p in cache.rglob(".*") if p.is_dir())


def test_a_killed_partition_is_named_with_its_step_and_memory_at_once():
    started = time.perf_counter()
    with pytest.raises(BuildFailed) as failed:
        each_in_children(
            eval, [((_SLEEP,), {}), ((_SLOW_KILLED,), {})], isolate=True, workers=2, what="enrich"
        )
    # the partition beside it (two minutes of work) is killed, not waited for
    assert time.perf_counter() - started < 60
    message = str(failed.value)
    assert message.startswith("enrich, partition 2 of 2: its process was killed (SIGKILL)")
    assert "out-of-memory" in message and "limits.build_workers = 1" in message


def test_a_child_that_exits_or_is_stopped_is_named():
    exits = "__import__('os')._exit(3)"
    with pytest.raises(BuildFailed, match=r"^pass 1, partition 1 of 2: .*exit status 3"):
        each_in_children(
            eval, [((exits,), {}), ((_SLEEP,), {})], isolate=True, workers=2, what="pass 1"
        )
    # a single call (the fit) is named by its step
    with pytest.raises(BuildFailed, match=r"^view facts: habit credit fit: .*SIGKILL"):
        Children(isolate=True, workers=1).call("view facts: habit credit fit", eval, (_KILLED,), {})


def test_out_of_memory_in_a_child_says_so_and_an_error_keeps_its_type():
    with pytest.raises(BuildFailed, match=r"^bytearray, partition 1 of 2: out of memory"):
        each_in_children(bytearray, [((1 << 62,), {}), ((1,), {})], isolate=True, workers=2)
    # any other exception is raised as it was, with a note naming the step and the partition
    with pytest.raises(ValueError, match="invalid literal") as failed:
        each_in_children(int, [(("1",), {}), (("x",), {})], isolate=True, workers=2)
    assert "int, partition 2 of 2" in " ".join(failed.value.__notes__)


def test_calls_not_started_are_not_run_after_a_failure(tmp_path):
    # one at a time: the second fails, the third never starts
    marks = [tmp_path / f"{i}" for i in range(3)]
    calls = [((f"touch {marks[0]}",), {}), (("kill -9 $PPID",), {}), ((f"touch {marks[2]}",), {})]
    with pytest.raises(BuildFailed, match="partition 2 of 3"):
        each_in_children(subprocess.getoutput, calls, isolate=True, workers=1)
    assert marks[0].exists() and not marks[2].exists()


def test_the_failure_of_one_lane_stops_the_other_at_once():
    # the practice side runs beside the fit in another thread: its failure ends the fit's child
    import threading

    run = Children(isolate=True, workers=2)
    errors: list[BaseException] = []

    def fit() -> None:
        try:
            run(eval, _SLEEP)
        except BaseException as err:
            errors.append(err)

    started = time.perf_counter()
    lane = threading.Thread(target=fit)
    lane.start()
    time.sleep(0.5)
    with pytest.raises(BuildFailed, match="SIGKILL"):
        run(eval, _SLOW_KILLED)
    lane.join(timeout=60)
    assert not lane.is_alive() and time.perf_counter() - started < 60
    assert len(errors) == 1 and errors[0] is run.failure  # the first failure, told there too


def test_children_share_the_cores_out_when_several_run_at_once():
    probe = "__import__('os').environ.get('POLARS_MAX_THREADS', '-')"
    pools = "__import__('polars').thread_pool_size()"
    two = Children(isolate=True, workers=2, threads=None)
    expected = str(max(1, (os.cpu_count() or 1) // 2))
    assert two.each(eval, [((probe,), {}), ((probe,), {})]) == [expected, expected]
    assert two.each(eval, [((pools,), {}), ((pools,), {})]) == [int(expected)] * 2
    # one at a time (or threads=0): the child's pools as they choose; the parent's environment
    # is left as it was
    before = dict(os.environ)
    assert Children(isolate=True, workers=1).call("x", eval, (probe,), {}) == before.get(
        "POLARS_MAX_THREADS", "-"
    )
    assert Children(isolate=True, workers=2, threads=0).call("x", eval, (probe,), {}) == (
        before.get("POLARS_MAX_THREADS", "-")
    )
    assert dict(os.environ) == before
    # a single call that starts while another child runs (the fit beside the practice side)
    import threading

    one = Children(isolate=True, workers=2)

    def beside() -> None:
        with pytest.raises(RuntimeError, match="test over"):  # stopped at the end
            one(eval, "__import__('time').sleep(20)")

    lane = threading.Thread(target=beside)
    lane.start()
    try:
        deadline = time.monotonic() + 30
        while not one._live and time.monotonic() < deadline:  # noqa: SLF001 - the lane's child
            time.sleep(0.05)
        assert one(eval, probe) == expected
    finally:
        one.stop(RuntimeError("test over"))
        lane.join(timeout=30)


def _dies_on_second_partition(p, *args, **kwargs):
    """:func:`effortlens.partitioned.enrich_partition`, but partition 2's process is killed
    outright as the memory killer does (run in the child: this module is imported there)."""
    if p == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return partitioned.enrich_partition(p, *args, **kwargs)


def test_a_build_whose_partition_is_killed_says_so_and_keeps_the_previous_build(
    tiny_planted, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(partitioned, "ISOLATE_ABOVE_ROWS", 0)  # every partition in a child
    settings = _settings(partition_rows=6_000, partition_above_rows=6_000, build_workers=2)
    cache = tmp_path / "cache"
    before = open_build(tiny_planted, settings=settings, cache_dir=cache, partitioned=True)
    manifest = (before.path / "manifest.json").read_text()
    n = len([f for f in json.loads(manifest)["files"] if f.startswith("activities.parquet/")])
    assert n >= 3
    monkeypatch.setattr(partitioned, "enrich_partition", _dies_on_second_partition)
    with pytest.raises(BuildFailed) as failed:
        open_build(tiny_planted, settings=settings, cache_dir=cache, partitioned=True, force=True)
    # above partition_above_rows, pass 1 of the view facts runs in the enrichment's process
    fused = f"enrich and view facts' pass 1, partition 2 of {n}"
    assert str(failed.value).startswith(f"{fused}: its process was killed")
    assert "out-of-memory" in str(failed.value)
    assert _leftovers(cache) == []  # scratch and staging deleted, the build put back
    assert (before.path / "manifest.json").read_text() == manifest
    again = open_build(tiny_planted, settings=settings, cache_dir=cache, partitioned=True)
    assert again.path == before.path and again.rebuilt == ""  # usable as it was
    # the command line says it in one line, no traceback
    own = tmp_path / "settings.toml"
    own.write_text(
        "[limits]\npartition_rows = 6000\npartition_above_rows = 6000\nbuild_workers = 2\n"
    )
    argv = ["build", str(tiny_planted), "--settings", str(own), "--cache-dir", str(cache)]
    code = cli.main([*argv, "--force", "--partitioned"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"effortlens: {fused}: its process was killed (SIGKILL)" in err
    assert "Traceback" not in err and "BrokenProcessPool" not in err


def test_a_full_disk_in_a_child_is_an_os_error_of_no_space():
    with pytest.raises(OSError) as failed:
        each_in_children(
            Path("/dev/full").write_bytes, [((b"x" * 65_536,), {})] * 2, isolate=True, workers=2
        )
    assert failed.value.errno == errno.ENOSPC and is_disk_full(failed.value)
    frame = pl.DataFrame({"a": range(100_000)})
    with pytest.raises(pl.exceptions.ComputeError) as failed:
        frame.write_parquet("/dev/full")
    assert is_disk_full(failed.value)  # Polars' words: "No space left on device (os error 28)"


def test_a_full_disk_names_the_folder_and_the_space_needed(tiny_planted, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    before = open_build(tiny_planted, cache_dir=cache, partitioned=False)
    manifest = (before.path / "manifest.json").read_text()

    def full(*_args, **_kwargs):  # as Polars says it when a writer's disk fills up
        raise pl.exceptions.ComputeError(
            "parquet: File out of specification: underlying IO error: No space left on device "
            "(os error 28)"
        )

    monkeypatch.setattr(facts, "write_aggregates", full)
    with pytest.raises(DiskFull) as failed:
        open_build(tiny_planted, cache_dir=cache, partitioned=False, force=True)
    message = str(failed.value)
    inputs = sum(p.stat().st_size for p in tiny_planted.rglob("*") if p.is_file())
    assert message.startswith(f"the disk of {cache / 'builds'} is full: the build needs about ")
    assert f"{inputs * facts.BUILD_BYTES_PER_INPUT_BYTE / 2**30:,.1f} GB" in message
    assert "free now" in message and "--cache-dir" in message
    assert _leftovers(cache) == []
    assert (before.path / "manifest.json").read_text() == manifest


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_build_on_a_small_real_disk_says_the_disk_is_full(tiny_planted, tmp_path, monkeypatch):
    cache = tmp_path / "small"
    cache.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(cache)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"no tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        monkeypatch.setattr(partitioned, "ISOLATE_ABOVE_ROWS", 0)  # written by children too
        settings = _settings(partition_rows=6_000, partition_above_rows=6_000, build_workers=2)
        with pytest.raises(DiskFull, match=f"^the disk of {cache / 'builds'} is full"):
            open_build(tiny_planted, settings=settings, cache_dir=cache, partitioned=True)
        assert _leftovers(cache) == []
        assert not (cache / "builds").exists() or not any(
            p.is_dir() for p in (cache / "builds").iterdir()
        )
    finally:
        subprocess.run(["umount", str(cache)], check=False)


def test_a_build_killed_outright_leaves_no_child_running(tmp_path):
    import sys
    import textwrap

    import psutil

    started = tmp_path / "started"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from effortlens.partitioned import Children

        Path({str(started)!r}).write_text("yes")
        Children(isolate=True, workers=2).each(time.sleep, [((120,), {{}}), ((120,), {{}})])
        """
    )
    build = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = [  # spawned, or forked by the fork server (its children)
                p
                for p in psutil.Process(build.pid).children(recursive=True)
                if "spawn_main" in " ".join(p.cmdline())
                or p.ppid() != build.pid
                and "forkserver" in " ".join(p.cmdline())
            ]
        assert len(workers) == 2, "the build's two children never started"
        # and the fork server they were forked from, if any
        workers += [
            p for p in psutil.Process(build.pid).children() if "forkserver" in " ".join(p.cmdline())
        ]
        time.sleep(2.0)  # each child has asked to die with its parent by the time it sleeps
    finally:
        build.send_signal(signal.SIGKILL)
        build.wait()
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"children {[p.pid for p in alive]} outlived the killed build"


def _load_killed(*_args, **_kwargs):
    """The partitioned build's load, killed outright in its process (a process pool's child)."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_load_killed_in_its_process_pool_is_named_not_broken_process_pool(
    tiny_planted, tmp_path, monkeypatch
):
    monkeypatch.setattr(partitioned, "ISOLATE_ABOVE_ROWS", 0)  # the load in a child
    monkeypatch.setattr(partitioned, "_load_to_files", _load_killed)
    settings = _settings(partition_rows=6_000, partition_above_rows=6_000)
    cache = tmp_path / "cache"
    with pytest.raises(BuildFailed) as failed:
        open_build(tiny_planted, settings=settings, cache_dir=cache, partitioned=True)
    message = str(failed.value)
    assert message.startswith("load and validate: its process was killed or ended abruptly")
    assert "out-of-memory" in message and "BrokenProcessPool" not in message
    assert _leftovers(cache) == []


def test_a_forced_rebuild_without_room_for_two_builds_deletes_the_old_one_first(
    tiny_planted, tmp_path, monkeypatch
):
    # at 100M a build is ~15 GB: keeping the old one until the new one is sealed needs both
    cache = tmp_path / "cache"
    before = open_build(tiny_planted, cache_dir=cache)
    said: list[str] = []

    def fails(*args, **kwargs):
        said.append("building")
        raise RuntimeError("the new build failed")

    monkeypatch.setattr(facts, "_write_build", fails)
    with pytest.raises(RuntimeError):  # room for both: the old build put back
        open_build(tiny_planted, cache_dir=cache, force=True)
    assert (before.path / "manifest.json").is_file()
    monkeypatch.setattr(facts, "_space_needed", lambda folder: 2**62)  # no room for both
    with pytest.raises(RuntimeError):
        open_build(tiny_planted, cache_dir=cache, force=True, say=said.append)
    assert not before.path.exists() and _leftovers(cache) == []
    assert any("not enough free disk" in s for s in said)
