"""Habits and patterns: timing cells, cadence bins, sequence lift, the homogeneity test."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats

from effortlens.habits import (
    CADENCE_EDGES,
    habit_effects,
    habits_table,
    response_by_cadence,
    response_by_timing,
    response_homogeneity,
    sequence_lift,
    wilson_interval,
)

UTC = dt.UTC
T0 = dt.datetime(2024, 3, 4, 14, 0, tzinfo=UTC)  # a Monday, 09:00 in New York


def _activities(rows: list[tuple]) -> pl.DataFrame:
    """Enriched-activity shaped frame from (activity_id, contact_id, hours after T0, type,
    responded); weekday/hour are local (America/New_York) as enrichment writes them."""
    frame = pl.DataFrame(
        rows,
        schema={
            "activity_id": pl.String,
            "contact_id": pl.String,
            "after_h": pl.Float64,
            "activity_type": pl.String,
            "responded": pl.Boolean,
        },
        orient="row",
    )
    local = pl.col("ts").dt.convert_time_zone("America/New_York")
    return (
        frame.with_columns(
            ts=pl.lit(T0) + pl.duration(seconds=pl.col("after_h") * 3600),
            is_customer_facing=~pl.col("activity_type").is_in(["internal", "admin"]),
        )
        .with_columns(weekday=local.dt.weekday().cast(pl.Int8), hour=local.dt.hour().cast(pl.Int8))
        .drop("after_h")
    )


TIMING = _activities(
    [
        ("a1", "c1", 0, "call", True),  # Mon 09
        ("a2", "c2", 0.5, "call", False),  # Mon 09
        ("a3", "c3", 24, "call", True),  # Tue 09
        ("a4", "c1", 25, "email", False),  # Tue 10
        ("a5", "c2", 25.2, "email", True),  # Tue 10
        ("a6", "c4", 25.4, "internal", True),  # not a touch
    ]
)


def test_timing_cells_count_touches_per_type_weekday_local_hour():
    expected = pl.DataFrame(
        {
            "activity_type": ["call", "call", "email"],
            "weekday": [1, 2, 2],
            "hour": [9, 9, 10],
            "activities": [2, 1, 2],
            "responded": [1, 1, 1],
            "response_rate": [0.5, 1.0, 0.5],
            "lift": [0.5 / 0.6, 1.0 / 0.6, 0.5 / 0.6],
            # against the type's own rate: calls 2/3, emails 1/2
            "lift_over_type": [0.5 / (2 / 3), 1.0 / (2 / 3), 1.0],
        },
        schema_overrides={
            "weekday": pl.Int8,
            "hour": pl.Int8,
            "activities": pl.UInt32,
            "responded": pl.UInt32,
        },
    )
    assert_frame_equal(response_by_timing(TIMING), expected)


def test_timing_over_all_types_merges_cells():
    cells = response_by_timing(TIMING, by=["weekday"])
    assert cells["weekday"].to_list() == [1, 2]
    assert cells["activities"].to_list() == [2, 3]
    assert cells["response_rate"].to_list() == pytest.approx([0.5, 2 / 3])


def test_timing_does_not_mutate_its_input():
    before = TIMING.clone()
    response_by_timing(TIMING)
    response_by_cadence(TIMING)
    sequence_lift(TIMING, min_support=1)
    assert_frame_equal(TIMING, before)


CADENCE = _activities(
    [
        ("a1", "c1", 0, "call", True),  # first touch
        ("a2", "c1", 1.9 * 24, "email", False),  # 1.9 days -> 0-1
        ("a3", "c1", 3.9 * 24, "internal", False),  # not a touch, not a previous touch
        ("a4", "c1", 3.9 * 24 + 0.01, "email", True),  # 2.0 days after a2 -> 2-3
        ("a5", "c1", 3.9 * 24 + 0.01 + 31 * 24, "call", False),  # 31 days -> 31+
        ("a6", "c2", 5 * 24, "email", False),  # first touch of c2
        ("a7", "c2", 5 * 24 + 30.9 * 24, "email", False),  # 30.9 days -> 15-30
        ("a8", None, 1, "email", True),  # no contact: left out
    ]
)


def test_cadence_bins_days_since_previous_touch_on_the_contact():
    expected = pl.DataFrame(
        {
            "cadence_bin": ["first touch", "0-1", "2-3", "15-30", "31+"],
            "bin_order": [0, 1, 2, 5, 6],
            "min_days_since": [None, 0, 2, 15, 31],
            "activities": [2, 1, 1, 1, 1],
            "responded": [1, 0, 1, 0, 0],
            "response_rate": [0.5, 0.0, 1.0, 0.0, 0.0],
            "lift": [0.5 / (2 / 6), 0.0, 1.0 / (2 / 6), 0.0, 0.0],
        },
        schema_overrides={
            "bin_order": pl.Int8,
            "min_days_since": pl.Int32,
            "activities": pl.UInt32,
            "responded": pl.UInt32,
        },
    )
    assert_frame_equal(response_by_cadence(CADENCE), expected)


def test_cadence_custom_edges_and_grouping():
    cells = response_by_cadence(CADENCE, edges=[7], by=["activity_type"])
    assert cells.select("activity_type", "cadence_bin", "activities").rows() == [
        ("call", "first touch", 1),
        ("call", "7+", 1),
        ("email", "first touch", 1),
        ("email", "0-6", 2),
        ("email", "7+", 1),
    ]


def test_cadence_rejects_edges_out_of_order():
    with pytest.raises(ValueError, match="ascending"):
        response_by_cadence(CADENCE, edges=[4, 2])


SEQUENCES = _activities(
    [
        # contact c1: call, email (1 day later), email (20 days later)
        ("a1", "c1", 0, "call", False),
        ("a2", "c1", 24, "email", True),
        ("a3", "c1", 21 * 24, "email", False),
        # contact c2: call, email (3 days), call (13.5 days after the email)
        ("a4", "c2", 0, "call", True),
        ("a5", "c2", 72, "email", True),
        ("a6", "c2", 72 + 13.5 * 24, "call", False),
    ]
)


def test_sequences_of_two_rank_by_lift_over_touches_with_a_history():
    result = sequence_lift(SEQUENCES, lengths=[2], within_days=14, min_support=1)
    # eligible touches (previous touch within 14 days): a2, a5, a6 -> base rate 2/3;
    # a3 follows a2 by 20 days and is not eligible
    expected = pl.DataFrame(
        {
            "sequence": ["call → email", "email → call"],
            "length": [2, 2],
            "support": [2, 1],
            "responded": [2, 0],
            "response_rate": [1.0, 0.0],
            "base_rate": [2 / 3, 2 / 3],
            "lift": [1.5, 0.0],
            "type_rate": [1.0, 0.0],
            "lift_over_type": [1.0, None],
        },
        schema_overrides={"length": pl.Int8, "support": pl.UInt32, "responded": pl.UInt32},
    )
    assert_frame_equal(result, expected, check_exact=False)


def test_sequences_rank_by_what_earlier_touches_add_to_the_last_type():
    touches = _activities(
        # meetings are answered 3 times in 4, whatever came before them
        [(f"m{i}", f"m{i}", 0, "email", False) for i in range(4)]
        + [(f"m{i}b", f"m{i}", 24, "meeting", i < 3) for i in range(4)]
        # an email after a call is answered half the time, after an email never
        + [(f"c{i}", f"c{i}", 0, "call" if i < 4 else "email", False) for i in range(8)]
        + [(f"c{i}b", f"c{i}", 24, "email", i < 2) for i in range(8)]
    )
    by_type = sequence_lift(touches, lengths=[2], min_support=1)
    assert by_type.select("sequence", "lift_over_type").rows() == [
        ("call → email", 2.0),
        ("email → meeting", 1.0),
        ("email → email", 0.0),
    ]
    by_lift = sequence_lift(touches, lengths=[2], min_support=1, rank_by="lift")
    # over all 12 touches with a history (5 answered), the meeting ranks first
    assert by_lift["sequence"].to_list() == ["email → meeting", "call → email", "email → email"]
    assert by_lift["lift"].to_list() == pytest.approx([0.75 * 12 / 5, 0.5 * 12 / 5, 0.0])
    with pytest.raises(ValueError, match="rank_by"):
        sequence_lift(touches, rank_by="support")


def test_sequences_of_three_need_all_touches_within_the_window():
    three = sequence_lift(SEQUENCES, lengths=[3], within_days=14, min_support=1)
    assert three["sequence"].to_list() == []  # c2's span is 16.5 days
    three = sequence_lift(SEQUENCES, lengths=[3], within_days=17, min_support=1)
    assert three.select("sequence", "support", "responded").rows() == [
        ("call → email → call", 1, 0)
    ]


def test_sequences_below_min_support_are_left_out():
    result = sequence_lift(SEQUENCES, lengths=[2], within_days=14, min_support=2)
    assert result["sequence"].to_list() == ["call → email"]


def test_sequence_lengths_below_two_are_rejected():
    with pytest.raises(ValueError, match="at least 2"):
        sequence_lift(SEQUENCES, lengths=[1])


def test_homogeneity_matches_scipy_chi_square_on_one_stratum():
    cells = pl.DataFrame(
        {"hour": [9, 10, 11], "activities": [40, 50, 60], "responded": [10, 5, 30]}
    )
    table = [[10, 5, 30], [30, 45, 30]]
    chi2, p_value, dof, _ = stats.chi2_contingency(table, correction=False)
    result = response_homogeneity(cells, over=["hour"])
    assert result["chi2"] == pytest.approx(chi2)
    assert result["p_value"] == pytest.approx(p_value)
    assert (result["dof"], result["cells"]) == (dof, 3)


def test_homogeneity_sums_strata_and_skips_small_cells():
    cells = pl.DataFrame(
        {
            "activity_type": ["call", "call", "email", "email", "email"],
            "hour": [9, 10, 9, 10, 11],
            "activities": [40, 50, 20, 30, 3],
            "responded": [10, 5, 2, 9, 3],
        }
    )
    one = response_homogeneity(cells.filter(pl.col("activity_type") == "call"), over=["hour"])
    two = response_homogeneity(
        cells.filter((pl.col("activity_type") == "email") & (pl.col("hour") < 11)), over=["hour"]
    )
    both = response_homogeneity(cells, over=["hour"], strata=["activity_type"], min_activities=5)
    assert both["chi2"] == pytest.approx(one["chi2"] + two["chi2"])
    assert (both["dof"], both["cells"]) == (2, 4)
    assert both["p_value"] == pytest.approx(stats.chi2.sf(both["chi2"], 2))


def test_homogeneity_of_equal_rates_is_zero():
    cells = pl.DataFrame({"hour": [9, 10], "activities": [10, 20], "responded": [2, 4]})
    result = response_homogeneity(cells, over=["hour"])
    assert result["chi2"] == pytest.approx(0.0)
    assert result["p_value"] == pytest.approx(1.0)


class _Enriched:
    def __init__(self, activities: pl.DataFrame):
        self.activities = activities


def test_habits_table_ranks_cells_with_enough_volume():
    busy = _activities(
        [(f"m{i}", f"c{i}", 0, "call", i < 3) for i in range(4)]  # Mon 09: 3/4
        + [(f"t{i}", f"d{i}", 24, "call", i < 1) for i in range(4)]  # Tue 09: 1/4
        + [("w1", "e1", 48, "call", True)]  # Wed 09: 1/1 but too small
        + [("s1", "d0", 48, "email", True)]  # too small, second touch of d0
    )
    table = habits_table(_Enriched(busy), min_activities=4, top=1, min_support=1)
    assert table.columns == [
        "finding",
        "pattern",
        "activities",
        "responded",
        "response_rate",
        "lift",
    ]
    rows = {
        f: table.filter(pl.col("finding") == f)["pattern"].to_list()
        for f in ("best timing", "worst timing", "cadence", "sequence")
    }
    assert rows == {
        "best timing": ["call · Mon · 09:00"],
        "worst timing": ["call · Tue · 09:00"],
        "cadence": ["first touch", "0-1"],
        "sequence": ["call → email"],
    }
    best = table.filter(pl.col("finding") == "best timing").row(0, named=True)
    assert best["lift"] == pytest.approx(0.75 / (5 / 9))  # over all 9 calls, 5 answered


def test_habits_table_lets_volume_count_when_ranking_cells():
    # Mon 09: 40 of 100 calls answered; Tue 09: 3 of 5 (a higher rate from far fewer touches)
    touches = _activities(
        [(f"m{i}", f"c{i}", 0, "call", i < 40) for i in range(100)]
        + [(f"t{i}", f"d{i}", 24, "call", i < 3) for i in range(5)]
        + [(f"w{i}", f"e{i}", 48, "call", i < 10) for i in range(100)]  # Wed 09: 10 of 100
        + [(f"f{i}", f"g{i}", 96, "call", False) for i in range(5)]  # Fri 09: none of 5
    )
    table = habits_table(_Enriched(touches), min_activities=5, top=1)
    best = table.filter(pl.col("finding") == "best timing")
    worst = table.filter(pl.col("finding") == "worst timing")
    assert best["pattern"].to_list() == ["call · Mon · 09:00"]
    assert worst["pattern"].to_list() == ["call · Wed · 09:00"]  # more telling than Fri's 0/5


def test_wilson_interval_matches_scipy():
    frame = pl.DataFrame({"responded": [0, 7, 40], "activities": [10, 50, 100]})
    bounds = frame.select(wilson_interval()).rows()
    for (k, n), (low, high) in zip(frame.rows(), bounds, strict=True):
        expected = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (low, high) == pytest.approx((expected.low, expected.high))


# --- planted truths and null data (generated by effortlens.sample) ---------------------------


@pytest.fixture()
def planted(small_planted_enriched):
    """``(enriched, truth)`` of the shared planted sample (tests/conftest.py)."""
    return small_planted_enriched


@pytest.fixture()
def null(small_null_enriched):
    """``(enriched, truth)`` of the shared null sample (tests/conftest.py)."""
    return small_null_enriched


def test_planted_best_weekday_hours_rank_top(planted):
    enriched, truth = planted
    timing = truth["timing"]
    cells = (
        response_by_timing(enriched.activities, by=["weekday", "hour"])
        .filter(pl.col("activities") >= 200)
        .with_columns(
            planted=pl.col("weekday").is_in(timing["best_weekdays"])
            & pl.col("hour").is_in(timing["best_hours"])
        )
        .sort("response_rate", descending=True)
    )
    n_planted = len(timing["best_weekdays"]) * len(timing["best_hours"])
    assert cells["planted"].sum() == n_planted
    assert cells["planted"][0], cells.head(n_planted + 2)
    # every planted cell ranks within the top n + 2 (late-afternoon cells, which last-touch
    # attribution favours, can slip in between)
    assert cells.head(n_planted + 2)["planted"].sum() == n_planted, cells.head(n_planted + 2)
    pooled = cells.group_by("planted").agg(pl.col("activities", "responded").sum())
    (n0, r0), (n1, r1) = pooled.sort("planted").select("activities", "responded").rows()
    rate = (r0 + r1) / (n0 + n1)
    z = (r1 / n1 - r0 / n0) / (rate * (1 - rate) * (1 / n0 + 1 / n1)) ** 0.5
    assert z > 5


def test_planted_silence_has_clearly_the_lowest_response(planted):
    enriched, truth = planted
    silence = truth["cadence"]["silence_days"]
    default = response_by_cadence(enriched.activities)
    assert default.sort("response_rate")["cadence_bin"][0] == "31+"
    edges = sorted({*CADENCE_EDGES, silence})
    bins = response_by_cadence(enriched.activities, edges=edges).with_columns(wilson_interval())
    silent = bins.filter(pl.col("min_days_since") >= silence)
    others = bins.filter(~(pl.col("min_days_since") >= silence).fill_null(False))
    assert silent.height == 2 and others.height == len(edges)  # first touch, 0-1 .. 15-20
    # the silent bins' 95% intervals lie wholly below every other bin's
    assert silent["rate_high"].max() < others["rate_low"].min(), bins


def test_planted_sequence_ranks_at_the_top(planted):
    enriched, truth = planted
    planted_sequence = " → ".join(truth["sequence"]["sequence"])
    within = truth["sequence"]["within_days"]
    ranked = sequence_lift(enriched.activities, within_days=within, min_support=100)
    assert ranked["sequence"][0].endswith(planted_sequence), ranked.head(5)
    assert planted_sequence in ranked.head(3)["sequence"].to_list(), ranked.head(5)
    pair = ranked.filter(pl.col("sequence") == planted_sequence).row(0, named=True)
    assert pair["support"] >= 1000 and pair["lift_over_type"] > 1.3
    # with the default two-week window, diluted by slower follow-ups, still near the top
    default = sequence_lift(enriched.activities, min_support=100)
    assert planted_sequence in default.head(5)["sequence"].to_list(), default.head(5)


def test_attributed_rates_flatter_quick_follow_ups_on_null_data(null):
    # why habit_effects exists: last-touch attribution credits a quick follow-up with the
    # answers to the touch before it, so on data with no habit the 0-1 day bin looks better
    enriched, truth = null
    assert truth["cadence"] is None
    attributed = response_by_cadence(enriched.activities).filter(pl.col("cadence_bin") == "0-1")
    assert attributed["lift"].item() > 1.03


def test_null_data_shows_no_timing_or_cadence_habit(null):
    # measured without the generator's record of true causes: only what real data holds
    enriched, truth = null
    assert truth["timing"] is None and truth["cadence"] is None
    timing = habit_effects(enriched, feature="timing")
    cadence = habit_effects(enriched, feature="cadence")
    assert timing.height > 50 and cadence.height == 7
    assert timing["flag"].is_null().all(), timing.filter(pl.col("flag").is_not_null())
    assert cadence["flag"].is_null().all(), cadence
    quick = cadence.filter(pl.col("cadence_bin") == "0-1")["lift"].item()
    assert 0.95 < quick < 1.05  # not flattered by attribution


def test_planted_timing_and_silence_are_recovered_without_the_true_causes(planted):
    enriched, truth = planted
    timing = habit_effects(enriched, feature="timing")
    planted_cell = pl.col("weekday").is_in(truth["timing"]["best_weekdays"]) & pl.col("hour").is_in(
        truth["timing"]["best_hours"]
    )
    better = timing.filter(pl.col("flag") == "better")
    assert better.height >= 3 and better.filter(~planted_cell).is_empty(), better
    assert timing.filter(pl.col("flag") == "worse").is_empty()
    cadence = habit_effects(enriched, feature="cadence")
    silence = truth["cadence"]["silence_days"]
    worse = cadence.filter(pl.col("flag") == "worse")["min_days_since"].to_list()
    assert worse and all(d is not None and d >= silence - 6 for d in worse), cadence
    lowest = cadence.sort("lift").row(0, named=True)
    assert lowest["min_days_since"] is not None and lowest["min_days_since"] >= silence - 6


def test_habit_effects_rejects_an_unknown_feature(planted):
    with pytest.raises(ValueError, match="feature"):
        habit_effects(planted[0], feature="weather")


def test_cadence_by_any_enriched_column():
    with_team = CADENCE.with_columns(
        team=pl.when(pl.col("contact_id") == "c1").then(pl.lit("A")).otherwise(pl.lit("B"))
    )
    cells = response_by_cadence(with_team, by=["team"])
    assert cells.select("team", "cadence_bin").rows() == [
        ("A", "first touch"),
        ("A", "0-1"),
        ("A", "2-3"),
        ("A", "31+"),
        ("B", "first touch"),
        ("B", "15-30"),
    ]
