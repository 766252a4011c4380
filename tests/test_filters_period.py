"""A period cut by binary search (a day-sorted frame) equals the period filtered.

``filter_frame`` slices a frame whose ``day`` column Polars flags sorted and filters any other;
``filter_enriched`` gives a view whose daily roll-up is made when first read. Both must keep
exactly the rows, in the order, that the plain filter keeps.
"""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.filters import Filter, filter_enriched, filter_frame, period_slice

FIRST = dt.date(2025, 1, 6)


def _frame(rows: int, *, seed: int, days: int = 60) -> pl.DataFrame:
    """Rows in random order: a rep, a team, a day (with repeats and gaps) and a value."""
    rng = random.Random(seed)
    reps = [f"r{i:02d}" for i in range(12)]
    return pl.DataFrame(
        {
            "rep_id": [rng.choice(reps) for _ in range(rows)],
            "team": [rng.choice(["North", "South", "West"]) for _ in range(rows)],
            "day": [FIRST + dt.timedelta(days=rng.randrange(days)) for _ in range(rows)],
            "hours": [rng.random() for _ in range(rows)],
        }
    )


def _plain(frame: pl.DataFrame, flt: Filter) -> pl.DataFrame:
    """The period and team filter written out, as the reference."""
    keep = pl.lit(True)
    if flt.start is not None:
        keep &= pl.col("day") >= flt.start
    if flt.end is not None:
        keep &= pl.col("day") <= flt.end
    if flt.teams:
        keep &= pl.col("team").is_in(list(flt.teams))
    return frame.filter(keep)


def _periods(seed: int) -> list[tuple[dt.date | None, dt.date | None]]:
    rng = random.Random(seed)
    day = lambda k: FIRST + dt.timedelta(days=k)  # noqa: E731
    periods = [
        (day(10), day(10)),  # a single day
        (day(11), day(11)),
        (day(-30), day(-1)),  # wholly before the data
        (day(70), day(90)),  # wholly after it
        (day(-5), day(100)),  # around all of it
        (day(20), day(19)),  # empty: end before start
        (None, day(30)),  # open at one end
        (day(30), None),
        (day(0), day(0)),  # the first and the last day
        (day(59), day(59)),
    ]
    for _ in range(40):
        a, b = sorted(rng.randrange(-10, 75) for _ in range(2))
        periods.append((day(a), day(b)))
    return periods


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_slice_equals_filter_on_sorted_frames(seed):
    frame = _frame(3_000, seed=seed).sort("day", "rep_id")  # sorts set the day's flag
    assert frame["day"].flags["SORTED_ASC"]
    for start, end in _periods(seed):
        for teams in ((), ("North",)):
            flt = Filter(start=start, end=end, teams=teams)
            sliced, rest = period_slice(frame, flt, day_column="day")
            assert rest.start is None and rest.end is None  # the period was cut
            assert sliced.height <= frame.height
            got = filter_frame(frame, flt)
            assert got.equals(_plain(frame, flt)), (start, end, teams)


@pytest.mark.parametrize("seed", [4, 5])
def test_unsorted_or_unflagged_frames_are_filtered(seed):
    unsorted = _frame(2_000, seed=seed)
    # in order but not flagged (as read from a file): not trusted, filtered
    sorted_unflagged = pl.DataFrame(unsorted.sort("day").to_dict(as_series=False))
    lazy = unsorted.sort("day").lazy()
    for frame in (unsorted, sorted_unflagged):
        assert not frame["day"].flags["SORTED_ASC"]
    for start, end in _periods(seed):
        flt = Filter(start=start, end=end)
        for frame in (unsorted, sorted_unflagged):
            assert period_slice(frame, flt, day_column="day") == (frame, flt)
            assert filter_frame(frame, flt).equals(_plain(frame, flt))
        assert period_slice(lazy, flt, day_column="day")[1] == flt  # lazy: never sliced
        assert filter_frame(lazy, flt).collect().equals(_plain(lazy.collect(), flt))


def test_nulls_and_other_day_types_are_filtered():
    days = [None, FIRST, FIRST + dt.timedelta(days=1), FIRST + dt.timedelta(days=2)]
    with_null = pl.DataFrame({"day": days, "n": [0, 1, 2, 3]}).sort("day", nulls_last=False)
    assert with_null["day"].flags["SORTED_ASC"]
    flt = Filter(start=FIRST - dt.timedelta(days=3), end=FIRST + dt.timedelta(days=1))
    assert period_slice(with_null, flt, day_column="day") == (with_null, flt)
    assert filter_frame(with_null, flt)["n"].to_list() == [1, 2]
    stamps = pl.DataFrame(
        {"ts": [dt.datetime(2025, 1, 6, 23, 30), dt.datetime(2025, 1, 7, 0, 10)]}
    ).sort("ts")
    one_day = Filter(start=dt.date(2025, 1, 6), end=dt.date(2025, 1, 6))
    assert period_slice(stamps, one_day, day_column="ts")[1] == one_day
    assert filter_frame(stamps, one_day, day_column="ts").height == 1


@pytest.mark.parametrize("ordering", ["rep", "day"])
def test_filtered_views_daily_is_made_when_read_and_equals_the_filter(
    tiny_planted_enriched, ordering
):
    whole = tiny_planted_enriched.enriched
    daily = whole.daily.sort(["rep_id", "day"] if ordering == "rep" else ["day"])
    assert daily["day"].flags["SORTED_ASC"] == (ordering == "day")
    enriched = whole.replace(daily=daily)
    first, last = daily["day"].min(), daily["day"].max()
    team = whole.reps["team"].drop_nulls().sort()[0]
    rng = random.Random(8)
    periods = [(first, first), (last, last), (last, None), (None, first - dt.timedelta(days=1))]
    periods += [(last + dt.timedelta(days=1), last + dt.timedelta(days=9)), (last, first)]
    span = (last - first).days
    for _ in range(12):
        a, b = sorted(rng.randrange(-5, span + 5) for _ in range(2))
        periods.append((first + dt.timedelta(days=a), first + dt.timedelta(days=b)))
    for start, end in periods:
        for teams in ((), (team,)):
            flt = Filter(start=start, end=end, teams=teams)
            view = filter_enriched(enriched, flt)
            copy = view.replace(reps=view.reps)  # a copy made before the roll-up is read
            assert not view.daily_is_made and not copy.daily_is_made  # not made yet
            assert view.daily.equals(_plain(daily, flt)), (start, end, teams)
            assert view.daily_is_made and copy.daily_is_made  # made once, for both
            assert copy.daily is view.daily
    assert filter_enriched(enriched, Filter()).daily is daily


def _by_weeks_periods(first: dt.date, last: dt.date, seed: int) -> list:
    rng = random.Random(seed)
    span = (last - first).days
    day = lambda k: first + dt.timedelta(days=k)  # noqa: E731
    periods = [(first, last), (first, first), (last, last), (None, day(20)), (day(20), None)]
    periods += [(day(-9), day(-1)), (last + dt.timedelta(days=1), None), (day(30), day(29))]
    periods += [(day(3), day(9)), (day(7), day(13))]  # within one week or two
    for _ in range(25):
        a, b = sorted(rng.randrange(-5, span + 5) for _ in range(2))
        periods.append((day(a), day(b)))
    return periods


@pytest.mark.parametrize("seed", [1, 2])
def test_period_by_weeks_sums_like_the_filtered_days(tiny_planted_enriched, seed):
    """Whole weeks summed + the days of the partial weeks = the period's day rows, for any
    sum by week, rep, team or activity type (the return-on-effort views' sums)."""
    from effortlens.filters import period_by_weeks, week_spans
    from effortlens.roe import COUNTS
    from effortlens_widgets.state import weekly_effort

    daily = tiny_planted_enriched.enriched.daily
    weekly, spans = weekly_effort(daily), week_spans(daily)
    facing = daily.filter(pl.col("is_customer_facing"))
    team = daily["team"].drop_nulls().sort()[0]
    rep = daily["rep_id"].sort()[0]
    kind = daily["activity_type"].sort()[0]
    first, last = daily["day"].min(), daily["day"].max()
    rows_read = []
    for start, end in _by_weeks_periods(first, last, seed):
        for extra in ({}, {"teams": (team,)}, {"reps": (rep,)}, {"activity_types": (kind,)}):
            flt = Filter(start=start, end=end, **extra)
            got = period_by_weeks(
                weekly, daily, flt, spans=spans, where=pl.col("is_customer_facing")
            )
            expected = filter_frame(facing, flt)
            rows_read.append((got.height, expected.height))
            for by in (["week"], ["rep_id"], ["team"], ["activity_type"], ["week", "team"]):
                sums = [pl.col(c).sum() for c in COUNTS]
                a = got.group_by(by).agg(sums).sort(by)
                b = expected.group_by(by).agg(sums).sort(by)
                assert_frame_equal(a, b, check_exact=False, rel_tol=1e-9)
    assert sum(r[0] for r in rows_read) < sum(r[1] for r in rows_read)  # fewer rows read


def test_period_by_weeks_without_a_period_is_the_filtered_weeks(tiny_planted_enriched):
    from effortlens.filters import period_by_weeks, week_spans
    from effortlens_widgets.state import weekly_effort

    daily = tiny_planted_enriched.enriched.daily
    weekly = weekly_effort(daily)
    team = daily["team"].drop_nulls().sort()[0]
    flt = Filter(teams=(team,))
    got = period_by_weeks(weekly, daily, flt, spans=week_spans(daily))
    assert got.equals(filter_frame(weekly, flt))


@pytest.mark.parametrize("seed", [6, 7])
def test_rows_of_reps_slice_the_rows_a_rep_filter_keeps(seed):
    """A rep-sorted frame's rows of some reps, sliced by their runs, then filtered: the rows
    (in order) that filtering every row keeps; a frame whose reps are not runs has none."""
    from effortlens.filters import rep_runs, rows_of_reps

    frame = _frame(3_000, seed=seed).sort("rep_id", "day")
    runs = rep_runs(frame)
    assert runs is not None and runs["length"].sum() == frame.height
    rng = random.Random(seed)
    for _ in range(10):
        reps = rng.sample(sorted(set(frame["rep_id"])), rng.randint(1, 4))
        start, end = sorted(FIRST + dt.timedelta(days=rng.randrange(60)) for _ in range(2))
        flt = Filter(reps=tuple(reps), teams=("North", "West"), start=start, end=end)
        sliced = rows_of_reps(frame, runs, pl.Series(reps + ["nobody"]))
        assert_frame_equal(filter_frame(sliced, flt), filter_frame(frame, flt))
        assert sliced.height == frame.filter(pl.col("rep_id").is_in(reps)).height
    assert rows_of_reps(frame, runs, pl.Series(["nobody"])).height == 0
    no_rep = frame.with_columns(  # rows without a rep: a run of their own, kept by a null
        rep_id=pl.when(pl.col("rep_id") == "r03").then(None).otherwise(pl.col("rep_id"))
    ).sort("rep_id", "day", nulls_last=True)
    sliced = rows_of_reps(no_rep, rep_runs(no_rep), pl.Series([None, "r05"], dtype=pl.String))
    assert_frame_equal(
        sliced, no_rep.filter(pl.col("rep_id").is_null() | (pl.col("rep_id") == "r05"))
    )
    assert rep_runs(_frame(300, seed=seed)) is None  # random order: reps not in runs
