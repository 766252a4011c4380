"""Organisation: how much time is left for selling, where attrition and internal load sit."""

from __future__ import annotations

import weakref
from dataclasses import replace

import ipywidgets as widgets
import polars as pl

from effortlens.charts.organisation import (
    attrition_selling_chart,
    selling_time_chart,
    variance_share_chart,
)
from effortlens.filters import Filter, filter_frame, period_by_weeks
from effortlens.findings import findings_html, organisation_findings
from effortlens.organisation import (
    attrition_vs_selling_time,
    effort_of_hours,
    hours_of_rows,
    organisation_table,
    selling_time_by,
    selling_time_in_period,
    selling_time_of_hours,
    selling_time_within,
    variance_share,
    weekly_hours,
)
from effortlens_widgets.app import App, View, row
from effortlens_widgets.panels import ChartPanel, TablePanel
from effortlens_widgets.state import as_text_reps
from effortlens_widgets.views import caveats_html, page_coverage, remembered


class Organisation(View):
    """The finding, selling time per team, attrition against it, the between-team share."""

    def __init__(self, state) -> None:
        """Build the finding, charts and table on ``state``."""
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
            caption="Each dot is a team: time for selling against voluntary exits per year "
            "(names on the teams that stand apart; hover a dot for any other). If too little "
            "time for selling drives people out, the dots fall from top left to bottom right.",
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
        """Draw every part from the filtered daily facts and teams."""
        figures = remembered(self.state, ("organisation",), lambda: _figures(self.state, view))
        if figures is None:  # no day rows under the filter
            for p in (self._selling, self._attrition, self._variance):
                p.show_message(self.no_effort_message("Time for selling"))
            self._finding.value = ""
            return
        table, shares, by_team = figures
        if not page_coverage(self.state).response_measurable:  # unknown, not 0%
            table = table.drop("response_rate", "roe_per_100", strict=False)
            shares = shares.filter(pl.lit(False))
        corr = attrition_vs_selling_time(table)
        measured = page_coverage(self.state).response_measurable
        self._finding.value = caveats_html(self.state, "organisation") + findings_html(
            organisation_findings(table, shares, corr, response_measured=measured)
        )
        self._selling.show(selling_time_chart(by_team), table_frame=by_team)
        self._attrition.show(attrition_selling_chart(table), table_frame=table)
        if shares.height:
            self._variance.show(variance_share_chart(shares), table_frame=shares)
        else:
            self._variance.show_message(
                "How results split between teams and reps needs buyer actions (response "
                "rates), and this data has none."
            )
        self.keep(selling_time=by_team, teams=table, variance_share=shares)
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


def _figures(state, view) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame] | None:
    """The page's table per team, variance shares and time for selling per team under the
    page filter (``view`` is the state's filtered view); None when the filter keeps no day
    row (every day row lies in a rep-week of the hours)."""
    weekly_table = _weekly_figures(state, view)
    if weekly_table is None:
        return None
    weekly, effort, period = weekly_table
    by_team = selling_time_by(weekly)
    table = organisation_table(view, effort=effort, period=period, selling=by_team)
    return table, variance_share(effort), by_team


def _weekly_figures(state, view) -> tuple[pl.DataFrame, pl.DataFrame, tuple | None] | None:
    """The page's time for selling per rep-week, effort per rep and attrition period (None:
    the data's) under the page filter; None when the filter keeps no day row."""
    settings = view.settings
    flt = state.filter
    if not flt.activity_types and (flt.start is not None or flt.end is not None):
        # a period: its whole weeks' rep-week hours are the load's, its partial weeks' are
        # summed from their days (two weeks of days at most)
        whole_hours, whole_weekly, _ = _hours(state)
        internal = settings.internal
        spans = _spans(state)
        partial = _cut_weeks(spans, flt)
        if whole_hours.get_column("first_row").null_count() == 0:
            hours = _period_hours(state, flt, spans=spans, partial=partial)
        else:  # day rows not sorted by rep-week: the period's edges filtered from the days
            hours = period_by_weeks(
                whole_hours.drop(_LOCATED),
                state.enriched.daily,
                flt,
                spans=spans,
                summed=lambda days: as_text_reps(
                    weekly_hours(days, internal_types=internal, effort=True)
                ),
            )
        if hours.height == 0:
            return None
        weekly = selling_time_in_period(
            whole_weekly,
            reps=_reps_kept(state, view),
            hours=hours,
            partial=partial,
            working_hours_per_week=settings.working_hours_per_week,
        )
        effort = effort_of_hours(hours, keys=_REP_KEYS)
        span = hours.select(pl.col("first_day").min(), pl.col("last_day").max()).row(0)
        return weekly, effort, span
    if _by_week(flt):  # the load's roll-ups, filtered: no pass over the days
        whole_hours, whole_weekly, per_rep = _hours(state)
        hours = filter_frame(whole_hours, flt)
        if hours.height == 0:
            return None
        weekly = (
            whole_weekly
            if flt.is_everything
            else selling_time_within(whole_weekly, reps=_reps_kept(state, view), hours=hours)
        )
        effort = filter_frame(per_rep, flt)
        span = hours.select(pl.col("first_day").min(), pl.col("last_day").max()).row(0)
        return weekly, effort, span if span[0] is not None else None
    # activity types: counted from the days they keep (one pass for the effort)
    if view.daily.height == 0:
        return None
    weekly = selling_time_of_hours(  # selling_time_weekly, its hours' reps as text
        as_text_reps(weekly_hours(view.daily, internal_types=settings.internal)),
        reps=view.reps,
        working_hours_per_week=settings.working_hours_per_week,
    )
    return weekly, as_text_reps(_effort_per_rep(view.daily)), None


def _reps_kept(state, view) -> pl.DataFrame | None:
    """The reps the filter keeps (``view.reps``), or None when it keeps every rep of the load
    (whose rep-weeks the load's selling time holds): no join needed."""
    return None if view.reps.height == state.enriched.reps.height else view.reps


def _effort_per_rep(daily: pl.DataFrame) -> pl.DataFrame:
    """The customer-facing effort of ``daily`` per rep (with its team, segment and role): what
    the page's return on effort per team and variance share sum."""
    return (
        daily.lazy()
        .filter(pl.col("is_customer_facing"))
        .group_by(_REP_KEYS)
        .agg(pl.col("activities", "responded", "response_weight").sum())
        .with_columns(is_customer_facing=pl.lit(True))
        .collect()
    )


def _by_week(flt: Filter) -> bool:
    """Whether ``flt`` keeps whole rep-weeks (reps, teams, segments, roles: no period, no
    activity types), so the page's figures are sums of the weekly roll-ups."""
    return flt.start is None and flt.end is None and not flt.activity_types


def _period_hours(state, flt: Filter, *, spans: pl.DataFrame, partial: pl.Series) -> pl.DataFrame:
    """The load's rep-week hours under ``flt`` (a period, no activity types): the rows of the
    weeks that lie wholly in the period as the load summed them, and the ``partial`` weeks'
    (those it cuts) summed from their day rows in the period, read by position
    (:func:`effortlens.organisation.hours_of_rows`): what
    :func:`effortlens.filters.period_by_weeks` gives, without a filter over every day row."""
    hours = _hours(state)[0]  # sorted by week: a run of weeks is a slice
    overlaps = pl.lit(value=True)
    if flt.start is not None:
        overlaps &= pl.col("last_day") >= flt.start
    if flt.end is not None:
        overlaps &= pl.col("first_day") <= flt.end
    weeks = spans.filter(overlaps).get_column("week")  # one run of weeks, cut ones at its ends
    if weeks.len() == 0:
        return hours.drop(_LOCATED).clear()
    first, last = weeks.min(), weeks.max()
    week = hours.get_column("week").slice(0, hours.height - hours.get_column("week").null_count())
    cut = set(pl.Series(partial, dtype=pl.Date).to_list())
    start, end = int(week.search_sorted(first, "left")), int(week.search_sorted(last, "right"))
    inner_start = int(week.search_sorted(first, "right")) if first in cut else start
    inner_end = int(week.search_sorted(last, "left")) if last in cut and last != first else end
    inner_end = max(inner_end, inner_start)
    rest = replace(flt, start=None, end=None)
    whole = filter_frame(hours.slice(inner_start, inner_end - inner_start), rest)
    edges = pl.concat(
        [hours.slice(start, inner_start - start), hours.slice(inner_end, end - inner_end)]
    )
    summed = hours_of_rows(
        state.enriched.daily,
        filter_frame(edges, rest),
        start=flt.start,
        end=flt.end,
        internal_types=state.enriched.settings.internal,
    )
    return pl.concat([whole.drop(_LOCATED), summed])


#: The columns of the load's rep-week hours that say where their day rows lie.
_LOCATED = ("first_row", "rows", *(f"rows_to_{k}" for k in range(1, 7)))


def _cut_weeks(spans: pl.DataFrame, flt: Filter) -> pl.Series:
    """The weeks of the load (``spans``) that the period of ``flt`` cuts: some of their days
    of data lie in it, some outside."""
    inside, overlaps = pl.lit(value=True), pl.lit(value=True)
    if flt.start is not None:
        inside &= pl.col("first_day") >= flt.start
        overlaps &= pl.col("last_day") >= flt.start
    if flt.end is not None:
        inside &= pl.col("last_day") <= flt.end
        overlaps &= pl.col("first_day") <= flt.end
    return spans.filter(overlaps & ~inside).get_column("week")


#: Each page state's rep x week hours (:func:`effortlens.organisation.weekly_hours`), time for
#: selling of the whole data and effort per rep, with the load they were made for.
_HOURS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _hours(state) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The load's :func:`effortlens.organisation.weekly_hours`, its
    :func:`effortlens.organisation.selling_time_of_hours` over every rep and the customer-facing
    effort per rep, made once per load."""
    kept = _HOURS.get(state)
    if kept is None or kept[0] is not state.enriched:
        enriched = state.enriched
        hours = as_text_reps(  # the page holds the roll-up's reps as codes: joined as text
            weekly_hours(
                enriched.daily, internal_types=enriched.settings.internal, effort=True, rows=True
            )
        ).sort("week", nulls_last=True)  # a run of weeks is a slice (_period_hours)
        weekly = selling_time_of_hours(
            hours,
            reps=enriched.reps,
            working_hours_per_week=enriched.settings.working_hours_per_week,
        )
        per_rep = as_text_reps(_effort_per_rep(enriched.daily))
        kept = _HOURS[state] = (enriched, (hours, weekly, per_rep))
    return kept[1]


#: Each page state's week spans (:func:`effortlens.filters.week_spans`), with their load.
_SPANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _spans(state) -> pl.DataFrame:
    """The load's first and last day of each week, made once per load from its rep-week hours
    (each row's first and last day: the same spans as :func:`effortlens.filters.week_spans`
    of the daily facts, from 141k rows instead of four million at 10M activities)."""
    kept = _SPANS.get(state)
    if kept is None or kept[0] is not state.enriched:
        spans = (  # each week's first and last day among its rep-weeks'
            _hours(state)[0]
            .lazy()
            .group_by("week")
            .agg(pl.col("first_day").min(), pl.col("last_day").max())
            .drop_nulls("week")
            .sort("week")
            .collect()
        )
        kept = _SPANS[state] = (state.enriched, spans)
    return kept[1]


#: The columns a filter without a period keeps or drops a rep's effort by.
_REP_KEYS = ("rep_id", "team", "segment", "role")


def organisation_app(**kwargs) -> App:
    """The organisation page."""
    return App(
        title="Organisation",
        question="How much of the problem is the organisation — time left for selling, "
        "internal load, attrition — rather than the individual?",
        views=[Organisation],
        filters=("period", "segment", "role"),
        daily_counts=("activities", "hours", "responded", "response_weight"),
        daily_rep_codes=True,  # its rep-week and rep sums are cast to text (as_text_reps)
        **kwargs,
    )
