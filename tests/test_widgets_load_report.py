"""The data-source loader and the load report view, headless: set traits, assert state."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from traitlets import TraitError

from effortlens.loading import load_folder
from effortlens_widgets import DataSourceLoader, LoadReportView, default_data_dir, settings_for
from effortlens_widgets._html import escape, table

REPO = Path(__file__).resolve().parents[1]


# -- where the data is ------------------------------------------------------------------------


def test_default_data_dir_is_the_folder_named_by_the_environment(monkeypatch, tmp_path):
    folder = tmp_path / "crm-export"
    monkeypatch.setenv("EFFORTLENS_DATA", str(folder))
    assert default_data_dir() == folder
    assert not folder.exists(), "a folder the user named must never be generated into"


def test_default_data_dir_falls_back_to_the_repo_sample(monkeypatch):
    monkeypatch.delenv("EFFORTLENS_DATA", raising=False)
    assert default_data_dir(generate=False) == REPO / "sample_data" / "generated" / "default"


# -- the loader -------------------------------------------------------------------------------


def test_loader_loads_the_folder_it_is_given(tiny_planted):
    source = DataSourceLoader(path=str(tiny_planted))
    assert (source.status, source.value) == ("idle", None)
    source.load()
    assert (source.status, source.error) == ("loaded", "")
    assert source.value.report.to_dict() == load_folder(tiny_planted).report.to_dict()
    assert str(tiny_planted) in source._message.value


def test_loader_with_an_empty_path_opens_the_environment_folder(monkeypatch, tiny_planted):
    monkeypatch.setenv("EFFORTLENS_DATA", str(tiny_planted))
    source = DataSourceLoader()
    source.load()
    assert source.status == "loaded"
    assert source.value.report.to_dict() == load_folder(tiny_planted).report.to_dict()


def test_loader_shows_a_readable_message_for_a_missing_folder(tmp_path):
    source = DataSourceLoader(path=str(tmp_path / "no-such-folder"))
    source.load()
    assert source.status == "error"
    assert source.value is None
    assert source.error
    assert "Traceback" not in source.error
    assert "el-error" in source._message.value
    assert not source._load_button.disabled


def test_loader_reports_a_bad_settings_file_by_key(tmp_path, tiny_planted):
    settings = tmp_path / "settings.toml"
    settings.write_text("[attribution]\nwindow_days = -3\n")
    source = DataSourceLoader(path=str(tiny_planted), settings_path=str(settings))
    source.load()
    assert source.status == "error"
    assert "attribution.window_days" in source.error


def test_a_failed_load_clears_the_previous_data(tmp_path, tiny_planted):
    source = DataSourceLoader(path=str(tiny_planted))
    source.load()
    assert source.value is not None
    source.path = str(tmp_path / "gone")
    source.load()
    assert (source.status, source.value) == ("error", None)


def test_loader_feeds_a_linked_report_view(tiny_dirty):
    import ipywidgets as widgets

    source = DataSourceLoader(path=str(tiny_dirty))
    view = LoadReportView()
    widgets.dlink((source, "value"), (view, "value"))
    source.load()
    assert view.value is source.value
    assert view.sound is False


# -- the report view --------------------------------------------------------------------------


def test_report_view_before_any_load():
    view = LoadReportView()
    assert view.sound is False
    assert view.reason == ""
    assert "No data loaded yet" in view._headline.value
    assert view._quarantine_box.layout.display == "none"


def test_report_view_on_clean_data_says_it_is_sound(tiny_planted):
    data = load_folder(tiny_planted)
    assert data.quarantine.height == 0, "the planted sample is clean by contract"
    view = LoadReportView(value=data)
    assert view.sound is True
    assert "The data is sound" in view._headline.value
    assert view._quarantine_box.layout.display == "none"
    assert view.reason == ""
    for row in data.report.to_frame().filter(~pl.col("missing")).iter_rows(named=True):
        assert f">{row['loaded']:,}<" in view._tables.value


def test_report_view_lists_quarantine_by_reason(tiny_dirty):
    data = load_folder(tiny_dirty)
    by_reason = (
        data.quarantine.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
    )
    view = LoadReportView(value=data)

    assert view.sound is False
    assert f"{data.quarantine.height:,} rows were quarantined" in view._headline.value
    assert [value for _label, value in view._reason_picker.options] == by_reason["reason"].to_list()
    assert view.reason == by_reason["reason"][0]
    for reason in by_reason["reason"]:
        assert reason in view._by_reason.value

    for reason in by_reason["reason"]:
        view.reason = reason
        assert view._reason_picker.value == reason
        first = data.quarantine.filter(pl.col("reason") == reason).row(0, named=True)
        assert escape(first["message"]) in view._rows.value


def test_report_view_lists_only_max_rows_and_says_how_many_more(tiny_dirty):
    data = load_folder(tiny_dirty)
    view = LoadReportView(value=data)
    count = data.quarantine.filter(pl.col("reason") == view.reason).height
    view.max_rows = 1
    assert view._rows.value.count("<tr>") == 2  # header + one row
    if count > 1:
        assert f"and {count - 1:,} more rows" in view._rows.value


def test_report_view_refuses_a_reason_with_no_rows(tiny_dirty):
    view = LoadReportView(value=load_folder(tiny_dirty))
    with pytest.raises(TraitError, match="no row was quarantined"):
        view.reason = "no_such_reason"


def test_report_view_does_not_change_the_data(tiny_dirty):
    data = load_folder(tiny_dirty)
    before = data.quarantine.clone()
    view = LoadReportView(value=data)
    view.max_rows = 3
    view.value = None
    assert_frame_equal(data.quarantine, before)


def test_report_view_shows_the_notes(tiny_dirty):
    data = load_folder(tiny_dirty)
    view = LoadReportView(value=data)
    for note in data.report.notes:
        assert f"<li>{escape(note)}</li>" in view._notes.value


def test_tables_escape_what_the_data_holds():
    html = table(pl.DataFrame({"raw": ["<script>alert(1)</script>"], "read": [1234567]}))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert '<td class="el-num">1,234,567</td>' in html


def test_loader_uses_the_folders_own_settings_file(tmp_path, tiny_planted):
    import shutil

    folder = shutil.copytree(tiny_planted, tmp_path / "export")
    (folder / "settings.toml").write_text("[attribution]\nwindow_days = 0\n")
    source = DataSourceLoader(path=str(folder))
    source.load()
    assert source.status == "error"
    assert "settings.toml" in source.error and "window_days" in source.error


def test_settings_for_prefers_the_file_given(tmp_path):
    (tmp_path / "settings.toml").write_text("")
    assert settings_for(tmp_path) == tmp_path / "settings.toml"
    assert settings_for(tmp_path, tmp_path / "other.toml") == tmp_path / "other.toml"
    assert settings_for(tmp_path / "empty") is None


def test_uploaded_files_load_like_a_folder(tiny_planted, tmp_path, monkeypatch):
    from effortlens_widgets.data_source import DataSourceLoader

    monkeypatch.setenv("EFFORTLENS_CACHE", str(tmp_path / "cache"))
    uploads = [
        {
            "name": f.name,
            "type": "application/octet-stream",
            "size": f.stat().st_size,
            "content": memoryview(f.read_bytes()),
            "last_modified": dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        }
        for f in sorted(tiny_planted.glob("*.parquet"))
        if not f.name.startswith("_")
    ]
    source = DataSourceLoader(source="upload")
    source._upload.value = tuple(uploads)
    source.load()
    assert source.status == "loaded", source.error
    expected = load_folder(tiny_planted).report.to_dict()
    assert source.value.report.to_dict() == expected


def test_upload_without_files_and_folder_without_path_say_what_to_do():
    from effortlens_widgets.data_source import DataSourceLoader

    source = DataSourceLoader(source="upload")
    source.load()
    assert source.status == "error" and "choose the files" in source.error
    source.source = "folder"
    source.load()
    assert source.status == "error" and "type the path" in source.error
    assert source._folder in source._inputs.children
