"""What a person reads from the ``effortlens`` metric commands: compact tables, ``--wide``."""

from __future__ import annotations

import pytest

from effortlens.cli import COMPACT_COLUMNS, main


def _header(out: str) -> list[str]:
    """The column names of a printed table (its first row of cells)."""
    for line in out.splitlines():
        if "┆" in line or "│" in line:
            cells = line.replace("┆", "│").strip("│ ").split("│")
            return [c.strip() for c in cells if c.strip()]
    return []


@pytest.mark.parametrize("command", ["roe", "deviants", "flow", "habits", "organisation"])
def test_default_table_shows_the_main_columns_and_wide_shows_all(command, tiny_planted, capsys):
    argv = [command, str(tiny_planted)]
    if command == "deviants":
        argv += ["--min-volume", "1"]
    assert main(argv) == 0
    compact = _header(capsys.readouterr().out)
    assert main([*argv, "--wide"]) == 0
    wide = _header(capsys.readouterr().out)
    if not compact:  # nothing stands out on this sample: the reason is printed instead
        assert command == "deviants"
        return
    assert len(compact) <= 8, compact
    assert len(wide) > len(compact)  # (a narrow terminal may wrap the wide names)
    assert [c for c in compact if c in COMPACT_COLUMNS[command]], compact


def _rows(out: str) -> list[list[str]]:
    rows = []
    for line in out.splitlines():
        if "│" in line and "┆" in line:
            rows.append([c.strip() for c in line.replace("┆", "│").strip("│ ").split("│")])
    return rows


def test_shares_read_as_percentages(tiny_planted, capsys):
    assert main(["roe", str(tiny_planted), "--by", "team"]) == 0
    header, *rows = _rows(capsys.readouterr().out)
    assert rows and header[0] == "team"
    rate = header.index("response_rate")
    assert all(r[rate].endswith("%") for r in rows)
    assert all(0 < float(r[rate].rstrip("%")) < 100 for r in rows)


def test_an_empty_result_says_why(tmp_path, capsys):
    data = tmp_path / "deals"
    data.mkdir()
    (data / "reps.csv").write_text("rep_id,rep_name\nr1,Ann\n")
    (data / "opportunities.csv").write_text(
        "opportunity_id,account_id,rep_id,created_ts,outcome\no1,a1,r1,2024-01-02,open\n"
    )
    assert main(["habits", str(data)]) == 0
    assert "No seller activities" in capsys.readouterr().out
    assert main(["roe", str(data), "--json"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "[]" and "No seller activities" in err


def test_load_by_file_counts_each_export_row_once_in_its_file(capsys):
    import json
    from pathlib import Path

    folder = Path(__file__).parent / "data" / "crm" / "sf_task_types"
    assert main(["load", str(folder), "--by-file", "--json"]) == 0
    files = json.loads(capsys.readouterr().out)
    assert "Task.csv" in files and "EmailMessage.csv" in files
    for name, counts in files.items():
        assert counts["read"] == counts["loaded"] + sum(counts["quarantined"].values()), name
    # emails set aside as their kept Task are quarantined in their own file, not lost
    assert files["EmailMessage.csv"]["quarantined"].get("same_as_task", 0) > 0
    assert main(["load", str(folder), "--by-file"]) == 0
    assert "Task.csv" in capsys.readouterr().out


def test_deviants_table_shows_q_values_without_rounding_them_to_zero(small_planted, capsys):
    assert main(["deviants", str(small_planted)]) == 0
    header, *rows = _rows(capsys.readouterr().out)
    q = header.index("q_value")
    assert rows
    assert all(r[q] == "<0.001" or 0 < float(r[q]) <= 1 for r in rows), rows
