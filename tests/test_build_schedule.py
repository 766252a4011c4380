"""The partitioned build's schedule: pass 1 of the view facts in each partition's enrichment
process (fused), the extent it needs taken from the loaded partitions, the daily roll-up
started beside the last partitions, the small tables and the quarantine written beside them.
The files are those of the unfused build, byte for byte; a failure in the fused process is
named and leaves nothing behind. Real child processes where it matters."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens import partitioned
from effortlens.enrich import daily_rows, enrich_tables
from effortlens.facts import open_build
from effortlens.loading import load_folder
from effortlens.settings import load_settings

#: Files whose rows come by rep in a group-by's order (not decided: two builds of the same
#: code differ there too); compared sorted.
UNORDERED = ("habit_cells/", "practice_cells/", "practice_periods/")


def _settings(**limits):
    s = load_settings()
    return dataclasses.replace(s, limits=dataclasses.replace(s.limits, **limits))


def _files(built) -> dict[str, str]:
    manifest = json.loads((built.path / "manifest.json").read_text())
    return {relative: entry["sha256"] for relative, entry in manifest["files"].items()}


def _unfused(real):
    """:func:`effortlens.partitioned.write_partitioned` without pass 1 in its processes."""

    def write_partitioned(*args, **kwargs):
        return real(*args, **{**kwargs, "views": None})

    return write_partitioned


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob(".*") if p.is_dir())


def test_the_fused_build_writes_the_files_of_the_unfused_one(tiny_planted, tmp_path, monkeypatch):
    # every partition in a process of its own, two at a time: pass 1 inside the enrichment's
    # process (fused) against pass 1 in processes of its own after every partition's facts
    monkeypatch.setattr(partitioned, "ISOLATE_ABOVE_ROWS", 0)
    settings = _settings(partition_rows=6_000, partition_above_rows=6_000, build_workers=2)
    fused = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "f", partitioned=True)
    monkeypatch.setattr(partitioned, "write_partitioned", _unfused(partitioned.write_partitioned))
    unfused = open_build(
        tiny_planted, settings=settings, cache_dir=tmp_path / "u", partitioned=True
    )
    a, b = _files(fused), _files(unfused)
    assert len([f for f in a if f.startswith("activities.parquet/")]) >= 3
    assert set(a) == set(b)
    differ = [relative for relative in a if a[relative] != b[relative]]
    for relative in differ:  # the same rows and sums
        assert relative.startswith(UNORDERED), relative
        x, y = (pl.read_parquet(built.path / relative) for built in (fused, unfused))
        assert x.height == y.height > 0
        assert_frame_equal(x.sort(x.columns), y.sort(y.columns), check_exact=False, rel_tol=1e-12)
    assert len(differ) < len(a) / 4  # the facts, touches, streaks, gaps: byte for byte
    for built in (fused, unfused):
        assert built.manifest["build"].startswith("partitioned")
        assert built.enriched.aggregates["touches"].collect().height > 1_000


def _raises_in_pass_one(p, *args, **kwargs):
    """:func:`effortlens.partitioned.enrich_partition` whose pass 1 (in the same process,
    after the partition's facts are written) raises for partition 2."""
    real = partitioned._view_part  # noqa: SLF001

    def failing(name, *a, **k):
        if name == "part-00001.parquet":
            raise ValueError("pass 1 broke")
        return real(name, *a, **k)

    partitioned._view_part = failing  # noqa: SLF001 - in the child: the call below finds it
    try:
        return partitioned.enrich_partition(p, *args, **kwargs)
    finally:
        partitioned._view_part = real  # noqa: SLF001


def test_a_failure_in_the_fused_pass_one_is_named_and_leaves_nothing(
    tiny_planted, tmp_path, monkeypatch
):
    monkeypatch.setattr(partitioned, "ISOLATE_ABOVE_ROWS", 0)  # every partition in a child
    settings = _settings(partition_rows=6_000, partition_above_rows=6_000, build_workers=2)
    cache = tmp_path / "cache"
    before = open_build(tiny_planted, settings=settings, cache_dir=cache, partitioned=True)
    manifest = (before.path / "manifest.json").read_text()
    n = len([f for f in json.loads(manifest)["files"] if f.startswith("activities.parquet/")])
    monkeypatch.setattr(partitioned, "enrich_partition", _raises_in_pass_one)
    with pytest.raises(ValueError, match="pass 1 broke") as failed:
        open_build(tiny_planted, settings=settings, cache_dir=cache, partitioned=True, force=True)
    where = f"(in the build step enrich and view facts' pass 1, partition 2 of {n}, in a process"
    assert any(note.startswith(where) for note in failed.value.__notes__)
    assert "_view_part" in str(failed.value.__cause__)  # the child's traceback
    assert _leftovers(cache) == []  # scratch (the view facts' too), staging: deleted
    assert (before.path / "manifest.json").read_text() == manifest


def test_the_extent_from_the_loaded_partitions_is_the_facts_one(tiny_planted, tmp_path):
    # pass 1 needs the extent of every touch before any partition is enriched: read from the
    # loaded partitions, it is what the event facts give
    settings = _settings(partition_rows=6_000, partition_above_rows=6_000)
    parts = tmp_path / "parts"
    options = {"settings": settings, "now": None, "chunk_rows": 6_000, "parts": parts}
    load = partitioned._load_by_partition  # noqa: SLF001
    load(tiny_planted, tmp_path / "valid", **options)
    assert len(list((parts / "activities").iterdir())) >= 3
    loaded = partitioned._loaded_extent(parts, settings)  # noqa: SLF001
    data = load_folder(tiny_planted, settings=settings)
    enriched = enrich_tables(data.tables, settings=settings)
    facts = tmp_path / "facts"
    (facts / "activities.parquet").mkdir(parents=True)
    (facts / "actions.parquet").mkdir()
    enriched.activities.write_parquet(facts / "activities.parquet" / "part-00000.parquet")
    enriched.actions.write_parquet(facts / "actions.parquet" / "part-00000.parquet")
    assert loaded == partitioned._touch_extent(facts)  # noqa: SLF001
    assert len(loaded["kinds"]) >= 2 and loaded["end"] > loaded["first"]
    # no touch on a contact, no action: nothing (as the facts of such a load give)
    empty = tmp_path / "empty"
    (empty / "activities" / "__part=0").mkdir(parents=True)
    data.tables["activities"].head(0).write_parquet(
        empty / "activities" / "__part=0" / "part-0.parquet"
    )
    assert partitioned._loaded_extent(empty, settings) == {  # noqa: SLF001
        "kinds": [], "first": None, "end": None
    }  # fmt: skip


def test_the_daily_roll_up_waits_for_every_partitions_rows(tiny_planted, tmp_path):
    # started beside the last partitions, it sums once each has written its rows (a file, or
    # a mark when it has none)
    settings = load_settings()
    data = load_folder(tiny_planted, settings=settings)
    daily = enrich_tables(data.tables, settings=settings).daily
    slim = tmp_path / "slim"
    slim.mkdir()
    partitioned.slim_rows(daily).write_parquet(slim / "part-00000.parquet")
    target = tmp_path / "daily.parquet"
    got: list[int] = []
    kwargs = {"settings": settings, "slice_rows": 10**9, "parts": 3}
    summing = threading.Thread(
        target=lambda: got.append(
            partitioned.write_daily(slim, data.tables["reps"], target, **kwargs)
        )
    )
    summing.start()
    time.sleep(0.5)
    (slim / "part-00001.none").touch()  # a partition without activities
    time.sleep(0.5)
    assert summing.is_alive() and not target.exists()  # one partition to go
    # a whole file moved into place, as a partition writes it (never seen half written)
    partitioned.slim_rows(daily.head(0)).write_parquet(slim / ".part-00002.parquet")
    (slim / ".part-00002.parquet").rename(slim / "part-00002.parquet")
    summing.join(timeout=60)
    assert got == [daily.height]
    written = pl.read_parquet(target).with_columns(pl.col(pl.Categorical).cast(pl.String))
    assert_frame_equal(written, daily, check_exact=False, rel_tol=1e-12)


def test_the_roll_up_by_runs_of_reps_is_the_roll_up_of_whole_files_bit_for_bit(
    tiny_planted, tmp_path, monkeypatch
):
    # each partition writes its roll-up rows a file per run of reps (fixed before the
    # partitions), each run summed from its own files: the very sums of the partitions' whole
    # files filtered a slice at a time (same additions, same order), whatever the runs
    settings = load_settings()
    data = load_folder(tiny_planted, settings=settings)
    acts = enrich_tables(data.tables, settings=settings).activities
    ghost = acts.head(5).with_columns(rep_id=pl.lit("not-a-rep"))  # a rep the table lacks
    # cells of many rows in one part and in many parts (numpy adds runs of 9+ pairwise)
    heavy = pl.concat([acts.head(40)] * 3)
    row = pl.int_range(pl.len())
    holes = acts.head(60).with_columns(  # no_impact_hours is made again from these two
        pl.when(row % 3 == 0).then(None).otherwise(pl.col("responded")).alias("responded"),
        pl.when(row % 2 == 0).then(None).otherwise(pl.col("hours")).alias("hours"),
    )
    other = acts.filter(pl.col("activity_type") != ghost["activity_type"][0]).head(4)
    ghost_too = other.with_columns(rep_id=pl.lit("not-a-rep"))  # other types than ghost's
    parts = [acts[::3], heavy, acts[1::3], ghost, acts[2::3], heavy.head(11), holes, ghost_too]
    reps = data.tables["reps"]
    whole = tmp_path / "whole"
    whole.mkdir()
    for p, part in enumerate(parts):
        rows = daily_rows(part).with_columns(pl.lit(p, pl.UInt32).alias("__part"))
        rows.write_parquet(whole / f"part-{p:05d}.parquet")
    kwargs = {"settings": settings, "slice_rows": 977}
    partitioned.write_daily(whole, reps, tmp_path / "whole.parquet", **kwargs)
    expected = pl.read_parquet(tmp_path / "whole.parquet")
    assert expected["activities"].max() >= 9 and expected["rep_id"][-1] == "not-a-rep"
    facts = partitioned._rep_facts(reps, settings)  # noqa: SLF001
    for rows_a_run in (1, 977, 10**9):  # a rep a run, some reps a run, one run
        slices = partitioned.roll_up_slices(facts, acts.height, slice_rows=rows_a_run)
        slim = tmp_path / f"runs-{rows_a_run}"
        slim.mkdir()
        for p, part in enumerate(parts):
            rows = daily_rows(part)
            if p % 2:  # rep_id and the type coded, each an Enum of its own part (ghosts too)
                rows = rows.with_columns(
                    pl.col(name).cast(pl.Enum(rows[name].unique()))
                    for name in ("rep_id", "activity_type")
                )
            partitioned._write_roll_up_rows(rows, slim, p, slices)  # noqa: SLF001
        assert len(list(slim.glob("part-*"))) == len(parts) and not list(slim.glob(".*"))
        for threads, piece in ((1, 1 << 18), (2, 1 << 18), (2, 97), (1, 1)):
            monkeypatch.setattr(partitioned, "_PIECE_ROWS", piece)  # summed a piece at a time
            target = tmp_path / f"runs-{rows_a_run}-{threads}-{piece}.parquet"
            n = partitioned.write_daily(
                slim, reps, target, slices=slices, threads=threads, parts=len(parts), **kwargs
            )
            got = pl.read_parquet(target)
            assert n == got.height == expected.height
            assert got.equals(expected)  # every bit
    # runs of other reps than the table's: refused, not summed wrongly
    other = partitioned.roll_up_slices(facts.tail(3), 10, slice_rows=5)
    with pytest.raises(ValueError, match="runs of reps"):
        partitioned.write_daily(slim, reps, tmp_path / "x.parquet", slices=other, **kwargs)


def write_daily(*_args, **_kwargs):
    """:func:`effortlens.partitioned.write_daily` (its name names the step) that fails, in
    the roll-up's process."""
    raise ValueError("roll-up broke")


def test_a_failure_in_the_roll_up_is_named_and_leaves_nothing(tiny_planted, tmp_path, monkeypatch):
    # the roll-up runs in a process of its own (every core's threads), beside the last
    # partitions: its failure is the build's, named, and leaves nothing behind
    monkeypatch.setattr(partitioned, "ISOLATE_ABOVE_ROWS", 0)  # every partition in a child
    settings = _settings(partition_rows=6_000, partition_above_rows=6_000, build_workers=2)
    cache = tmp_path / "cache"
    before = open_build(tiny_planted, settings=settings, cache_dir=cache, partitioned=True)
    manifest = (before.path / "manifest.json").read_text()
    monkeypatch.setattr(partitioned, "write_daily", write_daily)
    with pytest.raises(ValueError, match="roll-up broke") as failed:
        open_build(tiny_planted, settings=settings, cache_dir=cache, partitioned=True, force=True)
    where = "(in the build step write facts: daily roll-up, in a process of its own)"
    assert where in failed.value.__notes__
    assert _leftovers(cache) == []
    assert (before.path / "manifest.json").read_text() == manifest


def test_the_partitions_scratch_is_deleted_while_the_view_facts_go_on(
    tiny_planted, tmp_path, monkeypatch
):
    # 100M: ~10 GB of loaded partitions and roll-up rows took 10 s to delete, the build
    # waiting; now a thread deletes them beside the next steps, and the build waits for it
    # only at its end
    import shutil

    real = shutil.rmtree
    marks: list[tuple[str, float]] = []

    def slow(path, *args, **kwargs):
        if Path(path).name.startswith(".partitioned-"):
            time.sleep(1.5)  # a disk still writing the folder back
            marks.append(("deleted", time.monotonic()))
        return real(path, *args, **kwargs)

    def step(name):
        marks.append((name, time.monotonic()))

    monkeypatch.setattr(shutil, "rmtree", slow)
    settings = _settings(partition_rows=6_000, partition_above_rows=6_000)
    progress = type("Steps", (), {"step": staticmethod(step), "done": lambda self: None})()
    cache = tmp_path / "cache"
    built = open_build(
        tiny_planted, settings=settings, cache_dir=cache, partitioned=True, progress=progress
    )
    names = [name for name, _ in marks]
    assert names.count("deleted") == 1
    deleted = names.index("deleted")
    assert names.index("precompute views") < deleted  # the build went on meanwhile
    assert _leftovers(cache) == [] and not partitioned._DISCARDING  # noqa: SLF001
    assert built.enriched.aggregates["touches"].collect().height > 1_000
