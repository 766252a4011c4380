"""The rep mirror: a rep's week against their own trailing weeks and their peers' median.

For each week shown and each metric of :data:`MIRROR_METRICS`:

- ``value``: the rep's own number that week (a week without customer-facing activity has
  0 activities and no rates);
- ``own_trailing``: the rep over the ``trailing`` weeks *before* it — volumes as a weekly
  mean, rates as a ratio of the summed counts (a busy week weighs more than a quiet one);
- ``peer_median``: the median over the rep's peers (same ``peer_group``, the rep excluded) who
  had customer-facing activity that week, and ``peers``, how many they were.

Weeks are local calendar weeks starting on Monday (``week`` in the enriched facts).

Examples
--------
>>> rep_mirror(enriched.daily, reps=enriched.reps, rep_id="r007")  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from effortlens.measures import COUNTS, METRIC_LABELS, with_rates
from effortlens.roe import roe_by

#: Metrics in the mirror, in display order.
MIRROR_METRICS: tuple[str, ...] = (
    "activities",
    "hours",
    "response_rate",
    "roe_per_100",
    "roe_per_hour",
    "no_impact_share",
)
_VOLUMES = ("activities", "hours")

MIRROR_SCHEMA = pl.Schema(
    {
        "week": pl.Date(),
        "metric": pl.String(),
        "value": pl.Float64(),
        "own_trailing": pl.Float64(),
        "peer_median": pl.Float64(),
        "peers": pl.UInt32(),
    }
)


def _long(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """week × metric rows of the :data:`MIRROR_METRICS` columns of ``frame`` as ``name``."""
    return frame.select("week", *(pl.col(m).cast(pl.Float64) for m in MIRROR_METRICS)).unpivot(
        index="week", variable_name="metric", value_name=name
    )


def mirror_weeks(
    daily: pl.DataFrame,
    *,
    reps: pl.DataFrame,
    rep_id: str,
    weeks: int = 12,
    trailing: int = 4,
    until: date | None = None,
) -> pl.DataFrame:
    """The rep's last ``weeks`` weeks, each against their own trailing weeks and their peers.

    Parameters
    ----------
    daily
        Enriched ``daily`` rows (all reps: peers come from here).
    reps
        Enriched ``reps`` (with ``peer_group``): tells the rep's peer group even in a week
        without activity.
    rep_id
        The rep in the mirror.
    weeks
        Number of weeks shown, ending with ``until``'s week.
    trailing
        Number of earlier weeks the rep's own baseline spans.
    until
        Any day of the last week shown; default: the latest week in ``daily``.

    Returns
    -------
    pl.DataFrame
        ``week``, ``metric``, ``value``, ``own_trailing``, ``peer_median``, ``peers``; one row
        per week and metric, metrics in :data:`MIRROR_METRICS` order, then by week.

    Raises
    ------
    ValueError
        When ``rep_id`` is not in ``reps``.

    Examples
    --------
    >>> mirror_weeks(enriched.daily, reps=enriched.reps, rep_id="r007")  # doctest: +SKIP
    """
    if weeks < 1 or trailing < 1:
        raise ValueError(f"weeks and trailing must be at least 1, got {weeks} and {trailing}")
    me = reps.filter(pl.col("rep_id") == rep_id)
    if me.height == 0:
        raise ValueError(f"unknown rep {rep_id!r}")
    peer_group = me["peer_group"].item()
    if until is None:
        until = daily["week"].max()
        if until is None:
            return pl.DataFrame(schema=MIRROR_SCHEMA)
    last = until - timedelta(days=until.weekday())
    first_shown = last - timedelta(weeks=weeks - 1)
    first_needed = first_shown - timedelta(weeks=trailing)

    in_range = daily.filter(pl.col("week").is_between(first_needed, last))
    grid = pl.DataFrame({"week": pl.date_range(first_needed, last, "1w", eager=True)})
    mine = roe_by(in_range.filter(pl.col("rep_id") == rep_id), by=["week"])
    mine = grid.join(mine, on="week", how="left").with_columns(
        pl.col("activities", "responded").fill_null(0),
        pl.col("hours", "response_weight", "no_impact_hours").fill_null(0.0),
    )
    own = with_rates(
        mine.select("week", *(pl.col(c).shift(1).rolling_sum(trailing).alias(c) for c in COUNTS))
    ).with_columns(pl.col(v) / trailing for v in _VOLUMES)
    mine = with_rates(mine.select("week", *COUNTS)).collect(engine="in-memory")
    own = own.collect(engine="in-memory")

    peer_weeks = roe_by(
        in_range.filter((pl.col("peer_group") == peer_group) & (pl.col("rep_id") != rep_id)),
        by=["rep_id", "week"],
    ).filter(pl.col("activities") > 0)
    peers = peer_weeks.group_by("week").agg(
        *(pl.col(m).cast(pl.Float64).median() for m in MIRROR_METRICS),
        pl.len().cast(pl.UInt32).alias("peers"),
    )
    peer_long = _long(peers, "peer_median").join(peers.select("week", "peers"), on="week")

    order = pl.DataFrame({"metric": list(MIRROR_METRICS)}).with_row_index("_order")
    return (
        _long(mine, "value")
        .join(_long(own, "own_trailing"), on=["week", "metric"], how="left")
        .join(peer_long, on=["week", "metric"], how="left")
        .with_columns(pl.col("peers").fill_null(0))
        .filter(pl.col("week") >= first_shown)
        .join(order, on="metric")
        .sort("_order", "week")
        .select(MIRROR_SCHEMA.names())
    )


def rep_mirror(
    daily: pl.DataFrame,
    *,
    reps: pl.DataFrame,
    rep_id: str,
    week: date | None = None,
    trailing: int = 4,
) -> pl.DataFrame:
    """One week of the mirror, one row per metric, with the gaps a rep cares about.

    Parameters
    ----------
    daily, reps, rep_id, trailing
        As for :func:`mirror_weeks`.
    week
        Any day of the week to show; default: the latest week in ``daily``.

    Returns
    -------
    pl.DataFrame
        ``metric``, ``label`` (words for a card), ``week``, ``value``, ``own_trailing``,
        ``peer_median``, ``peers``, ``vs_own`` (value − own_trailing) and ``vs_peers``
        (value − peer_median), in the metric's own units.

    Examples
    --------
    >>> rep_mirror(enriched.daily, reps=enriched.reps, rep_id="r007")  # doctest: +SKIP
    """
    one = mirror_weeks(daily, reps=reps, rep_id=rep_id, weeks=1, trailing=trailing, until=week)
    return one.select(
        "metric",
        pl.col("metric").replace_strict(METRIC_LABELS, return_dtype=pl.String).alias("label"),
        "week",
        "value",
        "own_trailing",
        "peer_median",
        "peers",
        (pl.col("value") - pl.col("own_trailing")).alias("vs_own"),
        (pl.col("value") - pl.col("peer_median")).alias("vs_peers"),
    )
