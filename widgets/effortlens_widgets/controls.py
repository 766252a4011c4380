"""Controls that write to the page state: the filter bar, anonymise toggle, peer-group picker."""

from __future__ import annotations

import datetime as dt

import ipywidgets as widgets
import polars as pl
from traitlets import Enum, TraitError, Unicode, validate

from effortlens.filters import Filter
from effortlens_widgets.state import PageState

ALL = "(all)"

#: Period presets: label -> number of days back from the last day with data (None: everything).
PERIODS: dict[str, int | None] = {
    "All data": None,
    "Last 4 weeks": 28,
    "Last 13 weeks": 91,
    "Last 26 weeks": 182,
    "Last 52 weeks": 364,
}


#: Dropdown -> the Filter field it sets.
_FIELD_OF = {
    "team": "teams",
    "segment": "segments",
    "role": "roles",
    "rep": "reps",
    "activity_type": "activity_types",
}


def _options(frame: pl.DataFrame | None, column: str) -> list[str]:
    if frame is None or column not in frame.columns or frame.height == 0:
        return [ALL]
    return [ALL, *sorted(v for v in frame[column].unique().to_list() if v is not None)]


class FilterBar(widgets.HBox):
    """Period, team, segment, role, rep and activity type, writing ``state.filter``.

    The widgets are plain dropdowns (one value or all), the way a sales leader expects; every
    change makes exactly one refresh of the page. The period is counted back from the last day
    with data, so a historical export still opens on its own latest weeks. Each dropdown is
    linked to a public trait (``period``, ``team``, ``segment``, ``role``, ``rep``,
    ``activity_type``): setting the trait is the same as picking in the page.
    """

    period = Enum(tuple(PERIODS), "All data", help="Period preset: a key of PERIODS.")
    team = Unicode(ALL, help="The team looked at, or '(all)'.")
    segment = Unicode(ALL, help="The segment looked at, or '(all)'.")
    role = Unicode(ALL, help="The role looked at, or '(all)'.")
    rep = Unicode(ALL, help="The rep id looked at, or '(all)'.")
    activity_type = Unicode(ALL, help="The activity type looked at, or '(all)'.")

    def __init__(
        self,
        state: PageState,
        *,
        show: tuple[str, ...] = (
            "period",
            "team",
            "segment",
            "role",
            "rep",
            "activity_type",
        ),
        default_period: str = "All data",
    ) -> None:
        """Build the dropdowns named in ``show`` on ``state``."""
        super().__init__(layout=widgets.Layout(flex_flow="row wrap"))
        self.add_class("el-row")
        self._state = state
        self._show = show
        self._syncing = False
        self._last_day = None  # (the load's Enriched, its last day with data)
        small = widgets.Layout(width="15em")
        style = {"description_width": "initial"}
        self._period = widgets.Dropdown(
            options=list(PERIODS),
            value=default_period,
            description="Period",
            layout=small,
            style=style,
        )
        self._dropdowns = {
            name: widgets.Dropdown(
                options=[ALL], value=ALL, description=label, layout=small, style=style
            )
            for name, label in [
                ("team", "Team"),
                ("segment", "Segment"),
                ("role", "Role"),
                ("rep", "Rep"),
                ("activity_type", "Activity"),
            ]
        }
        controls = {"period": self._period, **self._dropdowns}
        self.children = [controls[name] for name in show]
        for name, control in controls.items():
            widgets.link((control, "value"), (self, name))
        self.observe(self._on_control, names=list(controls))
        state.observe(self._on_data, names=["enriched", "anonymise"])
        state.observe(self._on_state_filter, names="filter")
        self._on_data()

    def _on_data(self, change=None) -> None:
        enriched = self._state.enriched
        if self._last_day is not None and self._last_day[0] is not enriched:
            self._last_day = None  # another load's: not held until the next period pick
        reps = None if enriched is None else enriched.reps
        acts = None if enriched is None else enriched.daily  # every type with an activity
        self._syncing = True
        try:
            for name, column, frame in [
                ("team", "team", reps),
                ("segment", "segment", reps),
                ("role", "role", reps),
                ("activity_type", "activity_type", acts),
            ]:
                self._set_options(self._dropdowns[name], _options(frame, column))
            self._set_options(self._dropdowns["rep"], self._rep_options(reps))
        finally:
            self._syncing = False
        self._on_control()

    @property
    def held_loads(self) -> list:
        """The loads whose data the bar keeps (its period's last day, found once per load)."""
        return [] if self._last_day is None else [self._last_day[0]]

    def _rep_options(self, reps: pl.DataFrame | None) -> list:
        if reps is None or reps.height == 0:
            return [(ALL, ALL)]
        labelled = sorted((self._state.rep_label(r), r) for r in reps["rep_id"].to_list())
        return [(ALL, ALL), *labelled]

    @staticmethod
    def _set_options(dropdown: widgets.Dropdown, options: list) -> None:
        current = dropdown.value
        dropdown.options = options
        values = [o[1] if isinstance(o, tuple) else o for o in options]
        dropdown.value = current if current in values else ALL

    def _on_control(self, change=None) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self._state.filter = self.current_filter()
        finally:
            self._syncing = False

    def _on_state_filter(self, change) -> None:
        """A view changed the filter (a click in a chart): show it in the dropdowns."""
        if self._syncing:
            return
        flt = change["new"]
        self._syncing = True
        try:
            for name, field in _FIELD_OF.items():
                values = getattr(flt, field)
                control = self._dropdowns[name]
                options = [o[1] if isinstance(o, tuple) else o for o in control.options]
                control.value = values[0] if len(values) == 1 and values[0] in options else ALL
        finally:
            self._syncing = False

    def current_filter(self) -> Filter:
        """The filter the controls describe."""
        picked = {
            name: () if getattr(self, name) in (ALL, None) else (getattr(self, name),)
            for name in self._dropdowns
        }
        start = end = None
        days = PERIODS[self.period]
        enriched = self._state.enriched
        if days is not None and enriched is not None:
            kept = self._last_day
            if kept is None or kept[0] is not enriched:  # once per load
                kept = self._last_day = (enriched, last_day(enriched))
            end = kept[1]
            if end is not None:
                start = end - dt.timedelta(days=days - 1)
        return Filter(
            start=start,
            end=end,
            teams=picked["team"],
            segments=picked["segment"],
            roles=picked["role"],
            reps=picked["rep"],
            activity_types=picked["activity_type"],
        )

    @validate("team", "segment", "role", "rep", "activity_type")
    def _valid_choice(self, proposal):
        value = proposal["value"]
        control = self._dropdowns[proposal["trait"].name]
        options = [o[1] if isinstance(o, tuple) else o for o in control.options]
        if value not in options:
            raise TraitError(f"{value!r} is not one of the {proposal['trait'].name} options")
        return value

    def set_period(self, label: str) -> None:
        """Look at a period preset (a key of :data:`PERIODS`); the same as setting ``period``."""
        self.period = label


def last_day(enriched) -> dt.date | None:
    """The last local day with any effort or deal event in the data."""
    candidates = []
    if enriched.n_activities:  # the daily roll-up has every day with an activity
        candidates.append(enriched.daily["day"].max())
    if "opportunities" in enriched.tables:  # the column's largest value, the table not read
        # (at 100M the deviance page's first period change read all of it: +160 MB)
        opps = enriched.tables.lazy("opportunities")
        created = opps.select(pl.col("created_ts").max()).collect().item()
        if created is not None:
            candidates.append(created.date())
    return max(candidates) if candidates else None


class AnonymiseToggle(widgets.ToggleButton):
    """ "Hide names": pseudonyms everywhere on the page (charts, tables, tooltips, downloads)."""

    def __init__(self, state: PageState, **kwargs) -> None:
        """A toggle linked to ``state.anonymise``."""
        super().__init__(
            value=state.anonymise,
            description="Hide names",
            icon="user-secret",
            tooltip="Show stable pseudonyms instead of rep, manager, account and contact names",
            **kwargs,
        )
        widgets.link((self, "value"), (state, "anonymise"))


class PeerPicker(widgets.Dropdown):
    """Pick a peer group ("segment · role" by default); ``value`` is the group or ''."""

    def __init__(self, state: PageState, **kwargs) -> None:
        """A dropdown of the peer groups in ``state``'s data."""
        super().__init__(
            description="Peer group",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="22em"),
            **kwargs,
        )
        self._state = state
        state.observe(self._on_data, names="enriched")
        self._on_data()

    def _on_data(self, change=None) -> None:
        reps = None if self._state.enriched is None else self._state.enriched.reps
        current = self.value or ""
        options = [("All peer groups", "")] + [(g, g) for g in _options(reps, "peer_group")[1:]]
        self.options = options
        self.value = current if current in [v for _, v in options] else ""
