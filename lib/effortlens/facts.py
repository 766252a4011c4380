"""Built facts: validate and enrich a data folder once, then read the Parquet facts cheaply.

``effortlens build DATA`` (:func:`build`) loads the folder (any source :func:`load_any`
reads), enriches it (:func:`effortlens.enrich.enrich_tables`) and writes one *build*: the
facts as Parquet in :data:`FACTS_LAYOUT`, the load report and quarantine beside them, and a
``manifest.json`` with a checksum of every file. :func:`open_build` returns the current build
of a folder, building it when there is none and rebuilding a stale or damaged one (saying so);
a warm start reads no raw row: the canonical tables come back from the facts.

The facts layout (the one place it is defined; ``effortlens build --engine spark`` writes the
same one)
------------------------------------------------------------------------------------------------
``<cache dir>/builds/<key>/``:

- ``activities.parquet``, ``actions.parquet``: every canonical column plus the enrichment's
  (:data:`effortlens.enrich.ACTIVITIES_SCHEMA`, :data:`~effortlens.enrich.ACTIONS_SCHEMA`), rows
  in the loaded order, in row groups of :data:`ROW_GROUP` rows with min/max statistics;
- ``daily.parquet``: the daily roll-up (:data:`~effortlens.enrich.DAILY_SCHEMA`), sorted by
  rep, day, activity type; ``reps.parquet``: reps with ``peer_group``;
- the precomputed view facts (:data:`AGGREGATES_LAYOUT`), computed once from the facts above
  (after either engine, by Polars reading the written facts): ``touches.parquet`` and
  ``streaks.parquet``, what the habit and silent-streak views would otherwise sort every touch
  for (:func:`effortlens.habits.touch_facts`, :func:`effortlens.roe.streak_facts`), and
  ``streaks_by_rep.parquet``, the streaks of 4+ touches again by team and rep with their row
  in ``streaks.parquet`` (:func:`effortlens.roe.rep_ordered_streaks`: a rep's lie together);
  ``habit_cells/`` (:func:`effortlens.habits.touch_cells` of the touches: per rep and
  activity type, what the habits page sums when it has no period); ``practice.parquet``
  (:func:`effortlens.deviance.practice_facts`: each touch with the rep's previous touch on
  its contact, what "what differs" sorts every touch for, and ``practice_cells/``, its sums
  per rep, what a page without a period counts; ``practice_codes/``, the same touches as
  day-sorted integer columns, what a page with a period counts by numpy); ``verifiers.parquet``
  (:func:`effortlens.flow.verifier_facts`: the only buyer actions the journey reads).
  Optional: a build without them (a partitioned one above ``limits.partition_above_rows``)
  is read as before and those views scan the events;
- ``tables/<name>.parquet``: the other canonical tables (opportunities, stage history,
  interventions, participants);
- ``quarantine.parquet`` and ``report.json``: the load report;
- ``manifest.json``: format, key, inputs, settings and code versions, and per file its size,
  rows and SHA-256.

A fact may also be a folder of part files (as Spark writes it): it is read as one table, parts
in name order, and each part has its own checksum. Strings are stored dictionary-encoded
(Parquet's dictionary pages: small on disk) and read back as ``String`` so that they join with
every other table; the kernel holds the small daily roll-up and scans events lazily. Event
files are not hive-partitioned: a view filters by rep, team or period, never by one partition
key, and the row groups' statistics already skip what a period excludes; partitions by month
would also break the loaded row order the tie rule of attribution is defined on.

The cache key
-------------
``sha256(format, inputs, settings, code)``:

- **inputs**: for every file of the data folder (hidden files skipped) and the mapping file: its
  name, size, ``mtime_ns`` and a *sampled* BLAKE2 hash of its first and last 64 KiB and 16
  blocks of 4 KiB spread evenly between. Size and mtime catch nearly every change; the sample
  catches an edit that kept both (a file copied over with ``cp -p``, a restored mtime) in a
  few milliseconds, where a full hash of a 10M-row export takes seconds on every start. An
  edit inside an unsampled block that keeps size and mtime goes unseen: ``effortlens build
  --force`` rebuilds.
- **settings**: :meth:`Settings.fingerprint`.
- **code**: the Polars version and the source of the modules that load and enrich.

Verifying a build
-----------------
Every file's SHA-256 is in the manifest. Opening a build checks each file's size and
``(inode, size, mtime_ns, ctime_ns)`` against the stamp recorded (``verified.json``) when it
was last fully hashed; a file whose stamp differs is hashed again. Any write through the file
system changes ``ctime``, which no user can set back, and a file put in its place has another
inode. One gap is the file system's clock: it ticks every few milliseconds, so a write in the
same tick as the file's last one could keep its ``ctime``. A stamp is therefore trusted only
when the file's ``ctime`` is older than the record (its ``mtime``); a file written in the
record's tick is hashed at the next open, which records it anew. This holds for a file of any
size: until session 13 files under 16 MiB were hashed at every open as well (193 MB read and
hashed by every kernel at 10M activities), which added nothing a stamp misses but damage
below the file system (a failing disk), and that only for the small files. A damaged, foreign
or tampered entry (byte flips, a valid Parquet file of another table, same-schema values
changed) fails its checksum, is reported once (:class:`BuildWarning`), deleted and rebuilt.
The cache cannot defend against someone who rewrites the manifest as well: it detects
damage, not an adversary with write access to the cache.

Examples
--------
>>> from effortlens.settings import load_settings  # doctest: +SKIP
>>> built = open_build("exports/acme", settings=load_settings())  # doctest: +SKIP
>>> built.enriched.daily.columns[:4]  # doctest: +SKIP
['rep_id', 'day', 'week', 'activity_type']
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import datetime as dt
import errno
import functools
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from stat import S_ISREG
from typing import Any

import polars as pl

from effortlens.cache import default_cache_dir, scratch_dir
from effortlens.enrich import (
    ACTIONS_SCHEMA,
    ACTIVITIES_SCHEMA,
    DAILY_SCHEMA,
    Enriched,
    Once,
)
from effortlens.settings import Settings

#: Version of the layout below; part of the key.
FORMAT = "effortlens-facts/1"

#: Fact name -> path under a build (a ``.parquet`` file, or a folder of part files).
FACTS_LAYOUT: dict[str, str] = {
    "activities": "activities.parquet",
    "actions": "actions.parquet",
    "daily": "daily.parquet",
    "reps": "reps.parquet",
}
#: Precomputed view facts -> path under a build (:attr:`effortlens.enrich.Enriched.aggregates`).
AGGREGATES_LAYOUT: dict[str, str] = {
    "touches": "touches.parquet",
    "streaks": "streaks.parquet",
    "streaks_by_rep": "streaks_by_rep.parquet",
    "practice": "practice.parquet",
    "practice_shares": "practice_cells/shares.parquet",
    "practice_sequences": "practice_cells/sequences.parquet",
    "practice_gaps": "practice_cells/gaps.parquet",
    "practice_gap_reps": "practice_cells/gap_reps.parquet",
    "verifiers": "verifiers.parquet",
    "habit_timing": "habit_cells/timing.parquet",
    "habit_cadence": "habit_cells/cadence.parquet",
    "habit_sequence_2": "habit_cells/sequence_2.parquet",
    "habit_sequence_3": "habit_cells/sequence_3.parquet",
}
#: The habit touch codes (:func:`effortlens.habits.write_touch_codes`) under a build: a
#: folder of ``.npy`` columns and key tables, mapped by a kernel
#: (:func:`effortlens.habits.touch_codes_of`).
HABIT_TOUCHES = "habit_touches"
#: The practice codes (:func:`effortlens.touch_build.write_practice_codes`) under a build:
#: the practice facts as day-sorted ``.npy`` integer columns and key tables, mapped by a
#: kernel to count a period's touches (:func:`effortlens.deviance.differs.practice_codes_of`).
PRACTICE_CODES = "practice_codes"
#: The follow-ups' seconds by rep (:func:`effortlens.deviance.differs.write_gap_runs`) under a
#: build: ``.npy`` files mapped by a kernel for the median days between touches of a view
#: without a period (:func:`effortlens.deviance.differs.practice_gap_runs_of`).
PRACTICE_GAP_RUNS = "practice_gap_runs"
#: The canonical tables other than activities, buyer actions and reps, under ``tables/``.
TABLE_FILES: dict[str, str] = {
    name: f"tables/{name}.parquet"
    for name in ("interventions", "opportunities", "stage_history", "intervention_participants")
}
QUARANTINE_FILE = "quarantine.parquet"
#: A build's quarantine up to this many rows is read whole by a kernel; a larger one (the 100M
#: sample sets aside 6.6M rows, 3.5 GB held with their raw text) only its first
#: :data:`QUARANTINE_ROWS_PER_REASON` rows of each reason, in file order: the load report
#: counts every row and lists a few, and the whole stays in the build's file.
QUARANTINE_HELD_ROWS = 20_000
QUARANTINE_ROWS_PER_REASON = 200
REPORT_FILE = "report.json"
MANIFEST_FILE = "manifest.json"
#: Stamps of the files as they were when last fully hashed (see "Verifying a build").
VERIFIED_FILE = "verified.json"
#: Schemas of the event facts and the roll-up.
FACT_SCHEMAS: dict[str, pl.Schema] = {
    "activities": ACTIVITIES_SCHEMA,
    "actions": ACTIONS_SCHEMA,
    "daily": DAILY_SCHEMA,
}
#: Text columns of ``daily`` (and the same columns of ``reps``) a kernel holds as
#: ``Categorical``: a few distinct values over millions of rows. The Polars build writes them
#: so (read straight into categories: the roll-up of 10M activities takes ~290 MB of RSS
#: instead of ~560 MB as strings); a build written as strings (Spark) is cast as it streams in.
#: A kernel holds each with codes as narrow as its values allow (:func:`held_categorical`).
#: Tables made from the reps carry the same type, so that they join the roll-up's sums;
#: ``rep_id`` stays ``String`` (every event and deal table joins on it).
KERNEL_CATEGORICAL: tuple[str, ...] = ("activity_type", "team", "segment", "role", "peer_group")
#: Code widths of a held categorical column, narrowest first, each with the most distinct values
#: a build may have to use it: the rest is headroom for labels a view adds (``fill_null``).
_CODE_WIDTHS = ((pl.UInt8, 127), (pl.UInt16, 32_767))
#: Rows per Parquet row group of the event facts.
ROW_GROUP = 262_144

#: Modules read whole into the key (:func:`code_version`): loading, validation, enrichment and
#: this module run only to build (or open) facts.
_CODE = (
    "loading",
    "adapters",
    "schema.py",
    "settings.py",
    "default_settings.toml",
    "enrich.py",
    "attribution.py",
    "facts.py",
)
_SAMPLE_EDGE = 64 * 1024
_SAMPLE_BLOCK = 4096
_SAMPLE_BLOCKS = 16


class BuildWarning(UserWarning):
    """A build was stale or damaged and is being rebuilt (shown once per event)."""


class DamagedBuild(Exception):
    """A build entry failed verification (the message says which file and how)."""


# --- the key ------------------------------------------------------------------------------------


def sampled_hash(path: Path, size: int) -> str:
    """BLAKE2 of the first and last 64 KiB of ``path`` and 16 evenly spread 4 KiB blocks.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.csv"
    >>> _ = p.write_text("x\\n1\\n")
    >>> len(sampled_hash(p, p.stat().st_size))
    32
    """
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        if size <= 2 * _SAMPLE_EDGE + _SAMPLE_BLOCKS * _SAMPLE_BLOCK:
            digest.update(f.read())
            return digest.hexdigest()
        digest.update(f.read(_SAMPLE_EDGE))
        step = (size - 2 * _SAMPLE_EDGE) // (_SAMPLE_BLOCKS + 1)
        for i in range(1, _SAMPLE_BLOCKS + 1):
            f.seek(_SAMPLE_EDGE + i * step)
            digest.update(f.read(_SAMPLE_BLOCK))
        f.seek(size - _SAMPLE_EDGE)
        digest.update(f.read(_SAMPLE_EDGE))
    return digest.hexdigest()


def input_files(folder: Path, *, mapping: Path | None = None) -> list[Path]:
    """The files a build of ``folder`` depends on: every non-hidden file in it, and ``mapping``."""
    folder = Path(folder)
    files = (
        sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if folder.is_dir()
        else [folder]
    )
    if mapping is not None and Path(mapping).resolve() not in {p.resolve() for p in files}:
        files.append(Path(mapping))
    return files


def input_fingerprint(folder: Path, *, mapping: Path | None = None) -> list[dict[str, Any]]:
    """One record per input file: name, size, ``mtime_ns`` and :func:`sampled_hash`.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "reps.csv").write_text("rep_id\\nr1\\n")
    >>> [r["name"] for r in input_fingerprint(folder)]
    ['reps.csv']
    """
    records = []
    for path in input_files(folder, mapping=mapping):
        stat = path.stat()
        records.append(
            {
                "name": path.name if path.parent == Path(folder) else str(path.resolve()),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "sample": sampled_hash(path, stat.st_size),
            }
        )
    return records


@functools.cache
def code_version() -> str:
    """A hash of the Polars version and of the code that runs when a build is written.

    Computed once per process: it describes the code this process runs, even if the files
    change while it runs. See :func:`code_digest`. Finding what a build reaches parses the
    package (about a CPU second), so the result is remembered in the cache folder under a
    hash of every source file of the package (a few milliseconds to read): a process whose
    sources are those of an earlier one reads it back instead.
    """
    package = Path(str(resources.files("effortlens")))
    sources = hashlib.sha256(f"polars {pl.__version__}\n".encode())
    for path in sorted([*package.rglob("*.py"), *package.glob("*.toml")]):
        sources.update(path.relative_to(package).as_posix().encode() + b"\0")
        sources.update(path.read_bytes())
    seen = sources.hexdigest()
    memo = default_cache_dir() / "code-versions.json"
    try:
        known = json.loads(memo.read_text("utf-8"))
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(seen), str):
        return known[seen]
    digest = code_digest(package)
    try:  # the last few versions (several checkouts may share a cache)
        recent = dict(list(known.items())[-15:]) if isinstance(known, dict) else {}
        memo.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(memo, json.dumps({**recent, seen: digest}))
    except OSError:
        pass
    return digest


def code_digest(package: Path) -> str:
    """The build-time code of the ``effortlens`` package in folder ``package``, hashed.

    - The modules of :data:`_CODE` are read whole (loading, validation, enrichment, this
      module).
    - Of every other module, only what the build can reach: each function, class or
      module-level name that the code of :data:`_CODE` refers to (by name, an attribute of an
      imported module or an import inside a function), then what those refer to, and so on.
      Its source text goes into the hash, found statically (:mod:`ast`, nothing imported).

    Why a reach and not build-only modules: the habit, streak, verifier and practice facts
    are made by functions that share their helpers with the views. For example,
    :func:`effortlens.habits.touch_facts` uses the cadence bins and sequences that the event
    path uses too. Moving them into build modules would split each metric's definitions
    across two files. It would also leave the rule "a build module imports no view module" to
    be kept by hand. Hashing a hand-kept list of functions would miss a helper someone adds
    to one of them. The reach follows the calls, so a view-only change (a chart, a page's
    table, :func:`effortlens.habits.touch_habits`) keeps every build current. A change to
    anything a build runs, however deep, rebuilds. What it cannot see is code reached only
    through a string (``getattr`` by name) or run at a module's import; the build reaches
    none today.

    Examples
    --------
    >>> len(code_digest(Path(str(resources.files("effortlens")))))
    16
    """
    digest = hashlib.sha256(f"polars {pl.__version__}\n".encode())
    whole = set()
    for name in _CODE:
        node = package / name
        paths = sorted(node.rglob("*.py")) if node.is_dir() else [node]
        for path in paths:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
            whole.add(_module_name(package, path))
    with _no_cycle_collection():  # millions of syntax nodes, none in a cycle that outlives it
        reached = _reached(package, whole)
    for name, source in reached:
        digest.update(f"\n{name}\n".encode())
        digest.update(source.encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The garbage collector's cycle passes off in the block (as they were after it): each
    pass walks every object held, and parsing the package makes and holds so many that the
    passes took half of :func:`code_digest`'s CPU (0.95 -> 0.46 s)."""
    import gc

    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _module_name(package: Path, path: Path) -> str:
    """``habits`` for ``habits.py``, ``deviance`` for ``deviance/__init__.py``."""
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class _Module:
    """One module's top-level names (definition nodes) and imports, parsed once."""

    def __init__(self, package: Path, name: str) -> None:
        base = package.joinpath(*name.split(".")) if name else package
        path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        self.name = name
        self.is_package = base.is_dir()
        self.source = path.read_text("utf-8")
        self.lines = self.source.splitlines(keepends=True)
        self.tree = tree = ast.parse(self.source)
        self.defs: dict[str, ast.AST] = {}
        self.imports: dict[str, tuple[str, str | None]] = {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.defs[node.name] = node
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for leaf in ast.walk(target):
                        if isinstance(leaf, ast.Name):
                            self.defs.setdefault(leaf.id, node)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                self.imports.update(_imported(node, name, is_package=base.is_dir()))

    def text(self, node: ast.AST) -> str:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        return "".join(self.lines[first - 1 : node.end_lineno])


def _imported(node: ast.Import | ast.ImportFrom, module: str, *, is_package: bool):
    """``(local name, (effortlens module, name or None for the module))`` per import."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.startswith("effortlens.") and alias.asname:
                yield alias.asname, (alias.name.removeprefix("effortlens."), None)
        return
    if node.level:  # relative: from the module's package
        parts = module.split(".") if module else []
        parts = parts if is_package else parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
        origin = ".".join([*parts, *([node.module] if node.module else [])])
    elif node.module == "effortlens" or (node.module or "").startswith("effortlens."):
        origin = node.module.removeprefix("effortlens").removeprefix(".")
    else:
        return
    for alias in node.names:
        yield alias.asname or alias.name, (origin, alias.name)


def _reached(package: Path, whole: set[str]) -> list[tuple[str, str]]:
    """``(module.name, source)`` of every top-level definition outside the ``whole`` modules
    that their code reaches, sorted."""
    modules: dict[str, _Module | None] = {}

    def module(name: str) -> _Module | None:
        if name not in modules:
            base = package.joinpath(*name.split(".")) if name else package
            found = (base / "__init__.py").is_file() or base.with_suffix(".py").is_file()
            modules[name] = _Module(package, name) if found else None
        return modules[name]

    def references(mod: _Module, node: ast.AST):
        """The (module, name) pairs that ``node`` of ``mod`` refers to."""
        for leaf in ast.walk(node):
            if isinstance(leaf, ast.Name):
                yield from _resolve(mod, leaf.id)
            elif isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name):
                target = mod.imports.get(leaf.value.id)
                if target is not None:
                    held = target[0] if target[1] is None else f"{target[0]}.{target[1]}"
                    if target[1] is None or module(held.strip(".")) is not None:
                        yield held.strip("."), leaf.attr
            elif isinstance(leaf, ast.ImportFrom | ast.Import) and leaf is not node:
                for _, target in _imported(leaf, mod.name, is_package=mod.is_package):
                    yield target

    def _resolve(mod: _Module, name: str):
        if name in mod.defs:
            yield mod.name, name
        elif name in mod.imports:
            yield mod.imports[name]

    todo: list[tuple[str, str | None]] = []
    for name in sorted(whole):
        mod = module(name)
        if mod is not None:  # every statement of it, at any depth
            todo.extend(references(mod, mod.tree))
    seen: set[tuple[str, str | None]] = set()
    pieces: dict[str, str] = {}
    while todo:
        origin, name = todo.pop()
        if (origin, name) in seen:
            continue
        seen.add((origin, name))
        sub = f"{origin}.{name}".strip(".") if name is not None else None
        if name is None or (sub is not None and module(sub) is not None):
            target = origin if name is None else sub
            if target not in whole and module(target) is not None:  # a module itself: whole
                pieces[target] = module(target).source
            continue
        if origin in whole:
            continue
        mod = module(origin)
        if mod is None:
            continue
        if name in mod.defs:
            node = mod.defs[name]
            pieces[f"{origin}.{name}"] = mod.text(node)
            todo.extend(references(mod, node))
        elif name in mod.imports:  # re-exported (a package's __init__)
            todo.append(mod.imports[name])
    return sorted(pieces.items())


def build_key(
    inputs: list[dict[str, Any]],
    settings: Settings,
    *,
    format: str | None = None,  # noqa: A002
) -> str:
    """The cache key of a build: inputs, settings, source format and code.

    Examples
    --------
    >>> from effortlens.settings import load_settings
    >>> a = build_key([{"name": "a.csv", "size": 1}], load_settings())
    >>> a == build_key([{"name": "a.csv", "size": 2}], load_settings())
    False
    """
    payload = {
        "format": FORMAT,
        "inputs": inputs,
        "settings": settings.fingerprint(),
        "source_format": format,
        "code": code_version(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


# --- progress -----------------------------------------------------------------------------------


class Progress:
    """Named steps of a build, drawn as a bar on a terminal (nothing elsewhere).

    Examples
    --------
    >>> p = Progress(["load", "write"], stream=None)
    >>> p.step("load"); p.done()
    """

    def __init__(self, steps: list[str], *, stream=sys.stderr) -> None:
        """Progress over ``steps``, drawn on ``stream`` only when it is a terminal."""
        self.steps = steps
        self.stream = stream if stream is not None and _is_tty(stream) else None
        self.started = time.perf_counter()
        self.at = 0
        self.current = ""  # the step being done (a failure names it)
        self._drawn = 0  # the length of the line last drawn (a shorter one must cover it)

    def step(self, name: str) -> None:
        """Start step ``name``."""
        self.at = self.steps.index(name) if name in self.steps else self.at
        self.current = name
        self._draw(name)

    def failed(self) -> None:
        """The build failed in the current step: the bar ends its line (the error follows)."""
        self._draw(f"failed: {self.current}")
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()

    def done(self) -> None:
        """All steps finished."""
        self.at = len(self.steps)
        self._draw("done")
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, label: str) -> None:
        if self.stream is None:
            return
        width = 30
        filled = round(width * self.at / max(len(self.steps), 1))
        elapsed = time.perf_counter() - self.started
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.at}/{len(self.steps)} "
            f"{label:<28} {elapsed:6.1f} s"
        )
        self.stream.write(f"\r{line:<{self._drawn}}")  # blanks over a longer line's end
        self._drawn = len(line)
        self.stream.flush()


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# --- the build result ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    """A verified build: where it is, its manifest, and the facts read lazily.

    Attributes
    ----------
    path
        The build folder.
    manifest
        The parsed ``manifest.json``.
    enriched
        :class:`effortlens.enrich.Enriched` whose activities and actions are scanned lazily
        from the Parquet facts (collected only when a view asks, after its filter).
    data
        A :class:`BuiltData` (load report, quarantine, settings, lazy canonical tables), what
        the apps show as the load report.
    rebuilt
        Why this build was (re)made in this call ("" when an existing build was used).
    """

    path: Path
    manifest: dict[str, Any]
    enriched: Enriched
    data: Any
    rebuilt: str = ""


def built_data(**fields):
    """A :class:`effortlens.loading.LoadedData` that also carries the build's ``enriched``."""
    from effortlens.loading import LoadedData

    cls = _BUILT_DATA.get("cls")
    if cls is None:

        @dataclass(frozen=True)
        class BuiltData(LoadedData):
            """LoadedData read from a build; ``enriched`` are its facts (no enrichment needed)."""

            enriched: Any = None
            build: Any = None
            rebuilt: str = ""
            #: The build's quarantine file; ``quarantine`` holds all of its rows when
            #: ``quarantine_complete``, else the first rows of each reason (``held_quarantine``).
            quarantine_file: Any = None
            quarantine_complete: bool = True

        cls = _BUILT_DATA["cls"] = BuiltData
    return cls(**fields)


_BUILT_DATA: dict[str, type] = {}


# --- writing ------------------------------------------------------------------------------------


def build(
    folder: str | Path,
    *,
    settings: Settings | None = None,
    mapping: str | Path | None = None,
    format: str | None = None,  # noqa: A002
    cache_dir: str | Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Build:
    """Validate, enrich and write the facts of ``folder``; reuse a current, verified build.

    Parameters
    ----------
    folder
        A data folder (see :func:`effortlens.adapters.load_any`).
    settings
        Validated settings; default the folder's ``settings.toml``, else the defaults.
    mapping, format
        As for :func:`~effortlens.adapters.load_any`.
    cache_dir
        Where builds live; default :func:`effortlens.cache.default_cache_dir`.
    force
        Rebuild even when a current build exists.
    progress
        Steps drawn on the terminal; default one on stderr (drawn only on a terminal).

    Returns
    -------
    Build

    Examples
    --------
    >>> b = build("exports/acme")  # doctest: +SKIP
    >>> sorted(b.manifest["files"])[:2]  # doctest: +SKIP
    ['actions.parquet', 'activities.parquet']
    """
    return open_build(
        folder,
        settings=settings,
        mapping=mapping,
        format=format,
        cache_dir=cache_dir,
        force=force,
        progress=progress,
    )


def open_build(
    folder: str | Path,
    *,
    settings: Settings | None = None,
    mapping: str | Path | None = None,
    format: str | None = None,  # noqa: A002
    cache_dir: str | Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    say: Callable[[str], None] | None = None,
    partitioned: bool | None = None,
    engine: str = "polars",
) -> Build:
    """The current build of ``folder``: the existing one when current and intact, else a new one.

    A stale build (an input file, the settings or the code changed) or a damaged one is
    rebuilt; ``say`` (default: a :class:`BuildWarning`) is told why, once. ``partitioned``
    forces (``True``) or refuses (``False``) the partitioned build of
    :mod:`effortlens.partitioned`; ``None`` takes it for a canonical folder whose event tables
    hold more than ``limits.partition_above_rows`` rows (the manifest's ``"build"`` says which).
    ``engine`` enriches a new in-memory build: ``"polars"``, or ``"spark"``
    (:func:`effortlens.spark_build.write_build_facts`; the facts are equal, so the key does not
    depend on it; the manifest's ``"engine"`` records it). Other parameters as for
    :func:`build`.

    Examples
    --------
    >>> built = open_build("exports/acme")  # doctest: +SKIP
    >>> built.enriched.daily.height > 0  # doctest: +SKIP
    True
    """
    from effortlens.cache import check_cache_dir

    if engine not in ("polars", "spark"):
        raise ValueError(f"engine must be 'polars' or 'spark', got {engine!r}")
    folder = Path(folder).expanduser()
    if not folder.exists():
        from effortlens.loading import DataError

        raise DataError(f"{folder}: no such file or folder")
    settings = settings if settings is not None else _folder_settings(folder)
    mapping_path = Path(mapping).expanduser() if mapping is not None else None
    root = check_cache_dir(
        Path(cache_dir) if cache_dir is not None else default_cache_dir(), data=folder
    )
    announce = say  # a first build is announced to a caller that listens, not warned of
    say = say or _warn
    try:
        inputs = input_fingerprint(folder, mapping=mapping_path)
    except OSError as err:  # an unreadable file or folder: the user's to fix, said in words
        from effortlens.loading.guard import unreadable

        where = Path(err.filename) if err.filename else folder
        raise unreadable(str(folder) if where == folder else where.name, err) from err
    key = build_key(inputs, settings, format=format)
    entry = root / "builds" / key
    if entry.is_dir() and not force:
        try:
            return _opened(entry, root, folder, key=key, inputs=inputs, settings=settings)
        except DamagedBuild:
            pass  # checked again under the lock: another process may be repairing it
    with _build_lock(root, key):  # kernels starting together build once, the others wait
        reason = ""
        if entry.is_dir() and not force:
            try:
                return _opened(entry, root, folder, key=key, inputs=inputs, settings=settings)
            except DamagedBuild as err:
                reason = f"the build of {folder} was damaged ({err}): deleted, rebuilding"
                say(reason)
                shutil.rmtree(entry, ignore_errors=True)
        elif force:
            reason = "rebuild forced"
        else:
            reason = _why_stale(root, folder, inputs, settings=settings)
            if reason:
                say(f"the build of {folder} is stale ({reason}): rebuilding")
            elif announce is not None:  # a script's stderr says why it waits (10M: minutes)
                announce(f"no build of {folder} yet: building it")
        # a forced rebuild puts the build aside, back if the new one fails; when the disk
        # cannot hold both (at 100M a build is ~15 GB) the old one goes first, as it must
        aside = None
        if force and entry.is_dir():
            if shutil.disk_usage(entry.parent).free >= _space_needed(folder):
                aside = _put_aside(entry)
            else:
                say("not enough free disk to keep the build until the new one is done: deleted")
                shutil.rmtree(entry, ignore_errors=True)
        progress = progress or Progress(BUILD_STEPS)
        try:
            _write_build(
                root,
                key,
                folder=folder,
                settings=settings,
                mapping=mapping_path,
                format=format,
                inputs=inputs,
                progress=progress,
                partitioned=partitioned,
                engine=engine,
            )
        except BaseException as err:
            if aside is not None and not entry.exists():
                aside.rename(entry)
            if hasattr(progress, "failed"):
                progress.failed()
            told = _told(err, root=root, folder=folder, step=getattr(progress, "current", ""))
            if told is err:
                raise
            raise told from err
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        _remember(root, folder, key=key, inputs=inputs, settings=settings)
        built = _open_entry(entry, key=key, settings=settings)
    return dataclasses.replace(built, rebuilt=reason or "no build yet")


def _put_aside(entry: Path) -> Path:
    """Move build ``entry`` to a working folder beside it (deleted by the next build once this
    process is gone, :func:`effortlens.cache.scratch_dir`); where it went."""
    aside = scratch_dir(entry.parent, "replaced")
    aside.rmdir()
    entry.rename(aside)
    return aside


def _told(err: BaseException, *, root: Path, folder: Path, step: str) -> BaseException:
    """``err`` of a failed build, in words when the user can act on it: a full disk (the
    folder, the space needed), a child process that died (the step; out of memory most often);
    else ``err`` itself."""
    from concurrent.futures.process import BrokenProcessPool

    from effortlens import build_failure

    if isinstance(err, build_failure.DiskFull) or not isinstance(err, Exception):
        return err
    # Polars' writers may say a full disk only as a broken footer: the disk is asked too
    if build_failure.is_disk_full(err, root / "builds"):
        return build_failure.disk_full(root / "builds", needed=_space_needed(folder))
    if isinstance(err, BrokenProcessPool):  # a child of the load, killed outright
        return build_failure.died(step or "the build", None)
    return err


#: Disk a build takes at its fullest (the build and its scratch), per byte of its input
#: (3m partitioned: 689 MB at its fullest for 47 MB of Parquet, 14.7x; 100M: the build
#: alone 14.6 GB for 1.4 GB).
BUILD_BYTES_PER_INPUT_BYTE = 15


def _space_needed(folder: Path) -> int:
    """About the disk a build of ``folder`` takes at its fullest."""
    size = 0
    for path in folder.rglob("*") if folder.is_dir() else [folder]:
        with contextlib.suppress(OSError):
            size += path.stat().st_size if path.is_file() else 0
    return size * BUILD_BYTES_PER_INPUT_BYTE


@contextlib.contextmanager
def _build_lock(root: Path, key: str) -> Iterator[None]:
    """Hold an exclusive lock on build ``key`` (POSIX ``flock``; no lock elsewhere)."""
    lock = root / "builds" / f".{key}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: concurrent builders race, both valid
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: The steps of a build, in order, as its progress bar names them.
BUILD_STEPS = [
    "fingerprint",
    "load and validate",
    "enrich",
    "write facts",
    "precompute views",
    "checksums",
]


def _warn(message: str) -> None:
    warnings.warn(message, BuildWarning, stacklevel=3)


def _folder_settings(folder: Path) -> Settings:
    """The settings the apps and the CLI load ``folder`` with (its ``settings.toml``)."""
    from effortlens import settings as module

    if hasattr(module, "settings_for_folder"):
        return module.settings_for_folder(folder)
    own = folder / "settings.toml" if folder.is_dir() else None
    return module.load_settings(own if own is not None and own.is_file() else None)


def _source_record(root: Path, folder: Path) -> Path:
    name = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:24]
    return root / "sources" / f"{name}.json"


def _opened(
    entry: Path, root: Path, folder: Path, *, key: str, inputs, settings: Settings
) -> Build:
    """:func:`_open_entry` of a current build, noted as ``folder``'s latest (:func:`_remember`)
    when its record names another build or none: a folder whose files equal an already
    built one's (a copy, the same export in two places) opens that build, and its next
    change must still be said stale. A record that cannot be written (a cache folder read-only
    here) is left as it is: the build is current all the same."""
    built = _open_entry(entry, key=key, settings=settings)
    try:
        latest = json.loads(_source_record(root, folder).read_text("utf-8")).get("key")
    except (OSError, ValueError, AttributeError):
        latest = None
    if latest != key:
        try:
            _remember(root, folder, key=key, inputs=inputs, settings=settings)
        except OSError:
            pass
    return built


def _remember(root: Path, folder: Path, *, key: str, inputs, settings: Settings) -> None:
    """Note which build is the latest of ``folder`` (to say why the next one is stale)."""
    record = _source_record(root, folder)
    record.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "folder": str(folder.resolve()),
        "key": key,
        "inputs": inputs,
        "settings": settings.fingerprint(),
        "code": code_version(),
    }
    _atomic_write(record, json.dumps(payload, indent=1))


def _why_stale(root: Path, folder: Path, inputs, *, settings: Settings) -> str:
    """Why the last build of ``folder`` no longer fits, or "" when it was never built."""
    try:
        last = json.loads(_source_record(root, folder).read_text("utf-8"))
    except (OSError, ValueError):
        return ""
    before = {r["name"]: r for r in last.get("inputs", [])}
    now = {r["name"]: r for r in inputs}
    changed = sorted(n for n in now.keys() & before.keys() if now[n] != before[n])
    reasons = [f"{n} changed" for n in changed]
    reasons += [f"{n} added" for n in sorted(now.keys() - before.keys())]
    reasons += [f"{n} removed" for n in sorted(before.keys() - now.keys())]
    if last.get("settings") != settings.fingerprint():
        reasons.append("settings changed")
    if last.get("code") != code_version():
        reasons.append("EffortLens code changed")
    return ", ".join(reasons) or "built with other options"


def latest_build_record(
    folder: str | Path, *, cache_dir: str | Path | None = None
) -> dict[str, Any] | None:
    """What the latest build of ``folder`` recorded, or ``None`` when it was never built.

    The record says which build is the folder's latest and what it was made from: ``"key"``
    (its folder under ``<cache>/builds``), ``"inputs"`` (the input fingerprint),
    ``"settings"`` (the settings' fingerprint) and ``"code"`` (the :func:`code_version` that
    wrote it). A build is current only while all of them still match.

    Parameters
    ----------
    folder
        The data folder, as given to :func:`build`.
    cache_dir
        Where builds live; default :func:`effortlens.cache.default_cache_dir`.

    Examples
    --------
    >>> latest_build_record("exports/acme")["code"]  # doctest: +SKIP
    '3f1c…'
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        return json.loads(_source_record(root, Path(folder).expanduser()).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _write_build(
    root: Path,
    key: str,
    *,
    folder: Path,
    settings: Settings,
    mapping: Path | None,
    format: str | None,  # noqa: A002
    inputs,
    progress: Progress,
    partitioned: bool | None = None,
    engine: str = "polars",
) -> Path:
    from effortlens.adapters import load_any
    from effortlens.enrich import enrich_tables

    how = (
        "in memory, enriched by Spark"
        if engine == "spark"
        else _partitioned_how(folder, settings, mapping=mapping, format=format, force=partitioned)
    )
    if how.startswith("partitioned"):
        return _write_partitioned_build(
            root, key, folder=folder, settings=settings, format=format, inputs=inputs,
            progress=progress, how=how,
        )  # fmt: skip
    progress.step("load and validate")
    data = load_any(folder, settings=settings, mapping=mapping, format=format)
    builds = root / "builds"
    staging = scratch_dir(builds, key)
    watcher = ChecksumWatcher(staging).start()  # each file hashed while still in memory
    try:
        progress.step("enrich")
        if engine == "spark":
            from effortlens.schema import TABLES
            from effortlens.spark_build import write_build_facts

            rows: dict[str, int] = dict(write_build_facts(data.tables, staging, settings=settings))
            tables = {name: data.tables.get(name, TABLES[name].empty()) for name in TABLE_FILES}
            progress.step("write facts")
        else:
            enriched = enrich_tables(data.tables, settings=settings, fingerprint=key)
            progress.step("write facts")
            frames: dict[str, pl.DataFrame] = {
                "activities": enriched.activities,
                "actions": enriched.actions,
                "daily": enriched.daily,
                "reps": enriched.reps,
            }
            rows = {}
            for name, relative in FACTS_LAYOUT.items():
                frame = frames[name]
                if name == "daily":
                    frame = frame.with_columns(pl.col(KERNEL_CATEGORICAL).cast(pl.Categorical))
                group = ROW_GROUP if name != "reps" else max(frame.height, 1)
                _write_parquet(frame, staging / relative, row_group_size=group)
                rows[relative] = frame.height
            tables = {name: enriched.tables[name] for name in TABLE_FILES}
            del frames, enriched
        for name, relative in TABLE_FILES.items():
            frame = tables[name]
            _write_parquet(frame, staging / relative, row_group_size=max(frame.height, 1))
            rows[relative] = frame.height
        del tables
        _write_parquet(data.quarantine, staging / QUARANTINE_FILE, row_group_size=None)
        rows[QUARANTINE_FILE] = data.quarantine.height
        report = {
            "report": _report_to_json(data.report),
            "missing_tables": list(data.missing_tables),
            "source": str(data.source),
        }
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=1, default=str), "utf-8")
        del data  # the raw rows are not needed for what follows: it reads the written facts
        progress.step("precompute views")
        rows.update(write_aggregates(staging, settings=settings, step=progress.step))
        _seal(
            staging, builds / key, rows=rows, progress=progress, key=key, folder=folder,
            inputs=inputs, settings=settings, format=format, engine=engine, how=how,
            watcher=watcher,
        )  # fmt: skip
    finally:
        watcher.stop()
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    progress.done()
    return builds / key


def _seal(
    staging: Path,
    target: Path,
    *,
    rows: Mapping[str, int],
    progress: Progress,
    key: str,
    folder: Path,
    inputs,
    settings: Settings,
    format: str | None,  # noqa: A002
    engine: str | None,
    how: str,
    watcher: ChecksumWatcher | None = None,
) -> None:
    """Checksum every file of ``staging``, write its manifest and move it to ``target``.

    ``engine`` ``None`` leaves it out of the manifest (the partitioned build is Polars only);
    ``watcher`` hashed files of ``staging`` while they were written (:class:`ChecksumWatcher`).
    """
    progress.step("checksums")
    sums = (watcher or ChecksumWatcher(staging)).checksums()  # most hashed as they were written
    files = {
        relative: {"bytes": size, "sha256": digest, "rows": rows.get(relative)}
        for relative, (size, digest) in sums.items()
    }
    manifest = {
        "format": FORMAT,
        "key": key,
        "folder": str(folder.resolve()),
        "inputs": inputs,
        "settings": settings.fingerprint(),
        "source_format": format,
        "code": code_version(),
        **({"engine": engine} if engine is not None else {}),
        "polars": pl.__version__,
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "build": how,
        "files": files,
    }
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), "utf-8")
    try:
        staging.rename(target)
    except OSError:
        if not target.is_dir():  # lost a race to a builder of the same key: theirs is fine
            raise
    _write_stamps(target, manifest)


def _partitioned_how(
    folder: Path,
    settings: Settings,
    *,
    mapping: Path | None,
    format: str | None,
    force: bool | None,  # noqa: A002
) -> str:
    """Which build ``folder`` gets, in words: "partitioned (why)" or "in memory (why)"."""
    from effortlens.partitioned import should_partition

    if force is False:
        return "in memory (asked for)"
    if mapping is not None or format not in (None, "canonical"):
        return "in memory (a mapped or CRM export is loaded whole)"
    wanted, how = should_partition(folder, settings=settings)
    if force and not wanted:
        if how.startswith("in memory (the event tables are not Parquet"):
            return how
        return "partitioned (asked for)"
    return how


def _write_partitioned_build(
    root: Path,
    key: str,
    *,
    folder: Path,
    settings: Settings,
    format: str | None,  # noqa: A002
    inputs,
    progress: Progress,
    how: str,
) -> Path:
    """:func:`_write_build` by :func:`effortlens.partitioned.write_partitioned`: the same
    files, the event facts as folders of part files (one per partition). Above
    ``limits.partition_above_rows`` events, pass 1 of the view facts runs in each partition's
    process with its enrichment (its scratch in ``views``), the later steps after."""
    from effortlens.partitioned import discarded, write_partitioned

    builds = root / "builds"
    staging = scratch_dir(builds, key)
    views = scratch_dir(builds, "views")
    watcher = ChecksumWatcher(staging).start()  # each file hashed while still in memory
    try:
        rows, pass_one = write_partitioned(
            folder, staging, settings=settings, layout=FACTS_LAYOUT, table_files=TABLE_FILES,
            quarantine_file=QUARANTINE_FILE, report_file=REPORT_FILE,
            report_json=_report_to_json, step=progress.step, views=views,
        )  # fmt: skip
        events = sum(
            n
            for relative, n in rows.items()
            for name in ("activities", "actions")
            if relative == FACTS_LAYOUT[name] or relative.startswith(FACTS_LAYOUT[name] + "/")
        )
        progress.step("precompute views")
        if events <= settings.limits.partition_above_rows:
            rows.update(write_aggregates(staging, settings=settings, step=progress.step))
        else:  # part by part (the whole would not fit), pass 1 done with the enrichment
            rows.update(
                write_partition_aggregates(
                    staging, settings=settings, step=progress.step, pass_one=pass_one
                )
            )
        _seal(
            staging, builds / key, rows=rows, progress=progress, key=key, folder=folder,
            inputs=inputs, settings=settings, format=format, engine=None, how=how,
            watcher=watcher,
        )  # fmt: skip
    finally:
        watcher.stop()
        shutil.rmtree(views, ignore_errors=True)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        discarded()  # the partitions' scratch, deleted meanwhile
    progress.done()
    return builds / key


def write_aggregates(
    folder: Path, *, settings: Settings, step: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Compute :data:`AGGREGATES_LAYOUT` from the facts written in build folder ``folder``
    (lazy scans: whichever engine wrote them) and write them there; rows per relative path.
    ``step`` is told each table as it starts (``"view facts: touches"``: the progress bar;
    this is most of a 10m build).

    Examples
    --------
    >>> write_aggregates(staging, settings=settings)  # doctest: +SKIP
    {'streaks.parquet': 1204, 'touches.parquet': 81265}
    """
    from effortlens.deviance import practice_cells as practice_cells_of_frame
    from effortlens.deviance import practice_gaps, sorted_gaps
    from effortlens.deviance.differs import write_gap_runs
    from effortlens.flow import verifier_facts
    from effortlens.habits import (
        TOUCH_CELL_KEYS,
        TOUCH_SEQUENCE_LENGTHS,
        touch_cells,
        write_touch_codes,
    )
    from effortlens.roe import (
        rep_ordered_streaks,
        streak_facts,
        write_rep_ordered_streaks,
        write_streak_facts,
    )
    from effortlens.touch_build import (
        build_practice_facts,
        build_touch_facts,
        write_practice_codes,
    )

    say = step or (lambda _name: None)
    facts = {name: scan_fact(folder, relative) for name, relative in FACTS_LAYOUT.items()}
    reps = facts["reps"].collect()
    written = Enriched(
        activities=facts["activities"],
        actions=facts["actions"],
        daily=pl.DataFrame(schema=DAILY_SCHEMA),
        reps=reps,
        tables={},
        settings=settings,
    )
    rows = {}

    held: dict[str, pl.LazyFrame] = {}
    practice: dict[str, pl.LazyFrame] = {}

    def practice_cells() -> dict[str, pl.LazyFrame]:
        # the practice facts read once for both cells, the rep columns as categories
        # (3m: 2.8-3.0 -> 1.9-2.4 CPU s for the two)
        if not practice:
            rep = ["rep_id", "team", "segment", "role"]
            read = (
                scan_fact(folder, AGGREGATES_LAYOUT["practice"])
                .with_columns(pl.col(rep).cast(pl.Categorical))
                .collect()
            )
            practice.update(practice_cells_of_frame(read))
            practice.update(practice_gaps(read))  # "gaps", "gap_reps"
        return practice

    def cells() -> dict[str, pl.LazyFrame]:
        # the touches read once for the four habit cells, their text keys as categories: a
        # group-by hashes small integers instead of strings (3m: 5.7 -> 2.9 CPU s)
        if not held:
            text = [*TOUCH_CELL_KEYS, *(f"sequence_{k}" for k in TOUCH_SEQUENCE_LENGTHS)]
            touches = (
                pl.scan_parquet(folder / AGGREGATES_LAYOUT["touches"])
                .select(pl.exclude("day"))
                .with_columns(pl.col(text).cast(pl.Categorical))
                .collect()
            )
            held.update({f"habit_{k}": v for k, v in touch_cells(touches).items()})
        return held

    for name, compute in (
        ("streaks", lambda: streak_facts(facts["activities"], facts["actions"], reps)),
        # equal to the bit to habits.touch_facts and deviance.practice_facts, in fewer sorts
        ("touches", lambda: build_touch_facts(written)),
        ("practice", lambda: build_practice_facts(facts["activities"])),
        *(
            (f"practice_{cell}", lambda cell=cell: _rep_sorted(practice_cells()[cell]))
            for cell in ("shares", "sequences", "gap_reps")
        ),
        ("practice_gaps", lambda: sorted_gaps(practice_cells()["gaps"])),
        ("verifiers", lambda: verifier_facts(facts["actions"], settings=settings).collect()),
        *((cell, lambda cell=cell: _cells(cells()[cell])) for cell in _HABIT_CELLS),
    ):
        say(f"view facts: {name.replace('_', ' ')}")
        frame = compute()
        relative = AGGREGATES_LAYOUT[name]
        if name == "streaks":  # read a few rows at a time by the ROE page: lz4, small groups
            write_streak_facts(frame, folder / relative)
            by_rep = rep_ordered_streaks(frame)  # and again by rep, for a rep's or a team's
            write_rep_ordered_streaks(by_rep, folder / AGGREGATES_LAYOUT["streaks_by_rep"])
            rows[AGGREGATES_LAYOUT["streaks_by_rep"]] = by_rep.height
            del by_rep
        else:
            _write_parquet(frame, folder / relative, row_group_size=ROW_GROUP)
        if name == "practice_gaps":  # and mapped by rep, with each rep's counts by bin
            rows[f"{PRACTICE_GAP_RUNS}/seconds.npy"] = write_gap_runs(
                frame, folder / PRACTICE_GAP_RUNS
            )
        rows[relative] = frame.height
        del frame
    held.clear()
    practice.clear()
    say("view facts: habit touch codes")
    touches = pl.scan_parquet(folder / AGGREGATES_LAYOUT["touches"])
    rows[f"{HABIT_TOUCHES}/day.npy"] = write_touch_codes(touches, folder / HABIT_TOUCHES)
    say("view facts: practice codes")
    practice_facts = scan_fact(folder, AGGREGATES_LAYOUT["practice"])
    rows[f"{PRACTICE_CODES}/day.npy"] = write_practice_codes(
        practice_facts, folder / PRACTICE_CODES
    )
    say("view facts: practice periods")
    rows.update(write_practice_periods(folder))
    return rows


def write_practice_periods(folder: Path) -> dict[str, int]:
    """The practice cells and gap runs of the page's period presets
    (:func:`effortlens.deviance.differs.write_practice_periods`) from the practice facts
    written in build folder ``folder``, ending on its last day with data."""
    from effortlens.deviance.differs import PRACTICE_PERIODS, PracticeCodes, build_last_day
    from effortlens.deviance.differs import write_practice_periods as write_periods
    from effortlens.touch_build import PRACTICE_CODE_COLUMNS

    path = folder / AGGREGATES_LAYOUT["practice"]
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    parts = [pl.scan_parquet(f) for f in files]  # a partitioned build's one at a time
    # the practice codes of the same facts, when written first: read instead of the Parquet
    # text (3m: 1.5-1.7 -> 0.9-1.2 CPU s)
    coded = folder / PRACTICE_CODES
    needed = [f"{c}.npy" for c in PRACTICE_CODE_COLUMNS] + ["rep.keys.parquet", "type.keys.parquet"]
    codes = PracticeCodes(coded) if all((coded / n).is_file() for n in needed) else None
    return write_periods(parts, folder / PRACTICE_PERIODS, build_last_day(folder), codes=codes)


#: Build key -> the entry it was read from in this process (:func:`entry_of`).
_ENTRIES: dict[str, Path] = {}


def entry_of(enriched: Any) -> Path | None:
    """The build folder ``enriched`` was read from in this process (by :func:`open_build`),
    or None (facts enriched in memory).

    Examples
    --------
    >>> entry_of(open_build(folder).enriched)  # doctest: +SKIP
    PosixPath('/home/analyst/.cache/effortlens/builds/c377407abe2566df5bb848d1')
    """
    return _ENTRIES.get(getattr(enriched, "fingerprint", "") or "")


#: (build folder, relative folder) -> what :func:`read_once` made of it in this process.
_READ_ONCE: dict[tuple[Path, str], Any] = {}


def read_once(
    enriched: Any, relative: str, needed: Sequence[str], make: Callable[[Path], Any]
) -> Any:
    """``make(folder)`` for the folder ``relative`` of the build ``enriched`` was read from,
    made once per process and build (the precomputed files a kernel maps: habit touch codes,
    practice codes, gap runs, period presets), or None: facts enriched in memory, or a build
    without every file of ``needed`` in that folder (written before them).

    Examples
    --------
    >>> read_once(enriched, HABIT_TOUCHES, ("rep_cell.npy",), TouchCodes)  # doctest: +SKIP
    <effortlens.habits.TouchCodes object at ...>
    """
    entry = entry_of(enriched)
    if entry is None:
        return None
    key = (entry, relative)
    if key not in _READ_ONCE:
        folder = entry / relative
        if not all((folder / name).is_file() for name in needed):
            return None
        _READ_ONCE[key] = make(folder)
    return _READ_ONCE[key]


#: The precomputed view facts a large (partitioned) build writes part by part
#: (:func:`effortlens.partitioned.write_view_facts`): all of them.
PARTITION_AGGREGATES: tuple[str, ...] = tuple(AGGREGATES_LAYOUT)


def write_partition_aggregates(
    folder: Path,
    *,
    settings: Settings,
    step: Callable[[str], None] | None = None,
    pass_one: Any = None,
) -> dict[str, int]:
    """:data:`PARTITION_AGGREGATES` and the habit touch codes of a partitioned build in
    ``folder``, with memory bounded by a partition (and by the habit credit's one fit over
    compact inputs): :func:`effortlens.partitioned.write_view_facts`, given ``pass_one``
    (:class:`effortlens.partitioned.PassOne`) when pass 1 ran with the enrichment. Rows per
    relative path.

    Examples
    --------
    >>> write_partition_aggregates(staging, settings=settings)  # doctest: +SKIP
    {'practice.parquet/part-00000.parquet': 81265, ...}
    """
    from effortlens.partitioned import write_view_facts

    return write_view_facts(folder, settings=settings, step=step, pass_one=pass_one)


def practice_cells_of(folder: Path) -> dict[str, pl.LazyFrame]:
    """:func:`effortlens.deviance.practice_cells` of the practice facts written in ``folder``."""
    from effortlens.deviance import practice_cells

    return practice_cells(scan_fact(folder, AGGREGATES_LAYOUT["practice"]))


def _rep_sorted(cells: pl.LazyFrame) -> pl.DataFrame:
    frame = cells.collect(engine="streaming")
    # rep columns grouped as categories (write_aggregates) are text again, as in the layout
    rep = ["rep_id", "team", "segment", "role"]
    coded = [c for c in rep if c in frame.columns and frame.schema[c] == pl.Categorical]
    return frame.with_columns(pl.col(coded).cast(pl.String)).sort("rep_id", maintain_order=True)


#: The habit cells among :data:`AGGREGATES_LAYOUT` (:func:`effortlens.habits.touch_cells`).
_HABIT_CELLS = ("habit_timing", "habit_cadence", "habit_sequence_2", "habit_sequence_3")


def _cells(cells: pl.LazyFrame) -> pl.DataFrame:
    """Habit cells summed (streaming), by rep, their grouping columns as categories."""
    from effortlens.habits import TOUCH_CELL_KEYS

    grouping = [c for c in KERNEL_CATEGORICAL if c in TOUCH_CELL_KEYS]
    frame = cells.collect(engine="streaming")
    # keys grouped as categories (write_aggregates) are text again where the layout has text
    text = [c for c in ("rep_id", "sequence") if frame.schema.get(c, pl.String) != pl.String]
    frame = frame.with_columns(pl.col(text).cast(pl.String)).sort("rep_id", maintain_order=True)
    return frame.with_columns(pl.col(grouping).cast(pl.Categorical))


#: The build's Parquet codec: lz4 writes and reads with less CPU than Polars' default zstd
#: (3m activities: 2.6 against 3.6 CPU s to write, 0.8 against 1.1 to read) for files ~1.5x
#: larger.
PARQUET_CODEC = "lz4"


def _write_parquet(frame: pl.DataFrame, path: Path, *, row_group_size: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(
        path, compression=PARQUET_CODEC, statistics=True, row_group_size=row_group_size
    )


#: While a build runs, a file is hashed once it has not changed for this long, and again
#: whenever it changes (a file system's clock ticks every few milliseconds).
SETTLED_S = 1.0
#: How often the build's folder is looked at for files to hash.
WATCH_EVERY_S = 0.5


class ChecksumWatcher:
    """Hashes the files of a build folder while the build writes them, so that the last step
    (the manifest's checksums) reads none back from disk.

    At 100M activities the build writes 14.6 GB; hashed at the end, most of it had left the
    page cache, and the checksums waited 154 s on the disk (13.6 CPU s). A thread looks at the
    folder every ``every_s`` seconds and hashes each file that has not changed for
    ``settled_s`` (its ``ctime``), whichever process wrote it (the partitioned build's
    children write into it too): a few seconds after its step wrote it, still in memory.
    Each hash is kept with the file's stamp (inode, size, mtime, ctime) taken before it was
    read and checked after. :meth:`checksums` stops the thread and gives every file's hash:
    the one kept while its stamp is unchanged, else one taken then. A file written again
    after it was hashed has another stamp, so the manifest holds the hash of its final bytes;
    and since a file is hashed only once its ``ctime`` is ``settled_s`` old, a later write
    cannot fall in the tick of that ``ctime``. A file some process holds open for writing, or
    mapped writable, is not hashed then (:func:`_being_written`). A file that changed after it
    was hashed is one written in pieces (the habit touch codes' arrays: a slice by each range
    of the day order, in several processes, then narrowed): it is hashed again only at the
    end, not after each piece (10m in the 100M shape: those arrays were hashed 3 times each).
    Nor is a file under a name starting with ``.`` (a working name, renamed into place when
    written). What is left at the end is hashed on every core.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.txt").write_text("a")
    >>> with ChecksumWatcher(folder) as watcher:
    ...     sums = watcher.checksums()
    >>> sums["a.txt"]
    (1, 'ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb')
    """

    def __init__(
        self, folder: Path, *, settled_s: float | None = None, every_s: float | None = None
    ):
        """Watch ``folder`` (started by :meth:`start` or ``with``); default
        :data:`SETTLED_S` and :data:`WATCH_EVERY_S`."""
        self.folder = Path(folder)
        self.settled_ns = int((SETTLED_S if settled_s is None else settled_s) * 1e9)
        self.every_s = WATCH_EVERY_S if every_s is None else every_s
        #: relative path -> (stamp when hashed, size, sha256)
        self.known: dict[str, tuple[list[int], int, str]] = {}
        self._later: set[str] = set()  # changed after a hash: written in pieces, hashed at end
        #: files hashed while the build ran / by :meth:`checksums` (the ones not kept)
        self.hashed_while: list[str] = []
        self.hashed_at_end: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ChecksumWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ChecksumWatcher:
        """Start hashing in a thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="build-checksums", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (after the file it is hashing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.scan()
            except Exception:  # never fail a build: the end hashes what is left
                pass

    def scan(self) -> int:
        """Hash every settled file whose stamp differs from the one its hash was kept with;
        how many were hashed."""
        done = 0
        for relative, path, before in _stats_of(self.folder):
            if self._stop.is_set():
                break
            stamp = _stamp(before)
            kept = self.known.get(relative)
            if kept is not None and kept[0] == stamp:
                continue
            if kept is not None:  # changed after its hash: written in pieces
                self._later.add(relative)
                del self.known[relative]
            if relative in self._later or time.time_ns() - before.st_ctime_ns < self.settled_ns:
                continue
            if "/." in f"/{relative}":  # a file written under a working name
                continue
            try:
                digest = _sha256(path, unless_written=True)
                if digest is None or _stamp(os.stat(path)) != stamp:
                    continue  # still written, or written while read
            except OSError:  # gone (a scratch file) or unreadable: the end sees to it
                continue
            self.known[relative] = (stamp, before.st_size, digest)
            self.hashed_while.append(relative)
            done += 1
        return done

    def checksums(self) -> dict[str, tuple[int, str]]:
        """Stop the thread; every file's size and SHA-256 (relative path -> both), as its
        bytes are now: the hash kept while its stamp is unchanged, else one taken now."""
        from concurrent.futures import ThreadPoolExecutor

        self.stop()
        sums: dict[str, tuple[int, str] | None] = {}
        left: list[tuple[str, Path, int]] = []
        for path in _files_of(self.folder):
            relative = path.relative_to(self.folder).as_posix()
            stat = path.stat()
            kept = self.known.get(relative)
            if kept is not None and kept[0] == _stamp(stat):
                sums[relative] = (kept[1], kept[2])
                continue
            sums[relative] = None  # its place in the order
            left.append((relative, path, stat.st_size))
            self.hashed_at_end.append(relative)
        with ThreadPoolExecutor(max_workers=max(1, min(len(left), os.cpu_count() or 1))) as pool:
            for (relative, _path, size), digest in zip(
                left, pool.map(lambda file: _sha256(file[1]), left), strict=True
            ):
                sums[relative] = (size, digest)
        return sums  # type: ignore[return-value]


def _stats_of(folder: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """Each file under ``folder`` but the manifest and the stamps, in no set order: its path
    relative to ``folder`` (``/``-separated), its path and its ``stat``. One ``stat`` a file
    (the watcher looks every :data:`WATCH_EVERY_S`: 100M, 231 files, 5.5 ms a look by
    :func:`_files_of` and a ``stat`` more, ~3 CPU s over a build)."""
    skip = {MANIFEST_FILE, VERIFIED_FILE}
    folders = [("", os.fspath(folder))]
    while folders:
        prefix, where = folders.pop()
        try:
            with os.scandir(where) as entries:
                for entry in entries:
                    if entry.is_dir():
                        folders.append((f"{prefix}{entry.name}/", entry.path))
                    elif entry.name not in skip:
                        try:
                            found = entry.stat()
                        except OSError:  # gone meanwhile
                            continue
                        if S_ISREG(found.st_mode):
                            yield f"{prefix}{entry.name}", entry.path, found
        except OSError:  # a folder gone meanwhile
            continue


def _files_of(entry: Path) -> Iterator[Path]:
    skip = {MANIFEST_FILE, VERIFIED_FILE}
    for path in sorted(entry.rglob("*")):
        if path.is_file() and path.name not in skip:
            yield path


def _sha256(path: str | Path, *, unless_written: bool = False) -> str | None:
    """The SHA-256 of ``path``; with ``unless_written``, ``None`` (not read) while some
    process holds it open for writing or mapped writable (:func:`_being_written`)."""
    with open(path, "rb") as f:
        if unless_written and _being_written(f.fileno()):
            return None
        return hashlib.file_digest(f, "sha256").hexdigest()


def _being_written(fd: int) -> bool:
    """Whether some process (this one too) holds the file of ``fd`` open for writing, or
    mapped writable (an ``np.memmap`` whose file was closed): Linux refuses a read lease on
    such a file (``EAGAIN``). The lease is taken and given back at once. Its break signal is
    ``SIGURG`` (ignored unless handled), not ``SIGIO`` (which ends a process): a writer that
    opens the file in between waits those microseconds and signals this process. ``False``
    where leases are not to be had (not Linux, another owner's file, a file system without).

    The build's writers pause: a Parquet file is written a row group at a time, the habit
    touch codes fill arrays mapped on their files for tens of seconds. A file settled for
    :data:`SETTLED_S` was hashed in such a pause and again after (10m in the 100M shape:
    2.45 GB hashed for 1.56 GB of files, the touch codes' arrays 3-4 times each)."""
    try:
        import fcntl
    except ImportError:
        return False
    lease = getattr(fcntl, "F_SETLEASE", None)
    if lease is None:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, lease, fcntl.F_RDLCK)
    except OSError as err:
        return err.errno == errno.EAGAIN
    fcntl.fcntl(fd, lease, fcntl.F_UNLCK)
    return False


def _stamp(stat: os.stat_result) -> list[int]:
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def _write_stamps(entry: Path, manifest: Mapping[str, Any]) -> None:
    stamps = {name: _stamp((entry / name).stat()) for name in manifest["files"]}
    try:
        _atomic_write(entry / VERIFIED_FILE, json.dumps(stamps))
    except OSError:
        pass  # files are then hashed again on the next open: slower, never wrong


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _report_to_json(report) -> dict[str, Any]:
    return {
        "tables": [dataclasses.asdict(t) for t in report.tables],
        "notes": list(report.notes),
        **{
            f.name: _plain(getattr(report, f.name))
            for f in dataclasses.fields(report)
            if f.name not in ("tables", "notes")
        },
    }


def _plain(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, tuple):  # an export's FileReports (with their lines) as objects
        return [_plain(v) for v in value]
    return value


def _report_from_json(payload: Mapping[str, Any]):
    from effortlens.loading import LoadReport, TableReport

    names = {f.name for f in dataclasses.fields(TableReport)}

    def table(d: Mapping[str, Any]) -> TableReport:
        return TableReport(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        )

    extra = {
        f.name: tuple(payload[f.name]) if isinstance(payload.get(f.name), list) else payload[f.name]
        for f in dataclasses.fields(LoadReport)
        if f.name not in ("tables", "notes") and f.name in payload
    }
    tables = tuple(table(t) for t in payload["tables"])
    notes = tuple(payload.get("notes", ()))
    files = payload.get("files")
    if files and all(isinstance(f, dict) for f in files):  # an export: per file, with lines
        from effortlens.adapters.accounting import FileReport, SourceReport
        from effortlens.loading.report import FileLines

        def file(d: Mapping[str, Any]) -> FileReport:
            lines = d.get("lines")
            return FileReport(**{**d, "lines": FileLines(**lines) if lines else None})

        return SourceReport(tables=tables, notes=notes, files=tuple(file(f) for f in files))
    return LoadReport(tables=tables, notes=notes, **extra)


# --- reading ------------------------------------------------------------------------------------


def verify_entry(entry: Path, *, key: str | None = None) -> dict[str, Any]:
    """Check a build folder against its manifest; return the manifest.

    Raises
    ------
    DamagedBuild
        Naming the file that is missing, extra, of another size, or fails its checksum, or a
        manifest that is unreadable or belongs to another key.

    Examples
    --------
    >>> import tempfile
    >>> try:
    ...     verify_entry(Path(tempfile.mkdtemp()))
    ... except DamagedBuild as err:
    ...     print(str(err).split(":")[0])
    manifest.json unreadable
    """
    try:
        manifest = json.loads((entry / MANIFEST_FILE).read_text("utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DamagedBuild(f"{MANIFEST_FILE} unreadable: {err}") from None
    if manifest.get("format") != FORMAT:
        raise DamagedBuild(f"{MANIFEST_FILE}: format {manifest.get('format')!r}, not {FORMAT}")
    if key is not None and manifest.get("key") != key:
        raise DamagedBuild(f"{MANIFEST_FILE} belongs to build {manifest.get('key')!r}")
    present = {p.relative_to(entry).as_posix() for p in _files_of(entry)}
    extra = sorted(present - set(files))
    if extra:
        raise DamagedBuild(f"{extra[0]} is not part of the build")
    try:
        with open(entry / VERIFIED_FILE, "rb") as f:
            recorded = os.fstat(f.fileno()).st_mtime_ns  # when the stamps were taken (or later)
            stamps = json.loads(f.read())
    except (OSError, ValueError):
        recorded, stamps = 0, {}
    if not isinstance(stamps, dict):
        recorded, stamps = 0, {}
    fresh: dict[str, list[int]] = {}
    hashed = False
    for name, expected in files.items():
        path = entry / name
        try:
            stat = path.stat()
        except OSError:
            raise DamagedBuild(f"{name} is missing") from None
        if stat.st_size != expected["bytes"]:
            raise DamagedBuild(f"{name} has {stat.st_size} bytes, not {expected['bytes']}")
        stamp = _stamp(stat)
        if stamps.get(name) == stamp and stat.st_ctime_ns < recorded:
            fresh[name] = stamp
            continue
        if _sha256(path) != expected["sha256"]:
            raise DamagedBuild(f"{name} fails its checksum")
        fresh[name] = stamp
        hashed = True
    if hashed or fresh != stamps:  # recorded anew, after the files' last writes
        try:
            _atomic_write(entry / VERIFIED_FILE, json.dumps(fresh))
        except OSError:
            pass
    return manifest


#: Bytes at the end of a Parquet file that the reader takes first (its footer is within).
FOOTER_READ = 128 * 2**10


def read_footers(entry: Path, manifest: Mapping[str, Any]) -> int:
    """Read the footer of every Parquet file of a build (its last :data:`FOOTER_READ`
    bytes, or the footer when longer); bytes read.

    Opening a build reads every Parquet file's footer (its schema). The Parquet reader maps
    the file, and on a build that has left the page cache a fault on the footer reads the
    disk's read-ahead window around it (4 MB here: half of ``read_ahead_kb``), for 20-80 KB
    of metadata (the reader takes the last 64 KiB first): at 10M activities ~35 of the ~110
    MB a page's first chart read from disk went to eight event-level files it reads nothing
    else of. Read first through a descriptor advised ``POSIX_FADV_RANDOM`` (no read-ahead),
    the tails are then in memory and the reader's faults read nothing. A file in memory costs
    two small reads.
    """
    done = 0
    for name, about in manifest["files"].items():
        size = int(about["bytes"])
        if not name.endswith(".parquet") or size < 12:
            continue
        try:
            fd = os.open(entry / name, os.O_RDONLY)
        except OSError:
            continue
        try:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            tail = os.pread(fd, 8, size - 8)
            if tail[4:] != b"PAR1":
                continue
            # the reader first takes the last 64 KiB, whatever the footer's length
            length = min(max(int.from_bytes(tail[:4], "little") + 8, FOOTER_READ), size)
            done += len(os.pread(fd, length, size - length))
        except OSError:
            continue
        finally:
            os.close(fd)
    return done


def _open_entry(entry: Path, *, key: str, settings: Settings) -> Build:
    manifest = verify_entry(entry, key=key)
    read_footers(entry, manifest)  # before the scans: their faults would read 4 MB each
    from effortlens.warm import warm_opened

    warm_opened(entry)  # what is not in memory, read in a thread while the page draws
    try:
        return _read_entry(entry, manifest, settings=settings)
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError) as err:
        raise DamagedBuild(f"unreadable: {type(err).__name__}: {err}") from None
    except pl.exceptions.PanicException as err:  # a BaseException: never past a cache read
        raise DamagedBuild(f"unreadable: the Parquet reader failed ({err})") from None


def scan_fact(entry: Path, relative: str) -> pl.LazyFrame:
    """A lazy scan of one fact (a file, or a folder of part files read in name order)."""
    path = entry / relative
    if path.is_dir():
        parts = sorted(path.glob("*.parquet"))
        return pl.scan_parquet(parts) if parts else pl.LazyFrame()
    return pl.scan_parquet(path)


#: Signed integer types a fact may hold where :data:`FACT_SCHEMAS` says unsigned (Spark has no
#: unsigned integers: a cluster's facts read from object storage hold its counts as ``Int32``).
_SIGNED_FOR = {pl.UInt32: (pl.Int32, pl.Int64), pl.UInt64: (pl.Int64,)}


def _conformed(frame: pl.LazyFrame, schema: pl.Schema, relative: str) -> pl.LazyFrame:
    """``frame`` with the exact ``schema``: signed counts cast (lazily) to the unsigned type;
    any other difference is another table."""
    got = frame.collect_schema()
    if dict(got) == dict(schema):
        return frame
    casts = []
    for column, want in schema.items():
        have = got.get(column)
        if have == want or (have == pl.Categorical and want == pl.String):
            continue  # categories of a text column (the daily roll-up's): read as they are
        if list(got) != list(schema) or have not in _SIGNED_FOR.get(type(want), ()):
            raise DamagedBuild(f"{relative} holds another table ({list(got)[:4]}…)")
        casts.append(pl.col(column).cast(want))
    return frame.with_columns(casts)


def held_categorical(column: str, distinct: int, *, build: str = "") -> pl.Categorical:
    """The type a kernel holds the :data:`KERNEL_CATEGORICAL` ``column`` of ``build`` (its
    key) as, for ``distinct`` values in it: ``Categorical`` with 1-byte codes up to 127
    values, 2-byte up to 32,767, else Polars's default (4-byte).

    Every frame of one build holds the column with the same type (the roll-up, the reps and
    the precomputed aggregates), so they join and compare as before. Each build has its own
    categories (the namespace): a process holding several builds never fills one build's codes
    with another's values. At 10M activities (201 teams, 8 activity types) the roll-up's five
    columns take 25 MB instead of 83 MB.

    Examples
    --------
    >>> held_categorical("team", 201, build="c377407a")
    Categorical(Categories(name="effortlens.team", namespace="c377407a", physical=pl.UInt16))
    >>> held_categorical("role", 2).categories.physical()
    UInt8
    """
    for width, most in _CODE_WIDTHS:
        if distinct <= most:
            return pl.Categorical(
                pl.Categories(f"effortlens.{column}", namespace=build, physical=width)
            )
    return pl.Categorical()


def _held_types(
    daily: pl.LazyFrame, reps: pl.LazyFrame, *, build: str
) -> dict[str, pl.Categorical]:
    """The held type of each categorical column of ``daily`` and ``reps`` (from their sizes:
    the reps table and one column of the roll-up)."""
    names = reps.collect_schema().names()
    grouping = [c for c in KERNEL_CATEGORICAL if c in names]
    counts = reps.select(pl.col(grouping).cast(pl.String).n_unique()).collect().row(0, named=True)
    counts["activity_type"] = (
        daily.select(pl.col("activity_type").cast(pl.String).n_unique()).collect().item()
    )
    return {
        c: held_categorical(c, counts[c], build=build) for c in KERNEL_CATEGORICAL if c in counts
    }


def _holding(
    frame: pl.LazyFrame, types: Mapping[str, pl.DataType], *, text: bool = True
) -> pl.LazyFrame:
    """``frame`` with its categorical columns cast (lazily) to the held ``types``; ``text``:
    also those it stores as ``String`` (else they stay text, as the views read them)."""
    schema = frame.collect_schema()
    casts = [
        pl.col(c).cast(t)
        for c, t in types.items()
        if c in schema and (text or isinstance(schema[c], pl.Categorical))
    ]
    return frame.with_columns(casts) if casts else frame


def held_quarantine(
    path: Path,
    reasons: Mapping[str, int],
    *,
    held_rows: int | None = None,
    per_reason: int | None = None,
) -> tuple[pl.DataFrame, bool]:
    """The quarantine a kernel holds of the file ``path`` (``reasons``: rows per reason code,
    from the load report) and whether it is all of it.

    Up to ``held_rows`` rows in all (default :data:`QUARANTINE_HELD_ROWS`), the whole file;
    else the first ``per_reason`` rows (:data:`QUARANTINE_ROWS_PER_REASON`) of each reason, in
    file order (a scan per reason that stops early: 0.05-0.14 s each for 6.6M rows).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "quarantine.parquet"
    >>> pl.DataFrame({"row": [1, 2, 3, 4], "reason": ["a", "b", "a", "a"]}).write_parquet(path)
    >>> held, whole = held_quarantine(path, {"a": 3, "b": 1}, held_rows=2, per_reason=2)
    >>> held["row"].to_list(), whole
    ([1, 2, 3], False)
    """
    held_rows = QUARANTINE_HELD_ROWS if held_rows is None else held_rows
    per_reason = QUARANTINE_ROWS_PER_REASON if per_reason is None else per_reason
    if sum(reasons.values()) <= held_rows:
        return pl.read_parquet(path), True
    scan = pl.scan_parquet(path).with_row_index("_row")
    firsts = [scan.filter(pl.col("reason") == code).head(per_reason) for code in reasons]
    held = pl.concat(pl.collect_all(firsts)) if firsts else scan.head(0).collect()
    return held.sort("_row").drop("_row"), False


def _read_entry(entry: Path, manifest: Mapping[str, Any], *, settings: Settings) -> Build:
    facts = {name: scan_fact(entry, relative) for name, relative in FACTS_LAYOUT.items()}
    for name, schema in FACT_SCHEMAS.items():
        facts[name] = _conformed(facts[name], schema, FACTS_LAYOUT[name])
    held = _held_types(facts["daily"], facts["reps"], build=manifest["key"])
    # read when first used (streaming): a page that holds fewer of its columns reads only those
    # (Enriched.holding)
    daily = Once(_holding(facts["daily"], held), engine="streaming")
    reps = _holding(facts["reps"], held).collect()
    # the small tables are collected when first looked up (Tables): `roe` never reads them
    tables: dict[str, pl.DataFrame | pl.LazyFrame] = {
        name: scan_fact(entry, relative) for name, relative in TABLE_FILES.items()
    }
    from effortlens.schema import TABLES

    canonical_reps = reps.select(
        pl.col(c).cast(dtype) for c, dtype in TABLES["reps"].columns.items() if c in reps.columns
    )
    tables["reps"] = canonical_reps
    tables["activities"] = facts["activities"].select(list(TABLES["activities"].columns))
    tables["buyer_actions"] = facts["actions"].select(list(TABLES["buyer_actions"].columns))
    enriched = Enriched(
        activities=facts["activities"],
        actions=facts["actions"],
        daily=daily,
        reps=reps,
        tables=tables,
        settings=settings,
        fingerprint=manifest["key"],
        aggregates={  # optional: a build without them is read as before
            name: _holding(scan_fact(entry, relative), held, text=False)
            for name, relative in AGGREGATES_LAYOUT.items()
            if relative in manifest["files"]
            or any(f.startswith(relative + "/") for f in manifest["files"])  # part files
        },
    )
    _ENTRIES[manifest["key"]] = entry
    saved = json.loads((entry / REPORT_FILE).read_text("utf-8"))
    reasons: dict[str, int] = {}
    for table in saved["report"]["tables"]:
        for code, n in table["quarantined"].items():
            reasons[code] = reasons.get(code, 0) + n
    quarantine, complete = held_quarantine(entry / QUARANTINE_FILE, reasons)
    data = built_data(
        tables=enriched.tables,
        quarantine=quarantine,
        quarantine_file=entry / QUARANTINE_FILE,
        quarantine_complete=complete,
        report=_report_from_json(saved["report"]),
        settings=settings,
        missing_tables=tuple(saved["missing_tables"]),
        source=saved["source"],
        enriched=enriched,
        build=str(entry),
    )
    return Build(path=entry, manifest=dict(manifest), enriched=enriched, data=data)


__all__ = [
    "AGGREGATES_LAYOUT",
    "FACTS_LAYOUT",
    "FACT_SCHEMAS",
    "FORMAT",
    "KERNEL_CATEGORICAL",
    "TABLE_FILES",
    "Build",
    "BuildWarning",
    "DamagedBuild",
    "Progress",
    "build",
    "build_key",
    "code_version",
    "held_categorical",
    "input_fingerprint",
    "open_build",
    "sampled_hash",
    "entry_of",
    "scan_fact",
    "verify_entry",
    "write_aggregates",
    "write_partition_aggregates",
]
