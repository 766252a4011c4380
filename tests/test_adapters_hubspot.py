"""HubSpot exports, with property labels (``hubspot/``) or internal names (``hubspot_api/``).

The label fixture writes owners by name in deals and activities and by id in the owners
export, times in the portal's zone, a German stage of a second pipeline, a decimal-comma
amount, a deal exported twice, an out-of-office reply, a forwarded email, an inbound call, a
cancelled call and meeting, a failed send, a no-show, a contact without a company and an
archived owner. The internal-name fixture writes epoch-millisecond times and a JSON header
block marking an automatic reply.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from effortlens.adapters import load_any
from effortlens.settings import load_settings

CRM = Path(__file__).parent / "data" / "crm"
NOW = datetime(2024, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def data():
    return load_any(CRM / "hubspot", settings=load_settings(), now=NOW)


def _by_id(frame: pl.DataFrame, key: str) -> dict[str, dict]:
    return {r[key]: r for r in frame.iter_rows(named=True)}


def test_the_load_report_holds_its_invariant_and_names_every_reason(data):
    for entry in data.report.tables:
        assert entry.loaded + entry.quarantined_total == entry.read
    assert data.report["activities"].quarantined == {"future_timestamp": 1, "not_completed": 3}
    assert data.report["buyer_actions"].quarantined == {"no_account": 1, "not_buyer_action": 1}
    assert data.report["opportunities"].quarantined == {"duplicate_id": 1}
    assert data.report["stage_history"].quarantined == {"unknown_stage": 1, "duplicate_id": 2}


def test_every_engagement_row_is_loaded_or_quarantined_exactly_once(data):
    loaded = set(data.tables["activities"]["activity_id"]) | set(
        data.tables["buyer_actions"]["action_id"]
    )
    for name in ("emails.csv", "calls.csv"):
        ids = pl.read_csv(CRM / "hubspot" / name, infer_schema=False)["Record ID"].to_list()
        quarantined = data.quarantine.filter(pl.col("file") == name).height
        assert sum(i in loaded for i in ids) + quarantined == len(ids), name
    # a held meeting is both an activity and a buyer action; every meeting row is one of
    # the two routes at least once
    meetings = pl.read_csv(CRM / "hubspot" / "meetings.csv", infer_schema=False)
    quarantined_rows = set(data.quarantine.filter(pl.col("file") == "meetings.csv")["row"])
    activity_ids = set(data.tables["activities"]["activity_id"])
    for row, record in enumerate(meetings["Record ID"].to_list(), start=1):
        assert record in activity_ids or row in quarantined_rows


def test_owners_named_by_name_or_id_are_the_same_reps(data):
    reps = data.tables["reps"].sort("rep_id")
    assert reps.select("rep_id", "rep_name").rows() == [
        ("101", "Ava Reed"),
        ("102", "Ben Ortiz"),
        ("103", "Cleo Park"),
    ]
    assert data.tables["activities"]["rep_id"].unique().sort().to_list() == ["101", "102", "103"]
    assert data.tables["opportunities"]["rep_id"].unique().sort().to_list() == ["101", "102", "103"]
    # "Inside Sales" / "Inside  sales" is one team, the archived owner left
    assert reps["team"].to_list() == ["Inside Sales", "Inside Sales", "Field Sales"]
    assert [str(d) if d else None for d in reps["exit_date"]] == [None, None, "2024-05-31"]


def test_emails_calls_and_meetings_become_effort_and_buyer_actions(data):
    activities = _by_id(data.tables["activities"], "activity_id")
    actions = _by_id(data.tables["buyer_actions"], "action_id")
    assert actions["81002"]["action_type"] == "reply"  # incoming email
    assert actions["81007"]["action_type"] == "reply"  # forwarded email
    assert actions["82003"]["action_type"] == "reply"  # inbound call
    assert "82003" not in activities
    assert actions["83001"]["action_type"] == "meeting_held" and actions["83001"]["is_verifier"]
    assert activities["83001"]["activity_type"] == "meeting"
    assert activities["83002"]["activity_type"] == "demo"  # Activity type "Demo"
    assert "83003" in activities and "83003" not in actions  # no-show: effort, no response
    assert activities["82001"]["duration_min"] == 15.0  # 00:15:00
    assert activities["82002"]["duration_min"] == 10.0  # 600000 ms
    assert activities["83001"]["duration_min"] == 60.0  # start to end
    # local portal time (New York) read as UTC
    assert activities["81001"]["ts"] == datetime(2024, 1, 16, 13, 30, tzinfo=UTC)


def test_companies_come_from_the_association_else_the_contact(data):
    activities = _by_id(data.tables["activities"], "activity_id")
    assert activities["81006"]["account_id"] == "9003"  # no company column value: contact's
    assert activities["81008"]["contact_id"] == "5004"  # contact without a company: kept
    assert activities["81008"]["account_id"] is None
    reason = data.quarantine.filter(pl.col("row") == 9, pl.col("file") == "emails.csv")["reason"]
    assert reason.to_list() == ["no_account"]  # ...but a buyer action needs an account


def test_set_aside_rows_say_why(data):
    q = data.quarantine
    reasons = dict(q.select(pl.format("{}:{}", "file", "row"), "reason").iter_rows())
    assert reasons["emails.csv:5"] == "not_buyer_action"  # Out of Office
    assert reasons["emails.csv:10"] == "not_completed"  # send status Failed
    assert reasons["calls.csv:4"] == "not_completed"  # Canceled
    assert reasons["meetings.csv:4"] == "not_completed"  # Canceled
    ooo = q.filter(pl.col("reason") == "not_buyer_action").row(0, named=True)
    assert json.loads(ooo["raw"])["Email subject"] == "Out of Office: RE: Pilot"


def test_deals_outcomes_amounts_and_the_date_entered_columns(data):
    deals = _by_id(data.tables["opportunities"], "opportunity_id")
    assert deals["7001"]["outcome"] == "won"
    assert deals["7002"]["outcome"] == "no_decision"  # Closed Lost Reason "No decision"
    assert deals["7003"]["outcome"] == "open" and deals["7003"]["close_ts"] is None
    assert deals["7005"]["amount"] == 9500.0 and deals["7005"]["currency"] == "EUR"
    history = data.tables["stage_history"]
    acme = history.filter(pl.col("opportunity_id") == "7001").sort("entered_ts")["stage"]
    assert acme.to_list() == ["prospect", "discovery", "evaluation", "negotiation"]
    initech = history.filter(pl.col("opportunity_id") == "7003").sort("entered_ts")["stage"]
    assert initech.to_list() == ["prospect", "discovery"]
    notes = " ".join(data.report.notes)
    assert "entries into closed won/lost not used" in notes
    assert "Angebot versendet (DACH)" in notes


def test_a_mapping_names_the_stages_of_a_custom_pipeline(tmp_path):
    for path in (CRM / "hubspot").iterdir():
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "mapping.toml").write_text('[values.stage]\n"Angebot versendet" = "proposal"\n')
    data = load_any(tmp_path, settings=load_settings(), now=NOW)
    assert data.report["stage_history"].quarantined == {"duplicate_id": 2}
    entry = data.tables["stage_history"].filter(pl.col("opportunity_id") == "7005")
    assert entry["stage"].to_list() == ["proposal"]


def test_internal_names_epoch_times_and_json_headers():
    data = load_any(CRM / "hubspot_api", settings=load_settings(), now=NOW)
    activities = _by_id(data.tables["activities"], "activity_id")
    assert activities["93001"]["ts"] == datetime(2024, 1, 24, 15, 0, tzinfo=UTC)
    assert activities["93001"]["duration_min"] == 60.0
    actions = _by_id(data.tables["buyer_actions"], "action_id")
    assert "91003" not in actions  # Auto-Submitted: auto-replied
    assert actions["93001"]["action_type"] == "meeting_held"
    assert "93002" not in actions  # NO_SHOW
    deals = _by_id(data.tables["opportunities"], "opportunity_id")
    assert deals["7102"]["outcome"] == "lost"  # hs_is_closed, not won, reason not no-decision
    assert activities["91004"]["contact_id"] == "5002"  # the first of "5002;5006"
    assert any("several contacts" in n for n in data.report.notes)


def test_without_an_owners_export_reps_are_the_named_owners(tmp_path):
    for name in ("deals.csv", "emails.csv"):
        shutil.copy(CRM / "hubspot" / name, tmp_path / name)
    data = load_any(tmp_path, settings=load_settings(), now=NOW)
    assert set(data.tables["reps"]["rep_id"]) == {"Ava Reed", "Ben Ortiz", "Cleo Park"}
    assert any("no owners export" in n for n in data.report.notes)


def test_deals_without_date_entered_columns_get_derived_entries(tmp_path):
    (tmp_path / "deals.csv").write_text(
        "Record ID,Deal Name,Deal Stage,Deal owner,Create Date,Close Date,Amount\n"
        "1,A,Presentation Scheduled,Ann,2024-01-02 10:00,,\n"
        "2,B,Closed Won,Ann,2024-01-03 10:00,2024-03-01 10:00,100\n"
        "3,C,Closed Lost,Bo,2024-01-04 10:00,2024-02-01 10:00,50\n"
    )
    data = load_any(tmp_path, settings=load_settings(), now=NOW)
    entries = data.tables["stage_history"].sort("opportunity_id", "entered_ts", "stage")
    assert entries.select("opportunity_id", "stage").rows() == [
        ("1", "evaluation"),
        ("1", "prospect"),
        ("2", "prospect"),
        ("2", "commit"),
    ]  # deal 3 reads "Closed Lost": where it was lost is unknown, so it gets no entry
    assert entries["derived"].all()
    assert any("stage history derived from 3 deals" in n for n in data.report.notes)


def test_end_to_end_hubspot_exports_give_response_rates_and_a_buyer_journey(data, tmp_path):
    from effortlens.enrich import enrich
    from effortlens.flow import flow_table
    from effortlens.roe import roe_table

    enriched = enrich(data, cache_dir=tmp_path)
    responded = dict(enriched.activities.select("activity_id", "responded").iter_rows())
    assert responded["81001"] is True  # Ann replied
    assert responded["81003"] is True  # Gil replied (the later out-of-office does not count)
    assert responded["82001"] is False
    roe = roe_table(enriched, by="team").sort("team")
    assert roe["team"].to_list() == ["Field Sales", "Inside Sales"]
    inside = roe.row(1, named=True)
    assert inside["activities"] == 8
    assert 0 < inside["response_rate"] < 1
    flow = {r["stage"]: r for r in flow_table(enriched).iter_rows(named=True)}
    assert flow["prospect"]["reached"] == 4  # the DACH deal's only stage is unknown
    assert flow["discovery"]["no_decision"] == 1


def test_a_deal_with_no_date_entered_value_still_gets_derived_entries(tmp_path):
    (tmp_path / "deals.csv").write_text(
        "Record ID,Deal Stage,Deal owner,Create Date,Close Date,"
        '"Date entered ""Qualified To Buy (Sales Pipeline)"""\n'
        "1,Qualified To Buy,Ann,2024-01-02 10:00,,2024-01-09 10:00\n"
        "2,Presentation Scheduled,Ann,2024-01-03 10:00,,\n"
    )
    data = load_any(tmp_path, settings=load_settings(), now=NOW)
    entries = data.tables["stage_history"].sort("opportunity_id", "stage")
    assert entries.select("opportunity_id", "stage").rows() == [
        ("1", "discovery"),
        ("2", "evaluation"),
        ("2", "prospect"),
    ]
    assert any("only the deals that have no entry" in n for n in data.report.notes)
