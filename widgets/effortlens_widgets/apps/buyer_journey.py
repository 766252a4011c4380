"""Buyer journey: where deals leak or stall, and which stages lack buyer verification."""

from __future__ import annotations

import ipywidgets as widgets
import polars as pl

from effortlens.charts.flow import stage_funnel_chart, time_in_stage_chart, verification_chart
from effortlens.filters import filter_enriched
from effortlens.findings import findings_html, has_buyer_evidence, journey_findings
from effortlens.flow import blocked_deals, flow_table
from effortlens.measures import deal_rates
from effortlens_widgets.app import App, View, row
from effortlens_widgets.panels import ChartPanel, Kpi, KpiCards, TablePanel


class Journey(View):
    def __init__(self, state) -> None:
        super().__init__(state)
        self._by = widgets.ToggleButtons(
            options=[("All deals", None), ("By segment", "segment"), ("By team", "team")],
            value=None,
        )
        self._by.style.button_width = "8em"
        self._cards = KpiCards()
        self._finding = widgets.HTML()
        self._funnel = ChartPanel(
            title="Stage by stage",
            caption="How many deals reached each stage, and what became of them: moved on, "
            "leaked (lost or no decision before the next stage) or still open there.",
            filename="stage-funnel",
        )
        self._time = ChartPanel(
            title="Time in stage",
            caption="Median days in each stage (bar) and the slowest 10% (tick). Open deals "
            "count for as long as they have waited so far.",
            filename="time-in-stage",
        )
        self._verified = ChartPanel(
            title="Verified by the buyer",
            caption="Share of stage entries backed by a buyer verifier (meeting held, proposal "
            "requested, mutual plan, verbal commit). Unverified moves are the seller's opinion.",
            filename="verification",
        )
        self._blocked = TablePanel(
            title="Blocked deals",
            caption="Open deals that have waited in their stage longer than 90% of deals ever "
            "did: the ones to unblock or close out.",
            filename="blocked-deals",
        )
        self._by.observe(self._refresh, names="value")
        self.children = [
            self._cards,
            self._finding,
            self._by,
            self._funnel,
            row(self._time, self._verified),
            self._blocked,
        ]

    def render(self, view) -> None:
        opps = view.tables["opportunities"]
        if opps.height == 0 or view.tables["stage_history"].height == 0:
            for panel in (self._funnel, self._time, self._verified):
                panel.show_message("No deals with stage history in this selection.")
            self._cards.value = self._finding.value = ""
            return
        by = self._by.value
        overall = flow_table(view)
        flow = flow_table(view, by=by) if by else overall
        now = deal_rates(opps)
        before = {}
        previous = self.state.filter.previous_period()
        if previous is not None:
            before = deal_rates(
                filter_enriched(self.state.enriched, previous).tables["opportunities"]
            )
        self._cards.show(
            [
                Kpi("Deals created", now["deals"], before.get("deals")),
                Kpi(
                    "Win rate",
                    now["win_rate"],
                    before.get("win_rate"),
                    fmt="{:.1%}",
                    hint="Won / closed deals",
                ),
                Kpi(
                    "No-decision rate",
                    now["no_decision_rate"],
                    before.get("no_decision_rate"),
                    fmt="{:.1%}",
                    higher_is_better=False,
                    hint="Closed with no decision / closed deals",
                ),
                Kpi(
                    "Blocked now",
                    int(overall["blocked"].sum()),
                    higher_is_better=False,
                    hint="Open deals past their stage's p90 time in stage",
                    versus="",
                ),
            ]
        )
        found = journey_findings(overall, has_evidence=has_buyer_evidence(view))
        self._finding.value = findings_html(found)
        self._funnel.show(stage_funnel_chart(flow, by=by), table_frame=flow)
        self._time.show(time_in_stage_chart(flow, by=by), table_frame=flow)
        self._verified.show(verification_chart(flow, by=by), table_frame=flow)
        blocked = blocked_deals(view)
        if blocked.height:
            blocked = blocked.join(
                view.reps.select("rep_id", "rep_name"), on="rep_id", how="left"
            ).sort("over_days", descending=True)
            shown = self.state.present(blocked).select(
                "opportunity_id",
                "rep_name",
                "stage",
                pl.col("entered_ts").dt.date().alias("in stage since"),
                pl.col("age_days").round(0).cast(pl.Int64).alias("days in stage"),
                pl.col("threshold_days").round(0).cast(pl.Int64).alias("p90 of the stage"),
            )
            self._blocked.show(shown, labels={"opportunity_id": "deal", "rep_name": "owner"})
        else:
            self._blocked.show_message("No open deal is past its stage's p90 time.")


def buyer_journey_app(**kwargs) -> App:
    return App(
        title="Buyer journey",
        question="Where do deals leak or stall — and which stages lack buyer verification?",
        views=[Journey],
        filters=("period", "team", "segment", "role", "rep"),
        **kwargs,
    )
