"""Reading the date and time columns of exports into ISO text, per column.

Each column is parsed with its own day/month order (or the mapping's ``date_format``); Unix
epoch numbers (HubSpot's API) are understood too. A value given but unreadable gets a message
in ``__bad:<column>`` so the row is set aside with it.

Examples
--------
>>> from pathlib import Path
>>> from effortlens.adapters.reading import Context, Sheet
>>> from effortlens.settings import load_settings
>>> ctx = Context(settings=load_settings(), timezone="UTC")
>>> sheet = Sheet(Path("Task.csv"), pl.DataFrame({"Due": ["3/5/2024", "1709647200000", "?"]}))
>>> parse_time_columns(sheet, ["Due"], ctx).frame["__t:Due"].to_list()
['2024-03-05T00:00:00.000000Z', '2024-03-05T14:00:00.000000Z', None]
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from effortlens.adapters.reading import Context, Sheet
from effortlens.loading.timestamps import EXPECTED_TIMESTAMP, localize, parse_timestamps


def _iso(values: pl.Series, *, as_date: bool) -> pl.Series:
    if as_date:
        return values.dt.strftime("%Y-%m-%d")
    return values.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")


def _epochs(values: pl.Series) -> pl.Series:
    """Unix epoch milliseconds (13 digits, HubSpot's API) or seconds (10) as ISO text."""
    text = values.str.strip_chars()
    ms = text.str.contains(r"^\d{13}$").fill_null(False)
    seconds = text.str.contains(r"^\d{10}$").fill_null(False)
    if not (ms.any() or seconds.any()):
        return values
    number = text.cast(pl.Int64, strict=False)
    stamp = (
        pl.select(
            pl.when(pl.lit(ms))
            .then(pl.from_epoch(pl.lit(number), time_unit="ms"))
            .when(pl.lit(seconds))
            .then(pl.from_epoch(pl.lit(number), time_unit="s"))
        )
        .to_series()
        .dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    )
    return pl.select(pl.coalesce(pl.lit(stamp), pl.lit(values))).to_series().alias(values.name)


def parse_time_columns(
    sheet: Sheet, columns: Iterable[str | None], ctx: Context, *, as_date: bool = False
) -> Sheet:
    """Parse ``columns`` of ``sheet`` (per column: its own day/month order) into ISO text.

    Adds ``__t:<col>`` (ISO 8601 UTC text, or a ``YYYY-MM-DD`` date) and ``__bad:<col>`` (a
    message where a value was given but cannot be read, else null).
    """
    frame = sheet.frame
    for column in dict.fromkeys(c for c in columns if c):
        if f"__t:{column}" in frame.columns:
            continue
        values = _epochs(frame[column])
        if ctx.time_format:
            naive = values.str.strptime(pl.Datetime("us"), ctx.time_format, strict=False)
            parsed = naive.dt.date() if as_date else localize(naive, timezone=ctx.timezone)[0]
            failed = values.is_not_null() & parsed.is_null()
            conflict = pl.Series([False] * len(values), dtype=pl.Boolean)
            expected = f"the format {ctx.time_format} (the mapping's date_format)"
        else:
            result = parse_timestamps(
                values, timezone=ctx.timezone, as_date=as_date, day_first=ctx.day_first
            )
            parsed, failed, conflict = result.values, result.failed, result.conflict
            ctx.note(*(f"{sheet.name}, {column}: {n}" for n in result.notes))
            expected = EXPECTED_TIMESTAMP
            if result.slash_order and int(conflict.sum()):
                ctx.note(
                    f"{sheet.name}, {column}: slash dates mix day-first and month-first values; "
                    f"read as {result.slash_order} (most values), {int(conflict.sum())} "
                    "contradicting values quarantined. Set date_format in a mapping to decide."
                )
        bad = (
            pl.when(pl.Series(conflict.fill_null(False)))
            .then(pl.format(f"{column}: '{{}}' contradicts the column's day/month order", values))
            .when(pl.Series(failed.fill_null(False)))
            .then(
                pl.format(
                    f"{column}: cannot read '{{}}' as a date/time; expected {expected}", values
                )
            )
        )
        frame = frame.with_columns(
            pl.Series(f"__t:{column}", _iso(parsed, as_date=as_date)),
        ).with_columns(bad.alias(f"__bad:{column}"))
    return Sheet(sheet.path, frame)


def time_field(*columns: str | None) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(value, bad message, column) of the first given source column among ``columns``.

    The columns must have been parsed by :func:`parse_time_columns`. A value that is given
    but unreadable does not fall through to the next column: it is bad.
    """
    present = [c for c in columns if c]
    if not present:
        none = pl.lit(None, dtype=pl.String)
        return none, none, none
    chosen = pl.coalesce(
        [pl.when(pl.col(c).is_not_null()).then(pl.lit(i)) for i, c in enumerate(present)]
    )

    def pick(prefix: str) -> pl.Expr:
        return pl.coalesce(
            [pl.when(chosen == i).then(pl.col(f"{prefix}{c}")) for i, c in enumerate(present)]
            + [pl.lit(None, dtype=pl.String)]
        )

    column = pl.coalesce(
        [pl.when(chosen == i).then(pl.lit(c)) for i, c in enumerate(present)] + [pl.lit(present[0])]
    )
    return pick("__t:"), pick("__bad:"), column
