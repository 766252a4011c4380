"""Positive deviance: who outperforms peers just like them, and what they do differently.

Everything works on generic *(successes, trials)* per rep, so the same code serves

- **response rate**: responded customer-facing activities / customer-facing activities
  (:func:`response_counts`, from the enriched activities), and
- **win rate**: won / closed (won + lost + no_decision) deals the rep owns
  (:func:`win_counts`, from opportunities alone, so it works on pipeline-only data).

Method (:func:`peer_deviance`)
------------------------------
- **Peer rate**: the pooled rate of the rep's peer group (all its reps' successes over all
  their trials, the rep included), the centre line of the group's funnel plot. A rep alone in
  a peer group cannot be a deviant.
- **Over-dispersion** (Spiegelhalter 2005, *Handling over-dispersion of performance
  indicators*, additive random effects). Reps differ for many reasons besides skill and
  buyers cluster within reps, so plain binomial limits would make most reps "outliers" on
  large volumes. The between-rep variance is a DerSimonian–Laird moment estimate pooled
  across peer groups, expressed as an intra-class correlation ``rho`` (the beta-binomial's,
  shared by all groups; ``rho = 0`` when the spread is no more than chance). So that the
  deviants do not hide themselves by inflating it, the first estimate winsorises the reps'
  z-scores at the 10th/90th percentile (rescaled by the winsorised normal's second moment,
  so it stays unbiased for normal spread); then ``rho`` is re-estimated from the reps inside
  the 99.8% limits alone, until that set stops changing. (Winsorising alone overstates
  ``rho`` when part of the spread is a real group effect, e.g. reps coached mid-year.)
- **Shrinkage** (empirical Bayes): each group's beta prior has mean = peer rate and
  ``alpha + beta = 1 / rho - 1`` (method of moments); the shrunk rate is
  ``(successes + alpha) / (trials + alpha + beta)``; with ``rho = 0`` every rep shrinks to the
  peer rate.
- **Control limits** at 95% and 99.8% around the peer rate for each volume: exact quantiles of
  the beta-binomial (binomial when ``rho = 0``) from scipy for volumes up to
  :data:`EXACT_MAX_VOLUME`; above, the moment-matched beta distribution of the rate (its
  limit for large volumes, within one count of the exact limits there), which scipy
  evaluates in constant time.
- **Deviants**: reps with at least ``min_volume`` trials whose rate lies outside the 99.8%
  limits: ``positive`` above, ``negative`` below. ``z`` is the normal score under the
  over-dispersed variance; ``p_value`` the two-sided tail probability (exact where the limits
  are).

What differs (:func:`what_differs`)
-----------------------------------
The practice mix of the deviants against the non-deviant reps of their own peer groups,
compared within each peer group and averaged over groups weighted by their deviants:
activity-type, weekday and hour-of-day shares of customer-facing touches; cadence (the share
of a rep's follow-ups on a contact made within 2 days of their previous touch on it, and the
median days between such touches); and sequences (a rep's 2-grams of activity types on a
contact). Sizes are standardised so that they rank together: Cohen's *h* for shares; for
sequences Cohen's *h* of ``P(b | a)`` over ``P(b)``, deviants minus peers, i.e. what the
order adds beyond the type mix; Glass's *delta* (difference over the spread of the peers'
own medians) for median days.

Examples
--------
>>> from effortlens.deviance import deviants_table
>>> deviants_table(enriched, metric="win_rate")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from effortlens.habits import WEEKDAY_NAMES
from effortlens.peers import with_peer_group

RATE_METRICS: tuple[str, ...] = ("response_rate", "win_rate")
CLOSED_OUTCOMES: tuple[str, ...] = ("won", "lost", "no_decision")
#: Control-limit levels (two-sided coverage); a deviant lies outside the last one.
LIMIT_LEVELS: tuple[float, ...] = (0.95, 0.998)
#: Fewest closed deals before a rep can be a win-rate deviant (``settings.min_volume`` counts
#: customer-facing activities and serves the response rate).
WIN_RATE_MIN_VOLUME = 20
#: Largest volume for which limits and p-values are exact (scipy's beta-binomial quantile
#: costs time linear in the volume; beyond 2,000 the approximation is within 1/volume).
EXACT_MAX_VOLUME = 2_000
#: Share of z-scores winsorised in each tail before estimating over-dispersion.
WINSOR = 0.10
FOLLOW_UP_DAYS = 2.0
_SEQUENCE_SEPARATOR = " → "
DIRECTIONS: tuple[str, ...] = ("positive", "negative", "none")


def _limit_columns(levels: Sequence[float] = LIMIT_LEVELS) -> list[str]:
    names = []
    for level in levels:
        tag = f"{level * 100:g}".replace(".", "")
        names += [f"lower_{tag}", f"upper_{tag}"]
    return names


# ---------------------------------------------------------------------------------- counts


def response_counts(activities: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Per rep: responded customer-facing activities (successes) out of all of them (trials).

    Parameters
    ----------
    activities
        Enriched activities (``rep_id``, ``is_customer_facing``, ``responded``).

    Returns
    -------
    pl.DataFrame
        ``rep_id``, ``successes``, ``trials`` (UInt32), reps with customer-facing
        activities only, sorted by ``rep_id``.

    Examples
    --------
    >>> import polars as pl
    >>> acts = pl.DataFrame({"rep_id": ["r1", "r1", "r1"],
    ...                      "is_customer_facing": [True, True, False],
    ...                      "responded": [True, False, True]})
    >>> response_counts(acts).row(0)
    ('r1', 1, 2)
    """
    return (
        activities.lazy()
        .filter(pl.col("is_customer_facing"))
        .group_by("rep_id")
        .agg(
            successes=pl.col("responded").sum().cast(pl.UInt32),
            trials=pl.len().cast(pl.UInt32),
        )
        .sort("rep_id")
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


# ------------------------------------------------------------------------------ statistics


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


def _fit_overdispersion(
    units: pl.DataFrame, peer_rate: np.ndarray, *, winsor: float, max_rounds: int = 20
) -> float:
    """``rho`` from the reps inside the 99.8% limits, starting from the winsorised estimate."""
    volume = units["trials"].to_numpy().astype(np.int64)
    rate = units["successes"].to_numpy() / np.maximum(volume, 1)
    rho = overdispersion(units, winsor=winsor)
    inside = None
    for _ in range(max_rounds):
        limits = _limits(volume, peer_rate, rho, LIMIT_LEVELS[-1:])
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


def _limits(
    volume: np.ndarray, peer_rate: np.ndarray, rho: float, levels: Sequence[float]
) -> dict[str, np.ndarray]:
    """Lower and upper control limits (as rates) for each volume, per level."""
    volume = np.asarray(volume, dtype=np.int64)
    peer_rate = np.asarray(peer_rate, dtype=np.float64)
    ok = (volume > 0) & (peer_rate > 0) & (peer_rate < 1)
    exact = ok & (volume <= EXACT_MAX_VOLUME)
    approx = ok & ~exact
    out: dict[str, np.ndarray] = {}
    for name, q in zip(_limit_columns(levels), _tail_quantiles(levels), strict=True):
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


def _p_values(
    successes: np.ndarray, volume: np.ndarray, peer_rate: np.ndarray, rho: float
) -> np.ndarray:
    """Two-sided tail probability of a count at least as far from the peer rate."""
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


# -------------------------------------------------------------------------------- deviance


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
        _fit_overdispersion(units.rename({"volume": "trials"}), peer_rate, winsor=winsor)
        if adjust_overdispersion
        else 0.0
    )
    limits = _limits(volume, peer_rate, rho, LIMIT_LEVELS)
    strictest_lower, strictest_upper = _limit_columns(LIMIT_LEVELS)[-2:]
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
            p_value=pl.Series(_p_values(successes, volume, peer_rate, rho)).fill_nan(None),
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
        limits = _limits(volume, np.full(volume.shape, peer_rate), rho, LIMIT_LEVELS)
        frames.append(
            pl.DataFrame({"peer_group": group, "volume": volume, "peer_rate": peer_rate, **limits})
        )
    schema = {"peer_group": pl.String, "volume": pl.Int64, "peer_rate": pl.Float64}
    schema |= {name: pl.Float64 for name in _limit_columns(LIMIT_LEVELS)}
    if not frames:
        return pl.DataFrame(schema=schema)
    return (
        pl.concat(frames)
        .cast(schema)
        .with_columns(pl.exclude("peer_group", "volume").fill_nan(None))
    )


def _rate_counts(enriched: Any, metric: str) -> pl.DataFrame:
    if metric == "response_rate":
        return response_counts(enriched.activities)
    if metric == "win_rate":
        return win_counts(enriched.tables["opportunities"])
    raise ValueError(f"metric must be one of {list(RATE_METRICS)}, got {metric!r}")


def rep_deviance(
    enriched: Any,
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
    enriched: Any, *, metric: str = "response_rate", min_volume: int | None = None
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
    return (
        table.filter(pl.col("direction") != "none")
        .sort(
            pl.col("direction").replace_strict({"positive": 0, "negative": 1}),
            pl.col("z").abs(),
            descending=[False, True],
        )
        .select(
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
    )


# --------------------------------------------------------------------------- what differs


def _touches(activities: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Customer-facing touches with the rep's previous touch on the same contact."""
    on_contact = pl.col("contact_id").is_not_null()
    previous = ["rep_id", "contact_id"]
    return (
        activities.lazy()
        .filter(pl.col("is_customer_facing"))
        .select("rep_id", "activity_id", "contact_id", "ts", "activity_type", "weekday", "hour")
        .sort("rep_id", "contact_id", "ts", "activity_id")
        .with_columns(
            previous_type=pl.when(on_contact).then(pl.col("activity_type").shift(1).over(previous)),
            gap_days=pl.when(on_contact).then(
                (pl.col("ts") - pl.col("ts").shift(1).over(previous)).dt.total_seconds() / 86_400
            ),
        )
    )


def _share_counts(touches: pl.LazyFrame) -> pl.LazyFrame:
    """Per rep, feature and level: touches at that level (the level's share is of the feature's
    total). Follow-ups carry both levels so the share has its base; only one is reported."""
    weekday = (
        pl.col("weekday")
        .cast(pl.Int64)
        .replace_strict(dict(enumerate(WEEKDAY_NAMES, start=1)), return_dtype=pl.String)
    )
    hour = pl.col("hour").cast(pl.String).str.zfill(2) + pl.lit(":00")
    within = pl.when(pl.col("gap_days") <= FOLLOW_UP_DAYS)
    follow_up = within.then(pl.lit(f"within {FOLLOW_UP_DAYS:g} days")).otherwise(
        pl.lit(f"after {FOLLOW_UP_DAYS:g} days")
    )
    families = [
        ("activity_type_share", pl.col("activity_type"), None),
        ("weekday_share", weekday, None),
        ("hour_share", hour, None),
        ("follow_up_share", follow_up, pl.col("gap_days").is_not_null()),
    ]
    parts = []
    for feature, level, keep in families:
        rows = touches if keep is None else touches.filter(keep)
        parts.append(
            rows.group_by("rep_id", level.alias("level"))
            .agg(n=pl.len().cast(pl.Float64))
            .with_columns(feature=pl.lit(feature))
        )
    return pl.concat(parts, how="vertical_relaxed").select("rep_id", "feature", "level", "n")


def _sides(
    deviance: pl.DataFrame, *, direction: str, rep_ids: Sequence[str] | None
) -> pl.DataFrame:
    """rep_id, peer_group, side ("deviant" or "peer") and the group's weight (its deviants)."""
    chosen = (
        pl.col("rep_id").is_in(list(rep_ids))
        if rep_ids is not None
        else pl.col("direction") == direction
    )
    marked = deviance.select("rep_id", "peer_group", "direction").with_columns(chosen=chosen)
    groups = marked.filter("chosen").group_by("peer_group").agg(weight=pl.len().cast(pl.Float64))
    return (
        marked.join(groups, on="peer_group", how="inner")
        .filter(pl.col("chosen") | (pl.col("direction") == "none"))
        .select(
            "rep_id",
            "peer_group",
            "weight",
            side=pl.when("chosen").then(pl.lit("deviant")).otherwise(pl.lit("peer")),
        )
    )


def _by_side(value: pl.Expr, side: str) -> pl.Expr:
    return value.filter(pl.col("side") == side)


def _arcsine(p: pl.Expr) -> pl.Expr:
    return 2 * p.sqrt().arcsin()


def _share_effects(counts: pl.LazyFrame, sides: pl.LazyFrame) -> pl.LazyFrame:
    pooled = (
        counts.join(sides, on="rep_id")
        .group_by("peer_group", "feature", "level")
        .agg(
            deviant_n=_by_side(pl.col("n"), "deviant").sum(),
            peer_n=_by_side(pl.col("n"), "peer").sum(),
        )
    )
    # every level in every group with deviants, zero where it never happened
    grid = (
        sides.select("peer_group", "weight")
        .unique()
        .join(pooled.select("feature", "level").unique(), how="cross")
        .join(pooled, on=["peer_group", "feature", "level"], how="left")
        .with_columns(pl.col("deviant_n", "peer_n").fill_null(0.0))
    )
    family = ["peer_group", "feature"]
    return (
        grid.with_columns(
            deviant_base=pl.col("deviant_n").sum().over(family),
            peer_base=pl.col("peer_n").sum().over(family),
        )
        .filter((pl.col("deviant_base") > 0) & (pl.col("peer_base") > 0))
        .filter(~pl.col("level").str.starts_with("after "))
        .with_columns(
            deviant_value=pl.col("deviant_n") / pl.col("deviant_base"),
            peer_value=pl.col("peer_n") / pl.col("peer_base"),
        )
        .with_columns(
            effect_size=_arcsine(pl.col("deviant_value")) - _arcsine(pl.col("peer_value")),
            measure=pl.lit("cohen_h"),
        )
    )


def _sequence_effects(
    touches: pl.LazyFrame, sides: pl.LazyFrame, *, min_support: int
) -> pl.LazyFrame:
    pairs = (
        touches.filter(pl.col("previous_type").is_not_null())
        .join(sides, on="rep_id")
        .group_by("peer_group", "weight", "side", "previous_type", "activity_type")
        .agg(n=pl.len().cast(pl.Float64))
        .with_columns(
            from_n=pl.col("n").sum().over("peer_group", "side", "previous_type"),
            to_share=pl.col("n").sum().over("peer_group", "side", "activity_type")
            / pl.col("n").sum().over("peer_group", "side"),
        )
        .with_columns(
            transition=pl.col("n") / pl.col("from_n"),
            beyond_mix=_arcsine(pl.col("n") / pl.col("from_n")) - _arcsine(pl.col("to_share")),
        )
    )
    key = ["peer_group", "weight", "previous_type", "activity_type"]
    return (
        pairs.group_by(key)
        .agg(
            *[
                _by_side(pl.col(c), side).first().alias(f"{side}_{name}")
                for side in ("deviant", "peer")
                for c, name in (
                    ("transition", "value"),
                    ("from_n", "base"),
                    ("beyond_mix", "beyond"),
                )
            ],
            deviant_lift=_by_side(pl.col("transition") / pl.col("to_share"), "deviant").first(),
            peer_lift=_by_side(pl.col("transition") / pl.col("to_share"), "peer").first(),
        )
        .filter((pl.col("deviant_base") >= min_support) & (pl.col("peer_base") >= min_support))
        .select(
            "peer_group",
            "weight",
            feature=pl.lit("sequence"),
            level=pl.concat_str("previous_type", "activity_type", separator=_SEQUENCE_SEPARATOR),
            deviant_value="deviant_lift",
            peer_value="peer_lift",
            deviant_base="deviant_base",
            peer_base="peer_base",
            effect_size=pl.col("deviant_beyond") - pl.col("peer_beyond"),
            measure=pl.lit("cohen_h_beyond_mix"),
        )
    )


def _gap_effects(touches: pl.LazyFrame, sides: pl.LazyFrame, *, min_support: int) -> pl.LazyFrame:
    gaps = (
        touches.filter(pl.col("gap_days").is_not_null())
        .join(sides, on="rep_id")
        .with_columns(log_gap=pl.col("gap_days").log1p())
    )
    per_side = {
        side: {
            "value": _by_side(pl.col("gap_days"), side).median(),
            "base": _by_side(pl.col("gap_days"), side).len().cast(pl.Float64),
            "mean": _by_side(pl.col("log_gap"), side).mean(),
            "var": _by_side(pl.col("log_gap"), side).var(),
        }
        for side in ("deviant", "peer")
    }
    n_dev, n_peer = pl.col("deviant_base"), pl.col("peer_base")
    pooled_sd = (
        ((n_dev - 1) * pl.col("deviant_var") + (n_peer - 1) * pl.col("peer_var"))
        / (n_dev + n_peer - 2)
    ).sqrt()
    return (
        gaps.group_by("peer_group", "weight")
        .agg(**{f"{side}_{k}": e for side, exprs in per_side.items() for k, e in exprs.items()})
        .filter((n_dev >= min_support) & (n_peer >= min_support))
        .select(
            "peer_group",
            "weight",
            feature=pl.lit("median_days_between_touches"),
            level=pl.lit("all follow-ups"),
            deviant_value="deviant_value",
            peer_value="peer_value",
            deviant_base="deviant_base",
            peer_base="peer_base",
            effect_size=pl.when(pooled_sd > 0).then(
                (pl.col("deviant_mean") - pl.col("peer_mean")) / pooled_sd
            ),
            measure=pl.lit("cohen_d_log_days"),
        )
    )


_DIFFERS_SCHEMA = {
    "feature": pl.String,
    "level": pl.String,
    "deviant_value": pl.Float64,
    "peer_value": pl.Float64,
    "difference": pl.Float64,
    "effect_size": pl.Float64,
    "measure": pl.String,
    "deviant_base": pl.Float64,
    "peer_base": pl.Float64,
    "peer_groups": pl.UInt32,
    "rank": pl.UInt32,
}


def what_differs(
    activities: pl.DataFrame | pl.LazyFrame,
    deviance: pl.DataFrame,
    *,
    direction: str = "positive",
    rep_ids: Sequence[str] | None = None,
    min_support: int = 100,
) -> pl.DataFrame:
    """How the practice mix of deviants differs from their peers', largest difference first.

    Parameters
    ----------
    activities
        Enriched activities (``rep_id``, ``activity_id``, ``contact_id``, ``ts``,
        ``activity_type``, ``weekday``, ``hour``, ``is_customer_facing``).
    deviance
        A :func:`peer_deviance` table (``rep_id``, ``peer_group``, ``direction``).
    direction
        Compare the ``positive`` (or ``negative``) deviants with their peers.
    rep_ids
        Compare these reps instead (e.g. one rep picked in the funnel plot); their peers are
        the non-deviant reps of their peer groups.
    min_support
        Fewest transitions from the first type (sequences) or follow-ups (median days) on
        each side before a feature is ranked.

    Returns
    -------
    pl.DataFrame
        ``feature`` (``activity_type_share``, ``weekday_share``, ``hour_share``,
        ``follow_up_share``, ``median_days_between_touches``, ``sequence``), ``level`` (e.g.
        ``call``, ``Tue``, ``10:00``, ``within 2 days``, ``call → email``),
        ``deviant_value`` and ``peer_value`` (shares; lifts ``P(b | a) / P(b)`` for
        sequences; days for the median), ``difference``, ``effect_size`` (signed,
        standardised), ``measure`` (``cohen_h``, ``cohen_h_beyond_mix``,
        ``cohen_d_log_days``),
        ``deviant_base``/``peer_base`` (touches, transitions or follow-ups behind the values,
        summed over groups), ``peer_groups`` and ``rank`` (1 = largest ``|effect_size|``).
        Values are averages over the deviants' peer groups weighted by their deviants.
        Empty when there are no such deviants.

    Examples
    --------
    >>> table = rep_deviance(enriched)  # doctest: +SKIP
    >>> what_differs(enriched.activities, table).head(5)  # doctest: +SKIP
    """
    if rep_ids is None and direction not in ("positive", "negative"):
        raise ValueError(f"direction must be 'positive' or 'negative', got {direction!r}")
    sides = _sides(deviance, direction=direction, rep_ids=rep_ids)
    if sides.filter(pl.col("side") == "deviant").is_empty():
        return pl.DataFrame(schema=_DIFFERS_SCHEMA)
    touches = _touches(activities).collect().lazy()
    side_frame = sides.lazy()
    columns = [
        "peer_group",
        "weight",
        "feature",
        "level",
        "deviant_value",
        "peer_value",
        "deviant_base",
        "peer_base",
        "effect_size",
        "measure",
    ]
    per_group = pl.concat(
        [
            _share_effects(_share_counts(touches), side_frame).select(columns),
            _sequence_effects(touches, side_frame, min_support=min_support).select(columns),
            _gap_effects(touches, side_frame, min_support=min_support).select(columns),
        ],
        how="vertical_relaxed",
    )

    def weighted(column: str) -> pl.Expr:
        return (pl.col(column) * pl.col("weight")).sum() / pl.col("weight").sum()

    return (
        per_group.filter(pl.col("effect_size").is_not_null())
        .group_by("feature", "level", "measure")
        .agg(
            deviant_value=weighted("deviant_value"),
            peer_value=weighted("peer_value"),
            effect_size=weighted("effect_size"),
            deviant_base=pl.col("deviant_base").sum(),
            peer_base=pl.col("peer_base").sum(),
            peer_groups=pl.len().cast(pl.UInt32),
        )
        .with_columns(difference=pl.col("deviant_value") - pl.col("peer_value"))
        .sort(pl.col("effect_size").abs(), "feature", "level", descending=[True, False, False])
        .with_row_index("rank", offset=1)
        .select(list(_DIFFERS_SCHEMA))
        .collect()
        .cast(_DIFFERS_SCHEMA)
    )
