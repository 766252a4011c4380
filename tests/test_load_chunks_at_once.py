"""The chunked load validates its chunks in child processes, several at once
(``limits.build_workers``; effortlens.loading.pipeline._ChunkRunner): the files it writes, its
quarantine and its report are exactly those of one chunk at a time."""

from __future__ import annotations

import dataclasses
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens import partitioned
from effortlens.build_failure import BuildFailed
from effortlens.loading import load_folder, pipeline
from effortlens.loading.pipeline import load_folder_chunked
from effortlens.loading.table import ROW, SORT_KEYS
from effortlens.settings import load_settings

T0 = datetime(2024, 3, 4, 9, tzinfo=UTC)
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _settings(workers: int):
    s = load_settings()
    limits = dataclasses.replace(
        s.limits, partition_rows=500, partition_above_rows=500, build_workers=workers
    )
    return dataclasses.replace(s, limits=limits)


def _folder(folder: Path) -> None:
    """3,000 activities and 1,400 buyer actions (several chunks each at 500 rows a chunk):
    ids repeated across chunks (after trimming too; one whose first row is quarantined),
    rows that fail rules (future times, unknown reps, unknown types, empty ids), events with
    no key at all, keys joining accounts."""
    folder.mkdir()
    pl.DataFrame({"rep_id": ["r1", "r2", "r3"]}).write_parquet(folder / "reps.parquet")
    rows = [
        {
            "activity_id": f"a{i:05d}",
            "rep_id": ["r1", "r2", "r3", "r9"][i % 4] if i % 13 else "r1",
            "ts": T0 + timedelta(hours=i % 900),
            "activity_type": ["email", "call", "Fax", "meeting"][i % 4],
            "account_id": f"acc{i % 40}" if i % 11 else None,
            "contact_id": f"c{i % 90}" if i % 3 else None,
            "opportunity_id": f"acc{i % 40}-o{i % 5}" if i % 4 else None,
        }
        for i in range(3_000)
    ]
    for i in range(0, 3_000, 11):  # no key at all: spread by input row
        rows[i]["contact_id"] = rows[i]["opportunity_id"] = None
    rows[10]["activity_id"] = " x1"  # repeated in three chunks (trimmed the same)
    rows[1_500]["activity_id"] = "x1"
    rows[2_990]["activity_id"] = "x1 "
    rows[21]["activity_id"] = "y2"  # its first row fails a rule: the later one is kept
    rows[21]["rep_id"] = None
    rows[1_900]["activity_id"] = "y2"
    rows[30]["activity_id"] = "a00031"  # a repeat in one chunk
    rows[2_500]["opportunity_id"] = "acc1-o1"  # a contact of acc30 on acc1's deal: joined
    for i in range(100, 3_000, 97):  # empty ids: missing, not repeated
        rows[i]["activity_id"] = [None, "", "  "][i % 3]
    for i in range(5, 3_000, 41):  # after the load time
        rows[i]["ts"] = NOW + timedelta(days=1 + i % 9)
    pl.DataFrame(rows).write_parquet(folder / "activities.parquet", row_group_size=256)
    actions = [
        {
            "action_id": f"b{i:04d}",
            "ts": T0 + timedelta(hours=i % 300, minutes=30),
            "action_type": ["reply", "meeting_accepted", "shrug"][i % 3],
            "account_id": f"acc{i % 40}" if i % 7 else None,
            "contact_id": f"c{i % 90}" if i % 2 else None,
        }
        for i in range(1_400)
    ]
    actions[600]["action_id"] = "b0003"  # repeated in another chunk
    actions[1_300]["action_id"] = " b0003"
    pl.DataFrame(actions).write_parquet(folder / "buyer_actions.parquet")


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*.parquet"))
        if p.is_file() and not p.name.startswith("map-")  # the plan's (rows in any order)
    }


def _load(folder: Path, out: Path, workers: int):
    settings = _settings(workers)
    plan = partitioned.plan_partitions(folder, out / "parts", chunk_rows=500)
    assert plan is not None
    data = load_folder_chunked(
        folder,
        out / "s",
        settings=settings,
        now=NOW,
        chunk_rows=500,
        partitions=plan,
        tables_to=out / "tables",
    )
    # every table also written to a file (the small ones while the chunks run)
    for name, frame in data.tables.items():
        assert_frame_equal(pl.read_parquet(out / "tables" / f"{name}.parquet"), frame)
    return data, settings


def test_two_chunks_at_once_write_exactly_what_one_at_a_time_writes(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    _folder(folder)
    monkeypatch.setattr(pipeline, "ISOLATE_ABOVE_ROWS", 0)  # every chunk in a child
    one, _ = _load(folder, tmp_path / "one", workers=1)
    two, settings = _load(folder, tmp_path / "two", workers=2)
    # the partition files, byte for byte, under the same names
    files_one, files_two = _files(tmp_path / "one" / "parts"), _files(tmp_path / "two" / "parts")
    assert len(files_one) > 20 and files_one == files_two
    assert [p.relative_to(tmp_path / "one") for p in one.events["activities"]] == [
        p.relative_to(tmp_path / "two") for p in two.events["activities"]
    ]
    # the quarantine in the same order (its files too), the report, the notes, the tables
    quarantine = pipeline.read_quarantine(one.quarantine)
    assert_frame_equal(quarantine, pipeline.read_quarantine(two.quarantine))
    assert [p.relative_to(tmp_path / "one") for p in one.quarantine] == [
        p.relative_to(tmp_path / "two") for p in two.quarantine
    ]
    assert one.report.to_dict() == two.report.to_dict()
    assert one.report.notes == two.report.notes and one.rows == two.rows
    for name, frame in one.tables.items():
        assert_frame_equal(frame, two.tables[name])
    # and both are the in-memory load's: every repeat of an id quarantined, the first kept
    whole = load_folder(folder, settings=settings, now=NOW)
    assert_frame_equal(quarantine, whole.quarantine)
    assert one.report.to_dict() == whole.report.to_dict()
    keyless = 0
    for table in ("activities", "buyer_actions"):
        rows = pl.concat(partitioned.read_loaded(f) for f in two.events[table])  # keys as text
        loaded = rows.sort([*SORT_KEYS[table], ROW], nulls_last=True).drop(ROW)
        assert_frame_equal(loaded, whole.tables[table])
        keys = [k for k in ("account_id", "contact_id", "opportunity_id") if k in rows.columns]
        keyless += rows.filter(pl.all_horizontal(pl.col(keys).is_null())).height
    reasons = {(t, r): n for t, r, n in quarantine.group_by("table", "reason").len().rows()}
    assert reasons["activities", "duplicate_id"] == 3  # x1 twice, a00031 once; y2's 2nd kept
    assert reasons["buyer_actions", "duplicate_id"] == 2
    assert reasons["activities", "unknown_rep"] > 100
    assert reasons["activities", "future_timestamp"] > 50
    assert keyless > 200  # loaded events without any key, spread by input row


def _dies_on_chunk_four(name, file, source, *args, **kwargs):
    """validate_chunk, but the child validating activities' rows 1,501-2,000 is killed."""
    if name == "activities" and getattr(source, "start", None) == 1_500:
        os.kill(os.getpid(), signal.SIGKILL)
    return _validate_chunk(name, file, source, *args, **kwargs)


_validate_chunk = pipeline.validate_chunk


def test_a_chunk_killed_in_its_process_is_named_and_stops_the_load(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    _folder(folder)
    monkeypatch.setattr(pipeline, "ISOLATE_ABOVE_ROWS", 0)
    monkeypatch.setattr(pipeline, "CHUNKS_PER_CHILD", 1)
    # the children are spawned: they find the patched function by its name in this module
    monkeypatch.setattr(pipeline, "validate_chunk", _dies_on_chunk_four)
    with pytest.raises(BuildFailed) as failed:
        _load(folder, tmp_path / "x", workers=2)
    message = str(failed.value)
    assert message.startswith("load and validate: activities, chunk 4: its process was killed")
    assert "out-of-memory" in message
