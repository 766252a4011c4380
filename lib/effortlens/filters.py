"""The filter a workbook page applies to every view: period, team, segment, role, rep, types.

Filtering happens *after* enrichment: attribution always sees every rep's activities, then the
views look at a slice of the enriched facts.

Examples
--------
>>> import datetime as dt, polars as pl
>>> f = Filter(teams=("North",), start=dt.date(2025, 1, 6))
>>> frame = pl.DataFrame({"team": ["North", "South"], "day": [dt.date(2025, 1, 7)] * 2})
>>> filter_frame(frame, f).height
1
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

import polars as pl

from effortlens.enrich import table

if TYPE_CHECKING:
    from effortlens.enrich import Enriched

# Filter field -> the column it restricts, where a frame has it.
_COLUMN_OF = {
    "teams": "team",
    "segments": "segment",
    "roles": "role",
    "reps": "rep_id",
    "activity_types": "activity_type",
}


@dataclass(frozen=True)
class Filter:
    """What the page is looking at. Empty tuples and ``None`` dates mean "everything".

    Parameters
    ----------
    start, end
        First and last local day included (inclusive).
    teams, segments, roles, reps, activity_types
        Allowed values; empty means all.
    """

    start: dt.date | None = None
    end: dt.date | None = None
    teams: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    reps: tuple[str, ...] = ()
    activity_types: tuple[str, ...] = ()

    @property
    def is_everything(self) -> bool:
        """True when nothing is restricted (the default filter)."""
        return self == Filter()

    def previous_period(self) -> Filter | None:
        """The same filter over the equally long period just before this one (for KPI deltas)."""
        if self.start is None or self.end is None:
            return None
        length = (self.end - self.start).days + 1
        return replace(
            self,
            start=self.start - dt.timedelta(days=length),
            end=self.start - dt.timedelta(days=1),
        )

    def describe(self) -> str:
        """A short human description, e.g. ``"2025-01-06 – 2025-03-31 · team North"``."""
        parts = []
        if self.start or self.end:
            parts.append(f"{self.start or '…'} – {self.end or '…'}")
        for f in fields(self):
            values = getattr(self, f.name)
            if f.name in _COLUMN_OF and values:
                label = f.name.replace("_", " ").rstrip("s")
                parts.append(f"{label} {', '.join(map(str, values))}")
        return " · ".join(parts) or "everything"


def filter_frame(
    frame: pl.DataFrame | pl.LazyFrame,
    flt: Filter,
    *,
    day_column: str = "day",
    ignore: tuple[str, ...] = (),
) -> pl.DataFrame | pl.LazyFrame:
    """Keep the rows of ``frame`` that pass ``flt``, on the columns the frame has.

    Parameters
    ----------
    frame
        Any enriched or canonical frame; restrictions on columns it lacks are skipped.
    flt
        The filter.
    day_column
        The local-date (or timestamp) column the period applies to.
    ignore
        Filter field names not to apply (e.g. ``("activity_types",)`` for deal views).

    Examples
    --------
    >>> import polars as pl
    >>> filter_frame(pl.DataFrame({"rep_id": ["a", "b"]}), Filter(reps=("b",)))["rep_id"].to_list()
    ['b']
    """
    names = set(frame.collect_schema().names())
    if day_column in names:
        frame, flt = period_slice(frame, flt, day_column=day_column)
    conditions: list[pl.Expr] = []
    for name, column in _COLUMN_OF.items():
        values = getattr(flt, name)
        if values and column in names and name not in ignore:
            conditions.append(pl.col(column).is_in(list(values)))
    if day_column in names:
        day = pl.col(day_column)
        dtype = frame.collect_schema()[day_column]
        if isinstance(dtype, pl.Datetime):
            day = day.dt.date()
        if flt.start is not None:
            conditions.append(day >= flt.start)
        if flt.end is not None:
            conditions.append(day <= flt.end)
    if not conditions:
        return frame
    return frame.filter(pl.all_horizontal(conditions))


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01 of a period's end (a ``Date``'s physical value); a datetime's
    own date, so a notebook's datetimes are read as the period control's dates.

    Examples
    --------
    >>> day_number(dt.date(1970, 1, 2)), day_number(dt.datetime(1970, 1, 2, 18))
    (1, 1)
    """
    if isinstance(day, dt.datetime):
        day = day.date()
    return (day - dt.date(1970, 1, 1)).days


def period_slice(
    frame: pl.DataFrame | pl.LazyFrame, flt: Filter, *, day_column: str
) -> tuple[pl.DataFrame | pl.LazyFrame, Filter]:
    """``frame`` cut to ``flt``'s period by binary search, and ``flt`` without its period, when
    ``frame`` is an eager frame whose ``Date`` column ``day_column`` is flagged sorted
    ascending and holds no null (Polars sets the flag when a frame is sorted by that column
    first, or by ``set_sorted``); else both unchanged (the period is then filtered).

    A slice is O(log n) and copies nothing: the rows kept, in their order, are the rows the
    filter keeps (a sorted column's rows in the period are one contiguous run).

    Examples
    --------
    >>> import datetime as dt, polars as pl
    >>> days = pl.DataFrame({"day": [dt.date(2025, 1, d) for d in (1, 2, 2, 5)]}).sort("day")
    >>> kept, rest = period_slice(days, Filter(start=dt.date(2025, 1, 2)), day_column="day")
    >>> kept.height, rest.start
    (3, None)
    """
    if (
        not isinstance(frame, pl.DataFrame)
        or (flt.start is None and flt.end is None)
        or frame.schema[day_column] != pl.Date
    ):
        return frame, flt
    day = frame.get_column(day_column)
    if not day.flags["SORTED_ASC"] or day.null_count():
        return frame, flt
    first = 0 if flt.start is None else int(day.search_sorted(flt.start, side="left"))
    last = frame.height if flt.end is None else int(day.search_sorted(flt.end, side="right"))
    return frame.slice(first, max(last - first, 0)), replace(flt, start=None, end=None)


def week_spans(daily: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The first and last day of each ``week`` of ``daily``'s days (a page makes it once per
    load, for :func:`period_by_weeks`): ``week``, ``first_day``, ``last_day``, sorted by week.

    Examples
    --------
    >>> import datetime as dt, polars as pl
    >>> days = [dt.date(2025, 1, d) for d in (6, 8, 13)]
    >>> daily = pl.DataFrame({"day": days, "week": [days[0], days[0], days[2]]})
    >>> week_spans(daily).row(0)
    (datetime.date(2025, 1, 6), datetime.date(2025, 1, 6), datetime.date(2025, 1, 8))
    """
    return (
        daily.lazy()
        .group_by("week")
        .agg(first_day=pl.col("day").min(), last_day=pl.col("day").max())
        .drop_nulls("week")
        .sort("week")
        .collect()
    )


def period_by_weeks(
    weekly: pl.DataFrame,
    daily: pl.DataFrame | pl.LazyFrame,
    flt: Filter,
    *,
    spans: pl.DataFrame,
    where: pl.Expr | None = None,
    summed: Callable[[pl.LazyFrame], pl.DataFrame | pl.LazyFrame] | None = None,
) -> pl.DataFrame:
    """The rows of ``daily`` (those ``where`` keeps) under ``flt``, with its whole weeks
    already summed: ``weekly``'s rows of the weeks whose every day of data lies in the period,
    and ``daily``'s rows of the period's other days (the partial weeks at its ends), each
    under the rest of ``flt``.

    ``weekly`` sums ``daily``'s rows (``where``) by keys that include ``week`` (e.g. rep ×
    week × activity type); ``spans`` is :func:`week_spans` of ``daily``. Any sum of the
    result by its keys' ``week`` or anything coarser (rep, team, activity type, the whole)
    equals the same sum of the filtered ``daily`` rows, up to the order of float additions;
    a 90-day period reads ~12 summed weeks and the days of two weeks at most instead of every
    day of its reps. Without a period it is ``weekly`` under ``flt``.

    ``summed`` turns day rows into ``weekly``'s rows (e.g. summed per rep and week, as
    ``weekly`` was made); by default the day rows are kept as they are, with ``weekly``'s
    columns. Either way a row of the result is a whole week's or lies in a partial week.

    Examples
    --------
    >>> import datetime as dt, polars as pl
    >>> days = [dt.date(2025, 1, 6) + dt.timedelta(days=i) for i in range(14)]
    >>> daily = pl.DataFrame({"day": days, "week": [days[0]] * 7 + [days[7]] * 7,
    ...                       "activities": [1] * 14})
    >>> weekly = daily.group_by("week").agg(pl.col("activities").sum())
    >>> flt = Filter(start=days[0], end=days[9])  # a whole week and three days
    >>> int(period_by_weeks(weekly, daily, flt, spans=week_spans(daily))["activities"].sum())
    10
    """
    rest = replace(flt, start=None, end=None)
    if flt.start is None and flt.end is None:
        return filter_frame(weekly, rest)
    inside = pl.lit(value=True)
    if flt.start is not None:
        inside &= pl.col("first_day") >= flt.start
    if flt.end is not None:
        inside &= pl.col("last_day") <= flt.end
    whole = spans.filter(inside)
    days = daily.lazy() if where is None else daily.lazy().filter(where)

    def as_weekly(rows: pl.LazyFrame) -> pl.LazyFrame:
        made = rows.select(weekly.columns) if summed is None else summed(rows)
        return made.lazy().select(weekly.columns)

    if whole.height == 0:
        return as_weekly(filter_frame(days, flt)).collect()
    # the whole weeks are one run of weeks (weeks are disjoint runs of days, in order): the
    # period's other days lie before the first of them or after the last
    first, last = whole["first_day"].min(), whole["last_day"].max()
    weeks = filter_frame(weekly.lazy(), rest).filter(
        pl.col("week").is_between(whole["week"].min(), whole["week"].max())
    )
    edges = filter_frame(days.filter((pl.col("day") < first) | (pl.col("day") > last)), flt)
    return pl.concat([weeks, as_weekly(edges)]).collect()


def rep_runs(daily: pl.DataFrame) -> pl.DataFrame | None:
    """Where each rep's rows lie in ``daily`` when they lie together (a build writes the daily
    roll-up sorted by rep, then day): ``rep_id``, ``start``, ``length``; None when a rep's
    rows are not one run. A page makes it once per load for :func:`rows_of_reps`.

    Examples
    --------
    >>> import polars as pl
    >>> rep_runs(pl.DataFrame({"rep_id": ["a", "a", "b"]})).rows()
    [('a', 0, 2), ('b', 2, 1)]
    >>> rep_runs(pl.DataFrame({"rep_id": ["a", "b", "a"]})) is None
    True
    """
    runs = daily.get_column("rep_id").rle().struct.unnest()
    if runs.height and not runs.get_column("value").is_unique().all():
        return None
    lengths = runs.get_column("len").cast(pl.Int64)
    return pl.DataFrame(
        {
            "rep_id": runs.get_column("value"),
            "start": lengths.cum_sum() - lengths,
            "length": lengths,
        }
    )


def rows_of_reps(daily: pl.DataFrame, runs: pl.DataFrame, reps: pl.Series) -> pl.DataFrame:
    """The rows of ``daily`` of the reps ``reps`` (a null among them: the rows without a rep),
    in ``daily``'s order, by slicing their runs (:func:`rep_runs` of ``daily``) instead of
    scanning every row: a page whose filter names a team or a rep then reads a few thousand
    rows, not four million at 10M activities.

    Examples
    --------
    >>> import polars as pl
    >>> daily = pl.DataFrame({"rep_id": ["a", "a", "b", "c"], "x": [1, 2, 3, 4]})
    >>> rows_of_reps(daily, rep_runs(daily), pl.Series(["c", "a"]))["x"].to_list()
    [1, 2, 4]
    """
    kept = runs.filter(pl.col("rep_id").is_in(reps.implode(), nulls_equal=True)).sort("start")
    if kept.height == 0:
        return daily.clear()
    return pl.concat(
        [daily.slice(start, length) for start, length in kept.select("start", "length").rows()]
    )


def filter_enriched(enriched: Enriched, flt: Filter) -> Enriched:
    """Apply ``flt`` to every fact table of ``enriched``; returns a new object.

    Activities, daily facts and attributed buyer actions are restricted by all fields; reps by
    team/segment/role/rep; opportunities (and their stage history) by owner and creation date;
    activity types never restrict deals. Lazy events (read from a build) stay lazy: the filter
    joins their scan, and a view collecting ``activities`` reads only the filtered rows. The
    deals and their stage history are filtered lazily too: a page that shows no deal never
    reads them, one that does collects them once, when it first looks them up.
    """
    reps = filter_frame(enriched.reps, flt, day_column="__none__")
    opps = table(enriched, "opportunities")
    owners = opps.join(
        enriched.reps.lazy().select("rep_id", "team", "segment", "role"), on="rep_id", how="left"
    )
    owners = filter_frame(owners, flt, day_column="created_ts", ignore=("activity_types",))
    kept = owners.select("opportunity_id")
    stage_history = table(enriched, "stage_history").join(kept, on="opportunity_id", how="semi")
    tables = {
        **enriched.tables,
        "opportunities": opps.join(kept, on="opportunity_id", how="semi"),
        "stage_history": stage_history,
    }
    if flt.is_everything:
        return enriched.replace(tables=tables)
    activities = enriched.lazy("activities") if enriched.is_lazy else enriched.activities
    return enriched.replace(
        activities=filter_frame(activities, flt),
        actions=_filter_actions(enriched, flt),
        daily=_lazily(enriched.daily, flt),
        reps=reps,
        tables=tables,
    )


def _lazily(daily: pl.DataFrame, flt: Filter) -> pl.LazyFrame:
    """``daily`` under ``flt`` as a ``LazyFrame`` the view's :class:`Enriched` collects when
    a view first reads it: a page that never reads the filtered roll-up (four million rows
    at 10M activities, 30-90 ms a filter change to filter) does not pay for it. The period is
    cut now when it can be (a slice, :func:`period_slice`), the rest is filtered lazily."""
    daily, rest = period_slice(daily, flt, day_column="day")
    return filter_frame(daily.lazy(), rest)


def filter_actions(enriched: Enriched, flt: Filter) -> pl.DataFrame | pl.LazyFrame:
    """The buyer actions of ``enriched`` that pass ``flt`` (as :func:`filter_enriched` keeps
    them: by the credited rep, that rep's team/segment/role, and the action's day).

    Examples
    --------
    >>> filter_actions(enriched, Filter(teams=("North",)))  # doctest: +SKIP
    """
    return _filter_actions(enriched, flt)


def _filter_actions(enriched: Enriched, flt: Filter) -> pl.DataFrame | pl.LazyFrame:
    actions = enriched.lazy("actions") if enriched.is_lazy else enriched.actions
    if not (flt.teams or flt.segments or flt.roles) or (
        isinstance(actions, pl.DataFrame) and actions.height == 0
    ):
        return filter_frame(actions, flt, ignore=("activity_types",))
    columns = actions.collect_schema().names()
    with_rep = actions.join(
        enriched.reps.lazy().select("rep_id", "team", "segment", "role")
        if isinstance(actions, pl.LazyFrame)
        else enriched.reps.select("rep_id", "team", "segment", "role"),
        on="rep_id",
        how="left",
    )
    return filter_frame(with_rep, flt, ignore=("activity_types",)).select(columns)
