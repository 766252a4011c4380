"""The partitioned build's load writes its loaded events already by partition
(effortlens.partitioned.plan_partitions, effortlens.loading.pipeline.Partitions): the same
loaded rows, quarantine and report as the chunked load, each key in one partition, and the
build's facts equal to the in-memory build's."""

from __future__ import annotations

import dataclasses
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens import partitioned
from effortlens.enrich import enrich_tables
from effortlens.facts import open_build
from effortlens.loading import load_folder, pipeline
from effortlens.loading.pipeline import Partitions, load_folder_chunked
from effortlens.settings import load_settings

T0 = datetime(2024, 3, 4, 9, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = ("account_id", "contact_id", "opportunity_id")


def _settings(rows: int):
    s = load_settings()
    limits = dataclasses.replace(s.limits, partition_rows=rows, partition_above_rows=rows)
    return dataclasses.replace(s, limits=limits)


def _untidy(folder: Path) -> None:
    """Keys as a load reads them only after trimming: blanks around them, empty text, a
    header not spelled canonically, contacts as integers; an opportunity named only by a
    quarantined row joins two accounts; rows without keys; repeated ids."""
    folder.mkdir()
    pl.DataFrame({"rep_id": ["r1", "r2"], "team": ["A", "B"]}).write_parquet(
        folder / "reps.parquet"
    )
    rows = []
    for i in range(2_400):
        account = f"acc{i % 30}"
        pad = " " if i % 5 == 0 else ""  # the same account with and without blanks
        rows.append(
            {
                "activity_id": f"a{i:05d}",
                "rep_id": ["r1", "r2"][i % 2],
                "ts": (T0 + timedelta(hours=i % 300)).isoformat(),
                "activity_type": ["email", "call", "meeting"][i % 3],
                "Account ID": "" if i % 97 == 0 else pad + account + pad,
                "contact_id": (i % 30) * 10 + i % 4 if i % 7 else None,
                "opportunity_id": f"{account}-o{i % 3}" if i % 2 else "  ",
            }
        )
    rows += [  # bad time: quarantined, yet its keys join acc1 and acc2 in the plan
        {"activity_id": "bridge", "rep_id": "r1", "ts": "not a time", "activity_type": "call",
         "Account ID": "acc2", "contact_id": None, "opportunity_id": "acc1-o1"},
        {"activity_id": "a00003", "rep_id": "r2", "ts": T0.isoformat(), "activity_type": "call",
         "Account ID": "acc3", "contact_id": 33, "opportunity_id": None},  # a repeated id
    ]  # fmt: skip
    pl.DataFrame(rows, infer_schema_length=None).write_parquet(folder / "activities.parquet")
    actions = [
        {
            "action_id": f"b{i:05d}",
            "ts": (T0 + timedelta(hours=i % 300, minutes=20)).isoformat(),
            "action_type": ["reply", "meeting_accepted"][i % 2],
            "account_id": f" acc{i % 30}" if i % 3 else f"acc{i % 30}",
            "contact_id": str((i % 30) * 10 + i % 4) if i % 2 else "",
            "opportunity_id": f"acc{i % 30}-o{i % 3}" if i % 4 else None,
        }
        for i in range(900)
    ]
    actions.append({"action_id": "b-none", "ts": T0.isoformat(), "action_type": "reply"})
    pl.DataFrame(actions, infer_schema_length=None).write_parquet(folder / "buyer_actions.parquet")


def _rows(files: list[Path]) -> pl.DataFrame:
    # the partitions' files hold the key columns as codes: read back as text
    if files and files[0].parent.name.startswith("__part="):
        return pl.concat(partitioned.read_loaded(f) for f in files).sort("__row")
    return pl.read_parquet(files, hive_partitioning=False).sort("__row")


@pytest.mark.parametrize("without", [None, "contact_id"])
def test_the_load_by_partition_loads_what_the_chunked_load_loads(tmp_path, without):
    folder = tmp_path / "data"
    _untidy(folder)
    if without:  # a key column the buyer actions do not have
        actions = pl.read_parquet(folder / "buyer_actions.parquet").drop(without)
        actions.write_parquet(folder / "buyer_actions.parquet")
    settings = _settings(600)
    plan = partitioned.plan_partitions(folder, tmp_path / "parts", chunk_rows=600)
    assert plan is not None and plan.count == 6  # 3,302 events read, 600 a partition
    by_part = load_folder_chunked(
        folder, tmp_path / "a", settings=settings, now=NOW, chunk_rows=600, partitions=plan
    )
    chunked = load_folder_chunked(
        folder, tmp_path / "b", settings=settings, now=NOW, chunk_rows=600
    )
    assert by_part.partitions == plan.count and chunked.partitions is None
    assert by_part.report.to_dict() == chunked.report.to_dict()
    assert by_part.report.notes == chunked.report.notes
    assert by_part.rows == chunked.rows
    assert_frame_equal(
        pipeline.read_quarantine(by_part.quarantine), pipeline.read_quarantine(chunked.quarantine)
    )
    for table in ("activities", "buyer_actions"):
        files = by_part.events[table]
        assert all(f.parent.parent == tmp_path / "parts" / table for f in files)
        assert_frame_equal(_rows(files), _rows(chunked.events[table]))
    # each key value in one partition; events without any key by input row
    every = pl.concat(
        partitioned.read_loaded(f).select(
            *KEYS, "__row", pl.lit(int(f.parent.name.split("=")[1])).alias("p")
        )
        for table in ("activities", "buyer_actions")
        for f in by_part.events[table]
    )
    assert every["p"].n_unique() == plan.count
    for key in KEYS:
        spread = every.drop_nulls(key).group_by(key).agg(pl.col("p").n_unique())
        assert spread["p"].max() == 1, key
    keyless = every.filter(pl.all_horizontal(pl.col(KEYS).is_null()))
    assert keyless.height == 2 and (keyless["p"] == keyless["__row"] % plan.count).all()
    # the trimmed keys are the loaded ones: "acc1" with and without blanks in one partition
    assert every.filter(pl.col("account_id") == "acc1")["p"].n_unique() == 1


@pytest.mark.parametrize("without", [None, "contact_id"])
def test_keys_written_as_codes_read_back_as_the_text_written(tmp_path, without):
    # the load writes the key columns as codes in their partition (Partitions.codes): each
    # partition read as the enrichment reads it (read_partition: the loaded order, the keys
    # as text) equals the same load's partitions written as text
    folder = tmp_path / "data"
    _untidy(folder)
    activities = pl.read_parquet(folder / "activities.parquet")  # every key as text
    activities.with_columns(pl.col("contact_id").cast(pl.String)).write_parquet(
        folder / "activities.parquet", row_group_size=500
    )
    if without:  # a key column the buyer actions do not have
        actions = pl.read_parquet(folder / "buyer_actions.parquet").drop(without)
        actions.write_parquet(folder / "buyer_actions.parquet")
    plan = partitioned.plan_partitions(folder, tmp_path / "codes", chunk_rows=600)
    assert plan is not None and plan.codes is not None
    as_text = dataclasses.replace(plan, out=tmp_path / "text", codes=None)
    loads = {
        name: load_folder_chunked(
            folder,
            tmp_path / f"s-{name}",
            settings=_settings(600),
            now=NOW,
            chunk_rows=600,
            partitions=partitions,
        )  # fmt: skip
        for name, partitions in (("codes", plan), ("text", as_text))
    }
    coded = 0
    for table in ("activities", "buyer_actions"):
        for p in range(plan.count):
            codes = tmp_path / "codes" / table / f"__part={p}"
            text = tmp_path / "text" / table / f"__part={p}"
            assert codes.is_dir() == text.is_dir()
            if not codes.is_dir():
                continue
            written = pl.read_parquet(codes, hive_partitioning=False)
            keys = [key for key in KEYS if key in written.columns]
            assert all(written[key].dtype == pl.UInt32 for key in keys)
            coded += written.select(pl.col(keys).is_not_null().sum()).sum_horizontal().item()
            for coded_input in ((), ("rep_id", "activity_type")):
                if table != "activities" and coded_input:
                    continue
                assert_frame_equal(
                    partitioned.read_partition(codes, table, coded=coded_input),
                    partitioned.read_partition(text, table, coded=coded_input),
                )
    assert coded > 3_000
    assert loads["codes"].report.to_dict() == loads["text"].report.to_dict()


def test_the_partitioned_build_by_partition_equals_the_in_memory_build(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    _untidy(folder)
    settings = _settings(600)
    # the load in a child and its chunks in grandchildren, as at 100M
    monkeypatch.setattr(pipeline, "ISOLATE_ABOVE_ROWS", 0)
    monkeypatch.setattr(partitioned, "ISOLATE_ABOVE_ROWS", 0)
    data = load_folder(folder, settings=settings)
    whole = enrich_tables(data.tables, settings=settings)
    build = open_build(folder, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    assert build.manifest["build"].startswith("partitioned")
    assert len(list((build.path / "activities.parquet").glob("*.parquet"))) == 6
    for name, key in (("activities", "activity_id"), ("actions", "action_id")):
        parts = build.enriched.lazy(name).collect().with_columns(pl.col(pl.Categorical).cast(str))
        assert_frame_equal(getattr(whole, name).sort(key), parts.sort(key))
    assert build.enriched.actions["activity_id"].is_not_null().sum() > 300  # real matches
    assert data.report.to_dict() == build.data.report.to_dict()
    assert_frame_equal(data.quarantine, build.data.quarantine)


def test_a_quarantined_row_joins_the_accounts_it_names_in_the_plan(tmp_path):
    # one partition a component (a partition per event read): accounts share a partition
    # only when their component is one
    folder = tmp_path / "data"
    _untidy(folder)

    def partition_of_accounts(name: str) -> dict[str, int]:
        plan = partitioned.plan_partitions(folder, tmp_path / name, chunk_rows=1)
        assert plan is not None
        return dict(pl.read_parquet(plan.maps[0]).rows())

    joined = partition_of_accounts("with")
    assert joined["acc1"] == joined["acc2"] and len(set(joined.values())) == 29
    activities = pl.read_parquet(folder / "activities.parquet")
    activities.filter(pl.col("activity_id") != "bridge").write_parquet(
        folder / "activities.parquet"
    )
    apart = partition_of_accounts("without")
    assert apart["acc1"] != apart["acc2"] and len(set(apart.values())) == 30


def test_a_key_column_of_lists_is_not_planned(tmp_path):
    folder = tmp_path / "data"
    _untidy(folder)
    frame = pl.read_parquet(folder / "buyer_actions.parquet")
    frame.with_columns(pl.col("contact_id").cast(pl.String).str.split(",")).write_parquet(
        folder / "buyer_actions.parquet"
    )
    assert partitioned.plan_partitions(folder, tmp_path / "parts", chunk_rows=600) is None


def test_a_loaded_key_outside_the_plan_is_refused(tmp_path):
    path = tmp_path / "map.parquet"
    pl.DataFrame(
        {"account_id": ["a"], "__part": [0]}, schema={"account_id": pl.String, "__part": pl.UInt32}
    ).write_parquet(path)
    plan = Partitions(tmp_path, ("account_id",), (path,), 2)
    frame = pl.DataFrame({"account_id": ["a", "b"], "__row": [1, 2]})
    with pytest.raises(RuntimeError, match="'b' is in no partition"):
        plan.partition_of(frame)


def _exits(*_args, **_kwargs):
    """validate_chunk, but its process ends at once (as a process killed outright)."""
    os._exit(9)


def test_a_chunk_process_killed_outright_is_not_told_as_a_bug(tmp_path, monkeypatch):
    # the chunks in processes of their own; the first one dies at once (what the system's
    # out-of-memory killer does): the load says which chunk's process died (the build then
    # fails with that message), not a bug in the file
    from effortlens.build_failure import BuildFailed

    folder = tmp_path / "data"
    _untidy(folder)
    monkeypatch.setattr(pipeline, "ISOLATE_ABOVE_ROWS", 0)
    monkeypatch.setattr(pipeline, "validate_chunk", _exits)  # the children find it by name
    with pytest.raises(BuildFailed) as failed:
        load_folder_chunked(folder, tmp_path / "a", settings=_settings(600), chunk_rows=600)
    message = str(failed.value)  # the first of the two children at once to end
    assert re.match(r"load and validate: activities, chunks (1-3|4-5): its process ended", message)
    assert "exit status 9" in message and "bug" not in message
