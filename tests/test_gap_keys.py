"""The follow-ups sorted by integer keys (issue 13, the partitioned build's later steps): the
parts' follow-ups kept as one int64 each (:class:`effortlens.deviance.differs._GapKeys`), the
gap runs written from the sorted keys (:func:`write_gap_key_runs`) and the sorted follow-ups
written from them (:func:`write_sorted_gap_keys`) give the same files as the text sort
(:func:`sorted_gaps`, :func:`write_gap_runs`) of all the parts' frames at once, whatever
category codes each part's reps carry; follow-ups a key cannot hold take the text sort."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.deviance.differs import (
    _GapKeys,  # noqa: PLC2701 - the keys under test
    sorted_gaps,
    write_gap_key_runs,
    write_gap_runs,
    write_sorted_gap_keys,
)

RUN_FILES = ("seconds.npy", "bins.npy", "edges.npy")


def _parts(rng: np.random.Generator, seconds: list[np.ndarray]) -> list[pl.DataFrame]:
    """Follow-up frames as pass 1 writes them: text reps (each part a different subset, so
    their category codes differ part to part), seconds as floats."""
    ids = np.array([f"R{i:04d}" for i in rng.permutation(300)] + ["r1", "R", "Rb", "é"])
    out = []
    for values in seconds:
        some = rng.choice(ids, size=rng.integers(5, len(ids)), replace=False)
        out.append(
            pl.DataFrame(
                {"rep_id": rng.choice(some, len(values)), "gap_seconds": values.astype(float)}
            )
        )
    return out


def _same_runs(one, other) -> None:
    for name in RUN_FILES:
        a, b = np.load(one / name), np.load(other / name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert_frame_equal(
        pl.read_parquet(one / "rep.keys.parquet"), pl.read_parquet(other / "rep.keys.parquet")
    )


@pytest.mark.parametrize("high", [5, 2**31 - 1])
def test_keys_sort_as_the_text(tmp_path, high):
    rng = np.random.default_rng(high)
    parts = _parts(rng, [rng.integers(0, high + 1, n) for n in (4_000, 0, 1, 2_500, 3_000)])
    whole = sorted_gaps(pl.concat(parts))
    held = _GapKeys()
    for part in parts:
        # as a part's frame may come: its reps as categories (their codes its own) or text
        held.add(part.with_columns(pl.col("rep_id").cast(pl.Categorical)) if high > 5 else part)
    keys, names = held.sorted_keys()
    assert keys.size == whole.height
    # the keys' order is sorted_gaps' order: the reps' ranks as text sorts them, then seconds
    assert names.to_list() == whole.get_column("rep_id").unique().sort().to_list()
    write_sorted_gap_keys(keys, names, tmp_path / "gaps.parquet", row_group_size=1_000)
    assert_frame_equal(pl.read_parquet(tmp_path / "gaps.parquet"), whole)
    write_gap_runs(whole, tmp_path / "text")
    assert write_gap_key_runs(keys, names, tmp_path / "keys") == whole.height
    _same_runs(tmp_path / "text", tmp_path / "keys")


def test_keys_of_nothing(tmp_path):
    empty = pl.DataFrame(schema={"rep_id": pl.String, "gap_seconds": pl.Float64})
    held = _GapKeys()
    held.add(empty)
    keys, names = held.sorted_keys()
    whole = sorted_gaps(empty)
    write_sorted_gap_keys(keys, names, tmp_path / "gaps.parquet", row_group_size=1_000)
    assert_frame_equal(pl.read_parquet(tmp_path / "gaps.parquet"), whole)
    write_gap_runs(whole, tmp_path / "text")
    assert write_gap_key_runs(keys, names, tmp_path / "keys") == 0
    _same_runs(tmp_path / "text", tmp_path / "keys")


@pytest.mark.parametrize("odd", ["past Int32", "negative", "no rep"])
def test_what_a_key_cannot_hold_takes_the_text_sort(tmp_path, odd):
    rng = np.random.default_rng(3)
    parts = _parts(rng, [rng.integers(0, 1_000, n) for n in (2_000, 1_500, 1_800)])
    bad = {"past Int32": 2.0**31, "negative": -1.0, "no rep": 7.0}[odd]
    parts[1] = parts[1].with_columns(
        pl.when(pl.int_range(pl.len()) == 10)
        .then(pl.lit(bad))
        .otherwise("gap_seconds")
        .alias("gap_seconds"),
        pl.when((pl.int_range(pl.len()) == 10) & pl.lit(odd == "no rep"))
        .then(None)
        .otherwise("rep_id")
        .alias("rep_id"),
    )
    held = _GapKeys()
    for part in parts:
        held.add(part)
    assert held.sorted_keys() is None  # the first part's keys went back to frames
    assert_frame_equal(held.sorted_frame(), sorted_gaps(pl.concat(parts)))
    held.write_runs(tmp_path / "held")
    write_gap_runs(sorted_gaps(pl.concat(parts)), tmp_path / "text")
    _same_runs(tmp_path / "text", tmp_path / "held")
