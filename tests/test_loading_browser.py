"""A bad data folder in the Voilà apps, in a real headless Chromium (issue 10).

Served as the folder every page opens, a folder the loader refuses must show one message in
words in Start here and in an app (the file, the line, what was expected), never a traceback,
"There was an error when executing cell" or a blank page; and the folder that made Polars
panic (a rep deleted from ``reps.csv``) loads from the page, its rows quarantined.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from browser_support import ARTIFACTS, CHROMIUM, PAGE_FAILURES, voila_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test)"),
]

FAILURE_TEXT = PAGE_FAILURES


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """The tiny sample as CSV twice: with a quote never closed in reps.csv, and without R024."""
    from effortlens.sample import generate

    tiny = generate(tmp_path_factory.mktemp("tiny_csv"), size="tiny", seed=11, fmt="csv").parent
    out = {}
    for name in ("unclosed_quote", "rep_deleted"):
        out[name] = tmp_path_factory.mktemp(name) / "data"
        shutil.copytree(tiny, out[name], ignore=shutil.ignore_patterns("_truth*", "truth.json"))
    reps = out["unclosed_quote"] / "reps.csv"
    lines = reps.read_text().splitlines(keepends=True)
    lines[6] = lines[6].replace(",", ',"', 1)
    reps.write_text("".join(lines))
    reps = out["rep_deleted"] / "reps.csv"
    lines = reps.read_text().splitlines(keepends=True)
    reps.write_text("".join(line for line in lines if not line.startswith("R024,")))
    return out


@pytest.fixture(scope="module")
def bad_server(folders):
    log = ARTIFACTS / "voila-bad-folder.log"
    with voila_server(folders["unclosed_quote"], log_path=log) as url:
        yield url


def _assert_said_in_words(page, expected: str) -> None:
    text = page.inner_text("body")
    for failure in FAILURE_TEXT:
        assert failure not in text, f"{failure!r} shown on the page"
    assert page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    error = page.inner_text(".el-error")
    assert "The data could not be loaded." in error
    assert expected in error


def test_a_bad_folder_is_said_in_words_in_start_here_and_an_app(browser, bad_server, folders):
    expected = "reps.csv: line 7 opens a quoted value"
    page = browser.new_page(viewport={"width": 1280, "height": 2200})
    try:
        page.goto(bad_server + "/voila/render/00_start_here.ipynb", timeout=180_000)
        page.wait_for_selector(".el-error", timeout=180_000)
        page.screenshot(path=str(ARTIFACTS / "start_here_bad_folder.png"), full_page=True)
        _assert_said_in_words(page, expected)
        assert page.inner_text(".el-headline h2") == "No data loaded yet"

        # the folder that made Polars panic loads from the same page, R024's rows set aside
        activities = pl.read_csv(folders["rep_deleted"] / "activities.csv", infer_schema=False)
        of_r024 = activities.filter(pl.col("rep_id") == "R024").height
        page.get_by_role("button", name="A folder").click()
        box = page.get_by_placeholder("default:")
        box.fill(str(folders["rep_deleted"]))
        box.press("Enter")
        page.locator("button.widget-button", has_text="Load").click()
        # the report's parts are widgets of their own, synced one after another: wait for the
        # last of them (the listed rows, the third table) before reading the page
        page.wait_for_function(
            "() => !document.querySelector('.el-error')"
            " && document.querySelectorAll('.el-table').length >= 3",
            timeout=240_000,
        )
        text = page.inner_text("body")
        assert not any(failure in text for failure in FAILURE_TEXT)
        assert "unknown_rep" in text or "unknown rep" in text.lower()
        assert f"{of_r024:,}" in page.inner_text(".el-table")
    finally:
        page.close()

    page = browser.new_page(viewport={"width": 1280, "height": 2200})
    try:
        page.goto(bad_server + "/voila/render/01_return_on_effort.ipynb", timeout=180_000)
        page.wait_for_selector(".el-error", timeout=180_000)
        page.screenshot(path=str(ARTIFACTS / "return_on_effort_bad_folder.png"), full_page=True)
        _assert_said_in_words(page, expected)
    finally:
        page.close()
