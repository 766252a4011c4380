"""Peer deviance: each rep's rate against peers just like them, and the deviants.

See :mod:`effortlens.deviance` for the method.

Examples
--------
>>> from effortlens.deviance.peers import deviants_table
>>> deviants_table(enriched, metric="win_rate")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from effortlens.deviance.funnel import (
    HUBER_K,
    LIMIT_LEVELS,
    benjamini_hochberg,
    fit_dispersion,
    limit_columns,
    limits_and_p_values,
    peer_centres,
    signed_z,
)
from effortlens.enrich import events
from effortlens.measures import response_counts, win_counts
from effortlens.peers import peer_group_expr

if TYPE_CHECKING:
    from effortlens.enrich import Enriched

#: The rates deviance can be measured on.
RATE_METRICS: tuple[str, ...] = ("response_rate", "win_rate")
#: Fewest closed deals before a rep can be a win-rate deviant (``settings.min_volume`` counts
#: customer-facing activities and serves the response rate).
WIN_RATE_MIN_VOLUME = 20
#: A rep's place against the limits: above, below, or within.
DIRECTIONS: tuple[str, ...] = ("positive", "negative", "none")
#: False-discovery rate of the deviants: a flagged rep needs a Benjamini–Hochberg q-value
#: at most this (besides lying outside the 99.8% limits).
FDR = 0.05
#: Label of the broadest fallback group.
ALL_REPS = "all reps"


def _comparison_groups(
    reps: pl.DataFrame, active: np.ndarray, *, keys: Sequence[str], min_reps: int
) -> tuple[list[str | None], list[str | None]]:
    """Each reps row's ``peer_group`` (the group it is compared within) and ``peer_basis``.

    A rep's full peer group (all ``keys``) is used when it holds at least ``min_reps`` reps
    with volume (``active``: per reps row); otherwise the last key is dropped, and so on down
    to all reps. The label of a broader group names the keys kept (``Enterprise``;
    ``all reps``).
    """
    missing = [k for k in keys if k not in reps.columns]
    if missing:
        raise ValueError(f"peer keys {missing} are not columns of reps ({reps.columns})")
    keys = list(keys)
    depths = range(len(keys), -1, -1)  # every key, then one fewer, ... then all reps
    # every depth's label of every rep in one select; the sizes and choices in Python (2,000
    # reps: well under a millisecond, where a group-by and two joins per depth took ~10 ms
    # of a filter change on a busy machine)
    labels = reps.select(
        (peer_group_expr(keys=keys[:depth]) if depth else pl.lit(ALL_REPS)).alias(f"d{depth}")
        for depth in depths
    )
    is_active = active.tolist()
    peer_group: list[str | None] = [None] * labels.height
    peer_basis: list[str | None] = [None] * labels.height
    todo = list(range(labels.height))  # the reps without a group yet
    for depth in depths:
        if not todo:  # usually after the first depth: the broader ones are not needed
            break
        level = labels[f"d{depth}"].to_list()
        sizes = Counter(label for label, on in zip(level, is_active, strict=True) if on)
        basis = " · ".join(keys[:depth]) if depth else ALL_REPS
        left = []
        for i in todo:
            # the broadest group is used whatever its size
            if depth == 0 or sizes[level[i]] >= min_reps:
                peer_group[i], peer_basis[i] = level[i], basis
            else:
                left.append(i)
        todo = left
    return peer_group, peer_basis


def _counts_of_reps(counts: pl.DataFrame, rep_ids: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """``successes`` and ``trials`` of ``counts`` for each of ``rep_ids`` (0 for a rep it has no
    row of), as int64: a left join of 2,000 reps by a dictionary, without a Polars query."""
    ids = counts.get_column("rep_id").cast(pl.String).to_list()
    place = {rep: i for i, rep in enumerate(ids) if rep is not None}
    if len(place) != len(ids) - ids.count(None):
        raise ValueError("counts has more than one row for a rep")
    row = np.array(
        [place.get(rep, -1) for rep in rep_ids.cast(pl.String).to_list()], dtype=np.int64
    )

    def column(name: str) -> np.ndarray:  # row -1 (no counts) reads the appended 0
        values = counts.get_column(name)
        numbers = values.to_numpy()
        if values.null_count():  # nulls count 0 (numpy has them as NaN)
            numbers = np.where(values.is_null().to_numpy(), 0, numbers)
        return np.append(numbers.astype(np.int64), 0)[row]

    return column("successes"), column("trials")


def peer_deviance(
    counts: pl.DataFrame,
    reps: pl.DataFrame,
    *,
    min_volume: int,
    peer_keys: Sequence[str] | None = None,
    min_peer_reps: int = 1,
    adjust_overdispersion: bool = True,
    huber_k: float = HUBER_K,
    fdr: float = FDR,
    rho: float | None = None,
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
        Build the peer groups from these reps columns (e.g. the settings' keys or a peer-group
        picker's choice); ``None`` keeps ``reps.peer_group`` as it is.
    min_peer_reps
        With ``peer_keys``: fewest reps with volume a group needs; a smaller group's reps are
        compared within a broader one (the last key dropped, down to all reps), named in
        ``peer_group`` and ``peer_basis``.
    adjust_overdispersion
        Widen the limits for real between-rep variation (see the module notes); ``False``
        gives binomial limits (around an uncertain centre) and no shrinkage.
    huber_k
        The cap on ``|z|`` in the over-dispersion estimate (see
        :func:`effortlens.deviance.funnel.overdispersion`).
    fdr
        The false-discovery rate of the flags (Benjamini–Hochberg over the eligible reps).
    rho
        A known over-dispersion to use instead of estimating it (e.g. from a longer
        history; the validity harness's oracle passes the true one).

    Returns
    -------
    pl.DataFrame
        One row per rep of ``reps``: ``rep_id``, ``rep_name`` (if in reps), ``peer_group``
        (the group the rep is compared within), ``peer_basis`` (its keys, e.g.
        ``segment · role``, ``segment``, ``all reps``), ``successes``, ``volume`` (trials),
        ``rate``, ``peer_rate`` (the centre: the other reps of the group), ``peer_rate_se``
        (its standard error), ``shrunk_rate``, ``z`` and ``p_value`` (two-sided, exact
        where the limits are; ``|z| > 3.09`` exactly when outside the 99.8% limits),
        ``q_value`` (Benjamini–Hochberg over the eligible reps), ``lower_95``, ``upper_95``,
        ``lower_998``, ``upper_998``, ``eligible`` (volume >= min_volume and peers to compare
        with), ``detectable`` (the 99.8% limits would catch a rep at half or double the
        centre: only then does "within the limits" say something), ``direction``
        (``positive``/``negative``/``none``) and ``overdispersion`` (the ``rho`` used, the
        same on every row), sorted by peer group and rep. Rates are null for reps with no
        volume.

        **Flag rule**: a rep is ``positive`` (``negative``) when it is eligible, its rate
        lies above (below) the 99.8% limits, and its q-value is at most ``fdr``.

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
    # the reps' units in numpy (a dictionary join, a lexsort): the Polars join, sort and
    # casts here were ~10 queries of a few hundred microseconds each on a busy machine
    names = ["rep_name"] if "rep_name" in reps.columns else []
    rep_ids = reps.get_column("rep_id")
    all_successes, all_volume = _counts_of_reps(counts, rep_ids)
    if peer_keys is not None:
        groups, bases = _comparison_groups(
            reps, all_volume > 0, keys=peer_keys, min_reps=min_peer_reps
        )
        group_series = pl.Series("peer_group", groups, dtype=pl.String)
    elif "peer_group" not in reps.columns:
        raise ValueError("reps has no peer_group column; pass peer_keys to build one")
    else:
        group_series = reps.get_column("peer_group")
        groups, bases = group_series.to_list(), ["peer group"] * reps.height
    # sorted by peer group (missing first), then rep, as Polars sorts them; a group's code
    # is its place among the labels (a missing group shares the empty label's)
    label = np.array(["" if g is None else str(g) for g in groups], dtype=str)
    _, group_code = np.unique(label, return_inverse=True)
    # (Polars' Series methods such as gather, fill_null and arg_sort each run a query:
    # numpy and indexing by a numpy array here, which do not)
    ids = rep_ids.to_list()
    ranked = (
        np.lexsort(
            (
                np.array(["" if r is None else str(r) for r in ids], dtype=str),
                [r is not None for r in ids],
            )
        )
        if rep_ids.dtype == pl.String
        else rep_ids.arg_sort().to_numpy()
    )
    rep_rank = np.empty(reps.height, dtype=np.int64)
    rep_rank[ranked] = np.arange(reps.height)
    present = np.array([g is not None for g in groups], dtype=bool)
    order = np.lexsort((rep_rank, group_code, present))
    volume, successes = all_volume[order], all_successes[order]
    if volume.size and (volume.max() >= 2**32 or successes.min() < 0):
        raise ValueError("counts must be non-negative and below 2**32")
    codes = group_code.reshape(-1)[order].astype(np.int64)
    units = {
        "rep_id": rep_ids[order],
        **({"rep_name": reps.get_column("rep_name")[order]} if names else {}),
        "peer_group": group_series[order].alias("peer_group"),
        "peer_basis": pl.Series("peer_basis", bases, dtype=pl.String)[order],
        "successes": pl.Series(successes, dtype=pl.UInt32),
        "volume": pl.Series(volume, dtype=pl.UInt32),
    }
    if rho is None and not adjust_overdispersion:
        rho = 0.0
    fit = fit_dispersion(successes, volume, codes, huber_k=huber_k, rho=rho)
    rho, robust = fit.rho, fit.robust_weights
    centres = peer_centres(successes, volume, codes, rho, robust_weights=robust)
    centre, centre_var = centres.loo, centres.loo_var
    testable = np.isfinite(centre) & (centre > 0) & (centre < 1) & (volume > 0)
    safe_centre = np.where(testable, centre, 0.5)
    safe_var = np.where(testable, centre_var, 0.0)
    limits, p = limits_and_p_values(
        successes, volume, safe_centre, rho, LIMIT_LEVELS, centre_var=safe_var
    )
    limits = {k: np.where(testable, v, np.nan) for k, v in limits.items()}
    p = np.where(testable, p, np.nan)
    rate = successes / np.maximum(volume, 1)
    z = np.where(testable, signed_z(p, rate, safe_centre), np.nan)
    eligible = testable & (volume >= min_volume)
    q = benjamini_hochberg(np.where(eligible, p, np.nan))
    lower, upper = limit_columns(LIMIT_LEVELS)[-2:]
    with np.errstate(invalid="ignore"):
        detectable = (
            eligible
            & (limits[upper] < np.minimum(2 * safe_centre, (1 + safe_centre) / 2))
            & (limits[lower] > safe_centre / 2)
        )
        # each rep's place in DIRECTIONS (positive, negative, none): the column is then
        # those three texts gathered (a Series of 2,000 numpy texts costs ~0.25 ms)
        direction = np.where(
            eligible & (q <= fdr) & (rate > limits[upper]),
            0,
            np.where(eligible & (q <= fdr) & (rate < limits[lower]), 1, 2),
        )
    if rho > 0:
        prior = 1 / rho - 1
        shrunk = (successes + safe_centre * prior) / (volume + prior)
    else:
        shrunk = safe_centre
    se = np.sqrt(safe_var)

    def column(values: np.ndarray, keep: np.ndarray) -> pl.Series:
        # NaN to null as the Series is made (a fill_nan after it is one more Polars query)
        return pl.Series(np.where(keep, values, np.nan), dtype=pl.Float64, nan_to_null=True)

    has = volume > 0
    return pl.DataFrame(  # one frame of the columns, in their order: no Polars query
        {
            **units,
            "rate": column(successes / np.maximum(volume, 1), has),
            "peer_rate": column(centre, np.isfinite(centre)),
            "peer_rate_se": column(se, np.isfinite(centre)),
            "shrunk_rate": column(shrunk, has & np.isfinite(centre)),
            "z": column(z, testable),
            "p_value": column(p, testable),
            "q_value": column(q, eligible),
            **{name: column(values, testable) for name, values in limits.items()},
            "eligible": pl.Series(eligible, dtype=pl.Boolean),
            "detectable": pl.Series(detectable, dtype=pl.Boolean),
            "direction": pl.Series(DIRECTIONS, dtype=pl.String)[direction],
            "overdispersion": pl.Series(np.full(volume.size, rho), dtype=pl.Float64),
        }
    )


def _rate_counts(enriched: Enriched, metric: str) -> pl.DataFrame:
    if metric == "response_rate":
        if getattr(enriched, "is_lazy", False):  # built facts: the roll-up has the same counts
            return daily_response_counts(enriched.daily)
        return response_counts(events(enriched, "activities"))
    if metric == "win_rate":
        return win_counts(enriched.tables["opportunities"])
    raise ValueError(f"metric must be one of {list(RATE_METRICS)}, got {metric!r}")


def daily_response_counts(daily: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """:func:`effortlens.measures.response_counts` per rep from the daily roll-up (its
    ``activities`` and ``responded`` per rep, day and activity type): the same counts without
    reading an event.

    Examples
    --------
    >>> import datetime as dt
    >>> daily = pl.DataFrame({"rep_id": ["r1", "r1"], "is_customer_facing": [True, False],
    ...                       "activities": [4, 3], "responded": [1, 2]},
    ...                      schema_overrides={"activities": pl.UInt32, "responded": pl.UInt32})
    >>> daily_response_counts(daily).row(0)
    ('r1', 1, 4)
    """
    return (
        daily.lazy()
        .filter(pl.col("is_customer_facing") & (pl.col("activities") > 0))
        .group_by("rep_id")
        .agg(
            successes=pl.col("responded").sum().cast(pl.UInt32),
            trials=pl.col("activities").sum().cast(pl.UInt32),
        )
        .sort("rep_id")
        .collect()
    )


@dataclass(frozen=True)
class ResponseCountIndex:
    """Each rep's customer-facing activities (``trials``) and responded ones (``successes``)
    summed from the first day of the data to each day: a period's counts per rep are two
    look-ups (:func:`response_counts_between`). Made once per load
    (:func:`response_count_index`); integers, so the counts are exact.
    """

    rep_ids: pl.Series
    first_day: dt.date
    successes: np.ndarray  # (reps, days + 1): column d sums the days before day d
    trials: np.ndarray


def response_count_index(
    daily: pl.DataFrame | pl.LazyFrame, *, rep_ids: pl.Series | Sequence[str] | None = None
) -> ResponseCountIndex:
    """:class:`ResponseCountIndex` of a daily roll-up (``rep_id``, ``day``,
    ``is_customer_facing``, ``activities``, ``responded``): at 10M activities 2,000 reps x
    730 days, 6 MB a count.

    ``rep_ids`` (the load's reps, e.g. ``enriched.reps["rep_id"]``) lets a roll-up sorted by
    rep (as a build writes it) be indexed without grouping its rows: each rep's rows are one
    run, found by binary search (or, for rep ids held as codes, where the code changes), and
    their days are summed by one ``bincount`` (at 10m ~0.1 s instead of ~0.65 s). The counts
    are the same either way; without ``rep_ids``, or when the roll-up is not grouped by rep or
    holds another rep, its rows are grouped.

    Examples
    --------
    >>> import datetime as dt
    >>> daily = pl.DataFrame({"rep_id": ["r1", "r1", "r2"], "is_customer_facing": [True] * 3,
    ...     "day": [dt.date(2025, 1, 6), dt.date(2025, 1, 8), dt.date(2025, 1, 7)],
    ...     "activities": [4, 3, 2], "responded": [1, 2, 0]})
    >>> index = response_count_index(daily)
    >>> response_counts_between(index, start=dt.date(2025, 1, 7)).rows()
    [('r1', 2, 3), ('r2', 0, 2)]
    >>> response_count_index(daily, rep_ids=["r1", "r2"]).trials.tolist()
    [[0, 4, 4, 7], [0, 0, 2, 2]]
    """
    if rep_ids is not None and isinstance(daily, pl.DataFrame):
        sorted_runs = _index_of_runs(daily, pl.Series(rep_ids, dtype=pl.String))
        if sorted_runs is not None:
            return sorted_runs
    rows = (
        daily.lazy()
        .filter(pl.col("is_customer_facing") & (pl.col("activities") > 0))
        .group_by("rep_id", "day")
        .agg(pl.col("responded").sum(), pl.col("activities").sum())
        .collect()
    )
    rep_ids = rows["rep_id"].cast(pl.String).unique().sort()
    if rows.height == 0:
        empty = np.zeros((0, 1), dtype=np.int64)
        return ResponseCountIndex(rep_ids, dt.date(1970, 1, 1), empty, empty)
    first_day, last_day = rows["day"].min(), rows["day"].max()
    days = (last_day - first_day).days + 1
    code = (
        rows.select(pl.col("rep_id").cast(pl.String).cast(pl.Enum(rep_ids)).to_physical())
        .to_series()
        .to_numpy()
        .astype(np.int64)
    )
    day = rows.select((pl.col("day") - first_day).dt.total_days()).to_series().to_numpy()
    cell = code * (days + 1) + day.astype(np.int64) + 1
    size = len(rep_ids) * (days + 1)

    def cumulated(column: str) -> np.ndarray:
        values = rows[column].to_numpy().astype(np.int64)
        summed = np.zeros(size, dtype=np.int64)
        summed[cell] = values  # one row per rep and day
        return np.cumsum(summed.reshape(len(rep_ids), days + 1), axis=1)

    return ResponseCountIndex(rep_ids, first_day, cumulated("responded"), cumulated("activities"))


def _counted(summed: np.ndarray) -> np.ndarray:
    """Running counts as int32 when they fit (half the memory), else int64."""
    return summed.astype(np.int32) if summed.size and summed.max() < 2**31 else summed


def _runs_of_text(rep: pl.Series, ids: pl.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """Each run of ``rep`` (text ids, sorted) as its rep's place in ``ids`` and its length;
    None when ``rep`` is not sorted or holds a rep not in ``ids``."""
    if not rep.is_sorted():
        return None
    first = rep.search_sorted(ids, side="left").to_numpy().astype(np.int64)
    runs = rep.search_sorted(ids, side="right").to_numpy().astype(np.int64) - first
    if int(runs.sum()) != rep.len():  # a rep of the roll-up that is not in rep_ids
        return None
    return np.arange(ids.len(), dtype=np.int64), runs


def _runs_of_codes(rep: pl.Series, ids: pl.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_runs_of_text` of rep ids held as codes (Categorical or Enum, as a page holding
    its roll-up's reps as codes does): the runs are where the code changes, read from the
    codes themselves (no text per row); None when a rep has two runs (the rows are not
    grouped by rep) or is not in ``ids``."""
    codes = rep.to_physical().to_numpy()
    starts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate([np.zeros(1, dtype=np.int64), starts])
    if np.unique(codes[starts]).size != starts.size:
        return None
    where = {rep_id: i for i, rep_id in enumerate(ids.to_list())}
    place = np.array(  # one text id per run, not per row
        [where.get(rep_id, -1) for rep_id in rep[starts].cast(pl.String).to_list()],
        dtype=np.int64,
    )
    if (place < 0).any():
        return None
    return place, np.diff(np.append(starts, codes.size))


def _index_of_runs(daily: pl.DataFrame, rep_ids: pl.Series) -> ResponseCountIndex | None:
    """:func:`response_count_index` of a roll-up whose rows lie in one run per rep (``rep_id``
    sorted text, or codes grouped by rep) and every one of whose reps is in ``rep_ids``;
    None when it is not so."""
    rep = daily.get_column("rep_id")
    coded = isinstance(rep.dtype, pl.Categorical | pl.Enum)
    if (
        daily.height == 0
        or not (rep.dtype == pl.String or coded)
        or rep.null_count()
        or daily.schema["day"] != pl.Date
    ):
        return None
    ids = rep_ids.drop_nulls().unique().sort()
    found = (_runs_of_codes if coded else _runs_of_text)(rep, ids)
    if found is None:
        return None
    place, runs = found
    day = daily.get_column("day").to_physical()
    first_day, last_day = int(day.min()), int(day.max())
    width = last_day - first_day + 2  # column d sums the days before day d
    cell = np.repeat(place * width, runs)
    cell += day.to_numpy().astype(np.int64) - (first_day - 1)
    kept = pl.col("is_customer_facing") & (pl.col("activities") > 0)
    weights = daily.select(
        successes=pl.when(kept).then(pl.col("responded")).otherwise(0),
        trials=pl.when(kept).then(pl.col("activities")).otherwise(0),
    )

    size = ids.len() * width
    summed = []
    for column in ("successes", "trials"):  # float sums of integers below 2**53: exact
        counted = np.bincount(cell, weights=weights[column].to_numpy(), minlength=size)
        counted = counted.astype(np.int64).reshape(ids.len(), width)
        summed.append(_counted(np.cumsum(counted, axis=1)))
    del cell, weights, counted
    index = ResponseCountIndex(
        ids, dt.date(1970, 1, 1) + dt.timedelta(days=first_day), summed[0], summed[1]
    )
    _return_freed_heap()
    return index


def _return_freed_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; nothing
    elsewhere). The index's numpy temporaries of 4-16 MB come from the heap, below glibc's
    mmap threshold once it has risen, and their pages stayed resident after they were freed:
    at 10m a page kernel held ~45 MB more one second after its first draw without this."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ``ldconfig``: 1-18 ms of
    wall a call, paid at every "what differs" before); None elsewhere."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def response_counts_between(
    index: ResponseCountIndex,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    reps: pl.Series | Sequence[str] | None = None,
) -> pl.DataFrame:
    """:func:`daily_response_counts` of the daily rows of ``reps`` (None: every rep) from
    ``start`` to ``end`` (inclusive; None: open), from the load's :class:`ResponseCountIndex`.

    Examples
    --------
    >>> response_counts_between(index, start=dt.date(2025, 1, 1), reps=["r1"])  # doctest: +SKIP
    """
    days = index.trials.shape[1] - 1

    def position(day: dt.date | None, default: int) -> int:
        if day is None:
            return default
        return min(max((day - index.first_day).days, 0), days)

    first = position(start, 0)
    last = position(None if end is None else end + dt.timedelta(days=1), days)
    last = max(last, first)
    successes = index.successes[:, last] - index.successes[:, first]
    trials = index.trials[:, last] - index.trials[:, first]
    keep = trials > 0
    if reps is not None:
        keep &= index.rep_ids.is_in(pl.Series(reps, dtype=pl.String).implode()).to_numpy()
    return pl.DataFrame(
        {
            "rep_id": index.rep_ids.filter(pl.Series(keep)),
            "successes": pl.Series(successes[keep], dtype=pl.UInt32),
            "trials": pl.Series(trials[keep], dtype=pl.UInt32),
        }
    )


def rep_deviance(
    enriched: Enriched,
    *,
    metric: str = "response_rate",
    min_volume: int | None = None,
    peer_keys: Sequence[str] | None = None,
    counts: pl.DataFrame | None = None,
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
        Other peer keys than the settings'. Peer groups with fewer than
        ``settings.min_peer_reps`` reps with volume fall back to a broader group (see
        :func:`peer_deviance`).
    counts
        The reps' ``rep_id``, ``successes`` and ``trials`` on ``metric`` when the caller has
        them already (e.g. :func:`response_counts_between`); default counted from
        ``enriched``.

    Examples
    --------
    >>> rep_deviance(enriched, metric="win_rate")  # doctest: +SKIP
    """
    if counts is None:
        counts = _rate_counts(enriched, metric)
    settings = enriched.settings
    if min_volume is None:
        min_volume = settings.min_volume if metric == "response_rate" else WIN_RATE_MIN_VOLUME
    keys = list(peer_keys if peer_keys is not None else settings.peer_keys)
    if not all(k in enriched.reps.columns for k in keys):  # groups given as they are
        return peer_deviance(counts, enriched.reps, min_volume=min_volume)
    return peer_deviance(
        counts,
        enriched.reps,
        min_volume=min_volume,
        peer_keys=keys,
        min_peer_reps=getattr(settings, "min_peer_reps", 1),
    )


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
        ``peer_rate``, ``volume``, ``z``, ``p_value``, ``q_value`` (Benjamini–Hochberg),
        ``lower_998``, ``upper_998``, ``peer_basis`` (the grouping compared within): positive
        deviants first, each direction by distance from the peer rate (largest ``|z|``).
        A deviant lies outside the 99.8% limits with a q-value of at most 5%.

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
        "q_value",
        "lower_998",
        "upper_998",
        "peer_basis",
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
    if not (deviance.get_column("direction") != "none").any():
        return deviance.head(0)  # no deviant: the empty frame without a query
    return deviance.filter(pl.col("direction") != "none").sort(
        pl.col("direction").replace_strict({"positive": 0, "negative": 1}),
        pl.col("z").abs(),
        descending=[False, True],
    )
