"""Designed interventions: did coaching, a review or a new practice change buyer response?

Difference-in-differences between the participants of an intervention and comparable
non-participants, over equal windows before and after its start.

Design
------
- **Windows**: ``before = [start - W weeks, start)`` and ``after = [start, start + W weeks)``.
  By default ``W`` is the largest whole number of weeks the data holds on both sides of the
  start, capped at ``max_window_weeks`` (12).
- **Participants** (treated): reps listed in ``intervention_participants`` for the
  intervention. **Comparison** (control): reps not listed, in the peer groups of the
  participants. Both groups keep only reps employed over both windows (hire date on or before
  the first day, no exit before the last) with at least ``min_activities`` (20)
  customer-facing activities in each window.
- **Metric** per rep and window, from customer-facing activities: ``response_rate``
  (responded / activities), ``roe_per_100`` (100 x attributed buyer-action weight /
  activities) or ``activities_per_week``.
- **Estimate**: each rep's change (after - before); the estimate is the mean change of the
  participants minus the mean change of the comparison reps. Every rep weighs the same,
  however busy, so that a few very active reps cannot carry the result.
- **95% CI**: percentile bootstrap over reps, resampling reps with replacement within each
  group (``n_boot`` draws, numpy ``Generator`` seeded with ``seed``). ``p_value`` is the
  two-sided bootstrap p-value of a zero effect.
- **Weekly series** (for the chart): per group and week since the start, the metric pooled
  over the group's reps (e.g. all responded / all activities that week).

Examples
--------
>>> from effortlens.interventions import intervention_effect
>>> intervention_effect(enriched, intervention_id="I1")["estimate"]  # doctest: +SKIP
0.051
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from effortlens.measures import SUMMED_METRICS, metric_value

if TYPE_CHECKING:
    from effortlens.enrich import Enriched


#: Metrics an intervention can be measured on.
METRICS: tuple[str, ...] = SUMMED_METRICS
PARTICIPANTS = "participants"
COMPARISON = "comparison"


def _sums() -> list[pl.Expr]:
    return [
        pl.col("activities").sum().cast(pl.Float64),
        pl.col("responded").sum().cast(pl.Float64),
        pl.col("response_weight").sum().cast(pl.Float64),
    ]


@dataclass(frozen=True)
class _Design:
    intervention_id: str
    name: str | None
    start: dt.date
    weeks: int
    n_participants: int
    reps: pl.DataFrame  # rep_id, group, peer_group: the reps analysed
    # customer-facing daily facts of those reps in the windows, with period and week_index
    facts: pl.DataFrame

    @property
    def before_start(self) -> dt.date:
        return self.start - dt.timedelta(weeks=self.weeks)

    @property
    def after_end(self) -> dt.date:
        return self.start + dt.timedelta(weeks=self.weeks, days=-1)


def _design(
    enriched: Enriched,
    *,
    intervention_id: str,
    window_weeks: int | None,
    max_window_weeks: int,
    min_activities: int,
) -> _Design:
    interventions = enriched.tables.get("interventions")
    found = (
        interventions.filter(pl.col("intervention_id") == intervention_id)
        if interventions is not None
        else pl.DataFrame()
    )
    if found.height == 0:
        known = [] if interventions is None else interventions["intervention_id"].to_list()
        raise ValueError(f"unknown intervention {intervention_id!r}; known: {known}")
    start: dt.date = found["start_date"].item(0)
    name = found["name"].item(0) if "name" in found.columns else None

    daily = enriched.daily.lazy().filter(pl.col("is_customer_facing"))
    span = daily.select(first=pl.col("day").min(), last=pl.col("day").max()).collect()
    first, last = span["first"].item(), span["last"].item()
    if first is None:
        raise ValueError("no customer-facing activities: interventions need the activities table")
    available = min((start - first).days // 7, ((last - start).days + 1) // 7)
    weeks = min(available, max_window_weeks) if window_weeks is None else window_weeks
    if weeks < 1 or weeks > available:
        raise ValueError(
            f"intervention {intervention_id!r} starts {start}; the activities ({first} to {last}) "
            f"allow equal windows of at most {max(available, 0)} whole weeks, asked {weeks}"
        )
    before_start = start - dt.timedelta(weeks=weeks)
    after_end = start + dt.timedelta(weeks=weeks, days=-1)

    participants = enriched.tables.get("intervention_participants")
    if participants is None:
        participants = pl.DataFrame(schema={"intervention_id": pl.String, "rep_id": pl.String})
    listed = participants.filter(pl.col("intervention_id") == intervention_id)["rep_id"].unique()
    employed = (pl.col("hire_date").is_null() | (pl.col("hire_date") <= before_start)) & (
        pl.col("exit_date").is_null() | (pl.col("exit_date") >= after_end)
    )
    candidates = (
        enriched.reps.lazy()
        .filter(employed)
        .select(
            "rep_id",
            "peer_group",
            group=pl.when(pl.col("rep_id").is_in(listed.implode()))
            .then(pl.lit(PARTICIPANTS))
            .otherwise(pl.lit(COMPARISON)),
        )
    )
    facts = (
        daily.filter(pl.col("day").is_between(before_start, after_end))
        .join(candidates, on="rep_id", how="inner")
        .with_columns(
            period=pl.when(pl.col("day") < start).then(pl.lit("before")).otherwise(pl.lit("after")),
            week_index=((pl.col("day") - start).dt.total_days() // 7).cast(pl.Int32),
        )
    )
    active = (
        facts.group_by("rep_id", "period")
        .agg(pl.col("activities").sum())
        .filter(pl.col("activities") >= min_activities)
        .group_by("rep_id")
        .len()
        .filter(pl.col("len") == 2)
        .select("rep_id")
    )
    analysed = candidates.join(active, on="rep_id", how="semi")
    treated_groups = analysed.filter(pl.col("group") == PARTICIPANTS).select("peer_group").unique()
    analysed = analysed.join(
        treated_groups, on="peer_group", how="semi", nulls_equal=True
    ).collect()
    return _Design(
        intervention_id=intervention_id,
        name=name,
        start=start,
        weeks=weeks,
        n_participants=listed.len(),
        reps=analysed.sort("group", "rep_id"),
        facts=facts.join(analysed.lazy().select("rep_id"), on="rep_id", how="semi").collect(),
    )


def _rep_changes(design: _Design, metric: str) -> pl.DataFrame:
    """Per analysed rep: the metric before, after, and the change."""
    return (
        design.facts.lazy()
        .group_by("rep_id", "group", "period")
        .agg(_sums())
        .with_columns(value=metric_value(metric, weeks=design.weeks))
        .collect()
        .pivot(
            on="period", index=["rep_id", "group"], values="value", on_columns=["before", "after"]
        )
        .with_columns(change=pl.col("after") - pl.col("before"))
        .sort("group", "rep_id")
    )


def intervention_effect(
    enriched: Enriched,
    *,
    intervention_id: str,
    metric: str = "response_rate",
    window_weeks: int | None = None,
    max_window_weeks: int = 12,
    min_activities: int = 20,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Difference-in-differences of ``metric``, participants against comparable reps.

    Parameters
    ----------
    enriched
        An :class:`effortlens.enrich.Enriched` (uses ``daily``, ``reps`` and the
        ``interventions`` and ``intervention_participants`` tables).
    intervention_id
        The intervention to measure.
    metric
        ``response_rate`` (default), ``roe_per_100`` or ``activities_per_week``.
    window_weeks
        Weeks before and after the start; default the largest the data allows, up to
        ``max_window_weeks``.
    min_activities
        Fewest customer-facing activities a rep needs in each window to be analysed (every
        rep weighs the same, so a rep with a handful of touches would add mostly noise).
    n_boot, seed
        Bootstrap draws and the seed of the numpy ``Generator``.

    Returns
    -------
    dict
        ``estimate``, ``ci_low``, ``ci_high`` (95%), ``p_value``, ``n_treated``, ``n_control``,
        ``n_participants`` (listed), ``window_weeks``, ``start_date``, ``before_start``,
        ``after_end``, the group means ``treated_before``, ``treated_after``,
        ``control_before``, ``control_after``, and ``intervention_id``, ``name``, ``metric``,
        ``n_boot``, ``seed``. Dates are ``datetime.date``.

    Raises
    ------
    ValueError
        Unknown intervention or metric, no room for the windows, or an empty group.

    Examples
    --------
    >>> effect = intervention_effect(enriched, intervention_id="I1", seed=1)  # doctest: +SKIP
    >>> effect["ci_low"] > 0  # doctest: +SKIP
    True
    """
    metric_value(metric)  # validates the name before any work
    if n_boot < 1:
        raise ValueError(f"n_boot must be a positive number of bootstrap draws, got {n_boot}")
    design = _design(
        enriched,
        intervention_id=intervention_id,
        window_weeks=window_weeks,
        max_window_weeks=max_window_weeks,
        min_activities=min_activities,
    )
    changes = _rep_changes(design, metric)
    groups = {g: changes.filter(pl.col("group") == g) for g in (PARTICIPANTS, COMPARISON)}
    for group, frame in groups.items():
        if frame.height == 0:
            raise ValueError(
                f"intervention {intervention_id!r}: no rep of the {group} group was employed and "
                f"active in both {design.weeks}-week windows around {design.start}"
            )
    treated = groups[PARTICIPANTS]["change"].to_numpy()
    control = groups[COMPARISON]["change"].to_numpy()
    rng = np.random.default_rng(seed)
    boot = _bootstrap_means(treated, n_boot, rng) - _bootstrap_means(control, n_boot, rng)
    estimate = float(treated.mean() - control.mean())
    ci_low, ci_high = (float(q) for q in np.quantile(boot, [0.025, 0.975]))
    p_value = float(min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean())))
    return {
        "intervention_id": intervention_id,
        "name": design.name,
        "metric": metric,
        "estimate": estimate,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "p_value": p_value,
        "n_treated": len(treated),
        "n_control": len(control),
        "n_participants": design.n_participants,
        "window_weeks": design.weeks,
        "start_date": design.start,
        "before_start": design.before_start,
        "after_end": design.after_end,
        "treated_before": float(groups[PARTICIPANTS]["before"].mean()),
        "treated_after": float(groups[PARTICIPANTS]["after"].mean()),
        "control_before": float(groups[COMPARISON]["before"].mean()),
        "control_after": float(groups[COMPARISON]["after"].mean()),
        "n_boot": n_boot,
        "seed": seed,
    }


def _bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``values``, in one array operation."""
    draws = rng.integers(0, len(values), size=(n_boot, len(values)))
    return values[draws].mean(axis=1)


def intervention_weekly(
    enriched: Enriched,
    *,
    intervention_id: str,
    metric: str = "response_rate",
    window_weeks: int | None = None,
    max_window_weeks: int = 12,
    min_activities: int = 20,
) -> pl.DataFrame:
    """Weekly series of both groups around the start, for the difference-in-differences chart.

    Same reps and windows as :func:`intervention_effect` with the same options.

    Returns
    -------
    pl.DataFrame
        ``group`` (``participants``/``comparison``), ``week_index`` (weeks since the start:
        -W .. W-1), ``week_start`` (date), ``period`` (``before``/``after``), ``reps`` (in the
        group), ``activities``, ``value`` (the metric pooled over the group that week), sorted
        by group and week. A week with no activity in a group has ``activities`` 0 and a null
        rate.

    Examples
    --------
    >>> intervention_weekly(enriched, intervention_id="I1").head(3)  # doctest: +SKIP
    """
    metric_value(metric)
    design = _design(
        enriched,
        intervention_id=intervention_id,
        window_weeks=window_weeks,
        max_window_weeks=max_window_weeks,
        min_activities=min_activities,
    )
    group_sizes = design.reps.group_by("group").agg(reps=pl.len().cast(pl.UInt32))
    grid = group_sizes.join(
        pl.DataFrame({"week_index": pl.int_range(-design.weeks, design.weeks, eager=True)}).cast(
            pl.Int32
        ),
        how="cross",
    )
    weekly = design.facts.group_by("group", "week_index").agg(_sums())
    return (
        grid.join(weekly, on=["group", "week_index"], how="left")
        .with_columns(pl.col("activities", "responded", "response_weight").fill_null(0.0))
        .with_columns(
            week_start=pl.lit(design.start) + pl.duration(weeks=pl.col("week_index")),
            period=pl.when(pl.col("week_index") < 0)
            .then(pl.lit("before"))
            .otherwise(pl.lit("after")),
            value=metric_value(metric, reps=pl.col("reps")),
            activities=pl.col("activities").cast(pl.UInt32),
        )
        .with_columns(value=pl.when(pl.col("value").is_nan()).then(None).otherwise(pl.col("value")))
        .select("group", "week_index", "week_start", "period", "reps", "activities", "value")
        .sort("group", "week_index")
    )
