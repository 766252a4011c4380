"""The row rules: which rows of a table cannot be used, and why.

Rules are checked in this order; the first one a row fails gives its reason:

1. ``missing_id`` — the key or a required id is empty;
2. ``bad_timestamp`` — a timestamp cannot be read (or a required one is empty, or a slash
   date contradicts its column's day/month order);
3. ``bad_value`` — a number, true/false value or date cannot be read; an outcome, exit reason
   or buyer action type outside its vocabulary; a required text value is empty;
4. ``negative_duration`` — ``duration_min`` below zero;
5. an implausible timestamp: ``future_timestamp`` — after ``now`` (an open deal's
   ``close_ts`` may be ahead: it is an expected close date); ``early_timestamp`` — an
   activity's, buyer action's or stage entry's before the settings' ``earliest_timestamp``
   (a placeholder such as 0001-01-01; a deal's ``created_ts`` or ``close_ts`` that early is
   read as empty instead, and noted: :func:`_check_early`);
6. ``unknown_stage`` — a stage neither among the settings' stages nor in ``[stages.map]``;
7. ``no_account`` — a buyer action without ``account_id``;
8. ``duplicate_id`` — the key seen in an earlier row that passed rules 1–7 (first kept); for
   link tables (stage history, participants) an exact repeat of an earlier row;
9. ``unknown_rep`` — ``rep_id`` of an activity, deal or participant not among the loaded reps;
10. ``unknown_reference`` — stage history of a deal not among the loaded opportunities (when
    opportunities were given); a participant of an intervention not among the loaded ones
    (when interventions were given).

Rules 1–7 look at one row at a time (:func:`parse_table`); rules 8–10 at the rows that passed
them (:func:`duplicate_check`, :func:`reference_checks`).

Examples
--------
>>> from datetime import UTC, datetime
>>> from effortlens.settings import load_settings
>>> frame = pl.DataFrame({"rep_id": ["r1", ""], "hire_date": ["2024-01-31", "soon"]})
>>> table = parse_table("reps", "reps.csv", frame, settings=load_settings(),
...                     now=datetime(2025, 1, 1, tzinfo=UTC))
>>> [(c.reason, c.column, c.failed.to_list()) for c in table.checks if c.failed.any()]
[('bad_value', 'hire_date', [False, True]), ('missing_id', 'rep_id', [False, True])]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import polars as pl

from effortlens.loading.columns import (
    EXPECTED_BOOLEAN,
    is_untidy,
    no_failures,
    parse_activity_types,
    parse_booleans,
    parse_numbers,
    parse_text,
    parse_times,
    translate_distinct,
    vocabulary_word,
)
from effortlens.loading.report import counted
from effortlens.loading.timestamps import EXPECTED_TIMESTAMP, ParsedTimes
from effortlens.schema import EXIT_REASONS, OUTCOMES, TABLES, UTC_TS
from effortlens.settings import Settings

#: What a date value may look like, for messages.
EXPECTED_DATE = "a date (2024-03-05, M/D/YYYY, D/M/YYYY, D.M.YYYY or an Excel serial day)"
_IS_NOT = "'{}' is not {}"

#: (column, referenced table, reason, tables whose column must point at a loaded row)
REFERENCES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("rep_id", "reps", "unknown_rep", ("activities", "opportunities", "intervention_participants")),
    ("opportunity_id", "opportunities", "unknown_reference", ("stage_history",)),
    ("intervention_id", "interventions", "unknown_reference", ("intervention_participants",)),
)


@dataclass(frozen=True)
class Check:
    """One rule applied to one column: the rows failing it and how to explain a failure.

    The message tail is ``pl.format(template, *args)`` evaluated on the quarantined rows,
    where an argument may be an expression over ``raw:<column>`` (the text as given),
    ``parsed:<column>`` and ``__first_row``, or a plain value.

    Examples
    --------
    >>> c = Check("bad_value", "amount", pl.Series([True]), "'{}' is not {}",
    ...           (raw_value("amount"), "a number"))
    >>> pl.DataFrame({"raw:amount": ["abc"]}).select(c.explain()).item()
    "'abc' is not a number"
    """

    reason: str
    column: str | None
    failed: pl.Series
    template: str
    args: tuple = ()

    def explain(self) -> pl.Expr:
        """The message tail of a failing row, as an expression over the quarantined rows."""
        if not self.args:
            return pl.lit(self.template)
        return pl.format(
            self.template, *(a if isinstance(a, pl.Expr) else pl.lit(str(a)) for a in self.args)
        )


def raw_value(column: str) -> pl.Expr:
    """The value of ``column`` as it was given (empty when missing), for messages.

    Examples
    --------
    >>> pl.DataFrame({"raw:stage": [None]}).select(raw_value("stage")).item()
    ''
    """
    return pl.col(f"raw:{column}").fill_null("")


@dataclass
class ParsedTable:
    """One table's columns parsed, the row rules 1–7 it was checked against, and notes.

    Attributes
    ----------
    table, file
        Canonical table name and source file, for notes.
    parsed
        Canonical column name to its values (null where missing or unreadable).
    checks
        In the order they were made; :func:`first_failure` wants them ordered by reason.
    notes
        Sentences for the load report.
    """

    table: str
    file: str
    parsed: dict[str, pl.Series] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, reason: str, column: str, failed: pl.Series, template: str, *args) -> None:
        """Add a :class:`Check` of ``column``."""
        self.checks.append(Check(reason, column, failed, template, args))

    def note(self, column: str, text: str) -> None:
        """Add a note about ``column``."""
        self.notes.append(f"{self.table}.{column} ({self.file}): {text}")


def parse_table(
    table: str,
    file: str,
    frame: pl.DataFrame,
    *,
    settings: Settings,
    now: datetime,
    decimal_comma: bool = False,
    tidy: frozenset[str] = frozenset(),
) -> ParsedTable:
    """Parse every canonical column present and check rules 1–7 on each row.

    Parameters
    ----------
    table
        Canonical table name.
    file
        Source file name, for notes.
    frame
        Columns named canonically, as given (text or typed).
    settings
        Vocabularies, the time zone of naive times and the earliest timestamp (rule 5).
    now
        The load time (rule 5: no timestamp after it).
    decimal_comma
        Numbers may be written ``12,5``.
    tidy
        Text columns known to hold no value to trim and no empty one: not looked at.

    Returns
    -------
    ParsedTable

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from effortlens.settings import load_settings
    >>> frame = pl.DataFrame({"rep_id": ["r1"], "team": [" North "]})
    >>> t = parse_table("reps", "reps.csv", frame, settings=load_settings(),
    ...                 now=datetime(2025, 1, 1, tzinfo=UTC))
    >>> t.parsed["team"].to_list()
    ['North']
    """
    out = ParsedTable(table, file)
    _parse_columns(out, frame, settings=settings, decimal_comma=decimal_comma, tidy=tidy)
    _translate_vocabularies(out, frame, settings=settings)
    _check_required(out, frame.height)
    _check_durations(out)
    _check_future(out, now)
    _check_early(out, settings.earliest_timestamp)
    return out


#: Text columns whose parsed values :func:`_translate_vocabularies` replaces by translating the
#: column as given, without reading them: not searched for blanks (3.3M activities: 0.08 CPU s).
_RETRANSLATED = frozenset({"activity_type", "currency"})


def _parse_columns(
    out: ParsedTable,
    frame: pl.DataFrame,
    *,
    settings: Settings,
    decimal_comma: bool,
    tidy: frozenset[str] = frozenset(),
) -> None:
    """Every canonical column by its type: rules 2 and 3 for unreadable values."""
    spec = TABLES[out.table]
    # which text columns need trimming, checked in one parallel pass: not those known not to,
    # nor those whose parsed text is replaced unread (_translate_vocabularies)
    tidy = tidy | _RETRANSLATED
    texts = [
        c
        for c, t in spec.columns.items()
        if t == pl.String and c in frame.columns and frame[c].dtype == pl.String and c not in tidy
    ]
    untidy = frame.select(is_untidy(c) for c in texts).row(0) if texts else ()
    tidy = tidy | {c for c, flag in zip(texts, untidy, strict=True) if not flag}
    for column, dtype in spec.columns.items():
        if column not in frame.columns:
            continue
        source = frame[column]
        if isinstance(dtype, pl.Datetime | pl.Date):
            _parse_time_column(out, column, source, settings=settings, as_date=dtype == pl.Date)
        elif dtype == pl.Float64:
            out.parsed[column], bad = parse_numbers(source, decimal_comma=decimal_comma)
            out.check("bad_value", column, bad, _IS_NOT, raw_value(column), "a number")
        elif dtype == pl.Boolean:
            out.parsed[column], bad = parse_booleans(source)
            out.check("bad_value", column, bad, _IS_NOT, raw_value(column), EXPECTED_BOOLEAN)
        else:
            out.parsed[column] = parse_text(source, tidy=column in tidy)


def _parse_time_column(
    out: ParsedTable, column: str, source: pl.Series, *, settings: Settings, as_date: bool
) -> None:
    """A date or timestamp column; slash dates against their column's order are quarantined."""
    times: ParsedTimes = parse_times(source, timezone=settings.timezone, as_date=as_date)
    out.parsed[column] = times.values
    for text in times.notes:
        out.note(column, text)
    reason = "bad_value" if as_date else "bad_timestamp"
    if times.conflict.any():
        majority = times.slash_order
        minority = "M/D/YYYY" if majority == "D/M/YYYY" else "D/M/YYYY"
        n_against = counted(int(times.conflict.sum()), "row")
        out.note(
            column,
            f"slash dates mix day-first and month-first; read as {majority}, "
            f"the {n_against} that only read as {minority} were quarantined",
        )
        out.check(
            reason,
            column,
            times.conflict,
            "'{}' only reads as {} but most slash dates in this column are {} ({} disagree)",
            raw_value(column),
            minority,
            majority,
            n_against,
        )
    expected = EXPECTED_DATE if as_date else EXPECTED_TIMESTAMP
    out.check(reason, column, times.failed, _IS_NOT, raw_value(column), expected)


def _translate_vocabularies(out: ParsedTable, frame: pl.DataFrame, *, settings: Settings) -> None:
    """Activity types, action types, outcomes, exit reasons, currencies and stages, translated
    once per distinct value: rule 3 for words outside a vocabulary, rule 6 for stages."""
    parsed = out.parsed
    if "activity_type" in parsed:
        parsed["activity_type"], other_counts = parse_activity_types(
            frame["activity_type"], settings
        )
        for raw_type, n in other_counts:
            out.notes.append(
                f"{out.table} ({out.file}): {counted(n, 'row')} had activity_type "
                f"'{raw_type}', mapped to 'other' (add it to [activities.map] in the settings "
                "to map it elsewhere)"
            )
    vocabularies = {
        "action_type": tuple(settings.action_weights),
        "outcome": OUTCOMES,
        "exit_reason": EXIT_REASONS,
    }
    for column, allowed in vocabularies.items():
        if column in parsed:
            words = translate_distinct(
                frame[column],
                lambda v, a=allowed: vocabulary_word(v) if vocabulary_word(v) in a else None,
            )
            bad = parsed[column].is_not_null() & words.is_null()
            parsed[column] = words
            out.check(
                "bad_value", column, bad, _IS_NOT, raw_value(column), "one of " + ", ".join(allowed)
            )
    if "currency" in parsed:
        parsed["currency"] = translate_distinct(
            frame["currency"], lambda v: v.strip().upper() or None
        )
    if "stage" in parsed:
        known = {s.strip().lower(): s for s in settings.stages} | settings.stage_map
        stages = translate_distinct(frame["stage"], lambda v: known.get(v.strip().lower()))
        unknown = parsed["stage"].is_not_null() & stages.is_null()
        parsed["stage"] = stages
        out.check(
            "unknown_stage",
            "stage",
            unknown,
            "'{}' is not one of the stages ({}) nor mapped in the settings' [stages.map]",
            raw_value("stage"),
            ", ".join(settings.stages),
        )


def _check_required(out: ParsedTable, height: int) -> None:
    """Required values present (rules 1, 2, 3 and 7); a value given but unreadable was caught
    by its type's rule already."""
    spec = TABLES[out.table]
    for column in spec.not_null:
        if column not in out.parsed:
            continue
        given_but_bad = no_failures(height)
        for earlier in out.checks:
            if earlier.column == column:
                given_but_bad = given_but_bad | earlier.failed
        empty = out.parsed[column].is_null() & ~given_but_bad
        if out.table == "buyer_actions" and column == "account_id":
            out.check(
                "no_account",
                column,
                empty,
                "account_id is empty; a buyer action must name the buyer's account",
            )
        elif column.endswith("_id"):
            out.check(
                "missing_id", column, empty, f"{column} is empty; every {out.table} row needs one"
            )
        else:
            reason = "bad_timestamp" if spec.columns[column] == UTC_TS else "bad_value"
            out.check(reason, column, empty, f"{column} is empty; a value is required")


def _check_durations(out: ParsedTable) -> None:
    """Rule 4: no negative duration."""
    if "duration_min" in out.parsed:
        negative = (out.parsed["duration_min"] < 0).fill_null(False)
        out.check(
            "negative_duration",
            "duration_min",
            negative,
            "duration_min is {}; a duration cannot be negative",
            raw_value("duration_min"),
        )


def _check_future(out: ParsedTable, now: datetime) -> None:
    """Rule 5: no timestamp after the load time, except an open deal's expected close."""
    load_time = now.strftime("%Y-%m-%d %H:%M UTC")
    parsed = out.parsed
    for column, dtype in TABLES[out.table].columns.items():
        if column not in parsed or dtype != UTC_TS:
            continue
        future = (parsed[column] > now).fill_null(False)
        if column == "close_ts" and "outcome" in parsed:
            expected_close = future & (parsed["outcome"] == "open").fill_null(False)
            if expected_close.any():
                n_open = counted(int(expected_close.sum()), "open deal")
                out.note(
                    column,
                    f"{n_open} with a close_ts after the load time kept it as the "
                    "expected close date",
                )
            future = future & ~expected_close
        out.check(
            "future_timestamp",
            column,
            future,
            "'{}' ({}) is after the load time {}; a timestamp cannot be in the future",
            raw_value(column),
            pl.col(f"parsed:{column}").dt.strftime("%Y-%m-%d %H:%M UTC"),
            load_time,
        )


def _check_early(out: ParsedTable, earliest: date) -> None:
    """Rule 5's other half: no timestamp before ``earliest`` (midnight UTC): real exports write
    0001-01-01 (.NET's and SQL's smallest date), 1900-01-01 (Excel's day zero) or 1970-01-01
    (a Unix time of 0) where a time is missing; no CRM record is that old.

    Every UTC timestamp column is checked, as rule 5 checks them. An activity's, buyer
    action's or stage entry's time is required (its day, week and hour place it), so its row
    is quarantined: kept, one stray day decades before the rest would also stretch every
    per-day series of the build across the years between. A deal's ``created_ts`` and
    ``close_ts`` may be empty (an unknown age, no close date yet): there the placeholder is
    read as empty and the deal kept, with a note (an open deal's close date of 0001-01-01 is a
    .NET export's "none"; quarantining the deal would drop it from the pipeline).
    Dates are not checked (``hire_date``, ``exit_date``, an intervention's days): a rep hired
    in 1985 is real, and those dates are only compared with the activities' days.
    """
    start = datetime(earliest.year, earliest.month, earliest.day, tzinfo=UTC)
    limit = f"{earliest.isoformat()} (earliest_timestamp in the settings)"
    parsed = out.parsed
    spec = TABLES[out.table]
    for column, dtype in spec.columns.items():
        if column not in parsed or dtype != UTC_TS:
            continue
        early = (parsed[column] < start).fill_null(False)
        if column not in spec.not_null:
            if early.any():
                n_early = counted(int(early.sum()), "row")
                out.note(
                    column,
                    f"{n_early} had a {column} before {limit}, read as empty (a placeholder "
                    "for a missing date; set earliest_timestamp earlier if such dates are "
                    "real)",
                )
                parsed[column] = pl.select(pl.when(~early).then(parsed[column])).to_series()
            continue
        out.check(
            "early_timestamp",
            column,
            early,
            "'{}' ({}) is before the earliest timestamp accepted, {}; a date this early is a "
            "placeholder for a missing one (set earliest_timestamp earlier if it is real)",
            raw_value(column),
            pl.col(f"parsed:{column}").dt.strftime("%Y-%m-%d %H:%M UTC"),
            limit,
        )


def duplicate_check(table: str, duplicate: pl.Series) -> Check:
    """Rule 8 for ``table``: the rows marked ``duplicate`` repeat an earlier kept row.

    The message names the first row, from a ``__first_row`` column joined to the quarantine.

    Examples
    --------
    >>> duplicate_check("reps", pl.Series([False, True])).template
    "{} '{}' already appeared in row {}; the first was kept"
    """
    key = TABLES[table].key
    if key:
        return Check(
            "duplicate_id",
            key,
            duplicate,
            "{} '{}' already appeared in row {}; the first was kept",
            (key, raw_value(key), pl.col("__first_row")),
        )
    return Check(
        "duplicate_id",
        None,
        duplicate,
        "exact repeat of row {}; the first was kept",
        (pl.col("__first_row"),),
    )


def reference_checks(
    table: str,
    parsed: dict[str, pl.Series],
    references: dict[str, pl.Series | None],
    *,
    unknown: dict[str, pl.Series] | None = None,
) -> list[Check]:
    """Rules 9 and 10: ids of ``table`` that point at no loaded row of the table they name.

    Parameters
    ----------
    table
        Canonical table name.
    parsed
        Its parsed columns.
    references
        Canonical table name to its loaded keys, ``None`` when the table was not given (then
        nothing is checked against it).
    unknown
        Column to its rows already found to name no loaded row (not looked up again).

    Examples
    --------
    >>> parsed = {"rep_id": pl.Series(["r1", "r9"])}
    >>> [c.failed.to_list() for c in reference_checks(
    ...     "activities", parsed, {"reps": pl.Series(["r1"])})]
    [[False, True]]
    """
    checks = []
    for column, target, reason, applies in REFERENCES:
        known = references.get(target)
        if table not in applies or column not in parsed or known is None:
            continue
        if unknown is not None and column in unknown:
            failed = unknown[column]
        else:
            failed = parsed[column].is_not_null() & ~parsed[column].is_in(known.implode())
        checks.append(
            Check(
                reason,
                column,
                failed,
                "{} '{}' is not among the loaded {}",
                (column, raw_value(column), target),
            )
        )
    return checks


def first_failure(checks: list[Check], *, offset: int) -> pl.Expr:
    """Index (into the full check list) of the first check each row fails, else null.

    Examples
    --------
    >>> checks = [Check("missing_id", "rep_id", pl.Series([False, True, False]), "")]
    >>> pl.select(first_failure(checks, offset=2)).to_series().to_list()
    [None, 2, None]
    """
    if not checks:
        return pl.lit(None, dtype=pl.UInt16)
    return pl.coalesce(
        pl.when(pl.lit(c.failed)).then(pl.lit(offset + i, dtype=pl.UInt16))
        for i, c in enumerate(checks)
    )
