"""Worker processes of the partitioned build, each running one call after another.

A fresh process per call (per partition, per step) pays twice. Its start: Python, Polars, numpy
and effortlens imported again, 0.4-0.5 CPU s. And its memory: every page it touches is new to
it, and the kernel zeroes and maps each one on its first touch. That second cost is the larger:
in the 100M build of session 13, a quarter of the machine's CPU was system time, nearly all of
it anonymous page faults (``clear_page_erms``, ``do_anonymous_page``). Polars also sets its
allocator (jemalloc) to give freed memory back to the system after 0.5 s
(``dirty_decay_ms:500``; allocations above 8 MB at once), so within one process each
partition's columns were faulted in again too.

A worker (:func:`take`) is a spawned process that waits for calls and runs them, its memory
kept from one call to the next: jemalloc's decay is off in it (:data:`ALLOCATOR_CONF`), so the
pages a call freed are reused by the next call without a fault (the process keeps its high-water
mark while it lives, as a call in a fresh process would at its peak). :class:`Worker`'s thread
count (Polars' and BLAS' pools, sized once when the process starts) is part of what it is: a
call asking for another count gets another worker.

A worker no call takes for :data:`IDLE_SECONDS` ends, and so its memory goes back; so do the
idle workers when a new one has to start (never more processes than calls at once, each holding
its memory), when a build fails (:func:`end_idle`) and when this process exits. A worker dies
with the process that started it (``PR_SET_PDEATHSIG``, on Linux): the workers are started by
one long-lived thread of this module, since the signal follows the *thread* that started a
process, not the process.

Examples
--------
>>> worker = take(threads=None)  # doctest: +SKIP
>>> worker.run(max, (2, 3), {})  # doctest: +SKIP
('ok', 3, '')
>>> give_back(worker)  # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
import pickle
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

#: Environment variables that size a process's thread pools: Polars' (read when its pool
#: starts) and numpy's BLAS (read when numpy is imported).
THREAD_VARIABLES = (
    "POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
)  # fmt: skip
#: jemalloc's setting in a worker, after Polars' own (``dirty_decay_ms:500,muzzy_decay_ms:1000``,
#: which Polars puts in ``_RJEM_MALLOC_CONF`` before it loads; the last value of an option wins):
#: freed memory is kept for the next call instead of being given back and faulted in again.
#: Measured by the lead on 3 partitions of the 100M build in one process (3.2M rows each, one
#: thread): the 2nd and 3rd cost system 0.05-0.25 CPU s and 7k-50k page faults instead of
#: 1.4-2.0 s and 550k-700k, the peak +260 MB (2.59 vs 2.33 GB). Above 8 MB at once jemalloc
#: otherwise purges at once (its "oversize" arena): with decay off, not that either.
ALLOCATOR_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
#: Seconds a worker waits for another call before it ends (and its memory goes back).
IDLE_SECONDS = 2.0
#: A worker holding more than this after a call ends instead of waiting for the next one. What
#: it keeps grows with its calls (100M: a partition's enrichment and pass 1 worker held 2.4 GB
#: after its first partition, 3.8 GB after its sixth, and two of them with the build's parent
#: passed 8 GB): one call's peak in a fresh process is ~1.9 GB there, so a worker is reused
#: while it holds no more than about that and one call's growth.
KEEP_BYTES = 5 * 2**29  # 2.5 GiB


@dataclass(eq=False)
class Worker:
    """A worker process: ``process`` (a :class:`multiprocessing.Process`), ``conn`` (this
    end of its pipe), ``threads`` (its pools' thread count; ``None``: as many as the cores or
    as the environment says)."""

    process: Any
    conn: Any
    threads: int | None
    idle_since: float = field(default=0.0)
    calls: int = 0

    def run(self, function: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[str, Any, str]:
        """``function(*args, **kwargs)`` in the worker: ``(status, value, trace)``, status
        ``"ok"`` (value: the result), ``"raised"`` (value: the exception, trace: its
        traceback's text) or ``"died"`` (the worker ended without an answer: killed or
        exited; :meth:`end` it to know its exit status)."""
        request = (function, args, kwargs, dict(os.environ), os.getcwd())
        try:
            self.conn.send(request)
        except (OSError, ValueError):  # already killed (a failure elsewhere stopped it)
            return "died", None, ""
        except Exception as err:  # a call that does not pickle: said as raised
            return "raised", RuntimeError(f"its call: {err!r}"), ""
        self.calls += 1
        try:
            return self.conn.recv()
        except (EOFError, OSError):  # ended without a word: killed, or exited
            return "died", None, ""
        except Exception as err:  # an answer that does not unpickle here
            return "raised", RuntimeError(f"its answer: {err!r}"), ""

    def kill(self) -> None:
        """Kill the worker now (a call it runs is lost); :meth:`end` reaps it."""
        self.process.kill()

    def end(self) -> None:
        """End the worker (killed if it still runs) and wait for it: its memory goes back."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


_LOCK = threading.Lock()
_IDLE: list[Worker] = []
#: Held while a worker is started with its own thread counts in the environment it inherits.
_STARTING = threading.Lock()


def take(threads: int | None) -> Worker:
    """A worker whose pools have ``threads`` threads (``None``: as they choose): an idle one
    if any, else a new one, the other idle workers ended first (their memory goes back before
    a new process takes its own)."""
    with _LOCK:
        for worker in reversed(_IDLE):
            if worker.threads == threads:
                _IDLE.remove(worker)
                if worker.process.is_alive():
                    return worker
                _IDLE.append(worker)  # ended (killed from outside): reaped below
                break
        others = list(_IDLE)
        _IDLE.clear()
    for worker in others:
        worker.end()
    return _LAUNCHER.call(_start, threads)


def give_back(worker: Worker) -> None:
    """Keep ``worker`` for the next call that wants its thread count (it ends if none comes
    within :data:`IDLE_SECONDS`), or end it now if it holds more than :data:`KEEP_BYTES`."""
    if resident_bytes(worker.process.pid) > KEEP_BYTES:
        worker.end()
        return
    worker.idle_since = time.monotonic()
    with _LOCK:
        _IDLE.append(worker)
    _LAUNCHER.wake()


def resident_bytes(pid: int) -> int:
    """The resident set of process ``pid`` in bytes (0 where ``/proc`` does not say)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def end_idle() -> int:
    """End every idle worker (their memory goes back); how many there were."""
    with _LOCK:
        idle = list(_IDLE)
        _IDLE.clear()
    for worker in idle:
        worker.end()
    return len(idle)


def idle_workers() -> list[int]:
    """The process ids of the idle workers (for tests and diagnostics)."""
    with _LOCK:
        return [w.process.pid for w in _IDLE]


def _end_stale() -> None:
    now = time.monotonic()
    with _LOCK:
        stale = [w for w in _IDLE if now - w.idle_since >= IDLE_SECONDS]
        for worker in stale:
            _IDLE.remove(worker)
    for worker in stale:
        worker.end()


def worker_environment(threads: int | None) -> dict[str, str]:
    """The environment variables a worker with ``threads`` threads starts with (beside this
    process's own): its thread counts when fixed, and jemalloc's decay off
    (:data:`ALLOCATOR_CONF`).

    Examples
    --------
    >>> worker_environment(1)["POLARS_MAX_THREADS"]
    '1'
    >>> worker_environment(None)["_RJEM_MALLOC_CONF"].endswith(ALLOCATOR_CONF)
    True
    """
    variables = {name: str(threads) for name in THREAD_VARIABLES} if threads else {}
    inherited = os.environ.get("_RJEM_MALLOC_CONF", "")
    variables["_RJEM_MALLOC_CONF"] = f"{inherited},{ALLOCATOR_CONF}".lstrip(",")
    return variables


def _start(threads: int | None) -> Worker:
    """A new worker (run by the launcher's thread: the worker's parent-death signal follows
    the thread that started it, and that thread lives as long as this process)."""
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe(duplex=True)
    process = context.Process(target=_serve, args=(there, os.getpid()), name="effortlens-worker")
    variables = worker_environment(threads)
    with _STARTING:  # the worker's pools and allocator are set as it imports Polars and numpy
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        try:
            process.start()
        except BaseException:
            here.close()
            raise
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            there.close()
    return Worker(process, here, threads)


class _Launcher:
    """A thread of this module's own that starts the workers and ends the idle ones."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, function: Any, *args: Any) -> Any:
        """``function(*args)`` run in the launcher's thread, its result."""
        done: Future = Future()
        self._requests.put((function, args, done))
        self._ensure()
        return done.result()

    def wake(self) -> None:
        """Make sure the thread runs (it ends idle workers as they time out)."""
        self._ensure()

    def _ensure(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="effortlens-workers", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                function, args, done = self._requests.get(timeout=IDLE_SECONDS / 4)
            except queue.Empty:
                _end_stale()
                continue
            try:
                done.set_result(function(*args))
            except BaseException as err:
                done.set_exception(err)
            _end_stale()


_LAUNCHER = _Launcher()
# the idle workers end as this process exits, before multiprocessing's exit handler waits for
# every child process still running (in the main process at exit, in a child process as its
# target returns: a process of the load that used workers)
multiprocessing.util.Finalize(None, end_idle, exitpriority=100)


def _serve(conn: Any, parent: int) -> None:
    """In a worker: run the calls that come, one after another, each answered with
    ``(status, value, trace)``; end when the pipe closes."""
    import traceback

    from effortlens.loading.pipeline import _die_with_parent

    _die_with_parent(parent)
    own = {name: os.environ[name] for name in (*THREAD_VARIABLES, "_RJEM_MALLOC_CONF")
           if name in os.environ}  # fmt: skip
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            function, args, kwargs, environment, folder = pickle.loads(message)
            del message
            # the caller's environment and folder now (a fresh process would have had them),
            # but this worker's thread counts and allocator, fixed when it started
            os.environ.clear()
            os.environ.update(environment)
            for name in (*THREAD_VARIABLES, "_RJEM_MALLOC_CONF"):
                os.environ.pop(name, None)
            os.environ.update(own)
            os.chdir(folder)
            answer = ("ok", function(*args, **kwargs), "")
        except BaseException as err:  # sent back as raised: the caller raises it
            answer = ("raised", err, traceback.format_exc())
        function = args = kwargs = environment = None
        try:
            conn.send(answer)
        except Exception as err:  # an exception or result that does not pickle: in words
            conn.send(("raised", RuntimeError(f"{answer[1]!r} ({err})"), answer[2]))
        answer = None
