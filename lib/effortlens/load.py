"""Loading that loses nothing: read a folder, validate every row, quarantine what cannot be used.

Every input row ends up either in its canonical table or in the quarantine table, with one
reason code and a message naming the file, the row, the column, the bad value and what was
expected. The load report counts both per table (``loaded + quarantined == read``, checked on
every load) and notes what was mapped, assumed, filled in or ignored.

Rules are checked in this order; the first one a row fails gives its reason:

1. ``missing_id`` — the key or a required id is empty;
2. ``bad_timestamp`` — a timestamp cannot be read (or a required one is empty, or a slash
   date contradicts its column's day/month order);
3. ``bad_value`` — a number, true/false value or date cannot be read; an outcome, exit reason
   or buyer action type outside its vocabulary; a required text value is empty;
4. ``negative_duration`` — ``duration_min`` below zero;
5. ``future_timestamp`` — a timestamp after ``now`` (an open deal's ``close_ts`` may be ahead:
   it is an expected close date);
6. ``unknown_stage`` — a stage neither among the settings' stages nor in ``[stages.map]``;
7. ``no_account`` — a buyer action without ``account_id``;
8. ``duplicate_id`` — the key seen in an earlier row that passed rules 1–7 (first kept); for
   link tables (stage history, participants) an exact repeat of an earlier row;
9. ``unknown_rep`` — ``rep_id`` of an activity, deal or participant not among the loaded reps;
10. ``unknown_reference`` — stage history of a deal not among the loaded opportunities (when
    opportunities were given); a participant of an intervention not among the loaded ones
    (when interventions were given).

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

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from effortlens._csv import read_csv_text, read_delimited
from effortlens._timeparse import EXPECTED_TIMESTAMP, ParsedTimes, localize, parse_timestamps
from effortlens.report import QUARANTINE_SCHEMA, REASONS, DataError, LoadReport, TableReport
from effortlens.schema import EFFORT_OR_PIPELINE, EXIT_REASONS, OUTCOMES, TABLES, UTC_TS, conform
from effortlens.settings import ACTIVITY_TYPES, Settings, load_settings

__all__ = [
    "QUARANTINE_SCHEMA",
    "DataError",
    "LoadReport",
    "LoadedData",
    "ParsedTimes",
    "RawTable",
    "TableReport",
    "load_folder",
    "parse_timestamps",
    "read_csv_text",
    "validate_tables",
]

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
FILE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".txt", ".parquet")
ROW = "__row"
FILE = "__file"


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
    """

    table: str
    frame: pl.DataFrame
    file: str
    decimal_comma: bool = False


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


# --------------------------------------------------------------------------------------------
# parsing one column


def _count(n: int, noun: str) -> str:
    """``_count(1, "row")`` -> ``"1 row"``; ``_count(2_000, "row")`` -> ``"2,000 rows"``."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _canonical_header(name: str) -> str:
    """``"\\ufeff Rep ID "`` -> ``"rep_id"``."""
    return re.sub(r"[\s\-]+", "_", name.lstrip("\ufeff").strip().lower())


def _none(n: int) -> pl.Series:
    """No row fails."""
    return pl.repeat(False, n, eager=True)


def _untidy(column: str) -> pl.Expr:
    """Whether a text column has values with surrounding blanks or empty values."""
    return (pl.col(column).str.contains(r"^\s|\s$") | (pl.col(column) == "")).any()


def _text(s: pl.Series, *, tidy: bool = False) -> pl.Series:
    """Trimmed text, empty as null; returned as is (no copy) when ``tidy`` or already clean."""
    s = s.cast(pl.String)
    if tidy or not s.to_frame("s").select(_untidy("s")).item():
        return s
    trimmed = s.str.strip_chars()
    return pl.select(pl.when(pl.lit(trimmed) != "").then(pl.lit(trimmed))).to_series().alias(s.name)


def _lookup(s: pl.Series, translate: Callable[[str], object], dtype=pl.String) -> pl.Series:
    """``translate`` applied to each distinct value: fast on long columns of few values."""
    s = s.cast(pl.String)
    mapping = {u: translate(u) for u in s.drop_nulls().unique().to_list()}
    return s.replace_strict(mapping, default=None, return_dtype=dtype)


def _word(value: str) -> str:
    """Vocabulary form: ``" Meeting Held "`` -> ``"meeting_held"``."""
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


_GROUPED_COMMA = r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$"
_DECIMAL_COMMA = r"^[+-]?[\d.]*\d,\d+$"


def _numbers(s: pl.Series, *, decimal_comma: bool) -> tuple[pl.Series, pl.Series]:
    """Float64 values and the rows whose text is not a finite number (NaN counts as empty)."""
    if s.dtype.is_numeric():
        values = s.cast(pl.Float64).fill_nan(None)
        return values, values.is_infinite().fill_null(False)
    text = _text(s)
    if decimal_comma and text.str.contains(_DECIMAL_COMMA).any():
        # this column writes decimals with a comma, so dots group thousands
        text = text.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True)
    else:
        grouped = text.str.contains(_GROUPED_COMMA).fill_null(False)
        text = pl.select(
            pl.when(grouped).then(pl.lit(text).str.replace_all(",", "")).otherwise(pl.lit(text))
        ).to_series()
    values = text.cast(pl.Float64, strict=False)
    bad = text.is_not_null() & (values.is_null() | values.is_infinite())
    return values.fill_nan(None), bad.fill_null(False)


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _booleans(s: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Booleans from true/false, yes/no, 1/0 (any case), and the rows that are none of them."""
    if s.dtype == pl.Boolean:
        return s, _none(len(s))
    values = _lookup(s, lambda v: _BOOLEANS.get(v.strip().lower()), pl.Boolean)
    return values, _text(s).is_not_null() & values.is_null()


def _times(s: pl.Series, *, timezone: str, as_date: bool) -> ParsedTimes:
    """Typed columns take the fast path (no text round trip); the rest are parsed as text."""
    no_problem = _none(len(s))
    if isinstance(s.dtype, pl.Datetime | pl.Date):
        if as_date:
            if isinstance(s.dtype, pl.Datetime) and s.dtype.time_zone:
                s = s.dt.convert_time_zone(timezone)
            values = s.dt.date() if isinstance(s.dtype, pl.Datetime) else s
        elif isinstance(s.dtype, pl.Datetime) and s.dtype.time_zone:
            values = s.dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC"))
        else:
            values = localize(s.cast(pl.Datetime("us")), timezone=timezone)[0]
        return ParsedTimes(values, no_problem, no_problem, None, ())
    return parse_timestamps(s, timezone=timezone, as_date=as_date)


# --------------------------------------------------------------------------------------------
# checks


@dataclass(frozen=True)
class _Check:
    """One rule applied to one column: the rows failing it and how to explain a failure.

    The message tail is ``pl.format(template, *args)`` evaluated on the quarantined rows,
    where an argument may be an expression over ``raw:<column>`` (the text as given),
    ``parsed:<column>`` and ``__first_row``, or a plain value.
    """

    reason: str
    column: str | None
    failed: pl.Series
    template: str
    args: tuple = ()

    def explain(self) -> pl.Expr:
        if not self.args:
            return pl.lit(self.template)
        return pl.format(
            self.template, *(a if isinstance(a, pl.Expr) else pl.lit(str(a)) for a in self.args)
        )


def _value(column: str) -> pl.Expr:
    """The value as it was given, for messages."""
    return pl.col(f"raw:{column}").fill_null("")


_EXPECTED_DATE = "a date (2024-03-05, M/D/YYYY, D/M/YYYY, D.M.YYYY or an Excel serial day)"
_EXPECTED_BOOL = "true/false, yes/no or 1/0"
_IS_NOT = "'{}' is not {}"


def _parse_table(
    raw: RawTable, frame: pl.DataFrame, *, settings: Settings, now: datetime
) -> tuple[dict[str, pl.Series], list[_Check], list[str]]:
    """Parse every canonical column present; return parsed columns, row-level checks, notes."""
    spec = TABLES[raw.table]
    parsed: dict[str, pl.Series] = {}
    checks: list[_Check] = []
    notes: list[str] = []

    def check(reason: str, column: str, failed: pl.Series, template: str, *args) -> None:
        checks.append(_Check(reason, column, failed, template, args))

    def note(column: str, text: str) -> None:
        notes.append(f"{raw.table}.{column} ({raw.file}): {text}")

    # which text columns need trimming, checked in one parallel pass
    texts = [
        c
        for c, t in spec.columns.items()
        if t == pl.String and c in frame.columns and frame[c].dtype == pl.String
    ]
    untidy = frame.select(_untidy(c) for c in texts).row(0) if texts else ()
    tidy = {c for c, flag in zip(texts, untidy, strict=True) if not flag}

    for column, dtype in spec.columns.items():
        if column not in frame.columns:
            continue
        source = frame[column]
        if isinstance(dtype, pl.Datetime | pl.Date):
            as_date = dtype == pl.Date
            times = _times(source, timezone=settings.timezone, as_date=as_date)
            parsed[column] = times.values
            for text in times.notes:
                note(column, text)
            reason = "bad_value" if as_date else "bad_timestamp"
            if times.conflict.any():
                majority = times.slash_order
                minority = "M/D/YYYY" if majority == "D/M/YYYY" else "D/M/YYYY"
                n_against = _count(int(times.conflict.sum()), "row")
                note(
                    column,
                    f"slash dates mix day-first and month-first; read as {majority}, "
                    f"the {n_against} that only read as {minority} were quarantined",
                )
                check(
                    reason,
                    column,
                    times.conflict,
                    "'{}' only reads as {} but most slash dates in this column are {} ({} "
                    "disagree)",
                    _value(column),
                    minority,
                    majority,
                    n_against,
                )
            expected = _EXPECTED_DATE if as_date else EXPECTED_TIMESTAMP
            check(reason, column, times.failed, _IS_NOT, _value(column), expected)
        elif dtype == pl.Float64:
            parsed[column], bad = _numbers(source, decimal_comma=raw.decimal_comma)
            check("bad_value", column, bad, _IS_NOT, _value(column), "a number")
        elif dtype == pl.Boolean:
            parsed[column], bad = _booleans(source)
            check("bad_value", column, bad, _IS_NOT, _value(column), _EXPECTED_BOOL)
        else:
            parsed[column] = _text(source, tidy=column in tidy)

    # vocabularies, translated once per distinct value
    if "activity_type" in parsed:
        parsed["activity_type"], other_counts = _activity_types(frame["activity_type"], settings)
        for raw_type, n in other_counts:
            notes.append(
                f"{raw.table} ({raw.file}): {_count(n, 'row')} had activity_type '{raw_type}', "
                "mapped to 'other' (add it to [activities.map] in the settings to map it elsewhere)"
            )
    vocabularies = {
        "action_type": tuple(settings.action_weights),
        "outcome": OUTCOMES,
        "exit_reason": EXIT_REASONS,
    }
    for column, allowed in vocabularies.items():
        if column in parsed:
            words = _lookup(frame[column], lambda v, a=allowed: _word(v) if _word(v) in a else None)
            bad = parsed[column].is_not_null() & words.is_null()
            parsed[column] = words
            check("bad_value", column, bad, _IS_NOT, _value(column), "one of " + ", ".join(allowed))
    if "currency" in parsed:
        parsed["currency"] = _lookup(frame["currency"], lambda v: v.strip().upper() or None)
    if "stage" in parsed:
        known = {s.strip().lower(): s for s in settings.stages} | settings.stage_map
        stages = _lookup(frame["stage"], lambda v: known.get(v.strip().lower()))
        unknown = parsed["stage"].is_not_null() & stages.is_null()
        parsed["stage"] = stages
        check(
            "unknown_stage",
            "stage",
            unknown,
            "'{}' is not one of the stages ({}) nor mapped in the settings' [stages.map]",
            _value("stage"),
            ", ".join(settings.stages),
        )

    # required values present (a value given but unreadable was caught above)
    for column in spec.not_null:
        if column not in parsed:
            continue
        given_but_bad = _none(frame.height)
        for earlier in checks:
            if earlier.column == column:
                given_but_bad = given_but_bad | earlier.failed
        empty = parsed[column].is_null() & ~given_but_bad
        if raw.table == "buyer_actions" and column == "account_id":
            check(
                "no_account",
                column,
                empty,
                "account_id is empty; a buyer action must name the buyer's account",
            )
        elif column.endswith("_id"):
            check(
                "missing_id", column, empty, f"{column} is empty; every {raw.table} row needs one"
            )
        else:
            reason = "bad_timestamp" if spec.columns[column] == UTC_TS else "bad_value"
            check(reason, column, empty, f"{column} is empty; a value is required")

    if "duration_min" in parsed:
        negative = (parsed["duration_min"] < 0).fill_null(False)
        check(
            "negative_duration",
            "duration_min",
            negative,
            "duration_min is {}; a duration cannot be negative",
            _value("duration_min"),
        )

    load_time = now.strftime("%Y-%m-%d %H:%M UTC")
    for column, dtype in spec.columns.items():
        if column not in parsed or dtype != UTC_TS:
            continue
        future = (parsed[column] > now).fill_null(False)
        if column == "close_ts" and "outcome" in parsed:
            expected_close = future & (parsed["outcome"] == "open").fill_null(False)
            if expected_close.any():
                n_open = _count(int(expected_close.sum()), "open deal")
                note(
                    column,
                    f"{n_open} with a close_ts after the load time kept it as the "
                    "expected close date",
                )
            future = future & ~expected_close
        check(
            "future_timestamp",
            column,
            future,
            "'{}' ({}) is after the load time {}; a timestamp cannot be in the future",
            _value(column),
            pl.col(f"parsed:{column}").dt.strftime("%Y-%m-%d %H:%M UTC"),
            load_time,
        )
    return parsed, checks, notes


def _activity_types(
    values: pl.Series, settings: Settings
) -> tuple[pl.Series, list[tuple[str, int]]]:
    """Canonical activity types, and (raw value, rows) of those that became ``other``."""

    def canonical(raw: str) -> str | None:
        word = raw.strip().lower()
        if not word:
            return None
        return word if word in ACTIVITY_TYPES else settings.activity_map.get(word, "other")

    types = _lookup(values, canonical)
    uniques = values.cast(pl.String).drop_nulls().unique().to_list()
    unmapped = [u for u in uniques if canonical(u) == "other" and u.strip().lower() != "other"]
    counts: list[tuple[str, int]] = []
    if unmapped:
        tally = (
            pl.DataFrame({"raw": values.cast(pl.String)})
            .filter(pl.col("raw").is_in(unmapped))
            .group_by("raw")
            .len()
            .sort("len", "raw", descending=[True, False])
        )
        counts = list(tally.iter_rows())
    return types, counts


# --------------------------------------------------------------------------------------------
# one table


@dataclass(frozen=True)
class _TableResult:
    loaded: pl.DataFrame
    quarantine: pl.DataFrame
    read: int
    notes: list[str]


def _prepare(raw: RawTable) -> tuple[pl.DataFrame, list[str]]:
    """Canonical column names, ``__row``, required columns present, blank rows removed."""
    spec = TABLES[raw.table]
    frame = raw.frame
    notes: list[str] = []
    renames: dict[str, str] = {}
    for name in frame.columns:
        if name in (ROW, FILE):
            continue
        canonical = _canonical_header(name)
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
                f"{raw.table} ({raw.file}): skipped {_count(n_blank, 'blank line')} "
                "(every field empty)"
            )
    return frame.with_columns(pl.col(ROW).cast(pl.UInt32)), notes


def _validate_table(
    raw: RawTable,
    *,
    settings: Settings,
    now: datetime,
    references: dict[str, pl.Series | None],
) -> _TableResult:
    spec = TABLES[raw.table]
    frame, notes = _prepare(raw)
    parsed, checks, parse_notes = _parse_table(raw, frame, settings=settings, now=now)
    notes += parse_notes
    order = {reason: i for i, reason in enumerate(REASONS)}
    checks.sort(key=lambda c: order[c.reason])  # stable: column order kept within a reason

    work = pl.DataFrame({ROW: frame[ROW]}).with_columns(
        pl.Series(f"parsed:{c}", s) for c, s in parsed.items()
    )
    work = work.with_columns(_first_failure(checks, offset=0).alias("__rule"))

    # duplicates among rows that passed the row-level rules; the first one is kept
    key_columns = [spec.key] if spec.key else [c for c in spec.columns if c in parsed]
    survivor = pl.col("__rule").is_null()
    keys = [pl.col(f"parsed:{c}") for c in key_columns]
    first = pl.struct(*keys, survivor).is_first_distinct()
    duplicate = work.select(survivor & ~first).to_series()
    first_rows = None
    if duplicate.any():
        first_rows = work.filter(survivor & first).select(*keys, pl.col(ROW).alias("__first_row"))
    if spec.key:
        later = [
            _Check(
                "duplicate_id",
                spec.key,
                duplicate,
                "{} '{}' already appeared in row {}; the first was kept",
                (spec.key, _value(spec.key), pl.col("__first_row")),
            )
        ]
    else:
        later = [
            _Check(
                "duplicate_id",
                None,
                duplicate,
                "exact repeat of row {}; the first was kept",
                (pl.col("__first_row"),),
            )
        ]
    for column, target, reason, applies in _REFERENCES:
        known = references.get(target)
        if raw.table not in applies or column not in parsed or known is None:
            continue
        unknown = parsed[column].is_not_null() & ~parsed[column].is_in(known.implode())
        later.append(
            _Check(
                reason,
                column,
                unknown,
                "{} '{}' is not among the loaded {}",
                (column, _value(column), target),
            )
        )
    work = work.with_columns(
        pl.coalesce(pl.col("__rule"), _first_failure(later, offset=len(checks))).alias("__rule")
    )
    checks = checks + later

    good = work["__rule"].is_null()
    loaded = _finish(
        work if good.all() else work.filter(good),
        raw.table,
        settings=settings,
        notes=notes,
        file=raw.file,
    )
    quarantine = _quarantine_rows(raw, frame, work, ~good, checks, first_rows, key_columns)
    return _TableResult(loaded, quarantine, frame.height, notes)


#: (column, referenced table, reason, tables whose column must point at a loaded row)
_REFERENCES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("rep_id", "reps", "unknown_rep", ("activities", "opportunities", "intervention_participants")),
    ("opportunity_id", "opportunities", "unknown_reference", ("stage_history",)),
    ("intervention_id", "interventions", "unknown_reference", ("intervention_participants",)),
)


def _first_failure(checks: list[_Check], *, offset: int) -> pl.Expr:
    """Index (into the full check list) of the first check each row fails, else null."""
    if not checks:
        return pl.lit(None, dtype=pl.UInt16)
    return pl.coalesce(
        pl.when(pl.lit(c.failed)).then(pl.lit(offset + i, dtype=pl.UInt16))
        for i, c in enumerate(checks)
    )


def _finish(
    good: pl.DataFrame, table: str, *, settings: Settings, notes: list[str], file: str
) -> pl.DataFrame:
    """Defaults from the settings, canonical schema, canonical order."""
    frame = good.select(
        pl.col(c).alias(c.removeprefix("parsed:")) for c in good.columns if c.startswith("parsed:")
    )
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
    for column, default, what in fills:
        if column in frame.columns:
            n_empty = frame[column].null_count()
            where = f"{column} empty in {_count(n_empty, 'row')};"
            fill = pl.coalesce(column, default)
        else:
            n_empty = frame.height
            where = f"no {column} column; {_count(n_empty, 'row')}"
            fill = default
        if n_empty:
            frame = frame.with_columns(fill.alias(column))
            notes.append(f"{table} ({file}): {where} filled with {what}")
    return _in_order(conform(frame, table).collect(), SORT_KEYS[table])


def _in_order(frame: pl.DataFrame, keys: tuple[str, ...]) -> pl.DataFrame:
    """``frame`` sorted by ``keys`` (nulls last, ties in input order), fast on 10M rows.

    Already ordered input is returned as is. Otherwise one stable pass per key, last key
    first, on numbers only (text keys are replaced by their rank among the distinct values,
    since sorting numbers is several times faster than sorting text); rows are gathered once.
    """
    if frame.height < 2 or _is_ordered(frame, keys):
        return frame
    order: pl.Series | None = None
    for key in reversed(keys):
        column = frame[key]
        if column.dtype == pl.String:
            distinct = column.drop_nulls().unique().sort()
            codes = pl.DataFrame({key: distinct}).with_row_index("__code")
            column = frame.select(key).join(codes, on=key, how="left", maintain_order="left")
            column = column["__code"]
        if order is not None:
            column = column.gather(order)
        step = (
            column.to_frame("k")
            .select(pl.arg_sort_by("k", nulls_last=True, maintain_order=True))
            .to_series()
        )
        order = step if order is None else order.gather(step)
    return frame.lazy().select(pl.all().gather(order)).collect()  # columns in parallel


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
    checks: list[_Check],
    first_rows: pl.DataFrame | None,
    key_columns: list[str],
) -> pl.DataFrame:
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
    )
    if first_rows is not None:
        keys = [f"parsed:{c}" for c in key_columns]
        q = q.join(first_rows, on=keys, how="left", nulls_equal=True, maintain_order="left")
    else:
        q = q.with_columns(pl.lit(None, dtype=pl.UInt32).alias("__first_row"))
    rule = pl.col("__rule")
    used = q["__rule"].unique().to_list()

    def pick(values: Callable[[_Check], pl.Expr]) -> pl.Expr:
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


# --------------------------------------------------------------------------------------------
# the pipeline


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
    if settings is None:
        settings = load_settings()
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)

    pre = (
        pl.DataFrame(schema=QUARANTINE_SCHEMA)
        if pre_quarantined is None
        else pre_quarantined.select(
            pl.col(name).cast(dtype) for name, dtype in QUARANTINE_SCHEMA.items()
        )
    )
    stray = set(pre["table"].unique().to_list()) - set(TABLES)
    if stray:
        raise ValueError(f"pre_quarantined rows name unknown tables: {sorted(stray)}")

    tables: dict[str, pl.DataFrame] = {}
    quarantines = [pre]
    notes: list[str] = []
    entries: dict[str, TableReport] = {}
    references: dict[str, pl.Series | None] = {}
    for name in TABLE_ORDER:
        earlier = pre.filter(pl.col("table") == name)
        earlier_counts = dict(earlier.group_by("reason").len().iter_rows())
        if name not in raw:
            tables[name] = TABLES[name].empty()
            references[name] = None
            file = earlier["file"][0] if earlier.height else None
            entries[name] = TableReport(
                name, file, earlier.height, 0, earlier_counts, missing=not earlier.height
            )
            continue
        result = _validate_table(raw[name], settings=settings, now=now, references=references)
        tables[name] = result.loaded
        key = TABLES[name].key
        references[name] = result.loaded[key] if key else None
        quarantines.append(result.quarantine)
        notes += result.notes
        counts = dict(result.quarantine.group_by("reason").len().iter_rows())
        for reason, n in earlier_counts.items():
            counts[reason] = counts.get(reason, 0) + n
        entry = TableReport(
            name,
            raw[name].file,
            result.read + earlier.height,
            result.loaded.height,
            {r: counts[r] for r in REASONS if r in counts}
            | {r: n for r, n in counts.items() if r not in REASONS},
        )
        if entry.loaded + entry.quarantined_total != entry.read:
            raise AssertionError(
                f"load invariant broken for {name}: loaded {entry.loaded} + quarantined "
                f"{entry.quarantined_total} != read {entry.read}"
            )
        entries[name] = entry

    report = LoadReport(tables=tuple(entries[t] for t in TABLES), notes=tuple(notes))
    quarantine = pl.concat(quarantines, how="vertical")
    missing = tuple(t for t in TABLES if entries[t].missing)
    source = ", ".join(sorted({t.file for t in raw.values()}))
    return LoadedData(
        tables={t: tables[t] for t in TABLES},
        quarantine=quarantine,
        report=report,
        settings=settings,
        missing_tables=missing,
        source=source,
    )


# --------------------------------------------------------------------------------------------
# folders


def _table_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Files named after canonical tables, and the names of the other files."""
    found: dict[str, Path] = {}
    others: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
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


def _read_table(table: str, path: Path) -> RawTable:
    if path.suffix.lower() == ".parquet":
        try:
            frame = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as err:
            raise DataError(f"{path.name}: not a readable Parquet file ({err})") from err
        return RawTable(table, frame.with_row_index(ROW, offset=1), path.name)
    frame, delimiter, _ = read_delimited(path)
    return RawTable(
        table, frame.with_row_index(ROW, offset=1), path.name, decimal_comma=delimiter == ";"
    )


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
    raw = {table: _read_table(table, p) for table, p in files.items()}
    data = validate_tables(raw, settings=settings, now=now)
    notes = tuple(f"ignored file {name} (not named after a table)" for name in others)
    report = LoadReport(tables=data.report.tables, notes=data.report.notes + notes)
    return LoadedData(
        tables=data.tables,
        quarantine=data.quarantine,
        report=report,
        settings=settings,
        missing_tables=data.missing_tables,
        source=str(folder),
    )
