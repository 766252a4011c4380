"""No input makes a load raise: the fixed examples of issue 10, through every entry point.

Each test builds the bad input the issue found, then checks what the user sees: the exit
status and one message naming the file (and line or column) from ``effortlens load``, a
``DataError`` from ``load_any``, an error box from the apps, and, where memory was the
problem, the peak memory of a separate process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from widget_support import page_html

from effortlens.adapters import load_any
from effortlens.cli import main
from effortlens.loading import DataError, LoadBug
from effortlens.settings import Limits, SettingsError, load_settings, settings_for_folder

CRM = Path(__file__).parent / "data" / "crm"
#: Peak memory a refused hostile file may cost a fresh ``effortlens load`` process (Python,
#: Polars and NumPy alone take about 150 MB).
REFUSAL_PEAK_MB = 600


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory) -> Path:
    """The tiny planted sample as CSV files (the issue's reproduction data)."""
    from effortlens.sample import generate

    out = tmp_path_factory.mktemp("tiny_csv")
    generate(out, size="tiny", seed=11, fmt="csv")
    return out


def _copy(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to, ignore=shutil.ignore_patterns("_truth*", "truth.json"))
    return to


def _load_json(folder: Path, capsys) -> tuple[int, dict | None, str]:
    status = main(["load", str(folder), "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out) if status == 0 else None
    return status, report, captured.err


def _nothing_lost(report: dict) -> None:
    for table, entry in report.items():
        assert entry["loaded"] + sum(entry["quarantined"].values()) == entry["read"], table


def _load_in_a_process(folder: Path) -> tuple[int, str, float]:
    """``effortlens load DIR`` in a fresh process: exit status, stderr, peak memory in MB."""
    # the child's own VmHWM (bench/build_big.vm_mb); ru_maxrss would also carry the parent's
    # (the test runner's) peak, which Linux hands on across fork and exec.
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / 'bench')!r})\n"
        "from build_big import vm_mb\n"
        "from effortlens.cli import main\n"
        "status = main(sys.argv[1:])\n"
        "print('PEAK_KB', vm_mb('self', 'VmHWM') * 1024, file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "load", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    peak = next(
        int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_KB")
    )
    message = "\n".join(x for x in done.stderr.splitlines() if not x.startswith("PEAK_KB"))
    return done.returncode, message, peak / 1024


# --- 1. a panic on ordinary data -------------------------------------------------------------


def test_a_rep_deleted_from_reps_quarantines_its_rows(tiny_csv, tmp_path, capsys):
    folder = _copy(tiny_csv, tmp_path / "data")
    reps = folder / "reps.csv"
    lines = reps.read_text().splitlines(keepends=True)
    reps.write_text("".join(line for line in lines if not line.startswith("R024,")))
    activities = pl.read_csv(folder / "activities.csv", infer_schema=False)
    of_r024 = activities.filter(pl.col("rep_id") == "R024").height
    assert of_r024 > 0

    status, report, err = _load_json(folder, capsys)

    assert status == 0, err
    _nothing_lost(report)
    assert report["reps"]["read"] == len(lines) - 2
    assert report["activities"]["quarantined"]["unknown_rep"] == of_r024
    assert report["activities"]["read"] == activities.height


def test_a_panic_is_reported_as_a_bug_naming_the_file(tiny_csv, tmp_path, capsys, monkeypatch):
    import effortlens.loading.pipeline as pipeline

    def panics(raw, **kwargs):
        if raw.table == "activities":
            raise pl.exceptions.PanicException("index out of bounds")
        return validate_table(raw, **kwargs)

    validate_table = pipeline.validate_table
    monkeypatch.setattr(pipeline, "validate_table", panics)
    folder = _copy(tiny_csv, tmp_path / "data")

    status, _, err = _load_json(folder, capsys)
    assert status == 3
    assert err.startswith("effortlens: activities.csv: EffortLens failed on this file (a bug")
    # no library exception name for the user (issue 9); the details on request, for the report
    assert "PanicException" not in err and "EFFORTLENS_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("EFFORTLENS_DEBUG", "1")
    status, _, err = _load_json(folder, capsys)
    assert status == 3
    assert "PanicException: index out of bounds" in err and "Traceback" not in err
    with pytest.raises(LoadBug, match="activities.csv"):
        load_any(folder)


def test_a_panic_shows_in_the_app_and_start_here_never_a_blank_page(
    tiny_csv, tmp_path, monkeypatch
):
    import effortlens.loading.pipeline as pipeline
    from effortlens_widgets.app import App
    from effortlens_widgets.data_source import DataSourceLoader

    def panics(raw, **kwargs):
        raise pl.exceptions.PanicException("the horizontal concat")

    monkeypatch.setattr(pipeline, "validate_table", panics)
    folder = _copy(tiny_csv, tmp_path / "data")

    app = App(title="T", question="Q?", views=[], data_dir=folder)
    assert app.state.enriched is None
    assert "a bug" in app.error and "reps.csv" in app.error
    assert "could not be loaded" in page_html(app)

    source = DataSourceLoader(path=str(folder), source="folder")
    source.load()
    assert source.status == "error" and source.value is None
    assert "reps.csv" in source.error and "a bug" in source.error


# --- 2. rows lost without a count --------------------------------------------------------------


def test_bare_cr_line_ends_read_every_row(tiny_csv, tmp_path, capsys):
    folder = _copy(tiny_csv, tmp_path / "data")
    path = folder / "activities.csv"
    rows = len(path.read_bytes().splitlines()) - 1
    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r"))

    status, report, err = _load_json(folder, capsys)

    assert status == 0, err
    _nothing_lost(report)
    assert report["activities"]["read"] == rows == report["activities"]["lines"]["physical"]
    assert report["activities"]["loaded"] > 0.9 * rows
    notes = "\n".join(load_any(folder).report.notes)
    assert "activities.csv): lines end with a bare CR" in notes


@pytest.mark.parametrize("export", ["salesforce", "hubspot"])
def test_bare_cr_line_ends_in_crm_exports_read_like_lf(export, tmp_path):
    lf = load_any(CRM / export).report.to_dict()
    folder = _copy(CRM / export, tmp_path / export)
    for path in folder.glob("*.csv"):
        path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r"))

    cr = load_any(folder)

    assert cr.report.to_dict() == lf
    assert any("bare CR" in note for note in cr.report.notes)


def test_an_unbalanced_quote_quarantines_the_lines_it_swallowed(tiny_csv, tmp_path, capsys):
    folder = _copy(tiny_csv, tmp_path / "data")
    path = folder / "activities.csv"
    lines = path.read_text().splitlines(keepends=True)
    # line 5 opens a quote at the start of contact_id (7th field); line 15 closes it after its
    # own contact_id: lines 5-15 become one row with as many fields as the header
    opened = lines[4].split(",")
    opened[6] = '"' + opened[6]
    lines[4] = ",".join(opened)
    closing = lines[14].split(",")
    closing[6] = closing[6] + '"'
    lines[14] = ",".join(closing)
    path.write_text("".join(lines))

    status, report, err = _load_json(folder, capsys)

    assert status == 0, err
    _nothing_lost(report)
    entry = report["activities"]
    assert entry["lines"] == {"physical": len(lines) - 1, "blank": 0, "quoted": 10}
    assert entry["read"] == len(lines) - 1 - 10  # eleven lines read as one row
    assert entry["quarantined"] == {"merged_lines": 1}
    data = load_any(folder)
    merged = data.quarantine.filter(pl.col("reason") == "merged_lines")
    assert merged["row"].to_list() == [4] and merged["column"].to_list() == ["contact_id"]
    assert "lines 5-15 were read as one row" in merged["message"][0]
    assert any("lie inside quoted values" in note for note in data.report.notes)


def test_an_unbalanced_quote_in_a_crm_export_quarantines_the_merged_row(tmp_path):
    folder = _copy(CRM / "hubspot", tmp_path / "hubspot")
    path = folder / "emails.csv"
    lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    opened, closing = lines[3].split(","), lines[8].split(",")
    opened[3], closing[3] = '"' + opened[3], closing[3] + '"'  # Email direction, lines 4-9
    lines[3], lines[8] = ",".join(opened), ",".join(closing)
    path.write_text("".join(lines))

    data = load_any(folder)

    merged = data.quarantine.filter(pl.col("reason") == "merged_lines")
    assert merged.select("file", "row").rows() == [("emails.csv", 3)]
    assert "lines 4-9 were read as one row" in merged["message"][0]
    assert "emails.csv: 12 lines of data hold 7 records: 5 lines lie inside quoted values" in (
        "\n".join(data.report.notes)
    )
    for entry in data.report.tables:
        assert entry.loaded + entry.quarantined_total == entry.read


def test_a_quote_never_closed_names_its_line(tiny_csv, tmp_path, capsys):
    folder = _copy(tiny_csv, tmp_path / "data")
    path = folder / "reps.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines[6] = lines[6].replace(",", ',"', 1)
    path.write_text("".join(lines))

    status, _, err = _load_json(folder, capsys)

    assert status == 2
    assert err.startswith("effortlens: reps.csv: line 7 opens a quoted value")


def test_a_line_with_more_fields_than_the_header_is_set_aside(tiny_csv, tmp_path, capsys):
    folder = _copy(tiny_csv, tmp_path / "data")
    path = folder / "opportunities.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines[9] = lines[9].rstrip("\n") + ",surplus\n"
    lines[20] = lines[20].rstrip("\n") + ',"a,b",c\n'
    path.write_text("".join(lines))

    status, report, err = _load_json(folder, capsys)

    assert status == 0, err
    _nothing_lost(report)
    assert report["opportunities"]["quarantined"] == {"extra_fields": 2}
    assert report["opportunities"]["read"] == len(lines) - 1
    messages = load_any(folder).quarantine.filter(pl.col("reason") == "extra_fields")["message"]
    assert messages.to_list() == [
        f"opportunities.csv row {row}: line {row + 1} has {n} fields, the header 8; expected no "
        "more fields than the header (a value holding the delimiter is quoted)"
        for row, n in ((9, 9), (20, 10))
    ]


def test_a_crm_line_with_more_fields_than_the_header_names_its_line(tmp_path):
    folder = _copy(CRM / "hubspot", tmp_path / "hubspot")
    path = folder / "calls.csv"
    lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    lines[2] = lines[2].rstrip("\n") + ",surplus\n"
    path.write_text("".join(lines))

    data = load_any(folder)  # the row is set aside, not the file (issue 9)
    bad = data.quarantine.filter(pl.col("reason") == "extra_fields")
    assert bad["message"].to_list() == [
        "calls.csv row 2: line 3 has 12 fields, the header 11; expected no more fields than "
        "the header (a value holding the delimiter is quoted)"
    ]
    calls = next(f for f in data.report.files if f.file == "calls.csv")
    assert calls.read == len(lines) - 1 == calls.loaded + calls.quarantined_total


# --- 3. memory blow-ups from small files -------------------------------------------------------


def test_a_header_of_100000_columns_is_refused_in_little_memory(tiny_csv, tmp_path):
    folder = _copy(tiny_csv, tmp_path / "data")
    header = "rep_id," + ",".join(f"c{i}" for i in range(100_000))
    (folder / "reps.csv").write_text(header + "\nR001" + "," * 100_000 + "\n")
    assert (folder / "reps.csv").stat().st_size > 700_000

    status, message, peak_mb = _load_in_a_process(folder)

    assert status == 2, message
    assert message.startswith("effortlens: reps.csv: line 1 (the header) has 100,001 columns")
    assert "limits.max_columns" in message
    assert peak_mb < REFUSAL_PEAK_MB


def _dense_parquet(path: Path, rows: int) -> None:
    """A Parquet file of ``rows`` identical activities, a few KB on disk (built by Arrow, so
    writing it costs ~``rows`` bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    codes = pa.array(np.zeros(rows, dtype=np.int8))

    def constant(value: str) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(codes, pa.array([value]))

    table = pa.table(
        {
            "activity_id": constant("ACT1"),
            "rep_id": constant("R001"),
            "ts": constant("2025-01-06T14:12:25Z"),
            "activity_type": constant("call"),
        }
    )
    pq.write_table(table, path, row_group_size=rows)


def test_a_small_parquet_of_20m_constant_rows_is_refused_before_it_is_read(tiny_csv, tmp_path):
    folder = _copy(tiny_csv, tmp_path / "data")
    (folder / "activities.csv").unlink()
    _dense_parquet(folder / "activities.parquet", 20_000_000)
    assert (folder / "activities.parquet").stat().st_size < 4_000_000

    status, message, peak_mb = _load_in_a_process(folder)

    assert status == 2, message
    assert message.startswith("effortlens: activities.parquet: 20,000,000 rows in")
    assert "limits.max_parquet_rows_per_kb" in message
    assert peak_mb < REFUSAL_PEAK_MB


def test_the_app_refuses_a_dense_parquet_with_a_message(tiny_csv, tmp_path):
    from effortlens_widgets.data_source import DataSourceLoader

    folder = _copy(tiny_csv, tmp_path / "data")
    (folder / "activities.csv").unlink()
    _dense_parquet(folder / "activities.parquet", 2_000_000)

    source = DataSourceLoader(path=str(folder), source="folder")
    source.load()

    assert source.status == "error"
    assert source.error.startswith("activities.parquet: 2,000,000 rows in")


def test_the_memory_budget_stops_the_load_and_names_the_file(tiny_csv, tmp_path, capsys):
    folder = _copy(tiny_csv, tmp_path / "data")
    body = (folder / "activities.csv").read_bytes()
    header, _, rows = body.partition(b"\n")
    (folder / "activities.csv").write_bytes(header + b"\n" + rows * 10)  # about 10 MB
    (folder / "settings.toml").write_text("[limits]\nmemory_budget_mb = 64\n")

    status, _, err = _load_json(folder, capsys)

    assert status == 2
    assert err.startswith("effortlens: activities.csv: loading it would take about")
    assert "over the memory budget of 64 MB" in err and "limits.memory_budget_mb" in err


def test_a_value_longer_than_the_limit_names_its_line_and_column(tiny_csv, tmp_path, capsys):
    folder = _copy(tiny_csv, tmp_path / "data")
    path = folder / "reps.csv"
    lines = path.read_text().splitlines(keepends=True)
    fields = lines[3].split(",")
    fields[1] = "N" * 300
    lines[3] = ",".join(fields)
    path.write_text("".join(lines))
    (folder / "settings.toml").write_text("[limits]\nmax_field_chars = 200\n")

    status, _, err = _load_json(folder, capsys)

    assert status == 2
    assert err.startswith("effortlens: reps.csv: line 4, column rep_name: a value of 300 char")


# --- 4. tracebacks instead of messages ---------------------------------------------------------


def test_an_unreadable_file_is_a_message(tiny_csv, tmp_path, capsys, monkeypatch):
    folder = _copy(tiny_csv, tmp_path / "data")
    read_bytes = Path.read_bytes

    def denied(self):
        if self.name == "stage_history.csv":
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", denied)  # as root, chmod 000 would not stop us

    status, _, err = _load_json(folder, capsys)

    assert status == 2
    assert err.strip() == (
        "effortlens: stage_history.csv: cannot be read: permission denied; check the access "
        "rights of the file"
    )


def test_an_unreadable_folder_is_a_message(tiny_csv, tmp_path, capsys, monkeypatch):
    folder = _copy(tiny_csv, tmp_path / "data")
    iterdir = Path.iterdir

    def denied(self):
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", denied)

    status, _, err = _load_json(folder, capsys)

    assert status == 2
    assert err.startswith(f"effortlens: {folder}: cannot be read: permission denied")


def test_invalid_bytes_after_a_utf8_bom_name_the_line_and_column(tiny_csv, tmp_path, capsys):
    folder = _copy(tiny_csv, tmp_path / "data")
    path = folder / "reps.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"R003,", b"R003,\xff", 1))

    status, _, err = _load_json(folder, capsys)

    assert status == 2
    assert err.startswith("effortlens: reps.csv: line 4, column 6: byte 0xff is not UTF-8")
    assert "byte-order mark" in err


def test_a_parquet_list_column_is_named(tiny_csv, tmp_path, capsys):
    folder = _copy(tiny_csv, tmp_path / "data")
    activities = pl.read_csv(folder / "activities.csv", infer_schema=False)
    (folder / "activities.csv").unlink()
    activities.with_columns(pl.concat_list("activity_type")).write_parquet(
        folder / "activities.parquet"
    )

    status, _, err = _load_json(folder, capsys)

    assert status == 2
    assert err.strip() == (
        "effortlens: activities.parquet: column activity_type holds List(String) values; "
        "expected String (one plain value per row, not a list or a record)"
    )


def test_a_list_column_outside_the_table_is_left_out_and_noted(tiny_csv, tmp_path):
    folder = _copy(tiny_csv, tmp_path / "data")
    reps = pl.read_csv(folder / "reps.csv", infer_schema=False)
    (folder / "reps.csv").unlink()
    reps.with_columns(pl.concat_list("team").alias("tags")).write_parquet(folder / "reps.parquet")

    data = load_any(folder)

    assert data.report["reps"].loaded == reps.height
    assert any("ignored columns of lists or records: tags" in n for n in data.report.notes)


# --- 6. the CLI and the apps read the same settings --------------------------------------------


def test_load_honours_the_folders_settings_like_the_apps(tiny_csv, tmp_path, capsys):
    from effortlens_widgets.data_source import DataSourceLoader

    folder = _copy(tiny_csv, tmp_path / "data")
    (folder / "settings.toml").write_text('timezone = "Mars/Olympus_Mons"\n')

    status, _, err = _load_json(folder, capsys)
    source = DataSourceLoader(path=str(folder), source="folder")
    source.load()

    assert status == 2
    assert err.strip() == f"effortlens: {source.error}"
    assert "settings.toml: timezone must be an IANA time zone" in err


def test_given_settings_win_over_the_folders(tiny_csv, tmp_path, capsys):
    folder = _copy(tiny_csv, tmp_path / "data")
    (folder / "settings.toml").write_text('timezone = "Mars/Olympus_Mons"\n')
    mine = tmp_path / "mine.toml"
    mine.write_text('timezone = "Europe/Paris"\n')

    assert settings_for_folder(folder, mine).timezone == "Europe/Paris"
    assert main(["load", str(folder), "--settings", str(mine)]) == 0
    assert "settings.toml" not in capsys.readouterr().out  # read, not an ignored file


def test_limits_are_validated_and_leave_the_fingerprint_alone(tmp_path):
    bad = tmp_path / "settings.toml"
    bad.write_text("[limits]\nmax_columns = 0\n")
    with pytest.raises(SettingsError, match="limits.max_columns must be a whole number >= 1"):
        load_settings(bad)
    bad.write_text("[limits]\nmax_rows = 5\n")
    with pytest.raises(SettingsError, match="unknown setting 'limits.max_rows'"):
        load_settings(bad)
    good = tmp_path / "good.toml"
    good.write_text("[limits]\nmemory_budget_mb = 512\nmax_columns = 50\n")
    custom = load_settings(good)
    assert custom.limits == Limits(max_columns=50, memory_budget_mb=512)
    assert load_settings().limits == Limits()
    assert custom.fingerprint() == load_settings().fingerprint()


def test_nothing_but_dataerror_leaves_load_any(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError):
        load_any(empty)
    with pytest.raises(DataError, match="not a folder"):
        load_any(tmp_path / "missing")


def test_a_small_parquet_of_long_repeated_values_is_reserved_by_its_uncompressed_size(
    tiny_csv, tmp_path, capsys
):
    folder = _copy(tiny_csv, tmp_path / "data")
    (folder / "reps.csv").unlink()
    pl.DataFrame({"rep_id": ["R" * 50_000_000]}).write_parquet(folder / "reps.parquet")
    assert (folder / "reps.parquet").stat().st_size < 100_000
    (folder / "settings.toml").write_text("[limits]\nmemory_budget_mb = 256\n")

    status, _, err = _load_json(folder, capsys)

    assert status == 2
    assert err.startswith("effortlens: reps.parquet: loading it would take about")
    assert "47.7 MB of values once uncompressed" in err


def test_a_header_name_longer_than_the_limit_is_refused(tiny_csv, tmp_path, capsys):
    folder = _copy(tiny_csv, tmp_path / "data")
    path = folder / "reps.csv"
    path.write_text(path.read_text().replace("rep_name", "h" * 500, 1))
    (folder / "settings.toml").write_text("[limits]\nmax_field_chars = 200\n")

    status, _, err = _load_json(folder, capsys)

    assert status == 2
    assert err.startswith("effortlens: reps.csv: line 1 (the header), column 2: a name of 500")


def test_a_table_column_named_twice_is_named_with_its_positions(tiny_csv, tmp_path, capsys):
    folder = _copy(tiny_csv, tmp_path / "data")
    path = folder / "buyer_actions.csv"
    header, _, rest = path.read_text().partition("\n")
    names = header.split(",")
    names[names.index("account_id")] = "opportunity_id"
    path.write_text(",".join(names) + "\n" + rest)

    status, _, err = _load_json(folder, capsys)

    assert status == 2
    first, second = [i + 1 for i, n in enumerate(names) if n == "opportunity_id"]
    assert err.strip() == (
        f"effortlens: buyer_actions.csv: line 1 (the header) names opportunity_id twice (columns "
        f"{first} and {second}); expected each column once: keep one"
    )


# --- 3 (continued). small Parquet files whose values outgrow them -----------------------------


def _one_long_value(path: Path, *, rows: int, dictionary: bool) -> None:
    """Reps whose names are one value of a million characters, repeated: a few KB on disk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {"rep_id": [f"R{i:05}" for i in range(rows)], "rep_name": ["N" * 10**6] * rows}
    )
    pq.write_table(table, path, use_dictionary=dictionary, compression="zstd")


@pytest.mark.parametrize("dictionary", [True, False], ids=["dictionary", "plain"])
def test_a_small_parquet_of_one_long_value_repeated_is_refused_in_little_memory(
    tiny_csv, tmp_path, dictionary
):
    # issue 10: an 85 KB Parquet file cost 714 MB inside an app; this one would take 3 GB
    folder = _copy(tiny_csv, tmp_path / "data")
    (folder / "reps.csv").unlink()
    _one_long_value(folder / "reps.parquet", rows=3000, dictionary=dictionary)
    assert (folder / "reps.parquet").stat().st_size < 200_000

    status, message, peak_mb = _load_in_a_process(folder)

    assert status == 2, message
    how = "read" if dictionary else "decompressed"  # known from the footer before reading
    assert message.startswith(f"effortlens: reps.parquet: its values take 2,861 MB once {how}")
    assert "limits.max_parquet_expansion (1,000)" in message
    assert peak_mb < REFUSAL_PEAK_MB


def test_the_app_refuses_a_small_parquet_that_would_take_gigabytes(tiny_csv, tmp_path):
    from effortlens_widgets.data_source import DataSourceLoader

    folder = _copy(tiny_csv, tmp_path / "data")
    (folder / "reps.csv").unlink()
    _one_long_value(folder / "reps.parquet", rows=1000, dictionary=True)

    source = DataSourceLoader(path=str(folder), source="folder")
    source.load()

    assert source.status == "error" and source.value is None
    assert source.error.startswith("reps.parquet: its values take 954 MB once read")


def test_a_dense_row_group_in_a_larger_parquet_is_refused_naming_the_group(tiny_csv, tmp_path):
    import pyarrow.parquet as pq

    folder = _copy(tiny_csv, tmp_path / "data")
    (folder / "activities.csv").unlink()
    real = pl.read_csv(tiny_csv / "activities.csv", infer_schema=False)
    rng = np.random.default_rng(5)
    noise = [rng.bytes(300).hex() for _ in range(real.height)]  # hard to compress: ~9 MB
    real = real.with_columns(pl.Series("subject", noise)).to_arrow()
    dense = pl.select(
        pl.repeat(real.column(c)[0].as_py(), 1_000_000).alias(c) for c in real.column_names
    ).to_arrow()
    with pq.ParquetWriter(folder / "activities.parquet", real.schema) as writer:
        writer.write_table(real)
        writer.write_table(dense.cast(real.schema), row_group_size=1_000_000)
    size_kb = (folder / "activities.parquet").stat().st_size / 1024
    assert 1_015_162 < 1000 * size_kb, "the file as a whole passes the density limit"

    status, message, peak_mb = _load_in_a_process(folder)

    assert status == 2, message
    assert message.startswith("effortlens: activities.parquet: row group 2 of 2 holds 1,000,000 ")
    assert "limits.max_parquet_rows_per_kb" in message
    assert peak_mb < REFUSAL_PEAK_MB


def test_the_footer_reader_agrees_with_pyarrow(tiny_csv, tmp_path):
    import pyarrow.parquet as pq

    from effortlens.loading.parquet import row_groups

    path = tmp_path / "activities.parquet"
    frame = pl.read_csv(tiny_csv / "activities.csv", infer_schema=False)
    frame.with_columns(pl.struct("rep_id", "ts").alias("nested")).write_parquet(
        path, row_group_size=4000
    )
    meta = pq.ParquetFile(path).metadata
    groups = row_groups(path)

    assert len(groups) == meta.num_row_groups > 1
    for number, group in enumerate(groups):
        theirs = meta.row_group(number)
        chunks = [theirs.column(c) for c in range(theirs.num_columns)]
        assert group.rows == theirs.num_rows
        assert group.compressed == sum(c.total_compressed_size for c in chunks)
        assert group.uncompressed["nested"] == sum(
            c.total_uncompressed_size for c in chunks if c.path_in_schema.startswith("nested.")
        )
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(path.read_bytes()[:-20] + b"\xff" * 16 + b"PAR1")
    assert row_groups(broken) is None  # left to the reader's message


def test_a_list_column_in_an_export_parquet_is_named(tmp_path):
    folder = _copy(CRM / "salesforce", tmp_path / "salesforce")
    tasks = pl.read_csv(folder / "Task.csv", infer_schema=False)
    (folder / "Task.csv").unlink()
    tasks.with_columns(pl.concat_list("OwnerId")).write_parquet(folder / "Task.parquet")

    with pytest.raises(DataError) as raised:
        load_any(folder)

    assert str(raised.value) == (
        "Task.parquet: column OwnerId holds List(String) values; expected one plain value per "
        "row, not a list or a record"
    )


def test_an_unreadable_export_file_stops_the_load_naming_it(tmp_path, monkeypatch, capsys):
    folder = _copy(CRM / "salesforce", tmp_path / "salesforce")
    opened = open

    def denied(file, *args, **kwargs):
        if Path(str(file)).name == "Task.csv":
            raise PermissionError(13, "Permission denied", str(file))
        return opened(file, *args, **kwargs)

    import builtins

    monkeypatch.setattr(builtins, "open", denied)  # as root, chmod 000 would not stop us

    status, _, err = _load_json(folder, capsys)  # its rows would be lost without a word

    assert status == 2
    assert err.strip() == (
        "effortlens: Task.csv: cannot be read: permission denied; check the access rights of "
        "the file"
    )


def test_a_wide_csv_of_empty_fields_is_reserved_by_its_fields(tiny_csv, tmp_path, capsys):
    # 10,000 lines of 2,000 mostly empty fields: 19 MB of text, about 1 GB to parse and load
    folder = _copy(tiny_csv, tmp_path / "data")
    path = folder / "activities.csv"
    header = path.read_text().split("\n", 1)[0].split(",")
    names = header + [f"x{i}" for i in range(2000 - len(header))]
    row = ",".join(["A1", "R001", "2025-01-06T14:12:25Z", "call"] + [""] * (len(names) - 4))
    path.write_text(",".join(names) + "\n" + "\n".join([row] * 10_000) + "\n")
    assert path.stat().st_size < 20 * 2**20
    (folder / "settings.toml").write_text("[limits]\nmemory_budget_mb = 512\n")

    status, message, peak_mb = _load_in_a_process(folder)

    assert status == 2, message
    assert message.startswith("effortlens: activities.csv: loading it would take about")
    assert "(10,000 records x 2,000 columns)" in message
    assert peak_mb < REFUSAL_PEAK_MB


# --- 5. every cache read, panics included ------------------------------------------------------


def test_a_panic_reading_a_build_rebuilds_it_once(tiny_csv, tmp_path, monkeypatch):
    from effortlens import facts

    cache = tmp_path / "cache"
    said: list[str] = []
    first = facts.open_build(tiny_csv, cache_dir=cache, say=said.append)
    scan_fact = facts.scan_fact
    calls = []

    def panics_on_the_damaged_entry(entry, relative):
        if relative == "daily.parquet":
            calls.append(relative)
            if len(calls) <= 2:  # read before and under the build lock: both fail
                raise pl.exceptions.PanicException("out of spec")
        return scan_fact(entry, relative)

    monkeypatch.setattr(facts, "scan_fact", panics_on_the_damaged_entry)
    said.clear()
    again = facts.open_build(tiny_csv, cache_dir=cache, say=said.append)

    assert said == [
        f"the build of {tiny_csv} was damaged (unreadable: the Parquet reader failed (out of "
        "spec)): deleted, rebuilding"
    ]
    assert again.path == first.path and again.enriched.daily.height == first.enriched.daily.height


def _deny(monkeypatch, name: str) -> None:
    """Opening a file called ``name`` fails as it would without the rights (we run as root)."""
    import builtins

    opened, read_text, read_bytes = open, Path.read_text, Path.read_bytes

    def denied_open(file, *args, **kwargs):
        if Path(str(file)).name == name:
            raise PermissionError(13, "Permission denied", str(file))
        return opened(file, *args, **kwargs)

    def denied_read_text(self, *args, **kwargs):
        if self.name == name:
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)

    def denied_read_bytes(self):
        if self.name == name:
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(builtins, "open", denied_open)
    monkeypatch.setattr(Path, "read_text", denied_read_text)
    monkeypatch.setattr(Path, "read_bytes", denied_read_bytes)


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("stage_history.csv", "stage_history.csv: cannot be read: permission denied; check the"),
        ("settings.toml", "settings.toml: cannot be read: permission denied; check the access"),
    ],
)
def test_an_unreadable_file_is_said_in_words_by_the_apps_and_every_command(
    tiny_csv, tmp_path, monkeypatch, capsys, name, said
):
    from effortlens_widgets.app import App
    from effortlens_widgets.data_source import DataSourceLoader

    folder = _copy(tiny_csv, tmp_path / "data")
    (folder / "settings.toml").write_text('timezone = "UTC"\n')
    monkeypatch.setenv("EFFORTLENS_CACHE", str(tmp_path / "cache"))
    _deny(monkeypatch, name)

    source = DataSourceLoader(path=str(folder), source="folder")
    source.load()
    app = App(title="T", question="Q?", views=[], data_dir=folder)

    assert source.status == "error" and said in source.error and "a bug" not in source.error
    assert said in app.error and "a bug" not in app.error
    for command in ("load", "build", "roe"):
        assert main([command, str(folder)]) == 2, command
        err = capsys.readouterr().err
        assert err.startswith("effortlens: ") and said in err, (command, err)


@pytest.mark.parametrize(
    ("export", "reader", "file"),
    [
        ("hubspot", "read_owners", "owners.csv"),
        ("salesforce", "read_events", "Event.csv"),
        ("generic_both_directions", "_read", "activity_log.csv"),
    ],
)
def test_a_bug_in_an_export_reader_names_the_file(export, reader, file, monkeypatch, capsys):
    import importlib

    adapter = export.split("_")[0]
    module = importlib.import_module(f"effortlens.adapters.{adapter}")

    def fails(*args, **kwargs):
        raise pl.exceptions.PanicException("index out of bounds")

    monkeypatch.setattr(module, reader, fails)

    with pytest.raises(LoadBug, match=f"^{file}: EffortLens failed on this file"):
        load_any(CRM / export)
    assert main(["load", str(CRM / export)]) == 3
    assert capsys.readouterr().err.startswith(f"effortlens: {file}: EffortLens failed on this")
