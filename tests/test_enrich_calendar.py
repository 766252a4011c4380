"""The local calendar by an offset per hour of UTC, and the roll-up's radix order, against the
paths they replace (every event's time converted; numpy's stable argsort)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

import effortlens.enrich as enrich_module
from effortlens.enrich import cell_order, daily_of_rows

# the new path and the one it replaces, named once each
with_calendar = enrich_module._with_calendar  # noqa: SLF001
by_conversion = enrich_module._calendar_by_conversion  # noqa: SLF001
by_hour = enrich_module._calendar_by_hour  # noqa: SLF001

#: Zones with half-hour and 45-minute offsets, 30-minute DST (Lord Howe), transitions at odd
#: seconds before 1972 (Monrovia), southern-hemisphere DST and none at all.
ZONES = [
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Pacific/Chatham",
    "Africa/Monrovia",
    "America/Sao_Paulo",
    "UTC",
]
REP_ZONES = [
    None,
    {"Australia/Lord_Howe": ["a"], "Asia/Kathmandu": ["b", "a"], "Africa/Monrovia": ["c"]},
    {"Pacific/Chatham": ["d", "b"], "America/New_York": ["e"]},
]


def _events(seed: int, low_s: float, high_s: float, n: int = 40_000) -> pl.DataFrame:
    """Random times in [low_s, high_s) seconds since 1970, a quarter of them within two
    seconds of a half hour (where transitions fall), some without a time or a rep."""
    rng = np.random.default_rng(seed)
    us = (rng.uniform(low_s, high_s, n) * 1e6).astype(np.int64)
    near = n // 4
    us[:near] = (us[:near] // 1_800_000_000) * 1_800_000_000 + rng.integers(-2, 3, near) * 10**6
    ts = pl.Series("ts", us).cast(pl.Datetime("us", "UTC")).scatter(rng.integers(0, n, 30), None)
    reps = pl.Series("rep_id", rng.choice(list("abcdef"), n)).scatter(rng.integers(0, n, 40), None)
    return pl.DataFrame([reps, ts, pl.Series("n", np.arange(n))])


@pytest.mark.parametrize(
    ("low_s", "high_s"),
    [(-2.5e9, 2.1e9), (1.70e9, 1.74e9), (-1.0e9, -0.9e9), (1e9, 1e9 + 30 * 3600)],
    ids=["1890-2036", "2023-2025", "1938-1941", "thirty-hours"],
)
@pytest.mark.parametrize("slice_rows", [7_777, 1 << 20])
def test_calendar_by_hour_equals_converting_every_event(low_s, high_s, slice_rows, monkeypatch):
    monkeypatch.setattr(enrich_module, "_CALENDAR_SLICE", slice_rows)
    frame = _events(int(low_s) % 1000, low_s, high_s)
    for timezone in ZONES[:4]:
        for rep_zones in REP_ZONES:
            got = with_calendar(frame, timezone=timezone, rep_zones=rep_zones)
            want = by_conversion(frame, timezone=timezone, rep_zones=rep_zones)
            assert got.schema == want.schema
            assert got.equals(want), (timezone, rep_zones)


def test_calendar_of_no_event_or_no_time_and_of_other_time_types():
    empty = pl.DataFrame(schema={"rep_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    blank = pl.DataFrame({"ts": pl.Series([None, None], dtype=pl.Datetime("us", "UTC"))})
    # not UTC microseconds: converted as before
    millis = _events(1, 1.7e9, 1.71e9, n=500).with_columns(pl.col("ts").dt.cast_time_unit("ms"))
    for frame in (empty, blank, millis):
        got = with_calendar(frame, timezone="Europe/London")
        want = by_conversion(frame, timezone="Europe/London")
        assert got.equals(want)
    assert with_calendar(blank, timezone="UTC")["day"].null_count() == 2


def test_calendar_past_the_hours_looked_up_is_converted(monkeypatch):
    monkeypatch.setattr(enrich_module, "_MOST_HOURS", 10)
    frame = _events(2, 1.7e9, 1.71e9, n=2_000)
    assert by_hour(frame["ts"], (["UTC"], None)) is None
    got = with_calendar(frame, timezone="America/New_York")
    assert got.equals(by_conversion(frame, timezone="America/New_York"))


def test_a_stray_event_decades_away_looks_up_only_the_hours_with_events():
    # one event of 1915 among 2023's: every hour between them was looked up in every zone
    frame = _events(5, 1.70e9, 1.71e9, n=20_000)
    stray = pl.DataFrame(
        {"rep_id": ["a"], "ts": [datetime(1915, 3, 1, 12, tzinfo=UTC)], "n": [-1]},
        schema=frame.schema,
    )
    frame = pl.concat([frame, stray])
    us = frame["ts"].drop_nulls().to_physical().to_numpy()
    first, last = us.min() // 3_600_000_000, us.max() // 3_600_000_000
    looked_up = enrich_module.hours_with_events(us, first, last, n_zones=3)
    assert looked_up is not None and looked_up.size <= us.size < last - first
    for rep_zones in REP_ZONES:
        got = with_calendar(frame, timezone="America/New_York", rep_zones=rep_zones)
        assert got.equals(by_conversion(frame, timezone="America/New_York", rep_zones=rep_zones))
    assert got.filter(pl.col("n") == -1)["day"].dt.year().item() == 1915


@pytest.mark.parametrize("n_reps", [3, 40_000])  # cells below 2**16 and past it
@pytest.mark.parametrize("runs", [False, True])  # random order; the partitions' sorted runs
def test_roll_up_sums_in_the_order_of_numpy_stable_argsort(n_reps, runs, monkeypatch):
    """:func:`cell_order` is numpy's stable argsort of the cells, so the sums are the same to
    the last bit as before (reduceat adds each cell's rows in the same order)."""
    rng = np.random.default_rng(n_reps)
    n = 50_000
    days = pl.Series(rng.integers(19_000, 19_400, n)).cast(pl.Int32).cast(pl.Date)
    rows = pl.DataFrame(
        {
            "day": days,
            "activity_type": rng.choice(["call", "email", "meeting"], n),
            "hours": rng.random(n) * 3,
            "responded": rng.integers(0, 2, n),
            "response_weight": rng.random(n),
            "no_impact_hours": rng.random(n),
        }
    )
    rep_code = pl.Series(rng.integers(0, n_reps, n), dtype=pl.UInt32)
    if runs:  # four runs each sorted by rep, day, type, with ties
        rows = rows.with_columns(rep_code=rep_code, part=rng.integers(0, 4, n))
        rows = rows.sort("part", "rep_code", "day", "activity_type", maintain_order=True)
        rep_code = rows["rep_code"]
        rows = rows.drop("part", "rep_code")
    facts = pl.DataFrame(
        {"rep_id": [f"r{i:05d}" for i in range(n_reps)]}
        | {c: ["x"] * n_reps for c in ("team", "segment", "role", "peer_group")}
    )
    got = daily_of_rows(rows, rep_code=rep_code, rep_facts=facts, customer_facing=["call"])
    monkeypatch.setattr(enrich_module, "cell_order", lambda key: np.argsort(key, kind="stable"))
    want = daily_of_rows(rows, rep_code=rep_code, rep_facts=facts, customer_facing=["call"])
    assert got.equals(want)
    assert got["activities"].sum() == n


def test_cell_order_is_numpy_stable_argsort():
    rng = np.random.default_rng(5)
    for top in (2, 300, 70_000, 2**31, 2**40):
        for n in (0, 1, 2, 1_000, 30_000):
            cells = rng.integers(0, top, n)
            for key in (cells, np.sort(cells), np.concatenate([np.sort(cells[: n // 2])] * 2)):
                assert np.array_equal(cell_order(key), np.argsort(key, kind="stable"))


#: (zone, events from, to (s since 1970), the table path taken, hours with a transition inside)
WHOLE_HOURS = [
    ("America/New_York", -2.5e9, 2.1e9, True, False),  # transitions on whole hours of UTC
    ("America/New_York", 1e9, 1e9 + 30 * 3600, True, False),
    ("America/Sao_Paulo", 1.70e9, 1.74e9, True, False),
    ("Europe/London", -2.5e9, 2.1e9, True, False),
    ("UTC", 1.70e9, 1.74e9, True, False),
    ("America/Goose_Bay", 1e8, 1.3e9, True, True),  # transitions at 00:01 local till 2010
    ("Asia/Hong_Kong", 0, 3e8, True, True),  # at 03:30 local
    ("America/Goose_Bay", -2.5e9, 2.1e9, False, False),  # -3:30 before 1966
    ("Asia/Kathmandu", 1.70e9, 1.74e9, False, False),  # +5:45
]


@pytest.mark.parametrize(("timezone", "low_s", "high_s", "tables_used", "moved"), WHOLE_HOURS)
def test_one_zone_in_whole_hours_by_a_calendar_per_hour(
    timezone, low_s, high_s, tables_used, moved, monkeypatch
):
    """One zone whose offsets are whole hours over the events' hours: each hour of UTC's
    calendar is worked out once and gathered (an hour with a transition inside: its events
    converted one by one); equal to converting every event."""
    tables = []
    of_local = enrich_module._calendar_of_local  # noqa: SLF001
    monkeypatch.setattr(
        enrich_module,
        "_calendar_of_local",
        lambda local: tables.append(local.size) or of_local(local),
    )
    monkeypatch.setattr(enrich_module, "_CALENDAR_SLICE", 9_999)
    frame = _events(int(high_s) % 997, low_s, high_s, n=60_000)
    got = with_calendar(frame, timezone=timezone)
    assert got.equals(by_conversion(frame, timezone=timezone)), timezone
    assert bool(tables) == tables_used  # the per-hour calendar, or the general path
    assert (len(tables) > 1) == moved  # events converted one by one
