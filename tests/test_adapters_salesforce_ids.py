"""Salesforce ids: the 15- and 18-character forms of one record join."""

from __future__ import annotations

import polars as pl

from effortlens.adapters import salesforce_id18
from effortlens.adapters.salesforce_ids import normalise_ids


def test_salesforce_ids_15_and_18_characters_become_one():
    id15 = "0065e00000OpAc5"
    id18 = salesforce_id18(id15)
    assert len(id18) == 18 and id18.startswith(id15)
    assert salesforce_id18(id18) == id18
    assert salesforce_id18(id18.lower()) == id18  # case lost in a spreadsheet, restored
    assert salesforce_id18(id18.upper()) == id18
    assert salesforce_id18("Acme Corp") == "Acme Corp"
    assert salesforce_id18(None) is None


def test_salesforce_ids_with_different_case_stay_different_records():
    assert salesforce_id18("0015e00000AbCdE") != salesforce_id18("0015e00000ABCDE")


def test_normalise_ids_joins_mixed_forms_and_leaves_the_input_alone():
    frame = pl.DataFrame({"Id": ["0065e00000OpAc5", "0065E00000OPAC5AAF"], "Name": ["a", "b"]})
    out = normalise_ids(frame, ["Id", "OwnerId"])
    assert out["Id"].n_unique() == 1
    assert out["Name"].to_list() == ["a", "b"]
    assert frame["Id"].to_list() == ["0065e00000OpAc5", "0065E00000OPAC5AAF"]
