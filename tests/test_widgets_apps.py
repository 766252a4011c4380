"""Widget behaviour, headless: set traits and controls, assert state and that the views updated."""

from __future__ import annotations

import json
import re

import ipywidgets as widgets
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from traitlets import TraitError
from widget_support import app_factories, page_html, walk

from effortlens_widgets.app import App, View
from effortlens_widgets.apps.buyer_journey import buyer_journey_app
from effortlens_widgets.apps.habits import habits_app
from effortlens_widgets.apps.interventions import interventions_app
from effortlens_widgets.apps.organisation import organisation_app
from effortlens_widgets.apps.pattern_session import STEPS, pattern_session_app
from effortlens_widgets.apps.positive_deviance import positive_deviance_app
from effortlens_widgets.apps.rep_mirror import query_rep, rep_mirror_app
from effortlens_widgets.apps.return_on_effort import return_on_effort_app
from effortlens_widgets.panels import ChartPanel, Kpi, TablePanel, downloads

FACTORIES = app_factories()


def _charts(app) -> list:
    return [w for w in walk(app) if type(w).__name__ == "JupyterChart"]


def _page_text(app) -> str:
    """Everything the page would send to a browser: HTML, chart specs with data, options."""
    parts = [page_html(app)]
    parts += [json.dumps(c.spec, default=str) for c in _charts(app)]
    for w in walk(app):
        if isinstance(w, widgets.Dropdown):
            parts.append(json.dumps([str(o) for o in w.options]))
    for button in downloads(app):  # what each download button sends when clicked
        parts.append(button.payload().decode("utf-8", "replace"))
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
    assert 'class="el-error"' not in page_html(app)
    assert _charts(app), f"{factory.__name__} shows no chart"
    for chart in _charts(app):
        for values in _inline_datasets(chart.spec):
            assert len(values) <= 5000  # charts never receive raw events


def _inline_datasets(spec: dict) -> list[list]:
    # a dataset may come as JSON text (the funnel plot's): its rows are what Vega parses
    return [
        json.loads(v) if isinstance(v, str) else v for v in (spec.get("datasets") or {}).values()
    ]


def _csv_downloads(widget) -> list[pl.DataFrame]:
    """The CSV files a widget offers for download (what a click sends), in page order."""
    return [pl.read_csv(b.payload()) for b in downloads(widget) if b.mime == "text/csv"]


#: The frames each app offers an analyst (app.frames()), by factory.
FRAMES = {
    return_on_effort_app: {"headline", "trend", "by_slice", "silent_streaks"},
    positive_deviance_app: {"deviance", "what_differs"},
    buyer_journey_app: {"flow", "deal_kpis", "blocked_deals"},
    habits_app: {"timing", "cadence", "sequences", "habits"},
    interventions_app: {"weekly", "effect"},
    organisation_app: {"selling_time", "teams", "variance_share"},
    rep_mirror_app: {"weeks", "summary"},
    pattern_session_app: {"headline", "trend"},  # the first step; later ones once visited
}


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_every_app_hands_an_analyst_the_frames_behind_its_views(factory, small_planted):
    app = factory(data_dir=small_planted)
    frames = app.frames()
    assert set(frames) == FRAMES[factory]
    for name, frame in frames.items():
        assert isinstance(frame, pl.DataFrame), name
        assert frame.height > 0, name
    for view in app.views:
        if isinstance(view, View):
            assert view.frame is next(iter(view.frames.values()))
            assert set(view.frames) <= set(frames)


def test_a_view_frame_is_what_it_drew_and_follows_the_page(small_planted):
    app = return_on_effort_app(data_dir=small_planted)
    trend = app.views[1]
    assert trend.frame is app.frames()["trend"]
    assert _csv_downloads(trend)[0].equals(trend.frame)  # the same numbers as the download
    whole = trend.frame
    team = sorted(app.state.enriched.reps["team"].unique())[0]
    app.filter_bar.team = team
    assert trend.frame["activities"].sum() < whole["activities"].sum()
    assert _csv_downloads(trend)[0].equals(trend.frame)
    app.filter_bar.activity_type = app.state.enriched.activities["activity_type"][0]
    app.filter_bar.team = "(all)"
    app.filter_bar.rep = app.state.enriched.reps["rep_id"][0]
    assert trend.frame["activities"].sum() < whole["activities"].sum()


def test_view_traits_refuse_what_the_page_cannot_show(small_planted):
    app = return_on_effort_app(data_dir=small_planted)
    trend = app.views[1]
    with pytest.raises(TraitError):
        trend.metric = "happiness"
    with pytest.raises(TraitError):
        app.filter_bar.team = "No such team"
    with pytest.raises(TraitError):
        app.filter_bar.period = "Last 3 days"
    assert trend.metric == "roe_per_100" and app.filter_bar.team == "(all)"
    spec = json.dumps(_charts(trend)[0].spec)
    trend.metric = "response_rate"
    assert json.dumps(_charts(trend)[0].spec) != spec
    streaks = app.views[3]
    streaks.min_touches = 6
    assert "Runs of 6 or more touches" in page_html(streaks)
    if streaks.frames:
        assert streaks.frame["touches"].min() >= 6


def test_filter_change_updates_every_view(small_planted):
    app = return_on_effort_app(data_dir=small_planted)
    headline, _trend, by_slice, _streaks = app.views
    cards_before = page_html(headline)
    team = sorted(app.state.enriched.reps["team"].unique())[0]
    app.filter_bar.team = team
    assert app.state.filter.teams == (team,)
    assert set(app.state.view.daily["team"].unique()) == {team}
    assert page_html(headline) != cards_before
    by_slice.by = "Team"
    assert app.frames()["by_slice"]["team"].to_list() == [team]
    assert _csv_downloads(by_slice)[0]["team"].to_list() == [team]


@pytest.mark.parametrize("factory", [rep_mirror_app, interventions_app], ids=lambda f: f.__name__)
def test_whole_data_pages_redraw_for_new_data_not_for_a_filter(factory, small_planted):
    app = factory(data_dir=small_planted)
    view = app.views[0]
    drawn = view.frame
    team = sorted(app.state.enriched.reps["team"].unique())[0]
    app.state.update_filter(teams=(team,))  # a page without a filter bar: set in code
    assert view.frame is drawn  # the whole history / designed comparison: not recomputed
    app.load(small_planted)  # new data: drawn again
    assert view.frame is not drawn and view.frame.equals(drawn)


def test_pages_without_statistics_do_not_load_scipy():
    # scipy (stats, optimize) is ~65 MB of every kernel's memory: loaded only when a view
    # computes a test or a fit, never by importing a page
    import subprocess
    import sys

    pages = ["return_on_effort", "rep_mirror", "interventions", "organisation"]
    code = "".join(f"import effortlens_widgets.apps.{p};" for p in pages)
    code += "import sys; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_roe_views_sum_the_weekly_roll_up_to_the_daily_figures(small_planted):
    import datetime as dt

    from polars.testing import assert_frame_equal

    from effortlens.filters import Filter, filter_frame
    from effortlens.findings import roe_headline
    from effortlens.roe import roe_by, roe_trend

    app = return_on_effort_app(data_dir=small_planted)
    state = app.state
    team = sorted(state.enriched.reps["team"].unique())[0]
    kinds = state.enriched.daily["activity_type"].unique().sort()
    end = state.enriched.daily["day"].max()
    start = end - dt.timedelta(days=89)  # whole weeks from the roll-up, the others' days
    for flt in (
        Filter(),
        Filter(teams=(team,)),
        Filter(activity_types=(kinds[0],)),
        Filter(teams=(team,), start=start, end=end),
        Filter(teams=(team,), start=start + dt.timedelta(days=3), end=end - dt.timedelta(days=2)),
        Filter(start=start, activity_types=(kinds[0],)),
        Filter(teams=(team,), start=end),  # a single day
    ):
        state.filter = flt
        weekly, daily = state.roe_facts(), state.view.daily
        assert weekly.height < daily.height or flt.start == end  # the roll-up, not the days
        for by in (["team"], ["rep_id"], ["activity_type"], []):
            assert_frame_equal(roe_by(weekly, by=by), roe_by(daily, by=by), check_exact=False)
        assert_frame_equal(roe_trend(weekly), roe_trend(daily), check_exact=False)
        if flt.teams and flt.end:  # the cards: this period and the one before, by weeks
            before = flt.previous_period()
            previous = filter_frame(state.enriched.daily, before) if before else None
            expected = roe_headline(daily, previous=previous)
            shown = app.views[0].frames["headline"]
            for column in ("value", "previous"):
                assert_frame_equal(
                    shown.select(column),
                    expected.select(pl.col(column).cast(pl.Float64)),
                    check_exact=False,
                    rel_tol=1e-9,
                )


def test_organisation_page_from_the_weekly_roll_ups_equals_the_daily_figures(small_planted):
    """The organisation page sums rep x week roll-ups made once per load (a period: those of
    its whole weeks, and the days of the others); its frames equal those counted from the
    filtered daily facts (none, a team, a segment, a rep, periods with and without them, and
    activity types, which count from the days)."""
    import datetime as dt

    from polars.testing import assert_frame_equal

    from effortlens.filters import Filter, filter_enriched
    from effortlens.organisation import (
        organisation_table,
        selling_time_by,
        selling_time_weekly,
        variance_share,
    )
    from effortlens_widgets.state import as_text_reps

    app = organisation_app(data_dir=small_planted)
    state = app.state
    # counted from the roll-up with text rep ids (the page holds them as codes)
    text = state.enriched.replace(daily=as_text_reps(state.enriched.daily))
    reps = state.enriched.reps.with_columns(pl.col("team", "segment").cast(pl.String))
    team = sorted(reps["team"].drop_nulls().unique())[0]
    segment = sorted(reps["segment"].drop_nulls().unique())[0]
    rep = reps.filter(pl.col("team") == team)["rep_id"].sort()[0]
    end = state.enriched.daily["day"].max()
    kind = state.enriched.daily["activity_type"].unique().sort()[0]
    compared = 0
    for flt in (
        Filter(),
        Filter(teams=(team,)),
        Filter(segments=(segment,)),
        Filter(reps=(rep,)),
        Filter(start=end - dt.timedelta(days=89), end=end),
        Filter(teams=(team,), start=end - dt.timedelta(days=89), end=end),
        Filter(reps=(rep,), start=end - dt.timedelta(days=60), end=end - dt.timedelta(days=3)),
        Filter(start=end - dt.timedelta(days=2), end=end),  # within a week
        Filter(start=end - dt.timedelta(days=200)),
        # periods ending on other weekdays: a cut last week may count as a full week
        *(
            Filter(start=end - dt.timedelta(days=40 + k), end=end - dt.timedelta(days=k))
            for k in (1, 2, 3, 4)
        ),
        Filter(activity_types=(kind,)),
        Filter(activity_types=(kind,), start=end - dt.timedelta(days=89), end=end),
    ):
        state.filter = flt
        view = filter_enriched(text, flt)
        settings = view.settings
        weekly = selling_time_weekly(
            view.daily,
            reps=view.reps,
            working_hours_per_week=settings.working_hours_per_week,
            internal_types=settings.internal,
        )
        frames = app.views[0].frames
        assert not app.views[0].problem
        expected = {
            "selling_time": selling_time_by(weekly),
            "teams": organisation_table(view),
            "variance_share": variance_share(view.daily),
        }
        for name, frame in expected.items():
            assert_frame_equal(frames[name], frame, check_exact=False, rel_tol=1e-9)
            compared += frame.height
    assert compared


def test_weekly_effort_summed_a_slice_of_reps_at_a_time_equals_one_sum(small_planted, monkeypatch):
    """The ROE page's weekly roll-up summed over slices of whole reps' rows (the daily
    roll-up is rep-sorted) has the rows and sums of one group-by over every day row."""
    from polars.testing import assert_frame_equal

    import effortlens_widgets.state as state_module
    from effortlens.filters import rep_runs

    daily = return_on_effort_app(data_dir=small_planted).state.enriched.daily
    runs = rep_runs(daily)
    assert runs is not None and runs.height > 3
    whole = state_module.weekly_effort(daily)
    monkeypatch.setattr(state_module, "EFFORT_SLICE_ROWS", daily.height // 7)
    sliced = state_module.weekly_effort(daily, runs=runs)
    keys = list(state_module.WEEKLY_KEYS)
    assert_frame_equal(sliced.sort(keys), whole.sort(keys), check_exact=False, rel_tol=1e-12)


def test_silent_streaks_by_position_list_the_stored_streaks_of_the_filter(
    small_planted, monkeypatch
):
    """The streaks table reads its rows by position in the build's streaks (the load's index)
    and lists what filtering and sorting every stored streak gives (none, a team, a period,
    a rep; a longer minimum run)."""
    import datetime as dt

    import effortlens.roe as roe
    from effortlens.enrich import precomputed
    from effortlens.filters import Filter, filter_frame
    from effortlens.roe import streaks_from_facts

    read, streaks_at = set(), roe.streaks_at

    def reading(facts, positions, *, group_rows):
        read.add("by rep" if group_rows == roe.STREAK_BY_REP_GROUP else "stored")
        return streaks_at(facts, positions, group_rows=group_rows)

    monkeypatch.setattr(roe, "streaks_at", reading)
    app = return_on_effort_app(data_dir=small_planted)
    state, streaks = app.state, app.views[3]
    built = precomputed(state.enriched, "streaks")
    assert built is not None  # read from the build
    reps = state.enriched.reps.with_columns(pl.col("team").cast(pl.String))
    team = sorted(reps["team"].drop_nulls().unique())[0]
    rep = reps.filter(pl.col("team") == team)["rep_id"].sort()[0]
    end = state.enriched.daily["day"].max()
    listed = 0
    for touches in (4, 6):
        streaks.min_touches = touches
        for flt in (
            Filter(),
            Filter(teams=(team,)),
            Filter(start=end - dt.timedelta(days=89), end=end),
            Filter(reps=(rep,)),
            # read from the build's rep-ordered copy (streaks_by_rep) when it decodes less
            Filter(teams=(team,), start=end - dt.timedelta(days=89), end=end),
            Filter(reps=tuple(reps["rep_id"].sort()[:3])),
        ):
            state.filter = flt
            expected = streaks_from_facts(
                filter_frame(built, flt), min_touches=touches, top=1_000
            ).select("contact_id", "account_id", "touches")
            shown = streaks.frames.get("silent_streaks")
            got = shown.select(expected.columns) if shown is not None else expected.clear()
            assert_frame_equal(got, expected)
            listed += expected.height
    assert listed
    assert set(read) == {"stored", "by rep"}  # both copies were read


def test_headline_of_a_period_sums_the_day_totals_to_the_daily_figures(small_planted):
    """A period alone (or with activity types) sums the load's per-day totals: the cards, the
    trend and the slices by activity type show what the filtered day rows give (the cards for
    the period and the one before)."""
    import datetime as dt

    from polars.testing import assert_series_equal

    from effortlens.filters import Filter, filter_frame
    from effortlens.findings import roe_headline
    from effortlens.roe import roe_by, roe_trend

    app = return_on_effort_app(data_dir=small_planted)
    state = app.state
    end = state.enriched.daily["day"].max()
    facing = state.enriched.daily.filter(pl.col("is_customer_facing"))
    kind = facing["activity_type"].cast(pl.String).unique().sort()[0]
    for flt in (
        Filter(start=end - dt.timedelta(days=89), end=end),
        Filter(start=end - dt.timedelta(days=29), end=end, activity_types=(kind,)),
        Filter(start=end - dt.timedelta(days=400)),
    ):
        state.filter = flt
        before = flt.previous_period()
        expected = roe_headline(
            state.view.daily,
            previous=filter_frame(state.enriched.daily, before) if before else None,
        )
        shown = app.views[0].frames["headline"]
        assert shown["label"].to_list() == expected["label"].to_list()
        for column in ("value", "previous"):
            assert_series_equal(
                shown[column],
                expected[column].cast(pl.Float64),
                check_names=False,
                check_exact=False,
                rel_tol=1e-9,
            )
        assert shown["previous"].is_not_null().any() == (before is not None)
        trend = roe_trend(state.view.daily, period="week", window=4)
        assert not app.views[1].problem, app.views[1].problem
        assert_frame_equal(app.views[1].frames["trend"], trend, check_exact=False, rel_tol=1e-9)
        app.views[2].by = "Activity type"
        by_type = roe_by(state.view.daily, by=["activity_type"]).filter(pl.col("activities") > 0)
        assert_frame_equal(
            app.views[2].frames["by_slice"], by_type, check_exact=False, rel_tol=1e-9
        )
        app.views[2].by = "Team"  # a period alone: the load's per-day totals by team
        by_team = roe_by(state.view.daily, by=["team"]).filter(pl.col("activities") > 0)
        assert_frame_equal(
            app.views[2].frames["by_slice"], by_team, check_exact=False, rel_tol=1e-9
        )


def test_returning_to_a_filter_redraws_the_figures_it_drew_before(small_planted):
    """The ROE and organisation pages keep the figures of the last few filters of a load: going
    back to one (everything, after a team) draws them again without computing them."""
    from effortlens.filters import Filter

    for make in (return_on_effort_app, organisation_app):
        app = make(data_dir=small_planted)
        state = app.state
        team = sorted(state.enriched.reps["team"].cast(pl.String).unique())[0]
        first = {name: frame for view in app.views for name, frame in view.frames.items()}
        state.filter = Filter(teams=(team,))
        narrowed = {name: frame for view in app.views for name, frame in view.frames.items()}
        assert any(not narrowed[n].equals(first[n]) for n in first if n != "headline")
        state.filter = Filter()
        again = {name: frame for view in app.views for name, frame in view.frames.items()}
        assert set(again) == set(first)
        for name in ("trend", "by_slice", "teams", "variance_share"):
            if name in first:
                assert_frame_equal(again[name], first[name])
        if "trend" in first:
            assert again["trend"] is first["trend"]  # from memory, not computed again


def test_period_filter_gives_kpi_change_against_previous_period(small_planted):
    app = return_on_effort_app(data_dir=small_planted)
    assert "no previous period" in page_html(app.views[0])
    assert app.frames()["headline"]["previous"].is_null().all()
    app.filter_bar.period = "Last 13 weeks"
    flt = app.state.filter
    assert (flt.end - flt.start).days == 90
    assert "vs previous period" in page_html(app.views[0])
    assert app.frames()["headline"]["previous"].is_not_null().any()


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

    def disabled() -> dict[str, bool]:
        buttons = [w for w in walk(session) if isinstance(w, widgets.Button)]
        return {w.description: w.disabled for w in buttons if w.description in ("Back", "Next")}

    assert disabled() == {"Back": True, "Next": False}
    titles = []
    for index in range(len(STEPS)):
        session.step = index
        titles.append(re.search(r"<h2>\d+\. ([^<]+)</h2>", page_html(session)).group(1))
    assert titles == [s.title.replace("'", "&#x27;") for s in STEPS]
    session.step = len(STEPS) + 3  # out of range: the last step
    assert session.step == len(STEPS) - 1 and disabled() == {"Back": False, "Next": True}
    session.go(session.step - 1)
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
    assert mirror.rep_id == wanted
    name = reps.filter(pl.col("rep_id") == wanted)["rep_name"][0]
    assert name in page_html(mirror)
    other = reps["rep_id"][6]
    weeks = mirror.frame
    mirror.rep_id = other
    assert reps.filter(pl.col("rep_id") == other)["rep_name"][0] in page_html(mirror)
    assert mirror.frame is mirror.frames["weeks"] and not mirror.frame.equals(weeks)
    with pytest.raises(TraitError):
        mirror.rep_id = "no such rep"


def test_a_link_to_a_rep_not_listed_says_so_above_the_rep_shown(small_planted, monkeypatch):
    # `?rep=R007` where ids are R0001…: the page fell back to the first rep with no word
    reps = pl.read_parquet(small_planted / "reps.parquet")
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    monkeypatch.setenv("QUERY_STRING", "rep=R007%3Cb%3E")  # not an id, with markup in it
    mirror = rep_mirror_app(data_dir=small_planted).views[0]
    note = mirror._unknown.value  # noqa: SLF001
    shown = mirror.rep_id
    name = reps.filter(pl.col("rep_id") == shown)["rep_name"][0]
    assert "No rep with the id &#x27;R007&lt;b&gt;&#x27; in this data" in note, note
    assert f"showing {name} instead" in note and "<b>" not in note
    mirror.rep_id = reps.filter(pl.col("exit_date").is_null())["rep_id"][3]
    assert mirror._unknown.value == ""  # noqa: SLF001  (another rep picked: the note goes)
    left = reps.filter(pl.col("exit_date").is_not_null()).row(0, named=True)
    monkeypatch.setenv("QUERY_STRING", f"rep={left['rep_id']}")
    mirror = rep_mirror_app(data_dir=small_planted).views[0]
    note = mirror._unknown.value  # noqa: SLF001
    assert f"{left['rep_name']} left on {left['exit_date']:%Y-%m-%d}" in note, note
    monkeypatch.setenv("QUERY_STRING", f"rep={shown}")  # a listed rep: nothing to say
    assert rep_mirror_app(data_dir=small_planted).views[0]._unknown.value == ""  # noqa: SLF001


def test_clicking_a_rep_in_the_funnel_compares_that_rep(small_planted):
    truth = json.loads((small_planted / "truth.json").read_text())
    app = positive_deviance_app(data_dir=small_planted)
    view = app.views[0]
    rep = truth["positive_deviants"][0]

    def titles() -> str:
        return json.dumps([chart.spec.get("title") for chart in _charts(view)])

    view.pick([{"rep_id": rep}])
    assert view.rep == rep
    assert app.state.rep_label(rep) in titles()
    view.rep = None
    assert "Positive deviants" in titles()
    # with names hidden the chart holds pseudonyms: a click still compares the real rep
    app.state.anonymise = True
    view.pick([{"rep_id": app.state.rep_label(rep)}])
    assert view.rep == rep
    assert view.frames["what_differs"].height > 0


def test_deviance_page_names_the_planted_practice(small_planted):
    truth = json.loads((small_planted / "truth.json").read_text())
    app = positive_deviance_app(data_dir=small_planted)
    html = page_html(app.views[0])
    assert truth["deviant_practice"]["activity_type"] in html
    # the deviants table shows the flag rule's q-value and the grouping each rep is compared in
    assert "q (false discovery)" in html and "compared within" in html


def test_interventions_page_reports_the_planted_effect(small_planted):
    truth = json.loads((small_planted / "truth.json").read_text())["intervention"]
    app = interventions_app(data_dir=small_planted)
    view = app.views[0]
    assert view.intervention_id == truth["intervention_id"]
    html = page_html(view)
    assert "real rise" in html
    assert view.frames["effect"]["ci_low"][0] > 0
    # the estimate in points with its interval, the pre-trend check and the estimand beside it
    assert re.search(r"\+\d+\.\d pts</", html) and "95% interval +" in html
    assert "Before the start, participants and comparison" in html
    assert "What this measures:" in html and "intention to treat" in html
    weekly = view.frame
    view.metric = "roe_per_100"
    assert view.frame is view.frames["weekly"] and not view.frame.equals(weekly)


def test_a_missing_folder_is_a_readable_message_not_a_traceback(tmp_path):
    app = return_on_effort_app(data_dir=tmp_path / "nowhere")
    html = page_html(app)
    assert "could not be loaded" in html
    assert "Traceback" not in html


def test_a_failing_view_shows_a_message_in_place(small_planted, monkeypatch):
    import effortlens_widgets.views as views

    def broken(*args, **kwargs):
        raise RuntimeError("cadence exploded")

    monkeypatch.setattr(views, "rank_habits", broken)  # built facts or events: both rank
    app = habits_app(data_dir=small_planted)
    html = page_html(app)
    # words saying what to do; the detail goes to the server log, never to the page (issue 9)
    assert "could not be drawn" in html and "server log" in html
    assert "cadence exploded" not in html and "RuntimeError" not in html
    assert "Traceback" not in html


def test_chart_panel_reuses_its_widget_and_offers_csv():
    import altair as alt

    panel = ChartPanel(title="t")
    frame = pl.DataFrame({"x": ["a", "b"], "y": [1, 2]})
    panel.show(alt.Chart(frame).mark_bar().encode(x="x", y="y"), table_frame=frame)
    (first,) = _charts(panel)
    panel.show(alt.Chart(frame).mark_line().encode(x="x", y="y"), table_frame=frame)
    assert _charts(panel) == [first] and first.spec["mark"]["type"] == "line"
    assert _csv_downloads(panel)[0].equals(frame)
    panel.show_message("nothing here")
    assert first.layout.display == "none" and "nothing here" in page_html(panel)
    assert _csv_downloads(panel) == []
    panel.show(alt.Chart(frame).mark_bar().encode(x="x", y="y"), table_frame=frame)
    assert _charts(panel) == [first] and first.layout.display is None


def _live_models() -> dict:
    from ipywidgets.widgets import widget as widget_module

    return dict(widget_module._instances)  # noqa: SLF001 - every model a page is sent


def test_an_app_shares_equal_layouts_and_styles(small_planted):
    """Every model is sent to and built in each viewer's page: equal layouts and styles are
    one shared model, and the models they replace are closed, not left behind."""
    import collections

    before = set(_live_models())
    app = return_on_effort_app(data_dir=small_planted)
    made = {k: w for k, w in _live_models().items() if k not in before}
    kinds = collections.Counter(type(w).__name__ for w in made.values())
    layouts = [w for w in made.values() if isinstance(w, widgets.Layout)]
    styles = [w for w in made.values() if isinstance(w, widgets.Style)]
    # one model per distinct value (the charts keep their own: a message hides them)
    values = {tuple(sorted(w.get_state().items())) for w in layouts}
    assert len(layouts) <= len(values) + 3, kinds
    assert len({(type(w), tuple(sorted(w.get_state().items()))) for w in styles}) == len(styles)
    assert len(made) < 70, kinds  # 117 before sharing
    # every layout and style a live widget refers to is itself live (none closed under it)
    for w in walk(app):
        for trait in ("layout", "style"):
            model = getattr(w, trait, None)
            if isinstance(model, widgets.Widget):
                assert model.comm is not None, (type(w).__name__, trait)


def test_a_shared_layout_cannot_be_changed_for_one_widget(small_planted):
    app = return_on_effort_app(data_dir=small_planted)
    htmls = [w for w in walk(app) if isinstance(w, widgets.HTML)]
    assert len({id(w.layout) for w in htmls}) == 1  # one shared layout
    with pytest.raises(TraitError, match="shared"):
        htmls[0].layout.display = "none"  # would hide every HTML of the page
    assert all(w.layout.display is None for w in htmls)
    # a chart is hidden and shown again on its own (its panel gives it its own layout)
    charts = [w for w in walk(app) if type(w).__name__ == "JupyterChart"]
    assert len({id(c.layout) for c in charts}) == len(charts)


def test_panels_redraw_when_their_title_or_caption_changes():
    chart_panel, table_panel = ChartPanel(title="Old"), TablePanel(title="Old")
    table_panel.show(pl.DataFrame({"team": ["North"], "activities": [3]}))
    for panel in (chart_panel, table_panel):
        panel.title = "New <title>"
        panel.caption = "How to read it"
        html = page_html(panel)
        assert "New &lt;title&gt;" in html and "Old" not in html and "How to read it" in html
    assert "North" in page_html(table_panel)
    table_panel.max_rows = 1
    table_panel.show(pl.DataFrame({"team": ["North", "South"], "activities": [3, 4]}))
    assert "Showing 1 of 2 rows" in page_html(table_panel)


def test_kpi_deltas_use_points_for_rates_and_percent_for_counts():
    assert "+2.0 pts" in Kpi("r", 0.12, 0.10, fmt="{:.1%}").delta_html()
    assert "+50%" in Kpi("n", 150, 100).delta_html()
    worse = Kpi("waste", 0.9, 0.8, fmt="{:.1%}", higher_is_better=False).delta_html()
    assert "el-bad" in worse
    assert "no previous period" in Kpi("n", 1, None).delta_html()


def test_app_without_title_keeps_it_for_the_landing_page(tiny_planted):
    app = App(title="T", question="Q?", views=[], data_dir=tiny_planted)
    assert (app.title, app.question) == ("T", "Q?")
    assert "<h1>T</h1>" not in page_html(app)


def test_clicking_a_bar_narrows_the_page_and_the_filter_bar_follows(small_planted):
    app = return_on_effort_app(data_dir=small_planted)
    by_slice = app.views[2]
    by_slice.by = "Team"
    team = sorted(app.state.enriched.reps["team"].unique())[1]
    by_slice.pick([{"team": team}])
    assert app.state.filter.teams == (team,)
    assert app.filter_bar.team == team
    assert set(app.state.view.daily["team"].unique()) == {team}
    # reps are picked by their real id even when the page shows pseudonyms
    app.filter_bar.team = "(all)"
    app.state.anonymise = True
    by_slice.by = "Rep"
    rep_id = app.state.enriched.reps["rep_id"][0]
    pseudonym = app.state.rep_label(rep_id)
    by_slice.pick([{"rep_id": pseudonym}])
    assert app.state.filter.reps == (rep_id,)
    assert app.filter_bar.rep == rep_id


def test_chart_selection_handlers_survive_a_new_chart(small_planted):
    app = return_on_effort_app(data_dir=small_planted)
    by_slice = app.views[2]
    by_slice.by = "Activity type"  # a new chart in the same panel
    chart = _charts(by_slice)[0]
    assert "picked" in chart.selections.trait_names()
    first_type = app.state.enriched.activities["activity_type"][0]
    # what the chart's JavaScript sends on a click: the Vega point signal, as a widget update
    chart.set_state(
        {
            "_vl_selections": {
                "picked": {
                    "value": {"vlPoint": {"or": [{"activity_type": first_type}]}},
                    "store": [],
                }
            }
        }
    )
    assert app.state.filter.activity_types == (first_type,)


def test_journey_kpis_compare_with_the_previous_period(small_planted):
    app = buyer_journey_app(data_dir=small_planted)
    cards = page_html(app.views[0])
    assert "Win rate" in cards and "no previous period" in cards
    app.filter_bar.period = "Last 26 weeks"
    cards = page_html(app.views[0])
    assert "vs previous period" in cards and " pts " in cards
    kpis = app.frames()["deal_kpis"]
    assert "Win rate" in kpis["label"].to_list() and kpis["previous"].is_not_null().any()


def test_pattern_session_ends_with_a_recap_of_the_findings(small_planted):
    truth = json.loads((small_planted / "truth.json").read_text())
    app = pattern_session_app(data_dir=small_planted)
    session = app.views[0]
    session.step = len(STEPS) - 1
    recap = page_html(session)
    assert truth["leaky_stage"] in recap
    assert truth["deviant_practice"]["activity_type"] in recap
    reps = pl.read_parquet(small_planted / "reps.parquet")
    assert not [n for n in reps["rep_name"].to_list() if n and n in recap]


def test_each_workbook_names_only_frames_its_app_offers():
    import nbformat
    from browser_support import REPO

    factories = {f.__name__: f for f in FACTORIES}
    for path in sorted((REPO / "workbooks").glob("0[1-8]_*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        code = "\n".join(c.source for c in cells if c.cell_type == "code")
        factory = factories[re.search(r"import (\w+_app)", code).group(1)]
        (guide,) = [
            c.source for c in cells if c.cell_type == "markdown" and "app.frames()" in c.source
        ]
        named = set(re.findall(r'`"(\w+)"`', guide)) | set(
            re.findall(r'frames\(\)\["(\w+)"\]', guide)
        )
        assert named, path.name
        offered = FRAMES[factory] | ({"deviance"} if factory is pattern_session_app else set())
        assert named <= offered, (path.name, named - offered)


def test_pattern_session_frames_grow_with_the_steps_visited(small_planted):
    app = pattern_session_app(data_dir=small_planted)
    assert set(app.frames()) == FRAMES[pattern_session_app]
    app.views[0].step = 3  # "Peers who do better"
    assert {"headline", "trend", "deviance", "what_differs"} <= set(app.frames())


def test_a_chart_panel_makes_its_downloads_only_when_clicked():
    import altair as alt

    frame = pl.DataFrame({"rep": [f"rep {i}" for i in range(500)], "value": range(500)})
    panel = ChartPanel(title="Many rows")
    panel.show(alt.Chart(frame.head(5).to_pandas()).mark_bar().encode(x="rep"), table_frame=frame)
    csv, png = downloads(panel)
    assert (csv.mime, csv.filename, png.mime) == ("text/csv", "many-rows.csv", "image/png")
    # nothing of the files is in what the page receives until a click asks for them
    # (the chart's own state carries the Vega bundle; its data is the 5 rows it draws)
    state = json.dumps(
        [w.get_state() for w in walk(panel) if type(w).__name__ != "JupyterChart"], default=str
    )
    assert "rep 4" not in state and "base64" not in state
    assert pl.read_csv(csv.payload()).equals(frame)
    assert png.payload().startswith(b"\x89PNG")
    # a click sends the file to the page as a binary buffer
    sent = []
    csv.send = lambda content, buffers=None: sent.append((content, buffers))
    csv.click()
    ((content, buffers),) = sent
    assert content == {"event": "file", "filename": "many-rows.csv", "mime": "text/csv"}
    assert pl.read_csv(buffers[0]).equals(frame)
    panel.show_message("Nothing in this selection.")
    assert downloads(panel) == []
