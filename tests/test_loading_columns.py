"""Reading one column: the one true/false reader that canonical files and CRM exports share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from effortlens.adapters.reading import Sheet
from effortlens.loading import BOOLEAN_SPELLINGS, RawTable, boolean, parse_booleans, validate_tables
from effortlens.settings import load_settings

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def test_boolean_reads_crm_and_spreadsheet_spellings():
    frame = pl.DataFrame({"v": ["true", "FALSE", "1", "0", "Yes", "ja", "", None, "maybe"]})
    out = frame.select(boolean(pl.col("v"))).to_series().to_list()
    assert out == [True, False, True, False, True, True, None, None, None]


def test_the_documented_spelling_set_is_the_one_every_reader_uses():
    # both directions of each pair a person may write, and nothing else
    assert len(BOOLEAN_SPELLINGS) == 23
    assert {"true", "false", "yes", "no", "1", "0", "ja", "nein", "oui", "non"} <= set(
        BOOLEAN_SPELLINGS
    )
    written = [f"  {s.upper()} " for s in BOOLEAN_SPELLINGS]
    flags, failed = parse_booleans(pl.Series(written))
    assert flags.to_list() == list(BOOLEAN_SPELLINGS.values())
    assert not failed.any()


def buyer_actions(flags: list[str]) -> dict[str, RawTable]:
    n = len(flags)
    frame = pl.DataFrame(
        {
            "action_id": [f"b{i}" for i in range(n)],
            "ts": ["2024-03-05"] * n,
            "account_id": ["acc"] * n,
            "action_type": ["reply"] * n,
            "is_verifier": flags,
        }
    )
    return {
        "reps": RawTable("reps", pl.DataFrame({"rep_id": ["r1"]}), "reps.csv"),
        "activities": RawTable(
            "activities",
            pl.DataFrame(
                {
                    "activity_id": ["a1"],
                    "rep_id": ["r1"],
                    "ts": ["2024-03-05"],
                    "activity_type": ["call"],
                }
            ),
            "activities.csv",
        ),
        "buyer_actions": RawTable("buyer_actions", frame, "buyer_actions.csv"),
    }


@pytest.mark.parametrize("spelling", ["y", "N", "x", "Wahr", "faux", "sí", "onwaar"])
def test_canonical_files_accept_the_spellings_crm_exports_do(spelling):
    data = validate_tables(buyer_actions([spelling, "maybe"]), settings=load_settings(), now=NOW)
    loaded = data.tables["buyer_actions"]
    assert loaded["is_verifier"].to_list() == [BOOLEAN_SPELLINGS[spelling.lower()]]
    assert data.quarantine.filter(pl.col("table") == "buyer_actions")["reason"].to_list() == [
        "bad_value"
    ]


def test_adapters_read_flags_with_the_same_reader():
    import importlib
    import pkgutil

    import effortlens.adapters as adapters

    # the adapters' flags (IsDeleted, IsClosed, hs_is_closed_won...) go through loading's reader
    readers = {}
    for info in pkgutil.iter_modules(adapters.__path__):
        module = importlib.import_module(f"effortlens.adapters.{info.name}")
        if hasattr(module, "boolean"):
            readers[info.name] = module.boolean
    assert {"salesforce_objects", "salesforce_deals", "hubspot_deals"} <= set(readers)
    assert all(reader is boolean for reader in readers.values()), readers
    sheet = Sheet(Path("Task.csv"), pl.DataFrame({"IsDeleted": ["JA", "n", "kaputt"]}))
    flags = sheet.frame.select(boolean(sheet.get("IsDeleted"))).to_series()
    assert flags.to_list() == [True, False, None]
