"""The partitioned build (effortlens.partitioned): chunked validation and per-partition
enrichment give the in-memory build's facts, load report and quarantine."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens import partitioned
from effortlens.cli import main
from effortlens.coverage import with_known_groups
from effortlens.enrich import daily_of_activities, enrich_tables
from effortlens.facts import AGGREGATES_LAYOUT, HABIT_TOUCHES, PRACTICE_CODES, open_build
from effortlens.loading import load_folder, pipeline
from effortlens.loading.pipeline import load_folder_chunked, merge_notes, streamable_rows
from effortlens.partitioned import should_partition
from effortlens.peers import with_peer_group
from effortlens.settings import load_settings

KEYS = {"activities": "activity_id", "actions": "action_id"}


def _settings(partition_rows: int, above: int = 20_000_000):
    s = load_settings()
    limits = dataclasses.replace(
        s.limits, partition_rows=partition_rows, partition_above_rows=above
    )
    return dataclasses.replace(s, limits=limits)


def _both(folder: Path, tmp_path: Path, *, partition_rows: int):
    """The in-memory load and enrichment of ``folder``, and its partitioned build."""
    settings = _settings(partition_rows)
    data = load_folder(folder, settings=settings)
    whole = SimpleNamespace(data=data, enriched=enrich_tables(data.tables, settings=settings))
    parts = open_build(folder, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    return whole, parts


def _assert_same(whole, parts) -> None:
    """Same facts (event rows compared by id), roll-up (sums to 1e-9), reps, report, quarantine."""
    assert parts.manifest["build"].startswith("partitioned")
    for name, key in KEYS.items():
        a = getattr(whole.enriched, name)
        b = parts.enriched.lazy(name).collect().with_columns(pl.col(pl.Categorical).cast(pl.String))
        assert a.height == b.height
        assert_frame_equal(a.sort(key), b.sort(key))
    as_text = pl.col(pl.Categorical).cast(pl.String)  # the build may hand text as Categorical
    assert_frame_equal(
        whole.enriched.daily,
        parts.enriched.daily.with_columns(as_text),
        check_exact=False,
        rel_tol=1e-9,
    )
    assert_frame_equal(whole.enriched.reps, parts.enriched.reps.with_columns(as_text))
    assert whole.data.report.to_dict() == parts.data.report.to_dict()
    assert whole.data.report.notes == parts.data.report.notes
    assert_frame_equal(whole.data.quarantine, parts.data.quarantine)
    for table in parts.data.report.tables:  # the load invariant
        assert table.loaded + table.quarantined_total == table.read


def test_tiny_sample_partitioned_equals_in_memory(tiny_planted, tmp_path):
    whole, parts = _both(tiny_planted, tmp_path, partition_rows=3_000)
    activities = parts.path / "activities.parquet"
    assert activities.is_dir() and len(list(activities.glob("*.parquet"))) >= 5
    _assert_same(whole, parts)


def test_partitioned_build_precomputes_the_same_view_facts(tiny_planted, tmp_path):
    settings = _settings(3_000)
    whole = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "a", partitioned=False)
    parts = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    assert set(parts.enriched.aggregates) == set(whole.enriched.aggregates) != set()
    for name, frame in whole.enriched.aggregates.items():
        a, b = frame.collect(), parts.enriched.aggregates[name].collect()
        assert a.height == b.height > 0
        assert_frame_equal(a.sort(a.columns), b.sort(b.columns), check_exact=False, rel_tol=1e-9)


#: Tolerance of the habit credits (and of sums of them) in a build fitted part by part: the
#: one fit adds the same terms in another order (the touches in partition order), so the last
#: bits may differ from the in-memory build's.
CREDIT_TOL = {"rel_tol": 1e-9, "abs_tol": 1e-12}


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    frame = frame.with_columns(pl.col(pl.Categorical).cast(pl.String))
    return frame.sort(frame.columns, nulls_last=True)


#: A streak's columns that come from its last touch: with several touches of a contact at
#: one instant, which of them is last is not decided (roe.silent_streaks sorts by contact
#: and time without keeping the input order), in either build.
LAST_TOUCH = ("rep_id", "day", "team", "segment", "role")


def _assert_same_view_facts(
    whole, parts, *, instant_ties: bool = False, credited: bool = True
) -> None:
    """Every view fact of a build written part by part equals the in-memory build's: the same
    rows (floats to :data:`CREDIT_TOL`) and schema, streaks in the same order, each touch part
    in (day, rep) order, the habit touch codes with the same dictionaries and the same rows by
    day. ``credited``: some buyer action was credited (else no touch has a credit)."""
    assert parts.manifest["build"].startswith("partitioned")
    assert (
        set(parts.enriched.aggregates) == set(whole.enriched.aggregates) == set(AGGREGATES_LAYOUT)
    )
    undecided = pl.exclude(LAST_TOUCH) if instant_ties else pl.all()
    for name, frame in whole.enriched.aggregates.items():
        a, b = frame.collect(), parts.enriched.aggregates[name].collect()
        if name in ("streaks", "streaks_by_rep"):  # the copy by rep: by the last touch's
            a, b = a.select(undecided), b.select(undecided)
        assert a.height == b.height, name
        assert a.height > 0 or (instant_ties and name == "verifiers"), name  # no deals there
        assert a.schema == b.schema, name
        assert_frame_equal(_sorted(a), _sorted(b), check_exact=False, **CREDIT_TOL)
        if name in ("touches", "practice", "streaks", "streaks_by_rep", "verifiers"):  # parts
            assert any(f.startswith(AGGREGATES_LAYOUT[name] + "/") for f in parts.manifest["files"])
    # the streaks' order is the in-memory order (longest, contact, first touch)
    streaks = [
        x.aggregates["streaks"].select(undecided).collect()
        for x in (whole.enriched, parts.enriched)
    ]
    assert_frame_equal(*streaks)
    # the streaks of 4+ touches again by team and rep: each row the stored streak at its
    # position, and (the last touch decided) the same rows in the same order in both builds
    by_rep = [x.aggregates["streaks_by_rep"].collect() for x in (whole.enriched, parts.enriched)]
    for ordered, x in zip(by_rep, (whole.enriched, parts.enriched), strict=True):
        stored = x.aggregates["streaks"].collect()
        at = stored.select(ordered.columns[1:])[ordered["position"].to_list()]
        assert_frame_equal(ordered.drop("position"), at, check_exact=True)
        assert ordered.height == stored.filter(pl.col("touches") >= 4).height > 0
    if not instant_ties:
        assert_frame_equal(*by_rep, check_exact=True)
    # the touches: part files of a range of days each, in name order the in-memory order
    # (day, then rep; a rep's touches of one day may come in another order)
    touches = parts.enriched.aggregates["touches"].collect()
    keys = touches.select("day", "rep_id")
    assert keys.equals(keys.sort("day", "rep_id", nulls_last=False, maintain_order=True))
    if credited:
        assert touches["credit_timing"].sum() > 10  # pairs were fitted
    else:
        assert touches["credit_timing"].sum() == 0 == touches["credit_cadence"].sum()
    # the habit touch codes: the same key tables, the same rows of codes per day
    one, other = whole.path / HABIT_TOUCHES, parts.path / HABIT_TOUCHES
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in other.iterdir())
    for keys in sorted(one.glob("*.keys.parquet")):
        assert_frame_equal(pl.read_parquet(keys), pl.read_parquet(other / keys.name))
    for where in sorted({p.parent.relative_to(one) for p in one.rglob("*.npy")}):
        arrays = [
            {p.stem: np.load(p) for p in sorted((folder / where).glob("*.npy"))}
            for folder in (one, other)
        ]
        assert {k: (v.dtype, v.shape) for k, v in arrays[0].items()} == {
            k: (v.dtype, v.shape) for k, v in arrays[1].items()
        }
        rows = max(len(v) for v in arrays[0].values())
        # per touch (one row each): the same rows; a day's touches may come in another order
        per_touch = [
            pl.DataFrame({k: v for k, v in a.items() if v.ndim == 1 and len(v) == rows})
            for a in arrays
        ]
        if where == Path():  # the touches by day (by_owner: by owner, then day)
            assert per_touch[1]["day"].is_sorted()
        assert_frame_equal(
            _sorted(per_touch[0]), _sorted(per_touch[1]), check_exact=False, **CREDIT_TOL
        )
        for name, values in arrays[0].items():  # the rest (running totals, starts) as they are
            if name not in per_touch[0].columns:
                np.testing.assert_allclose(arrays[1][name], values, rtol=1e-9, atol=1e-12)
    # the practice codes: the same key tables, the same rows (a day's in another order)
    one, other = whole.path / PRACTICE_CODES, parts.path / PRACTICE_CODES
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in other.iterdir())
    for keys in sorted(one.glob("*.keys.parquet")):
        assert_frame_equal(pl.read_parquet(keys), pl.read_parquet(other / keys.name))
    codes = [
        pl.DataFrame({p.stem: np.load(p) for p in sorted(folder.glob("*.npy"))})
        for folder in (one, other)
    ]
    assert codes[0].height == codes[1].height > 0
    assert codes[0].schema == codes[1].schema
    assert codes[1].select("day", "rep").equals(codes[1].select("day", "rep").sort("day", "rep"))
    assert_frame_equal(_sorted(codes[0]), _sorted(codes[1]))


def test_partitioned_build_writes_every_view_fact_part_by_part(tiny_planted, tmp_path):
    # above `partition_above_rows` the view facts are written partition by partition, the
    # habit credit fitted once over every partition's inputs
    settings = _settings(3_000, above=10_000)
    whole = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "a", partitioned=False)
    parts = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    assert len(list((parts.path / AGGREGATES_LAYOUT["touches"]).glob("*.parquet"))) >= 5
    _assert_same_view_facts(whole, parts)


def _contacts_only(folder: Path) -> None:
    """Two reps, 2,000 activities on 40 contacts of 20 accounts over 300 hours, 600 replies."""
    folder.mkdir(parents=True)
    t0 = datetime(2024, 3, 4, 9, tzinfo=UTC)
    pl.DataFrame({"rep_id": ["r1", "r2"], "team": ["A", "B"]}).write_parquet(
        folder / "reps.parquet"
    )
    pl.DataFrame(
        {
            "activity_id": [f"a{i:05d}" for i in range(2_000)],
            "rep_id": [("r1", "r2")[i % 2] for i in range(2_000)],
            "ts": [(t0 + timedelta(hours=i % 300)).isoformat() for i in range(2_000)],
            "activity_type": [("email", "call", "meeting")[i % 3] for i in range(2_000)],
            "account_id": [f"acc{i % 20}" for i in range(2_000)],
            "contact_id": [f"c{i % 40}" for i in range(2_000)],
            "opportunity_id": pl.Series([None] * 2_000, dtype=pl.String),
        }
    ).write_parquet(folder / "activities.parquet")
    pl.DataFrame(
        {
            "action_id": [f"b{i:05d}" for i in range(600)],
            "ts": [(t0 + timedelta(hours=i % 300, minutes=20)).isoformat() for i in range(600)],
            "action_type": [("reply", "meeting_accepted")[i % 2] for i in range(600)],
            "account_id": [f"acc{i % 20}" for i in range(600)],
            "contact_id": [f"c{i % 40}" for i in range(600)],
        }
    ).write_parquet(folder / "buyer_actions.parquet")


def test_one_partition_writes_the_same_view_facts(tmp_path):
    # one partition: a range of days read from one part file comes as a column of one chunk,
    # which Polars hands to numpy read-only (the day order wrote into it and failed)
    folder = tmp_path / "data"
    _contacts_only(folder)
    settings = _settings(10_000_000, above=500)  # view facts part by part: one part
    whole = open_build(folder, settings=settings, cache_dir=tmp_path / "a", partitioned=False)
    parts = open_build(folder, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    assert len(list((parts.path / "activities.parquet").glob("*.parquet"))) == 1
    assert parts.enriched.aggregates["touches"].collect().height == 2_000
    _assert_same_view_facts(whole, parts, instant_ties=True)


def test_no_buyer_actions_writes_the_same_view_facts(tmp_path):
    # no buyer action: no pair to credit; both builds write the touches' credits (and the
    # habit cells' credited sums) as Float64 zeros (the in-memory build wrote Int64: numpy's
    # bincount of no pairs)
    folder = tmp_path / "data"
    _contacts_only(folder)
    (folder / "buyer_actions.parquet").unlink()
    settings = _settings(1_000, above=500)  # view facts part by part: two parts
    whole = open_build(folder, settings=settings, cache_dir=tmp_path / "a", partitioned=False)
    parts = open_build(folder, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    assert len(list((parts.path / "activities.parquet").glob("*.parquet"))) >= 2
    for built in (whole, parts):
        touches = built.enriched.aggregates["touches"].collect()
        assert touches.height == 2_000
        assert touches.schema["credit_timing"] == touches.schema["credit_cadence"] == pl.Float64
        for name in ("habit_timing", "habit_cadence"):
            assert built.enriched.aggregates[name].collect_schema()["credited"] == pl.Float64
    _assert_same_view_facts(whole, parts, instant_ties=True, credited=False)


def test_view_facts_part_by_part_in_child_processes(tmp_path, monkeypatch):
    # the hand-made load (ties, crossing keys, rows without keys or contact) with every
    # partition, the fit and the merges in processes of their own
    monkeypatch.setattr(pipeline, "ISOLATE_ABOVE_ROWS", 0)
    monkeypatch.setattr(partitioned, "ISOLATE_ABOVE_ROWS", 0)
    folder = tmp_path / "data"
    _hand_made(folder)
    settings = _settings(1_000, above=1_000)
    whole = open_build(folder, settings=settings, cache_dir=tmp_path / "a", partitioned=False)
    parts = open_build(folder, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    assert len(list((parts.path / AGGREGATES_LAYOUT["touches"]).glob("*.parquet"))) >= 3
    _assert_same_view_facts(whole, parts, instant_ties=True)


def test_chunks_and_partitions_in_child_processes_give_the_same(
    tiny_planted, tmp_path, monkeypatch
):
    # large inputs validate each chunk and enrich each partition in a process of its own
    monkeypatch.setattr(pipeline, "ISOLATE_ABOVE_ROWS", 0)
    monkeypatch.setattr(partitioned, "ISOLATE_ABOVE_ROWS", 0)
    whole, parts = _both(tiny_planted, tmp_path, partition_rows=7_000)
    assert len(list((parts.path / "activities.parquet").glob("*.parquet"))) >= 2
    _assert_same(whole, parts)
    assert parts.enriched.actions["activity_id"].is_not_null().sum() > 1_000  # real matches


T0 = datetime(2024, 3, 4, 9, tzinfo=UTC)


def _hand_made(folder: Path) -> None:
    """Accounts whose rows straddle chunks, exact ties, keys that disagree across accounts,
    duplicates far apart, bad rows and rows without keys."""
    folder.mkdir()
    pl.DataFrame({"rep_id": ["r1", "r2", "r3"], "team": ["A", "A", "B"]}).write_parquet(
        folder / "reps.parquet"
    )
    rows = []
    for i in range(3_000):  # account "big" everywhere in the file, between the others
        account = "big" if i % 3 == 0 else f"acc{i % 40}"
        rows.append(
            {
                "activity_id": f"a{i:05d}",
                "rep_id": ["r1", "r2", "r3"][i % 3],
                "ts": (T0 + timedelta(hours=i % 500)).isoformat(),
                "activity_type": ["email", "call", "meeting", "internal"][i % 4],
                "account_id": account,
                "contact_id": f"{account}-c{i % 5}",
                "opportunity_id": f"{account}-o{i % 7}" if i % 11 else None,
                "duration_min": str(i % 60),
            }
        )
    tie = (T0 + timedelta(days=40)).isoformat()
    rows += [
        # exact ties on one opportunity, far apart in the file: the later loaded row wins
        {"activity_id": "tie-1", "rep_id": "r1", "ts": tie, "activity_type": "call",
         "account_id": "big", "contact_id": "big-c1", "opportunity_id": "big-tie"},
        # a tie at contact level between two opportunities: loaded order is by opportunity
        {"activity_id": "ctie-z", "rep_id": "r2", "ts": tie, "activity_type": "email",
         "account_id": "acc3", "contact_id": "acc3-tie", "opportunity_id": "acc3-z"},
        {"activity_id": "ctie-a", "rep_id": "r3", "ts": tie, "activity_type": "email",
         "account_id": "acc3", "contact_id": "acc3-tie", "opportunity_id": "acc3-a"},
        # an opportunity filed under another account than its actions: still matched
        {"activity_id": "cross", "rep_id": "r1", "ts": tie, "activity_type": "call",
         "account_id": "acc7", "contact_id": None, "opportunity_id": "shared-opp"},
        # no keys at all, an unknown rep, a bad time, a missing id, duplicates after trimming
        {"activity_id": "nokeys", "rep_id": "r1", "ts": tie, "activity_type": "call"},
        {"activity_id": "dup-1", "rep_id": "r9", "ts": tie, "activity_type": "call",
         "account_id": "big"},
        {"activity_id": "who", "rep_id": "r9", "ts": tie, "activity_type": "call"},
        {"activity_id": "bad-ts", "rep_id": "r1", "ts": "not a time", "activity_type": "call"},
        {"activity_id": " ", "rep_id": "r1", "ts": tie, "activity_type": "call"},
        {"activity_id": " a00010 ", "rep_id": "r2", "ts": tie, "activity_type": "call"},
    ]  # fmt: skip
    rows.insert(7, {**rows[-4], "activity_id": "dup-1", "rep_id": "r1"})  # a later row repeats it
    rows.insert(2_000, {**rows[0], "activity_type": "call", "account_id": "big",
                        "opportunity_id": "big-tie", "contact_id": "big-c1", "ts": tie,
                        "activity_id": "tie-0"})  # fmt: skip
    activities = pl.DataFrame(rows, infer_schema_length=None)
    activities.write_parquet(folder / "activities.parquet")
    actions = []
    for i in range(1_200):
        account = "big" if i % 2 else f"acc{i % 40}"
        actions.append(
            {
                "action_id": f"b{i:05d}",
                "ts": (T0 + timedelta(hours=i % 500, minutes=30)).isoformat(),
                "action_type": "email_reply"
                if i % 100 == 0
                else ["reply", "meeting_accepted"][i % 2],
                "account_id": account,
                "contact_id": f"{account}-c{i % 5}" if i % 3 else None,
                "opportunity_id": f"{account}-o{i % 7}" if i % 4 else None,
            }
        )
    actions += [
        {"action_id": "on-tie", "ts": tie, "action_type": "reply", "account_id": "big",
         "opportunity_id": "big-tie"},
        {"action_id": "on-ctie", "ts": tie, "action_type": "reply", "account_id": "acc3",
         "contact_id": "acc3-tie"},
        {"action_id": "on-cross", "ts": tie, "action_type": "reply", "account_id": "acc9",
         "opportunity_id": "shared-opp"},
        {"action_id": "no-account", "ts": tie, "action_type": "reply"},
        {"action_id": "b00003", "ts": tie, "action_type": "reply", "account_id": "big"},
    ]  # fmt: skip
    pl.DataFrame(actions, infer_schema_length=None).write_parquet(folder / "buyer_actions.parquet")


def test_hand_made_chunks_ties_and_crossing_keys(tmp_path):
    folder = tmp_path / "data"
    _hand_made(folder)
    # ~4 chunks per event table, accounts spread over every chunk and several partitions
    whole, parts = _both(folder, tmp_path, partition_rows=1_000)
    assert len(list((parts.path / "activities.parquet").glob("*.parquet"))) >= 3
    _assert_same(whole, parts)
    credited = dict(
        parts.enriched.lazy("actions").select("action_id", "activity_id").collect().rows()
    )
    # the tie rule: tie-0 comes earlier in the file but both are loaded in (opportunity, ts)
    # order with ties by input row, so tie-1 (later input row) is later in the table and wins
    assert credited["on-tie"] == "tie-1"
    # at contact level the tie goes to the opportunity that sorts last ("acc3-z")
    assert credited["on-ctie"] == "ctie-z"
    # the opportunity under another account is still matched (components join the accounts)
    assert credited["on-cross"] == "cross"
    reasons = parts.data.quarantine.group_by("table", "reason").len().sort("table", "reason")
    assert set(reasons.rows()) >= {
        ("activities", "duplicate_id", 2),
        ("activities", "unknown_rep", 1),
        ("activities", "bad_timestamp", 1),
        ("activities", "missing_id", 1),
        ("buyer_actions", "no_account", 1),
        ("buyer_actions", "duplicate_id", 1),
        ("buyer_actions", "bad_value", 12),
    }


def test_chunked_load_counts_and_rows(tmp_path):
    folder = tmp_path / "data"
    _hand_made(folder)
    assert streamable_rows(folder) == 3_012 + 1_205
    data = load_folder_chunked(
        folder, tmp_path / "scratch", settings=load_settings(), chunk_rows=1_000
    )
    assert len(data.events["activities"]) >= 3
    loaded = pl.read_parquet(data.events["activities"])
    assert loaded.height == data.rows["activities"] == 3_012 - 5
    assert loaded["__row"].n_unique() == loaded.height  # each loaded row names its input row
    original = pl.read_parquet(folder / "activities.parquet").with_row_index("__row", offset=1)
    ids = loaded.join(original.select("__row", "activity_id"), on="__row", suffix="_raw")
    assert (ids["activity_id"] == ids["activity_id_raw"].str.strip_chars()).all()


def test_validation_keeps_input_rows_in_input_order_for_the_chunked_load(tmp_path):
    """What each chunk's validation gives (its input row kept, no sort) is the whole load's
    rows once sorted by the table's keys and that row; the row names the row it came from."""
    from effortlens.loading.table import ROW, SORT_KEYS, RawTable, validate_table

    folder = tmp_path / "data"
    _hand_made(folder)
    settings, now = load_settings(), datetime(2030, 1, 1, tzinfo=UTC)
    for name in ("activities", "buyer_actions"):
        raw = pl.read_parquet(folder / f"{name}.parquet").with_row_index(ROW, offset=1)
        options = {"settings": settings, "now": now, "references": {}}
        whole = validate_table(RawTable(name, raw, "x.parquet"), **options)
        kept = validate_table(
            RawTable(name, raw, "x.parquet"), keep_row=True, in_order=False, **options
        )
        assert kept.loaded.columns == [*whole.loaded.columns, ROW]
        assert kept.loaded[ROW].is_sorted() and kept.loaded.height == whole.loaded.height
        assert_frame_equal(
            kept.loaded.sort([*SORT_KEYS[name], ROW], nulls_last=True).drop(ROW), whole.loaded
        )
        assert_frame_equal(kept.quarantine, whole.quarantine)
        key = "activity_id" if name == "activities" else "action_id"
        named = kept.loaded.select(ROW, key).join(
            raw.select(ROW, pl.col(key).str.strip_chars().alias("raw")), on=ROW
        )
        assert named.height == kept.loaded.height and (named[key] == named["raw"]).all()


def test_the_build_chooses_the_partitioned_path_when_large(tiny_planted, tmp_path, capsys):
    folder = tmp_path / "data"
    shutil.copytree(tiny_planted, folder)
    small = _settings(5_000, above=10_000)
    assert should_partition(folder, settings=small)[0]
    assert not should_partition(folder, settings=load_settings())[0]
    built = open_build(folder, settings=small, cache_dir=tmp_path / "c")
    events = sum(
        pl.scan_parquet(folder / f"{name}.parquet").select(pl.len()).collect().item()
        for name in ("activities", "buyer_actions")
    )
    assert built.manifest["build"].startswith(f"partitioned ({events:,} events, more than")
    assert main(["build", str(folder), "--cache-dir", str(tmp_path / "d"), "--partitioned"]) == 0
    assert "partitioned (asked for)" in capsys.readouterr().out
    csv = tmp_path / "csv"
    csv.mkdir()
    (csv / "reps.csv").write_text("rep_id\nr1\n")
    (csv / "activities.csv").write_text(
        "activity_id,rep_id,ts,activity_type\na1,r1,2024-01-01,call\n"
    )
    assert not should_partition(csv, settings=small)[0]  # text files are loaded whole


def test_the_input_files_are_read_ahead_once_in_a_thread_as_the_build_starts(
    tiny_planted, tmp_path, monkeypatch
):
    # cold input: the load's scattered reads of the raw files waited on the disk (100M: ~45 s);
    # the build asks every raw file into memory, whole, once, from a thread of its own,
    # the small tables first and the event tables last, before the load reads them
    import threading

    from effortlens import warm

    folder = tmp_path / "data"
    shutil.copytree(tiny_planted, folder)
    asked: list[tuple[str, int, str]] = []
    advise = warm.advise_missing

    def advised(path, spans):
        if path.parent == folder:
            length = sum(span.length for span in spans)
            asked.append((path.name, length, threading.current_thread().name))
        return advise(path, spans)

    plan, ahead = partitioned.plan_partitions, partitioned._read_ahead  # noqa: SLF001
    order: list[str] = []

    def plan_partitions(*args, **kwargs):
        order.append("plan")
        return plan(*args, **kwargs)

    def read_ahead(paths):
        order.append("read ahead")
        return ahead(paths)

    monkeypatch.setattr(warm, "advise_missing", advised)
    monkeypatch.setattr(partitioned, "plan_partitions", plan_partitions)
    monkeypatch.setattr(partitioned, "_read_ahead", read_ahead)
    for thread in threading.enumerate():  # an earlier test's read-ahead, if any, is done
        if thread.name == "effortlens-read-ahead":
            thread.join()
    open_build(folder, settings=_settings(5_000), cache_dir=tmp_path / "b", partitioned=True)
    for thread in threading.enumerate():
        if thread.name == "effortlens-read-ahead":
            thread.join()
    raw = sorted(p.name for p in folder.glob("*.parquet") if not p.name.startswith("_"))
    assert len(raw) >= 5 and sorted(name for name, _, _ in asked) == raw  # each once
    assert all(length == (folder / name).stat().st_size for name, length, _ in asked)
    assert {thread for _, _, thread in asked} == {"effortlens-read-ahead"}
    names = [name for name, _, _ in asked]
    assert names[-2:] == ["activities.parquet", "buyer_actions.parquet"]
    assert order[:2] == ["read ahead", "plan"]  # asked before the load's first read
    # with the files larger than half the memory available, nothing is asked
    asked.clear()
    monkeypatch.setattr(warm, "available_memory", lambda: 2 * sum(
        (folder / name).stat().st_size for name in raw) - 2)  # fmt: skip
    assert partitioned._read_input_ahead(folder) is None  # noqa: SLF001
    assert asked == []
    monkeypatch.setattr(warm, "available_memory", lambda: 2 * sum(
        (folder / name).stat().st_size for name in raw))  # fmt: skip
    partitioned._read_input_ahead(folder).join()  # noqa: SLF001
    assert sorted(name for name, _, _ in asked) == raw


@pytest.mark.parametrize(
    ("notes", "merged"),
    [
        (["x: 1 row; y", "x: 2 rows; y"], ["x: 3 rows; y"]),
        (["skip 1 blank line (x)", "skip 1 blank line (x)", "z"], ["skip 2 blank lines (x)", "z"]),
        (["same", "same"], ["same"]),
    ],
)  # fmt: skip
def test_notes_of_chunks_merge_as_one_load_says_them(notes, merged):
    assert merge_notes(notes) == merged


def _keyless(folder: Path) -> None:
    """Mostly events without any key (never matched), some keyed, some in the future."""
    folder.mkdir()
    pl.DataFrame({"rep_id": ["r1", "r2"], "team": ["A", "B"]}).write_parquet(
        folder / "reps.parquet"
    )
    rows = []
    for i in range(3_000):
        keyed = i % 5 == 0
        rows.append(
            {
                "activity_id": f"a{i:05d}",
                "rep_id": ["r1", "r2"][i % 2],
                # every 7th in the future: quarantined in every chunk
                "ts": (T0 + timedelta(days=4_000 if i % 7 == 0 else i % 300)).isoformat(),
                "activity_type": ["email", "call", "meeting"][i % 3],
                "account_id": f"acc{i % 4}" if keyed else None,
                "contact_id": f"acc{i % 4}-c{i % 3}" if keyed else None,
            }
        )
    pl.DataFrame(rows, infer_schema_length=None).write_parquet(folder / "activities.parquet")
    actions = [
        {
            "action_id": f"b{i:04d}",
            "ts": (T0 + timedelta(days=i % 300, hours=5)).isoformat(),
            "action_type": "reply",
            "account_id": f"acc{i % 4}",
            "contact_id": f"acc{i % 4}-c{i % 3}",
        }
        for i in range(400)
    ]
    pl.DataFrame(actions).write_parquet(folder / "buyer_actions.parquet")


def test_keyless_events_spread_over_every_partition_with_equal_facts(tmp_path):
    folder = tmp_path / "data"
    _keyless(folder)
    whole, parts = _both(folder, tmp_path, partition_rows=500)
    _assert_same(whole, parts)
    assert whole.data.report.to_dict()["activities"]["quarantined"]["future_timestamp"] > 0
    # the partitions themselves: no partition holds more than about chunk_rows keyless events
    data = load_folder_chunked(folder, tmp_path / "s", settings=_settings(500), chunk_rows=500)
    n_parts = partitioned.partition_events(data.events, tmp_path / "p", chunk_rows=500)
    per_part = [
        pl.read_parquet(tmp_path / "p" / "activities" / f"__part={p}")
        .filter(pl.col("account_id").is_null() & pl.col("contact_id").is_null())
        .height
        for p in range(n_parts)
        if (tmp_path / "p" / "activities" / f"__part={p}").is_dir()
    ]
    keyless = whole.data.tables["activities"].filter(pl.col("account_id").is_null()).height
    assert sum(per_part) == keyless > 2_000
    assert n_parts >= 4 and sum(n > 0 for n in per_part) == n_parts
    assert max(per_part) <= 500


def test_events_find_their_partition_by_keys_when_triples_hashes_collide(tmp_path, monkeypatch):
    # each event finds its key triple's partition by the triple's hash; when two distinct
    # triples' hashes are equal (here all of them), by a join on the keys: the same partitions
    folder = tmp_path / "data"
    _keyless(folder)
    placed = {}
    for how in ("hash", "keys"):
        if how == "keys":
            monkeypatch.setattr(partitioned, "_triple_hash", lambda: pl.lit(7, pl.UInt64))
        out = tmp_path / how
        data = load_folder_chunked(folder, out / "s", settings=_settings(500), chunk_rows=500)
        n_parts = partitioned.partition_events(data.events, out / "p", chunk_rows=500)
        placed[how] = pl.concat(
            pl.read_parquet(out / "p" / table / f"__part={p}").select(
                pl.lit(table).alias("table"), pl.lit(p).alias("part"), "__row"
            )
            for table in ("activities", "buyer_actions")
            for p in range(n_parts)
            if (out / "p" / table / f"__part={p}").is_dir()
        ).sort("table", "__row")
    assert n_parts >= 4 and placed["hash"]["part"].n_unique() == n_parts
    assert_frame_equal(placed["hash"], placed["keys"])


def test_chunked_quarantine_is_files_that_read_back_as_in_memory(tmp_path):
    folder = tmp_path / "data"
    _keyless(folder)
    settings = _settings(500)
    whole = load_folder(folder, settings=settings, now=datetime(2026, 1, 1, tzinfo=UTC))
    data = load_folder_chunked(
        folder, tmp_path / "s", settings=settings, chunk_rows=500, now=datetime(2026, 1, 1)
    )
    assert len(data.quarantine) > 1  # the small tables' and one per window of rows
    assert all(isinstance(p, Path) and p.is_file() for p in data.quarantine)
    assert whole.quarantine.height > 400
    assert_frame_equal(whole.quarantine, pipeline.read_quarantine(data.quarantine))
    report = whole.report.to_dict()
    assert report == data.report.to_dict()


def test_partitioned_build_writes_its_files_as_the_in_memory_build(
    tiny_planted, tmp_path, monkeypatch
):
    # every kernel reads the daily roll-up at its first draw: written as one row group of
    # text columns (zstd) it cost the habits page at 10m +170 MB of peak and +0.8 CPU s
    pq = pytest.importorskip("pyarrow.parquet")
    from effortlens import facts

    monkeypatch.setattr(facts, "ROW_GROUP", 500)  # several row groups on the tiny sample
    settings = _settings(3_000)
    whole = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "a", partitioned=False)
    parts = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    for relative in ("daily.parquet", "reps.parquet", "tables/opportunities.parquet"):
        a, b = (pq.ParquetFile(build.path / relative).metadata for build in (whole, parts))
        assert pl.read_parquet_schema(parts.path / relative) == pl.read_parquet_schema(
            whole.path / relative
        ), relative
        assert b.num_row_groups == a.num_row_groups, relative
        assert b.row_group(0).column(0).compression == a.row_group(0).column(0).compression
    assert pq.ParquetFile(parts.path / "daily.parquet").metadata.num_row_groups > 1
    for part in (parts.path / "activities.parquet").glob("*.parquet"):
        codec = pq.ParquetFile(part).metadata.row_group(0).column(0).compression
        assert codec == facts.PARQUET_CODEC.upper()


def test_daily_summed_a_slice_of_reps_at_a_time_is_the_whole_roll_up(tiny_planted, tmp_path):
    # 100M events summed in one group-by went past 8 GB: the roll-up is summed a run of reps
    # at a time; whatever the slice, the file is the in-memory roll-up, in its order
    settings = load_settings()
    data = load_folder(tiny_planted, settings=settings)
    enriched = enrich_tables(data.tables, settings=settings)
    slim = tmp_path / "slim"
    slim.mkdir()
    # each part's own roll-up, as a partition writes it: a rep's day of one type falls in
    # several parts, whose sums are added up
    reps = with_peer_group(with_known_groups(data.tables["reps"]), keys=settings.peer_keys)
    acts = enriched.activities
    ghost = acts.head(3).with_columns(rep_id=pl.lit("not-a-rep"))  # a rep the table lacks
    for i, part in enumerate((acts[::3], acts[1::3], acts[2::3], ghost)):
        daily = daily_of_activities(part, reps, customer_facing=settings.customer_facing_types)
        assert daily.height < part.height or part.height <= 3  # sums, not rows
        partitioned.slim_rows(daily).write_parquet(slim / f"part-{i:05d}.parquet")
    reps = data.tables["reps"]
    read = {}
    for slice_rows in (1, 977, 10**9):  # a rep a slice, a few reps a slice, one slice
        target = tmp_path / f"daily-{slice_rows}.parquet"
        n = partitioned.write_daily(slim, reps, target, settings=settings, slice_rows=slice_rows)
        read[slice_rows] = pl.read_parquet(target)
        assert n == read[slice_rows].height
    assert_frame_equal(read[1], read[10**9])
    assert_frame_equal(read[977], read[10**9])
    known = read[1].filter(pl.col("rep_id") != "not-a-rep")
    assert read[1].tail(1)["rep_id"].item() == "not-a-rep"  # unknown reps last
    assert_frame_equal(
        enriched.daily,
        known.with_columns(pl.col(pl.Categorical).cast(pl.String)),
        check_exact=False,
        rel_tol=1e-9,
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    n = partitioned.write_daily(
        empty, reps, tmp_path / "none.parquet", settings=settings, slice_rows=1
    )
    assert n == 0 and pl.read_parquet(tmp_path / "none.parquet").height == 0


def test_cells_and_gaps_summed_a_run_of_reps_at_a_time_are_the_whole_sums(tiny_planted, tmp_path):
    # the habit cells and the follow-ups by rep are made a run of reps at a time (about four
    # partitions' touches; 100M: 81.6M touches, 80M follow-ups, each passed 8 GB at once):
    # here runs of 400, every view fact as the in-memory build's, the gaps row for row
    settings = _settings(100, above=10_000)
    whole = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "a", partitioned=False)
    parts = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    a = pl.read_parquet(whole.path / AGGREGATES_LAYOUT["practice_gaps"])
    b = pl.read_parquet(parts.path / AGGREGATES_LAYOUT["practice_gaps"])
    assert a.height > 4 * 400 and b["rep_id"].n_unique() > 4  # several runs of reps
    assert_frame_equal(a, b)
    # and mapped by rep with each rep's counts by bin: the same files (the seconds, the bins)
    from effortlens.facts import PRACTICE_GAP_RUNS

    one, other = whole.path / PRACTICE_GAP_RUNS, parts.path / PRACTICE_GAP_RUNS
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in other.iterdir())
    assert_frame_equal(
        pl.read_parquet(one / "rep.keys.parquet"), pl.read_parquet(other / "rep.keys.parquet")
    )
    for name in ("seconds.npy", "bins.npy", "edges.npy"):
        x, y = np.load(one / name), np.load(other / name)
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert np.load(one / "seconds.npy").size == a.height
    timing = pl.read_parquet(parts.path / AGGREGATES_LAYOUT["habit_timing"])
    assert timing["n"].sum() > 4 * 400  # the touches span several runs
    assert timing["rep_id"].to_list() == sorted(timing["rep_id"].to_list())  # runs in rep order
    _assert_same_view_facts(whole, parts)


@pytest.mark.parametrize("wide", [False, True])
def test_a_partition_is_read_in_the_loaded_order(tmp_path, wide):
    # the loaded order (sort keys, nulls last, ties by input row) by one packed integer sort;
    # keys too wide for 64 bits (times three centuries apart, 2,000 opportunities) by the
    # general sort: both give the rows as a sort on the keys and the input row does
    rng = np.random.default_rng(11)
    n = 6_000
    start = datetime(1900 if wide else 2024, 1, 1, tzinfo=UTC)
    last = datetime(2200, 1, 1, tzinfo=UTC) if wide else start + timedelta(minutes=30)
    steps = rng.integers(0, 30, n)
    frame = pl.DataFrame(
        {
            "activity_id": [f"a{i}" for i in range(n)],
            "opportunity_id": [None if x == 0 else f"o{x}" for x in rng.integers(0, 2_001, n)],
            "ts": [start + timedelta(minutes=int(m)) for m in steps],
            "__row": pl.Series(rng.permutation(3 * n)[:n], dtype=pl.UInt32),
        }
    ).with_columns(pl.when(pl.col("__row") == 5).then(last).otherwise("ts").alias("ts"))
    frame[:2_500].write_parquet(tmp_path / "a.parquet")
    frame[2_500:].write_parquet(tmp_path / "b.parquet")
    assert (partitioned.loaded_order(frame, ["opportunity_id", "ts"]) is None) == wide
    expected = frame.sort("opportunity_id", "ts", "__row", nulls_last=True).drop("__row")
    assert expected["ts"].n_unique() < n / 100  # many ties, broken by the input row
    assert_frame_equal(partitioned.read_partition(tmp_path, "activities"), expected)


def test_a_partition_is_read_coded(tmp_path):
    # the columns named `coded` as an Enum of the sorted values they hold, the same values in
    # the loaded order: a column in runs of equal values (reps, as the load writes them: coded
    # per run) with nulls among them, one not in runs (types: coded per row); others as text
    rng = np.random.default_rng(5)
    n = 90_000
    reps = np.repeat([f"r{i:03d}" for i in rng.permutation(300)], n // 300).astype(object)
    reps[rng.integers(0, n, 50)] = None
    frame = pl.DataFrame(
        {
            "rep_id": reps,
            "activity_type": rng.choice(["email", "call", "demo", "admin"], n),
            "opportunity_id": [f"o{x}" if x else None for x in rng.integers(0, 900, n)],
            "ts": [
                datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=int(h))
                for h in rng.integers(0, 5_000, n)
            ],
            "__row": pl.Series(np.arange(n), dtype=pl.UInt32),
        }
    )
    for k, at in enumerate(range(0, n, 30_000)):  # chunk files in input order
        frame[at : at + 30_000].write_parquet(tmp_path / f"part-{k:05d}.parquet")
    text = partitioned.read_partition(tmp_path, "activities")
    coded = partitioned.read_partition(
        tmp_path, "activities", coded=("rep_id", "activity_type", "ts")
    )
    for c in ("rep_id", "activity_type"):
        assert coded.schema[c] == pl.Enum(text[c].drop_nulls().unique().sort()), c
    assert coded.schema["ts"] == text.schema["ts"]  # not text: as it is
    assert coded.schema["opportunity_id"] == pl.String
    assert coded["rep_id"].null_count() == 50
    assert_frame_equal(coded.with_columns(pl.col(pl.Enum).cast(pl.String)), text)
    assert_frame_equal(
        text, frame.sort("opportunity_id", "ts", "__row", nulls_last=True).drop("__row")
    )
