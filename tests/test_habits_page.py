"""The habits page on a build (issue 13 §2): whether a filter keeps any customer-facing effort
is read from the touch facts (not a scan of every activity), and what the page draws is kept
per filter. Both must say what the event path says."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from filter_support import reader_filters

from effortlens.enrich import events, has_rows, precomputed
from effortlens.filters import Filter


@pytest.fixture(scope="module")
def page(tiny_planted):
    from effortlens_widgets.apps.habits import habits_app

    page = habits_app(data_dir=tiny_planted)
    assert precomputed(page.state.enriched, "touches") is not None  # read from a build
    return page


def _filters(enriched) -> list[Filter]:
    """The reader's filters, one activity type, a period after the data, an unknown rep."""
    end = enriched.daily["day"].max()
    kinds = enriched.daily["activity_type"].cast(pl.String).unique().sort().to_list()
    return [
        *reader_filters(enriched),
        Filter(activity_types=(kinds[0],)),
        Filter(start=end + dt.timedelta(days=30)),  # after the data: nothing
        Filter(reps=("no such rep",)),  # nothing
    ]


def test_the_effort_check_reads_the_touch_facts_as_the_events_say(page):
    from effortlens_widgets.views import habits_numbers, has_touches

    state = page.state
    said = []
    for flt in _filters(state.enriched):
        state.filter = flt
        expected = has_rows(events(state.view, "activities").filter(pl.col("is_customer_facing")))
        assert has_touches(state, state.view) == expected, flt
        assert page.views[0].problem == ""  # drawn, or a message in words
        drawn = habits_numbers(state, state.view, no_effort=page.views[0].no_effort_message)
        assert ("message" not in drawn) == expected, flt  # the page says it has no effort
        said.append(expected)
    assert True in said and False in said  # both answers were checked


def test_a_filter_returned_to_is_drawn_from_memory(page):
    from effortlens_widgets.views import habits_numbers

    state, view = page.state, page.views[0]
    team_filter = _filters(state.enriched)[1]
    state.filter = team_filter
    first = habits_numbers(state, state.view, no_effort=view.no_effort_message)
    state.filter = Filter()
    everything = habits_numbers(state, state.view, no_effort=view.no_effort_message)
    assert everything is not first
    assert everything["timing"]["activities"].sum() > first["timing"]["activities"].sum()
    state.filter = team_filter
    assert habits_numbers(state, state.view, no_effort=view.no_effort_message) is first
    assert view.frames["timing"] is first["timing"]
