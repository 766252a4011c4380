"""Detection: which format a folder holds, from names and header lines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from effortlens.adapters import detect_command_text, detect_format, load_any
from effortlens.loading import DataError
from effortlens.settings import load_settings

CRM = Path(__file__).parent / "data" / "crm"


def test_salesforce_exports_are_recognised_by_their_headers_whatever_their_names(tmp_path):
    for path in (CRM / "salesforce").iterdir():
        shutil.copy(path, tmp_path / f"export_{path.stem.lower()}_2024.csv")
    detection = detect_format(tmp_path)
    assert detection.format == "salesforce"
    kinds = {k: [p.name for p in v] for k, v in detection.files.items()}
    assert kinds["Opportunity"] == ["export_opportunity_2024.csv"]
    assert kinds["OpportunityHistory"] == ["export_opportunityhistory_2024.csv"]
    assert set(kinds) == {
        "User",
        "UserRole",
        "Contact",
        "Opportunity",
        "OpportunityHistory",
        "Task",
        "Event",
        "EmailMessage",
    }
    assert any("IsActive" in line for line in detection.evidence)
    assert detection.missing == ()


def test_salesforce_without_user_or_history_says_what_that_limits(tmp_path):
    shutil.copy(CRM / "salesforce" / "Task.csv", tmp_path / "Task.csv")
    detection = detect_format(tmp_path)
    assert detection.format == "salesforce"
    assert any("no User export" in m for m in detection.missing)
    assert any("no Opportunity export" in m for m in detection.missing)


def test_hubspot_label_and_internal_name_exports_are_recognised():
    labels = detect_format(CRM / "hubspot")
    assert labels.format == "hubspot"
    assert set(labels.files) == {"owners", "contacts", "deals", "emails", "calls", "meetings"}
    internal = detect_format(CRM / "hubspot_api")
    assert internal.format == "hubspot"
    assert set(internal.files) == {"owners", "deals", "emails", "meetings"}
    assert any("hs_meeting_outcome" in line for line in internal.evidence)


def test_a_folder_with_a_mapping_file_is_read_through_it():
    detection = detect_format(CRM / "pipeline")
    assert detection.format == "mapping"
    assert detection.files["mapping"][0].name == "mapping.toml"


def test_canonical_files_are_recognised_by_name(tmp_path):
    (tmp_path / "reps.csv").write_text("rep_id\nr1\n")
    (tmp_path / "Opportunities.csv").write_text(
        "opportunity_id,rep_id,created_ts,outcome\no1,r1,2024-01-02,open\n"
    )
    (tmp_path / "notes.txt").write_text("hello\n")
    detection = detect_format(tmp_path)
    assert detection.format == "canonical"
    assert detection.ignored == ("notes.txt (not named after a table)",)
    data = load_any(tmp_path, settings=load_settings())
    assert data.tables["opportunities"]["opportunity_id"].to_list() == ["o1"]


def test_nothing_recognised_lists_what_each_format_needs(tmp_path):
    (tmp_path / "export.csv").write_text("Name,Value\nA,1\n")
    detection = detect_format(tmp_path)
    assert detection.format is None
    text = detection.to_text()
    for needed in ("reps.csv", "Opportunity (Id, StageName", "Deal Stage", "mapping-template"):
        assert needed in text
    assert "export.csv" in text
    assert detect_command_text(tmp_path) == text
    with pytest.raises(DataError, match="no format recognised"):
        load_any(tmp_path, settings=load_settings())


def test_not_a_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        detect_format(tmp_path / "missing")


def test_a_mapping_of_value_maps_only_does_not_hide_the_crm_format(tmp_path):
    for path in (CRM / "salesforce").iterdir():
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "mapping.toml").write_text('[values.outcome]\n"Price" = "no_decision"\n')
    assert detect_format(tmp_path).format == "salesforce"
    data = load_any(tmp_path, settings=load_settings())
    # the folder's mapping applies: the deal lost on price now counts as no decision
    assert data.tables["opportunities"]["outcome"].to_list().count("no_decision") == 2


def test_the_format_can_be_overridden(tmp_path):
    # a Salesforce folder that also holds a generic mapping: the user says salesforce
    for path in (CRM / "salesforce").iterdir():
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "mapping.toml").write_text(
        '[opportunities]\nfile = "Opportunity.csv"\nrep_id = "OwnerId"\n'
        'created_ts = "CreatedDate"\nstage = "StageName"\n'
    )
    assert detect_format(tmp_path).format == "mapping"
    data = load_any(tmp_path, settings=load_settings(), format="salesforce")
    assert data.report["activities"].loaded > 0
    assert data.report["opportunities"].loaded == 6
    with pytest.raises(ValueError, match="format must be one of"):
        load_any(tmp_path, settings=load_settings(), format="excel")
