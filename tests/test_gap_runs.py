"""The follow-ups' seconds by rep with each rep's counts by bin (``write_gap_runs``, issue 13):
a view without a period finds each (peer group, side) cell's median days between touches
from the cell's reps' bin counts and the values of the median's bin, the same median as
every follow-up of the cell sorted; a build writes them and a kernel reads them, and a
build from before them still works."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest
from filter_support import reader_filters
from polars.testing import assert_frame_equal

import effortlens.deviance.differs as differs
import effortlens.facts as facts
from effortlens.deviance import (
    practice_cells,
    practice_facts,
    practice_gaps,
    practice_in,
    rep_deviance,
    sorted_gaps,
    what_differs_in,
)
from effortlens.deviance.differs import (
    PracticeGapRuns,
    _gap_cells_of_reps,  # noqa: PLC2701 - its medians
    _median_days,  # noqa: PLC2701 - the median of every value
    _sides,  # noqa: PLC2701 - the compared reps
    gap_bin_edges,
    practice_gap_runs_of,
    write_gap_runs,
)
from effortlens.facts import AGGREGATES_LAYOUT, PRACTICE_GAP_RUNS, open_build
from effortlens.filters import Filter, filter_enriched, filter_frame


def _gaps(values: dict[str | None, list[int]], dtype=pl.Int32) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "rep_id": [r for r, v in values.items() for _ in v],
            "gap_seconds": [x for v in values.values() for x in v],
        },
        schema={"rep_id": pl.String, "gap_seconds": pl.Int64},
    )
    return sorted_gaps(frame).with_columns(pl.col("gap_seconds").cast(dtype))


def _every_value(values: dict, reps) -> float | None:
    held = np.concatenate([np.asarray(values[r], dtype=np.int64) for r in reps] or [[]])
    return _median_days(held) if held.size else None


def test_the_median_from_the_bins_is_the_median_of_every_value(tmp_path):
    rng = np.random.default_rng(3)
    values: dict[str | None, list[int]] = {}
    for i in range(120):
        n = int(rng.integers(1, 400))
        kind = i % 4
        if kind == 0:  # spread over many bins (log-uniform seconds, 1 s to a year)
            v = np.exp(rng.uniform(0, np.log(3e7), n)).astype(np.int64)
        elif kind == 1:  # ties and zeros
            v = rng.choice([0, 0, 1, 86_400, 86_400, 86_401], n)
        elif kind == 2:  # within one bin
            v = rng.integers(100_000, 101_000, n)
        else:  # past the last edge too (int64)
            v = rng.choice([5, 2**31 - 1, 2**32, 2**33 + 7], n)
        values[f"r{i:03d}"] = v.tolist()
    values[None] = [1, 2, 3]  # follow-ups without a rep: a run of its own, never compared
    gaps = _gaps(values, pl.Int64)
    assert write_gap_runs(gaps, tmp_path / "int64") == gaps.height
    runs = PracticeGapRuns(tmp_path / "int64")
    assert runs.reps["rep_id"].to_list() == [None, *sorted(r for r in values if r)]
    assert np.array_equal(runs.edges, gap_bin_edges())
    reps = [r for r in values if r is not None]
    for size in (1, 2, 3, 10, 60, 120):
        for _ in range(8):
            picked = list(rng.choice(reps, size, replace=False))
            got = runs.median_days(runs.rows_of(picked))
            assert got == _every_value(values, picked)  # exactly: the same two values
    # int32 seconds (the build's type when they fit); the two middle values in two bins
    small = {"a": [10], "b": [1_000_000], "c": [3, 3], "d": [7, 90_000, 90_001]}
    folder = tmp_path / "int32"
    write_gap_runs(_gaps(small), folder)
    runs = PracticeGapRuns(folder)
    assert runs.seconds_dtype == np.int32
    for picked in (["a", "b"], ["a"], ["c", "d"], ["a", "b", "c", "d"], ["b", "d"]):
        assert runs.median_days(runs.rows_of(picked)) == _every_value(small, picked)
    assert runs.median_days(runs.rows_of(["a", "b"])) == (10 + 1_000_000) / 2 / 86_400
    assert runs.median_days(runs.rows_of(["nobody"])) is None
    assert runs.rows_of(["b", "nobody", "a"]).tolist() == [0, 1]


def test_files_that_disagree_are_refused(tmp_path):
    write_gap_runs(_gaps({"a": [1, 2], "b": [3]}), tmp_path / "runs")
    keys = pl.read_parquet(tmp_path / "runs" / "rep.keys.parquet")
    keys.with_columns(follow_ups=pl.col("follow_ups") + 1).write_parquet(
        tmp_path / "runs" / "rep.keys.parquet"
    )
    with pytest.raises(ValueError, match="do not agree"):
        PracticeGapRuns(tmp_path / "runs")


@pytest.fixture(scope="module")
def planted(small_planted_enriched, tmp_path_factory):
    enriched, _ = small_planted_enriched
    practice = practice_facts(enriched.activities).collect()
    cells = {k: v.collect() for k, v in practice_cells(practice).items()}
    by_rep = practice_gaps(practice)
    sorted_frame = sorted_gaps(by_rep["gaps"])
    folder = tmp_path_factory.mktemp("gap_runs")
    write_gap_runs(sorted_frame, folder)
    gaps = {
        "gaps": sorted_frame.lazy(),
        "all_gap_reps": by_rep["gap_reps"].collect().sort("rep_id"),
    }
    return enriched, practice, cells, gaps, PracticeGapRuns(folder)


def test_what_differs_with_the_gap_runs_equals_reading_the_column(planted):
    enriched, practice, cells, gaps, runs = planted
    reps = enriched.reps.with_columns(pl.col("segment", "role").cast(pl.String))
    filters = [f for f in reader_filters(enriched) if f.start is None and f.end is None]
    filters += [Filter(segments=(s,)) for s in reps["segment"].drop_nulls().unique().sort()]
    filters += [Filter(roles=(r,)) for r in reps["role"].drop_nulls().unique().sort()]
    medians = 0
    for flt in filters:
        deviance = rep_deviance(filter_enriched(enriched, flt))
        picked = deviance.filter(pl.col("volume") > 0)["rep_id"].sort()[:1].to_list()
        by_reps = {**gaps, "gap_reps": filter_frame(gaps["all_gap_reps"], flt)}
        for rep_ids in (None, picked):
            sides = _sides(deviance, direction="positive", rep_ids=rep_ids)
            if sides.filter(pl.col("side") == "deviant").height:
                column = _gap_cells_of_reps(by_reps, sides).collect()
                binned = _gap_cells_of_reps({**by_reps, "runs": runs}, sides).collect()
                assert_frame_equal(binned, column)  # the medians to the bit
                medians += column.height
            for min_support in (1, 100):

                def table(
                    with_runs: bool, flt=flt, rep_ids=rep_ids, m=min_support, d=deviance, g=by_reps
                ):
                    return what_differs_in(
                        practice_in(practice, flt),
                        d,
                        rep_ids=rep_ids,
                        min_support=m,
                        cells={k: filter_frame(v, flt) for k, v in cells.items()},
                        gaps={**g, **({"runs": runs} if with_runs else {})},
                    )

                # Polars sums the effects in any order: the tables to 1e-12
                assert_frame_equal(table(True), table(False), check_exact=False, rel_tol=1e-12)
    assert medians > 4  # cells' medians were compared, not only empty tables


def test_a_build_writes_the_gap_runs_and_one_from_before_them_still_works(tiny_planted, tmp_path):
    built = open_build(tiny_planted, cache_dir=tmp_path / "cache")
    folder = built.path / PRACTICE_GAP_RUNS
    runs = practice_gap_runs_of(built.enriched)
    assert runs is not None and runs is practice_gap_runs_of(built.enriched)  # once a build
    # the runs are the gap facts' runs: the same reps, counts and seconds in the same order
    stored = pl.read_parquet(built.path / AGGREGATES_LAYOUT["practice_gaps"])
    reps = pl.read_parquet(built.path / AGGREGATES_LAYOUT["practice_gap_reps"])
    assert runs.reps["rep_id"].to_list() == reps["rep_id"].to_list()
    assert runs.reps["follow_ups"].to_list() == reps["follow_ups"].cast(pl.Int64).to_list()
    assert np.array_equal(np.load(folder / "seconds.npy"), stored["gap_seconds"].to_numpy())
    assert stored.height > 100
    # a build written before them (the folder gone): no runs, the column read instead
    entry = built.path
    shutil.rmtree(folder)
    facts._READ_ONCE.pop((entry, PRACTICE_GAP_RUNS), None)  # noqa: SLF001 - the process had mapped them
    assert practice_gap_runs_of(built.enriched) is None
    enriched = built.enriched
    deviance = rep_deviance(enriched)
    sides = _sides(deviance, direction="positive", rep_ids=None)
    if sides.filter(pl.col("side") == "deviant").is_empty():  # a rep stands in for them
        some = deviance.filter(pl.col("volume") > 0)["rep_id"].sort()[:1].to_list()
        sides = _sides(deviance, direction="positive", rep_ids=some)
    gaps = {
        "gaps": enriched.aggregates["practice_gaps"],
        "all_gap_reps": enriched.aggregates["practice_gap_reps"],
        "gap_reps": enriched.aggregates["practice_gap_reps"],
    }
    runs_copy = tmp_path / "runs"
    write_gap_runs(stored, runs_copy)
    assert_frame_equal(
        _gap_cells_of_reps({**gaps, "runs": PracticeGapRuns(runs_copy)}, sides).collect(),
        _gap_cells_of_reps(gaps, sides).collect(),
    )


def test_the_page_finds_its_medians_from_the_build_s_gap_runs(tiny_planted, monkeypatch):
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app

    sizes: list[int] = []
    median_days = PracticeGapRuns.median_days

    def counted(self, rows):
        sizes.append(rows.size)
        return median_days(self, rows)

    monkeypatch.setattr(PracticeGapRuns, "median_days", counted)
    page = positive_deviance_app(data_dir=tiny_planted)
    view = page.views[0]
    deviance = view._last_deviance  # noqa: SLF001 - what the first draw compared
    with_runs = view._what_differs(page.state.view, deviance)  # noqa: SLF001
    assert sizes and sum(sizes) > 2  # every compared rep's counts by bin were read
    gap = pl.col("feature") == "median_days_between_touches"
    assert with_runs.filter(gap).height > 0
    # the same table from the column (a build from before the runs)
    monkeypatch.setattr(differs, "practice_gap_runs_of", lambda enriched: None)
    sizes.clear()
    from_column = view._what_differs(page.state.view, deviance)  # noqa: SLF001
    assert not sizes
    assert_frame_equal(with_runs, from_column, check_exact=False, rel_tol=1e-12)
