"""The buyer-journey page on a build (issue 13 §2): its deals, stage history and verifier facts
are held in memory once per load and filtered there, and what it draws is kept per (filter,
split). Both must give exactly what the flow functions give on the page's filtered view."""

from __future__ import annotations

import datetime as dt

import pytest
from filter_support import as_strings, reader_filters
from polars.testing import assert_frame_equal

from effortlens.enrich import precomputed
from effortlens.filters import Filter, filter_enriched
from effortlens.findings import has_buyer_evidence
from effortlens.flow import (
    blocked_deals,
    flow_table,
    stage_flags,
    stage_stays,
    with_verifiers,
)
from effortlens.measures import deal_rates


@pytest.fixture(scope="module")
def page(tiny_planted):
    from effortlens_widgets.apps.buyer_journey import buyer_journey_app

    page = buyer_journey_app(data_dir=tiny_planted)
    assert precomputed(page.state.enriched, "verifiers") is not None  # read from a build
    return page


def test_the_page_filters_its_deals_in_memory_as_the_build_path_does(page):
    import polars as pl

    from effortlens_widgets.views import (
        _deal_tables,  # noqa: PLC2701
        journey_inputs,
        journey_numbers,
        page_coverage,
    )

    state, journey = page.state, page.views[0]
    enriched = state.enriched
    ids = _deal_tables(state)["deal_ids"]  # the page reads deals by integer codes
    assert _deal_tables(state)["stays"] is not None  # every deal's stays, masked per filter

    owners = _deal_tables(state)["owners"]["rep_id"]  # and owners by the row of their rep

    def decoded(frame, *, rep_codes: bool = False):
        assert frame["opportunity_id"].dtype == pl.UInt32
        frame = frame.with_columns(opportunity_id=ids.gather(frame["opportunity_id"]))
        return frame.with_columns(rep_id=owners.gather(frame["rep_id"])) if rep_codes else frame

    def flow_as_of(view):  # the flow's default as_of: the latest timestamp of the deals
        opps = view.tables["opportunities"]
        latest = [
            view.tables["stage_history"]["entered_ts"].max(),
            opps["created_ts"].max(),
            opps["close_ts"].max(),
        ]
        return max(t for t in latest if t is not None)

    path = page_coverage(state).stage_path
    compared = {"verified": 0, "blocked": 0, "censored": 0}
    for flt in reader_filters(enriched):
        state.filter = flt
        view = with_verifiers(filter_enriched(enriched, flt), enriched, flt)
        for by in (None, "team"):
            journey.by = by
            expected = flow_table(view, by=by, stage_path=path)
            assert_frame_equal(as_strings(journey.frames["flow"]), as_strings(expected))
        journey.by = None
        inputs = journey_inputs(state, state.view)
        assert inputs["evidence"] == has_buyer_evidence(view)
        assert deal_rates(inputs["deals"]) == deal_rates(view.tables["opportunities"])
        stays = inputs["stays"]
        assert stays.as_of == flow_as_of(view)  # censored at the filtered deals' latest time
        expected_stays = stage_stays(view, by="rep_id").drop("ended_ts", "verifier_action_id")
        as_text = pl.col("stage", "outcome", "verified_by").cast(pl.String)  # categories there
        assert_frame_equal(
            decoded(stays.frame, rep_codes=True).with_columns(as_text), expected_stays
        )
        compared["verified"] += int(expected_stays["verified"].sum())
        compared["censored"] += int((~expected_stays["ended"]).sum())
        drawn = journey_numbers(state, state.view, by=None)
        assert_frame_equal(drawn["flags"], stage_flags(view), check_exact=False, rel_tol=1e-9)
        blocked = blocked_deals(view)
        compared["blocked"] += blocked.height
        assert_frame_equal(
            decoded(
                blocked_deals(inputs["source"], stays=stays, settings=enriched.settings),
                rep_codes=True,
            ),
            blocked,
        )  # the same order too
        shown = journey.frames.get("blocked_deals")
        assert (shown.height if shown is not None else 0) == blocked.height
        if blocked.height:  # the deals' own ids shown
            assert sorted(shown["opportunity_id"]) == sorted(blocked["opportunity_id"])
        kpis = journey.frames["deal_kpis"]
        assert kpis.height == 4
    assert all(compared.values()), compared  # each was compared on some rows


def test_a_filter_returned_to_is_drawn_from_memory(page):
    from effortlens_widgets.views import journey_numbers

    state = page.state
    team_filter = reader_filters(state.enriched)[1]
    state.filter = team_filter
    first = journey_numbers(state, state.view, by=None)
    state.filter = Filter()
    everything = journey_numbers(state, state.view, by=None)
    assert everything is not first
    assert everything["flow"]["reached"].sum() > first["flow"]["reached"].sum()
    state.filter = team_filter
    assert journey_numbers(state, state.view, by=None) is first  # kept, not recomputed
    assert journey_numbers(state, state.view, by="team") is not first  # another split
    for days in range(1, 12):  # more filters than are kept: everything stays, the team goes
        state.filter = Filter(start=state.enriched.daily["day"].max() - dt.timedelta(days=days))
        journey_numbers(state, state.view, by=None)
    state.filter = Filter()
    assert journey_numbers(state, state.view, by=None) is everything
    state.filter = team_filter
    assert journey_numbers(state, state.view, by=None) is not first
