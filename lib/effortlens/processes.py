"""Worker processes of the partitioned build, each running one call after another.

A fresh process per call (per partition, per step) pays twice. Its start: Python, Polars, numpy
and effortlens imported again, 0.4-0.5 CPU s. And its memory: every page it touches is new to
it, and the kernel zeroes and maps each one on its first touch. That second cost is the larger:
in the 100M build of session 13, a quarter of the machine's CPU was system time, nearly all of
it anonymous page faults (``clear_page_erms``, ``do_anonymous_page``). Polars also sets its
allocator (jemalloc) to give freed memory back to the system after 0.5 s
(``dirty_decay_ms:500``; allocations above 8 MB at once), so within one process each
partition's columns were faulted in again too.

A worker (:func:`take`) is a process that waits for calls and runs them, its memory kept from
one call to the next: jemalloc's decay is off in it (:data:`ALLOCATOR_CONF`), and so is glibc's
giving back of numpy's large arrays (:data:`HEAP_TUNABLES`), so the pages a call freed are
reused by the next call without a fault (the process keeps its high-water mark while it lives,
as a call in a fresh process would at its peak). On Linux the workers are forked from a server
process that imported Polars, numpy and the build's modules once (:data:`PRELOAD`,
``multiprocessing``'s fork server), not spawned: a worker starts in ~20 ms instead of 0.4-0.5
CPU s of imports. :class:`Worker`'s thread count (Polars' pool, sized once as it starts) is part
of what it is: a call asking for another count gets another worker.

A worker no call takes for :data:`IDLE_SECONDS` ends, and so its memory goes back; so do the
idle workers when a new one has to start (never more processes than calls at once, each holding
its memory), when a build fails (:func:`end_idle`) and when this process exits. A worker dies
with the process that started it (``PR_SET_PDEATHSIG``, on Linux): a spawned one is started by
one long-lived thread of this module, since the signal follows the *thread* that started a
process, not the process; a forked one dies with its fork server, which ends as this process
does (its pipe from this process closes).

Examples
--------
>>> worker = take(threads=None)  # doctest: +SKIP
>>> worker.run(max, (2, 3), {})  # doctest: +SKIP
('ok', 3, '')
>>> give_back(worker)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.util
import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
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
#: ``narenas:1``: one arena for every thread. Polars' threads (its pool, its I/O and streaming
#: executors, the caller's) each take an arena of their own otherwise (8 on two cores), and with
#: decay off each arena keeps the most *it* ever held: a worker grew with every partition (the
#: 10m build's 2.9M-event partitions, one after another in one process: 1.50, 1.89, 1.95, 1.97,
#: 2.16, 2.68 GB; 100M: 2.4 -> 3.8 GB over six) until :data:`KEEP_BYTES` ended it, and a new
#: worker faulted everything in again. With one arena: 1.16, 1.19, 1.19, 1.21, 1.21, 1.23 GB,
#: the same user CPU (its lock is rarely contended: small sizes come from each thread's cache,
#: above 8 MB from the oversize arena, which every thread shares anyway).
ALLOCATOR_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1,narenas:1"
#: glibc malloc's setting in a worker (``GLIBC_TUNABLES``, read as a process starts): numpy's
#: arrays come from glibc, which maps each one above 32 MB (and, with the default dynamic
#: threshold, many smaller) with a fresh ``mmap`` and unmaps it when freed, so every call faulted
#: its arrays in again, numpy asking for huge pages on them (each a 2 MB page zeroed:
#: ``do_huge_pmd_anonymous_page``, 4.5% of a worker's CPU). Never ``mmap`` (``mmap_max=0``: the
#: heap serves every size) and never give the heap's top back (``trim_threshold``): a reused
#: worker's later partitions then fault 2-6k pages instead of 36-170k, system 0.24-0.49 CPU s a
#: partition instead of 0.76-1.35 (the 10m build's partitions, 100M-sized).
HEAP_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
#: Modules the fork server imports once, before any worker is forked from it (each worker has
#: them at once; a name that does not import is skipped). ``__main__``: the main script, which a
#: worker would otherwise run again as it starts.
PRELOAD = (
    "__main__", "numpy", "polars", "effortlens.partitioned", "effortlens.facts",
    "effortlens.touch_build", "effortlens.habits", "effortlens.roe", "effortlens.flow",
    "effortlens.deviance", "effortlens.attribution",
)  # fmt: skip
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


def die_with_parent(parent: int, signal_number: int = signal.SIGKILL, prctl: Any = None) -> None:
    """In a child process: be sent ``signal_number`` (default SIGKILL) when the thread that
    started it ends, its parent killed outright included (``PR_SET_PDEATHSIG``, Linux;
    elsewhere a no-op). ``parent`` is the starting process's id: if it died before the
    request was made, the child ends at once (``os._exit``: no handler can keep it going).
    ``prctl``: the C library's, looked up beforehand (:func:`dies_with_this_process`: in a
    ``preexec_fn`` the child runs no lookup between fork and exec).

    A worker of a build killed by SIGKILL or the memory killer would otherwise go on, holding
    gigabytes, with nobody to read its result (:func:`effortlens.loading.pipeline.in_child`);
    a test's Voilà server started in a session of its own (``start_new_session``, stopped by
    its process group) would go on with its kernels when the test run is killed (one left
    such a server and nine kernels, 1.5 GB).
    """
    if prctl is None:
        prctl = _prctl()
    if prctl is None:
        return
    prctl(1, signal_number)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _prctl() -> Any:
    """The C library's ``prctl`` (Linux), or ``None``."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def dies_with_this_process(signal_number: int = signal.SIGTERM) -> Any:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child is sent ``signal_number``
    (default SIGTERM: a Voilà server then stops its kernels) when the calling thread ends
    (:func:`die_with_parent`)."""
    import functools

    return functools.partial(die_with_parent, os.getpid(), signal_number, _prctl())


def worker_environment(threads: int | None) -> dict[str, str]:
    """The environment variables a worker with ``threads`` threads starts with (beside this
    process's own): its thread counts (fixed, or this process's when ``None``), jemalloc's
    decay off (:data:`ALLOCATOR_CONF`) and glibc's heap kept (:data:`HEAP_TUNABLES`).

    Examples
    --------
    >>> worker_environment(1)["POLARS_MAX_THREADS"]
    '1'
    >>> worker_environment(None)["_RJEM_MALLOC_CONF"].endswith(ALLOCATOR_CONF)
    True
    >>> worker_environment(None)["GLIBC_TUNABLES"].endswith(HEAP_TUNABLES)
    True
    """
    if threads:
        variables = {name: str(threads) for name in THREAD_VARIABLES}
    else:
        variables = {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}
    for name, value in (("_RJEM_MALLOC_CONF", ALLOCATOR_CONF), ("GLIBC_TUNABLES", HEAP_TUNABLES)):
        inherited = os.environ.get(name, "")
        variables[name] = f"{inherited}{',' if name[0] == '_' else ':'}{value}".lstrip(",:")
    return variables


def _forked() -> bool:
    """Whether workers are forked from a fork server (Linux, with Polars able to size its pool
    after the fork) rather than spawned."""
    if not sys.platform.startswith("linux"):
        return False
    try:  # what Polars.Config's setters call: its settings read again from the environment
        from polars._plr import config_reload_env_var  # noqa: F401, PLC2701
    except ImportError:
        return False
    return True


def _server() -> int:
    """The fork server's process id, started if it is not running, with the workers' allocator
    settings (read once, as it imports Polars) and without this process's thread counts."""
    from multiprocessing import forkserver

    variables = worker_environment(None)
    with _STARTING:
        saved = {name: os.environ.get(name) for name in (*variables, *THREAD_VARIABLES)}
        for name in THREAD_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update({k: v for k, v in variables.items() if k not in THREAD_VARIABLES})
        try:
            multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
            forkserver.ensure_running()
        finally:
            _restore(saved)
    return _fork_server()._forkserver_pid  # noqa: SLF001  (its pid: not public)


def _fork_server() -> Any:
    """``multiprocessing``'s fork server of this process (its pid and its client pipe are
    not public)."""
    from multiprocessing import forkserver

    return forkserver._forkserver  # noqa: SLF001


@contextlib.contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """``variables`` set in this process's environment for a process started in the block
    (while no worker starts: they inherit the environment too), as they were after it."""
    with _STARTING:
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        try:
            yield
        finally:
            _restore(saved)


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _start(threads: int | None) -> Worker:
    """A new worker (run by the launcher's thread: the worker's parent-death signal follows
    the thread that started it, and that thread lives as long as this process), forked from
    the fork server where there is one (:func:`_forked`), else spawned."""
    variables = worker_environment(threads)
    own = {name: variables[name] for name in (*THREAD_VARIABLES, "_RJEM_MALLOC_CONF")
           if name in variables}  # fmt: skip
    if _forked():
        parent = _server()
        context = multiprocessing.get_context("forkserver")
    else:
        parent = os.getpid()
        context = multiprocessing.get_context("spawn")
    here, there = context.Pipe(duplex=True)
    process = context.Process(target=_serve, args=(there, parent, own), name="effortlens-worker")
    with _STARTING:  # a spawned worker's pools and allocator are set as it imports them
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        try:
            process.start()
        except BaseException:
            here.close()
            raise
        finally:
            _restore(saved)
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


def _serve(conn: Any, parent: int, own: dict[str, str]) -> None:
    """In a worker: run the calls that come, one after another, each answered with
    ``(status, value, trace)``; end when the pipe closes. ``own``: its thread counts and
    allocator (a forked worker's Polars reads its thread count again, before its pool starts)."""
    import traceback

    server = _fork_server()
    alive = server._forkserver_alive_fd  # noqa: SLF001
    if alive is not None:
        # forked by the server, with a copy of its client's end of the pipe whose closing ends
        # the server: closed here, else the server (and so this worker, its child) would
        # outlive a killed build; a worker that starts workers starts a server of its own
        os.close(alive)
        server.__init__()  # as never started, in this process
    die_with_parent(parent)
    for name in THREAD_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(own)
    if "polars" in sys.modules:  # imported by the fork server, its pool not started yet
        from polars._plr import config_reload_env_var  # noqa: PLC2701

        config_reload_env_var("POLARS_MAX_THREADS")
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
