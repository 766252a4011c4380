"""Placeholder dates (0001-01-01, 1900-01-01, 1970-01-01) in an export: quarantined as
``early_timestamp`` before the settings' ``earliest_timestamp`` (a deal's optional times read
as empty), and a build whose touches span centuries anyway (the setting moved back) sizes
the habit touch codes' running totals by the days with a touch, not by the span (one
activity dated 0001-01-01 made every build run out of memory: 739,000 days x 8,000
counters)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from filter_support import assert_period_habits_equal

from effortlens.facts import HABIT_TOUCHES, open_build
from effortlens.filters import Filter, filter_frame
from effortlens.habits import TOUCH_RUNNING, TouchCodes, touch_facts, write_touch_codes
from effortlens.loading import load_folder
from effortlens.settings import SettingsError, load_settings

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
#: (table, row of the file counted from 1 as the quarantine does, the placeholder written
#: there): two emails on a contact (habit touches), a buyer action
PLACEHOLDERS = (
    ("activities", 13, dt.datetime(1, 1, 1, 9, tzinfo=dt.UTC)),
    ("activities", 24, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
    ("buyer_actions", 7, dt.datetime(1900, 1, 1, tzinfo=dt.UTC)),
)


@pytest.fixture(scope="module")
def placeholder_folder(tiny_planted, tmp_path_factory) -> Path:
    """The tiny planted sample with one activity at 0001-01-01 09:00 UTC, one at 1970-01-01
    and one buyer action at 1900-01-01."""
    folder = tmp_path_factory.mktemp("placeholders")
    for path in tiny_planted.glob("*.parquet"):
        shutil.copy(path, folder / path.name)
    for table in ("activities", "buyer_actions"):
        frame = pl.read_parquet(folder / f"{table}.parquet")
        ts = pl.col("ts")
        for name, row, when in PLACEHOLDERS:
            if name == table:
                at = pl.int_range(pl.len()) == row - 1
                ts = pl.when(at).then(pl.lit(when, dtype=frame["ts"].dtype)).otherwise(ts)
        frame.with_columns(ts.alias("ts")).write_parquet(folder / f"{table}.parquet")
    touch = pl.col("activity_type").eq("email") & pl.col("contact_id").is_not_null()
    activities = pl.read_parquet(folder / "activities.parquet").with_row_index("row", offset=1)
    on_contact = activities.filter(touch)["row"].to_list()
    assert all(row in on_contact for name, row, _ in PLACEHOLDERS if name == "activities")
    return folder


def _settings(tmp_path: Path, text: str = ""):
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return load_settings(path)


def _assert_placeholders_quarantined(quarantine: pl.DataFrame, report: dict) -> None:
    early = quarantine.filter(pl.col("reason") == "early_timestamp").sort("table", "row")
    want = sorted(PLACEHOLDERS)
    assert early.select("table", "row").rows() == [(t, r) for t, r, _ in want]
    assert early["column"].to_list() == ["ts"] * 3
    for message, (table, row, when) in zip(early["message"], want, strict=True):
        assert message.startswith(f"{table}.parquet row {row}, column ts: '{when.year:04d}-01-01")
        assert "before the earliest timestamp accepted, 1990-01-01 (earliest_timestamp" in message
    for table, entry in report.items():
        assert entry["loaded"] + sum(entry["quarantined"].values()) == entry["read"], table
    assert report["activities"]["quarantined"] == {"early_timestamp": 2}
    assert report["buyer_actions"]["quarantined"] == {"early_timestamp": 1}


def test_placeholder_dates_are_quarantined_naming_file_row_column_and_value(placeholder_folder):
    data = load_folder(placeholder_folder, now=NOW)
    _assert_placeholders_quarantined(data.quarantine, data.report.to_dict())
    assert data.tables["activities"]["ts"].min() >= dt.datetime(1990, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("partitioned", [False, True])
def test_a_build_quarantines_the_placeholder_dates(placeholder_folder, tmp_path, partitioned):
    # in memory, and validated in chunks and enriched per partition (several of each)
    settings = load_settings()
    limits = dataclasses.replace(settings.limits, partition_rows=3_000, partition_above_rows=3_000)
    settings = dataclasses.replace(settings, limits=limits)
    built = open_build(
        placeholder_folder, settings=settings, cache_dir=tmp_path, partitioned=partitioned
    )
    assert built.manifest["build"].startswith("partitioned" if partitioned else "in memory")
    _assert_placeholders_quarantined(built.data.quarantine, built.data.report.to_dict())
    day = np.load(built.path / HABIT_TOUCHES / "day.npy")
    assert day[0] >= (dt.date(1990, 1, 1) - dt.date(1970, 1, 1)).days


def test_the_earliest_timestamp_moved_back_loads_the_old_rows(placeholder_folder, tmp_path):
    settings = _settings(tmp_path, "earliest_timestamp = 0001-01-01\n")
    data = load_folder(placeholder_folder, settings=settings, now=NOW)
    assert data.quarantine.filter(pl.col("reason") == "early_timestamp").is_empty()
    assert data.tables["activities"]["ts"].min() == dt.datetime(1, 1, 1, 9, tzinfo=dt.UTC)
    # and the setting is part of what a build is keyed on: a build with it is another build
    assert settings.fingerprint() != load_settings().fingerprint()


def _one_rep_and(folder: Path, table: str, text: str):
    """The load of ``folder`` holding one rep ``r1`` and ``table`` (CSV) written as ``text``."""
    (folder / "reps.csv").write_text("rep_id\nr1\n")
    (folder / f"{table}.csv").write_text(text)
    return load_folder(folder, now=NOW)


def test_a_deals_placeholder_created_or_close_date_reads_as_empty(tmp_path):
    data = _one_rep_and(
        tmp_path,
        "opportunities",
        "opportunity_id,rep_id,created_ts,outcome,close_ts\n"
        "o1,r1,2024-03-05,open,0001-01-01\n"
        "o2,r1,1900-01-01,won,2024-05-01\n"
        "o3,r1,2024-03-05,lost,2024-04-01\n",
    )
    deals = data.tables["opportunities"]
    assert data.quarantine.is_empty() and deals["opportunity_id"].to_list() == ["o1", "o2", "o3"]
    assert deals["close_ts"].is_null().to_list() == [True, False, False]
    assert deals["created_ts"].is_null().to_list() == [False, True, False]
    notes = [n for n in data.report.notes if "read as empty" in n]
    assert len(notes) == 2 and all("before 1990-01-01 (earliest_timestamp" in n for n in notes)


def test_the_earliest_timestamp_itself_is_accepted_and_a_second_before_is_not(tmp_path):
    data = _one_rep_and(
        tmp_path,
        "activities",
        "activity_id,rep_id,ts,activity_type\n"
        "a1,r1,1990-01-01T00:00:00Z,call\n"
        "a2,r1,1989-12-31T23:59:59Z,call\n"
        "a3,r1,1990-01-01T01:30:00+02:00,call\n",  # 1989-12-31 23:30 UTC: midnight is UTC's
    )
    assert data.tables["activities"]["activity_id"].to_list() == ["a1"]
    early = data.quarantine.filter(pl.col("reason") == "early_timestamp")
    assert early["row"].to_list() == [2, 3]  # the data rows, counted from 1


def test_a_crm_deal_snapshots_placeholder_dates_place_no_derived_stage_entry(tmp_path):
    # a HubSpot deals export without stage history: each deal's entries are derived from its
    # created and close dates; a won deal closed on 0001-01-01 (a missing close date) must
    # still reach the last stage, at its created time, as one with an empty close date does
    # (H2's review: it was placed on 0001-01-01 and quarantined, the deal missing from commit)
    from effortlens.adapters import load_any
    from effortlens.enrich import enrich
    from effortlens.flow import flow_table

    (tmp_path / "deals.csv").write_text(
        "Record ID,Deal Name,Deal Stage,Deal owner,Create Date,Close Date,Amount\n"
        "1,A,Presentation Scheduled,Ann,2024-01-03 10:00,1970-01-01 00:00,\n"
        "2,B,Closed Won,Ann,2024-01-03 10:00,0001-01-01 00:00,100\n"
        "3,C,Closed Won,Ann,2024-01-03 10:00,,100\n"
        "4,D,Presentation Scheduled,Ann,2024-01-03 10:00,,\n"
    )
    data = load_any(tmp_path, settings=load_settings(), now=NOW)
    assert data.quarantine.is_empty(), data.quarantine["message"].to_list()
    history = data.tables["stage_history"]
    assert history["entered_ts"].min() >= dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
    won = history.filter(pl.col("opportunity_id").is_in(["2", "3"])).sort("opportunity_id")
    assert won.group_by("opportunity_id").len()["len"].to_list() == [2, 2]
    flow = flow_table(enrich(data, cache_dir=tmp_path / "cache"))
    reached = dict(zip(flow["stage"], flow["reached"], strict=True))
    stages = load_settings().stages
    assert reached[stages[0]] == 4 and reached[stages[-1]] == 2  # both won deals at commit


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"01/06/1985"', "a date such as 1990-01-01"),
        ("1985-06-01T00:00:00Z", "a date such as 1990-01-01"),
        ("1990", "a date such as 1990-01-01"),
        ("2999-01-01", "a date not in the future"),
    ],
)
def test_an_unusable_earliest_timestamp_is_refused_naming_the_key(tmp_path, value, expected):
    with pytest.raises(SettingsError, match=f"earliest_timestamp must be {expected}"):
        _settings(tmp_path, f"earliest_timestamp = {value}\n")
    assert _settings(tmp_path, 'earliest_timestamp = "1985-06-01"\n').earliest_timestamp == (
        dt.date(1985, 6, 1)
    )


# --- the build over a span of centuries -----------------------------------------------------

#: The address space a build of the tiny sample may take (it needs ~0.3 GB of memory; the
#: running totals by day from 0001-01-01 would need ~58 GB).
BUILD_ADDRESS_SPACE = 4 << 30


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (BUILD_ADDRESS_SPACE, BUILD_ADDRESS_SPACE))


@pytest.fixture(scope="module")
def centuries_builds(placeholder_folder, tmp_path_factory) -> dict[str, Path]:
    """The placeholder folder built with ``earliest_timestamp`` moved back to 0001-01-01, in
    memory and partitioned (chunks of 2,000 events), each in a child whose address space is
    capped: ``{mode: habit touch codes folder}``."""
    base = tmp_path_factory.mktemp("centuries")
    settings = base / "settings.toml"
    settings.write_text("earliest_timestamp = 0001-01-01\n[limits]\npartition_rows = 2000\n")
    folders = {}
    for mode in ("in-memory", "partitioned"):
        cache = base / mode
        command = [sys.executable, "-m", "effortlens.cli", "build", str(placeholder_folder)]
        command += ["--cache-dir", str(cache), "--settings", str(settings), "--no-warm"]
        done = subprocess.run(
            [*command, f"--{mode}"],
            preexec_fn=_limited,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2_000:]
        (build,) = (cache / "builds").glob("*/")
        folders[mode] = build / HABIT_TOUCHES
    return folders


@pytest.mark.parametrize("mode", ["in-memory", "partitioned"])
def test_a_build_over_centuries_sizes_its_running_totals_by_the_days_with_a_touch(
    centuries_builds, mode
):
    codes = centuries_builds[mode]
    day = np.load(codes / "day.npy")
    first = (dt.date(1, 1, 1) - dt.date(1970, 1, 1)).days
    assert day[0] == first and day[-1] > 20_000  # the placeholder kept, beside 2025's days
    days = np.unique(day)
    assert len(days) < 200 < day[-1] - day[0]
    np.testing.assert_array_equal(np.load(codes / "running_days.npy"), days - day[0])
    for name in TOUCH_RUNNING:
        assert np.load(codes / f"running_{name}.npy").shape[0] == len(days) + 1, name
    assert np.load(codes / "running_credit_timing.npy").shape[0] == len(days) + 1
    weeks = np.unique((day - day[0]) // 7)
    np.testing.assert_array_equal(np.load(codes / "running_weeks.npy"), weeks)
    assert np.load(codes / "running_rep_cell.npy").shape[0] == len(weeks) + 1


def test_both_builds_over_centuries_write_the_same_touch_codes(centuries_builds):
    made = {
        mode: sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
        for mode, folder in centuries_builds.items()
    }
    assert made["in-memory"] == made["partitioned"]
    for relative in made["in-memory"]:
        if relative.suffix == ".npy":
            in_memory = (centuries_builds["in-memory"] / relative).read_bytes()
            assert in_memory == (centuries_builds["partitioned"] / relative).read_bytes(), relative


@pytest.fixture(scope="module")
def gapped_codes(tiny_planted_enriched, tmp_path_factory):
    """The tiny sample's touch facts with days and weeks left without a touch (three days in
    the first month, a fortnight in the second) and one touch moved 3,000 days before the
    rest, written as touch codes: ``(codes, touches)``."""
    touches = touch_facts(tiny_planted_enriched[0])
    first = touches["day"].min()
    gone = [first + dt.timedelta(days=d) for d in (3, 4, 10, *range(35, 49))]
    touches = touches.filter(~pl.col("day").is_in(gone))
    stray = pl.int_range(pl.len()) == 17
    touches = touches.with_columns(
        pl.when(stray).then(pl.lit(first - dt.timedelta(days=3_000))).otherwise("day").alias("day")
    )
    folder = tmp_path_factory.mktemp("gapped")
    assert write_touch_codes(touches, folder) == touches.height
    return TouchCodes(folder), touches


def test_running_totals_without_the_missing_days_give_every_periods_habits(gapped_codes):
    codes, touches = gapped_codes
    days = touches["day"].unique().sort()
    assert codes.running_days is not None and len(codes.running_days) == len(days)
    assert codes.columns["running_counts"].shape[0] == len(days) + 1
    first, last = days[1], days[-1]
    gap = first + dt.timedelta(days=35)  # the fortnight without a touch, from the sample's first
    periods = [
        (None, None),
        (days[0], days[0]),  # the stray day alone
        (days[0] - dt.timedelta(days=9), first + dt.timedelta(days=3)),
        (first + dt.timedelta(days=3), first + dt.timedelta(days=11)),  # ends on missing days
        (gap, gap + dt.timedelta(days=13)),  # inside the gap: nothing
        (gap - dt.timedelta(days=5), gap + dt.timedelta(days=20)),  # across it, cutting weeks
        (gap + dt.timedelta(days=2), last),
        (days[0] + dt.timedelta(days=1), first - dt.timedelta(days=1)),  # between: nothing
    ]
    compared = 0
    for start, end in periods:
        flt = Filter(start=start, end=end)
        compared += assert_period_habits_equal(codes, flt, filter_frame(touches, flt))
    assert compared >= 5
