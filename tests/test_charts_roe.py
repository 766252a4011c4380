"""Charts of return on effort and the rep mirror, asserted on their Vega-Lite specs."""

from __future__ import annotations

from datetime import date, timedelta

import altair as alt
import polars as pl
import pytest

from effortlens.charts.mirror import mirror_chart
from effortlens.charts.roe import no_impact_chart, roe_by_chart, roe_trend_chart
from effortlens.charts.theme import CATEGORY, PALETTE
from effortlens.roe import roe_by, roe_trend

MON = date(2024, 3, 4)
ACTS = pl.DataFrame(
    {
        "team": ["A", "A", "A", "B", "B"],
        "is_customer_facing": [True] * 5,
        "hours": [1.0, 1.0, 2.0, 0.5, 0.5],
        "responded": [True, True, False, False, False],
        "response_weight": [3.0, 1.0, 0.0, 0.0, 0.0],
        "day": [MON, MON + timedelta(days=7), MON + timedelta(days=14), MON, MON],
    }
).with_columns(week=pl.col("day").dt.truncate("1w"))


def _data(spec: dict) -> list[list[dict]]:
    """The inline datasets of a spec, in the order Altair named them."""
    return list(spec["datasets"].values())


def _tooltip_fields(encoding: dict) -> set[str]:
    return {t["field"] for t in encoding["tooltip"]}


def test_theme_is_registered_enabled_and_colour_blind_safe():
    assert alt.theme.active == "effortlens"
    spec = roe_by_chart(roe_by(ACTS, by=["team"]), by="team").to_dict()
    assert spec["config"]["range"]["category"] == CATEGORY
    assert CATEGORY[:3] == ["#0072B2", "#E69F00", "#009E73"]  # Okabe–Ito order
    assert spec["background"] == "#FFFFFF"


def test_trend_chart_layers_period_values_under_the_rolling_mean():
    trend = roe_trend(ACTS, by=["team"], window=2)
    spec = roe_trend_chart(trend, metric="response_rate", by="team").to_dict()
    per_period, rolling = spec["layer"]
    assert per_period["encoding"]["y"]["field"] == "response_rate"
    assert rolling["encoding"]["y"]["field"] == "rolling_response_rate"
    assert per_period["encoding"]["x"] == {"field": "week", "title": None, "type": "temporal"}
    assert per_period["encoding"]["color"]["field"] == "team"
    assert per_period["encoding"]["y"]["axis"]["format"] == ".0%"
    assert {"week", "team", "response_rate", "rolling_response_rate", "activities"} <= (
        _tooltip_fields(per_period["encoding"])
    )
    (rows,) = _data(spec)
    assert len(rows) == trend.height == 6  # 2 teams x 3 weeks, quiet weeks included


def test_trend_chart_single_line_uses_the_primary_colour():
    spec = roe_trend_chart(roe_trend(ACTS)).to_dict()
    assert spec["layer"][1]["encoding"]["color"] == {"value": PALETTE["primary"]}
    assert "ROE per 100 activities by week" in str(spec["title"])


def test_roe_by_chart_sorts_bars_and_draws_the_overall_rate():
    table = roe_by(ACTS, by=["team"])
    spec = roe_by_chart(table, by="team").to_dict()
    bars, rule = spec["layer"]
    assert bars["mark"]["type"] == "bar" and bars["encoding"]["y"]["sort"] == "-x"
    assert {"team", "roe_per_100", "activities", "roe_per_hour"} <= _tooltip_fields(
        bars["encoding"]
    )
    bar_rows, rule_rows = _data(spec)
    assert [r["team"] for r in bar_rows] == ["A", "B"]
    # overall is the ratio of the sums (4 weight / 5 activities), not a mean of the bars
    assert rule_rows == [{"overall": 80.0}]
    assert rule["mark"]["strokeDash"] == [4, 3]


def test_no_impact_chart_stacks_wasted_and_earning_effort():
    table = roe_by(ACTS, by=["team"])
    spec = no_impact_chart(table, by="team", measure="hours").to_dict()
    colour = spec["encoding"]["color"]
    assert colour["scale"]["domain"] == ["no buyer action", "earned a buyer action"]
    assert colour["scale"]["range"] == [PALETTE["negative"], PALETTE["positive"]]
    (rows,) = _data(spec)
    amounts = {(r["team"], r["outcome"]): r["amount"] for r in rows}
    assert amounts == {
        ("A", "no buyer action"): 2.0,
        ("A", "earned a buyer action"): 2.0,
        ("B", "no buyer action"): 1.0,
        ("B", "earned a buyer action"): 0.0,
    }
    assert {"share", "amount", "outcome"} <= _tooltip_fields(spec["encoding"])


def test_mirror_chart_panels_lines_and_percentages():
    weeks = pl.DataFrame(
        {
            "week": [MON, MON, MON + timedelta(weeks=1), MON + timedelta(weeks=1)],
            "metric": ["response_rate", "activities"] * 2,
            "value": [0.3, 20.0, 0.4, 25.0],
            "own_trailing": [0.25, 18.0, 0.3, 19.0],
            "peer_median": [0.2, 22.0, None, None],
            "peers": pl.Series([4, 4, 0, 0], dtype=pl.UInt32),
        }
    )
    spec = mirror_chart(weeks, metrics=["response_rate", "activities"]).to_dict()
    assert spec["facet"]["row"]["sort"] == ["Response rate (%)", "Customer-facing activities"]
    assert spec["resolve"]["scale"]["y"] == "independent"
    lines, points = spec["spec"]["layer"]
    assert lines["encoding"]["strokeDash"]["scale"]["range"] == [[1, 0], [6, 3], [2, 2]]
    assert lines["encoding"]["color"]["scale"]["domain"] == [
        "This rep",
        "Own trailing weeks",
        "Peers' median",
    ]
    assert {"week", "series", "amount", "peers"} <= _tooltip_fields(lines["encoding"])
    (rows,) = _data(spec)
    assert len(rows) == 12  # 4 rows x 3 lines
    rate_now = [r for r in rows if r["label"] == "Response rate (%)" and r["series"] == "This rep"]
    assert sorted(r["amount"] for r in rate_now) == [30.0, 40.0]
    with pytest.raises(ValueError, match="metrics"):
        mirror_chart(weeks, metrics=["charisma"])


def test_charts_refuse_raw_events_and_unknown_metrics():
    many = pl.DataFrame({"team": [f"t{i}" for i in range(5001)]}).with_columns(
        activities=pl.lit(1),
        hours=pl.lit(1.0),
        responded=pl.lit(1),
        response_weight=pl.lit(1.0),
        roe_per_100=pl.lit(1.0),
    )
    with pytest.raises(ValueError, match="aggregated"):
        roe_by_chart(many, by="team")
    with pytest.raises(ValueError, match="metric"):
        roe_by_chart(roe_by(ACTS, by=["team"]), by="team", metric="activities")
    with pytest.raises(ValueError, match="measure"):
        no_impact_chart(roe_by(ACTS, by=["team"]), by="team", measure="minutes")


def test_roe_by_chart_can_offer_a_click_selection_on_another_column():
    table = pl.DataFrame(
        {
            "rep_id": ["r1", "r2"],
            "rep_name": ["Ada", "Bo"],
            "activities": [10, 10],
            "responded": [5, 1],
            "hours": [2.0, 2.0],
            "response_weight": [5.0, 1.0],
        }
    ).with_columns(
        response_rate=pl.col("responded") / pl.col("activities"),
        roe_per_100=100 * pl.col("response_weight") / pl.col("activities"),
        roe_per_hour=pl.col("response_weight") / pl.col("hours"),
    )
    plain = roe_by_chart(table, by="rep_name").to_dict()
    assert "params" not in plain
    spec = roe_by_chart(table, by="rep_name", select="rep_id").to_dict()
    params = spec["params"]  # Altair lifts layer selections to the top level
    assert params[0]["name"] == "picked" and params[0]["select"]["type"] == "point"
    assert params[0]["select"]["fields"] == ["rep_id"]
