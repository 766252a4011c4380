"""Display pieces: a chart panel around an offline ``alt.JupyterChart``, KPI cards, downloads.

Charts are always shown as ``alt.JupyterChart`` widgets in offline mode (no CDN is needed), fed
by ``effortlens.charts`` builders with small, pre-aggregated frames.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import ipywidgets as widgets
import polars as pl
from traitlets import Int, List, Unicode, observe

from effortlens.safe_csv import csv_bytes
from effortlens_widgets._html import error_box, escape, table

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


def _bundle_cache() -> Path:
    import vl_convert

    from effortlens.cache import default_cache_dir

    stem = f"jupyterchart-{alt.__version__}-{vl_convert.__version__}.js"
    return default_cache_dir() / "js" / stem


def enable_offline_charts() -> None:
    """Serve the Vega JavaScript from the installed vl-convert bundle (no CDN), once.

    Bundling takes about two seconds, on every kernel start; the bundle depends only on the
    Altair and vl-convert versions, so it is kept on disk next to the enriched-facts cache and
    reused (a damaged or missing file is simply rebuilt).
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
    cached = _bundle_cache()
    if cached.is_file() and cached.stat().st_size > 10_000:
        chart_class._esm = cached.read_text("utf-8")  # noqa: SLF001
        chart_class._is_offline = True  # noqa: SLF001
    else:
        chart_class.enable_offline()
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            tmp.write_text(chart_class._esm, "utf-8")  # noqa: SLF001
            tmp.replace(cached)
        except OSError:
            pass  # a read-only disk only costs the two seconds again next time
    _OFFLINE = True


def _data_link(payload: bytes, *, filename: str, mime: str, label: str) -> str:
    encoded = base64.b64encode(payload).decode()
    return (
        f'<a class="el-download" download="{escape(filename)}" '
        f'href="data:{mime};base64,{encoded}">{escape(label)}</a>'
    )


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
        self._heading = widgets.HTML()
        super().__init__(**kwargs)
        enable_offline_charts()
        self.title, self.caption = title, caption
        self.filename = filename or (title.lower().replace(" ", "-") or "effortlens-view")
        self._message = widgets.HTML()
        self._chart_box = widgets.Box(layout=widgets.Layout(width="100%"))
        self._jchart: alt.JupyterChart | None = None
        self._table: pl.DataFrame | None = None
        self._chart: alt.TopLevelMixin | None = None
        self._csv = widgets.HTML()
        self._png_button = widgets.Button(
            description="PNG",
            icon="download",
            tooltip="Prepare a PNG of this chart",
            layout=widgets.Layout(width="6em"),
        )
        self._png_button.on_click(lambda _b: self._prepare_png())
        self._png = widgets.HTML()
        self._selection_handlers: list[tuple[str, Callable]] = []
        self.add_class("el-panel")
        self.children = [
            self._heading,
            self._message,
            self._chart_box,
            widgets.HBox(
                [self._csv, self._png_button, self._png], layout={"align_items": "center"}
            ),
        ]
        self._render_heading()

    @observe("title", "caption")
    def _on_title(self, change) -> None:
        """A new title or caption redraws the heading."""
        self._render_heading()

    def _render_heading(self) -> None:
        caption = f'<p class="el-caption">{escape(self.caption)}</p>' if self.caption else ""
        self._heading.value = f'<h3 class="el-panel-title">{escape(self.title)}</h3>{caption}'

    def show(
        self,
        chart: alt.TopLevelMixin,
        *,
        table_frame: pl.DataFrame | None = None,
        width: int | None = None,
    ) -> None:
        """Show ``chart`` (and offer ``table_frame`` as CSV); ``width`` overrides its width."""
        self._message.value = ""
        if width is not None:
            chart = chart.properties(width=width)
        self._chart, self._table = chart, table_frame
        if self._jchart is None:
            self._jchart = alt.JupyterChart(chart)
            self._chart_box.children = [self._jchart]
        else:
            self._jchart.chart = chart
        # every new chart brings new selection objects: wire the handlers to them
        for name, handler in self._selection_handlers:
            self._wire(name, handler)
        self._chart_box.layout.display = None
        self._csv.value = (
            _data_link(
                csv_bytes(table_frame),
                filename=f"{self.filename}.csv",
                mime="text/csv",
                label="⬇ CSV",
            )
            if table_frame is not None
            else ""
        )
        self._png.value = ""
        self._png_button.layout.display = None

    def show_message(self, text: str, *, error: bool = False) -> None:
        """Replace the chart by a message (no data for this slice, or a readable failure)."""
        self._message.value = (
            error_box("This view could not be drawn.", text)
            if error
            else f'<div class="el-note">{escape(text)}</div>'
        )
        self._chart_box.layout.display = "none"
        self._csv.value = ""
        self._png.value = ""
        self._png_button.layout.display = "none"

    def on_select(self, param: str, handler: Callable[[list[dict]], None]) -> None:
        """Call ``handler(points)`` when the chart's point selection ``param`` changes."""
        self._selection_handlers.append((param, handler))
        if self._jchart is not None:
            self._wire(param, handler)

    def _wire(self, param: str, handler: Callable) -> None:
        selections = self._jchart.selections
        if param in selections.trait_names():
            selections.observe(lambda change: handler(change["new"].value), [param])

    def _prepare_png(self) -> None:
        import vl_convert as vlc

        if self._chart is None:
            return
        try:
            png = vlc.vegalite_to_png(self._chart.to_dict(), scale=2)
        except Exception as err:  # the download is optional; say why it failed
            self._png.value = f'<span class="el-muted">PNG unavailable: {escape(err)}</span>'
            return
        self._png.value = _data_link(
            png, filename=f"{self.filename}.png", mime="image/png", label="⬇ save PNG"
        )


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
        self._shown: tuple = ("message", "")
        super().__init__()
        self.title, self.caption, self.max_rows = title, caption, max_rows
        self.filename = filename or title.lower().replace(" ", "-") or "effortlens-table"
        self.children = [self._html]

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
        link = _data_link(
            csv_bytes(frame),
            filename=f"{self.filename}.csv",
            mime="text/csv",
            label="⬇ CSV",
        )
        self._html.value = f"{heading}{caption}{table(cut, labels=labels)}{more}{link}"
