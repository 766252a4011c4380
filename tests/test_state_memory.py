"""What a page's state holds in memory (issue 13: a kernel's RSS after its first chart)."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.anonymise import anonymise_frame, build_pseudonyms
from effortlens_widgets.state import PageState, _ids  # noqa: PLC2701 - the ids it numbers


def test_page_pseudonyms_of_accounts_and_contacts_are_made_when_first_read(
    tiny_planted_enriched,
):
    enriched, _ = tiny_planted_enriched
    state = PageState()
    state.enriched = enriched
    state.anonymise = True
    made = state.pseudonyms
    # reps and managers at once; accounts and contacts (a scan of every event) not yet
    assert isinstance(dict.__getitem__(made.maps, "rep"), pl.DataFrame)
    for kind in ("account", "contact"):
        assert kind in made.maps
        assert not isinstance(dict.__getitem__(made.maps, kind), pl.DataFrame)
    eager = build_pseudonyms(
        reps=enriched.reps,
        accounts=_ids(enriched, "account_id"),
        contacts=_ids(enriched, "contact_id"),
    )
    shown = enriched.activities.select("rep_id", "account_id", "contact_id").head(50)
    assert_frame_equal(state.present(shown), anonymise_frame(shown, eager))
    assert shown["contact_id"].drop_nulls().len() > 0
    for kind in ("rep", "manager", "account", "contact"):
        assert_frame_equal(made.maps[kind], eager.maps[kind])
        assert made.lookup(kind) == eager.lookup(kind)
    assert (
        state.unmask("contact", made.lookup("contact")[shown["contact_id"][0]])
        == (shown["contact_id"][0])
    )


def test_held_categories_of_two_builds_do_not_share_their_codes():
    from effortlens.facts import held_categorical

    # two loads held at once (a notebook comparing two exports), 100 teams each, none shared:
    # one set of 1-byte codes (255 at most) for both would overflow
    first = [f"a{i}" for i in range(100)]
    second = [f"b{i}" for i in range(100)]
    one = pl.Series(first).cast(held_categorical("team", len(first), build="k1"))
    other = pl.Series(second).cast(held_categorical("team", len(second), build="k2"))
    again = pl.Series(first[::-1]).cast(held_categorical("team", len(first), build="k1"))
    assert one.dtype.categories.physical() == pl.UInt8 == other.dtype.categories.physical()
    assert one.to_list() == first and other.to_list() == second
    assert one.dtype == again.dtype and one.dtype != other.dtype  # one build's frames join
    shared = held_categorical("team", 100, build="k1")
    assert pl.Series([f"c{i}" for i in range(100)]).cast(shared).len() == 100


def test_the_chart_bundle_is_made_outside_the_kernel(tmp_path):
    # the first kernel on a new cache folder made the offline chart module itself and kept
    # vl-convert's JavaScript runtime resident (~100 MB, issue 13); a child process makes it
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from effortlens_widgets import panels\n"
        "panels.enable_offline_charts()\n"
        "esm = panels.alt.JupyterChart._esm\n"
        "print(json.dumps({'vl': 'vl_convert' in sys.modules, 'esm': len(esm),\n"
        "                  'vega': 'vega-embed' in esm or 'vegaEmbed' in esm}))\n"
    )
    env = {**os.environ, "EFFORTLENS_CACHE": str(tmp_path / "cache")}
    env.pop("EFFORTLENS_CHART_BUNDLE", None)
    for run in ("new folder", "cached"):
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        seen = json.loads(out.stdout.strip().splitlines()[-1])
        assert seen == {"vl": False, "esm": seen["esm"], "vega": True}, run
        assert seen["esm"] > 100_000
    (bundle,) = (tmp_path / "cache" / "js").glob("jupyterchart-*.js")
    assert bundle.stat().st_size == len(bundle.read_bytes()) > 100_000
    assert not list(bundle.parent.glob("*.tmp"))  # the child's file was moved, not left


#: The pages that hold less of the daily roll-up: fewer counts (``daily_counts``) or the reps
#: as codes (``daily_rep_codes``), by module.
_NARROW_PAGES = (
    "buyer_journey",
    "habits",
    "positive_deviance",
    "interventions",
    "organisation",
    "return_on_effort",
    "rep_mirror",
)

#: Those of them holding the roll-up's ``rep_id`` as codes (``daily_rep_codes``).
_REP_CODE_PAGES = _NARROW_PAGES  # every narrowed page holds them so since session 10


@pytest.fixture(scope="module")
def _built_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("name", _NARROW_PAGES)
def test_a_page_holding_fewer_daily_counts_draws_what_the_whole_roll_up_draws(
    name, small_planted, _built_cache, monkeypatch
):
    import datetime as dt
    import importlib

    from effortlens.enrich import DAILY_SCHEMA
    from effortlens.filters import Filter
    from effortlens.roe import COUNTS
    from effortlens_widgets.state import DAILY_KEYS
    from effortlens_widgets.views import BySlice

    monkeypatch.setenv("EFFORTLENS_CACHE", str(_built_cache))
    factory = getattr(importlib.import_module(f"effortlens_widgets.apps.{name}"), f"{name}_app")
    narrow = factory(data_dir=small_planted)
    whole = factory(data_dir=small_planted, state=PageState())  # a state of its own: every count
    held = narrow.state.enriched.daily.schema
    assert whole.state.enriched.daily.columns == DAILY_SCHEMA.names()
    assert whole.state.enriched.daily.schema["rep_id"] == pl.String
    assert set(DAILY_KEYS) <= set(held), held
    assert list(held) == [c for c in DAILY_SCHEMA.names() if c in held]  # in the build's order
    codes = held["rep_id"] != pl.String
    assert codes or set(COUNTS) - set(held), held  # fewer counts, or the reps as codes
    assert codes == (name in _REP_CODE_PAGES), held
    if set(COUNTS) - set(held):  # of the rest, only what every page reads: no week, no peers
        assert not {"week", "peer_group"} & set(held), held
    if codes:  # the build's codes, two bytes a row
        assert held["rep_id"].categories.physical() == pl.UInt16
    reps = whole.state.enriched.reps
    team = reps["team"].drop_nulls().unique().sort()[0]
    rep = reps.filter(pl.col("team") == team)["rep_id"].sort()[0]
    end = whole.state.enriched.daily["day"].max()
    start = end - dt.timedelta(days=89)
    facing = whole.state.enriched.daily.filter(pl.col("is_customer_facing"))
    kinds = facing["activity_type"].cast(pl.String).unique().sort()
    filters = [
        Filter(),
        Filter(teams=(team,)),
        Filter(teams=(team,), start=start, end=end),
        Filter(start=start, end=end),
        Filter(start=start + dt.timedelta(days=3), end=end - dt.timedelta(days=2)),
        Filter(reps=(rep,)),
        # a type: the pages that count from the days it keeps (the organisation page)
        Filter(activity_types=(kinds[0],)),
        Filter(activity_types=(kinds[0],), start=start, end=end),
    ]
    slices = [v for v in narrow.views + whole.views if isinstance(v, BySlice)]  # ROE by slice
    for flt in filters:
        narrow.state.filter = whole.state.filter = flt
        for by in ("Team", "Rep") if slices else ("",):
            for view in slices:
                view.by = by
            for hidden in (False, True) if by == "Rep" else (False,):
                narrow.state.anonymise = whole.state.anonymise = hidden
                for app in (narrow, whole):
                    problems = [v.problem for v in app.views if getattr(v, "problem", "")]
                    assert not problems, (name, flt)
                frames, expected = narrow.frames(), whole.frames()
                assert set(frames) == set(expected) and expected, (name, flt)
                for key, frame in expected.items():
                    assert_frame_equal(frames[key], frame)


def test_the_pattern_session_with_rep_codes_draws_every_step_as_with_text_ids(
    small_planted, _built_cache, monkeypatch
):
    from effortlens_widgets.apps.pattern_session import STEPS, pattern_session_app

    monkeypatch.setenv("EFFORTLENS_CACHE", str(_built_cache))
    codes = pattern_session_app(data_dir=small_planted)
    text = pattern_session_app(data_dir=small_planted, state=PageState())
    assert codes.state.enriched.daily.schema["rep_id"] != pl.String
    assert text.state.enriched.daily.schema["rep_id"] == pl.String
    for step in range(len(STEPS)):
        for app in (codes, text):
            app.views[0].go(step)
            assert not [v.problem for v in app.views[0].views if getattr(v, "problem", "")]
        frames, expected = codes.frames(), text.frames()
        assert set(frames) == set(expected) and expected, step
        for key, frame in expected.items():
            assert_frame_equal(frames[key], frame)
    assert len(text.frames()) > 6  # every step drew


def test_the_organisation_page_with_rep_codes_on_a_roll_up_out_of_order_draws_as_with_text_ids(
    small_planted, _built_cache, monkeypatch
):
    # rows out of rep-day order (a roll-up not written by a build): the rep-weeks have no
    # positions and a period's cut weeks are summed from the filtered days (period_by_weeks),
    # whose sums the page casts to text to join the rep-weeks of the load
    import datetime as dt

    import numpy as np

    from effortlens.filters import Filter
    from effortlens_widgets.apps.organisation import organisation_app

    monkeypatch.setenv("EFFORTLENS_CACHE", str(_built_cache))
    codes = organisation_app(data_dir=small_planted)
    text = organisation_app(data_dir=small_planted, state=PageState())
    order = pl.Series(np.random.default_rng(5).permutation(codes.state.enriched.daily.height))
    for app in (codes, text):
        app.state.enriched = app.state.enriched.replace(daily=app.state.enriched.daily[order])
    assert codes.state.enriched.daily.schema["rep_id"] != pl.String
    assert text.state.enriched.daily.schema["rep_id"] == pl.String
    end = text.state.enriched.daily["day"].max()
    segment = text.state.enriched.reps["segment"].drop_nulls().sort()[0]
    for flt in (
        Filter(start=end - dt.timedelta(days=89), end=end),
        Filter(start=end - dt.timedelta(days=40), end=end - dt.timedelta(days=3)),
        Filter(segments=(segment,), start=end - dt.timedelta(days=60), end=end),
    ):
        codes.state.filter = text.state.filter = flt
        for app in (codes, text):
            assert not [v.problem for v in app.views if getattr(v, "problem", "")], flt
        frames, expected = codes.frames(), text.frames()
        assert set(frames) == set(expected) and expected, flt
        for key, frame in expected.items():
            assert_frame_equal(frames[key], frame)
