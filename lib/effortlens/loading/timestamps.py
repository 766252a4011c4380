"""Reading the dates and times people and spreadsheets write, vectorised.

Understood, per value:

- ISO 8601 with an offset or ``Z`` (``2024-03-05T14:30:00Z``, ``2024-03-05 14:30+01:00``);
- naive ISO (``2024-03-05 14:30``, ``2024-03-05``), read as wall time in the given zone;
- slash dates with an optional time, ``M/D/YYYY [H:MM[:SS] [AM|PM]]`` or ``D/M/YYYY``
  (also with ``-``); dotted dates ``D.M.YYYY`` are always day first;
- Excel serial day numbers (``45321``, ``45321.5``), wall time in the given zone.

Day/month order of slash dates is decided per column: a first part above 12 means D/M, a
second part above 12 means M/D; when both occur the minority is flagged as conflicting; when
neither occurs M/D is assumed and a note says so. Naive times in a daylight-saving gap are
read with the offset in force before the change (as Python's ``fold=0`` does); times that occur
twice take the first occurrence; notes count both.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from effortlens.schema import UTC_TS

_ISO = (
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?$"
)
_SLASH = (
    r"^(\d{1,2})([/.-])(\d{1,2})[/.-](\d{4})"
    r"(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?(?:\s*([AaPp])\.?[Mm]\.?)?)?$"
)
_SERIAL = r"^(\d{5})(?:[.,](\d+))?$"
_EXCEL_EPOCH = pl.datetime(1899, 12, 30)
_NAIVE_FORMAT = "%Y-%m-%d %H:%M:%S%.f"

#: What a date/time value may look like, for messages.
EXPECTED_TIMESTAMP = (
    "a date/time: ISO 8601 (2024-03-05T14:30:00Z, 2024-03-05 14:30 or 2024-03-05), "
    "M/D/YYYY [H:MM [AM/PM]], D/M/YYYY, D.M.YYYY or an Excel serial day number (45321.5)"
)


@dataclass(frozen=True)
class ParsedTimes:
    """The outcome of :func:`parse_timestamps`.

    Attributes
    ----------
    values
        ``Datetime("us", "UTC")`` (or ``Date`` when asked), null where nothing was given or
        nothing could be read.
    failed
        ``True`` where a value was given but could not be read (including ``conflict``).
    conflict
        ``True`` where a slash date contradicts the day/month order of its column.
    slash_order
        ``"M/D/YYYY"`` or ``"D/M/YYYY"`` when the column holds slash dates, else ``None``.
    notes
        Sentences for the load report (assumed order, daylight-saving adjustments).
    """

    values: pl.Series
    failed: pl.Series
    conflict: pl.Series
    slash_order: str | None
    notes: tuple[str, ...]


def _times(n: int) -> str:
    return f"{n:,} value" + ("" if n == 1 else "s")


def _clock(hour: pl.Expr, minute: pl.Expr, second: pl.Expr, fraction: pl.Expr) -> list[pl.Expr]:
    """Zero-padded pieces of ``HH:MM:SS.ffffff`` (missing parts are zero)."""
    return [
        hour.fill_null("0").str.zfill(2),
        minute.fill_null("00"),
        second.fill_null("00"),
        fraction.fill_null("0").str.slice(0, 6).str.pad_end(6, "0"),
    ]


def _naive(year, month, day, clock: list[pl.Expr]) -> pl.Expr:
    """A naive datetime from text parts; impossible dates (Feb 30, month 13) become null."""
    text = pl.format("{}-{}-{} {}:{}:{}.{}", year, month.str.zfill(2), day.str.zfill(2), *clock)
    return text.str.strptime(pl.Datetime("us"), _NAIVE_FORMAT, strict=False)


def localize(naive: pl.Series, *, timezone: str) -> tuple[pl.Series, int, int]:
    """Read naive wall times in ``timezone`` and return them in UTC.

    Returns the UTC series and the counts of values that fell in a daylight-saving gap
    (read with the offset before the change) and that were ambiguous (first occurrence).

    Examples
    --------
    >>> from datetime import datetime
    >>> s = pl.Series([datetime(2024, 3, 10, 2, 30)])
    >>> localize(s, timezone="America/New_York")[0].to_list()[0].hour
    7
    """
    naive = naive.cast(pl.Datetime("us"))
    exact = naive.dt.replace_time_zone(timezone, ambiguous="null", non_existent="null")
    unsure = exact.is_null() & naive.is_not_null()
    n_gap = n_ambiguous = 0
    if unsure.any():
        idx = unsure.arg_true()
        odd = naive.gather(idx)
        first = odd.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
        n_ambiguous = int(first.is_not_null().sum())
        hour = pl.duration(hours=1)
        # a gap time read with the offset before the change: an hour earlier, then back
        shifted = pl.select(
            (pl.lit(odd) - hour).dt.replace_time_zone(
                timezone, ambiguous="earliest", non_existent="null"
            )
            + hour
        ).to_series()
        n_gap = int(first.is_null().sum())
        exact = exact.scatter(idx, first.fill_null(shifted))
    return exact.dt.convert_time_zone("UTC").cast(UTC_TS), n_gap, n_ambiguous


def parse_timestamps(
    values: pl.Series,
    *,
    timezone: str,
    as_date: bool = False,
    day_first: bool | None = None,
) -> ParsedTimes:
    """Parse a column of date/time text into UTC timestamps (or dates), vectorised.

    Parameters
    ----------
    values
        A String series (surrounding blanks ignored; empty means missing).
    timezone
        IANA zone in which naive times, dates and Excel serials are read.
    as_date
        Return ``Date`` values (the calendar date as written) instead of UTC timestamps.
    day_first
        Day/month order of slash dates; ``None`` decides per column (see module notes).

    Examples
    --------
    >>> s = pl.Series(["2024-03-05T14:30:00Z", "3/5/2024 9:30 AM", "45321.5", "soon"])
    >>> p = parse_timestamps(s, timezone="UTC")
    >>> [v.isoformat() if v else None for v in p.values.to_list()]
    ['2024-03-05T14:30:00+00:00', '2024-03-05T09:30:00+00:00', '2024-01-30T12:00:00+00:00', None]
    >>> p.failed.to_list()
    [False, False, False, True]
    """
    frame = _split_parts(values)
    day_first, slash_order, conflict, notes = _slash_order(frame, day_first=day_first)
    frame = frame.with_columns(conflict.fill_null(False).alias("conflict"))
    frame = frame.with_columns(
        pl.when(~pl.col("conflict")).then(_slash_naive(day_first=day_first)).alias("slash_naive"),
        _serial_naive().alias("serial_naive"),
    )
    has_offset = pl.col("iso_8").is_not_null()
    frame = frame.with_columns(
        pl.coalesce(
            pl.when(~has_offset).then(pl.col("iso_naive")),
            pl.col("slash_naive"),
            pl.col("serial_naive"),
        ).alias("local"),
        pl.when(has_offset)
        .then(pl.col("iso_naive") - pl.duration(minutes=_offset_minutes(pl.col("iso_8"))))
        .dt.replace_time_zone("UTC")
        .alias("utc"),
    )

    if as_date:
        parsed = frame.select(
            pl.coalesce(pl.col("local"), pl.col("iso_naive")).dt.date()
        ).to_series()
    else:
        local_utc, n_gap, n_ambiguous = localize(frame["local"], timezone=timezone)
        parsed = frame.select(pl.coalesce(pl.col("utc"), pl.lit(local_utc))).to_series()
        if n_gap:
            notes.append(
                f"in a daylight-saving gap of {timezone}, read with the offset in force "
                f"before the change: {_times(n_gap)}"
            )
        if n_ambiguous:
            notes.append(
                f"occurring twice in {timezone} (clocks turned back), read as the first "
                f"occurrence: {_times(n_ambiguous)}"
            )
    failed = frame["text"].is_not_null() & parsed.is_null()
    return ParsedTimes(
        values=parsed.alias(values.name),
        failed=failed.alias(values.name),
        conflict=frame["conflict"].alias(values.name),
        slash_order=slash_order,
        notes=tuple(notes),
    )


def _split_parts(values: pl.Series) -> pl.DataFrame:
    """The text (empty as null) and its parts as ISO (``iso_*``, with ``iso_naive``), slash
    (``slash_*``, with ``first``, ``second`` and ``dotted``) and Excel serial (``serial_*``)."""
    text = values.cast(pl.String).str.strip_chars()
    frame = pl.DataFrame({"text": text}).with_columns(
        pl.when(pl.col("text") != "").then(pl.col("text")).alias("text")
    )
    iso = pl.col("text").str.extract_groups(_ISO)
    slash = pl.col("text").str.extract_groups(_SLASH)
    serial = pl.col("text").str.extract_groups(_SERIAL)
    frame = frame.with_columns(
        iso.alias("iso"), slash.alias("slash"), serial.alias("serial")
    ).unnest("iso", "slash", "serial", separator="_")
    return frame.with_columns(
        _naive(
            pl.col("iso_1"),
            pl.col("iso_2"),
            pl.col("iso_3"),
            _clock(pl.col("iso_4"), pl.col("iso_5"), pl.col("iso_6"), pl.col("iso_7")),
        ).alias("iso_naive"),
        pl.col("slash_1").cast(pl.Int32).alias("first"),
        pl.col("slash_3").cast(pl.Int32).alias("second"),
        (pl.col("slash_2") == ".").alias("dotted"),
    )


def _slash_order(
    frame: pl.DataFrame, *, day_first: bool | None
) -> tuple[bool | None, str | None, pl.Expr, list[str]]:
    """Day/month order of the column's slash dates (see the module notes): whether day comes
    first, the order's name, which rows contradict it, and notes."""
    # "31/31/2025" is evidence of nothing
    undotted = frame.filter(pl.col("first").is_not_null() & ~pl.col("dotted"))
    day_only = (pl.col("first") > 12) & (pl.col("second") <= 12)
    month_only = (pl.col("second") > 12) & (pl.col("first") <= 12)
    day_evidence, month_evidence, n_ambiguous = undotted.select(
        day_only.sum().alias("day"),
        month_only.sum().alias("month"),
        ((pl.col("first") <= 12) & (pl.col("second") <= 12)).sum().alias("either"),
    ).row(0)
    notes: list[str] = []
    conflict = pl.lit(False)
    if day_first is None and undotted.height:
        day_first = day_evidence > month_evidence
        if day_evidence and month_evidence:
            conflict = (month_only if day_first else day_only) & ~pl.col("dotted")
        elif not day_evidence and n_ambiguous and not month_evidence:
            notes.append(
                f"no slash date in the column has a part above 12, so day and month cannot be "
                f"told apart; read month first (M/D/YYYY): {_times(n_ambiguous)}"
            )
    slash_order = ("D/M/YYYY" if day_first else "M/D/YYYY") if undotted.height else None
    return day_first, slash_order, conflict, notes


def _slash_naive(*, day_first: bool | None) -> pl.Expr:
    """Naive datetimes of slash and dotted dates (12-hour clocks read), null where impossible."""
    day_col = pl.when(pl.col("dotted") | pl.lit(bool(day_first)))
    month = day_col.then(pl.col("slash_3")).otherwise(pl.col("slash_1"))
    day = day_col.then(pl.col("slash_1")).otherwise(pl.col("slash_3"))
    hour = pl.col("slash_5").cast(pl.Int32)
    pm = pl.col("slash_9").str.to_lowercase() == "p"
    hour24 = (
        pl.when(pl.col("slash_9").is_null())
        .then(hour)
        .when((hour >= 1) & (hour <= 12))
        .then(hour % 12 + pl.when(pm).then(12).otherwise(0))
        .otherwise(99)  # "13:00 PM" is not a time
        .cast(pl.String)
    )
    return _naive(
        pl.col("slash_4"),
        month,
        day,
        _clock(hour24, pl.col("slash_6"), pl.col("slash_7"), pl.col("slash_8")),
    )


def _serial_naive() -> pl.Expr:
    """Naive datetimes of Excel serial day numbers (days since 1899-12-30)."""
    days = pl.format("{}.{}", pl.col("serial_1"), pl.col("serial_2").fill_null("0"))
    return _EXCEL_EPOCH + pl.duration(
        microseconds=(days.cast(pl.Float64) * 86_400_000_000).round().cast(pl.Int64)
    )


def _offset_minutes(offset: pl.Expr) -> pl.Expr:
    """Minutes east of UTC of an ISO offset (``Z``, ``+01:00``, ``-0530``, ``+02``)."""
    digits = offset.str.replace_all(r"[^0-9]", "")
    return pl.when(offset.str.starts_with("-")).then(-1).otherwise(1) * (
        digits.str.slice(0, 2).cast(pl.Int64, strict=False).fill_null(0) * 60
        + digits.str.slice(2, 2).cast(pl.Int64, strict=False).fill_null(0)
    )
