"""Small drawing and formatting helpers shared by the event steps of the sample generator.

Examples
--------
>>> import numpy as np
>>> ids("ACC", np.array([7, -1]), 4).to_list()
['ACC0007', None]
"""

from __future__ import annotations

import numpy as np
import polars as pl

#: Seconds in a day.
DAY = 86400


def ids(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    """``prefix`` + zero-padded number; negative numbers become nulls.

    Examples
    --------
    >>> import numpy as np
    >>> ids("R", np.array([3, 12]), 3).to_list()
    ['R003', 'R012']
    """
    s = pl.Series("n", numbers, dtype=pl.Int64)
    return (
        pl.select(
            pl.when(s >= 0).then(pl.concat_str(pl.lit(prefix), s.cast(pl.String).str.zfill(width)))
        )
        .to_series()
        .alias(prefix)
    )


def timestamps(seconds: np.ndarray, valid: np.ndarray | None = None) -> pl.Series:
    """UTC seconds as ``Datetime("us", "UTC")``; where ``valid`` is False, null.

    Examples
    --------
    >>> import numpy as np
    >>> timestamps(np.array([0, 60]), np.array([True, False])).to_list()[1] is None
    True
    """
    s = pl.from_epoch(pl.Series("s", seconds, dtype=pl.Int64), time_unit="s")
    s = s.dt.replace_time_zone("UTC")
    if valid is not None:
        s = pl.select(pl.when(pl.Series(valid)).then(s)).to_series()
    return s


def categorical(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws of an index with probabilities ``p`` (one uniform number each).

    Examples
    --------
    >>> import numpy as np
    >>> categorical(np.random.default_rng(0), np.array([0.0, 1.0]), 3).tolist()
    [1, 1, 1]
    """
    return np.searchsorted(np.cumsum(p)[:-1], rng.random(n), side="right")


def book_rank(rng: np.random.Generator, size: np.ndarray) -> np.ndarray:
    """An account rank in a book of ``size`` accounts; a few accounts get most of the touches.

    Examples
    --------
    >>> import numpy as np
    >>> rank = book_rank(np.random.default_rng(0), np.array([60, 120, 60]))
    >>> bool(((rank >= 0) & (rank < [60, 120, 60])).all())
    True
    """
    out = np.zeros(len(size), dtype=np.int64)
    for n in np.unique(size):
        sel = size == n
        cdf = np.cumsum(1.0 / (np.arange(n) + 2.0))
        out[sel] = np.searchsorted(cdf / cdf[-1], rng.random(sel.sum()), side="right")
    return np.minimum(out, size - 1)
