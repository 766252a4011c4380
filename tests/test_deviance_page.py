"""The positive-deviance page keeps the tables of the selections it drew (issue 13: a filter
returned to is drawn without computing its statistics again)."""

from __future__ import annotations

import functools

import polars as pl
from polars.testing import assert_frame_equal

from effortlens.filters import Filter


def _counted(computed: list[str], name: str, function):
    """``function``, noting ``name`` in ``computed`` at each call."""

    def call(*args, **kwargs):
        computed.append(name)
        return function(*args, **kwargs)

    return call


def test_a_selection_returned_to_is_drawn_from_the_tables_kept_for_it(tiny_planted, monkeypatch):
    from effortlens_widgets import views
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app

    computed: list[str] = []
    counted = functools.partial(_counted, computed)

    monkeypatch.setattr(views, "rep_deviance", counted("deviance", views.rep_deviance))
    for name in ("what_differs", "what_differs_in"):  # from the events or the build
        monkeypatch.setattr(views, name, counted("differs", getattr(views, name)))
    monkeypatch.setattr(views.Deviance, "WORK_AHEAD", False)  # the changes' own counts
    page = positive_deviance_app(data_dir=tiny_planted)
    view = page.views[0]
    everything = {name: frame.clone() for name, frame in view.frames.items()}
    assert {"deviance", "what_differs"} <= set(everything)
    team = page.state.enriched.reps["team"].drop_nulls().sort()[0]
    page.state.filter = Filter(teams=(team,))
    assert not view.frames["deviance"].equals(everything["deviance"])  # the team's reps only
    page.state.filter = Filter()
    # everything, then the team: each computed once; going back to everything recomputes nothing
    assert computed == ["deviance", "differs"] * 2
    for name, frame in everything.items():  # and draws the same tables
        assert_frame_equal(view.frames[name], frame)
    view.metric = "win_rate"  # another metric is another selection
    assert computed[4] == "deviance"
    assert view.frames["deviance"].filter(pl.col("volume") > 0).height > 0


def test_the_page_counts_each_reps_responses_as_the_events_do_under_every_filter(tiny_planted):
    """The page counts a filter's responses from the load's running counts per rep and day
    (no day row read): its deviance table equals the event path's on the same filtered view
    (none, a team, periods with and without it, one rep, open periods, a late start)."""
    import datetime as dt

    from filter_support import as_strings, reader_filters

    from effortlens.deviance import (
        response_count_index,
        response_counts,
        response_counts_between,
    )
    from effortlens.filters import filter_enriched
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app

    page = positive_deviance_app(data_dir=tiny_planted)
    enriched = page.state.enriched
    last = enriched.daily["day"].max()
    filters = [
        *reader_filters(enriched),
        Filter(start=last - dt.timedelta(days=2), end=last),
        Filter(start=last + dt.timedelta(days=1)),  # nothing
        Filter(start=last, end=last - dt.timedelta(days=5)),  # end before start
    ]
    assert enriched.is_lazy  # read from a build: the page counts from its running counts
    grouped = response_count_index(enriched.daily)
    runs = response_count_index(enriched.daily, rep_ids=enriched.reps["rep_id"])
    assert runs.rep_ids.equals(enriched.reps["rep_id"].unique().sort())  # the build's order
    drawn = 0
    for flt in filters:
        page.state.filter = flt
        view = filter_enriched(enriched, flt)
        events = response_counts(view.lazy("activities").collect())
        reps = view.reps["rep_id"] if flt.teams or flt.reps else None
        for index in (grouped, runs):  # grouped by rep and day, or each rep's run of rows
            counted = response_counts_between(index, start=flt.start, end=flt.end, reps=reps)
            assert_frame_equal(counted, events, check_dtypes=False)
        shown = page.views[0].frames.get("deviance")
        if shown is not None and events.height:
            expected = rep_deviance_of(view.replace(activities=view.lazy("activities").collect()))
            assert_frame_equal(as_strings(shown), as_strings(expected.drop("overdispersion")))
            drawn += 1
    assert drawn >= 4


def rep_deviance_of(events_view):
    """The event path: counts from the view's activities (facts enriched in memory)."""
    from effortlens.deviance import rep_deviance
    from effortlens.measures import response_counts

    counts = response_counts(events_view.activities)
    return rep_deviance(events_view, counts=counts)


def test_everything_is_kept_however_many_selections_were_drawn_since(tiny_planted, monkeypatch):
    """The page's first draw, everything (its dearest at scale: what differs compares every
    positive deviant), stays kept while older selections are forgotten past MEMO_SIZE."""
    import datetime as dt

    from effortlens_widgets import views
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app

    computed: list[str] = []
    original = views.rep_deviance

    def counted(*args, **kwargs):
        computed.append("deviance")
        return original(*args, **kwargs)

    monkeypatch.setattr(views, "rep_deviance", counted)
    monkeypatch.setattr(views.Deviance, "WORK_AHEAD", False)  # the change's own counts
    page = positive_deviance_app(data_dir=tiny_planted)
    view = page.views[0]
    everything = view.frames["deviance"].clone()
    last = page.state.enriched.daily["day"].max()
    periods = [Filter(start=last - dt.timedelta(days=30 + n), end=last) for n in range(14)]
    assert len(periods) > view.MEMO_SIZE
    for flt in periods:
        page.state.filter = flt
    assert computed == ["deviance"] * (1 + len(periods))
    page.state.filter = Filter()  # everything: kept, drawn from memory
    assert len(computed) == 1 + len(periods)
    assert_frame_equal(view.frames["deviance"], everything)
    page.state.filter = periods[0]  # the oldest period: forgotten, computed again
    assert len(computed) == 2 + len(periods)


def _ahead_done(timeout: float = 120.0) -> None:
    """Wait for the pages' presets worked ahead (their background threads) to be done."""
    import threading

    for thread in threading.enumerate():
        if thread.name == "effortlens-deviance-ahead":
            thread.join(timeout)
            assert not thread.is_alive()


def test_the_presets_worked_ahead_are_the_tables_a_change_computes(tiny_planted, monkeypatch):
    """After the first draw, each period preset's deviance and what differs are worked out in
    the background: a change to the preset then computes nothing and draws the same tables
    as a page that computes them at the change."""
    import effortlens.deviance.differs as differs
    from effortlens_widgets import views
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app
    from effortlens_widgets.controls import PERIODS

    monkeypatch.setattr(views.Deviance, "AHEAD_QUIET", 0.0)
    page = positive_deviance_app(data_dir=tiny_planted)
    view = page.views[0]
    _ahead_done()
    presets = [label for label, days in PERIODS.items() if days is not None]
    assert {days for days in PERIODS.values() if days} == set(view.AHEAD_DAYS)
    assert {k[0] for k in view.worked_ahead} == {"deviance", "differs"}
    assert len(view.worked_ahead) == 2 * len(presets)
    computed: list[str] = []
    counted = functools.partial(_counted, computed)

    monkeypatch.setattr(views, "rep_deviance", counted("deviance", views.rep_deviance))
    for module, name in [
        (views, "what_differs"),
        (views, "what_differs_in"),
        (differs, "what_differs_preset"),
        (differs, "what_differs_coded"),
    ]:
        monkeypatch.setattr(module, name, counted("differs", getattr(module, name)))
    drawn = {}
    for label in presets:
        page.filter_bar.set_period(label)
        assert view.problem == ""
        drawn[label] = {name: frame.clone() for name, frame in view.frames.items()}
        assert "deviance" in drawn[label], label
    assert sum("what_differs" in frames for frames in drawn.values()) >= 2  # deviants compared
    assert computed == []  # every preset's tables were ready
    page.filter_bar.team = page.state.enriched.reps["team"].drop_nulls().sort()[0]
    assert computed[0] == "deviance"  # a preset with a team: computed at the change

    monkeypatch.undo()  # the functions as they are; nothing worked ahead
    monkeypatch.setattr(views.Deviance, "WORK_AHEAD", False)
    other = positive_deviance_app(data_dir=tiny_planted)
    assert other.views[0].worked_ahead == ()
    for label in presets:
        other.filter_bar.set_period(label)
        frames = other.views[0].frames
        assert frames.keys() == drawn[label].keys(), label
        for name, frame in drawn[label].items():
            assert_frame_equal(frames[name], frame)


def test_a_new_load_lets_go_of_the_last_ones_data(tiny_planted):
    """The filter bar's last day and the deviance page's kept tables and marks are dropped
    when another load arrives, not at the next period pick or draw."""
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app

    page = positive_deviance_app(data_dir=tiny_planted)
    view, bar = page.views[0], page.filter_bar
    _ahead_done()
    bar.set_period("Last 26 weeks")
    old = page.state.enriched
    assert bar.held_loads == [old] and view.held_loads == [old] and view.worked_ahead
    page.state.enriched = None  # no load: nothing of the last one is kept
    assert bar.held_loads == [] and view.held_loads == [] and view.worked_ahead == ()
    page.state.enriched = old
    bar.set_period("All data")  # no period asked: the last day is not looked up again
    assert bar.held_loads == [old]
    data = page.state.data
    page.state.data = None
    page.state.data = data  # a new load of the same data: a new Enriched
    new = page.state.enriched
    assert new is not None and new is not old
    assert bar.held_loads == []  # dropped at the load, not at the next period pick
    assert view.held_loads == [new]  # the new load's first draw: its own files and tables


def _preset_days(keys) -> set[int]:
    """The periods (days) of worked-ahead memo keys."""
    return {(key[1].end - key[1].start).days + 1 for key in keys}


def test_the_presets_are_worked_ahead_only_once_the_page_is_still(tiny_planted, monkeypatch):
    """Beyond the presets of the first draw, nothing is worked ahead while the page has drawn
    within AHEAD_QUIET seconds; once it has been still that long, every preset is."""
    import time

    from effortlens_widgets import views
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app

    monkeypatch.setattr(views.Deviance, "AHEAD_QUIET", 3600.0)
    page = positive_deviance_app(data_dir=tiny_planted)
    view = page.views[0]
    time.sleep(0.5)
    first = view.worked_ahead
    assert _preset_days(first) == set(view.AHEAD_DAYS[: view.AHEAD_IN_FIRST_DRAW])
    page.filter_bar.set_period("Last 13 weeks")  # computed at the change, as without
    assert view.problem == "" and view.worked_ahead == first
    monkeypatch.setattr(views.Deviance, "AHEAD_QUIET", 0.0)
    _ahead_done()
    assert len(view.worked_ahead) == 2 * len(view.AHEAD_DAYS)
    assert _preset_days(view.worked_ahead) == set(view.AHEAD_DAYS)


def test_the_dearest_presets_are_ready_for_a_change_right_after_the_first_draw(
    tiny_planted, monkeypatch
):
    """A change made before the page has been still (a quick viewer, a script) finds the
    first draw's presets ("Last 26 weeks" and "Last 52 weeks": at 10m 61-93 CPU ms each at
    the change) worked out: it computes neither their deviance nor what differs, and draws
    the tables a page computing them at the change draws."""
    import effortlens.deviance.differs as differs
    from effortlens_widgets import views
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app

    monkeypatch.setattr(views.Deviance, "AHEAD_QUIET", 3600.0)  # the background never works
    page = positive_deviance_app(data_dir=tiny_planted)
    view = page.views[0]
    assert view.AHEAD_DAYS[: view.AHEAD_IN_FIRST_DRAW] == (182, 364)
    assert {k[0] for k in view.worked_ahead} == {"deviance", "differs"}
    computed: list[str] = []
    counted = functools.partial(_counted, computed)
    monkeypatch.setattr(views, "rep_deviance", counted("deviance", views.rep_deviance))
    for module, name in [
        (views, "what_differs"),
        (views, "what_differs_in"),
        (differs, "what_differs_preset"),
        (differs, "what_differs_coded"),
    ]:
        monkeypatch.setattr(module, name, counted("differs", getattr(module, name)))
    drawn = {}
    for label in ("Last 26 weeks", "Last 52 weeks"):
        page.filter_bar.set_period(label)
        assert view.problem == "" and "what_differs" in view.frames, label
        drawn[label] = {name: frame.clone() for name, frame in view.frames.items()}
    assert computed == []
    page.filter_bar.set_period("Last 13 weeks")  # not of the first draw: computed now
    assert computed[:2] == ["deviance", "differs"]  # (a preset file, then the codes)

    monkeypatch.undo()
    monkeypatch.setattr(views.Deviance, "WORK_AHEAD", False)
    other = positive_deviance_app(data_dir=tiny_planted)
    assert other.views[0].worked_ahead == ()
    for label, frames in drawn.items():
        other.filter_bar.set_period(label)
        assert other.views[0].frames.keys() == frames.keys(), label
        for name, frame in frames.items():
            assert_frame_equal(other.views[0].frames[name], frame)
