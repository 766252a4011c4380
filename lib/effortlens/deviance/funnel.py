"""Funnel-plot statistics: over-dispersion, control limits and tail p-values of rates.

See :mod:`effortlens.deviance` for the method (Spiegelhalter 2005, additive random effects).

Examples
--------
>>> limit_columns([0.95])
['lower_95', 'upper_95']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import stats

#: Control-limit levels (two-sided coverage); a deviant lies outside the last one.
LIMIT_LEVELS: tuple[float, ...] = (0.95, 0.998)
#: Largest volume for which limits and p-values are exact (scipy's beta-binomial quantile
#: costs time linear in the volume; beyond 2,000 the approximation is within 1/volume).
EXACT_MAX_VOLUME = 2_000
#: Share of z-scores winsorised in each tail before estimating over-dispersion.
WINSOR = 0.10


def limit_columns(levels: Sequence[float] = LIMIT_LEVELS) -> list[str]:
    """Column names of the control limits at ``levels``: ``lower_95``, ``upper_95``….

    Examples
    --------
    >>> limit_columns()
    ['lower_95', 'upper_95', 'lower_998', 'upper_998']
    """
    names = []
    for level in levels:
        tag = f"{level * 100:g}".replace(".", "")
        names += [f"lower_{tag}", f"upper_{tag}"]
    return names


def _winsorised_second_moment(fraction: float) -> float:
    """E[min(max(Z, -c), c)^2] for standard normal Z winsorised at its ``fraction`` tails."""
    if fraction <= 0:
        return 1.0
    c = stats.norm.ppf(1 - fraction)
    inside = (1 - 2 * fraction) - 2 * c * stats.norm.pdf(c)
    return float(inside + 2 * fraction * c**2)


def overdispersion(units: pl.DataFrame, *, winsor: float = WINSOR) -> float:
    """Between-rep over-dispersion ``rho`` (beta-binomial intra-class correlation).

    A robust DerSimonian–Laird moment estimate pooled over peer groups (Spiegelhalter 2005):
    ``rho = max(0, (Q - df) / D)`` with ``Q`` the winsorised, rescaled sum of squared
    z-scores of each rep's rate against its group's pooled rate, ``df`` the sum over groups
    of (reps - 1), and ``D`` the sum over groups of ``N - sum(n_i^2) / N``.

    Parameters
    ----------
    units
        ``peer_group``, ``successes``, ``trials`` per rep.
    winsor
        Share of z-scores pulled in at each tail (0 disables winsorising).

    Returns
    -------
    float
        ``rho`` in [0, 1); 0 when there is too little to estimate (fewer than three reps in
        groups of two or more).

    Examples
    --------
    >>> import polars as pl
    >>> units = pl.DataFrame({"peer_group": ["g"] * 4, "successes": [10, 50, 90, 50],
    ...                       "trials": [100] * 4})
    >>> round(overdispersion(units, winsor=0), 3)
    0.417
    """
    n = pl.col("trials").cast(pl.Float64)
    group_n = n.sum().over("peer_group")
    group_rate = pl.col("successes").cast(pl.Float64).sum().over("peer_group") / group_n
    used = (
        units.filter(pl.col("trials") > 0)
        .with_columns(
            group_rate=group_rate, group_n=group_n, group_reps=pl.len().over("peer_group")
        )
        .filter(
            (pl.col("group_reps") >= 2) & (pl.col("group_rate") > 0) & (pl.col("group_rate") < 1)
        )
        .with_columns(
            z=(pl.col("successes") / n - pl.col("group_rate"))
            * (n / (pl.col("group_rate") * (1 - pl.col("group_rate")))).sqrt()
        )
    )
    if used.height < 3:
        return 0.0
    z = used["z"].to_numpy()
    if winsor > 0:
        low, high = np.quantile(z, [winsor, 1 - winsor])
        z = np.clip(z, low, high)
    q = float(np.sum(z**2)) / _winsorised_second_moment(winsor)
    per_group = used.group_by("peer_group").agg(
        reps=pl.len(),
        spread=pl.col("group_n").first() - (n**2).sum() / pl.col("group_n").first(),
    )
    df = float((per_group["reps"] - 1).sum())
    spread = float(per_group["spread"].sum())
    if spread <= 0:
        return 0.0
    return float(min(max(0.0, (q - df) / spread), 0.999))


def fit_overdispersion(
    units: pl.DataFrame, peer_rate: np.ndarray, *, winsor: float, max_rounds: int = 20
) -> float:
    """``rho`` from the reps inside the 99.8% limits, starting from the winsorised estimate.

    Parameters
    ----------
    units
        ``peer_group``, ``successes``, ``trials`` per rep.
    peer_rate
        Each rep's peer rate (the centre line), in the order of ``units``.
    winsor
        Tail share winsorised in the first estimate (see :func:`overdispersion`).
    max_rounds
        Most re-estimates before giving up on a stable set of reps inside the limits.

    Returns
    -------
    float
        The over-dispersion ``rho`` of the reps inside the limits.

    Examples
    --------
    >>> fit_overdispersion(units, peer_rate, winsor=0.1)  # doctest: +SKIP
    """
    volume = units["trials"].to_numpy().astype(np.int64)
    rate = units["successes"].to_numpy() / np.maximum(volume, 1)
    rho = overdispersion(units, winsor=winsor)
    inside = None
    for _ in range(max_rounds):
        limits = control_limits(volume, peer_rate, rho, LIMIT_LEVELS[-1:])
        lower, upper = (np.nan_to_num(v, nan=0.5) for v in limits.values())
        now_inside = (volume == 0) | ((rate >= lower) & (rate <= upper))
        if inside is not None and np.array_equal(now_inside, inside):
            break
        inside = now_inside
        rho = overdispersion(units.filter(pl.Series(inside)), winsor=0)
    return rho


def _distribution(volume: np.ndarray, rate: np.ndarray, rho: float):
    """scipy's exact count distribution (beta-binomial, binomial at rho = 0)."""
    if rho > 0:
        concentration = 1 / rho - 1
        return stats.betabinom(volume, rate * concentration, (1 - rate) * concentration)
    return stats.binom(volume, rate)


def _rate_approximation(volume: np.ndarray, rate: np.ndarray, rho: float):
    """The moment-matched beta distribution of the observed rate (for large volumes)."""
    concentration = volume / (1 + (volume - 1) * rho) - 1
    return stats.beta(rate * concentration, (1 - rate) * concentration)


def control_limits(
    volume: np.ndarray, peer_rate: np.ndarray, rho: float, levels: Sequence[float]
) -> dict[str, np.ndarray]:
    """Lower and upper control limits (as rates) for each volume, per level.

    Parameters
    ----------
    volume
        Trials per point.
    peer_rate
        The centre line for each point.
    rho
        The over-dispersion (0: binomial limits).
    levels
        Two-sided coverages, e.g. :data:`LIMIT_LEVELS`.

    Returns
    -------
    dict
        :func:`limit_columns` name -> limits (NaN where the volume is zero).

    Examples
    --------
    >>> import numpy as np
    >>> limits = control_limits(np.array([100]), np.array([0.5]), 0.0, [0.95])
    >>> [round(float(v[0]), 2) for v in limits.values()]
    [0.4, 0.6]
    """
    volume = np.asarray(volume, dtype=np.int64)
    peer_rate = np.asarray(peer_rate, dtype=np.float64)
    ok = (volume > 0) & (peer_rate > 0) & (peer_rate < 1)
    exact = ok & (volume <= EXACT_MAX_VOLUME)
    approx = ok & ~exact
    out: dict[str, np.ndarray] = {}
    for name, q in zip(limit_columns(levels), _tail_quantiles(levels), strict=True):
        limit = np.where(volume > 0, peer_rate, np.nan)  # degenerate peer rate 0 or 1
        if exact.any():
            v = volume[exact]
            limit[exact] = _distribution(v, peer_rate[exact], rho).ppf(q) / v
        if approx.any():
            limit[approx] = _rate_approximation(volume[approx], peer_rate[approx], rho).ppf(q)
        out[name] = limit
    return out


def _tail_quantiles(levels: Sequence[float]) -> list[float]:
    quantiles = []
    for level in levels:
        quantiles += [(1 - level) / 2, 1 - (1 - level) / 2]
    return quantiles


def tail_p_values(
    successes: np.ndarray, volume: np.ndarray, peer_rate: np.ndarray, rho: float
) -> np.ndarray:
    """Two-sided tail probability of a count at least as far from the peer rate.

    Parameters
    ----------
    successes, volume, peer_rate
        Per point: the count, its trials and the centre line.
    rho
        The over-dispersion (0: binomial).

    Returns
    -------
    numpy.ndarray
        The p-values (NaN where there is no volume or the peer rate is 0 or 1).

    Examples
    --------
    >>> import numpy as np
    >>> float(tail_p_values(np.array([50]), np.array([100]), np.array([0.5]), 0.0)[0])
    1.0
    """
    successes = np.asarray(successes, dtype=np.int64)
    volume = np.asarray(volume, dtype=np.int64)
    peer_rate = np.asarray(peer_rate, dtype=np.float64)
    p = np.full(volume.shape, np.nan)
    ok = (volume > 0) & (peer_rate > 0) & (peer_rate < 1)
    exact = ok & (volume <= EXACT_MAX_VOLUME)
    approx = ok & ~exact
    if exact.any():
        dist = _distribution(volume[exact], peer_rate[exact], rho)
        s = successes[exact]
        p[exact] = 2 * np.minimum(dist.cdf(s), dist.sf(s - 1))
    if approx.any():
        dist = _rate_approximation(volume[approx], peer_rate[approx], rho)
        r = successes[approx] / volume[approx]
        p[approx] = 2 * np.minimum(dist.cdf(r), dist.sf(r))
    return np.minimum(p, 1.0)


def funnel_limits(
    deviance: pl.DataFrame, *, points: int = 60, start: int | None = None
) -> pl.DataFrame:
    """The funnel lines: control limits per peer group over a grid of volumes.

    Parameters
    ----------
    deviance
        A :func:`peer_deviance` table.
    points
        Volumes per peer group, spaced geometrically from ``start`` to 1.2 x the group's
        largest, plus each rep's own volume (so the lines pass through every rep's limits).
    start
        The smallest volume drawn; default a quarter of the group's smallest positive volume
        (at tiny volumes the limits span 0 to 1 and squash the plot).

    Returns
    -------
    pl.DataFrame
        ``peer_group``, ``volume``, ``peer_rate``, ``lower_95``, ``upper_95``, ``lower_998``,
        ``upper_998``; groups with no volume are left out.

    Examples
    --------
    >>> funnel_limits(peer_deviance(counts, reps, min_volume=300))  # doctest: +SKIP
    """
    groups = (
        deviance.filter(pl.col("volume") > 0)
        .group_by("peer_group")
        .agg(
            pl.col("peer_rate").first(),
            top=pl.col("volume").max(),
            rho=pl.col("overdispersion").first(),
            smallest=pl.col("volume").min(),
            reps=pl.col("volume").unique(),
        )
        .sort("peer_group")
    )
    frames = []
    for group, peer_rate, top, rho, smallest, reps in groups.iter_rows():
        low = max(1, smallest // 4) if start is None else max(1, start)
        grid = np.geomspace(low, max(low + 1, top * 1.2), points).round().astype(np.int64)
        volume = np.union1d(grid, np.asarray(reps, dtype=np.int64))
        limits = control_limits(volume, np.full(volume.shape, peer_rate), rho, LIMIT_LEVELS)
        frames.append(
            pl.DataFrame({"peer_group": group, "volume": volume, "peer_rate": peer_rate, **limits})
        )
    schema = {"peer_group": pl.String, "volume": pl.Int64, "peer_rate": pl.Float64}
    schema |= {name: pl.Float64 for name in limit_columns(LIMIT_LEVELS)}
    if not frames:
        return pl.DataFrame(schema=schema)
    return (
        pl.concat(frames)
        .cast(schema)
        .with_columns(pl.exclude("peer_group", "volume").fill_nan(None))
    )
