"""The enrichment's coded facts (``enrich_tables(coded=True)``: the rep's text columns, the
activity type and the attribution level as ``Enum`` codes, what a partition of the partitioned
build writes): the same values as the text facts, and the same files once written."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.enrich import ACTIONS_SCHEMA, ACTIVITIES_SCHEMA, LEVEL_ENUM, enrich_tables
from effortlens.loading import load_folder
from effortlens.settings import load_settings

CODED = {
    "activities": ["rep_id", "activity_type", "team", "segment", "role", "peer_group"],
    "actions": ["rep_id", "attribution_level"],
}


def _tables(folder) -> dict[str, pl.DataFrame]:
    """The tiny sample's tables, with what the codes must survive: a rep missing from the reps
    table (its activities keep null rep columns), reps in zones of their own (an action's day
    is its credited rep's), a rep without a team, the reps table out of id order, and actions
    on their account only."""
    settings = load_settings()
    tables = {
        name: frame.collect() if isinstance(frame, pl.LazyFrame) else frame
        for name, frame in load_folder(folder, settings=settings).tables.items()
    }
    reps = tables["reps"]
    ids = reps["rep_id"].sort().to_list()
    zones = {ids[1]: "Asia/Kathmandu", ids[2]: "America/St_Johns", ids[3]: "Not/AZone"}
    tables["reps"] = (
        reps.filter(pl.col("rep_id") != ids[0])
        .with_columns(
            pl.col("rep_id").replace_strict(zones, default=None).alias("timezone"),
            pl.when(pl.col("rep_id") == ids[4]).then(None).otherwise(pl.col("team")).alias("team"),
        )
        .sort("rep_id", descending=True)
    )
    # every 7th action on its account only: the account level is taken too
    account_only = pl.int_range(pl.len()) % 7 == 0
    tables["buyer_actions"] = tables["buyer_actions"].with_columns(
        pl.when(account_only).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("opportunity_id", "contact_id")
    )
    return tables


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_coded_facts_hold_the_text_facts_values(tiny_planted, zone):
    tables = _tables(tiny_planted)
    settings = dataclasses.replace(load_settings(), timezone=zone)
    text = enrich_tables(tables, settings=settings)
    coded = enrich_tables(tables, settings=settings, coded=True)
    assert text.activities["team"].null_count() > 0  # the missing rep and the teamless one
    assert text.actions["attribution_level"].n_unique() == 4  # three levels and null
    for name, columns in CODED.items():
        frame = getattr(coded, name)
        for column in columns:
            kind = frame.schema[column]
            assert isinstance(kind, pl.Enum), (name, column)
            assert kind.categories.is_sorted(), (name, column)
            # every value the text frame holds, and no null among the categories
            present = getattr(text, name)[column].drop_nulls().unique()
            assert present.is_in(kind.categories.implode()).all()
        schema = ACTIVITIES_SCHEMA if name == "activities" else ACTIONS_SCHEMA
        assert frame.columns == schema.names()
        spelled = frame.with_columns(pl.col(columns).cast(pl.String))
        assert_frame_equal(spelled, getattr(text, name))
    assert coded.actions.schema["attribution_level"] == LEVEL_ENUM
    assert_frame_equal(coded.reps, text.reps)
    assert_frame_equal(coded.daily, text.daily)


def test_coded_facts_are_written_as_the_text_facts(tiny_planted, tmp_path):
    """Written by ``_write_enums_as_text`` (as a partition writes them): the text facts' file
    as :func:`effortlens.partitioned._write` writes it (schema, values, every row group's
    statistics)."""
    pq = pytest.importorskip("pyarrow.parquet")
    from effortlens import partitioned

    tables = _tables(tiny_planted)
    settings = load_settings()
    text = enrich_tables(tables, settings=settings)
    coded = enrich_tables(tables, settings=settings, coded=True)
    for name in CODED:
        a, b = tmp_path / f"text-{name}.parquet", tmp_path / f"coded-{name}.parquet"
        partitioned._write(getattr(text, name), a, row_group_size=500)  # noqa: SLF001
        partitioned._write_enums_as_text(getattr(coded, name), b, row_group_size=500)  # noqa: SLF001
        assert pl.read_parquet_schema(b) == pl.read_parquet_schema(a)
        assert_frame_equal(pl.read_parquet(b), pl.read_parquet(a))
        one, other = pq.ParquetFile(a).metadata, pq.ParquetFile(b).metadata
        assert one.num_row_groups == other.num_row_groups > 1
        for group in range(one.num_row_groups):
            for column in range(one.num_columns):
                x = one.row_group(group).column(column).statistics
                y = other.row_group(group).column(column).statistics
                assert (x.min, x.max, x.null_count) == (y.min, y.max, y.null_count), (
                    name,
                    group,
                    one.row_group(group).column(column).path_in_schema,
                )


def test_no_events_coded():
    e = enrich_tables({}, settings=load_settings(), coded=True)
    assert e.activities.height == e.actions.height == 0
    assert e.activities.columns == ACTIVITIES_SCHEMA.names()


def test_customer_facing_flags_of_coded_types():
    """An ``Enum`` of types (the coded facts') is flagged by its categories: the same flags as
    the text, with customer-facing types the column does not hold and a null type."""
    from effortlens.enrich import is_customer_facing

    text = pl.Series("activity_type", ["call", None, "admin", "email", "call"])
    coded = text.cast(pl.Enum(["admin", "call", "email"]))
    for wanted in (["call"], ["email", "meeting", "call"], [], ["meeting"]):
        flags = is_customer_facing(coded, wanted)
        assert flags.name == "activity_type"
        assert flags.to_list() == is_customer_facing(text, wanted).to_list()


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_coded_input_gives_the_same_facts(tiny_planted, zone):
    """The activities' ``CODED_INPUT`` columns given as an ``Enum`` (what a partition reads:
    ``read_partition(coded=...)``) give the facts of the text input: the rep missing from the
    reps table, the reps in zones of their own, each type; an ``Enum`` that is not of the
    sorted values the column holds too (its categories unsorted, or one it does not hold)."""
    from effortlens.enrich import CODED_INPUT

    tables = _tables(tiny_planted)
    settings = dataclasses.replace(load_settings(), timezone=zone)
    expected = enrich_tables(tables, settings=settings, coded=True)
    acts = tables["activities"]
    held = {c: acts[c].drop_nulls().unique().sort() for c in CODED_INPUT}
    assert held["rep_id"].is_in(tables["reps"]["rep_id"].implode()).sum() < held["rep_id"].len()
    given = {
        "sorted": {c: pl.Enum(held[c]) for c in CODED_INPUT},
        "unsorted": {c: pl.Enum(held[c].reverse()) for c in CODED_INPUT},
        "one more": {c: pl.Enum([*held[c], "~zz"]) for c in CODED_INPUT},
    }
    for enums in given.values():
        coded = acts.with_columns(pl.col(c).cast(enums[c]) for c in CODED_INPUT)
        got = enrich_tables({**tables, "activities": coded}, settings=settings, coded=True)
        assert_frame_equal(got.activities, expected.activities)
        assert_frame_equal(got.actions, expected.actions)
        assert_frame_equal(got.reps, expected.reps)
    # the text build (not coded) casts an Enum to its text: the text facts
    coded = acts.with_columns(pl.col(c).cast(given["sorted"][c]) for c in CODED_INPUT)
    text = enrich_tables({**tables, "activities": coded}, settings=settings)
    assert_frame_equal(text.activities, enrich_tables(tables, settings=settings).activities)
