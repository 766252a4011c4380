"""Interventions: did the coaching, review or new practice change buyer response?"""

from __future__ import annotations

import ipywidgets as widgets
import polars as pl
from traitlets import Enum, TraitError, Unicode, observe, validate

from effortlens.charts.interventions import intervention_chart
from effortlens.findings import findings_html, intervention_findings
from effortlens.interventions import intervention_effect, intervention_weekly
from effortlens_widgets.app import App, View, row
from effortlens_widgets.panels import ChartPanel, Kpi, KpiCards
from effortlens_widgets.views import caveats_html, page_coverage

METRICS = {
    "Response rate": "response_rate",
    "ROE per 100": "roe_per_100",
    "Activities per week": "activities_per_week",
}


class Intervention(View):
    """One intervention: its effect as KPI cards, the verdict and the weekly lines."""

    intervention_id = Unicode(
        None, allow_none=True, help="The intervention shown; None when the data has none."
    )
    metric = Enum(tuple(METRICS.values()), "response_rate", help="The measure compared.")
    follows_filter = False  # a designed comparison keeps its own windows and groups

    def __init__(self, state) -> None:
        """Build the intervention picker, metric switch, cards and chart on ``state``."""
        super().__init__(state)
        self._pick = widgets.Dropdown(
            description="Intervention",
            layout={"width": "34em"},
            style={"description_width": "initial"},
        )
        self._metric = widgets.ToggleButtons(options=list(METRICS.items()), value=self.metric)
        self._metric.style.button_width = "11em"
        self._cards = KpiCards()
        self._finding = widgets.HTML()
        self._chart = ChartPanel(
            title="Participants against comparable reps",
            caption="Weekly values of the participants and of reps in the same peer groups who "
            "did not take part, over equal windows before and after the start. The effect is "
            "the change of participants minus the change of non-participants of the same peer "
            "group (difference in differences within peer groups, groups weighted by their "
            "participants; who counts is decided before the start), with a 95% studentised "
            "bootstrap interval over reps. Beside it, the same comparison over the two halves "
            "of the before window: groups that already moved apart there are a warning.",
            filename="intervention",
        )
        self._updating = False
        widgets.link((self._pick, "value"), (self, "intervention_id"))
        widgets.link((self._metric, "value"), (self, "metric"))
        self.children = [
            row(self._pick, self._metric),
            self._cards,
            self._finding,
            self._chart,
        ]

    @validate("intervention_id")
    def _valid_intervention_id(self, proposal):
        wanted = proposal["value"]
        known = [value for _, value in self._pick.options]
        if wanted is not None and wanted not in known:
            raise TraitError(f"no intervention {wanted!r}; known: {known}")
        return wanted

    @observe("intervention_id", "metric")
    def _on_intervention_id(self, change) -> None:
        if not self._updating:
            self.refresh()

    def _sync_options(self) -> None:
        items = self.state.enriched.tables["interventions"].sort("start_date")
        options = [
            (f"{r['name'] or r['intervention_id']} (from {r['start_date']})", r["intervention_id"])
            for r in items.iter_rows(named=True)
        ]
        if list(self._pick.options) != options:
            self._updating = True
            try:
                self._pick.options = options
                self._pick.value = options[0][1] if options else None
            finally:
                self._updating = False

    def render(self, view) -> None:
        """Draw the effect of ``intervention_id`` on ``metric`` (over the whole data set)."""
        self._sync_options()
        if not self.intervention_id:
            self._chart.show_message("This data has no interventions (interventions table).")
            self._cards.show([])
            self._finding.value = ""
            return
        if self.metric != "activities_per_week" and not page_coverage(self.state).has_buyer_actions:
            self.metric = "activities_per_week"  # no buyer actions: effort is what can be seen
            return  # the change of metric redraws the view
        metric = self.metric
        # the whole data set: a designed comparison keeps its own windows and groups
        enriched = self.state.enriched
        effect = intervention_effect(enriched, intervention_id=self.intervention_id, metric=metric)
        weekly = intervention_weekly(enriched, intervention_id=self.intervention_id, metric=metric)
        rate_fmt = "{:.1%}" if metric == "response_rate" else "{:,.2f}"
        # a difference of rates is in percentage points, with its interval beside it
        scale, effect_fmt = (100, "{:+.1f} pts") if metric == "response_rate" else (1, "{:+,.2f}")
        interval = (
            effect_fmt.format(scale * effect["ci_low"])
            + " to "
            + effect_fmt.format(scale * effect["ci_high"])
        )
        self._cards.show(
            [
                Kpi(
                    "Effect (difference in differences)",
                    scale * effect["estimate"],
                    fmt=effect_fmt,
                    hint=f"95% interval {interval}: change of participants minus change of "
                    "comparable reps",
                    versus="",
                ),
                Kpi(
                    "Participants after the start",
                    effect["treated_after"],
                    effect["treated_before"],
                    fmt=rate_fmt,
                    versus="before",
                ),
                Kpi(
                    "Comparable reps after the start",
                    effect["control_after"],
                    effect["control_before"],
                    fmt=rate_fmt,
                    versus="before",
                ),
            ]
        )
        self._finding.value = caveats_html(self.state, "roe") + findings_html(
            intervention_findings(effect)
        )
        if weekly.height == 0:
            self._chart.show_message("No weekly data around this intervention.")
            return
        self._chart.show(
            intervention_chart(weekly, effect=effect, metric=metric),
            table_frame=weekly.with_columns(pl.col("value").round(4)),
        )
        self.keep(weekly=weekly, effect=pl.DataFrame([effect]))


def interventions_app(**kwargs) -> App:
    """The interventions page."""
    return App(
        title="Interventions",
        question="Did the coaching, review or new practice change buyer response?",
        views=[Intervention],
        filters=(),
        daily_counts=("activities", "responded", "response_weight"),
        daily_rep_codes=True,  # its views join the roll-up's reps only as text (test_state_memory)
        **kwargs,
    )
