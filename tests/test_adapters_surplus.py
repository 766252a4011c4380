"""A line with more fields than its header is set aside, not the whole export refused.

A Salesforce export edited by hand (a description whose quotes were lost, so its comma splits
it in two) and a generic mapped CSV with the same fault: the bad row is quarantined as
``extra_fields`` naming the file, the line and the field counts, every other row loads, and
the file's rows read are loaded + quarantined.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from effortlens.adapters import load_any
from effortlens.settings import load_settings

CRM = Path(__file__).parent / "data" / "crm"


def _file(report, name: str):
    return next(f for f in report.files if f.file == name)


def test_a_salesforce_line_with_surplus_fields_is_quarantined_alone():
    folder = CRM / "sf_surplus_fields"
    assert b"\r\n" in (folder / "Task.csv").read_bytes()  # as Salesforce writes it
    data = load_any(folder, settings=load_settings())
    activities = data.tables["activities"]
    assert sorted(activities["activity_id"]) == [
        "00T5e00000Sx001EAB",
        "00T5e00000Sx002EAB",
        "00T5e00000Sx004EAB",
        "00T5e00000Sx005EAB",
    ]
    bad = data.quarantine.filter(pl.col("reason") == "extra_fields")
    assert bad.height == 1
    row = bad.row(0, named=True)
    assert (row["file"], row["row"], row["table"]) == ("Task.csv", 3, "activities")
    # the file, the line (the header is line 1) and the field counts
    assert row["message"].startswith("Task.csv row 3: line 4 has 18 fields, the header 17")
    assert "Left voicemail, will retry Friday" in json.loads(row["raw"])["line"]
    task = _file(data.report, "Task.csv")
    assert (task.read, task.loaded, task.quarantined) == (5, 4, {"extra_fields": 1})
    assert task.read == task.loaded + task.quarantined_total
    # the rows after the bad line keep their own data-row numbers
    assert data.report["activities"].quarantined == {"extra_fields": 1}


def test_a_generic_mapped_csv_with_a_surplus_line_quarantines_that_row(tmp_path):
    (tmp_path / "deals.csv").write_bytes(
        b"Deal ID;Owner;Created;Stage;Amount\r\n"
        b"D-1;Ann;2024-01-02;Won;1200\r\n"
        b"D-2;Ann;2024-01-03;Lost;900;extra;more\r\n"
        b'D-3;Bo;2024-01-04;"Proposal; revised";500\r\n'
        b"D-4;Bo;2024-01-05;Won;700\r\n"
    )
    (tmp_path / "mapping.toml").write_text(
        '[source]\ndate_format = "YYYY-MM-DD"\n\n[opportunities]\nfile = "deals.csv"\n'
        'opportunity_id = "Deal ID"\nrep_id = "Owner"\ncreated_ts = "Created"\n'
        'stage = "Stage"\namount = "Amount"\n\n[values.stage]\n"Proposal; revised" = '
        '"proposal"\n\n[values.outcome]\n"Won" = "won"\n"Lost" = "lost"\n'
    )
    data = load_any(tmp_path, settings=load_settings())
    assert sorted(data.tables["opportunities"]["opportunity_id"]) == ["D-1", "D-3", "D-4"]
    bad = data.quarantine.filter(pl.col("reason") == "extra_fields").row(0, named=True)
    assert (bad["file"], bad["row"]) == ("deals.csv", 2)
    assert "line 3 has 7 fields, the header 5" in bad["message"]
    deals = _file(data.report, "deals.csv")
    assert (deals.read, deals.loaded, deals.quarantined_total) == (4, 3, 1)


def test_a_file_without_surplus_lines_has_no_extra_column():
    from effortlens.adapters.reading import EXTRA, read_sheet

    sheet = read_sheet(CRM / "sf_task_types" / "Task.csv")
    assert EXTRA not in sheet.frame.columns
    sheet = read_sheet(CRM / "sf_surplus_fields" / "Task.csv")
    assert sheet.frame[EXTRA].null_count() == sheet.frame.height - 1
    assert sheet.frame["__line"].to_list() == [1, 2, 3, 4, 5]
