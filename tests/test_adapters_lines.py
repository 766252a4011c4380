"""Issue 10: each export file's physical lines, counted apart from the parser, in the report.

For every text file a CRM load reads (Salesforce, HubSpot, mapped CSVs), the load report
carries its physical lines of data (:func:`effortlens.loading.lines.count_lines`) beside the
rows the reader produced: physical = rows + blank lines + lines inside quoted values. Any
difference is flagged ("LINES NOT READ"), as for canonical tables.

Fixtures: ``hubspot_line_ends`` (calls.csv with bare-CR line ends, deals.csv CRLF with a deal
name over two lines, emails.csv with an unbalanced quote that swallows lines 4-9, meetings.csv
with an empty line) and ``sf_line_ends`` (Task.csv CRLF with a description over three lines,
Event.csv with bare-CR line ends). The expected line counts come from the bytes (a regular
expression over the line ends), not from the loader.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from effortlens.adapters import detect_format, load_any, reading
from effortlens.adapters.source import load_command_text
from effortlens.cli import main

CRM = Path(__file__).parent / "data" / "crm"

#: Fixtures that load as they are, each with its format's files.
FOLDERS = [
    "salesforce",
    "sf_line_ends",
    "sf_task_types",
    "sf_zones_currency",
    "sf_empty_lookup",
    "sf_no_decision",
    "sf_surplus_fields",
    "sf_chosen_fields",
    "hubspot",
    "hubspot_api",
    "hubspot_line_ends",
    "generic_both_directions",
    "pipeline",
]


def physical_lines(path: Path) -> int:
    """Lines of data of a text file from its bytes: every CRLF, CR or LF ends a line, a last
    line without an end counts, the header's line does not."""
    data = path.read_bytes()
    ends = len(re.findall(rb"\r\n|\r|\n", data))
    tail = bool(data) and not re.search(rb"(\r\n|\r|\n)\Z", data)
    return ends + int(tail) - 1


def _files(report) -> dict:
    return {f.file: f for f in report.files if not f.derived}


@pytest.mark.parametrize("name", FOLDERS)
def test_every_export_text_file_read_shows_its_physical_lines(name):
    folder = CRM / name
    report = load_any(folder).report
    files = _files(report)
    detection = detect_format(folder)
    if detection.format in ("salesforce", "hubspot"):  # every file of the export is listed
        read = {p.name for paths in detection.files.values() for p in paths}
        assert read <= set(files)
    assert files
    for file, entry in files.items():
        lines = entry.lines
        assert lines is not None, file  # all fixtures are text
        assert lines.physical == physical_lines(folder / file), file
        assert lines.physical == lines.rows + lines.blank + lines.quoted, file
        assert lines.unaccounted == 0
        assert entry.read <= lines.rows  # rows of use to no table are not read
    assert report.lines_not_read() == []
    assert "LINES NOT READ" not in report.to_text()


def test_line_ends_quotes_and_blank_lines_are_each_accounted_for():
    folder = CRM / "hubspot_line_ends"
    assert b"\r" in (folder / "calls.csv").read_bytes()
    assert b"\n" not in (folder / "calls.csv").read_bytes()
    assert (folder / "deals.csv").read_bytes().count(b"\r\n") == physical_lines(
        folder / "deals.csv"
    ) + 1
    data = load_any(folder)
    files = _files(data.report)
    plain = _files(load_any(CRM / "hubspot").report)
    planted = {"calls.csv": (0, 0), "deals.csv": (0, 1), "emails.csv": (0, 5)}
    planted["meetings.csv"] = (1, 0)
    for file, (blank, quoted) in planted.items():
        lines = files[file].lines
        assert (lines.blank, lines.quoted) == (blank, quoted), file
        assert lines.rows == physical_lines(folder / file) - blank - quoted
    # the bare-CR and CRLF files read every record, as the LF originals do
    for file in ("calls.csv", "deals.csv", "meetings.csv"):
        assert files[file].read == plain[file].read, file
    # the unbalanced quote: lines 4-9 read as one row, set aside; the others load
    merged = data.quarantine.filter(pl.col("reason") == "merged_lines")
    assert merged.select("file", "row").rows() == [("emails.csv", 3)]
    assert "lines 4-9 were read as one row" in merged["message"][0]
    assert files["emails.csv"].read == plain["emails.csv"].read - 5
    # the blank line is counted apart, not read (nor quarantined as a row without an id)
    assert files["meetings.csv"].quarantined.get("missing_id", 0) == 0
    assert "meetings.csv: skipped 1 blank line (every field empty)" in data.report.notes
    # a file read only to look things up is listed with its lines
    contacts = files["contacts.csv"]
    assert (contacts.read, contacts.tables) == (0, {})
    assert contacts.lines.physical == physical_lines(folder / "contacts.csv")


def test_crlf_and_bare_cr_salesforce_files_read_like_the_export():
    folder = CRM / "sf_line_ends"
    files = _files(load_any(folder).report)
    plain = _files(load_any(CRM / "salesforce").report)
    task = files["Task.csv"].lines
    assert (task.quoted, task.blank) == (2, 0)  # the description over three lines
    assert task.rows == plain["Task.csv"].lines.rows
    assert files["Event.csv"].lines.rows == plain["Event.csv"].lines.rows
    for file in ("Task.csv", "Event.csv"):
        assert files[file].read == plain[file].read
        assert files[file].loaded == plain[file].loaded


def test_the_lines_are_in_the_json_and_the_text_of_the_report(capsys):
    folder = CRM / "hubspot_line_ends"
    by_file = json.loads(load_command_text(folder, by_file=True, as_json=True))
    emails = by_file["emails.csv"]["lines"]
    assert emails == {
        "physical": physical_lines(folder / "emails.csv"),
        "rows": emails["physical"] - 5,
        "blank": 0,
        "quoted": 5,
        "not_read": 0,
    }
    assert by_file["contacts.csv"]["read"] == 0 and "lines" in by_file["contacts.csv"]

    assert main(["load", str(folder), "--by-file", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == by_file
    assert main(["load", str(folder)]) == 0
    text = capsys.readouterr().out
    head = next(line for line in text.splitlines() if line.startswith("file "))
    assert head.split()[:4] == ["file", "lines", "rows", "read"]
    row = next(line for line in text.splitlines() if line.startswith("emails.csv"))
    assert f"{emails['physical']} (5 in quotes)" in row
    assert "LINES NOT READ" not in text


def test_a_parquet_export_has_no_physical_lines(tmp_path):
    folder = tmp_path / "hubspot"
    folder.mkdir()
    for path in (CRM / "hubspot").iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    calls = folder / "calls.csv"
    pl.read_csv(calls, infer_schema=False).write_parquet(folder / "calls.parquet")
    calls.unlink()
    report = load_any(folder).report
    files = _files(report)
    assert files["calls.parquet"].lines is None and files["calls.parquet"].read > 0
    assert "lines" not in report.files_dict()["calls.parquet"]
    assert files["emails.csv"].lines is not None


def _losing(file: str, monkeypatch) -> None:
    """Plant a loss: the reader of ``file`` drops its last row (the line count does not)."""
    real = reading.read_text_table

    def read(path, **options):
        text = real(path, **options)
        if Path(path).name != file:
            return text
        return dataclasses.replace(text, frame=text.frame.head(text.frame.height - 1))

    monkeypatch.setattr(reading, "read_text_table", read)


@pytest.mark.parametrize(
    ("folder", "file", "quoted"),
    [
        ("hubspot_line_ends", "calls.csv", 0),
        ("hubspot_line_ends", "emails.csv", 5),
        ("sf_line_ends", "Task.csv", 2),
    ],
)
def test_a_row_lost_in_reading_is_flagged_per_file(folder, file, quoted, monkeypatch, capsys):
    _losing(file, monkeypatch)
    physical = physical_lines(CRM / folder / file)

    report = load_any(CRM / folder).report

    lines = _files(report)[file].lines
    assert (lines.physical, lines.quoted, lines.unaccounted) == (physical, quoted, 1)
    assert lines.rows == physical - quoted - 1
    (flag,) = report.lines_not_read()
    assert flag.startswith(f"{file}: 1 of its {physical:,} physical lines were not read")
    assert f"inside quoted values {quoted}" in flag
    assert report.files_dict()[file]["lines"]["not_read"] == 1
    frame = report.files_frame()
    assert frame.filter(pl.col("lines not read") != 0)["file"].to_list() == [file]
    for text in (report.to_text(), report.files_text()):
        assert f"LINES NOT READ:\n- {flag}" in text
    assert f"{physical:,} (" in next(
        line for line in report.files_text().splitlines() if line.startswith(file)
    )

    assert main(["load", str(CRM / folder)]) == 0  # loaded, and the loss said
    assert f"- {flag}" in capsys.readouterr().out


def _page(widget) -> str:
    """The HTML a widget and its children show."""
    own = widget.value if isinstance(getattr(widget, "value", None), str) else ""
    return own + "".join(_page(child) for child in getattr(widget, "children", ()))


def test_start_here_lists_each_files_lines_and_the_lines_not_read(monkeypatch):
    from effortlens_widgets.load_report import LoadReportView

    sound = LoadReportView(value=load_any(CRM / "hubspot_line_ends"))
    emails = sound.frames["files"].filter(pl.col("file") == "emails.csv").row(0, named=True)
    counts = ("lines", "rows", "blank lines", "lines in quotes", "lines not read")
    assert tuple(emails[c] for c in counts) == (12, 7, 0, 5, 0)
    total = sound.frames["files"].filter(pl.col("file") == "all export files").row(0, named=True)
    assert total["lines"] == total["rows"] + total["blank lines"] + total["lines in quotes"]
    assert "physical lines" in _page(sound) and "Lines not read" not in _page(sound)
    assert "were neither read" not in sound.headline

    _losing("calls.csv", monkeypatch)
    view = LoadReportView(value=load_any(CRM / "hubspot_line_ends"))
    files = view.frames["files"]
    lost = files.filter(pl.col("lines not read") > 0)["file"].to_list()
    assert lost == ["calls.csv", "all export files"]  # and the total says so
    assert not view.sound
    assert "1 file had physical lines that were neither read" in view.headline
    assert "Lines not read" in _page(view)
    assert "calls.csv: 1 of its 4 physical lines were not read" in _page(view)


def test_a_sound_export_whose_lines_were_not_all_read_is_not_called_sound(monkeypatch):
    from effortlens_widgets.load_report import LoadReportView

    folder = CRM / "sf_empty_lookup"
    assert LoadReportView(value=load_any(folder)).sound  # nothing quarantined, nothing lost
    _losing("Task.csv", monkeypatch)
    view = LoadReportView(value=load_any(folder))
    assert not view.sound
    assert view.headline.startswith("Lines of the files were not read.")


def test_lines_a_stray_quote_on_the_header_line_swallowed_are_flagged(tmp_path, capsys):
    # a hand edit lost the opening quote of one header name and one value of row 5: the
    # reader (like the quote count) takes lines 2-6 as part of the header and reads none of
    # them; the line count knows they are lines of data
    folder = tmp_path / "salesforce"
    shutil.copytree(CRM / "salesforce", folder)
    path = folder / "Task.csv"
    lines = path.read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b'"ActivityDate"', b'ActivityDate"', 1)
    lines[5] = lines[5].replace(b'"Completed"', b'Completed"', 1)
    path.write_bytes(b"\n".join(lines))

    report = load_any(folder).report

    task = _files(report)["Task.csv"]
    physical = physical_lines(path)
    assert task.lines.physical == physical
    assert task.lines.rows + task.lines.unaccounted == physical
    assert task.lines.unaccounted == 5
    (flag,) = report.lines_not_read()
    assert flag.startswith(f"Task.csv: 5 of its {physical} physical lines were not read")
    assert main(["load", str(folder)]) == 0
    assert f"LINES NOT READ:\n- {flag}" in capsys.readouterr().out


def test_start_here_shows_the_lines_of_a_build_read_back_from_the_cache(tmp_path):
    # the apps read a folder through its build (facts.open_build): the per-file report, lines
    # included, must come back from the cache as the load made it
    from effortlens.facts import open_build
    from effortlens_widgets.load_report import LoadReportView

    folder = tmp_path / "hubspot"
    shutil.copytree(CRM / "hubspot_line_ends", folder)
    first = open_build(folder, cache_dir=tmp_path / "cache")
    again = open_build(folder, cache_dir=tmp_path / "cache")
    assert first.rebuilt and not again.rebuilt  # built, then read back

    assert again.data.report.files == load_any(folder).report.files
    assert again.data.report.files == first.data.report.files
    view = LoadReportView(value=again.data)
    emails = view.frames["files"].filter(pl.col("file") == "emails.csv").row(0, named=True)
    assert (emails["lines"], emails["lines in quotes"], emails["lines not read"]) == (12, 5, 0)
