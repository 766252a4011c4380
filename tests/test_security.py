"""Hostile input (issue 11 §5, §6, §8; issue 10 uploads): paths, uploads, CSV formulas, names.

The browser half (no script runs in a page, the served folder box in Chromium) is
tests/test_security_browser.py; unauthenticated routes are tests/test_serve.py's.
"""

from __future__ import annotations

import csv
import gc
import html
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import ipywidgets as widgets
import polars as pl
import pytest
from hostile_data import FORMULAS, PAYLOADS, RAW_MARKUP, hostile_copy
from widget_support import app_factories, page_html, shown, walk

from effortlens.adapters import load_any
from effortlens.adapters.mapping import MappingError
from effortlens.loading import DataError
from effortlens.loading.paths import (
    UnsafePath,
    check_relative,
    data_roots,
    folders_under,
    inside,
    served,
    under_roots,
)
from effortlens.safe_csv import csv_bytes, neutral_text, neutralise
from effortlens.uploads import (
    UploadSession,
    check_uploads,
    max_upload_bytes,
    refuse_uploaded_limits,
    sweep,
)
from effortlens_widgets.panels import downloads

SECRET = "TOP-SECRET-7d1e,password,hunter2"


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside any data folder whose first line is a secret."""
    secret = tmp_path / "private" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text(SECRET + "\nrow,row,row\n")
    return secret


@pytest.fixture
def data_folder(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "deals.csv").write_text("Deal,Owner,Stage\nD1,Ann,Won\n")
    return folder


# -- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "/etc/passwd",
        "../secret.csv",
        "sub/../../secret.csv",
        "..",
        "~/secret.csv",
        "C:/Windows/win.ini",
        "C:secret.csv",
        "\\\\server\\share\\x.csv",
        "..\\secret.csv",
        "",
        "   ",
        "a\x00b.csv",
    ],
)
def test_inside_refuses_every_path_that_leaves_the_folder(tmp_path, written):
    with pytest.raises(UnsafePath) as err:
        inside(tmp_path, written)
    assert "is not a path inside the data folder" in str(err.value)
    assert isinstance(err.value, DataError)  # every entry point already shows DataErrors


def test_inside_accepts_relative_paths_and_symlinks_that_stay_inside(tmp_path):
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "calls.csv").write_text("x\n")
    (tmp_path / "latest").symlink_to(tmp_path / "exports")
    assert inside(tmp_path, "exports/calls.csv") == (tmp_path / "exports/calls.csv").resolve()
    assert inside(tmp_path, "latest/calls.csv") == (tmp_path / "exports/calls.csv").resolve()
    assert inside(tmp_path, "./calls.csv") == (tmp_path / "calls.csv").resolve()
    assert check_relative("a/b.csv") == "a/b.csv"


def test_a_symlink_out_is_refused_the_same_whether_its_target_exists(tmp_path, outside):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "real.csv").symlink_to(outside)
    (folder / "dangling.csv").symlink_to(tmp_path / "private" / "nothing.csv")
    (folder / "dir").symlink_to(outside.parent)
    messages = []
    for written in ("real.csv", "dangling.csv", "dir/secret.csv", "dir/nothing.csv"):
        with pytest.raises(UnsafePath) as err:
            inside(folder, written)
        messages.append(str(err.value).replace(written, "X"))
    assert len(set(messages)) == 1


def _mapping(folder: Path, file: str) -> None:
    (folder / "mapping.toml").write_text(
        f'[opportunities]\nfile = "{file}"\nopportunity_id = "Deal"\nrep_id = "Owner"\n'
        'stage = "Stage"\n'
    )


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "symlinked_dir", "missing_abs"])
def test_a_mapping_naming_a_file_outside_the_folder_is_refused_without_its_content(
    tmp_path, data_folder, outside, how
):
    written = {
        "absolute": str(outside),
        "missing_abs": str(outside.parent / "no-such.csv"),
        "dotdot": "../private/secret.csv",
        "symlink": "deals-link.csv",
        "symlinked_dir": "private/secret.csv",
    }[how]
    if how == "symlink":
        (data_folder / "deals-link.csv").symlink_to(outside)
    if how == "symlinked_dir":
        (data_folder / "private").symlink_to(outside.parent)
    _mapping(data_folder, written)
    with pytest.raises(MappingError) as err:
        load_any(data_folder)
    message = str(err.value)
    assert "is not a path inside the data folder" in message
    assert f"opportunities.file = {written!r}" in message
    for part in SECRET.split(","):
        assert part not in message  # never a word of the file it points at


def test_the_refusal_does_not_say_whether_a_file_outside_exists(data_folder, outside):
    said = []
    for target in (outside, outside.parent / "no-such.csv", Path("/no/such/dir/x.csv")):
        _mapping(data_folder, str(target))
        with pytest.raises(MappingError) as err:
            load_any(data_folder)
        said.append(str(err.value).replace(str(target), "X"))
    assert len(set(said)) == 1


def test_a_mapping_inside_the_folder_still_loads(data_folder):
    (data_folder / "exports").mkdir()
    (data_folder / "deals.csv").rename(data_folder / "exports" / "deals.csv")
    _mapping(data_folder, "exports/deals.csv")
    data = load_any(data_folder)
    assert data.tables["opportunities"].height == 1


def test_a_column_error_quotes_only_the_file_inside_the_folder(data_folder):
    (data_folder / "mapping.toml").write_text(
        '[opportunities]\nfile = "deals.csv"\nopportunity_id = "Nope"\nrep_id = "Owner"\n'
        'stage = "Stage"\n'
    )
    with pytest.raises(MappingError) as err:
        load_any(data_folder)
    assert "Columns: Deal, Owner, Stage" in str(err.value)  # the data being loaded: helpful


# -- data roots and served mode ----------------------------------------------------------------


@pytest.fixture
def roots(tmp_path, monkeypatch, outside):
    root = tmp_path / "roots"
    (root / "acme" / "q3").mkdir(parents=True)
    (root / "globex").mkdir()
    (root / ".hidden").mkdir()
    (root / "escape").symlink_to(outside.parent)  # a symlink out of the root: never offered
    monkeypatch.setenv("EFFORTLENS_SERVED", "1")
    monkeypatch.setenv("EFFORTLENS_DATA_ROOTS", str(root) + os.pathsep + str(tmp_path / "gone"))
    monkeypatch.delenv("EFFORTLENS_DATA", raising=False)
    return root


def test_served_mode_and_roots_come_from_the_environment(roots, monkeypatch):
    assert served()
    assert data_roots() == [roots.resolve()]
    offered = [label for label, _ in folders_under(data_roots())]
    assert offered == ["roots", "roots/acme", "roots/acme/q3", "roots/globex"]
    assert under_roots(roots / "acme") == (roots / "acme").resolve()
    assert under_roots(roots / "escape") is None
    assert under_roots("/etc") is None
    monkeypatch.delenv("EFFORTLENS_SERVED")
    monkeypatch.delenv("EFFORTLENS_DATA_ROOTS")
    assert not served()


def test_served_folder_box_is_a_choice_list_of_folders_under_the_roots(roots, tiny_planted):
    import shutil

    from effortlens_widgets import DataSourceLoader

    shutil.copytree(tiny_planted, roots / "globex" / "tiny")
    source = DataSourceLoader(source="folder")
    for where in ("default", "upload", "folder"):  # the folder box is drawn last
        source.source = where
        assert not shown(source, widgets.Text), "no free text when served"
    (folder_box,) = shown(source, widgets.Dropdown)
    offered = [Path(value) for _, value in folder_box.options]
    assert all(under_roots(p, [roots.resolve()]) for p in offered)
    assert (roots / "globex" / "tiny").resolve() in offered
    assert not any("escape" in str(p) or ".hidden" in str(p) for p in offered)

    folder_box.value = str((roots / "globex" / "tiny").resolve())  # as the viewer picks it
    assert source.path == folder_box.value
    source.load()
    assert (source.status, source.error) == ("loaded", "")


def test_served_loader_answers_the_same_for_any_folder_outside_the_roots(roots, tmp_path):
    from effortlens_widgets import DataSourceLoader

    source = DataSourceLoader(source="folder")
    errors = []
    for path in ("/etc", "/no/such/folder", str(tmp_path), str(roots / "escape"), "", "../x"):
        source.path = path  # as if a hostile page forced the trait
        source.load()
        assert source.status == "error"
        errors.append(source.error)
    assert set(errors) == {"choose one of the data folders offered, then press Load"}


def test_run_mode_keeps_the_free_text_folder_box(monkeypatch, tmp_path):
    from effortlens_widgets import DataSourceLoader

    monkeypatch.delenv("EFFORTLENS_SERVED", raising=False)
    monkeypatch.delenv("EFFORTLENS_DATA_ROOTS", raising=False)
    source = DataSourceLoader(source="folder")
    (folder_box,) = shown(source, widgets.Text)
    folder_box.value = str(tmp_path / "no-such-export")  # as the user types it
    source.load()
    assert "no-such-export" in source.error


# -- uploads -----------------------------------------------------------------------------------


def _upload(name: str, content: bytes) -> dict:
    from datetime import UTC, datetime

    return {
        "name": name,
        "type": "",
        "size": len(content),
        "content": memoryview(content),
        "last_modified": datetime.now(UTC),
    }


def test_an_upload_over_the_limit_says_its_size_and_the_limit(monkeypatch):
    monkeypatch.setenv("EFFORTLENS_UPLOAD_MAX_MB", "1")
    assert max_upload_bytes() == 1_000_000
    with pytest.raises(DataError) as err:
        check_uploads([_upload("activities.csv", b"x" * 1_500_000), _upload("reps.csv", b"r")])
    message = str(err.value)
    assert "1.5 MB" in message and "at most 1.0 MB" in message
    assert "choose the files" not in message


def test_nothing_arrived_names_the_limit_not_only_the_chooser(monkeypatch):
    monkeypatch.setenv("EFFORTLENS_UPLOAD_MAX_MB", "25")
    with pytest.raises(DataError) as err:
        check_uploads(())
    assert "at most 25.0 MB" in str(err.value)


@pytest.mark.parametrize("name", ["evil.sh", ".bashrc", "x.py", "noext", ""])
def test_an_upload_of_another_file_type_is_refused(name):
    with pytest.raises(DataError, match="cannot be uploaded"):
        check_uploads([_upload(name, b"x")])


def test_uploaded_names_never_carry_a_path(tmp_path):
    session = UploadSession(root=tmp_path / "uploads")
    folder = session.save(
        [_upload("../../../evil.csv", b"a\n"), _upload("C:\\Users\\x\\reps.csv", b"b\n")]
    )
    assert sorted(p.name for p in folder.iterdir()) == ["evil.csv", "reps.csv"]
    assert not (tmp_path / "evil.csv").exists()
    session.close()


def test_a_session_folder_is_private_replaced_at_each_upload_and_deleted_at_close(tmp_path):
    session = UploadSession(root=tmp_path / "uploads")
    first = session.save([_upload("a.csv", b"1\n")])
    assert (session.folder.stat().st_mode & 0o077) == 0  # mkdtemp: the kernel's user only
    second = session.save([_upload("b.csv", b"2\n")])
    assert not first.exists() and second.exists()
    folder = session.folder
    session.close()
    assert not folder.exists()


def test_a_session_folder_goes_when_the_session_is_collected(tmp_path):
    session = UploadSession(root=tmp_path / "uploads")
    folder = session.save([_upload("a.csv", b"1\n")]).parent
    del session
    gc.collect()
    assert not folder.exists()


def test_a_session_folder_goes_when_the_kernel_process_ends(tmp_path):
    code = (
        "import sys; from effortlens.uploads import UploadSession\n"
        f"s = UploadSession(root={str(tmp_path / 'uploads')!r})\n"
        "print(s.save([{'name': 'a.csv', 'content': b'1'}]).parent, flush=True)\n"
        "sys.exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    folder = Path(out.stdout.strip())
    assert folder.name.startswith("session-")
    assert not folder.exists()


def test_sweep_removes_upload_folders_older_than_the_age(tmp_path, monkeypatch):
    root = tmp_path / "uploads"
    live = UploadSession(root=root)
    live.save([_upload("a.csv", b"1\n")])
    old, new, other = root / "session-old", root / "upload-legacy", root / "keep-me"
    for folder in (old, new, other):
        folder.mkdir()
    for folder in (old, other, live.folder):
        os.utime(folder, (0, 0))
    monkeypatch.setenv("EFFORTLENS_UPLOAD_MAX_AGE_HOURS", "1")
    removed = sweep(root)
    assert removed == [old]
    assert new.exists() and other.exists() and live.folder.exists()  # young, foreign, open
    live.close()


def test_start_here_loads_an_upload_and_keeps_its_build_in_the_session(tiny_planted, monkeypatch):
    from effortlens_widgets import DataSourceLoader

    monkeypatch.delenv("EFFORTLENS_SERVED", raising=False)
    source = DataSourceLoader(source="upload")
    files = [f for f in sorted(tiny_planted.glob("*.parquet")) if not f.name.startswith("_")]
    source.uploads = tuple(_upload(f.name, f.read_bytes()) for f in files)
    source.load()
    assert (source.status, source.error) == ("loaded", "")
    session = source.upload_session.folder
    assert any(session.joinpath("cache").rglob("manifest.json"))  # the build lives there
    source.upload_session.close()
    assert not session.exists()


def test_start_here_says_the_limit_when_an_upload_is_too_big(monkeypatch):
    from effortlens_widgets import DataSourceLoader

    monkeypatch.setenv("EFFORTLENS_UPLOAD_MAX_MB", "0.5")
    source = DataSourceLoader(source="upload")
    source.uploads = (_upload("activities.csv", b"x" * 600_000),)
    source.load()
    assert source.status == "error"
    assert "at most 0.5 MB" in source.error
    source.uploads = ()
    source.load()
    assert "at most 0.5 MB" in source.error  # nothing arrived: the limit may be why


# -- CSV formulas (OWASP) ---------------------------------------------------------------------


@pytest.mark.parametrize("payload", FORMULAS + ("=1+1", "+1-1", "-A1", "@x", "\r=1", "\t=1"))
def test_a_formula_cell_is_prefixed(payload):
    assert neutral_text(payload) == "'" + payload


@pytest.mark.parametrize("text", ["Ann", "-12", "+3.5", "-1e5", "", "a=1", " =1", "'=1"])
def test_harmless_text_is_unchanged(text):
    assert neutral_text(text) == text


def _cells(payload: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(payload.decode("utf-8"))))


def test_every_csv_cell_starting_a_formula_is_neutralised_and_numbers_stay_numbers():
    frame = pl.DataFrame(
        {
            "rep": list(PAYLOADS),
            "delta": [-2.5 + i for i in range(len(PAYLOADS))],
            "count": [-i for i in range(len(PAYLOADS))],
            "team": pl.Series(list(PAYLOADS), dtype=pl.Categorical),
        }
    ).with_columns(pl.lit(None, dtype=pl.String).alias("empty"))
    frame = frame.rename({"team": "=team"})
    written = csv_bytes(frame)
    rows = _cells(written)
    assert rows[0] == ["rep", "delta", "count", "'=team", "empty"]
    for row in rows[1:]:
        for cell in (row[0], row[3]):
            assert cell[0] not in "=+-@\t\r", cell
    back = pl.read_csv(written)
    assert back["delta"].dtype == pl.Float64 and back["delta"].min() == -2.5
    assert back["count"].dtype == pl.Int64 and back["count"].min() == -(len(PAYLOADS) - 1)
    # every text cell is quoted: a ';' or tab separator cannot split one open
    assert all(line.startswith('"') for line in written.decode().splitlines())
    assert neutralise(frame).height == frame.height


def test_downloads_of_chart_and_table_panels_are_neutralised():
    import altair as alt

    from effortlens_widgets.panels import ChartPanel, TablePanel

    frame = pl.DataFrame({"rep": list(FORMULAS), "value": [-1.0] * len(FORMULAS)})
    chart_panel = ChartPanel(title="t")
    chart_panel.show(alt.Chart(frame.to_pandas()).mark_bar().encode(x="rep"), table_frame=frame)
    table_panel = TablePanel(title="t")
    table_panel.show(frame)
    for panel in (chart_panel, table_panel):
        files = [b.payload() for b in downloads(panel) if b.mime == "text/csv"]
        assert len(files) == 1
        rows = _cells(files[0])[1:]
        assert [r[0] for r in rows] == ["'" + f for f in FORMULAS]
        assert {r[1] for r in rows} == {"-1.0"}


# -- hostile names in every app, and Hide names ------------------------------------------------


@pytest.fixture(scope="module")
def hostile(tiny_planted, tmp_path_factory) -> Path:
    return hostile_copy(tiny_planted, tmp_path_factory.mktemp("hostile") / "data")


def _state(app) -> str:
    """Everything the kernel sends the page: each widget's state (HTML, options, chart specs
    with their data) and what every download button sends when clicked."""
    parts = []
    for w in walk(app):
        parts.append(json.dumps(w.get_state(), default=str))
    for button in downloads(app):
        parts.append(button.payload().decode("utf-8", "replace"))
    for w in walk(app):  # a chart's data can sit in its spec trait only
        if type(w).__name__ == "JupyterChart":
            parts.append(json.dumps(w.spec, default=str))
    return "\n".join(parts)


def test_every_app_escapes_hostile_names_and_hide_names_leaks_none(hostile, tiny_planted):
    reps = pl.read_parquet(tiny_planted / "reps.parquet")
    hostile_reps = pl.read_parquet(hostile / "reps.parquet")
    names = [n for n in reps["rep_name"].to_list() if n]  # the real part of each hostile name
    hidden = names + [i for i in hostile_reps["rep_id"].to_list()]
    shown_names = 0
    for factory in app_factories():
        app = factory(data_dir=hostile)
        markup = page_html(app)
        for raw in RAW_MARKUP:
            assert raw not in markup, (factory.__name__, raw)
        before = html.unescape(_state(app))
        named = any(n in before for n in names)
        app.state.anonymise = True
        text = _state(app)
        escaped = text + html.unescape(text)
        leaked = [n for n in hidden if n in escaped or html.escape(n) in escaped]
        assert leaked == [], factory.__name__
        if named:  # names were on the page before: pseudonyms now
            shown_names += 1
            assert re.search(r"Rep \d", text), factory.__name__
    assert shown_names >= 4  # the test saw names to hide in most apps


def test_a_served_upload_cannot_lift_the_load_limits(roots, tiny_planted):
    from effortlens_widgets import DataSourceLoader

    source = DataSourceLoader(source="upload")
    files = [f for f in sorted(tiny_planted.glob("*.parquet")) if not f.name.startswith("_")]
    settings = b"[limits]\nmax_columns = 100000000\nmemory_budget_mb = 1000000\n"
    source.uploads = tuple(_upload(f.name, f.read_bytes()) for f in files) + (
        _upload("settings.toml", settings),
    )
    source.load()
    assert source.status == "error"
    assert "[limits] cannot be set by an upload" in source.error
    source.upload_session.close()


def test_uploaded_settings_without_limits_pass(tmp_path):
    (tmp_path / "settings.toml").write_text('timezone = "Europe/Berlin"\n')
    refuse_uploaded_limits(tmp_path)  # no [limits]: nothing to refuse


def test_a_served_folder_holding_a_link_out_is_refused_without_reading_it(roots, outside):
    from effortlens_widgets import DataSourceLoader

    folder = roots / "acme"
    (folder / "reps.csv").symlink_to(outside)
    source = DataSourceLoader(source="folder")
    source.path = str(folder.resolve())  # what picking it in the list sets
    source.load()
    assert source.status == "error"
    assert "reps.csv: a link to a file outside the data folder" in source.error
    assert not any(part in source.error for part in SECRET.split(","))


def test_no_chart_offers_vega_embeds_actions_menu(tiny_planted):
    """vega-embed's menu has "Open in Vega Editor", which posts the chart and its data
    (names included) to an outside site; the panels offer their own downloads instead."""
    charts = 0
    for factory in app_factories():
        for w in walk(factory(data_dir=tiny_planted)):
            if type(w).__name__ == "JupyterChart":
                charts += 1
                assert w.embed_options.get("actions") is False, factory.__name__
    assert charts >= 8  # every app draws charts on the sample
