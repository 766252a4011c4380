"""Mappings: validation with clear errors, and the template guessed from headers."""

from __future__ import annotations

import re
import shutil
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from effortlens.adapters import (
    MappingError,
    load_any,
    load_mapping,
    mapping_template,
    mapping_template_text,
)
from effortlens.settings import load_settings

CRM = Path(__file__).parent / "data" / "crm"
NOW = datetime(2024, 7, 1, tzinfo=UTC)

DEALS = """[opportunities]
file = "deals.csv"
rep_id = "Owner"
created_ts = "Created"
stage = "Stage"
"""


def _mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my.mapping.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path, **kwargs) -> str:
    with pytest.raises(MappingError) as info:
        load_mapping(path, **kwargs)
    message = str(info.value)
    assert message.startswith(str(path)), message  # every message names the file
    return message


def test_a_valid_mapping_reads_columns_constants_and_formats(tmp_path):
    path = _mapping(
        tmp_path,
        DEALS + 'close_ts = { column = "Closed", format = "%d.%m.%Y" }\n'
        '[[activities]]\nfile = "calls.csv"\nrep_id = "User"\nts = "Date"\n'
        'activity_type = { value = "call" }\n'
        '[values.stage]\n"Qualifizierung" = "discovery"\n',
    )
    mapping = load_mapping(path)
    calls, opportunities = mapping.tables  # in canonical table order
    assert (calls.table, opportunities.table) == ("activities", "opportunities")
    assert opportunities.fields["close_ts"].date_format == "%d.%m.%Y"
    assert calls.fields["activity_type"].value == "call"
    assert mapping.values == {"stage": {"Qualifizierung": "discovery"}}


def test_invalid_toml_names_the_file(tmp_path):
    assert "not valid TOML" in _error(_mapping(tmp_path, "[opportunities\n"))


def test_an_unknown_section_suggests_the_right_one(tmp_path):
    message = _error(_mapping(tmp_path, '[oportunities]\nfile = "d.csv"\n'))
    assert (
        "[oportunities] is not a section" in message and "did you mean [opportunities]" in message
    )


def test_an_unknown_field_suggests_the_right_one(tmp_path):
    message = _error(_mapping(tmp_path, DEALS + 'ammount = "Value"\n'))
    assert "opportunities.ammount is not a field" in message and "did you mean amount" in message


def test_missing_required_fields_are_named_with_what_they_mean(tmp_path):
    message = _error(_mapping(tmp_path, '[opportunities]\nfile = "d.csv"\nrep_id = "Owner"\n'))
    assert "[opportunities] is missing required field(s)" in message
    assert "outcome or stage" in message
    # a deal without a created date is kept with an unknown age: the field may be left out
    assert "created_ts" not in message
    message = _error(_mapping(tmp_path, '[activities]\nfile = "a.csv"\nrep_id = "Owner"\n'))
    assert "ts (when" in message and "activity_type" in message
    message = _error(_mapping(tmp_path, '[activities]\nrep_id = "Owner"\n'))
    assert "[activities] needs file" in message


def test_bad_source_values_are_explained(tmp_path):
    assert "source.timezone must be an IANA time zone" in _error(
        _mapping(tmp_path, '[source]\ntimezone = "Berlin"\n' + DEALS)
    )
    assert "source.date_format must be one of" in _error(
        _mapping(tmp_path, '[source]\ndate_format = "DD-MON"\n' + DEALS)
    )
    assert "source.decimal must be" in _error(
        _mapping(tmp_path, '[source]\ndecimal = ";"\n' + DEALS)
    )
    assert "source.currency must be a three-letter code" in _error(
        _mapping(tmp_path, '[source]\ncurrency = "Euro"\n' + DEALS)
    )


def test_value_targets_are_checked(tmp_path):
    assert "values.outcome.Gewonnen must be one of ['open', 'won', 'lost', 'no_decision']" in (
        _error(_mapping(tmp_path, DEALS + '[values.outcome]\nGewonnen = "win"\n'))
    )
    assert "values.activity_type.Anruf must be one of" in _error(
        _mapping(tmp_path, DEALS + '[values.activity_type]\nAnruf = "phone"\n')
    )
    # stage targets depend on the settings' stages
    path = _mapping(tmp_path, DEALS + '[values.stage]\nAngebot = "quote"\n')
    load_mapping(path)
    assert "values.stage.Angebot must be one of the settings' stages" in _error(
        path, settings=load_settings()
    )


def test_every_value_left_empty_is_listed(tmp_path):
    message = _error(
        _mapping(tmp_path, DEALS + '[values.stage]\nA = ""\nB = "discovery"\n"C d" = ""\n')
    )
    assert "2 value(s) still to fill in" in message
    assert "values.stage.A" in message and 'values.stage."C d"' in message


def test_columns_are_checked_against_the_files_with_a_hint(tmp_path):
    (tmp_path / "deals.csv").write_text("Owner,Created On,Stage\nAnn,2024-01-02,Won\n")
    path = _mapping(tmp_path, DEALS)
    message = _error(path, folder=tmp_path)
    assert "opportunities.created_ts names column 'Created', which is not in deals.csv" in message
    assert "did you mean 'Created On'?" in message
    assert "Columns: Owner, Created On, Stage" in message
    path = _mapping(tmp_path, DEALS.replace("deals.csv", "deal.csv"))
    message = _error(path, folder=tmp_path)
    assert "names 'deal.csv', which is not in" in message and "deals.csv" in message


def test_a_mapping_without_tables_cannot_read_a_folder(tmp_path):
    (tmp_path / "deals.csv").write_text("Owner,Created,Stage\nAnn,2024-01-02,Won\n")
    path = _mapping(tmp_path, '[values.outcome]\nGewonnen = "won"\n')
    with pytest.raises(MappingError, match="names no table"):
        load_any(tmp_path, settings=load_settings(), mapping=path, format="mapping")


def test_the_template_guesses_fields_values_and_conventions_from_a_pipeline_export(tmp_path):
    shutil.copy(CRM / "pipeline" / "pipeline.csv", tmp_path / "pipeline.csv")
    text = mapping_template(tmp_path)
    assert text == mapping_template_text(tmp_path)
    data = tomllib.loads(text)
    deals = data["opportunities"]
    assert deals["file"] == "pipeline.csv"
    assert (
        deals["opportunity_id"],
        deals["rep_id"],
        deals["created_ts"],
        deals["stage"],
        deals["amount"],
        deals["currency"],
    ) == ("Deal-ID", "Verantwortlich", "Erstellt am", "Phase", "Betrag", "Währung")
    assert data["source"] == {"date_format": "D.M.YYYY", "decimal": ","}
    # every stage name in the file is listed, waiting for a target
    assert set(data["values"]["stage"]) == {
        "Gewonnen",
        "Keine Entscheidung",
        "Angebot",
        "Verloren",
        "Qualifizierung",
        "Verhandlung",
        "Erstgespräch",
    }
    assert set(data["values"]["stage"].values()) == {""}
    # which a filled-in copy no longer lacks
    with pytest.raises(MappingError, match="7 value"):
        load_mapping(_mapping(tmp_path, text))


def test_the_template_prefills_known_labels_and_flags_ambiguous_dates(tmp_path):
    (tmp_path / "deals.csv").write_text(
        "Opportunity ID,Opportunity Owner,Created Date,Stage,Close Date,Amount\n"
        "1,Ann,3/4/2024,Prospecting,,\n"
        "2,Bo,2/5/2024,Closed Won,4/6/2024,100\n"
        "3,Ann,1/2/2024,Negotiation/Review,,\n"
    )
    (tmp_path / "calls.csv").write_text("Date,User,Type,Duration\n2024-03-04,Ann,Phone,12\n")
    text = mapping_template(tmp_path)
    data = tomllib.loads(text)
    assert data["values"]["stage"] == {
        "Prospecting": "prospect",
        "Negotiation/Review": "negotiation",
    }
    assert data["values"]["outcome"] == {"Closed Won": "won"}
    assert data["values"]["activity_type"] == {"Phone": "call"}
    assert data["activities"]["activity_type"] == "Type"
    assert "date_format" not in data["source"]
    assert re.search(r"never have a day above 12", text)
    # the guessed mapping loads as it is
    path = tmp_path / "mapping.toml"
    path.write_text(text)
    loaded = load_any(tmp_path, settings=load_settings(), now=NOW)
    assert loaded.report["opportunities"].loaded == 3
    assert loaded.report["activities"].loaded == 1
    # and says how it read the ambiguous dates
    assert any("Created Date" in n and "M/D/YYYY" in n for n in loaded.report.notes)


def test_the_template_of_an_unrecognisable_folder_explains_what_to_write(tmp_path):
    (tmp_path / "notes.csv").write_text("Text\nhello\n")
    text = mapping_template(tmp_path)
    assert "files not matched to a table" in text and "notes.csv" in text
    assert "[opportunities]" in text  # a commented example
    tomllib.loads(text)
