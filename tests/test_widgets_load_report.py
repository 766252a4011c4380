"""The data-source loader and the load report view, headless: set traits, assert state.

Only public names: the widgets' traits, and what their widget tree draws (widget_support).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
from pathlib import Path

import ipywidgets as widgets
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from traitlets import TraitError
from widget_support import page_html, shown

from effortlens.loading import load_folder
from effortlens_widgets import DataSourceLoader, LoadReportView, default_data_dir, settings_for

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
    assert source.message == f"Loaded from {tiny_planted}"
    assert html.escape(source.message) in page_html(source)


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
    assert source.message == "The data could not be loaded."
    assert 'class="el-error"' in page_html(source)
    assert html.escape(source.error) in page_html(source)
    (button,) = shown(source, widgets.Button)
    assert not button.disabled, "the Load button is back for another try"


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
    assert view.headline.startswith("No data loaded yet.")
    assert (view.reasons, view.frames, view.frame) == ({}, {}, None)
    assert "No data loaded yet" in page_html(view)


def test_report_view_on_clean_data_says_it_is_sound(tiny_planted):
    data = load_folder(tiny_planted)
    assert data.quarantine.height == 0, "the planted sample is clean by contract"
    view = LoadReportView(value=data)
    assert view.sound is True
    assert view.headline.startswith("The data is sound.")
    assert (view.reasons, view.reason) == ({}, "")
    assert set(view.frames) == {"tables"}, "no quarantine to show"
    provided = data.report.to_frame().filter(~pl.col("missing"))
    shown_rows = {row["table"]: row for row in view.frame.iter_rows(named=True)}
    for row in provided.iter_rows(named=True):
        assert shown_rows[row["table"]]["loaded"] == row["loaded"]
        assert f'<td class="el-num">{row["loaded"]:,}</td>' in page_html(view)
    assert shown_rows["all tables"]["read"] == provided["read"].sum()
    assert f"All {provided['read'].sum():,} rows read" in view.headline


def test_report_view_lists_quarantine_by_reason(tiny_dirty):
    data = load_folder(tiny_dirty)
    by_reason = (
        data.quarantine.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
    )
    view = LoadReportView(value=data)

    assert view.sound is False
    assert view.headline.startswith(f"{data.quarantine.height:,} rows were quarantined.")
    assert view.reasons == dict(by_reason.iter_rows())
    assert view.reason == by_reason["reason"][0]
    crosstab = view.frames["by_reason"]
    for reason, n in by_reason.iter_rows():
        assert crosstab[reason].sum() == n

    (picker,) = shown(view, widgets.Dropdown)
    assert [value for _label, value in picker.options] == by_reason["reason"].to_list()
    for reason in by_reason["reason"]:
        view.reason = reason
        assert picker.value == reason
        first = data.quarantine.filter(pl.col("reason") == reason).row(0, named=True)
        assert view.frames["rows"].row(0, named=True)["message"] == first["message"]
        assert html.escape(first["message"]) in page_html(view)
    picker.value = by_reason["reason"][0]  # as the viewer picks it in the page
    assert view.reason == by_reason["reason"][0]


def test_report_view_lists_only_max_rows_and_says_how_many_more(tiny_dirty):
    data = load_folder(tiny_dirty)
    view = LoadReportView(value=data)
    count = data.quarantine.filter(pl.col("reason") == view.reason).height
    view.max_rows = 1
    assert view.frames["rows"].height == 1
    assert view.more == count - 1
    if count > 1:
        assert f"and {count - 1:,} more rows" in page_html(view)
    view.max_rows = count
    assert (view.frames["rows"].height, view.more) == (count, 0)


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
    assert data.report.notes, "the dirty sample has notes to show"
    for note in data.report.notes:
        assert f"<li>{html.escape(note)}</li>" in page_html(view)


def test_a_load_reaches_the_page_whole_with_the_headline_last(
    tiny_dirty, tiny_planted, monkeypatch
):
    """The report's parts are widgets of their own, each synced by a message of its own: a
    browser showed a load's first table before its reasons had come (and a test read the page
    then). Now no part's message leaves before the whole report is drawn, each part sends one,
    and the headline's comes last: a page showing the new headline shows all the rest."""
    view = LoadReportView()
    sent: list[tuple] = []  # (widget, what it sent, the view's headline and frames then)
    send_state = widgets.Widget.send_state

    def recording(widget, key=None):
        state = widget.get_state(key=key)
        if state:
            sent.append((widget, set(state), view.headline, set(view.frames)))
        return send_state(widget, key)

    monkeypatch.setattr(widgets.Widget, "send_state", recording)
    for data in (load_folder(tiny_dirty), load_folder(tiny_planted), None, load_folder(tiny_dirty)):
        sent.clear()
        view.value = data
        (headline,) = [w for w in shown(view, widgets.HTML) if '<div class="el-headline' in w.value]
        assert sent and sent[-1][0] is headline
        assert len({id(widget) for widget, *_ in sent}) == len(sent), "one message per part"
        assert [(h, f) for *_, h, f in sent] == [(view.headline, set(view.frames))] * len(sent)
        if data is not None and view.reasons:
            (picker,) = shown(view, widgets.Dropdown)
            assert [keys for widget, keys, *_ in sent if widget is picker] == [
                {"_options_labels", "index"}
            ]


def test_report_view_escapes_what_the_data_holds(tiny_dirty):
    data = load_folder(tiny_dirty)
    hostile = "<script>alert(1)</script>"
    data = dataclasses.replace(
        data, quarantine=data.quarantine.with_columns(raw=pl.lit(hostile), message=pl.lit(hostile))
    )
    view = LoadReportView(value=data)
    assert view.frames["rows"]["raw"][0] == hostile  # the state holds the text as read
    page = page_html(view)
    assert hostile not in page and "<script>" not in page
    assert html.escape(hostile) in page


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
    (box,) = shown(source, widgets.FileUpload)
    box.value = tuple(uploads)  # as the page's upload box sets it
    assert source.uploads == box.value
    source.load()
    assert source.status == "loaded", source.error
    assert source.message == f"Loaded from {len(uploads)} uploaded files"
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
    (folder_box,) = shown(source, widgets.Text)
    assert folder_box.description == "Data folder" and not shown(source, widgets.FileUpload)
    folder_box.value = "/no/such/export"
    assert source.path == "/no/such/export"


def test_start_here_names_only_frames_its_report_offers(tiny_dirty):
    import re

    import nbformat

    cells = nbformat.read(REPO / "workbooks" / "00_start_here.ipynb", as_version=4).cells
    (guide,) = [c.source for c in cells if "report.frames" in c.source]
    named = set(re.findall(r'report\.frames\["(\w+)"\]', guide))
    assert named, "the guide shows the frames behind the report"
    view = LoadReportView(value=load_folder(tiny_dirty))
    assert named <= set(view.frames), named - set(view.frames)
    assert view.frame is view.frames["tables"]


def test_a_large_builds_quarantine_is_held_in_part_and_listed_from_its_file(
    tiny_dirty, tmp_path, monkeypatch
):
    """A kernel holds the first rows of each reason of a large build's quarantine (the 100M
    sample's 6.6M rows were 3.5 GB in every kernel); the view counts them all from the report
    and lists as many as asked, reading the build's file past what is held."""
    import effortlens.facts as facts

    cache = tmp_path / "cache"
    facts.open_build(tiny_dirty, cache_dir=cache)
    whole = facts.open_build(tiny_dirty, cache_dir=cache).data  # read back from the build
    assert whole.quarantine_complete
    on_file = pl.read_parquet(whole.quarantine_file)
    assert_frame_equal(whole.quarantine, on_file)
    counts = dict(on_file.group_by("reason").len().iter_rows())
    assert max(counts.values()) > 2, "the dirty sample sets aside several rows of a reason"

    monkeypatch.setattr(facts, "QUARANTINE_HELD_ROWS", on_file.height - 1)
    monkeypatch.setattr(facts, "QUARANTINE_ROWS_PER_REASON", 2)
    data = facts.open_build(tiny_dirty, cache_dir=cache).data
    assert not data.quarantine_complete
    expected = pl.concat(
        on_file.with_row_index("at").filter(pl.col("reason") == code).head(2) for code in counts
    )
    assert_frame_equal(data.quarantine, expected.sort("at").drop("at"))  # file order kept

    view = LoadReportView(value=data)
    assert view.reasons == dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    for code, n in counts.items():
        view.max_rows = 1
        view.reason = code
        first = on_file.filter(pl.col("reason") == code)
        assert (view.frames["rows"]["message"][0], view.more) == (first["message"][0], n - 1)
        view.max_rows = n  # more than the kernel holds: the rest is read from the build's file
        assert view.frames["rows"]["message"].to_list() == first["message"].to_list()
        assert view.more == 0
