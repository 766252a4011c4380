"""Widget behaviour, headless: set traits and controls, assert state and that the views updated."""

from __future__ import annotations

import base64
import json
import re

import ipywidgets as widgets
import polars as pl
import pytest

from effortlens_widgets.app import App
from effortlens_widgets.apps.buyer_journey import buyer_journey_app
from effortlens_widgets.apps.habits import habits_app
from effortlens_widgets.apps.interventions import interventions_app
from effortlens_widgets.apps.organisation import organisation_app
from effortlens_widgets.apps.pattern_session import STEPS, pattern_session_app
from effortlens_widgets.apps.positive_deviance import positive_deviance_app
from effortlens_widgets.apps.rep_mirror import query_rep, rep_mirror_app
from effortlens_widgets.apps.return_on_effort import return_on_effort_app
from effortlens_widgets.panels import ChartPanel, Kpi

FACTORIES = [
    return_on_effort_app,
    positive_deviance_app,
    buyer_journey_app,
    habits_app,
    interventions_app,
    organisation_app,
    rep_mirror_app,
    pattern_session_app,
]


def _walk(widget, out=None) -> list:
    out = [] if out is None else out
    out.append(widget)
    for child in getattr(widget, "children", ()) or ():
        _walk(child, out)
    return out


def _html(app) -> str:
    return "\n".join(w.value for w in _walk(app) if isinstance(w, widgets.HTML))


def _charts(app) -> list:
    return [w for w in _walk(app) if type(w).__name__ == "JupyterChart"]


def _page_text(app) -> str:
    """Everything the page would send to a browser: HTML, chart specs with data, options."""
    parts = [_html(app)]
    parts += [json.dumps(c.spec, default=str) for c in _charts(app)]
    for w in _walk(app):
        if isinstance(w, widgets.Dropdown):
            parts.append(json.dumps([str(o) for o in w.options]))
    for w in _walk(app):  # downloads are data: links; their content counts too
        if isinstance(w, widgets.HTML):
            for encoded in re.findall(r"base64,([A-Za-z0-9+/=]+)", w.value):
                parts.append(base64.b64decode(encoded).decode("utf-8", "replace"))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def cache(tmp_path_factory, monkeypatch_module=None):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _cache_env(monkeypatch, cache):
    monkeypatch.setenv("EFFORTLENS_CACHE", str(cache))


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_every_app_draws_charts_and_no_error(factory, small_planted):
    app = factory(data_dir=small_planted)
    assert app.state.error == ""
    assert 'class="el-error"' not in _html(app)
    assert _charts(app), f"{factory.__name__} shows no chart"
    for chart in _charts(app):
        for values in _inline_datasets(chart.spec):
            assert len(values) <= 5000  # charts never receive raw events


def _inline_datasets(spec: dict) -> list[list]:
    return [v for v in (spec.get("datasets") or {}).values()]


def test_filter_change_updates_every_view(small_planted):
    app = return_on_effort_app(data_dir=small_planted)
    cards_before = app.views[0]._cards.value
    team = app.filter_bar._dropdowns["team"].options[1]
    app.filter_bar._dropdowns["team"].value = team
    assert app.state.filter.teams == (team,)
    assert set(app.state.view.daily["team"].unique()) == {team}
    assert app.views[0]._cards.value != cards_before
    slice_panel = app.views[2]
    slice_panel._slice.value = "Team"
    table = re.findall(r"base64,([A-Za-z0-9+/=]+)", slice_panel._roe._csv.value)[0]
    csv = pl.read_csv(base64.b64decode(table))
    assert csv["team"].to_list() == [team]


def test_period_filter_gives_kpi_change_against_previous_period(small_planted):
    app = return_on_effort_app(data_dir=small_planted)
    assert "no previous period" in app.views[0]._cards.value
    app.filter_bar.set_period("Last 13 weeks")
    flt = app.state.filter
    assert (flt.end - flt.start).days == 90
    assert "vs previous period" in app.views[0]._cards.value


def test_anonymise_hides_every_real_name_everywhere(small_planted):
    reps = pl.read_parquet(small_planted / "reps.parquet")
    app = positive_deviance_app(data_dir=small_planted)
    names = [n for n in reps["rep_name"].to_list() if n]
    assert any(n in _page_text(app) for n in names)  # names are shown before
    app.state.anonymise = True
    text = _page_text(app)
    leaked = [n for n in names if n in text]
    assert leaked == []
    assert "Rep " in text


def test_pattern_session_steps_and_hides_names_by_default(small_planted):
    app = pattern_session_app(data_dir=small_planted)
    session = app.views[0]
    assert app.state.anonymise is True
    assert session._back.disabled and not session._next.disabled
    titles = []
    for _ in STEPS:
        titles.append(re.search(r"<h2>\d+\. ([^<]+)</h2>", session._header.value).group(1))
        session._next.click()
    assert titles == [s.title.replace("'", "&#x27;") for s in STEPS]
    assert session.step == len(STEPS) - 1 and session._next.disabled
    session._back.click()
    assert session.step == len(STEPS) - 2
    reps = pl.read_parquet(small_planted / "reps.parquet")
    text = _page_text(app)
    assert not [n for n in reps["rep_name"].to_list() if n and n in text]


def test_rep_mirror_opens_on_the_rep_in_the_url(small_planted, monkeypatch):
    reps = pl.read_parquet(small_planted / "reps.parquet").filter(pl.col("exit_date").is_null())
    wanted = reps["rep_id"][5]
    monkeypatch.setenv("QUERY_STRING", f"rep={wanted}&x=1")
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    assert query_rep() == wanted
    app = rep_mirror_app(data_dir=small_planted)
    mirror = app.views[0]
    assert mirror._rep.value == wanted
    name = reps.filter(pl.col("rep_id") == wanted)["rep_name"][0]
    assert name in mirror._finding.value
    other = reps["rep_id"][6]
    mirror._rep.value = other
    assert reps.filter(pl.col("rep_id") == other)["rep_name"][0] in mirror._finding.value


def test_clicking_a_rep_in_the_funnel_compares_that_rep(small_planted):
    truth = json.loads((small_planted / "truth.json").read_text())
    app = positive_deviance_app(data_dir=small_planted)
    view = app.views[0]
    rep = truth["positive_deviants"][0]
    view._on_pick([{"rep_id": rep}])
    title = json.dumps(view._differs._jchart.spec.get("title"))
    assert app.state.rep_label(rep) in title
    view._on_pick([])
    assert "Positive deviants" in json.dumps(view._differs._jchart.spec.get("title"))


def test_deviance_page_names_the_planted_practice(small_planted):
    truth = json.loads((small_planted / "truth.json").read_text())
    app = positive_deviance_app(data_dir=small_planted)
    finding = app.views[0]._finding.value
    assert truth["deviant_practice"]["activity_type"] in finding


def test_interventions_page_reports_the_planted_effect(small_planted):
    truth = json.loads((small_planted / "truth.json").read_text())["intervention"]
    app = interventions_app(data_dir=small_planted)
    view = app.views[0]
    assert view._pick.value == truth["intervention_id"]
    assert "real rise" in view._finding.value


def test_a_missing_folder_is_a_readable_message_not_a_traceback(tmp_path):
    app = return_on_effort_app(data_dir=tmp_path / "nowhere")
    html = _html(app)
    assert "could not be loaded" in html
    assert "Traceback" not in html


def test_a_failing_view_shows_a_message_in_place(small_planted, monkeypatch):
    import effortlens_widgets.apps.habits as habits

    def broken(*args, **kwargs):
        raise RuntimeError("cadence exploded")

    monkeypatch.setattr(habits, "response_by_cadence", broken)
    app = habits_app(data_dir=small_planted)
    html = _html(app)
    assert "could not be drawn" in html and "cadence exploded" in html
    assert "Traceback" not in html


def test_chart_panel_reuses_its_widget_and_offers_csv():
    import altair as alt

    panel = ChartPanel(title="t")
    frame = pl.DataFrame({"x": ["a", "b"], "y": [1, 2]})
    panel.show(alt.Chart(frame).mark_bar().encode(x="x", y="y"), table_frame=frame)
    first = panel._jchart
    panel.show(alt.Chart(frame).mark_line().encode(x="x", y="y"), table_frame=frame)
    assert panel._jchart is first and panel._jchart.spec["mark"]["type"] == "line"
    encoded = re.findall(r"base64,([A-Za-z0-9+/=]+)", panel._csv.value)[0]
    assert pl.read_csv(base64.b64decode(encoded)).equals(frame)
    panel.show_message("nothing here")
    assert panel._chart_box.layout.display == "none" and "nothing here" in panel._message.value


def test_kpi_deltas_use_points_for_rates_and_percent_for_counts():
    assert "+2.0 pts" in Kpi("r", 0.12, 0.10, fmt="{:.1%}").delta_html()
    assert "+50%" in Kpi("n", 150, 100).delta_html()
    worse = Kpi("waste", 0.9, 0.8, fmt="{:.1%}", higher_is_better=False).delta_html()
    assert "el-bad" in worse
    assert "no previous period" in Kpi("n", 1, None).delta_html()


def test_app_without_title_keeps_it_for_the_landing_page(tiny_planted):
    app = App(title="T", question="Q?", views=[], data_dir=tiny_planted)
    assert (app.title, app.question) == ("T", "Q?")
    assert "<h1>T</h1>" not in _html(app)


def test_clicking_a_bar_narrows_the_page_and_the_filter_bar_follows(small_planted):
    app = return_on_effort_app(data_dir=small_planted)
    by_slice = app.views[2]
    by_slice._slice.value = "Team"
    team = sorted(app.state.enriched.reps["team"].unique())[1]
    by_slice._on_pick([{"team": team}])
    assert app.state.filter.teams == (team,)
    assert app.filter_bar._dropdowns["team"].value == team
    assert set(app.state.view.daily["team"].unique()) == {team}
    # reps are picked by their real id even when the page shows pseudonyms
    app.filter_bar._dropdowns["team"].value = "(all)"
    app.state.anonymise = True
    by_slice._slice.value = "Rep"
    rep_id = app.state.enriched.reps["rep_id"][0]
    pseudonym = app.state.rep_label(rep_id)
    by_slice._on_pick([{"rep_id": pseudonym}])
    assert app.state.filter.reps == (rep_id,)
    assert app.filter_bar._dropdowns["rep"].value == rep_id


def test_chart_selection_handlers_survive_a_new_chart(small_planted):
    app = return_on_effort_app(data_dir=small_planted)
    by_slice = app.views[2]
    by_slice._slice.value = "Activity type"  # a new chart in the same panel
    selections = by_slice._roe._jchart.selections
    assert "picked" in selections.trait_names()
    first_type = app.state.enriched.activities["activity_type"][0]
    from altair.jupyter.jupyter_chart import PointSelection

    # what the chart's JavaScript does on a click (JupyterChart's own update path)
    selections._set_value(
        "picked", PointSelection(name="picked", value=[{"activity_type": first_type}], store=[])
    )
    assert app.state.filter.activity_types == (first_type,)


def test_journey_kpis_compare_with_the_previous_period(small_planted):
    app = buyer_journey_app(data_dir=small_planted)
    cards = app.views[0]._cards.value
    assert "Win rate" in cards and "no previous period" in cards
    app.filter_bar.set_period("Last 26 weeks")
    cards = app.views[0]._cards.value
    assert "vs previous period" in cards and " pts " in cards


def test_pattern_session_ends_with_a_recap_of_the_findings(small_planted):
    truth = json.loads((small_planted / "truth.json").read_text())
    app = pattern_session_app(data_dir=small_planted)
    session = app.views[0]
    session.go(len(STEPS) - 1)
    recap = _html(session._body)
    assert truth["leaky_stage"] in recap
    assert truth["deviant_practice"]["activity_type"] in recap
    reps = pl.read_parquet(small_planted / "reps.parquet")
    assert not [n for n in reps["rep_name"].to_list() if n and n in recap]
