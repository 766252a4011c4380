"""Salesforce exports: every object, every quirk, and the way through to the metrics.

The fixture folder ``tests/data/crm/salesforce`` holds hand-written rows under the real Data
Export header lines: 15- and 18-character ids mixed (one in lower case), an inactive owner, an
integration user, a misspelled stage and type, an auto-reply, a draft, a deleted task, an
open task, an invitee's copy of a group event, a deal exported twice, three currencies.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.adapters import load_any, salesforce_id18
from effortlens.settings import load_settings

CRM = Path(__file__).parent / "data" / "crm"
NOW = datetime(2024, 7, 1, tzinfo=UTC)
ID = salesforce_id18


@pytest.fixture(scope="module")
def data():
    return load_any(CRM / "salesforce", settings=load_settings(), now=NOW)


def _read(name: str) -> pl.DataFrame:
    return pl.read_csv(CRM / "salesforce" / name, infer_schema=False)


def test_the_load_report_counts_every_candidate_row_once(data):
    report = data.report
    for entry in report.tables:
        assert entry.loaded + entry.quarantined_total == entry.read
    assert report["activities"].quarantined == {
        "future_timestamp": 1,
        "child_event": 1,
        "deleted_record": 1,
        "not_completed": 2,
        "same_as_task": 1,
    }
    assert report["buyer_actions"].quarantined == {"no_account": 1, "not_buyer_action": 1}
    assert report["opportunities"].quarantined == {"duplicate_id": 1}


def test_nothing_is_lost_silently_every_export_row_is_loaded_or_quarantined(data):
    """Each row of Task, Event and EmailMessage ends in exactly one place."""
    loaded = set(data.tables["activities"]["activity_id"]) | set(
        data.tables["buyer_actions"]["action_id"]
    )
    for name in ("Task.csv", "Event.csv", "EmailMessage.csv"):
        ids = [ID(i) for i in _read(name)["Id"].to_list()]
        in_quarantine = data.quarantine.filter(pl.col("file") == name)
        assert in_quarantine["row"].is_unique().all(), name
        assert sum(i in loaded for i in ids) + in_quarantine.height == len(ids), name
    # and the routing note accounts for the email file
    assert "EmailMessage.csv: 11 rows -> buyer_actions 8, activities 3" in data.report.notes


def test_quarantined_rows_point_at_the_export_file_row_and_values(data):
    q = data.quarantine
    auto = q.filter(pl.col("reason") == "not_buyer_action").row(0, named=True)
    assert (auto["table"], auto["file"], auto["row"]) == ("buyer_actions", "EmailMessage.csv", 5)
    assert json.loads(auto["raw"])["Subject"] == "Automatic reply: Checking in"
    future = q.filter(pl.col("reason") == "future_timestamp").row(0, named=True)
    assert (future["file"], future["row"]) == ("Event.csv", 6)
    assert json.loads(future["raw"])["Subject"] == "Acme QBR"
    open_task = q.filter((pl.col("reason") == "not_completed") & (pl.col("file") == "Task.csv"))
    assert open_task["row"].to_list() == [15]
    assert "Not Started" in open_task["message"][0]


def test_15_and_18_character_ids_join_even_when_a_spreadsheet_changed_their_case(data):
    reps = data.tables["reps"]
    assert ID("0055e000001AvRd") in reps["rep_id"].to_list()
    # Task 1 names Ava by her 18-character id, task 3 by her 15-character one
    owners = data.tables["activities"].filter(
        pl.col("activity_id").is_in([ID("00T5e00000Tk001"), ID("00T5e00000Tk003")])
    )["rep_id"]
    assert owners.to_list() == [ID("0055e000001AvRd")] * 2
    # all her loaded effort: 8 done tasks, 1 past event, 1 email not logged as a task
    ava = data.tables["activities"].filter(pl.col("rep_id") == ID("0055e000001AvRd"))
    assert ava.height == 10
    # the lower-cased RelatedToId of an incoming email still finds its deal
    reply = data.tables["buyer_actions"].filter(pl.col("action_id") == ID("02s5e00000Em009"))
    assert reply["opportunity_id"].to_list() == [ID("0065e00000OpAc5")]
    assert reply["account_id"].to_list() == [ID("0015e00000AcMe1")]


def test_users_who_left_stay_reps_and_non_sellers_do_not(data):
    reps = data.tables["reps"].sort("rep_name")
    assert reps["rep_name"].to_list() == ["Ava Reed", "Ben Ortiz", "Cleo Park", "Dana Wu"]
    cleo = reps.filter(pl.col("rep_name") == "Cleo Park").row(0, named=True)
    assert str(cleo["exit_date"]) == "2024-05-31"
    assert cleo["team"] == "East Sales" and cleo["role"] == "Account Executive"
    assert cleo["manager_id"] == ID("0055e000001DaWu")
    # "Mid Market" and "Mid-Market" are one segment
    assert set(reps["segment"].to_list()) == {"Mid-Market", "Enterprise"}
    notes = " ".join(data.report.notes)
    assert "1 inactive users kept as reps who left" in notes
    assert "not used: own no task, event, deal or email (admins, integration users) 1" in notes


def test_activity_types_durations_and_the_misspelled_type(data):
    activities = data.tables["activities"]
    by_id = {r["activity_id"]: r for r in activities.iter_rows(named=True)}
    assert by_id[ID("00T5e00000Tk001")]["activity_type"] == "call"
    assert by_id[ID("00T5e00000Tk001")]["duration_min"] == 15.0  # 900 s
    assert by_id[ID("00T5e00000Tk002")]["activity_type"] == "email"  # TaskSubtype
    assert by_id[ID("00T5e00000Tk011")]["activity_type"] == "proposal"  # Type "Quote"
    assert by_id[ID("00T5e00000Tk018")]["activity_type"] == "internal"  # "Training"
    assert by_id[ID("00T5e00000Tk019")]["activity_type"] == "email"  # "Emial"
    assert by_id[ID("00U5e00000Ev003")]["activity_type"] == "meeting"  # blank Type
    assert by_id[ID("00U5e00000Ev004")]["activity_type"] == "demo"
    assert by_id[ID("00U5e00000Ev003")]["duration_min"] == 45.0
    assert any("'Emial' (1) read as 'email'" in n for n in data.report.notes)


def test_an_activity_with_a_contact_but_no_account_is_kept(data):
    lead = data.tables["activities"].filter(pl.col("activity_id") == ID("00T5e00000Tk014"))
    assert lead.select("contact_id", "account_id").rows() == [(ID("00Q5e00000LeAd1"), None)]


def test_incoming_emails_and_inbound_calls_are_buyer_replies(data):
    actions = data.tables["buyer_actions"]
    assert set(actions["action_type"]) == {"reply"}
    assert ID("00T5e00000Tk017") in actions["action_id"].to_list()  # CallType Inbound
    assert ID("00T5e00000Tk017") not in data.tables["activities"]["activity_id"].to_list()
    # the contact of an email is found by address in Contact.csv
    gil = actions.filter(pl.col("action_id") == ID("02s5e00000Em004"))
    assert gil["contact_id"].to_list() == [ID("0035e00000GilG2")]


def test_outcomes_close_dates_amounts_and_currencies(data):
    opps = data.tables["opportunities"].sort("opportunity_id")
    got = {r["opportunity_id"]: r for r in opps.iter_rows(named=True)}
    assert got[ID("0065e00000OpAc1")]["outcome"] == "won"
    assert got[ID("0065e00000OpGl2")]["outcome"] == "no_decision"  # Loss_Reason__c
    assert got[ID("0065e00000OpUm4")]["outcome"] == "lost"
    assert got[ID("0065e00000OpIn3")]["outcome"] == "open"
    # open deals: the expected close date is dropped, a blank amount stays blank
    assert got[ID("0065e00000OpIn3")]["close_ts"] is None
    assert got[ID("0065e00000OpIn3")]["amount"] is None
    assert got[ID("0065e00000OpGl2")]["currency"] == "EUR"
    assert got[ID("0065e00000OpAc5")]["currency"] == "GBP"
    note = next(n for n in data.report.notes if n.startswith("deal amounts are in"))
    assert "3 currencies" in note and "never added across currencies" in note


def test_stage_history_keeps_stage_changes_only(data):
    history = data.tables["stage_history"]
    acme = history.filter(pl.col("opportunity_id") == ID("0065e00000OpAc1")).sort("entered_ts")
    # the amount-only row and the Closed Won row are not stage entries; the typo is matched
    assert acme["stage"].to_list() == ["prospect", "discovery", "proposal", "negotiation"]
    notes = " ".join(data.report.notes)
    assert (
        "OpportunityHistory.csv: 18 rows -> stage_history 13, not used: entering a closed "
        "stage (the outcome is taken from Opportunity) 4, not used: amount or date changes "
        "within a stage 1"
    ) in notes
    # the deal missing from the history gets entries derived from its current stage
    renewal = history.filter(pl.col("opportunity_id") == ID("0065e00000OpGl6"))
    assert renewal["stage"].to_list() == ["prospect", "discovery"]


def test_field_history_gives_the_initial_stage_and_each_change(tmp_path):
    for name in ("User.csv", "Opportunity.csv"):
        shutil.copy(CRM / "salesforce" / name, tmp_path / name)
    (tmp_path / "OpportunityFieldHistory.csv").write_text(
        '"Id","IsDeleted","OpportunityId","CreatedById","CreatedDate","Field","DataType",'
        '"OldValue","NewValue"\n'
        '"0175e00000Fh001","false","0065e00000OpAc1","0055e000001AvRd",'
        '"2024-01-22T15:00:00.000Z","StageName","Picklist","Prospecting","Qualification"\n'
        '"0175e00000Fh002","false","0065e00000OpAc1","0055e000001AvRd",'
        '"2024-02-01T15:00:00.000Z","Amount","Currency","40000","48000"\n'
        '"0175e00000Fh003","false","0065e00000OpAc1AAF","0055e000001AvRd",'
        '"2024-02-12T15:00:00.000Z","StageName","Picklist","Qualification",'
        '"Proposal/Price Quote"\n'
        '"0175e00000Fh004","false","0065e00000OpAc1","0055e000001AvRd",'
        '"2024-03-28T15:00:00.000Z","StageName","Picklist","Proposal/Price Quote","Closed Won"\n'
    )
    data = load_any(tmp_path, settings=load_settings(), now=NOW)
    acme = data.tables["stage_history"].filter(pl.col("opportunity_id") == ID("0065e00000OpAc1"))
    expected = pl.DataFrame(
        {
            "stage": ["prospect", "discovery", "proposal"],
            "entered": ["2024-01-08 15:00", "2024-01-22 15:00", "2024-02-12 15:00"],
        }
    )
    assert_frame_equal(
        acme.sort("entered_ts").select(
            "stage", entered=pl.col("entered_ts").dt.strftime("%Y-%m-%d %H:%M")
        ),
        expected,
    )
    assert any(
        "OpportunityFieldHistory.csv: 4 rows -> stage_history (NewValue at CreatedDate) 2" in n
        for n in data.report.notes
    )


def test_a_mapping_adds_outcome_labels_and_stage_names(tmp_path):
    for path in (CRM / "salesforce").iterdir():
        shutil.copy(path, tmp_path / path.name)
    mapping = tmp_path / "mine.toml"
    mapping.write_text(
        '[source]\nformat = "salesforce"\n[values.outcome]\n"Price" = '
        '"no_decision"\n[values.stage]\n"Value Proposition" = "proposal"\n'
    )
    data = load_any(tmp_path, settings=load_settings(), mapping=mapping, now=NOW)
    outcome = data.tables["opportunities"].filter(
        pl.col("opportunity_id") == ID("0065e00000OpUm4")
    )["outcome"]
    assert outcome.to_list() == ["no_decision"]
    initech = data.tables["stage_history"].filter(pl.col("opportunity_id") == ID("0065e00000OpIn3"))
    assert initech.sort("entered_ts")["stage"].to_list()[-1] == "proposal"


def test_without_a_user_export_reps_are_the_owners(tmp_path):
    for name in ("Task.csv", "Opportunity.csv"):
        shutil.copy(CRM / "salesforce" / name, tmp_path / name)
    data = load_any(tmp_path, settings=load_settings(), now=NOW)
    assert set(data.tables["reps"]["rep_id"]) == {
        ID("0055e000001AvRd"),
        ID("0055e000001BeOz"),
        ID("0055e000001ClPk"),
    }
    assert data.report["activities"].quarantined.get("unknown_rep") is None
    assert any("no User export" in n for n in data.report.notes)


def test_input_files_are_not_changed(tmp_path):
    before = {p.name: p.read_bytes() for p in (CRM / "salesforce").iterdir()}
    load_any(CRM / "salesforce", settings=load_settings(), now=NOW)
    assert {p.name: p.read_bytes() for p in (CRM / "salesforce").iterdir()} == before


def test_end_to_end_salesforce_exports_give_response_rates_and_a_buyer_journey(data, tmp_path):
    from effortlens.deviance import win_counts
    from effortlens.enrich import enrich
    from effortlens.flow import flow_table
    from effortlens.roe import roe_table

    enriched = enrich(data, cache_dir=tmp_path)
    responded = dict(enriched.activities.select("activity_id", "responded").iter_rows())
    assert responded[ID("00T5e00000Tk002")] is True  # Ann replied the next morning
    assert responded[ID("00T5e00000Tk006")] is False  # Gil's only answer was an auto-reply
    roe = roe_table(enriched, by="rep").sort("rep_name")
    ava = roe.filter(pl.col("rep_name") == "Ava Reed").row(0, named=True)
    customer_facing = enriched.activities.filter(
        (pl.col("rep_id") == ID("0055e000001AvRd")) & pl.col("is_customer_facing")
    )
    assert ava["activities"] == customer_facing.height
    assert ava["response_rate"] == pytest.approx(customer_facing["responded"].mean())
    assert 0 < ava["response_rate"] < 1

    flow = flow_table(enriched).select("stage", "reached", "leaked", "no_decision")
    stages = {r["stage"]: r for r in flow.iter_rows(named=True)}
    assert stages["prospect"]["reached"] == 6  # every loaded deal
    assert stages["discovery"]["no_decision"] == 1  # Globex stalled after qualification
    assert stages["proposal"]["leaked"] == 1  # Umbrella lost on price after the quote
    wins = win_counts(data.tables["opportunities"]).sort("rep_id")
    assert wins.rows() == [
        (ID("0055e000001AvRd"), 1, 2),
        (ID("0055e000001BeOz"), 0, 1),
        (ID("0055e000001ClPk"), 1, 1),
    ]


def test_data_loader_upper_case_headers_are_read(tmp_path):
    for name in ("User.csv", "Opportunity.csv", "OpportunityHistory.csv"):
        lines = (CRM / "salesforce" / name).read_text().split("\n", 1)
        (tmp_path / name).write_text(lines[0].upper() + "\n" + lines[1])
    data = load_any(tmp_path, settings=load_settings(), now=NOW)
    assert data.report["opportunities"].loaded == 6
    acme = data.tables["stage_history"].filter(pl.col("opportunity_id") == ID("0065e00000OpAc1"))
    assert acme.height == 4
    assert "Ava Reed" in data.tables["reps"]["rep_name"].to_list()
