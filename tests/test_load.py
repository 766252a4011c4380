"""Loading that loses nothing: round trips, every quarantine reason, Excel-made files, errors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.cli import main
from effortlens.loading import (
    QUARANTINE_SCHEMA,
    REASONS,
    DataError,
    LoadedData,
    RawTable,
    load_folder,
    read_csv_text,
    validate_tables,
)
from effortlens.schema import TABLES
from effortlens.settings import load_settings

DATA = Path(__file__).parent / "data" / "load"
NOW = datetime(2025, 1, 1, tzinfo=UTC)
SETTINGS = load_settings()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def assert_nothing_lost(data: LoadedData) -> None:
    """The invariant, and that the report agrees with the frames it describes."""
    report = data.report.to_dict()
    assert list(report) == list(TABLES)
    counted = dict(
        ((t, r), n) for t, r, n in data.quarantine.group_by("table", "reason").len().iter_rows()
    )
    for table, entry in report.items():
        assert entry["loaded"] + sum(entry["quarantined"].values()) == entry["read"], table
        assert entry["loaded"] == data.tables[table].height, table
        assert entry["quarantined"] == {r: n for (t, r), n in counted.items() if t == table}, table
        assert data.tables[table].schema == TABLES[table].schema, table
    assert data.quarantine.schema == QUARANTINE_SCHEMA


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def load_texts(tmp_path: Path, **files: str) -> LoadedData:
    """Write ``table=csv text`` files (``reps`` added when not given) and load the folder."""
    files.setdefault("reps", "rep_id\nr1\nr2\n")
    for table, text in files.items():
        write(tmp_path, f"{table}.csv", text)
    data = load_folder(tmp_path, settings=SETTINGS, now=NOW)
    assert_nothing_lost(data)
    return data


# ------------------------------------------------------------------------------ round trips


def canonical_tables() -> dict[str, pl.DataFrame]:
    """One small frame per table, every column filled, already in the canonical order."""
    frames = {
        "reps": {
            "rep_id": ["r1", "r2"],
            "rep_name": ["Zoë Faure", "Sam Lee"],
            "team": ["North", "South"],
            "segment": ["SMB", "Enterprise"],
            "region": ["EMEA", "NA"],
            "role": ["AE", "SDR"],
            "manager_id": ["m1", "m1"],
            "hire_date": [date(2022, 1, 15), date(2023, 3, 1)],
            "exit_date": [None, date(2024, 6, 30)],
            "exit_reason": [None, "voluntary"],
            "timezone": ["Europe/Paris", None],
        },
        "activities": {
            "activity_id": ["a2", "a1", "a3"],
            "rep_id": ["r1", "r2", "r1"],
            "ts": [utc(2024, 3, 1, 9), utc(2024, 3, 2, 10, 30), utc(2024, 3, 3, 8)],
            "activity_type": ["email", "call", "internal"],
            "account_id": ["acc1", "acc1", None],
            "opportunity_id": ["o1", "o1", None],
            "contact_id": ["c1", "c2", None],
            "duration_min": [6.0, 12.5, 45.0],
        },
        "buyer_actions": {
            "action_id": ["b1", "b2"],
            "ts": [utc(2024, 3, 1, 12), utc(2024, 3, 4, 12)],
            "account_id": ["acc1", "acc2"],
            "opportunity_id": ["o1", None],
            "contact_id": ["c1", "c9"],
            "action_type": ["reply", "meeting_held"],
            "is_verifier": [False, True],
            "weight": [1.0, 3.0],
        },
        "opportunities": {
            "opportunity_id": ["o1", "o2"],
            "account_id": ["acc1", "acc2"],
            "rep_id": ["r1", "r2"],
            "created_ts": [utc(2024, 2, 1), utc(2024, 2, 5)],
            "amount": [12000.0, None],
            "currency": ["USD", "EUR"],
            "close_ts": [utc(2024, 5, 1), None],
            "outcome": ["won", "open"],
        },
        "stage_history": {
            "opportunity_id": ["o1", "o1", "o2"],
            "stage": ["prospect", "discovery", "prospect"],
            "entered_ts": [utc(2024, 2, 1), utc(2024, 3, 1), utc(2024, 2, 5)],
            "verifier_action_id": [None, "b1", None],
            "derived": [None, False, True],
        },
        "interventions": {
            "intervention_id": ["i1"],
            "name": ["Discovery coaching"],
            "practice": ["discovery questions"],
            "start_date": [date(2024, 3, 1)],
            "end_date": [date(2024, 4, 30)],
        },
        "intervention_participants": {"intervention_id": ["i1", "i1"], "rep_id": ["r1", "r2"]},
    }
    return {t: pl.DataFrame(f, schema=TABLES[t].schema) for t, f in frames.items()}


def test_csv_round_trip(tmp_path):
    expected = canonical_tables()
    for table, frame in expected.items():
        frame.write_csv(tmp_path / f"{table}.csv")
    data = load_folder(tmp_path, settings=SETTINGS, now=NOW)
    assert_nothing_lost(data)
    assert data.quarantine.is_empty()
    assert data.missing_tables == ()
    for table, frame in expected.items():
        assert_frame_equal(data.tables[table], frame)


def test_parquet_round_trip(tmp_path):
    expected = canonical_tables()
    for table, frame in expected.items():
        frame.write_parquet(tmp_path / f"{table}.parquet")
    data = load_folder(tmp_path, settings=SETTINGS, now=NOW)
    assert_nothing_lost(data)
    assert data.quarantine.is_empty()
    for table, frame in expected.items():
        assert_frame_equal(data.tables[table], frame)


def test_loaded_tables_are_sorted_by_deal_then_time(tmp_path):
    frame = canonical_tables()["activities"].reverse()
    frame.write_parquet(tmp_path / "activities.parquet")
    canonical_tables()["reps"].write_parquet(tmp_path / "reps.parquet")
    loaded = load_folder(tmp_path, settings=SETTINGS, now=NOW).tables["activities"]
    assert loaded["activity_id"].to_list() == ["a2", "a1", "a3"]  # o1 by time, then no deal


def test_parquet_naive_times_are_read_in_the_settings_zone(tmp_path):
    pl.DataFrame({"rep_id": ["r1"]}).write_parquet(tmp_path / "reps.parquet")
    pl.DataFrame(
        {
            "opportunity_id": ["o1", "o2"],
            "rep_id": ["r1", "r1"],
            "created_ts": [datetime(2024, 7, 1, 9), datetime(2024, 1, 2, 9)],
            "outcome": ["open", "open"],
            "close_ts": pl.Series(
                [datetime(2024, 8, 1, 12), None], dtype=pl.Datetime("ms")
            ).dt.replace_time_zone("Europe/Paris"),  # aware: 10:00 UTC
            "amount": [100, 200],  # integers: cast, not quarantined
        }
    ).write_parquet(tmp_path / "opportunities.parquet")
    opps = load_folder(tmp_path, settings=SETTINGS, now=NOW).tables["opportunities"]
    assert opps["created_ts"].to_list() == [utc(2024, 7, 1, 13), utc(2024, 1, 2, 14)]
    assert opps["close_ts"].to_list() == [utc(2024, 8, 1, 10), None]
    assert opps["amount"].to_list() == [100.0, 200.0]


def test_validate_tables_does_not_mutate_its_input():
    frame = pl.DataFrame(
        {"rep_id": [" r1 ", "r1", None], "hire_date": ["1/2/2024", "x", ""], "x": ["1", "2", "3"]}
    )
    before = frame.clone()
    raw = {
        "reps": RawTable("reps", frame, "reps.csv"),
        "opportunities": RawTable(
            "opportunities",
            pl.DataFrame(
                {
                    "opportunity_id": ["o1"],
                    "rep_id": ["r1"],
                    "created_ts": ["2024-01-02"],
                    "outcome": ["open"],
                }
            ),
            "opportunities.csv",
        ),
    }
    validate_tables(raw, settings=SETTINGS, now=NOW)
    assert_frame_equal(frame, before)


# ---------------------------------------------------------------------- quarantine reasons

ACTIVITY_HEADER = "activity_id,rep_id,ts,activity_type,duration_min\n"
GOOD_ACTIVITY = "a1,r1,2024-03-05T10:00:00Z,email,5\n"


@pytest.mark.parametrize(
    ("table", "text", "reason", "column", "row", "says"),
    [
        (
            "activities",
            ACTIVITY_HEADER + GOOD_ACTIVITY + ",r1,2024-03-05,call,5\n",
            "missing_id",
            "activity_id",
            2,
            "activity_id is empty",
        ),
        (
            "activities",
            ACTIVITY_HEADER + GOOD_ACTIVITY + "a2,r1,next tuesday,call,5\n",
            "bad_timestamp",
            "ts",
            2,
            "'next tuesday' is not a date/time",
        ),
        (
            "activities",
            ACTIVITY_HEADER + GOOD_ACTIVITY + "a2,r1,,call,5\n",
            "bad_timestamp",
            "ts",
            2,
            "ts is empty",
        ),
        (
            "activities",
            ACTIVITY_HEADER + GOOD_ACTIVITY + "a2,r1,2024-03-05,call,five\n",
            "bad_value",
            "duration_min",
            2,
            "'five' is not a number",
        ),
        (
            "activities",
            ACTIVITY_HEADER + GOOD_ACTIVITY + "a2,r1,2024-03-05,call,-4\n",
            "negative_duration",
            "duration_min",
            2,
            "duration_min is -4",
        ),
        (
            "activities",
            ACTIVITY_HEADER + GOOD_ACTIVITY + "a2,r1,2031-01-01 10:00,call,5\n",
            "future_timestamp",
            "ts",
            2,
            "after the load time 2025-01-01 00:00 UTC",
        ),
        (
            "activities",
            ACTIVITY_HEADER + GOOD_ACTIVITY + "a1,r1,2024-03-06,call,5\n",
            "duplicate_id",
            "activity_id",
            2,
            "activity_id 'a1' already appeared in row 1",
        ),
        (
            "activities",
            ACTIVITY_HEADER + GOOD_ACTIVITY + "a2,r7,2024-03-06,call,5\n",
            "unknown_rep",
            "rep_id",
            2,
            "rep_id 'r7' is not among the loaded reps",
        ),
        (
            "buyer_actions",
            "action_id,ts,account_id,action_type\nb1,2024-03-05,acc1,reply\nb2,2024-03-05,,reply\n",
            "no_account",
            "account_id",
            2,
            "a buyer action must name the buyer's account",
        ),
        (
            "buyer_actions",
            "action_id,ts,account_id,action_type\nb1,2024-03-05,acc1,reply\nb2,2024-03-05,a,wave\n",
            "bad_value",
            "action_type",
            2,
            "'wave' is not one of reply, meeting_accepted",
        ),
        (
            "buyer_actions",
            "action_id,ts,account_id,action_type,is_verifier\nb1,2024-03-05,a,reply,no\n"
            "b2,2024-03-05,a,reply,maybe\n",
            "bad_value",
            "is_verifier",
            2,
            "'maybe' is not true/false, yes/no or 1/0",
        ),
        (
            "opportunities",
            "opportunity_id,rep_id,created_ts,outcome\no1,r1,2024-03-05,won\n"
            "o2,r1,2024-03-05,postponed\n",
            "bad_value",
            "outcome",
            2,
            "'postponed' is not one of open, won, lost, no_decision",
        ),
        (
            "opportunities",
            "opportunity_id,rep_id,created_ts,outcome,close_ts\no1,r1,2024-03-05,won,2024-04-01\n"
            "o2,r1,2024-03-05,won,2030-01-01\n",
            "future_timestamp",
            "close_ts",
            2,
            "'2030-01-01' (2030-01-01 05:00 UTC) is after",
        ),
        (
            "opportunities",
            "opportunity_id,rep_id,created_ts,outcome\no1,r1,2024-03-05,won\n"
            "o2,nobody,2024-03-05,lost\n",
            "unknown_rep",
            "rep_id",
            2,
            "rep_id 'nobody' is not among the loaded reps",
        ),
        (
            "reps",
            "rep_id,exit_reason\nr1,\nr2,fired\n",
            "bad_value",
            "exit_reason",
            2,
            "'fired' is not one of voluntary, involuntary",
        ),
        (
            "reps",
            "rep_id,hire_date\nr1,2024-01-02\nr2,2024-02-30\n",
            "bad_value",
            "hire_date",
            2,
            "'2024-02-30' is not a date",
        ),
        ("reps", "rep_id\nr1\n \n", "missing_id", "rep_id", 2, "rep_id is empty"),
    ],
)
def test_each_bad_row_is_quarantined_with_its_reason(
    tmp_path, table, text, reason, column, row, says
):
    files = {table: text}
    if table != "activities" and table != "opportunities":
        files["activities"] = ACTIVITY_HEADER + GOOD_ACTIVITY
    if table == "reps":
        files["activities"] = ACTIVITY_HEADER
    data = load_texts(tmp_path, **files)
    q = data.quarantine.filter(pl.col("table") == table)
    assert q.height == 1
    got = q.row(0, named=True)
    assert (got["reason"], got["column"], got["row"]) == (reason, column, row)
    assert got["message"].startswith(f"{table}.csv row {row}, column {column}: ")
    assert says in got["message"]
    assert data.report[table].loaded == data.report[table].read - 1


def test_unknown_stage_and_unknown_deal_in_stage_history(tmp_path):
    data = load_texts(
        tmp_path,
        opportunities="opportunity_id,rep_id,created_ts,outcome\no1,r1,2024-03-05,open\n",
        stage_history=(
            "opportunity_id,stage,entered_ts\n"
            "o1, Qualification ,2024-03-05\n"  # mapped by [stages.map]
            "o1,Closing,2024-03-07\n"  # mapped too
            "o1,Evaluation,2024-03-06\n"  # canonical, any case
            "o1,Dreaming,2024-03-08\n"
            "o9,prospect,2024-03-01\n"
            "o1,qualification,2024-03-05\n"  # exact repeat of row 1 once mapped
        ),
    )
    q = data.quarantine.select("row", "reason", "column")
    assert_frame_equal(
        q,
        pl.DataFrame(
            {
                "row": [4, 5, 6],
                "reason": ["unknown_stage", "unknown_reference", "duplicate_id"],
                "column": ["stage", "opportunity_id", None],
            },
            schema={"row": pl.UInt32, "reason": pl.String, "column": pl.String},
        ),
    )
    messages = data.quarantine["message"].to_list()
    assert "'Dreaming' is not one of the stages (prospect, discovery" in messages[0]
    assert "opportunity_id 'o9' is not among the loaded opportunities" in messages[1]
    assert messages[2] == "stage_history.csv row 6: exact repeat of row 1; the first was kept"
    assert data.tables["stage_history"]["stage"].to_list() == ["discovery", "evaluation", "commit"]


def test_participants_of_unknown_interventions_and_reps(tmp_path):
    data = load_texts(
        tmp_path,
        activities=ACTIVITY_HEADER + GOOD_ACTIVITY,
        interventions="intervention_id,start_date\ni1,2024-03-01\ni2,\n",
        intervention_participants="intervention_id,rep_id\ni1,r1\ni2,r1\ni1,r8\ni1,r1\n",
    )
    got = data.quarantine.select("table", "row", "reason").rows()
    assert got == [
        ("interventions", 2, "bad_value"),  # start_date is required
        ("intervention_participants", 2, "unknown_reference"),
        ("intervention_participants", 3, "unknown_rep"),
        ("intervention_participants", 4, "duplicate_id"),
    ]
    assert data.tables["intervention_participants"].rows() == [("i1", "r1")]


def test_first_failing_rule_wins_and_raw_row_is_kept(tmp_path):
    # empty id, bad time and unknown rep at once: missing_id comes first
    data = load_texts(tmp_path, activities=ACTIVITY_HEADER + GOOD_ACTIVITY + ",r9,soon,call,-1\n")
    row = data.quarantine.row(0, named=True)
    assert row["reason"] == "missing_id"
    assert json.loads(row["raw"]) == {
        "activity_id": None,
        "rep_id": "r9",
        "ts": "soon",
        "activity_type": "call",
        "duration_min": "-1",
    }


def test_duplicate_keeps_the_first_usable_row(tmp_path):
    # row 1 is unusable (bad time), so row 2 is the first of a1 and is loaded
    data = load_texts(
        tmp_path,
        activities=ACTIVITY_HEADER + "a1,r1,never,call,5\na1,r1,2024-03-05,call,5\n"
        "a1,r1,2024-03-06,call,5\n",
    )
    assert data.tables["activities"]["ts"].to_list() == [utc(2024, 3, 5, 5)]
    assert data.quarantine.select("row", "reason").rows() == [
        (1, "bad_timestamp"),
        (3, "duplicate_id"),
    ]
    assert "already appeared in row 2" in data.quarantine["message"][1]


def test_references_point_at_loaded_rows_only(tmp_path):
    # r2 is quarantined (bad hire date), so its activities count as unknown reps; r1 stays
    data = load_texts(
        tmp_path,
        reps="rep_id,hire_date\nr1,2024-01-01\nr2,bad\n",
        activities=ACTIVITY_HEADER + GOOD_ACTIVITY + "a2,r2,2024-03-05,call,5\n",
    )
    assert data.report.to_dict()["activities"]["quarantined"] == {"unknown_rep": 1}


def test_open_deal_may_close_in_the_future(tmp_path):
    data = load_texts(
        tmp_path,
        opportunities="opportunity_id,rep_id,created_ts,outcome,close_ts\n"
        "o1,r1,2024-03-05,open,2025-06-30\n",
    )
    assert data.quarantine.is_empty()
    assert any("expected close date" in n for n in data.report.notes)


def test_pre_quarantined_rows_are_counted():
    pre = pl.DataFrame(
        {
            "table": ["activities"],
            "file": ["Task.csv"],
            "row": [7],
            "column": [None],
            "reason": ["bad_value"],
            "message": ["Task.csv row 7: status 'Deleted'"],
            "raw": ["{}"],
        }
    )
    raw = {
        "reps": RawTable("reps", pl.DataFrame({"rep_id": ["r1"]}), "User.csv"),
        "activities": RawTable(
            "activities",
            pl.DataFrame(
                {
                    "activity_id": ["a1", "a2"],
                    "rep_id": ["r1", "r1"],
                    "ts": ["2024-01-01", "2024-01-02"],
                    "activity_type": ["call", "call"],
                    "__row": pl.Series([1, 3], dtype=pl.UInt32),
                    "__file": ["Task.csv", "Event.csv"],
                }
            ),
            "Task.csv + Event.csv",
        ),
    }
    data = validate_tables(raw, settings=SETTINGS, now=NOW, pre_quarantined=pre)
    assert_nothing_lost(data)
    assert data.report.to_dict()["activities"] == {
        "read": 3,
        "loaded": 2,
        "quarantined": {"bad_value": 1},
        "file": "Task.csv + Event.csv",
        "missing": False,
    }


def test_rows_from_several_files_name_their_own_file():
    raw = {
        "reps": RawTable("reps", pl.DataFrame({"rep_id": ["r1"]}), "User.csv"),
        "activities": RawTable(
            "activities",
            pl.DataFrame(
                {
                    "activity_id": ["a1", "a1"],
                    "rep_id": ["r1", "r1"],
                    "ts": ["2024-01-01", "2024-01-02"],
                    "activity_type": ["call", "call"],
                    "__row": pl.Series([4, 9], dtype=pl.UInt32),
                    "__file": ["Task.csv", "Event.csv"],
                }
            ),
            "Task.csv + Event.csv",
        ),
    }
    data = validate_tables(raw, settings=SETTINGS, now=NOW)
    assert data.quarantine.select("file", "row").rows() == [("Event.csv", 9)]
    assert data.quarantine["message"][0].startswith("Event.csv row 9, column activity_id:")


# --------------------------------------------------------------------- vocabularies, defaults


def test_unknown_activity_types_become_other_with_a_note(tmp_path):
    data = load_texts(
        tmp_path,
        activities=ACTIVITY_HEADER
        + "a1,r1,2024-03-05,Webinar,\na2,r1,2024-03-05,webinar,\na3,r1,2024-03-05,Webinar,\n"
        "a4,r1,2024-03-05, Zoom ,\na5,r1,2024-03-05,EMAIL,\na6,r1,2024-03-05,trade show,\n",
    )
    acts = data.tables["activities"].sort("activity_id")
    assert acts["activity_type"].to_list() == [
        "other",
        "other",
        "other",
        "meeting",
        "email",
        "other",
    ]
    assert data.quarantine.is_empty()
    notes = "\n".join(data.report.notes)
    assert "2 rows had activity_type 'Webinar', mapped to 'other'" in notes
    assert "1 row had activity_type 'webinar', mapped to 'other'" in notes
    assert "1 row had activity_type 'trade show', mapped to 'other'" in notes
    # empty durations take the settings' default of the canonical type
    assert acts["duration_min"].to_list() == [10.0, 10.0, 10.0, 45.0, 6.0, 10.0]


def test_buyer_action_defaults_come_from_the_settings(tmp_path):
    data = load_texts(
        tmp_path,
        activities=ACTIVITY_HEADER,
        buyer_actions="action_id,ts,account_id,action_type,is_verifier,weight\n"
        "b1,2024-03-05,acc1,Meeting Held,,\nb2,2024-03-06,acc1,reply,YES,2.5\n"
        "b3,2024-03-07,acc1,proposal-requested,0,\n",
    )
    ba = data.tables["buyer_actions"]
    assert ba.select("action_type", "is_verifier", "weight").rows() == [
        ("meeting_held", True, 3.0),
        ("reply", True, 2.5),
        ("proposal_requested", False, 5.0),
    ]


def test_currency_defaults_to_the_settings_currency(tmp_path):
    data = load_texts(
        tmp_path,
        opportunities="opportunity_id,rep_id,created_ts,outcome,currency\n"
        "o1,r1,2024-03-05,open,eur\no2,r1,2024-03-05,open,\n",
    )
    assert data.tables["opportunities"]["currency"].to_list() == ["EUR", "USD"]


# ----------------------------------------------------------------------------- Excel files


def test_excel_folder_semicolons_bom_cp1252_decimal_comma_crlf():
    data = load_folder(DATA / "excel", settings=SETTINGS, now=NOW)
    assert_nothing_lost(data)
    assert data.quarantine.is_empty()
    expected_reps = pl.DataFrame(
        {
            "rep_id": ["r1", "r2", "r3"],
            "rep_name": ["Zoë Faure", "José Núñez", "Smith; Anna"],
            "team": ["North", "North", "South"],
            "segment": ["SMB", "SMB", "Enterprise"],
            "region": [None, None, None],
            "role": ["AE", "AE", "SDR"],
            "manager_id": [None, None, None],
            "hire_date": [date(2022, 1, 15), date(2024, 1, 1), date(2023, 3, 1)],
            "exit_date": [None, date(2024, 6, 30), None],
            "exit_reason": [None, "voluntary", None],
            "timezone": [None, None, None],
        },
        schema=TABLES["reps"].schema,
    )
    assert_frame_equal(data.tables["reps"], expected_reps)
    acts = data.tables["activities"].sort("activity_id")
    assert acts.select("activity_type", "duration_min").rows() == [
        ("email", 2.5),
        ("call", 12.0),
        ("other", 10.0),
        ("meeting", 45.0),
    ]
    # M/D/YYYY with AM/PM in New York: a winter time, the spring-forward gap, the
    # fall-back repeat (first occurrence) and a summer time
    assert acts["ts"].to_list() == [
        utc(2024, 3, 5, 14, 30),
        utc(2024, 3, 10, 7, 30),
        utc(2024, 11, 3, 5, 30),
        utc(2024, 7, 1, 16),
    ]
    opps = data.tables["opportunities"]
    assert opps.select("account_id", "amount", "currency", "outcome").rows() == [
        ("Société Générale", 1234.5, "EUR", "won"),
        ("Müller GmbH", 980.0, "USD", "open"),
    ]
    assert opps["created_ts"].to_list() == [utc(2024, 2, 1, 5), utc(2024, 6, 15, 4)]
    notes = "\n".join(data.report.notes)
    assert "activities.ts (activities.csv): no slash date in the column has a part above" in notes
    assert "daylight-saving gap" in notes and "read as the first occurrence" in notes


def test_latin1_bytes_without_bom(tmp_path):
    write(tmp_path, "reps.csv", "rep_id,rep_name\nr1,Renée Ørsted\n", encoding="latin-1")
    frame = read_csv_text(tmp_path / "reps.csv")
    assert frame.rows() == [("r1", "Renée Ørsted")]


def test_tab_separated_utf16_file(tmp_path):
    text = "rep_id\tteam\r\nr1\tNorth, East\r\n"
    (tmp_path / "reps.txt").write_bytes(text.encode("utf-16"))
    assert read_csv_text(tmp_path / "reps.txt").rows() == [("r1", "North, East")]


def test_headers_match_whatever_their_case_and_spacing(tmp_path):
    write(tmp_path, "REPS.CSV", "\ufeff Rep_ID ,TEAM\nr1,North\n")
    write(
        tmp_path,
        "Opportunities.tsv",
        "Opportunity ID\tRep-ID\tCreated_TS\tOutcome\tNotes\no1\tr1\t2024-01-05\tWon\thi\n",
    )
    data = load_folder(tmp_path, settings=SETTINGS, now=NOW)
    assert_nothing_lost(data)
    assert data.tables["reps"].select("rep_id", "team").rows() == [("r1", "North")]
    assert data.tables["opportunities"]["outcome"].to_list() == ["won"]
    assert (
        "opportunities (Opportunities.tsv): ignored columns not in the opportunities table: Notes"
    ) in data.report.notes


def test_decimal_comma_only_in_semicolon_files(tmp_path):
    write(
        tmp_path,
        "opportunities.csv",
        "opportunity_id,rep_id,created_ts,outcome,amount\n"
        'o1,r1,2024-01-05,won,"1,250.75"\no2,r1,2024-01-05,won,"12,5"\n',
    )
    data = load_texts(tmp_path)
    assert data.tables["opportunities"]["amount"].to_list() == [1250.75]
    assert data.quarantine["message"][0].endswith("'12,5' is not a number")


def test_blank_lines_are_skipped_with_a_note(tmp_path):
    data = load_texts(tmp_path, activities=ACTIVITY_HEADER + GOOD_ACTIVITY + ",,,,\n,,,,\n")
    assert data.report["activities"].read == 1
    assert "activities (activities.csv): skipped 2 blank lines (every field empty)" in (
        data.report.notes
    )


# -------------------------------------------------------------------------- time parsing


def test_mixed_day_month_order_flags_the_minority(tmp_path):
    data = load_texts(
        tmp_path,
        activities=ACTIVITY_HEADER
        + "a1,r1,2/13/2024,call,\na2,r1,2/14/2024,call,\na3,r1,14/2/2024,call,\n"
        "a4,r1,2/3/2024,call,\n",
    )
    assert data.tables["activities"].sort("activity_id")["ts"].to_list() == [
        utc(2024, 2, 13, 5),
        utc(2024, 2, 14, 5),
        utc(2024, 2, 3, 5),
    ]
    row = data.quarantine.row(0, named=True)
    assert (row["row"], row["reason"], row["column"]) == (3, "bad_timestamp", "ts")
    assert (
        "'14/2/2024' only reads as D/M/YYYY but most slash dates in this column are "
        "M/D/YYYY (1 row disagree)" in row["message"]
    )


# ---------------------------------------------------------------------------- errors


def test_missing_reps_file_names_what_is_expected_and_found(tmp_path):
    write(tmp_path, "activities.csv", ACTIVITY_HEADER)
    write(tmp_path, "sellers.csv", "id\n")
    with pytest.raises(DataError) as err:
        load_folder(tmp_path, settings=SETTINGS)
    message = str(err.value)
    assert "reps missing" in message
    assert "found: activities.csv, sellers.csv" in message


def test_activities_or_opportunities_is_required(tmp_path):
    write(tmp_path, "reps.csv", "rep_id\nr1\n")
    with pytest.raises(DataError, match="activities or opportunities missing"):
        load_folder(tmp_path, settings=SETTINGS)


def test_missing_required_column_names_file_column_and_found_columns(tmp_path):
    write(tmp_path, "reps.csv", "rep_id\nr1\n")
    write(tmp_path, "activities.csv", "activity_id,rep,when,activity_type\na1,r1,2024-01-01,x\n")
    with pytest.raises(DataError) as err:
        load_folder(tmp_path, settings=SETTINGS)
    assert str(err.value) == (
        "activities.csv: required columns 'rep_id', 'ts' are missing; "
        "found columns: activity_id, rep, when, activity_type"
    )
    write(tmp_path, "activities.csv", "activity_id,rep_id,activity_type\n")
    with pytest.raises(
        DataError,
        match=r"^activities.csv: required column 'ts' is missing; "
        r"found columns: activity_id, rep_id, activity_type$",
    ):
        load_folder(tmp_path, settings=SETTINGS)


def test_a_line_with_more_fields_than_the_header_is_quarantined(tmp_path):
    write(tmp_path, "reps.csv", "rep_id,team\nr0,South\nr1,North,extra\nr2,East\n")
    write(tmp_path, "activities.csv", ACTIVITY_HEADER)
    data = load_folder(tmp_path, settings=SETTINGS)
    assert_nothing_lost(data)
    assert data.tables["reps"]["rep_id"].to_list() == ["r0", "r2"]
    assert data.quarantine.select("row", "reason", "message").rows() == [
        (
            2,
            "extra_fields",
            "reps.csv row 2: line 3 has 3 fields, the header 2; expected no more fields than "
            "the header (a value holding the delimiter is quoted)",
        )
    ]


def test_unreadable_files_are_data_errors(tmp_path):
    write(tmp_path, "reps.csv", "rep_id\nr1\n")
    write(tmp_path, "activities.parquet", "not parquet")
    with pytest.raises(DataError, match="activities.parquet: not a readable Parquet file"):
        load_folder(tmp_path, settings=SETTINGS)


def test_two_files_for_one_table_is_an_error(tmp_path):
    write(tmp_path, "reps.csv", "rep_id\nr1\n")
    write(tmp_path, "Reps.txt", "rep_id\nr1\n")
    with pytest.raises(DataError, match=r"two files for the reps table \(Reps.txt, reps.csv\)"):
        load_folder(tmp_path, settings=SETTINGS)


def test_optional_tables_missing_are_reported_not_fatal(tmp_path):
    write(tmp_path, "notes.txt", "hello")
    data = load_texts(tmp_path, activities=ACTIVITY_HEADER + GOOD_ACTIVITY)
    assert data.missing_tables == (
        "buyer_actions",
        "opportunities",
        "stage_history",
        "interventions",
        "intervention_participants",
    )
    assert data.report.to_dict()["buyer_actions"] == {
        "read": 0,
        "loaded": 0,
        "quarantined": {},
        "file": None,
        "missing": True,
    }
    assert_frame_equal(data.tables["stage_history"], TABLES["stage_history"].empty())
    assert "ignored file notes.txt (not named after a table)" in data.report.notes


# ------------------------------------------------------------------------- report, CLI


def test_report_views_agree(tmp_path):
    data = load_texts(tmp_path, activities=ACTIVITY_HEADER + GOOD_ACTIVITY + GOOD_ACTIVITY)
    frame = data.report.to_frame()
    assert frame.columns == ["table", "file", "read", "loaded", "quarantined", "missing"]
    assert frame.filter(pl.col("table") == "activities").row(0) == (
        "activities",
        "activities.csv",
        2,
        1,
        1,
        False,
    )
    text = data.report.to_text()
    assert "activities.csv" in text and "1 (duplicate_id 1)" in text
    assert "buyer_actions" in text and "(not provided)" in text
    assert set(REASONS) >= {r for e in data.report.to_dict().values() for r in e["quarantined"]}


def test_cli_load_json_prints_the_per_table_report(tmp_path, capsys):
    load_texts(tmp_path, activities=ACTIVITY_HEADER + GOOD_ACTIVITY + ",r1,2024-01-01,call,\n")
    assert main(["load", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["activities"] == {
        "read": 2,
        "loaded": 1,
        "quarantined": {"missing_id": 1},
        "file": "activities.csv",
        "missing": False,
        "lines": {"physical": 2, "blank": 0, "quoted": 0},
    }
    assert set(report) == set(TABLES)


def test_cli_load_without_reps_exits_2_with_a_clear_message(tmp_path, capsys):
    write(tmp_path, "activities.csv", ACTIVITY_HEADER)
    assert main(["load", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"effortlens: {tmp_path}") or captured.err.startswith(
        f"effortlens: cannot load {tmp_path}"
    )
    assert "reps" in captured.err and "activities.csv" in captured.err
    assert "Traceback" not in captured.err


def test_nan_is_an_empty_number_and_infinity_a_bad_one(tmp_path):
    pl.DataFrame({"rep_id": ["r1"]}).write_parquet(tmp_path / "reps.parquet")
    pl.DataFrame(
        {
            "activity_id": ["a1", "a2", "a3"],
            "rep_id": ["r1", "r1", "r1"],
            "ts": [utc(2024, 3, 1), utc(2024, 3, 2), utc(2024, 3, 3)],
            "activity_type": ["call", "call", "call"],
            "duration_min": [float("nan"), float("inf"), 3.0],
        }
    ).write_parquet(tmp_path / "activities.parquet")
    data = load_folder(tmp_path, settings=SETTINGS, now=NOW)
    assert_nothing_lost(data)
    assert data.tables["activities"]["duration_min"].to_list() == [12.0, 3.0]  # NaN: default
    assert data.quarantine.select("row", "reason", "column").rows() == [
        (2, "bad_value", "duration_min")
    ]


# ------------------------------------------------------------------- generated sample data


def test_dirty_sample_quarantine_equals_its_truth(tiny_dirty):
    expected = json.loads((tiny_dirty / "truth.json").read_text())["expected_quarantine"]
    data = load_folder(tiny_dirty, settings=SETTINGS)
    assert_nothing_lost(data)
    got = {t: e["quarantined"] for t, e in data.report.to_dict().items() if e["quarantined"]}
    assert got == {t: counts for t, counts in expected.items() if counts}


def test_small_dirty_sample_read_in_several_chunks_quarantines_its_truth(tmp_path):
    # a CSV this size is read in several chunks; formatting quarantine messages across them
    # once crashed Polars
    from effortlens.sample import generate

    generate(tmp_path, size="small", mode="dirty", seed=5)
    expected = json.loads((tmp_path / "truth.json").read_text())["expected_quarantine"]
    data = load_folder(tmp_path, settings=SETTINGS)
    assert_nothing_lost(data)
    got = {t: e["quarantined"] for t, e in data.report.to_dict().items() if e["quarantined"]}
    assert got == {t: counts for t, counts in expected.items() if counts}


def test_planted_sample_loads_without_quarantine(tiny_planted):
    data = load_folder(tiny_planted, settings=SETTINGS)
    assert_nothing_lost(data)
    assert data.quarantine.is_empty()
    assert data.missing_tables == ()


def test_dirty_sample_clean_rows_load_as_the_planted_parquet(tiny_dirty, tiny_planted):
    # same seed: the Excel-style CSVs hold the planted rows plus the bad ones
    dirty = load_folder(tiny_dirty, settings=SETTINGS).tables
    planted = load_folder(tiny_planted, settings=SETTINGS).tables
    for table in TABLES:
        left, right = dirty[table], planted[table]
        if table == "activities":  # its M/D/YYYY H:MM timestamps carry no seconds
            left, right = (
                f.with_columns(pl.col("ts").dt.truncate("1m")).sort("activity_id")
                for f in (left, right)
            )
        assert_frame_equal(left, right)


def test_generator_truth_files_are_named_as_its_answer_key(tiny_planted):
    # the bundled sample keeps the generator's truth beside its tables: the report says what
    # those files are instead of calling them stray files
    from effortlens.adapters.detect import detect_format

    notes = load_folder(tiny_planted).report.notes
    for name in ("truth.json", "_truth_responses.parquet"):
        assert f"ignored file {name} (the sample generator's answer key, not data)" in notes
    assert not [n for n in notes if "not named after a table" in n]
    assert detect_format(tiny_planted).ignored == (
        "_truth_responses.parquet (the sample generator's answer key, not data)",
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_are_put_in_key_order_as_a_stable_sort_would(seed):
    # validation's fast sort (text keys as ranks, one stable pass per key, a quick look at
    # the first key before the full check) against Polars' own stable sort, nulls last
    import numpy as np

    from effortlens.loading.table import _in_order  # noqa: PLC2701

    rng = np.random.default_rng(seed)
    n = 2_000
    opp = pl.Series(rng.choice(["b", "a", "c10", "c9", ""], n)).replace("", None)
    ts = pl.Series(rng.integers(0, 50, n)).cast(pl.Datetime("us", "UTC"))
    ts = pl.select(pl.when(pl.Series(rng.random(n) >= 0.05)).then(ts)).to_series()
    frame = pl.DataFrame({"opportunity_id": opp, "ts": ts, "row": np.arange(n)})
    keys = ("opportunity_id", "ts")
    want = frame.sort(list(keys), nulls_last=True, maintain_order=True)
    assert_frame_equal(_in_order(frame, keys), want)
    assert_frame_equal(_in_order(want, keys), want)  # already ordered: as is
    # ordered on the first key, not on the second: the quick look does not decide
    first_only = frame.sort("opportunity_id", nulls_last=True, maintain_order=True)
    assert_frame_equal(_in_order(first_only, keys), want)
