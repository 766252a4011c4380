"""The partitioned load starts its chunks before the partition plan is found
(effortlens.partitioned._load_by_partition, effortlens.loading.pipeline.PendingPartitions):
each chunk's process validates its rows, then waits for the plan. What it writes is exactly what
the load writes when the plan is found first; a plan that fails stops the load with its error,
its waiting chunks stopped (no hang)."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens import partitioned
from effortlens.loading import pipeline
from effortlens.loading.report import LoadBug
from effortlens.settings import load_settings

T0 = datetime(2024, 3, 4, 9, tzinfo=UTC)
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _settings():
    s = load_settings()
    limits = dataclasses.replace(
        s.limits, partition_rows=500, partition_above_rows=500, build_workers=2
    )
    return dataclasses.replace(s, limits=limits)


def _folder(folder: Path) -> None:
    """2,400 activities and 900 buyer actions: padded and empty keys (the plan's tidy columns
    differ from the ids'), unknown reps, future times, keyless events, accounts joined."""
    folder.mkdir()
    pl.DataFrame({"rep_id": ["r1", "r2", "r3"]}).write_parquet(folder / "reps.parquet")
    rows = [
        {
            "activity_id": f"a{i:05d}",
            "rep_id": ["r1", "r2", "r3", "r9"][i % 4] if i % 13 else "r1",
            "ts": T0 + timedelta(hours=i % 900) + timedelta(days=120 * (i % 97 == 0)),
            "activity_type": ["email", "call", "meeting"][i % 3],
            "account_id": f"acc{i % 40}" if i % 11 else None,
            "contact_id": f"c{i % 90}" if i % 3 else None,
            "opportunity_id": f"acc{i % 40}-o{i % 5}" if i % 4 else None,
        }
        for i in range(2_400)
    ]
    rows[700]["account_id"] = " acc7 "  # padded: the plan's and the chunk's trimming
    rows[1_900]["contact_id"] = ""
    rows[2_000]["opportunity_id"] = "acc1-o1"  # acc0's contact on acc1's deal: joined
    pl.DataFrame(rows).write_parquet(folder / "activities.parquet", row_group_size=300)
    actions = [
        {
            "action_id": f"b{i:04d}",
            "ts": T0 + timedelta(hours=i % 300, minutes=30),
            "action_type": ["reply", "meeting_accepted"][i % 2],
            "account_id": f"acc{i % 40}" if i % 7 else None,
            "contact_id": f"c{i % 90}" if i % 2 else None,
        }
        for i in range(900)
    ]
    pl.DataFrame(actions).write_parquet(folder / "buyer_actions.parquet")


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*.parquet"))
        if not p.name.startswith("map-")  # the plan's maps (rows in any order)
    }


#: validate_chunk itself (the children find the test's stand-in by name, and import this)
_VALIDATE = pipeline.validate_chunk


def _validate_noting(name, file, source, part, quarantine, **options):
    """validate_chunk, leaving a mark beside the chunk's files when it started before the
    partitions were found (in the chunk's process)."""
    partitions = options["partitions"]
    if isinstance(partitions, pipeline.PendingPartitions) and not partitions.done():
        (part.parent / f"started-early-{part.stem}").touch()
    return _VALIDATE(name, file, source, part, quarantine, **options)


def _load(folder: Path, out: Path, monkeypatch, *, delay: float | None, fail: bool = False):
    """The load by partition as the build runs it (effortlens.partitioned): the plan found
    first (``delay`` None) or in a thread, ``delay`` seconds late (or failing) while the
    chunks start; and the chunks that started before it was found."""
    monkeypatch.setattr(pipeline, "ISOLATE_ABOVE_ROWS", 0)  # every chunk in a child
    monkeypatch.setattr(pipeline, "validate_chunk", _validate_noting)
    options = {"settings": _settings(), "now": NOW, "chunk_rows": 500}
    if delay is None:
        plan = partitioned.plan_partitions(folder, out / "parts", chunk_rows=500)
        data = pipeline.load_folder_chunked(folder, out / "valid", partitions=plan, **options)
    else:
        pending = pipeline.PendingPartitions(out / "valid" / "plan.pickle")

        def planned():
            time.sleep(delay)
            if fail:
                raise RuntimeError("the plan failed")
            plan = partitioned.plan_partitions(folder, out / "parts", chunk_rows=500)
            pending.found(plan)
            return plan

        with ThreadPoolExecutor(max_workers=1) as thread:
            pending.future = thread.submit(planned)
            data = pipeline.load_folder_chunked(
                folder, out / "valid", partitions=pending, **options
            )
    early = sorted(p.name for p in (out / "valid").rglob("started-early-*"))
    return data, early


def test_chunks_started_before_the_plan_write_what_a_plan_found_first_gives(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    _folder(folder)
    first, early_first = _load(folder, tmp_path / "first", monkeypatch, delay=None)
    late, early_late = _load(folder, tmp_path / "late", monkeypatch, delay=4)
    # the late plan: the first chunks of both tables started (in their processes) before it
    assert early_first == [] and len(early_late) >= 2
    assert "started-early-part-00000" in early_late
    assert late.partitions == first.partitions >= 4
    # the same partition files byte for byte, quarantine, report, notes, tables
    files = _files(tmp_path / "first" / "parts")
    assert len(files) > 10 and files == _files(tmp_path / "late" / "parts")
    assert [p.relative_to(tmp_path / "late") for p in late.events["activities"]] == [
        p.relative_to(tmp_path / "first") for p in first.events["activities"]
    ]
    assert_frame_equal(
        pipeline.read_quarantine(late.quarantine), pipeline.read_quarantine(first.quarantine)
    )
    assert late.report.to_dict() == first.report.to_dict()
    assert late.report.notes == first.report.notes
    assert late.rows == first.rows
    for name, frame in first.tables.items():
        assert_frame_equal(late.tables[name], frame)
    quarantined = late.report.to_dict()["activities"]["quarantined"]
    assert quarantined["unknown_rep"] > 100 and quarantined["future_timestamp"] > 5


def test_a_plan_that_fails_after_the_chunks_started_stops_the_load(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    _folder(folder)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            _load(folder, tmp_path / "out", monkeypatch, delay=2, fail=True)
        except BaseException as err:  # noqa: BLE001 - what the load raised, checked below
            failure.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the load hung: its chunks waited for a plan never found"
    # told as a failure of the load on the file being loaded, with the plan's own error
    assert len(failure) == 1 and isinstance(failure[0], LoadBug)
    assert "RuntimeError: the plan failed" in str(failure[0])
    assert isinstance(failure[0].__cause__, RuntimeError)
    with pytest.raises(FileNotFoundError):
        (tmp_path / "out" / "valid" / "plan.pickle").read_bytes()
