"""Every analysis app in a real Voilà server and headless Chromium, touched as a person would."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from browser_support import ARTIFACTS, CHROMIUM, PAGE_FAILURES, voila_server, wait_for_state

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test)"),
]

FAILURE_TEXT = PAGE_FAILURES + ("could not be drawn", "could not be loaded")
CHART = ".vega-embed svg, .vega-embed canvas"


@pytest.fixture(scope="module")
def server(small_planted):
    with voila_server(small_planted, log_path=ARTIFACTS / "voila-apps.log") as url:
        yield url


@pytest.fixture(scope="module")
def names(small_planted) -> list[str]:
    reps = pl.read_parquet(small_planted / "reps.parquet")
    return [n for n in reps["rep_name"].to_list() if n]


def _open(browser, url: str, notebook: str, *, query: str = "", charts: int = 1):
    page = browser.new_page(viewport={"width": 1280, "height": 2400})
    page.goto(f"{url}/voila/render/{notebook}.ipynb{query}", timeout=180_000)
    page.wait_for_selector(CHART, timeout=180_000)
    page.wait_for_function(
        f"document.querySelectorAll('.vega-embed').length >= {charts}", timeout=120_000
    )
    _assert_sound(page)
    return page


def _assert_sound(page) -> None:
    text = page.inner_text("body")
    for failure in FAILURE_TEXT:
        assert failure not in text, f"{failure!r} shown on the page"
    assert page.locator(".el-error").count() == 0


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _select(page, label: str, option: str) -> None:
    box = page.locator(".widget-dropdown").filter(has=page.locator("label", has_text=label))
    box.locator("select").first.select_option(label=option)


def _changes(page, selector: str, action, *, showing: str = "", timeout: float = 120_000) -> str:
    """The text of ``selector`` once ``action`` changed it (and it shows ``showing``)."""
    before = page.inner_text(selector)
    action()
    wait_for_state(
        page,
        "([sel, before, showing]) => { const el = document.querySelector(sel);"
        " return !!el && el.innerText !== before && el.innerText.includes(showing); }",
        arg=[selector, before, showing],
        timeout=timeout,
        what=f"{selector} changed from {before[:200]!r}"
        + (f" to show {showing!r}" * bool(showing)),
    )
    return page.inner_text(selector)


def test_landing_page_lists_every_app_with_its_question(server):
    import urllib.request

    html = urllib.request.urlopen(server + "/", timeout=30).read().decode()
    for title in [
        "Start here",
        "Return on effort",
        "Positive deviance",
        "Buyer journey",
        "Habits and patterns",
        "Interventions",
        "Organisation",
        "My mirror",
        "Pattern session",
    ]:
        assert title in html
    assert "Where does seller effort earn buyer action" in html


def test_return_on_effort_follows_the_team_filter_and_hides_names(browser, server, names):
    page = _open(browser, server, "01_return_on_effort", charts=3)
    kpis = _changes(
        page, ".el-kpis", lambda: _select(page, "Team", "SMB East"), showing="Customer-facing"
    )
    assert "Customer-facing activities" in kpis
    _select(page, "Team", "(all)")
    page.get_by_role("button", name="Rep", exact=True).click()
    page.wait_for_function(
        "names => names.some(n => document.body.innerHTML.includes(n))",
        arg=names,
        timeout=120_000,
    )
    page.get_by_role("button", name="Hide names").click()
    # the names go and the pseudonyms come, part by part: wait for both
    wait_for_state(
        page,
        "names => !names.some(n => document.body.innerHTML.includes(n))"
        " && /Rep \\d\\d/.test(document.body.innerHTML)",
        arg=names,
        what="no real name left and pseudonyms shown",
    )
    html = page.content()
    assert [n for n in names if n in html] == []
    assert re.search(r"Rep \d\d", html)
    _assert_sound(page)
    _shot(page, "app-return-on-effort")


def test_positive_deviance_names_the_deviants_and_switches_to_win_rate(
    browser, server, small_planted
):
    truth = json.loads((small_planted / "truth.json").read_text())
    page = _open(browser, server, "02_positive_deviance", charts=2)
    finding = page.inner_text(".el-finding")
    assert "beat peers just like them" in finding
    assert truth["deviant_practice"]["activity_type"] in finding
    _shot(page, "app-positive-deviance")
    after = _changes(
        page,
        ".el-finding",
        lambda: page.get_by_role("button", name="Win rate").click(),
        showing="win rate",
    )
    assert "win rate" in after
    _assert_sound(page)


def test_buyer_journey_splits_by_segment(browser, server, small_planted):
    truth = json.loads((small_planted / "truth.json").read_text())
    page = _open(browser, server, "03_buyer_journey", charts=3)
    finding = page.inner_text(".el-finding")
    assert truth["leaky_stage"] in finding and truth["stalled_stage"] in finding
    _shot(page, "app-buyer-journey")
    page.get_by_role("button", name="By segment").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.vega-embed svg text')]"
        ".some(t => t.textContent.includes('Enterprise'))",
        timeout=120_000,
    )
    _assert_sound(page)


def test_habits_follow_the_period(browser, server):
    page = _open(browser, server, "04_habits_and_patterns", charts=3)
    _shot(page, "app-habits")
    _changes(page, ".el-finding", lambda: _select(page, "Period", "Last 13 weeks"))
    _assert_sound(page)


def test_interventions_show_the_effect_and_switch_metric(browser, server):
    page = _open(browser, server, "05_interventions")
    assert "real rise" in page.inner_text(".el-finding")
    _shot(page, "app-interventions")
    _changes(page, ".el-kpis", lambda: page.get_by_role("button", name="ROE per 100").click())
    _assert_sound(page)


def test_organisation_names_the_low_selling_team(browser, server, small_planted):
    truth = json.loads((small_planted / "truth.json").read_text())
    page = _open(browser, server, "06_organisation", charts=3)
    assert truth["low_selling_team"] in page.inner_text(".el-finding")
    _shot(page, "app-organisation")
    _changes(page, ".el-finding", lambda: _select(page, "Segment", "Enterprise"))
    _assert_sound(page)


def test_rep_mirror_opens_on_the_rep_in_the_link_and_switches_rep(browser, server, small_planted):
    reps = pl.read_parquet(small_planted / "reps.parquet").filter(pl.col("exit_date").is_null())
    rep_id, name = reps.row(3)[:2]
    other = reps["rep_name"][4]
    page = _open(browser, server, "07_rep_mirror", query=f"?rep={rep_id}")
    assert name in page.inner_text(".el-finding")
    _shot(page, "app-rep-mirror")
    after = _changes(page, ".el-finding", lambda: _select(page, "Rep", other), showing=other)
    assert other in after
    _assert_sound(page)


def test_pattern_session_steps_forward_and_back_with_names_hidden(browser, server, names):
    page = _open(browser, server, "08_pattern_session")
    assert "1. Where our effort goes" in page.inner_text(".el-step")
    # a step's first visit builds its views with Back and Next disabled (a click then is
    # not queued behind it): each click waits for the step before it to be drawn, its own
    # panel there and the previous step's gone, and Next enabled again
    panel = (
        "[...document.querySelectorAll('.el-panel')].some(p => p.innerText.includes('{}')"
        " && p.querySelector('.vega-embed svg, .vega-embed canvas'))"
    )
    next_enabled = (
        "[...document.querySelectorAll('button')].some(b =>"
        " b.innerText.trim() === 'Next' && !b.disabled)"
    )
    for title, own, gone in (
        ("2. Effort with no answer", "Return on effort by slice", "Week by week"),
        ("3. When buyers answer", "When buyers answer", "Return on effort by slice"),
    ):
        page.get_by_role("button", name="Next").click()
        wait_for_state(
            page,
            f"() => document.querySelector('.el-step').innerText.includes('{title}')"
            f" && {panel.format(own)} && !({panel.format(gone)}) && {next_enabled}",
            what=f"step {title} drawn, Next enabled",
        )
    page.get_by_role("button", name="Next").click()
    # the step's title comes first, its views (built on first visit) after: wait for them, the
    # deviants' finding and the chart of the reps against their peers
    wait_for_state(
        page,
        "() => document.querySelector('.el-step').innerText.includes('4. Peers who do better')"
        " && document.body.innerText.includes('beat peers just like them')"
        " && [...document.querySelectorAll('.el-panel')].some(p =>"
        " p.innerText.includes('Each rep against peers just like them')"
        " && p.querySelector('.vega-embed svg, .vega-embed canvas'))",
        what="step 4 with its deviants' finding and chart",
    )
    html = page.content()
    assert [n for n in names if n in html] == []
    _shot(page, "app-pattern-session")
    page.get_by_role("button", name="Back").click()
    page.wait_for_function(
        "() => document.querySelector('.el-step').innerText.includes('3. When buyers answer')",
        timeout=120_000,
    )
    _assert_sound(page)


def test_clicking_a_team_bar_narrows_the_page(browser, server):
    page = _open(browser, server, "01_return_on_effort", charts=3)
    team_select = (
        page.locator(".widget-dropdown")
        .filter(has=page.locator("label", has_text="Team"))
        .locator("select")
        .first
    )
    assert team_select.evaluate("s => s.options[s.selectedIndex].text") == "(all)"
    panel = page.locator(".el-panel").filter(has_text="Return on effort by slice")
    panel.locator(".vega-embed svg .mark-rect path").first.click()
    page.wait_for_function(
        "s => s.options[s.selectedIndex].text !== '(all)'",
        arg=team_select.element_handle(),
        timeout=120_000,
    )
    _assert_sound(page)
