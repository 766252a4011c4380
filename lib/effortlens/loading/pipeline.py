"""Loading that loses nothing: read a folder, validate every row, quarantine what cannot be used.

Every input row ends up either in its canonical table or in the quarantine table, with one
reason code and a message naming the file, the row, the column, the bad value and what was
expected. The load report counts both per table (``loaded + quarantined == read``, checked on
every load) and notes what was mapped, assumed, filled in or ignored. The rules and their
order are in :mod:`effortlens.loading.rules`.

Tables are validated in dependency order (reps, interventions, opportunities, activities,
buyer actions, stage history, participants) so references point at *loaded* rows.

Examples
--------
>>> import polars as pl
>>> from effortlens.settings import load_settings
>>> raw = {
...     "reps": RawTable("reps", pl.DataFrame({"rep_id": ["r1"]}), "reps.csv"),
...     "activities": RawTable("activities", pl.DataFrame({
...         "activity_id": ["a1", "a2"], "rep_id": ["r1", "r9"],
...         "ts": ["2024-03-05 10:00", "2024-03-05 11:00"], "activity_type": ["Call", "email"],
...     }), "activities.csv"),
... }
>>> data = validate_tables(raw, settings=load_settings())
>>> data.tables["activities"]["activity_id"].to_list(), data.quarantine["reason"].to_list()
(['a1'], ['unknown_rep'])
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import re
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from effortlens.loading import guard
from effortlens.loading.columns import canonical_header
from effortlens.loading.delimited import TextTable, read_text_table
from effortlens.loading.parquet import read_parquet_table
from effortlens.loading.report import (
    QUARANTINE_SCHEMA,
    REASONS,
    DataError,
    LoadReport,
    TableReport,
    counted,
)
from effortlens.loading.rules import REFERENCES
from effortlens.loading.table import ROW, RawTable, TableResult, validate_table
from effortlens.schema import EFFORT_OR_PIPELINE, TABLES, why_ignored
from effortlens.settings import Settings, load_settings

#: Validation order: a table's references are checked against already loaded tables.
TABLE_ORDER: tuple[str, ...] = (
    "reps",
    "interventions",
    "opportunities",
    "activities",
    "buyer_actions",
    "stage_history",
    "intervention_participants",
)
#: File name endings :func:`load_folder` reads.
FILE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".txt", ".parquet")


@dataclass(frozen=True)
class LoadedData:
    """The result of a load: canonical tables, quarantined rows and the report.

    Attributes
    ----------
    tables
        All seven canonical tables cast to their schemas; tables not given are empty.
    quarantine
        One row per unusable input row (:data:`QUARANTINE_SCHEMA`).
    report
        The :class:`LoadReport`.
    settings
        The settings the data was validated with.
    missing_tables
        Canonical tables that were not given.
    source
        The folder, or a description of where the data came from.
    """

    tables: dict[str, pl.DataFrame]
    quarantine: pl.DataFrame
    report: LoadReport
    settings: Settings
    missing_tables: tuple[str, ...]
    source: str


def _missing_required(present: set[str]) -> str | None:
    """What is missing among the required tables, or None."""
    lacking = []
    if "reps" not in present:
        lacking.append("reps")
    if not present & set(EFFORT_OR_PIPELINE):
        lacking.append(" or ".join(EFFORT_OR_PIPELINE))
    if not lacking:
        return None
    return (
        " and ".join(lacking) + " missing; EffortLens needs reps plus activities or opportunities"
    )


def validate_tables(
    raw: dict[str, RawTable],
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
    pre_quarantined: pl.DataFrame | None = None,
) -> LoadedData:
    """Validate source tables row by row into canonical tables, quarantine and load report.

    The shared pipeline behind :func:`load_folder` and the CRM adapters. See the module
    docstring for the rules and their order.

    Parameters
    ----------
    raw
        Canonical table name to :class:`RawTable`; absent tables are reported as missing.
    settings
        Vocabularies, defaults and the time zone of naive times (default: the defaults).
    now
        The load time; later timestamps are quarantined. Default: the current UTC time.
    pre_quarantined
        Rows a caller already rejected, in :data:`QUARANTINE_SCHEMA`; counted into the report.

    Returns
    -------
    LoadedData

    Raises
    ------
    DataError
        When reps, or both activities and opportunities, are missing, or a required column is.

    Examples
    --------
    >>> import polars as pl
    >>> from effortlens.settings import load_settings
    >>> reps = RawTable("reps", pl.DataFrame({"rep_id": ["r1", "r1"]}), "reps.csv")
    >>> opps = RawTable("opportunities", pl.DataFrame({
    ...     "opportunity_id": ["o1"], "rep_id": ["r1"], "created_ts": ["1/31/2024"],
    ...     "outcome": ["Won"]}), "opportunities.csv")
    >>> data = validate_tables({"reps": reps, "opportunities": opps}, settings=load_settings())
    >>> data.report.to_dict()["reps"]["quarantined"]
    {'duplicate_id': 1}
    """
    _check_names(raw)
    if settings is None:
        settings = load_settings()
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    pre = _pre_quarantine(pre_quarantined)

    tables: dict[str, pl.DataFrame] = {}
    quarantines = [pre]
    notes: list[str] = []
    entries: dict[str, TableReport] = {}
    references: dict[str, pl.Series | None] = {}
    for name in TABLE_ORDER:
        result = _validate_one(
            name, raw, pre, settings=settings, now=now, references=references,
            tables=tables, entries=entries, check_memory=True,
        )  # fmt: skip
        if result is not None:
            quarantines.append(result.quarantine)
            notes += result.notes

    return LoadedData(
        tables={t: tables[t] for t in TABLES},
        quarantine=pl.concat(quarantines, how="vertical"),
        report=LoadReport(tables=tuple(entries[t] for t in TABLES), notes=tuple(notes)),
        settings=settings,
        missing_tables=tuple(t for t in TABLES if entries[t].missing),
        source=", ".join(sorted({t.file for t in raw.values()})),
    )


def _validate_one(
    name: str,
    raw: dict[str, RawTable],
    pre: pl.DataFrame,
    *,
    settings: Settings,
    now: datetime,
    references: dict[str, pl.Series | None],
    tables: dict[str, pl.DataFrame],
    entries: dict[str, TableReport],
    check_memory: bool = False,
) -> TableResult | None:
    """Validate table ``name`` of ``raw`` whole (the step :func:`validate_tables` and
    :func:`load_folder_chunked` take for each table not validated in chunks): its loaded rows
    go in ``tables``, its keys in ``references`` (what later tables' rules 9-10 look up), its
    report, with the rows of it set aside in ``pre``, in ``entries``. Its result (the caller
    keeps its quarantine and notes), or ``None`` when it was not given (an empty table).
    ``check_memory``: stop the load there when it is over its memory budget."""
    earlier = pre.filter(pl.col("table") == name)
    if name not in raw:
        tables[name] = TABLES[name].empty()
        references[name] = None
        entries[name] = _not_given_entry(name, earlier)
        return None
    with guard.guarded(raw[name].file):
        result = validate_table(raw[name], settings=settings, now=now, references=references)
        if check_memory:
            guard.check_memory(raw[name].file, f"validating the {name} table")
    tables[name] = result.loaded
    key = TABLES[name].key
    references[name] = result.loaded[key] if key else None
    entries[name] = _table_entry(name, raw[name].file, result, earlier)
    return result


def _check_names(raw: dict[str, RawTable]) -> None:
    """Canonical table names, each under its own name, and the required tables given."""
    unknown = set(raw) - set(TABLES)
    if unknown:
        raise ValueError(f"not canonical tables: {sorted(unknown)}; expected {list(TABLES)}")
    for name, table in raw.items():
        if table.table != name:
            raise ValueError(f"RawTable for {table.table!r} given under the name {name!r}")
    lacking = _missing_required(set(raw))
    if lacking:
        given = ", ".join(f"{t.table} ({t.file})" for t in raw.values()) or "nothing"
        raise DataError(f"{lacking}; given: {given}")


def _pre_quarantine(rows: pl.DataFrame | None) -> pl.DataFrame:
    """The rows a caller already rejected, in :data:`QUARANTINE_SCHEMA` (empty when none)."""
    if rows is None:
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    pre = rows.select(pl.col(name).cast(dtype) for name, dtype in QUARANTINE_SCHEMA.items())
    stray = set(pre["table"].unique().to_list()) - set(TABLES)
    if stray:
        raise ValueError(f"pre_quarantined rows name unknown tables: {sorted(stray)}")
    return pre


def _reason_counts(quarantine: pl.DataFrame | list[Path]) -> dict[str, int]:
    """Quarantined rows per reason (of a frame, or of quarantine files read one column)."""
    if isinstance(quarantine, list):
        quarantine = scan_quarantine(quarantine).select("reason").collect()
    return dict(quarantine.group_by("reason").len().iter_rows())


def _not_given_entry(name: str, earlier: pl.DataFrame) -> TableReport:
    """The report of a table not given: missing, unless a caller set rows of it aside."""
    file = earlier["file"][0] if earlier.height else None
    return TableReport(
        name, file, earlier.height, 0, _reason_counts(earlier), missing=not earlier.height
    )


def _table_entry(
    name: str, file: str, result: TableResult | _Counts, earlier: pl.DataFrame
) -> TableReport:
    """The report of a validated table, rows set aside earlier included; checks the invariant
    ``loaded + quarantined == read``."""
    counts = _reason_counts(result.quarantine)
    for reason, n in _reason_counts(earlier).items():
        counts[reason] = counts.get(reason, 0) + n
    loaded = result.loaded if isinstance(result.loaded, int) else result.loaded.height
    entry = TableReport(
        name,
        file,
        result.read + earlier.height,
        loaded,
        {r: counts[r] for r in REASONS if r in counts}
        | {r: n for r, n in counts.items() if r not in REASONS},
        lines=result.lines,
        blank_lines=result.blank_lines,
        quoted_lines=result.quoted_lines,
    )
    if entry.loaded + entry.quarantined_total != entry.read:
        raise AssertionError(
            f"load invariant broken for {name}: loaded {entry.loaded} + quarantined "
            f"{entry.quarantined_total} != read {entry.read}"
        )
    return entry


def _table_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Files named after canonical tables, and the names of the other files."""
    found: dict[str, Path] = {}
    others: list[str] = []
    try:
        listing = sorted(folder.iterdir())
    except OSError as err:
        raise guard.unreadable(str(folder), err) from err
    for path in listing:
        try:
            if path.name.startswith(".") or not path.is_file():
                continue
        except OSError:  # a name the system will not stat: counted as another file
            others.append(path.name)
            continue
        if path.name.lower() in ("settings.toml", "mapping.toml"):
            continue  # the folder's settings and mapping: read, not ignored
        stem, suffix = path.stem.strip().lower(), path.suffix.lower()
        if stem in TABLES and suffix in FILE_SUFFIXES:
            if stem in found:
                raise DataError(
                    f"{folder}: two files for the {stem} table ({found[stem].name}, {path.name}); "
                    "keep one"
                )
            found[stem] = path
        else:
            others.append(path.name)
    return found, others


def _read_table(table: str, path: Path) -> tuple[RawTable, pl.DataFrame | None]:
    """A table file as a :class:`RawTable` (Parquet as typed, text as all-String columns),
    and the rows set aside while reading (rows that swallowed several lines), or ``None``."""
    with guard.guarded(path.name):
        if path.suffix.lower() == ".parquet":
            frame = read_parquet_table(path, table=table)
            return RawTable(table, frame.with_row_index(ROW, offset=1), path.name), None
        text = read_text_table(path, set_aside_surplus=True)
        _check_repeated_headers(table, path.name, text.frame.columns)
        if text.rows is None:
            frame = text.frame.with_row_index(ROW, offset=1)
        else:
            columns = text.frame.columns
            frame = text.frame.with_columns(text.rows.alias(ROW)).select(ROW, *columns)
        frame, broken = _broken_rows(table, path.name, frame, text)
        surplus = _surplus_rows(table, path.name, text)
        if surplus is not None:
            broken = surplus if broken is None else pl.concat([broken, surplus])
        raw = RawTable(
            table,
            frame,
            path.name,
            decimal_comma=text.delimiter == ";",
            lines=text.data_lines,  # a header that swallowed lines leaves them not read
            quoted_lines=text.quoted_lines,
        )
        _note_lines(table, path.name, text)
        return raw, broken


def _check_repeated_headers(table: str, file: str, columns: list[str]) -> None:
    """Refuse a table column named twice (the reader renames the second ``x_duplicated_0``)."""
    spec = TABLES[table]
    for number, column in enumerate(columns, start=1):
        base, marker, _ = column.rpartition("_duplicated_")
        if marker and base in columns and canonical_header(base) in spec.columns:
            first = columns.index(base) + 1
            raise DataError(
                f"{file}: line 1 (the header) names {base} twice (columns {first} and "
                f"{number}); expected each column once: keep one"
            )


def _note_lines(table: str, file: str, text: TextTable) -> None:
    """Notes for the report: line ends read, lines inside quoted values (rows the reader
    missed show as :attr:`TableReport.unaccounted`)."""
    count = text.count
    if text.line_ends == "CR":
        guard.note(f"{table} ({file}): lines end with a bare CR (old Mac or Excel); read as such")
    spans = count.multi_line_records()
    inside = count.lines - count.header_lines - count.records
    if spans:
        rows = ", ".join(f"row {r:,} (lines {a:,}-{b:,})" for r, a, b in spans[:5])
        more = f" and {len(spans) - 5:,} more" if len(spans) > 5 else ""
        guard.note(
            f"{table} ({file}): {counted(count.lines - count.header_lines, 'line')} of data "
            f"hold {counted(count.records, 'record')}: {counted(inside, 'line')} lie inside "
            f"quoted values, in {rows}{more}"
        )
    if text.lost:  # also flagged in the report's table (TableReport.unaccounted)
        guard.note(
            f"{table} ({file}): counting the lines finds {counted(count.records, 'record')} "
            f"but the reader read {counted(text.frame.height, 'row')}; check the file's "
            "quotes and line ends"
        )


def _surplus_rows(table: str, file: str, text: TextTable) -> pl.DataFrame | None:
    """Lines with more fields than the header, set aside as ``extra_fields``."""
    if not text.surplus:
        return None
    header = len(text.frame.columns)
    n = len(text.surplus)
    return pl.DataFrame(
        {
            "table": [table] * n,
            "file": [file] * n,
            "row": [row for row, _, _, _ in text.surplus],
            "column": [None] * n,
            "reason": ["extra_fields"] * n,
            "message": [
                f"{file} row {row}: line {line:,} has {fields:,} fields, the header {header:,}; "
                "expected no more fields than the header (a value holding the delimiter is "
                "quoted)"
                for row, line, fields, _ in text.surplus
            ],
            "raw": [json.dumps({"line": line_text[:200]}) for _, _, _, line_text in text.surplus],
        }
    ).cast(dict(QUARANTINE_SCHEMA))


def _broken_rows(
    table: str, file: str, frame: pl.DataFrame, text: TextTable
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Rows whose canonical values hold a line break, set aside as ``merged_lines``.

    A canonical value (an id, a type, a time, a number, a name) never spans lines: such a row
    is several lines read as one behind an unbalanced quote.
    """
    spec = TABLES[table]
    canonical = [c for c in frame.columns if canonical_header(c) in spec.columns]
    if not canonical or not text.count.continuation.size:
        return frame, None
    has_break = pl.any_horizontal(pl.col(canonical).str.contains(r"[\r\n]").fill_null(False))
    broken = frame.filter(has_break)
    if not broken.height:
        return frame, None
    spans = {row: (first, last) for row, first, last in text.count.multi_line_records()}
    rows = broken[ROW].to_list()
    where = [spans.get(r, (text.count.line_of_row(r),) * 2) for r in rows]
    source = [c for c in frame.columns if c != ROW]
    messages = [
        f"{file} row {r}: lines {a:,}-{b:,} were read as one row (a quote on line {a:,} is not "
        f"closed on that line); expected one line per row, quotes closed on their line"
        for r, (a, b) in zip(rows, where, strict=True)
    ]
    first_column = broken.select(
        pl.coalesce(
            pl.when(pl.col(c).str.contains(r"[\r\n]")).then(pl.lit(canonical_header(c)))
            for c in canonical
        )
    ).to_series()
    quarantine = pl.DataFrame(
        {
            "table": [table] * broken.height,
            "file": [file] * broken.height,
            "row": broken[ROW],
            "column": first_column,
            "reason": ["merged_lines"] * broken.height,
            "message": messages,
            "raw": broken.select(
                pl.struct(pl.col(source).str.slice(0, 200)).struct.json_encode()
            ).to_series(),
        }
    ).cast(dict(QUARANTINE_SCHEMA))
    return frame.filter(~has_break), quarantine


def load_folder(
    path: str | Path, *, settings: Settings | None = None, now: datetime | None = None
) -> LoadedData:
    """Load a folder of files named after the canonical tables.

    ``reps.csv``, ``Activities.CSV``, ``opportunities.parquet``… (``.csv``, ``.tsv``, ``.txt``
    with the delimiter sniffed, or ``.parquet``; names are case-insensitive). ``reps`` plus
    ``activities`` or ``opportunities`` are required; other tables are optional and reported
    as missing. Other files are ignored and noted.

    Parameters
    ----------
    path
        The folder.
    settings
        See :func:`effortlens.settings.load_settings` (default: the defaults).
    now
        Load time for the future-timestamp rule (default: the current UTC time).

    Raises
    ------
    DataError
        When the folder, a required file or a required column is missing, or a file is
        unreadable; the message names what was expected and what was found.

    Examples
    --------
    >>> import tempfile
    >>> from effortlens.settings import load_settings
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "reps.csv").write_text("rep_id\\nr1\\n")
    >>> _ = (folder / "opportunities.csv").write_text(
    ...     "opportunity_id,rep_id,created_ts,outcome\\no1,r1,2024-01-31,open\\n")
    >>> load_folder(folder, settings=load_settings()).missing_tables[:2]
    ('activities', 'buyer_actions')
    """
    if settings is None:
        settings = load_settings()
    folder = Path(path)
    with guard.load_scope(settings.limits) as scope, guard.guarded(str(folder)):
        return _load_folder(folder, settings=settings, now=now, scope=scope)


def _load_folder(
    folder: Path, *, settings: Settings, now: datetime | None, scope: guard.LoadScope
) -> LoadedData:
    """:func:`load_folder` inside its load scope."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files, others = _table_files(folder)
    lacking = _missing_required(set(files))
    if lacking:
        seen = ", ".join(sorted([p.name for p in files.values()] + others)) or "no files"
        raise DataError(
            f"{folder}: {lacking} (files named like reps.csv, activities.csv or .parquet); "
            f"found: {seen}"
        )
    raw: dict[str, RawTable] = {}
    set_aside = []
    for table, p in files.items():
        raw[table], broken = _read_table(table, p)
        if broken is not None:
            set_aside.append(broken)
    pre = pl.concat(set_aside) if set_aside else None
    data = validate_tables(raw, settings=settings, now=now, pre_quarantined=pre)
    notes = tuple(f"ignored file {why_ignored(name)}" for name in others)
    report = LoadReport(
        tables=data.report.tables, notes=data.report.notes + tuple(scope.notes) + notes
    )
    return LoadedData(
        tables=data.tables,
        quarantine=data.quarantine,
        report=report,
        settings=settings,
        missing_tables=data.missing_tables,
        source=str(folder),
    )


# --- chunked validation (the partitioned build, :mod:`effortlens.partitioned`) -----------------

#: The tables validated in chunks by :func:`load_folder_chunked`; the others are small.
EVENT_TABLES: tuple[str, ...] = ("activities", "buyer_actions")
_BUCKET_SEED = 20260511
_NUMBER = re.compile(r"(\d[\d,]*) (blank lines?|[a-z]+)")


@dataclass(frozen=True)
class ChunkedLoad:
    """A load whose event tables were validated in chunks and written to disk.

    Attributes
    ----------
    tables
        The small canonical tables (the event tables are empty frames here).
    events
        ``"activities"`` / ``"buyer_actions"`` to the validated part files: canonical columns
        plus ``__row``, the row in the input file (the loaded order of a table is its
        :data:`effortlens.loading.table.SORT_KEYS` order, ties by ``__row``).
    rows
        Loaded rows per event table.
    quarantine
        Parquet files under the scratch folder which, read in this order, are the in-memory
        load's quarantine (:data:`QUARANTINE_SCHEMA`); :func:`read_quarantine` reads them.
        Each chunk writes its own as it goes (100M: 6.7M rows, ~3 GB in memory).
    report, settings, missing_tables, source
        As :class:`LoadedData`.
    partitions
        When the load wrote its events by partition (:class:`Partitions`), their number.
    """

    tables: dict[str, pl.DataFrame]
    events: dict[str, list[Path]]
    rows: dict[str, int]
    quarantine: list[Path]
    report: LoadReport
    settings: Settings
    missing_tables: tuple[str, ...]
    source: str
    partitions: int | None = None


@dataclass(frozen=True)
class Partitions:
    """Where a chunked load writes its loaded event rows: already by partition.

    The partitioned build (:func:`effortlens.partitioned.plan_partitions`) finds, before the
    load, the partition of every key value; each chunk then writes its loaded rows of
    partition ``p`` to ``out/<table>/__part=<p>/part-<chunk>.parquet`` (with ``__row``, in
    the chunk's row order) instead of one file, so no later pass reads every event to split
    them.

    Attributes
    ----------
    out
        The partitions' folder.
    keys
        The key columns, in the order a row's partition is found: its first non-null key's.
    maps
        One Parquet file per key: each value (as the load reads it) and its partition
        (``__part``).
    count
        Partitions; an event without any key goes to ``__row`` modulo ``count``.
    tidy
        The key columns whose every value in every event table is written without blanks
        around it and not empty (the plan read them all): no chunk looks for one to trim.
    codes
        When given, the key columns are written as integer codes, not text: a folder of the
        plan's arrays (:func:`effortlens.partitioned.plan_partitions`): each input row's
        place in the files' dictionaries (``rows-<table>-<key>.u32``), each place's value
        (``flat-<key>.u32``, :data:`NO_CODE`: none), each value's code (its rank among the
        sorted values of that key in its partition: ``local-<key>.u32``) and partition
        (``part-<key>.u32``); each partition's values of each key, sorted, in
        ``out/values/__part=<p>/<key>.parquet``
        (:func:`effortlens.partitioned.read_partition` gives the text back).
    """

    out: Path
    keys: tuple[str, ...]
    maps: tuple[Path, ...]
    count: int
    tidy: tuple[str, ...] = ()
    codes: Path | None = None

    def write(self, table: str, frame: pl.DataFrame, k: int) -> list[Path]:
        """The loaded rows ``frame`` of chunk ``k`` of ``table`` written by partition; the
        files written. With :attr:`codes`, its key columns as their codes.

        Examples
        --------
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp())
        >>> pl.DataFrame({"account_id": ["a"], "__part": [1]}, schema_overrides={"__part":
        ...     pl.UInt32}).write_parquet(out / "a.parquet")
        >>> pl.DataFrame({"contact_id": ["c"], "__part": [0]}, schema_overrides={"__part":
        ...     pl.UInt32}).write_parquet(out / "c.parquet")
        >>> route = Partitions(out, ("account_id", "contact_id"),
        ...                    (out / "a.parquet", out / "c.parquet"), 2)
        >>> frame = pl.DataFrame({"account_id": ["a", None, None], "contact_id": ["c", "c", None],
        ...                       "__row": [1, 2, 3]})
        >>> [p.parent.name for p in route.write("activities", frame, 0)]
        ['__part=0', '__part=1']
        >>> pl.read_parquet(out / "activities" / "__part=1")["__row"].to_list()
        [1, 3]
        """
        if self.codes is None:
            part = self.partition_of(frame)
        else:  # the key columns as codes (UInt32): 4-byte gathers, no text to encode
            frame, part = self.coded(table, frame)
        written = []
        split = frame.with_columns(part).partition_by(
            _PART, as_dict=True, maintain_order=True, include_key=False
        )
        for (p,), rows in sorted(split.items()):
            folder = self.out / table / f"{_PART}={p}"
            folder.mkdir(parents=True, exist_ok=True)
            # written once, read whole once: neither compressed nor with statistics
            rows.write_parquet(
                folder / f"part-{k:05d}.parquet", compression="uncompressed", statistics=False
            )
            written.append(folder / f"part-{k:05d}.parquet")
        return written

    def coded(self, table: str, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
        """``frame`` (loaded rows of ``table``) with its key columns replaced by their codes
        in their partition, and the partition of each row (as :meth:`partition_of`), looked
        up by each row's input row (``__row``) in :attr:`codes`: what the plan read of that
        row is what the load read (its keys trimmed, empty as null). No text is hashed: 10m,
        3.16M rows, ~0.1 CPU s against 0.2 for :meth:`partition_of`'s join on the account,
        and the key columns' gathers by partition and dictionary encoding in the writes
        (~0.3) saved."""
        assert self.codes is not None
        rows = frame[ROW].to_numpy().astype(np.int64) - 1
        part = np.zeros(frame.height, np.uint32)
        todo = np.ones(frame.height, dtype=bool)  # rows without a key so far
        columns = []
        for key in self.keys:
            if key not in frame.columns:
                continue
            flat = _mapped(self.codes / f"rows-{table}-{key}.u32")[rows]
            value = _mapped(self.codes / f"flat-{key}.u32")[flat]
            none = value == NO_CODE
            if none.all():  # (and perhaps no value of this key at all)
                code = pl.repeat(None, frame.height, dtype=pl.UInt32, eager=True).alias(key)
            else:
                value[none] = 0
                code = pl.Series(key, _mapped(self.codes / f"local-{key}.u32")[value])
                if none.any():
                    code = code.scatter(np.flatnonzero(none), None)
            if (code.null_count() != frame[key].null_count()) or (
                code.is_null() != frame[key].is_null()
            ).any():  # never: the plan read every row the load reads
                raise RuntimeError(f"{table}: {key} of the plan and of the load differ (a bug)")
            columns.append(code)
            take = todo & ~none
            if take.any():
                part[take] = _mapped(self.codes / f"part-{key}.u32")[value[take]]
            todo &= none
        if todo.any():
            part[todo] = (rows[todo] + 1) % self.count
        return frame.with_columns(columns), pl.Series(_PART, part)

    def partition_of(self, frame: pl.DataFrame) -> pl.Series:
        """The partition of each row of ``frame``: its first non-null key's; without any
        key, its input row (``__row``) modulo :attr:`count`."""
        part = pl.Series(_PART, np.zeros(frame.height, np.uint32))
        todo = pl.Series(np.ones(frame.height, dtype=bool))  # rows without a key so far
        for key, path in zip(self.keys, self.maps, strict=True):
            if key not in frame.columns:
                continue
            take = todo & frame[key].is_not_null()
            if not take.any():
                continue
            values = frame.select(pl.col(key).filter(take))
            mapping = pl.read_parquet(path)
            found = values.join(mapping, on=key, how="left", maintain_order="left")[_PART]
            if found.null_count():  # never: the plan read every key the load reads
                missing = values.filter(found.is_null())[key][0]
                raise RuntimeError(f"{key} {missing!r} is in no partition (a bug)")
            part = part.scatter(take.arg_true(), found)
            todo = todo & ~take
        if todo.any():
            spread = (frame[ROW].filter(todo) % self.count).cast(pl.UInt32)
            part = part.scatter(todo.arg_true(), spread)
        return part


#: The partition column of :class:`Partitions` (a Hive-style folder name, as the build reads).
_PART = "__part"
#: No value in :attr:`Partitions.codes`' arrays (a null key).
NO_CODE = np.uint32(0xFFFFFFFF)


def _mapped(path: Path) -> np.ndarray:
    """One of :attr:`Partitions.codes`' arrays, mapped (read where it is looked at)."""
    return np.memmap(path, dtype=np.uint32, mode="r")


class PendingPartitions:
    """:class:`Partitions` still being found in this process (``future``, a thread's) when the
    chunks start: each chunk's process validates its rows, then waits for them (:meth:`wait`:
    the file ``path``, a pickled :class:`Partitions` or ``None``, written by :meth:`found`).

    The plan is the load's longest step before the chunks (100M: ~22 CPU s, ~10 s of it alone
    on one core once the small tables and the ids are done); the chunks' reads and validation
    need none of it, so they run beside its end.

    Examples
    --------
    >>> import tempfile
    >>> from concurrent.futures import Future
    >>> future = Future()
    >>> pending = PendingPartitions(Path(tempfile.mkdtemp()) / "plan.pickle", future)
    >>> pending.done()
    False
    >>> pending.found(None)
    >>> future.set_result(None)
    >>> import pickle
    >>> there = pickle.loads(pickle.dumps(pending))  # what a chunk's process gets
    >>> there.done(), there.wait() is None
    (True, True)
    """

    def __init__(self, path: Path, future: Future | None = None) -> None:
        """Partitions to be written to ``path``; ``future`` gives them in this process."""
        self.path = path
        self.future = future

    def __getstate__(self) -> dict:
        """What another process gets: the file to wait for (a future is of this process)."""
        return {"path": self.path, "future": None}

    def found(self, plan: Partitions | None) -> None:
        """Write ``plan`` (found) for the processes waiting on :attr:`path`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        part = self.path.with_name(self.path.name + ".part")
        part.write_bytes(pickle.dumps(plan))
        part.rename(self.path)  # whole or not at all

    def done(self) -> bool:
        """Whether the partitions are found (waiting for them would not wait)."""
        if self.future is not None:
            return self.future.done()
        return self.path.exists()

    def wait(self) -> Partitions | None:
        """The partitions, once found (in this process, the plan's own failure is raised; a
        chunk's process waits for the file: it is killed if the load fails meanwhile)."""
        if self.future is not None:
            return self.future.result()
        while not self.path.exists():
            time.sleep(_PLAN_POLL_S)
        return pickle.loads(self.path.read_bytes())


#: How often a chunk's process looks for the partitions it waits for (:class:`PendingPartitions`).
_PLAN_POLL_S = 0.02


def scan_quarantine(files: list[Path]) -> pl.LazyFrame:
    """The quarantine of a :class:`ChunkedLoad` (its files, in order) as one lazy frame.

    Examples
    --------
    >>> scan_quarantine([]).collect().schema == QUARANTINE_SCHEMA
    True
    """
    if not files:
        return pl.LazyFrame(schema=QUARANTINE_SCHEMA)
    return pl.concat([pl.scan_parquet(f) for f in files], how="vertical")


def read_quarantine(files: list[Path]) -> pl.DataFrame:
    """The quarantine of a :class:`ChunkedLoad` read into memory (small loads, tests).

    Examples
    --------
    >>> read_quarantine([]).height
    0
    """
    return scan_quarantine(files).collect()


def _quarantine_file(
    frame: pl.DataFrame, path: Path, files: list[Path], *, row_group_size: int | None = None
) -> None:
    """Write a non-empty quarantine ``frame`` to ``path`` and list it in ``files``."""
    if frame.height:
        path.parent.mkdir(parents=True, exist_ok=True)
        # scratch: streamed into the build's quarantine file (lz4: half of zstd's CPU)
        frame.write_parquet(
            path, compression=SCRATCH_CODEC, statistics=True, row_group_size=row_group_size
        )
        files.append(path)


def streamable_rows(path: str | Path) -> int | None:
    """Rows of the event tables of a canonical folder whose event files are Parquet (read from
    the footers), or ``None`` when the folder cannot be validated in chunks.

    Examples
    --------
    >>> import tempfile
    >>> streamable_rows(tempfile.mkdtemp()) is None
    True
    """
    folder = Path(path)
    if not folder.is_dir():
        return None
    try:
        files, _ = _table_files(folder)
    except DataError:
        return None
    if _missing_required(set(files)) or "activities" not in files:
        return None
    total = 0
    for name in EVENT_TABLES:
        if name not in files:
            continue
        if files[name].suffix.lower() != ".parquet":
            return None
        try:
            total += pl.scan_parquet(files[name]).select(pl.len()).collect().item()
        except (pl.exceptions.PolarsError, OSError):
            return None
    return total


def load_folder_chunked(
    path: str | Path,
    out: str | Path,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
    chunk_rows: int = 4_000_000,
    partitions: Partitions | PendingPartitions | Callable[[], Partitions | None] | None = None,
    tables_to: Path | None = None,
) -> ChunkedLoad:
    """Validate a canonical folder whose event tables are Parquet, the event tables in chunks.

    Each event table is read in chunks of consecutive input rows, except that every repeat of
    an id falls in one chunk (the rows of ids seen more than once are set aside and validated
    in chunks of their own, by a hash of the trimmed id), so the duplicate rule ("first
    kept") is exact; each chunk is then
    validated like :func:`validate_tables` does a whole table, with the input row numbers kept
    (messages name the same rows), and its loaded rows are written under ``out`` with their
    input row (``__row``), in input order (not sorted: the partitioned build sorts each
    partition by the table's sort keys, ties by that row, as the whole load's order). The report
    counts as the in-memory load does: ``loaded + quarantined == read`` per table.

    A table of more than :data:`ISOLATE_ABOVE_ROWS` rows is validated in child processes,
    ``limits.build_workers`` at once (:func:`effortlens.partitioned.build_workers`: two on two
    cores), a few consecutive chunks each (:class:`_ChunkRunner`), while this process goes on
    with the next table; each chunk's files are named by its number and its results taken in
    that order, so what is written is the same whichever chunks run at once.

    Parameters
    ----------
    path
        The folder (see :func:`load_folder`); its activities and buyer actions must be Parquet
        (:func:`streamable_rows` is not ``None``).
    out
        A scratch folder for the chunks.
    settings, now
        As for :func:`load_folder`.
    chunk_rows
        Rows per chunk (about).
    partitions
        Write each chunk's loaded rows by partition (:class:`Partitions`; then
        :attr:`ChunkedLoad.events` lists every partition file and
        :attr:`ChunkedLoad.partitions` their number) instead of one file a chunk; or what
        to call for them (called once, when the first chunk is about to start: the caller
        may still be finding them while the small tables and the ids are read); or
        :class:`PendingPartitions`: the chunks start at once and each waits for them after
        its validation.
    tables_to
        Also write every canonical table to ``tables_to/<table>.parquet`` (the event tables
        empty), each small one as soon as it is validated, while the event tables' chunks
        run (what a load in a child process sends back instead of the frames).

    Returns
    -------
    ChunkedLoad

    Examples
    --------
    >>> data = load_folder_chunked("exports/big", "/tmp/scratch")  # doctest: +SKIP
    >>> data.report.to_dict()["activities"]["read"]  # doctest: +SKIP
    100000000
    """
    if settings is None:
        settings = load_settings()
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    folder, out = Path(path), Path(out)
    pending = partitions if isinstance(partitions, PendingPartitions) else None
    if pending is not None:
        plan = functools.cache(pending.wait)
    else:
        plan = functools.cache(partitions if callable(partitions) else lambda: partitions)
    with guard.load_scope(settings.limits) as scope, guard.guarded(str(folder)):
        if streamable_rows(folder) is None:
            raise DataError(f"{folder}: not a folder whose activities are Parquet")
        files, others = _table_files(folder)
        raw: dict[str, RawTable] = {}
        set_aside = []
        for table, p in files.items():
            if table in EVENT_TABLES:
                continue
            raw[table], broken = _read_table(table, p)
            if broken is not None:
                set_aside.append(broken)
        pre = _pre_quarantine(pl.concat(set_aside) if set_aside else None)
        tables: dict[str, pl.DataFrame] = {}
        held = out / "quarantine"  # each table's quarantine a file as it goes, not held
        quarantines: list[Path] = []
        _quarantine_file(pre, held / "00-set-aside.parquet", quarantines)
        notes: list[str] = []
        entries: dict[str, TableReport] = {}
        references: dict[str, pl.Series | None] = {}
        events: dict[str, list[Path]] = {}
        rows: dict[str, int] = {}
        # each table's quarantine files and notes, put in table order at the end; the small
        # tables first (no table refers to an event table): what their validation takes is
        # given back before two chunks' processes hold theirs (100M: stage history 6.1M rows)
        held_by: dict[str, list[Path]] = {name: [] for name in TABLE_ORDER}
        notes_by: dict[str, list[str]] = {name: [] for name in TABLE_ORDER}
        started: dict[str, Callable[[], tuple[list[Path], _Counts]]] = {}
        chunked = [name for name in TABLE_ORDER if name in EVENT_TABLES and name in files]
        with _chunk_runner(settings) as runner:
            for name in [n for n in TABLE_ORDER if n not in chunked] + chunked:
                if name in EVENT_TABLES and name in files:
                    file = files[name]
                    with guard.guarded(file.name):
                        started[name] = _validate_in_chunks(
                            name,
                            file,
                            out / name,
                            settings=settings,
                            now=now,
                            references=references,
                            chunk_rows=chunk_rows,
                            partitions=plan,
                            pending=pending,
                            runner=runner,
                        )
                    tables[name] = TABLES[name].empty()
                    references[name] = None  # no table refers to an event table
                    continue
                result = _validate_one(
                    name, raw, pre, settings=settings, now=now, references=references,
                    tables=tables, entries=entries,
                )  # fmt: skip
                if result is None:
                    continue
                index = TABLE_ORDER.index(name) + 1
                path = held / f"{index:02d}-{name}.parquet"
                _quarantine_file(result.quarantine, path, held_by[name])
                if tables_to is not None:  # while the chunks run
                    _table_file(result.loaded, tables_to, name)
                notes_by[name] = result.notes
            for name, finish in started.items():  # the chunks' results, in table order
                file = files[name]
                with guard.guarded(file.name):
                    parts, counts = finish()
                events[name] = parts
                rows[name] = counts.loaded
                held_by[name] = counts.quarantine
                notes_by[name] = counts.notes
                earlier = pre.filter(pl.col("table") == name)
                entries[name] = _table_entry(name, file.name, counts, earlier)
        for name in TABLE_ORDER:
            quarantines += held_by[name]
            notes += notes_by[name]
            if tables_to is not None and not (tables_to / f"{name}.parquet").exists():
                _table_file(tables[name], tables_to, name)  # empty
        ignored = tuple(f"ignored file {why_ignored(name)}" for name in others)
        report = LoadReport(
            tables=tuple(entries[t] for t in TABLES),
            notes=tuple(notes) + tuple(scope.notes) + ignored,
        )
        return ChunkedLoad(
            tables={t: tables[t] for t in TABLES},
            events=events,
            rows=rows,
            quarantine=quarantines,
            report=report,
            settings=settings,
            missing_tables=tuple(t for t in TABLES if entries[t].missing),
            source=str(folder),
            partitions=None if plan() is None else plan().count,
        )


def _table_file(frame: pl.DataFrame, folder: Path, name: str) -> None:
    """A validated table written to ``folder/<name>.parquet`` (scratch: read once)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(folder / f"{name}.parquet", compression=SCRATCH_CODEC)


@dataclass(frozen=True)
class _Counts:
    """What the chunks of one table gave, in :class:`TableResult`'s terms."""

    loaded: int
    quarantine: list[Path]  # files, in the loaded order of the quarantine
    read: int
    notes: list[str]
    lines: int | None = None
    blank_lines: int = 0
    quoted_lines: int = 0
    parts: tuple[Path, ...] | None = None  # the loaded rows' files, when by partition


def _validate_in_chunks(
    name: str,
    file: Path,
    out: Path,
    *,
    settings: Settings,
    now: datetime,
    references: dict[str, pl.Series | None],
    chunk_rows: int,
    runner: _ChunkRunner,
    partitions: Callable[[], Partitions | None],
    pending: PendingPartitions | None = None,
) -> Callable[[], tuple[list[Path], _Counts]]:
    """Start validating ``file`` in chunks of consecutive rows, every repeat of an id in one
    chunk, each chunk writing its loaded rows and quarantine; what to call for the result
    (the chunks' files, and their counts) once every chunk has run.

    The chunks are ranges of input rows read straight from ``file`` (no copy of the table is
    written first), run by ``runner`` (:class:`_ChunkRunner`: in child processes, several at
    once, while the caller goes on). The duplicate rule needs every row of one id in one
    chunk: the rows whose trimmed id's hash occurs more than once in the file (one pass over
    the id column; none in most files) are set aside by the range that reads them and
    validated after the ranges, in chunks by that hash (exact: a repeat of an id has the id's
    hash). Each chunk's files are named by its number, and the results are taken in that
    order, so which chunks run at once changes nothing written.

    With ``pending`` partitions not found yet, the chunks start without them and wait for
    them after their validation (:class:`PendingPartitions`).
    """
    schema = pl.read_parquet_schema(file)
    spec = TABLES[name]
    keep = []
    for column, dtype in schema.items():
        if dtype.is_nested() or dtype in (pl.Binary, pl.Object):
            if canonical_header(column) in spec.columns:
                raise DataError(
                    f"{file.name}: column {column} holds {dtype} values; expected "
                    f"{spec.columns[canonical_header(column)]} (one plain value per row)"
                )
            guard.note(f"{file.name}: ignored column of lists or records: {column} ({dtype})")
            continue
        keep.append(column)
    id_column = next((c for c in keep if canonical_header(c) == spec.key), None)
    total = pl.scan_parquet(file).select(pl.len()).collect().item()
    n_ranges = max(1, -(-total // max(chunk_rows, 1)))
    size = max(1, -(-total // n_ranges))
    repeated, n_repeated, tidy = None, 0, set()
    if id_column is not None and n_ranges > 1:
        in_order, tidy_ids = ids_in_order(file, id_column)
        if in_order:  # no id repeats: nothing set aside, and no chunk looks for repeats
            repeated = pl.Series("h", [], dtype=pl.UInt64)
            tidy = {spec.key} if tidy_ids else set()
        else:
            repeated, n_repeated = repeated_ids(file, id_column, scratch=out / "hashes")
    n_aside = -(-n_repeated // max(chunk_rows, 1))  # chunks of the set-aside rows
    out.mkdir(parents=True, exist_ok=True)
    aside = out / "repeated"
    ranges: list[list[Path] | InputRange] = [
        InputRange(file, keep, start, size, id_column, repeated, n_aside, aside)
        for start in range(0, total, size)
    ]
    # a child process validates a few chunks and ends: its memory goes back to the system
    isolate = total > ISOLATE_ABOVE_ROWS
    # only the keys this table's rows point at go to each chunk's process (not every deal id)
    needed = {target for _, target, _, applies in REFERENCES if name in applies}
    options = {
        "settings": settings,
        "now": now,
        "references": {t: keys for t, keys in references.items() if t in needed},
        "max_field_chars": guard.current_limits().max_field_chars,
    }
    if pending is not None and not pending.done():  # each chunk waits after its validation
        options["partitions"] = pending
        options["tidy"] = tuple(sorted(tidy))  # the plan's are added by the chunks that can
    else:
        plan = partitions()  # waited for here, once the ids are hashed
        options["partitions"] = plan
        # columns without a value to trim in the whole table: no chunk looks for one
        options["tidy"] = tuple(sorted(tidy | set(plan.tidy if plan is not None else ())))
    chunks = [(k, source) for k, source in enumerate(ranges)]
    started = runner.start(name, file, out, chunks, options, isolate=isolate)

    def finish() -> tuple[list[Path], _Counts]:
        partitions()  # the plan's failure first: its waiting chunks are then stopped
        results = runner.results(started)
        if n_aside:  # read once every range has run (the ranges write them)
            later = [(len(ranges) + b, aside / f"{b:05d}") for b in range(n_aside)]
            results += runner.results(
                runner.start(name, file, out, later, options, isolate=isolate)
            )
        parts: list[Path] = []
        quarantines: list[Path] = []
        notes: list[str] = []
        loaded = read = blank = 0
        for k, counts in results:
            if counts is None:
                continue
            if counts.parts is None:
                parts.append(out / f"part-{k:05d}.parquet")
            else:
                parts += counts.parts
            quarantines += counts.quarantine
            notes += counts.notes
            loaded += counts.loaded
            read += counts.read
            blank += counts.blank_lines
            guard.check_memory(file.name, f"validating chunk {k + 1} of the {name} table")
        shutil.rmtree(aside, ignore_errors=True)
        if n_aside:  # the set-aside rows' quarantine comes last: merged back into row order
            quarantines = _merge_by_row(
                quarantines, out / "quarantine", rows=total, window=chunk_rows
            )
        # else the ranges' files, each in row order, are in row order one after the other
        return parts, _Counts(loaded, quarantines, read, merge_notes(notes), None, blank)

    return finish


#: Chunks validated by one child process before it ends (a child costs ~0.4 CPU s to start;
#: the allocator keeps some of what a chunk took, so not all in one).
CHUNKS_PER_CHILD = 3


@contextmanager
def _chunk_runner(settings: Settings) -> Iterator[_ChunkRunner]:
    """A :class:`_ChunkRunner` for one load; its children stopped if the load fails."""
    from effortlens.partitioned import build_workers

    runner = _ChunkRunner(build_workers(settings))
    try:
        yield runner
    except BaseException as err:
        runner.stop(err)
        raise
    finally:
        runner.close()


class _ChunkRunner:
    """Runs the chunks of the chunked load: those of a large table in child processes
    (:class:`effortlens.partitioned.Children`), :data:`CHUNKS_PER_CHILD` consecutive chunks
    a child, up to ``workers`` children at once while the caller goes on (the next table's
    ids and chunks); those of a small table here, at once, one after another.

    A failed child stops the others (they are killed; calls not started are not run) and is
    raised by :meth:`results` (a child killed outright: a
    :class:`effortlens.build_failure.BuildFailed` naming the table and its rows).
    """

    def __init__(self, workers: int) -> None:
        """A runner of at most ``workers`` children at once (none started yet)."""
        from concurrent.futures import ThreadPoolExecutor

        from effortlens.partitioned import Children

        self.workers = max(1, workers)
        self.children = Children(isolate=True, workers=self.workers)
        # a thread per child at once, each waiting on its child (its parent-death signal
        # follows the thread that started it: the threads outlive their children)
        self.threads = ThreadPoolExecutor(max_workers=self.workers)

    def start(
        self,
        name: str,
        file: Path,
        out: Path,
        chunks: list[tuple[int, Path | InputRange]],
        options: dict,
        *,
        isolate: bool,
    ) -> list:
        """Start validating ``chunks`` (number, source) of table ``name``; what
        :meth:`results` takes. Not ``isolate``: validated here, now."""
        from concurrent.futures import Future

        calls = [(k, _chunk_arguments(k, source, name, file, out)) for k, source in chunks]
        if not isolate:
            done: Future = Future()
            done.set_result(_run_chunks(validate_chunk, calls, options))
            return [done]
        started = []
        # a few chunks a child, but no fewer children than run at once (3 chunks: 2 and 1)
        per_child = max(1, min(CHUNKS_PER_CHILD, -(-len(calls) // self.workers)))
        for i in range(0, len(calls), per_child):
            group = calls[i : i + per_child]
            first, last = group[0][0] + 1, group[-1][0] + 1
            what = f"load and validate: {name}, chunk{'s' if last > first else ''} " + (
                f"{first}-{last}" if last > first else f"{first}"
            )
            started.append(self.threads.submit(self._call, what, group, options))
        return started

    def _call(self, what: str, group: list, options: dict) -> list:
        arguments = (validate_chunk, group, options)  # the function as named here (tests)
        return self.children.call(what, _run_chunks, arguments, {}, together=self.workers)

    def results(self, started: list) -> list[tuple[int, _Counts | None]]:
        """The results of :meth:`start`'s chunks, in chunk order, once they have all run;
        the first failure of any chunk is raised."""
        results = []
        for future in started:
            try:
                results += future.result()
            except BaseException:
                failure = self.children.failure
                if failure is not None and failure is not future.exception():
                    raise failure from None  # stopped by another chunk's failure
                raise
        return results

    def stop(self, failure: BaseException) -> None:
        """Kill the running children and run no other chunk (the load failed)."""
        self.children.stop(failure)

    def close(self) -> None:
        """Wait for the threads (each ends with its child, or at once when stopped); the
        children's processes end (their memory goes back before the next step)."""
        self.threads.shutdown(wait=True, cancel_futures=True)
        close = getattr(self.children, "close", None)
        if close is not None:
            close()


def _chunk_arguments(k: int, source: Path | InputRange, name: str, file: Path, out: Path):
    """The arguments of :func:`validate_chunk` for chunk ``k`` (its files named by ``k``)."""
    part = out / f"part-{k:05d}.parquet"
    return (name, file.name, source, part, out / f"quarantine-{k:05d}.parquet")


def _run_chunks(
    validate: Callable[..., _Counts | None], group: list, options: dict
) -> list[tuple[int, _Counts | None]]:
    """``validate`` (:func:`validate_chunk`) of each chunk ``(k, arguments)`` of ``group``
    (a child process's chunks); ``None`` for a chunk without a row (a folder of set-aside
    rows with no file, read here when its turn comes)."""
    results: list[tuple[int, _Counts | None]] = []
    for k, (name, file, source, part, quarantine) in group:
        if isinstance(source, Path):
            source = sorted(source.glob("*.parquet"))
            if not source:
                results.append((k, None))
                continue
        results.append((k, validate(name, file, source, part, quarantine, **options)))
    return results


def _trimmed_id_hash(id_column: str) -> pl.Expr:
    """The hash of a row's id as the validation reads it (text, trimmed); null when empty."""
    key = pl.col(id_column).cast(pl.String).str.strip_chars()
    return pl.when(key != "").then(key.hash(_BUCKET_SEED))


#: Rows whose id hashes :func:`repeated_ids` holds at once (16M: 128 MB of hashes) when it
#: may spill them to a scratch folder: a larger file is hashed a range at a time (at 10M rows
#: that costs 0.4 CPU s more than one pass, so only files larger than this take it).
REPEAT_PASS_ROWS = 16_000_000


def repeated_ids(
    file: Path,
    id_column: str,
    *,
    scratch: Path | None = None,
    rows_per_pass: int | None = None,
) -> tuple[pl.Series, int]:
    """The hashes of the trimmed ids that occur more than once in ``file`` (a hash shared by
    two different ids counts too: it only sets rows aside), and the rows that carry them.

    The hashes of ``rows_per_pass`` rows at a time (default :data:`REPEAT_PASS_ROWS`), each
    range's written to ``scratch`` in buckets by their top bits (then each bucket sorted
    alone: a repeat of a hash is in its bucket), so that no more than a range and a bucket
    are held (100M rows: ~0.3 GB, where all the hashes sorted at once held ~2 GB); with no
    ``scratch``, or a file of one range, every hash is held and sorted at once.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "activities.parquet"
    >>> pl.DataFrame({"activity_id": ["a1", " a1", "a2", "", None, None]}).write_parquet(path)
    >>> hashes, rows = repeated_ids(path, "activity_id")
    >>> hashes.len(), rows
    (1, 2)
    >>> repeated_ids(path, "activity_id", scratch=path.parent / "h", rows_per_pass=2)[0].len()
    1
    """
    scan = pl.scan_parquet(file)
    total = scan.select(pl.len()).collect().item()
    rows_per_pass = rows_per_pass or REPEAT_PASS_ROWS
    if scratch is None or total <= rows_per_pass:
        # the hashes streamed (the ids are never all held), then sorted
        hashes = scan.select(_trimmed_id_hash(id_column).alias("h")).drop_nulls()
        repeats = _repeats(hashes.collect(engine="streaming").to_series())
    else:
        repeats = _spilled_repeats(scan, id_column, scratch, total, rows_per_pass)
    repeated = pl.Series("h", repeats, dtype=pl.UInt64).unique()
    return repeated, len(repeats) + repeated.len()  # each repeated hash: repeats + first


#: Rows of the id column :func:`ids_in_order` reads at a time (~0.3 GB of text at once).
_ORDER_PASS_ROWS = 4_000_000
#: Rows of the id column :func:`ids_in_order` looks at first (one row group of most writers):
#: ids out of order there go straight to :func:`repeated_ids`.
_ORDER_PROBE_ROWS = 262_144


def ids_in_order(
    file: Path | pl.LazyFrame, id_column: str, *, rows_per_pass: int | None = None
) -> tuple[bool, bool]:
    """Whether the ids of ``file`` (text or integers) are written without blanks around them
    and each non-empty one is greater than the one before (exported ids are often a
    sequence): then no two trimmed ids are equal and :func:`repeated_ids` would find nothing;
    and whether, besides, none is empty (the column is tidy: :func:`~effortlens.loading.
    columns.is_untidy` would say so of every chunk).

    The column is read a range of ``rows_per_pass`` rows at a time (default
    :data:`_ORDER_PASS_ROWS`), the first few rows first: the first range out of order ends it.
    100M ids in order: ~0.05 CPU s per million, where hashing and sorting them took ~0.1.

    Examples
    --------
    >>> ids = lambda *v: pl.LazyFrame({"id": list(v)})
    >>> ids_in_order(ids("a1", None, "a2", "b"), "id", rows_per_pass=2)
    (True, True)
    >>> ids_in_order(ids("a1", "", "a2"), "id"), ids_in_order(ids("a1", "a2", " a1"), "id")
    ((True, False), (False, False))
    >>> ids_in_order(ids("a2", "a1"), "id"), ids_in_order(ids(3, 5, None, 8), "id", rows_per_pass=2)
    ((False, False), (True, True))
    """
    scan = pl.scan_parquet(file) if isinstance(file, Path) else file
    dtype = scan.collect_schema()[id_column]
    if dtype != pl.String and not dtype.is_integer():
        return False, False
    total = scan.select(pl.len()).collect().item()
    rows_per_pass = rows_per_pass or _ORDER_PASS_ROWS
    ids = pl.col(id_column)
    if dtype == pl.String:  # an empty id hashes to null (never a repeat)
        given = ids.filter(ids.is_not_null() & (ids != ""))
        untidy = (given.str.strip_chars().str.len_bytes() != given.str.len_bytes()).any()
        empty = (ids == "").any()
    else:
        given, untidy, empty = ids.drop_nulls(), pl.lit(False), pl.lit(False)
    checks = [
        (given > given.shift(1)).fill_null(True).all().alias("ordered"),
        untidy.alias("untidy"),
        empty.alias("empty"),
        given.first().alias("first"),
        given.last().alias("last"),
    ]
    probe = min(_ORDER_PROBE_ROWS, rows_per_pass, total)
    last, any_empty = None, False
    for start in [0, *range(probe, total, rows_per_pass)]:
        # the slice first: the scan reads only the range's row groups
        length = probe if start == 0 else rows_per_pass
        found = scan.slice(start, length).select(checks).collect().row(0, named=True)
        if not found["ordered"] or found["untidy"]:
            return False, False
        any_empty = any_empty or bool(found["empty"])
        if found["first"] is None:
            continue
        if last is not None and not found["first"] > last:
            return False, False
        last = found["last"]
    return True, not any_empty


def _repeats(hashes: pl.Series) -> np.ndarray:
    """Every hash of ``hashes`` equal to an earlier one (once per repeat)."""
    values = hashes.sort().to_numpy()
    # each hash against the one before, as views of the sorted values (no shifted copy)
    return values[1:][values[1:] == values[:-1]]


def _spilled_repeats(
    scan: pl.LazyFrame, id_column: str, scratch: Path, total: int, rows_per_pass: int
) -> np.ndarray:
    """:func:`_repeats` of the whole file's hashes, read a range of rows at a time and
    spilled to ``scratch`` in buckets by their top bits, each bucket then sorted alone."""
    n_buckets = 1 << min(8, max(1, -(-total // rows_per_pass) - 1).bit_length())
    shift = np.uint64(64 - n_buckets.bit_length() + 1)
    scratch.mkdir(parents=True, exist_ok=True)
    paths = [scratch / f"hashes-{b:03d}.u64" for b in range(n_buckets)]
    try:
        for start in range(0, total, rows_per_pass):
            # the slice first: the scan reads only the range's row groups
            hashes = (
                scan.slice(start, rows_per_pass)
                .select(_trimmed_id_hash(id_column).alias("h"))
                .drop_nulls()
                .collect(engine="streaming")
                .to_series()
                .to_numpy()
            )
            bucket = (hashes >> shift).astype(np.uint8)
            hashes = hashes[np.argsort(bucket, kind="stable")]  # by bucket (a radix sort)
            ends = np.cumsum(np.bincount(bucket, minlength=n_buckets))
            for b, path in enumerate(paths):
                piece = hashes[(ends[b - 1] if b else 0) : ends[b]]
                if piece.size:
                    with path.open("ab") as out:
                        piece.tofile(out)
            del hashes, bucket
        found = [
            _repeats(pl.Series(np.fromfile(path, dtype=np.uint64)))
            for path in paths
            if path.exists()
        ]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return np.concatenate(found) if found else np.zeros(0, np.uint64)


@dataclass(frozen=True)
class InputRange:
    """Rows ``start + 1 .. start + length`` of ``file`` (its columns ``columns``), less the
    rows whose id hash is in ``repeated``: those are written under ``aside/<bucket>/`` (the
    bucket their hash modulo ``buckets``), validated after every range (:func:`read_chunk`).

    Examples
    --------
    >>> InputRange(Path("a.parquet"), ["activity_id"], 0, 10, "activity_id", None, 0,
    ...            Path("aside")).distinct_keys
    False
    """

    file: Path
    columns: list[str]
    start: int
    length: int
    id_column: str | None
    repeated: pl.Series | None
    buckets: int
    aside: Path

    @property
    def distinct_keys(self) -> bool:
        """Whether no two of its rows share an id (those that do were set aside)."""
        return self.repeated is not None


def read_chunk(source: list[Path] | InputRange) -> pl.DataFrame:
    """A chunk's rows in input row order, with their input row (``__row``): a range of the
    input (its repeated ids set aside) or the files of set-aside rows (deleted after reading).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "activities.parquet"
    >>> pl.DataFrame({"activity_id": ["a1", "a2", "a3"]}).write_parquet(path)
    >>> source = InputRange(path, ["activity_id"], 1, 2, "activity_id", None, 0, path.parent)
    >>> read_chunk(source).rows()
    [(2, 'a2'), (3, 'a3')]
    """
    if isinstance(source, list):
        frame = pl.read_parquet(source, hive_partitioning=False)
        for path in source:
            path.unlink()
        return frame if frame[ROW].is_sorted() else frame.sort(ROW)
    # the slice first: so the scan reads only the range's row groups (a row index or a
    # projection before it decodes the file up to the range: 1M rows 0.07 -> 0.2 CPU s)
    frame = (
        pl.scan_parquet(source.file)
        .slice(source.start, source.length)
        .select(source.columns)
        .collect()
        .with_row_index(ROW, offset=source.start + 1)
    )
    if source.repeated is None or not source.repeated.len():
        return frame
    assert source.id_column is not None
    h = frame.select(_trimmed_id_hash(source.id_column)).to_series()
    aside = h.is_in(source.repeated.implode()).fill_null(False)
    if not aside.any():
        return frame
    bucket = (h % source.buckets).alias("__bucket")
    for (b,), rows in (
        frame.filter(aside)
        .with_columns(bucket.filter(aside))
        .group_by("__bucket", maintain_order=True)
    ):
        folder = source.aside / f"{b:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        rows.drop("__bucket").write_parquet(
            folder / f"{source.start:012d}.parquet", compression=SCRATCH_CODEC
        )
    return frame.filter(~aside)


def _merge_by_row(files: list[Path], out: Path, *, rows: int, window: int) -> list[Path]:
    """The chunks' quarantine ``files`` (each in input row order) as files that, read in
    order, are in input row order, as the in-memory load has it; deleted after.

    One window of ``window`` input rows at a time is read from every file (its row groups
    skipped by their statistics), so no more than one window is held (100M: 6.7M rows).
    A row's several quarantine rows, if any, keep their order (one chunk holds the row).
    """
    if len(files) <= 1:
        return files
    merged: list[Path] = []
    window = max(window, 1)
    scan = pl.scan_parquet(files)
    expected = scan.select(pl.len()).collect().item()
    found = 0
    for w, start in enumerate(range(1, rows + 1, window)):
        piece = (
            scan.filter(pl.col("row").is_between(start, start + window - 1))
            .collect()
            .sort("row", maintain_order=True)
        )
        found += piece.height
        _quarantine_file(piece, out / f"rows-{w:05d}.parquet", merged)
        del piece
    if found != expected:
        raise AssertionError(f"quarantine rows outside rows 1..{rows}: {expected - found}")
    for path in files:
        path.unlink(missing_ok=True)
    return merged


#: Codec of the chunked load's and the partitioned build's scratch files (written once, read
#: once or twice): lz4 costs about half of zstd's CPU to write, a bit less to read.
SCRATCH_CODEC = "lz4"

#: Rows per row group of a chunk's quarantine file (read back one window of rows at a time).
_QUARANTINE_GROUP = 16_384

#: Tables with more rows than this are validated one chunk per child process (the allocator
#: keeps what a chunk took: at 100M activities a single process grew by ~100 MB per chunk).
ISOLATE_ABOVE_ROWS = 2_000_000


def in_child(function, /, *args, **kwargs):
    """``function(*args, **kwargs)`` run in a fresh process (spawned), its result returned.

    Its allocator keeps what it freed for 5 s instead of Polars' 0.5 s, in one arena
    (:data:`ONE_CALL_ALLOCATOR`): the partitioned load's process, 7M events (a 6m sample),
    faulted 212k pages instead of 361-371k, system 0.63 CPU s instead of 1.07-1.12, its peak
    563 MB instead of 488-530 (decay off altogether, as in the build's workers: 155-172k
    faults, 0.46-0.55 s, but 621-710 MB: a long call keeps every phase's high water).

    Examples
    --------
    >>> in_child(max, 2, 3)  # doctest: +SKIP
    3
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from effortlens import processes

    context = multiprocessing.get_context("spawn")
    inherited = os.environ.get("_RJEM_MALLOC_CONF", "")
    allocator = {"_RJEM_MALLOC_CONF": f"{inherited},{ONE_CALL_ALLOCATOR}".lstrip(",")}
    with ProcessPoolExecutor(
        max_workers=1,
        mp_context=context,
        initializer=processes.die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        with processes.environment(allocator):  # the process starts as the call is submitted
            future = pool.submit(function, *args, **kwargs)
        return future.result()


#: jemalloc's setting in :func:`in_child`'s process, after Polars' own (the last value of an
#: option wins): what it frees is kept 5 s for its next use (Polars: 0.5 s), in one arena for
#: all its threads (each thread's arena keeps its own otherwise).
ONE_CALL_ALLOCATOR = "dirty_decay_ms:5000,muzzy_decay_ms:0,narenas:1"


def validate_chunk(
    name: str,
    file: str,
    source: list[Path] | InputRange,
    part: Path,
    quarantine: Path,
    *,
    settings: Settings,
    now: datetime,
    references: dict[str, pl.Series | None],
    max_field_chars: int,
    partitions: Partitions | PendingPartitions | None = None,
    tidy: tuple[str, ...] = (),
) -> _Counts | None:
    """Validate one chunk of an event table (a range of its rows, or set-aside rows' files,
    deleted after reading: :func:`read_chunk`); write the loaded rows with their input row
    (``__row``) to ``part`` and the quarantined rows, in input row order, to ``quarantine``
    (none when there are none); ``None`` when it has no row. With ``partitions``, the loaded
    rows go to the partitions' files (:meth:`Partitions.write`) instead of ``part``, waited for
    after the validation when still being found (:class:`PendingPartitions`); ``tidy``: text
    columns known to need no trimming in the whole table (:func:`validate_table`)."""
    if isinstance(partitions, PendingPartitions) and partitions.done():
        partitions = partitions.wait()  # found already: its tidy columns are known
        tidy = tuple(sorted({*tidy, *(partitions.tidy if partitions is not None else ())}))
    frame = read_chunk(source)
    if not frame.height:
        return None
    _check_field_lengths(file, frame, max_field_chars)
    # each loaded row keeps its input row (``__row``, last), in input order: the partitioned
    # build sorts each partition by the sort keys and that row, so a sort here is wasted
    result = validate_table(
        RawTable(name, frame, file),
        settings=settings,
        now=now,
        references=references,
        keep_row=True,
        in_order=False,
        distinct_keys=isinstance(source, InputRange) and source.distinct_keys,
        tidy=frozenset(tidy),
    )
    del frame
    written = None
    if isinstance(partitions, PendingPartitions):
        partitions = partitions.wait()
    if partitions is not None:
        written = tuple(partitions.write(name, result.loaded, int(part.stem.split("-")[-1])))
    else:  # read whole by the partitioned build, never filtered: no statistics
        result.loaded.write_parquet(part, compression=SCRATCH_CODEC, statistics=False)
    held: list[Path] = []
    sorted_rows = result.quarantine  # in the chunk's row order unless it came unsorted
    if not sorted_rows["row"].is_sorted():
        sorted_rows = sorted_rows.sort("row", maintain_order=True)
    # small row groups: :func:`_merge_by_row` reads one window of rows at a time by them
    _quarantine_file(sorted_rows, quarantine, held, row_group_size=_QUARANTINE_GROUP)
    return _Counts(
        result.loaded.height,
        held,
        result.read,
        result.notes,
        None,
        result.blank_lines,
        parts=written,
    )


def _check_field_lengths(file: str, frame: pl.DataFrame, limit: int) -> None:
    """Refuse a text value longer than ``limit`` characters (as the Parquet reader does)."""
    text = [c for c, t in frame.schema.items() if t == pl.String]
    if not text or not frame.height:
        return
    # no value has more characters than bytes: the byte lengths (stored) settle most tables
    widest = frame.select(pl.col(text).str.len_bytes().max()).row(0)
    text = [c for c, n in zip(text, widest, strict=True) if n is not None and n > limit]
    if not text:
        return
    longest = frame.select(pl.col(text).str.len_chars().max()).row(0)
    for column, length in zip(text, longest, strict=True):
        if length is not None and length > limit:
            row = frame.filter(pl.col(column).str.len_chars() == length)[ROW][0]
            raise DataError(
                f"{file}: row {row:,}, column {column}: a value of {length:,} characters, "
                f"longer than limits.max_field_chars ({limit:,}); raise the limit in the "
                "settings if the file is right"
            )


def merge_notes(notes: list[str]) -> list[str]:
    """Notes of several chunks of one table as one load would say them: repeats once, and
    notes that differ only in their first count summed.

    Examples
    --------
    >>> merge_notes(["a: x empty in 1 row; filled", "a: x empty in 2 rows; filled", "b"])
    ['a: x empty in 3 rows; filled', 'b']
    """
    merged: dict[tuple[str, str, str], int] = {}
    plain: dict[str, None] = {}
    order: list[tuple[str, str, str] | str] = []
    for note in notes:
        match = _NUMBER.search(note)
        if match is None:
            if note not in plain:
                plain[note] = None
                order.append(note)
            continue
        noun = match.group(2)
        singular = noun[:-1] if noun.endswith("s") and match.group(1) != "1" else noun
        key = (note[: match.start()], singular, note[match.end() :])
        if key not in merged:
            merged[key] = 0
            order.append(key)
        merged[key] += int(match.group(1).replace(",", ""))
    return [
        item if isinstance(item, str) else f"{item[0]}{counted(merged[item], item[1])}{item[2]}"
        for item in order
    ]
