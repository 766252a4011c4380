"""The frame every workbook app shares: heading, data load, filter bar, views, readable errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import ipywidgets as widgets
import polars as pl
from traitlets import Dict, Unicode

from effortlens.enrich import Enriched
from effortlens_widgets._html import CSS, error_box, escape
from effortlens_widgets._shared import live_model_ids, share_layouts_and_styles, widgets_made_since
from effortlens_widgets.controls import AnonymiseToggle, FilterBar
from effortlens_widgets.panels import enable_offline_charts
from effortlens_widgets.state import PageState

PAGE_CSS = """<style>
.el-app { max-width: 1180px; }
.el-app-title h1 { font-size: 1.7em; margin: 0 0 2px 0; font-weight: 650; color: #1f2933; }
.el-app-title p { margin: 0 0 10px 0; color: #52606d; font-size: 1.02em; }
.el-toolbar { background: #f5f7fa; border-radius: 8px; padding: 6px 10px; margin-bottom: 8px; }
.el-panel { border: 1px solid #e4e7eb; border-radius: 8px; padding: 6px 14px 10px 14px;
  margin: 8px 0; background: #fff; }
.el-panel-title { font-size: 1.12em; font-weight: 620; margin: 6px 0 2px 0; color: #1f2933; }
.el-caption { margin: 0 0 6px 0; color: #52606d; font-size: 0.93em; max-width: 62em; }
.el-note { background: #f0f4f8; border-radius: 6px; padding: 10px 14px; color: #3e4c59; }
.el-kpis { display: flex; flex-wrap: wrap; gap: 10px; margin: 6px 0 4px 0; }
.el-kpi { flex: 1 1 180px; border: 1px solid #e4e7eb; border-radius: 8px; padding: 10px 14px;
  background: #fff; }
.el-kpi-label { color: #52606d; font-size: 0.88em; }
.el-kpi-value { font-size: 1.7em; font-weight: 650; color: #1f2933; margin: 2px 0; }
.el-kpi-delta { font-size: 0.85em; }
.el-good { color: #1b7f4b; } .el-bad { color: #b42318; }
.el-download { margin-right: 10px; font-size: 0.9em; }
.el-finding { border-left: 5px solid #0072b2; background: #f3f8fc; padding: 8px 14px;
  margin: 6px 0; border-radius: 4px; }
.el-finding b { color: #1f2933; }
.el-caveat { border-left: 5px solid #e69f00; background: #fdf6e9; margin: 6px 0; }
.el-row { gap: 6px 14px; align-items: center; }
.el-step h2 { font-size: 1.35em; margin: 8px 0 4px 0; }
.el-step p { margin: 2px 0 6px 0; max-width: 64em; }
.el-ask { font-style: italic; color: #0072b2; }
</style>"""


_LOG = logging.getLogger("effortlens_widgets")

#: What a viewer reads when a part of the page fails: what to do, never the exception.
DRAW_PROBLEM = (
    "Try another filter or period, or reload the page. If it keeps happening, tell whoever "
    "runs EffortLens for your team: the details are in the server log (EffortLens, {at})."
)


def log_problem(what: str, err: BaseException) -> str:
    """Write ``err`` with its traceback for the analyst, never to the page; return the time.

    The record goes to the kernel's own standard error (``sys.__stderr__``: the Jupyter or
    Voila server's log), not to the cell output a viewer sees.

    Examples
    --------
    >>> at = log_problem("a test", ValueError("detail"))  # doctest: +SKIP
    """
    if not _LOG.handlers:
        handler = logging.StreamHandler(sys.__stderr__)
        handler.setFormatter(logging.Formatter("%(asctime)s effortlens_widgets: %(message)s"))
        _LOG.addHandler(handler)
        _LOG.propagate = False
    at = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    _LOG.error("%s", what, exc_info=(type(err), err, err.__traceback__))
    return at


def row(*children: widgets.Widget) -> widgets.HBox:
    """A wrapping row of controls with even spacing."""
    box = widgets.HBox(list(children), layout=widgets.Layout(flex_flow="row wrap"))
    box.add_class("el-row")
    return box


class View(widgets.VBox):
    """A part of a page that redraws from ``state.view`` whenever the data, filter or
    anonymise switch changes.

    Subclasses implement :meth:`render` and call :meth:`keep` with the aggregated frames they
    draw, so an analyst can take them further (``view.frame``, ``App.frames()``). A view's own
    choices (metric, slice, rep…) are public traits declared on the subclass; setting one
    redraws the view. Any failure is shown as a readable message in place of the view.
    """

    frames = Dict(
        read_only=True,
        help="The aggregated Polars frames the view last drew, by name ({} while it shows a "
        "message instead).",
    )
    problem = Unicode(
        "",
        read_only=True,
        help="Why the view could not be drawn, as shown in its place ('' when it was drawn).",
    )
    #: False for a view that always shows the whole data (a rep's whole history, a designed
    #: comparison): it redraws when the data changes, never for a change of the page filter.
    follows_filter: bool = True

    def __init__(self, state: PageState, **kwargs) -> None:
        """Build the view on ``state``; it draws once the state has data."""
        super().__init__(**kwargs)
        self.state = state
        self._problem: widgets.HTML | None = None  # made on the first failure (a model less)
        state.observe(
            self.refresh, names=["view" if self.follows_filter else "enriched", "anonymise"]
        )

    def render(self, view: Enriched) -> None:  # pragma: no cover - abstract
        """Draw the view from ``view`` (the enriched facts under the page filter)."""
        raise NotImplementedError

    @property
    def frame(self) -> pl.DataFrame | None:
        """The main frame the view last drew (the first of ``frames``), or None."""
        return next(iter(self.frames.values()), None)

    def keep(self, **frames: pl.DataFrame) -> None:
        """Record frames this draw shows, by name (they join ``frames``; the first is ``frame``)."""
        self.set_trait("frames", {**self.frames, **frames})

    def no_effort_message(self, what: str) -> str:
        """Why an effort view is empty: the data has no activities at all, or this slice."""
        enriched = self.state.enriched
        if enriched is not None and enriched.n_activities == 0:
            return (
                f"{what} needs seller activities, and this data has none (deals only). "
                "Add an activities export to see it; the buyer journey and win-rate views "
                "work without."
            )
        return "No customer-facing activity in this selection: widen the filters above."

    def refresh(self, change: dict | None = None) -> None:
        """Redraw from the page state; the one path every change of data, filter or trait takes."""
        view = self.state.view
        if view is None:
            return
        if self._problem is not None:
            self._problem.value = ""
        self.set_trait("problem", "")
        self.set_trait("frames", {})
        try:
            self.render(view)
        except (Exception, pl.exceptions.PanicException) as err:  # never a traceback
            at = log_problem(f"{type(self).__name__} could not be drawn", err)
            self.set_trait("problem", DRAW_PROBLEM.format(at=at))
            if self._problem is None:
                self._problem = widgets.HTML()
            self._problem.value = error_box(
                "This part of the page could not be drawn.", self.problem
            )
            if self._problem not in self.children:
                self.children = (self._problem, *self.children)


class App(widgets.VBox):
    """One workbook's app: title and question, data status, filter bar, anonymise, views.

    Parameters
    ----------
    title, question
        The heading and the one-line question the page answers.
    views
        Callables ``state -> View`` (classes work), built after the state exists.
    data_dir
        Folder to load; default ``default_data_dir()`` ($EFFORTLENS_DATA or the sample).
    filters
        Which filter controls to show (see :class:`FilterBar`); ``()`` hides the bar.
    anonymise
        Start with names hidden.
    show_title
        Draw ``title`` and ``question`` as a heading (workbooks carry their own in markdown).
    daily_counts
        The counts of the daily roll-up ``views`` read, when not all of them: the page's own
        state then holds only those (:class:`PageState`); a ``state`` passed in keeps its own.
    daily_rep_codes
        The page's own state holds the roll-up's ``rep_id`` as codes (:class:`PageState`).
    """

    error = Unicode(
        "",
        read_only=True,
        help="Why the data could not be loaded or prepared, in the words the page shows ('' "
        "when it loaded).",
    )

    def __init__(
        self,
        *,
        title: str,
        question: str,
        views: Sequence[Callable[[PageState], widgets.Widget]],
        data_dir: str | Path | None = None,
        filters: tuple[str, ...] = ("period", "team", "segment", "role", "rep", "activity_type"),
        default_period: str = "All data",
        anonymise: bool = False,
        state: PageState | None = None,
        load: bool = True,
        show_title: bool = False,
        daily_counts: Sequence[str] | None = None,
        daily_rep_codes: bool = False,
    ) -> None:
        """Build the page and, unless ``load=False``, load its data."""
        made_before = live_model_ids()
        super().__init__()
        enable_offline_charts()
        self.add_class("el-view")
        self.add_class("el-app")
        self.title, self.question = title, question
        self.state = state or PageState(daily_counts=daily_counts, daily_rep_codes=daily_rep_codes)
        self.state.anonymise = anonymise
        # the page's styles, its heading and the data status in one HTML widget (each widget is
        # a model, a view and its layout and style in every viewer's page)
        self._head = CSS + PAGE_CSS
        if show_title:
            self._head += (
                f'<div class="el-app-title"><h1>{escape(title)}</h1><p>{escape(question)}</p></div>'
            )
        self._status = widgets.HTML(self._head)
        self.filter_bar = FilterBar(self.state, show=filters, default_period=default_period)
        anonymise_toggle = AnonymiseToggle(self.state)
        toolbar = widgets.HBox(
            [self.filter_bar, anonymise_toggle] if filters else [anonymise_toggle],
            layout=widgets.Layout(justify_content="space-between", align_items="center"),
        )
        toolbar.add_class("el-toolbar")
        self.views = [make(self.state) for make in views]
        self.children = [self._status, toolbar, *self.views]
        if load:
            self.load(data_dir)
        # equal layouts and styles shared: about half of a page's models (see _shared.py)
        share_layouts_and_styles(widgets_made_since(made_before))

    def _show_status(self, html: str) -> None:
        """The data status line (or a message) under the page's heading."""
        self._status.value = self._head + html

    def load(self, data_dir: str | Path | None = None) -> None:
        """Load and enrich ``data_dir`` (or the default); problems show as a message."""
        from effortlens_widgets.data_source import load_data

        self._show_status('<div class="el-note">Loading and preparing the data…</div>')
        self.set_trait("error", "")
        try:
            data = load_data(data_dir)
        except (Exception, pl.exceptions.PanicException) as err:  # a panic is a BaseException
            self.set_trait("error", load_error_text(err))
            self._show_status(error_box("The data could not be loaded.", self.error))
            return
        self.state.data = data
        if self.state.error:
            self.set_trait("error", self.state.error)
            self._show_status(error_box("The data could not be prepared.", self.error))
            return
        self._show_status(_status_line(data))

    def _repr_mimebundle_(self, **kwargs):
        """The widget view; under Voilà also a static preview of the first chart
        (:mod:`effortlens_widgets.first_paint`), which the page shows until the chart draws."""
        data = super()._repr_mimebundle_(**kwargs)
        from effortlens_widgets.first_paint import PREVIEW_MIME, preview

        shown = preview(self) if data is not None else None
        if shown is not None:
            data = {**data, PREVIEW_MIME: shown}
        return data

    def frames(self) -> dict[str, pl.DataFrame]:
        """The Polars frame behind every view on the page, by name, as last drawn.

        Each is the small aggregated frame a chart or table shows (under the page's filter, and
        pseudonymised when names are hidden): a starting point for an analyst's own work. A
        pattern session gives the frames of the steps visited so far.

        Examples
        --------
        >>> app = return_on_effort_app()  # doctest: +SKIP
        >>> sorted(app.frames())  # doctest: +SKIP
        ['by_slice', 'headline', 'silent_streaks', 'trend']
        >>> app.frames()["trend"].columns[:2]  # doctest: +SKIP
        ['week', 'activities']
        """
        found: dict[str, pl.DataFrame] = {}
        for view in self.views:
            found.update(getattr(view, "frames", {}))
        return found


def load_error_text(err: BaseException) -> str:
    """What a failed load says: its own message when written for the user, else the bug."""
    from effortlens.loading import LoadBug
    from effortlens_widgets.data_source import READABLE_ERRORS

    if isinstance(err, READABLE_ERRORS) and not isinstance(err, LoadBug):
        return str(err)
    # a bug: the page names the file and what to do; the exception goes to the server log
    where, on = "the data folder", "it"
    if isinstance(err, LoadBug):  # a step across files names its files and itself
        where = err.where or str(err).split(": EffortLens failed on this file", 1)[0]
        on = f"{'them' if err.plural else 'it'} while {err.step}" if err.step else "it"
    at = log_problem(f"{where}: the data could not be loaded", err)
    return (
        f"{where}: EffortLens failed on {on} (a bug, not a problem you can fix in the data; "
        "other files may load on their own). Please tell whoever runs EffortLens: the details "
        f"are in the server log (EffortLens, {at})."
    )


#: A table's rows, one of them, in the data line ("1 intervention", not "1 interventions").
_ONE_ROW = {
    "reps": "rep",
    "activities": "activity",
    "buyer_actions": "buyer action",
    "opportunities": "opportunity",
    "stage_history": "stage history row",
    "interventions": "intervention",
    "intervention_participants": "intervention participant",
}


def _table_count(table: str, n: int) -> str:
    """``n`` rows of ``table`` in words.

    Examples
    --------
    >>> _table_count("interventions", 1), _table_count("stage_history", 5_578_354)
    ('1 intervention', '5,578,354 stage history rows')
    """
    one = _ONE_ROW.get(table)
    if one is None:
        return f"{n:,} {table.replace('_', ' ')}"
    plural = {"activity": "activities", "opportunity": "opportunities"}.get(one, f"{one}s")
    return f"{n:,} {one if n == 1 else plural}"


def _status_line(data) -> str:
    report = data.report.to_dict()
    loaded = {t: r["loaded"] for t, r in report.items() if not r.get("missing")}
    quarantined = sum(sum(r["quarantined"].values()) for r in report.values())
    parts = ", ".join(_table_count(t, n) for t, n in loaded.items() if n)
    q = f" · {quarantined:,} rows quarantined (see <i>Start here</i>)" if quarantined else ""
    rebuilt = getattr(data, "rebuilt", "")
    b = f" · facts built now: {escape(rebuilt)}" if rebuilt else ""
    return f'<p class="el-muted">Data: {escape(data.source)} — {escape(parts)}{q}{b}</p>'
