"""The positive-deviance page keeps the tables of the selections it drew (issue 13: a filter
returned to is drawn without computing its statistics again)."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from effortlens.filters import Filter


def test_a_selection_returned_to_is_drawn_from_the_tables_kept_for_it(tiny_planted, monkeypatch):
    from effortlens_widgets import views
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app

    computed: list[str] = []

    def counted(name, function):
        def call(*args, **kwargs):
            computed.append(name)
            return function(*args, **kwargs)

        return call

    monkeypatch.setattr(views, "rep_deviance", counted("deviance", views.rep_deviance))
    for name in ("what_differs", "what_differs_in"):  # from the events or the build
        monkeypatch.setattr(views, name, counted("differs", getattr(views, name)))
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
