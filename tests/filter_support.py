"""The page filters a reader uses, for tests that compare a page's numbers under each."""

from __future__ import annotations

import datetime as dt

import polars as pl

from effortlens.filters import Filter


def reader_filters(enriched) -> list[Filter]:
    """None, a team, the last 90 days, both, one rep of the team, a late start, an early end.

    The team is the first by name and the rep its first by id, so every run picks the same.
    """
    reps = enriched.reps.with_columns(pl.col("team").cast(pl.String))
    team = reps["team"].drop_nulls().unique().sort()[0]
    rep = reps.filter(pl.col("team") == team)["rep_id"].sort()[0]
    end = enriched.daily["day"].max()
    start = end - dt.timedelta(days=89)
    return [
        Filter(),
        Filter(teams=(team,)),
        Filter(start=start, end=end),
        Filter(teams=(team,), start=start, end=end),
        Filter(reps=(rep,)),
        Filter(start=start),
        Filter(end=start),
    ]


def as_strings(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with Categorical columns as String (a build holds grouping columns so)."""
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.String))


def assert_period_habits_equal(codes, flt: Filter, kept: pl.DataFrame) -> bool:
    """The habit tables summed from the build's touch codes under ``flt`` equal those of the
    touch facts ``kept`` under it (counts exact, effects to 1e-9); True if any touch was kept."""
    from polars.testing import assert_frame_equal

    from effortlens.habits import period_habits, touch_habits

    assert codes.count(flt) == kept.height, flt
    by_codes = period_habits(codes, flt)
    by_touches = touch_habits(kept.lazy())
    for name in ("timing", "cadence", "sequences"):
        assert_frame_equal(by_codes[name], by_touches[name])
    for feature in ("timing", "cadence"):
        assert_frame_equal(
            by_codes["effects"][feature],
            by_touches["effects"][feature],
            check_exact=False,
            rel_tol=1e-9,
        )
    return kept.height > 0
