"""What the chunked load knows of a whole event table before its chunks run, and what they then
skip: ids written in order and tidy (``pipeline.ids_in_order``: no hashes of the ids, no search
for repeats), key columns without a value to trim (``partitioned.plan_partitions``' ``tidy``: no
chunk looks for blanks in them). Every load equals the in-memory load and the load that knows
nothing beforehand, whatever holds of the data."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens import partitioned
from effortlens.loading import load_folder, pipeline, table
from effortlens.loading.table import ROW, SORT_KEYS
from effortlens.settings import load_settings

T0 = datetime(2024, 3, 4, 9, tzinfo=UTC)
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _folder(folder: Path, change: str | None) -> None:
    """2,400 activities with ids in sequence and tidy keys, 700 buyer actions; ``change``
    spoils one of them in a late row."""
    folder.mkdir()
    pl.DataFrame({"rep_id": ["r1", "r2"]}).write_parquet(folder / "reps.parquet")
    rows = [
        {
            "activity_id": f"a{i:05d}",
            "rep_id": ["r1", "r2"][i % 2],
            "ts": T0 + timedelta(hours=i % 700),
            "activity_type": ["email", "call", "Fax"][i % 3],
            "account_id": f"acc{i % 30}",
            "contact_id": f"c{i % 90}" if i % 5 else None,
            "opportunity_id": f"o{i % 50}" if i % 4 else None,
            "duration_min": float(i % 60) if i % 9 else None,
        }
        for i in range(2_400)
    ]
    for i in range(5, 2_400, 41):  # after the load time: quarantined
        rows[i]["ts"] = NOW + timedelta(days=1 + i % 9)
    for i in range(100, 2_400, 300):  # ids missing: in order still (never repeats)
        rows[i]["activity_id"] = None
    if change == "padded id":  # in order as written, not once trimmed: hashed
        rows[2_001]["activity_id"] = "a02001 "
    elif change == "empty id":  # in order, but a chunk must still look for it
        rows[2_001]["activity_id"] = ""
    elif change == "repeated id":  # a repeat far back: out of order, hashed and set aside
        rows[2_001]["activity_id"] = "a00031"
    elif change == "padded account":  # the same account with blanks, in the last chunk
        rows[2_330]["account_id"] = " acc20"
    elif change == "empty contact":
        rows[2_331]["contact_id"] = ""
    pl.DataFrame(rows).write_parquet(folder / "activities.parquet", row_group_size=256)
    actions = [
        {
            "action_id": f"b{i:04d}",
            "ts": T0 + timedelta(hours=i % 300, minutes=30),
            "action_type": ["reply", "meeting_accepted"][i % 2],
            "account_id": f"acc{i % 30}",
            "contact_id": f"c{i % 90}",
        }
        for i in range(700)
    ]
    pl.DataFrame(actions).write_parquet(folder / "buyer_actions.parquet")


def _load(folder: Path, out: Path, monkeypatch, *, know: bool) -> tuple[pipeline.ChunkedLoad, list]:
    """The load by partition as the build runs it (chunks here); what each chunk's validation
    was told is tidy. ``know=False``: as if nothing were known beforehand."""
    told = []
    validate = table.validate_table

    def spy(*args, **kwargs):
        if args[0].table in pipeline.EVENT_TABLES:
            told.append((args[0].table, kwargs.get("tidy", frozenset())))
        return validate(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(pipeline, "validate_table", spy)
        if not know:
            m.setattr(pipeline, "ids_in_order", lambda *a, **k: (False, False))
            plan = partitioned.plan_partitions

            def untold(*args, **kwargs):
                found = plan(*args, **kwargs)
                return dataclasses.replace(found, tidy=()) if found is not None else None

            m.setattr(partitioned, "plan_partitions", untold)
        settings = load_settings()
        limits = dataclasses.replace(settings.limits, partition_rows=500)
        data = pipeline.load_folder_chunked(  # as the build runs it, its chunks here
            folder,
            out / "valid",
            settings=dataclasses.replace(settings, limits=limits),
            now=NOW,
            chunk_rows=500,
            partitions=lambda: partitioned.plan_partitions(folder, out / "parts", chunk_rows=500),
        )
    return data, told


def _rows(data: pipeline.ChunkedLoad, name: str) -> pl.DataFrame:
    rows = pl.concat(partitioned.read_loaded(f) for f in data.events[name])  # keys as text
    return rows.sort([*SORT_KEYS[name], ROW], nulls_last=True).drop(ROW)


@pytest.mark.parametrize(
    "change",
    [None, "padded id", "empty id", "repeated id", "padded account", "empty contact"],
)
def test_what_is_known_beforehand_changes_nothing_loaded(tmp_path, monkeypatch, change):
    folder = tmp_path / "data"
    _folder(folder, change)
    whole = load_folder(folder, settings=load_settings(), now=NOW)
    known, told = _load(folder, tmp_path / "known", monkeypatch, know=True)
    plain, told_nothing = _load(folder, tmp_path / "plain", monkeypatch, know=False)
    for data in (known, plain):
        for name in ("activities", "buyer_actions"):
            assert_frame_equal(_rows(data, name), whole.tables[name])
        assert_frame_equal(pipeline.read_quarantine(data.quarantine), whole.quarantine)
        assert data.report.to_dict() == whole.report.to_dict()
        assert data.report.notes == whole.report.notes
    # the partition files themselves: the same rows in the same order, chunk by chunk
    assert [p.relative_to(tmp_path / "known") for p in known.events["activities"]] == [
        p.relative_to(tmp_path / "plain") for p in plain.events["activities"]
    ]
    for a, b in zip(known.events["activities"], plain.events["activities"], strict=True):
        assert_frame_equal(pl.read_parquet(a), pl.read_parquet(b))
    # what the chunks were told: 5 activities chunks (6 with the repeat set aside), 2 of actions
    assert {tidy for _, tidy in told_nothing} == {frozenset()}
    keys = {"account_id", "contact_id", "opportunity_id"}
    expected = {
        None: keys | {"activity_id"},
        "padded id": keys,
        "empty id": keys,
        "repeated id": keys,
        "padded account": {"contact_id", "opportunity_id", "activity_id"},
        "empty contact": {"account_id", "opportunity_id", "activity_id"},
    }[change]
    activities = [set(tidy) for name, tidy in told if name == "activities"]
    actions = [set(tidy) for name, tidy in told if name == "buyer_actions"]
    assert activities == [expected] * (6 if change == "repeated id" else 5)
    assert actions == [expected - {"activity_id"} | {"action_id"}] * 2


def test_ids_in_order_only_when_no_trimmed_id_repeats(tmp_path):
    def check(values, rows_per_pass=None):
        path = tmp_path / "ids.parquet"
        pl.DataFrame({"id": values}).write_parquet(path, row_group_size=2)
        return pipeline.ids_in_order(path, "id", rows_per_pass=rows_per_pass)

    assert check(["a1", "a2", None, "a3", "b"], 2) == (True, True)
    assert check(["a1", "a2", "", "a3"], 2) == (True, False)  # in order; not tidy
    assert check(["a1", "a2", "a2", "a3"])[0] is False  # a repeat side by side
    assert check(["a1", "a2", "a3", "a1"], 2)[0] is False  # across ranges
    assert check(["a1", "a2", "a2 "])[0] is False  # in order as written, a repeat trimmed
    assert check(["a3", "a1", "a2"])[0] is False
    assert check([3, 5, None, 8], 2) == (True, True)
    assert check([3, 5, 5, 8], 2)[0] is False
    assert check([1.0, 2.0])[0] is False  # numbers of other kinds: hashed as before
    # what repeated_ids finds where ids_in_order says no
    path = tmp_path / "ids.parquet"
    pl.DataFrame({"id": ["a1", "a2", "a2 "]}).write_parquet(path)
    assert pipeline.repeated_ids(path, "id")[1] == 2
