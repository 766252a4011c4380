"""The standard normal distribution's tail and quantile without importing scipy.

``scipy.stats`` costs a page about a second of CPU (and more wall time on a busy machine) the
first time it is imported; the pages only need the normal tail of a z statistic and the
quantile of a confidence level. These agree with ``scipy.stats.norm.sf`` and
``scipy.stats.norm.ppf`` to a few units in the last place.

Examples
--------
>>> from effortlens.normal import normal_ppf, normal_sf
>>> round(normal_sf(1.959964), 4), round(normal_ppf(0.975), 4)
(0.025, 1.96)
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_STANDARD = NormalDist()


def normal_sf(z: float) -> float:
    """The upper tail ``P(Z > z)`` of the standard normal (``scipy.stats.norm.sf``).

    Examples
    --------
    >>> normal_sf(0.0)
    0.5
    """
    return 0.5 * math.erfc(z / math.sqrt(2))


def normal_sf_array(z: np.ndarray) -> np.ndarray:
    """:func:`normal_sf` of each element (NaN stays NaN).

    Examples
    --------
    >>> normal_sf_array(np.array([0.0, np.nan])).tolist()
    [0.5, nan]
    """
    flat = np.asarray(z, dtype=np.float64)
    return np.array([normal_sf(v) for v in flat.ravel().tolist()], dtype=np.float64).reshape(
        flat.shape
    )


def normal_ppf(p: float) -> float:
    """The quantile of the standard normal at ``p`` (``scipy.stats.norm.ppf``).

    Examples
    --------
    >>> round(normal_ppf(0.5), 12)
    0.0
    """
    return _STANDARD.inv_cdf(p)
