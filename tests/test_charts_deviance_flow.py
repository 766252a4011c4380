"""Charts of deviance and flow: asserted on their Vega-Lite specs (``chart.to_dict()``)."""

from __future__ import annotations

import datetime as dt
import json

import altair as alt
import polars as pl
import pytest

from effortlens.charts.deviance import (
    DIRECTION_LABELS,
    MAX_FUNNEL_ROWS,
    funnel_plot_chart,
    what_differs_chart,
)
from effortlens.charts.flow import (
    EVIDENCE,
    FATES,
    stage_funnel_chart,
    time_in_stage_chart,
    verification_chart,
)
from effortlens.deviance import peer_deviance
from effortlens.flow import flow_table
from effortlens.schema import conform
from effortlens.settings import load_settings

SETTINGS = load_settings()
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _rows(spec: dict, layer: dict | None = None) -> list[dict]:
    """The inline rows a (layer of a) chart spec draws (JSON text parsed, as Vega-Lite does
    when the data names that format)."""
    data = (layer or spec).get("data", spec.get("data", {}))
    rows = spec["datasets"][data.get("name")]
    if isinstance(rows, str):
        assert data.get("format") == {"type": "json"}
        return json.loads(rows)
    return rows


def _tooltip_fields(layer: dict) -> set[str]:
    return {t.get("field") for t in layer["encoding"]["tooltip"]}


def _deviance(groups: dict[str, list[tuple[str, int, int]]]) -> pl.DataFrame:
    reps = pl.DataFrame(
        [(rep, f"Rep {rep}", g) for g, rows in groups.items() for rep, _, _ in rows],
        schema=["rep_id", "rep_name", "peer_group"],
        orient="row",
    )
    counts = pl.DataFrame(
        [row for rows in groups.values() for row in rows],
        schema={"rep_id": pl.String, "successes": pl.UInt32, "trials": pl.UInt32},
        orient="row",
    )
    return peer_deviance(counts, reps, min_volume=300, adjust_overdispersion=False)


ONE_GROUP = _deviance(
    {
        "SMB · AE": [
            ("a", 400, 1000),
            ("b", 300, 1000),
            ("c", 290, 1000),
            ("d", 200, 1000),
            ("e", 30, 100),
            ("idle", 0, 0),
        ]
    }
)


# ------------------------------------------------------------------------------ funnel plot


def test_funnel_plot_draws_limits_peer_rate_and_reps_with_tooltips():
    chart = funnel_plot_chart(ONE_GROUP, min_volume=300)
    assert isinstance(chart, alt.LayerChart)
    spec = chart.to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["line", "rule", "circle", "rule"]
    lines, centre, dots, minimum = spec["layer"]
    rows = _rows(spec)
    reps = [r for r in rows if r["kind"] == "rep"]
    assert sorted(r["rep_id"] for r in reps) == ["a", "b", "c", "d", "e"]  # idle has no volume
    # the limits come a row per volume; the lines layer folds the four into one line each
    limits = [r for r in rows if r["kind"] == "limit"]
    assert limits and all(
        r["lower_998"] < r["lower_95"] < r["upper_95"] < r["upper_998"]
        for r in limits
        if r["lower_998"] is not None
    )
    fold = next(t for t in lines["transform"] if "fold" in t)
    assert sorted(fold["fold"]) == ["lower_95", "lower_998", "upper_95", "upper_998"]
    assert fold["as"] == ["limit", "value"]
    assert lines["encoding"]["y"]["field"] == "value"
    assert {"rep_name", "rep_id", "peer_group", "volume", "rate", "peer_rate"} <= _tooltip_fields(
        dots
    )
    assert dots["encoding"]["color"]["scale"]["domain"] == list(DIRECTION_LABELS.values())
    directions = {r["rep_id"]: r["direction"] for r in reps}
    assert directions["a"] == DIRECTION_LABELS["positive"]
    assert directions["d"] == DIRECTION_LABELS["negative"]
    assert centre["encoding"]["y"]["field"] == "peer_rate"
    assert minimum["encoding"]["x"] == {"datum": 300}
    assert [p["name"] for p in spec["params"]] == ["picked_rep"]


def test_funnel_plot_draws_four_limit_lines_from_its_wide_rows():
    # rendered by Vega (vl-convert, as the PNG download is): the JSON rows parsed, each
    # volume's four limits folded into a 95% and a 99.8% line on each side
    import re

    import vl_convert as vlc

    svg = vlc.vegalite_to_svg(funnel_plot_chart(ONE_GROUP, min_volume=300).to_dict())
    lines = re.findall(r'aria-label="([^"]*)"[^>]*aria-roledescription="line mark"', svg)
    drawn = {
        (re.search(r"control limits: ([^;]*)", label)[1], re.search(r"side: (\w+)", label)[1])
        for label in lines
    }
    assert drawn == {
        (level, side) for level in ("95% limits", "99.8% limits") for side in ("lower", "upper")
    }
    assert svg.count('aria-roledescription="circle"') == 5  # the reps with volume


def test_funnel_plot_has_one_panel_per_peer_group_unless_one_is_picked():
    table = _deviance(
        {
            "SMB · AE": [("a", 300, 1000), ("b", 320, 1000)],
            "ENT · AE": [("c", 100, 500), ("d", 120, 500)],
        }
    )
    spec = funnel_plot_chart(table).to_dict()
    assert spec["facet"]["field"] == "peer_group" and spec["resolve"]["scale"]["x"] == "independent"
    picked = funnel_plot_chart(table, peer_group="ENT · AE").to_dict()
    assert "facet" not in picked
    assert {r["peer_group"] for r in _rows(picked)} == {"ENT · AE"}


def _funnel_rows_by_queries(table: pl.DataFrame, peer_group: str | None) -> str:
    """The funnel plot's JSON rows made as before its rows were made of Series: the reps and
    the lines selected, concatenated diagonally and written with non-finite floats null."""
    from effortlens.deviance import funnel_limits

    reps = table.filter(pl.col("volume") > 0)
    if peer_group is not None:
        reps = reps.filter(pl.col("peer_group") == peer_group)
    if "rep_name" not in reps.columns:
        reps = reps.with_columns(rep_name=pl.col("rep_id"))
    points = reps.select(
        *("peer_group", "rep_id", "rep_name", "volume", "rate", "shrunk_rate", "peer_rate"),
        *("z", "p_value"),
        direction=pl.col("direction").replace_strict(DIRECTION_LABELS, return_dtype=pl.String),
        kind=pl.lit("rep"),
    )
    room = (MAX_FUNNEL_ROWS - reps.height) // max(reps["peer_group"].n_unique(), 1)
    lines = funnel_limits(reps, points=min(60, max(12, room)), at_reps=False)
    lines = lines.with_columns(kind=pl.lit("limit"))
    data = pl.concat([points, lines], how="diagonal_relaxed")
    floats = [c for c, t in data.schema.items() if t.is_float()]
    return data.with_columns(
        pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in floats
    ).write_json()


def test_funnel_plot_rows_are_those_the_queries_made():
    two = _deviance(
        {
            "SMB · AE": [("a", 300, 1000), ("b", 320, 1000), ("idle", 0, 0)],
            "ENT · AE": [("c", 100, 500), ("d", 120, 500), ("e", 160, 500)],
        }
    )
    many = _deviance(
        {
            f"g{g}": [(f"r{g}-{i}", 20 + (i * 7) % 90, 100 + i * 3) for i in range(60)]
            for g in range(4)
        }
    )
    tables = {
        "one group": ONE_GROUP,
        "two groups": two,
        "many": many,
        "no names": two.drop("rep_name"),
        "coded groups": many.with_columns(pl.col("peer_group").cast(pl.Categorical)),
        "not finite": two.with_columns(
            z=pl.Series([float("inf"), None, float("nan"), -float("inf"), 1.0, 2.0]),
            volume=pl.col("volume").cast(pl.Int64),
        ),
    }
    for name, table in tables.items():
        for group in (None, table["peer_group"].cast(pl.String)[0]):
            drawn = funnel_plot_chart(table, peer_group=group).to_dict()["datasets"]["funnel"]
            assert drawn == _funnel_rows_by_queries(table, group), (name, group)


def test_funnel_plot_refuses_raw_sized_frames():
    many = _deviance({"g": [(f"r{i}", 30, 100) for i in range(MAX_FUNNEL_ROWS + 1)]})
    with pytest.raises(ValueError, match="aggregated"):
        funnel_plot_chart(many)


# ---------------------------------------------------------------------------- what differs


DIFFERS = pl.DataFrame(
    {
        "feature": ["activity_type_share", "sequence", "median_days_between_touches", "hour_share"],
        "level": ["call", "call → email", "all follow-ups", "10:00"],
        "deviant_value": [0.6, 1.5, 1.5, 0.1],
        "peer_value": [0.2, 1.0, 4.0, 0.12],
        "difference": [0.4, 0.5, -2.5, -0.02],
        "effect_size": [0.85, 0.4, -0.3, -0.06],
        "measure": ["cohen_h", "cohen_h_beyond_mix", "cohen_d_log_days", "cohen_h"],
        "deviant_base": [100.0, 60.0, 90.0, 100.0],
        "peer_base": [200.0, 120.0, 180.0, 200.0],
        "peer_groups": pl.Series([1, 1, 1, 1], dtype=pl.UInt32),
        "rank": pl.Series([1, 2, 3, 4], dtype=pl.UInt32),
    }
)


def test_what_differs_chart_shows_the_top_practices_in_rank_order_in_words():
    spec = what_differs_chart(DIFFERS, top=3).to_dict()
    bars = spec["layer"][0]
    rows = _rows(spec, bars)
    assert [r["practice"] for r in rows] == [
        "activity type: call",
        "sequence: call → email",
        "days between touches (median): all follow-ups",
    ]
    # the bars are sorted by rank (1 = largest difference), the order of the rows above
    assert bars["encoding"]["y"]["sort"] == {"field": "rank", "op": "min", "order": "ascending"}
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [(r["deviants"], r["peers"]) for r in rows] == [
        ("60.0%", "20.0%"),
        ("1.5× the mix", "1.0× the mix"),
        ("1.5 days", "4.0 days"),
    ]
    assert [r["side"] for r in rows] == [
        "more among deviants",
        "more among deviants",
        "less among deviants",
    ]
    assert {"practice", "deviants", "peers", "effect_size"} <= _tooltip_fields(bars)


# ------------------------------------------------------------------------------------ flow


def _flow(by: str | None = None) -> pl.DataFrame:
    def day(n):
        return T0 + dt.timedelta(days=n)

    opportunities = pl.DataFrame(
        {
            "opportunity_id": ["o1", "o2", "o3", "o4"],
            "rep_id": ["r1", "r1", "r2", "r2"],
            "created_ts": [day(0)] * 4,
            "close_ts": [day(10), day(6), None, day(3)],
            "outcome": ["won", "lost", "open", "no_decision"],
        }
    )
    history = pl.DataFrame(
        {
            "opportunity_id": ["o1", "o1", "o1", "o2", "o2", "o3", "o4"],
            "stage": [
                "prospect",
                "discovery",
                "proposal",
                "prospect",
                "discovery",
                "discovery",
                "prospect",
            ],
            "entered_ts": [day(0), day(2), day(5), day(0), day(4), day(1), day(0)],
            "verifier_action_id": [None, "a1", None, None, None, None, None],
        }
    )
    reps = pl.DataFrame({"rep_id": ["r1", "r2"], "team": ["A", "B"]})
    tables = {
        "opportunities": conform(opportunities, "opportunities").collect(),
        "stage_history": conform(history, "stage_history").collect(),
        "reps": conform(reps, "reps").collect(),
    }
    return flow_table(tables, settings=SETTINGS, by=by, as_of=day(20))


def test_stage_funnel_splits_each_stage_into_what_became_of_its_deals():
    flow = _flow()
    spec = stage_funnel_chart(flow).to_dict()
    rows = _rows(spec)
    reached = dict(flow.select("stage", "reached").iter_rows())
    for stage in {r["stage"] for r in rows}:
        assert sum(r["deals"] for r in rows if r["stage"] == stage) == reached[stage]
    assert {r["stage"] for r in rows} == {"prospect", "discovery", "evaluation", "proposal"}
    encoding = spec["encoding"]
    assert encoding["x"]["sort"] == list(SETTINGS.stages)
    assert encoding["color"]["scale"]["domain"] == list(FATES.values())
    lost = [r for r in rows if r["stage"] == "discovery" and r["fate"] == FATES["lost"]]
    assert lost[0]["deals"] == 1 and lost[0]["share"] == pytest.approx(1 / 3)
    assert {"stage", "fate", "deals", "share", "conversion", "leakage"} <= _tooltip_fields(spec)


def test_flow_charts_split_by_a_group_or_refuse_an_ambiguous_table():
    by_team = _flow("team")
    facet = stage_funnel_chart(by_team, by="team").to_dict()
    assert facet["facet"]["row"]["field"] == "team"
    grouped = verification_chart(by_team, by="team").to_dict()
    assert grouped["layer"][0]["encoding"]["xOffset"]["field"] == "team"
    for builder in (stage_funnel_chart, time_in_stage_chart, verification_chart):
        with pytest.raises(ValueError, match="by="):
            builder(by_team)


def test_time_in_stage_chart_draws_median_bars_and_p90_ticks():
    flow = _flow()
    spec = time_in_stage_chart(flow).to_dict()
    bars, ticks, open_ended = spec["layer"]
    assert (bars["mark"]["type"], bars["encoding"]["y"]["field"]) == ("bar", "median_days")
    assert (ticks["mark"]["type"], ticks["encoding"]["y"]["field"]) == ("tick", "p90_days")
    rows = _rows(spec)
    assert [r["stage"] for r in rows] == ["prospect", "discovery", "proposal"]  # entered only
    assert {"median_days", "p90_days", "blocked", "blocked_after_days"} <= _tooltip_fields(bars)


def test_verification_chart_stacks_recorded_and_action_evidence_per_stage():
    flow = _flow()
    spec = verification_chart(flow).to_dict()
    bars, overall = spec["layer"]
    assert bars["encoding"]["y"]["field"] == "share"
    assert bars["encoding"]["y"]["scale"]["domain"] == [0, 1]
    assert bars["encoding"]["color"]["scale"]["domain"] == list(EVIDENCE.values())
    rows = _rows(spec)
    # moves: o1 into discovery (recorded a1) and proposal, o2 into discovery
    assert {(r["stage"], r["evidence"]): r["share"] for r in rows} == pytest.approx(
        {
            ("discovery", EVIDENCE["verified_recorded"]): 0.5,
            ("discovery", EVIDENCE["verified_by_action"]): 0.0,
            ("proposal", EVIDENCE["verified_recorded"]): 0.0,
            ("proposal", EVIDENCE["verified_by_action"]): 0.0,
        }
    )
    assert rows[0]["overall_rate"] == pytest.approx(1 / 3)
    assert overall["mark"]["type"] == "rule"
    assert {"evidence", "moves", "verified", "verification_rate"} <= _tooltip_fields(bars)


def test_funnel_plot_of_two_thousand_reps_draws_curves_on_a_grid():
    # an org of 2,000 reps in 6 peer groups: the limits are curves on a grid of volumes, the
    # reps points, together under the charts' row limit (the plot drew nothing at 10M before)
    groups = {
        f"g{g}": [(f"r{g}-{i}", 20 + (i * 7) % 90, 100 + i * 3) for i in range(334)]
        for g in range(6)
    }
    spec = funnel_plot_chart(_deviance(groups)).to_dict()
    rows = _rows(spec)
    reps = [r for r in rows if r["kind"] == "rep"]
    limits = [r for r in rows if r["kind"] == "limit"]
    assert len(reps) == 6 * 334 and len(rows) <= MAX_FUNNEL_ROWS
    for group in groups:
        volumes = sorted({r["volume"] for r in limits if r["peer_group"] == group})
        assert len(volumes) >= 12  # enough points for a smooth curve
        largest = max(r["volume"] for r in reps if r["peer_group"] == group)
        assert volumes[-1] >= largest  # the curve spans every rep


def test_funnel_plot_of_an_enterprise_of_five_thousand_reps_draws_every_rep_and_its_limits():
    # the generator's 100M sample has 5,000 reps: the plot refused them with the former
    # 5,000-row limit (a point per rep plus 12 limit rows per group is 5,072)
    groups = {
        f"g{g}": [(f"r{g}-{i}", 20 + (i * 7) % 90, 100 + i * 3) for i in range(834)]
        for g in range(6)
    }
    rows = _rows(funnel_plot_chart(_deviance(groups)).to_dict())
    reps = [r for r in rows if r["kind"] == "rep"]
    assert len(reps) == 6 * 834 and len(rows) <= MAX_FUNNEL_ROWS
    for group in groups:
        volumes = {r["volume"] for r in rows if r["kind"] == "limit" and r["peer_group"] == group}
        assert len(volumes) >= 12
