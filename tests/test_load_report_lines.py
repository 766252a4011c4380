"""Issue 10: physical lines a canonical table's header swallowed are flagged, not lost.

A quote left open on the header line (a name edited by hand) makes the reader take the next
lines for part of the header, up to the line that closes it: those rows were silently gone,
the line count (which skipped them as header lines too) agreeing. The load report now counts
every line after the header's first as a line of data, so they show as lines not read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from effortlens.adapters import load_any
from effortlens.cli import main
from effortlens.loading import LoadReport, TableReport
from effortlens.loading.report import FileLines, lines_not_read


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory) -> Path:
    from effortlens.sample import generate

    out = tmp_path_factory.mktemp("tiny_csv")
    generate(out, size="tiny", seed=11, fmt="csv")
    return out


def test_rows_a_quote_on_the_header_line_swallowed_are_lines_not_read(tiny_csv, tmp_path, capsys):
    folder = tmp_path / "data"
    shutil.copytree(tiny_csv, folder, ignore=shutil.ignore_patterns("_truth*", "truth.json"))
    path = folder / "reps.csv"
    lines = path.read_bytes().split(b"\n")
    data_lines = len([line for line in lines[1:] if line])
    header = lines[0].split(b",")
    header[1] = header[1][:2] + b'"' + header[1][2:]  # rep_name -> re"p_name
    lines[0] = b",".join(header)
    fields = lines[6].split(b",")
    fields[1] = fields[1][:2] + b'"' + fields[1][2:]  # a name on line 7 closes it
    lines[6] = b",".join(fields)
    path.write_bytes(b"\n".join(lines))

    report = load_any(folder).report

    reps = report["reps"]
    assert reps.lines == data_lines
    assert reps.unaccounted == 6  # lines 2-7 were read as the header
    assert reps.read == data_lines - 6
    (flag,) = report.lines_not_read()
    assert flag.startswith(f"reps (reps.csv): 6 of its {data_lines} physical lines were not read")
    assert main(["load", str(folder)]) == 0
    assert f"LINES NOT READ:\n- {flag}" in capsys.readouterr().out


def test_the_lines_not_read_are_said_the_same_way_for_tables_and_export_files():
    table = TableReport("reps", "reps.csv", 3, 3, lines=5, blank_lines=1)
    report = LoadReport(tables=(table,))
    assert report.lines_not_read() == [
        lines_not_read("reps (reps.csv)", physical=5, read=3, blank=1, quoted=0)
    ]
    assert "LINES NOT READ:\n- reps (reps.csv): 1 of its 5 physical lines" in report.to_text()
    sound = LoadReport(tables=(TableReport("reps", "reps.csv", 4, 4, lines=5, blank_lines=1),))
    assert sound.lines_not_read() == [] and "LINES NOT READ" not in sound.to_text()

    twice = FileLines("Task.csv", physical=3, rows=4)
    assert twice.unaccounted == -1
    assert twice.problem().startswith("Task.csv: 1 more rows were read than its 3 physical")
    assert FileLines("Task.csv", physical=4, rows=2, blank=1, quoted=1).problem() is None
