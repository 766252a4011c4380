"""Habits and patterns: which timings, cadences and sequences pay, which are wasted effort."""

from __future__ import annotations

import ipywidgets as widgets
import polars as pl

from effortlens.charts.habits import cadence_chart, sequence_lift_chart, timing_heatmap_chart
from effortlens.habits import response_by_cadence, response_by_timing, sequence_lift
from effortlens_widgets._html import escape
from effortlens_widgets.app import App, View, row
from effortlens_widgets.panels import ChartPanel

WEEKDAYS = {1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 7: "Sun"}


def habits_findings(timing: pl.DataFrame, cadence: pl.DataFrame, sequences: pl.DataFrame) -> str:
    """Best timing, the cadence that goes unanswered, the sequence that pays, in words."""
    parts = []
    by_slot = (
        timing.group_by("weekday", "hour")
        .agg(pl.col("activities").sum(), pl.col("responded").sum())
        .filter(pl.col("activities") >= 100)
        .with_columns(rate=pl.col("responded") / pl.col("activities"))
        .sort("rate", descending=True)
    )
    if by_slot.height >= 2:
        best = by_slot.row(0, named=True)
        overall = by_slot["responded"].sum() / by_slot["activities"].sum()
        parts.append(
            f"Touches on <b>{WEEKDAYS[best['weekday']]} at {best['hour']:02d}:00</b> are answered "
            f"most often ({best['rate']:.0%} against {overall:.0%} overall)."
        )
    rated = cadence.filter(
        (pl.col("activities") >= 50) & (pl.col("cadence_bin") != "first touch")
    ).sort("response_rate")
    if rated.height >= 2:
        worst = rated.row(0, named=True)
        parts.append(
            f"Touches <b>{escape(worst['cadence_bin'])} days</b> after the previous one to the "
            f"same contact are the least answered ({worst['response_rate']:.0%})."
        )
    if sequences.height:  # ranked by what the earlier touches add to the last one
        top = sequences.row(0, named=True)
        last = top["sequence"].split(" → ")[-1]
        article = "An" if last[:1] in "aeiou" else "A"
        parts.append(
            f"{article} {escape(last)} that ends the sequence <b>{escape(top['sequence'])}</b> is "
            f"answered {top['lift_over_type']:.1f}× as often as {escape(last)}s in general "
            f"({top['support']:,} times seen)."
        )
    return f'<div class="el-finding">{" ".join(parts)}</div>' if parts else ""


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
        self._finding.value = habits_findings(timing, cadence, sequences)
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
