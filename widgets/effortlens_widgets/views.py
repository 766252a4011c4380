"""Views shown by more than one page: the ROE headline, trend and slices, the habits, positive
deviance and the buyer journey.

The pages in :mod:`effortlens_widgets.apps` compose them (the pattern session shows several);
no page imports another page.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections import OrderedDict

import ipywidgets as widgets
import numpy as np
import polars as pl
from traitlets import Enum, TraitError, Unicode, observe, validate

from effortlens.charts.deviance import funnel_plot_chart, what_differs_chart
from effortlens.charts.flow import stage_funnel_chart, time_in_stage_chart, verification_chart
from effortlens.charts.habits import cadence_chart, sequence_lift_chart, timing_heatmap_chart
from effortlens.charts.roe import no_impact_chart, roe_by_chart, roe_trend_chart
from effortlens.coverage import Coverage, data_coverage
from effortlens.deviance import (
    practice_in,
    rank_deviants,
    rep_deviance,
    response_count_index,
    response_counts_between,
    what_differs,
    what_differs_in,
)
from effortlens.enrich import events, has_rows, precomputed, table
from effortlens.filters import filter_enriched, filter_frame
from effortlens.findings import (
    deviance_findings,
    findings_html,
    habits_findings,
    has_buyer_evidence,
    journey_findings,
    roe_headline,
)
from effortlens.flow import (
    blocked_deals,
    flow_table,
    forget_stays,
    stage_flags,
    stay_index,
    stays_under,
    with_verifiers,
)
from effortlens.habits import (
    habit_effects,
    period_habits,
    rank_habits,
    replace_period,
    response_by_cadence,
    response_by_timing,
    sequence_lift,
    touch_cells,
    touch_codes_of,
    touch_habits,
)
from effortlens.measures import deal_rates
from effortlens.roe import roe_by, roe_trend
from effortlens_widgets.app import View, row
from effortlens_widgets.controls import PeerPicker
from effortlens_widgets.panels import ChartPanel, Kpi, KpiCards, TablePanel, kpi_frame
from effortlens_widgets.state import as_text_reps

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


#: Each page state's coverage, with the load it was computed for.
_COVERAGE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def page_coverage(state) -> Coverage:
    """What the page's load can say (:func:`effortlens.coverage.data_coverage`), computed once
    per load and kept on the state."""
    enriched = state.enriched
    kept = _COVERAGE.get(state)
    if kept is not None and kept[0] is enriched:
        return kept[1]
    coverage = data_coverage(enriched, report=getattr(state.data, "report", None))
    _COVERAGE[state] = (enriched, coverage)
    return coverage


#: The habit cells a build sums (:func:`effortlens.habits.touch_cells`; ``habit_<name>`` facts).
HABIT_CELLS = ("timing", "cadence", "sequence_2", "sequence_3")

#: Each page state's per-rep habit sums (:func:`effortlens.habits.touch_cells`), with their load.
_TOUCH_CELLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def habit_tables(state) -> dict:
    """The habit tables of the page's filter from the build's touch facts. With the build's
    touch codes, every filter but "everything" (or a period holding every touch) sums them
    (:func:`effortlens.habits.period_habits`: running totals per day, a team's or a rep's
    blocks); "everything" sums the per-rep cells (computed once per load, kept on the
    state), as does any filter without a period when there are no codes. A period without
    codes filters the touches and sums those."""
    enriched, flt = state.enriched, state.filter
    codes = touch_codes_of(enriched)
    if codes is not None and _codes_hold_every_touch(state, codes):
        if not _holds_every_touch(codes, flt) or not replace_period(flt).is_everything:
            return period_habits(codes, flt)
        flt = replace_period(flt)
    elif flt.start is not None or flt.end is not None:
        return touch_habits(filter_frame(precomputed(enriched, "touches"), flt))
    return touch_habits({name: filter_frame(frame, flt) for name, frame in _cells(state).items()})


def _codes_hold_every_touch(state, codes) -> bool:
    """Whether the touch codes hold every touch of the per-rep cells (none without a day)."""
    return len(codes.columns["day"]) == int(_cells(state)["timing"]["n"].sum())


def _holds_every_touch(codes, flt) -> bool:
    """Whether the period of ``flt`` holds every day of the touch codes."""
    days = codes.days
    if days is None:
        return False
    return not (
        (flt.start is not None and flt.start > days[0])
        or (flt.end is not None and flt.end < days[1])
    )


def _cells(state) -> dict[str, pl.DataFrame]:
    """The load's per-rep habit cells in memory (stored by the build, else summed once)."""
    enriched = state.enriched
    kept = _TOUCH_CELLS.get(state)
    if kept is None or kept[0] is not enriched:
        grouping = ["team", "segment", "role", "activity_type"]
        built = {name: precomputed(enriched, f"habit_{name}") for name in HABIT_CELLS}
        if all(frame is not None for frame in built.values()):  # summed by the build
            cells = {name: frame.collect() for name, frame in built.items()}
        else:
            cells = {
                name: frame.with_columns(pl.col(grouping).cast(pl.Categorical)).collect(
                    engine="streaming"
                )
                for name, frame in touch_cells(precomputed(enriched, "touches")).items()
            }
        kept = _TOUCH_CELLS[state] = (enriched, cells)
    return kept[1]


def has_touches(state, view) -> bool:
    """Whether the page's filter keeps a customer-facing activity. On a build, read from the
    touch facts (every customer-facing activity, with the columns a filter reads): the
    in-memory per-rep cells without a period, the touches of the period with one; else from
    the view's activities."""
    enriched, flt = state.enriched, state.filter
    touches = precomputed(enriched, "touches")
    if touches is None:
        return has_rows(events(view, "activities").filter(pl.col("is_customer_facing")))
    codes = touch_codes_of(enriched)
    if codes is not None and not flt.is_everything and _codes_hold_every_touch(state, codes):
        return codes.count(flt) > 0
    if flt.start is not None or flt.end is not None:
        return has_rows(filter_frame(touches, flt))
    return bool(filter_frame(_cells(state)["timing"], flt)["n"].sum() > 0)


def caveats_html(state, section: str) -> str:
    """What ``section`` cannot say with this load, as a note above the view ('' if nothing)."""
    found = page_coverage(state).caveats(section)
    if not found:
        return ""
    return '<div class="el-note el-caveat">' + "<br>".join(f.html for f in found) + "</div>"


#: What a response-rate view says instead of a chart when the data holds no buyer actions.
NO_BUYER_ACTIONS = (
    "{what} needs buyer actions (replies, meetings held, requests), and this data has none: "
    "a response rate here would read 0% whatever the effort earned. Add the export that "
    "records what buyers did."
)


#: Headline figures that need buyer actions.
_RESPONSE_FIGURES = ("response_rate", "roe_per_100", "roe_per_hour", "no_impact_share")


def headline_kpis(state) -> list[Kpi]:
    """The cards of :func:`effortlens.findings.roe_headline`: the page's period against the
    equally long period before (when the page looks at a bounded period). Without buyer
    actions in the data, the figures that need them are unknown (—), not zero."""
    flt = state.filter
    before = flt.previous_period()
    if _by_day(flt):  # a period (and activity types) alone: the load's day x type sums
        days = _day_sums(state)
        facts = filter_frame(days, flt)
        previous = filter_frame(days, before) if before is not None else None
    else:
        facts = state.roe_facts()
        previous = _previous_effort(state, before) if before is not None else None
    measured = page_coverage(state).has_buyer_actions
    return [
        Kpi(
            r["label"],
            r["value"] if measured or r["metric"] not in _RESPONSE_FIGURES else None,
            r["previous"] if measured or r["metric"] not in _RESPONSE_FIGURES else None,
            HEADLINE_FORMATS[r["metric"]],
            r["higher_is_better"],
            r["hint"]
            if measured or r["metric"] not in _RESPONSE_FIGURES
            else "not measured: no buyer actions in this data",
            versus="previous period" if measured or r["metric"] not in _RESPONSE_FIGURES else "",
        )
        for r in roe_headline(facts, previous=previous).iter_rows(named=True)
    ]


def _previous_effort(state, before) -> pl.DataFrame:
    """What the headline compares with: the customer-facing effort of the previous period
    (:meth:`PageState.effort_under`: its whole weeks summed); when it has none, one of the
    period's other day rows if there is any (it sums to nothing, as the day rows did), so
    that a period with only internal work still reads as a period with data."""
    effort = state.effort_under(before)
    if effort.height:
        return effort
    return filter_frame(state.enriched.daily.lazy(), before).head(1).collect()


def _by_day(flt) -> bool:
    """Whether ``flt`` is a period, with activity types at most: the load's per-day totals
    (:func:`_day_sums`) then give its return on effort, without the day rows of each rep."""
    return (flt.start is not None or flt.end is not None) and not (
        flt.reps or flt.teams or flt.segments or flt.roles
    )


def roe_facts(state) -> pl.DataFrame | None:
    """What the return-on-effort views sum under the page filter: the load's per-day totals
    for a period alone (:func:`_day_sums`), else :meth:`PageState.roe_facts` (the weekly
    roll-up without a period, the filtered day rows with one). Each gives the same sums by
    week and activity type (``None`` before the data is loaded)."""
    if state.view is not None and _by_day(state.filter):
        return filter_frame(_day_sums(state), state.filter)
    return state.roe_facts()


#: Each page state's return-on-effort and organisation figures, with their load: the last few
#: per page filter and view (:func:`remembered`).
_REMEMBERED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_KEEP_REMEMBERED = 32


def remembered(state, key: tuple, compute):
    """``compute()`` for the page filter and ``key`` (what else it depends on: the view and
    its options), kept per load for the last few: a filter the reader returns to (everything,
    after a team) is drawn from memory. What it returns is shared: read it, do not change it.

    Examples
    --------
    >>> trend = remembered(state, ("trend",), lambda: roe_trend(roe_facts(state)))  # doctest: +SKIP
    """
    enriched = state.enriched
    kept = _REMEMBERED.get(state)
    if kept is None or kept[0] is not enriched:
        kept = _REMEMBERED[state] = (enriched, OrderedDict())
    memo, full = kept[1], (state.filter, *key)
    if full in memo:
        memo.move_to_end(full)
        return memo[full]
    value = memo[full] = compute()
    while len(memo) > _KEEP_REMEMBERED:
        memo.popitem(last=False)
    return value


#: Each page state's daily facts summed per day and activity type, with their load.
_DAY_SUMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _day_sums(state) -> pl.DataFrame:
    """The load's ``daily`` summed per day, activity type and customer-facing flag (a few
    thousand rows, made once per load): the headline of a period without a rep-level filter
    sums it for the period and the one before instead of filtering four million day rows."""
    from effortlens.roe import COUNTS

    kept = _DAY_SUMS.get(state)
    if kept is None or kept[0] is not state.enriched:
        daily = state.enriched.daily
        keys = ["day", "activity_type", "is_customer_facing"]
        sums = (  # lazily: the eager group-by took four times as long at 10M
            daily.lazy()
            .group_by(keys)
            .agg(pl.col(c).sum().cast(daily.schema[c]) for c in COUNTS)
            .collect()
        )
        kept = _DAY_SUMS[state] = (state.enriched, sums)
    return kept[1]


#: Each page state's customer-facing day rows summed per day and team, with their load.
_TEAM_DAY_SUMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _team_day_sums(state) -> pl.DataFrame:
    """The load's customer-facing ``daily`` rows summed per day and team (~150k rows, 6 MB at
    10M activities, made once per load): ROE by team for a period alone sums the period's
    rows of it instead of the period's rep-week and day rows (:meth:`PageState.roe_facts`)."""
    from effortlens.roe import COUNTS

    kept = _TEAM_DAY_SUMS.get(state)
    if kept is None or kept[0] is not state.enriched:
        daily = state.enriched.daily
        sums = (
            daily.lazy()
            .filter(pl.col("is_customer_facing"))
            .group_by("day", "team")
            .agg(pl.col(c).sum().cast(daily.schema[c]) for c in COUNTS)
            .with_columns(is_customer_facing=pl.lit(value=True))
            .collect()
        )
        kept = _TEAM_DAY_SUMS[state] = (state.enriched, sums)
    return kept[1]


class Headline(View):
    """KPI cards for the filtered period."""

    def __init__(self, state) -> None:
        """Build the cards on ``state``."""
        super().__init__(state)
        self._caveat = widgets.HTML()
        self._cards = KpiCards()
        self.children = [self._caveat, self._cards]

    def render(self, view) -> None:
        """Show the KPIs of the filtered period against the previous one."""
        _day_sums(self.state)  # made with the page's first draw, not on its first period
        self._caveat.value = caveats_html(self.state, "roe")
        self._cards.show(headline_kpis(self.state))
        self.keep(headline=kpi_frame(self._cards.kpis))


class Trend(View):
    """Weekly ROE (or response rate) with its 4-week rolling mean."""

    metric = Enum(
        ("roe_per_100", "response_rate", "roe_per_hour"),
        "roe_per_100",
        help="The measure drawn week by week.",
    )

    def __init__(self, state) -> None:
        """Build the metric switch and the chart on ``state``."""
        super().__init__(state)
        self._metric = widgets.ToggleButtons(
            options=[
                ("ROE per 100", "roe_per_100"),
                ("Response rate", "response_rate"),
                ("ROE per hour", "roe_per_hour"),
            ],
            value=self.metric,
        )
        self._metric.style.button_width = "9em"
        self._panel = ChartPanel(
            title="Week by week",
            caption="Thin line: each week. Thick line: the 4-week rolling mean, which is what to "
            "read — single weeks are noisy. A lasting rise means effort is earning more buyer "
            "action per touch.",
            filename="roe-by-week",
        )
        widgets.link((self._metric, "value"), (self, "metric"))
        self.children = [self._metric, self._panel]

    @observe("metric")
    def _on_metric(self, change) -> None:
        self.refresh()

    def render(self, view) -> None:
        """Draw the weekly line of ``metric`` and its rolling mean."""
        state = self.state
        trend = remembered(
            state, ("trend",), lambda: roe_trend(roe_facts(state), period="week", window=4)
        )
        if trend.height == 0:
            self._panel.show_message(self.no_effort_message("Return on effort"))
            return
        if not page_coverage(self.state).has_buyer_actions:
            self._panel.show_message(NO_BUYER_ACTIONS.format(what="Return on effort"))
            return
        self._panel.show(roe_trend_chart(trend, metric=self.metric), table_frame=trend, width=980)
        self.keep(trend=trend)


class BySlice(View):
    """ROE and no-impact effort per rep, team or activity type; click a bar to filter."""

    by = Enum(tuple(SLICES), "Team", help="What the bars compare: a label of SLICES.")

    def __init__(self, state) -> None:
        """Build the slice switch and the two charts on ``state``."""
        super().__init__(state)
        self._slice = widgets.ToggleButtons(options=list(SLICES), value=self.by)
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
        widgets.link((self._slice, "value"), (self, "by"))
        self._roe.on_select("picked", self.pick)
        self.children = [self._slice, row(self._roe, self._waste)]

    @observe("by")
    def _on_by(self, change) -> None:
        self.refresh()

    def pick(self, points: list[dict]) -> None:
        """Narrow the whole page to the clicked bar's rep, team or type (a chart selection)."""
        column = SLICES[self.by][0]
        field, kind = _CLICK[column]
        if not points or column not in points[0]:
            return
        value = points[0][column]
        self.state.update_filter(**{field: (self.state.unmask(kind, value) if kind else value,)})

    def render(self, view) -> None:
        """Draw ROE and no-impact effort per slice of ``by``."""
        by = SLICES[self.by]

        def sums() -> pl.DataFrame:
            # the per-day totals of a period alone hold activity types, not reps or teams;
            # its per-day totals by team hold teams (without activity types)
            flt = self.state.filter
            if by == ["activity_type"]:
                facts = roe_facts(self.state)
            elif by == ["team"] and _by_day(flt) and not flt.activity_types:
                facts = filter_frame(_team_day_sums(self.state), flt)
            else:
                facts = self.state.roe_facts()
            if "rep_name" in by:
                names = view.reps.select("rep_id", "rep_name")
                facts = as_text_reps(facts).join(names, on="rep_id", how="left")
            return roe_by(facts, by=by).filter(pl.col("activities") > 0)

        if by == ["team"]:
            _team_day_sums(self.state)  # made with the page's first draw, not its first period
        table = remembered(self.state, ("by_slice", self.by), sums)
        if table.height == 0:
            for p in (self._roe, self._waste):
                p.show_message(self.no_effort_message("Return on effort"))
            return
        if not page_coverage(self.state).has_buyer_actions:
            for p, what in (
                (self._roe, "Return on effort"),
                (self._waste, "Effort with no buyer action"),
            ):
                p.show_message(NO_BUYER_ACTIONS.format(what=what))
            return
        table = self.state.present(table)
        label = by[-1]
        top = table.sort("activities", descending=True).head(40)
        self._roe.show(roe_by_chart(top, by=label, select=by[0]), table_frame=table)
        self._waste.show(no_impact_chart(top, by=label), table_frame=table)
        self.keep(by_slice=table)


class Habits(View):
    """The finding, the weekday × hour heatmap, cadence and the sequences that pay."""

    def __init__(self, state) -> None:
        """Build the finding and the three charts on ``state``."""
        super().__init__(state)
        self._finding = widgets.HTML()
        self._timing = ChartPanel(
            title="When buyers answer",
            caption="Response rate of customer-facing touches by weekday and local hour (the "
            "settings' time zone), each buyer action credited to the last touch before it. "
            "Darker is better; blank cells have too few touches to read. Use the drop-down in "
            "the chart to switch activity type. Last-touch credit favours late-day touches; the "
            "finding above shares each action among the touches before it and names only the "
            "hours that stand out beyond chance.",
            filename="timing-heatmap",
        )
        self._cadence = ChartPanel(
            title="Cadence",
            caption="Response against the days since the previous touch on the same contact, "
            "each buyer action credited to the last touch before it. That credit makes quick "
            "follow-ups look better than they are (they collect answers to the touch before); "
            "the finding above shares each action among the touches before it.",
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
        """Draw timing, cadence and sequences of the filtered activities (computed once per
        filter: :func:`habits_numbers`)."""
        drawn = habits_numbers(self.state, view, no_effort=self.no_effort_message)
        if "message" in drawn:
            for p in (self._timing, self._cadence, self._sequences):
                p.show_message(drawn["message"])
            self._finding.value = caveats_html(self.state, "habits") if drawn["caveats"] else ""
            return
        timing, cadence, sequences = drawn["timing"], drawn["cadence"], drawn["sequences"]
        self._finding.value = drawn["finding"]
        self._timing.show(drawn["timing_chart"], table_frame=timing)
        self._cadence.show(drawn["cadence_chart"], table_frame=cadence)
        self.keep(timing=timing, cadence=cadence, sequences=sequences, habits=drawn["habits"])
        if sequences.height:
            self._sequences.show(drawn["sequence_chart"], table_frame=sequences)
        else:
            self._sequences.show_message("No sequence is frequent enough in this selection.")


METRICS = {"Response rate": "response_rate", "Win rate": "win_rate"}


def _whole_page(key: tuple) -> bool:
    """A deviance memo key of everything with no option narrowing it: the filter is the
    default, and what follows the metric (peer group, rep picked) is unset; the anonymise
    switch does not narrow."""
    _name, flt, _metric, *options = key
    return flt.is_everything and not any(o for o in options if not isinstance(o, bool))


class Deviance(View):
    """Funnel plot per peer group, the deviants, and what they do differently."""

    metric = Enum(tuple(METRICS.values()), "response_rate", help="The rate reps are compared on.")
    peer_group = Unicode("", help="The peer group drawn in the funnel plot; '' for all groups.")
    rep = Unicode(
        None,
        allow_none=True,
        help="Real id of the rep whose practice is compared with peers (a click in the funnel "
        "plot); None compares all positive deviants.",
    )

    def __init__(self, state) -> None:
        """Build the metric switch, peer picker, charts and table on ``state``."""
        super().__init__(state)
        self._metric = widgets.ToggleButtons(options=list(METRICS.items()), value=self.metric)
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
        self._funnel.on_select("picked_rep", self.pick)
        self._last_deviance: pl.DataFrame | None = None
        self._memo: OrderedDict[tuple, pl.DataFrame] = OrderedDict()
        self._memo_data = None
        self._counts_index = None  # (the load's Enriched, its ResponseCountIndex)
        self._period_files_of = None  # the load whose period files were read ahead
        # (a load, the period presets' tables worked out ahead for it by memo key): replaced
        # whole, under the lock when the background thread adds to it (_work_ahead)
        self._ahead: tuple = (None, {})
        self._ahead_lock = threading.Lock()
        self._idle = threading.Event()  # set while the page is not drawing
        self._idle.set()
        self._drawn_at = 0.0  # time.monotonic() at the end of the last draw
        self._ahead_due = None  # (a load, its last day): presets to work out as a draw ends
        state.observe(self._on_load, names="enriched")
        self._differs = ChartPanel(
            title="What they do differently",
            caption="Practice mix of the positive deviants (or the rep you clicked) against "
            "their peers, largest standardised difference first.",
            filename="what-differs",
        )
        self._table = TablePanel(
            title="Deviants",
            caption="Reps outside the 99.8% limits of their peer group (the other reps of it, "
            "its own uncertainty included) whose q-value is at most 5% (Benjamini-Hochberg over "
            "every rep tested: of the reps flagged this way, on average at most 1 in 20 is a "
            "fluke). "
            "'Compared within' names the grouping used: a peer group smaller than the "
            "settings' minimum is widened to its segment, then to all reps.",
            filename="deviants",
        )
        widgets.link((self._metric, "value"), (self, "metric"))
        widgets.link((self._peer, "value"), (self, "peer_group"))
        self.children = [
            row(self._metric, self._peer),
            self._finding,
            self._funnel,
            self._differs,
            self._table,
        ]

    @observe("metric", "peer_group")
    def _on_metric(self, change) -> None:
        self.refresh()

    @property
    def held_loads(self) -> list:
        """The loads (:class:`effortlens.enrich.Enriched`) whose data this view keeps: its
        remembered and worked-ahead tables, running counts and read-ahead mark (at most the
        page's current load)."""
        held = [self._period_files_of, self._ahead[0], self._memo_data]
        held.append(None if self._counts_index is None else self._counts_index[0])
        return [
            h for i, h in enumerate(held) if h is not None and all(h is not o for o in held[:i])
        ]

    @property
    def worked_ahead(self) -> tuple:
        """The memo keys of the tables worked out ahead for the period presets so far
        (:meth:`_work_ahead`): ``("deviance", filter, metric)`` and ``("differs", filter,
        metric, None)``."""
        return tuple(self._ahead[1])

    def _on_load(self, change) -> None:
        """A new load (or none): let go of everything kept of another load (its period files'
        mark, running counts, remembered and worked-ahead tables), so a replaced load's data is
        not held until the next draw."""
        enriched = self.state.enriched
        if self._period_files_of is not enriched:
            self._period_files_of = None
        if self._counts_index is not None and self._counts_index[0] is not enriched:
            self._counts_index = None
        if self._memo_data is not enriched:
            self._memo.clear()
            self._memo_data = None
        with self._ahead_lock:
            if self._ahead[0] is not enriched:
                self._ahead = (None, {})  # a thread still working for the old load stops

    #: Tables kept per filter, metric and rep: going back to a selection redraws it without
    #: computing its statistics again (a few small frames each).
    MEMO_SIZE = 12

    def _remembered(self, key: tuple, compute) -> pl.DataFrame:
        """``compute()`` once per ``key`` (its name, the page filter, then options) and data
        load; the last :attr:`MEMO_SIZE` kept, and besides them those of everything with no
        option narrowing it (no peer group, no rep picked: the page's first draw and its
        dearest, its "what differs" comparing every positive deviant)."""
        enriched = self.state.enriched
        if self._memo_data is not enriched:  # other data: nothing kept holds
            self._memo.clear()
            self._memo_data = enriched
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        ahead_of, ahead = self._ahead
        value = ahead.get(key) if ahead_of is enriched else None
        if value is None:
            value = compute()
        self._memo[key] = value
        others = [k for k in self._memo if not _whole_page(k)]
        for old in others[: max(len(others) - self.MEMO_SIZE, 0)]:
            del self._memo[old]
        return value

    def _response_counts(self, metric: str, enriched=None, flt=None) -> pl.DataFrame | None:
        """The page filter's (or ``flt``'s, in load ``enriched``) response counts per rep
        from the load's running counts
        (:func:`effortlens.deviance.response_count_index`, made at the first draw: the
        counts of any period are then two look-ups per rep, no day row read); None where
        :func:`effortlens.deviance.rep_deviance` counts them itself (the win rate, facts
        enriched in memory, a filter on activity types)."""
        if enriched is None:
            enriched, flt = self.state.enriched, self.state.filter
        if metric != "response_rate" or not enriched.is_lazy or flt.activity_types:
            return None
        kept = self._counts_index
        if kept is None or kept[0] is not enriched:
            index = response_count_index(enriched.daily, rep_ids=enriched.reps["rep_id"])
            kept = (enriched, index)
            if enriched is self.state.enriched:
                self._counts_index = kept
        # every rep's: peer_deviance keeps the filtered view's reps (a team, a rep...)
        return response_counts_between(kept[1], start=flt.start, end=flt.end)

    @validate("rep")
    def _valid_rep(self, proposal):
        rep = proposal["value"] or None
        enriched = self.state.enriched
        if rep is not None and enriched is not None and rep not in enriched.reps["rep_id"]:
            raise TraitError(f"no rep {rep!r} in this data")
        return rep

    @observe("rep")
    def _on_rep(self, change) -> None:
        if self._last_deviance is not None:
            with self._drawing():
                self._render_differs(self.state.view, self._last_deviance)

    @contextlib.contextmanager
    def _drawing(self):
        """The page draws: the presets worked ahead wait (:meth:`_quiet`)."""
        self._idle.clear()
        try:
            yield
        finally:
            self._drawn_at = time.monotonic()
            self._idle.set()

    def pick(self, points: list[dict]) -> None:
        """Compare the clicked rep (a funnel-plot selection; [] for all deviants) with peers."""
        shown = points[0].get("rep_id") if points else None
        self.rep = self.state.unmask("rep", shown) if shown else None

    def render(self, view) -> None:
        """Draw the funnel plot, the finding, what differs and the deviants table (and, at
        a load's first draw, work out the period presets ahead: :meth:`_start_work_ahead`)."""
        with self._drawing():  # the presets worked ahead wait while the page draws
            self._ahead_due = None
            self._render(view)
            due, self._ahead_due = self._ahead_due, None
            if due is not None:
                self._start_work_ahead(*due)

    def _render(self, view) -> None:
        coverage = page_coverage(self.state)
        if not coverage.response_measurable and self.metric != "win_rate":
            self.metric = "win_rate"  # no activities or no buyer actions: no response rate
            return  # the change of metric redraws the view
        metric = self.metric
        section = "deviance_win" if metric == "win_rate" else "deviance"
        caveat = caveats_html(self.state, section)
        if metric == "win_rate" and coverage.one_sided:
            self._finding.value = caveat
            self._funnel.show_message(
                "Win rates cannot be compared: every closed deal in this data has the same "
                "result, so every rep would be drawn at the same rate."
            )
            self._differs.show_message("Nothing to compare.")
            self._table.show_message("No deviants.")
            return
        deviance = self._remembered(
            ("deviance", self.state.filter, metric),
            lambda: rep_deviance(view, metric=metric, counts=self._response_counts(metric)),
        )
        if not (deviance.get_column("volume") > 0).any():  # a Series test: no query
            what = "closed deals" if metric == "win_rate" else "customer-facing activities"
            self._funnel.show_message(f"No {what} in this selection.")
            self._finding.value = ""
            self._differs.show_message("Nothing to compare.")
            self._table.show_message("No deviants.")
            return
        self._last_deviance = deviance
        shown = self.state.present(deviance)
        group = self.peer_group or None
        funnel = self._remembered(  # a chart object: its lines are worked out per filter
            ("funnel", self.state.filter, metric, group, self.state.anonymise),
            lambda: funnel_plot_chart(shown, peer_group=group, min_volume=None),
        )
        kept = shown.clone()  # without the rho column (drop_in_place: no query)
        kept.drop_in_place("overdispersion")
        self._funnel.show(funnel, table_frame=kept)
        self.keep(deviance=kept)
        differs = self._render_differs(view, deviance)
        self._read_period_files()
        self._finding.value = caveat + findings_html(
            deviance_findings(shown, differs, metric=metric)
        )
        ranked = rank_deviants(shown)
        if ranked.height == 0:
            self._table.show_message("No rep is outside the 99.8% limits of their peer group.")
            return
        basis = ["peer_basis"] if "peer_basis" in ranked.columns else []  # the grouping used
        table = ranked.select(
            "rep_name",
            "peer_group",
            *basis,
            "direction",
            "rate",
            "peer_rate",
            "shrunk_rate",
            "volume",
            *(["z"] if "z" in ranked.columns else []),
            # the flag rule's second half: Benjamini-Hochberg q-value at most 5%
            *(
                [
                    pl.when(pl.col("q_value") < 0.001)
                    .then(pl.lit("<0.001"))
                    .otherwise(pl.col("q_value").round(3).cast(pl.String))
                    .alias("q_value")
                ]
                if "q_value" in ranked.columns
                else []
            ),
        )
        self._table.show(  # a row per ranked deviant: not empty (the message above)
            table,
            percent=("rate", "peer_rate", "shrunk_rate"),
            labels={"peer_basis": "compared within", "q_value": "q (false discovery)"},
        )

    def _read_period_files(self) -> None:
        """Read, once per data load and at the page's first draw (a preheated kernel's), what
        a first comparison over a period reads of the build: each period preset's cells and
        gap runs (``practice_periods/``) and the practice codes' keys and value spans
        (``practice_codes/``). At 10m a kernel's first "Last 52 weeks" or "Last 26 weeks"
        change took 116-161 CPU ms reading them, later ones at most 99. A file that cannot
        be read is left to the change that needs it (which shows the problem)."""
        from effortlens.facts import entry_of

        enriched = self.state.enriched
        if self._period_files_of is enriched:
            return
        self._period_files_of = enriched
        if entry_of(enriched) is None:  # facts enriched in memory: no build files
            return
        import datetime as dt

        from effortlens.deviance.differs import (
            PRACTICE_PERIOD_DAYS,
            practice_codes_of,
            practice_period_of,
        )
        from effortlens.filters import Filter
        from effortlens_widgets.app import log_problem
        from effortlens_widgets.controls import last_day

        try:
            end = last_day(enriched)
            if end is None:
                return
            for days in PRACTICE_PERIOD_DAYS:  # the presets' windows, as the filter bar's
                start = end - dt.timedelta(days=days - 1)
                practice_period_of(enriched, Filter(start=start, end=end))
            codes = practice_codes_of(enriched)
            if codes is not None:
                codes.spans  # noqa: B018  (read once, then kept)
        except (Exception, pl.exceptions.PanicException) as err:
            log_problem("the period files could not be read ahead", err)
            return
        if self.WORK_AHEAD:
            self._ahead_due = (enriched, end)  # once every part of the page is drawn

    def _start_work_ahead(self, enriched, end) -> None:
        """Work out the first :attr:`AHEAD_IN_FIRST_DRAW` presets of :attr:`AHEAD_DAYS` now
        (the end of a load's first draw), the others in a background thread once the page
        is still (:meth:`_work_ahead`)."""
        with self._ahead_lock:
            self._ahead = (enriched, {})
        now = self.AHEAD_DAYS[: self.AHEAD_IN_FIRST_DRAW]
        later = self.AHEAD_DAYS[self.AHEAD_IN_FIRST_DRAW :]
        self._work_ahead(enriched, end, self.metric, now, quiet=False)
        if later:
            threading.Thread(
                target=self._work_ahead,
                args=(enriched, end, self.metric, later),
                name="effortlens-deviance-ahead",
                daemon=True,
            ).start()

    #: Work out the period presets' comparisons of every rep at the end of the page's first
    #: draw and in the background after it (:meth:`_start_work_ahead`); False: each at the
    #: change that asks for it.
    WORK_AHEAD = True
    #: The presets worked ahead, in this order (days; the dearest first: at 10m a "Last 26
    #: weeks" with every deviant took 81-116 CPU ms at the change, the exact funnel tables).
    AHEAD_DAYS = (182, 364, 91, 28)
    #: How many of :attr:`AHEAD_DAYS` (the first ones) are worked out within a load's first
    #: draw, not in the background: a change made before the page has been still for
    #: :attr:`AHEAD_QUIET` (a viewer or a script quicker than that) took 61-93 CPU ms for
    #: "Last 26 weeks" at 10m, 60-76 for "Last 52 weeks"; the first draw takes ~0.1 CPU s
    #: more for them (a preheated kernel's, in a served page).
    AHEAD_IN_FIRST_DRAW = 2
    #: Seconds the page must have been still (no draw) before a preset is worked ahead: the
    #: work fills the time a viewer reads, and never shares the CPU with changes made in a
    #: quick row (at most one preset's work, tens of ms at 10m, overlaps a change).
    AHEAD_QUIET = 0.3

    def _quiet(self) -> None:
        """Wait until the page has not drawn for :attr:`AHEAD_QUIET` seconds."""
        while True:
            self._idle.wait()
            left = self._drawn_at + self.AHEAD_QUIET - time.monotonic()
            if left <= 0 and self._idle.is_set():
                return
            time.sleep(min(max(left, 0.01), 0.1))

    def _work_ahead(
        self, enriched, end, metric: str, presets: tuple[int, ...], *, quiet: bool = True
    ) -> None:
        """For each period preset of ``presets`` (days) with no other filter (what the period
        dropdown alone gives): the deviance of every rep and what the positive deviants do
        differently, the same tables a change to it computes (the same functions), kept in
        ``_ahead`` under the memo's keys for :meth:`_remembered`. In a background thread
        (``quiet``): one preset at a time, never while the page draws (a change waits for no
        preset: it computes what is not ready yet); stops when another load arrives. A
        failure is left to the change that meets it (which shows it)."""
        import datetime as dt

        from effortlens.filters import Filter

        wait = self._quiet if quiet else (lambda: None)
        try:
            for days in presets:
                wait()
                if self._ahead[0] is not enriched:
                    return
                flt = Filter(start=end - dt.timedelta(days=days - 1), end=end)
                view = filter_enriched(enriched, flt)
                deviance = rep_deviance(
                    view, metric=metric, counts=self._response_counts(metric, enriched, flt)
                )
                ahead = {("deviance", flt, metric): deviance}
                if enriched.n_activities and (deviance.get_column("volume") > 0).any():
                    wait()
                    ahead[("differs", flt, metric, None)] = self._what_differs(
                        view, deviance, enriched, flt, rep=None
                    )
                with self._ahead_lock:
                    if self._ahead[0] is not enriched:  # another load came meanwhile
                        return
                    self._ahead = (enriched, {**self._ahead[1], **ahead})
        except (Exception, pl.exceptions.PanicException):
            return

    def _render_differs(self, view, deviance: pl.DataFrame) -> pl.DataFrame:
        # the load's count (made once): a view's would collect its filtered day rows
        if view is None or page_coverage(self.state).activities == 0:
            self._differs.show_message("Practice mix needs activities; this data has deals only.")
            return pl.DataFrame()
        differs = self._remembered(
            ("differs", self.state.filter, self.metric, self.rep),
            lambda: self._what_differs(view, deviance),
        )
        if differs.height == 0:
            self._differs.show_message("No positive deviants to compare in this selection.")
            return differs
        who = (
            f"{self.state.rep_label(self.rep)} against their peers"
            if self.rep
            else "Positive deviants against their peers"
        )
        self._differs.show(
            what_differs_chart(differs, title=f"What differs: {who}"), table_frame=differs
        )
        self.keep(what_differs=differs)
        return differs

    def _what_differs(
        self, view, deviance: pl.DataFrame, enriched=None, flt=None, rep: str | None = ...
    ) -> pl.DataFrame:
        """What the picked rep (``rep``; default the page's pick) or every positive deviant
        does differently, in load ``enriched`` under ``flt`` (default the page's)."""
        if enriched is None:
            enriched, flt = self.state.enriched, self.state.filter
        rep = self.rep if rep is ... else rep
        rep_ids = [rep] if rep else None
        if flt.start is not None or flt.end is not None:
            # a period: the build's practice codes, a slice of days counted by numpy
            from effortlens.deviance.differs import (
                practice_codes_of,
                what_differs_coded,
                what_differs_preset,
            )

            # one of the build's period presets: its reps' rows summed, as without a period
            differs = what_differs_preset(enriched, deviance, flt, rep_ids=rep_ids)
            if differs is not None:
                return differs
            codes = practice_codes_of(enriched)
            differs = (
                None if codes is None else what_differs_coded(codes, deviance, flt, rep_ids=rep_ids)
            )
            if differs is not None:
                return differs
        practice = precomputed(enriched, "practice")
        touches = None if practice is None else practice_in(practice, flt)
        if touches is not None:  # the build's touches with their previous ones: no sort
            cells = {k: precomputed(enriched, f"practice_{k}") for k in ("shares", "sequences")}
            whole_reps = flt.start is None and flt.end is None  # per-rep sums hold
            given = whole_reps and all(v is not None for v in cells.values())
            # the follow-ups by rep: the median days between touches without the touches
            gaps = {k: precomputed(enriched, f"practice_{k}") for k in ("gaps", "gap_reps")}
            by_rep = given and all(v is not None for v in gaps.values())
            if by_rep:  # whole reps: their cells summed from the reps' rows by numpy
                from effortlens.deviance.differs import practice_gap_runs_of, practice_rep_cells_of

                rep_cells = practice_rep_cells_of(enriched, cells["shares"], cells["sequences"])
                runs = practice_gap_runs_of(enriched)  # None: a build from before them
            differs = what_differs_in(
                touches,
                deviance,
                rep_ids=rep_ids,
                cells={k: filter_frame(v, flt) for k, v in cells.items()} if given else None,
                rep_cells=rep_cells.kept(flt) if by_rep else None,
                gaps={
                    "gaps": gaps["gaps"],
                    "all_gap_reps": gaps["gap_reps"],
                    "gap_reps": filter_frame(gaps["gap_reps"], flt),
                    **({} if runs is None else {"runs": runs}),
                }
                if by_rep
                else None,
            )
        else:
            differs = what_differs(events(view, "activities"), deviance, rep_ids=rep_ids)
        return differs


class Journey(View):
    """Deal KPIs, the finding, the stage funnel, time in stage, verification, blocked deals."""

    by = Enum(
        (None, "segment", "team"),
        None,
        allow_none=True,
        help="Split the stage charts by segment or team; None shows all deals together.",
    )

    def __init__(self, state) -> None:
        """Build the split switch, cards, charts and table on ``state``."""
        super().__init__(state)
        self._by = widgets.ToggleButtons(
            options=[("All deals", None), ("By segment", "segment"), ("By team", "team")],
            value=self.by,
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
        widgets.link((self._by, "value"), (self, "by"))
        self.children = [
            self._cards,
            self._finding,
            self._by,
            self._funnel,
            row(self._time, self._verified),
            self._blocked,
        ]

    @observe("by")
    def _on_by(self, change) -> None:
        self.refresh()

    def render(self, view) -> None:
        """Draw every part of the journey from the filtered deals (computed once per filter
        and split: :func:`journey_numbers`)."""
        drawn = journey_numbers(self.state, view, by=self.by)
        if drawn is None:
            for panel in (self._funnel, self._time, self._verified):
                panel.show_message("No deals with stage history in this selection.")
            self._cards.show([])
            self._finding.value = ""
            return
        flow = drawn["flow"]
        self._cards.show(drawn["kpis"])
        self._finding.value = caveats_html(self.state, "journey") + drawn["finding"]
        self._funnel.show(drawn["funnel_chart"], table_frame=flow)
        if drawn["time_chart"] is not None:
            self._time.show(drawn["time_chart"], table_frame=flow)
        else:
            self._time.show_message(
                "Times in stage are not measured: this data holds each deal's current stage, "
                "not when it moved. Add the stage-history export to see them."
            )
        if drawn["verification_chart"] is not None:
            self._verified.show(drawn["verification_chart"], table_frame=flow)
        else:
            self._verified.show_message(
                "Buyer verification needs buyer actions (meetings held, proposals requested) or "
                "recorded verifiers, and this data has neither: unknown, not zero."
            )
        self.keep(flow=flow, deal_kpis=kpi_frame(self._cards.kpis))
        blocked = drawn["blocked"]
        if blocked is None:
            self._blocked.show_message(
                "Blocked deals are not measured: without stage changes, how long a deal has "
                "waited in its stage is unknown."
            )
            return
        if blocked.height:
            shown = self.state.present(blocked).select(
                "opportunity_id",
                "rep_name",
                "stage",
                pl.col("entered_ts").dt.date().alias("in stage since"),
                pl.col("age_days").round(0).cast(pl.Int64).alias("days in stage"),
                pl.col("threshold_days").round(0).cast(pl.Int64).alias("p90 of the stage"),
            )
            self._blocked.show(shown, labels={"opportunity_id": "deal", "rep_name": "owner"})
            self.keep(blocked_deals=shown)
        else:
            self._blocked.show_message("No open deal is past its stage's p90 time.")


#: Each page state's journey draws (:func:`journey_numbers`), with their load: the last few
#: (filter, split) pairs, so that returning to one costs no computation.
_JOURNEY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_KEEP_JOURNEYS = 8


def journey_numbers(state, view, *, by: str | None = None) -> dict | None:
    """Everything the journey page draws for the page filter and split ``by``: the flow tables,
    deal KPIs, the finding's HTML, the three charts (None where not measured) and the blocked
    deals with their owners' names (before the page's pseudonyms; None when not measured);
    None when the selection has no deals with stage history.

    Kept per load for the last few (filter, split) pairs: a filter the reader returns to
    (everything, after a team) is drawn from memory. Everything with no split (the page's
    first draw, and its dearest: every deal) is kept however many others were drawn since.
    ``view`` is the state's filtered view.
    """
    enriched, flt = state.enriched, state.filter
    kept = _JOURNEY.get(state)
    if kept is None or kept[0] is not enriched:
        kept = _JOURNEY[state] = (enriched, {})
    memo = kept[1]
    key = (flt, by)
    if key in memo:
        memo[key] = memo.pop(key)  # the most recent last
        return memo[key]
    drawn = _journey_numbers(state, view, by=by)
    forget_stays()  # what the draw shared between its tables; not read again
    memo[key] = drawn
    while len(memo) > _KEEP_JOURNEYS:
        del memo[next(k for k in memo if not (k[0].is_everything and k[1] is None))]
    return drawn


#: Each page state's deal tables for the journey, collected once per load (:func:`_deal_tables`).
_DEALS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_OWNER = ["team", "segment", "role"]


def _deal_tables(state) -> dict | None:
    """The load's deals and what a filter reads of them (each deal's owner and creation
    day), with every deal's stays (:func:`effortlens.flow.stay_index`) and the build's
    verifier facts' owners and days, made once per load; the stage history and the verifiers
    themselves are not kept (a filter masks the stays). None without verifier facts (facts
    enriched in memory: the view is used as is) or with deal ids that are not unique."""
    enriched = state.enriched
    kept = _DEALS.get(state)
    if kept is not None and kept[0] is enriched:
        return kept[1]
    verifiers = precomputed(enriched, "verifiers")
    tables = None
    if verifiers is not None:
        reps = enriched.reps.select("rep_id", *_OWNER)
        # only the columns the journey reads (a deal's account, amount and currency are not)
        opps = table(enriched, "opportunities")
        opps = opps.select(
            c
            for c in ("opportunity_id", "rep_id", "created_ts", "close_ts", "outcome")
            if c in opps.collect_schema().names()
        ).collect()
        history = table(enriched, "stage_history")
        names = history.collect_schema().names()
        history = history.select(
            "opportunity_id",
            "stage",
            "entered_ts",
            *(["derived"] if "derived" in names else []),
            # whether a move names its verifier is all the flow reads of the id: 1 byte
            verifier_action_id=pl.col("verifier_action_id").is_not_null().replace(False, None),
        ).collect()
        if opps["opportunity_id"].is_unique().all() and reps["rep_id"].is_unique().all():
            tables = _deal_tables_of(state, opps, history, reps, verifiers.collect())
    _DEALS[state] = (enriched, tables)
    return tables


def _deal_tables_of(state, opps, history, reps, verifiers) -> dict:
    deal = (
        history.select("opportunity_id")
        .join(
            opps.select("opportunity_id").with_row_index("deal"),
            on="opportunity_id",
            how="left",
            maintain_order="left",
        )["deal"]
        .fill_null(opps.height)
        .to_numpy()
    )
    if (deal == opps.height).any():  # rows of no known deal: no filter keeps them
        history = history.filter(pl.Series(deal < opps.height))
        deal = deal[deal < opps.height]
    # the flow joins, sorts and groups by deal: it reads each deal's id as an integer code
    # numbered in the ids' own order (the same order of rows, cheaper keys); a verifier of no
    # known deal backs no stage entry and is left out
    ids = opps["opportunity_id"]
    rank = np.empty(opps.height, dtype=np.uint32)
    rank[ids.arg_sort().to_numpy()] = np.arange(opps.height, dtype=np.uint32)
    on_deal = verifiers.join(
        pl.DataFrame({"opportunity_id": ids, "__code": rank}),
        on="opportunity_id",
        how="left",
        maintain_order="left",
    )["__code"]
    verifiers = verifiers.with_columns(opportunity_id=on_deal).filter(
        pl.col("opportunity_id").is_not_null()
    )
    ids_in_order = ids.sort()
    # the deals in the order of their codes: a stay's deal is then its code (no array of it)
    opps = opps.with_columns(opportunity_id=pl.Series(rank)).sort("opportunity_id")
    deal = rank[deal]
    history = history.with_columns(opportunity_id=pl.Series(deal))
    # a filter reads a row's owner (team, segment, role: the rep's) and its day: each row
    # keeps a code of its owner and its day, and a filter is applied once to the few owners,
    # then to the rows as two array look-ups
    owner_ids = pl.concat([opps.select("rep_id"), verifiers.select("rep_id")])
    owners = (
        owner_ids.unique(maintain_order=True)
        .join(reps, on="rep_id", how="left", maintain_order="left", nulls_equal=True)
        .with_row_index("owner")
    )

    def owner_of(frame: pl.DataFrame) -> np.ndarray:
        return (
            frame.select("rep_id")
            .join(
                owners.select("rep_id", "owner"),
                on="rep_id",
                how="left",
                maintain_order="left",
                nulls_equal=True,
            )["owner"]
            .to_numpy()
        )

    has_history = np.zeros(opps.height, dtype=bool)
    has_history[deal] = True
    has_recorded = np.zeros(opps.height, dtype=bool)
    has_recorded[deal[history["verifier_action_id"].is_not_null().to_numpy()]] = True
    # the flow reads a deal's owner as a code too (the owners' row): 4 bytes a stay, not a string
    deal_owner = owner_of(opps)
    deal_day = _day_numbers(opps["created_ts"].dt.date())
    opps = opps.select(
        "opportunity_id", "created_ts", "close_ts", pl.col("outcome").cast(pl.Categorical)
    ).with_columns(rep_id=pl.Series(deal_owner, dtype=pl.UInt32))
    owner_reps = owners.select(pl.col("owner").alias("rep_id"), *_OWNER)
    stays = stay_index(
        {
            "opportunities": opps,
            "stage_history": history,
            "reps": owner_reps,
            "buyer_actions": verifiers,
        },
        settings=state.enriched.settings,
        assume_derived=page_coverage(state).stage_path == "derived",
    )
    return {  # what a filter reads, once (the kernel's memory: issue 13)
        "deal_ids": ids_in_order,  # a deal's id by its code
        "opportunities": opps.drop("created_ts"),  # read for rates and losses, by code
        "owners": owners,
        "owner_reps": owner_reps,  # the reps by owner code, as the stays read them
        "deal_owner": deal_owner,
        "deal_day": deal_day,
        "stays": stays,  # every deal's stays, masked per filter
        "has_history": has_history,  # per deal: any stage history row
        "has_recorded": has_recorded,  # per deal: any recorded verifier_action_id
        "verifier_owner": owner_of(verifiers),
        "verifier_day": _day_numbers(verifiers["day"]),
        "has_actions": has_rows(table(state.enriched, "buyer_actions")),
    }


def _rows_kept(tables: dict, flt, *, owner: str, day: str) -> np.ndarray | None:
    """Which rows ``flt`` keeps, as :func:`effortlens.filters.filter_frame` keeps them on their
    owner's columns and their day (activity types never apply); None for all of them."""
    by_owner = _owners_kept(tables, flt)
    mask = None if by_owner is None else by_owner[tables[owner]]
    days = tables[day]
    for bound, keep in ((flt.start, np.greater_equal), (flt.end, np.less_equal)):
        if bound is not None:  # a missing day is never kept, as a null is not
            # a Python int: compared as the days' 32-bit integers, not copied to 64 bits
            inside = keep(days, int(np.datetime64(bound, "D").astype(np.int64)))
            if bound is flt.end:
                inside &= days != _NO_DAY
            mask = inside if mask is None else mask & inside
    return mask


#: Owner masks kept per load (:func:`_owners_kept`): a page's deals, verifiers and previous
#: period read the same owners' filter, and a reader goes back and forth between a few.
_KEEP_OWNER_MASKS = 8


def _owners_kept(tables: dict, flt) -> np.ndarray | None:
    """Which owners (rows of the tables' ``owners``) ``flt`` keeps by its teams, segments,
    roles and reps; None for all of them. Kept in ``tables`` for the last few filters."""
    from dataclasses import replace

    key = replace(flt, start=None, end=None, activity_types=())
    memo = tables.setdefault("owners_kept", OrderedDict())
    if key in memo:
        memo.move_to_end(key)
        return memo[key]
    owners = tables["owners"]
    kept = filter_frame(owners, key, day_column="__none__")
    by_owner = None
    if kept.height < owners.height:
        by_owner = np.zeros(owners.height, dtype=bool)
        by_owner[kept["owner"].to_numpy()] = True
    memo[key] = by_owner
    while len(memo) > _KEEP_OWNER_MASKS:
        memo.popitem(last=False)
    return by_owner


_NO_DAY = np.iinfo(np.int32).min


def _day_numbers(days: pl.Series) -> np.ndarray:
    """Days since 1970-01-01 as 32-bit integers (half a date's 8 bytes), a missing day
    :data:`_NO_DAY` (before any bound: a filter keeps it by neither)."""
    return days.cast(pl.Int32).fill_null(_NO_DAY).to_numpy()


def _deals_kept(tables: dict, flt) -> np.ndarray | None:
    """Which deals ``flt`` keeps, as :func:`effortlens.filters.filter_enriched` keeps them (by
    owner and creation date); None for all of them."""
    return _rows_kept(tables, flt, owner="deal_owner", day="deal_day")


def journey_inputs(state, view) -> dict | None:
    """What the journey's flow functions read under the page filter: ``source`` (the kept
    deals and the reps, with owners as codes: ``rep_id`` a row of :func:`_deal_tables`'
    ``owners``), ``stays`` (:func:`effortlens.flow.stays_under`, masked from
    :func:`_deal_tables`; None when the load has no such tables: the flow functions then
    compute them from ``source``, the view with its verifiers,
    :func:`effortlens.flow.with_verifiers`), ``evidence`` (:func:`has_buyer_evidence`) and
    ``deals`` (the kept opportunities); None when no kept deal has stage history.

    Equal to what the flow functions give on the filtered view (tests/test_journey_page.py).
    """
    tables = _deal_tables(state)
    if tables is None:
        view = with_verifiers(view, state.enriched, state.filter)
        opps = view.tables["opportunities"]
        if opps.height == 0 or view.tables["stage_history"].height == 0:
            return None
        return {"source": view, "stays": None, "evidence": has_buyer_evidence(view), "deals": opps}
    flt = state.filter
    mask = _deals_kept(tables, flt)
    opps = tables["opportunities"]
    with_history = tables["has_history"]
    if mask is not None:
        opps = opps.filter(pl.Series(mask))
        with_history = with_history & mask
    if opps.height == 0 or not with_history.any():
        return None
    verifiers = _rows_kept(tables, flt, owner="verifier_owner", day="verifier_day")
    stays = stays_under(tables["stays"], deals=mask, verifiers=verifiers)
    recorded = tables["has_recorded"] if mask is None else tables["has_recorded"] & mask
    return {
        "source": {"opportunities": opps, "reps": tables["owner_reps"]},
        "stays": stays,
        "evidence": tables["has_actions"] or bool(recorded.any()),
        "deals": opps,
    }


def _previous_deals(state, previous) -> pl.DataFrame:
    """The deals of the previous period's filter (for the KPI comparison)."""
    tables = _deal_tables(state)
    if tables is None:
        return filter_enriched(state.enriched, previous).tables["opportunities"]
    mask = _deals_kept(tables, previous)
    opps = tables["opportunities"]
    return opps if mask is None else opps.filter(pl.Series(mask))


def _journey_numbers(state, view, *, by: str | None) -> dict | None:
    inputs = journey_inputs(state, view)
    if inputs is None:
        return None
    source, stays, evidence, opps = (inputs[k] for k in ("source", "stays", "evidence", "deals"))
    settings = state.enriched.settings
    coverage = page_coverage(state)
    path = coverage.stage_path
    read = {"settings": settings, "stays": stays}
    overall = flow_table(source, stage_path=path, **read)
    flow = flow_table(source, by=by, stage_path=path, **read) if by else overall
    now = deal_rates(opps)
    one_sided = "" if coverage.win_rate_measurable else "not comparable: one-sided outcomes"
    before = {}
    previous = state.filter.previous_period()
    if previous is not None:
        before = deal_rates(_previous_deals(state, previous))
    kpis = [
        Kpi("Deals created", now["deals"], before.get("deals")),
        Kpi(
            "Win rate",
            None if one_sided else now["win_rate"],
            None if one_sided else before.get("win_rate"),
            fmt="{:.1%}",
            hint=one_sided or "Won / closed deals",
            versus="" if one_sided else "previous period",
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
            int(overall["blocked"].sum()) if coverage.times_in_stage else None,
            higher_is_better=False,
            hint="Open deals past their stage's p90 time in stage"
            if coverage.times_in_stage
            else "not measured: no stage changes in this data",
            versus="",
        ),
    ]
    flags = stage_flags(source, **read) if coverage.times_in_stage else None
    found = journey_findings(overall, has_evidence=evidence, stage_path=path, flags=flags)
    blocked = None
    if coverage.times_in_stage:
        blocked = blocked_deals(source, **read)
        tables = _deal_tables(state)
        if tables is not None:  # each deal's id and owner from their codes
            blocked = blocked.with_columns(
                opportunity_id=tables["deal_ids"].gather(blocked["opportunity_id"]),
                rep_id=tables["owners"]["rep_id"].gather(blocked["rep_id"]),
            )
        if blocked.height:
            blocked = blocked.join(
                view.reps.select("rep_id", "rep_name"), on="rep_id", how="left"
            ).sort("over_days", descending=True)
    return {
        "overall": overall,
        "flow": flow,
        "flags": flags,
        "kpis": kpis,
        "finding": findings_html(found),
        "funnel_chart": stage_funnel_chart(flow, by=by),
        "time_chart": time_in_stage_chart(flow, by=by) if coverage.times_in_stage else None,
        "verification_chart": verification_chart(flow, by=by) if evidence else None,
        "blocked": blocked,
    }


#: Each page state's habits draws (:func:`habits_numbers`), with their load: the last few
#: filters, so that returning to one costs no computation.
_HABITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_KEEP_HABITS = 8


def habits_numbers(state, view, *, no_effort) -> dict:
    """What the habits page draws for the page filter: the tables, the ranked habits, the
    finding's HTML and the three charts; or ``message`` (and whether to show the caveats)
    when there is nothing to rank. ``no_effort(what)`` words the message of a selection
    without customer-facing effort. Kept per load for the last few filters.
    """
    enriched, flt = state.enriched, state.filter
    kept = _HABITS.get(state)
    if kept is None or kept[0] is not enriched:
        kept = _HABITS[state] = (enriched, {})
    memo = kept[1]
    if flt in memo:
        memo[flt] = memo.pop(flt)  # the most recent last
        return memo[flt]
    drawn = _habits_numbers(state, view, no_effort=no_effort)
    memo[flt] = drawn
    while len(memo) > _KEEP_HABITS:
        del memo[next(iter(memo))]
    return drawn


def _habits_numbers(state, view, *, no_effort) -> dict:
    flt, built = state.filter, precomputed(state.enriched, "touches") is not None
    tables = None
    if built and not flt.is_everything and page_coverage(state).has_buyer_actions:
        # the filter's touches are summed once: the timing table counts every one of them,
        # which says whether there are any (a separate count would read them again)
        tables = habit_tables(state)
        effort = int(tables["timing"]["activities"].sum()) > 0
    else:
        effort = has_touches(state, view)
    if not effort:
        return {"message": no_effort("Habits and patterns"), "caveats": False}
    if not page_coverage(state).has_buyer_actions:
        return {"message": NO_BUYER_ACTIONS.format(what="When buyers answer"), "caveats": True}
    if built:  # sums, no sort
        tables = tables or habit_tables(state)
        timing, cadence, sequences = tables["timing"], tables["cadence"], tables["sequences"]
        effects = tables["effects"]
    else:  # facts enriched in memory
        acts = events(view, "activities")
        timing = response_by_timing(acts)
        cadence = response_by_cadence(acts)
        sequences = sequence_lift(acts)
        effects = {f: habit_effects(view, feature=f) for f in ("timing", "cadence")}
    ranked = rank_habits(timing, cadence, sequences)
    return {
        "timing": timing,
        "cadence": cadence,
        "sequences": sequences,
        "habits": ranked,
        "finding": findings_html(habits_findings(ranked, effects=effects)),
        "timing_chart": timing_heatmap_chart(timing, min_activities=20),
        "cadence_chart": cadence_chart(cadence),
        "sequence_chart": sequence_lift_chart(sequences) if sequences.height else None,
    }
