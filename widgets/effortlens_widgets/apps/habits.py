"""Habits and patterns: which timings, cadences and sequences pay, which are wasted effort."""

from __future__ import annotations

import ipywidgets as widgets
import polars as pl

from effortlens.charts.habits import cadence_chart, sequence_lift_chart, timing_heatmap_chart
from effortlens.findings import findings_html, habits_findings
from effortlens.habits import (
    rank_habits,
    response_by_cadence,
    response_by_timing,
    sequence_lift,
)
from effortlens_widgets.app import App, View, row
from effortlens_widgets.panels import ChartPanel


class Habits(View):
    def __init__(self, state) -> None:
        super().__init__(state)
        self._finding = widgets.HTML()
        self._timing = ChartPanel(
            title="When buyers answer",
            caption="Response rate of customer-facing touches by weekday and local hour (the "
            "settings' time zone). Darker is better; blank cells have too few touches to read. "
            "Use the drop-down in the chart to switch activity type.",
            filename="timing-heatmap",
        )
        self._cadence = ChartPanel(
            title="Cadence",
            caption="Response against the days since the previous touch on the same contact. "
            "Follow-ups after a long silence are rarely answered.",
            filename="cadence",
        )
        self._sequences = ChartPanel(
            title="Sequences that pay",
            caption="Short runs of touches on one contact, ranked by how much more often their "
            "last touch is answered than an average touch (lift). 1 means no better than chance.",
            filename="sequences",
        )
        self.children = [
            self._finding,
            self._timing,
            row(self._cadence, self._sequences),
        ]

    def render(self, view) -> None:
        acts = view.activities
        if acts.filter(pl.col("is_customer_facing")).height == 0:
            for p in (self._timing, self._cadence, self._sequences):
                p.show_message(self.no_effort_message("Habits and patterns"))
            self._finding.value = ""
            return
        timing = response_by_timing(acts)
        cadence = response_by_cadence(acts)
        sequences = sequence_lift(acts)
        ranked = rank_habits(timing, cadence, sequences)
        self._finding.value = findings_html(habits_findings(ranked))
        self._timing.show(timing_heatmap_chart(timing, min_activities=20), table_frame=timing)
        self._cadence.show(cadence_chart(cadence), table_frame=cadence)
        if sequences.height:
            self._sequences.show(sequence_lift_chart(sequences), table_frame=sequences)
        else:
            self._sequences.show_message("No sequence is frequent enough in this selection.")


def habits_app(**kwargs) -> App:
    return App(
        title="Habits and patterns",
        question="Which timings, cadences and sequences pay — and which are wasted effort?",
        views=[Habits],
        **kwargs,
    )
