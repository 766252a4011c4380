"""Loading one table: canonical columns, the rules, the loaded rows and the quarantined ones.

:func:`validate_table` takes a :class:`RawTable` through four steps: :func:`prepare` (column
names, blank lines), the row rules (:mod:`effortlens.loading.rules`), the defaults of the
settings for what was left empty, and the canonical schema and order. Every row read ends up
loaded or quarantined.

Examples
--------
>>> from datetime import UTC, datetime
>>> from effortlens.settings import load_settings
>>> raw = RawTable("reps", pl.DataFrame({"Rep ID": ["r1", "r1", None]}), "reps.csv")
>>> result = validate_table(raw, settings=load_settings(),
...                         now=datetime(2025, 1, 1, tzinfo=UTC), references={})
>>> result.loaded["rep_id"].to_list(), result.quarantine["reason"].to_list()
(['r1'], ['duplicate_id'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from effortlens.loading.columns import canonical_header, is_untidy, no_failures
from effortlens.loading.report import QUARANTINE_SCHEMA, REASONS, DataError, counted
from effortlens.loading.rules import (
    REFERENCES,
    Check,
    duplicate_check,
    first_failure,
    parse_table,
    reference_checks,
)
from effortlens.schema import TABLES, conform
from effortlens.settings import Settings

#: Column of the 1-based data-row number in the source file.
ROW = "__row"
#: Column of the source file name, when rows come from several files.
FILE = "__file"
#: How each canonical table is sorted (nulls last, ties in file order): by deal and time for
#: the as-of joins of attribution.
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "reps": ("rep_id",),
    "interventions": ("start_date", "intervention_id"),
    "opportunities": ("opportunity_id",),
    "activities": ("opportunity_id", "ts"),
    "buyer_actions": ("opportunity_id", "ts"),
    "stage_history": ("opportunity_id", "entered_ts"),
    "intervention_participants": ("intervention_id", "rep_id"),
}


@dataclass(frozen=True)
class RawTable:
    """One source table on its way into validation.

    Attributes
    ----------
    table
        Canonical table name (a key of :data:`effortlens.schema.TABLES`).
    frame
        Columns named canonically (any subset; headers are matched case-insensitively, other
        columns are ignored and noted), as ``String`` or already of the canonical type (the
        Parquet fast path), plus ``"__row"`` (UInt32, 1-based data-row number in the source
        file) and optionally ``"__file"`` (String) when rows come from several files.
    file
        Source file name shown in messages.
    decimal_comma
        Numbers may be written ``12,5`` (``;``-separated files); decided per column.
    lines
        Physical lines of data in the source text file, counted apart from the parser
        (:mod:`effortlens.loading.lines`); ``None`` when not counted.
    quoted_lines
        Of ``lines``, those inside a quoted value (they continue the row before).
    """

    table: str
    frame: pl.DataFrame
    file: str
    decimal_comma: bool = False
    lines: int | None = None
    quoted_lines: int = 0


@dataclass(frozen=True)
class TableResult:
    """What :func:`validate_table` made of one :class:`RawTable`.

    Attributes
    ----------
    loaded
        The canonical table.
    quarantine
        Its unusable rows (:data:`~effortlens.loading.report.QUARANTINE_SCHEMA`).
    read
        Rows read (blank lines not counted): ``loaded.height + quarantine.height``.
    notes
        Sentences for the load report.
    lines
        Physical lines of data of the source file (:attr:`RawTable.lines`), or ``None``.
    blank_lines
        Rows skipped because every field was empty.
    quoted_lines
        :attr:`RawTable.quoted_lines`.
    """

    loaded: pl.DataFrame
    quarantine: pl.DataFrame
    read: int
    notes: list[str]
    lines: int | None = None
    blank_lines: int = 0
    quoted_lines: int = 0


def prepare(raw: RawTable) -> tuple[pl.DataFrame, list[str]]:
    """Canonical column names, ``__row``, required columns present, blank lines removed.

    Raises
    ------
    DataError
        When a required column is missing or two columns mean the same canonical one.

    Examples
    --------
    >>> raw = RawTable("reps", pl.DataFrame({"Rep ID": ["r1", None], "Desk": ["A", None]}),
    ...                "reps.csv")
    >>> frame, notes = prepare(raw)
    >>> frame.columns, len(notes)
    (['__row', 'rep_id', 'Desk'], 2)
    """
    spec = TABLES[raw.table]
    frame = raw.frame
    notes: list[str] = []
    renames: dict[str, str] = {}
    for name in frame.columns:
        if name in (ROW, FILE):
            continue
        canonical = canonical_header(name)
        if canonical in spec.columns:
            if canonical in renames.values():
                first = next(k for k, v in renames.items() if v == canonical)
                raise DataError(
                    f"{raw.file}: columns '{first}' and '{name}' both mean {canonical}; keep one"
                )
            renames[name] = canonical
    found = [c for c in frame.columns if c not in (ROW, FILE)]
    missing = [c for c in spec.required if c not in renames.values()]
    if missing:
        what = (
            f"required column '{missing[0]}' is missing"
            if len(missing) == 1
            else "required columns " + ", ".join(f"'{c}'" for c in missing) + " are missing"
        )
        raise DataError(f"{raw.file}: {what}; found columns: {', '.join(found) or '(none)'}")
    ignored = [c for c in found if c not in renames]
    if ignored:
        notes.append(
            f"{raw.table} ({raw.file}): ignored columns not in the {raw.table} table: "
            + ", ".join(ignored)
        )
    if ROW not in frame.columns:
        frame = frame.with_row_index(ROW, offset=1)
    frame = frame.rename({k: v for k, v in renames.items() if k != v})
    content = [c for c in frame.columns if c not in (ROW, FILE)]
    if content:
        blank = pl.all_horizontal(pl.col(content).is_null())
        n_blank = frame.select(blank.sum()).item()
        if n_blank:
            frame = frame.filter(~blank)
            notes.append(
                f"{raw.table} ({raw.file}): skipped {counted(n_blank, 'blank line')} "
                "(every field empty)"
            )
    return frame.with_columns(pl.col(ROW).cast(pl.UInt32)), notes


def validate_table(
    raw: RawTable,
    *,
    settings: Settings,
    now: datetime,
    references: dict[str, pl.Series | None],
    keep_row: bool = False,
    in_order: bool = True,
    distinct_keys: bool = False,
    tidy: frozenset[str] = frozenset(),
) -> TableResult:
    """Validate one table row by row: its loaded rows, quarantined rows and notes.

    Parameters
    ----------
    raw
        The table as given.
    settings
        Vocabularies, defaults and the time zone of naive times.
    now
        The load time.
    references
        Canonical table name to its loaded keys (``None`` when not given), for rules 9–10.
    keep_row
        Keep each loaded row's input row number as a last column ``__row`` (the chunked
        load writes it beside the row; it follows the rows through the sort).
    in_order
        Sort the loaded rows by the table's sort keys (ties in input order); ``False`` leaves
        them in input order (the partitioned build sorts each partition itself).
    distinct_keys
        The caller knows that no two rows share a key (trimmed, non-empty): the duplicate rule
        is not looked for (the chunked load knows it from the hashes of the whole file's ids).
    tidy
        Text columns the caller knows hold no value with blanks around it and no empty one
        (the chunked load read them whole before): not looked at for one.

    Returns
    -------
    TableResult

    Examples
    --------
    See the module docstring.
    """
    frame, notes = prepare(raw)
    # a column naming rows of a loaded table whose every value is one of their keys (trimmed,
    # never empty) is not searched for blanks, and its rule 9/10 check is that lookup
    looked_up = _looked_up(raw.table, frame, references, tidy)
    tidy = tidy | looked_up.keys()
    table = parse_table(
        raw.table,
        raw.file,
        frame,
        settings=settings,
        now=now,
        decimal_comma=raw.decimal_comma,
        tidy=tidy,
    )
    notes += table.notes
    order = {reason: i for i, reason in enumerate(REASONS)}
    checks = sorted(table.checks, key=lambda c: order[c.reason])  # stable within a reason

    work = pl.DataFrame({ROW: frame[ROW]}).with_columns(
        pl.Series(f"parsed:{c}", s) for c, s in table.parsed.items()
    )
    work = work.with_columns(first_failure(checks, offset=0).alias("__rule"))

    # duplicates among rows that passed the row-level rules; the first one is kept
    key = TABLES[raw.table].key
    key_columns = [key] if key else [c for c in TABLES[raw.table].columns if c in table.parsed]
    survivor = pl.col("__rule").is_null()
    keys = [pl.col(f"parsed:{c}") for c in key_columns]
    first = pl.struct(*keys, survivor).is_first_distinct()
    # the keys hashed and compared: a third of the validation when nothing repeats (1M: 0.2 s)
    if distinct_keys and key:
        duplicate = no_failures(work.height)
    else:
        duplicate = work.select(survivor & ~first).to_series()
    first_rows = None
    if duplicate.any():
        first_rows = work.filter(survivor & first).select(*keys, pl.col(ROW).alias("__first_row"))
    later = [
        duplicate_check(raw.table, duplicate),
        *reference_checks(raw.table, table.parsed, references, unknown=looked_up),
    ]
    work = work.with_columns(
        pl.coalesce(pl.col("__rule"), first_failure(later, offset=len(checks))).alias("__rule")
    )
    checks = checks + later

    good = work["__rule"].is_null()
    loaded = _finish(
        work if good.all() else work.filter(good),
        raw.table,
        settings=settings,
        notes=notes,
        file=raw.file,
        keep_row=keep_row,
        in_order=in_order,
    )
    quarantine = _quarantine_rows(raw, frame, work, ~good, checks, first_rows, key_columns)
    blank = raw.frame.height - frame.height  # prepare() drops blank lines only
    return TableResult(loaded, quarantine, frame.height, notes, raw.lines, blank, raw.quoted_lines)


def _looked_up(
    table: str,
    frame: pl.DataFrame,
    references: dict[str, pl.Series | None],
    tidy: frozenset[str],
) -> dict[str, pl.Series]:
    """Of each text column of ``frame`` naming rows of a loaded table (rules 9 and 10), the
    rows whose value is none of that table's keys, when no such value has blanks around it
    nor is empty: the column then reads as written (its values are loaded keys, or unknown
    ones read as given) and the check is this lookup. Columns with a value to trim are left
    out (read, then looked up, as before).

    Examples
    --------
    >>> reps = {"reps": pl.Series(["r1"])}
    >>> frame = pl.DataFrame({"rep_id": ["r1", "r9", None]})
    >>> _looked_up("activities", frame, reps, frozenset())["rep_id"].to_list()
    [False, True, False]
    >>> _looked_up("activities", pl.DataFrame({"rep_id": ["r1", " r9"]}), reps, frozenset())
    {}
    """
    found = {}
    for column, target, _, applies in REFERENCES:
        keys = references.get(target)
        if table not in applies or keys is None or column in tidy or column not in frame.columns:
            continue
        values = frame[column]
        if values.dtype != pl.String or keys.dtype != pl.String:
            continue
        unknown = values.is_not_null() & ~values.is_in(keys.implode())
        if unknown.any() and values.filter(unknown).to_frame().select(is_untidy(column)).item():
            continue
        found[column] = unknown
    return found


def _default_fills(table: str, settings: Settings) -> list[tuple[str, pl.Expr, str]]:
    """(column, default, how to say it) for the columns the settings fill when left empty."""
    fills: list[tuple[str, pl.Expr, str]] = []
    if table == "activities":
        by_type = pl.col("activity_type").replace_strict(
            settings.default_duration_min, default=None, return_dtype=pl.Float64
        )
        fills.append(("duration_min", by_type, "the settings' default duration for its type"))
    if table == "buyer_actions":
        fills.append(
            (
                "is_verifier",
                pl.col("action_type").is_in(settings.verifiers),
                "whether its type is a verifier in the settings",
            )
        )
        fills.append(
            (
                "weight",
                pl.col("action_type").replace_strict(
                    settings.action_weights, default=None, return_dtype=pl.Float64
                ),
                "the settings' weight for its type",
            )
        )
    if table == "opportunities":
        fills.append(("currency", pl.lit(settings.currency), f"{settings.currency}"))
    return fills


def _finish(
    good: pl.DataFrame,
    table: str,
    *,
    settings: Settings,
    notes: list[str],
    file: str,
    keep_row: bool = False,
    in_order: bool = True,
) -> pl.DataFrame:
    """Defaults from the settings, canonical schema, canonical order (``__row`` last when
    ``keep_row``; input order unless ``in_order``)."""
    frame = good.select(
        pl.col(c).alias(c.removeprefix("parsed:")) for c in good.columns if c.startswith("parsed:")
    )
    for column, default, what in _default_fills(table, settings):
        if column in frame.columns:
            n_empty = frame[column].null_count()
            where = f"{column} empty in {counted(n_empty, 'row')};"
            fill = pl.coalesce(column, default)
        else:
            n_empty = frame.height
            where = f"no {column} column; {counted(n_empty, 'row')}"
            fill = default
        if n_empty:
            frame = frame.with_columns(fill.alias(column))
            notes.append(f"{table} ({file}): {where} filled with {what}")
    conformed = conform(frame, table).collect()
    if keep_row:
        conformed = conformed.with_columns(good[ROW])
    if not in_order:  # written to a file next (the chunked load): no need of one chunk
        return conformed
    return _in_order(conformed, SORT_KEYS[table])


def _in_order(frame: pl.DataFrame, keys: tuple[str, ...]) -> pl.DataFrame:
    """``frame`` sorted by ``keys`` (nulls last, ties in input order), fast on 10M rows.

    Already ordered input is returned as is, in one chunk per column. Otherwise one stable
    pass per key, last key first, on numbers only (text keys are replaced by their rank among
    the distinct values, since sorting numbers is several times faster than sorting text);
    rows are gathered once, into one chunk per column (a row gather from many chunks, as
    enrichment makes, is several times slower).
    """
    if frame.height < 2 or (not _out_of_order(frame, keys[0]) and _is_ordered(frame, keys)):
        return frame.rechunk()
    order: pl.Series | None = None
    for key in reversed(keys):
        column = frame[key]
        if column.dtype == pl.String:
            distinct = column.drop_nulls().unique().sort()
            column = column.cast(pl.Enum(distinct)).to_physical()
        if order is not None:
            column = column.gather(order)
        step = (
            column.to_frame("k")
            .select(pl.arg_sort_by("k", nulls_last=True, maintain_order=True))
            .to_series()
        )
        order = step if order is None else order.gather(step)
    # columns in parallel; one chunk each: every later row gather (enrichment) is faster
    return frame.lazy().select(pl.all().gather(order)).collect().rechunk()


def _out_of_order(frame: pl.DataFrame, key: str) -> bool:
    """Whether the first sort key alone shows the rows out of order (a value after a larger
    one, or after a null): a cheap first look, as most inputs are not sorted."""
    before, here = pl.col(key).shift(1), pl.col(key)
    worse = (before > here) | (before.is_null() & here.is_not_null())
    return bool(frame.select(worse.slice(1).any()).item())


def _is_ordered(frame: pl.DataFrame, keys: tuple[str, ...]) -> bool:
    """Whether rows are already sorted by ``keys`` (nulls last)."""

    def compare(key: str) -> pl.Expr:
        before, here = pl.col(key).shift(1), pl.col(key)
        return (
            pl.when(before.is_null() & here.is_null())
            .then(0)
            .when(before.is_null())
            .then(1)
            .when(here.is_null())
            .then(-1)
            .when(before < here)
            .then(-1)
            .when(before > here)
            .then(1)
            .otherwise(0)
        )

    verdict = pl.coalesce(*(pl.when(compare(k) != 0).then(compare(k)) for k in keys), 0)
    return frame.select((verdict.slice(1) <= 0).all()).item()


def _quarantine_rows(
    raw: RawTable,
    frame: pl.DataFrame,
    work: pl.DataFrame,
    bad: pl.Series,
    checks: list[Check],
    first_rows: pl.DataFrame | None,
    key_columns: list[str],
) -> pl.DataFrame:
    """The quarantine rows of ``bad``: the first failed check's reason and message each."""
    if not bad.any():
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    source_columns = [c for c in frame.columns if c not in (ROW, FILE)]
    rows = frame.filter(bad)
    q = pl.concat(
        [
            work.filter(bad),
            rows.select(pl.col(c).cast(pl.String).alias(f"raw:{c}") for c in source_columns),
            rows.select(
                (pl.col(FILE) if FILE in rows.columns else pl.lit(raw.file)).alias(FILE),
                pl.struct(pl.col(source_columns).cast(pl.String)).struct.json_encode().alias("raw"),
            ),
        ],
        how="horizontal",
    ).rechunk()  # Polars 2.1 can panic formatting columns of differing chunks side by side
    if first_rows is not None:
        keys = [f"parsed:{c}" for c in key_columns]
        q = q.join(first_rows, on=keys, how="left", nulls_equal=True, maintain_order="left")
    else:
        q = q.with_columns(pl.lit(None, dtype=pl.UInt32).alias("__first_row"))
    rule = pl.col("__rule")
    used = q["__rule"].unique().to_list()

    def pick(values: Callable[[Check], pl.Expr]) -> pl.Expr:
        expr = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.String))
        for i in used:
            expr = expr.when(rule == i).then(values(checks[i]))
        return expr

    tail = pick(lambda c: c.explain())
    where = pick(lambda c: pl.lit(f", column {c.column}" if c.column else ""))
    return q.select(
        pl.lit(raw.table).alias("table"),
        pl.col(FILE).alias("file"),
        pl.col(ROW).cast(pl.UInt32).alias("row"),
        pick(lambda c: pl.lit(c.column, dtype=pl.String)).alias("column"),
        pick(lambda c: pl.lit(c.reason)).alias("reason"),
        pl.format("{} row {}{}: {}", pl.col(FILE), pl.col(ROW), where, tail).alias("message"),
        pl.col("raw"),
    ).cast(dict(QUARANTINE_SCHEMA))
