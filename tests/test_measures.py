"""Every rate defined once: tiny inline frames, exact expected frames."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.measures import (
    deal_rates,
    metric_value,
    pooled_response_rate,
    response_counts,
    touch_counts,
    win_counts,
    with_rates,
)


def _counts(**columns) -> pl.DataFrame:
    return pl.DataFrame(columns, schema_overrides={"activities": pl.UInt32, "responded": pl.UInt32})


def test_with_rates_are_ratios_of_the_counts_and_null_without_activity():
    counts = _counts(
        activities=[4, 0, 10],
        hours=[2.0, 0.0, 0.0],
        responded=[1, 0, 10],
        response_weight=[3.0, 0.0, 12.0],
        no_impact_hours=[1.5, 0.0, 0.0],
    )
    expected = counts.with_columns(
        response_rate=pl.Series([0.25, None, 1.0]),
        roe_per_100=pl.Series([75.0, None, 120.0]),
        roe_per_hour=pl.Series([1.5, None, None]),  # no hours recorded: no per-hour rate
        no_impact_activities=pl.Series([3, 0, 0], dtype=pl.UInt32),
        no_impact_share=pl.Series([0.75, None, 0.0]),
    )
    assert_frame_equal(with_rates(counts).collect(), expected)


def test_with_rates_prefix_reads_and_writes_prefixed_columns():
    counts = _counts(
        activities=[1],
        hours=[1.0],
        responded=[1],
        response_weight=[2.0],
        no_impact_hours=[0.0],
    ).rename(lambda c: f"rolling_{c}")
    out = with_rates(counts, prefix="rolling_").collect()
    assert out.columns[-5:] == [
        "rolling_response_rate",
        "rolling_roe_per_100",
        "rolling_roe_per_hour",
        "rolling_no_impact_activities",
        "rolling_no_impact_share",
    ]
    assert out.row(0)[-5:] == (1.0, 200.0, 2.0, 0, 0.0)


def test_with_rates_does_not_mutate_its_input():
    counts = _counts(
        activities=[2], hours=[1.0], responded=[1], response_weight=[1.0], no_impact_hours=[0.5]
    )
    before = counts.clone()
    with_rates(counts).collect()
    assert_frame_equal(counts, before)


def test_touch_counts_count_touches_and_responses_per_group():
    touches = pl.DataFrame({"hour": [9, 9, 9, 10], "responded": [True, False, True, False]})
    expected = pl.DataFrame(
        {"hour": [9, 10], "activities": [3, 1], "responded": [2, 0], "response_rate": [2 / 3, 0.0]},
        schema_overrides={"activities": pl.UInt32, "responded": pl.UInt32},
    )
    assert_frame_equal(touch_counts(touches, by=["hour"]).sort("hour").collect(), expected)


def test_response_counts_keep_customer_facing_touches_only():
    activities = pl.DataFrame(
        {
            "rep_id": ["r2", "r1", "r1", "r1", "r3"],
            "is_customer_facing": [True, True, True, False, False],
            "responded": [False, True, False, True, True],
        }
    )
    expected = pl.DataFrame(
        {"rep_id": ["r1", "r2"], "successes": [1, 0], "trials": [2, 1]},
        schema_overrides={"successes": pl.UInt32, "trials": pl.UInt32},
    )
    assert_frame_equal(response_counts(activities), expected)


def test_win_counts_count_won_out_of_closed_deals():
    opportunities = pl.DataFrame(
        {"rep_id": ["r1"] * 4 + ["r2"], "outcome": ["won", "lost", "no_decision", "open", "open"]}
    )
    expected = pl.DataFrame(
        {"rep_id": ["r1"], "successes": [1], "trials": [3]},
        schema_overrides={"successes": pl.UInt32, "trials": pl.UInt32},
    )
    assert_frame_equal(win_counts(opportunities), expected)


def test_deal_rates_share_of_closed_deals_and_none_when_nothing_closed():
    opps = pl.DataFrame({"outcome": ["won", "won", "lost", "no_decision", "open"]})
    assert deal_rates(opps) == {"deals": 5, "closed": 4, "win_rate": 0.5, "no_decision_rate": 0.25}
    only_open = pl.DataFrame({"outcome": ["open"]})
    assert deal_rates(only_open) == {
        "deals": 1,
        "closed": 0,
        "win_rate": None,
        "no_decision_rate": None,
    }


def test_deal_rates_and_win_counts_agree():
    opps = pl.DataFrame(
        {"rep_id": ["a", "a", "b", "b", "b"], "outcome": ["won", "lost", "won", "open", "lost"]}
    )
    wins = win_counts(opps)
    assert deal_rates(opps)["win_rate"] == wins["successes"].sum() / wins["trials"].sum()


def test_pooled_response_rate_pools_counts_not_cell_rates():
    cells = pl.DataFrame(
        {
            "activity_type": ["call", "call", "email"],
            "activities": [10, 30, 50],
            "responded": [5, 5, 5],
        }
    )
    out = cells.select(pooled_response_rate("activity_type"))
    # (5 + 5) / (10 + 30), not the mean of 0.5 and 1/6
    assert_frame_equal(out, pl.DataFrame({"response_rate": [0.25, 0.25, 0.1]}))


def test_metric_value_expressions():
    sums = pl.DataFrame({"activities": [200.0], "responded": [30.0], "response_weight": [50.0]})
    assert sums.select(
        metric_value("response_rate"),
        metric_value("roe_per_100").alias("roe"),
        metric_value("activities_per_week", weeks=4, reps=2).alias("per_week"),
    ).row(0) == (0.15, 25.0, 25.0)
    with pytest.raises(ValueError, match="metric must be one of"):
        metric_value("win_rate")


def test_metric_value_is_null_without_activity():
    sums = pl.DataFrame({"activities": [0.0], "responded": [0.0], "response_weight": [0.0]})
    assert sums.select(metric_value("response_rate"), metric_value("roe_per_100")).row(0) == (
        None,
        None,
    )
