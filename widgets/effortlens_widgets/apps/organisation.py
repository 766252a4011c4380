"""Organisation: how much time is left for selling, where attrition and internal load sit."""

from __future__ import annotations

import ipywidgets as widgets
import polars as pl

from effortlens.charts.organisation import (
    attrition_selling_chart,
    selling_time_chart,
    variance_share_chart,
)
from effortlens.organisation import (
    attrition_vs_selling_time,
    organisation_table,
    selling_time_by,
    selling_time_weekly,
    variance_share,
)
from effortlens_widgets._html import escape
from effortlens_widgets.app import App, View, row
from effortlens_widgets.panels import ChartPanel, TablePanel


def organisation_findings(table: pl.DataFrame, shares: pl.DataFrame, corr: dict) -> str:
    """Lowest selling time, highest attrition and the between-team share, in words."""
    if table.height == 0:
        return ""
    low = table.sort("selling_time", nulls_last=True).row(0, named=True)
    high = table.sort("annualised_attrition", descending=True, nulls_last=True).row(0, named=True)
    text = (
        f"<b>{escape(low['team'])}</b> has the least time left for selling: "
        f"{low['selling_time']:.0%} of the working week goes to customers "
        f"(internal work takes {low['internal_load']:.0%}). "
        f"<b>{escape(high['team'])}</b> loses the most people by choice "
        f"({high['annualised_attrition']:.0%} a year). "
    )
    if corr.get("rho") is not None and corr.get("n_teams", 0) >= 4:
        text += (
            f"Across {corr['n_teams']} teams, selling time and voluntary attrition have a rank "
            f"correlation of {corr['rho']:+.2f}. "
        )
    row = shares.filter(pl.col("metric") == "response_rate")
    if row.height and row["share_between"][0] is not None:
        text += (
            f"{row['share_between'][0]:.0%} of the differences in response rate between reps "
            "lie between teams — that part belongs to teams and managers, not individuals."
        )
    return f'<div class="el-finding">{text}</div>'


class Organisation(View):
    def __init__(self, state) -> None:
        super().__init__(state)
        self._finding = widgets.HTML()
        self._selling = ChartPanel(
            title="Time left for selling",
            caption="Share of contracted working hours spent with customers (selling) and on "
            "internal meetings and admin, per team, averaged over the weeks each rep was employed.",
            filename="selling-time",
        )
        self._attrition = ChartPanel(
            title="Attrition and selling time",
            caption="Each dot is a team: time for selling against voluntary exits per year. "
            "Teams with little time for selling tend to lose people.",
            filename="attrition-selling-time",
        )
        self._variance = ChartPanel(
            title="Team or individual?",
            caption="How much of the variation between reps' results lies between teams (the "
            "organisation) rather than between reps within a team (the individual).",
            filename="variance-share",
        )
        self._table = TablePanel(title="Teams", filename="teams")
        self.children = [
            self._finding,
            self._selling,
            row(self._attrition, self._variance),
            self._table,
        ]

    def render(self, view) -> None:
        if view.daily.height == 0:
            for p in (self._selling, self._attrition, self._variance):
                p.show_message(self.no_effort_message("Time for selling"))
            self._finding.value = ""
            return
        settings = view.settings
        weekly = selling_time_weekly(
            view.daily,
            reps=view.reps,
            working_hours_per_week=settings.working_hours_per_week,
            internal_types=settings.internal,
        )
        by_team = selling_time_by(weekly)
        table = organisation_table(view)
        shares = variance_share(view.daily)
        corr = attrition_vs_selling_time(table)
        self._finding.value = organisation_findings(table, shares, corr)
        self._selling.show(selling_time_chart(by_team), table_frame=by_team)
        self._attrition.show(attrition_selling_chart(table), table_frame=table)
        self._variance.show(variance_share_chart(shares), table_frame=shares)
        self._table.show(
            table,
            percent=(
                "selling_time",
                "internal_load",
                "attrition_rate",
                "annualised_attrition",
                "response_rate",
            ),
        )


def organisation_app(**kwargs) -> App:
    return App(
        title="Organisation",
        question="How much of the problem is the organisation — time left for selling, "
        "internal load, attrition — rather than the individual?",
        views=[Organisation],
        filters=("period", "segment", "role"),
        **kwargs,
    )
