"""A static preview of an app's first chart, carried in the served page's HTML (first paint).

In Voilà's lab template nothing of a page is visible until its whole JavaScript app (about
5 MB) has run: every output waits as JSON in a hidden ``#rendered_cells``. Under Voilà, an
:class:`~effortlens_widgets.app.App` therefore adds to its display a static SVG of its first
chart, rendered from the very Vega-Lite spec its interactive ``JupyterChart`` draws. The
``effortlens`` Voilà template (``share/jupyter/voila/templates/effortlens/index.html.j2``)
shows it as an image as soon as the HTML and CSS are parsed and says it is a preview; once the
app's widgets are on the page it moves the image into the panel of that chart (marked with
:data:`TARGET_CLASS`), in the very place the chart will draw, and removes it once the
interactive chart has drawn there, so nothing on the page jumps. Preheated kernels render the
notebook before any viewer arrives, so a viewer pays nothing for it.

- The SVG is made by ``vl-convert`` (Altair's own export engine) in a short-lived subprocess,
  so its V8 engine (about 100 MB) never lives in a kernel, and it is cached on disk under the
  cache folder by a hash of the spec: a pool of 20 kernels renders it once.
- The page shows it as ``<img src="data:image/svg+xml;base64,…">``: an SVG shown as an image
  runs no script and loads nothing, whatever text the chart holds (hostile names are escaped
  by the SVG writer too).
- Any failure (no chart, a timeout, a crash of the renderer) means no preview, never a message
  or a traceback on the page; the reason goes to the server log.
- Outside Voilà (JupyterLab, scripts) an app's display carries nothing extra.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import ipywidgets as widgets

#: The mime type of the preview in an app's display bundle (read by the Voilà template).
PREVIEW_MIME = "application/vnd.effortlens.first-paint+json"
#: The class of the panel whose chart the preview stands for: the page moves the preview into
#: that panel, where its chart will draw, as soon as the panel is on the page (no jump when the
#: chart comes; see the ``effortlens`` template).
TARGET_CLASS = "el-first-paint-target"
#: Set by Voilà in its kernels' environment (``"True"`` for a preheated kernel, else ``"False"``).
VOILA_ENV = "VOILA_PREHEAT"
#: Seconds the renderer subprocess may take (a cold vl-convert start is about 1-2 CPU s).
RENDER_TIMEOUT_S = 60.0

_LOG = logging.getLogger("effortlens_widgets")


def _log(message: str, *args) -> None:
    """A warning for the server log (the kernel's ``sys.__stderr__``), never the page.

    Without a handler, logging would write to ``sys.stderr``, which a kernel shows as the
    cell's output: in the viewer's page. The handler is the one ``app.log_problem`` sets.
    """
    if not _LOG.handlers:
        handler = logging.StreamHandler(sys.__stderr__)
        handler.setFormatter(logging.Formatter("%(asctime)s effortlens_widgets: %(message)s"))
        _LOG.addHandler(handler)
        _LOG.propagate = False
    _LOG.warning(message, *args)


# The renderer: the spec on stdin, the SVG on stdout. Nothing else is imported.
_RENDER = (
    "import sys, vl_convert as vlc\n"
    "spec = sys.stdin.read()\n"
    "sys.stdout.write(vlc.vegalite_to_svg(spec, vl_version=sys.argv[1]))\n"
)


def under_voila() -> bool:
    """Whether this kernel runs a Voilà page (Voilà sets ``VOILA_PREHEAT`` in every kernel).

    Examples
    --------
    >>> import os
    >>> saved = os.environ.pop("VOILA_PREHEAT", None)
    >>> under_voila()
    False
    >>> os.environ["VOILA_PREHEAT"] = "False"
    >>> under_voila()
    True
    >>> _ = os.environ.pop("VOILA_PREHEAT") if saved is None else os.environ.update(
    ...     VOILA_PREHEAT=saved)
    """
    return VOILA_ENV in os.environ


def first_chart_panel(widget: widgets.Widget):
    """The first :class:`~effortlens_widgets.panels.ChartPanel` below ``widget`` that shows a
    chart (depth first, in page order), or None."""
    from effortlens_widgets.panels import ChartPanel

    if isinstance(widget, ChartPanel):
        return widget if widget.chart_shown else None
    if getattr(widget.layout, "display", None) == "none":
        return None
    for child in getattr(widget, "children", ()):
        found = first_chart_panel(child)
        if found is not None:
            return found
    return None


def _vl_version() -> str:
    """vl-convert's name of the Vega-Lite version Altair writes (e.g. ``v6_4``)."""
    import altair as alt

    major, minor = alt.SCHEMA_VERSION.lstrip("v").split(".")[:2]
    return f"v{major}_{minor}"


def _canonical(value):
    """``value`` with every float rounded to 12 significant digits (a pixel never moves).

    Kernels computing the same chart differ in the last bits of some sums (Polars aggregates in
    parallel); rounded, their specs are equal, so the pool shares one cached SVG.

    Examples
    --------
    >>> _canonical({"a": [436.3466666666667, 1, "x"], "b": 436.34666666666664})
    {'a': [436.346666667, 1, 'x'], 'b': 436.346666667}
    """
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def cache_path(spec_json: str, vl_version: str) -> Path:
    """Where the SVG of a spec is kept: a hash of the spec, the versions and the renderer."""
    import vl_convert

    from effortlens.cache import default_cache_dir

    key = hashlib.sha256(
        "\n".join([vl_convert.__version__, vl_version, _RENDER, spec_json]).encode("utf-8")
    ).hexdigest()[:32]
    return default_cache_dir() / "first-paint" / f"{key}.svg"


def render_svg(spec: dict, *, timeout: float = RENDER_TIMEOUT_S) -> str | None:
    """The SVG of a Vega-Lite ``spec``, from the disk cache or a renderer subprocess.

    Floats are rounded to 12 significant digits first (:func:`_canonical`).

    Kernels rendering the same spec at once wait for one another (a lock file), so the
    renderer runs once. None when it fails (the reason is logged).

    Examples
    --------
    >>> svg = render_svg({"mark": "bar", "data": {"values": [{"a": 1}]},
    ...                   "encoding": {"y": {"field": "a", "type": "quantitative"}}})
    >>> svg.startswith("<svg")
    True
    """
    import fcntl

    try:
        spec_json = json.dumps(_canonical(spec), sort_keys=True, default=str)
        vl_version = _vl_version()
        path = cache_path(spec_json, vl_version)
        if path.is_file():
            return path.read_text("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.is_file():  # another kernel made it while this one waited
                return path.read_text("utf-8")
            done = subprocess.run(
                [sys.executable, "-c", _RENDER, vl_version],
                input=spec_json,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            svg = done.stdout
            if done.returncode != 0 or not svg.lstrip().startswith("<svg"):
                _log(
                    "first-paint preview not rendered (exit %s): %s",
                    done.returncode,
                    done.stderr[-500:],
                )
                return None
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(svg, "utf-8")
            tmp.replace(path)
            return svg
    except (OSError, ValueError, TypeError, subprocess.SubprocessError) as err:
        _log("first-paint preview not rendered: %s", err)
        return None


def preview(widget: widgets.Widget) -> dict | None:
    """The preview of ``widget``'s first chart for the page: its title and SVG (base64).

    None outside Voilà, when the page shows no chart, or when the SVG could not be made.
    """
    if not under_voila():
        return None
    try:
        panel = first_chart_panel(widget)
        if panel is None:
            return None
        spec = panel._chart.to_dict()  # noqa: SLF001 - the spec the JupyterChart was given
    except Exception as err:  # noqa: BLE001 - a preview must never break the page
        _log("first-paint preview skipped: %s", err)
        return None
    svg = render_svg(spec)
    if svg is None:
        return None
    panel.add_class(TARGET_CLASS)
    return {
        "title": panel.title,
        "caption": panel.caption,
        "svg_base64": base64.b64encode(svg.encode("utf-8")).decode("ascii"),
    }
