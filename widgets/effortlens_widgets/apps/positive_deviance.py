"""Positive deviance: who outperforms peers just like them, and what they do differently."""

from __future__ import annotations

import ipywidgets as widgets
import polars as pl

from effortlens.charts.deviance import funnel_plot_chart, what_differs_chart
from effortlens.deviance import rank_deviants, rep_deviance, what_differs
from effortlens.findings import deviance_findings, findings_html
from effortlens_widgets.app import App, View, row
from effortlens_widgets.controls import PeerPicker
from effortlens_widgets.panels import ChartPanel, TablePanel

METRICS = {"Response rate": "response_rate", "Win rate": "win_rate"}


class Deviance(View):
    """Funnel plot per peer group, the deviants, and what they do differently."""

    def __init__(self, state) -> None:
        super().__init__(state)
        self._metric = widgets.ToggleButtons(options=list(METRICS), value="Response rate")
        self._metric.style.button_width = "9em"
        self._peer = PeerPicker(state)
        self._finding = widgets.HTML()
        self._funnel = ChartPanel(
            title="Each rep against peers just like them",
            caption="One panel per peer group. The curved lines are the 95% and 99.8% control "
            "limits: a rep outside the outer line with enough volume is doing something "
            "different, not just getting lucky. Click a rep to see what they do differently.",
            filename="funnel-plot",
        )
        self._funnel.on_select("picked_rep", self._on_pick)
        self._picked: str | None = None
        self._differs = ChartPanel(
            title="What they do differently",
            caption="Practice mix of the positive deviants (or the rep you clicked) against "
            "their peers, largest standardised difference first.",
            filename="what-differs",
        )
        self._table = TablePanel(title="Deviants", filename="deviants")
        self._metric.observe(self._refresh, names="value")
        self._peer.observe(self._refresh, names="value")
        self.children = [
            row(self._metric, self._peer),
            self._finding,
            self._funnel,
            self._differs,
            self._table,
        ]

    def _on_pick(self, points: list[dict]) -> None:
        self._picked = points[0].get("rep_id") if points else None
        self._render_differs(self.state.view, self._last_deviance)

    def render(self, view) -> None:
        if self.state.enriched.activities.height == 0 and self._metric.value != "Win rate":
            self._metric.value = "Win rate"  # deals-only data: the response rate cannot exist
            return  # the change of metric redraws the view
        metric = METRICS[self._metric.value]
        deviance = rep_deviance(view, metric=metric)
        if deviance.filter(pl.col("volume") > 0).height == 0:
            what = "closed deals" if metric == "win_rate" else "customer-facing activities"
            self._funnel.show_message(f"No {what} in this selection.")
            self._finding.value = ""
            self._differs.show_message("Nothing to compare.")
            self._table.show_message("No deviants.")
            return
        self._last_deviance = deviance
        shown = self.state.present(deviance)
        group = self._peer.value or None
        self._funnel.show(
            funnel_plot_chart(shown, peer_group=group, min_volume=None),
            table_frame=shown.drop("overdispersion"),
        )
        differs = self._render_differs(view, deviance)
        self._finding.value = findings_html(deviance_findings(shown, differs, metric=metric))
        table = rank_deviants(shown).select(
            "rep_name", "peer_group", "direction", "rate", "peer_rate", "shrunk_rate", "volume"
        )
        if table.height:
            self._table.show(table, percent=("rate", "peer_rate", "shrunk_rate"))
        else:
            self._table.show_message("No rep is outside the 99.8% limits of their peer group.")

    def _render_differs(self, view, deviance: pl.DataFrame) -> pl.DataFrame:
        if view is None or view.activities.height == 0:
            self._differs.show_message("Practice mix needs activities; this data has deals only.")
            return pl.DataFrame()
        rep_ids = [self._picked] if self._picked else None
        differs = what_differs(view.activities, deviance, rep_ids=rep_ids)
        if differs.height == 0:
            self._differs.show_message("No positive deviants to compare in this selection.")
            return differs
        who = (
            f"{self.state.rep_label(self._picked)} against their peers"
            if self._picked
            else "Positive deviants against their peers"
        )
        self._differs.show(
            what_differs_chart(differs, title=f"What differs: {who}"), table_frame=differs
        )
        return differs


def positive_deviance_app(**kwargs) -> App:
    """The positive-deviance page."""
    return App(
        title="Positive deviance",
        question="Who outperforms peers just like them — and what do they do differently?",
        views=[Deviance],
        filters=("period", "team", "segment", "role"),
        **kwargs,
    )
