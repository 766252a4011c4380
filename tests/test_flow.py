"""Buyer-journey flow: conversion, leakage, skipped stages, time in stage, blockage and
verification."""

from __future__ import annotations

import datetime as dt
import shutil
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.flow import (
    blocked_deals,
    flow_table,
    leakage_homogeneity,
    stage_flags,
    stage_stays,
    stay_index,
    stays_under,
    time_in_stage,
)
from effortlens.schema import conform
from effortlens.settings import load_settings

SETTINGS = load_settings()  # prospect, discovery, evaluation, proposal, negotiation, commit
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def _tables(
    deals: dict[str, tuple],
    entries: list[tuple],
    *,
    actions: list[tuple] = (),
    reps: dict[str, str] | None = None,
) -> dict[str, pl.DataFrame]:
    """deals: id -> (rep_id, outcome, close day or None); entries: (deal, stage, day,
    verifier_action_id); actions: (action_id, deal, day, action_type, is_verifier)."""
    opportunities = pl.DataFrame(
        [
            (o, rep, day(0), None if close is None else day(close), outcome)
            for o, (rep, outcome, close) in deals.items()
        ],
        schema=["opportunity_id", "rep_id", "created_ts", "close_ts", "outcome"],
        orient="row",
    )
    history = pl.DataFrame(
        [(o, stage, day(d), v) for o, stage, d, v in entries],
        schema=["opportunity_id", "stage", "entered_ts", "verifier_action_id"],
        orient="row",
    )
    buyer = pl.DataFrame(
        [(a, o, day(d), "acct", kind, verifier) for a, o, d, kind, verifier in actions],
        schema={
            "action_id": pl.String,
            "opportunity_id": pl.String,
            "ts": pl.Datetime("us"),
            "account_id": pl.String,
            "action_type": pl.String,
            "is_verifier": pl.Boolean,
        },
        orient="row",
    )
    owners = reps or {rep: "A" for rep, _, _ in deals.values()}
    return {
        "opportunities": conform(opportunities, "opportunities").collect(),
        "stage_history": conform(history, "stage_history").collect(),
        "buyer_actions": conform(
            buyer.with_columns(pl.col("ts").dt.replace_time_zone("UTC")), "buyer_actions"
        ).collect(),
        "reps": conform(
            pl.DataFrame({"rep_id": list(owners), "team": list(owners.values())}), "reps"
        ).collect(),
    }


# o1 skips evaluation and is won from proposal; o2 leaks (lost) at discovery; o3 starts at
# discovery and is still open; o4 ends in no decision at prospect.
JOURNEY = _tables(
    {
        "o1": ("r1", "won", 10),
        "o2": ("r1", "lost", 6),
        "o3": ("r2", "open", None),
        "o4": ("r2", "no_decision", 3),
    },
    [
        ("o1", "prospect", 0, None),
        ("o1", "discovery", 2, "a1"),
        ("o1", "proposal", 5, None),
        ("o2", "prospect", 0, None),
        ("o2", "discovery", 4, None),
        ("o3", "discovery", 1, None),
        ("o4", "prospect", 0, None),
    ],
    reps={"r1": "A", "r2": "B"},
)


def test_conversion_leakage_and_skipped_stages_per_stage():
    table = flow_table(JOURNEY, settings=SETTINGS, as_of=day(20))
    expected = pl.DataFrame(
        {
            "stage": list(SETTINGS.stages),
            "reached": [3, 3, 1, 1, 0, 0],
            "entered": [3, 3, 0, 1, 0, 0],
            "skipped": [0, 0, 1, 0, 0, 0],
            "converted": [2, 1, 1, 1, 0, 0],
            "leaked": [1, 1, 0, 0, 0, 0],
            "no_decision": [1, 0, 0, 0, 0, 0],
            "open": [0, 1, 0, 0, 0, 0],
            "conversion": [2 / 3, 1 / 3, 1.0, 1.0, None, None],
            "leakage": [1 / 3, 1 / 3, 0.0, 0.0, None, None],
        },
        schema_overrides={
            c: pl.UInt32
            for c in ("reached", "entered", "skipped", "converted", "leaked", "no_decision", "open")
        },
    )
    assert_frame_equal(table.select(expected.columns), expected)
    known = table.filter(pl.col("reached") > 0)
    total = known["conversion"] + known["leakage"] + known["open_share"]
    assert total.to_list() == pytest.approx([1.0] * known.height)


def test_backward_moves_keep_the_furthest_stage_and_every_stay():
    tables = _tables(
        {"o1": ("r1", "lost", 9)},
        [("o1", "prospect", 0, None), ("o1", "proposal", 2, None), ("o1", "discovery", 5, None)],
    )
    table = flow_table(tables, settings=SETTINGS, as_of=day(20))
    leaked = table.filter(pl.col("leaked") > 0)["stage"].to_list()
    assert leaked == ["proposal"]
    assert table.filter(pl.col("stage") == "discovery")["entered"].item() == 1
    stays = stage_stays(tables, settings=SETTINGS)
    assert stays.select("stage", "days", "ended").rows() == [
        ("prospect", 2.0, True),
        ("proposal", 3.0, True),
        ("discovery", 4.0, True),
    ]


def test_time_in_stage_is_kaplan_meier_with_open_deals_censored():
    # discovery stays: 2 and 4 days ended, three open deals censored at 10 days
    deals = {
        "a": ("r1", "lost", 2),
        "b": ("r1", "lost", 4),
        "c": ("r1", "open", None),
        "d": ("r1", "open", None),
        "e": ("r1", "open", None),
    }
    tables = _tables(deals, [(o, "discovery", 0, None) for o in deals])
    stays = stage_stays(tables, settings=SETTINGS, as_of=day(10))
    assert stays.filter(~pl.col("ended"))["days"].to_list() == [10.0, 10.0, 10.0]
    # S(2) = 4/5, S(4) = 3/5: the median is never reached; ended stays alone would say 3
    row = time_in_stage(stays).row(0, named=True)
    assert (row["stage"], row["stays"], row["median_days"], row["p90_days"]) == (
        "discovery",
        5,
        None,
        None,
    )
    assert row["ended_p90_days"] == pytest.approx(3.8)
    # with the same stays all ended, S(2) = 4/5, S(4) = 3/5, S(10) = 0
    closed = _tables(
        {o: ("r1", "lost", 2 if o == "a" else 4 if o == "b" else 10) for o in deals},
        [(o, "discovery", 0, None) for o in deals],
    )
    row = time_in_stage(stage_stays(closed, settings=SETTINGS)).row(0, named=True)
    assert (row["median_days"], row["p90_days"]) == (10.0, 10.0)


def test_kaplan_meier_median_matches_the_textbook_example():
    # durations 1, 2+, 3, 4, 5+ (+ = censored): S(1)=4/5, S(3)=4/5*2/3=8/15, S(4)=8/15*1/2=4/15
    deals = {
        "a": ("r", "lost", 1),
        "b": ("r", "open", None),
        "c": ("r", "lost", 3),
        "d": ("r", "lost", 4),
        "e": ("r", "open", None),
    }
    entries = [
        ("a", "prospect", 0, None),
        ("b", "prospect", 3, None),
        ("c", "prospect", 0, None),
        ("d", "prospect", 0, None),
        ("e", "prospect", 0, None),
    ]
    stays = stage_stays(_tables(deals, entries), settings=SETTINGS, as_of=day(5))
    assert sorted(stays["days"].to_list()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    row = time_in_stage(stays).row(0, named=True)
    assert (row["median_days"], row["p90_days"]) == (4.0, None)


def test_blocked_deals_are_open_past_the_stage_historical_p90():
    deals = {f"w{i}": ("r1", "lost", i + 1) for i in range(10)}  # ended stays of 1..10 days
    deals |= {"stuck": ("r2", "open", None), "fresh": ("r2", "open", None)}
    entries = [(o, "evaluation", 0, None) for o in deals if o.startswith("w")]
    entries += [
        ("stuck", "prospect", 0, None),
        ("stuck", "evaluation", 1, None),
        ("fresh", "evaluation", 29, None),
    ]
    tables = _tables(deals, entries, reps={"r1": "A", "r2": "B"})
    blocked = blocked_deals(tables, settings=SETTINGS, as_of=day(30), by="team")
    assert blocked.select("opportunity_id", "rep_id", "team", "stage").rows() == [
        ("stuck", "r2", "B", "evaluation")
    ]
    # p90 of the ended stays 1..10 days, interpolated: 9 + 0.1 * (10 - 9)
    assert blocked["age_days"].item() == 29.0
    assert blocked["threshold_days"].item() == pytest.approx(9.1)
    assert blocked["over_days"].item() == pytest.approx(19.9)
    table = flow_table(tables, settings=SETTINGS, as_of=day(30))
    evaluation = table.filter(pl.col("stage") == "evaluation").row(0, named=True)
    assert evaluation["blocked"] == 1 and evaluation["blocked_after_days"] == pytest.approx(9.1)
    assert table["blocked"].sum() == 1


def test_deals_stuck_for_good_do_not_raise_the_blockage_bar():
    # one stay ended after 3 days, one after 5; three deals have sat there for 10 days
    deals = {"done": ("r1", "won", 3), "done2": ("r1", "lost", 5)}
    deals |= {f"open{i}": ("r1", "open", None) for i in range(3)}
    deals |= {"recent": ("r1", "open", None)}
    entries = [(o, "proposal", 8 if o == "recent" else 0, None) for o in deals]
    tables = _tables(deals, entries)
    stays = stage_stays(tables, settings=SETTINGS, as_of=day(10))
    row = time_in_stage(stays).row(0, named=True)
    assert row["p90_days"] is None  # Kaplan-Meier: more than 10% of stays still running
    assert row["ended_p90_days"] == pytest.approx(4.8)
    blocked = blocked_deals(tables, settings=SETTINGS, as_of=day(10))
    assert blocked["opportunity_id"].to_list() == ["open0", "open1", "open2"]


def test_verification_of_moves_by_recorded_id_or_a_buyer_verifier_earned_in_the_stage():
    window = SETTINGS.attribution_window_days
    names = ("byid", "edge", "late", "weak", "other", "nulls", "stale")
    deals = {o: ("r1", "open", None) for o in names}
    # every deal is created in prospect (day 0, "stale" on day 10; "byid" with a recorded
    # verifier, which does not count: creation is not a move) and moves to discovery on day 20
    entries = [
        (o, "prospect", 10 if o == "stale" else 0, "x0" if o == "byid" else None) for o in deals
    ]
    entries += [(o, "discovery", 20, "x1" if o == "byid" else None) for o in deals]
    actions = [
        ("v_edge", "edge", 20 - window, "meeting_held", True),  # exactly at the window edge
        ("v_late", "late", 20 - window - 0.01, "meeting_held", True),  # just outside
        ("v_weak", "weak", 19, "reply", False),  # not a verifier
        ("v_other", "byid", 19, "mutual_plan", True),  # on another deal than "other"
        ("v_nulls", "nulls", 19, "mutual_plan", None),  # flag missing: settings' verifiers
        ("v_after", "other", 21, "mutual_plan", True),  # after the entry
        ("v_stale", "stale", 9, "mutual_plan", True),  # in the window, before prospect entry
    ]
    tables = _tables(deals, entries, actions=actions)
    stays = stage_stays(tables, settings=SETTINGS)
    moved = stays.filter(pl.col("stage") == "discovery")
    got = dict(moved.select("opportunity_id", "verified_by").iter_rows())
    assert got == {
        "byid": "verifier_action_id",
        "edge": "buyer_action",
        "late": None,
        "weak": None,
        "other": None,
        "nulls": "buyer_action",
        "stale": None,
    }
    assert moved["move"].all() and not stays.filter(pl.col("stage") == "prospect")["move"].any()
    table = flow_table(tables, settings=SETTINGS)
    discovery = table.filter(pl.col("stage") == "discovery").row(0, named=True)
    assert (discovery["moves"], discovery["verified"], discovery["verified_recorded"]) == (7, 3, 1)
    assert discovery["verification_rate"] == pytest.approx(3 / 7)
    prospect = table.filter(pl.col("stage") == "prospect").row(0, named=True)
    assert (prospect["moves"], prospect["verified"], prospect["verification_rate"]) == (0, 0, None)


def test_flow_by_team_and_rep_uses_the_deal_owner():
    by_team = flow_table(JOURNEY, settings=SETTINGS, by="team", as_of=day(20))
    prospect = by_team.filter(pl.col("stage") == "prospect").select("team", "reached", "leaked")
    assert prospect.rows() == [("A", 2, 0), ("B", 1, 1)]
    assert by_team.filter(pl.col("team") == "B")["stage"].to_list() == ["prospect", "discovery"]
    by_rep = flow_table(JOURNEY, settings=SETTINGS, by=["rep_id"], as_of=day(20))
    assert by_rep.filter(pl.col("rep_id") == "r2")["blocked"].sum() == 1  # o3, open 19 days
    with pytest.raises(ValueError, match="region2"):
        flow_table(JOURNEY, settings=SETTINGS, by="region2")


def test_flow_accepts_an_enriched_load_and_works_without_activities():
    empty_actions = JOURNEY["buyer_actions"].clear()
    enriched = SimpleNamespace(tables=JOURNEY, actions=empty_actions, settings=SETTINGS)
    assert_frame_equal(
        flow_table(enriched, as_of=day(20)), flow_table(JOURNEY, settings=SETTINGS, as_of=day(20))
    )
    with pytest.raises(ValueError, match="settings"):
        flow_table(JOURNEY)


def test_flow_with_no_stage_history_has_every_stage_and_no_rates():
    tables = dict(JOURNEY, stage_history=JOURNEY["stage_history"].clear())
    table = flow_table(tables, settings=SETTINGS)
    assert table["stage"].to_list() == list(SETTINGS.stages)
    assert table["reached"].sum() == 0 and table["conversion"].null_count() == table.height


def test_flow_does_not_mutate_its_inputs():
    before = {name: frame.clone() for name, frame in JOURNEY.items()}
    flow_table(JOURNEY, settings=SETTINGS, by="team")
    for name, frame in JOURNEY.items():
        assert_frame_equal(frame, before[name])


def test_as_of_defaults_to_the_latest_timestamp_in_the_data():
    stays = stage_stays(JOURNEY, settings=SETTINGS)
    open_stay = stays.filter(pl.col("opportunity_id") == "o3").row(0, named=True)
    assert open_stay["ended_ts"] == day(10)  # o1's close is the latest event
    assert not open_stay["ended"]


def test_leakage_homogeneity_tests_leaks_against_conversions_across_stages():
    even = pl.DataFrame({"leaked": [10, 20, 5], "converted": [90, 180, 45]})
    assert leakage_homogeneity(even)["chi2"] == pytest.approx(0.0)
    assert leakage_homogeneity(even)["dof"] == 2
    skewed = pl.DataFrame({"leaked": [10, 60, 5], "converted": [90, 140, 45]})
    assert leakage_homogeneity(skewed)["p_value"] < 0.001
    assert leakage_homogeneity(even.head(1))["dof"] == 0


# ------------------------------------------------------------------ planted truths and null


@pytest.fixture()
def planted(small_planted_enriched):
    """``(enriched, truth)`` of the shared planted sample (tests/conftest.py)."""
    return small_planted_enriched


@pytest.fixture()
def null(small_null_enriched):
    """``(enriched, truth)`` of the shared null sample (tests/conftest.py)."""
    return small_null_enriched


def test_planted_leaky_stage_has_the_highest_leakage(planted):
    enriched, truth = planted
    flow = flow_table(enriched)
    assert flow.sort("leakage", descending=True)["stage"][0] == truth["leaky_stage"]
    assert leakage_homogeneity(flow)["p_value"] < 0.01


def test_planted_stalled_stage_is_slowest_and_holds_most_blocked_deals(planted):
    enriched, truth = planted
    stalled = truth["stalled_stage"]
    flow = flow_table(enriched)
    assert flow.sort("median_days", descending=True, nulls_last=True)["stage"][0] == stalled
    blocked = blocked_deals(enriched)
    assert blocked.height == flow["blocked"].sum() > 0
    assert (blocked["stage"] == stalled).mean() > 0.5


def test_planted_unverified_stage_has_the_lowest_verification_rate(planted):
    enriched, truth = planted
    moved = flow_table(enriched).filter(pl.col("moves") > 0)
    assert moved.sort("verification_rate")["stage"][0] == truth["unverified_stage"]


def test_null_data_leaks_alike_at_every_stage(null):
    enriched, truth = null
    assert truth["leaky_stage"] is None
    assert leakage_homogeneity(flow_table(enriched))["p_value"] > 0.01


def test_flow_by_team_adds_up_to_the_whole(planted):
    enriched, _ = planted
    whole = flow_table(enriched).select("stage", "reached", "leaked", "moves", "verified")
    parts = (
        flow_table(enriched, by="team")
        .group_by("stage")
        .agg(pl.col("reached", "leaked", "moves", "verified").sum())
    )
    assert_frame_equal(whole, parts, check_row_order=False)


def test_flow_works_on_pipeline_only_data(small_planted, tmp_path, planted):
    from effortlens.enrich import enrich
    from effortlens.loading import load_folder

    for name in ("reps", "opportunities", "stage_history"):
        shutil.copy(small_planted / f"{name}.parquet", tmp_path)
    pipeline = enrich(load_folder(tmp_path), cache_dir=tmp_path / "cache")
    assert pipeline.activities.is_empty()
    alone, full = flow_table(pipeline), flow_table(planted[0])
    same = ["stage", "reached", "converted", "leaked", "median_days", "p90_days", "blocked"]
    assert_frame_equal(alone.select(same), full.select(same))
    assert (alone["verified"] == alone["verified_recorded"]).all()  # no actions to infer from


def test_stage_flags_name_the_planted_leak_and_stall_and_nothing_else(planted):
    enriched, truth = planted
    flags = stage_flags(enriched)
    assert flags.filter("leaky")["stage"].to_list() == [truth["leaky_stage"]]
    assert flags.filter("stalled")["stage"].to_list() == [truth["stalled_stage"]]
    leaky = flags.filter("leaky").row(0, named=True)
    assert leaky["leak_ratio"] >= 1.5 and leaky["leak_p"] < 0.05


def test_no_stage_stands_out_on_null_data(null):
    enriched, truth = null
    assert truth["leaky_stage"] is None and truth["stalled_stage"] is None
    flags = stage_flags(enriched)
    assert not flags["leaky"].any() and not flags["stalled"].any(), flags
    # the largest leakage is still some stage's: that alone must not name it
    assert flags["leak_ratio"].max() > 1


def test_stage_flags_need_the_effect_size_as_well_as_the_test(planted):
    enriched, _ = planted
    strict = stage_flags(enriched, min_leak_ratio=100.0, min_stay_ratio=100.0)
    assert not strict["leaky"].any() and not strict["stalled"].any()
    assert (strict["leak_p"] < 0.05).any()  # the test alone still rejects


# ------------------------------------- a page's stays: made once, masked per filter (issue 13)


def _masked_tables(tables: dict, deals: np.ndarray, verifiers: np.ndarray) -> dict:
    """``tables`` with the deals and the buyer actions the masks keep (a filter's tables)."""
    opps = tables["opportunities"].filter(pl.Series(deals))
    return dict(
        tables,
        opportunities=opps,
        stage_history=tables["stage_history"].join(
            opps.select("opportunity_id"), on="opportunity_id", how="semi", maintain_order="left"
        ),
        buyer_actions=tables["buyer_actions"].filter(pl.Series(verifiers)),
    )


def test_masked_stays_verify_as_the_filtered_actions_do():
    tables = _tables(
        {"a": ("r1", "open", None), "b": ("r1", "won", 30), "c": ("r2", "lost", 25)},
        [
            ("a", "prospect", 0, None),
            ("a", "discovery", 20, None),
            ("b", "prospect", 0, None),
            ("b", "discovery", 10, None),
            ("b", "proposal", 20, "x1"),
            ("c", "prospect", 0, None),
            ("c", "discovery", 12, None),
        ],
        actions=[
            ("v1", "a", 19, "meeting_held", True),  # backs a's move, if kept
            ("v2", "a", 18, "mutual_plan", True),  # so does this one
            ("v3", "b", 9, "mutual_plan", True),  # backs b's move to discovery
            ("v4", "b", 15, "reply", False),  # not a verifier
            ("v5", "c", 11, "meeting_held", True),
        ],
    )
    index = stay_index(tables, settings=SETTINGS)
    every = np.ones(tables["opportunities"].height, dtype=bool)
    masks = [  # (deals, verifiers): all; one of a's two verifiers; none; without deal b
        (None, None),
        (every, np.array([True, False, True, True, True])),
        (every, np.zeros(5, dtype=bool)),
        (np.array([True, False, True]), np.array([False, True, False, True, True])),
    ]
    verified = []
    for deals, verifiers in masks:
        stays = stays_under(index, deals=deals, verifiers=verifiers)
        kept = tables if deals is None else _masked_tables(tables, deals, verifiers)
        expected = stage_stays(kept, settings=SETTINGS, by="rep_id")
        assert stays.as_of == expected["ended_ts"].max()
        got = stays.frame.with_columns(pl.col("stage", "outcome", "verified_by").cast(pl.String))
        assert_frame_equal(got, expected.drop("ended_ts", "verifier_action_id"))
        verified.append(int(got["verified"].sum()))
        for by in (None, "team"):
            assert_frame_equal(
                flow_table(kept, settings=SETTINGS, by=by, stays=stays),
                flow_table(kept, settings=SETTINGS, by=by),
            )
    assert verified == [4, 4, 1, 2]  # a, b (twice: recorded and by v3), c; x1 alone; ...


def _stay_tables(enriched) -> dict:
    """The tables a stay index is made of, from a planted load's enriched facts."""
    return {
        "opportunities": enriched.tables["opportunities"],
        "stage_history": enriched.tables["stage_history"],
        "reps": enriched.reps,
        "buyer_actions": enriched.actions,
    }


def test_masked_stays_give_the_flow_of_the_filtered_tables(planted):
    enriched, _ = planted
    tables = _stay_tables(enriched)
    index = stay_index(tables, settings=enriched.settings)
    rng = np.random.default_rng(13)
    for share in (1.0, 0.5, 0.1):
        deals = rng.random(tables["opportunities"].height) < share
        verifiers = rng.random(tables["buyer_actions"].height) < share
        kept = _masked_tables(tables, deals, verifiers)
        stays = stays_under(index, deals=deals, verifiers=verifiers)
        read = {"settings": enriched.settings, "stays": stays}
        for by in (None, "team"):  # to the bit: the numpy counts and quantiles too
            assert_frame_equal(
                flow_table(kept, by=by, **read),
                flow_table(kept, settings=enriched.settings, by=by),
                check_exact=True,
            )
        assert_frame_equal(
            stage_flags(kept, **read),
            stage_flags(kept, settings=enriched.settings),
            check_exact=False,
            rel_tol=1e-9,
        )
        assert_frame_equal(
            blocked_deals(kept, **read),
            blocked_deals(kept, settings=enriched.settings),
            check_exact=True,
        )


def _few_and_masked(monkeypatch, index, deals, verifiers):
    """``stays_under`` of a few kept deals read by their runs, and the same with every stay
    masked (a few-deals threshold no selection meets), each checked to take its path."""
    import effortlens.flow as flow

    taken: list[str] = []
    few_path = flow._few_stays_under  # noqa: SLF001  (the path the spy counts)

    def spy(*args, **kwargs):
        taken.append("few")
        return few_path(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(flow, "_few_stays_under", spy)
        few = stays_under(index, deals=deals, verifiers=verifiers)
        assert taken == ["few"], "the kept deals are few: read by their runs"
        patched.setattr(flow, "_FEW_DEALS", 10**9)  # never few: every stay masked
        masked = stays_under(index, deals=deals, verifiers=verifiers)
        assert taken == ["few"], "the masked reference does not take the few path"
    return few, masked


def test_a_few_kept_deals_read_by_their_runs_give_what_masking_every_stay_gives(
    planted, monkeypatch
):
    """A team's or a rep's deals (at most one deal in _FEW_DEALS) are read by position; their
    stays, runs, Kaplan-Meier order and blocked candidates equal the masked ones, and the
    flow, flags and blocked deals those of the filtered tables (to the bit)."""
    enriched, _ = planted
    tables = _stay_tables(enriched)
    index = stay_index(tables, settings=enriched.settings)
    deals_n, actions_n = tables["opportunities"].height, tables["buyer_actions"].height
    rng = np.random.default_rng(7)
    one = np.zeros(deals_n, dtype=bool)
    one[int(np.flatnonzero(index.run_outcome == 4)[0])] = True  # one open deal
    for deals, verifiers in (
        (rng.random(deals_n) < 0.03, rng.random(actions_n) < 0.5),
        (rng.random(deals_n) < 0.01, None),
        (one, np.ones(actions_n, dtype=bool)),
    ):
        few, masked = _few_and_masked(monkeypatch, index, deals, verifiers)
        assert_frame_equal(few.frame, masked.frame, check_exact=True)
        assert few.as_of == masked.as_of
        for got, expected in zip(few.runs, masked.runs, strict=True):
            np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(few.by_duration, masked.by_duration)
        np.testing.assert_array_equal(few.current, masked.current)
        np.testing.assert_array_equal(few.recorded, masked.recorded)
        kept = _masked_tables(
            tables, deals, np.ones(actions_n, dtype=bool) if verifiers is None else verifiers
        )
        read = {"settings": enriched.settings, "stays": few}
        assert_frame_equal(
            flow_table(kept, **read),
            flow_table(kept, settings=enriched.settings),
            check_exact=True,
        )
        assert_frame_equal(
            blocked_deals(kept, **read),
            blocked_deals(kept, settings=enriched.settings),
            check_exact=True,
        )
        assert_frame_equal(
            stage_flags(kept, **read),
            stage_flags(kept, settings=enriched.settings),
            check_exact=False,
            rel_tol=1e-9,
        )
    assert few.frame["opportunity_id"].n_unique() == 1 and len(few.current) == 1


def test_a_few_kept_deals_of_a_mixed_stage_path_give_what_masking_gives(planted, monkeypatch):
    """A third of the deals' stage history derived (a mixed path): a few kept deals read by
    their runs leave the derived stays out of the Kaplan-Meier order and the blocked
    candidates as masking does, and the flow and blocked deals equal the event path's."""
    enriched, _ = planted
    ids = enriched.tables["opportunities"]["opportunity_id"]
    derived = ids.gather(np.arange(0, len(ids), 3)).implode()
    history = enriched.tables["stage_history"].with_columns(
        derived=pl.col("opportunity_id").is_in(derived)
    )
    tables = {
        "opportunities": enriched.tables["opportunities"],
        "stage_history": history,
        "reps": enriched.reps,
        "buyer_actions": enriched.actions,
    }
    index = stay_index(tables, settings=enriched.settings)
    rng = np.random.default_rng(3)
    for share in (0.03, 0.01):
        deals = rng.random(len(ids)) < share
        verifiers = rng.random(tables["buyer_actions"].height) < 0.5
        few, masked = _few_and_masked(monkeypatch, index, deals, verifiers)
        assert few.frame["derived"].any() and not few.frame["derived"].all()
        assert_frame_equal(few.frame, masked.frame, check_exact=True)
        np.testing.assert_array_equal(few.by_duration, masked.by_duration)
        np.testing.assert_array_equal(few.current, masked.current)
        kept = _masked_tables(tables, deals, verifiers)
        read = {"settings": enriched.settings, "stays": few}
        assert_frame_equal(
            flow_table(kept, stage_path="mixed", **read),
            flow_table(kept, settings=enriched.settings, stage_path="mixed"),
            check_exact=True,
        )
        assert_frame_equal(
            blocked_deals(kept, **read),
            blocked_deals(kept, settings=enriched.settings),
            check_exact=True,
        )


def test_masked_stays_refuse_a_stage_path_their_index_was_not_made_for():
    plain = stay_index(JOURNEY, settings=SETTINGS)
    derived = stay_index(JOURNEY, settings=SETTINGS, assume_derived=True)
    assert not plain.assume_derived and derived.assume_derived
    assert stays_under(derived).assume_derived and not stays_under(plain).assume_derived
    # the index made for it gives the event path's derived flow, which differs: o1 skipped
    # evaluation, and a derived path reaches only the stages it entered
    as_derived = flow_table(JOURNEY, settings=SETTINGS, stage_path="derived")
    assert_frame_equal(
        flow_table(JOURNEY, settings=SETTINGS, stage_path="derived", stays=stays_under(derived)),
        as_derived,
    )
    as_recorded = flow_table(JOURNEY, settings=SETTINGS, stage_path="recorded")
    assert as_derived["reached"].to_list() != as_recorded["reached"].to_list()
    with pytest.raises(ValueError, match="made without assume_derived"):
        flow_table(JOURNEY, settings=SETTINGS, stage_path="derived", stays=stays_under(plain))
    for path in ("recorded", "mixed", None):  # None: read from the history (recorded)
        with pytest.raises(ValueError, match="made with assume_derived"):
            flow_table(JOURNEY, settings=SETTINGS, stage_path=path, stays=stays_under(derived))
    assert_frame_equal(
        flow_table(JOURNEY, settings=SETTINGS, stage_path="recorded", stays=stays_under(plain)),
        as_recorded,
    )
