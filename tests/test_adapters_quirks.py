"""Real exports, read honestly (issue 9): one hand-made fixture per quirk of real exports.

Every fixture under ``tests/data/crm/<case>`` uses the header lines the CRM really writes and
hand-written rows (no third-party data). Each test says what a sales-ops analyst loading such
an export would expect; the last ones run every command line command on every fixture.
"""

from __future__ import annotations

import csv
import shutil
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from effortlens.adapters import (
    detect_format,
    load_any,
    mapping_template,
    salesforce_id18,
    stage_history_source,
)
from effortlens.enrich import enrich_tables
from effortlens.loading import DataError
from effortlens.settings import load_settings

CRM = Path(__file__).parent / "data" / "crm"
NOW = datetime(2024, 12, 1, tzinfo=UTC)
ID = salesforce_id18


def _load(name: str | Path, **kwargs):
    folder = name if isinstance(name, Path) else CRM / name
    return load_any(folder, settings=load_settings(), now=NOW, **kwargs)


def _copy(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(CRM / name, folder)
    return folder


def _note(data, start: str) -> str:
    hits = [n for n in data.report.notes if n.startswith(start)]
    assert hits, f"no note starting {start!r} in {data.report.notes}"
    return hits[0]


def _drop_column(path: Path, column: str) -> None:
    rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
    at = [c.lower() for c in rows[0]].index(column.lower())
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL).writerows(r[:at] + r[at + 1 :] for r in rows)


def _invariants(data) -> None:
    for entry in data.report.tables:
        assert entry.loaded + entry.quarantined_total == entry.read, entry
    for entry in data.report.files:
        assert entry.loaded + entry.quarantined_total == entry.read, entry


# -- 1. Salesforce Tasks with an empty Type and no TaskSubtype ------------------------------


@pytest.fixture(scope="module")
def task_types():
    return _load("sf_task_types")


def test_untyped_tasks_are_typed_by_the_documented_chain_and_the_note_counts_each_step(
    task_types,
):
    types = dict(task_types.tables["activities"].select("activity_id", "activity_type").iter_rows())
    expected = {
        1: "email",  # EmailMessageId
        2: "email",  # "Email: ..." subject
        3: "call",  # CallType
        4: "call",  # CallDurationInSeconds
        5: "call",  # Type
        6: "email",  # Type
        7: "email",  # EmailMessageId ("→ Email: List email: ...")
        8: "other",  # nothing says: the settings' default
        10: "social",  # Type "Other" says nothing; "LinkedIn: ..." subject
        13: "email",
    }
    for number, kind in expected.items():
        assert types[ID(f"00T5e00000Tt{number:03d}")] == kind, number
    note = _note(task_types, "Task.csv: activity types read from")
    assert "Type 2, EmailMessageId 5, call fields 3, Subject prefix 2, default (other) 1" in note
    # nothing was quarantined for want of a type
    assert "activity_type" not in set(task_types.quarantine["column"].drop_nulls())
    _invariants(task_types)


def test_inbound_calls_are_buyer_actions_not_effort(task_types):
    actions = task_types.tables["buyer_actions"]
    assert ID("00T5e00000Tt009") in set(actions["action_id"])
    assert ID("00T5e00000Tt009") not in set(task_types.tables["activities"]["activity_id"])


def test_dedupe_never_drops_both_copies_of_an_email(task_types):
    activities = set(task_types.tables["activities"]["activity_id"])
    q = task_types.quarantine
    same = q.filter(pl.col("reason") == "same_as_task")
    # each email set aside as its Task: that Task is loaded
    assert sorted(same["row"].to_list()) == [1, 2, 5]
    for task in ("001", "007", "013"):
        assert ID(f"00T5e00000Tt{task}") in activities
    # the Task of email 11 had no readable time, the Task of email 12 an unknown owner:
    # both quarantined, so their emails count instead
    assert {"bad_timestamp", "unknown_rep"} <= set(q.filter(pl.col("file") == "Task.csv")["reason"])
    assert {ID("02s5e00000Em011"), ID("02s5e00000Em012")} <= activities


def test_the_empty_value_in_an_activity_type_map_types_untyped_tasks(task_types, tmp_path):
    folder = _copy("sf_task_types", tmp_path)
    (folder / "mapping.toml").write_text('[values.activity_type]\n"" = "email"\n')
    assert detect_format(folder).format == "salesforce"  # value maps only: still Salesforce
    data = _load(folder)
    types = dict(data.tables["activities"].select("activity_id", "activity_type").iter_rows())
    assert types[ID("00T5e00000Tt008")] == "email"  # was the default, "other"
    assert types[ID("00T5e00000Tt003")] == "email"  # the user's map comes first in the chain
    assert types[ID("00T5e00000Tt005")] == "call"  # a Type given is not the empty value
    assert "value map 10" in _note(data, "Task.csv: activity types read from")


def test_a_settings_default_types_what_nothing_else_types(tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text('[activities.map]\n"" = "call"\n')
    data = load_any(CRM / "sf_task_types", settings=load_settings(settings), now=NOW)
    types = dict(data.tables["activities"].select("activity_id", "activity_type").iter_rows())
    assert types[ID("00T5e00000Tt008")] == "call"
    assert "default (call) 1" in _note(data, "Task.csv: activity types read from")


# -- 2. Data Loader exports with chosen fields ----------------------------------------------


def test_a_data_loader_export_without_optional_columns_loads(tmp_path):
    data = _load("sf_chosen_fields")
    assert data.report["opportunities"].loaded == 3
    assert data.report["activities"].read == 4
    assert "deleted_record" not in set(data.quarantine["reason"])
    outcomes = dict(data.tables["opportunities"].select("opportunity_id", "outcome").iter_rows())
    assert outcomes[ID("0065e00000OpCf1")] == "won"
    assert outcomes[ID("0065e00000OpCf3")] == "lost"
    _invariants(data)


def test_a_missing_essential_column_is_one_clear_message(tmp_path):
    folder = _copy("sf_chosen_fields", tmp_path)
    _drop_column(folder / "extract.csv", "CreatedDate")
    with pytest.raises(DataError) as info:
        _load(folder)
    message = str(info.value)
    assert "extract.csv has no CreatedDate column" in message
    assert "Columns found: ID, ACCOUNTID, NAME, STAGENAME" in message
    assert "Traceback" not in message and "ColumnNotFound" not in message


def test_a_file_named_like_an_export_but_lacking_its_key_column_stops_the_load(tmp_path):
    folder = _copy("sf_task_types", tmp_path)
    _drop_column(folder / "Task.csv", "OwnerId")
    detection = detect_format(folder)
    assert detection.incomplete and "Task.csv" in detection.incomplete[0]
    with pytest.raises(DataError) as info:
        _load(folder)
    assert "Task.csv is named like a Salesforce Task export but has no OwnerId" in str(info.value)
    assert "Columns found: Id, WhoId" in str(info.value)


# -- 3. The empty lookup id -----------------------------------------------------------------


def test_the_empty_lookup_id_is_null_everywhere():
    data = _load("sf_empty_lookup")
    for name, frame in data.tables.items():
        for column, dtype in frame.schema.items():
            if dtype == pl.String:
                values = frame[column].drop_nulls()
                assert not values.str.starts_with("000000000000000").any(), (name, column)
    reps = data.tables["reps"]
    assert reps["manager_id"].null_count() == reps.height
    opps = data.tables["opportunities"]
    assert opps.filter(pl.col("opportunity_id") == ID("0065e00000OpEl1"))["account_id"][0] is None
    activities = data.tables["activities"].sort("activity_id")
    assert activities["contact_id"].to_list()[:2] == [None, None]
    assert activities["opportunity_id"][2] is None
    _invariants(data)


# -- 4. No-decision losses named in a loss-reason field -------------------------------------


def _outcomes(data) -> dict[int, str]:
    rows = data.tables["opportunities"].select("opportunity_id", "outcome").iter_rows()
    return {int(i[14]): o for i, o in rows}


def test_no_decision_is_read_from_loss_reason_fields_and_the_mapping():
    data = _load("sf_no_decision")
    assert _outcomes(data) == {
        1: "no_decision",  # LossReason__c "No Decision / Non-Responsive"
        2: "lost",
        3: "lost",
        4: "no_decision",  # Why_We_Lost__c (named in the mapping) "Stalled - Status Quo"
        5: "won",
        6: "no_decision",  # stage "Closed - No Decision"
        7: "no_decision",  # "Chose nothing" mapped in [values.outcome]
        8: "open",
    }
    assert "4 lost deals read as no decision" in _note(data, "Opportunity.csv: 4 lost")


def test_without_the_mapping_only_the_fields_recognised_by_name_count(tmp_path):
    folder = _copy("sf_no_decision", tmp_path)
    (folder / "mapping.toml").unlink()
    outcomes = _outcomes(_load(folder))
    assert [k for k, v in outcomes.items() if v == "no_decision"] == [1, 6]


# -- 5. Time zones per rep, the export's currency rates, strict classification -------------


@pytest.fixture(scope="module")
def zones():
    return _load("sf_zones_currency")


def test_other_salesforce_objects_are_never_taken_for_events_or_tasks():
    detection = detect_format(CRM / "sf_zones_currency")
    read = {p.name for paths in detection.files.values() for p in paths}
    assert "ActivityRecurrence2Exception.csv" not in read
    assert "ContactRequest.csv" not in read
    assert "Event" not in detection.files
    text = detection.to_text()
    assert "ContactRequest.csv (a Salesforce ContactRequest export: not read)" in text
    assert "CurrencyType.csv: Salesforce CurrencyType" in text and "-> deals" in text


def test_each_rep_keeps_their_own_time_zone_for_local_day_and_hour(zones):
    reps = dict(zones.tables["reps"].select("rep_id", "timezone").iter_rows())
    assert reps == {
        ID("0055e000001AvRd"): "America/Los_Angeles",
        ID("0055e000001BeOz"): "Europe/Berlin",
    }
    enriched = enrich_tables(zones.tables, settings=zones.settings)
    local = {
        r["activity_id"][-3 : -3 + 2] if False else r["activity_id"]: (r["day"], r["hour"])
        for r in enriched.activities.iter_rows(named=True)
    }
    # the same instant, 2024-03-05 03:30 UTC: evening before in Los Angeles, night in Berlin
    assert local[ID("00T5e00000TzC01")] == (date(2024, 3, 4), 19)
    assert local[ID("00T5e00000TzC02")] == (date(2024, 3, 5), 4)
    # Sunday 23:15 UTC is Monday in Berlin: a new week
    assert local[ID("00T5e00000TzC03")] == (date(2024, 3, 11), 0)


def test_without_zones_the_settings_zone_still_serves(zones):
    tables = dict(zones.tables)
    tables["reps"] = tables["reps"].with_columns(pl.lit(None, dtype=pl.String).alias("timezone"))
    enriched = enrich_tables(tables, settings=zones.settings)
    hours = set(enriched.activities.filter(pl.col("ts").dt.hour() == 3)["hour"])
    assert hours == {22}  # America/New_York, the default settings' zone


def test_amounts_are_converted_with_the_exports_own_rates_dated_where_dated(zones):
    opps = {
        int(r["opportunity_id"][14]): (r["amount"], r["currency"])
        for r in zones.tables["opportunities"].iter_rows(named=True)
    }
    assert opps[1] == (pytest.approx(10000.0), "USD")  # EUR 9200 at the Q1 rate 0.92
    assert opps[2] == (pytest.approx(10000.0), "USD")  # EUR 9500 at the rate from April, 0.95
    assert opps[3] == (pytest.approx(10000.0), "USD")  # GBP 8000 at CurrencyType's 0.8
    assert opps[4] == (pytest.approx(10000.0), "USD")
    assert opps[5] == (pytest.approx(1500000.0), "JPY")  # no rate: kept in its own currency
    note = _note(zones, "Opportunity.csv: 3 amounts converted to USD")
    assert "2 by DatedConversionRate" in note and "no rate for JPY" in note


def test_an_open_deal_without_a_created_date_is_kept_at_its_stage(zones):
    opps = zones.tables["opportunities"]
    deal = opps.filter(pl.col("opportunity_id") == ID("0065e00000OpZc6")).row(0, named=True)
    assert deal["outcome"] == "open" and deal["created_ts"] is None
    history = zones.tables["stage_history"].filter(
        pl.col("opportunity_id") == ID("0065e00000OpZc6")
    )
    assert history["stage"].to_list() == ["negotiation"]  # at its LastStageChangeDate
    assert zones.quarantine.filter(pl.col("table") == "opportunities").height == 0
    _invariants(zones)


# -- 6. One activity log, both directions, through a generic mapping ------------------------


def test_one_activity_log_feeds_effort_and_buyer_actions_by_where():
    data = _load("generic_both_directions")
    activities = dict(data.tables["activities"].select("activity_id", "activity_type").iter_rows())
    assert sorted(activities) == [f"A-{n}" for n in (1001, 1003, 1004, 1005, 1007, 1008, 1009)]
    actions = dict(data.tables["buyer_actions"].select("action_id", "action_type").iter_rows())
    assert actions == {
        "A-1002": "reply",  # inbound email
        "A-1006": "reply",  # inbound call
        "A-1004": "reply",  # REPLIED
        "A-1003": "reply",  # a connected call
        "A-1007": "meeting_held",  # a held meeting
    }
    # the outbound rows the buyer answered are credited with a response
    enriched = enrich_tables(data.tables, settings=data.settings)
    responded = set(enriched.activities.filter(pl.col("responded"))["activity_id"])
    # (A-1005, the unanswered call, earns the buyer's call-back A-1006)
    assert responded == {"A-1001", "A-1003", "A-1004", "A-1005", "A-1007"}
    assert "1 row" in _note(data, "activity_log.csv: 1 rows match no entry's where")
    _invariants(data)
    # the per-file report counts each log row once, though rows feed two tables
    (log,) = [f for f in data.report.files if f.file == "activity_log.csv"]
    assert (log.read, log.tables) == (9, {"activities": 7, "buyer_actions": 5})


def test_a_where_naming_a_missing_column_is_a_mapping_error(tmp_path):
    from effortlens.adapters import MappingError

    folder = _copy("generic_both_directions", tmp_path)
    text = (
        (folder / "mapping.toml")
        .read_text()
        .replace('where = { Direction = "INBOUND" }', 'where = { Richtung = "INBOUND" }')
    )
    (folder / "mapping.toml").write_text(text)
    with pytest.raises(MappingError) as info:
        _load(folder)
    assert "where.Richtung names column 'Richtung'" in str(info.value)


def test_a_loss_reason_column_in_a_generic_mapping_reads_no_decision(tmp_path):
    folder = tmp_path / "deals"
    folder.mkdir()
    (folder / "deals.csv").write_text(
        "Deal,Owner,Created,Stage,Why lost\n"
        "d1,Ann,2024-01-02,Lost,No Decision / Non-Responsive\n"
        "d2,Ann,2024-01-03,Lost,Price\n"
        "d3,Bob,2024-01-04,Won,\n"
    )
    (folder / "mapping.toml").write_text(
        '[opportunities]\nfile = "deals.csv"\nopportunity_id = "Deal"\nrep_id = "Owner"\n'
        'created_ts = "Created"\nstage = "Stage"\nloss_reason = "Why lost"\n'
    )
    outcomes = dict(
        _load(folder).tables["opportunities"].select("opportunity_id", "outcome").iter_rows()
    )
    assert outcomes == {"d1": "no_decision", "d2": "lost", "d3": "won"}


# -- 7. mapping-template --------------------------------------------------------------------


def test_the_template_reads_snake_case_headers_and_never_takes_contacts_for_reps():
    text = mapping_template(CRM / "generic_snake_case")
    parsed = tomllib.loads(text)
    opps = parsed["opportunities"]
    assert (opps["file"], opps["stage"], opps["amount"]) == (
        "sales_pipeline.csv",
        "deal_stage",
        "close_value",
    )
    assert (opps["created_ts"], opps["close_ts"], opps["rep_id"]) == (
        "engage_date",
        "close_date",
        "sales_agent",
    )
    assert parsed["reps"]["file"] == "sales_teams.csv"
    assert parsed["activities"]["ts"] == "activity_date"
    assert parsed["activities"]["activity_type"] == "activity_type"
    assert "contacts.csv (people at buyers' companies (contacts), not sellers)" in text
    assert "accounts.csv (" in text
    assert parsed["source"]["date_format"] == "M/D/YYYY"
    assert parsed["values"]["outcome"] == {"Won": "won", "Lost": "lost"}


def test_the_filled_in_snake_case_template_loads(tmp_path):
    folder = _copy("generic_snake_case", tmp_path)
    text = mapping_template(folder).replace('"Engaging" = ""', '"Engaging" = "discovery"')
    (folder / "mapping.toml").write_text(text)
    data = _load(folder)
    assert data.report["opportunities"].loaded == 7
    assert data.report["activities"].loaded == 4
    assert data.tables["reps"].height == 5
    deal = data.tables["opportunities"].filter(pl.col("opportunity_id") == "ZNBS69V1")
    assert deal["created_ts"][0] is None and deal["outcome"][0] == "open"
    _invariants(data)


def test_a_won_date_only_file_becomes_won_deals():
    text = mapping_template(CRM / "generic_closed_deals")
    opps = tomllib.loads(text)["opportunities"]
    assert opps["outcome"] == {"value": "won"}
    assert (opps["close_ts"], opps["rep_id"], opps["opportunity_id"]) == (
        "won_date",
        "sr_id",
        "mql_id",
    )
    assert "account_id" not in opps  # has_company is a flag, not the account


def test_the_template_of_a_salesforce_folder_holds_value_maps_only_and_keeps_the_reader(
    tmp_path,
):
    folder = _copy("sf_no_decision", tmp_path)
    (folder / "mapping.toml").unlink()
    text = mapping_template(folder)
    parsed = tomllib.loads(text)
    assert set(parsed) == {"source", "values"}
    assert parsed["source"]["format"] == "salesforce"
    assert parsed["values"]["stage"] == {"Prospecting": "prospect"}
    assert parsed["values"]["outcome"]["No Decision / Non-Responsive"] == "no_decision"
    assert parsed["values"]["outcome"]["Price"] == "lost"
    (folder / "mapping.toml").write_text(text)  # as the docs suggest
    assert detect_format(folder).format == "salesforce"
    data = _load(folder)
    assert _outcomes(data)[1] == "no_decision"
    assert data.report["opportunities"].loaded == 8


def test_the_template_of_a_salesforce_task_folder_lists_types():
    parsed = tomllib.loads(mapping_template(CRM / "sf_task_types"))
    assert parsed["values"]["activity_type"] == {"Call": "call", "Email": "email", "Other": "other"}


# -- 8. The load report per source file ------------------------------------------------------


def test_a_bad_deal_and_its_derived_stage_rows_count_once(tmp_path):
    folder = tmp_path / "deals"
    folder.mkdir()
    (folder / "deals.csv").write_text(
        "Deal,Owner,Created,Stage,Amount\n"
        "d1,Ann,2024-01-02,Proposal,100\n"
        "d2,Ann,not a date,Proposal,200\n"
        "d3,Bob,2024-01-04,Won,300\n"
    )
    (folder / "mapping.toml").write_text(
        '[opportunities]\nfile = "deals.csv"\nopportunity_id = "Deal"\nrep_id = "Owner"\n'
        'created_ts = "Created"\nstage = "Stage"\namount = "Amount"\n'
        '[values.stage]\n"Proposal" = "proposal"\n'
    )
    data = _load(folder)
    _invariants(data)
    files = {f.file: f for f in data.report.files}
    deals = files["deals.csv"]
    assert (deals.read, deals.loaded, deals.quarantined) == (3, 2, {"bad_timestamp": 1})
    derived = files["(derived from deals.csv)"]
    assert derived.derived and "stage_history" in derived.tables
    frame = data.report.files_frame()
    assert frame.filter(~pl.col("derived"))["read"].sum() == 3  # the file's three rows
    text = data.report.to_text()
    assert text.startswith("3 export rows read from 1 file: 2 loaded, 1 quarantined")
    assert stage_history_source(data.report) == "derived"


def test_recorded_stage_history_is_said_to_be_recorded():
    assert stage_history_source(_load("salesforce").report) in ("recorded", "mixed")
    assert stage_history_source(_load("sf_task_types").report) == "none"


# -- End to end: load, then every command line command, on every fixture ---------------------

FIXTURES = (
    "sf_task_types",
    "sf_chosen_fields",
    "sf_empty_lookup",
    "sf_no_decision",
    "sf_zones_currency",
    "generic_both_directions",
)
COMMANDS = (
    ["load"],
    ["load", "--json"],
    ["detect"],
    ["mapping-template"],
    ["roe"],
    ["roe", "--by", "team"],
    ["deviants"],
    ["flow"],
    ["habits"],
    ["organisation"],
    ["findings"],
    ["intervention", "--id", "coaching"],
)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_every_command_runs_on_the_fixture_without_a_traceback(fixture, tmp_path, capsys):
    from effortlens.cli import main

    folder = CRM / fixture
    for command in COMMANDS:
        argv = [command[0], str(folder), *command[1:]]
        if command[0] not in ("load", "detect", "mapping-template"):
            argv += ["--cache-dir", str(tmp_path / "cache")]
        code = main(argv)
        out, err = capsys.readouterr()
        assert code in (0, 2), (argv, code, err)  # 2: a message the user can act on
        assert "Traceback" not in out + err, argv
        assert "Error:" not in err and "Exception" not in err, (argv, err)
        if command[0] != "intervention":
            assert code == 0, (argv, err)
        else:
            assert "coaching" in err  # says that no such intervention exists


@pytest.mark.parametrize("fixture", ["generic_snake_case", "generic_closed_deals"])
def test_every_command_runs_on_a_folder_loaded_through_its_filled_in_template(
    fixture, tmp_path, capsys
):
    from effortlens.cli import main

    folder = _copy(fixture, tmp_path)
    assert main(["mapping-template", str(folder)]) == 0
    text = capsys.readouterr().out.replace('"Engaging" = ""', '"Engaging" = "discovery"')
    (folder / "mapping.toml").write_text(text)
    for command in COMMANDS:
        argv = [command[0], str(folder), *command[1:]]
        if command[0] not in ("load", "detect", "mapping-template"):
            argv += ["--cache-dir", str(tmp_path / "cache")]
        code = main(argv)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, argv
        assert code == (2 if command[0] == "intervention" else 0), (argv, err)


# -- Units --------------------------------------------------------------------------------


def test_a_dated_rate_holds_from_its_start_until_the_next_start_exclusive():
    from effortlens.adapters.currency import rate_tables

    dated = pl.DataFrame(
        {
            "IsoCode": ["EUR", "EUR"],
            "StartDate": ["2024-01-01", "2024-04-01"],
            "NextStartDate": ["2024-04-01", "9999-12-31"],
            "ConversionRate": ["0.5", "0.25"],
        }
    )
    static = pl.DataFrame({"IsoCode": ["USD", "EUR"], "ConversionRate": ["1", "0.9"]})
    rates = rate_tables(static, dated)
    days = pl.Series([date(2024, 3, 31), date(2024, 4, 1), date(2023, 6, 1)])
    amount, how = rates.convert(
        pl.Series(["1", "1", "0.9"]), pl.Series(["EUR"] * 3), days, target="USD"
    )
    assert [float(a) for a in amount] == [2.0, 4.0, 1.0]
    assert how.to_list() == ["dated", "dated", "static"]
    # into a target that is not the corporate currency: through the corporate one
    amount, _ = rates.convert(pl.Series(["1"]), pl.Series(["USD"]), days[:1], target="EUR")
    assert float(amount[0]) == 0.5


def test_task_subtype_comes_before_type_and_type_before_the_other_evidence():
    from effortlens.adapters.reading import Context, Sheet
    from effortlens.adapters.task_types import task_types

    ctx = Context(settings=load_settings(), timezone="UTC")
    frame = pl.DataFrame(
        {
            "TaskSubtype": ["Call", "Task", "Task", None],
            "Type": ["Email", "Meeting", None, "Other"],
            "Subject": ["Email: x", "Call: y", "Call: z", "Demo for Acme"],
            "CallType": [None, "Outbound", None, None],
        }
    )
    types, steps = task_types(Sheet(Path("Task.csv"), frame), ctx)
    assert types.to_list() == ["call", "meeting", "call", "demo"]
    assert steps == {"TaskSubtype": 1, "Type": 1, "Subject prefix": 2}


def test_a_rep_zone_that_is_not_a_zone_falls_back_to_the_settings_zone():
    settings = load_settings()
    tables = {
        "reps": pl.DataFrame({"rep_id": ["a", "b"], "timezone": ["Mars/Olympus", "Asia/Tokyo"]}),
        "activities": pl.DataFrame(
            {
                "activity_id": ["1", "2"],
                "rep_id": ["a", "b"],
                "ts": [datetime(2024, 3, 5, 3, 30, tzinfo=UTC)] * 2,
                "activity_type": ["call", "call"],
            }
        ),
    }
    hours = enrich_tables(tables, settings=settings).activities.sort("activity_id")["hour"]
    assert hours.to_list() == [22, 12]  # New York (the settings'), Tokyo


def test_the_template_finds_a_time_column_by_its_values_when_no_header_names_it(tmp_path):
    (tmp_path / "log.csv").write_text(
        "Owner,Logged,Kind,Account\n"
        "Ann,05.03.2024 10:00,Call,Acme\n"
        "Bob,16.03.2024 11:00,Email,Globex\n"
    )
    parsed = tomllib.loads(mapping_template(tmp_path))
    assert parsed["activities"]["ts"] == "Logged"
    assert parsed["source"]["date_format"] == "D.M.YYYY"


def test_hubspot_no_decision_from_a_stage_or_a_custom_loss_reason(tmp_path):
    folder = _copy("hubspot", tmp_path)
    deals = (folder / "deals.csv").read_text(encoding="utf-8-sig")
    deals = deals.replace("Closed Lost Reason", "Lost Reason (custom)").replace(
        ",No decision,", ",No Decision / Non-Responsive,"
    )
    (folder / "deals.csv").write_text(deals, encoding="utf-8")
    outcomes = dict(
        _load(folder).tables["opportunities"].select("opportunity_id", "outcome").iter_rows()
    )
    assert outcomes["7002"] == "no_decision"


def test_start_here_counts_each_export_row_once(tmp_path):
    from effortlens_widgets.load_report import LoadReportView

    folder = tmp_path / "deals"
    folder.mkdir()
    (folder / "deals.csv").write_text(
        "Deal,Owner,Created,Stage\nd1,Ann,2024-01-02,Proposal\nd2,Ann,not a date,Proposal\n"
    )
    (folder / "mapping.toml").write_text(
        '[opportunities]\nfile = "deals.csv"\nopportunity_id = "Deal"\nrep_id = "Owner"\n'
        'created_ts = "Created"\nstage = "Stage"\n[values.stage]\n"Proposal" = "proposal"\n'
    )
    view = LoadReportView(value=_load(folder))
    assert view.headline.startswith("1 of 2 export rows were quarantined.")
    assert "from 1 file" in view.headline and "derived (not read)" in view.headline
    assert "all tables" not in view.frames["tables"]["table"]  # records are not summed
    files = view.frames["files"]
    assert files.filter(pl.col("file") == "all export files")["read"].to_list() == [2]
    assert files["went to"].str.ends_with("(derived, not read)").any()


def test_salesforce_files_cut_to_their_signature_and_essential_columns_still_load(tmp_path):
    """Every other column is optional: a Data Loader export of the fewest fields loads."""
    from effortlens.adapters.detect import SIGNATURES
    from effortlens.adapters.reading import find_column
    from effortlens.adapters.salesforce import ESSENTIAL

    folder = _copy("salesforce", tmp_path)
    detection = detect_format(folder)
    for kind, paths in detection.files.items():
        groups = [g for fmt, k, gs in SIGNATURES if k == kind for g in gs]
        groups += list(ESSENTIAL.get(kind, ()))
        for path in paths:
            rows = list(csv.reader(path.open(newline="", encoding="utf-8-sig")))
            keep = {find_column(rows[0], *g) for g in groups} - {None}
            at = [i for i, c in enumerate(rows[0]) if c in keep]
            with path.open("w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerows([r[i] for i in at] for r in rows)
    assert set(detect_format(folder).files) == set(detection.files)
    data = _load(folder)
    _invariants(data)
    assert data.report["activities"].loaded > 0 and data.report["opportunities"].loaded > 0


def test_a_task_dated_without_a_time_is_that_day_in_its_owners_zone(tmp_path):
    folder = _copy("sf_zones_currency", tmp_path)
    rows = list(csv.reader((folder / "Task.csv").open(newline="", encoding="utf-8")))
    head = rows[0]
    for column in ("CreatedDate", "CompletedDateTime"):
        rows[1][head.index(column)] = ""  # task 1 (Los Angeles) keeps only ActivityDate
    with (folder / "Task.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL).writerows(rows)
    data = _load(folder)
    task = data.tables["activities"].filter(pl.col("activity_id") == ID("00T5e00000TzC01"))
    assert task["ts"][0] == datetime(2024, 3, 5, 8, tzinfo=UTC)  # midnight in Los Angeles
    enriched = enrich_tables(data.tables, settings=data.settings)
    local = enriched.activities.filter(pl.col("activity_id") == ID("00T5e00000TzC01"))
    assert local["day"][0] == date(2024, 3, 5)


def test_the_template_of_a_hubspot_folder_loads_as_written(tmp_path):
    folder = _copy("hubspot", tmp_path)
    text = mapping_template(folder)
    parsed = tomllib.loads(text)
    assert set(parsed) == {"source", "values"} and parsed["source"]["format"] == "hubspot"
    assert parsed["values"]["stage"]["Qualified To Buy"] == "discovery"  # pipeline suffix gone
    assert parsed["values"]["outcome"]["No decision"] == "no_decision"
    before = _load(folder).report.to_dict()
    (folder / "mapping.toml").write_text(text)
    assert detect_format(folder).format == "hubspot"
    assert _load(folder).report.to_dict() == before  # the reader's own reading, unchanged
