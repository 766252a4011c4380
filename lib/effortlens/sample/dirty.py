"""Dirty sample data: Excel-like CSV files with bad rows injected in known numbers.

Part of :mod:`effortlens.sample`. Every bad row is a *new* row (a copy of a clean row with
exactly one defect, or an exact duplicate placed after its original), so no clean row is ever
lost and no other row comes to depend on a bad one: the loader's quarantine counts must equal
``expected_quarantine`` in ``truth.json`` exactly.

Valid but awkward forms, which a loader must accept:

- ``reps.csv`` starts with a UTF-8 byte-order mark; some of its dates are ``M/D/YYYY``;
- ``opportunities.csv`` is separated by ``;``;
- in ``activities.csv`` some timestamps are naive local times (``YYYY-MM-DD HH:MM:SS``) and
  some are ``M/D/YYYY H:MM`` local times (both in the settings' time zone);
- in ``buyer_actions.csv`` some timestamps carry the local UTC offset (``…-05:00``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from effortlens.schema import TABLES
from effortlens.settings import Settings

ISO_Z = "%Y-%m-%dT%H:%M:%SZ"
NAIVE_LOCAL = "%Y-%m-%d %H:%M:%S"
EXCEL_LOCAL = "%-m/%-d/%Y %-H:%M"
EXCEL_DATE = "%-m/%-d/%Y"
OFFSET_LOCAL = "%Y-%m-%dT%H:%M:%S%:z"
SEPARATOR = {"opportunities": ";"}
BOM = {"reps"}
BAD_TIMESTAMPS = ("not a date", "2025-13-45", "yesterday", "31/31/2025 10:00")
#: The placeholders exports write for a missing time (.NET/SQL, Excel, Unix): read as times,
#: quarantined as before the settings' ``earliest_timestamp``.
EARLY_TIMESTAMPS = ("0001-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "1970-01-01T00:00:00Z")
UNKNOWN_STAGES = ("on hold", "Stage X", "waiting for budget")

#: Which defects go into which table, and the column each one touches.
DEFECTS: dict[str, dict[str, str | None]] = {
    "reps": {"missing_id": "rep_id", "duplicate_id": None},
    "activities": {
        "missing_id": "activity_id",
        "bad_timestamp": "ts",
        "unknown_rep": "rep_id",
        "duplicate_id": None,
        "negative_duration": "duration_min",
        "future_timestamp": "ts",
        "early_timestamp": "ts",
    },
    "buyer_actions": {
        "missing_id": "action_id",
        "bad_timestamp": "ts",
        "duplicate_id": None,
        "future_timestamp": "ts",
        "early_timestamp": "ts",
        "no_account": "account_id",
    },
    "opportunities": {
        "missing_id": "opportunity_id",
        "bad_timestamp": "created_ts",
        "unknown_rep": "rep_id",
        "duplicate_id": None,
        "bad_value": "outcome",
    },
    "stage_history": {"bad_timestamp": "entered_ts", "unknown_stage": "stage"},
}


def _as_text(frame: pl.DataFrame, table: str, tz: str, rng: np.random.Generator) -> pl.DataFrame:
    """Every column as text, the way an Excel export would write it."""
    n = frame.height
    share = pl.Series(rng.random(n))
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.Datetime("us", "UTC"):
            text = col.dt.to_string(ISO_Z)
            local = col.dt.convert_time_zone(tz)
            if table == "activities" and name == "ts":
                text = (
                    pl.when(pl.lit(share) < 0.1)
                    .then(local.dt.to_string(NAIVE_LOCAL))
                    .when(pl.lit(share) < 0.2)
                    .then(local.dt.to_string(EXCEL_LOCAL))
                    .otherwise(text)
                )
            elif table == "buyer_actions" and name == "ts":
                text = (
                    pl.when(pl.lit(share) < 0.2)
                    .then(local.dt.to_string(OFFSET_LOCAL))
                    .otherwise(text)
                )
            exprs.append(text.alias(name))
        elif dtype == pl.Date:
            text = col.dt.to_string("%Y-%m-%d")
            if table == "reps":
                text = (
                    pl.when(pl.lit(share) < 0.3).then(col.dt.to_string(EXCEL_DATE)).otherwise(text)
                )
            exprs.append(text.alias(name))
        elif dtype == pl.Boolean:
            exprs.append(
                pl.when(col).then(pl.lit("true")).when(~col).then(pl.lit("false")).alias(name)
            )
        else:
            exprs.append(col.cast(pl.String).alias(name))
    return frame.select(exprs)


def _bad_row(row: dict, table: str, reason: str, k: int, settings: Settings) -> dict:
    """``row`` with exactly one defect of kind ``reason``; ``k`` numbers the bad rows."""
    key = TABLES[table].key
    column = DEFECTS[table][reason]
    bad = dict(row)
    if key is not None and reason not in ("missing_id", "duplicate_id"):
        bad[key] = f"{row[key].rstrip('0123456789')}X{k:04d}"  # fresh, so never a duplicate
    if reason == "missing_id":
        bad[column] = None
    elif reason == "bad_timestamp":
        bad[column] = BAD_TIMESTAMPS[k % len(BAD_TIMESTAMPS)]
    elif reason == "future_timestamp":
        bad[column] = f"2099-06-{1 + k % 28:02d}T10:00:00Z"
    elif reason == "early_timestamp":
        bad[column] = EARLY_TIMESTAMPS[k % len(EARLY_TIMESTAMPS)]
    elif reason == "unknown_rep":
        bad[column] = f"R9{k:03d}"
    elif reason == "negative_duration":
        bad[column] = str(-float(5 + k % 40))
    elif reason == "no_account":
        bad["account_id"] = None
        bad["opportunity_id"] = None
    elif reason == "unknown_stage":
        bad[column] = UNKNOWN_STAGES[k % len(UNKNOWN_STAGES)]
    elif reason == "bad_value":
        if k % 2:
            bad["amount"] = "abc"
        else:
            bad["outcome"] = "maybe"
    return bad


def write_dirty(
    tables: dict[str, pl.DataFrame], out_dir: Path, *, rng: np.random.Generator, settings: Settings
) -> dict[str, dict[str, int]]:
    """Write ``tables`` as dirty CSV files into ``out_dir``; return the expected quarantine."""
    expected: dict[str, dict[str, int]] = {}
    k = 0
    for table, frame in tables.items():
        text = _as_text(frame, table, settings.timezone, rng)
        order = [2.0 * i for i in range(text.height)]
        rows = []
        counts: dict[str, int] = {}
        for reason in DEFECTS.get(table, {}):
            n = int(rng.integers(3, 6))
            counts[reason] = n
            sources = rng.choice(text.height, n, replace=False)
            for src in sources:
                k += 1
                row = text.row(int(src), named=True)
                if reason == "duplicate_id":
                    rows.append(row)
                    order.append(2.0 * src + 1.5)  # right after its original
                else:
                    rows.append(_bad_row(row, table, reason, k, settings))
                    order.append(2.0 * int(rng.integers(0, text.height)) + 1.0)
        if counts:
            expected[table] = counts
        if rows:
            text = pl.concat([text, pl.DataFrame(rows, schema=text.schema, orient="row")])
        text = text.with_columns(_order=pl.Series(order)).sort("_order", maintain_order=True)
        text.drop("_order").write_csv(
            out_dir / f"{table}.csv",
            separator=SEPARATOR.get(table, ","),
            include_bom=table in BOM,
        )
    return expected
