"""Return on effort: where does effort earn buyer action, by rep, team, practice and week."""

from __future__ import annotations

import ipywidgets as widgets
import polars as pl

from effortlens.charts.roe import no_impact_chart, roe_by_chart, roe_trend_chart
from effortlens.filters import filter_enriched
from effortlens.findings import roe_headline
from effortlens.roe import roe_by, roe_trend, silent_streaks
from effortlens_widgets.app import App, View, row
from effortlens_widgets.panels import ChartPanel, Kpi, KpiCards, TablePanel

#: Slice column -> (the Filter field a click sets, the kind of id it holds).
_CLICK = {
    "rep_id": ("reps", "rep"),
    "team": ("teams", None),
    "activity_type": ("activity_types", None),
    "segment": ("segments", None),
    "role": ("roles", None),
}

#: Slices a reader can compare, label -> columns.
SLICES: dict[str, list[str]] = {
    "Rep": ["rep_id", "rep_name"],
    "Team": ["team"],
    "Activity type": ["activity_type"],
    "Segment": ["segment"],
    "Role": ["role"],
}


#: How each headline figure of :func:`effortlens.findings.roe_headline` is written.
HEADLINE_FORMATS: dict[str, str] = {
    "activities": "{:,.0f}",
    "response_rate": "{:.1%}",
    "roe_per_100": "{:,.1f}",
    "roe_per_hour": "{:,.2f}",
    "no_impact_share": "{:.1%}",
}


def headline_kpis(state) -> list[Kpi]:
    """The cards of :func:`effortlens.findings.roe_headline`: the page's period against the
    equally long period before (when the page looks at a bounded period)."""
    before = state.filter.previous_period()
    previous = filter_enriched(state.enriched, before).daily if before is not None else None
    return [
        Kpi(
            r["label"],
            r["value"],
            r["previous"],
            HEADLINE_FORMATS[r["metric"]],
            r["higher_is_better"],
            r["hint"],
        )
        for r in roe_headline(state.view.daily, previous=previous).iter_rows(named=True)
    ]


class Headline(View):
    """KPI cards for the filtered period."""

    def __init__(self, state) -> None:
        super().__init__(state)
        self._cards = KpiCards()
        self.children = [self._cards]

    def render(self, view) -> None:
        self._cards.show(headline_kpis(self.state))


class Trend(View):
    """Weekly ROE (or response rate) with its 4-week rolling mean."""

    def __init__(self, state) -> None:
        super().__init__(state)
        self._metric = widgets.ToggleButtons(
            options=[
                ("ROE per 100", "roe_per_100"),
                ("Response rate", "response_rate"),
                ("ROE per hour", "roe_per_hour"),
            ],
            value="roe_per_100",
        )
        self._metric.style.button_width = "9em"
        self._panel = ChartPanel(
            title="Week by week",
            caption="Thin line: each week. Thick line: the 4-week rolling mean, which is what to "
            "read — single weeks are noisy. A lasting rise means effort is earning more buyer "
            "action per touch.",
            filename="roe-by-week",
        )
        self._metric.observe(self._refresh, names="value")
        self.children = [self._metric, self._panel]

    def render(self, view) -> None:
        trend = roe_trend(view.daily, period="week", window=4)
        if trend.height == 0:
            self._panel.show_message(self.no_effort_message("Return on effort"))
            return
        self._panel.show(
            roe_trend_chart(trend, metric=self._metric.value), table_frame=trend, width=980
        )


class BySlice(View):
    """ROE and no-impact effort per rep, team or activity type; click a bar to filter."""

    def __init__(self, state, *, filter_bar=None) -> None:
        super().__init__(state)
        self._slice = widgets.ToggleButtons(options=list(SLICES), value="Team")
        self._slice.style.button_width = "8.5em"
        self._roe = ChartPanel(
            title="Return on effort by slice",
            caption="Buyer-action weight per 100 customer-facing activities; the rule is the "
            "overall value. Long bars earn more buyer action per touch. Click a bar to narrow "
            "the whole page to it.",
            filename="roe-by-slice",
        )
        self._waste = ChartPanel(
            title="Effort with no buyer action",
            caption="Each bar splits the effort into touches that earned at least one buyer "
            "action and touches that earned none — the invisible waste.",
            filename="no-impact-effort",
        )
        self._slice.observe(self._refresh, names="value")
        self._roe.on_select("picked", self._on_pick)
        self.children = [self._slice, row(self._roe, self._waste)]

    def _on_pick(self, points: list[dict]) -> None:
        """A click on a bar narrows the whole page to that rep, team or type."""
        column = SLICES[self._slice.value][0]
        field, kind = _CLICK[column]
        if not points or column not in points[0]:
            return
        value = points[0][column]
        self.state.update_filter(**{field: (self.state.unmask(kind, value) if kind else value,)})

    def render(self, view) -> None:
        by = SLICES[self._slice.value]
        facts = view.daily
        if "rep_name" in by:
            facts = facts.join(view.reps.select("rep_id", "rep_name"), on="rep_id", how="left")
        table = roe_by(facts, by=by).filter(pl.col("activities") > 0)
        if table.height == 0:
            for p in (self._roe, self._waste):
                p.show_message(self.no_effort_message("Return on effort"))
            return
        table = self.state.present(table)
        label = by[-1]
        top = table.sort("activities", descending=True).head(40)
        self._roe.show(roe_by_chart(top, by=label, select=by[0]), table_frame=table)
        self._waste.show(no_impact_chart(top, by=label), table_frame=table)


class SilentStreaks(View):
    """Contacts touched again and again with no answer: effort to stop or change."""

    def __init__(self, state) -> None:
        super().__init__(state)
        self._table = TablePanel(
            title="Silent streaks",
            caption="Runs of 4 or more touches to one contact with no buyer action in between, "
            "longest first. Each is effort that could go elsewhere, or a cue to change approach.",
            filename="silent-streaks",
        )
        self.children = [self._table]

    def render(self, view) -> None:
        streaks = silent_streaks(view.activities, view.actions, min_touches=4)
        if streaks.height == 0:
            self._table.show_message("No silent streaks in this selection.")
            return
        streaks = streaks.join(view.reps.select("rep_id", "rep_name"), on="rep_id", how="left")
        shown = self.state.present(streaks).select(
            "rep_name",
            "contact_id",
            "account_id",
            "touches",
            pl.col("first_ts").dt.date().alias("from"),
            pl.col("last_ts").dt.date().alias("to"),
            pl.col("days").round(0),
            "ended_by_response",
        )
        self._table.show(
            shown,
            labels={
                "rep_name": "rep",
                "contact_id": "contact",
                "account_id": "account",
                "ended_by_response": "answered in the end",
            },
        )


def return_on_effort_app(**kwargs) -> App:
    """The return-on-effort page."""
    return App(
        title="Return on effort",
        question="Where does seller effort earn buyer action — by rep, team, practice and week?",
        views=[Headline, Trend, BySlice, SilentStreaks],
        **kwargs,
    )
