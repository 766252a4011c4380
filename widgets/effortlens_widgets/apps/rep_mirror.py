"""Rep mirror: how am I doing this week, against my own past and my peers?"""

from __future__ import annotations

import os
from html import escape
from urllib.parse import parse_qs

import ipywidgets as widgets
import polars as pl
from traitlets import TraitError, Unicode, observe, validate

from effortlens.charts.mirror import mirror_chart
from effortlens.findings import findings_html, mirror_findings
from effortlens.mirror import mirror_weeks, rep_mirror
from effortlens_widgets.app import App, View
from effortlens_widgets.panels import ChartPanel, Kpi, KpiCards
from effortlens_widgets.views import caveats_html, page_coverage

_SHOWN = ("activities", "response_rate", "roe_per_100", "no_impact_share")
_FMT = {
    "activities": "{:,.0f}",
    "hours": "{:,.1f}",
    "roe_per_100": "{:,.1f}",
    "roe_per_hour": "{:,.2f}",
}


def query_rep() -> str | None:
    """The ``rep`` parameter of the page URL (``…/rep_mirror.ipynb?rep=R007``), if any.

    Voilà hands the query string to the kernel; with preheated kernels it arrives only when
    the page is requested, so wait for it there.
    """
    query = os.environ.get("QUERY_STRING", "")
    if os.environ.get("VOILA_PREHEAT", "False") != "False":
        try:
            from voila.utils import get_query_string

            query = get_query_string() or ""
        except Exception:
            query = os.environ.get("QUERY_STRING", "")
    values = parse_qs(query).get("rep")
    return values[0] if values else None


class Mirror(View):
    """One rep's week: KPI cards against their own past, the finding, the weekly panels."""

    rep_id = Unicode(
        None, allow_none=True, help="The rep whose mirror is shown (an active rep's id)."
    )
    follows_filter = False  # a rep's mirror always shows their whole history

    def __init__(self, state, *, rep_id: str | None = None) -> None:
        """Build the rep picker, cards and chart on ``state``, opening on ``rep_id``."""
        super().__init__(state)
        self._rep = widgets.Dropdown(
            description="Rep", layout={"width": "24em"}, style={"description_width": "initial"}
        )
        widgets.link((self._rep, "value"), (self, "rep_id"))
        self._wanted = rep_id
        self._unknown = widgets.HTML()  # a link's rep that is not listed: said, not ignored
        self._cards = KpiCards()
        self._finding = widgets.HTML()
        self._chart = ChartPanel(
            title="My weeks, my past, my peers",
            caption="Each panel is one measure, week by week: my line, my own trailing "
            "4-week mean (dashed) and the median of my peers (same segment and role).",
            filename="my-weeks",
        )
        state.observe(self._on_names, names=["enriched", "anonymise"])
        self._on_names()
        self.children = [self._rep, self._unknown, self._cards, self._finding, self._chart]

    @validate("rep_id")
    def _valid_rep_id(self, proposal):
        wanted = proposal["value"]
        if wanted is not None and wanted not in [value for _, value in self._rep.options]:
            raise TraitError(f"{wanted!r} is not an active rep of this data")
        return wanted

    @observe("rep_id")
    def _on_rep_id(self, change) -> None:
        self._unknown.value = ""  # another rep picked: the link's is no longer the question
        self.refresh()

    def select(self, rep_id: str | None) -> None:
        """Open the mirror on ``rep_id`` when it is one of the listed reps; else say so above
        the rep shown instead."""
        if rep_id is not None and rep_id in [value for _, value in self._rep.options]:
            self.rep_id = rep_id
        self._wanted = rep_id or self._wanted
        self._say_unlisted(rep_id)

    def _say_unlisted(self, wanted: str | None) -> None:
        """Say that ``wanted`` (a link's ``?rep=``) is not among the listed reps, and whom the
        page shows instead; nothing when it is listed, not given, or the data not loaded."""
        enriched = self.state.enriched
        if wanted is None or enriched is None or wanted == self.rep_id:
            return
        shown = self.rep_id
        instead = (
            f"showing {escape(self.state.rep_label(shown))} instead; pick a rep above."
            if shown
            else "pick a rep above."
        )
        left = enriched.reps.filter(pl.col("rep_id") == wanted)
        if left.height:  # listed only while active: a rep who left
            when = left["exit_date"][0]
            said = (
                f"{escape(self.state.rep_label(wanted))} left"
                + (f" on {when:%Y-%m-%d}" if when is not None else "")
                + ": the mirror lists the reps still active"
            )
        else:
            example = self._rep.options[0][1] if self._rep.options else None
            said = f"No rep with the id {escape(repr(wanted))} in this data" + (
                f" (ids here look like {escape(example)})" if example else ""
            )
        self._unknown.value = f'<p class="el-note">{said}: {instead}</p>'

    def _on_names(self, change=None) -> None:
        enriched = self.state.enriched
        if enriched is None:
            return
        active = enriched.reps.filter(pl.col("exit_date").is_null())["rep_id"].to_list()
        options = sorted((self.state.rep_label(r), r) for r in active)
        current = self._rep.value or self._wanted
        self._rep.options = options
        ids = [o[1] for o in options]
        if current in ids:
            self._rep.value = current
        elif ids:
            self._rep.value = ids[0]
            self._say_unlisted(self._wanted)

    def render(self, view) -> None:
        """Draw the mirror of ``rep_id`` over their whole history."""
        rep_id = self.rep_id
        if not rep_id:
            self._chart.show_message("Pick a rep.")
            return
        enriched = self.state.enriched  # a rep's mirror always sees their whole history
        summary = rep_mirror(enriched.daily, reps=enriched.reps, rep_id=rep_id)
        weeks = mirror_weeks(enriched.daily, reps=enriched.reps, rep_id=rep_id)
        if summary.height == 0 or weeks.height == 0:
            self._chart.show_message(
                self.no_effort_message("The mirror")
                if enriched.n_activities == 0
                else "No activity for this rep yet."
            )
            self._cards.show([])
            self._finding.value = ""
            return
        rows = {r["metric"]: r for r in summary.iter_rows(named=True)}
        measured = page_coverage(self.state).has_buyer_actions
        cards = []
        for metric in _SHOWN if measured else _SHOWN[:1]:  # no buyer actions: no rates
            r = rows.get(metric)
            if r is None:
                continue
            fmt = "{:.1%}" if metric.endswith(("rate", "share")) else _FMT.get(metric, "{:,.1f}")
            cards.append(
                Kpi(
                    r["label"],
                    r["value"],
                    r["own_trailing"],
                    fmt=fmt,
                    higher_is_better=metric != "no_impact_share",
                    versus="my last 4 weeks",
                )
            )
        self._cards.show(cards)
        label = self.state.rep_label(rep_id)
        self._finding.value = caveats_html(self.state, "mirror") + (
            findings_html(mirror_findings(summary, rep_label=label)) if measured else ""
        )
        if not measured:  # no buyer actions: draw the effort only, never a rate of zero
            weeks = weeks.filter(pl.col("metric") == "activities")
        self._chart.show(
            mirror_chart(weeks) if measured else mirror_chart(weeks, metrics=["activities"]),
            table_frame=weeks,
        )
        self.keep(weeks=weeks, summary=summary)


def rep_mirror_app(*, rep_id: str | None = None, **kwargs) -> App:
    """The rep's own page; ``rep_id`` (or ``?rep=`` in the URL) opens it for that rep.

    The data is loaded before the URL is read: with preheated Voilà kernels the query string
    arrives only with the request, and by then the page is ready to draw.
    """
    app = App(
        title="My mirror",
        question="How am I doing this week — against my own past and my peers?",
        views=[lambda state: Mirror(state, rep_id=rep_id)],
        filters=(),
        daily_rep_codes=True,  # the mirror compares a rep's rows by value, never joins reps
        **kwargs,
    )
    if rep_id is None:
        app.views[0].select(query_rep())
    return app
