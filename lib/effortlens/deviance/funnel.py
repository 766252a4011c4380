"""Funnel-plot statistics: peer centres, over-dispersion, control limits and tail p-values.

See :mod:`effortlens.deviance` for the method (Spiegelhalter 2005, random effects, with a
leave-one-out centre and a robust over-dispersion estimate).

Examples
--------
>>> limit_columns([0.95])
['lower_95', 'upper_95']
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

#: Control-limit levels (two-sided coverage); a deviant lies outside the last one.
LIMIT_LEVELS: tuple[float, ...] = (0.95, 0.998)
#: Largest volume for which limits and p-values are exact (scipy's beta-binomial quantile
#: costs time linear in the volume; beyond 2,000 the approximation is within 1/volume).
EXACT_MAX_VOLUME = 2_000
#: Squared z-scores are capped at ``HUBER_K ** 2`` when estimating over-dispersion, so that a
#: deviant far outside the limits counts no more than a rep at 1.5 standard deviations. Chosen
#: on the validity harness: with three planted deviants in ~55 reps, 2.5 let them inflate
#: ``rho`` 1.8-fold over the deviant-free value, 1.5 1.36-fold with the same spread on null
#: data; 1.0 gained nothing more and was noisier (``VALIDITY.md``).
HUBER_K = 1.5
_MAX_RHO = 0.5


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


def _capped_second_moment(k: float) -> float:
    """E[min(Z^2, k^2)] for standard normal Z."""
    from scipy import special  # scipy.stats.norm's own sf and pdf, without importing stats

    tail = 2 * special.ndtr(-k)
    pdf = np.exp(-(k**2) / 2.0) / np.sqrt(2 * np.pi)
    return float((1 - tail) - 2 * k * pdf + tail * k**2)


@dataclass(frozen=True)
class Centres:
    """Peer centres of each rep under a given over-dispersion.

    Attributes
    ----------
    loo, loo_var
        Each rep's leave-one-out centre (the random-effects weighted rate of the *other* reps
        of its group) and the variance of that centre; NaN for a rep alone in its group.
    group, group_var
        The centre of the whole group (for a rep not in it, e.g. the funnel lines) and its
        variance, per rep's group.
    """

    loo: np.ndarray
    loo_var: np.ndarray
    group: np.ndarray
    group_var: np.ndarray


def peer_centres(
    successes: np.ndarray,
    volume: np.ndarray,
    groups: np.ndarray,
    rho: float,
    *,
    robust_weights: np.ndarray | None = None,
) -> Centres:
    """Random-effects centres of each rep's peer group, with and without the rep.

    Each rep ``j`` with volume enters its group's centre with weight ``1 / v_j``,
    ``v_j = p (1 - p) (1 + (n_j - 1) rho) / n_j`` (``p`` the group's pooled rate): with
    over-dispersion a very busy rep weighs at most ``1 / (p (1 - p) rho)``, so one large rep
    cannot set the centre. With ``rho = 0`` the centre is the pooled rate.

    Parameters
    ----------
    successes, volume
        Per rep.
    groups
        Per rep, an integer code of its peer group.
    rho
        The over-dispersion.
    robust_weights
        Per rep, a factor in (0, 1] on its weight (Huber weights: a rep far from its
        centre counts less in the others' centres); default 1.

    Returns
    -------
    Centres

    Examples
    --------
    >>> import numpy as np
    >>> c = peer_centres(np.array([30, 10, 20]), np.array([100, 100, 100]),
    ...                  np.array([0, 0, 0]), 0.0)
    >>> [round(float(v), 3) for v in c.loo]
    [0.15, 0.25, 0.2]
    """
    s = np.asarray(successes, dtype=float)
    n = np.asarray(volume, dtype=float)
    g = np.asarray(groups, dtype=np.int64)
    size = int(g.max()) + 1 if g.size else 0
    total_s = np.bincount(g, weights=s, minlength=size)
    total_n = np.bincount(g, weights=n, minlength=size)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = total_s / total_n
        # keep the weights finite when a group's rate is 0 or 1
        pooled = np.clip(pooled, 0.5 / np.maximum(total_n, 1), 1 - 0.5 / np.maximum(total_n, 1))
        p = pooled[g]
        has = n > 0
        v = np.where(has, p * (1 - p) * (1 + (n - 1) * rho) / np.maximum(n, 1), np.inf)
        w = np.where(has, 1 / v, 0.0)
        if robust_weights is not None:
            w = w * np.asarray(robust_weights, dtype=float)
        rate = np.where(has, s / np.maximum(n, 1), 0.0)
        sum_w = np.bincount(g, weights=w, minlength=size)
        sum_wr = np.bincount(g, weights=w * rate, minlength=size)
        group = sum_wr[g] / sum_w[g]
        group_var = 1 / sum_w[g]
        others = sum_w[g] - w
        alone = others <= 1e-12 * np.maximum(sum_w[g], 1e-300)
        loo = np.where(alone, np.nan, (sum_wr[g] - w * rate) / np.where(alone, 1, others))
        loo_var = np.where(alone, np.nan, 1 / np.where(alone, 1, others))
    return Centres(loo=loo, loo_var=loo_var, group=group, group_var=group_var)


def null_variance(
    centre: np.ndarray, centre_var: np.ndarray, volume: np.ndarray, rho: float
) -> np.ndarray:
    """Variance of a rep's observed rate around its centre when it is no deviant.

    The rep's own sampling and between-rep variance (beta-binomial:
    ``c (1 - c) (1 + (n - 1) rho) / n``) plus the variance of the centre itself.

    Examples
    --------
    >>> import numpy as np
    >>> float(null_variance(np.array([0.5]), np.array([0.0]), np.array([100]), 0.0)[0])
    0.0025
    """
    c = np.asarray(centre, dtype=float)
    n = np.maximum(np.asarray(volume, dtype=float), 1)
    return c * (1 - c) * (1 + (n - 1) * rho) / n + np.asarray(centre_var, dtype=float)


def _codes(groups: pl.Series) -> np.ndarray:
    return groups.fill_null("").cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)


class _LooCentres:
    """:func:`peer_centres`' leave-one-out centres and :func:`null_variance`, for the reps with
    volume only, with what does not depend on ``rho`` or the Huber weights worked out once:
    :func:`fit_dispersion` evaluates them a few hundred times a fit. The same operations in
    the same order as those functions, so the same numbers to the bit."""

    def __init__(self, s: np.ndarray, n: np.ndarray, g: np.ndarray, has: np.ndarray) -> None:
        self.kept = np.flatnonzero(has)
        s, n, g = s[self.kept], n[self.kept], g[self.kept]
        self.size = int(g.max()) + 1 if g.size else 0
        total_s = np.bincount(g, weights=s, minlength=self.size)
        total_n = np.bincount(g, weights=n, minlength=self.size)
        with np.errstate(divide="ignore", invalid="ignore"):
            pooled = total_s / total_n
            pooled = np.clip(pooled, 0.5 / np.maximum(total_n, 1), 1 - 0.5 / np.maximum(total_n, 1))
        p = pooled[g]
        self.spread = p * (1 - p)  # p (1 - p), the first factor of v
        self.n_less_one = n - 1
        self.n = n  # >= 1: every rep kept has volume
        self.rate = s / n
        self.g = g

    def squared_z(self, rho: float, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each kept rep's squared z against its leave-one-out centre, and where it has one."""
        g, size, rate = self.g, self.size, self.rate
        factor = 1 + self.n_less_one * rho
        with np.errstate(divide="ignore", invalid="ignore"):
            w = 1 / (self.spread * factor / self.n)
            w = w * h
            wr = w * rate
            sum_w = np.bincount(g, weights=w, minlength=size)[g]
            sum_wr = np.bincount(g, weights=wr, minlength=size)[g]
            others = sum_w - w
            alone = others <= 1e-12 * np.maximum(sum_w, 1e-300)
            if alone.any():
                loo = np.where(alone, np.nan, (sum_wr - wr) / np.where(alone, 1, others))
                loo_var = np.where(alone, np.nan, 1 / np.where(alone, 1, others))
            else:  # the same numbers without the masks (the usual case)
                loo = (sum_wr - wr) / others
                loo_var = 1 / others
        ok = (loo > 0) & (loo < 1)  # False for NaN and the infinities too
        if ok.all():
            return (rate - loo) ** 2 / (loo * (1 - loo) * factor / self.n + loo_var), ok
        z2 = np.full(rate.shape, np.nan)
        c = loo[ok]
        z2[ok] = (rate[ok] - c) ** 2 / (c * (1 - c) * factor[ok] / self.n[ok] + loo_var[ok])
        return z2, ok


def _brentq(f, low: float, high: float, *, xtol: float) -> float:
    """``scipy.optimize.brentq(f, low, high, xtol=xtol)``: the same compiled routine with the
    same defaults (and a NaN is refused the same way), loaded without importing
    ``scipy.optimize``, whose package import (``scipy.linalg``, ``scipy.fft``...) cost a
    deviance kernel ~140 CPU ms and ~23 MB at its first draw, for this routine alone."""
    routine = _brent_routine()
    if routine is None:  # another scipy layout: the public function
        return _public_brentq(f, low, high, xtol=xtol)

    def checked(x: float) -> float:
        fx = f(x)
        if np.isnan(fx):
            raise ValueError(f"The function value at x={x} is NaN; solver cannot continue.")
        return fx

    # brentq's defaults: rtol 4 eps, 100 iterations, no extra arguments, the root alone,
    # an error when it does not converge
    try:
        return float(
            routine(checked, low, high, xtol, 4 * np.finfo(float).eps, 100, (), False, True)
        )
    except TypeError:  # another signature of scipy's private routine: the public function
        return _public_brentq(f, low, high, xtol=xtol)


def _public_brentq(f, low: float, high: float, *, xtol: float) -> float:
    from scipy import optimize

    return float(optimize.brentq(f, low, high, xtol=xtol))


@functools.cache
def _brent_routine():
    """scipy's compiled ``_zeros._brentq`` (what ``scipy.optimize.brentq`` calls), loaded from
    its file alone; None when it cannot be."""
    import importlib.machinery
    import importlib.util
    from pathlib import Path

    try:
        scipy_dir = Path(importlib.util.find_spec("scipy").origin).parent
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = scipy_dir / "optimize" / f"_zeros{suffix}"
            if path.is_file():
                loader = importlib.machinery.ExtensionFileLoader("scipy.optimize._zeros", str(path))
                spec = importlib.util.spec_from_loader(loader.name, loader)
                module = importlib.util.module_from_spec(spec)
                loader.exec_module(module)
                return module._brentq  # noqa: SLF001  (what brentq itself calls)
    except (ImportError, AttributeError, OSError):
        return None
    return None


@dataclass(frozen=True)
class Dispersion:
    """A fitted funnel: the over-dispersion and each rep's Huber weight in the centres."""

    rho: float
    robust_weights: np.ndarray


#: The relative half-width of the bracket around the last round's ``rho`` in which
#: :func:`fit_dispersion` looks first (the whole range when the root is not inside).
_WARM_BRACKET = 0.02


def fit_dispersion(
    successes: np.ndarray,
    volume: np.ndarray,
    groups: np.ndarray,
    *,
    huber_k: float = HUBER_K,
    rho: float | None = None,
    max_rounds: int = 30,
) -> Dispersion:
    """Robust over-dispersion and centres, fitted together (see :func:`overdispersion`).

    Alternates two steps until they agree: ``rho`` solves the capped moment equation
    against the leave-one-out centres; each rep's Huber weight ``min(1, k / |z|)`` then
    sets how much it counts in the *other* reps' centres, so a deviant neither widens the
    limits nor shifts its peers' centre. With ``rho`` given, only the weights are fitted.

    Examples
    --------
    >>> import numpy as np
    >>> successes = np.array([30, 31, 29, 32, 28, 30, 33, 27, 31, 29, 30, 32, 60])
    >>> fit = fit_dispersion(successes, np.full(13, 100), np.zeros(13))
    >>> fit.rho, bool(fit.robust_weights[-1] < 0.5)
    (0.0, True)
    """
    fixed = rho
    s = np.asarray(successes, dtype=float)
    n = np.asarray(volume, dtype=float)
    g = np.asarray(groups, dtype=np.int64)
    has = n > 0
    h = np.ones(n.shape)
    rho = 0.0 if fixed is None else fixed
    if has.sum() < 3:
        return Dispersion(rho, h)
    target = _capped_second_moment(huber_k) if np.isfinite(huber_k) else 1.0
    centres = _LooCentres(s, n, g, has)
    # the reps with volume alone: a rep without adds nothing to any sum (weight 0) and has
    # no z, so its Huber weight stays 1
    kept = centres.kept
    h_kept = h[kept]
    cap = huber_k**2

    seen: dict[float, tuple[np.ndarray, np.ndarray]] = {}  # this round's, by rho

    def squared_z(rho: float) -> tuple[np.ndarray, np.ndarray]:
        # brentq starts from the two ends the round has just tried, and its root is a point
        # it tried: each is computed once a round
        if rho not in seen:
            seen[rho] = centres.squared_z(rho, h_kept)
        return seen[rho]

    def excess(rho: float) -> float:
        z2, ok = squared_z(rho)
        if ok.all():
            # np.mean's own sum and division, without its Python wrapper (a few hundred calls)
            return float(np.minimum(z2, cap).sum() / ok.size - target) if ok.size >= 3 else -1.0
        if ok.sum() < 3:
            return -1.0
        kept = np.minimum(z2[ok], cap)
        return float(kept.sum() / kept.size - target)

    previous = None  # the last round's root inside (0, _MAX_RHO): the next one is close
    for _ in range(max_rounds):
        new_rho = None
        if fixed is not None:
            new_rho = fixed
        elif previous is not None:
            # a bracket around it (the weights move little between rounds): a few steps
            # of brentq instead of a dozen from (0, _MAX_RHO); the same root within xtol
            low, high = (
                previous * (1 - _WARM_BRACKET),
                min(previous * (1 + _WARM_BRACKET), _MAX_RHO),
            )
            if excess(low) > 0 and excess(high) < 0:
                new_rho = _brentq(excess, low, high, xtol=1e-8)
        if new_rho is not None:
            pass
        elif excess(0.0) <= 0:
            new_rho = 0.0
        elif excess(_MAX_RHO) > 0:
            new_rho = _MAX_RHO
        else:
            new_rho = _brentq(excess, 0.0, _MAX_RHO, xtol=1e-8)
        previous = new_rho if fixed is None and 0 < new_rho < _MAX_RHO else None
        z2, ok = squared_z(new_rho)
        new_h = np.where(ok, np.minimum(1.0, huber_k / np.sqrt(np.maximum(z2, 1e-300))), 1.0)
        done = abs(new_rho - rho) < 1e-7 and np.allclose(new_h, h_kept, atol=1e-4)
        rho, h_kept = new_rho, new_h
        seen.clear()  # new weights: every z changes
        if done or not np.isfinite(huber_k):
            break
    h[kept] = h_kept
    return Dispersion(rho, h)


def overdispersion(units: pl.DataFrame, *, huber_k: float = HUBER_K) -> float:
    """Between-rep over-dispersion ``rho`` (beta-binomial intra-class correlation).

    One robust moment estimate, consistent with the centre every rep is tested against:
    ``rho`` solves ``mean(min(z_i^2, k^2)) = E[min(Z^2, k^2)]`` for standard normal ``Z``,
    where ``z_i`` is rep *i*'s rate minus its leave-one-out random-effects centre, over the
    square root of :func:`null_variance` (the rep's beta-binomial variance under ``rho`` plus
    the centre's). Capping the squares (a Huber-type estimating equation) bounds the pull of
    a deviant, however far out, to that of a rep at ``k`` standard deviations, and the same
    Huber weights ``min(1, k / |z|)`` keep a deviant from shifting its peers' centres (see
    :func:`fit_dispersion`), so the deviants cannot hide by widening every limit. With no cap
    (``huber_k=inf``) it is the plain (Paule–Mandel) moment estimate. ``rho = 0`` when the
    spread is no more than chance.

    Parameters
    ----------
    units
        ``peer_group``, ``successes``, ``trials`` per rep; reps with volume in groups of
        two or more enter.
    huber_k
        The cap on ``|z|``.

    Returns
    -------
    float
        ``rho`` in [0, 0.5]; 0 with fewer than three usable reps.

    Examples
    --------
    >>> import polars as pl
    >>> units = pl.DataFrame({"peer_group": ["g"] * 4, "successes": [10, 50, 90, 50],
    ...                       "trials": [100] * 4})
    >>> round(overdispersion(units, huber_k=float("inf")), 2)
    0.45
    """
    return fit_dispersion(
        units["successes"].cast(pl.Float64).to_numpy(),
        units["trials"].cast(pl.Float64).to_numpy(),
        _codes(units["peer_group"]),
        huber_k=huber_k,
    ).rho


def effective_rho(
    centre: np.ndarray, centre_var: np.ndarray, volume: np.ndarray, rho: float
) -> np.ndarray:
    """The beta-binomial ``rho`` whose variance is :func:`null_variance` at each volume.

    Folding the centre's own variance into the count distribution keeps the exact limits
    and the p-values on one footing. (A single trial has no room for it: ``rho`` is kept.)

    Examples
    --------
    >>> import numpy as np
    >>> round(float(effective_rho(np.array([0.5]), np.array([0.0025]), np.array([101]),
    ...                           0.0)[0]), 3)
    0.01
    """
    c = np.asarray(centre, dtype=float)
    n = np.asarray(volume, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        extra = np.asarray(centre_var, dtype=float) * n / (c * (1 - c) * (n - 1))
    extra = np.where((n > 1) & np.isfinite(extra), extra, 0.0)
    return np.clip(rho + extra, 0.0, 0.999)


def _shapes(rate: np.ndarray, rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The beta-binomial's ``a``, ``b`` for a mean rate and intra-class correlation."""
    rho = np.maximum(rho, 1e-12)  # a tiny rho is the binomial to many digits
    concentration = 1 / rho - 1
    return rate * concentration, (1 - rate) * concentration


def _betabinom_cdf(k: float, n: int, a: float, b: float) -> float:
    """``scipy.stats.betabinom(n, a, b)``'s cdf of a whole count ``k`` in ``0 .. n - 1`` as
    scipy computes it (``rv_discrete._cdf_single``: its pmf, ``exp`` of the log-beta terms
    of ``betabinom._logpmf`` in the same order, of every count ``0 .. k`` summed by
    ``np.sum``): the same bits, without importing ``scipy.stats`` (~0.4 s and ~45 MB a
    kernel, paid at the first quantile the exact tables leave undecided)."""
    from scipy.special import betaln

    m = np.floor(np.arange(0, float(k) + 1))
    combiln = -np.log(n + 1) - betaln(n - m + 1, m + 1)
    return np.sum(np.exp(combiln + betaln(m + a, n - m + b) - betaln(a, b)), axis=0)


def _betabinom_ppf_one(q: float, n: int, a: float, b: float) -> float:
    """``scipy.stats.betabinom(n, a, b).ppf(q)`` for ``0 < q < 1`` and valid shapes: scipy's
    bisection (``_drv2_ppfsingle`` on the support ``0 .. n``) over :func:`_betabinom_cdf`."""

    def cdf(x) -> float:
        return _betabinom_cdf(np.floor(x), n, a, b)

    low, high, q_high = 0, n, 1.0
    q_low = cdf(low)
    for _ in range(2046):  # scipy's bound
        if q_low == q:
            return low
        if q_high == q:
            return high
        if high <= low + 1:
            return low if q_low > q else high
        middle = int((low + high) / 2.0)
        q_middle = cdf(middle)
        if q_middle < q:
            if low == middle:
                raise RuntimeError("updating stopped, endless loop")
            low, q_low = middle, q_middle
        elif q_middle > q:
            if high == middle:
                raise RuntimeError("updating stopped, endless loop")
            high, q_high = middle, q_middle
        else:
            return middle
    raise RuntimeError("no quantile found")  # scipy returns None here (never reached)


def _betabinom_ppf(volume: np.ndarray, rate: np.ndarray, rho: np.ndarray, q: float) -> np.ndarray:
    """``scipy.stats.betabinom(volume, a, b).ppf(q)`` of each row (its shapes by
    :func:`_shapes`), by :func:`_betabinom_ppf_one`: NaN for invalid shapes, as scipy."""
    a, b = _shapes(rate, rho)
    out = np.full(np.shape(volume), np.nan)
    valid = (volume >= 0) & (a > 0) & (b > 0)
    for i in np.flatnonzero(valid):
        n = int(volume[i])
        if q == 0:
            out[i] = -1.0
        elif q == 1:
            out[i] = float(n)
        elif 0 < q < 1:
            out[i] = _betabinom_ppf_one(float(q), n, float(a[i]), float(b[i]))
    return out


def _betabinom_two_sided(
    volume: np.ndarray, rate: np.ndarray, rho: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """``2 min(cdf(k), sf(k - 1))`` of ``scipy.stats.betabinom(volume, a, b)`` as scipy's
    ``cdf`` and ``sf`` give them (``sf`` is one minus the cdf; each clipped to [0, 1]; 1 at
    or past the support's ends, NaN for invalid shapes)."""
    a, b = _shapes(rate, rho)
    out = np.full(np.shape(volume), np.nan)
    for i in np.flatnonzero((volume >= 0) & (a > 0) & (b > 0)):
        n, ai, bi, ki = int(volume[i]), float(a[i]), float(b[i]), int(k[i])
        # scipy's cdf(k): 0 below the support, 1 at or past its top, else its _cdf clipped
        below = 0.0 if ki < 0 else 1.0 if ki >= n else _betabinom_cdf(float(ki), n, ai, bi)
        # scipy's sf(k - 1): 1 below the support, 0 at or past its top, else 1 - _cdf
        j = ki - 1
        above = 1.0 if j < 0 else 0.0 if j >= n else 1.0 - _betabinom_cdf(float(j), n, ai, bi)
        out[i] = 2 * np.minimum(np.clip(below, 0, 1), np.clip(above, 0, 1))
    return out


#: Cells (rows x counts) of beta-binomial probabilities computed at once.
_BLOCK_CELLS = 1 << 16  # 512 KB a table: faster than larger blocks (cache)


def _blocks(volume: np.ndarray):
    """Row indices in blocks of similar volume, each block at most ``_BLOCK_CELLS`` cells."""
    order = np.argsort(volume, kind="stable")
    width = volume[order] + 1  # a block's table is as wide as its last (largest) row's
    start = 0
    while start < order.size:
        # the block grows while (its rows) x (the width of its last row) fits
        cells = np.arange(2, order.size - start + 1) * width[start + 1 :]
        over = np.flatnonzero(cells > _BLOCK_CELLS)
        end = start + 1 + (int(over[0]) if over.size else order.size - start - 1)
        yield order[start:end]
        start = end


def _count_probabilities(
    n: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The beta-binomial probability of every count ``0..n`` of each row (``n``: a block's
    volumes; zero past each row's volume), and a bound on the error of its cdf.

    The log-probabilities step from ``P(0)`` by the ratios ``P(k + 1) / P(k) =
    (n - k) (k + a) / ((k + 1) (n - k - 1 + b))``: one logarithm per count, where scipy
    evaluates three log-beta functions per count and sums every cdf from zero again. The
    bound covers the rounding of both ways (the log-beta functions of large ``a + b`` carry
    an absolute error of a few ``eps (a + b + n)``; the steps' sums a few ``1e-10``).
    """
    from scipy.special import betaln

    width = int(n.max()) + 1
    k = np.arange(width, dtype=float)
    nf = n.astype(float)[:, None]
    a2, b2 = a[:, None], b[:, None]
    left = nf - k
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = k + a2
        ratio *= left  # left (k + a)
        below = left + (b2 - 1)
        below *= k + 1  # (k + 1) (left + b - 1)
        ratio /= below
        steps = np.log(ratio, out=ratio)  # NaN or -inf past the volume, set to 0 below
    del below
    first = -np.log(nf + 1) - betaln(nf + 1, 1.0) + betaln(a2, nf + b2) - betaln(a2, b2)
    log_p = left  # reused: same shape, no longer needed
    log_p[:, :1] = first
    np.cumsum(steps[:, :-1], axis=1, out=log_p[:, 1:])
    log_p[:, 1:] += first
    probability = np.exp(log_p, out=log_p)
    short = n + 1 < width  # rows with counts past their volume: zero those
    for volume in np.unique(n[short]):
        probability[np.flatnonzero(n == volume), volume + 1 :] = 0.0
    return probability, 2e-9 + 1e-14 * (a + b + n)


#: Rows whose cdf error bound exceeds this are left to scipy (a rate known to many digits:
#: ``a + b`` in the millions, where scipy's own log-beta rounding decides the last digits).
_MAX_ERROR = 1e-7


def _log_p0(volume: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log P(X = 0)`` of each row's beta-binomial (as :func:`_count_probabilities` starts)."""
    from scipy.special import betaln

    nf = volume.astype(float)
    return -np.log(nf + 1) - betaln(nf + 1, 1.0) + betaln(a, nf + b) - betaln(a, b)


def _scratch(cells: int) -> tuple[np.ndarray, ...]:
    """This thread's four work arrays of at least ``cells`` floats, kept between calls: a
    fresh array of a block's size is new pages, and their faults cost more than the block's
    arithmetic (~0.3 ms a block)."""
    kept = getattr(_SCRATCH, "arrays", None)
    if kept is None or kept[0].size < cells:
        kept = _SCRATCH.arrays = tuple(np.empty(max(cells, _BLOCK_CELLS)) for _ in range(4))
    return kept


_SCRATCH = threading.local()


def _linear_count_probabilities(
    n: np.ndarray, a: np.ndarray, b: np.ndarray, log_p0: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """The probabilities of the counts ``0..width - 1`` of each row (zero past its volume) as
    the running product of ``P(0)`` and the ratios ``P(k + 1) / P(k)`` of
    :func:`_count_probabilities`: no logarithm and no exponential per count. For rows whose
    ``P(0)`` is a normal float (the running product then never leaves [0, 1]); its relative
    rounding, a few ``eps`` a step, stays far inside that function's error bound.

    Returns the table and its running sums along each row (the cdf), both in this thread's
    work arrays (:func:`_scratch`): valid until its next call.
    """
    rows = n.size
    first, second, third = _scratch(rows * width)[:3]
    table = first[: rows * width].reshape(rows, width)
    left = second[: rows * (width - 1)].reshape(rows, width - 1)
    k = np.arange(width - 1, dtype=float)
    ratio = table[:, 1:]  # P(k + 1) / P(k), then the running product in place
    np.subtract(n.astype(float)[:, None], k, out=left)
    # a table cut below every row's volume (the usual case) has no count past a volume:
    # the two clippings then change nothing and are skipped
    clip = bool((n < width - 1).any())
    if clip:
        np.maximum(left, 0.0, out=left)  # n - k, zero past the volume: every later count is 0
    np.add(k, a[:, None], out=ratio)
    ratio *= left  # (k + a) (n - k)
    left -= 1.0
    if clip:
        np.maximum(left, 0.0, out=left)
    left += b[:, None]
    left *= k + 1.0  # (k + 1) (n - k - 1 + b): positive (b > 0), also past the volume
    ratio /= left
    table[:, 0] = np.exp(log_p0)
    np.cumprod(table, axis=1, out=table)
    cdf = third[: rows * width].reshape(rows, width)
    return table, np.cumsum(table, axis=1, out=cdf)


#: A row's table stops this many standard deviations above its mean (or above its count,
#: when a p-value needs that tail) when the mass left above is provably negligible.
_TOP_SDS = 10.0
#: Rows whose ``log P(0)`` is below this are worked out in logarithms
#: (:func:`_count_probabilities`): ``P(0)`` would be no normal float.
_LINEAR_MIN_LOG = -700.0
#: The upper tail of a p-value may miss at most this share of itself (the mass above the
#: table); else the row's table is worked out to its volume.
_TAIL_SHARE = 1e-12


def _counts_below(
    cdf: np.ndarray, quantiles: Sequence[float], index: np.ndarray
) -> list[np.ndarray]:
    """How many entries of each row of ``cdf`` are below each ``q``
    (``np.count_nonzero(cdf < q, axis=1)``), by one binary search per row and ``q``.

    Each row is non-decreasing and within [0, 2) (its last entry, the row's largest, is
    checked), so row ``i`` plus ``2 i`` sorts the whole table: one pass over it instead
    of a comparison pass per ``q``. The offsets round each entry by at most a few
    ``1e-11`` (rounding is monotone, so the order holds): a count can then differ only
    where the cdf is within that of ``q``, which :func:`_exact` never takes as sure (its
    error bound is ``2e-9`` or more) and asks of scipy, as it would anyway.
    """
    rows, width = cdf.shape
    ends = cdf[:, -1]
    if not rows or not (np.all(ends >= 0) and np.all(ends < 1.5)):  # NaN, inf: the plain way
        return [np.count_nonzero(cdf < q, axis=1) for q in quantiles]
    offset = 2.0 * index
    sorted_ = _scratch(rows * width)[3][: rows * width].reshape(rows, width)
    np.add(cdf, offset[:, None], out=sorted_)
    flat = sorted_.ravel()
    start = index * width
    return [np.searchsorted(flat, q + offset, side="left") - start for q in quantiles]


def _exact(
    volume: np.ndarray,
    rate: np.ndarray,
    rho: np.ndarray,
    quantiles: Sequence[float],
    successes: np.ndarray | None = None,
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Beta-binomial quantiles (counts) and, with ``successes``, two-sided tail
    probabilities ``2 min(P(X <= s), P(X >= s))``: scipy's answers, from one table of the
    count probabilities per block of reps.

    - A quantile is the smallest count whose cdf is at least ``q``: scipy's own
      ``ppf`` whenever that cdf clears ``q`` by more than its error bound on both sides of
      the count (scipy's search compares the same cdf, computed its way, with ``q``); the
      rare count within the bound is asked of scipy.
    - Each tail is summed from its own end, so a small tail keeps its digits (scipy's
      ``sf`` is one minus the cdf: below ~1e-11 it is rounding, else they agree to ~1e-11).
    - A row's table is the running product of the count ratios from ``P(0)``
      (:func:`_linear_count_probabilities`; in logarithms, :func:`_count_probabilities`,
      where ``P(0)`` is below the smallest float). It stops :data:`_TOP_SDS` standard
      deviations above the mean (and above the rep's count) where the distribution is
      log-concave (``a, b >= 1``: the ratios then fall, so the mass above the last count
      ``t`` is at most ``P(t) r / (1 - r)``, ``r`` its ratio): the cdf of every count in
      the table is unchanged, and an upper tail that could miss more than
      :data:`_TAIL_SHARE` of itself is summed again from a table up to the volume.
    - Rows whose error bound exceeds :data:`_MAX_ERROR` are left to scipy.
    """
    volume = np.asarray(volume, dtype=np.int64)
    rate, rho = np.asarray(rate, dtype=float), np.asarray(rho, dtype=float)
    a, b = _shapes(rate, rho)
    counts = [np.full(volume.shape, np.nan) for _ in quantiles]
    p = None if successes is None else np.full(volume.shape, np.nan)
    if successes is not None:
        successes = np.asarray(successes, dtype=np.int64)
    log_p0 = _log_p0(volume, a, b)
    linear = log_p0 > _LINEAR_MIN_LOG
    concave = (a >= 1) & (b >= 1)
    top = volume.copy()  # each row's last count in its table
    cut = linear & concave
    if cut.any():
        nf = volume.astype(float)
        ab = a + b
        sd = np.sqrt(nf * a * b * (ab + nf) / (ab * ab * (ab + 1)))
        reach = nf * a / ab + _TOP_SDS * sd
        if successes is not None:
            reach = np.maximum(reach, successes + _TOP_SDS * sd)
        top[cut] = np.minimum(volume, np.ceil(reach)).astype(np.int64)[cut]
    again: list[np.ndarray] = []  # rows whose upper tail needs the whole table

    def block(rows: np.ndarray) -> None:  # writes the rows' own entries of counts and p
        n = volume[rows]
        if linear[rows[0]]:
            probability, cdf = _linear_count_probabilities(
                n, a[rows], b[rows], log_p0[rows], int(top[rows].max()) + 1
            )
            error = 2e-9 + 1e-14 * (a[rows] + b[rows] + n)
        else:
            probability, error = _count_probabilities(n, a[rows], b[rows])
            cdf = np.cumsum(probability, axis=1)
        index = np.arange(rows.size)
        last = np.minimum(n, probability.shape[1] - 1)  # each row's last count in the table
        rough = error > _MAX_ERROR
        below = _counts_below(cdf, quantiles, index)
        for target, q, below_q in zip(counts, quantiles, below, strict=True):
            # past the volume: at its top; past the table: not sure (asked of scipy)
            count = np.minimum(below_q, last)
            at = cdf[index, count]
            under = np.where(count > 0, cdf[index, np.maximum(count - 1, 0)], -np.inf)
            sure = ((count == n) | (at - q > error)) & (q - under > error) & ~rough
            target[rows[sure]] = count[sure]
            unsure = rows[~sure]
            if unsure.size:
                target[unsure] = _betabinom_ppf(volume[unsure], rate[unsure], rho[unsure], q)
        if p is not None:
            s = successes[rows]
            lower = cdf[index, s]
            # the upper tail P(X >= s) >= 1 - P(X <= s) - error: where the lower tail is at
            # most 0.49 it is the smaller, and the upper one is not needed
            upper = np.full(rows.size, np.inf)
            high = np.flatnonzero(lower > 0.49)
            if high.size:
                # summed from the top down, one by one (the zeros past the volume add
                # nothing): a rep's tail does not depend on the other rows of its block, nor
                # on the counts below the smallest success count summed
                top_down = probability[high, int(s[high].min()) :][:, ::-1]
                upper[high] = np.cumsum(top_down, axis=1)[
                    np.arange(high.size), probability.shape[1] - 1 - s[high]
                ]
                short = high[last[high] < n[high]]  # the table stops below the volume
                if short.size:
                    t = last[short].astype(float)
                    nn, aa, bb = n[short].astype(float), a[rows[short]], b[rows[short]]
                    r = (t + aa) * (nn - t) / ((t + 1) * (nn - t - 1 + bb))
                    with np.errstate(divide="ignore"):
                        above = np.where(
                            r < 1, probability[short, last[short]] * r / (1 - r), np.inf
                        )
                    missed = short[~(above <= _TAIL_SHARE * upper[short])]
                    if missed.size:
                        again.append(rows[missed])
            tails = 2 * np.minimum(np.minimum(lower, upper), 0.5)
            p[rows] = tails
            if rough.any():
                left = rows[rough]
                p[left] = _betabinom_two_sided(volume[left], rate[left], rho[left], successes[left])

    blocks = []
    for chosen in (np.flatnonzero(linear), np.flatnonzero(~linear)):
        blocks += [chosen[rows] for rows in _blocks(top[chosen])]
    cells = sum(rows.size * (int(top[rows].max()) + 1) for rows in blocks)
    if len(blocks) < 2 or cells < _THREAD_CELLS:
        for rows in blocks:
            block(rows)
    else:  # numpy's arithmetic, logarithms and sums run outside the GIL: one block a core
        list(_pool().map(block, blocks))
    if again:  # rare: an upper tail far out; its whole table, as the rows without a cut
        rows = np.concatenate(again)
        top[rows] = volume[rows]
        for chosen in _blocks(top[rows]):
            block(rows[chosen])
    return counts, p


#: Tables of at least this many cells (all blocks) are worked out on two threads.
_THREAD_CELLS = 1 << 18
_POOL: list = []


def _pool():
    """Two worker threads, made on first use (each block's rows are its own: no lock)."""
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor

        _POOL.append(ThreadPoolExecutor(max_workers=2, thread_name_prefix="effortlens-limits"))
    return _POOL[0]


def _rate_approximation(volume: np.ndarray, rate: np.ndarray, rho: np.ndarray):
    """The moment-matched beta distribution of the observed rate (for large volumes), as
    its shapes ``(a, b)`` for :func:`_beta_ppf` and :func:`_beta_tails`."""
    concentration = volume / (1 + (volume - 1) * rho) - 1
    return rate * concentration, (1 - rate) * concentration


def _beta_ppf(shapes: tuple[np.ndarray, np.ndarray], q: float) -> np.ndarray:
    """``scipy.stats.beta(a, b).ppf(q)``: the same function (scipy.special's), without
    importing scipy.stats (half a second and ~40 MB of a kernel)."""
    from scipy import special

    return special.betaincinv(*shapes, q)


def _beta_tails(shapes: tuple[np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    """``2 min(cdf(x), sf(x))`` of ``scipy.stats.beta(a, b)`` for ``x`` in [0, 1], by the
    functions scipy.stats calls."""
    from scipy import special

    return 2 * np.minimum(special.betainc(*shapes, x), special.betaincc(*shapes, x))


def _split(volume: np.ndarray, centre: np.ndarray):
    ok = (volume > 0) & (centre > 0) & (centre < 1)
    exact = ok & (volume <= EXACT_MAX_VOLUME)
    return exact, ok & ~exact


def control_limits(
    volume: np.ndarray,
    centre: np.ndarray,
    rho: float | np.ndarray,
    levels: Sequence[float],
    *,
    centre_var: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Lower and upper control limits (as rates) for each volume, per level.

    Exact quantiles of the beta-binomial with :func:`effective_rho` (the binomial when that
    is 0) up to :data:`EXACT_MAX_VOLUME`; above, the moment-matched beta distribution of the
    rate.

    Parameters
    ----------
    volume
        Trials per point.
    centre
        The centre line for each point.
    rho
        The over-dispersion (0: binomial limits).
    levels
        Two-sided coverages, e.g. :data:`LIMIT_LEVELS`.
    centre_var
        The variance of each centre (default 0: a known centre).

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
    return limits_and_p_values(None, volume, centre, rho, levels, centre_var=centre_var)[0]


def limits_and_p_values(
    successes: np.ndarray | None,
    volume: np.ndarray,
    centre: np.ndarray,
    rho: float | np.ndarray,
    levels: Sequence[float],
    *,
    centre_var: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """:func:`control_limits` and, with ``successes``, :func:`tail_p_values`, computed
    together (the exact ones share one table of the count distribution).

    Examples
    --------
    >>> import numpy as np
    >>> limits, p = limits_and_p_values(np.array([50]), np.array([100]), np.array([0.5]),
    ...                                 0.0, [0.95])
    >>> [round(float(v[0]), 2) for v in limits.values()], float(p[0])
    ([0.4, 0.6], 1.0)
    """
    volume = np.asarray(volume, dtype=np.int64)
    centre = np.asarray(centre, dtype=np.float64)
    var = np.zeros(volume.shape) if centre_var is None else np.nan_to_num(centre_var)
    rho_i = effective_rho(centre, var, volume, 0.0) + np.asarray(rho, dtype=float)
    rho_i = np.broadcast_to(np.clip(rho_i, 0.0, 0.999), volume.shape)
    exact, approx = _split(volume, centre)
    quantiles = _tail_quantiles(levels)
    counts, exact_p = [], None
    if exact.any():
        counts, exact_p = _exact(
            volume[exact],
            centre[exact],
            rho_i[exact],
            quantiles,
            None if successes is None else np.asarray(successes, dtype=np.int64)[exact],
        )
    out: dict[str, np.ndarray] = {}
    for name, q in zip(limit_columns(levels), quantiles, strict=True):
        limit = np.where(volume > 0, centre, np.nan)  # degenerate centre 0 or 1
        if exact.any():
            limit[exact] = counts.pop(0) / volume[exact]
        if approx.any():
            shapes = _rate_approximation(volume[approx], centre[approx], rho_i[approx])
            limit[approx] = _beta_ppf(shapes, q)
        out[name] = limit
    if successes is None:
        return out, None
    successes = np.asarray(successes, dtype=np.int64)
    p = np.full(volume.shape, np.nan)
    if exact.any():
        p[exact] = exact_p
    if approx.any():
        shapes = _rate_approximation(volume[approx], centre[approx], rho_i[approx])
        p[approx] = _beta_tails(shapes, successes[approx] / volume[approx])
    return out, np.minimum(p, 1.0)


def _tail_quantiles(levels: Sequence[float]) -> list[float]:
    quantiles = []
    for level in levels:
        quantiles += [(1 - level) / 2, 1 - (1 - level) / 2]
    return quantiles


def tail_p_values(
    successes: np.ndarray,
    volume: np.ndarray,
    centre: np.ndarray,
    rho: float | np.ndarray,
    *,
    centre_var: np.ndarray | None = None,
) -> np.ndarray:
    """Two-sided tail probability of a count at least as far from the centre.

    The same distribution as :func:`control_limits`, so a rep outside the limits at level
    ``L`` has ``p_value < 1 - L`` (to within the counts' discreteness).

    Parameters
    ----------
    successes, volume, centre
        Per point: the count, its trials and the centre line.
    rho
        The over-dispersion (0: binomial).
    centre_var
        The variance of each centre (default 0).

    Returns
    -------
    numpy.ndarray
        The p-values (NaN where there is no volume or the centre is 0 or 1).

    Examples
    --------
    >>> import numpy as np
    >>> float(tail_p_values(np.array([50]), np.array([100]), np.array([0.5]), 0.0)[0])
    1.0
    """
    return limits_and_p_values(successes, volume, centre, rho, (), centre_var=centre_var)[1]


def signed_z(p_value: np.ndarray, rate: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The normal score of a two-sided p-value, signed by the side of the centre.

    ``|z| > 3.09`` exactly when ``p < 0.002``: the z shown agrees with the 99.8% limits.

    Examples
    --------
    >>> import numpy as np
    >>> round(float(signed_z(np.array([0.002]), np.array([0.1]), np.array([0.2]))[0]), 2)
    -3.09
    """
    from scipy import special

    p = np.clip(np.asarray(p_value, dtype=float), 1e-300, 1.0)
    # scipy.stats.norm.isf is -ndtri: the same numbers without importing scipy.stats
    return np.sign(np.asarray(rate) - np.asarray(centre)) * -special.ndtri(p / 2)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values (NaN p-values stay NaN and are not counted).

    Examples
    --------
    >>> import numpy as np
    >>> benjamini_hochberg(np.array([0.01, 0.04, np.nan, 0.03])).round(3).tolist()
    [0.03, 0.04, nan, 0.04]
    """
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return q
    order = ok[np.argsort(p[ok])]
    m = ok.size
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return q


def funnel_limits(
    deviance: pl.DataFrame, *, points: int = 60, start: int | None = None, at_reps: bool = True
) -> pl.DataFrame:
    """The funnel lines: control limits per peer group over a grid of volumes.

    The lines are those of a rep *not* in the group: around the group's random-effects
    centre, with that centre's variance. Each rep itself is tested against the group
    without it (its ``peer_rate`` and limits in the :func:`peer_deviance` table), which
    sits close to the lines.

    Parameters
    ----------
    deviance
        A :func:`peer_deviance` table.
    points
        Volumes per peer group, spaced geometrically from ``start`` to 1.2 x the group's
        largest, plus each rep's own volume when ``at_reps``.
    start
        The smallest volume drawn; default a quarter of the group's smallest positive volume
        (at tiny volumes the limits span 0 to 1 and squash the plot).
    at_reps
        Also give the limits at each rep's volume (exact lines through every rep; leave it
        out for a chart of thousands of reps: the grid alone draws the curve).

    Returns
    -------
    pl.DataFrame
        ``peer_group``, ``volume``, ``peer_rate`` (the group's centre), ``lower_95``,
        ``upper_95``, ``lower_998``, ``upper_998``; groups with no volume are left out.

    Examples
    --------
    >>> funnel_limits(peer_deviance(counts, reps, min_volume=300))  # doctest: +SKIP
    """
    schema = {"peer_group": pl.String, "volume": pl.Int64, "peer_rate": pl.Float64}
    schema |= {name: pl.Float64 for name in limit_columns(LIMIT_LEVELS)}
    # the reps with volume by numpy (no Polars query: a few each cost milliseconds on a
    # busy machine, more than the numbers)
    with np.errstate(invalid="ignore"):
        rows = np.flatnonzero(deviance.get_column("volume").to_numpy() > 0)
    if rows.size == 0:
        return pl.DataFrame(schema=schema)
    rho = float(deviance.get_column("overdispersion")[int(rows[0])])
    volumes_of = deviance.get_column("volume").to_numpy()[rows].astype(np.int64)
    groups_of = deviance.get_column("peer_group")[rows]  # indexing by numpy: no query
    # the groups in sorted order, each rep's group by its place in it (numpy: a few hundred
    # microseconds where a Polars group-by costs milliseconds on a busy machine)
    labels = np.array(["" if g is None else str(g) for g in groups_of.to_list()], dtype=str)
    names_of, first_of, group_of = np.unique(labels, return_index=True, return_inverse=True)
    successes_of = deviance.get_column("successes")[rows].to_numpy()
    centres = peer_centres(successes_of, volumes_of, group_of, rho)
    top_of = np.zeros(names_of.size, dtype=np.int64)
    np.maximum.at(top_of, group_of, volumes_of)
    smallest_of = np.full(names_of.size, np.iinfo(np.int64).max)
    np.minimum.at(smallest_of, group_of, volumes_of)
    names, volumes, centre_at, var_at = [], [], [], []
    for g in range(names_of.size):
        centre, centre_var = centres.group[first_of[g]], centres.group_var[first_of[g]]
        top, smallest = int(top_of[g]), int(smallest_of[g])
        reps = volumes_of[group_of == g] if at_reps else []
        low = max(1, smallest // 4) if start is None else max(1, start)
        grid = np.geomspace(low, max(low + 1, top * 1.2), points).round().astype(np.int64)
        volume = np.union1d(grid, np.asarray(reps, dtype=np.int64))
        names.append(groups_of[int(first_of[g])])
        volumes.append(volume)
        centre_at.append(np.full(volume.shape, centre))
        var_at.append(np.full(volume.shape, centre_var))
    # every group's lines at once: each point's limits are its own (the exact ones are
    # computed row by row), so one call gives each group the numbers of its own call
    volume = np.concatenate(volumes)
    centre = np.concatenate(centre_at)
    limits = control_limits(volume, centre, rho, LIMIT_LEVELS, centre_var=np.concatenate(var_at))

    def floats(values: np.ndarray) -> pl.Series:  # NaN as null, as the Series is made
        return pl.Series(values, dtype=pl.Float64, nan_to_null=True)

    return pl.DataFrame(
        {
            "peer_group": pl.Series(names, dtype=pl.String)[
                np.repeat(np.arange(len(names)), [v.size for v in volumes])
            ],
            "volume": pl.Series(volume, dtype=pl.Int64),
            "peer_rate": floats(centre),
            **{name: floats(values) for name, values in limits.items()},
        }
    )
