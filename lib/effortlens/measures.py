"""Every rate EffortLens reports, defined once (DESIGN §5).

The metrics are ratios of a few counts summed over a slice of customer-facing activities:

- **response rate** = ``responded / activities``: the share of activities with at least one
  attributed buyer action;
- **ROE per 100** = ``100 * response_weight / activities``: attributed buyer-action weight per
  100 customer-facing activities;
- **ROE per hour** = ``response_weight / hours``;
- **no-impact effort** = ``activities - responded`` (and its share, ``1 - response rate``);
- **win rate** = ``won / closed`` deals; **no-decision rate** = ``no_decision / closed``.

A slice with no activity (or no closed deal) has a null rate, never 0 % or NaN. Every module
(return on effort, deviance, habits, interventions, organisation, the mirror, the pages) takes
its ratios from here.

Examples
--------
>>> import polars as pl
>>> counts = pl.DataFrame({"activities": [4, 0], "responded": [1, 0]})
>>> counts.select(response_rate())["response_rate"].to_list()
[0.25, None]
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from effortlens.vocabulary import CLOSED_OUTCOMES

#: Counts summed over a slice; every metric is a ratio of these.
COUNTS: tuple[str, ...] = ("activities", "hours", "responded", "response_weight", "no_impact_hours")

#: Metrics derived from the counts, in display order.
METRICS: tuple[str, ...] = (
    "response_rate",
    "roe_per_100",
    "roe_per_hour",
    "no_impact_activities",
    "no_impact_share",
)

#: Words for the counts and metrics, for chart axes and KPI cards.
METRIC_LABELS: dict[str, str] = {
    "activities": "Customer-facing activities",
    "hours": "Customer-facing hours",
    "responded": "Activities with a buyer action",
    "response_weight": "Buyer-action weight",
    "response_rate": "Response rate",
    "roe_per_100": "ROE per 100 activities",
    "roe_per_hour": "ROE per hour",
    "no_impact_activities": "Activities with no buyer action",
    "no_impact_hours": "Hours with no buyer action",
    "no_impact_share": "Share with no buyer action",
}

#: Metrics :func:`metric_value` computes from summed counts (interventions, organisation).
SUMMED_METRICS: tuple[str, ...] = ("response_rate", "roe_per_100", "activities_per_week")


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator)


def response_rate(
    *, prefix: str = "", responded: str = "responded", activities: str = "activities"
) -> pl.Expr:
    """Share of activities with a buyer action: ``responded / activities``, null for none.

    Parameters
    ----------
    prefix
        Prefix of the count columns, e.g. ``"rolling_"``; the result is named
        ``{prefix}response_rate``.
    responded, activities
        Names of the count columns (after the prefix).

    Examples
    --------
    >>> import polars as pl
    >>> pl.DataFrame({"activities": [8], "responded": [2]}).select(response_rate()).item()
    0.25
    """
    n = pl.col(f"{prefix}{activities}")
    return _ratio(pl.col(f"{prefix}{responded}"), n).alias(f"{prefix}response_rate")


def roe_per_100(*, prefix: str = "") -> pl.Expr:
    """Buyer-action weight per 100 customer-facing activities, null for no activity.

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.DataFrame({"activities": [200], "response_weight": [50.0]})
    >>> frame.select(roe_per_100()).item()
    25.0
    """
    n = pl.col(f"{prefix}activities")
    return _ratio(100 * pl.col(f"{prefix}response_weight"), n).alias(f"{prefix}roe_per_100")


def roe_per_hour(*, prefix: str = "") -> pl.Expr:
    """Buyer-action weight per customer-facing hour, null for no hour.

    Examples
    --------
    >>> import polars as pl
    >>> pl.DataFrame({"hours": [4.0], "response_weight": [6.0]}).select(roe_per_hour()).item()
    1.5
    """
    hours = pl.col(f"{prefix}hours")
    return _ratio(pl.col(f"{prefix}response_weight"), hours).alias(f"{prefix}roe_per_hour")


def no_impact_activities(*, prefix: str = "") -> pl.Expr:
    """Customer-facing activities that earned no buyer action (UInt32).

    Examples
    --------
    >>> import polars as pl
    >>> pl.DataFrame({"activities": [8], "responded": [2]}).select(no_impact_activities()).item()
    6
    """
    p = prefix
    return (
        (pl.col(f"{p}activities") - pl.col(f"{p}responded"))
        .cast(pl.UInt32)
        .alias(f"{p}no_impact_activities")
    )


def no_impact_share(*, prefix: str = "") -> pl.Expr:
    """Share of customer-facing activities with no buyer action, null for no activity.

    Examples
    --------
    >>> import polars as pl
    >>> pl.DataFrame({"activities": [8], "responded": [2]}).select(no_impact_share()).item()
    0.75
    """
    p = prefix
    n = pl.col(f"{p}activities")
    return _ratio(n - pl.col(f"{p}responded"), n).alias(f"{p}no_impact_share")


def with_rates(counts: pl.DataFrame | pl.LazyFrame, *, prefix: str = "") -> pl.LazyFrame:
    """Add the :data:`METRICS` computed from ``{prefix}activities``, ``{prefix}hours``….

    Parameters
    ----------
    counts
        A frame with the :data:`COUNTS` columns (optionally prefixed).
    prefix
        Column-name prefix of the counts, e.g. ``"rolling_"``; the metrics get it too.

    Returns
    -------
    pl.LazyFrame
        ``counts`` with the :data:`METRICS` columns added (null rates where there is no
        activity, or no hour for ``roe_per_hour``).

    Examples
    --------
    >>> import polars as pl
    >>> c = pl.DataFrame({"activities": [4, 0], "hours": [2.0, 0.0], "responded": [1, 0],
    ...     "response_weight": [3.0, 0.0], "no_impact_hours": [1.5, 0.0]})
    >>> with_rates(c).collect().select("response_rate", "roe_per_100", "roe_per_hour").rows()
    [(0.25, 75.0, 1.5), (None, None, None)]
    """
    return counts.lazy().with_columns(
        response_rate(prefix=prefix),
        roe_per_100(prefix=prefix),
        roe_per_hour(prefix=prefix),
        no_impact_activities(prefix=prefix),
        no_impact_share(prefix=prefix),
    )


def pooled_response_rate(over: str | Sequence[str]) -> pl.Expr:
    """The response rate of all rows sharing ``over`` (e.g. every cell of one activity type).

    Examples
    --------
    >>> import polars as pl
    >>> cells = pl.DataFrame({"activity_type": ["call", "call", "email"],
    ...     "activities": [10, 30, 50], "responded": [5, 5, 5]})
    >>> cells.select(pooled_response_rate("activity_type"))["response_rate"].to_list()
    [0.25, 0.25, 0.1]
    """
    over = [over] if isinstance(over, str) else list(over)
    return (pl.col("responded").sum().over(over) / pl.col("activities").sum().over(over)).alias(
        "response_rate"
    )


def touch_counts(touches: pl.DataFrame | pl.LazyFrame, *, by: Sequence[str]) -> pl.LazyFrame:
    """Touches (``activities``), responded touches and ``response_rate`` per ``by`` group.

    Parameters
    ----------
    touches
        One row per customer-facing activity with ``responded`` (the caller keeps only the
        touches it means to count).
    by
        Group columns.

    Examples
    --------
    >>> import polars as pl
    >>> acts = pl.DataFrame({"hour": [9, 9, 10], "responded": [True, False, False]})
    >>> touch_counts(acts, by=["hour"]).sort("hour").collect().rows()
    [(9, 2, 1, 0.5), (10, 1, 0, 0.0)]
    """
    return (
        touches.lazy()
        .group_by(list(by))
        .agg(
            activities=pl.len().cast(pl.UInt32),
            responded=pl.col("responded").sum().cast(pl.UInt32),
        )
        .with_columns(response_rate())
    )


def response_counts(
    activities: pl.DataFrame | pl.LazyFrame, *, by: Sequence[str] = ("rep_id",)
) -> pl.DataFrame:
    """Per rep: responded customer-facing activities (successes) out of all of them (trials).

    Parameters
    ----------
    activities
        Enriched activities (``rep_id``, ``is_customer_facing``, ``responded``).
    by
        The unit counted, one rep by default.

    Returns
    -------
    pl.DataFrame
        ``by``, ``successes``, ``trials`` (UInt32), units with customer-facing activities
        only, sorted by ``by``.

    Examples
    --------
    >>> import polars as pl
    >>> acts = pl.DataFrame({"rep_id": ["r1", "r1", "r1"],
    ...                      "is_customer_facing": [True, True, False],
    ...                      "responded": [True, False, True]})
    >>> response_counts(acts).row(0)
    ('r1', 1, 2)
    """
    by = list(by)
    return (
        touch_counts(activities.lazy().filter(pl.col("is_customer_facing")), by=by)
        .select(*by, successes="responded", trials="activities")
        .sort(by)
        .collect()
    )


def win_counts(opportunities: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Per deal owner: won deals (successes) out of closed ones (trials).

    Closed means ``won``, ``lost`` or ``no_decision``; open deals are left out.

    Parameters
    ----------
    opportunities
        The canonical opportunities table (``rep_id``, ``outcome``).

    Returns
    -------
    pl.DataFrame
        ``rep_id``, ``successes``, ``trials`` (UInt32), owners with a closed deal only.

    Examples
    --------
    >>> import polars as pl
    >>> opps = pl.DataFrame({"rep_id": ["r1"] * 3, "outcome": ["won", "no_decision", "open"]})
    >>> win_counts(opps).row(0)
    ('r1', 1, 2)
    """
    return (
        opportunities.lazy()
        .filter(pl.col("outcome").is_in(CLOSED_OUTCOMES))
        .group_by("rep_id")
        .agg(
            successes=(pl.col("outcome") == "won").sum().cast(pl.UInt32),
            trials=pl.len().cast(pl.UInt32),
        )
        .sort("rep_id")
        .collect()
    )


def deal_rates(opportunities: pl.DataFrame | pl.LazyFrame) -> dict[str, float | None]:
    """Deals, win rate and no-decision rate (both of closed deals) of a set of deals.

    Parameters
    ----------
    opportunities
        Canonical opportunities (``outcome``).

    Returns
    -------
    dict
        ``deals`` (all deals), ``closed``, ``win_rate`` and ``no_decision_rate`` (null when
        no deal is closed).

    Examples
    --------
    >>> import polars as pl
    >>> deal_rates(pl.DataFrame({"outcome": ["won", "lost", "lost", "no_decision", "open"]}))
    {'deals': 5, 'closed': 4, 'win_rate': 0.25, 'no_decision_rate': 0.25}
    """
    closed = pl.col("outcome").is_in(CLOSED_OUTCOMES)
    row = (
        opportunities.lazy()
        .select(
            deals=pl.len().cast(pl.Int64),
            closed=closed.sum().cast(pl.Int64),
            won=(pl.col("outcome") == "won").sum(),
            no_decision=(pl.col("outcome") == "no_decision").sum(),
        )
        .with_columns(
            win_rate=_ratio(pl.col("won"), pl.col("closed")),
            no_decision_rate=_ratio(pl.col("no_decision"), pl.col("closed")),
        )
        .collect()
        .row(0, named=True)
    )
    return {k: row[k] for k in ("deals", "closed", "win_rate", "no_decision_rate")}


def metric_value(
    metric: str, *, weeks: pl.Expr | float = 1.0, reps: pl.Expr | float = 1.0
) -> pl.Expr:
    """The expression of ``metric`` over summed ``activities``, ``responded`` and
    ``response_weight`` columns (customer-facing activities only).

    Parameters
    ----------
    metric
        One of :data:`SUMMED_METRICS`: ``response_rate``, ``roe_per_100`` or
        ``activities_per_week``.
    weeks, reps
        The span and the number of reps the sums cover (for ``activities_per_week``).

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.DataFrame({"activities": [200], "responded": [30], "response_weight": [50.0]})
    >>> frame.select(metric_value("roe_per_100")).item()
    25.0
    """
    if metric == "response_rate":
        return response_rate()
    if metric == "roe_per_100":
        return roe_per_100()
    if metric == "activities_per_week":
        return (pl.col("activities") / (weeks * reps)).alias("activities_per_week")
    raise ValueError(f"metric must be one of {list(SUMMED_METRICS)}, got {metric!r}")
