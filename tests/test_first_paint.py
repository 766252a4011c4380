"""The static preview of an app's first chart (effortlens_widgets.first_paint), without a browser.

Under Voilà an app's display carries an SVG of its first chart for the page's first paint;
outside it (JupyterLab) nothing extra. The SVG comes from the spec the interactive chart draws,
follows Hide names, escapes hostile names, is rendered once per spec (a disk cache), and a
failed render means no preview, never an error.
"""

from __future__ import annotations

import base64
import logging
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import polars as pl
import pytest
from hostile_data import PAYLOADS, RAW_MARKUP, hostile_copy

from effortlens_widgets import first_paint
from effortlens_widgets.app import App
from effortlens_widgets.apps.return_on_effort import return_on_effort_app
from effortlens_widgets.first_paint import PREVIEW_MIME
from effortlens_widgets.views import BySlice


@pytest.fixture
def voila(monkeypatch, tmp_path):
    """A kernel as Voilà starts it, with a cache folder of its own."""
    monkeypatch.setenv("VOILA_PREHEAT", "True")
    monkeypatch.setenv("EFFORTLENS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _svg(bundle: dict) -> str:
    return base64.b64decode(bundle[PREVIEW_MIME]["svg_base64"]).decode("utf-8")


def _by_rep_app(data, *, anonymise: bool) -> App:
    """A page whose first chart compares reps by name."""

    def by_rep(state):
        view = BySlice(state)
        view.by = "Rep"
        return view

    return App(title="t", question="q", views=[by_rep], data_dir=data, anonymise=anonymise)


def test_outside_voila_an_app_displays_nothing_extra(tiny_planted, monkeypatch):
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    app = return_on_effort_app(data_dir=tiny_planted)
    bundle = app._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "application/vnd.jupyter.widget-view+json"}


def test_under_voila_the_first_chart_comes_as_an_svg_of_its_spec(tiny_planted, voila):
    app = return_on_effort_app(data_dir=tiny_planted)
    bundle = app._repr_mimebundle_()
    shown = bundle[PREVIEW_MIME]
    assert shown["title"] == "Week by week"  # the first chart on the page, in page order
    svg = _svg(bundle)
    ET.fromstring(svg)  # well-formed
    assert svg.startswith("<svg") and "ROE per 100 activities by week" in svg
    # rendered once, then read from the cache by the next kernel
    assert len(list(voila.glob("first-paint/*.svg"))) == 1


def test_a_second_kernel_reads_the_cache_and_starts_no_renderer(tiny_planted, voila, monkeypatch):
    first = _svg(return_on_effort_app(data_dir=tiny_planted)._repr_mimebundle_())

    def no_renderer(*args, **kwargs):
        raise AssertionError("the renderer ran again")

    monkeypatch.setattr(first_paint.subprocess, "run", no_renderer)
    again = _svg(return_on_effort_app(data_dir=tiny_planted)._repr_mimebundle_())
    assert again == first


@pytest.mark.parametrize(
    "failure",
    [
        subprocess.CompletedProcess([], 1, "", "Traceback: renderer crashed"),
        subprocess.CompletedProcess([], 0, "not an svg", ""),
        subprocess.TimeoutExpired(["python"], 60),
    ],
)
def test_a_failed_render_means_no_preview_and_no_error(
    tiny_planted, voila, monkeypatch, capsys, failure
):
    def renderer(*args, **kwargs):
        if isinstance(failure, Exception):
            raise failure
        return failure

    monkeypatch.setattr(first_paint.subprocess, "run", renderer)
    app = return_on_effort_app(data_dir=tiny_planted)
    bundle = app._repr_mimebundle_()
    assert PREVIEW_MIME not in bundle
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert not list(voila.glob("first-paint/*.svg"))  # nothing half-written is kept
    # nothing on the kernel's stdout/stderr either: a kernel shows those in the page
    out, err = capsys.readouterr()
    assert "preview" not in out + err and "Traceback" not in out + err
    # the reason went to the server log (a kernel's sys.__stderr__), as app.log_problem's do
    handlers = logging.getLogger("effortlens_widgets").handlers
    assert any(getattr(h, "stream", None) is sys.__stderr__ for h in handlers)


def test_a_page_with_no_chart_has_no_preview(tmp_path, voila):
    app = return_on_effort_app(data_dir=tmp_path / "missing")  # the load fails: a message
    assert app.error
    assert PREVIEW_MIME not in app._repr_mimebundle_()


def test_the_preview_follows_hide_names(tiny_planted, voila):
    names = [n for n in pl.read_parquet(tiny_planted / "reps.parquet")["rep_name"] if n]
    shown = _svg(_by_rep_app(tiny_planted, anonymise=False)._repr_mimebundle_())
    assert [n for n in names if n in shown]  # the names are on the chart when shown
    hidden = _svg(_by_rep_app(tiny_planted, anonymise=True)._repr_mimebundle_())
    assert [n for n in names if n in hidden] == []


def test_hostile_names_are_escaped_text_in_the_svg(tiny_planted, tmp_path, voila):
    hostile = hostile_copy(tiny_planted, tmp_path / "hostile")
    svg = _svg(_by_rep_app(hostile, anonymise=False)._repr_mimebundle_())
    root = ET.fromstring(svg)  # still well-formed XML
    elements = {el.tag.rsplit("}", 1)[-1] for el in root.iter()}
    assert elements.isdisjoint({"script", "foreignObject", "iframe", "img"})
    handlers = [a for el in root.iter() for a in el.attrib if a.lower().startswith("on")]
    assert handlers == []
    assert not [m for m in RAW_MARKUP if m in svg]
    text = " ".join(t for el in root.iter() for t in [el.text] if t)
    # a payload reached the chart, as text (the XML parser has unescaped it)
    assert any(re.sub(r"\s+", " ", p)[:12] in text for p in PAYLOADS)
