"""Any CSV through a mapping, pipeline-only exports first: derivations and real-world mess."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.adapters import load_any, load_command_text
from effortlens.loading import DataError
from effortlens.settings import load_settings

CRM = Path(__file__).parent / "data" / "crm"
NOW = datetime(2024, 7, 1, tzinfo=UTC)

DEALS_MAPPING = """[opportunities]
file = "deals.csv"
opportunity_id = "Id"
rep_id = "Owner"
created_ts = "Created"
close_ts = "Closed"
amount = "Amount"
stage = "Stage"
"""


def _load(tmp_path: Path, files: dict[str, str], mapping: str, **kwargs):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "mapping.toml").write_text(mapping, encoding="utf-8")
    return load_any(tmp_path, settings=load_settings(), now=NOW, **kwargs)


@pytest.fixture(scope="module")
def pipeline():
    return load_any(CRM / "pipeline", settings=load_settings(), now=NOW)


def test_a_german_pipeline_export_loads_through_its_mapping(pipeline):
    opps = pipeline.tables["opportunities"].sort("opportunity_id")
    assert opps["outcome"].to_list() == [
        "won",
        "no_decision",
        "open",
        "lost",
        "won",
        "open",
        "open",
        "open",
        "lost",
    ]
    # Latin-1, ";" separated, D.M.YYYY in Berlin time, decimal commas, blanks on open deals
    first = opps.row(0, named=True)
    assert first["created_ts"] == datetime(2024, 1, 7, 23, 0, tzinfo=UTC)
    assert first["amount"] == 48000.0
    initech = opps.filter(pl.col("opportunity_id") == "P-103").row(0, named=True)
    assert (initech["amount"], initech["close_ts"]) == (None, None)
    # "anna becker" and "Anna Becker" are one rep
    assert sorted(pipeline.tables["reps"]["rep_id"]) == ["Anna Becker", "Jonas Weber", "Lena Koch"]
    assert pipeline.report["opportunities"].quarantined == {"duplicate_id": 1}


def test_stage_history_is_derived_exactly_as_documented(pipeline):
    history = pipeline.tables["stage_history"]
    opps = pipeline.tables["opportunities"]
    created = dict(opps.select("opportunity_id", "created_ts").iter_rows())
    closed = dict(opps.select("opportunity_id", "close_ts").iter_rows())
    got = {
        (r["opportunity_id"], r["stage"]): r["entered_ts"] for r in history.iter_rows(named=True)
    }
    # every entry is marked derived (the flow times none of them)
    assert history["derived"].all()
    # every deal but the losses at no known stage enters the first stage when created
    unknown_losses = {"P-102", "P-104", "P-109"}
    assert {o for o, s in got if s == "prospect"} == set(created) - unknown_losses
    assert all(got[(o, "prospect")] == created[o] for o in set(created) - unknown_losses)
    # a known current stage is entered at creation (no stage date mapped)
    assert got[("P-103", "proposal")] == created["P-103"]
    assert got[("P-107", "negotiation")] == created["P-107"]
    # a won deal with no stage enters the last stage at its close
    assert got[("P-101", "commit")] == closed["P-101"]
    # lost and no-decision deals with no stage known get no entry (lost, stage unknown)
    assert not [s for o, s in got if o in unknown_losses]
    # a deal created at the first stage (P-108, "Erstgespräch") has no second entry
    assert [s for o, s in got if o == "P-108"] == ["prospect"]
    assert history.height == 6 + 3 + 2


def test_flow_and_win_rates_work_on_a_pipeline_only_export(pipeline, tmp_path):
    from effortlens.deviance import win_counts
    from effortlens.enrich import enrich
    from effortlens.flow import flow_table

    enriched = enrich(pipeline, cache_dir=tmp_path)
    assert enriched.activities.height == 0
    flow = {r["stage"]: r for r in flow_table(enriched).iter_rows(named=True)}
    assert flow["prospect"]["reached"] == 9
    # two lost, one no decision, whose stage the export does not give: not leaks at prospect
    assert flow["prospect"]["lost_stage_unknown"] == 3
    assert flow["prospect"]["leaked"] == 0 and flow["prospect"]["no_decision"] == 0
    assert flow["commit"]["reached"] == 2
    wins = dict((r[0], r[1:]) for r in win_counts(pipeline.tables["opportunities"]).rows())
    assert wins == {"Anna Becker": (1, 2), "Jonas Weber": (0, 1), "Lena Koch": (1, 2)}
    from effortlens.deviance import rep_deviance

    deviance = rep_deviance(enriched, metric="win_rate").sort("rep_id")
    assert deviance["volume"].to_list() == [2, 1, 2]  # closed deals
    assert not deviance["eligible"].any()  # too few closed deals to call anyone a deviant


def test_stage_date_columns_give_real_entry_times(tmp_path):
    data = _load(
        tmp_path,
        {
            "deals.csv": (
                "Id,Owner,Created,Stage,Qualified,Proposal sent\n"
                "d1,Ann,2024-01-02,Proposal,2024-01-10,2024-02-01\n"
                "d2,Ann,2024-01-05,Qualified,2024-01-20,\n"
            )
        },
        '[opportunities]\nfile = "deals.csv"\nopportunity_id = "Id"\nrep_id = "Owner"\n'
        'created_ts = "Created"\nstage = "Stage"\n'
        'stage_dates = { discovery = "Qualified", "Proposal" = "Proposal sent" }\n'
        '[values.stage]\n"Qualified" = "discovery"\n',
    )
    history = data.tables["stage_history"].sort("opportunity_id", "entered_ts")
    expected = pl.DataFrame(
        {
            "opportunity_id": ["d1", "d1", "d2"],
            "stage": ["discovery", "proposal", "discovery"],
            "day": ["2024-01-10", "2024-02-01", "2024-01-20"],
        }
    )
    assert_frame_equal(
        history.select(
            "opportunity_id",
            "stage",
            day=pl.col("entered_ts")
            .dt.convert_time_zone("America/New_York")
            .dt.strftime("%Y-%m-%d"),
        ),
        expected,
    )


def test_ambiguous_slash_dates_are_reported_not_guessed_silently(tmp_path):
    data = _load(
        tmp_path,
        {
            "deals.csv": (
                "Id,Owner,Created,Closed,Amount,Stage\n"
                "d1,Ann,3/4/2024,,,Prospecting\n"
                "d2,Ann,5/6/2024,,,Prospecting\n"
            )
        },
        DEALS_MAPPING,
    )
    note = next(n for n in data.report.notes if "deals.csv, Created" in n)
    assert "M/D/YYYY" in note


def test_a_date_contradicting_its_columns_order_is_quarantined(tmp_path):
    data = _load(
        tmp_path,
        {
            "deals.csv": (
                "Id,Owner,Created,Closed,Amount,Stage\n"
                "d1,Ann,25/01/2024,,,Prospecting\n"
                "d2,Ann,26/01/2024,,,Prospecting\n"
                "d3,Ann,01/27/2024,,,Prospecting\n"
            )
        },
        DEALS_MAPPING,
    )
    q = data.quarantine.filter(pl.col("table") == "opportunities")
    assert q.select("row", "reason").rows() == [(3, "bad_timestamp")]
    assert "01/27/2024" in q["message"][0]
    assert any("mix day-first and month-first" in n for n in data.report.notes)


def test_the_mapping_date_format_decides_and_excel_serials_are_read(tmp_path):
    data = _load(
        tmp_path,
        {
            "deals.csv": (
                "Id,Owner,Created,Closed,Amount,Stage\n"
                "d1,Ann,03/04/2024,,,Prospecting\n"
                "d2,Ann,45327,,,Prospecting\n"
            )
        },
        '[source]\ndate_format = "D/M/YYYY"\ntimezone = "UTC"\n' + DEALS_MAPPING,
    )
    created = data.tables["opportunities"].sort("opportunity_id")["created_ts"].to_list()
    assert created == [datetime(2024, 4, 3, tzinfo=UTC), datetime(2024, 2, 5, tzinfo=UTC)]


def test_a_column_can_carry_its_own_strftime_format(tmp_path):
    data = _load(
        tmp_path,
        {
            "deals.csv": (
                "Id,Owner,Created,Closed,Amount,Stage\nd1,Ann,2024-01-02,2024|03|05,10,Closed Won\n"
            )
        },
        DEALS_MAPPING.replace(
            'close_ts = "Closed"', 'close_ts = { column = "Closed", format = "%Y|%m|%d" }'
        )
        + '[source]\ntimezone = "UTC"\n',
    )
    assert data.tables["opportunities"]["close_ts"].to_list() == [datetime(2024, 3, 5, tzinfo=UTC)]


def test_outcome_labels_in_any_language_and_misspelled_stages(tmp_path):
    data = _load(
        tmp_path,
        {
            "deals.csv": (
                "Id,Owner,Created,Closed,Amount,Stage,Status\n"
                "d1,Ann,2024-01-02,2024-03-01,10,Angebot,Gewonnen\n"
                "d2,Ann,2024-01-02,2024-03-01,10,Angebt,Verloren\n"
                "d3,Ann,2024-01-02,,10,Angebot,Offen\n"
            )
        },
        DEALS_MAPPING + 'outcome = "Status"\n[values.stage]\nAngebot = "proposal"\n'
        '[values.outcome]\nGewonnen = "won"\nVerloren = "lost"\nOffen = "open"\n',
    )
    opps = data.tables["opportunities"].sort("opportunity_id")
    assert opps["outcome"].to_list() == ["won", "lost", "open"]
    stages = data.tables["stage_history"].filter(pl.col("stage") != "prospect")
    assert stages.sort("opportunity_id")["stage"].to_list() == ["proposal"] * 3
    assert any("'Angebt' (1) read as 'angebot'" in n for n in data.report.notes)


def test_an_unmapped_stage_is_quarantined_with_its_name(tmp_path):
    data = _load(
        tmp_path,
        {"deals.csv": ("Id,Owner,Created,Closed,Amount,Stage\nd1,Ann,2024-01-02,,,Verhandlung\n")},
        DEALS_MAPPING,
    )
    q = data.quarantine.filter(pl.col("table") == "stage_history")
    assert q["reason"].to_list() == ["unknown_stage"]
    assert "Verhandlung" in q["message"][0]


def test_rows_repeated_verbatim_without_an_id_column_are_duplicates(tmp_path):
    mapping = DEALS_MAPPING.replace('opportunity_id = "Id"\n', "")
    data = _load(
        tmp_path,
        {
            "deals.csv": (
                "Owner,Created,Closed,Amount,Stage\n"
                "Ann,2024-01-02,,10,Prospecting\n"
                "Ann,2024-01-02,,10,Prospecting\n"
                "Ann,2024-01-03,,10,Prospecting\n"
            )
        },
        mapping,
    )
    assert data.report["opportunities"].loaded == 2
    assert data.report["opportunities"].quarantined == {"duplicate_id": 1}


def test_several_currencies_are_reported_and_never_summed_without_rates(tmp_path):
    data = _load(
        tmp_path,
        {
            "deals.csv": (
                "Id,Owner,Created,Closed,Amount,Stage\n"
                "d1,Ann,2024-01-02,,$1,200.00,Prospecting\n"
                "d2,Ann,2024-01-02,,EUR 300,Prospecting\n"
                "d3,Ann,2024-01-02,,250,Prospecting\n"
            ).replace("$1,200.00", '"$1,200.00"')
        },
        '[source]\ncurrency = "GBP"\n' + DEALS_MAPPING,
    )
    opps = data.tables["opportunities"].sort("opportunity_id")
    assert opps.select("amount", "currency").rows() == [
        (1200.0, "USD"),
        (300.0, "EUR"),
        (250.0, "GBP"),
    ]
    note = next(n for n in data.report.notes if n.startswith("deal amounts"))
    assert "3 currencies" in note and "never added across currencies" in note


def test_activities_files_with_constants_durations_and_a_reps_file(tmp_path):
    data = _load(
        tmp_path,
        {
            "calls.csv": "When,Who,Length,Company,Contact\n"
            "2024-03-04 10:00,ann@x.example,1:30,Acme,\n"
            "2024-03-05 10:00,Ann Archer,12,,c-9\n",
            "team.csv": "Email,Full name,Team,Segment\n"
            "ann@x.example,Ann Archer,West,SMB\nbo@x.example,Bo Berg,West ,smb\n",
        },
        '[[activities]]\nfile = "calls.csv"\nts = "When"\nrep_id = "Who"\n'
        'duration_min = "Length"\naccount_id = "Company"\ncontact_id = "Contact"\n'
        'activity_type = { value = "Call" }\n'
        '[reps]\nfile = "team.csv"\nrep_id = "Email"\nrep_name = "Full name"\nteam = "Team"\n'
        'segment = "Segment"\n',
    )
    calls = data.tables["activities"].sort("ts")
    assert calls["activity_type"].to_list() == ["call", "call"]
    assert calls["duration_min"].to_list() == [90.0, 12.0]
    # an owner written as the rep's name is that rep
    assert calls["rep_id"].to_list() == ["ann@x.example", "ann@x.example"]
    assert calls["contact_id"].to_list() == [None, "c-9"]  # no account: kept
    reps = data.tables["reps"].sort("rep_id")
    assert reps["segment"].to_list() == ["SMB", "SMB"]
    assert any("segment spellings" in n for n in data.report.notes)
    # each synthesized activity id is stable and the report invariant holds
    assert calls["activity_id"].str.starts_with("row-").all()
    for entry in data.report.tables:
        assert entry.loaded + entry.quarantined_total == entry.read


def test_the_load_command_prints_the_report_for_any_source(tmp_path):
    text = load_command_text(CRM / "pipeline", now=NOW)
    assert "opportunities" in text and "notes:" in text
    import json

    payload = json.loads(load_command_text(CRM / "salesforce", as_json=True, now=NOW))
    assert payload["buyer_actions"]["quarantined"] == {"no_account": 1, "not_buyer_action": 1}
    assert set(payload) == {
        "reps",
        "activities",
        "buyer_actions",
        "opportunities",
        "stage_history",
        "interventions",
        "intervention_participants",
    }
    with pytest.raises(DataError):
        load_command_text(tmp_path)


def test_a_mapped_stage_history_file_is_used_as_it_is(tmp_path):
    data = _load(
        tmp_path,
        {
            "deals.csv": "Id,Owner,Created,Closed,Amount,Stage\n"
            "d1,Ann,2024-01-02,2024-03-01,10,Closed Won\n",
            "moves.csv": "Deal,Phase,Am\nd1,Qualifizierung,2024-01-09\nd1,Angebot,2024-02-01\n"
            "d9,Angebot,2024-02-01\n",
        },
        DEALS_MAPPING + '[stage_history]\nfile = "moves.csv"\nopportunity_id = "Deal"\n'
        'stage = "Phase"\nentered_ts = "Am"\n'
        '[values.stage]\nQualifizierung = "discovery"\nAngebot = "proposal"\n',
    )
    history = data.tables["stage_history"].sort("entered_ts")
    assert history.select("opportunity_id", "stage").rows() == [
        ("d1", "discovery"),
        ("d1", "proposal"),
    ]
    assert data.report["stage_history"].quarantined == {"unknown_reference": 1}  # deal d9
