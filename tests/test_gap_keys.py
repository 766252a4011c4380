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


def _same_period_files(one, other) -> None:
    files = sorted(str(p.relative_to(one)) for p in one.rglob("*") if p.is_file())
    assert files and files == sorted(
        str(p.relative_to(other)) for p in other.rglob("*") if p.is_file()
    )
    for relative in files:
        a, b = one / relative, other / relative
        if relative.endswith(".npy"):
            x, y = np.load(a), np.load(b)
            assert x.dtype == y.dtype and np.array_equal(x, y), relative
        elif relative.endswith(".parquet"):
            x, y = pl.read_parquet(a), pl.read_parquet(b)
            assert x.schema == y.schema, relative
            keys = [c for c in x.columns if x.schema[c] != pl.Float64]
            x, y = x.sort(keys, nulls_last=True), y.sort(keys, nulls_last=True)
            assert_frame_equal(x, y, check_exact=False, rel_tol=1e-12)
        else:
            assert a.read_bytes() == b.read_bytes(), relative


@pytest.mark.parametrize("chunk", [None, 1_000])
def test_period_presets_from_the_codes_are_those_of_the_facts(
    tiny_planted, tmp_path, monkeypatch, chunk
):
    """The preset files written from the practice codes (read whole, or 1,000 touches at a
    time: the sums added chunk by chunk) equal those from the practice facts read part by
    part, on real facts and on the same facts with a missing type, weekday, hour and
    previous touch planted in the windows."""
    import datetime as dt

    import effortlens.deviance.differs as differs
    from effortlens.deviance.differs import PracticeCodes, build_last_day, write_practice_periods

    if chunk is not None:
        monkeypatch.setattr(differs, "PERIOD_CODE_ROWS", chunk)
    from effortlens.facts import AGGREGATES_LAYOUT, open_build
    from effortlens.touch_build import write_practice_codes

    built = open_build(tiny_planted, cache_dir=tmp_path / "cache")
    practice = pl.read_parquet(built.path / AGGREGATES_LAYOUT["practice"])
    last = build_last_day(built.path)
    holes = (
        practice.with_columns(
            hole=(pl.int_range(pl.len()) % 17 == 3)
            & (pl.col("day") > last - dt.timedelta(days=100))
        )
        .with_columns(
            *(
                pl.when(pl.col("hole")).then(None).otherwise(c).alias(c)
                for c in ("activity_type", "weekday", "hour")
            ),
            *(
                pl.when(pl.col("hole") & (pl.int_range(pl.len()) % 2 == 0))
                .then(None)
                .otherwise(c)
                .alias(c)
                for c in ("previous_type", "gap_days", "previous_day")
            ),
        )
        .drop("hole")
    )
    for name, facts in (("real", practice), ("holes", holes)):
        parts = [facts.slice(0, facts.height // 3), facts.slice(facts.height // 3)]
        write_practice_codes(facts.lazy(), tmp_path / name / "codes")
        codes = PracticeCodes(tmp_path / name / "codes")
        window = codes.days(last - dt.timedelta(days=363), last)
        assert chunk is None or window.stop - window.start > 3 * chunk  # several chunks
        by_parts = write_practice_periods([p.lazy() for p in parts], tmp_path / name / "a", last)
        by_codes = write_practice_periods([], tmp_path / name / "b", last, codes=codes)
        assert by_parts == by_codes and by_parts
        _same_period_files(tmp_path / name / "a", tmp_path / name / "b")
