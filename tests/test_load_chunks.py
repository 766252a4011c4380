"""The chunked load (effortlens.loading.pipeline.load_folder_chunked): ranges of input rows
read straight from the file, the rows of repeated ids set aside into chunks of their own; the
loaded rows, quarantine and report are the in-memory load's."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from effortlens.loading import load_folder, pipeline
from effortlens.loading.pipeline import load_folder_chunked
from effortlens.loading.table import ROW, SORT_KEYS, RawTable, validate_table
from effortlens.settings import load_settings

T0 = datetime(2024, 3, 4, 9, tzinfo=UTC)
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _activities(n: int) -> list[dict]:
    return [
        {
            "activity_id": f"a{i:05d}",
            "rep_id": ["r1", "r2"][i % 2],
            "ts": T0 + timedelta(hours=i % 700),
            "activity_type": ["email", "call", "Fax"][i % 3],
            "account_id": f"acc{i % 30}",
            "opportunity_id": f"o{i % 50}" if i % 4 else None,
            "duration_min": float(i % 60) if i % 9 else None,
        }
        for i in range(n)
    ]


def _folder(folder: Path) -> None:
    """2,400 activities with repeats of ids far apart (after trimming too), a repeat whose
    first row is quarantined, many empty ids (never repeats) and future times."""
    folder.mkdir()
    pl.DataFrame({"rep_id": ["r1", "r2"]}).write_parquet(folder / "reps.parquet")
    rows = _activities(2_400)
    rows[10]["activity_id"] = " x1"  # repeated at 1,500 and 2,390 (trimmed the same)
    rows[1_500]["activity_id"] = "x1"
    rows[2_390]["activity_id"] = "x1 "
    rows[20]["activity_id"] = "y2"  # its first row fails a rule: the later one is kept
    rows[20]["rep_id"] = None
    rows[1_900]["activity_id"] = "y2"
    rows[30]["activity_id"] = "a00031"  # a repeat in one range
    for i in range(100, 2_400, 97):  # empty ids in every range: missing, not repeated
        rows[i]["activity_id"] = [None, "", "  "][i % 3]
    for i in range(5, 2_400, 41):  # after the load time
        rows[i]["ts"] = NOW + timedelta(days=1 + i % 9)
    pl.DataFrame(rows).write_parquet(folder / "activities.parquet", row_group_size=256)
    actions = [
        {
            "action_id": f"b{i:04d}",
            "ts": T0 + timedelta(hours=i % 300, minutes=30),
            "action_type": ["reply", "meeting_accepted"][i % 2],
            "account_id": f"acc{i % 30}",
        }
        for i in range(700)
    ]
    actions[600]["action_id"] = "b0003"
    pl.DataFrame(actions).write_parquet(folder / "buyer_actions.parquet")


def _loaded(data: pipeline.ChunkedLoad, table: str) -> pl.DataFrame:
    """A chunked load's rows of ``table`` in the whole load's order."""
    rows = pl.read_parquet(data.events[table])
    return rows.sort([*SORT_KEYS[table], ROW], nulls_last=True).drop(ROW)


def test_ranges_and_set_aside_repeats_load_as_in_memory(tmp_path):
    folder = tmp_path / "data"
    _folder(folder)
    settings = load_settings()
    whole = load_folder(folder, settings=settings, now=NOW)
    for chunk_rows in (500, 700, 5_000):  # 5, 4 and 1 range(s) of activities
        data = load_folder_chunked(
            folder, tmp_path / f"s{chunk_rows}", settings=settings, now=NOW, chunk_rows=chunk_rows
        )
        for table in ("activities", "buyer_actions"):
            assert_frame_equal(_loaded(data, table), whole.tables[table])
        assert_frame_equal(pipeline.read_quarantine(data.quarantine), whole.quarantine)
        assert data.report.to_dict() == whole.report.to_dict()
        assert data.report.notes == whole.report.notes
    reasons = dict(
        whole.quarantine.filter(pl.col("table") == "activities").group_by("reason").len().rows()
    )
    assert reasons["duplicate_id"] == 3  # x1 twice, a00031 once; y2's second row is kept
    assert reasons["missing_id"] >= 24 and reasons["future_timestamp"] > 50


def test_only_rows_of_repeated_ids_are_set_aside(tmp_path):
    folder = tmp_path / "data"
    _folder(folder)
    repeated, n_rows = pipeline.repeated_ids(folder / "activities.parquet", "activity_id")
    # x1 (3 rows), y2 (2), a00031 (2); the empty ids, however many, are not repeats
    assert repeated.len() == 3 and n_rows == 7
    none, n_none = pipeline.repeated_ids(folder / "reps.parquet", "rep_id")
    assert none.len() == 0 and n_none == 0


def test_repeated_ids_spilled_in_buckets_are_those_found_at_once(tmp_path, monkeypatch):
    # a file hashed a range of rows at a time, each range's hashes spilled to buckets by their
    # top bits: the same repeats (trimmed, far apart, across ranges) as every hash at once;
    # its scratch is gone after
    folder = tmp_path / "data"
    _folder(folder)
    file = folder / "activities.parquet"
    whole, n_whole = pipeline.repeated_ids(file, "activity_id")
    for rows in (300, 1_000, 2_399):  # 8, 3 and 2 ranges (8, 4 and 2 buckets)
        scratch = tmp_path / f"h{rows}"
        spilled, n_spilled = pipeline.repeated_ids(
            file, "activity_id", scratch=scratch, rows_per_pass=rows
        )
        assert spilled.sort().to_list() == whole.sort().to_list() and n_spilled == n_whole == 7
        assert not scratch.exists()
    # and the whole chunked load that takes it loads as in memory
    monkeypatch.setattr(pipeline, "REPEAT_PASS_ROWS", 500)
    settings = load_settings()
    data = load_folder_chunked(folder, tmp_path / "s", settings=settings, now=NOW, chunk_rows=700)
    memory = load_folder(folder, settings=settings, now=NOW)
    assert_frame_equal(_loaded(data, "activities"), memory.tables["activities"])
    assert_frame_equal(pipeline.read_quarantine(data.quarantine), memory.quarantine)


def test_a_range_reads_its_rows_with_their_input_row(tmp_path):
    folder = tmp_path / "data"
    _folder(folder)
    file = folder / "activities.parquet"
    columns = pl.read_parquet_schema(file).names()
    source = pipeline.InputRange(file, columns, 700, 700, "activity_id", None, 0, tmp_path / "x")
    frame = pipeline.read_chunk(source)
    whole = pl.read_parquet(file).with_row_index(ROW, offset=1)
    assert_frame_equal(frame, whole.slice(700, 700))
    assert frame[ROW].to_list() == list(range(701, 1_401))


def test_distinct_keys_skips_only_the_search_for_repeats(tmp_path):
    folder = tmp_path / "data"
    _folder(folder)
    raw = pl.read_parquet(folder / "activities.parquet").with_row_index(ROW, offset=1)
    distinct = raw.filter(pl.col("activity_id").str.strip_chars().is_first_distinct())
    options = {"settings": load_settings(), "now": NOW, "references": {}}
    for frame, has_repeats in ((distinct, False), (raw, True)):
        table = RawTable("activities", frame, "activities.parquet")
        full = validate_table(table, keep_row=True, in_order=False, **options)
        told = validate_table(
            table, keep_row=True, in_order=False, distinct_keys=not has_repeats, **options
        )
        assert_frame_equal(told.loaded, full.loaded)
        assert_frame_equal(told.quarantine, full.quarantine)
        repeats = full.quarantine.filter(pl.col("reason") == "duplicate_id").height
        assert (repeats > 0) == has_repeats


def _noting_its_process(*args, **kwargs):
    """validate_chunk, its notes saying which process validated it."""
    counts = _validate_chunk(*args, **kwargs)
    if counts is not None:
        counts.notes.append(f"chunk {args[3].name} in process {os.getpid()}")
    return counts


_validate_chunk = pipeline.validate_chunk


def test_chunks_are_validated_in_child_processes_a_few_a_call(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    _folder(folder)
    monkeypatch.setattr(pipeline, "ISOLATE_ABOVE_ROWS", 0)
    monkeypatch.setattr(pipeline, "CHUNKS_PER_CHILD", 2)
    monkeypatch.setattr(pipeline, "validate_chunk", _noting_its_process)  # found by name
    settings = load_settings()
    two = dataclasses.replace(settings.limits, build_workers=2)  # two children at once
    settings = dataclasses.replace(settings, limits=two)
    data = load_folder_chunked(folder, tmp_path / "s", settings=settings, now=NOW, chunk_rows=500)
    by_process: dict[int, list[str]] = {}
    for note in data.report.notes:
        if " in process " in note:
            chunk, pid = note.removeprefix("chunk ").split(" in process ")
            by_process.setdefault(int(pid), []).append(chunk)
    # activities: five ranges and the set-aside repeats; buyer actions: two ranges and their
    # set-aside repeat: every chunk in a child process, none here
    assert os.getpid() not in by_process
    assert sum(len(chunks) for chunks in by_process.values()) == 9
    calls = sorted(len(chunks) for chunks in by_process.values())
    # calls of 2, 2 and 1 chunks, then 1; 1 and 1, then 1: a call's process may be reused
    assert len(calls) <= 7 and max(calls) >= 2


def test_chunks_in_child_processes_load_as_in_memory(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    _folder(folder)
    monkeypatch.setattr(pipeline, "ISOLATE_ABOVE_ROWS", 0)
    monkeypatch.setattr(pipeline, "CHUNKS_PER_CHILD", 2)
    settings = load_settings()
    whole = load_folder(folder, settings=settings, now=NOW)
    data = load_folder_chunked(folder, tmp_path / "s", settings=settings, now=NOW, chunk_rows=500)
    assert len(data.events["activities"]) == 6  # five ranges and the set-aside repeats
    assert_frame_equal(_loaded(data, "activities"), whole.tables["activities"])
    assert_frame_equal(pipeline.read_quarantine(data.quarantine), whole.quarantine)
    assert data.report.to_dict() == whole.report.to_dict()
