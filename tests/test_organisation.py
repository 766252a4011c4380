"""Organisation: time for selling, internal load, attrition, variance between teams."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats

from effortlens.organisation import (
    attrition,
    attrition_vs_selling_time,
    organisation_table,
    selling_time_by,
    selling_time_weekly,
    variance_share,
)
from effortlens.settings import load_settings

D = dt.date

REPS = pl.DataFrame(
    {
        "rep_id": ["a", "b", "c", "d"],
        "team": ["T1", "T1", "T2", "T2"],
        "manager_id": ["m1", "m1", "m2", "m3"],
        "hire_date": [None, D(2024, 1, 10), None, D(2023, 6, 1)],
        "exit_date": [None, None, D(2024, 1, 20), None],
        "exit_reason": [None, None, "voluntary", None],
    },
    schema_overrides={"hire_date": pl.Date, "exit_date": pl.Date},
)


def _daily(rows: list[tuple]) -> pl.DataFrame:
    """Daily facts from (rep_id, day, activity_type, activities, responded, weight, hours)."""
    frame = pl.DataFrame(
        rows,
        schema={
            "rep_id": pl.String,
            "day": pl.Date,
            "activity_type": pl.String,
            "activities": pl.UInt32,
            "responded": pl.UInt32,
            "response_weight": pl.Float64,
            "hours": pl.Float64,
        },
        orient="row",
    )
    return frame.with_columns(
        week=pl.col("day").dt.truncate("1w"),
        is_customer_facing=~pl.col("activity_type").is_in(["internal", "admin", "other"]),
    ).join(REPS.select("rep_id", "team"), on="rep_id", how="left")


# Data from Monday 2024-01-01 to Wednesday 2024-01-31: full weeks 01-01, 01-08, 01-15, 01-22
DAILY = _daily(
    [
        ("a", D(2024, 1, 1), "call", 10, 2, 3.0, 4.0),
        ("a", D(2024, 1, 2), "internal", 2, 0, 0.0, 6.0),
        ("a", D(2024, 1, 3), "admin", 3, 0, 0.0, 2.0),
        ("a", D(2024, 1, 3), "other", 1, 0, 0.0, 9.0),  # neither selling nor internal
        ("b", D(2024, 1, 16), "email", 10, 5, 5.0, 2.0),  # b's first full week is 01-15
        ("b", D(2024, 1, 11), "email", 4, 0, 0.0, 30.0),  # hired on a Wednesday: not counted
        ("c", D(2024, 1, 9), "email", 10, 1, 1.0, 20.0),
        ("d", D(2024, 1, 31), "email", 20, 4, 4.0, 10.0),  # in a partial data week
    ]
)


def test_selling_time_per_rep_and_full_week_of_employment():
    weekly = selling_time_weekly(DAILY, reps=REPS, working_hours_per_week=40)
    assert weekly.select("rep_id", "week").rows() == [
        ("a", D(2024, 1, 1)),
        ("a", D(2024, 1, 8)),
        ("a", D(2024, 1, 15)),
        ("a", D(2024, 1, 22)),
        ("b", D(2024, 1, 15)),
        ("b", D(2024, 1, 22)),
        ("c", D(2024, 1, 1)),
        ("c", D(2024, 1, 8)),
        ("c", D(2024, 1, 15)),  # left Sat 01-20
        ("d", D(2024, 1, 1)),
        ("d", D(2024, 1, 8)),
        ("d", D(2024, 1, 15)),
        ("d", D(2024, 1, 22)),
    ]
    first = weekly.row(0, named=True)
    assert (first["customer_facing_hours"], first["internal_hours"]) == (4.0, 8.0)
    assert (first["selling_time"], first["internal_load"]) == (0.1, 0.2)
    assert weekly.filter(pl.col("rep_id") == "d")["selling_time"].to_list() == [0.0] * 4


def test_selling_time_by_team_is_the_mean_over_rep_weeks():
    weekly = selling_time_weekly(DAILY, reps=REPS, working_hours_per_week=40)
    expected = pl.DataFrame(
        {
            "team": ["T1", "T2"],
            "reps": [2, 2],
            "rep_weeks": [6, 7],
            "selling_time": [(4 + 2) / 40 / 6, 20 / 40 / 7],
            "internal_load": [8 / 40 / 6, 0.0],
        },
        schema_overrides={"reps": pl.UInt32, "rep_weeks": pl.UInt32},
    )
    assert_frame_equal(selling_time_by(weekly), expected)
    by_week = selling_time_by(weekly, by=["team", "week"])
    assert by_week.filter(pl.col("team") == "T1")["rep_weeks"].to_list() == [1, 1, 2, 2]


def test_selling_time_without_activities_is_empty():
    weekly = selling_time_weekly(DAILY.clear(), reps=REPS, working_hours_per_week=40)
    assert weekly.height == 0
    assert weekly.columns[-2:] == ["selling_time", "internal_load"]


def test_attrition_counts_voluntary_exits_over_headcount_and_rep_years():
    result = attrition(REPS, period_start=D(2024, 1, 1), period_end=D(2024, 1, 31))
    t1_years = (31 + 22) / 365.25  # a all month, b from the 10th
    t2_years = (20 + 31) / 365.25  # c until the 20th, d all month
    expected = pl.DataFrame(
        {
            "team": ["T1", "T2"],
            "headcount": [2, 2],
            "exits": [0, 1],
            "voluntary_exits": [0, 1],
            "rep_years": [t1_years, t2_years],
            "attrition_rate": [0.0, 0.5],
            "annualised_attrition": [0.0, 1 / t2_years],
        },
        schema_overrides={"headcount": pl.UInt32, "exits": pl.UInt32, "voluntary_exits": pl.UInt32},
    )
    assert_frame_equal(result, expected)


def test_attrition_by_manager_and_outside_the_period():
    by_manager = attrition(
        REPS, by="manager_id", period_start=D(2024, 1, 1), period_end=D(2024, 1, 31)
    )
    assert by_manager.select("manager_id", "headcount", "voluntary_exits").rows() == [
        ("m1", 2, 0),
        ("m2", 1, 1),
        ("m3", 1, 0),
    ]
    later = attrition(REPS, period_start=D(2024, 2, 1), period_end=D(2024, 2, 29))
    # c left before the period: not in the headcount
    assert later.select("team", "headcount", "voluntary_exits").rows() == [
        ("T1", 2, 0),
        ("T2", 1, 0),
    ]
    involuntary = REPS.with_columns(exit_reason=pl.lit("involuntary"))
    result = attrition(involuntary, period_start=D(2024, 1, 1), period_end=D(2024, 1, 31))
    assert result.select("exits", "voluntary_exits").row(1) == (1, 0)
    with pytest.raises(ValueError, match="before period_start"):
        attrition(REPS, period_start=D(2024, 2, 1), period_end=D(2024, 1, 1))


def _team_daily(rates_by_team: dict[str, list[float]], activities: int = 200) -> pl.DataFrame:
    rows = []
    for team, rates in rates_by_team.items():
        for i, rate in enumerate(rates):
            responded = round(rate * activities)
            rows.append(
                (f"{team}-{i}", team, D(2024, 1, 2), True, activities, responded, 2.0 * responded)
            )
    return pl.DataFrame(
        rows,
        schema={
            "rep_id": pl.String,
            "team": pl.String,
            "day": pl.Date,
            "is_customer_facing": pl.Boolean,
            "activities": pl.UInt32,
            "responded": pl.UInt32,
            "response_weight": pl.Float64,
        },
        orient="row",
    )


def test_variance_share_matches_one_way_anova():
    rates = {"A": [0.10, 0.12, 0.14], "B": [0.20, 0.25], "C": [0.15, 0.16, 0.18, 0.19]}
    result = variance_share(_team_daily(rates), min_activities=1).row(0, named=True)
    f_statistic, p_value = stats.f_oneway(*rates.values())
    assert result["metric"] == "response_rate"
    assert (result["n_groups"], result["n_reps"]) == (3, 9)
    assert result["f_statistic"] == pytest.approx(f_statistic)
    assert result["p_value"] == pytest.approx(p_value)
    # ICC(1) from the mean squares, with n0 for unequal team sizes
    values = np.concatenate([np.array(v) for v in rates.values()])
    within = sum(((np.array(v) - np.mean(v)) ** 2).sum() for v in rates.values()) / (9 - 3)
    between = f_statistic * within
    n0 = (9 - (9 + 4 + 16) / 9) / 2
    assert result["icc"] == pytest.approx((between - within) / (between + (n0 - 1) * within))
    assert result["share_between"] + result["share_within"] == pytest.approx(1.0)
    assert result["mean"] == pytest.approx(values.mean())


def test_variance_share_is_zero_when_teams_do_not_differ():
    rates = {"A": [0.10, 0.20, 0.30], "B": [0.30, 0.10, 0.20]}
    result = variance_share(_team_daily(rates), min_activities=1, metrics=["roe_per_100"]).row(
        0, named=True
    )
    assert result["icc"] < 0
    assert result["share_between"] == 0.0
    assert result["p_value"] == pytest.approx(1.0)


def test_variance_share_leaves_out_quiet_reps_and_needs_two_teams():
    daily = _team_daily({"A": [0.1, 0.2]}, activities=50)
    result = variance_share(daily, min_activities=1).row(0, named=True)
    assert result["n_groups"] == 1
    assert result["share_between"] is None
    assert variance_share(daily, min_activities=51)["n_reps"].to_list() == [0, 0]


def _enriched(daily: pl.DataFrame = DAILY) -> SimpleNamespace:
    return SimpleNamespace(daily=daily, reps=REPS, settings=load_settings(), tables={})


def test_organisation_table_per_team():
    table = organisation_table(_enriched())
    expected = pl.DataFrame(
        {
            "team": ["T1", "T2"],
            "headcount": [2, 2],
            "selling_time": [6 / 40 / 6, 20 / 40 / 7],
            "internal_load": [8 / 40 / 6, 0.0],
            "voluntary_exits": [0, 1],
            "attrition_rate": [0.0, 0.5],
            "annualised_attrition": [0.0, 1 / ((20 + 31) / 365.25)],
            "response_rate": [7 / 24, 5 / 30],
            "roe_per_100": [100 * 8 / 24, 100 * 5 / 30],
        },
        schema_overrides={"headcount": pl.UInt32, "voluntary_exits": pl.UInt32},
    )
    assert_frame_equal(table, expected)


def test_organisation_table_on_pipeline_only_data_keeps_attrition():
    enriched = _enriched(DAILY.clear())
    enriched.tables["opportunities"] = pl.DataFrame(
        {
            "created_ts": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)],
            "close_ts": [dt.datetime(2024, 1, 31, tzinfo=dt.UTC)],
        }
    )
    table = organisation_table(enriched)
    assert table["voluntary_exits"].to_list() == [0, 1]
    assert table["selling_time"].null_count() == 2


def test_attrition_vs_selling_time_rank_correlation():
    table = pl.DataFrame(
        {
            "team": ["A", "B", "C", "D"],
            "selling_time": [0.1, 0.2, 0.3, 0.4],
            "annualised_attrition": [0.5, 0.3, 0.2, 0.1],
        }
    )
    relation = attrition_vs_selling_time(table)
    assert relation["rho"] == pytest.approx(-1.0)
    assert relation["n_teams"] == 4
    assert attrition_vs_selling_time(table.head(2))["rho"] is None


def test_inputs_are_not_mutated():
    daily, reps = DAILY.clone(), REPS.clone()
    organisation_table(_enriched())
    variance_share(DAILY, min_activities=1)
    assert_frame_equal(DAILY, daily)
    assert_frame_equal(REPS, reps)


# --- planted truths and null data (generated by effortlens.sample) ---------------------------


def test_planted_low_selling_team_sells_least_and_loses_most(small_planted_enriched):
    enriched, truth = small_planted_enriched
    table = organisation_table(enriched)
    team = truth["low_selling_team"]
    assert table.sort("selling_time")["team"][0] == team, table
    assert table.sort("internal_load", descending=True)["team"][0] == team, table
    most_exits = table.sort("voluntary_exits", descending=True)
    assert most_exits["team"][0] == team, table
    assert most_exits["voluntary_exits"][0] > most_exits["voluntary_exits"][1]
    assert table.sort("annualised_attrition", descending=True)["team"][0] == team
    # every other team's time for selling is at least twice the planted team's
    others = table.filter(pl.col("team") != team)["selling_time"]
    assert others.min() > 2 * table.filter(pl.col("team") == team)["selling_time"].item()


def test_null_teams_hold_no_share_of_the_variation(small_null_enriched):
    enriched, truth = small_null_enriched
    assert truth["low_selling_team"] is None
    shares = variance_share(enriched.daily)
    assert shares["n_groups"].to_list() == [6, 6]
    # the one-way ANOVA F-test finds no team effect, and the ICC(1) estimate stays under its
    # 99% null quantile (6 teams of 10 reps: F(5, 54) 99% quantile 3.37 -> ICC 0.19)
    assert (shares["p_value"] > 0.01).all(), shares
    assert shares["n_reps"].to_list() == [60, 60]
    f_99 = stats.f.ppf(0.99, 5, 54)
    assert (shares["share_between"] < (f_99 - 1) / (f_99 + 10 - 1)).all(), shares


# --- scipy's numbers without importing scipy.stats (a page's first draw, issue 13) ------------


def test_spearman_equals_scipy_to_the_bit_with_ties_and_constant_input():
    import warnings

    from effortlens.organisation import spearman

    rng = np.random.default_rng(7)
    for i in range(400):
        n = int(rng.integers(3, 40))
        x = rng.integers(0, 6, n).astype(float) if i % 2 else rng.normal(size=n)
        y = rng.integers(0, 4, n).astype(float) if i % 3 == 0 else rng.normal(size=n) + 0.3 * x
        if i % 50 == 0:
            y = np.ones(n)  # constant: no correlation defined
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = stats.spearmanr(x, y)
        got = spearman(x, y)
        for a, b in zip(got, (float(expected.statistic), float(expected.pvalue)), strict=True):
            assert a == b or (np.isnan(a) and np.isnan(b)), (i, got, expected)


def _days_of(reps: list[str], first: dt.date, days: int) -> pl.DataFrame:
    """A customer-facing call and an internal meeting every day (weekends too) per rep, sorted
    by rep and day as a build stores them; hours vary by day so sums tell days apart."""
    rows = [
        (rep, first + dt.timedelta(days=i), kind, 1, i % 2, 0.5 * (i % 3), 1.0 + i + 0.25 * r)
        for r, rep in enumerate(reps)
        for i in range(days)
        for kind in ("call", "internal")
    ]
    return _daily(rows).sort("rep_id", "day", maintain_order=True)


def test_selling_time_of_a_period_from_the_whole_data_equals_its_hours():
    """The load's selling time with a period's cut weeks summed from their days in the period
    equals selling time counted from the period's hours, for periods ending on every weekday
    (a period ending on a Friday or Saturday keeps its last week as a full week of fewer
    days) and starting on every weekday, over reps hired and leaving within the data."""
    from effortlens.organisation import (
        selling_time_in_period,
        selling_time_of_hours,
        weekly_hours,
    )

    reps = REPS.with_columns(
        hire_date=pl.Series([None, D(2024, 1, 10), None, D(2024, 1, 22)], dtype=pl.Date),
        exit_date=pl.Series([None, None, D(2024, 2, 9), None], dtype=pl.Date),
    )
    daily = _days_of(["a", "b", "c", "d"], D(2024, 1, 1), 63)
    whole_hours = weekly_hours(daily)
    whole = selling_time_of_hours(whole_hours, reps=reps, working_hours_per_week=40.0)
    spans = daily.group_by("week").agg(first_day=pl.col("day").min(), last_day=pl.col("day").max())
    last = daily["day"].max()
    compared = 0
    for k in range(7):
        for start, end in (
            (D(2024, 1, 1) + dt.timedelta(days=k), last - dt.timedelta(days=k)),
            (D(2024, 1, 10) + dt.timedelta(days=k), D(2024, 2, 9) + dt.timedelta(days=k)),
        ):
            days = daily.filter(pl.col("day").is_between(start, end))
            hours = weekly_hours(days)
            cut = spans.filter(
                (pl.col("last_day") >= start)
                & (pl.col("first_day") <= end)
                & ~((pl.col("first_day") >= start) & (pl.col("last_day") <= end))
            )["week"]
            for kept in (reps, reps.filter(pl.col("team") == "T2")):
                expected = selling_time_of_hours(
                    hours.filter(pl.col("rep_id").is_in(kept["rep_id"].implode())),
                    reps=kept,
                    working_hours_per_week=40.0,
                )
                got = selling_time_in_period(
                    whole,
                    reps=kept,
                    hours=hours.filter(pl.col("rep_id").is_in(kept["rep_id"].implode())),
                    partial=cut,
                    working_hours_per_week=40.0,
                )
                assert_frame_equal(got, expected)
                compared += expected.filter(pl.col("week").is_in(cut.implode())).height
    assert compared  # some cut weeks counted as full weeks


def test_hours_of_rows_read_by_position_equal_the_hours_of_the_filtered_days(
    small_planted_enriched,
):
    """The rep-weeks' day rows read by their position in the rep-sorted daily facts, within a
    period starting and ending on every weekday, sum to what :func:`weekly_hours` gives for
    the period's day rows of those rep-weeks; day rows that do not lie together per
    rep-week, or not in day order, have no position (and a page falls back to the days)."""
    from effortlens.organisation import hours_of_rows, weekly_hours

    enriched, _ = small_planted_enriched
    daily = enriched.daily.sort("rep_id", "day", maintain_order=True)
    internal = enriched.settings.internal
    located = weekly_hours(daily, internal_types=internal, effort=True, rows=True)
    assert located["first_row"].null_count() == 0
    assert int(located["rows"].sum()) == daily.height
    weeks = located["week"].unique().sort()
    team = located["team"].drop_nulls().unique().sort()[0]
    compared = 0
    for k in range(7):
        start = weeks[3] + dt.timedelta(days=k)
        end = weeks[-4] + dt.timedelta(days=k)
        for cut in (weeks[3], weeks[-4]):  # a rep-week of a cut week, and all of a team's
            for rows in (
                located.filter(pl.col("week") == cut),
                located.filter((pl.col("week") == cut) & (pl.col("team") == team)),
            ):
                days = daily.filter(pl.col("day").is_between(start, end)).join(
                    rows.select("rep_id", "week"), on=["rep_id", "week"], how="semi"
                )
                expected = weekly_hours(days, internal_types=internal, effort=True)
                got = hours_of_rows(daily, rows, start=start, end=end, internal_types=internal)
                assert got.columns == expected.columns
                assert_frame_equal(
                    got.sort("rep_id"), expected.sort("rep_id"), check_exact=False, rel_tol=1e-12
                )
                compared += got.height
    assert compared
    # a rep's days out of order: some rep-weeks' rows no longer lie together, others lie
    # together out of day order
    shuffled = pl.concat([daily.slice(0, 50), daily.slice(50, 100).reverse(), daily.slice(150)])
    loose = weekly_hours(shuffled, internal_types=internal, effort=True, rows=True)
    assert loose["first_row"].null_count() == loose.height
    # rows out of day order but each rep-week's together (one week reversed)
    rep_week = located.sort("first_row").row(5, named=True)
    a, n = rep_week["first_row"], rep_week["rows"]
    assert daily["day"][a] < daily["day"][a + n - 1]
    turned = pl.concat([daily.slice(0, a), daily.slice(a, n).reverse(), daily.slice(a + n)])
    turned_rows = weekly_hours(turned, internal_types=internal, effort=True, rows=True)
    assert turned_rows["first_row"].null_count() == turned_rows.height


def test_rep_weeks_of_a_roll_up_whose_weeks_are_not_mondays_have_no_position(
    small_planted_enriched,
):
    """:func:`hours_of_rows` counts a rep-week's day rows by weekday from the week's Monday: a
    roll-up made by hand whose ``week`` is another day (Sunday weeks, months, one row moved to
    the week before) gets no positions (the organisation page then sums the period's days),
    though its rows lie together in day order; its sums stay those of its rows."""
    from effortlens.organisation import weekly_hours

    enriched, _ = small_planted_enriched
    daily = enriched.daily.sort("rep_id", "day", maintain_order=True)
    internal = enriched.settings.internal
    located = weekly_hours(daily, internal_types=internal, effort=True, rows=True)
    assert located["first_row"].null_count() == 0  # the build's: Mondays
    day, week = pl.col("day"), pl.col("week")
    # the first row of a rep-week that follows the rep's week before: moved to that week, the
    # rows of both still lie together
    before = daily.select(
        (pl.col("rep_id") == pl.col("rep_id").shift())
        & (week - week.shift() == pl.duration(days=7))
    ).to_series()
    starts = located.filter(pl.col("first_row") > 0)["first_row"].sort()
    first = next(int(a) for a in starts if before[int(a)])
    moved = pl.int_range(pl.len()) == first
    made = {
        "sundays": (day + pl.duration(days=1)).dt.truncate("1w") - pl.duration(days=1),
        "months": day.dt.truncate("1mo"),
        "one row": pl.when(moved).then(week - pl.duration(days=7)).otherwise(week),
    }
    for name, weeks in made.items():
        hand = daily.with_columns(weeks.alias("week"))
        assert not hand["week"].equals(daily["week"]), name
        rows = weekly_hours(hand, internal_types=internal, effort=True, rows=True)
        assert rows["first_row"].null_count() == rows.height, name
        located_columns = ("first_row", "rows", *(f"rows_to_{k}" for k in range(1, 7)))
        assert_frame_equal(
            rows.drop(located_columns).sort("rep_id", "week"),
            weekly_hours(hand, internal_types=internal, effort=True).sort("rep_id", "week"),
        )
