"""Facts precomputed at build time (issue 13 §2): the silent-streak and habit views filter small
built tables instead of sorting every touch; on the whole data they give the event path's
numbers, and a filter keeps the rule it documents."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from filter_support import assert_period_habits_equal
from polars.testing import assert_frame_equal

from effortlens.facts import AGGREGATES_LAYOUT, KERNEL_CATEGORICAL, open_build
from effortlens.filters import Filter, filter_frame
from effortlens.habits import (
    TouchCodes,
    habit_effects,
    period_habits,
    response_by_cadence,
    response_by_timing,
    sequence_lift,
    touch_cells,
    touch_facts,
    touch_habits,
    write_touch_codes,
)
from effortlens.roe import silent_streaks, streak_facts, streaks_from_facts


@pytest.fixture(scope="module")
def planted_touches(small_planted_enriched):
    """The planted sample and its touch facts."""
    enriched, truth = small_planted_enriched
    return enriched, truth, touch_facts(enriched)


def _same_as_event_path(enriched, tables) -> None:
    acts = enriched.activities
    assert_frame_equal(tables["timing"], response_by_timing(acts))
    assert_frame_equal(tables["cadence"], response_by_cadence(acts))
    assert_frame_equal(tables["sequences"], sequence_lift(acts))
    for feature in ("timing", "cadence"):
        assert_frame_equal(
            tables["effects"][feature],
            habit_effects(enriched, feature=feature),
            check_exact=False,
            rel_tol=1e-9,
        )


def test_touch_facts_give_the_event_path_habits_on_planted_data(planted_touches):
    enriched, _, touches = planted_touches
    n_touches = enriched.activities.filter(pl.col("is_customer_facing")).height
    assert touches.height == n_touches
    _same_as_event_path(enriched, touch_habits(touches.lazy()))


def test_touch_facts_give_the_event_path_habits_on_null_data(small_null_enriched):
    enriched, _ = small_null_enriched
    tables = touch_habits(touch_facts(enriched))
    _same_as_event_path(enriched, tables)
    # and, as the event path, they name no habit where none was planted
    for feature in ("timing", "cadence"):
        assert tables["effects"][feature]["flag"].is_null().all()


def test_precomputed_habits_recover_the_planted_timing_and_silence(planted_touches):
    _, truth, touches = planted_touches
    effects = touch_habits(touches)["effects"]
    planted_cell = pl.col("weekday").is_in(truth["timing"]["best_weekdays"]) & pl.col("hour").is_in(
        truth["timing"]["best_hours"]
    )
    better = effects["timing"].filter(pl.col("flag") == "better")
    assert better.height >= 3 and better.filter(~planted_cell).is_empty(), better
    silence = truth["cadence"]["silence_days"]
    worse = effects["cadence"].filter(pl.col("flag") == "worse")["min_days_since"].to_list()
    assert worse and all(d is not None and d >= silence - 6 for d in worse)


def test_filtered_touch_facts_count_only_the_touches_in_the_filter(planted_touches):
    enriched, _, touches = planted_touches
    team = enriched.reps["team"].drop_nulls().unique().sort()[0]
    flt = Filter(teams=(team,))
    tables = touch_habits(filter_frame(touches.lazy(), flt))
    # timing needs no history: exactly the event path's cells of the team's touches
    assert_frame_equal(tables["timing"], response_by_timing(filter_frame(enriched.activities, flt)))
    # the cadence bin is the days since the previous touch on the contact by anyone: the
    # team's touches are counted in the bins they have in the whole data
    counted = tables["cadence"]["activities"].sum()
    team_on_contact = filter_frame(enriched.activities, flt).filter(
        pl.col("is_customer_facing") & pl.col("contact_id").is_not_null()
    )
    assert counted == team_on_contact.height
    assert tables["effects"]["timing"]["activities"].sum() == team_on_contact.height


def test_per_rep_cells_give_the_touch_tables_for_a_filter_without_a_period(planted_touches):
    enriched, _, touches = planted_touches
    cells = {name: frame.collect() for name, frame in touch_cells(touches).items()}
    assert cells["timing"].height < touches.height / 4  # far fewer rows than touches
    team = enriched.reps["team"].drop_nulls().unique().sort()[0]
    types = tuple(enriched.activities["activity_type"].unique().sort()[:3])
    for flt in (Filter(), Filter(teams=(team,)), Filter(activity_types=types)):
        by_cells = touch_habits({name: filter_frame(f, flt) for name, f in cells.items()})
        by_touches = touch_habits(filter_frame(touches, flt))
        for name in ("timing", "cadence", "sequences"):
            assert_frame_equal(by_cells[name], by_touches[name])
        for feature in ("timing", "cadence"):
            assert_frame_equal(
                by_cells["effects"][feature],
                by_touches["effects"][feature],
                check_exact=False,
                rel_tol=1e-9,
            )


def test_streak_facts_give_the_event_path_streaks(planted_touches):
    enriched, _, _ = planted_touches
    acts, actions = enriched.activities, enriched.actions
    built = streak_facts(acts, actions, enriched.reps)
    for n in (2, 4, 7):
        assert_frame_equal(
            streaks_from_facts(built, min_touches=n), silent_streaks(acts, actions, min_touches=n)
        )
    longest = streaks_from_facts(built, min_touches=3, top=25)
    assert_frame_equal(longest, silent_streaks(acts, actions, min_touches=3).head(25))
    with pytest.raises(ValueError, match="2 touches or more"):
        streaks_from_facts(built, min_touches=1)


def test_filtered_streaks_are_those_whose_last_touch_is_in_the_filter(planted_touches):
    enriched, _, _ = planted_touches
    acts, actions = enriched.activities, enriched.actions
    built = streak_facts(acts, actions, enriched.reps)
    reps = tuple(enriched.reps["rep_id"].sort()[:5])
    end = acts["day"].max()
    start = end.replace(day=1)
    flt = Filter(reps=reps, start=start, end=end)
    got = streaks_from_facts(filter_frame(built, flt), min_touches=3)
    every = silent_streaks(acts, actions, min_touches=3, last=("day",))
    expected = every.filter(
        pl.col("rep_id").is_in(reps) & pl.col("day").is_between(start, end)
    ).drop("day")
    assert got.height > 0
    assert_frame_equal(got, expected)


def test_a_build_holds_the_precomputed_facts_and_the_views_read_them(tiny_planted, tmp_path):
    built = open_build(tiny_planted, cache_dir=tmp_path / "cache")
    assert built.manifest["engine"] == "polars"
    for relative in AGGREGATES_LAYOUT.values():
        assert relative in built.manifest["files"]
    enriched = built.enriched
    assert set(enriched.aggregates) == set(AGGREGATES_LAYOUT)
    touches = enriched.aggregates["touches"].collect()
    n_touches = enriched.lazy("activities").filter(pl.col("is_customer_facing")).collect().height
    assert touches.height == n_touches
    streaks = streaks_from_facts(enriched.aggregates["streaks"], min_touches=4)
    acts = enriched.lazy("activities")
    assert_frame_equal(streaks, silent_streaks(acts, enriched.lazy("actions")))
    # filtering a view does not touch the unfiltered aggregates
    narrowed = filter_frame(enriched.aggregates["touches"], Filter(reps=("nobody",)))
    assert narrowed.collect().height == 0
    assert enriched.aggregates["touches"].collect().height == n_touches


def test_open_build_rejects_an_unknown_engine(tiny_planted, tmp_path):
    with pytest.raises(ValueError, match="engine"):
        open_build(tiny_planted, cache_dir=tmp_path / "cache", engine="duckdb")


def test_a_build_whose_counts_are_signed_integers_is_read_with_the_layouts_types(
    tiny_planted, tmp_path
):
    # Spark has no unsigned integers: facts written on a cluster hold their counts as Int32.
    # Rewrite a build's daily roll-up that way (and its manifest, as such a build carries it)
    import hashlib
    import json

    from effortlens.enrich import DAILY_SCHEMA

    cache = tmp_path / "cache"
    built = open_build(tiny_planted, cache_dir=cache)
    daily_path = built.path / "daily.parquet"
    expected = pl.read_parquet(daily_path).cast(  # as a kernel holds it
        {c: built.enriched.daily.schema[c] for c in KERNEL_CATEGORICAL}
    )
    signed = pl.read_parquet(daily_path).with_columns(
        pl.col("activities", "responded").cast(pl.Int32)
    )
    signed.write_parquet(daily_path)
    manifest = json.loads((built.path / "manifest.json").read_text())
    manifest["files"]["daily.parquet"] |= {
        "bytes": daily_path.stat().st_size,
        "sha256": hashlib.sha256(daily_path.read_bytes()).hexdigest(),
    }
    (built.path / "manifest.json").write_text(json.dumps(manifest))
    again = open_build(tiny_planted, cache_dir=cache)
    assert not again.rebuilt and again.path == built.path
    assert again.enriched.daily.schema == expected.schema
    assert_frame_equal(again.enriched.daily, expected)
    # another table in its place is still refused (and the build made again)
    signed.with_columns(pl.col("hours").cast(pl.String)).write_parquet(daily_path)
    manifest["files"]["daily.parquet"] |= {
        "bytes": daily_path.stat().st_size,
        "sha256": hashlib.sha256(daily_path.read_bytes()).hexdigest(),
    }
    (built.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="another table"):
        rebuilt = open_build(tiny_planted, cache_dir=cache)
    assert rebuilt.rebuilt and rebuilt.enriched.daily.schema == expected.schema
    on_disk = {
        c: pl.Categorical() if c in KERNEL_CATEGORICAL else t for c, t in DAILY_SCHEMA.items()
    }
    assert pl.read_parquet_schema(daily_path) == on_disk


# --- touch codes: a period's habit tables summed from integer codes (issue 13, session 6) ----


@pytest.fixture(scope="module")
def planted_codes(planted_touches, tmp_path_factory):
    """The planted touches written as touch codes and mapped back."""
    _, _, touches = planted_touches
    folder = tmp_path_factory.mktemp("codes") / "habit_touches"
    written = write_touch_codes(touches, folder)
    return TouchCodes(folder), written


def _filters_cutting_weeks(enriched, touches) -> list[Filter]:
    """Periods that start and end inside weeks (a Wednesday to a Tuesday; a single day; an
    open end), alone and with a team, activity types or one rep; no period; empty periods."""
    first, last = touches["day"].min(), touches["day"].max()
    wednesday = first + dt.timedelta(days=(2 - first.weekday()) % 7 + 7)
    tuesday = wednesday + dt.timedelta(days=27 + 6)
    middle = first + (last - first) / 2
    team = enriched.reps["team"].drop_nulls().unique().sort()[0]
    rep = enriched.reps.filter(pl.col("team") == team)["rep_id"].sort()[0]
    types = tuple(touches["activity_type"].unique().sort()[:2])
    return [
        Filter(start=wednesday, end=tuesday),
        Filter(start=wednesday, end=tuesday, teams=(team,)),
        Filter(start=wednesday, end=tuesday, activity_types=types),
        Filter(start=wednesday, end=tuesday, reps=(rep,)),
        Filter(start=middle, end=middle),
        Filter(start=middle),
        Filter(end=middle, teams=(team,)),
        Filter(teams=(team,)),
        Filter(),
        Filter(start=last + dt.timedelta(days=1)),
        Filter(end=first - dt.timedelta(days=1)),
        Filter(start=wednesday, end=tuesday, reps=("nobody",)),
    ]


def test_touch_codes_give_the_touch_tables_for_periods_cutting_weeks(
    planted_touches, planted_codes
):
    enriched, _, touches = planted_touches
    codes, written = planted_codes
    assert written == touches.height  # every touch of the planted data has a day
    compared = 0
    for flt in _filters_cutting_weeks(enriched, touches):
        kept = filter_frame(touches, flt)
        compared += assert_period_habits_equal(codes, flt, kept)
    assert compared >= 8  # most filters keep touches: the sums were compared, not just empties


def test_touch_codes_recover_the_planted_timing_and_name_nothing_on_null_data(
    planted_touches, planted_codes, small_null_enriched, tmp_path
):
    _, truth, _ = planted_touches
    codes, _ = planted_codes
    effects = period_habits(codes, Filter())["effects"]["timing"]
    planted_cell = pl.col("weekday").is_in(truth["timing"]["best_weekdays"]) & pl.col("hour").is_in(
        truth["timing"]["best_hours"]
    )
    better = effects.filter(pl.col("flag") == "better")
    assert better.height >= 3 and better.filter(~planted_cell).is_empty(), better
    enriched, _ = small_null_enriched
    write_touch_codes(touch_facts(enriched), tmp_path / "null")
    null_codes = TouchCodes(tmp_path / "null")
    last = null_codes.days[1]
    for flt in (Filter(), Filter(start=last - dt.timedelta(days=180))):
        tables = period_habits(null_codes, flt)
        for feature in ("timing", "cadence"):
            assert tables["effects"][feature]["flag"].is_null().all()


def _one_pass_effect_sums(
    n_tc, type_code, rep_code, credit, *, n_reps, kept, credit_tc=None, n_rc=None
):
    """The habit effect sums with every touch of the period at once (one ``np.bincount`` per
    sum: the code before :data:`effortlens.habits._EFFECT_STEP`)."""
    n_types, width = n_tc.shape[0], n_tc.shape[1] + 1
    if credit_tc is None:
        credit_tc = np.bincount(type_code, weights=credit, minlength=n_types * width)
    credit_tc = credit_tc.reshape(n_types, width)
    if kept is not None:
        credit_tc = np.where(kept[:, None], credit_tc, 0.0)
    n_t = n_tc.sum(axis=1)
    mean_t = np.divide(credit_tc[:, 1:].sum(axis=1), n_t, out=np.zeros(n_types), where=n_t > 0)
    excess = credit - np.repeat(mean_t, width)[type_code]
    counted = None
    if kept is not None:
        counted = np.repeat(kept, width)[type_code].astype(np.float64)
        excess *= counted
    size = n_reps * width
    if n_rc is None or kept is not None:
        n_rc = np.bincount(rep_code, weights=counted, minlength=size)
    excess_rc = np.bincount(rep_code, weights=excess, minlength=size)
    return (
        n_tc,
        credit_tc[:, 1:],
        n_rc.reshape(n_reps, width)[:, 1:],
        excess_rc.reshape(n_reps, width)[:, 1:],
    )


def test_effect_sums_in_steps_equal_one_pass_bit_for_bit(
    planted_touches, planted_codes, monkeypatch
):
    # a period's touches are summed a step at a time (working arrays of a step, not of the
    # period): in the touches' order, so every sum is the one-pass sum to the last bit, for
    # periods with and without a team, rep or activity-type restriction
    import effortlens.habits as habits

    enriched, _, touches = planted_touches
    codes, _ = planted_codes
    stepped = habits._effect_sums  # noqa: SLF001  (the function the test wraps)
    monkeypatch.setattr(habits, "_EFFECT_STEP", 97)  # many steps, the last one partial
    touches_summed = []

    def compared(*args, **kwargs):
        by_steps = stepped(*args, **kwargs)
        at_once = _one_pass_effect_sums(*args, **kwargs)
        for a, b in zip(by_steps, at_once, strict=True):
            assert a.shape == b.shape
            np.testing.assert_array_equal(a, b)
        touches_summed.append(len(args[1]))
        return by_steps

    monkeypatch.setattr(habits, "_effect_sums", compared)
    for flt in _filters_cutting_weeks(enriched, touches):
        period_habits(codes, flt)
    assert max(touches_summed) > 97 * 10 and min(touches_summed) == 0


def test_touch_codes_running_effect_sums_equal_the_periods_touches(planted_touches, planted_codes):
    # the credit per type x cell (per-day running double-doubles) and the touches per rep x
    # cell (per-week running counts and the partial weeks' touches) of periods that cut weeks
    # at either end, start at the first day or end at the last, equal those of the touches
    enriched, _, touches = planted_touches
    codes, _ = planted_codes
    assert codes.running_effects
    first, last = touches["day"].min(), touches["day"].max()
    periods = [
        (first + dt.timedelta(days=3), first + dt.timedelta(days=60)),
        (first, first + dt.timedelta(days=20)),
        (first + dt.timedelta(days=9), last),
        (first + dt.timedelta(days=8), first + dt.timedelta(days=12)),
        (last - dt.timedelta(days=89), last),
        (first - dt.timedelta(days=5), last + dt.timedelta(days=5)),
    ]
    for start, end in periods:
        flt = Filter(start=start, end=end)
        kept = filter_frame(touches, flt)
        assert kept.height > 0
        assert assert_period_habits_equal(codes, flt, kept)
        running = codes.sums(flt)
        codes.running_effects = False  # the same sums from the period's touches
        try:
            summed = codes.sums(flt)
        finally:
            codes.running_effects = True
        for feature in ("timing", "cadence"):
            np.testing.assert_array_equal(running[feature][2], summed[feature][2])
            np.testing.assert_allclose(running[feature][1], summed[feature][1], rtol=1e-12)
            assert running[feature][2].sum() > 0
