"""Designed interventions: did coaching, a review or a new practice change buyer response?

Difference-in-differences between the participants of an intervention and non-participants
of the same peer groups, over equal windows before and after its start.

Estimand
--------
The **average effect on the participants (intention to treat)** on the *attributed* metric:
over the participants listed before the start, the mean change of their metric from the
``W`` weeks before the start to the ``W`` weeks after, beyond the change of non-participants
in the same peer group over the same weeks. For ``response_rate`` this is the share of
customer-facing activities credited with a buyer action by last-touch attribution
(:mod:`effortlens.attribution`); attribution shares a buyer's response out among touches, so
an effect on the buyers' own response probability reads somewhat smaller on this scale (about
6% on the sample data: ``VALIDITY.md``). :data:`ESTIMAND` says so in words; the result and
``--json`` carry it.

Design
------
- **Windows**: ``before = [start - W weeks, start)`` and ``after = [start, start + W weeks)``.
  By default ``W`` is the largest whole number of weeks the data holds on both sides of the
  start, capped at ``max_window_weeks`` (12).
- **Eligibility, from the before window only** (so that what happens after the start cannot
  choose who is compared): reps employed on the first day of the before window and still
  employed at the start, with at least ``min_activities`` (20) customer-facing activities in
  the before window. **Participants** are the eligible reps listed in
  ``intervention_participants``; the **comparison** reps are the other eligible reps of the
  participants' peer groups. Nobody is dropped for what they did after the start; a rep with
  no customer-facing activity at all after the start has no after rate and is counted in
  ``n_no_after`` (for ``activities_per_week`` their after value is 0 and they stay).
- **Metric** per rep and window, from customer-facing activities: ``response_rate``
  (responded / activities), ``roe_per_100`` (100 x attributed buyer-action weight /
  activities) or ``activities_per_week``.
- **Estimate** (within peer groups): in each peer group with both participants and
  comparison reps, the mean change of its participants minus the mean change of its
  comparison reps; the estimate is the average of these differences weighted by the group's
  participants. Comparing within peer groups removes trends a segment has and the others do
  not (e.g. SMB drifting down while Enterprise rises); participants of a peer group with no
  comparison rep cannot be compared and are counted in ``n_unmatched``. Every rep weighs the
  same within its group, however busy.
- **Standard error**: the residual variance of the changes pooled within each arm over the
  peer groups (participants and comparison may differ in spread), combined with the weights:
  ``se^2 = s_t^2 sum(w_g^2 / n_tg) + s_c^2 sum(w_g^2 / n_cg)``.
- **95% CI: studentised (bootstrap-t) over reps**, resampling reps with replacement within
  each peer group and arm (``n_boot`` draws, numpy ``Generator`` seeded with ``seed``); each
  draw is studentised by its own standard error, and the interval is
  ``estimate - t*_(0.975) se`` to ``estimate - t*_(0.025) se``. Chosen over the percentile
  bootstrap because with a few reps per group and skewed rep changes the percentile
  interval under-covers (the issue-12 audit: 15 of 20 with an effect present), while the
  studentised interval keeps nominal coverage when the effect is present, on the project's
  generator and on the second family with segment trends (``VALIDITY.md``).
  ``p_value`` is the bootstrap-t p-value of a zero effect,
  ``(1 + #{|t*| >= |t|}) / (n_boot + 1)``: never below ``1 / (n_boot + 1)``.
- **Pre-trend (placebo)**: the same within-group comparison of the change from the first half
  of the before window to its second half, when nothing had started yet; its 95% interval
  (the same bootstrap) should include 0: "before the start, participants and comparison moved
  alike (+/- x)". ``pre_trend`` is null when the before window is under two weeks.
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
#: What the estimate measures, in words (shown on the page and in ``--json``).
ESTIMAND = (
    "Average change of the participants' {metric} (listed before the start, whatever they did "
    "after: intention to treat) from the {weeks} weeks before the start to the {weeks} weeks "
    "after, beyond the change of non-participants in the same peer group; peer groups weighted "
    "by their participants."
)
#: Added to :data:`ESTIMAND` for the response rate.
ATTRIBUTED_NOTE = (
    " The response rate counts activities credited with a buyer action by last-touch "
    "attribution, which shares responses out among touches: an effect on the buyers' own "
    "response reads a little smaller on it (about 6% on the sample data)."
)


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
    n_unmatched: int  # eligible participants of peer groups without a comparison rep
    reps: pl.DataFrame  # rep_id, group, peer_group: the reps analysed
    # customer-facing effort of those reps per week of the windows (rep_id, week_index,
    # the sums, group, peer_group, period)
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
    # eligibility looks at the before window only (intention to treat)
    employed = (pl.col("hire_date").is_null() | (pl.col("hire_date") <= before_start)) & (
        pl.col("exit_date").is_null() | (pl.col("exit_date") >= start)
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
    # each rep's effort per week of the windows, summed before anything is joined to it: every
    # figure of the design sums these (a rep's periods, a group's weeks), and the windows'
    # day rows with the reps' groups joined were a ~250 MB transient at 10M activities
    facts = (
        daily.filter(pl.col("day").is_between(before_start, after_end))
        .group_by(
            "rep_id",
            week_index=((pl.col("day") - start).dt.total_days() // 7).cast(pl.Int32),
        )
        .agg(pl.col("activities", "responded", "response_weight").sum())
        .with_columns(pl.col("rep_id").cast(pl.String))  # a page may hold the reps as codes
        .join(candidates, on="rep_id", how="inner")
        .with_columns(
            period=pl.when(pl.col("week_index") < 0)
            .then(pl.lit("before"))
            .otherwise(pl.lit("after")),
        )
    )
    active_before = (
        facts.filter(pl.col("period") == "before")
        .group_by("rep_id")
        .agg(pl.col("activities").sum())
        .filter(pl.col("activities") >= min_activities)
        .select("rep_id")
    )
    eligible = candidates.join(active_before, on="rep_id", how="semi")
    arms = eligible.group_by("peer_group").agg(
        treated=(pl.col("group") == PARTICIPANTS).sum(),
        control=(pl.col("group") == COMPARISON).sum(),
    )
    matched = arms.filter((pl.col("treated") > 0) & (pl.col("control") > 0)).select("peer_group")
    unmatched = arms.filter(pl.col("control") == 0).select(pl.col("treated").sum()).collect()
    analysed = eligible.join(matched, on="peer_group", how="semi", nulls_equal=True).collect()
    return _Design(
        intervention_id=intervention_id,
        name=name,
        start=start,
        weeks=weeks,
        n_participants=listed.len(),
        n_unmatched=int(unmatched.item() or 0),
        reps=analysed.sort("group", "rep_id"),
        facts=facts.join(analysed.lazy().select("rep_id"), on="rep_id", how="semi").collect(),
    )


def _rep_changes(
    design: _Design, metric: str, *, periods: tuple[str, str] = ("before", "after")
) -> pl.DataFrame:
    """Per analysed rep: the metric in the two ``periods`` and the change.

    ``periods`` are ``("before", "after")`` or the placebo halves of the before window,
    ``("early", "late")``. A rep with no activity in a period has no rate there (0 for
    ``activities_per_week``).
    """
    first, second = periods
    weeks = design.weeks
    if periods == ("before", "after"):
        period = pl.col("period")
        span = {"before": float(weeks), "after": float(weeks)}
        facts = design.facts.lazy()
    else:
        half = weeks // 2
        facts = design.facts.lazy().filter(pl.col("period") == "before")
        period = pl.when(pl.col("week_index") < -half).then(pl.lit(first)).otherwise(pl.lit(second))
        span = {first: float(weeks - half), second: float(half)}
    per_period = (
        facts.with_columns(period=period).group_by("rep_id", "period").agg(_sums()).collect()
    )
    grid = design.reps.select("rep_id", "group", "peer_group").join(
        pl.DataFrame({"period": [first, second], "span": [span[first], span[second]]}),
        how="cross",
    )
    values = (
        grid.join(per_period, on=["rep_id", "period"], how="left")
        .with_columns(pl.col("activities", "responded", "response_weight").fill_null(0.0))
        .with_columns(value=metric_value(metric, weeks=pl.col("span")))
        .with_columns(value=pl.when(pl.col("value").is_nan()).then(None).otherwise("value"))
    )
    return (
        values.pivot(
            on="period",
            index=["rep_id", "group", "peer_group"],
            values="value",
            on_columns=[first, second],
        )
        .with_columns(change=pl.col(second) - pl.col(first))
        .sort("group", "rep_id")
    )


@dataclass(frozen=True)
class _Cells:
    """Rep changes split into peer group x arm cells, with the participants' weights."""

    treated: list[np.ndarray]
    control: list[np.ndarray]
    weights: np.ndarray  # per peer group, participants' share

    @classmethod
    def of(cls, changes: pl.DataFrame) -> _Cells:
        usable = changes.filter(pl.col("change").is_not_null())
        treated, control = [], []
        for (_,), frame in usable.sort("peer_group").group_by("peer_group", maintain_order=True):
            t = frame.filter(pl.col("group") == PARTICIPANTS)["change"].to_numpy()
            c = frame.filter(pl.col("group") == COMPARISON)["change"].to_numpy()
            if len(t) and len(c):
                treated.append(t)
                control.append(c)
        sizes = np.array([len(t) for t in treated], dtype=float)
        return cls(treated, control, sizes / sizes.sum() if len(sizes) else sizes)

    @property
    def n_treated(self) -> int:
        return int(sum(len(t) for t in self.treated))

    @property
    def n_control(self) -> int:
        return int(sum(len(c) for c in self.control))


def _pooled_variance(means: np.ndarray, sums_sq: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Residual variance pooled over cells: sum of within-cell squares / (N - cells).

    ``means`` and ``sums_sq`` are (draws, cells); with no residual degree of freedom, the
    variance of the cell means stands in (one rep per cell)."""
    within = (sums_sq - n * means**2).sum(axis=-1)
    df = n.sum() - n.size
    if df > 0:
        return np.maximum(within, 0.0) / df
    return means.var(axis=-1, ddof=1) if n.size > 1 else np.zeros(means.shape[:-1])


def _did_and_se(
    cells: _Cells, draws: tuple[list[np.ndarray], list[np.ndarray]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Estimate and standard error, for the data (``draws=None``) or per bootstrap draw."""
    estimate, variance = 0.0, 0.0
    for arm_cells, sign in ((0, 1.0), (1, -1.0)):
        values = (cells.treated, cells.control)[arm_cells] if draws is None else draws[arm_cells]
        n = np.array([v.shape[-1] for v in values], dtype=float)
        means = np.stack([v.mean(axis=-1) for v in values], axis=-1)
        sums_sq = np.stack([(v**2).sum(axis=-1) for v in values], axis=-1)
        estimate = estimate + sign * (means * cells.weights).sum(axis=-1)
        variance = variance + _pooled_variance(means, sums_sq, n) * (cells.weights**2 / n).sum()
    return np.asarray(estimate), np.sqrt(np.asarray(variance))


def _studentised(cells: _Cells, *, n_boot: int, rng: np.random.Generator) -> dict[str, float]:
    """Estimate, SE, 95% bootstrap-t interval and p-value of the within-group DiD."""
    estimate, se = (float(v) for v in _did_and_se(cells))
    draws = tuple(
        [v[rng.integers(0, len(v), size=(n_boot, len(v)))] for v in arm]
        for arm in (cells.treated, cells.control)
    )
    boot, boot_se = _did_and_se(cells, draws)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_star = np.where(boot_se > 0, (boot - estimate) / boot_se, 0.0)
    if se > 0:
        q_low, q_high = np.quantile(t_star, [0.025, 0.975])
        ci_low, ci_high = estimate - q_high * se, estimate - q_low * se
        extreme = int((np.abs(t_star) >= abs(estimate) / se).sum())
    else:  # every rep changed alike: no sampling spread at all
        ci_low = ci_high = estimate
        extreme = 0 if estimate != 0 else n_boot
    return {
        "estimate": estimate,
        "se": se,
        "ci_low": float(ci_low),
        "ci_high": float(ci_high),
        "p_value": (1 + extreme) / (n_boot + 1),
    }


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
    """Difference-in-differences of ``metric``, participants against their peer groups.

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
        Fewest customer-facing activities a rep needs in the *before* window to be analysed
        (every rep weighs the same, so a rep with a handful of touches would add mostly
        noise; nothing after the start decides who is analysed).
    n_boot, seed
        Bootstrap draws and the seed of the numpy ``Generator``.

    Returns
    -------
    dict
        ``estimate``, ``se``, ``ci_low``, ``ci_high`` (95%, studentised bootstrap),
        ``p_value`` (at least ``1 / (n_boot + 1)``), ``pre_trend``, ``pre_trend_low``,
        ``pre_trend_high`` (placebo before the start), ``estimand`` (in words),
        ``n_treated``, ``n_control`` (reps analysed), ``n_participants`` (listed),
        ``n_unmatched`` (eligible participants without a comparison rep in their peer
        group), ``n_no_after`` (analysed reps with no activity after the start),
        ``peer_groups`` (compared), ``window_weeks``, ``start_date``, ``before_start``,
        ``after_end``, the group means ``treated_before``, ``treated_after``,
        ``control_before``, ``control_after``, and ``intervention_id``, ``name``,
        ``metric``, ``n_boot``, ``seed``. Dates are ``datetime.date``.

    Raises
    ------
    ValueError
        Unknown intervention or metric, no room for the windows, or no peer group with both
        participants and comparison reps.

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
    cells = _Cells.of(changes)
    if not cells.treated:
        raise ValueError(
            f"intervention {intervention_id!r}: no peer group has both a participant and a "
            f"comparison rep employed and active in the {design.weeks} weeks before "
            f"{design.start}"
        )
    rng = np.random.default_rng(seed)
    result = _studentised(cells, n_boot=n_boot, rng=rng)
    pre = {"pre_trend": None, "pre_trend_low": None, "pre_trend_high": None}
    if design.weeks >= 2:
        placebo = _Cells.of(_rep_changes(design, metric, periods=("early", "late")))
        if placebo.treated:
            found = _studentised(placebo, n_boot=n_boot, rng=rng)
            pre = {
                "pre_trend": found["estimate"],
                "pre_trend_low": found["ci_low"],
                "pre_trend_high": found["ci_high"],
            }
    analysed = changes.filter(pl.col("change").is_not_null())
    groups = {g: analysed.filter(pl.col("group") == g) for g in (PARTICIPANTS, COMPARISON)}
    estimand = ESTIMAND.format(metric=metric.replace("_", " "), weeks=design.weeks)
    if metric == "response_rate":
        estimand += ATTRIBUTED_NOTE
    return {
        "intervention_id": intervention_id,
        "name": design.name,
        "metric": metric,
        "estimand": estimand,
        **result,
        **pre,
        "n_treated": cells.n_treated,
        "n_control": cells.n_control,
        "n_participants": design.n_participants,
        "n_unmatched": design.n_unmatched,
        "n_no_after": int(changes["change"].is_null().sum()),
        "peer_groups": len(cells.treated),
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
