"""The Spark enrichment (effortlens.spark_build) writes the same facts as the Polars one.

Runs Spark in local mode (local[2], 2 shuffle partitions, no UI). ``make test`` installs what
it needs (Java from Debian's packages, ``pyspark`` from the ``spark`` extra); elsewhere the
tests are skipped with the reason. Select or leave them out with ``-m spark`` / ``-m "not spark"``.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.enrich import enrich_tables
from effortlens.schema import conform
from effortlens.settings import load_settings

pytestmark = [pytest.mark.spark, pytest.mark.slow]

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")
if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
    pytest.skip("no Java runtime (apt-get install default-jre-headless)", allow_module_level=True)

from effortlens.spark_build import (  # noqa: E402  (after the skips above)
    FACTS_LAYOUT,
    build_facts_spark,
    fact_schemas,
    local_session,
    read_facts,
    write_build_facts,
    write_canonical,
)


@pytest.fixture(scope="module")
def spark():
    session = local_session(cores=2, shuffle_partitions=2, short_jobs=True)
    yield session
    session.stop()


def _polars_facts(tables: dict[str, pl.DataFrame], settings) -> dict[str, pl.DataFrame]:
    """The Polars enrichment's facts in the facts layout (every canonical and added column)."""
    enriched = enrich_tables(tables, settings=settings)
    frames = {
        "activities": enriched.activities,
        "actions": enriched.actions,
        "daily": enriched.daily,
        "reps": enriched.reps,
    }
    schemas = fact_schemas()
    return {name: frames[name].select(schemas[name].names()) for name in schemas}


def _spark_facts(spark, tables, settings, tmp_path) -> dict[str, pl.DataFrame]:
    canonical = write_canonical(tables, tmp_path / "canonical")
    build_facts_spark(canonical, tmp_path / "facts", settings, spark=spark)
    return read_facts(tmp_path / "facts")


def _assert_same_facts(spark_facts, polars_facts) -> None:
    assert spark_facts.keys() == polars_facts.keys()
    for name, expected in polars_facts.items():
        got = spark_facts[name]
        assert got.schema == expected.schema, name
        # the rows in the same order (the facts are aligned with the input tables' rows);
        # float sums may differ in the last bits (Spark adds in another order)
        assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


def test_spark_facts_equal_the_polars_facts_on_the_tiny_sample(spark, tiny_planted, tmp_path):
    from effortlens.loading import load_folder

    settings = load_settings()
    tables = dict(load_folder(tiny_planted, settings=settings).tables)
    expected = _polars_facts(tables, settings)
    rows = write_build_facts(tables, tmp_path / "build", settings=settings, spark=spark)
    # what a build holds: each fact a folder of part files with exactly the Polars dtypes
    for name, relative in FACTS_LAYOUT.items():
        parts = sorted((tmp_path / "build" / relative).glob("*.parquet"))
        assert parts, name
        assert pl.scan_parquet(parts).collect_schema() == fact_schemas()[name], name
        assert rows[relative] == expected[name].height
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == sorted(FACTS_LAYOUT.values())
    got = read_facts(tmp_path / "build")
    _assert_same_facts(got, expected)
    # the sample exercises what is compared (the account level: the hand-made test below)
    levels = set(got["actions"]["attribution_level"].drop_nulls().unique())
    assert {"opportunity", "contact"} <= levels
    assert got["actions"]["buyer_initiated"].any()
    assert got["activities"]["n_responses"].sum() == (~got["actions"]["buyer_initiated"]).sum()
    assert got["daily"]["activities"].sum() == tables["activities"].height


T0 = datetime(2024, 3, 10, 6, 59, 59, tzinfo=UTC)  # 01:59:59 EST, one second before DST starts


def _hand_tables() -> dict[str, pl.DataFrame]:
    """Ties, the window's edge, each level, a non-facing activity and a rep not in reps."""
    window = timedelta(days=14)
    acts = [
        # a0/a1 tie at T0 on o1: the later row (a1) earns b0
        ("a0", "r1", T0, "email", "x", "o1", "c1"),
        ("a1", "r2", T0, "call", "x", "o1", "c1"),
        # an internal activity later on o1 earns nothing
        ("a2", "r1", T0 + timedelta(hours=1), "internal", "x", "o1", "c1"),
        # contact level: c2 without an opportunity; account level: y
        ("a3", "r1", T0 + timedelta(days=1), "meeting", "x", None, "c2"),
        ("a4", "ghost", T0 + timedelta(days=2), "demo", "y", None, None),
        # the window's edge: exactly 14 days before b4 counts, 1 µs more does not (b5)
        ("a5", "r2", T0 + timedelta(days=3), "email", "z", "o5", None),
        ("a6", "r2", T0 + timedelta(days=3, microseconds=-1), "email", "w", "o6", None),
        # a tie on the account level, rows in the other order: the later row (a7) wins
        ("a8", "r1", T0 + timedelta(days=4), "social", "v", None, None),
        ("a7", "r2", T0 + timedelta(days=4), "social", "v", None, None),
    ]
    activities = pl.DataFrame(
        acts,
        schema=[
            "activity_id",
            "rep_id",
            "ts",
            "activity_type",
            "account_id",
            "opportunity_id",
            "contact_id",
        ],
        orient="row",
    ).with_columns(duration_min=pl.Series([6.0, 12.0, 30.0, 45.0, None, 6.0, 6.0, 4.0, 4.0]))
    actions = pl.DataFrame(
        [
            ("b0", T0 + timedelta(hours=2), "x", "o1", "c1", "reply", False, 1.0),
            ("b1", T0 + timedelta(days=1), "x", "o9", "c2", "meeting_held", True, 3.0),
            ("b2", T0 + timedelta(days=3), "y", None, "c7", "reply", False, None),
            ("b3", T0 - timedelta(hours=1), "x", "o1", None, "reply", False, 1.0),
            ("b4", T0 + timedelta(days=3) + window, "z", "o5", None, "referral", False, 3.0),
            ("b5", T0 + timedelta(days=3) + window, "w", "o6", None, "referral", False, 3.0),
            ("b6", T0 + timedelta(days=4), "v", None, None, "reply", None, 0.5),
        ],
        schema=[
            "action_id",
            "ts",
            "account_id",
            "opportunity_id",
            "contact_id",
            "action_type",
            "is_verifier",
            "weight",
        ],
        orient="row",
    )
    reps = pl.DataFrame(
        {
            "rep_id": ["r1", "r2", "r1"],
            "team": ["A", " B ", "dup"],
            "segment": ["SMB", None, "X"],
            # r1's zone is no zone (the settings' serves), r2 works from Berlin
            "timezone": ["Mars/Base", "Europe/Berlin", None],
        }
    )
    tables = {"reps": reps, "activities": activities, "buyer_actions": actions}
    return {name: conform(frame, name).collect() for name, frame in tables.items()}


def test_spark_agrees_on_ties_levels_the_window_edge_and_local_calendar(spark, tmp_path):
    """Activities as a folder of part files, read in file-name order: the tied rows a0 and a1
    are in different files, the later row in the file named later."""
    settings = load_settings()
    tables = _hand_tables()
    expected = _polars_facts(tables, settings)
    canonical = write_canonical(tables, tmp_path / "canonical")
    (canonical / "activities.parquet").unlink()
    parts = canonical / "activities.parquet"
    parts.mkdir()
    for i, (start, length) in enumerate([(0, 1), (1, 4), (5, 4)]):
        tables["activities"].slice(start, length).write_parquet(parts / f"part-{i:05d}.parquet")
    build_facts_spark(canonical, tmp_path / "facts", settings, spark=spark)
    got = read_facts(tmp_path / "facts")
    _assert_same_facts(got, expected)

    actions = got["actions"]
    credit = dict(zip(actions["action_id"], actions["activity_id"], strict=True))
    level = dict(zip(actions["action_id"], actions["attribution_level"], strict=True))
    assert (credit["b0"], level["b0"]) == ("a1", "opportunity")  # tie: the later row
    assert (credit["b1"], level["b1"]) == ("a3", "contact")
    assert (credit["b2"], level["b2"]) == ("a4", "account")
    assert credit["b3"] is None  # before any activity
    assert (credit["b4"], actions.row(4, named=True)["lag_hours"]) == ("a5", 14 * 24.0)
    assert credit["b5"] is None  # 1 µs outside the window
    assert credit["b6"] == "a7"  # tie with the rows the other way round
    activities = got["activities"]
    # the rep not in reps keeps null rep columns; a duplicated rep keeps its first row
    assert activities.filter(pl.col("activity_id") == "a4")["team"].item() is None
    assert activities.filter(pl.col("activity_id") == "a0")["team"].item() == "A"
    # 06:59:59 UTC is 01:59:59 in New York on the day DST starts; an hour later it is 03:59:59
    first = activities.row(0, named=True)
    assert (first["day"].isoformat(), first["hour"], first["weekday"]) == ("2024-03-10", 1, 7)
    assert first["week"].isoformat() == "2024-03-04"
    assert activities.row(2, named=True)["hour"] == 3
    # r2's activities and the actions credited to r2 are on Berlin's calendar; blank groups
    # are "(unknown)", values are trimmed
    assert activities.row(1, named=True)["hour"] == 7
    assert activities.filter(pl.col("rep_id") == "r2")["team"].unique().to_list() == ["B"]
    assert activities.filter(pl.col("rep_id") == "r2")["segment"].unique().to_list() == [
        "(unknown)"
    ]


def test_spark_without_buyer_actions(spark, tmp_path):
    settings = load_settings()
    tables = _hand_tables()
    tables["buyer_actions"] = tables["buyer_actions"].clear()
    got = _spark_facts(spark, tables, settings, tmp_path)
    _assert_same_facts(got, _polars_facts(tables, settings))
    assert got["activities"]["n_responses"].sum() == 0
    assert got["actions"].height == 0


def test_effortlens_build_engine_spark_writes_the_polars_facts(spark, tiny_planted, tmp_path):
    """`effortlens build DATA --engine spark`, end to end on the tiny sample."""
    from effortlens.cli import main
    from effortlens.loading import load_folder

    cache = tmp_path / "cache"
    assert main(["build", str(tiny_planted), "--engine", "spark", "--cache-dir", str(cache)]) == 0
    [facts] = {path.parent for path in cache.rglob("daily.parquet")}
    settings = load_settings()
    expected = _polars_facts(dict(load_folder(tiny_planted, settings=settings).tables), settings)
    _assert_same_facts(read_facts(facts), expected)
    # the apps open that build (the key does not depend on the engine) with its precomputed
    # view facts, made by Polars from the Spark-written facts: the same as from Polars' own
    from effortlens.facts import open_build
    from effortlens.habits import touch_facts
    from effortlens.roe import streak_facts

    built = open_build(tiny_planted, cache_dir=cache)
    assert built.path == facts and built.manifest["engine"] == "spark" and not built.rebuilt
    enriched = enrich_tables(
        dict(load_folder(tiny_planted, settings=settings).tables), settings=settings
    )
    assert_frame_equal(
        built.enriched.aggregates["touches"].collect(),
        touch_facts(enriched),
        check_exact=False,
        rel_tol=1e-9,
        abs_tol=1e-9,
    )
    assert_frame_equal(
        built.enriched.aggregates["streaks"].collect(),
        streak_facts(enriched.activities, enriched.actions, enriched.reps),
    )
