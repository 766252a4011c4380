"""Chart builders for habits, interventions and the organisation: specs, data, tooltips."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from effortlens.charts.habits import (
    cadence_chart,
    sequence_lift_chart,
    timing_heatmap_chart,
)
from effortlens.charts.interventions import effect_text, intervention_chart
from effortlens.charts.organisation import (
    attrition_selling_chart,
    selling_time_chart,
    variance_share_chart,
)
from effortlens.charts.theme import MAX_ROWS, aggregated


def _rows(chart) -> list[dict]:
    """All inline data rows of a chart (every dataset of its spec; one written as JSON text,
    as the timing heatmap's, read back)."""
    return [
        row
        for rows in chart.to_dict()["datasets"].values()
        for row in (json.loads(rows) if isinstance(rows, str) else rows)
    ]


def _layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


def _tooltip_fields(layer: dict) -> set[str]:
    return {t["field"] for t in layer["encoding"]["tooltip"]}


TIMING = pl.DataFrame(
    {
        "activity_type": ["call", "call", "call", "email"],
        "weekday": [1, 2, 3, 1],
        "hour": [9, 9, 10, 9],
        "activities": [40, 5, 30, 50],
        "responded": [10, 1, 3, 5],
        "response_rate": [0.25, 0.2, 0.1, 0.1],
        "lift": [1.5, 1.2, 0.6, 0.6],
        "lift_over_type": [1.3, 1.0, 0.5, 1.0],
    },
    schema_overrides={"weekday": pl.Int8, "hour": pl.Int8},
)


def test_timing_heatmap_has_weekdays_in_order_and_a_type_picker():
    spec = timing_heatmap_chart(TIMING, min_activities=10).to_dict()
    assert spec["mark"]["type"] == "rect"
    assert spec["encoding"]["y"]["sort"] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert spec["encoding"]["x"]["field"] == "hour"
    assert spec["encoding"]["color"]["field"] == "response_rate"
    assert {"activities", "response_rate", "lift_over_type"} <= _tooltip_fields(spec)
    [picker] = spec["params"]
    assert picker["bind"]["options"] == ["call", "email"]
    assert spec["transform"] == [{"filter": "(datum.activity_type === activity_type)"}]
    # the cells go as JSON text (Vega-Lite parses it: the dataset's format says so)
    assert spec["data"] == {"name": "cells", "format": {"type": "json"}}
    assert isinstance(spec["datasets"]["cells"], str)
    rows = _rows(timing_heatmap_chart(TIMING, min_activities=10))
    assert rows[0] == {
        "activity_type": "call",
        "weekday": 1,
        "hour": 9,
        "activities": 40,
        "responded": 10,
        "response_rate": 0.25,
        "lift": 1.5,
        "lift_over_type": 1.3,
        "day": "Mon",
    }
    assert sorted((r["activity_type"], r["day"]) for r in rows) == [
        ("call", "Mon"),
        ("call", "Wed"),
        ("email", "Mon"),
    ]  # the 5-activity cell is left blank


def test_timing_heatmap_for_one_type_needs_no_picker():
    chart = timing_heatmap_chart(TIMING, activity_type="email")
    assert "params" not in chart.to_dict()
    assert [r["activity_type"] for r in _rows(chart)] == ["email"]
    overall = TIMING.group_by("weekday", "hour").agg(pl.col("activities", "responded").sum())
    spec = timing_heatmap_chart(
        overall.with_columns(
            response_rate=pl.col("responded") / pl.col("activities"), lift=pl.lit(1.0)
        )
    ).to_dict()
    assert "params" not in spec
    assert "activity_type" not in _tooltip_fields(spec)


def test_charts_refuse_raw_frames():
    with pytest.raises(ValueError, match="aggregated"):
        aggregated(pl.DataFrame({"x": range(MAX_ROWS + 1)}))
    assert aggregated(pl.DataFrame({"x": range(MAX_ROWS)})).height == MAX_ROWS


CADENCE = pl.DataFrame(
    {
        "cadence_bin": ["first touch", "0-1", "31+"],
        "bin_order": [0, 1, 6],
        "min_days_since": [None, 0, 31],
        "activities": [100, 200, 100],
        "responded": [20, 50, 5],
        "response_rate": [0.2, 0.25, 0.05],
        "lift": [0.2 / 0.1875, 0.25 / 0.1875, 0.05 / 0.1875],
    }
)


def test_cadence_chart_keeps_bin_order_and_shows_intervals_and_the_overall_rate():
    chart = cadence_chart(CADENCE.reverse())
    spec = chart.to_dict()
    bars, intervals, overall = spec["layer"]
    assert bars["encoding"]["x"]["sort"] == ["first touch", "0-1", "31+"]
    assert intervals["encoding"]["y"]["field"] == "rate_low"
    assert intervals["encoding"]["y2"]["field"] == "rate_high"
    assert {"activities", "rate_low", "rate_high"} <= _tooltip_fields(bars)
    rows = {r["cadence_bin"]: r for r in _rows(chart)}
    assert rows["31+"]["overall_rate"] == pytest.approx(75 / 400)
    assert rows["31+"]["rate_low"] < 0.05 < rows["31+"]["rate_high"]
    assert overall["mark"]["type"] == "rule"


SEQUENCES = pl.DataFrame(
    {
        "sequence": ["call → email", "email → meeting", "email → email"],
        "length": [2, 2, 2],
        "support": [400, 300, 200],
        "responded": [100, 120, 10],
        "response_rate": [0.25, 0.4, 0.05],
        "base_rate": [0.2, 0.2, 0.2],
        "lift": [1.25, 2.0, 0.25],
        "type_rate": [0.125, 0.4, 0.125],
        "lift_over_type": [2.0, 1.0, 0.4],
    }
)


def test_sequence_chart_keeps_the_ranking_and_marks_no_lift():
    chart = sequence_lift_chart(SEQUENCES, top=2)
    bars, no_lift = chart.to_dict()["layer"]
    sort = bars["encoding"]["y"]["sort"]  # by the frame's order, kept in a column
    assert sort == {"field": "bar_order", "op": "min", "order": "ascending"}
    ranked = sorted((r["bar_order"], r["sequence"]) for r in _rows(chart) if "bar_order" in r)
    assert [s for _, s in ranked] == ["call → email", "email → meeting"]
    assert bars["encoding"]["x"]["field"] == "lift_over_type"
    assert {"support", "lift", "lift_over_type"} <= _tooltip_fields(bars)
    assert no_lift["mark"]["type"] == "rule"
    assert {r.get("sequence") for r in _rows(chart)} == {"call → email", "email → meeting", None}
    by_lift = sequence_lift_chart(SEQUENCES, measure="lift").to_dict()["layer"][0]
    assert by_lift["encoding"]["x"]["field"] == "lift"
    with pytest.raises(ValueError, match="measure"):
        sequence_lift_chart(SEQUENCES, measure="support")


WEEKLY = pl.DataFrame(
    {
        "group": ["comparison"] * 4 + ["participants"] * 4,
        "week_index": [-2, -1, 0, 1] * 2,
        "week_start": [dt.date(2025, 7, 7) + dt.timedelta(weeks=k) for k in (-2, -1, 0, 1)] * 2,
        "period": ["before", "before", "after", "after"] * 2,
        "reps": [3] * 4 + [2] * 4,
        "activities": [30, 0, 30, 30, 20, 20, 20, 20],
        "value": [0.2, None, 0.2, 0.21, 0.15, 0.16, 0.25, 0.26],
    },
    schema_overrides={"week_index": pl.Int32, "reps": pl.UInt32, "activities": pl.UInt32},
)
EFFECT = {
    "metric": "response_rate",
    "estimate": 0.095,
    "ci_low": 0.041,
    "ci_high": 0.15,
    "n_treated": 2,
    "n_control": 3,
    "window_weeks": 2,
    "start_date": dt.date(2025, 7, 7),
}


def test_intervention_chart_marks_the_start_and_states_the_ci():
    chart = intervention_chart(WEEKLY, effect=EFFECT)
    spec = chart.to_dict()
    lines, rule, label = spec["layer"]
    assert spec["title"]["subtitle"] == effect_text(EFFECT)
    assert "+9.5 pts (95% CI +4.1 pts to +15.0 pts)" in spec["title"]["subtitle"]
    assert lines["encoding"]["color"]["scale"]["domain"] == ["participants", "comparison"]
    assert {"value", "activities", "reps", "week_from"} <= _tooltip_fields(lines)
    assert rule["encoding"]["x"]["field"] == "boundary"
    rows = _rows(chart)
    assert [r["boundary"] for r in rows if "boundary" in r] == [-0.5]
    # the empty week draws no point
    assert sum(1 for r in rows if "group" in r) == 7


def test_effect_text_in_metric_units():
    text = effect_text(
        {**EFFECT, "metric": "roe_per_100", "estimate": 6.9, "ci_low": 0.49, "ci_high": 12.5}
    )
    assert text.startswith("difference-in-differences +6.90 (95% CI +0.49 to +12.50)")
    assert "2 participants vs 3 comparison reps, 2 weeks either side of 2025-07-07" in text


TEAMS = pl.DataFrame(
    {
        "team": ["East", "West", "North"],
        "headcount": [10, 8, 6],
        "selling_time": [0.3, 0.12, None],
        "internal_load": [0.08, 0.25, None],
        "voluntary_exits": [1, 4, 0],
        "attrition_rate": [0.1, 0.5, 0.0],
        "annualised_attrition": [0.1, 0.6, 0.0],
        "response_rate": [0.17, 0.18, None],
        "roe_per_100": [30.0, 32.0, None],
    },
    schema_overrides={"headcount": pl.UInt32, "voluntary_exits": pl.UInt32},
)


def test_selling_time_chart_stacks_selling_and_internal_per_team():
    chart = selling_time_chart(TEAMS.head(2))
    spec = chart.to_dict()
    sort = spec["encoding"]["y"]["sort"]  # most selling time first, kept in a column
    assert sort == {"field": "team_order", "op": "min", "order": "ascending"}
    order = sorted({(r["team_order"], r["team"]) for r in _rows(chart)})
    assert [team for _, team in order] == ["East", "West"]
    assert spec["encoding"]["color"]["scale"]["domain"] == ["time for selling", "internal load"]
    rows = {(r["team"], r["part"]): r["share"] for r in _rows(chart)}
    assert rows == {
        ("East", "time for selling"): 0.3,
        ("East", "internal load"): 0.08,
        ("West", "time for selling"): 0.12,
        ("West", "internal load"): 0.25,
    }


def test_attrition_chart_plots_teams_with_both_measures():
    chart = attrition_selling_chart(TEAMS)
    points, labels = chart.to_dict()["layer"]
    assert points["mark"]["type"] == "circle"
    assert labels["encoding"]["text"]["field"] == "label"
    assert {"voluntary_exits", "annualised_attrition", "selling_time"} <= _tooltip_fields(points)
    assert sorted(r["team"] for r in _rows(chart)) == ["East", "West"]  # North has no activities


def test_attrition_chart_labels_only_teams_whose_names_can_be_read():
    # five teams in a tight cluster and one apart: the cluster gets one label, the outlier
    # its own; every team keeps its dot and its name in the tooltip
    cluster = pl.DataFrame(
        {
            "team": ["A", "B", "C", "D", "E", "Far"],
            "headcount": [5] * 6,
            "selling_time": [0.300, 0.302, 0.305, 0.308, 0.31, 0.1],
            "internal_load": [0.2] * 6,
            "voluntary_exits": [0, 0, 0, 0, 0, 3],
            "attrition_rate": [0.0, 0.0, 0.0, 0.0, 0.0, 0.6],
            "annualised_attrition": [0.0, 0.002, 0.004, 0.006, 0.008, 0.36],
        }
    )
    rows = _rows(attrition_selling_chart(cluster))
    labels = sorted(r["label"] for r in rows if r["label"])  # "" draws nothing (null drew "null")
    assert labels == ["E", "Far"]  # the cluster's highest attrition, and the outlier
    assert sorted(r["team"] for r in rows) == ["A", "B", "C", "D", "E", "Far"]
    spread = cluster.with_columns(
        selling_time=pl.Series([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
        annualised_attrition=pl.Series([0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
    )
    assert all(r["label"] == r["team"] for r in _rows(attrition_selling_chart(spread)))


def test_variance_share_chart_splits_each_metric_between_and_within_teams():
    shares = pl.DataFrame(
        {
            "metric": ["response_rate", "roe_per_100"],
            "group": ["team", "team"],
            "n_groups": [6, 6],
            "n_reps": [60, 60],
            "p_value": [0.2, 0.001],
            "share_between": [0.05, 0.3],
            "share_within": [0.95, 0.7],
        }
    )
    chart = variance_share_chart(shares)
    spec = chart.to_dict()
    assert spec["encoding"]["color"]["scale"]["domain"] == [
        "between teams",
        "between reps of a team",
    ]
    assert "p_value" in _tooltip_fields(spec)
    totals: dict[str, float] = {}
    for row in _rows(chart):
        totals[row["metric"]] = totals.get(row["metric"], 0.0) + row["share"]
    assert totals == pytest.approx({"response rate": 1.0, "ROE per 100 activities": 1.0})
