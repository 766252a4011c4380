"""Display pieces: a chart panel around an offline ``alt.JupyterChart``, KPI cards, downloads.

Charts are always shown as ``alt.JupyterChart`` widgets in offline mode (no CDN is needed), fed
by ``effortlens.charts`` builders with small, pre-aggregated frames.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import anywidget
import ipywidgets as widgets
import polars as pl
from traitlets import Bool, Int, List, Unicode, observe

from effortlens.charts.theme import chart_spec
from effortlens.safe_csv import csv_bytes
from effortlens_widgets._html import error_box, escape, table
from effortlens_widgets._shared import own_layout

_OFFLINE = False
#: Set by ``effortlens serve`` for its kernels: the bundle's path under the server's base URL.
SERVED_BUNDLE_ENV = "EFFORTLENS_CHART_BUNDLE"
# The chart module when the server serves the bundle: loads it on first render (the module
# itself must load within anywidget's 2 s, so it awaits nothing at import).
_SERVED_ESM = """
let bundle;
function load() {
  if (!bundle) {
    let base = "/";
    try {
      base = JSON.parse(document.getElementById("jupyter-config-data").textContent).baseUrl || "/";
    } catch (err) {}
    bundle = import(new URL(base + __BUNDLE__, window.location.origin).href);
  }
  return bundle;
}
export default {
  async render(context) {
    const module = await load();
    return module.default.render(context);
  },
};
"""


#: How every chart is embedded: without vega-embed's actions menu (see ChartPanel.show).
CHART_EMBED_OPTIONS = {"actions": False}


def _bundle_in_child(cached: Path) -> bool:
    """Write the offline chart module to ``cached`` from a child process
    (:func:`effortlens.warm.start_chart_bundle`: vl-convert's JavaScript runtime, once
    started in a kernel, stays resident there, ~100 MB); whether it did."""
    import subprocess

    from effortlens.warm import has_chart_bundle, start_chart_bundle

    child = start_chart_bundle(cached)
    if child is None:
        return False
    try:
        child.wait(timeout=300)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    return has_chart_bundle(cached)


def enable_offline_charts() -> None:
    """Serve the Vega JavaScript from the installed vl-convert bundle (no CDN), once.

    Bundling takes about three CPU seconds, in a child process (vl-convert's JavaScript
    runtime would stay in the kernel); the bundle depends only on the Altair and vl-convert
    versions, so it is kept on disk next to the enriched-facts cache and reused (a damaged or
    missing file is simply rebuilt).
    """
    global _OFFLINE
    if _OFFLINE:
        return
    # Altair offers no public hook to reuse a bundle: its class attributes ``_esm`` (the
    # bundled JavaScript) and ``_is_offline`` are what ``enable_offline`` itself sets.
    chart_class = alt.JupyterChart
    served = os.environ.get(SERVED_BUNDLE_ENV)
    if served:
        # `effortlens serve` serves the bundle at this path: each chart then carries a few
        # lines instead of 0.9 MB, and the browser fetches and compiles the bundle once per
        # page (and caches it) instead of once per chart. Inline, a busy browser took more
        # than anywidget's 2 s to load each chart's copy ("Failed to initialize model").
        chart_class._esm = _SERVED_ESM.replace("__BUNDLE__", json.dumps(served))  # noqa: SLF001
        chart_class._is_offline = True  # noqa: SLF001
        _OFFLINE = True
        return
    from effortlens.warm import chart_bundle_path, has_chart_bundle

    cached = chart_bundle_path()  # made by `effortlens build` beside the build, else here
    if has_chart_bundle(cached) or _bundle_in_child(cached):
        chart_class._esm = cached.read_text("utf-8")  # noqa: SLF001
        chart_class._is_offline = True  # noqa: SLF001
    else:  # no child process or a read-only disk: in this process
        chart_class.enable_offline()
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            tmp.write_text(chart_class._esm, "utf-8")  # noqa: SLF001
            tmp.replace(cached)
        except OSError:
            pass  # a read-only disk only costs the two seconds again next time
    _OFFLINE = True


_DOWNLOAD_ESM = """
function render({ model, el }) {
  const button = document.createElement("button");
  button.className = "jupyter-button widget-button el-download";
  const draw = () => {
    button.textContent = model.get("label");
    button.title = model.get("hint");
    button.disabled = !model.get("available");
    el.style.display = model.get("available") ? "" : "none";
  };
  draw();
  model.on("change:label", draw);
  model.on("change:hint", draw);
  model.on("change:available", draw);
  button.addEventListener("click", () => {
    button.disabled = true;
    model.send({ event: "download" });
  });
  model.on("msg:custom", (msg, buffers) => {
    draw();
    if (msg.event === "error") {
      button.title = msg.message;
      return;
    }
    if (msg.event !== "file" || !buffers.length) return;
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob(buffers, { type: msg.mime }));
    a.download = msg.filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  });
  el.appendChild(button);
}
export default { render };
"""


class DownloadButton(anywidget.AnyWidget):
    """A button that hands the browser a file, made when it is clicked.

    Nothing of the file is in the page until then: a view whose table behind the chart is
    large (a row per contact) costs no encoding, no websocket traffic and no page weight on
    every filter change. :meth:`offer` sets what a click makes; :meth:`payload` makes it
    (what a click sends, for scripts and tests).

    Examples
    --------
    >>> button = DownloadButton(label="CSV")
    >>> button.offer(lambda: b"a,b\\n1,2\\n", filename="view.csv", mime="text/csv")
    >>> button.available, button.payload()
    (True, b'a,b\\n1,2\\n')
    """

    _esm = _DOWNLOAD_ESM
    label = Unicode("⬇ CSV", help="Text of the button.").tag(sync=True)
    # not ``tooltip``: DOMWidget's own trait of that name breaks an anywidget view when set
    hint = Unicode("", help="Hover text (a failure's reason after a failed click).").tag(sync=True)
    available = Bool(False, help="Whether there is something to download.").tag(sync=True)
    filename = Unicode("effortlens.csv", help="Name the browser saves the file under.")
    mime = Unicode("text/csv", help="Media type of the file.")

    def __init__(self, **kwargs):
        """A button with nothing to offer yet (hidden until :meth:`offer`)."""
        super().__init__(**kwargs)
        self._source: Callable[[], bytes] | None = None
        self.on_msg(self._on_click)

    def offer(
        self, source: Callable[[], bytes] | None, *, filename: str, mime: str = "text/csv"
    ) -> None:
        """Offer the bytes ``source()`` makes, as ``filename``; ``None`` offers nothing."""
        self._source = source
        self.filename, self.mime = filename, mime
        self.available = source is not None

    def payload(self) -> bytes | None:
        """The file a click sends now (``None`` when nothing is offered)."""
        return self._source() if self._source is not None else None

    def click(self) -> None:
        """Do what a click on the page does: send the file (or the reason there is none)."""
        self._on_click(self, {"event": "download"}, [])

    def _on_click(self, _widget, content, _buffers) -> None:
        if not isinstance(content, dict) or content.get("event") != "download":
            return
        try:
            data = self.payload()
        except Exception as err:  # noqa: BLE001 - the viewer gets a reason, never a traceback
            self.send({"event": "error", "message": f"Download unavailable: {err}"})
            return
        if data is None:
            self.send({"event": "error", "message": "Nothing to download in this selection."})
            return
        self.send({"event": "file", "filename": self.filename, "mime": self.mime}, [data])


def downloads(widget: widgets.Widget) -> list[DownloadButton]:
    """The download buttons offering a file in ``widget`` and its children, in page order."""
    found, stack = [], [widget]
    while stack:
        w = stack.pop(0)
        if isinstance(w, DownloadButton) and w.available:
            found.append(w)
        stack[:0] = list(getattr(w, "children", ()) or ())
    return found


def _with_spec(chart: alt.TopLevelMixin, spec: dict) -> alt.TopLevelMixin:
    """``chart``, whose ``to_dict()`` gives ``spec`` (its spec, made once) without Altair's work.

    A ``JupyterChart`` makes the spec of every chart it is given, validated against the
    Vega-Lite schema: that took about half of a page's kernel time on a filter change (20-40 ms
    a chart), and the spec itself another 2-10 ms. The spec is made once, unvalidated, by
    :func:`effortlens.charts.theme.chart_spec` (from a cached layout for the builders that
    have one); the builders' specs are validated by the tests (``tests/test_charts_*.py``).
    """
    object.__setattr__(chart, "to_dict", lambda *args, **kwargs: spec)
    return chart


class ChartPanel(widgets.VBox):
    """A titled chart with a caption, a message area and downloads (CSV of the table, PNG).

    Call :meth:`show` with a chart (and the table behind it) whenever the view changes; the
    same ``JupyterChart`` widget is reused so the page does not flicker. :meth:`on_select`
    wires a chart selection to a callback (e.g. clicking a rep sets the page filter).
    """

    title = Unicode("", help="Heading shown above the chart.")
    caption = Unicode("", help="One or two sentences on how to read the chart.")
    filename = Unicode("effortlens-view", help="Stem of downloaded files.")

    def __init__(self, *, title: str = "", caption: str = "", filename: str = "", **kwargs):
        """An empty panel; :meth:`show` puts a chart in it."""
        # one HTML widget for the heading and the message (each widget is a model, a view and
        # its layout and style models in every viewer's page)
        self._heading = widgets.HTML()
        self._note = ""
        super().__init__(**kwargs)
        enable_offline_charts()
        self.title, self.caption = title, caption
        self.filename = filename or (title.lower().replace(" ", "-") or "effortlens-view")
        # the chart goes between the heading and the downloads when it is first shown
        self._jchart: alt.JupyterChart | None = None
        self._table: pl.DataFrame | None = None
        self._chart: alt.TopLevelMixin | None = None
        self._csv = DownloadButton(label="⬇ CSV", hint="The table behind this chart")
        self._png = DownloadButton(label="⬇ PNG", hint="This chart as an image")
        self._selection_handlers: list[tuple[str, Callable]] = []
        self.add_class("el-panel")
        self._downloads = widgets.HBox([self._csv, self._png], layout={"align_items": "center"})
        self.children = [self._heading, self._downloads]
        self._render_heading()

    @property
    def chart_shown(self) -> bool:
        """Whether the panel shows a chart now (not a message in its place)."""
        return (
            self._chart is not None
            and self._jchart is not None
            and self._jchart.layout.display != "none"
        )

    @observe("title", "caption")
    def _on_title(self, change) -> None:
        """A new title or caption redraws the heading."""
        self._render_heading()

    def _render_heading(self) -> None:
        caption = f'<p class="el-caption">{escape(self.caption)}</p>' if self.caption else ""
        self._heading.value = (
            f'<h3 class="el-panel-title">{escape(self.title)}</h3>{caption}{self._note}'
        )

    def show(
        self,
        chart: alt.TopLevelMixin,
        *,
        table_frame: pl.DataFrame | None = None,
        width: int | None = None,
    ) -> None:
        """Show ``chart`` (and offer ``table_frame`` as CSV); ``width`` overrides its width."""
        if self._note:
            self._note = ""
            self._render_heading()
        spec = chart_spec(chart)
        if width is not None:
            spec = {**spec, "width": width}
        # the chart hands the JupyterChart this spec (its selections come from the chart)
        chart = _with_spec(chart, spec)
        self._chart, self._table = chart, table_frame
        if self._jchart is None:
            # no vega-embed actions menu: its "Open in Vega Editor" posts the chart and its
            # data to an outside site, and the panel has its own CSV/PNG downloads
            # its own layout: a message hides it (see effortlens_widgets._shared)
            self._jchart = own_layout(
                alt.JupyterChart(
                    chart, embed_options=CHART_EMBED_OPTIONS, layout=widgets.Layout(width="100%")
                )
            )
            self.children = [self._heading, self._jchart, self._downloads]
        else:
            self._jchart.chart = chart
        # every new chart brings new selection objects: wire the handlers to them
        for name, handler in self._selection_handlers:
            self._wire(name, handler)
        self._jchart.layout.display = None
        self._csv.offer(
            (lambda: csv_bytes(table_frame)) if table_frame is not None else None,
            filename=f"{self.filename}.csv",
        )
        self._png.offer(self._png_bytes, filename=f"{self.filename}.png", mime="image/png")

    def show_message(self, text: str, *, error: bool = False) -> None:
        """Replace the chart by a message (no data for this slice, or a readable failure)."""
        self._note = (
            error_box("This view could not be drawn.", text)
            if error
            else f'<div class="el-note">{escape(text)}</div>'
        )
        self._render_heading()
        if self._jchart is not None:
            self._jchart.layout.display = "none"
        self._csv.offer(None, filename=f"{self.filename}.csv")
        self._png.offer(None, filename=f"{self.filename}.png", mime="image/png")

    def on_select(self, param: str, handler: Callable[[list[dict]], None]) -> None:
        """Call ``handler(points)`` when the chart's point selection ``param`` changes."""
        self._selection_handlers.append((param, handler))
        if self._jchart is not None:
            self._wire(param, handler)

    def _wire(self, param: str, handler: Callable) -> None:
        selections = self._jchart.selections
        if param in selections.trait_names():
            selections.observe(lambda change: handler(change["new"].value), [param])

    def _png_bytes(self) -> bytes:
        import vl_convert as vlc

        return vlc.vegalite_to_png(self._chart.to_dict(), scale=2)


@dataclass(frozen=True)
class Kpi:
    """One headline number: its label, current and comparison values and how to read it.

    Rates (``fmt`` with ``%``) change in percentage points, counts and ratios in percent.
    """

    label: str
    value: float | None
    previous: float | None = None
    fmt: str = "{:,.0f}"
    higher_is_better: bool = True
    hint: str = ""
    versus: str = "previous period"  # '' shows the hint instead of a comparison

    def delta_html(self) -> str:
        """The card's comparison line: change against ``previous``, or the hint."""
        if not self.versus:
            return f'<span class="el-kpi-delta el-muted">{escape(self.hint)}</span>'
        if self.value is None or self.previous is None:
            return f'<span class="el-kpi-delta el-muted">no {escape(self.versus)} to compare</span>'
        points = "%" in self.fmt
        if points:
            change = self.value - self.previous
            text, flat = f"{change * 100:+.1f} pts", abs(change) < 0.0005
        elif self.previous == 0:
            return f'<span class="el-kpi-delta el-muted">{escape(self.versus)}: 0</span>'
        else:
            change = (self.value - self.previous) / abs(self.previous)
            text, flat = f"{change:+.0%}", abs(change) < 0.005
        good = (change >= 0) == self.higher_is_better
        arrow, tone = ("▲" if change >= 0 else "▼"), ("el-good" if good else "el-bad")
        if flat:
            tone, arrow = "el-muted", "■"
        return (
            f'<span class="el-kpi-delta {tone}">{arrow} {text} '
            f"vs {escape(self.versus)} ({self.fmt.format(self.previous)})</span>"
        )


def kpi_frame(kpis: Sequence[Kpi]) -> pl.DataFrame:
    """The numbers of a row of KPI cards as a frame: label, value, previous, versus.

    Examples
    --------
    >>> kpi_frame([Kpi("Deals", 12, 10)]).row(0)
    ('Deals', 12.0, 10.0, 'previous period')
    """
    return pl.DataFrame(
        {
            "label": [k.label for k in kpis],
            "value": [k.value for k in kpis],
            "previous": [k.previous for k in kpis],
            "versus": [k.versus for k in kpis],
        },
        schema={
            "label": pl.String,
            "value": pl.Float64,
            "previous": pl.Float64,
            "versus": pl.String,
        },
    )


class KpiCards(widgets.HTML):
    """A row of KPI cards: set ``kpis`` (or call :meth:`show`) to update them."""

    kpis = List(help="The Kpi values shown, in order.")

    def show(self, kpis: Sequence[Kpi]) -> None:
        """Show ``kpis`` (the same as setting ``kpis``); ``[]`` empties the row."""
        self.kpis = list(kpis)

    @observe("kpis")
    def _on_kpis(self, change) -> None:
        if not self.kpis:
            self.value = ""
            return
        cards = []
        for k in self.kpis:
            value = "—" if k.value is None else k.fmt.format(k.value)
            hint = f' title="{escape(k.hint)}"' if k.hint else ""
            cards.append(
                f'<div class="el-kpi"{hint}><div class="el-kpi-label">{escape(k.label)}</div>'
                f'<div class="el-kpi-value">{escape(value)}</div>{k.delta_html()}</div>'
            )
        self.value = f'<div class="el-kpis">{"".join(cards)}</div>'


class TablePanel(widgets.VBox):
    """A titled small table with a CSV download (tables stay small: views cut them first).

    Call :meth:`show` with a frame or :meth:`show_message` with a sentence; changing
    ``title``, ``caption`` or ``max_rows`` redraws what is shown.
    """

    title = Unicode("", help="Heading shown above the table.")
    caption = Unicode("", help="One or two sentences on how to read the table.")
    filename = Unicode("effortlens-table", help="Stem of the downloaded CSV.")
    max_rows = Int(25, min=1, help="Rows shown on the page; the CSV has them all.")

    def __init__(self, *, title: str = "", caption: str = "", filename: str = "", max_rows=25):
        """An empty panel; :meth:`show` puts a table in it."""
        self._html = widgets.HTML()
        self._csv = DownloadButton(label="⬇ CSV", hint="Every row of this table")
        self._shown: tuple = ("message", "")
        super().__init__()
        self.title, self.caption, self.max_rows = title, caption, max_rows
        self.filename = filename or title.lower().replace(" ", "-") or "effortlens-table"
        self.children = [self._html, self._csv]

    def show(
        self,
        frame: pl.DataFrame,
        *,
        labels: dict[str, str] | None = None,
        percent: tuple[str, ...] = (),
    ) -> None:
        """Show ``frame`` (cut to ``max_rows``); ``percent`` columns read as "31%" on the
        page while the CSV keeps the exact shares."""
        self._shown = ("table", frame, labels, percent)
        self._draw()

    def show_message(self, text: str) -> None:
        """Replace the table by a message (nothing to list in this selection)."""
        self._shown = ("message", text)
        self._draw()

    @observe("title", "caption", "max_rows", "filename")
    def _on_title(self, change) -> None:
        """A new title, caption or row limit redraws what is shown."""
        self._draw()

    def _draw(self) -> None:
        heading = f'<h3 class="el-panel-title">{escape(self.title)}</h3>'
        if self._shown[0] == "message":
            text = self._shown[1]
            self._html.value = f'{heading}<div class="el-note">{escape(text)}</div>' if text else ""
            self._csv.offer(None, filename=f"{self.filename}.csv")
            return
        _, frame, labels, percent = self._shown
        shown = frame.with_columns(
            (pl.col(c) * 100).round(0).cast(pl.Int64).cast(pl.String).add("%").alias(c)
            for c in percent
            if c in frame.columns
        )
        cut = shown.head(self.max_rows)
        more = (
            f'<p class="el-muted">Showing {self.max_rows} of {frame.height:,} rows; '
            "the CSV has them all.</p>"
            if frame.height > self.max_rows
            else ""
        )
        caption = f'<p class="el-caption">{escape(self.caption)}</p>' if self.caption else ""
        self._csv.offer(lambda: csv_bytes(frame), filename=f"{self.filename}.csv")
        self._html.value = f"{heading}{caption}{table(cut, labels=labels)}{more}"
