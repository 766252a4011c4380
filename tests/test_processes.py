"""The partitioned build's worker processes (effortlens.processes through partitioned.Children):
a worker runs one call after another, keeps its memory and its thread count, ends when idle, and
is named when it fails; none outlives its build. Real processes throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from effortlens import processes
from effortlens.build_failure import BuildFailed
from effortlens.partitioned import Children

_PID = "__import__('os').getpid()"
_POOL = "__import__('polars').thread_pool_size()"


def _faults_of_a_big_column(rows: int) -> int:
    """Minor page faults taken while a Polars column of ``rows`` integers (8 bytes each, far
    above jemalloc's 8 MB "oversize" threshold) is made, summed and dropped."""
    import resource

    import polars as pl

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    column = pl.int_range(0, rows, eager=True) * 3
    assert column.sum() > 0
    del column
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.fixture(autouse=True)
def _no_idle_workers(monkeypatch):
    # idle for long enough that a loaded machine does not end a worker between two calls
    monkeypatch.setattr(processes, "IDLE_SECONDS", 60.0)
    processes.end_idle()
    yield
    processes.end_idle()


def test_calls_one_after_another_run_in_the_same_worker():
    children = Children(isolate=True, workers=2)
    slow = f"__import__('time').sleep(1) or {_PID}"  # both at once: two workers
    first = children.each(eval, [((slow,), {}), ((slow,), {})])
    # the pool's threads that started them have ended: the workers live on and are taken again
    second = children.each(eval, [((_PID,), {}), ((_PID,), {})])
    assert os.getpid() not in first and len(set(first)) == 2
    assert set(second) <= set(first)  # no process started
    assert sorted(processes.idle_workers()) == sorted(first)
    children.close()
    assert processes.idle_workers() == []
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in first)


def test_a_reused_worker_keeps_its_thread_count_and_another_count_gets_another_worker():
    expected = max(1, (os.cpu_count() or 1) // 2)
    two = Children(isolate=True, workers=2)
    pools = [((_POOL,), {}), ((_POOL,), {})]
    assert two.each(eval, pools) == [expected, expected]
    pids = processes.idle_workers()
    assert two.each(eval, pools) == [expected, expected]  # the same workers, the same pools
    assert sorted(processes.idle_workers()) == sorted(pids)
    # a call alone wants every core: not one of those workers (they are ended: memory back)
    alone = Children(isolate=True, workers=1)
    assert alone.call("alone", eval, (f"({_POOL}, {_PID})",), {})[1] not in pids
    assert len(processes.idle_workers()) == 1


def test_a_worker_keeps_the_memory_a_call_freed_for_the_next_call():
    # Polars' allocator gives freed memory back to the system within about 1.5 s (its decay:
    # dirty_decay_ms:500, muzzy_decay_ms:1000), so a later call (a partition's next step, the
    # next partition) faults its columns in again (here: 78k faults each time); a worker's
    # allocator keeps them
    run = Children(isolate=True, workers=1)
    rows = 20_000_000  # 160 MB: ~40k pages, twice
    faults = []
    for _ in range(3):
        faults.append(run(_faults_of_a_big_column, rows))
        time.sleep(2.5)
    first, second, third = faults
    assert len(set(processes.idle_workers())) == 1
    assert first > 20_000
    assert second < first / 4 and third < first / 4, (first, second, third)


def _faults_of_a_big_array(rows: int) -> int:
    """Minor page faults taken while a numpy array of ``rows`` integers (far above glibc's
    32 MB ``mmap`` threshold) is made and dropped, on 4 KB pages (numpy's huge pages off for
    it: each would be one fault for 2 MB, the zeroing the same)."""
    import resource

    import numpy as np
    from numpy._core.multiarray import _set_madvise_hugepage  # noqa: PLC2701

    _set_madvise_hugepage(False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    array = np.arange(rows) * 3
    assert array[-1] > 0
    del array
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_worker_keeps_the_memory_numpy_freed_for_the_next_call():
    # numpy's arrays come from glibc's malloc, which maps a large one with a fresh mmap and
    # unmaps it when freed: each call faulted it in again (here 39k faults each time, with
    # glibc's defaults); a worker's heap serves every size and keeps what was freed
    run = Children(isolate=True, workers=1)
    rows = 20_000_000  # 160 MB
    first, second, third = (run(_faults_of_a_big_array, rows) for _ in range(3))
    assert len(set(processes.idle_workers())) == 1
    assert first > 20_000
    assert second < first / 4 and third < first / 4, (first, second, third)


_THREADS: list = []


def _resident_after_a_thread_of_small_columns() -> int:
    """The resident bytes of this process after a new thread (left running) made and dropped
    200 MB of Polars columns of 4 MB each (under jemalloc's 8 MB "oversize" threshold: from
    the thread's own arena)."""
    import threading

    import polars as pl

    made = threading.Event()

    def columns() -> None:
        held = [pl.int_range(0, 500_000, eager=True) * 3 for _ in range(50)]
        assert sum(c.len() for c in held) == 25_000_000
        del held
        made.set()
        threading.Event().wait()  # alive: a thread that ends gives its arena to the next one

    thread = threading.Thread(target=columns, daemon=True)
    thread.start()
    made.wait()
    _THREADS.append(thread)
    return processes.resident_bytes(os.getpid())


def test_a_worker_does_not_grow_by_the_memory_each_of_its_threads_once_held():
    # each thread of a process takes a jemalloc arena of its own (8 on two cores), and with
    # decay off an arena keeps the most it ever held: a worker whose calls ran on other threads
    # (Polars' pool, its I/O and streaming executors) grew by a partition's memory each time
    # (here +200 MB a call, each call's thread another arena); a worker has one arena
    run = Children(isolate=True, workers=1)
    resident = [run(_resident_after_a_thread_of_small_columns) for _ in range(4)]
    assert len(set(processes.idle_workers())) == 1
    assert resident[-1] - resident[0] < 100 * 2**20, resident


def test_a_worker_starts_without_importing_polars_and_numpy_again():
    # forked from a server that imported them (and the build's modules) once: a spawned worker
    # spent 0.4-0.5 CPU s importing them before its first call
    if not processes._forked():  # noqa: SLF001
        pytest.skip("workers are spawned here (not Linux, or Polars cannot be told its threads)")
    run = Children(isolate=True, workers=2)
    spent = "(__import__('time').process_time(), " + _POOL + ")"
    first = run.each(eval, [((spent,), {}), ((spent,), {})])
    expected = max(1, (os.cpu_count() or 1) // 2)
    assert all(cpu < 0.2 for cpu, _ in first), first
    assert [pool for _, pool in first] == [expected, expected]


def _faults_of_a_big_column_made_twice(rows: int) -> tuple[int, int]:
    """:func:`_faults_of_a_big_column` twice, 2.5 s apart (Polars' own decay gives freed
    memory back within ~1.5 s)."""
    first = _faults_of_a_big_column(rows)
    time.sleep(2.5)
    return first, _faults_of_a_big_column(rows)


def test_the_loads_process_keeps_what_it_freed_for_a_few_seconds():
    from effortlens.loading.pipeline import in_child

    # the partitioned load's process (in_child): with Polars' decay its later steps faulted in
    # again what its earlier ones had freed (here 78k faults the second time)
    first, second = in_child(_faults_of_a_big_column_made_twice, 20_000_000)
    assert first > 20_000
    assert second < first / 4, (first, second)


def test_the_callers_environment_is_the_workers_but_its_thread_count_stays(monkeypatch):
    run = Children(isolate=True, workers=2)
    probe = "__import__('os').environ.get('EFFORTLENS_PROBE', '-')"
    threads = "__import__('os').environ.get('POLARS_MAX_THREADS', '-')"
    both = [((f"({probe}, {threads}, {_PID})",), {})] * 2
    before = run.each(eval, both)
    monkeypatch.setenv("EFFORTLENS_PROBE", "set after the workers started")
    monkeypatch.setenv("POLARS_MAX_THREADS", "7")
    after = run.each(eval, both)
    assert {p for *_, p in after} <= {p for *_, p in before}  # workers started before
    expected = str(max(1, (os.cpu_count() or 1) // 2))
    assert [(v, t) for v, t, _ in before] == [("-", expected)] * 2
    assert [(v, t) for v, t, _ in after] == [("set after the workers started", expected)] * 2


def test_a_worker_ends_when_no_call_takes_it(monkeypatch):
    monkeypatch.setattr(processes, "IDLE_SECONDS", 0.4)
    run = Children(isolate=True, workers=1)
    pid = run(eval, _PID)
    assert processes.idle_workers() == [pid]
    deadline = time.monotonic() + 20
    while processes.idle_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes.idle_workers() == []
    # taken off the idle list just before it is killed and reaped (by its fork server, when
    # forked): ended within moments
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_reused_worker_that_fails_is_named_and_not_used_again():
    run = Children(isolate=True, workers=1)
    pid = run(eval, _PID)
    killed = "__import__('os').kill(__import__('os').getpid(), 9)"
    with pytest.raises(BuildFailed, match=r"^view facts: pass 2: .*SIGKILL.*out-of-memory"):
        run.call("view facts: pass 2", eval, (killed,), {})
    assert processes.idle_workers() == []
    # an exception raised in a worker keeps its type and names the step; that worker ends too
    again = Children(isolate=True, workers=1)
    assert again(eval, _PID) != pid
    with pytest.raises(ZeroDivisionError) as failed:
        again.call("enrich, partition 3 of 4", eval, ("1 / 0",), {})
    assert "enrich, partition 3 of 4" in " ".join(failed.value.__notes__)
    assert processes.idle_workers() == []


def _script(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


def test_a_build_killed_outright_leaves_no_busy_worker(tmp_path):
    ready = tmp_path / "ready"
    body = f"""
        import time
        from pathlib import Path
        from effortlens import processes
        from effortlens.partitioned import Children

        import threading

        processes.IDLE_SECONDS = 600
        run = Children(isolate=True, workers=2)
        run.each(time.sleep, [((0,), {{}}), ((0,), {{}})])  # two workers, idle from now
        pids = processes.idle_workers()
        # both taken again, each in a call of a minute: busy when the build is killed (an idle
        # worker also ends when its pipe closes; a busy one only by its parent-death signal)
        busy = threading.Thread(target=run.each, args=(time.sleep, [((60,), {{}}), ((60,), {{}})]))
        busy.start()
        while processes.idle_workers():
            time.sleep(0.05)
        time.sleep(0.5)
        Path({str(ready)!r}).write_text(" ".join(map(str, pids)))
        time.sleep(120)
        """
    build = subprocess.Popen(_script(body))
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = [int(p) for p in ready.read_text().split()]
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    finally:
        build.send_signal(signal.SIGKILL)
        build.wait()
    workers = [psutil.Process(p) for p in pids if psutil.pid_exists(p)]
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers {[p.pid for p in alive]} outlived the killed build"


def test_a_build_that_ends_with_idle_workers_exits_at_once():
    body = """
        from effortlens import processes
        from effortlens.partitioned import Children

        processes.IDLE_SECONDS = 600
        print(Children(isolate=True, workers=1)(max, 2, 3))
        """
    started = time.monotonic()
    done = subprocess.run(_script(body), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "3", done.stderr
    assert time.monotonic() - started < 60  # not the 600 s of the idle worker


def _uses_a_worker_and_returns() -> None:
    """In a child process (the partitioned load's): a call in a worker, left idle."""
    processes.IDLE_SECONDS = 600
    assert Children(isolate=True, workers=1)(max, 2, 3) == 3


def test_a_child_process_that_used_workers_ends_when_its_target_returns():
    import multiprocessing

    # multiprocessing waits for a child's own children as the child ends: idle workers first end
    child = multiprocessing.get_context("spawn").Process(target=_uses_a_worker_and_returns)
    child.start()
    child.join(timeout=90)
    stuck = child.is_alive()
    if stuck:
        child.kill()
        child.join()
    assert not stuck and child.exitcode == 0


def test_a_worker_holding_more_than_keep_bytes_after_a_call_ends_and_the_next_call_starts_anew(
    monkeypatch,
):
    # what a reused worker keeps grows with its calls (100M: 2.4 -> 3.8 GB over six partitions):
    # past KEEP_BYTES it ends once its call is answered
    monkeypatch.setattr(processes, "KEEP_BYTES", 400 * 2**20)
    children = Children(isolate=True, workers=1)
    light = children(eval, _PID)
    assert children(eval, _PID) == light  # under the cap: kept and taken again
    holds = f"setattr(__import__('sys'), '_held', b'x' * {600 * 2**20}) or {_PID}"
    heavy = children(eval, holds)
    assert heavy == light
    assert processes.idle_workers() == []  # ended, not kept
    assert not psutil.pid_exists(heavy) or psutil.Process(heavy).status() == "zombie"
    fresh = children(eval, f"hasattr(__import__('sys'), '_held') or {_PID}")
    assert fresh not in (heavy, True)  # a new process: nothing of the last call's memory
    children.close()


def test_the_spawned_workers_where_no_fork_server_can_be_had(monkeypatch):
    # on Linux every worker is forked from the fork server: the spawn path (not Linux, or a
    # Polars that cannot size its pool after a fork) is run here with the fork choice off
    monkeypatch.setattr(processes, "_forked", lambda: False)
    run = Children(isolate=True, workers=2)
    probe = (
        f"({_PID}, __import__('os').getppid(), {_POOL}, "
        "__import__('os').environ.get('_RJEM_MALLOC_CONF', ''), "
        "'polars' in __import__('sys').modules)"
    )
    slow = f"__import__('time').sleep(1) or {probe}"
    first = run.each(eval, [((slow,), {}), ((slow,), {})])  # both at once: two workers
    expected = max(1, (os.cpu_count() or 1) // 2)
    assert len({pid for pid, *_ in first}) == 2
    for _pid, parent, pool, allocator, _polars in first:
        assert parent == os.getpid()  # started by this process, not by a fork server
        assert pool == expected and allocator.endswith(processes.ALLOCATOR_CONF)
    again = run.each(eval, [((probe,), {}), ((probe,), {})])
    assert {p for p, *_ in again} <= {p for p, *_ in first}  # reused, not started anew
    with pytest.raises(ZeroDivisionError) as failed:
        run.call("enrich, partition 2 of 3", eval, ("1 / 0",), {})
    assert "enrich, partition 2 of 3" in " ".join(failed.value.__notes__)
    alone = Children(isolate=True, workers=1)
    pid, parent, pool, _allocator, _polars = alone(eval, probe)
    assert parent == os.getpid() and pool == (os.cpu_count() or 1)  # every core when alone
    alone.close()
    assert processes.idle_workers() == []
    # the two were ended (their memory back) when the call alone started its own worker
    _gone, alive = psutil.wait_procs(
        [psutil.Process(p) for p, *_ in first if psutil.pid_exists(p)], timeout=10
    )
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def test_a_call_may_ask_for_every_cores_threads_beside_another(tmp_path):
    # a lane's step that may outlive the other lane's process: every core's threads from its
    # start (the system shares the cores until the other ends), not its share of them
    import threading

    done = tmp_path / "done"
    exists = f"__import__('os').path.exists({str(done)!r})"
    waits = f"[__import__('time').sleep(0.05) for _ in iter(lambda: not {exists}, False)]"
    run = Children(isolate=True, workers=2)
    beside = threading.Thread(target=run, args=(eval, waits))
    beside.start()
    deadline = time.monotonic() + 60
    while not run._live and time.monotonic() < deadline:  # noqa: SLF001
        time.sleep(0.05)
    try:
        shared = run.call("a side step", eval, (_POOL,), {})
        every = run.call("a side step", eval, (_POOL,), {}, threads=0)
        two = run.call("a side step", eval, (_POOL,), {}, threads=2)
        assert run._live  # noqa: SLF001 - the other call still ran beside all three
    finally:
        done.touch()
        beside.join()
    assert shared == max(1, (os.cpu_count() or 1) // 2)
    assert every == (os.cpu_count() or 1) and two == 2


def test_a_server_started_to_die_with_its_parent_ends_when_the_parent_is_killed(tmp_path):
    # a test's server runs in a session of its own (stopped by its process group); the test
    # run killed outright (SIGKILL) must not leave it running: it is sent SIGTERM (a Voila
    # server then stops its kernels), which its handler records
    pid_file, told = tmp_path / "pid", tmp_path / "told"
    server = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        f"    open({str(told)!r}, 'w').write(signal.Signals(_[0]).name)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "time.sleep(120)\n"
    )
    body = (
        "import subprocess, sys, time\n"
        "from effortlens.processes import dies_with_this_process\n"
        f"child = subprocess.Popen([sys.executable, '-c', {server!r}],\n"
        "    start_new_session=True, preexec_fn=dies_with_this_process())\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", body])
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the parent never started its child"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    time.sleep(0.5)  # its handler in place
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the child outlived its killed parent"
    assert told.read_text() == "SIGTERM"


def test_a_child_whose_parent_is_already_gone_ends_at_once_whatever_its_handlers():
    # the parent died before the request was made: nothing would ever signal the child, so it
    # ends there (os._exit: a SIGTERM handler it inherited cannot keep it going)
    body = (
        "import signal\n"
        "from effortlens.processes import die_with_parent\n"
        "signal.signal(signal.SIGTERM, lambda *_: None)\n"
        "die_with_parent(1, signal.SIGTERM)  # not this process's parent\n"
        "print('went on')\n"
    )
    done = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "went on" not in done.stdout, done


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not reaped by its new parent, counts as not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
