"""Read a build's files ahead into the page cache, so the first viewer after a build does not
wait on the disk.

A build's files are read by every app kernel: whole when a page opens them (the daily roll-up,
the tables, the habit cells and most files below :data:`SMALL_FILE_BYTES`), a slice when a
filter changes (the mapped ``.npy`` columns of the habit touch codes, the practice codes,
the gap runs, the period presets) and a footer and a few row groups of the event-level
facts. The kernels that come later find them in memory; the first one after a build (or
after the machine dropped them) read them from disk: at 10M activities its first chart took
4.6 s against 0.7-2.0, at 100M a habits change 609 ms wall for 223 ms of CPU.

:func:`warm_build` asks the kernel to read them ahead (``posix_fadvise(WILLNEED)``, in
chunks: one call over a whole file reads only its first few MB), in the order a viewer
meets them (:data:`TIERS`), up to a budget of memory (half of what the machine has
available, by default): a tier that does not fit is read as the same last share of each of
its files, since the day-sorted columns end with the latest days every period preset reads.
The calls return once the reads are queued, about as long as the disk takes to read them
(1.5 GB at 10M: 2-6 s wall under load, 0.35 CPU s; 3 GB at 100M: 14-28 s, 0.7 CPU s); page
cache is memory the system takes back when a process needs it.

A kernel that opens a build (:func:`effortlens.facts.open_build`) reads ahead, in a thread,
the chunks of every file but the event facts that are not in memory (:func:`warm_opened`):
nothing on a build in memory, and on one that has left it (a larger build ran since) the
files its first draw and filter changes read, while it draws.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from effortlens.facts import (
    AGGREGATES_LAYOUT,
    FACTS_LAYOUT,
    MANIFEST_FILE,
    QUARANTINE_FILE,
    REPORT_FILE,
    VERIFIED_FILE,
)

#: Files below this size are read ahead first, whole: most are read by a page's first draw,
#: and together they are small (193 MB of 1,491 MiB at 10M activities).
SMALL_FILE_BYTES = 16 * 2**20

#: Bytes asked of one ``posix_fadvise`` call: one call over a whole file reads ahead only
#: its first few MB (8 MB of a 274 MB file on this machine's kernel).
CHUNK = 8 * 2**20

#: The event-level facts (a row per event or touch): a kernel reads their footers, and row
#: groups of them only where a view needs events.
EVENT_FACTS: tuple[str, ...] = (
    FACTS_LAYOUT["activities"],
    FACTS_LAYOUT["actions"],
    AGGREGATES_LAYOUT["touches"],
    AGGREGATES_LAYOUT["streaks"],
    AGGREGATES_LAYOUT["practice"],
    AGGREGATES_LAYOUT["practice_gaps"],
    QUARANTINE_FILE,
)

#: The order the files are read ahead in, as a viewer meets them.
TIERS: tuple[str, ...] = (
    "every open",  # below SMALL_FILE_BYTES and the event facts' footers
    "first draw",  # the other aggregate Parquet files (the daily roll-up, tables, cells)
    "filter change",  # the mapped .npy columns a period reads a slice of
    "events",  # the event-level facts whole
)


@dataclass(frozen=True)
class Span:
    """Bytes ``offset .. offset + length`` of the build file ``name``, read ahead in ``tier``."""

    name: str
    offset: int
    length: int
    tier: str


@dataclass(frozen=True)
class Warmed:
    """What :func:`warm_build` asked to be read ahead."""

    files: int
    bytes: int
    total: int
    budget: int

    def __str__(self) -> str:
        mib = 2**20
        return (
            f"{self.bytes / mib:,.0f} of {self.total / mib:,.0f} MiB in {self.files} files "
            f"read ahead into memory (budget {self.budget / mib:,.0f} MiB)"
        )


def available_memory() -> int:
    """Bytes of memory the system says it can give without swapping (``MemAvailable``)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0


def _parquet_footer(path: Path, size: int) -> tuple[int, int]:
    """The footer of a Parquet file (its metadata, read by every scan): offset and length."""
    if size < 12:
        return 0, size
    with open(path, "rb") as f:
        f.seek(size - 8)
        tail = f.read(8)
    if tail[4:] != b"PAR1":
        return 0, 0
    length = int.from_bytes(tail[:4], "little") + 8
    return max(size - length, 0), min(length, size)


def _tier(name: str, size: int) -> str:
    if size < SMALL_FILE_BYTES:  # an event facts' part too
        return "every open"
    if name.split("/", 1)[0] in EVENT_FACTS or name in EVENT_FACTS:
        return "events"
    return "filter change" if name.endswith(".npy") else "first draw"


def warm_plan(entry: str | Path, *, budget: int, tiers: tuple[str, ...] = TIERS) -> list[Span]:
    """The spans of the build in ``entry`` to read ahead, in :data:`TIERS` order (those of
    ``tiers``), at most ``budget`` bytes: each tier whole while it fits, then the last share
    of each file of the first tier that does not (the same share of each), and nothing after
    it.

    Examples
    --------
    >>> warm_plan(build, budget=2**30)[0]  # doctest: +SKIP
    Span(name='manifest.json', offset=0, length=20480, tier='every open')
    """
    entry = Path(entry)
    files = json.loads((entry / MANIFEST_FILE).read_text("utf-8"))["files"]
    by_tier: dict[str, list[Span]] = {tier: [] for tier in TIERS}
    for name in (MANIFEST_FILE, VERIFIED_FILE, REPORT_FILE):
        if name not in files and (entry / name).is_file():
            size = (entry / name).stat().st_size
            by_tier["every open"].append(Span(name, 0, size, "every open"))
    for name, about in files.items():
        size = int(about["bytes"])
        tier = _tier(name, size)
        if tier == "events" and name.endswith(".parquet"):
            offset, length = _parquet_footer(entry / name, size)
            if length:
                by_tier["every open"].append(Span(name, offset, length, "every open"))
        by_tier[tier].append(Span(name, 0, size, tier))
    plan: list[Span] = []
    left = budget
    for tier in tiers:
        spans = by_tier[tier]
        need = sum(s.length for s in spans)
        if need <= left:
            plan += spans
            left -= need
            continue
        share = left / need if need else 0.0
        for s in spans:  # the last share of each: the latest days of a day-sorted column
            part = int(s.length * share) // 4096 * 4096
            if part:
                plan.append(Span(s.name, s.offset + s.length - part, part, tier))
        break
    return plan


def _advise(path: Path, spans: Iterable[Span]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        for span in spans:
            end = span.offset + span.length
            for offset in range(span.offset, end, CHUNK):
                os.posix_fadvise(fd, offset, min(CHUNK, end - offset), os.POSIX_FADV_WILLNEED)
    finally:
        os.close(fd)


#: What a kernel reads ahead when it opens a build (:func:`warm_opened`): all but the
#: event-level facts, of which a page reads only footers and a few row groups.
OPEN_TIERS: tuple[str, ...] = ("every open", "first draw", "filter change")


_MINCORE: list = []  # libc's mincore, its argument types set (made once)
#: ``bytes.translate`` table keeping the low bit of each byte (``mincore``'s "in memory").
_LOW_BIT = bytes(b & 1 for b in range(256))


def _mincore():
    if not _MINCORE:
        import ctypes

        mincore = ctypes.CDLL(None, use_errno=True).mincore
        mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
        _MINCORE.append(mincore)
    return _MINCORE[0]


def _resident(fd: int, size: int) -> bytes | None:
    """One byte per page of the file open as ``fd``, its low bit set when the page is in
    memory (``mincore``); ``None`` where it cannot be asked."""
    if not size:
        return b""
    try:
        import ctypes
        import mmap

        mincore = _mincore()
        mapped = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)  # faults in no page
    except (OSError, ValueError, AttributeError, ImportError):
        return None
    try:
        anchor = ctypes.c_char.from_buffer(mapped)
        pages = ctypes.create_string_buffer((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE)
        failed = mincore(ctypes.addressof(anchor), size, pages)
        del anchor
        return None if failed else pages.raw
    finally:
        mapped.close()


def advise_missing(path: Path, spans: Iterable[Span]) -> None:
    """:func:`_advise` of the chunks not already in memory (a kernel opening a build that is
    in memory asks nothing)."""
    import mmap

    fd = os.open(path, os.O_RDONLY)
    try:
        pages = _resident(fd, os.fstat(fd).st_size)
        if pages is not None:  # 1 where in memory (the other bits are reserved)
            pages = pages.translate(_LOW_BIT)
        for span in spans:
            end = span.offset + span.length
            for offset in range(span.offset, end, CHUNK):
                length = min(CHUNK, end - offset)
                first, last = offset // mmap.PAGESIZE, (offset + length - 1) // mmap.PAGESIZE
                if pages is not None and 0 not in pages[first : last + 1]:
                    continue
                os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
    finally:
        os.close(fd)


def _idle_io() -> None:
    """Give the calling thread's disk reads the idle class (Linux ``ioprio_set``: served when
    no other read waits); nothing where it cannot be set."""
    try:
        import ctypes
        import platform

        number = {"x86_64": 251, "aarch64": 30}.get(platform.machine())
        if number is not None:  # IOPRIO_WHO_PROCESS, this thread, IOPRIO_CLASS_IDLE
            ctypes.CDLL(None, use_errno=True).syscall(number, 1, 0, 3 << 13)
    except (OSError, AttributeError, ImportError):
        pass


#: The most one kernel's open reads ahead (:func:`warm_opened`), the tiers in order: at 10M
#: activities all but the event facts (~950 MB); at 100M the first draw's files and a part
#: of the filter changes' (of 7.75 GB), so that each kernel of a served pool meeting a cold
#: 100M build does not fill the page cache with what the others push out again.
OPEN_READ_AHEAD_BYTES = 3 * 2**29


def warm_opened(entry: str | Path) -> threading.Thread | None:
    """Read ahead, in a thread, what of the build in ``entry`` is not in memory: every tier
    but the event facts (:data:`OPEN_TIERS`), the tiers in order, within half the memory
    available and at most :data:`OPEN_READ_AHEAD_BYTES`. Called by
    :func:`effortlens.facts.open_build` on a build it opens, so that a kernel meeting a build
    that has left the page cache (a larger build ran since, the machine's memory went to
    other work) reads the files its first draw and its filter changes use while it draws,
    not one fault at a time. On a build in memory it asks nothing (``mincore``)."""
    if not hasattr(os, "posix_fadvise"):
        return None

    def run() -> None:
        _idle_io()  # the page's own reads and other processes' come first
        budget = min(available_memory() // 2, OPEN_READ_AHEAD_BYTES)
        try:
            _warm(Path(entry), budget=budget, advise=advise_missing, tiers=OPEN_TIERS)
        except Exception:  # a read-ahead never fails an open
            pass

    thread = threading.Thread(target=run, name="effortlens-read-ahead", daemon=True)
    thread.start()
    return thread


def warm_build(
    entry: str | Path,
    *,
    budget: int | None = None,
    advise: Callable[[Path, Iterable[Span]], None] = _advise,
) -> Warmed:
    """Ask the system to read the build in ``entry`` ahead into memory (:func:`warm_plan`),
    at most ``budget`` bytes (default: half of :func:`available_memory`). Returns once the
    reads are queued; a file that cannot be opened is skipped (a kernel then reads it as
    before).

    Examples
    --------
    >>> print(warm_build(open_build("exports/acme").path))  # doctest: +SKIP
    1,436 of 1,491 MiB in 96 files read ahead into memory (budget 8,113 MiB)
    """
    return _warm(Path(entry), budget=budget, advise=advise, tiers=TIERS)


def _warm(
    entry: Path,
    *,
    budget: int | None,
    advise: Callable[[Path, Iterable[Span]], None],
    tiers: tuple[str, ...],
) -> Warmed:
    if budget is None:
        budget = available_memory() // 2
    if not hasattr(os, "posix_fadvise"):  # not on this system: nothing to ask
        return Warmed(0, 0, 0, budget)
    try:
        plan = warm_plan(entry, budget=budget, tiers=tiers)
        files = json.loads((entry / MANIFEST_FILE).read_text("utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Warmed(0, 0, 0, budget)
    by_file: dict[str, list[Span]] = {}
    for span in plan:
        by_file.setdefault(span.name, []).append(span)
    asked = 0
    for name, spans in by_file.items():
        try:
            advise(entry / name, spans)
        except OSError:
            continue
        asked += sum(s.length for s in spans)
    return Warmed(len(by_file), asked, sum(int(f["bytes"]) for f in files.values()), budget)


#: The packages a notebook page's kernel imports (its own, the charts', the widgets' and the
#: kernel's; SciPy for the deviance page: the modules a return-on-effort kernel held after its
#: first chart, by top-level name), whose compiled modules :func:`warm_kernel_imports` reads
#: ahead. Polars and NumPy too: a build maps only the parts of their libraries it runs.
KERNEL_PACKAGES: tuple[str, ...] = (
    "effortlens_widgets",
    "polars",
    "_polars_runtime_32",
    "numpy",
    "numpy.libs",
    "altair",
    "narwhals",
    "jsonschema",
    "jsonschema_specifications",
    "referencing",
    "rpds",
    "jinja2",
    "markupsafe",
    "ipywidgets",
    "anywidget",
    "psygnal",
    "traitlets",
    "comm",
    "IPython",
    "ipykernel",
    "jupyter_client",
    "jupyter_core",
    "zmq",
    "tornado",
    "scipy",
    "scipy.libs",
    # what jsonschema (Altair's validation) and the kernel import beside them
    "attr",
    "attrs",
    "arrow",
    "dateutil",
    "packaging",
    "idna",
    "webcolors",
    "isoduration",
    "uri_template",
    "fqdn",
    "jsonpointer",
    "rfc3986_validator",
    "typing_extensions",
    "six",
)


def kernel_import_files(packages: Iterable[str] = KERNEL_PACKAGES) -> list[Path]:
    """The compiled modules (this interpreter's ``.pyc`` files and the shared libraries) of
    the installed ``packages``, found without importing them; a package that is not
    installed has none."""
    import importlib.util
    import sys

    tag = f".{sys.implementation.cache_tag}."
    files: list[Path] = []
    for name in packages:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        if spec is None:  # a folder of libraries beside the packages (``numpy.libs``)
            folders = [
                str(Path(entry) / name) for entry in sys.path if (Path(entry) / name).is_dir()
            ][:1]
        elif not folders and spec.origin:  # a single module
            files += [Path(f) for f in (spec.origin, spec.cached) if f and Path(f).is_file()]
        for folder in folders:
            for root, _, names in os.walk(folder):
                for f in names:
                    if ".so" in f or (f.endswith(".pyc") and tag in f):
                        files.append(Path(root) / f)
    return files


def warm_kernel_imports(
    *,
    packages: Iterable[str] = KERNEL_PACKAGES,
    advise: Callable[[Path, Iterable[Span]], None] = advise_missing,
) -> int:
    """Ask the system to read ahead what of a notebook kernel's imports
    (:func:`kernel_import_files`) is not in memory; bytes of the files asked about.

    A build writes and reads gigabytes: at 100M activities it pushes the installed packages
    out of the page cache, and the next kernel read its imports from disk one fault at a
    time (at 10m, a kernel whose packages had left memory read 13-145 MB importing its page:
    seconds). ``effortlens build`` calls this at its end; a file in memory is not read.
    """
    if not hasattr(os, "posix_fadvise"):
        return 0
    asked = 0
    for path in kernel_import_files(packages):
        try:
            size = path.stat().st_size
            if size:
                advise(path, [Span(path.name, 0, size, "imports")])
                asked += size
        except OSError:
            continue
    return asked


#: Bytes below which a chart module file is taken as damaged (the module is ~0.9 MB).
CHART_BUNDLE_MIN_BYTES = 10_000

# Written by a child process: vl-convert's JavaScript runtime, once started in a process,
# stays resident there (~100 MB). The file is written whole under another name, then renamed.
_CHART_BUNDLE_SCRIPT = (
    "import os, sys, altair as alt\n"
    "alt.JupyterChart.enable_offline()\n"
    "tmp = f'{sys.argv[1]}.{os.getpid()}.tmp'\n"
    "with open(tmp, 'w', encoding='utf-8') as f:\n"
    "    f.write(alt.JupyterChart._esm)\n"
    f"os.replace(tmp, sys.argv[1]) if os.path.getsize(tmp) > {CHART_BUNDLE_MIN_BYTES} "
    "else os.unlink(tmp)\n"
)


def chart_bundle_path(cache_dir: str | Path | None = None) -> Path:
    """Where the offline chart module of the installed Altair and vl-convert (Vega,
    Vega-Lite and vega-embed in one JavaScript module, which every chart of a notebook
    kernel carries) is kept: ``js/`` below the cache folder (``cache_dir``, default
    :func:`effortlens.cache.default_cache_dir`), named by the two versions.

    Examples
    --------
    >>> chart_bundle_path("/tmp/c").name  # doctest: +SKIP
    'jupyterchart-6.3.0-1.9.0.post1.js'
    """
    from importlib.metadata import version  # not vl_convert itself: its runtime is large

    from effortlens.cache import default_cache_dir

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = f"jupyterchart-{version('altair')}-{version('vl-convert-python')}.js"
    return root / "js" / stem


def has_chart_bundle(path: Path) -> bool:
    """Whether the chart module file ``path`` is there (and not a damaged stub)."""
    try:
        return path.stat().st_size > CHART_BUNDLE_MIN_BYTES
    except OSError:
        return False


def start_chart_bundle(path: Path):
    """Start a child process writing the chart module to ``path`` (:data:`_CHART_BUNDLE_SCRIPT`:
    about three CPU seconds); its :class:`subprocess.Popen`, or None where it cannot start."""
    import subprocess
    import sys

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            [sys.executable, "-c", _CHART_BUNDLE_SCRIPT, str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return None


def prepare_chart_bundle(cache_dir: str | Path | None = None):
    """Start making the chart module of the cache folder when it lacks it
    (:func:`start_chart_bundle`); the child process, or None when there is nothing to do.

    A notebook kernel's first chart on a cache folder without it made it (in a child
    process: 2.6 s of the first chart's 4.3 s at 10M activities, the very first kernel after
    ``effortlens build`` into a new cache folder): ``effortlens build`` starts this beside
    the build, so that kernel finds the module on disk. Served kernels never make it (the
    server serves the module).
    """
    from importlib.metadata import PackageNotFoundError

    try:
        path = chart_bundle_path(cache_dir)
    except PackageNotFoundError:  # no Altair or vl-convert: no notebook charts to prepare
        return None
    return None if has_chart_bundle(path) else start_chart_bundle(path)


def warm_latest_build(data_dir: str | Path, *, cache_dir: str | Path | None = None) -> Warmed:
    """:func:`warm_build` of the latest build of ``data_dir`` (current or not: a server
    about to open it), or nothing when it was never built."""
    from effortlens.cache import default_cache_dir
    from effortlens.facts import latest_build_record

    record = latest_build_record(data_dir, cache_dir=cache_dir)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = root / "builds" / str((record or {}).get("key", ""))
    if record is None or not (entry / MANIFEST_FILE).is_file():
        return Warmed(0, 0, 0, 0)
    return warm_build(entry)
