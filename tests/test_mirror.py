"""The rep mirror: own week against own trailing weeks and the peers' median."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.mirror import MIRROR_METRICS, mirror_weeks, rep_mirror

W = [date(2024, 3, 4) + timedelta(weeks=i) for i in range(6)]  # Mondays W0..W5
GROUP = {"me": "G", "p1": "G", "p2": "G", "p3": "G", "idle": "G", "p4": "H"}
REPS = pl.DataFrame({"rep_id": list(GROUP), "peer_group": list(GROUP.values())})


def _daily(rows: list[tuple]) -> pl.DataFrame:
    """(rep, week, activities, responded, weight, hours) -> daily-shaped rows (one per week)."""
    frame = pl.DataFrame(
        rows,
        schema={
            "rep_id": pl.String,
            "week": pl.Date,
            "activities": pl.UInt32,
            "responded": pl.UInt32,
            "response_weight": pl.Float64,
            "hours": pl.Float64,
        },
        orient="row",
    )
    return frame.with_columns(
        day=pl.col("week") + pl.duration(days=2),
        activity_type=pl.lit("email"),
        is_customer_facing=pl.lit(True),
        no_impact_hours=pl.col("hours") * (1 - pl.col("responded") / pl.col("activities")),
        peer_group=pl.col("rep_id").replace_strict(GROUP),
    )


DAILY = _daily(
    [
        ("me", W[1], 10, 2, 4.0, 2.0),
        ("me", W[2], 10, 4, 8.0, 2.0),
        ("me", W[4], 20, 10, 30.0, 5.0),
        ("p1", W[3], 5, 5, 5.0, 1.0),
        ("p1", W[4], 10, 1, 1.0, 2.0),
        ("p2", W[4], 10, 5, 5.0, 2.0),
        ("p4", W[4], 10, 10, 10.0, 2.0),  # another peer group: never a peer
    ]
)


def _pick(frame: pl.DataFrame, metric: str) -> list[tuple]:
    """week, value, own_trailing, peer_median, peers of one metric (floats to 12 places)."""
    return (
        frame.filter(pl.col("metric") == metric)
        .select("week", pl.col("value", "own_trailing", "peer_median").round(12), "peers")
        .rows()
    )


def test_weeks_against_own_trailing_and_peer_median():
    got = mirror_weeks(DAILY, reps=REPS, rep_id="me", weeks=2, trailing=3, until=W[4])
    assert got["metric"].unique(maintain_order=True).to_list() == list(MIRROR_METRICS)
    assert _pick(got, "response_rate") == [
        (W[3], None, 0.3, 1.0, 1),  # quiet week: no rate; trailing W0-W2 = 6/20
        (W[4], 0.5, 0.3, 0.3, 2),  # trailing W1-W3 = 6/20; peers 0.1 and 0.5
    ]
    assert _pick(got, "activities") == [
        (W[3], 0.0, round(20 / 3, 12), 5.0, 1),
        (W[4], 20.0, round(20 / 3, 12), 10.0, 2),
    ]
    assert _pick(got, "roe_per_100")[1] == (W[4], 150.0, 60.0, 30.0, 2)
    assert _pick(got, "roe_per_hour")[1] == (W[4], 6.0, 3.0, 1.5, 2)  # peers 0.5 and 2.5


def test_rep_mirror_defaults_to_the_latest_week_and_gives_the_gaps():
    got = rep_mirror(DAILY, reps=REPS, rep_id="me", trailing=3)
    row = got.filter(pl.col("metric") == "response_rate")
    assert row.select("label", "week", "value", "vs_own", "vs_peers").rows() == [
        ("Response rate", W[4], 0.5, pytest.approx(0.2), pytest.approx(0.2))
    ]
    assert got.height == len(MIRROR_METRICS)


def test_a_rep_without_activity_still_has_a_mirror():
    got = rep_mirror(DAILY, reps=REPS, rep_id="idle", week=W[4] + timedelta(days=3), trailing=2)
    assert _pick(got, "activities") == [(W[4], 0.0, 0.0, 10.0, 3)]  # me, p1, p2 are its peers
    assert _pick(got, "response_rate") == [(W[4], None, None, 0.5, 3)]  # 0.5, 0.1, 0.5


def test_peer_group_of_one_and_unknown_rep():
    got = rep_mirror(DAILY, reps=REPS, rep_id="p4", trailing=1)
    assert _pick(got, "response_rate") == [(W[4], 1.0, None, None, 0)]
    with pytest.raises(ValueError, match="unknown rep"):
        rep_mirror(DAILY, reps=REPS, rep_id="nobody")
    empty = mirror_weeks(DAILY.clear(), reps=REPS, rep_id="me")
    assert empty.height == 0 and empty.columns[:2] == ["week", "metric"]


def test_matches_enriched_facts_end_to_end(hand_enriched):
    e = hand_enriched
    got = mirror_weeks(e.daily, reps=e.reps, rep_id="r1", weeks=2, trailing=1)
    week = e.activities["week"].max()
    own = e.activities.filter(
        (pl.col("rep_id") == "r1") & pl.col("is_customer_facing") & (pl.col("week") == week)
    )
    last = got.filter((pl.col("week") == week) & (pl.col("metric") == "activities"))
    assert last["value"].item() == own.height
    assert got["week"].unique().sort().to_list() == [week - timedelta(weeks=1), week]


def test_inputs_not_mutated():
    before = DAILY.clone(), REPS.clone()
    mirror_weeks(DAILY, reps=REPS, rep_id="me")
    assert_frame_equal(DAILY, before[0])
    assert_frame_equal(REPS, before[1])
