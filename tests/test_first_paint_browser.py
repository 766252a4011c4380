"""The first-paint preview in a served page, in headless Chromium (effortlens_widgets.first_paint).

``effortlens serve`` with a preheated kernel, on data whose every text field is hostile
(tests/hostile_data.py): the page's HTML carries a static SVG of the first chart, visible with
Voilà's JavaScript blocked altogether; with it, the interactive chart replaces the preview (one
chart per panel, never two); no payload runs either way.
"""

from __future__ import annotations

import base64
import re
import secrets
import sys
from pathlib import Path

import pytest
from browser_support import ARTIFACTS, CHROMIUM, wait_for_state
from hostile_data import RAW_MARKUP, hostile_copy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from load_test import CHART, served  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test)"),
]

APP = "01_return_on_effort.ipynb"
PREVIEW = ".el-first-paint"
IN_PLACE = ".el-first-paint-inplace"  # the preview's image, moved into its chart's panel
IMAGE = "img.el-first-paint-chart"


@pytest.fixture(scope="module")
def server(tiny_planted, tmp_path_factory):
    data = hostile_copy(tiny_planted, tmp_path_factory.mktemp("first-paint") / "hostile")
    token = secrets.token_urlsafe(16)
    with served(
        data=data,
        token=token,
        log_path=ARTIFACTS / "serve-first-paint.log",
        args=["--pool", "0", "--pool-app", f"{APP}=1", "--pool-refill-max-wait", "5"],
        timeout=300,
        wait_for_pool=APP,
    ) as (url, _proc):
        yield f"{url}/voila/render/{{}}?token={token}"


def _watched(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    ran = {"dialogs": []}
    page.on("dialog", lambda d: (ran["dialogs"].append(d.message), d.dismiss()))
    page.add_init_script("window.__pwned = 0;")
    return page, ran


def _assert_nothing_ran(page, ran) -> None:
    assert page.evaluate("window.__pwned") == 0
    assert ran["dialogs"] == []
    assert "Traceback" not in page.inner_text("body")


# 01: a preheated kernel, a chart by week; 06: a viewer's own kernel, a chart by team, whose
# names here are all hostile
@pytest.mark.parametrize("app", [APP, "06_organisation.ipynb"])
def test_the_preview_is_visible_before_any_javascript_runs(browser, server, app):
    page, ran = _watched(browser)
    # Voila's app never loads: what the viewer sees is the HTML and CSS alone
    page.route(re.compile(r".*/voila/static/voila\.js.*"), lambda route: route.abort())
    try:
        response = page.goto(server.format(app), wait_until="load", timeout=180_000)
        html = response.text()
        image = page.locator(f"{PREVIEW} img")
        image.wait_for(state="visible", timeout=30_000)
        assert image.evaluate("img => img.complete && img.naturalWidth > 300")
        assert page.locator(PREVIEW).inner_text().count("interactive chart") == 1
        assert not page.locator("#loading").is_visible()  # no spinner over it
        assert page.locator(CHART).count() == 0
        page.screenshot(path=str(ARTIFACTS / f"first-paint-preview-{app[:2]}.png"))
        # the SVG in the page: hostile names as escaped text, no markup, no script
        found = re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", html)
        assert len(found) == 1
        svg = base64.b64decode(found[0]).decode("utf-8")
        assert not [m for m in RAW_MARKUP if m in svg]
        assert "<script" not in svg
        if app != APP:  # the team names are on this chart: as escaped text
            assert "&lt;script&gt;window.__pwned" in svg or "&lt;img src=x" in svg
        assert not [m for m in RAW_MARKUP if m in html]
        _assert_nothing_ran(page, ran)
    finally:
        page.close()


def test_the_interactive_chart_replaces_the_preview(browser, server):
    page, ran = _watched(browser)
    try:
        page.goto(server.format(APP), wait_until="commit", timeout=180_000)
        page.wait_for_selector(IMAGE, state="visible", timeout=120_000)
        page.wait_for_selector(CHART, timeout=300_000)
        # gone from the page, not only hidden (at the top of the output or in its panel)
        _wait_until_gone(page)
        # one "Week by week" panel, with its one chart
        titles = page.locator("h3", has_text="Week by week")
        assert titles.count() == 1
        panel = page.locator(".el-panel", has=titles)
        assert panel.locator(".vega-embed svg").count() >= 1
        assert page.locator("img[src^='data:image/svg+xml']").count() == 0
        page.screenshot(path=str(ARTIFACTS / "first-paint-final.png"))
        _assert_nothing_ran(page, ran)
    finally:
        page.close()


def _wait_until_gone(page) -> None:
    """Wait until the preview has left the page (its script removes it once the chart drew)."""
    wait_for_state(
        page,
        "sel => document.querySelectorAll(sel).length === 0",
        arg=f"{PREVIEW}, {IN_PLACE}",
        timeout=30_000,
        what="the preview removed from the page once its chart drew",
    )


def _box(locator) -> dict:
    locator.first.wait_for(state="visible", timeout=300_000)
    return locator.first.bounding_box()


def test_the_chart_draws_where_its_preview_was(browser, server):
    """When the app's widgets come, the preview moves into its chart's panel, where the chart
    then draws at the same place and size: nothing on the page jumps when the chart comes."""
    waiting, ran = _watched(browser)
    drawn, _ = _watched(browser)
    try:
        # the chart bundle never arrives: the page stays with its widgets and the preview
        waiting.route(re.compile(r".*/effortlens/static/jupyterchart-.*"), lambda r: r.abort())
        waiting.goto(server.format(APP), wait_until="commit", timeout=180_000)
        image = _box(waiting.locator(f".el-first-paint-target {IN_PLACE} {IMAGE}"))
        heading = _box(waiting.locator(".el-first-paint-target h3"))
        assert heading["y"] < image["y"]  # under its panel's own heading
        assert waiting.locator(PREVIEW).count() == 0  # the rest of the preview has gone
        assert waiting.locator(f"{IN_PLACE}").inner_text().count("interactive chart") == 1
        waiting.screenshot(path=str(ARTIFACTS / "first-paint-in-place.png"))
        _assert_nothing_ran(waiting, ran)
        drawn.goto(server.format(APP), wait_until="commit", timeout=180_000)
        chart = _box(drawn.locator(f".el-first-paint-target {CHART}"))
        _wait_until_gone(drawn)
        drawn.screenshot(path=str(ARTIFACTS / "first-paint-drawn.png"))
        # the same place, to a few pixels, and the same size, to a few percent (the same spec,
        # drawn by the same Vega; text is measured a little differently in the SVG writer)
        for key in ("x", "y"):
            assert abs(chart[key] - image[key]) <= 6, (key, chart, image)
        for key in ("width", "height"):
            assert abs(chart[key] - image[key]) <= 0.04 * image[key], (key, chart, image)
    finally:
        waiting.close()
        drawn.close()
