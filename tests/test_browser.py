"""The Voilà apps in a real headless Chromium, as a sales-ops analyst would open them."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from browser_support import (
    ARTIFACTS,
    CHROMIUM,
    PAGE_FAILURES,
    voila_server,
    wait_for_state,
    wait_for_upload,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test)"),
]

START_HERE = "/voila/render/00_start_here.ipynb"
FAILURE_TEXT = PAGE_FAILURES + ("could not be loaded",)


@pytest.fixture(scope="module")
def planted_server(tiny_planted):
    with voila_server(tiny_planted, log_path=ARTIFACTS / "voila-planted.log") as url:
        yield url


@pytest.fixture(scope="module")
def dirty_server(tiny_dirty):
    with voila_server(tiny_dirty, log_path=ARTIFACTS / "voila-dirty.log") as url:
        yield url


def _open_start_here(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 2200})
    page.goto(url + START_HERE, timeout=120_000)
    page.wait_for_selector(".el-headline h2", timeout=120_000)
    page.wait_for_selector(".el-table", timeout=60_000)
    return page


def _assert_no_failure(page) -> None:
    text = page.inner_text("body")
    for failure in FAILURE_TEXT:
        assert failure not in text, f"{failure!r} shown on the page"
    assert page.locator(".el-error").count() == 0
    assert page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0


def _report_rows(page) -> dict[str, list[str]]:
    """The per-table report as shown: table name to its cell texts."""
    rows = page.locator(".el-table").first.locator("tbody tr")
    return {
        cells[0]: cells[1:]
        for cells in (rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count()))
    }


def _shown(n: int) -> str:
    return f"{n:,}"


def _assert_report_matches(page, data) -> None:
    expected = data.report.to_frame()
    shown = _report_rows(page)
    for row in expected.iter_rows(named=True):
        cells = shown[row["table"]]
        if row["missing"]:
            assert "not provided" in cells
        else:
            assert cells[1:4] == [
                _shown(row["read"]),
                _shown(row["loaded"]),
                _shown(row["quarantined"]),
            ], row["table"]


def test_landing_page_lists_the_start_here_app(planted_server):
    with urllib.request.urlopen(planted_server + "/", timeout=30) as response:
        html = response.read().decode()
    assert "00_start_here.ipynb" in html


def test_start_here_shows_the_load_report(browser, planted_server, tiny_planted):
    from effortlens.loading import load_folder

    data = load_folder(tiny_planted)
    page = _open_start_here(browser, planted_server)
    try:
        page.screenshot(path=str(ARTIFACTS / "start_here_planted.png"), full_page=True)
        _assert_no_failure(page)
        assert page.inner_text(".el-headline h2") == "The data is sound"
        _assert_report_matches(page, data)
        # code is hidden: the page shows the narrative, not the cells that build it
        assert "dlink(" not in page.inner_text("body")
        assert "Start here" in page.inner_text("body")
    finally:
        page.close()


def test_start_here_shows_why_rows_were_quarantined(browser, dirty_server, tiny_dirty):
    from effortlens.loading import load_folder

    data = load_folder(tiny_dirty)
    counts = (
        data.quarantine.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
    )
    assert counts.height >= 2, "the dirty sample should break more than one rule"
    page = _open_start_here(browser, dirty_server)
    try:
        _assert_no_failure(page)
        headline = page.inner_text(".el-headline h2")
        assert headline == f"{_shown(data.quarantine.height)} rows were quarantined"
        _assert_report_matches(page, data)
        crosstab_header = page.locator(".el-table").nth(1).locator("thead").inner_text()
        for reason in counts["reason"]:
            assert reason in crosstab_header

        # the rows of the most frequent reason are listed first; pick another reason
        listed = page.locator(".el-table").nth(2)
        first_reason, other_reason = counts["reason"][0], counts["reason"][1]
        assert _messages_of(data, first_reason)[0] in listed.inner_text()
        page.locator("select").first.select_option(label=_option(page, other_reason))
        expected = _messages_of(data, other_reason)[0]
        page.wait_for_function(
            "text => document.querySelectorAll('.el-table')[2].innerText.includes(text)",
            arg=expected,
            timeout=60_000,
        )
        page.screenshot(path=str(ARTIFACTS / "start_here_dirty.png"), full_page=True)
    finally:
        page.close()


def _messages_of(data, reason: str) -> list[str]:
    return data.quarantine.filter(pl.col("reason") == reason)["message"].to_list()


def _option(page, reason: str) -> str:
    labels = page.locator("select").first.locator("option").all_inner_texts()
    matching = [label for label in labels if re.match(rf"{re.escape(reason)}\s\(", label)]
    assert len(matching) == 1, labels
    return matching[0]


def test_start_here_says_plainly_when_a_typed_folder_cannot_be_loaded(
    browser, planted_server, tmp_path, tiny_planted
):
    page = _open_start_here(browser, planted_server)
    try:
        page.get_by_role("button", name="A folder").click()
        folder = page.get_by_placeholder("default:")
        folder.fill(str(tmp_path / "no-such-export"))
        folder.press("Enter")
        page.locator("button.widget-button", has_text="Load").click()
        # the report (cleared) and the loader's message are widgets of their own: wait for both
        wait_for_state(
            page,
            "() => !!document.querySelector('.el-error')"
            " && document.querySelector('.el-headline h2').innerText === 'No data loaded yet'",
            what="the error and the cleared report",
        )
        text = page.inner_text("body")
        assert "The data could not be loaded." in text
        assert "no-such-export" in page.inner_text(".el-error")
        assert "Traceback" not in text
        assert page.inner_text(".el-headline h2") == "No data loaded yet"

        # the right folder loads again from the page
        folder.fill(str(tiny_planted))
        folder.press("Enter")
        page.locator("button.widget-button", has_text="Load").click()
        page.wait_for_function(
            "() => document.querySelector('.el-headline h2').innerText === 'The data is sound'",
            timeout=120_000,
        )
        assert page.locator(".el-error").count() == 0
    finally:
        page.close()


def test_start_here_loads_files_uploaded_in_the_page(browser, dirty_server, tiny_planted):
    page = _open_start_here(browser, dirty_server)
    try:
        assert page.inner_text(".el-headline h2") != "The data is sound"  # the dirty folder
        page.get_by_role("button", name="Upload files").click()
        files = [str(f) for f in sorted(tiny_planted.glob("*.parquet")) if f.name[0] != "_"]
        with page.expect_file_chooser() as chooser:
            page.locator("button.widget-upload").click()
        chooser.value.set_files(files)
        wait_for_upload(page, len(files))  # read and sent: Load before that loads nothing
        page.locator("button.widget-button", has_text="Load").click()
        # the uploaded files are built afresh (their own cache), in a kernel of a busy machine
        page.wait_for_function(
            "() => document.querySelector('.el-headline h2').innerText === 'The data is sound'",
            timeout=240_000,
        )
        _assert_no_failure(page)
        page.screenshot(path=str(ARTIFACTS / "start_here_upload.png"), full_page=True)
    finally:
        page.close()
