"""A column naming rows of a loaded table (rep_id -> reps, opportunity_id -> opportunities)
whose values are all loaded keys or unknown ones without blanks is read as written and its
rule 9/10 check is one lookup (effortlens.loading.table._looked_up): the same loaded rows,
quarantine and notes as reading it first (searching it for blanks) and looking it up after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from effortlens.loading import table as table_module
from effortlens.loading.table import RawTable, validate_table
from effortlens.settings import load_settings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
T0 = datetime(2025, 3, 4, 9, tzinfo=UTC)
REPS = pl.Series("rep_id", [f"R{i:04d}" for i in range(1, 41)])


def _activities(reps: list[str | None]) -> pl.DataFrame:
    n = len(reps)
    return pl.DataFrame(
        {
            "activity_id": [f"A{i:06d}" for i in range(n)],
            "rep_id": reps,
            "ts": [(T0 + timedelta(minutes=7 * i)).isoformat() for i in range(n)],
            "activity_type": [["email", "call", "meeting"][i % 3] for i in range(n)],
            "account_id": [f"ACC{i % 50:04d}" for i in range(n)],
        }
    )


def _reps(n: int, *, unknown: bool, padded: bool, empty: bool) -> list[str | None]:
    out: list[str | None] = [REPS[i % len(REPS)] for i in range(n)]
    for i in range(0, n, 97):
        out[i] = None
    if unknown:
        for i in range(5, n, 211):
            out[i] = f"R9{i:03d}"  # no such rep
    if padded:
        out[17] = f" {REPS[3]}"  # a loaded rep with a blank before it: loaded after trimming
        out[18] = "R9999 "  # an unknown one with a blank after it
    if empty:
        out[19] = ""
        out[20] = "   "
    return out


def _validate(frame: pl.DataFrame, *, lookup: bool, monkeypatch) -> tuple:
    with monkeypatch.context() as patch:
        if not lookup:  # the column read first, then looked up (the validation before)
            patch.setattr(table_module, "_looked_up", lambda *_a, **_k: {})
        result = validate_table(
            RawTable("activities", frame, "activities.parquet"),
            settings=load_settings(),
            now=NOW,
            references={"reps": REPS},
            keep_row=True,
            in_order=False,
        )
    return result.loaded, result.quarantine, result.notes


@pytest.mark.parametrize(
    ("unknown", "padded", "empty"),
    [(False, False, False), (True, False, False), (True, True, False), (False, False, True)],
)
def test_looked_up_reps_validate_as_read_ones(monkeypatch, unknown, padded, empty):
    frame = _activities(_reps(3_000, unknown=unknown, padded=padded, empty=empty))
    looked = table_module._looked_up("activities", frame, {"reps": REPS}, frozenset())  # noqa: SLF001 - what is tested
    assert ("rep_id" in looked) is not (padded or empty)  # a value to trim: as before
    mine = _validate(frame, lookup=True, monkeypatch=monkeypatch)
    before = _validate(frame, lookup=False, monkeypatch=monkeypatch)
    assert mine[0].equals(before[0])
    assert mine[1].equals(before[1])
    assert mine[2] == before[2]
    reasons = mine[1]["reason"].value_counts().sort("reason")
    if unknown:
        assert "unknown_rep" in reasons["reason"].to_list()
    if padded:  # the padded loaded rep was loaded, trimmed
        assert mine[0].filter(pl.col("__row") == 18)["rep_id"].to_list() == [REPS[3]]


def test_reps_given_as_numbers_are_read_first(monkeypatch):
    """Not text: no lookup of the column as written (it is read as text first)."""
    frame = _activities(_reps(300, unknown=False, padded=False, empty=False))
    numbers = frame.with_columns(pl.col("rep_id").str.slice(1).cast(pl.Int64))
    assert table_module._looked_up("activities", numbers, {"reps": REPS}, frozenset()) == {}  # noqa: SLF001
    mine = _validate(numbers, lookup=True, monkeypatch=monkeypatch)
    assert mine[0].height == 0  # "1" is no rep "R0001"; an empty one is missing
    assert set(mine[1]["reason"].to_list()) == {"unknown_rep", "missing_id"}
    before = _validate(numbers, lookup=False, monkeypatch=monkeypatch)
    assert mine[1].equals(before[1])
