"""Reading the dates and times people and spreadsheets write (loading.timestamps)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl

from effortlens.loading import parse_timestamps


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_day_first_column_is_detected():
    p = parse_timestamps(pl.Series(["1/2/2024", "13/2/2024"]), timezone="UTC", as_date=True)
    assert p.values.to_list() == [date(2024, 2, 1), date(2024, 2, 13)]
    assert p.slash_order == "D/M/YYYY"
    assert p.notes == ()


def test_month_first_column_is_detected():
    p = parse_timestamps(pl.Series(["1/2/2024", "2/13/2024"]), timezone="UTC", as_date=True)
    assert p.values.to_list() == [date(2024, 1, 2), date(2024, 2, 13)]
    assert p.slash_order == "M/D/YYYY"


def test_timestamp_formats_and_excel_serials():
    p = parse_timestamps(
        pl.Series(
            [
                "2024-03-05T14:30:00Z",
                "2024-03-05 14:30:15.250+01:00",
                "2024-03-05T09:30-0500",
                "2024-03-05",
                "45321.5",
                "5.3.2024 08:00",
                "3/5/2024 12:05 AM",
                "3/5/2024 13:00 PM",
                "",
                None,
            ]
        ),
        timezone="Europe/Paris",
    )
    assert p.values.to_list() == [
        utc(2024, 3, 5, 14, 30),
        datetime(2024, 3, 5, 13, 30, 15, 250000, tzinfo=UTC),
        utc(2024, 3, 5, 14, 30),
        utc(2024, 3, 4, 23),
        utc(2024, 1, 30, 11),
        utc(2024, 3, 5, 7),
        utc(2024, 3, 4, 23, 5),
        None,
        None,
        None,
    ]
    assert p.failed.to_list() == [False] * 7 + [True, False, False]


def test_dst_in_settings_zone_is_handled():
    p = parse_timestamps(
        pl.Series(["2024-03-31 02:30", "2024-10-27 02:30", "2024-10-27 03:30"]),
        timezone="Europe/Paris",
    )
    assert p.values.to_list() == [
        utc(2024, 3, 31, 1, 30),
        utc(2024, 10, 27, 0, 30),
        utc(2024, 10, 27, 2, 30),
    ]
    assert len(p.notes) == 2
