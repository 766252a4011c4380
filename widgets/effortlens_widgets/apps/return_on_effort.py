"""Return on effort: where does effort earn buyer action, by rep, team, practice and week."""

from __future__ import annotations

import weakref

import polars as pl
from traitlets import Int, observe

from effortlens.enrich import events, precomputed
from effortlens.filters import filter_frame
from effortlens.roe import (
    STREAK_ROW_GROUP,
    silent_streaks,
    streak_index,
    streaks_from_facts,
    streaks_read,
)
from effortlens_widgets.app import App, View
from effortlens_widgets.panels import TablePanel
from effortlens_widgets.views import (
    NO_BUYER_ACTIONS,
    BySlice,
    Headline,
    Trend,
    page_coverage,
    remembered,
)

#: The longest streaks listed (an org of 2,000 reps has hundreds of thousands).
STREAKS_SHOWN = 1_000


class SilentStreaks(View):
    """Contacts touched again and again with no answer: effort to stop or change."""

    min_touches = Int(4, min=2, help="Touches in a row with no buyer action that make a streak.")

    def __init__(self, state) -> None:
        """Build the table on ``state``."""
        super().__init__(state)
        self._table = TablePanel(title="Silent streaks", filename="silent-streaks")
        self._on_min_touches()
        self.children = [self._table]

    @observe("min_touches")
    def _on_min_touches(self, change=None) -> None:
        self._table.caption = (
            f"Runs of {self.min_touches} or more touches to one contact with no buyer action in "
            f"between, longest first (the {STREAKS_SHOWN:,} longest at most). Each is effort "
            "that could go elsewhere, or a cue to change approach. A streak counts every rep's "
            "touches to the contact and is listed when its last touch is in the selection."
        )
        if change is not None:
            self.refresh()

    def render(self, view) -> None:
        """List the silent streaks of the filtered activities, longest first."""
        if not page_coverage(self.state).has_activities:
            self._table.show_message(self.no_effort_message("Silent streaks"))
            return
        if not page_coverage(self.state).has_buyer_actions:  # every run would look silent
            self._table.show_message(NO_BUYER_ACTIONS.format(what="Silent streaks"))
            return
        built = precomputed(self.state.enriched, "streaks")
        if built is not None:  # the build's streaks, by the last touch's rep and day
            key = ("silent_streaks", self.min_touches)
            streaks = remembered(self.state, key, lambda: self._built_streaks(built))
        else:  # facts enriched in memory: the streaks of the filtered events
            streaks = silent_streaks(
                events(view, "activities"), events(view, "actions"), min_touches=self.min_touches
            ).head(STREAKS_SHOWN)
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
        self.keep(silent_streaks=shown)

    def _built_streaks(self, built: pl.LazyFrame) -> pl.DataFrame:
        """The longest streaks of the page filter from the build's (stored longest first).

        The load's :func:`effortlens.roe.streak_index` gives the positions of the filter's
        longest streaks; when they lie in a few stored row groups (the longest of a team, a
        period or everything lie near the top) only those are read, one slice each, or in
        fewer rows of the build's rep-ordered copy (a rep's or a team's lie together there:
        :func:`effortlens.roe.streaks_read`). Otherwise filtering every stored streak costs
        less.
        """
        index = _streak_index(self.state, built) if self.min_touches >= INDEXED_TOUCHES else None
        if index is not None:
            read = streaks_read(
                built,
                index,
                self.state.filter,
                min_touches=self.min_touches,
                top=STREAKS_SHOWN,
                group_rows=STREAK_ROW_GROUP,
                sliced_groups=SLICED_GROUPS,
                by_rep=precomputed(self.state.enriched, "streaks_by_rep"),
            )
            if read is not None:
                return read
        kept = filter_frame(built, self.state.filter, ignore=("activity_types",))
        return streaks_from_facts(kept, min_touches=self.min_touches, top=STREAKS_SHOWN)


#: The shortest runs :func:`_streak_index` holds (the view's default ``min_touches``).
INDEXED_TOUCHES = 4
#: Most stored row groups read by position: each slice costs ~3-5 ms at 10M
#: (:func:`effortlens.roe.write_streak_facts`), filtering every stored streak ~25-35 ms.
SLICED_GROUPS = 5

#: Each page state's streak index, with the load it was made for.
_STREAK_INDEX: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _streak_index(state, built: pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """The load's :func:`effortlens.roe.streak_index` of its built streaks, made once; None if
    they are not stored longest first (positions would not be the order of the list)."""
    kept = _STREAK_INDEX.get(state)
    if kept is None or kept[0] is not state.enriched:
        by_rep = precomputed(state.enriched, "streaks_by_rep")
        index = streak_index(built, min_touches=INDEXED_TOUCHES, by_rep=by_rep)
        if not index[0]["touches"].is_sorted(descending=True):
            index = None
        kept = _STREAK_INDEX[state] = (state.enriched, index)
    return kept[1]


def return_on_effort_app(**kwargs) -> App:
    """The return-on-effort page."""
    return App(
        title="Return on effort",
        question="Where does seller effort earn buyer action — by rep, team, practice and week?",
        views=[Headline, Trend, BySlice, SilentStreaks],
        daily_rep_codes=True,  # its views read the roll-up's reps through state.roe_facts
        **kwargs,
    )
