"""Controls that write to the page state: the filter bar, anonymise toggle, peer-group picker."""

from __future__ import annotations

import datetime as dt

import ipywidgets as widgets
import polars as pl
from traitlets import Unicode, observe

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
    with data, so a historical export still opens on its own latest weeks.
    """

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
        super().__init__(layout=widgets.Layout(flex_flow="row wrap"))
        self.add_class("el-row")
        self._state = state
        self._show = show
        self._syncing = False
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
        for control in controls.values():
            control.observe(self._on_control, names="value")
        state.observe(self._on_data, names=["enriched", "anonymise"])
        state.observe(self._on_state_filter, names="filter")
        self._on_data()

    def _on_data(self, change=None) -> None:
        enriched = self._state.enriched
        reps = None if enriched is None else enriched.reps
        acts = None if enriched is None else enriched.activities
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
            name: () if d.value in (ALL, None) else (d.value,)
            for name, d in self._dropdowns.items()
        }
        start = end = None
        days = PERIODS[self._period.value]
        enriched = self._state.enriched
        if days is not None and enriched is not None:
            end = last_day(enriched)
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

    def select_rep(self, rep_id: str | None) -> None:
        """Pick a rep (e.g. from a click in a chart); ``None`` goes back to all reps."""
        values = [o[1] for o in self._dropdowns["rep"].options]
        self._dropdowns["rep"].value = rep_id if rep_id in values else ALL

    def select(self, name: str, value: str | None) -> None:
        """Set one dropdown (``team``, ``segment``, ``role``, ``activity_type``) by value."""
        control = self._dropdowns[name]
        control.value = value if value in control.options else ALL

    def set_period(self, label: str) -> None:
        self._period.value = label


def last_day(enriched) -> dt.date | None:
    """The last local day with any effort or deal event in the data."""
    candidates = []
    if enriched.activities.height:
        candidates.append(enriched.activities["day"].max())
    opps = enriched.tables.get("opportunities")
    if opps is not None and opps.height:
        candidates.append(opps["created_ts"].max().date())
    return max(candidates) if candidates else None


class AnonymiseToggle(widgets.ToggleButton):
    """ "Hide names": pseudonyms everywhere on the page (charts, tables, tooltips, downloads)."""

    def __init__(self, state: PageState, **kwargs) -> None:
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

    value_label = Unicode("", help="The chosen peer group, '' for all groups.")

    def __init__(self, state: PageState, **kwargs) -> None:
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

    @observe("value")
    def _on_value(self, change) -> None:
        self.value_label = change["new"] or ""
