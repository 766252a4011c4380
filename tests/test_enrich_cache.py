"""Enrichment (responses per activity, local calendar, rep columns, daily roll-up) and its cache."""

from __future__ import annotations

import dataclasses
import warnings
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import effortlens.enrich as enrich_module
from effortlens.cache import CacheWarning, verify_entry
from effortlens.enrich import (
    ACTIONS_SCHEMA,
    ACTIVITIES_SCHEMA,
    DAILY_SCHEMA,
    enrich,
    enrich_tables,
)
from effortlens.schema import TABLES, conform
from effortlens.settings import load_settings

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York (EST)


def _table(name: str, rows: list[dict]) -> pl.DataFrame:
    return conform(pl.DataFrame(rows), name).collect()


def _tables() -> dict[str, pl.DataFrame]:
    reps = _table(
        "reps",
        [
            {"rep_id": "r1", "team": "East", "segment": "SMB", "role": "AE"},
            {"rep_id": "r2", "team": "West", "segment": "SMB", "role": None},
            {"rep_id": "idle", "team": "East", "segment": "ENT", "role": "AE"},
        ],
    )
    acts = _table(
        "activities",
        [
            {
                "activity_id": "a1",
                "rep_id": "r1",
                "ts": T0,
                "activity_type": "email",
                "account_id": "x",
                "opportunity_id": "o1",
                "contact_id": "c1",
                "duration_min": 6.0,
            },
            {
                "activity_id": "a2",
                "rep_id": "r1",
                "ts": T0 + timedelta(hours=1),
                "activity_type": "email",
                "account_id": "x",
                "opportunity_id": "o2",
                "contact_id": "c2",
                "duration_min": 12.0,
            },
            {
                "activity_id": "a3",
                "rep_id": "r1",
                "ts": T0 + timedelta(hours=2),
                "activity_type": "admin",
                "account_id": "x",
                "opportunity_id": "o1",
                "contact_id": None,
                "duration_min": 30.0,
            },
            {
                "activity_id": "a4",
                "rep_id": "r2",
                "ts": T0,
                "activity_type": "call",
                "account_id": "y",
                "opportunity_id": None,
                "contact_id": "c9",
                "duration_min": 15.0,
            },
        ],
    )
    actions = _table(
        "buyer_actions",
        [
            {
                "action_id": "b1",
                "ts": T0 + timedelta(hours=3),
                "account_id": "x",
                "opportunity_id": "o1",
                "contact_id": "c1",
                "action_type": "reply",
                "is_verifier": False,
                "weight": 1.0,
            },
            {
                "action_id": "b2",
                "ts": T0 + timedelta(days=1),
                "account_id": "x",
                "opportunity_id": "o1",
                "contact_id": "c1",
                "action_type": "meeting_held",
                "is_verifier": True,
                "weight": 3.0,
            },
            {
                "action_id": "b3",
                "ts": T0 + timedelta(days=40),
                "account_id": "x",
                "opportunity_id": "o1",
                "contact_id": "c1",
                "action_type": "reply",
                "is_verifier": False,
                "weight": 1.0,
            },
        ],
    )
    return {"reps": reps, "activities": acts, "buyer_actions": actions}


def test_activities_carry_their_responses_in_the_loaded_order():
    e = enrich_tables(_tables(), settings=load_settings())
    got = e.activities.select(
        "activity_id",
        "is_customer_facing",
        "hours",
        "n_responses",
        "response_weight",
        "verifier_responses",
        "responded",
        "team",
        "peer_group",
    )
    expected = pl.DataFrame(
        {
            "activity_id": ["a1", "a2", "a3", "a4"],
            "is_customer_facing": [True, True, False, True],
            "hours": [0.1, 0.2, 0.5, 0.25],
            "n_responses": pl.Series([2, 0, 0, 0], dtype=pl.UInt32),
            "response_weight": [4.0, 0.0, 0.0, 0.0],
            "verifier_responses": pl.Series([1, 0, 0, 0], dtype=pl.UInt32),
            "responded": [True, False, False, False],
            "team": ["East", "East", "East", "West"],
            # a rep without a role is in the role "(unknown)" (effortlens.coverage)
            "peer_group": ["SMB · AE", "SMB · AE", "SMB · AE", "SMB · (unknown)"],
        }
    )
    assert_frame_equal(got, expected)


def test_enriched_schemas_follow_the_contract():
    e = enrich_tables(_tables(), settings=load_settings())
    assert e.activities.schema == ACTIVITIES_SCHEMA
    assert e.actions.schema == ACTIONS_SCHEMA
    assert list(ACTIVITIES_SCHEMA)[:8] == list(TABLES["activities"].columns)
    assert {k: ACTIVITIES_SCHEMA[k] for k in ("weekday", "hour", "n_responses", "team")} == {
        "weekday": pl.Int8,
        "hour": pl.Int8,
        "n_responses": pl.UInt32,
        "team": pl.String,
    }
    assert e.daily.schema == DAILY_SCHEMA
    assert e.actions.columns[: len(TABLES["buyer_actions"].columns)] == list(
        TABLES["buyer_actions"].columns
    )
    assert e.actions.select(
        "activity_id", "attribution_level", "rep_id", "buyer_initiated", "lag_hours"
    ).rows() == [
        ("a1", "opportunity", "r1", False, 3.0),
        ("a1", "opportunity", "r1", False, 24.0),
        (None, None, None, True, None),
    ]


def test_local_calendar_follows_the_settings_time_zone_across_dst():
    # New York springs forward on Sunday 2024-03-10 at 02:00 local
    stamps = [
        datetime(2024, 3, 10, 6, 30, tzinfo=UTC),  # 01:30 EST, Sunday
        datetime(2024, 3, 10, 7, 30, tzinfo=UTC),  # 03:30 EDT, Sunday
        datetime(2024, 3, 11, 3, 0, tzinfo=UTC),  # 23:00 EDT, still Sunday the 10th
        datetime(2024, 3, 11, 4, 0, tzinfo=UTC),  # 00:00 EDT, Monday the 11th: a new week
    ]
    acts = _table(
        "activities",
        [
            {
                "activity_id": f"a{i}",
                "rep_id": "r1",
                "ts": ts,
                "activity_type": "call",
                "duration_min": 12.0,
            }
            for i, ts in enumerate(stamps)
        ],
    )
    tables = {**_tables(), "activities": acts}
    e = enrich_tables(tables, settings=load_settings())
    assert e.activities.select("day", "week", "weekday", "hour").rows() == [
        (date(2024, 3, 10), date(2024, 3, 4), 7, 1),
        (date(2024, 3, 10), date(2024, 3, 4), 7, 3),
        (date(2024, 3, 10), date(2024, 3, 4), 7, 23),
        (date(2024, 3, 11), date(2024, 3, 11), 1, 0),
    ]
    paris = dataclasses.replace(load_settings(), timezone="Europe/Paris")
    e = enrich_tables(tables, settings=paris)
    assert e.activities["hour"].to_list() == [7, 8, 4, 5]
    assert e.activities["day"].to_list()[2:] == [date(2024, 3, 11)] * 2


def test_daily_rolls_up_per_rep_day_and_type():
    e = enrich_tables(_tables(), settings=load_settings())
    got = e.daily.select(
        "rep_id",
        "day",
        "activity_type",
        "activities",
        "hours",
        "responded",
        "response_weight",
        "no_impact_hours",
        "team",
    )
    expected = pl.DataFrame(
        {
            "rep_id": ["r1", "r1", "r2"],
            "day": [date(2024, 3, 4)] * 3,
            "activity_type": ["admin", "email", "call"],
            "activities": pl.Series([1, 2, 1], dtype=pl.UInt32),
            "hours": [0.5, 0.1 + 0.2, 0.25],
            "responded": pl.Series([0, 1, 0], dtype=pl.UInt32),
            "response_weight": [0.0, 4.0, 0.0],
            "no_impact_hours": [0.5, 0.2, 0.25],
            "team": ["East", "East", "West"],
        }
    )
    assert_frame_equal(got, expected)
    # a rep with no activity has no daily rows but keeps a peer group
    assert "idle" not in e.daily["rep_id"].to_list()
    assert e.reps.filter(pl.col("rep_id") == "idle")["peer_group"].item() == "ENT · AE"


def test_pipeline_only_data_gives_empty_frames_with_the_schemas():
    tables = {"reps": _tables()["reps"], "opportunities": TABLES["opportunities"].empty()}
    e = enrich_tables(tables, settings=load_settings())
    assert (e.activities.height, e.actions.height, e.daily.height) == (0, 0, 0)
    assert e.daily.schema == DAILY_SCHEMA
    assert e.activities.schema == ACTIVITIES_SCHEMA
    assert e.actions.schema == ACTIONS_SCHEMA
    assert set(e.tables) == set(TABLES)


def test_inputs_not_mutated():
    tables = _tables()
    before = {name: frame.clone() for name, frame in tables.items()}
    enrich_tables(tables, settings=load_settings())
    assert set(tables) == set(before)
    for name, frame in tables.items():
        assert_frame_equal(frame, before[name])


# -- the cache ---------------------------------------------------------------------------------


def _data(tables=None, settings=None):
    return SimpleNamespace(tables=tables or _tables(), settings=settings or load_settings())


def _forbid_compute(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("enrichment recomputed although the cache holds it")

    monkeypatch.setattr(enrich_module, "enrich_tables", fail)


def test_cache_hit_serves_the_same_facts_without_recomputing(tmp_path, monkeypatch):
    first = enrich(_data(), cache_dir=tmp_path)
    assert (tmp_path / "enriched" / first.fingerprint / "activities.parquet").is_file()
    _forbid_compute(monkeypatch)
    second = enrich(_data(), cache_dir=tmp_path)
    assert second.fingerprint == first.fingerprint
    assert set(second.tables) == set(first.tables) == set(TABLES)
    for name in ("activities", "actions", "daily", "reps"):
        assert_frame_equal(getattr(second, name), getattr(first, name))


def test_cache_miss_when_the_data_changes(tmp_path):
    first = enrich(_data(), cache_dir=tmp_path)
    tables = _tables()
    tables["buyer_actions"] = tables["buyer_actions"].with_columns(
        pl.when(pl.col("action_id") == "b2").then(10.0).otherwise(pl.col("weight")).alias("weight")
    )
    second = enrich(_data(tables), cache_dir=tmp_path)
    assert second.fingerprint != first.fingerprint
    assert second.activities["response_weight"].to_list()[0] == 11.0
    entries = (tmp_path / "enriched").iterdir()
    assert len([p for p in entries if not p.name.startswith(".")]) == 2


def test_cache_miss_when_the_settings_change(tmp_path):
    first = enrich(_data(), cache_dir=tmp_path)
    calls_only = dataclasses.replace(load_settings(), customer_facing=("call",))
    second = enrich(_data(settings=calls_only), cache_dir=tmp_path)
    assert second.fingerprint != first.fingerprint
    assert first.activities["n_responses"].to_list() == [2, 0, 0, 0]
    assert second.activities["n_responses"].to_list() == [0, 0, 0, 0]
    assert second.actions["buyer_initiated"].all()


def _damage_daily(entry, how: str) -> None:
    """Damage ``daily.parquet`` of a cache entry the three ways issue 10 found."""
    path = entry / "daily.parquet"
    if how == "byte flips":
        raw = bytearray(path.read_bytes())
        for at in range(len(raw) // 3, len(raw) // 3 + 64, 7):
            raw[at] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif how == "another table":
        pl.read_parquet(entry / "reps.parquet").write_parquet(path)
    else:  # the same schema, every number doubled
        daily = pl.read_parquet(path)
        numbers = [c for c, t in daily.schema.items() if t.is_numeric()]
        daily.with_columns(pl.col(numbers) * 2).write_parquet(path)


@pytest.mark.parametrize("how", ["byte flips", "another table", "doubled values"])
def test_a_damaged_cache_entry_is_reported_once_deleted_and_recomputed(tmp_path, how):
    first = enrich(_data(), cache_dir=tmp_path)
    entry = tmp_path / "enriched" / first.fingerprint
    _damage_daily(entry, how)
    with pytest.warns(CacheWarning, match="daily.parquet") as caught:
        again = enrich(_data(), cache_dir=tmp_path)
    assert len([w for w in caught if issubclass(w.category, CacheWarning)]) == 1
    assert_frame_equal(again.daily, first.daily)
    assert verify_entry(entry) == ""  # deleted and written anew
    assert_frame_equal(pl.read_parquet(entry / "daily.parquet"), first.daily)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten entry is served silently
        assert_frame_equal(enrich(_data(), cache_dir=tmp_path).daily, first.daily)


def test_default_cache_dir_is_env_else_the_per_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("EFFORTLENS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    e = enrich(_data())
    assert (tmp_path / "xdg" / "effortlens" / "enriched" / e.fingerprint).is_dir()
    assert not (tmp_path / ".cache").exists()  # never under the working directory
    monkeypatch.setenv("EFFORTLENS_CACHE", str(tmp_path / "elsewhere"))
    e = enrich(_data(settings=dataclasses.replace(load_settings(), timezone="UTC")))
    assert (tmp_path / "elsewhere" / "enriched" / e.fingerprint).is_dir()


@pytest.mark.parametrize("change", ["reorder", "schema", "one_value", "nothing"])
def test_fingerprint_follows_content_order_and_schema(change):
    from effortlens.cache import fingerprint

    tables = _tables()
    base = fingerprint(tables, load_settings())
    acts = tables["activities"]
    tables["activities"] = {
        "reorder": acts.reverse(),
        "schema": acts.with_columns(pl.col("duration_min").cast(pl.Float32)),
        "one_value": acts.with_columns(
            pl.when(pl.col("activity_id") == "a4")
            .then(16.0)
            .otherwise("duration_min")
            .alias("duration_min")
        ),
        "nothing": acts.clone(),
    }[change]
    assert (fingerprint(tables, load_settings()) == base) == (change == "nothing")


def test_daily_equals_a_plain_group_by_of_the_activities(tiny_planted_enriched):
    e = tiny_planted_enriched.enriched
    keys = ["rep_id", "day", "activity_type"]
    plain = (
        e.activities.group_by(keys)
        .agg(
            pl.len().cast(pl.UInt32).alias("activities"),
            pl.col("hours").sum(),
            pl.col("responded").sum().cast(pl.UInt32),
            pl.col("response_weight").sum(),
            pl.col("hours").filter(~pl.col("responded")).sum().alias("no_impact_hours"),
            pl.col("week", "is_customer_facing", "team", "segment", "role", "peer_group").first(),
        )
        .select(DAILY_SCHEMA.names())
        .sort(keys)
    )
    assert e.daily.height > 1000
    assert_frame_equal(e.daily.sort(keys), plain, check_exact=False)


def test_activities_of_reps_missing_from_the_reps_table_are_kept():
    tables = _tables()
    tables["reps"] = tables["reps"].filter(pl.col("rep_id") != "r2")
    e = enrich_tables(tables, settings=load_settings())
    assert e.activities.filter(pl.col("rep_id") == "r2")["team"].to_list() == [None]
    assert e.daily.filter(pl.col("rep_id") == "r2").select("activities", "team").rows() == [
        (1, None)
    ]


def test_an_unwritable_cache_warns_but_still_enriches(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should go")
    with pytest.warns(UserWarning, match="cache not written"):
        e = enrich(_data(), cache_dir=blocker)
    assert e.activities["n_responses"].to_list() == [2, 0, 0, 0]


def test_enriched_columns_share_the_input_chunks():
    """Columns chunked differently make every later expression copy the whole frame."""
    tables = _tables()
    tables["activities"] = pl.concat(
        [tables["activities"].slice(0, 2), tables["activities"].slice(2)], rechunk=False
    )
    e = enrich_tables(tables, settings=load_settings())
    assert set(e.activities.n_chunks("all")) == {2}
    assert e.activities["activity_id"].to_list() == ["a1", "a2", "a3", "a4"]
    assert e.activities["n_responses"].to_list() == [2, 0, 0, 0]


def test_a_cache_hit_reuses_the_input_columns_in_their_chunks(tmp_path):
    tables = _tables()
    tables["activities"] = pl.concat(
        [tables["activities"].slice(0, 1), tables["activities"].slice(1)], rechunk=False
    )
    first = enrich(_data(tables), cache_dir=tmp_path)
    again = enrich(_data(tables), cache_dir=tmp_path)
    assert set(again.activities.n_chunks("all")) == {2}
    assert_frame_equal(again.activities, first.activities)
    assert_frame_equal(again.actions, first.actions)
