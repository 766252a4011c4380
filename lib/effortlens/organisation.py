"""The organisation: time left for selling, internal load, attrition, and where ROE varies.

Definitions
-----------
- **Time for selling** of a rep in a week: customer-facing hours / the settings' working hours
  per week. **Internal load**: hours of the settings' internal types (``internal``, ``admin``)
  over the same working hours, so the two read on one scale. Only *full weeks* count: the
  Monday-to-Friday of the week lies within the rep's employment (``hire_date`` ..
  ``exit_date``) and within the span of the activity data; a full week without any logged
  activity counts as zero. A team's or a rep's figure is the mean over its rep-weeks.
- **Voluntary attrition** of a team (or manager) over a period: ``headcount`` = reps employed
  at any time in the period; ``attrition_rate`` = voluntary exits in the period / headcount;
  ``annualised_attrition`` = voluntary exits / rep-years employed in the period.
- **Variance share** (:func:`variance_share`): one-way random-effects ANOVA of a per-rep
  metric with teams as groups (unbalanced design, ``n0`` sizes). ``share_between`` is
  ICC(1) = (MSB - MSW) / (MSB + (n0 - 1) MSW), floored at 0: the share of the variation among
  reps that lies between teams; the rest (``share_within``) lies between reps of a team,
  sampling noise of each rep's rate included. ``p_value`` is the ANOVA F-test of no team
  effect.

Examples
--------
>>> from effortlens.organisation import organisation_table
>>> organisation_table(enriched)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from effortlens.measures import metric_value

if TYPE_CHECKING:
    from effortlens.enrich import Enriched

_DAYS_PER_YEAR = 365.25


def _employed_between(first: pl.Expr | dt.date, last: pl.Expr | dt.date) -> pl.Expr:
    """Reps employed on every day of ``[first, last]``."""
    return (pl.col("hire_date").is_null() | (pl.col("hire_date") <= first)) & (
        pl.col("exit_date").is_null() | (pl.col("exit_date") >= last)
    )


def selling_time_weekly(
    daily: pl.DataFrame | pl.LazyFrame,
    *,
    reps: pl.DataFrame,
    working_hours_per_week: float,
    internal_types: Sequence[str] = ("internal", "admin"),
) -> pl.DataFrame:
    """Time for selling and internal load per rep and full week of employment.

    Parameters
    ----------
    daily
        Enriched daily facts (``rep_id``, ``day``, ``activity_type``, ``is_customer_facing``,
        ``hours``); their first and last day bound the weeks counted.
    reps
        The reps (``rep_id``, ``team``, ``hire_date``, ``exit_date``).
    working_hours_per_week
        The settings' contracted hours (the denominator).
    internal_types
        Activity types counted as internal load (the settings' ``internal``).

    Returns
    -------
    pl.DataFrame
        ``rep_id``, ``team``, ``week`` (Monday), ``customer_facing_hours``,
        ``internal_hours``, ``selling_time``, ``internal_load``; one row per rep and full week.

    Examples
    --------
    >>> weekly = selling_time_weekly(enriched.daily, reps=enriched.reps,
    ...                              working_hours_per_week=40.0)  # doctest: +SKIP
    """
    return selling_time_of_hours(
        weekly_hours(daily, internal_types=internal_types),
        reps=reps,
        working_hours_per_week=working_hours_per_week,
    )


#: The columns of :func:`weekly_hours` besides the rep's own (team, segment, role).
HOURS_COLUMNS = ("customer_facing_hours", "internal_hours", "first_day", "last_day")


#: The customer-facing effort :func:`weekly_hours` sums per rep and week with ``effort=True``.
EFFORT_COLUMNS = ("activities", "responded", "response_weight")


def weekly_hours(
    daily: pl.DataFrame | pl.LazyFrame,
    *,
    internal_types: Sequence[str] = ("internal", "admin"),
    effort: bool = False,
    rows: bool = False,
) -> pl.DataFrame:
    """Customer-facing and internal hours per rep and week, with the first and last day of data.

    The roll-up :func:`selling_time_weekly` counts from (a page makes it once per load: a
    filter on reps, teams, segments or roles then keeps its rows instead of summing the daily
    facts again). It keeps the daily facts' ``team``, ``segment`` and ``role`` so that those
    filters apply to it.

    Parameters
    ----------
    daily
        Enriched daily facts (``rep_id``, ``day``, ``week``, ``activity_type``,
        ``is_customer_facing``, ``hours``).
    internal_types
        Activity types counted as internal load (the settings' ``internal``).
    effort
        Also sum the customer-facing :data:`EFFORT_COLUMNS` and count the customer-facing
        day rows (``facing_rows``): what a rep's return on effort sums (:func:`effort_of_hours`).
    rows
        Also say where each row's day rows lie in ``daily`` (a frame, read in its order):
        ``first_row`` and ``rows``, the position of the first and the number of them, and
        ``rows_to_1`` … ``rows_to_6``, how many of them lie on Monday … on the sixth weekday
        (Saturday) or before: the day rows of any days of the week are then one run. Valid
        when each row's day rows lie together in day order (a build writes the daily roll-up
        sorted by rep, then day); else ``first_row`` is null (for every row when some rows
        are out of day order, or when some row's ``week`` is not the Monday of its days: a
        roll-up made by hand). What :func:`hours_of_rows` reads a period's cut weeks by.

    Returns
    -------
    pl.DataFrame
        ``rep_id``, ``week``, the ``team``, ``segment`` and ``role`` columns ``daily`` has,
        ``customer_facing_hours``, ``internal_hours``, ``first_day``, ``last_day`` (and with
        ``effort``, ``facing_rows`` and :data:`EFFORT_COLUMNS`; with ``rows``, ``first_row``,
        ``rows`` and ``rows_to_1`` … ``rows_to_6``).

    Examples
    --------
    >>> import datetime as dt
    >>> day = dt.date(2024, 1, 3)
    >>> daily = pl.DataFrame({"rep_id": ["a", "a"], "day": [day, day], "week": [day, day],
    ...     "activity_type": ["call", "admin"], "is_customer_facing": [True, False],
    ...     "hours": [2.0, 1.0]})
    >>> weekly_hours(daily).select("customer_facing_hours", "internal_hours").row(0)
    (2.0, 1.0)
    """
    facts = daily.lazy()
    names = facts.collect_schema().names()
    if "week" not in names:
        facts = facts.with_columns(week=pl.col("day").dt.truncate("1w"))
    keys = ["rep_id", "week", *(c for c in ("team", "segment", "role") if c in names)]
    masked, sums = _hour_sums(facts.collect_schema(), internal_types=internal_types, effort=effort)
    located, extra = [], {}
    if rows:
        facts = facts.with_row_index("_row")
        extra = {"_row": pl.col("_row"), "_weekday": pl.col("day").dt.weekday()}  # Monday 1
        n, first = pl.len().cast(pl.UInt32), pl.col("_row").min()
        together = (pl.col("_row").max() - first + 1 == n) & (pl.col("day").null_count() == 0)
        located = [
            pl.when(together).then(first).alias("first_row"),
            n.alias("rows"),
            *(
                (pl.col("_weekday") <= k).sum().cast(pl.UInt16).alias(f"rows_to_{k}")
                for k in range(1, 7)
            ),
        ]
    hours = facts.select(*keys, "day", **extra, **masked).group_by(keys).agg(*sums, *located)
    hours = hours.collect()
    if rows:
        # the rows of each run must be in day order: the day may fall only where a run begins
        falls = daily.lazy().select(pl.arg_where(pl.col("day").diff() < 0)).collect().to_series()
        # a run's days are counted by weekday from its week's Monday (rows_to_k): each row's
        # week must be the Monday of its days (a roll-up made by hand may hold other weeks)
        monday = (pl.col("week").dt.weekday() == 1) & (pl.col("first_day") >= pl.col("week"))
        monday &= (pl.col("last_day") - pl.col("week")).dt.total_days() <= 6
        mondays = hours.select((monday.fill_null(False) | pl.col("first_row").is_null()).all())
        if not (
            mondays.item()
            and falls.is_in(hours.get_column("first_row").drop_nulls().implode()).all()
        ):
            hours = hours.with_columns(pl.lit(None, dtype=pl.UInt32).alias("first_row"))
    return hours


def _hour_sums(
    schema: pl.Schema, *, internal_types: Sequence[str], effort: bool
) -> tuple[dict[str, pl.Expr], list[pl.Expr]]:
    """The masked columns and the sums of :func:`weekly_hours` (and :func:`hours_of_rows`)."""
    facing = pl.col("is_customer_facing")
    internal = pl.col("activity_type").is_in(list(internal_types))
    # each sum over a masked column (zero where a row does not count), not over a filter per
    # group: the group-by's fast path, ~5x faster, the same sums (adding 0 changes nothing)
    masked = {
        "customer_facing_hours": pl.when(facing).then(pl.col("hours")).otherwise(0.0),
        "internal_hours": pl.when(internal).then(pl.col("hours")).otherwise(0.0),
    }
    sums = [
        pl.col("customer_facing_hours").sum(),
        pl.col("internal_hours").sum(),
        pl.col("day").min().alias("first_day"),
        pl.col("day").max().alias("last_day"),
    ]
    if effort:
        masked["facing_rows"] = facing.cast(pl.UInt32)
        sums.append(pl.col("facing_rows").sum().cast(pl.UInt32))
        for c in EFFORT_COLUMNS:
            masked[c] = pl.when(facing).then(pl.col(c)).otherwise(pl.lit(0, dtype=schema[c]))
            sums.append(pl.col(c).sum().cast(schema[c]))
    return masked, sums


def hours_of_rows(
    daily: pl.DataFrame,
    located: pl.DataFrame,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    internal_types: Sequence[str] = ("internal", "admin"),
) -> pl.DataFrame:
    """:func:`weekly_hours` (``effort=True``) of the day rows of ``daily`` from ``start`` to
    ``end`` (both included; None: open) that lie in the rep-weeks of ``located``, read by
    their position: no pass over ``daily``.

    ``located`` holds rows of ``weekly_hours(daily, effort=True, rows=True)`` (any of them,
    e.g. the weeks a period cuts, under a team filter; every ``first_row`` set): each
    rep-week's day rows in the period are one run of ``daily``, where its days of the week
    in the period lie. The result has ``located``'s key columns and :func:`weekly_hours`'s
    sums, one row per rep-week with a day in the period, in ``located``'s order: the rows
    ``weekly_hours`` gives for the period's day rows of those rep-weeks (the same sums over
    the same rows in the same order). A 90-day period's cut week is ~2,000 rep-weeks of ~25
    rows at 10M activities: the ~30k rows in the period gathered, not a filter over four
    million.

    Examples
    --------
    >>> import datetime as dt
    >>> days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(3)]
    >>> daily = pl.DataFrame({"rep_id": ["a"] * 3, "day": days, "week": [days[0]] * 3,
    ...     "activity_type": ["call"] * 3, "is_customer_facing": [True] * 3,
    ...     "hours": [1.0, 2.0, 4.0], "activities": [1, 1, 1], "responded": [0, 0, 1],
    ...     "response_weight": [0.0, 0.0, 1.0]})
    >>> located = weekly_hours(daily, effort=True, rows=True)
    >>> hours_of_rows(daily, located, start=days[1]).select("customer_facing_hours",
    ...     "first_day", "activities").row(0)
    (6.0, datetime.date(2024, 1, 2), 2)
    """
    keys = [c for c in located.columns if c in ("rep_id", "week", "team", "segment", "role")]
    # rows_to[i, k]: rep-week i's rows on its first k days (0 … 7)
    rows_to = np.zeros((located.height, 8), dtype=np.int64)
    for k in range(1, 7):
        rows_to[:, k] = located.get_column(f"rows_to_{k}").to_numpy()
    rows_to[:, 7] = located.get_column("rows").to_numpy()
    week = located.get_column("week").to_numpy().astype("datetime64[D]").astype(np.int64)
    epoch = dt.date(1970, 1, 1)
    first_day = 0 if start is None else np.clip((start - epoch).days - week, 0, 7)
    after_day = 7 if end is None else np.clip((end - epoch).days - week + 1, 0, 7)
    line = np.arange(located.height)
    skipped, upto = rows_to[line, first_day], rows_to[line, after_day]
    starts = located.get_column("first_row").to_numpy().astype(np.int64) + skipped
    counts = np.maximum(upto - skipped, 0)
    before = np.cumsum(counts) - counts  # where each rep-week's rows begin among those gathered
    at = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(starts - before, counts)
    columns = ["day", "activity_type", "is_customer_facing", "hours", *EFFORT_COLUMNS]
    # frames made of columns and gathered directly: each eager select or with_columns would
    # run a query (~1-2 ms apiece on a busy machine)
    gathered = pl.DataFrame([daily.get_column(c) for c in columns])[pl.Series(at, dtype=pl.Int64)]
    gathered = gathered.hstack(
        [pl.Series("_group", np.repeat(np.arange(len(counts), dtype=np.uint32), counts))]
    )
    masked, sums = _hour_sums(gathered.schema, internal_types=internal_types, effort=True)
    summed = (
        gathered.lazy()
        .select("_group", "day", **masked)
        .group_by("_group")
        .agg(*sums)
        .sort("_group")
        .collect()
    )
    group = pl.Series(summed.get_column("_group").to_numpy(), dtype=pl.Int64)
    named = pl.DataFrame([located.get_column(k) for k in keys])[group]
    return named.hstack([summed.get_column(c) for c in summed.columns if c != "_group"])


def effort_of_hours(hours: pl.DataFrame | pl.LazyFrame, *, keys: Sequence[str]) -> pl.DataFrame:
    """The customer-facing effort per ``keys`` (e.g. rep, team, segment, role) of
    :func:`weekly_hours` made with ``effort=True``: the sums of :data:`EFFORT_COLUMNS` of the
    groups with a customer-facing day row, as summing the day rows' would give them (with
    ``is_customer_facing`` true, as :func:`organisation_table` and :func:`variance_share`
    read effort).

    Examples
    --------
    >>> import datetime as dt
    >>> day = dt.date(2024, 1, 3)
    >>> daily = pl.DataFrame({"rep_id": ["a", "a"], "day": [day, day], "week": [day, day],
    ...     "activity_type": ["call", "admin"], "is_customer_facing": [True, False],
    ...     "hours": [2.0, 1.0], "activities": [3, 1], "responded": [1, 0],
    ...     "response_weight": [0.5, 0.0]})
    >>> hours = weekly_hours(daily, effort=True)
    >>> effort_of_hours(hours, keys=["rep_id"]).row(0)
    ('a', 3, 1, 0.5, True)
    """
    return (
        hours.lazy()
        .filter(pl.col("facing_rows") > 0)
        .group_by(list(keys))
        .agg(pl.col(c).sum() for c in EFFORT_COLUMNS)
        .with_columns(is_customer_facing=pl.lit(value=True))
        .collect()
    )


def selling_time_of_hours(
    hours: pl.DataFrame | pl.LazyFrame, *, reps: pl.DataFrame, working_hours_per_week: float
) -> pl.DataFrame:
    """:func:`selling_time_weekly` from :func:`weekly_hours` (filtered as the page needs).

    The first and last day of ``hours`` bound the weeks counted.

    Examples
    --------
    >>> hours = weekly_hours(enriched.daily)  # once per load  # doctest: +SKIP
    >>> selling_time_of_hours(hours.filter(pl.col("team") == "North"), reps=enriched.reps,
    ...                       working_hours_per_week=40.0)  # doctest: +SKIP
    """
    facts = hours.lazy()
    span = facts.select(first=pl.col("first_day").min(), last=pl.col("last_day").max()).collect()
    first, last = span["first"].item(), span["last"].item()
    schema = {
        "rep_id": pl.String,
        "team": reps.lazy().collect_schema()["team"],  # as the reps hold it (a kernel: Categorical)
        "week": pl.Date,
        "customer_facing_hours": pl.Float64,
        "internal_hours": pl.Float64,
        "selling_time": pl.Float64,
        "internal_load": pl.Float64,
    }
    if first is None:
        return pl.DataFrame(schema=schema)
    weeks = pl.DataFrame(
        {"week": pl.date_range(first - dt.timedelta(days=first.weekday()), last, "1w", eager=True)}
    ).filter((pl.col("week") >= first) & (pl.col("week") + pl.duration(days=4) <= last))
    friday = pl.col("week") + pl.duration(days=4)
    grid = (
        reps.lazy()
        .select("rep_id", "team", "hire_date", "exit_date")
        .join(weeks.lazy(), how="cross")
        .filter(_employed_between(pl.col("week"), friday))
        .select("rep_id", "team", "week")
    )
    per_week = facts.group_by("rep_id", "week").agg(
        pl.col("customer_facing_hours", "internal_hours").sum()
    )
    return (
        grid.join(per_week, on=["rep_id", "week"], how="left")
        .with_columns(pl.col("customer_facing_hours", "internal_hours").fill_null(0.0))
        .with_columns(
            selling_time=pl.col("customer_facing_hours") / working_hours_per_week,
            internal_load=pl.col("internal_hours") / working_hours_per_week,
        )
        .sort("rep_id", "week")
        .collect()
        .cast(schema)
    )


def selling_time_within(
    weekly: pl.DataFrame, *, reps: pl.DataFrame | None, hours: pl.DataFrame | pl.LazyFrame
) -> pl.DataFrame:
    """The rows of a whole-data :func:`selling_time_weekly` that ``reps`` and the span of
    ``hours`` keep: what :func:`selling_time_of_hours` gives for them, without its grid.

    A page makes ``weekly`` once per load; a filter on reps, teams, segments or roles then
    keeps the weeks of its reps (``reps``, matched on ``rep_id`` and ``team``) that lie in the
    span of its own hours (the first and last day of ``hours``, :func:`weekly_hours` under
    the same filter). Each rep-week's hours are all of the rep's hours that week, as the
    filtered hours hold them (a filter on reps keeps or drops a rep's days together).
    ``reps`` None: every rep of ``weekly`` (a filter that keeps every rep).

    Examples
    --------
    >>> whole = selling_time_of_hours(hours, reps=enriched.reps,
    ...                               working_hours_per_week=40.0)  # doctest: +SKIP
    >>> selling_time_within(whole, reps=view.reps, hours=filtered_hours)  # doctest: +SKIP
    """
    span = (
        hours.lazy()
        .select(first=pl.col("first_day").min(), last=pl.col("last_day").max())
        .collect()
    )
    first, last = span["first"].item(), span["last"].item()
    if first is None:
        return weekly.clear()
    kept = weekly.lazy().filter(
        (pl.col("week") >= first) & (pl.col("week") + pl.duration(days=4) <= last)
    )
    if reps is not None:
        kept = kept.join(
            reps.lazy().select("rep_id", "team").unique(),
            on=["rep_id", "team"],
            how="semi",
            nulls_equal=True,
        )
    return kept.collect()


def selling_time_in_period(
    weekly: pl.DataFrame,
    *,
    reps: pl.DataFrame | None,
    hours: pl.DataFrame,
    partial: pl.Series | Sequence[dt.date],
    working_hours_per_week: float,
) -> pl.DataFrame:
    """:func:`selling_time_of_hours` of a period's ``hours`` from the load's whole-data
    ``weekly``: its rows that ``reps`` and the span of ``hours`` keep
    (:func:`selling_time_within`; None: every rep), with the hours of the ``partial`` weeks
    summed from ``hours``.

    ``hours`` is :func:`weekly_hours` under a period (its whole weeks the load's rows, its
    partial weeks summed from their days in the period); ``partial`` lists the weeks the
    period cuts (some of their days lie outside it). Every other week of the span lies wholly
    in the period, so its hours are the load's. The rows and their order are those of
    :func:`selling_time_of_hours`, without its grid of reps × weeks and its join (~20 ms for a
    90-day period at 10M activities).

    Examples
    --------
    >>> whole = selling_time_of_hours(hours, reps=enriched.reps,
    ...                               working_hours_per_week=40.0)  # doctest: +SKIP
    >>> selling_time_in_period(whole, reps=view.reps, hours=period_hours, partial=cut_weeks,
    ...                        working_hours_per_week=40.0)  # doctest: +SKIP
    """
    kept = selling_time_within(weekly, reps=reps, hours=hours)
    cut = pl.Series(partial, dtype=pl.Date).implode()
    mask = kept.get_column("week").is_in(cut)
    if not mask.any():
        return kept
    columns = ["customer_facing_hours", "internal_hours"]
    summed = (
        hours.lazy()
        .filter(pl.col("week").is_in(cut))
        .group_by("rep_id", "week")
        .agg(pl.col(columns).sum())
    )
    fixed = (
        kept.lazy()
        .filter(mask)
        .select("rep_id", "week")
        .join(summed, on=["rep_id", "week"], how="left", maintain_order="left")
        .select(pl.col(columns).fill_null(0.0))
        .collect()
    )
    at = np.flatnonzero(mask.to_numpy())
    new = {}
    for column, share in zip(columns, ("selling_time", "internal_load"), strict=True):
        values = kept.get_column(column).to_numpy().copy()
        values[at] = fixed.get_column(column).to_numpy()
        new[column] = pl.Series(column, values, dtype=pl.Float64)
        new[share] = pl.Series(share, values / working_hours_per_week, dtype=pl.Float64)
    # the columns replaced in place (one eager with_columns would run a query)
    return pl.DataFrame([new.get(c, kept.get_column(c)) for c in kept.columns])


def selling_time_by(weekly: pl.DataFrame, *, by: Sequence[str] = ("team",)) -> pl.DataFrame:
    """Mean time for selling and internal load over the rep-weeks of each ``by`` group.

    Parameters
    ----------
    weekly
        :func:`selling_time_weekly`'s frame.
    by
        ``["team"]``, ``["rep_id"]``, ``["team", "week"]``, ...

    Returns
    -------
    pl.DataFrame
        ``by`` columns, ``reps``, ``rep_weeks``, ``selling_time``, ``internal_load``, sorted
        by ``by``.

    Examples
    --------
    >>> selling_time_by(weekly, by=["team", "week"])  # doctest: +SKIP
    """
    return (
        weekly.group_by(list(by))
        .agg(
            reps=pl.col("rep_id").n_unique().cast(pl.UInt32),
            rep_weeks=pl.len().cast(pl.UInt32),
            selling_time=pl.col("selling_time").mean(),
            internal_load=pl.col("internal_load").mean(),
        )
        .sort(list(by))
    )


def attrition(
    reps: pl.DataFrame,
    *,
    by: str = "team",
    period_start: dt.date,
    period_end: dt.date,
) -> pl.DataFrame:
    """Voluntary attrition per team (or manager) over a period.

    Parameters
    ----------
    reps
        The reps (``hire_date``, ``exit_date``, ``exit_reason`` and the ``by`` column).
    by
        ``"team"`` or ``"manager_id"`` (any reps column).
    period_start, period_end
        The period, both days included.

    Returns
    -------
    pl.DataFrame
        ``by``, ``headcount`` (employed at any time in the period), ``exits`` (any reason),
        ``voluntary_exits``, ``rep_years`` (employed time in the period),
        ``attrition_rate`` (voluntary exits / headcount), ``annualised_attrition``
        (voluntary exits / rep-years), sorted by ``by``.

    Examples
    --------
    >>> import datetime as dt
    >>> attrition(reps, by="manager_id", period_start=dt.date(2024, 1, 1),
    ...           period_end=dt.date(2024, 12, 31))  # doctest: +SKIP
    """
    if period_end < period_start:
        raise ValueError(f"period_end {period_end} is before period_start {period_start}")
    in_period = (pl.col("hire_date").is_null() | (pl.col("hire_date") <= period_end)) & (
        pl.col("exit_date").is_null() | (pl.col("exit_date") >= period_start)
    )
    exited = pl.col("exit_date").is_between(period_start, period_end)
    employed_from = pl.max_horizontal(
        pl.col("hire_date").fill_null(period_start), pl.lit(period_start)
    )
    employed_to = pl.min_horizontal(pl.col("exit_date").fill_null(period_end), pl.lit(period_end))
    return (
        reps.lazy()
        .filter(in_period)
        .group_by(by)
        .agg(
            headcount=pl.len().cast(pl.UInt32),
            exits=exited.sum().cast(pl.UInt32),
            voluntary_exits=(exited & (pl.col("exit_reason") == "voluntary")).sum().cast(pl.UInt32),
            rep_years=((employed_to - employed_from).dt.total_days() + 1).sum() / _DAYS_PER_YEAR,
        )
        .with_columns(
            attrition_rate=pl.col("voluntary_exits") / pl.col("headcount"),
            annualised_attrition=pl.col("voluntary_exits") / pl.col("rep_years"),
        )
        .sort(by)
        .collect()
    )


def variance_share(
    daily: pl.DataFrame | pl.LazyFrame,
    *,
    group: str = "team",
    metrics: Sequence[str] = ("response_rate", "roe_per_100"),
    min_activities: int = 100,
) -> pl.DataFrame:
    """How much of the variation of a per-rep metric lies between teams rather than between reps.

    Parameters
    ----------
    daily
        Enriched daily facts (``rep_id``, the ``group`` column, ``is_customer_facing``,
        ``activities``, ``responded``, ``response_weight``).
    group
        The grouping column (``team``, ``segment``, ``peer_group``, ...).
    metrics
        Per-rep metrics over the whole period: ``response_rate``, ``roe_per_100``.
    min_activities
        Fewest customer-facing activities for a rep to be included.

    Returns
    -------
    pl.DataFrame
        One row per metric: ``metric``, ``group``, ``n_groups``, ``n_reps``, ``mean``,
        ``between_variance``, ``within_variance``, ``icc`` (ICC(1), may be negative),
        ``share_between`` (ICC(1) floored at 0), ``share_within``, ``f_statistic``,
        ``p_value``. Statistics are null with fewer than two groups or no spare reps.

    Examples
    --------
    >>> variance_share(enriched.daily, metrics=["roe_per_100"])  # doctest: +SKIP
    """
    per_rep = (
        daily.lazy()
        .filter(pl.col("is_customer_facing"))
        .group_by("rep_id", group)
        .agg(
            pl.col("activities").sum().cast(pl.Float64),
            pl.col("responded").sum().cast(pl.Float64),
            pl.col("response_weight").sum().cast(pl.Float64),
        )
        .filter(pl.col("activities") >= min_activities)
        .with_columns(**{m: metric_value(m) for m in metrics})
        .collect()
    )
    # the groups' codes once for every metric (in the order of their names, "(none)" for a
    # missing one): Series casts and ranks each run a query
    names = per_rep.get_column(group).cast(pl.String).to_numpy().astype(object)
    names[_is_none(names)] = "(none)"
    codes = np.unique(names.astype(str), return_inverse=True)[1].reshape(-1)
    rows = [
        {"metric": m, "group": group, **_one_way_anova(per_rep[m].to_numpy(), codes)}
        for m in metrics
    ]
    return pl.DataFrame(rows, schema=_VARIANCE_SCHEMA)


_VARIANCE_SCHEMA = {
    "metric": pl.String,
    "group": pl.String,
    "n_groups": pl.UInt32,
    "n_reps": pl.UInt32,
    "mean": pl.Float64,
    "between_variance": pl.Float64,
    "within_variance": pl.Float64,
    "icc": pl.Float64,
    "share_between": pl.Float64,
    "share_within": pl.Float64,
    "f_statistic": pl.Float64,
    "p_value": pl.Float64,
}


def _is_none(values: np.ndarray) -> np.ndarray:
    """Where an object array holds None."""
    return np.fromiter((v is None for v in values), dtype=bool, count=len(values))


def _one_way_anova(values: np.ndarray, codes: np.ndarray) -> dict[str, Any]:
    """ICC(1) and the F-test of ``values`` grouped by ``codes`` (0 … groups - 1)."""
    from scipy import special  # scipy.stats.f.sf's own function, without importing stats (~1 s)

    codes = codes.astype(int)
    n_reps, n_groups = len(values), int(codes.max()) + 1 if len(values) else 0
    out: dict[str, Any] = {
        "n_groups": n_groups,
        "n_reps": n_reps,
        "mean": float(values.mean()) if n_reps else None,
    }
    if n_groups < 2 or n_reps <= n_groups:
        return out
    sizes = np.bincount(codes)
    group_means = np.bincount(codes, weights=values) / sizes
    ss_between = float((sizes * (group_means - values.mean()) ** 2).sum())
    ss_within = float(((values - group_means[codes]) ** 2).sum())
    ms_between = ss_between / (n_groups - 1)
    ms_within = ss_within / (n_reps - n_groups)
    n0 = (n_reps - (sizes**2).sum() / n_reps) / (n_groups - 1)
    denominator = ms_between + (n0 - 1) * ms_within
    icc = (ms_between - ms_within) / denominator if denominator > 0 else 0.0
    f_statistic = ms_between / ms_within if ms_within > 0 else float("inf")
    share_between = max(0.0, icc)
    return {
        **out,
        "between_variance": max(0.0, (ms_between - ms_within) / n0),
        "within_variance": ms_within,
        "icc": icc,
        "share_between": share_between,
        "share_within": 1.0 - share_between,
        "f_statistic": f_statistic,
        "p_value": float(special.fdtrc(n_groups - 1, n_reps - n_groups, f_statistic)),
    }


def _period(enriched: Enriched) -> tuple[dt.date, dt.date]:
    """The span of the activity data, else of the deals (pipeline-only data)."""
    span = enriched.daily.select(first=pl.col("day").min(), last=pl.col("day").max())
    if span["first"].item() is None:
        deals = enriched.tables.get("opportunities")
        if deals is None or deals.height == 0:
            raise ValueError("no activities and no opportunities: no period to measure")
        span = deals.select(
            # a deal may lack its created date (kept, unknown age): its close still counts
            first=pl.min_horizontal(pl.col("created_ts").min(), pl.col("close_ts").min()).dt.date(),
            last=pl.max_horizontal(pl.col("created_ts").max(), pl.col("close_ts").max()).dt.date(),
        )
    return span["first"].item(), span["last"].item()


def organisation_table(
    enriched: Enriched,
    *,
    period: tuple[dt.date, dt.date] | None = None,
    weekly: pl.DataFrame | None = None,
    effort: pl.DataFrame | pl.LazyFrame | None = None,
    selling: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per team: time for selling, internal load, voluntary attrition and return on effort.

    Parameters
    ----------
    enriched
        An :class:`effortlens.enrich.Enriched` (``daily``, ``reps``, ``settings``).
    period
        ``(first, last)`` day for the attrition counts; default the span of the activities
        (or of the deals when there are no activities).
    weekly
        :func:`selling_time_weekly` of ``enriched`` when the caller has it already.
    effort
        The customer-facing rows to sum the return on effort from (``team``,
        ``activities``, ``responded``, ``response_weight``), such as a weekly roll-up of
        ``enriched.daily``; default ``enriched.daily``.
    selling
        ``selling_time_by(weekly)`` (:func:`selling_time_by`, by team) when the caller has
        it already (a page draws it too); ``weekly`` is then not read.

    Returns
    -------
    pl.DataFrame
        ``team``, ``headcount``, ``selling_time``, ``internal_load``, ``voluntary_exits``,
        ``attrition_rate``, ``annualised_attrition``, ``response_rate``, ``roe_per_100``
        (ROE: attributed buyer-action weight per 100 customer-facing activities); selling
        and ROE columns are null without activities.

    Examples
    --------
    >>> organisation_table(enriched).sort("selling_time").head(1)  # doctest: +SKIP
    """
    settings = enriched.settings
    first, last = period or _period(enriched)
    if selling is None:
        if weekly is None:
            weekly = selling_time_weekly(
                enriched.daily,
                reps=enriched.reps,
                working_hours_per_week=settings.working_hours_per_week,
                internal_types=settings.internal,
            )
        selling = selling_time_by(weekly, by=["team"])
    selling = selling.select("team", "selling_time", "internal_load")
    roe = (
        (enriched.daily if effort is None else effort)
        .lazy()
        .filter(pl.col("is_customer_facing"))
        .group_by("team")
        .agg(pl.col("activities", "responded", "response_weight").sum().cast(pl.Float64))
        .select(
            "team",
            response_rate=metric_value("response_rate"),
            roe_per_100=metric_value("roe_per_100"),
        )
        .collect()
    )
    return (  # one query (each eager join, select and sort would run its own)
        attrition(enriched.reps, by="team", period_start=first, period_end=last)
        .lazy()
        .join(selling.lazy(), on="team", how="left", nulls_equal=True)
        .join(roe.lazy(), on="team", how="left", nulls_equal=True)
        .select(
            "team",
            "headcount",
            "selling_time",
            "internal_load",
            "voluntary_exits",
            "attrition_rate",
            "annualised_attrition",
            "response_rate",
            "roe_per_100",
        )
        .sort("team")
        .collect()
    )


def attrition_vs_selling_time(table: pl.DataFrame) -> dict[str, Any]:
    """Spearman rank correlation between teams' time for selling and their annualised attrition.

    Parameters
    ----------
    table
        :func:`organisation_table`'s frame.

    Returns
    -------
    dict
        ``rho``, ``p_value`` (null with fewer than three teams), ``n_teams``.

    Examples
    --------
    >>> attrition_vs_selling_time(organisation_table(enriched))["rho"]  # doctest: +SKIP
    -0.8
    """
    both = table.drop_nulls(["selling_time", "annualised_attrition"])
    if both.height < 3:
        return {"rho": None, "p_value": None, "n_teams": both.height}
    rho, p_value = spearman(
        both["selling_time"].to_numpy(), both["annualised_attrition"].to_numpy()
    )
    return {"rho": rho, "p_value": p_value, "n_teams": both.height}


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rank correlation of ``x`` and ``y`` and its two-sided p-value: the numbers of
    ``scipy.stats.spearmanr(x, y)`` (average ranks, their Pearson correlation, Student's t with
    n - 2 degrees of freedom), computed as scipy does without importing scipy.stats, which
    costs a page's first draw about a second.

    Examples
    --------
    >>> rho, p = spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0]))
    >>> round(rho, 2), round(p, 3)
    (0.8, 0.2)
    """
    from scipy import special

    if np.isnan(x).any() or np.isnan(y).any():  # scipy's nan_policy="propagate"
        return float("nan"), float("nan")
    ranked = np.vstack([pl.Series(v).rank("average").to_numpy() for v in (x, y)])
    with np.errstate(divide="ignore", invalid="ignore"):  # constant input: nan, as scipy's
        rho = np.corrcoef(ranked)[1, 0]
        dof = len(x) - 2
        t = rho * np.sqrt((dof / ((rho + 1.0) * (1.0 - rho))).clip(0))
        p_value = 2 * special.stdtr(dof, -np.abs(t))
    return float(rho), float(p_value)
