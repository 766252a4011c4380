"""Precomputed inputs of the positive-deviance, buyer-journey and habits pages (issue 13 §2):
the build stores small tables (practice facts, verifier facts, per-rep habit cells) and the
views filter and sum them instead of reading every event. Each is checked against the
event-level path, on the whole data and under the page filters (team, period, rep)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from filter_support import as_strings, assert_period_habits_equal, reader_filters
from polars.testing import assert_frame_equal

from effortlens.deviance import (
    practice_cells,
    practice_facts,
    practice_gaps,
    practice_in,
    rep_deviance,
    sorted_gaps,
    what_differs,
    what_differs_in,
)
from effortlens.deviance.peers import daily_response_counts
from effortlens.enrich import precomputed
from effortlens.facts import AGGREGATES_LAYOUT, open_build
from effortlens.filters import Filter, filter_enriched, filter_frame
from effortlens.flow import blocked_deals, flow_table, stage_flags, with_verifiers
from effortlens.habits import touch_cells, touch_habits
from effortlens.measures import response_counts


@pytest.fixture(scope="module")
def planted(small_planted_enriched):
    enriched, truth = small_planted_enriched
    return enriched, practice_facts(enriched.activities).collect()


def test_daily_response_counts_are_the_event_counts_under_every_filter(planted):
    enriched, _ = planted
    for flt in reader_filters(enriched):
        view = filter_enriched(enriched, flt)
        assert_frame_equal(daily_response_counts(view.daily), response_counts(view.activities))


def test_practice_facts_give_what_differs_of_the_events_under_every_filter(planted):
    enriched, practice = planted
    assert practice.height == enriched.activities.filter(pl.col("is_customer_facing")).height
    cells = {k: v.collect() for k, v in practice_cells(practice).items()}
    assert cells["shares"].height < practice.height / 10  # per rep: far fewer rows
    by_rep = practice_gaps(practice)
    gaps = {
        "gaps": sorted_gaps(by_rep["gaps"]),
        "all_gap_reps": by_rep["gap_reps"].collect().sort("rep_id"),
    }
    assert gaps["gaps"].height == practice["gap_days"].count()
    compared = with_gaps = 0
    for flt in reader_filters(enriched):
        view = filter_enriched(enriched, flt)
        deviance = rep_deviance(view)
        picked = deviance.filter(pl.col("volume") > 0)["rep_id"].sort()[:1].to_list()
        for rep_ids in (None, picked):
            expected = what_differs(view.activities, deviance, rep_ids=rep_ids)
            got = what_differs_in(practice_in(practice, flt), deviance, rep_ids=rep_ids)
            compared += expected.height
            assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-9)
            if flt.start is None and flt.end is None:  # whole reps: their sums hold
                by_cells = what_differs_in(
                    practice_in(practice, flt),
                    deviance,
                    rep_ids=rep_ids,
                    cells={k: filter_frame(v, flt) for k, v in cells.items()},
                )
                assert_frame_equal(by_cells, expected, check_exact=False, rel_tol=1e-9)
                # the days between touches from the follow-ups by rep, as a build writes them
                by_reps = what_differs_in(
                    practice_in(practice, flt),
                    deviance,
                    rep_ids=rep_ids,
                    cells={k: filter_frame(v, flt) for k, v in cells.items()},
                    gaps={**gaps, "gap_reps": filter_frame(gaps["all_gap_reps"], flt)},
                )
                assert_frame_equal(by_reps, expected, check_exact=False, rel_tol=1e-9)
                medians = expected.filter(pl.col("feature") == "median_days_between_touches")
                with_gaps += medians.height
    assert compared > 0  # the planted deviants are compared, not only empty tables
    assert with_gaps > 0  # and their median days between touches


def test_a_period_forgets_the_previous_touch_made_before_it(planted):
    enriched, practice = planted
    start = enriched.daily["day"].max() - dt.timedelta(days=30)
    seen = practice_in(practice, Filter(start=start)).collect()
    assert seen["day"].min() >= start
    # previous touches before the period are gone; those inside it are kept
    assert seen.filter(pl.col("previous_day") < start)["previous_type"].is_null().all()
    assert seen.filter(pl.col("previous_day") >= start)["previous_type"].is_not_null().all()
    assert seen.filter(pl.col("previous_day") < start).height > 0
    # an activity-type filter changes which touch came before: only the events can say
    assert practice_in(practice, Filter(activity_types=("call",))) is None


def test_verifier_facts_give_the_flow_of_every_action_under_every_filter(tiny_planted, tmp_path):
    built = open_build(tiny_planted, cache_dir=tmp_path / "cache").enriched
    verifiers = precomputed(built, "verifiers").collect()
    assert 0 < verifiers.height < built.lazy("actions").collect().height
    for flt in reader_filters(built):
        view = filter_enriched(built, flt)
        slim = with_verifiers(view, built, flt)
        for by in (None, "team"):
            assert_frame_equal(flow_table(slim, by=by), flow_table(view, by=by))
        assert_frame_equal(stage_flags(slim), stage_flags(view))
        assert_frame_equal(blocked_deals(slim), blocked_deals(view))
    # without the facts the view is left as it is
    bare = built.replace(aggregates={})
    assert with_verifiers(bare, bare, Filter()) is bare


def test_a_build_stores_the_view_inputs_equal_to_those_of_its_facts(tiny_planted, tmp_path):
    built = open_build(tiny_planted, cache_dir=tmp_path / "cache")
    enriched = built.enriched
    for relative in AGGREGATES_LAYOUT.values():
        assert relative in built.manifest["files"]
    practice = precomputed(enriched, "practice").collect()
    expected = practice_facts(enriched.lazy("activities")).collect()
    assert_frame_equal(practice, expected)
    assert practice["day"].is_sorted()  # a period reads only its row groups
    touches = precomputed(enriched, "touches")
    for name, cells in touch_cells(touches).items():
        stored = precomputed(enriched, f"habit_{name}").collect()
        keys = [c for c in stored.columns if stored.schema[c] != pl.Float64]
        assert_frame_equal(
            as_strings(stored).sort(keys),
            as_strings(cells.collect()).sort(keys),
            check_exact=False,
            rel_tol=1e-12,
        )


def test_stored_habit_cells_give_the_touch_tables_for_filters_without_a_period(
    tiny_planted, tmp_path
):
    enriched = open_build(tiny_planted, cache_dir=tmp_path / "cache").enriched
    touches = precomputed(enriched, "touches")
    cells = {
        name: precomputed(enriched, f"habit_{name}").collect()
        for name in ("timing", "cadence", "sequence_2", "sequence_3")
    }
    for flt in reader_filters(enriched):
        if flt.start is not None or flt.end is not None:
            continue
        by_cells = touch_habits({name: filter_frame(f, flt) for name, f in cells.items()})
        by_touches = touch_habits(filter_frame(touches, flt))
        for name in ("timing", "cadence", "sequences"):  # the page holds types as categories
            assert_frame_equal(as_strings(by_cells[name]), by_touches[name])
        for feature in ("timing", "cadence"):
            assert_frame_equal(
                as_strings(by_cells["effects"][feature]),
                by_touches["effects"][feature],
                check_exact=False,
                rel_tol=1e-9,
            )


def test_a_partitioned_build_stores_the_same_view_inputs(tiny_planted, tmp_path):
    whole = open_build(tiny_planted, cache_dir=tmp_path / "a", partitioned=False)
    parts = open_build(tiny_planted, cache_dir=tmp_path / "b", partitioned=True)
    assert parts.manifest["build"].startswith("partitioned")
    for name in (
        "practice",
        "verifiers",
        "practice_shares",
        "practice_sequences",
        "habit_timing",
        "habit_cadence",
        "habit_sequence_2",
    ):
        a = as_strings(precomputed(whole.enriched, name).collect())
        b = as_strings(precomputed(parts.enriched, name).collect())
        assert a.height > 0
        if name in ("practice", "verifiers"):  # rows of events: the same rows, in any order
            assert_frame_equal(b.sort(b.columns), a.sort(a.columns))
            continue
        keys = [c for c in a.columns if a.schema[c] != pl.Float64 or c == "n"]  # one per cell
        assert_frame_equal(b.sort(keys), a.sort(keys), check_exact=False, rel_tol=1e-9)


def test_a_partitioned_build_above_the_threshold_stores_them_per_partition(tiny_planted, tmp_path):
    import dataclasses

    from effortlens.settings import load_settings

    settings = load_settings()
    limits = dataclasses.replace(settings.limits, partition_rows=3_000, partition_above_rows=1)
    settings = dataclasses.replace(settings, limits=limits)
    whole = open_build(tiny_planted, cache_dir=tmp_path / "a", partitioned=False)
    parts = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "b")
    assert parts.manifest["build"].startswith("partitioned")
    files = parts.manifest["files"]
    practice_parts = [f for f in files if f.startswith(AGGREGATES_LAYOUT["practice"] + "/")]
    assert len(practice_parts) > 1  # one per partition
    # every view fact, the touches too (one credit fit over every partition's touches)
    assert any(f.startswith(AGGREGATES_LAYOUT["touches"] + "/") for f in files)
    for name in ("practice", "verifiers"):
        a = as_strings(precomputed(whole.enriched, name).collect())
        b = as_strings(precomputed(parts.enriched, name).collect())
        assert_frame_equal(b.sort(b.columns), a.sort(a.columns))  # same rows, in any order
    for name in ("practice_shares", "practice_sequences"):  # the partitions' sums added up
        a = as_strings(precomputed(whole.enriched, name).collect())
        b = as_strings(precomputed(parts.enriched, name).collect())
        keys = [c for c in a.columns if c != "n"]
        assert_frame_equal(b.sort(keys), a.select(b.columns).sort(keys))
    # the pages read them as they read the in-memory build's
    view = filter_enriched(parts.enriched, Filter())
    expected = filter_enriched(whole.enriched, Filter())
    assert_frame_equal(
        flow_table(with_verifiers(view, parts.enriched, Filter())),
        flow_table(with_verifiers(expected, whole.enriched, Filter())),
    )


def test_the_pages_show_the_event_paths_tables_from_the_precomputed_inputs(tiny_planted):
    """Wiring: the deviance and journey pages read the build's precomputed inputs and show what
    the event functions give on the same filtered view (none, a team, a period, both)."""
    from effortlens_widgets.apps.buyer_journey import buyer_journey_app
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app
    from effortlens_widgets.views import page_coverage

    deviance_page = positive_deviance_app(data_dir=tiny_planted)
    journey_page = buyer_journey_app(data_dir=tiny_planted)
    enriched = deviance_page.state.enriched
    assert precomputed(enriched, "practice") is not None  # read from the build
    from effortlens.deviance.differs import practice_codes_of

    assert practice_codes_of(enriched) is not None  # a period counts the build's codes
    compared = over_periods = 0
    for flt in reader_filters(enriched)[:4]:
        deviance_page.state.filter = journey_page.state.filter = flt
        view = filter_enriched(enriched, flt)
        events_view = view.replace(activities=view.lazy("activities").collect())
        deviance = rep_deviance(events_view)  # the event path's counts
        shown = deviance_page.views[0].frames.get("what_differs")
        expected = what_differs(events_view.activities, deviance)
        if expected.height:
            compared += 1
            assert_frame_equal(shown, expected, check_exact=False, rel_tol=1e-9)
        if flt.start is not None:  # a period: one rep picked, counted from the build's codes
            picked = deviance.filter(pl.col("volume") > 0)["rep_id"].sort()[0]
            deviance_page.views[0].rep = picked
            expected = what_differs(events_view.activities, deviance, rep_ids=[picked])
            shown = deviance_page.views[0].frames.get("what_differs")
            assert expected.height > 0
            assert_frame_equal(shown, expected, check_exact=False, rel_tol=1e-9)
            deviance_page.views[0].rep = None
            over_periods += 1
        path = page_coverage(journey_page.state).stage_path
        flow = flow_table(filter_enriched(journey_page.state.enriched, flt), stage_path=path)
        assert_frame_equal(as_strings(journey_page.views[0].frames["flow"]), as_strings(flow))
    assert compared  # the planted deviants' practice was compared at least once
    assert over_periods == 2  # and a picked rep's over both periods


# --- habits with a period: the build's touch codes (issue 13, session 6; habits helper) -----


def _periods_cutting_weeks(enriched) -> list[Filter]:
    """Periods starting and ending mid-week (Wednesday to Tuesday, a single Sunday, open at
    either end), alone and with a team, one rep or one activity type, and the reader's; a
    team, a rep, an activity type, a segment and role, a rep with a type without a period
    (the page sums those from the touch codes too)."""
    reps = enriched.reps.with_columns(pl.col("team", "segment", "role").cast(pl.String))
    team = reps["team"].drop_nulls().unique().sort()[0]
    rep = reps.filter(pl.col("team") == team)["rep_id"].sort()[0]
    placed = reps.drop_nulls(["segment", "role"]).sort("rep_id").row(0, named=True)
    kind = enriched.daily["activity_type"].cast(pl.String).unique().sort()[0]
    first, last = enriched.daily["day"].min(), enriched.daily["day"].max()
    wednesday = last - dt.timedelta(days=(last.weekday() - 2) % 7 + 35)
    tuesday = wednesday + dt.timedelta(days=20)
    sunday = wednesday + dt.timedelta(days=4)
    weeks = [
        Filter(start=wednesday, end=tuesday),
        Filter(start=wednesday, end=tuesday, teams=(team,)),
        Filter(start=wednesday, end=tuesday, reps=(rep,)),
        Filter(start=wednesday, end=tuesday, activity_types=(kind,)),
        Filter(start=sunday, end=sunday),
        Filter(start=wednesday),
        Filter(end=tuesday, teams=(team,)),
        Filter(start=first, end=last),  # every touch: the page sums its cells
        Filter(teams=(team,)),
        Filter(reps=(rep,)),
        Filter(activity_types=(kind,)),
        Filter(segments=(placed["segment"],), roles=(placed["role"],)),
        Filter(reps=(rep,), activity_types=(kind,)),
    ]
    return weeks + [f for f in reader_filters(enriched) if f.start or f.end]


def test_a_builds_touch_codes_give_the_touch_tables_of_periods_cutting_weeks(
    tiny_planted, tmp_path
):
    from effortlens.habits import touch_codes_of

    enriched = open_build(tiny_planted, cache_dir=tmp_path / "cache").enriched
    codes = touch_codes_of(enriched)
    assert codes is not None  # written by the build, mapped from it
    touches = precomputed(enriched, "touches")
    compared = 0
    for flt in _periods_cutting_weeks(enriched):
        kept = filter_frame(touches, flt).collect()
        compared += assert_period_habits_equal(codes, flt, kept)
    assert compared >= 8


def test_the_habits_page_with_a_period_shows_the_touch_tables(tiny_planted):
    """Wiring: with a period, a team, a rep or an activity type the habits page draws the
    tables of the filter's touch facts (summed from the touch codes), with the period
    holding every touch those of its cells."""
    from effortlens.findings import findings_html, habits_findings
    from effortlens.habits import rank_habits
    from effortlens_widgets.apps.habits import habits_app
    from effortlens_widgets.views import habits_numbers

    page = habits_app(data_dir=tiny_planted)
    state, view = page.state, page.views[0]
    touches = precomputed(state.enriched, "touches")
    for flt in _periods_cutting_weeks(state.enriched):
        state.filter = flt
        drawn = habits_numbers(state, state.view, no_effort=view.no_effort_message)
        expected = touch_habits(filter_frame(touches, flt))
        if "message" in drawn:
            assert expected["timing"]["activities"].sum() == 0, flt
            continue
        for name in ("timing", "cadence", "sequences"):
            assert_frame_equal(as_strings(drawn[name]), expected[name])
        finding = habits_findings(
            rank_habits(expected["timing"], expected["cadence"], expected["sequences"]),
            effects=expected["effects"],
        )
        assert drawn["finding"] == findings_html(finding), flt


def test_practice_codes_give_what_differs_of_the_practice_facts_over_periods(
    planted, tmp_path, monkeypatch
):
    """The build's practice codes (integer columns counted by numpy) give the table of the
    practice facts' rows (Polars group-bys) for periods starting on every weekday, an open
    start or end, with a team, a segment or a rep, for the planted deviants and a picked
    rep; they are the practice facts' values, row for row."""
    from effortlens.deviance import differs
    from effortlens.deviance.differs import PracticeCodes, what_differs_coded
    from effortlens.touch_build import write_practice_codes

    enriched, practice = planted
    written = write_practice_codes(practice, tmp_path / "codes")
    codes = PracticeCodes(tmp_path / "codes")
    assert written == codes.rows == practice["day"].count()
    # decoded, the codes are the practice facts' rows (in day, then rep order)
    column = codes.columns
    types = pl.concat([codes.types, pl.Series([None], dtype=pl.String)])
    seconds = pl.Series(column["gap_seconds"]).cast(pl.Int64)
    decoded = pl.DataFrame(
        {
            "rep_id": codes.reps["rep_id"].gather(column["rep"]),
            "day": pl.Series(column["day"]).cast(pl.Date),
            "activity_type": types.gather(column["type"]),
            "weekday": pl.Series(column["weekday"]),
            "hour": pl.Series(column["hour"]),
            "previous_type": types.gather(column["previous"]),
            "gap_days": pl.select(pl.when(seconds >= 0).then(seconds / 86_400)).to_series(),
            "previous_day": pl.Series(column["previous_day"]).replace(-(2**31), None).cast(pl.Date),
        }
    )
    assert decoded["day"].is_sorted()
    kept = practice.filter(pl.col("day").is_not_null()).select(decoded.columns)
    assert_frame_equal(
        decoded.sort(pl.all(), nulls_last=True),
        kept.sort(pl.all(), nulls_last=True),
        check_dtypes=False,
    )
    team = enriched.reps["team"].drop_nulls().cast(pl.String).unique().sort()[0]
    segment = enriched.reps["segment"].drop_nulls().cast(pl.String).unique().sort()[0]
    last = practice["day"].max()
    periods = [
        Filter(start=last - dt.timedelta(days=90 + shift), end=last - dt.timedelta(days=shift))
        for shift in range(7)  # every weekday of the start and of the end
    ]
    periods += [
        Filter(start=last - dt.timedelta(days=180)),
        Filter(end=last - dt.timedelta(days=200)),
        Filter(teams=(team,), start=last - dt.timedelta(days=365), end=last),
        Filter(segments=(segment,), start=last - dt.timedelta(days=120)),
        *(f for f in reader_filters(enriched) if f.start or f.end),
    ]
    compared = 0
    for flt in periods:
        view = filter_enriched(enriched, flt)
        deviance = rep_deviance(view)
        picked = deviance.filter(pl.col("volume") > 0)["rep_id"].sort()[:1].to_list()
        for rep_ids in (None, picked):
            for min_support in (1, 100):
                expected = what_differs_in(
                    practice_in(practice, flt), deviance, rep_ids=rep_ids, min_support=min_support
                )
                # read at once or by many chunks; every touch counted, the compared ones
                # picked first, or either by chunk; each cell's follow-ups masked or sorted
                for chunk, compact, masked in (
                    (differs.CODED_CHUNK, 0.0, 2),
                    (997, 1.1, 0),
                    (997, 0.5, 64),
                ):
                    monkeypatch.setattr(differs, "CODED_CHUNK", chunk)
                    monkeypatch.setattr(differs, "COMPACT_BELOW", compact)
                    monkeypatch.setattr(differs, "_MASKED_CELLS", masked)
                    got = what_differs_coded(
                        codes, deviance, flt, rep_ids=rep_ids, min_support=min_support
                    )
                    assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-12)
                compared += expected.height
    assert compared > 1000  # deviants compared, every feature
    assert what_differs_coded(codes, deviance, Filter(activity_types=("call",))) is None
    # a period given as datetimes (a notebook's): their dates, as habits read them
    as_dates = Filter(start=last - dt.timedelta(days=120), end=last)
    midnight = dt.time()
    as_times = Filter(
        start=dt.datetime.combine(as_dates.start, midnight),
        end=dt.datetime.combine(as_dates.end, midnight),
    )
    deviance = rep_deviance(filter_enriched(enriched, as_dates))
    assert_frame_equal(
        what_differs_coded(codes, deviance, as_times),
        what_differs_coded(codes, deviance, as_dates),
    )


def _effects_by_polars(counts, cell_of, type_names, gap_rows, min_support):
    """The period path's effects as before the numpy tables: each count table's nonzero
    entries as rows, the Polars queries of what_differs_in on them."""
    from effortlens.deviance.differs import (  # noqa: PLC2701 - the old path, to compare
        FOLLOW_UP_DAYS,
        _gap_effects,  # noqa: PLC2701
        _ranked,  # noqa: PLC2701
        _sequence_effects,  # noqa: PLC2701
        _share_effects,  # noqa: PLC2701
    )
    from effortlens.vocabulary import hour_name, weekday_name

    names = pl.Series(type_names, dtype=pl.String)
    level_names = {
        "activity_type_share": pl.col("level").replace_strict(
            list(range(len(type_names))), type_names, return_dtype=pl.String
        ),
        "weekday_share": weekday_name("level"),
        "hour_share": hour_name("level"),
        "follow_up_share": pl.when(pl.col("level") == 1)
        .then(pl.lit(f"within {FOLLOW_UP_DAYS:g} days"))
        .otherwise(pl.lit(f"after {FOLLOW_UP_DAYS:g} days")),
    }
    parts = []
    for feature, name in level_names.items():
        cells, levels = np.nonzero(counts[feature])
        raw = pl.Series("level", levels)
        if feature in ("weekday_share", "hour_share"):  # counted + 1 (0: none)
            raw = pl.select(pl.when(raw > 0).then(raw - 1)).to_series().rename("level")
        n = counts[feature][cells, levels].astype(float)
        parts.append(
            pl.DataFrame({"rep_id": pl.Series(cells, dtype=pl.UInt32), "level": raw, "n": n})
            .with_columns(name.alias("level"), feature=pl.lit(feature))
            .select("rep_id", "feature", "level", "n")
        )
    width = len(type_names)
    cells, pairs = np.nonzero(counts["sequence"])
    transitions = pl.DataFrame(
        {
            "rep_id": pl.Series(cells, dtype=pl.UInt32),
            "previous_type": names.gather(pairs // width),
            "activity_type": names.gather(pairs % width),
            "n": counts["sequence"][cells, pairs].astype(float),
        }
    )
    schema = {"cell": pl.UInt32, "value": pl.Float64, "base": pl.Float64}
    schema |= {"mean": pl.Float64, "var": pl.Float64}
    gaps = (
        pl.DataFrame(gap_rows, schema=schema, orient="row").lazy().join(cell_of.lazy(), on="cell")
    )
    sides = cell_of.select(pl.col("cell").alias("rep_id"), "peer_group", "weight", "side").lazy()
    return _ranked(
        [
            _share_effects(pl.concat(parts, how="vertical_relaxed").lazy(), sides),
            _sequence_effects(transitions.lazy(), sides, min_support=min_support),
            _gap_effects(gaps, min_support=min_support),
        ]
    )


@pytest.mark.parametrize("seed", range(40))
def test_the_period_paths_numpy_effects_equal_its_polars_queries(seed):
    """what_differs_coded's effects from its count tables by numpy (_coded_table) equal the
    Polars queries it ran before on the tables' rows: random tables with levels counted in
    one group only, zero rows, a group without peers, unnamed levels (a weekday or hour of
    "none"), cells without follow-ups, with one (no spread), and min_support 1 or 100."""
    from effortlens.deviance.differs import _coded_table  # noqa: PLC2701 - against the old

    rng = np.random.default_rng(seed)
    type_names = ["call", "email", "meeting", "video", None]  # the last code: none
    width = len(type_names)
    n_groups = int(rng.integers(1, 5))
    rows = []
    for g in range(n_groups):
        weight = float(rng.integers(1, 4))
        rows.append((f"group {g}", weight, "deviant"))
        if g or rng.random() < 0.7:  # the first group sometimes without peers
            rows.append((f"group {g}", weight, "peer"))
    cell_of = pl.DataFrame(rows, schema=["peer_group", "weight", "side"], orient="row")
    cell_of = cell_of.with_row_index("cell")
    n_cells = cell_of.height

    def table(levels: int, scale: int) -> np.ndarray:
        counts = rng.integers(0, scale, (n_cells, levels)) * (rng.random((n_cells, levels)) < 0.6)
        counts[rng.random(n_cells) < 0.15] = 0  # a cell that never did it
        return counts.astype(np.int64)

    calendar_types = table(width, 300)
    calendar_types[:, -1] = 0  # a touch has a type
    sequence = table(width * width, 200)
    by_pair = sequence.reshape(n_cells, width, width)
    by_pair[:, width - 1, :] = 0  # from none: not counted
    by_pair[:, :, width - 1] = 0  # a touch has a type
    counts = {
        "activity_type_share": calendar_types,
        "weekday_share": table(9, 300),  # 0: none, 1: no day, 2..8: Mon..Sun
        "hour_share": table(25, 300),  # 0: none, 1..24: 00:00..23:00
        "follow_up_share": table(2, 400),
        "sequence": sequence,
    }
    counts["weekday_share"][:, 1] = 0  # ISO weekdays: no day 0
    gap_rows = []
    for cell in range(n_cells):
        n = int(rng.choice([0, 1, 2, 50, 500]))
        if n:
            var = None if n == 1 else float(rng.uniform(0.1, 2))
            gap_rows.append((cell, float(rng.uniform(0.5, 9)), float(n), float(rng.normal()), var))
    for min_support in (1, 100):
        got = _coded_table(counts, cell_of, type_names, gap_rows, min_support)
        expected = _effects_by_polars(counts, cell_of, type_names, gap_rows, min_support)
        assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-12, abs_tol=1e-15)
