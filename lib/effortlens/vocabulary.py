"""Shared words of the metrics: weekday names, closed outcomes, how sequences and hours read.

Concept modules (habits, deviance, findings, charts) take their vocabulary from here rather than
from one another, so no concept module imports another only for a constant.

Examples
--------
>>> WEEKDAY_NAMES[0], hour_label(9), SEQUENCE_SEPARATOR.join(["call", "email"])
('Mon', '09:00', 'call → email')
"""

from __future__ import annotations

import polars as pl

#: ISO weekday names, Mon (1) to Sun (7), as enrichment numbers them.
WEEKDAY_NAMES: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

#: Deal outcomes that close a deal (``open`` is the other one).
CLOSED_OUTCOMES: tuple[str, ...] = ("won", "lost", "no_decision")

#: Joins the activity types of a sequence, the measured touch last.
SEQUENCE_SEPARATOR = " → "

#: The bin of a contact's first touch in a cadence table.
FIRST_TOUCH = "first touch"


def hour_label(hour: int) -> str:
    """A local hour as a clock time, e.g. ``9`` -> ``"09:00"``.

    Examples
    --------
    >>> hour_label(14)
    '14:00'
    """
    return f"{hour:02d}:00"


def weekday_name(column: str = "weekday") -> pl.Expr:
    """The ISO weekday number in ``column`` as its short name (``1`` -> ``"Mon"``).

    Examples
    --------
    >>> pl.DataFrame({"weekday": [1, 7]}).select(weekday_name())["weekday"].to_list()
    ['Mon', 'Sun']
    """
    return (
        pl.col(column)
        .cast(pl.Int64)
        .replace_strict(dict(enumerate(WEEKDAY_NAMES, start=1)), return_dtype=pl.String)
    )


def hour_name(column: str = "hour") -> pl.Expr:
    """The local hour in ``column`` as a clock time (``9`` -> ``"09:00"``).

    Examples
    --------
    >>> pl.DataFrame({"hour": [9]}).select(hour_name())["hour"].to_list()
    ['09:00']
    """
    return pl.col(column).cast(pl.String).str.zfill(2) + pl.lit(":00")
