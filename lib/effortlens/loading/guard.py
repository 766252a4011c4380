"""What one load may cost, and what no input may do: the guards around every read.

A load runs inside a :func:`load_scope`: it holds the settings' :class:`~effortlens.settings.
Limits`, the memory the process had when the load started, the memory reserved so far for
the files read, and notes gathered on the way (line counts, line ends) for the load report.
Readers ask it before they read (:func:`reserve`) and after (:func:`check_memory`), so a load
that would go over its memory budget stops and says which file and why.

:func:`guarded` turns what no input should cause (a Polars panic, which is a
``BaseException``, or any unexpected error) into a :class:`~effortlens.loading.report.LoadBug`
naming the file, and an unreadable file or folder into a :class:`DataError`.

Examples
--------
>>> from effortlens.settings import Limits
>>> with load_scope(Limits(memory_budget_mb=64)):
...     reserve("huge.csv", 10**12, why="its 1 TB of text")
Traceback (most recent call last):
...
effortlens.loading.report.DataError: huge.csv: loading it would take about 953,674 MB ...
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import polars as pl

from effortlens.loading.report import DataError, FileLines, LoadBug
from effortlens.settings import Limits

MB = 1 << 20
#: Memory a text file takes while it is read and validated, per byte of the file (measured:
#: about 7 on the 1m sample, kept a little above).
TEXT_BYTES_FACTOR = 8
#: Memory per value (row x column) of a Parquet file while it is read and validated.
PARQUET_VALUE_BYTES = 50
#: Memory per field (record x column) of a text file while it is read and validated (measured:
#: about 54 for a file of 2,000 mostly empty columns, where the bytes alone say 16).
TEXT_CELL_BYTES = 60


@dataclass
class LoadScope:
    """The state of one load: its limits, memory at the start, memory reserved, notes, and
    the physical lines of each export text file read (by file name, see :func:`count_file`)."""

    limits: Limits
    start_rss: int
    reserved: int = 0
    notes: list[str] = field(default_factory=list)
    lines: dict[str, FileLines] = field(default_factory=dict)

    @property
    def budget(self) -> int:
        """The memory budget in bytes."""
        return self.limits.memory_budget_bytes()

    def note(self, sentence: str) -> None:
        """Add a sentence for the load report, once."""
        if sentence not in self.notes:
            self.notes.append(sentence)


_SCOPE: ContextVar[LoadScope | None] = ContextVar("effortlens_load_scope", default=None)


def rss_bytes() -> int:
    """The memory this process holds now (resident set), in bytes; its peak where unknown.

    Examples
    --------
    >>> rss_bytes() > 0
    True
    """
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


@contextlib.contextmanager
def load_scope(limits: Limits | None = None) -> Iterator[LoadScope]:
    """Run a load inside a scope (a scope already open is reused: one budget per load).

    Parameters
    ----------
    limits
        The settings' limits (default: the defaults).

    Examples
    --------
    >>> with load_scope() as scope:
    ...     scope.limits.max_columns
    2000
    """
    active = _SCOPE.get()
    if active is not None:
        yield active
        return
    scope = LoadScope(limits or Limits(), start_rss=rss_bytes())
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def current_scope() -> LoadScope:
    """The scope of the load under way, or a fresh one with the default limits."""
    return _SCOPE.get() or LoadScope(Limits(), start_rss=rss_bytes())


def current_limits() -> Limits:
    """The limits of the load under way (the defaults outside any load)."""
    return current_scope().limits


def note(sentence: str) -> None:
    """Add a sentence to the notes of the load under way (nothing outside a load)."""
    scope = _SCOPE.get()
    if scope is not None:
        scope.note(sentence)


def count_file(lines: FileLines) -> None:
    """Keep the physical lines of an export file for the report of the load under way
    (nothing outside a load)."""
    scope = _SCOPE.get()
    if scope is not None:
        scope.lines[lines.file] = lines


def _mb(n: int) -> str:
    return f"{max(n // MB, 1):,} MB"


def reserve(file: str, estimate: int, *, why: str) -> None:
    """Reserve ``estimate`` bytes for reading ``file``; refuse when the budget would burst.

    Raises
    ------
    DataError
        Naming the file, the estimate, what it is based on and the setting to raise.
    """
    scope = current_scope()
    used = max(rss_bytes() - scope.start_rss, scope.reserved)
    if used + estimate > scope.budget:
        raise DataError(
            f"{file}: loading it would take about {_mb(estimate)} ({why}), and this load "
            f"already holds {_mb(used)}: over the memory budget of {_mb(scope.budget)} for "
            "one load. Raise limits.memory_budget_mb in the settings if the machine has the "
            "memory, or load less data"
        )
    scope.reserved = used + estimate


def check_memory(file: str, step: str) -> None:
    """Stop the load when the memory it took is over the budget (measured, not estimated).

    Raises
    ------
    DataError
        Naming the file and the step after which the budget was exceeded.
    """
    scope = current_scope()
    used = rss_bytes() - scope.start_rss
    if used > scope.budget:
        raise DataError(
            f"{file}: the load took {_mb(used)} after {step}, over the memory budget of "
            f"{_mb(scope.budget)} for one load (limits.memory_budget_mb in the settings); the "
            "load stopped here"
        )


def unreadable(name: str, err: OSError) -> DataError:
    """A readable message for a file or folder the operating system would not give us.

    Examples
    --------
    >>> str(unreadable("reps.csv", PermissionError(13, "Permission denied")))
    'reps.csv: cannot be read: permission denied; check the access rights of the file'
    """
    if isinstance(err, PermissionError) or err.errno in (errno.EACCES, errno.EPERM):
        why, fix = "permission denied", "check the access rights of the file"
    elif isinstance(err, FileNotFoundError):
        why, fix = "it does not exist (any more)", "check the path"
    elif isinstance(err, IsADirectoryError):
        why, fix = "it is a folder", "give a file"
    else:
        why, fix = (err.strerror or str(err)).lower(), "check the file and the disk"
    return DataError(f"{name}: cannot be read: {why}; {fix}")


@contextlib.contextmanager
def guarded(file: str, *, step: str = "") -> Iterator[None]:
    """Turn what no input should raise into a message naming ``file``.

    For a step that works across several files (links, derivation, assembly), ``file``
    names the files it reads and ``step`` says what it does (``"linking Task.csv to
    Opportunity.csv"``): a bug then names both (see :meth:`LoadBug.of`).

    :class:`DataError` passes as it is, and so does a child process killed outright (the
    out-of-memory killer, most often: a process pool broken by it, or the
    :class:`~effortlens.build_failure.BuildFailed` that names the step that died; not a bug
    in ``file``); ``OSError`` becomes a :class:`DataError` (see
    :func:`unreadable`); a Polars panic (a ``BaseException``) or any other exception becomes
    a :class:`LoadBug`. ``KeyboardInterrupt`` and ``SystemExit`` pass.

    Examples
    --------
    >>> with guarded("reps.csv"):
    ...     raise KeyError("rep_id")
    Traceback (most recent call last):
    ...
    effortlens.loading.report.LoadBug: reps.csv: EffortLens failed on this file (a bug: ...
    """
    from concurrent.futures.process import BrokenProcessPool

    from effortlens.build_failure import BuildFailed

    try:
        yield
    except (DataError, BrokenProcessPool, BuildFailed):  # a child killed: the build tells it
        raise
    except OSError as err:
        raise unreadable(err.filename and os.path.basename(str(err.filename)) or file, err) from err
    except MemoryError as err:
        raise DataError(
            f"{file}: the machine ran out of memory reading it; lower limits.memory_budget_mb "
            "in the settings so that loads stop earlier, or load less data"
        ) from err
    except (Exception, pl.exceptions.PanicException) as err:
        if _is_settings_or_mapping_error(err):
            raise
        raise LoadBug.of(file, err, step=step) from err


def _is_settings_or_mapping_error(err: BaseException) -> bool:
    """SettingsError and MappingError already carry a message written for the user."""
    from effortlens.settings import SettingsError

    return isinstance(err, SettingsError) or type(err).__name__ == "MappingError"
