"""Issue 10: a bug in a step that works across several export files names the step and its
files, not only the folder.

The per-file readers name their file (tests/test_loading_guard.py). The steps after them read
several files at once: links between objects, currency rates, stage history, matching owners
to reps (or deriving reps), validation. Each step is made to fail here (a Polars panic, as a
bug would) and the load must say which step, and which files it read, in the message of
``load_any``, of ``effortlens load`` (exit 3) and of the apps.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import polars as pl
import pytest

from effortlens.adapters import load_any
from effortlens.cli import main
from effortlens.loading import LoadBug

CRM = Path(__file__).parent / "data" / "crm"

#: (fixture, adapter module, name patched in it, how the step starts, files it must name)
STEPS = [
    (
        "salesforce",
        "salesforce",
        "check_essential",
        "checking the columns they must have",
        ["Task.csv", "Opportunity.csv", "User.csv"],
    ),
    (
        "salesforce",
        "salesforce",
        "Links",
        "linking Task.csv, Event.csv and EmailMessage.csv to Opportunity.csv, Contact.csv",
        ["Opportunity.csv", "Contact.csv", "User.csv"],
    ),
    (
        "salesforce",
        "salesforce",
        "read_emails",
        "matching EmailMessage.csv to the tasks of Task.csv",
        ["EmailMessage.csv", "Task.csv"],
    ),
    (
        "sf_zones_currency",
        "salesforce",
        "rate_tables",
        "reading their currency rates",
        ["CurrencyType.csv", "DatedConversionRate.csv"],
    ),
    (
        "salesforce",
        "salesforce",
        "read_stage_history",
        "reading their stage history",
        ["OpportunityHistory.csv", "Opportunity.csv"],
    ),
    (
        "salesforce",
        "salesforce",
        "read_users",
        "matching the users of User.csv and UserRole.csv to the owners in",
        ["User.csv", "Task.csv", "Opportunity.csv"],
    ),
    (
        "salesforce",
        "salesforce",
        "assemble",
        "validating the tables they make",
        ["Task.csv", "Event.csv", "EmailMessage.csv", "Opportunity.csv", "User.csv"],
    ),
    (
        "hubspot",
        "hubspot",
        "Links",
        "linking emails.csv, calls.csv and meetings.csv to contacts.csv and deals.csv",
        ["contacts.csv", "deals.csv"],
    ),
    (
        "hubspot",
        "hubspot",
        "resolve_owner_names",
        "matching the owners of owners.csv to those named in",
        ["owners.csv", "emails.csv", "deals.csv"],
    ),
    (
        "hubspot",
        "hubspot",
        "assemble",
        "validating the tables they make",
        ["owners.csv", "emails.csv", "calls.csv", "meetings.csv", "deals.csv"],
    ),
    (
        "generic_both_directions",
        "generic",
        "reps_from_owners",
        "deriving reps from the owners they name",
        ["activity_log.csv"],
    ),
    (
        "pipeline",
        "generic",
        "_stage_entries",
        "deriving the deals' stage history",
        ["pipeline.csv"],
    ),
    (
        "pipeline",
        "generic",
        "assemble",
        "validating the tables they make",
        ["pipeline.csv"],
    ),
]


def _fail(monkeypatch, module: str, name: str) -> None:
    def fails(*args, **kwargs):
        raise pl.exceptions.PanicException("index out of bounds")

    monkeypatch.setattr(importlib.import_module(f"effortlens.adapters.{module}"), name, fails)


@pytest.mark.parametrize(
    ("fixture", "module", "name", "step", "files"), STEPS, ids=[f"{s[1]}.{s[2]}" for s in STEPS]
)
def test_a_bug_in_a_step_across_files_names_the_step_and_its_files(
    fixture, module, name, step, files, monkeypatch, capsys
):
    from effortlens_widgets.app import load_error_text

    folder = CRM / fixture
    _fail(monkeypatch, module, name)

    with pytest.raises(LoadBug) as caught:
        load_any(folder)

    bug = caught.value
    assert bug.step.startswith(step), bug.step
    for file in files:
        assert file in bug.where, (file, bug.where)
    assert str(folder) not in bug.where  # the files, not the folder
    assert str(bug).startswith(f"{bug.where}: EffortLens failed while {bug.step} (a bug: ")
    several = len(files) > 1
    assert "PanicException: index out of bounds" in str(bug)

    assert main(["load", str(folder)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(
        f"effortlens: {bug.where}: EffortLens failed on "
        f"{'these files' if several else 'this file'} while {bug.step} (a bug, "
    )
    assert "Traceback" not in err and "index out of bounds" not in err  # details on request

    page = load_error_text(bug)
    them = "them" if several else "it"
    assert page.startswith(f"{bug.where}: EffortLens failed on {them} while {bug.step} (a bug")


@pytest.mark.parametrize(("fixture", "drop"), [("salesforce", "User"), ("hubspot", "owners")])
def test_deriving_reps_without_a_user_export_names_the_files_of_the_owners(
    fixture, drop, tmp_path, monkeypatch
):
    folder = tmp_path / fixture
    shutil.copytree(CRM / fixture, folder)
    for path in folder.iterdir():
        if path.stem in (drop, "UserRole"):
            path.unlink()
    _fail(monkeypatch, fixture, "reps_from_owners")

    with pytest.raises(LoadBug) as caught:
        load_any(folder)

    assert caught.value.step.startswith("deriving reps from the owners they name")
    assert "deals.csv" in caught.value.where or "Opportunity.csv" in caught.value.where


def test_a_bug_in_one_file_still_names_that_file_alone(monkeypatch):
    _fail(monkeypatch, "salesforce", "read_events")

    with pytest.raises(LoadBug, match="^Event.csv: EffortLens failed on this file") as caught:
        load_any(CRM / "salesforce")

    assert (caught.value.where, caught.value.step, caught.value.subject) == (
        "Event.csv",
        "",
        "this file",
    )
