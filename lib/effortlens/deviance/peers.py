"""Peer deviance: each rep's rate against peers just like them, and the deviants.

See :mod:`effortlens.deviance` for the method.

Examples
--------
>>> from effortlens.deviance.peers import deviants_table
>>> deviants_table(enriched, metric="win_rate")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from effortlens.deviance.funnel import (
    LIMIT_LEVELS,
    WINSOR,
    control_limits,
    fit_overdispersion,
    limit_columns,
    tail_p_values,
)
from effortlens.measures import response_counts, win_counts
from effortlens.peers import with_peer_group

if TYPE_CHECKING:
    from effortlens.enrich import Enriched

#: The rates deviance can be measured on.
RATE_METRICS: tuple[str, ...] = ("response_rate", "win_rate")
#: Fewest closed deals before a rep can be a win-rate deviant (``settings.min_volume`` counts
#: customer-facing activities and serves the response rate).
WIN_RATE_MIN_VOLUME = 20
#: A rep's place against the limits: above, below, or within.
DIRECTIONS: tuple[str, ...] = ("positive", "negative", "none")


def peer_deviance(
    counts: pl.DataFrame,
    reps: pl.DataFrame,
    *,
    min_volume: int,
    peer_keys: Sequence[str] | None = None,
    adjust_overdispersion: bool = True,
    winsor: float = WINSOR,
) -> pl.DataFrame:
    """Each rep's rate against their peer group: shrunk rate, control limits, direction.

    Parameters
    ----------
    counts
        ``rep_id``, ``successes``, ``trials`` per rep (:func:`response_counts`,
        :func:`win_counts`). Reps of ``reps`` missing here have zero trials.
    reps
        The reps table with ``peer_group`` (or the ``peer_keys`` columns).
    min_volume
        Fewest trials before a rep can be called a deviant.
    peer_keys
        Rebuild the peer groups from these reps columns (e.g. a peer-group picker's
        choice); ``None`` keeps ``reps.peer_group``.
    adjust_overdispersion
        Widen the limits for real between-rep variation (see the module notes); ``False``
        gives plain binomial limits and no shrinkage.
    winsor
        Tail share winsorised in the first estimate of the over-dispersion (before it is
        re-estimated from the reps inside the limits).

    Returns
    -------
    pl.DataFrame
        One row per rep of ``reps``: ``rep_id``, ``rep_name`` (if in reps), ``peer_group``,
        ``successes``, ``volume`` (trials), ``rate``, ``peer_rate``, ``shrunk_rate``, ``z``,
        ``p_value``, ``lower_95``, ``upper_95``, ``lower_998``, ``upper_998``, ``eligible``
        (volume >= min_volume), ``direction`` (``positive``/``negative``/``none``) and
        ``overdispersion`` (the ``rho`` used, the same on every row), sorted by peer group
        and rep. Rates are null for reps with no volume.

    Examples
    --------
    >>> import polars as pl
    >>> reps = pl.DataFrame({"rep_id": ["a", "b", "c", "d"], "peer_group": ["g"] * 4})
    >>> counts = pl.DataFrame({"rep_id": ["a", "b", "c", "d"], "successes": [50, 52, 48, 95],
    ...                        "trials": [200, 200, 200, 200]})
    >>> table = peer_deviance(counts, reps, min_volume=100, adjust_overdispersion=False)
    >>> table["direction"].to_list()
    ['none', 'none', 'none', 'positive']
    """
    if peer_keys is not None:
        reps = with_peer_group(reps, keys=peer_keys)
    elif "peer_group" not in reps.columns:
        raise ValueError("reps has no peer_group column; pass peer_keys to build one")
    names = ["rep_name"] if "rep_name" in reps.columns else []
    units = (
        reps.select("rep_id", *names, "peer_group")
        .join(counts.select("rep_id", "successes", "trials"), on="rep_id", how="left")
        .with_columns(
            successes=pl.col("successes").fill_null(0).cast(pl.UInt32),
            volume=pl.col("trials").fill_null(0).cast(pl.UInt32),
        )
        .drop("trials")
        .with_columns(
            rate=pl.when(pl.col("volume") > 0).then(pl.col("successes") / pl.col("volume")),
            peer_rate=pl.col("successes").sum().over("peer_group")
            / pl.col("volume").sum().over("peer_group").cast(pl.Float64),
        )
        .sort("peer_group", "rep_id")
    )
    volume = units["volume"].to_numpy().astype(np.int64)
    peer_rate = units["peer_rate"].fill_nan(None).fill_null(0.0).to_numpy()
    successes = units["successes"].to_numpy().astype(np.int64)
    rho = (
        fit_overdispersion(units.rename({"volume": "trials"}), peer_rate, winsor=winsor)
        if adjust_overdispersion
        else 0.0
    )
    limits = control_limits(volume, peer_rate, rho, LIMIT_LEVELS)
    strictest_lower, strictest_upper = limit_columns(LIMIT_LEVELS)[-2:]
    variance = peer_rate * (1 - peer_rate) * (1 + (volume - 1) * rho) / np.maximum(volume, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(
            variance > 0,
            (successes / np.maximum(volume, 1) - peer_rate) / np.sqrt(variance),
            np.nan,
        )
    if rho > 0:
        prior = 1 / rho - 1
        shrunk = pl.when(pl.col("volume") > 0).then(
            (pl.col("successes") + pl.col("peer_rate") * prior) / (pl.col("volume") + prior)
        )
    else:
        shrunk = pl.when(pl.col("volume") > 0).then(pl.col("peer_rate"))
    eligible = pl.col("volume") >= min_volume
    return (
        units.with_columns(
            shrunk_rate=shrunk,
            z=pl.Series(z).fill_nan(None),
            p_value=pl.Series(tail_p_values(successes, volume, peer_rate, rho)).fill_nan(None),
            **{name: pl.Series(values).fill_nan(None) for name, values in limits.items()},
        )
        .with_columns(
            eligible=eligible,
            direction=pl.when(eligible & (pl.col("rate") > pl.col(strictest_upper)))
            .then(pl.lit("positive"))
            .when(eligible & (pl.col("rate") < pl.col(strictest_lower)))
            .then(pl.lit("negative"))
            .otherwise(pl.lit("none")),
            overdispersion=pl.lit(rho, dtype=pl.Float64),
        )
        .with_columns(pl.col("peer_rate").fill_nan(None))
    )


def _rate_counts(enriched: Enriched, metric: str) -> pl.DataFrame:
    if metric == "response_rate":
        return response_counts(enriched.activities)
    if metric == "win_rate":
        return win_counts(enriched.tables["opportunities"])
    raise ValueError(f"metric must be one of {list(RATE_METRICS)}, got {metric!r}")


def rep_deviance(
    enriched: Enriched,
    *,
    metric: str = "response_rate",
    min_volume: int | None = None,
    peer_keys: Sequence[str] | None = None,
) -> pl.DataFrame:
    """:func:`peer_deviance` of every rep on ``metric``, straight from an enriched load.

    Parameters
    ----------
    enriched
        An :class:`effortlens.enrich.Enriched`.
    metric
        ``"response_rate"`` (customer-facing activities) or ``"win_rate"`` (closed deals).
    min_volume
        Fewest trials to be a deviant; ``None`` means ``settings.min_volume`` for the
        response rate and :data:`WIN_RATE_MIN_VOLUME` closed deals for the win rate.
    peer_keys
        Other peer keys than the settings'.

    Examples
    --------
    >>> rep_deviance(enriched, metric="win_rate")  # doctest: +SKIP
    """
    counts = _rate_counts(enriched, metric)
    if min_volume is None:
        min_volume = (
            enriched.settings.min_volume if metric == "response_rate" else WIN_RATE_MIN_VOLUME
        )
    return peer_deviance(counts, enriched.reps, min_volume=min_volume, peer_keys=peer_keys)


def deviants_table(
    enriched: Enriched, *, metric: str = "response_rate", min_volume: int | None = None
) -> pl.DataFrame:
    """The positive and negative deviants on ``metric``, for the command line.

    Parameters
    ----------
    enriched
        An :class:`effortlens.enrich.Enriched` (pipeline-only loads work for the win rate).
    metric, min_volume
        As in :func:`rep_deviance`.

    Returns
    -------
    pl.DataFrame
        ``rep_id``, ``rep_name``, ``peer_group``, ``direction``, ``rate``, ``shrunk_rate``,
        ``peer_rate``, ``volume``, ``z``, ``p_value``, ``lower_998``, ``upper_998``: positive
        deviants first, each direction by distance from the peer rate (largest ``|z|``).

    Examples
    --------
    >>> deviants_table(enriched).select("rep_id", "direction", "rate")  # doctest: +SKIP
    """
    table = rep_deviance(enriched, metric=metric, min_volume=min_volume)
    if "rep_name" not in table.columns:
        table = table.with_columns(rep_name=pl.lit(None, dtype=pl.String))
    return rank_deviants(table).select(
        "rep_id",
        "rep_name",
        "peer_group",
        "direction",
        "rate",
        "shrunk_rate",
        "peer_rate",
        "volume",
        "z",
        "p_value",
        "lower_998",
        "upper_998",
    )


def rank_deviants(deviance: pl.DataFrame) -> pl.DataFrame:
    """The deviants of a :func:`peer_deviance` table, in the order they are reported.

    Parameters
    ----------
    deviance
        A :func:`peer_deviance` or :func:`rep_deviance` table (possibly pseudonymised).

    Returns
    -------
    pl.DataFrame
        Its rows whose ``direction`` is not ``none``, all columns kept: positive deviants
        first, each direction by distance from the peer rate (largest ``|z|`` first).

    Examples
    --------
    >>> import polars as pl
    >>> table = pl.DataFrame({"rep_id": ["a", "b", "c", "d"],
    ...     "direction": ["negative", "positive", "none", "positive"], "z": [-4.0, 3.5, 0.1, 5.0]})
    >>> rank_deviants(table)["rep_id"].to_list()
    ['d', 'b', 'a']
    """
    return deviance.filter(pl.col("direction") != "none").sort(
        pl.col("direction").replace_strict({"positive": 0, "negative": 1}),
        pl.col("z").abs(),
        descending=[False, True],
    )
