"""A build that fails, said in words: which step, which partition, why, and what to do.

The partitioned build works in child processes (:class:`effortlens.partitioned.Children`). A
child killed outright (the system's out-of-memory killer sends SIGKILL) leaves no exception
behind, only an exit status: :func:`died` turns it into a :class:`BuildFailed` that names the
step and the partition and, for SIGKILL, says that memory most likely ran out and which settings
lower it. A full disk (``ENOSPC``, from Python or from Polars' writers) is told by
:func:`disk_full`: the folder, the space free and about how much the build needs.

Examples
--------
>>> str(died("enrich, partition 2 of 4", -9)).split(":")[0]
'enrich, partition 2 of 4'
>>> is_disk_full(OSError(28, "No space left on device"))
True
"""

from __future__ import annotations

import errno
import re
import shutil
import signal
from pathlib import Path

#: Settings that bound a partition's memory, named when a child ran out of it.
MEMORY_ADVICE = (
    "set limits.build_workers = 1 (one partition at a time) or a smaller "
    "limits.partition_rows (or limits.memory_budget_mb) in the data folder's settings.toml, "
    "and build again"
)


class BuildFailed(RuntimeError):
    """A build step failed for a reason the user can act on (memory, disk, a killed process);
    the message says the step, the partition and the cause. Nothing of the build is kept; a
    previous build of the folder is left as it was."""


class DiskFull(BuildFailed):
    """The disk holding a build filled up while it was written (``ENOSPC``)."""


def died(what: str, exitcode: int | None) -> BuildFailed:
    """The failure of a child that ended without a result (killed, or exited early).

    Examples
    --------
    >>> print(died("view facts: pass 1, partition 3 of 28", -9))  # doctest: +ELLIPSIS
    view facts: pass 1, partition 3 of 28: its process was killed (SIGKILL), most likely by ...
    >>> print(died("enrich, partition 1 of 2", 3))  # doctest: +ELLIPSIS
    enrich, partition 1 of 2: its process ended (exit status 3) without finishing (an error ...
    """
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            return BuildFailed(
                f"{what}: its process was killed (SIGKILL), most likely by the system's "
                f"out-of-memory killer: the machine ran out of memory. To use less, {MEMORY_ADVICE}"
            )
        return BuildFailed(f"{what}: its process was stopped by {name}")
    if exitcode is None:  # not known (a pool's process ended abruptly)
        return BuildFailed(
            f"{what}: its process was killed or ended abruptly, most often by the system's "
            "out-of-memory killer (an error it printed as it started, if any, is above). If "
            f"the machine ran out of memory: to use less, {MEMORY_ADVICE}"
        )
    return BuildFailed(
        f"{what}: its process ended (exit status {exitcode}) without finishing (an error it "
        "printed as it started, if any, is above)"
    )


def out_of_memory(what: str) -> BuildFailed:
    """The failure of a step that raised ``MemoryError``.

    Examples
    --------
    >>> print(out_of_memory("enrich, partition 1 of 2"))  # doctest: +ELLIPSIS
    enrich, partition 1 of 2: out of memory. To use less, set limits.build_workers = 1 ...
    """
    return BuildFailed(f"{what}: out of memory. To use less, {MEMORY_ADVICE}")


#: Free space below which a failed write on a disk is taken for that disk filling up (what a
#: writer says then is not always ``ENOSPC``: Polars' Parquet writer may fail on the thrift
#: footer it could not write, Python on a short write).
NEARLY_FULL_BYTES = 64 << 20


def is_disk_full(err: BaseException, folder: Path | None = None) -> bool:
    """Whether ``err`` (or what caused it) is a full disk: ``ENOSPC`` from Python, Polars'
    writers' "No space left on device (os error 28)", a short write ("N requested and M
    written"), or, when ``folder`` is given and its disk has less than
    :data:`NEARLY_FULL_BYTES` free, Polars' Parquet writer failing on its footer ("Invalid
    thrift: transport error").

    Examples
    --------
    >>> is_disk_full(ValueError("parquet: IO error: No space left on device (os error 28)"))
    True
    >>> is_disk_full(OSError(2, "No such file or directory"))
    False
    >>> is_disk_full(OSError("3990 requested and 3568 written"))
    True
    >>> is_disk_full(ValueError("parquet: Invalid thrift: transport error"))
    False
    """
    seen = set()
    thrift = False
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(err)
        if "No space left on device" in text or "os error 28" in text:
            return True
        if _SHORT_WRITE.search(text):
            return True
        thrift = thrift or "Invalid thrift: transport error" in text
        err = err.__cause__ or err.__context__
    if thrift and folder is not None:
        try:
            return shutil.disk_usage(_existing(folder)).free < NEARLY_FULL_BYTES
        except OSError:
            return False
    return False


_SHORT_WRITE = re.compile(r"\b\d+ requested and \d+ written\b")


def _existing(folder: Path) -> Path:
    """``folder`` or its nearest existing parent (a build's folders may be gone already)."""
    folder = Path(folder)
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def disk_full(folder: Path, *, needed: int, what: str = "the build") -> DiskFull:
    """The failure of a build whose disk filled up: ``folder`` (where it was written), the
    space free there now (the build's scratch deleted) and ``needed``, about what it takes.

    Examples
    --------
    >>> print(disk_full(Path("/"), needed=3 << 30))  # doctest: +ELLIPSIS
    the disk of / is full: the build needs about 3.0 GB there (... GB free now)...
    """
    try:
        free = shutil.disk_usage(folder).free
        now = f"{_gb(free)} free now"
    except OSError:
        now = "free space unknown"
    return DiskFull(
        f"the disk of {folder} is full: {what} needs about {_gb(needed)} there ({now}). "
        "Nothing of it was kept and any previous build is as it was. Free space on that disk or "
        "choose a cache folder on a larger one (EFFORTLENS_CACHE or --cache-dir), and build again",
    )


def _gb(n: int) -> str:
    return f"{n / 2**30:,.1f} GB"
