"""Buyer journey: where deals leak or stall, and which stages lack buyer verification."""

from __future__ import annotations

import ipywidgets as widgets
import polars as pl

from effortlens.charts.flow import stage_funnel_chart, time_in_stage_chart, verification_chart
from effortlens.filters import filter_enriched
from effortlens.flow import blocked_deals, flow_table
from effortlens_widgets._html import escape
from effortlens_widgets.app import App, View, row
from effortlens_widgets.panels import ChartPanel, Kpi, KpiCards, TablePanel


def journey_findings(flow: pl.DataFrame, *, has_evidence: bool = True) -> str:
    """Name the leakiest, slowest and least verified stages in words.

    ``has_evidence`` is False when the data holds no buyer actions and no recorded verifiers:
    then nothing can be said about verification (it is unknown, not zero).
    """
    rows = flow.filter(pl.col("entered") > 0)
    if rows.height == 0:
        return ""
    parts = []
    leak = rows.drop_nulls("leakage").sort("leakage", descending=True)
    if leak.height:
        r = leak.row(0, named=True)
        parts.append(
            f"Deals leak most at <b>{escape(r['stage'])}</b>: {r['leakage']:.0%} of those "
            "entering it end lost or with no decision before moving on."
        )
    slow = rows.drop_nulls("median_days").sort("median_days", descending=True)
    if slow.height:
        r = slow.row(0, named=True)
        p90 = "" if r["p90_days"] is None else f", slowest 10% over {r['p90_days']:.0f}"
        parts.append(
            f"They wait longest in <b>{escape(r['stage'])}</b> (median "
            f"{r['median_days']:.0f} days{p90})."
        )
    unverified = rows.drop_nulls("verification_rate").sort("verification_rate")
    if not has_evidence:
        parts.append("This data holds no buyer actions, so buyer verification cannot be judged.")
    elif unverified.height:
        r = unverified.row(0, named=True)
        parts.append(
            f"<b>{escape(r['stage'])}</b> is the stage least backed by buyer evidence: only "
            f"{r['verification_rate']:.0%} of entries had a buyer verifier."
        )
    return f'<div class="el-finding">{" ".join(parts)}</div>' if parts else ""


def deal_rates(opportunities: pl.DataFrame) -> dict[str, float | None]:
    """Deals created, win rate and no-decision rate (of closed deals) of a set of deals."""
    closed = opportunities.filter(pl.col("outcome") != "open")
    n = closed.height

    def share(outcome: str) -> float | None:
        return closed.filter(pl.col("outcome") == outcome).height / n if n else None

    return {
        "deals": opportunities.height,
        "win_rate": share("won"),
        "no_decision_rate": share("no_decision"),
    }


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
        evidence = (
            view.tables["buyer_actions"].height > 0
            or view.tables["stage_history"]["verifier_action_id"].is_not_null().any()
        )
        self._finding.value = journey_findings(overall, has_evidence=evidence)
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
