"""What differs without a period sums the compared reps' cells by numpy
(``PracticeRepCells``) and reads only the compared reps' runs of the follow-ups
(``differs._compared_runs``, issue 13): the same table as reading the whole column (the
medians' cells to the bit; the effects to 1e-12, as Polars sums them in any order), and each
rep's run read back where it says."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from filter_support import reader_filters
from polars.testing import assert_frame_equal

import effortlens.deviance.differs as differs
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
    PracticeRepCells,
    _compared_runs,  # noqa: PLC2701 - against the column
    _gap_cells_of_reps,  # noqa: PLC2701 - its medians
    _sides,  # noqa: PLC2701 - the compared reps
)
from effortlens.filters import Filter, filter_enriched, filter_frame


def test_compared_runs_are_the_reps_runs_of_the_column(monkeypatch):
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 40, size=300)
    counts[rng.random(300) < 0.2] = 0  # reps without follow-ups
    starts = np.cumsum(counts) - counts
    rows = int(counts.sum())
    column = pl.DataFrame({"gap_seconds": rng.integers(0, 10**7, size=rows, dtype=np.int32)})
    lazy = column.lazy()
    whole = column["gap_seconds"].to_numpy()
    for gap, at_most in ((0, 1.0), (50, 1.0), (1 << 16, 1.0), (0, -1.0)):
        monkeypatch.setattr(differs, "_RUN_GAP", gap)
        monkeypatch.setattr(differs, "_RUNS_AT_MOST", at_most)
        for share in (0.02, 0.3, 1.0):
            picked = np.flatnonzero(rng.random(300) < share)
            values, moved = _compared_runs(lazy, starts[picked], counts[picked], rows=rows)
            if at_most > 0 and share < 1.0:
                assert values.size < rows  # only some rows read
            for s, m, c in zip(starts[picked], moved, counts[picked], strict=True):
                assert np.array_equal(values[m : m + c], whole[s : s + c])
    # no compared follow-up: nothing read
    values, _ = _compared_runs(lazy, starts[:0], counts[:0], rows=rows)
    assert values.size == 0


@pytest.fixture(scope="module")
def planted(small_planted_enriched):
    enriched, _ = small_planted_enriched
    practice = practice_facts(enriched.activities).collect()
    cells = {k: v.collect() for k, v in practice_cells(practice).items()}
    by_rep = practice_gaps(practice)
    gaps = {
        "gaps": sorted_gaps(by_rep["gaps"]).lazy(),
        "all_gap_reps": by_rep["gap_reps"].collect().sort("rep_id"),
    }
    return enriched, practice, cells, gaps


def test_what_differs_by_runs_equals_reading_the_whole_column(planted, monkeypatch):
    enriched, practice, cells, gaps = planted
    reps = enriched.reps.with_columns(pl.col("segment", "role").cast(pl.String))
    filters = [f for f in reader_filters(enriched) if f.start is None and f.end is None]
    filters += [Filter(segments=(reps["segment"].drop_nulls().sort()[0],))]
    filters += [Filter(roles=(reps["role"].drop_nulls().sort()[-1],))]
    compared = 0

    def cells_of(gap: int, at_most: float, flt: Filter, rep_ids, deviance) -> pl.DataFrame:
        monkeypatch.setattr(differs, "_RUN_GAP", gap)
        monkeypatch.setattr(differs, "_RUNS_AT_MOST", at_most)
        sides = _sides(deviance, direction="positive", rep_ids=rep_ids)
        by_reps = {**gaps, "gap_reps": filter_frame(gaps["all_gap_reps"], flt)}
        return _gap_cells_of_reps(by_reps, sides).collect().sort("peer_group", "side")

    for flt in filters:
        deviance = rep_deviance(filter_enriched(enriched, flt))
        picked = deviance.filter(pl.col("volume") > 0)["rep_id"].sort()[:1].to_list()
        for rep_ids in (None, picked):
            for min_support in (1, 100, 1000):

                def table(
                    gap: int, at_most: float, flt=flt, rep_ids=rep_ids, m=min_support, d=deviance
                ):
                    monkeypatch.setattr(differs, "_RUN_GAP", gap)
                    monkeypatch.setattr(differs, "_RUNS_AT_MOST", at_most)
                    return what_differs_in(
                        practice_in(practice, flt),
                        d,
                        rep_ids=rep_ids,
                        min_support=m,
                        cells={k: filter_frame(v, flt) for k, v in cells.items()},
                        gaps={**gaps, "gap_reps": filter_frame(gaps["all_gap_reps"], flt)},
                    )

                whole = table(0, -1.0)  # the whole column, as before
                for gap in (0, 1 << 16):
                    # Polars sums the effects in any order (the same path twice differs
                    # in the last bit): the tables to 1e-12, the medians' cells exactly
                    got = table(gap, 1.0)
                    assert_frame_equal(got, whole, check_exact=False, rel_tol=1e-12)
                    assert_frame_equal(
                        cells_of(gap, 1.0, flt, rep_ids, deviance),
                        cells_of(0, -1.0, flt, rep_ids, deviance),
                    )
                compared += whole.filter(pl.col("feature") == "median_days_between_touches").height
    assert compared > 0  # medians were compared, not only empty tables


def test_the_reps_cells_summed_by_numpy_equal_joining_them(planted):
    enriched, practice, cells, gaps = planted
    rep_cells = PracticeRepCells(cells["shares"], cells["sequences"])
    # a build writing a rep's cells in two parts (a partitioned build): the same arrays
    halves = {k: pl.concat([v.with_columns(n=pl.col("n") / 2)] * 2) for k, v in cells.items()}
    split = PracticeRepCells(halves["shares"].lazy(), halves["sequences"].lazy())
    assert np.array_equal(split.shares, rep_cells.shares)
    assert np.array_equal(split.sequences, rep_cells.sequences)
    reps = enriched.reps.with_columns(pl.col("segment", "role").cast(pl.String))
    filters = [f for f in reader_filters(enriched) if f.start is None and f.end is None]
    filters += [Filter(segments=(reps["segment"].drop_nulls().sort()[0],))]
    filters += [Filter(roles=(reps["role"].drop_nulls().sort()[-1],))]
    compared = 0
    for flt in filters:
        deviance = rep_deviance(filter_enriched(enriched, flt))
        picked = deviance.filter(pl.col("volume") > 0)["rep_id"].sort()[:1].to_list()
        by_reps = {**gaps, "gap_reps": filter_frame(gaps["all_gap_reps"], flt)}
        for rep_ids in (None, picked):
            for min_support in (1, 100, 1000):
                expected = what_differs_in(
                    practice_in(practice, flt),
                    deviance,
                    rep_ids=rep_ids,
                    min_support=min_support,
                    cells={k: filter_frame(v, flt) for k, v in cells.items()},
                    gaps=by_reps,
                )
                got = what_differs_in(
                    practice_in(practice, flt),
                    deviance,
                    rep_ids=rep_ids,
                    min_support=min_support,
                    rep_cells=rep_cells.kept(flt),
                    gaps=by_reps,
                )
                assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-12)
                # the days between touches from the touches themselves (no gaps given)
                touched = what_differs_in(
                    practice_in(practice, flt),
                    deviance,
                    rep_ids=rep_ids,
                    min_support=min_support,
                    rep_cells=rep_cells.kept(flt),
                )
                assert_frame_equal(touched, expected, check_exact=False, rel_tol=1e-9)
                assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-12)
                compared += expected.height
    assert compared > 0
