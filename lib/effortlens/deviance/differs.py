"""What differs: the practice mix of deviants against the non-deviant reps of their peer groups.

See :mod:`effortlens.deviance` for the measures (Cohen's *h*, Glass's *delta*).

Examples
--------
>>> from effortlens.deviance.differs import what_differs
>>> what_differs(enriched.activities, rep_deviance(enriched)).head(5)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np
import polars as pl

from effortlens.deviance.peers import _return_freed_heap
from effortlens.vocabulary import SEQUENCE_SEPARATOR, WEEKDAY_NAMES, hour_name, weekday_name

#: A follow-up within this many days of the rep's previous touch on the contact is "quick".
FOLLOW_UP_DAYS = 2.0


def _touches(activities: pl.DataFrame | pl.LazyFrame, *, keep: Sequence[str] = ()) -> pl.LazyFrame:
    """Customer-facing touches with the rep's previous touch on the same contact (``keep``:
    more columns to carry; with ``day``, also the day of that previous touch)."""
    on_contact = pl.col("contact_id").is_not_null()
    previous = ["rep_id", "contact_id"]
    history = {
        "previous_type": pl.when(on_contact).then(pl.col("activity_type").shift(1).over(previous)),
        "gap_days": pl.when(on_contact).then(
            (pl.col("ts") - pl.col("ts").shift(1).over(previous)).dt.total_seconds() / 86_400
        ),
    }
    if "day" in keep:
        history["previous_day"] = pl.when(on_contact).then(pl.col("day").shift(1).over(previous))
    columns = ["rep_id", "activity_id", "contact_id", "ts", "activity_type", "weekday", "hour"]
    return (
        activities.lazy()
        .filter(pl.col("is_customer_facing"))
        .select(*columns, *(c for c in keep if c not in columns))
        .sort("rep_id", "contact_id", "ts", "activity_id")
        .with_columns(**history)
    )


#: Columns of :func:`practice_facts`: a touch, the rep's previous touch on its contact, and
#: what a view filters on.
PRACTICE_COLUMNS: tuple[str, ...] = (
    "rep_id",
    "team",
    "segment",
    "role",
    "day",
    "activity_type",
    "weekday",
    "hour",
    "previous_type",
    "gap_days",
    "previous_day",
)


def practice_facts(activities: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """One row per customer-facing touch with the rep's previous touch on the same contact
    (its type, the days since it and its day): what :func:`what_differs` sorts every touch
    for, computed once over all the data (the build stores it, sorted by day).

    A view's filter then keeps rows (:func:`practice_in`) instead of sorting its events: a
    rep, team, segment or role filter keeps whole reps, whose histories are unchanged; a
    period keeps the touches of its days and forgets a previous touch made before it began,
    as the event path (which never sees that touch) does.

    Examples
    --------
    >>> practice = practice_facts(enriched.activities).collect()  # doctest: +SKIP
    >>> what_differs_in(practice_in(practice, Filter()), deviance)  # doctest: +SKIP
    """
    return (
        _touches(activities, keep=("team", "segment", "role", "day"))
        .select(PRACTICE_COLUMNS)
        .sort("day", maintain_order=True)
    )


#: The rep columns a page filters on (a rep's touches all carry the same values).
_REP_KEYS = ["rep_id", "team", "segment", "role"]


def practice_cells(practice: pl.DataFrame | pl.LazyFrame) -> dict[str, pl.LazyFrame]:
    """:func:`practice_facts` summed per rep (no day): what :func:`what_differs_in` counts of
    the touches, for a view without a period (a rep, team, segment or role filter keeps whole
    reps, whose sums are unchanged). The median days between touches reads the follow-ups
    by rep instead (:func:`practice_gaps`).

    Returns
    -------
    dict
        ``"shares"``: rep columns, ``feature``, ``level``, ``n`` (touches at that level);
        ``"sequences"``: rep columns, ``previous_type``, ``activity_type``, ``n``.

    Examples
    --------
    >>> cells = {k: v.collect() for k, v in practice_cells(practice).items()}  # doctest: +SKIP
    """
    lf = practice.lazy()
    reps = lf.select(_REP_KEYS).unique()
    return {
        "shares": _share_counts(lf).join(reps, on="rep_id", how="left", nulls_equal=True),
        "sequences": lf.filter(pl.col("previous_type").is_not_null())
        .group_by(*_REP_KEYS, "previous_type", "activity_type")
        .agg(n=pl.len().cast(pl.Float64)),
    }


def coded_practice_cells(practice: pl.DataFrame) -> dict[str, pl.DataFrame] | None:
    """:func:`practice_cells` of ``practice`` collected, its ``Enum`` columns spelled: the
    same rows (in another order), counted by ``numpy.bincount`` of one integer cell per touch
    instead of five group-bys, for practice facts whose ``rep_id``, ``activity_type`` and
    ``previous_type`` are ``Enum`` codes (a build's pass 1). None for any other frame
    (:func:`practice_cells` then counts it).

    Examples
    --------
    >>> cells = coded_practice_cells(practice)  # doctest: +SKIP
    >>> cells["shares"].columns  # doctest: +SKIP
    ['rep_id', 'feature', 'level', 'n', 'team', 'segment', 'role']
    """
    from effortlens.touch_build import _distinct_rows

    kinds = practice.schema.get("activity_type")
    if (
        not practice.height
        or not isinstance(practice.schema.get("rep_id"), pl.Enum)
        or not isinstance(kinds, pl.Enum)
        or practice.schema.get("previous_type") != kinds
    ):
        return None
    hour, weekday = practice["hour"], practice["weekday"]
    if any(v.null_count() < v.len() and not 0 <= v.min() <= v.max() < 256 for v in (hour, weekday)):
        return None

    def numbered(values: pl.Series, width: int) -> np.ndarray:
        """Each row's code (int64), null as ``width - 1``."""
        if values.null_count():
            values = values.fill_null(width - 1)
        return values.to_numpy().astype(np.int64)

    n_rep = practice.schema["rep_id"].categories.len() + 1
    n_type = kinds.categories.len() + 1
    rep = numbered(practice["rep_id"].to_physical(), n_rep)

    def counted(key: np.ndarray, width: int, keep: np.ndarray | None = None):
        """The (rep, key) cells held: their reps' codes, keys and counts (Float64)."""
        cell = rep * width
        cell += key
        n = np.bincount(cell if keep is None else cell[keep], minlength=n_rep * width)
        at = np.flatnonzero(n)
        return at // width, at % width, pl.Series("n", n[at], pl.Float64)

    def spelled(column: str, code: np.ndarray, width: int) -> pl.Series:
        """Codes of ``column``'s categories (``width - 1``: null) as text."""
        at = pl.Series(code)
        at = pl.select(pl.when(at < width - 1).then(at)).to_series()
        return practice.schema[column].categories.gather(at).rename(column)

    # the rep columns as practice_cells joins them (one row per distinct rep, team, ...)
    reps = _distinct_rows(practice, _REP_KEYS).with_columns(pl.col(pl.Enum).cast(pl.String))
    gap = practice["gap_days"]
    parts = []
    for feature, key, width, keep in (
        (
            "activity_type_share",
            numbered(practice["activity_type"].to_physical(), n_type),
            n_type,
            None,
        ),
        ("weekday_share", numbered(weekday.cast(pl.Int64), 256), 256, None),
        ("hour_share", numbered(hour.cast(pl.Int64), 256), 256, None),
        (
            "follow_up_share",
            (gap <= FOLLOW_UP_DAYS).fill_null(False).to_numpy().astype(np.int64),
            2,
            gap.is_not_null().to_numpy(),
        ),
    ):
        rep_code, level, n = counted(key, width, keep)
        if feature == "activity_type_share":
            named = spelled("activity_type", level, n_type).rename("level")
        elif feature == "follow_up_share":
            within, after = f"within {FOLLOW_UP_DAYS:g} days", f"after {FOLLOW_UP_DAYS:g} days"
            named = pl.Series("level", np.where(level == 1, within, after), pl.String)
        else:
            raw = pl.Series("level", level)
            raw = pl.select(pl.when(raw < width - 1).then(raw)).to_series().rename("level")
            name = weekday_name if feature == "weekday_share" else hour_name
            named = raw.cast(practice.schema[feature.removesuffix("_share")]).to_frame()
            named = named.select(name("level")).to_series()
        parts.append(
            pl.DataFrame(
                [
                    spelled("rep_id", rep_code, n_rep),
                    pl.Series("feature", [feature] * len(n), pl.String),
                    named,
                    n,
                ]
            )
        )
    shares = pl.concat(parts).join(reps, on="rep_id", how="left", nulls_equal=True)
    previous = numbered(practice["previous_type"].to_physical(), n_type)
    kind = numbered(practice["activity_type"].to_physical(), n_type)
    held = previous < n_type - 1
    rep_code, pair, n = counted(previous * n_type + kind, n_type * n_type, held)
    sequences = pl.DataFrame(
        [
            spelled("rep_id", rep_code, n_rep),
            spelled("previous_type", pair // n_type, n_type),
            spelled("activity_type", pair % n_type, n_type),
            n,
        ]
    ).join(reps, on="rep_id", how="left", nulls_equal=True)
    return {
        "shares": shares,
        "sequences": sequences.select(*_REP_KEYS, "previous_type", "activity_type", "n"),
    }


#: Seconds in a day: a follow-up's ``gap_days`` is its whole seconds over this.
_DAY_SECONDS = 86_400


def _cells_of(sides: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The (peer group, weight, side) cells of ``sides`` numbered in order of appearance, and
    each rep's cell (``rep_id`` as text, ``cell``)."""
    cell_of = (
        sides.select("peer_group", "weight", "side")
        .unique(maintain_order=True)
        .with_row_index("cell")
    )
    by_rep = sides.join(cell_of, on=["peer_group", "weight", "side"]).select(
        pl.col("rep_id").cast(pl.String), "cell"
    )
    return cell_of, by_rep


def _median_days(values: np.ndarray) -> float:
    """The median of ``values`` (seconds, partitioned in place) in days, as Polars' median of
    the days: the mean of the two middle values when their count is even.

    Examples
    --------
    >>> odd, even = np.array([3, 1, 2]), np.array([4.0, 1.0])
    >>> _median_days(odd * _DAY_SECONDS), _median_days(even * _DAY_SECONDS)
    (2.0, 2.5)
    """
    n = len(values)
    middle = (n - 1) // 2
    if n % 2:
        values.partition(middle)
        return float(values[middle] / _DAY_SECONDS)
    values.partition([middle, middle + 1])
    low, high = values[middle] / _DAY_SECONDS, values[middle + 1] / _DAY_SECONDS
    return float(low + (high - low) * 0.5)


def practice_gaps(practice: pl.DataFrame | pl.LazyFrame) -> dict[str, pl.LazyFrame]:
    """:func:`practice_facts`' follow-ups by rep, for the median days between touches of a
    view without a period (whole reps): a kernel then reads one narrow integer column instead
    of every follow-up's rep and days.

    Returns
    -------
    dict
        ``"gaps"``: ``rep_id`` and ``gap_seconds`` (the follow-up's ``gap_days`` in whole
        seconds, which it is exactly: ``gap_days = gap_seconds / 86400``); the build sorts it
        by rep, then gap (:func:`sorted_gaps`). ``"gap_reps"``: rep columns,
        ``follow_ups``, ``log_gap_sum`` and ``log_gap_squares`` (sums of ``log1p(gap_days)``
        and of its square), one row per rep: in rep order, the reps' runs of ``"gaps"``.

    Examples
    --------
    >>> import polars as pl
    >>> practice = pl.DataFrame({"rep_id": ["a", "a", "b"], "team": "T", "segment": "S",
    ...     "role": "R", "gap_days": [None, 0.5, 2.0]})
    >>> sorted_gaps(practice_gaps(practice)["gaps"])["gap_seconds"].to_list()
    [43200, 172800]
    """
    lf = practice.lazy().filter(pl.col("gap_days").is_not_null())
    log = pl.col("gap_days").log1p()
    return {
        "gaps": lf.select("rep_id", gap_seconds=(pl.col("gap_days") * _DAY_SECONDS).round()),
        "gap_reps": lf.group_by(_REP_KEYS).agg(
            follow_ups=pl.len().cast(pl.UInt32),
            log_gap_sum=log.sum(),
            log_gap_squares=(log * log).sum(),
        ),
    }


def coded_practice_gaps(practice: pl.DataFrame) -> dict[str, pl.DataFrame] | None:
    """:func:`practice_gaps` of ``practice`` collected, for practice facts whose rep columns
    are ``Enum`` codes (a build's pass 1): ``"gap_reps"`` summed by ``numpy.bincount`` of
    each follow-up's rep code in row order, one row per rep in the reps' order, so the sums
    are the same in every run (a Polars group-by's float sums are not: their last bits
    differ from run to run, even on one thread); the sums equal the group-by's but for the
    order they are added in. ``"gaps"`` as :func:`practice_gaps`. None (:func:`practice_gaps`
    then) when a rep column is not an ``Enum`` or a rep has two teams, segments or roles.

    Examples
    --------
    >>> reps = pl.Enum(["a", "b"])
    >>> practice = pl.DataFrame({"rep_id": pl.Series(["b", "a", "b"], dtype=reps),
    ...     "team": pl.Series(["T"] * 3, dtype=pl.Enum(["T"])),
    ...     "segment": pl.Series(["S"] * 3, dtype=pl.Enum(["S"])),
    ...     "role": pl.Series(["R"] * 3, dtype=pl.Enum(["R"])), "gap_days": [1.0, None, 3.0]})
    >>> coded_practice_gaps(practice)["gap_reps"].select("rep_id", "follow_ups").rows()
    [('b', 2)]
    """
    types = [practice.schema.get(c) for c in _REP_KEYS]
    if not all(isinstance(t, pl.Enum) for t in types) or "gap_days" not in practice.columns:
        return None
    gap = practice["gap_days"]
    held = gap.is_not_null()
    widths = [t.categories.len() + 1 for t in types]  # a null as the last code
    codes = [
        practice[c].filter(held).to_physical().fill_null(w - 1).to_numpy().astype(np.int64)
        for c, w in zip(_REP_KEYS, widths, strict=True)
    ]
    rep = codes[0]
    of_rep = []  # each rep's team, segment and role (codes), one a rep
    for code, width in zip(codes[1:], widths[1:], strict=True):
        table = np.full(widths[0], width - 1, np.int64)
        table[rep] = code
        if not np.array_equal(table[rep], code):
            return None
        of_rep.append(table)
    log = gap.drop_nulls().log1p().to_numpy()
    n = np.bincount(rep, minlength=widths[0])
    at = np.flatnonzero(n)

    def spelled(column: str, code: np.ndarray, width: int) -> pl.Series:
        """Codes of ``column``'s ``Enum`` (``width - 1``: null) as that ``Enum``."""
        physical = pl.Series(column, code)
        physical = pl.select(pl.when(physical < width - 1).then(physical)).to_series()
        return physical.cast(pl.UInt32).cat.to(practice.schema[column])

    gap_reps = pl.DataFrame(
        [
            spelled("rep_id", at, widths[0]),
            *(
                spelled(c, table[at], w)
                for c, table, w in zip(_REP_KEYS[1:], of_rep, widths[1:], strict=True)
            ),
            pl.Series("follow_ups", n[at], pl.UInt32),
            # (Float64 with no follow-up too: numpy's bincount then gives integers)
            pl.Series("log_gap_sum", np.bincount(rep, log, widths[0])[at], pl.Float64),
            pl.Series("log_gap_squares", np.bincount(rep, log * log, widths[0])[at], pl.Float64),
        ]
    )
    # practice_gaps' frames are lazy: only its "gaps" is collected here; its "gap_reps"
    # group-by, which the bincounts above replace, is never run
    return {"gaps": practice_gaps(practice)["gaps"].collect(), "gap_reps": gap_reps}


def sorted_gaps(gaps: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """``"gaps"`` of :func:`practice_gaps` as a build writes it: sorted by rep, then gap, the
    seconds as 32-bit integers when they fit (else 64-bit).

    Examples
    --------
    >>> sorted_gaps(practice_gaps(practice)["gaps"])  # doctest: +SKIP
    """
    frame = (
        gaps.lazy()
        .with_columns(pl.col("rep_id").cast(pl.String))
        .sort("rep_id", "gap_seconds")
        .collect(engine="streaming")
    )
    top = frame["gap_seconds"].max()
    narrow = pl.Int32 if top is None or top < 2**31 else pl.Int64
    return frame.with_columns(pl.col("gap_seconds").cast(narrow))


#: Bins of the follow-ups' seconds per doubling in :func:`write_gap_runs` (each ~2% wide): at
#: 10m the median's bin holds ~0.5% of a cell's follow-ups.
GAP_BINS_PER_OCTAVE = 32


def gap_bin_edges() -> np.ndarray:
    """The seconds that bound the bins of :func:`write_gap_runs`: ``2 ** (i / 32)`` rounded
    down, up to 2**32 (~136 years), each once (int64).

    Examples
    --------
    >>> gap_bin_edges()[:4].tolist(), int(gap_bin_edges()[-1]) == 2**32
    ([1, 2, 3, 4], True)
    """
    steps = np.arange(32 * GAP_BINS_PER_OCTAVE + 1) / GAP_BINS_PER_OCTAVE
    return np.unique(np.floor(np.exp2(steps)).astype(np.int64))


#: The files of :func:`write_gap_runs` under its folder.
_GAP_RUN_FILES = ("seconds.npy", "bins.npy", "edges.npy", "rep.keys.parquet")


def write_gap_runs(gaps: pl.DataFrame, folder) -> int:
    """Write :func:`sorted_gaps` (sorted by rep, then gap) for a kernel to map: the median of
    any reps' follow-ups is then found from a few of their rows, without reading the column.

    - ``seconds.npy``: ``gap_seconds`` in the frame's order (each rep's follow-ups one run,
      sorted);
    - ``rep.keys.parquet``: a row per run in that order: ``rep_id``, ``start`` (its first
      row in ``seconds.npy``) and ``follow_ups``;
    - ``edges.npy``: :func:`gap_bin_edges`;
    - ``bins.npy``: uint32, a row per run and a column per edge and one more: how many of the
      rep's follow-ups lie below the edge (then all of them). A cell's rows summed say which
      bin holds its median, and each rep's part of that bin is one slice of its run.

    Returns the number of follow-ups written.

    Examples
    --------
    >>> write_gap_runs(sorted_gaps(practice_gaps(practice)["gaps"]), build / "practice_gap_runs")
    ... # doctest: +SKIP
    8033106
    """
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    runs = gaps.select(pl.col("rep_id").cast(pl.String).rle()).unnest("rep_id")
    lengths = runs.get_column("len").to_numpy().astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    pl.DataFrame(
        {
            "rep_id": runs.get_column("value"),
            "start": pl.Series(starts, dtype=pl.Int64),
            "follow_ups": pl.Series(lengths, dtype=pl.Int64),
        }
    ).write_parquet(folder / "rep.keys.parquet")
    column = gaps.get_column("gap_seconds")
    rows = column.len()
    with open(folder / "seconds.npy", "wb") as out:
        dtype = np.dtype(np.int64 if column.dtype == pl.Int64 else np.int32)
        header = {"descr": np.lib.format.dtype_to_descr(dtype)}
        header |= {"fortran_order": False, "shape": (rows,)}
        np.lib.format.write_array_header_1_0(out, header)
        for at in range(0, rows, 1 << 22):  # a slice at a time: no copy of the whole column
            out.write(column.slice(at, 1 << 22).to_numpy().astype(dtype, copy=False).data)
    edges = gap_bin_edges()
    np.save(folder / "edges.npy", edges)
    bins = np.empty((lengths.size, edges.size + 1), dtype=np.uint32)
    for row, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
        # a rep's run from the frame (the file just written, mapped, would bring its every
        # page into the resident set: 320 MB at 100M)
        run = column.slice(start, length).to_numpy()
        bins[row, :-1] = np.searchsorted(run, edges, side="left")
        bins[row, -1] = length
    np.save(folder / "bins.npy", bins)
    return rows


def write_gap_key_runs(keys: np.ndarray, names: pl.Series, folder) -> int:
    """:func:`write_gap_runs` of the follow-ups ``keys`` (sorted int64: the rep's rank among
    ``names``, the reps' ids sorted, above the seconds, 0..2**31), without a frame: each
    rep's run is found by a search for its rank, each run's bins by searches in its keys,
    and the seconds written a slice at a time. The same files as of the frame
    (``rep_id`` ``names[key >> 32]``, ``gap_seconds`` ``key & 0xFFFFFFFF`` as Int32).

    Examples
    --------
    >>> keys = np.array([(0 << 32) | 5, (1 << 32) | 2, (1 << 32) | 9])
    >>> write_gap_key_runs(keys, pl.Series(["a", "b"]), build / "practice_gap_runs")
    ... # doctest: +SKIP
    3
    """
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.searchsorted(keys, np.arange(len(names) + 1, dtype=np.int64) << 32)
    lengths = np.diff(bounds)
    present = np.flatnonzero(lengths)
    starts, lengths = bounds[present], lengths[present]
    pl.DataFrame(
        {
            "rep_id": names.cast(pl.String).gather(pl.Series(present)),
            "start": pl.Series(starts, dtype=pl.Int64),
            "follow_ups": pl.Series(lengths, dtype=pl.Int64),
        }
    ).write_parquet(folder / "rep.keys.parquet")
    rows = len(keys)
    with open(folder / "seconds.npy", "wb") as out:
        dtype = np.dtype(np.int32)
        header = {"descr": np.lib.format.dtype_to_descr(dtype)}
        header |= {"fortran_order": False, "shape": (rows,)}
        np.lib.format.write_array_header_1_0(out, header)
        for at in range(0, rows, 1 << 22):  # a slice at a time
            out.write((keys[at : at + (1 << 22)] & 0xFFFFFFFF).astype(dtype).data)
    edges = gap_bin_edges()
    np.save(folder / "edges.npy", edges)
    bins = np.empty((lengths.size, edges.size + 1), dtype=np.uint32)
    for row, (rank, start, length) in enumerate(
        zip(present.tolist(), starts.tolist(), lengths.tolist(), strict=True)
    ):
        run = keys[start : start + length]  # a view: the rank above each value's seconds
        bins[row, :-1] = np.searchsorted(run, (rank << 32) + edges, side="left")
        bins[row, -1] = length
    np.save(folder / "bins.npy", bins)
    return rows


class PracticeGapRuns:
    """The follow-ups' seconds by rep of a build (:func:`write_gap_runs`): the median of a
    (peer group, side) cell's follow-ups reads the cell's reps' rows of ``bins.npy``
    (mapped) and their values in the median's bin, a slice of ``seconds.npy`` per rep read
    from the file (not mapped: a mapped page brings its neighbours into the resident set;
    at 100M the file is ~320 MB). At 10m, a role's ~1,000 reps' 4M follow-ups: ~20k values
    read instead of the 8M of the column.

    Examples
    --------
    >>> runs = PracticeGapRuns(build / "practice_gap_runs")  # doctest: +SKIP
    >>> runs.median_days(runs.rows_of(["R0001", "R0002"]))  # doctest: +SKIP
    3.1
    """

    def __init__(self, folder) -> None:
        """Map ``bins.npy`` under ``folder``, read its rep keys and the seconds' header."""
        from pathlib import Path

        folder = Path(folder)
        self.path = folder / "seconds.npy"
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            (rows,), _, self.seconds_dtype = header(f)
            self._offset = f.tell()  # of the first value
        self.bins = np.load(folder / "bins.npy", mmap_mode="r")
        self.edges = np.load(folder / "edges.npy")
        #: rep_id, start, follow_ups: a row per rep (its row of ``bins``)
        self.reps = pl.read_parquet(folder / "rep.keys.parquet")
        self._starts = self.reps.get_column("start").to_numpy()
        if self.bins.shape != (self.reps.height, self.edges.size + 1) or (
            int(self.reps.get_column("follow_ups").sum()) != rows
        ):
            raise ValueError(f"{folder}: the gap runs' files do not agree")

    def rows_of(self, rep_ids: pl.Series | Sequence[str]) -> np.ndarray:
        """The rows (of ``bins`` and :attr:`reps`) of ``rep_ids``, those with follow-ups."""
        ids = pl.Series("rep_id", rep_ids, dtype=pl.String)
        found = self.reps.with_row_index("row").join(ids.to_frame(), on="rep_id", how="semi")
        return found.get_column("row").to_numpy().astype(np.int64)

    def _bin_values(self, rows: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        # each rep's values from its run's position low to high, read into one array
        import os

        counts = high - low
        held = counts > 0
        width = self.seconds_dtype.itemsize
        first = (self._offset + (self._starts[rows] + low)[held] * width).tolist()
        sizes = (counts[held] * width).tolist()
        out = np.empty(int(counts[held].sum()), dtype=self.seconds_dtype)
        view, at = memoryview(out).cast("B"), 0
        with open(self.path, "rb", buffering=0) as f:
            fd = f.fileno()
            for offset, size in zip(first, sizes, strict=True):
                if os.preadv(fd, [view[at : at + size]], offset) != size:
                    raise ValueError(f"{self.path}: shorter than its rep keys say")
                at += size
        return out

    def median_days(self, rows: np.ndarray) -> float | None:
        """The median of the follow-ups of ``rows`` (:meth:`rows_of`) in days, as
        :func:`_median_days` of them all; None when they have none."""
        rows = np.sort(rows)
        below = self.bins[rows]  # (reps, edges + 1): the mapped rows, read in file order
        summed = below.sum(axis=0, dtype=np.int64)  # the cell's follow-ups below each edge
        n = int(summed[-1]) if summed.size else 0
        if n == 0:
            return None
        middle = (n - 1) // 2
        ranks = [middle] if n % 2 else [middle, middle + 1]
        values, seen = [], None
        for rank in ranks:
            j = int(np.searchsorted(summed, rank, side="right"))  # the bin holding it
            if seen is None or seen[0] != j:
                low = below[:, j - 1] if j > 0 else np.zeros(rows.size, dtype=np.uint32)
                high = below[:, j]
                seen = (j, self._bin_values(rows, low.astype(np.int64), high.astype(np.int64)))
            before = int(summed[j - 1]) if j > 0 else 0
            values.append(np.partition(seen[1], rank - before)[rank - before] / _DAY_SECONDS)
        if n % 2:
            return float(values[0])
        low, high = values
        return float(low + (high - low) * 0.5)


def practice_gap_runs_of(enriched) -> PracticeGapRuns | None:
    """The :class:`PracticeGapRuns` of the build ``enriched`` was read from, or None (facts
    enriched in memory, or a build written before them: the kernel then reads the compared
    reps' runs of the gap facts).

    Examples
    --------
    >>> practice_gap_runs_of(open_build(folder).enriched)  # doctest: +SKIP
    <effortlens.deviance.differs.PracticeGapRuns object at ...>
    """
    from effortlens.facts import PRACTICE_GAP_RUNS, read_once

    return read_once(enriched, PRACTICE_GAP_RUNS, _GAP_RUN_FILES, PracticeGapRuns)


def practice_in(practice: pl.DataFrame | pl.LazyFrame, flt) -> pl.LazyFrame | None:
    """The touches of :func:`practice_facts` that a view filtered by ``flt`` (an
    :class:`effortlens.filters.Filter`) sees, with the previous touch it sees; ``None`` when
    the filter names activity types (the previous touch of a type is then another touch:
    only the events can say which).

    Examples
    --------
    >>> practice_in(practice, Filter(teams=("North",)))  # doctest: +SKIP
    """
    from effortlens.filters import filter_frame

    if flt.activity_types:
        return None
    kept = filter_frame(practice.lazy(), flt)
    if flt.start is None:
        return kept
    before = pl.col("previous_day") < flt.start  # outside the period: the view never sees it
    return kept.with_columns(
        pl.when(~before).then(pl.col(c)).alias(c) for c in ("previous_type", "gap_days")
    )


def _share_counts(touches: pl.LazyFrame) -> pl.LazyFrame:
    """Per ``rep_id`` (a rep, or on a period's path the (peer group, side) cell that stands in
    its place), feature and level: touches at that level (the level's share is of the feature's
    total). Follow-ups carry both levels so the share has its base; only one is reported.
    Touches are grouped by the raw key (a weekday or hour number, within the follow-up days or
    not) and only the groups are named: one name per group instead of one per touch."""
    within = pl.when(pl.col("level")).then(pl.lit(f"within {FOLLOW_UP_DAYS:g} days"))
    follow_up = within.otherwise(pl.lit(f"after {FOLLOW_UP_DAYS:g} days"))
    families = [
        ("activity_type_share", pl.col("activity_type"), None, None),
        ("weekday_share", pl.col("weekday"), weekday_name("level"), None),
        ("hour_share", pl.col("hour"), hour_name("level"), None),
        (
            "follow_up_share",
            pl.col("gap_days") <= FOLLOW_UP_DAYS,
            follow_up,
            pl.col("gap_days").is_not_null(),
        ),
    ]
    parts = []
    for feature, key, name, keep in families:
        rows = touches if keep is None else touches.filter(keep)
        counts = rows.group_by("rep_id", key.alias("level")).agg(n=pl.len().cast(pl.Float64))
        if name is not None:
            counts = counts.with_columns(name.alias("level"))
        parts.append(counts.with_columns(feature=pl.lit(feature)))
    return pl.concat(parts, how="vertical_relaxed").select("rep_id", "feature", "level", "n")


#: The columns of the touches that :func:`what_differs_in` counts.
_COUNTED = ["rep_id", "activity_type", "weekday", "hour", "previous_type", "gap_days"]

#: :func:`what_differs_in` reads the compared reps' touches once into memory when they are at
#: most this share of the reps (else it counts them where they lie, one scan per count).
READ_ONCE_AT_MOST = 0.5


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
    counted = pl.col("n").sum() if "n" in touches.collect_schema().names() else pl.len()
    # counted per rep_id first (a rep, or a period's (peer group, side) cell): the join with
    # the sides then meets one row per rep_id and transition instead of one per touch (whole
    # numbers: the same sums)
    per_rep = (
        touches.filter(pl.col("previous_type").is_not_null())
        .group_by("rep_id", "previous_type", "activity_type")
        .agg(n=counted.cast(pl.Float64))
    )
    pairs = (
        per_rep.join(sides, on="rep_id")
        .group_by("peer_group", "weight", "side", "previous_type", "activity_type")
        .agg(n=pl.col("n").sum())
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
            level=pl.concat_str("previous_type", "activity_type", separator=SEQUENCE_SEPARATOR),
            deviant_value="deviant_lift",
            peer_value="peer_lift",
            deviant_base="deviant_base",
            peer_base="peer_base",
            effect_size=pl.col("deviant_beyond") - pl.col("peer_beyond"),
            measure=pl.lit("cohen_h_beyond_mix"),
        )
    )


def _gap_cells(touches: pl.LazyFrame, sides: pl.LazyFrame) -> pl.LazyFrame:
    """Per (peer group, weight, side): the follow-ups' median days, count and the mean and
    variance of ``log1p(days)``."""
    # each follow-up carries one small integer, its (peer group, side), not the labels: at
    # 10m the 8M follow-ups would otherwise carry two strings and a float each (~0.3 GB)
    cells = sides.select("peer_group", "weight", "side").unique().with_row_index("cell")
    return (
        touches.filter(pl.col("gap_days").is_not_null())
        .select("rep_id", "gap_days")
        .join(
            sides.join(cells, on=["peer_group", "weight", "side"]).select("rep_id", "cell"),
            on="rep_id",
        )
        .group_by("cell")
        .agg(
            value=pl.col("gap_days").median(),
            base=pl.len().cast(pl.Float64),
            mean=pl.col("gap_days").log1p().mean(),
            var=pl.col("gap_days").log1p().var(),
        )
        .join(cells, on="cell")
    )


def _column_in_slices(
    frame: pl.DataFrame | pl.LazyFrame, column: str, *, rows: int, slice_rows: int = 1 << 20
) -> np.ndarray:
    """``column`` of ``frame`` (``rows`` rows) as one numpy array, read ``slice_rows`` at a
    time: the array is numpy's (mapped pages, returned when it is freed) and Polars holds one
    slice at a time (its allocator keeps freed pages resident for a while: at 10m the whole
    column, 32 MB, was still resident when the first chart was drawn)."""
    scan = frame.lazy().select(column)
    out = np.empty(0, dtype=np.int32)
    filled = 0
    while filled < rows:
        part = scan.slice(filled, slice_rows).collect().to_series().to_numpy()
        if part.size == 0 or filled + part.size > rows:
            raise ValueError(f"{column}: the facts hold another number of rows than {rows}")
        if filled == 0:
            out = np.empty(rows, dtype=part.dtype)
        out[filled : filled + part.size] = part
        filled += part.size
        del part
    return out


#: :func:`_compared_runs` joins two compared reps' runs of the follow-ups into one read when
#: at most this many rows lie between them (a read decodes whole row groups, of 262,144 rows
#: in a build: a row group is decoded once).
_RUN_GAP = 1 << 18

#: :func:`_compared_runs` reads the whole column when its reads would cover more than this
#: share of it (one pass in slices instead of many reads).
_RUNS_AT_MOST = 0.5


def _compared_runs(
    frame: pl.DataFrame | pl.LazyFrame, starts: np.ndarray, counts: np.ndarray, *, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """The compared reps' runs of ``frame``'s ``gap_seconds`` (``rows`` rows; a rep's run:
    ``counts`` rows from ``starts``): the rows read and where each run starts in them. Runs
    close together are read as one (:data:`_RUN_GAP`); the whole column when the reads would
    cover most of it (:data:`_RUNS_AT_MOST`, :func:`_column_in_slices`). At 10m a team with a
    deviant compares ~7 reps, ~32k of 8M follow-ups: two row groups decoded, not 31."""
    held = counts > 0
    order = np.argsort(starts[held], kind="stable")
    first, size = starts[held][order], counts[held][order]
    if first.size == 0:
        return np.empty(0, dtype=np.int32), starts
    # a new read where a run begins more than _RUN_GAP rows after the previous ones end
    ends = np.maximum.accumulate(first + size)
    new = np.ones(first.size, dtype=bool)
    new[1:] = first[1:] - ends[:-1] > _RUN_GAP
    lows = first[new]
    highs = np.maximum.reduceat(first + size, np.flatnonzero(new))
    if int((highs - lows).sum()) > _RUNS_AT_MOST * rows:
        return _column_in_slices(frame, "gap_seconds", rows=rows), starts
    scan = frame.lazy().select("gap_seconds")
    # one query at a time: pl.collect_all of 10 such slices of a 100M-sized file cost ~80
    # CPU ms against ~6 for the same slices collected one after another
    values = [
        scan.slice(int(lo), int(hi - lo)).collect().to_series().to_numpy()
        for lo, hi in zip(lows, highs, strict=True)
    ]
    if any(v.size != hi - lo for v, lo, hi in zip(values, lows, highs, strict=True)):
        raise ValueError(f"gap_seconds: the facts hold another number of rows than {rows}")
    # each run's start in the reads: its read's place in them plus its offset in its read
    offsets = np.cumsum(highs - lows) - (highs - lows)
    read_of = np.searchsorted(lows, starts, side="right") - 1
    moved = np.where(counts > 0, offsets[read_of] + starts - lows[read_of], 0)
    return np.concatenate(values), moved


def _gap_cells_of_reps(gaps: dict[str, pl.LazyFrame], sides: pl.DataFrame) -> pl.LazyFrame:
    """:func:`_gap_cells` from :func:`practice_gaps` as a build wrote them (``"gaps"``,
    ``"gap_reps"``; the latter filtered as the view's reps are): each cell's median is
    selected from its reps' runs of the seconds column, its moments summed from the reps'
    sums. With ``"runs"`` (the build's :class:`PracticeGapRuns`) each median is found from
    the cell's reps' bin counts and the values of its bin; else the compared reps' runs of the
    column are read, used and let go here (:func:`_compared_runs`; at 10m the whole column is
    8M 32-bit integers: a role's or a segment's reps read most of it)."""
    follow_ups = pl.col("follow_ups").cast(pl.Int64)
    reps = (
        gaps["all_gap_reps"]
        .lazy()
        .select("rep_id", "follow_ups", "log_gap_sum", "log_gap_squares")
        .with_columns(start=follow_ups.cum_sum() - follow_ups)  # the rep's run, in file order
        .join(gaps["gap_reps"].lazy().select("rep_id"), on="rep_id", how="semi")
    )
    cells = sides.select("peer_group", "weight", "side").unique(maintain_order=True)
    member = reps.join(
        sides.lazy().select("rep_id", "peer_group", "weight", "side"), on="rep_id"
    ).collect()
    runs = gaps.get("runs")  # a build's PracticeGapRuns: each median from a few of its rows
    if runs is None:
        total = int(gaps["all_gap_reps"].lazy().select(follow_ups.sum()).collect().item() or 0)
        seconds, moved = _compared_runs(
            gaps["gaps"],
            member["start"].to_numpy().astype(np.int64),
            member["follow_ups"].to_numpy().astype(np.int64),
            rows=total,
        )
        member = member.with_columns(start=pl.Series(moved))
    rows = []
    for peer_group, weight, side in cells.iter_rows():
        part = member.filter(
            (pl.col("peer_group") == peer_group)
            & (pl.col("weight") == weight)
            & (pl.col("side") == side)
        )
        counts = part["follow_ups"].to_numpy().astype(np.int64)
        n = int(counts.sum())
        if n == 0:
            continue
        if runs is not None:
            value = runs.median_days(runs.rows_of(part.get_column("rep_id")))
        else:
            starts = part["start"].to_numpy().astype(np.int64)
            # the cell's reps' runs of the column, one copy (no index arrays of 8 bytes a value)
            values = np.concatenate(
                [seconds[s : s + c] for s, c in zip(starts, counts, strict=True)]
            )
            value = _median_days(values)
            del values
        total, squares = float(part["log_gap_sum"].sum()), float(part["log_gap_squares"].sum())
        mean = total / n
        var = (squares - n * mean * mean) / (n - 1) if n > 1 else None
        rows.append((peer_group, weight, side, float(value), float(n), mean, var))
    if runs is None:
        del seconds
        _return_freed_heap()  # the copies' pages, kept by glibc once its mmap threshold has risen
    schema = {
        "peer_group": sides.schema["peer_group"],
        "weight": pl.Float64,
        "side": pl.String,
        "value": pl.Float64,
        "base": pl.Float64,
        "mean": pl.Float64,
        "var": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row").lazy()


def _gap_effects(gaps: pl.LazyFrame, *, min_support: int) -> pl.LazyFrame:
    """The median days between touches, deviants against peers, from :func:`_gap_cells`."""
    per_side = {
        side: {k: _by_side(pl.col(k), side).first() for k in ("value", "base", "mean", "var")}
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
        .with_columns(pl.col("deviant_base", "peer_base").fill_null(0.0))
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
    if _sides(deviance, direction=direction, rep_ids=rep_ids).is_empty():
        return pl.DataFrame(schema=_DIFFERS_SCHEMA)  # no deviants: no touch sorted
    return what_differs_in(
        _touches(activities).collect().lazy(),
        deviance,
        direction=direction,
        rep_ids=rep_ids,
        min_support=min_support,
    )


def what_differs_in(
    touches: pl.DataFrame | pl.LazyFrame,
    deviance: pl.DataFrame,
    *,
    direction: str = "positive",
    rep_ids: Sequence[str] | None = None,
    min_support: int = 100,
    cells: dict[str, pl.DataFrame | pl.LazyFrame] | None = None,
    gaps: dict[str, pl.DataFrame | pl.LazyFrame] | None = None,
    rep_cells: PracticeRepCells | None = None,
) -> pl.DataFrame:
    """:func:`what_differs` of touches that already carry the rep's previous touch
    (``previous_type``, ``gap_days``): :func:`practice_in` of the build's practice facts.
    ``cells``: their :func:`practice_cells`, filtered as the touches are, to count shares and
    sequences from (the touches then give only the days between touches). ``gaps``: their
    :func:`practice_gaps` as the build wrote them (``"gaps"``, ``"all_gap_reps"``) and
    ``"gap_reps"`` filtered as the touches are (a view without a period: whole reps), for the
    days between touches without reading a touch; and ``"runs"``, the build's
    :class:`PracticeGapRuns` where it has them (:func:`practice_gap_runs_of`).
    ``rep_cells``: in place of ``cells``, the build's :class:`PracticeRepCells` of the view's
    reps (:meth:`PracticeRepCells.kept`), each (peer group, side) cell's shares and sequences
    summed from its reps' rows by numpy.

    Examples
    --------
    >>> what_differs_in(practice_in(practice, Filter()), rep_deviance(view))  # doctest: +SKIP
    """
    if rep_ids is None and direction not in ("positive", "negative"):
        raise ValueError(f"direction must be 'positive' or 'negative', got {direction!r}")
    if rep_ids is None and not (deviance.get_column("direction") == direction).any():
        return pl.DataFrame(schema=_DIFFERS_SCHEMA)  # no such deviant (no query to say so)
    sides = _sides(deviance, direction=direction, rep_ids=rep_ids)
    if sides.filter(pl.col("side") == "deviant").is_empty():
        return pl.DataFrame(schema=_DIFFERS_SCHEMA)
    # only the compared reps' touches are read: every count below is per rep and joined
    # with the sides (a period's touches of one peer group instead of every rep's)
    compared = pl.col("rep_id").is_in(sides.get_column("rep_id").unique().implode())
    touches = touches.lazy().filter(compared)
    side_frame = sides.lazy()
    if rep_cells is not None:  # whole reps: each cell's counts summed from its reps' rows
        cell_of, by_rep = _cells_of(sides)
        summed, transitions = rep_cells.cell_counts(by_rep, n_cells=cell_of.height)
        share_counts, transitions = summed.lazy(), transitions.lazy()
        side_frame = cell_of.select(
            pl.col("cell").alias("rep_id"), "peer_group", "weight", "side"
        ).lazy()
    elif cells is None:
        # counted from the touches (a period): every count below is pooled by (peer group,
        # side), so each touch carries its cell as a small integer in place of its rep and
        # the group-bys and joins hash integers, not rep ids (whole-number counts: the same
        # sums; 10m, a year, 4M touches: a group-by of text rep ids alone ~0.2 s)
        cell_of = (
            sides.select("peer_group", "weight", "side")
            .unique(maintain_order=True)
            .with_row_index("cell")
        )
        cell_of_reps = sides.join(cell_of, on=["peer_group", "weight", "side"]).select(
            pl.col("rep_id").cast(touches.collect_schema()["rep_id"]), "cell"
        )
        touches = touches.join(cell_of_reps.lazy(), on="rep_id").select(
            pl.col("cell").alias("rep_id"), *_COUNTED[1:]
        )
        side_frame = cell_of.select(
            pl.col("cell").alias("rep_id"), "peer_group", "weight", "side"
        ).lazy()
        if sides.height <= READ_ONCE_AT_MOST * deviance.height:
            # read once, the columns counted, instead of once per count (six scans of the
            # period's touches of every rep, the compared ones kept after). Only when the
            # compared reps are at most half of them: the frame held is then at most half
            # of the period's touches (10m, a year: ~70 MB)
            touches = touches.collect().lazy()
        share_counts, transitions = _share_counts(touches), touches
    else:
        share_counts = (
            cells["shares"].lazy().group_by("rep_id", "feature", "level").agg(pl.col("n").sum())
        )
        transitions = cells["sequences"].lazy()
    return _ranked(
        [
            _share_effects(share_counts, side_frame),
            _sequence_effects(transitions, side_frame, min_support=min_support),
            _gap_effects(
                _gap_cells(touches, sides.lazy() if rep_cells is not None else side_frame)
                if gaps is None
                else _gap_cells_of_reps(gaps, sides),
                min_support=min_support,
            ),
        ]
    )


#: The columns of each part of :func:`_ranked`.
_PER_GROUP = [
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


def _ranked(parts: list[pl.LazyFrame]) -> pl.DataFrame:
    """The effects per peer group (shares, sequences, days between touches) averaged over
    the groups weighted by their deviants, largest first (:func:`what_differs`' table)."""
    per_group = pl.concat([p.select(_PER_GROUP) for p in parts], how="vertical_relaxed")

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


class PracticeCodes:
    """The practice codes of a build (:func:`effortlens.touch_build.write_practice_codes`):
    their key tables, and a period's slice of a column read into memory on demand
    (:meth:`read`: the bytes of its rows only; freed, and out of the resident set, when the
    array is let go). ``columns`` maps every column whole (for a look at all of them).

    Examples
    --------
    >>> codes = PracticeCodes(build / "practice_codes")  # doctest: +SKIP
    >>> codes.rows  # doctest: +SKIP
    8583700
    """

    def __init__(self, folder) -> None:
        """Read the key tables and the columns' headers under ``folder``."""
        from pathlib import Path

        from effortlens.touch_build import PRACTICE_CODE_COLUMNS

        self.folder = Path(folder)
        self.layout = {}  # column -> (dtype, offset of its first value)
        for name in PRACTICE_CODE_COLUMNS:
            with open(self.folder / f"{name}.npy", "rb") as f:
                version = np.lib.format.read_magic(f)
                header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = header(f)
                self.layout[name] = (dtype, f.tell())
        self.rows = int(shape[0])
        # the days, mapped: a period's two binary searches touch a few pages
        self._day = np.load(self.folder / "day.npy", mmap_mode="r")
        self.reps = pl.read_parquet(self.folder / "rep.keys.parquet")
        self.types = pl.read_parquet(self.folder / "type.keys.parquet").to_series()

    @functools.cached_property
    def spans(self) -> dict[str, int]:
        """The weekday's and hour's values + 1 lie in ``0 .. span - 1`` (0: none); read when
        first counted (a period without deviants reads no column)."""
        return {
            name: 2 + int(self.read(name, slice(0, self.rows)).max(initial=0))
            for name in ("weekday", "hour")
        }

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """Every column, mapped whole."""
        return {name: np.load(self.folder / f"{name}.npy", mmap_mode="r") for name in self.layout}

    def days(self, start, end) -> slice:
        """The rows of the touches from ``start`` to ``end`` (dates; None: open)."""
        from effortlens.filters import day_number

        day = self._day

        def number(date) -> np.generic:  # of the column's type: no cast of the column
            return day.dtype.type(day_number(date))

        lo = 0 if start is None else int(day.searchsorted(number(start), "left"))
        hi = self.rows if end is None else int(day.searchsorted(number(end), "right"))
        return slice(lo, max(lo, hi))

    def read(self, name: str, rows: slice) -> np.ndarray:
        """Column ``name``'s values of ``rows`` (a :meth:`days` slice), read from its file."""
        dtype, offset = self.layout[name]
        return np.fromfile(
            self.folder / f"{name}.npy",
            dtype=dtype,
            count=rows.stop - rows.start,
            offset=offset + rows.start * dtype.itemsize,
        )


def practice_codes_of(enriched) -> PracticeCodes | None:
    """The :class:`PracticeCodes` of the build ``enriched`` was read from, or None (facts
    enriched in memory, or a build without them).

    Examples
    --------
    >>> practice_codes_of(open_build(folder).enriched)  # doctest: +SKIP
    <effortlens.deviance.differs.PracticeCodes object at ...>
    """
    from effortlens.facts import PRACTICE_CODES, read_once

    return read_once(enriched, PRACTICE_CODES, ("previous_day.npy",), PracticeCodes)


def _nonzero(counts: np.ndarray) -> tuple[np.ndarray, ...]:
    """The nonzero counts of a (cell, level) table: their cells, levels and counts."""
    at = np.flatnonzero(counts)
    cells, levels = np.divmod(at, counts.shape[1])
    return cells, levels, counts.reshape(-1)[at].astype(np.float64)


#: Touches :func:`what_differs_coded` reads and counts at a time (its temporaries are a
#: chunk's: ~30 bytes a touch; 10m, a year: 4M touches).
CODED_CHUNK = 1 << 18

#: :func:`_coded_counts` picks a chunk's compared touches first when they are fewer than
#: this share of it (else it counts every touch, those of reps not compared apart).
COMPACT_BELOW = 0.5


def _coded_counts(
    codes: PracticeCodes, at: slice, cell_of_rep: np.ndarray, *, n_cells: int, start: int | None
) -> dict:
    """Per (cell, level): the touches of the compared reps (``cell_of_rep`` >= 0) in rows
    ``at`` per activity type, weekday + 1, hour + 1, follow-up within the days or not and
    transition (previous x width + type, a previous touch before day ``start`` forgotten),
    each an (n_cells, levels) table of counts; ``"gaps"``: the follow-ups' cells and seconds
    in row order, chunk by chunk. Read and counted :data:`CODED_CHUNK` touches at a time.

    A chunk's touches of reps not compared are counted in a cell of their own (dropped at
    the end) when they are at most :data:`COMPACT_BELOW` of it; else the compared ones are
    picked first (one copy of every column, cheaper when few are kept). Two counts a chunk,
    type x weekday x hour and previous x type x follow-up (within the days, after, none),
    each key started from a per-rep table of its cell's first key (one look-up of the rep
    code): the shares, follow-ups and transitions are their marginals. Touches without a
    previous touch (or without one seen) are counted as transitions from "none", dropped
    too: every count is one ``bincount`` of the chunk, no column picked per count."""
    width = codes.types.len() + 1
    none = width - 1  # the type code of no (previous) touch
    # a touch's type, weekday + 1 and hour + 1 as one key: one count for the three shares
    days, hours = codes.spans["weekday"], codes.spans["hour"]
    sizes = {"calendar": width * days * hours, "sequence": width * width * 3}
    held = n_cells + 1  # the last cell: the touches of reps not compared
    counts = {k: np.zeros(held * size, dtype=np.int64) for k, size in sizes.items()}
    cell_of = np.where(cell_of_rep >= 0, cell_of_rep, n_cells).astype(cell_of_rep.dtype)
    # each rep's first key in each count: its cell's (the calendar's with the + 1 of the
    # weekday and of the hour folded in)
    first_key = {
        "calendar": cell_of.astype(np.int32) * sizes["calendar"] + (hours + 1),
        "sequence": cell_of.astype(np.int32) * sizes["sequence"],
    }
    gap_cells, gap_seconds = [], []
    for lo in range(at.start, at.stop, CODED_CHUNK):
        part = slice(lo, min(lo + CODED_CHUNK, at.stop))
        rep = codes.read("rep", part)
        cell = cell_of.take(rep)
        compared = cell < n_cells
        kept = int(np.count_nonzero(compared))
        if kept == 0:
            continue
        picked = kept < COMPACT_BELOW * len(cell)
        if picked:
            cell, rep = cell[compared], rep[compared]

        def read(name: str, part: slice = part, compared=compared, picked=picked) -> np.ndarray:
            values = codes.read(name, part)
            return values[compared] if picked else values

        kind, previous, seconds = read("type"), read("previous"), read("gap_seconds")
        followed = seconds >= 0
        if start is not None:  # a previous touch before the period: the view never sees it
            seen = read("previous_day") >= start
            followed &= seen
            previous = np.where(seen, previous, previous.dtype.type(none))
            del seen
        # ((cell x width + type) x days + weekday + 1) x hours + hour + 1
        key = first_key["calendar"].take(rep)
        step = kind.astype(np.int32)
        step *= days * hours
        key += step
        step = read("weekday").astype(np.int32)
        step *= hours
        key += step
        key += read("hour")
        counts["calendar"] += np.bincount(key, minlength=counts["calendar"].size)
        # ((cell x width + previous) x width + type) x 3 + the follow-up: 1 within the
        # days, 0 after, 2 none
        key = first_key["sequence"].take(rep)
        step = previous.astype(np.int32)
        step *= width * 3
        key += step
        step = kind.astype(np.int32)
        step *= 3
        key += step
        within = (seconds <= FOLLOW_UP_DAYS * _DAY_SECONDS).view(np.int8)
        key += np.where(followed, within, np.int8(2))
        counts["sequence"] += np.bincount(key, minlength=counts["sequence"].size)
        del key, step, within
        if not picked:
            followed &= compared
        gap_cells.append(cell[followed])
        gap_seconds.append(seconds[followed])
    by_calendar = counts["calendar"].reshape(held, width, days, hours)[:n_cells]
    by_pair = counts["sequence"].reshape(held, width, width, 3)[:n_cells]
    sequence = by_pair.sum(axis=3)
    sequence[:, none, :] = 0  # from no previous touch: not a transition
    return {
        "activity_type_share": by_calendar.sum(axis=(2, 3)),
        "weekday_share": by_calendar.sum(axis=(1, 3)),
        "hour_share": by_calendar.sum(axis=(1, 2)),
        "follow_up_share": by_pair.sum(axis=(1, 2))[:, :2],
        "sequence": sequence.reshape(n_cells, width * width),
        "gaps": (gap_cells, gap_seconds),  # by chunk
    }


#: :func:`_coded_gap_rows` picks each cell's follow-ups by a mask when there are at most
#: this many cells (no sort, no 8-byte index per follow-up), else by a sort per chunk.
_MASKED_CELLS = 2


def _coded_gap_rows(
    cells: list[np.ndarray], seconds: list[np.ndarray], n_cells: int
) -> list[tuple]:
    """:func:`_gap_cells` of follow-ups given as their cells and whole seconds (chunk by
    chunk, in row order), a row (cell, median days, follow-ups, mean and variance of
    ``log1p(days)``) per cell with any: each cell's median selected by ``np.partition``
    (Polars' median formula), the moments by numpy. With more than :data:`_MASKED_CELLS`
    cells each chunk's follow-ups are put in cell order by a stable sort of the chunk's
    cells (in the cache: a third of one sort of every follow-up's, 10m, a year, 3.7M)."""
    rows: list[tuple] = []
    if n_cells <= _MASKED_CELLS:
        cell = np.concatenate([np.empty(0, dtype=np.int16), *cells])
        every = np.concatenate([np.empty(0, dtype=np.int32), *seconds])
        held = [[every[cell == index]] for index in range(n_cells)]
    else:
        held = [[] for _ in range(n_cells)]
        for cell, values in zip(cells, seconds, strict=True):
            order = np.argsort(cell, kind="stable")
            bounds = np.searchsorted(cell[order], np.arange(n_cells + 1))
            values = values[order]
            for index in range(n_cells):
                if bounds[index + 1] > bounds[index]:
                    held[index].append(values[bounds[index] : bounds[index + 1]])
    for index, pieces in enumerate(held):
        # a cell's follow-ups, in row order (arrays of its own: partitioned in place)
        values = pieces[0] if len(pieces) == 1 else np.concatenate([np.empty(0, np.int32), *pieces])
        n = len(values)
        if n == 0:
            continue
        # np.mean and np.var(ddof=1) of log1p(days), their steps in one array (each new
        # array of a year's follow-ups is fresh pages: ~2 ms a million values)
        logs = np.divide(values, _DAY_SECONDS)
        np.log1p(logs, out=logs)
        mean = logs.sum() / n
        value = _median_days(values)
        if n > 1:
            logs -= mean
            logs *= logs
            var = float(logs.sum() / (n - 1))
        else:
            var = None
        rows.append((index, float(value), float(n), float(mean), var))
    return rows


def _arcsine_of(p: np.ndarray | float) -> np.ndarray | float:
    """:func:`_arcsine` of numbers."""
    return 2 * np.arcsin(np.sqrt(p))


def _coded_table(
    counts: dict, cell_of: pl.DataFrame, type_names: list, gap_rows: list[tuple], min_support: int
) -> pl.DataFrame:
    """:func:`_ranked` of :func:`_share_effects`, :func:`_sequence_effects` and
    :func:`_gap_effects` of the (cell, level) count tables of :func:`_coded_counts` and the
    cells' follow-ups (:func:`_coded_gap_rows`), worked out by numpy on the tables (a few
    cells by a few dozen levels) instead of Polars queries on their rows: the same rules
    (a level counted in any cell is compared in every group, zero where it never happened;
    both sides' bases above zero, or at least ``min_support`` transitions or follow-ups,
    and a transition seen on both sides; levels "after the days" and unnamed ones only in
    the bases), the same numbers (sums of whole counts; the weighted means over the groups
    summed in another order: equal within a few ``eps``). ``type_names``: a name per type
    code, the last (no type) None; a touch's own type is never none."""
    groups: dict = {}  # peer group -> [weight, deviant cell, peer cell]
    for cell, group, weight, side in cell_of.select("cell", "peer_group", "weight", "side").rows():
        groups.setdefault(group, [weight, None, None])[1 if side == "deviant" else 2] = cell
    within = f"within {FOLLOW_UP_DAYS:g} days"
    names = {
        "activity_type_share": type_names,
        # counted + 1 (0: none); ISO weekday numbers
        "weekday_share": [
            WEEKDAY_NAMES[k - 2] if 2 <= k <= 8 else None
            for k in range(counts["weekday_share"].shape[1])
        ],
        "hour_share": [None, *(f"{h:02d}:00" for h in range(counts["hour_share"].shape[1] - 1))],
        "follow_up_share": [f"after {FOLLOW_UP_DAYS:g} days", within],
    }
    rows: list[tuple] = []  # feature, level, measure, values, bases, effect, weight
    for feature, levels in names.items():
        # an unnamed level (a weekday or hour of none, which a touch never has) counts in no
        # base either: the Polars queries lost it in a join on the level
        named = np.array([level is not None for level in levels])
        table = counts[feature].astype(np.float64) * named
        present = [
            k for k in np.flatnonzero(table.any(axis=0)) if not levels[k].startswith("after ")
        ]
        for weight, deviant, peer in groups.values():
            if peer is None:
                continue
            dn, pn = table[deviant], table[peer]
            db, pb = dn.sum(), pn.sum()
            if not (db > 0 and pb > 0):
                continue
            for k in present:
                dv, pv = dn[k] / db, pn[k] / pb
                effect = _arcsine_of(dv) - _arcsine_of(pv)
                rows.append((feature, levels[k], "cohen_h", dv, pv, db, pb, effect, weight))
    width = len(type_names)
    pairs = counts["sequence"].astype(np.float64).reshape(-1, width, width)
    for weight, deviant, peer in groups.values():
        if peer is None:
            continue
        sides = []
        for cell in (deviant, peer):
            n = pairs[cell]
            base = n.sum(axis=1)  # transitions from each previous type
            with np.errstate(divide="ignore", invalid="ignore"):
                to_share = n.sum(axis=0) / n.sum()
                transition = n / base[:, None]
            sides.append((n, base, to_share, transition))
        (dn, dbase, dshare, dtrans), (pn, pbase, pshare, ptrans) = sides
        for previous, kind in zip(*np.nonzero((dn > 0) & (pn > 0)), strict=True):
            if not (dbase[previous] >= min_support and pbase[previous] >= min_support):
                continue
            before, after = type_names[previous], type_names[kind]
            level = None if before is None or after is None else before + SEQUENCE_SEPARATOR + after
            beyond = [
                _arcsine_of(trans[previous, kind]) - _arcsine_of(share[kind])
                for trans, share in ((dtrans, dshare), (ptrans, pshare))
            ]
            rows.append(
                (
                    "sequence",
                    level,
                    "cohen_h_beyond_mix",
                    dtrans[previous, kind] / dshare[kind],
                    ptrans[previous, kind] / pshare[kind],
                    dbase[previous],
                    pbase[previous],
                    beyond[0] - beyond[1],
                    weight,
                )
            )
    gaps = {row[0]: row[1:] for row in gap_rows}  # cell -> median, follow-ups, mean, var
    for weight, deviant, peer in groups.values():
        (dv, nd, md, vd), (pv, np_, mp, vp) = (
            gaps.get(cell, (None, 0.0, None, None)) for cell in (deviant, peer)
        )
        if not (nd >= min_support and np_ >= min_support):
            continue
        if vd is None or vp is None or md is None or mp is None:
            continue  # no spread on a side: no effect
        sd = np.sqrt(((nd - 1) * vd + (np_ - 1) * vp) / (nd + np_ - 2))
        if not sd > 0:
            continue
        effect = (md - mp) / sd
        rows.append(
            (
                "median_days_between_touches",
                "all follow-ups",
                "cohen_d_log_days",
                dv,
                pv,
                nd,
                np_,
                effect,
                weight,
            )
        )
    ranked: dict = {}  # (feature, level, measure) -> sums
    for feature, level, measure, dv, pv, db, pb, effect, weight in rows:
        sums = ranked.setdefault((feature, level, measure), [0.0] * 6 + [0])
        for i, value in enumerate((dv * weight, pv * weight, effect * weight, db, pb, weight)):
            sums[i] += value
        sums[6] += 1
    out = []
    for (feature, level, measure), (dw, pw, ew, db, pb, weight, groups_n) in ranked.items():
        dv, pv, effect = dw / weight, pw / weight, ew / weight
        out.append((feature, level, dv, pv, dv - pv, effect, measure, db, pb, groups_n))
    out.sort(key=lambda r: (-abs(r[5]), r[0], r[1]))
    frame = pl.DataFrame(
        [(*r, rank) for rank, r in enumerate(out, start=1)],
        schema=_DIFFERS_SCHEMA,
        orient="row",
    )
    return frame


def what_differs_coded(
    codes: PracticeCodes,
    deviance: pl.DataFrame,
    flt,
    *,
    direction: str = "positive",
    rep_ids: Sequence[str] | None = None,
    min_support: int = 100,
) -> pl.DataFrame | None:
    """:func:`what_differs_in` of :func:`practice_in` of the practice facts, counted from the
    build's practice codes (:class:`PracticeCodes`): the period is a slice of the day-sorted
    columns, the filter's reps a mask of rep codes, every count a ``numpy.bincount`` per
    (peer group, side) and level. The same table (whole-number counts; the moments of the
    days between touches summed in another order: equal within 1e-12). None when the
    filter names activity types (as :func:`practice_in`: only the events can say).

    Examples
    --------
    >>> what_differs_coded(practice_codes_of(enriched), rep_deviance(view), flt)
    ... # doctest: +SKIP
    """
    from effortlens.filters import day_number, filter_frame

    if flt.activity_types:
        return None
    if rep_ids is None and direction not in ("positive", "negative"):
        raise ValueError(f"direction must be 'positive' or 'negative', got {direction!r}")
    if rep_ids is None and not (deviance.get_column("direction") == direction).any():
        return pl.DataFrame(schema=_DIFFERS_SCHEMA)
    sides = _sides(deviance, direction=direction, rep_ids=rep_ids)
    if sides.filter(pl.col("side") == "deviant").is_empty():
        return pl.DataFrame(schema=_DIFFERS_SCHEMA)
    cell_of, rep_cells = _cells_of(sides)
    # the filter's reps (its period is the slice below): a filter on the small key table
    kept = filter_frame(codes.reps.with_row_index("code"), replace(flt, start=None, end=None))
    kept = kept.join(rep_cells, on="rep_id", nulls_equal=True)
    # each touch's (peer group, side) cell through its rep code: -1 for a rep not compared
    small = np.int16 if cell_of.height < 2**15 else np.int32
    cell_of_rep = np.full(codes.reps.height, -1, dtype=small)
    cell_of_rep[kept["code"].to_numpy()] = kept["cell"].to_numpy()
    counts = _coded_counts(
        codes,
        codes.days(flt.start, flt.end),
        cell_of_rep,
        n_cells=cell_of.height,
        start=None if flt.start is None else day_number(flt.start),
    )
    type_names = [*codes.types.to_list(), None]  # the last code: none
    gap_rows = _coded_gap_rows(*counts["gaps"], cell_of.height)
    return _coded_table(counts, cell_of, type_names, gap_rows, min_support)


class PracticeRepCells:
    """:func:`practice_cells` as rep-indexed arrays (read once per load): a row per rep, a
    column per (feature, level) of the shares and per (previous type, type) of the
    sequences, the touches counted. A view without a period keeps whole reps, so its
    compared (peer group, side) cells' counts are the sums of their reps' rows: whole numbers,
    the same sums in any order (:func:`what_differs_of_reps`).

    Examples
    --------
    >>> shares = precomputed(enriched, "practice_shares")  # doctest: +SKIP
    >>> sequences = precomputed(enriched, "practice_sequences")  # doctest: +SKIP
    >>> PracticeRepCells(shares, sequences).shares.shape  # doctest: +SKIP
    (2000, 54)
    """

    def __init__(
        self, shares: pl.DataFrame | pl.LazyFrame, sequences: pl.DataFrame | pl.LazyFrame
    ) -> None:
        """Count the cells of ``shares`` and ``sequences`` (:func:`practice_cells`' frames)
        into the arrays (a rep's rows summed where a build wrote it in several parts)."""
        shares = shares.lazy().collect()
        sequences = sequences.lazy().filter(pl.col("previous_type").is_not_null()).collect()
        as_text = pl.col("rep_id").cast(pl.String)
        shares, sequences = (f.with_columns(as_text) for f in (shares, sequences))
        keys = pl.concat([f.select(_REP_KEYS) for f in (shares, sequences)], how="vertical_relaxed")
        #: rep_id, team, segment, role: a row per rep, in the arrays' order
        self.reps = keys.unique("rep_id", keep="first").sort("rep_id")
        #: the filter whose reps alone are counted (:meth:`kept`; None: every rep)
        self.flt = None
        self.share_keys, self.shares = self._counted(shares, ["feature", "level"])
        self.sequence_keys, self.sequences = self._counted(
            sequences, ["previous_type", "activity_type"]
        )

    def _counted(self, frame: pl.DataFrame, key: list[str]) -> tuple[pl.DataFrame, np.ndarray]:
        levels = frame.select(key).unique(maintain_order=True).with_row_index("k")
        coded = frame.join(
            self.reps.select("rep_id").with_row_index("r"), on="rep_id", how="left"
        ).join(levels, on=key, how="left", nulls_equal=True)
        counts = np.zeros((self.reps.height, levels.height), dtype=np.float64)
        np.add.at(counts, (coded["r"].to_numpy(), coded["k"].to_numpy()), coded["n"].to_numpy())
        return levels.drop("k"), counts

    def kept(self, flt) -> PracticeRepCells:
        """These cells with only the reps that ``flt`` (a filter without a period) keeps
        counted (the filter applied by :meth:`cell_counts`: nothing done until then)."""
        out = copy.copy(self)
        out.flt = flt
        return out

    def cell_counts(self, rep_cells: pl.DataFrame, *, n_cells: int) -> tuple[pl.DataFrame, ...]:
        """The share counts (``rep_id``: the cell, ``feature``, ``level``, ``n``) and
        transitions (``rep_id``, ``previous_type``, ``activity_type``, ``n``) of the
        (peer group, side) cells of ``rep_cells`` (``rep_id`` text, ``cell``): each cell's
        reps' rows summed, its levels that happened."""
        from effortlens.filters import filter_frame

        reps = self.reps.with_row_index("r")
        if self.flt is not None:
            reps = filter_frame(reps, self.flt)
        kept = reps.select("r", "rep_id").join(rep_cells, on="rep_id")
        rows, cells = kept["r"].to_numpy(), kept["cell"].to_numpy()
        out = []
        for levels, counts in (
            (self.share_keys, self.shares),
            (self.sequence_keys, self.sequences),
        ):
            summed = np.zeros((n_cells, counts.shape[1]), dtype=np.float64)
            np.add.at(summed, cells, counts[rows])
            cell, level, n = _nonzero(summed)
            out.append(
                levels[level]
                .with_columns(n=pl.Series(n), rep_id=pl.Series(cell, dtype=pl.UInt32))
                .select("rep_id", *levels.columns, "n")
            )
        return out[0], out[1]


#: Build folder -> its :class:`PracticeRepCells` (made once per process and build).
_REP_CELLS: dict = {}


def practice_rep_cells_of(enriched, shares, sequences) -> PracticeRepCells:
    """The :class:`PracticeRepCells` of ``shares`` and ``sequences`` (the build's
    :func:`practice_cells` that ``enriched`` was read from): made once per build in this
    process; each time for facts enriched in memory.

    Examples
    --------
    >>> practice_rep_cells_of(enriched, shares, sequences)  # doctest: +SKIP
    <effortlens.deviance.differs.PracticeRepCells object at ...>
    """
    from effortlens.facts import entry_of

    entry = entry_of(enriched)
    if entry is None:
        return PracticeRepCells(shares, sequences)
    if entry not in _REP_CELLS:
        _REP_CELLS[entry] = PracticeRepCells(shares, sequences)
    return _REP_CELLS[entry]


#: The page's period presets (days back from the last day with data, as
#: ``effortlens_widgets.controls.PERIODS``) for which a build writes the practice cells and
#: gap runs of the period (:func:`write_practice_periods`): a comparison over one of them then
#: sums reps' rows as one without a period does, instead of counting every touch of the period.
#: "Last 52 weeks" and "Last 26 weeks": at 100M a picked deviant over 26 weeks counted from
#: the codes took 220 CPU ms (491 the first time in a kernel); the 26 weeks' files cost ~1.2
#: CPU s more to write at 10m. The 13 and 4 weeks are counted from the codes.
PRACTICE_PERIOD_DAYS: tuple[int, ...] = (364, 182)
#: Their folder under a build: ``<days>/`` each.
PRACTICE_PERIODS = "practice_periods"


def preset_window(last: dt.date | None, days: int) -> tuple[dt.date, dt.date] | None:
    """The first and last day of the period preset of ``days`` ending on ``last`` (the last
    day with data), as the page's period control computes its filter; None without data.

    Examples
    --------
    >>> preset_window(dt.date(2025, 12, 31), 364)
    (datetime.date(2025, 1, 2), datetime.date(2025, 12, 31))
    """
    if last is None:
        return None
    return last - dt.timedelta(days=days - 1), last


def build_last_day(folder) -> dt.date | None:
    """The last day with data of the build written in ``folder``, as the page's
    ``last_day`` reads it from the build: the daily roll-up's last day and the last
    opportunity's creation day, whichever is later."""
    from pathlib import Path

    from effortlens.facts import FACTS_LAYOUT, TABLE_FILES, scan_fact

    folder = Path(folder)
    candidates = []
    daily = scan_fact(folder, FACTS_LAYOUT["daily"]).select(pl.col("day").max()).collect()
    if daily.item() is not None:
        candidates.append(daily.item())
    opps = folder / TABLE_FILES["opportunities"]
    if opps.exists():
        created = pl.scan_parquet(opps).select(pl.col("created_ts").max()).collect().item()
        if created is not None:
            candidates.append(created.date())
    return max(candidates) if candidates else None


def write_practice_periods(
    parts: Sequence[pl.LazyFrame],
    folder,
    last: dt.date | None,
    *,
    presets=PRACTICE_PERIOD_DAYS,
    codes: PracticeCodes | None = None,
) -> dict[str, int]:
    """For each preset of ``presets`` (days), :func:`practice_cells` and
    :func:`practice_gaps` of :func:`practice_in` of the practice facts (``parts``: scans of
    their files, read one at a time: a partitioned build's memory is a part's window) over
    the preset's window ending on ``last`` (:func:`preset_window`), in ``folder/<days>/``:
    ``period.json`` (its first and last day), ``shares.parquet``, ``sequences.parquet``,
    ``gap_reps.parquet`` (by rep; a rep's sums added over the parts) and the follow-ups'
    runs (:func:`write_gap_runs`). Rows per relative path.

    Each part is read once for every preset (from the earliest window's first day); a rep's
    sums are added up part by part and its follow-ups kept as one 64-bit key each (the rep's
    category, then the seconds: :class:`_GapKeys`), so what is held is the sums and the keys,
    not every part's frames.

    With ``codes`` (the build's :class:`PracticeCodes` of the same facts, written before),
    the windows' touches are read from them instead, :data:`PERIOD_CODE_ROWS` at a time
    (:func:`_practice_of_codes`: the same rows and values, the text of a few keys gathered
    instead of text columns decoded from Parquet); the sums equal the parts' up to the order
    they are added in.

    Examples
    --------
    >>> write_practice_periods([pl.scan_parquet(build / "practice.parquet")],
    ...     build / PRACTICE_PERIODS, build_last_day(build))  # doctest: +SKIP
    {'practice_periods/364/shares.parquet': 53033, ...}
    """
    from pathlib import Path

    from effortlens.facts import ROW_GROUP, _rep_sorted, _write_parquet
    from effortlens.filters import Filter

    folder = Path(folder)
    rows: dict[str, int] = {}
    windows = {d: w for d in presets if (w := preset_window(last, d)) is not None}
    if not windows:
        return rows
    first = min(start for start, _ in windows.values())
    rep = pl.col(_REP_KEYS).cast(pl.Categorical)  # the group-bys hash small integers
    sums = {
        "shares": [pl.col("n").sum()],
        "sequences": [pl.col("n").sum()],
        "gap_reps": [
            pl.col("follow_ups").sum().cast(pl.UInt32),
            pl.col("log_gap_sum", "log_gap_squares").sum(),
        ],
    }
    counted = None
    if codes is not None:  # the windows counted from the codes at once (none: the frames)
        counted = _coded_periods(codes, windows)
    if counted is not None:
        if codes.days(first, None).stop == codes.days(first, None).start:
            return rows  # no touch from the first window's first day on: as no part read
        for days, (start, end) in windows.items():
            made = counted.pop(days)
            out = folder / str(days)
            out.mkdir(parents=True, exist_ok=True)
            for name in sums:
                _write_parquet(made[name], out / f"{name}.parquet", row_group_size=ROW_GROUP)
                rows[f"{PRACTICE_PERIODS}/{days}/{name}.parquet"] = made[name].height
            written = write_gap_key_runs(*made.pop("gap_keys"), out)
            rows[f"{PRACTICE_PERIODS}/{days}/seconds.npy"] = written
            del made
            _write_period(out, days, start, end)
        return rows
    summed: dict[int, dict[str, pl.DataFrame]] = {days: {} for days in windows}
    gaps = {days: _GapKeys() for days in windows}
    if codes is not None:
        reads = _practice_of_codes(codes, first, rows=PERIOD_CODE_ROWS)
    else:  # the facts sorted by day: the row groups before the windows skipped
        reads = (
            part.lazy().filter(pl.col("day") >= first).with_columns(rep).collect() for part in parts
        )
    # from the codes, each window's follow-ups are keys at once (the rep's code is its rank)
    keyed = {}
    if codes is not None:
        keyed = {d: _period_gap_keys(codes, *w, rows=PERIOD_CODE_ROWS) for d, w in windows.items()}
    for read in reads:
        for days, (start, end) in windows.items():
            touches = practice_in(read, Filter(start=start, end=end)).collect()
            plans = {**practice_cells(touches), **practice_gaps(touches)}
            if keyed.get(days) is not None:
                del plans["gaps"]
            # collected together: the touches' common scans shared, the group-bys in parallel
            made = dict(zip(plans, pl.collect_all(list(plans.values())), strict=True))
            if "gaps" in made:
                gaps[days].add(made.pop("gaps"))
            for name, frame in made.items():
                held = summed[days].get(name)
                if held is not None:  # a rep's rows in several parts: added up
                    keys = [c for c in frame.columns if c not in ("n", *_GAP_SUMS)]
                    frame = (
                        pl.concat([held, frame], rechunk=False)
                        .group_by(keys)
                        .agg(sums[name])
                        .select(frame.columns)
                    )
                summed[days][name] = frame
            del touches, made
        del read
    for days, (start, end) in windows.items():
        if not summed[days]:
            continue
        out = folder / str(days)
        out.mkdir(parents=True, exist_ok=True)
        for name in sums:
            frame = _rep_sorted(summed[days].pop(name).lazy())
            _write_parquet(frame, out / f"{name}.parquet", row_group_size=ROW_GROUP)
            rows[f"{PRACTICE_PERIODS}/{days}/{name}.parquet"] = frame.height
        made = keyed.pop(days, None)
        held = gaps.pop(days)
        written = held.write_runs(out) if made is None else write_gap_key_runs(*made, out)
        rows[f"{PRACTICE_PERIODS}/{days}/seconds.npy"] = written
        del made, held
        _write_period(out, days, start, end)
    return rows


def _write_period(out, days: int, start: dt.date, end: dt.date) -> None:
    """A preset's ``period.json``: its days, first and last day."""
    import json

    (out / "period.json").write_text(
        json.dumps({"days": days, "start": start.isoformat(), "end": end.isoformat()}), "utf-8"
    )


#: Touches :func:`write_practice_periods` reads from the practice codes at a time.
PERIOD_CODE_ROWS = 1 << 21


def _practice_of_codes(
    codes: PracticeCodes, first: dt.date, *, rows: int = PERIOD_CODE_ROWS
) -> Iterator[pl.DataFrame]:
    """The practice facts from day ``first`` on, as :func:`write_practice_periods` reads
    them from Parquet (:data:`PRACTICE_COLUMNS`, the rep columns as categories), rebuilt
    from ``codes`` ``rows`` touches at a time, in the codes' order (by day, then rep): each
    rep column gathered from the rep keys by the rep's code, the types from the type keys,
    -1 (none) as null, ``gap_days`` as ``gap_seconds / 86400`` (which it is exactly) and a
    previous day of -2**31 (none) as null."""
    keys = codes.reps
    reps = {c: keys.get_column(c).cast(pl.Categorical) for c in _REP_KEYS}
    types = pl.concat([codes.types.cast(pl.String), pl.Series([None], dtype=pl.String)])
    at = codes.days(first, None)
    none = np.iinfo(np.int32).min
    for lo in range(at.start, at.stop, rows):
        part = slice(lo, min(lo + rows, at.stop))
        rep = pl.Series(codes.read("rep", part))
        kind, previous = (
            pl.Series(codes.read("type", part)),
            pl.Series(codes.read("previous", part)),
        )
        frame = pl.DataFrame(
            {
                **{c: reps[c].gather(rep) for c in _REP_KEYS},
                "day": pl.Series(codes.read("day", part)),
                "activity_type": types.gather(kind),
                "weekday": pl.Series(codes.read("weekday", part)),
                "hour": pl.Series(codes.read("hour", part)),
                "previous_type": types.gather(previous),
                "gap_seconds": pl.Series(codes.read("gap_seconds", part)),
                "previous_day": pl.Series(codes.read("previous_day", part)),
            }
        )
        del rep, kind, previous
        yield frame.select(
            *_REP_KEYS,
            pl.col("day").cast(pl.Date),
            "activity_type",
            *(pl.when(pl.col(c) >= 0).then(pl.col(c)).alias(c) for c in ("weekday", "hour")),
            "previous_type",
            gap_days=pl.when(pl.col("gap_seconds") >= 0).then(pl.col("gap_seconds") / _DAY_SECONDS),
            previous_day=pl.when(pl.col("previous_day") != none).then(
                pl.col("previous_day").cast(pl.Date)
            ),
        )


def _period_gap_keys(
    codes: PracticeCodes, start: dt.date, end: dt.date, *, rows: int = PERIOD_CODE_ROWS
) -> tuple[np.ndarray, pl.Series] | None:
    """:func:`practice_gaps`' follow-ups of :func:`practice_in` over ``start`` .. ``end``,
    from ``codes``: each the rep's code (its rank among the reps' sorted ids) above its
    seconds, sorted (:func:`_sorted_keys`), and those ids; None when one has no rep or its
    seconds do not fit 31 bits (then they are counted from the frames)."""
    from effortlens.filters import day_number

    at = codes.days(start, end)
    first = day_number(start)
    known = codes.reps.get_column("rep_id").drop_nulls()  # a null rep: the keys' last row
    parts = []
    for lo in range(at.start, at.stop, rows):
        part = slice(lo, min(lo + rows, at.stop))
        seconds = codes.read("gap_seconds", part)
        # a follow-up seen in the period: its previous touch on or after the first day
        kept = (seconds >= 0) & (codes.read("previous_day", part) >= first)
        rep, seconds = codes.read("rep", part)[kept], seconds[kept]
        if rep.size and (int(rep.max()) >= known.len() or int(seconds.max()) >= 2**31):
            return None
        key = rep.astype(np.int64) << 32
        key |= seconds
        parts.append(key)
        del seconds, kept, rep
    keys = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    del parts
    return _sorted_keys(keys), known


def _sorted_keys(keys: np.ndarray) -> np.ndarray:
    """``numpy.sort(keys)`` (int64) by Polars' sort (~2x less CPU here; read-only)."""
    return pl.Series(keys, dtype=pl.Int64).sort().to_numpy()


#: The sums of a rep's follow-ups in :func:`practice_gaps`' ``"gap_reps"``.
_GAP_SUMS = ("follow_ups", "log_gap_sum", "log_gap_squares")


class _GapKeys:
    """Follow-ups (frames of :func:`practice_gaps`' ``"gaps"``, ``rep_id`` a category or
    text) gathered part by part as one int64 each, the rep's number (in order of first
    appearance) above the seconds, then sorted as :func:`sorted_gaps` sorts them: the
    numbers renumbered as the reps' ids sort, the keys sorted in place (no text sort, no rep
    id per follow-up). Follow-ups without a rep or with seconds outside 0..2**31 are kept
    as frames and take :func:`sorted_gaps` (the same result)."""

    def __init__(self) -> None:
        self.keys: list[np.ndarray] = []
        self.index: dict[str, int] = {}  # rep id -> its number
        self.frames: list[pl.DataFrame] = []  # every part's, once one does not fit a key

    def add(self, gaps: pl.DataFrame) -> None:
        """Keep one part's follow-ups."""
        reps = gaps.get_column("rep_id").cast(pl.Categorical)
        seconds = gaps.get_column("gap_seconds")
        fits = not reps.null_count() and (
            gaps.is_empty() or (seconds.min() >= 0 and seconds.max() < 2**31)
        )
        if self.frames or not fits:
            self.frames += [*self._as_frames(), gaps.with_columns(rep_id=reps)]
            self.keys, self.index = [], {}
            return
        if gaps.is_empty():
            return
        # a category's code is the series' own: each part's codes mapped to the numbers
        distinct = reps.unique()
        local = distinct.to_physical().to_numpy().astype(np.int64)
        number = np.zeros(int(local.max()) + 1, dtype=np.int64)
        number[local] = [
            self.index.setdefault(rep, len(self.index))
            for rep in distinct.cast(pl.String).to_list()
        ]
        key = number[reps.to_physical().to_numpy()] << 32
        key |= seconds.to_numpy().astype(np.int64)
        self.keys.append(key)

    def _names(self) -> pl.Series:
        return pl.Series("rep_id", list(self.index), dtype=pl.String)

    def _as_frames(self) -> list[pl.DataFrame]:
        """The keys kept so far as follow-up frames (for :func:`sorted_gaps`)."""
        names = self._names()
        return [
            pl.DataFrame(
                {
                    "rep_id": names.gather(pl.Series(key >> 32)).cast(pl.Categorical),
                    "gap_seconds": pl.Series(key & 0xFFFFFFFF).cast(pl.Float64),
                }
            )
            for key in self.keys
        ]

    def sorted_keys(self) -> tuple[np.ndarray, pl.Series] | None:
        """The keys of every follow-up kept, sorted, the rep's rank among the reps' sorted
        ids above its seconds, and those ids; None when some were kept as frames."""
        if self.frames:
            return None
        names = self._names()
        order = names.arg_sort().to_numpy()  # the reps' ranks as their ids sort
        rank = np.empty(len(names), dtype=np.int64)
        rank[order] = np.arange(len(names))
        keys = np.empty(sum(len(k) for k in self.keys), dtype=np.int64)
        at = 0
        while self.keys:  # each part's keys let go once moved
            key = self.keys.pop(0)
            keys[at : at + len(key)] = (rank[key >> 32] << 32) | (key & 0xFFFFFFFF)
            at += len(key)
            del key
        return _sorted_keys(keys), names.gather(pl.Series(order))

    def sorted_frame(self) -> pl.DataFrame:
        """:func:`sorted_gaps` of the follow-ups kept as frames (when a key did not fit)."""
        return sorted_gaps(pl.concat(self.frames, how="vertical_relaxed"))

    def write_runs(self, folder) -> int:
        """:func:`write_gap_runs` of all the follow-ups kept, sorted (:func:`sorted_gaps`)."""
        made = self.sorted_keys()
        if made is None:
            return write_gap_runs(self.sorted_frame(), folder)
        return write_gap_key_runs(*made, folder)


#: The columns of each preset's files (:func:`write_practice_periods`), in their order.
_PERIOD_COLUMNS: dict[str, list[str]] = {
    "shares": ["rep_id", "feature", "level", "n", "team", "segment", "role"],
    "sequences": [*_REP_KEYS, "previous_type", "activity_type", "n"],
    "gap_reps": [*_REP_KEYS, *_GAP_SUMS],
}


class _PeriodCounts:
    """One preset's counts per rep code from the practice codes (:func:`_coded_periods`): the
    touches per (rep, level) of each share, per (rep, previous type x type) of the
    transitions, the follow-ups per rep (within the days or after) with the sums of
    ``log1p(days)`` and of its square, and the follow-ups' keys (the rep's code above the
    seconds) chunk by chunk."""

    def __init__(self, n_rep: int, widths: dict[str, int]) -> None:
        self.shares = {f: np.zeros(n_rep * w, dtype=np.int64) for f, w in widths.items()}
        self.sequences = np.zeros(n_rep * widths["activity_type_share"] ** 2, dtype=np.int64)
        self.follow_ups = np.zeros(n_rep * 2, dtype=np.int64)  # (rep, within the days)
        self.log_sums = np.zeros((2, n_rep), dtype=np.float64)  # log1p(days), its square
        self.keys: list[np.ndarray] = []


def _coded_periods(
    codes: PracticeCodes,
    windows: dict[int, tuple[dt.date, dt.date]],
    *,
    rows: int = PERIOD_CODE_ROWS,
) -> dict[int, dict] | None:
    """For each window (days -> first and last day), :func:`practice_cells` and
    :func:`practice_gaps` of :func:`practice_in` of the practice facts over it, counted from
    ``codes`` by ``numpy.bincount`` of small integer keys (the rep's code times a level's
    width plus the level's code), ``rows`` touches at a time, instead of Polars group-bys of
    frames rebuilt with text: the frames of :func:`write_practice_periods` (``"shares"``,
    ``"sequences"``, ``"gap_reps"``: the same rows and values, whole-number counts; the sums of
    ``log1p(days)`` added in another order, equal within a few ``eps``; the rows in rep order,
    then feature and level in the codes' order: decided) and ``"gap_keys"`` (the follow-ups'
    sorted keys and the reps' ids, :func:`write_gap_key_runs`). A window reads its rows of the
    days; the type, weekday and hour counts of rows two windows share are made once.

    None when the codes hold no rep at all (no touch: a build without seller activities), a
    follow-up has no rep or seconds past 31 bits, a rep code lies outside the rep keys, or a
    weekday or hour is below -1: the frames then count them."""
    from effortlens.filters import day_number

    if not windows:
        return {}
    n_rep = codes.reps.height
    if n_rep == 0:  # no touch: nothing to count by rep (the tables would have no width)
        return None
    known = codes.reps.get_column("rep_id").drop_nulls()
    width = codes.types.len() + 1  # the last: none
    none = width - 1
    spans = codes.spans  # weekday and hour + 1: 0 (none) .. span - 1
    widths = {
        "activity_type_share": width,
        "weekday_share": spans["weekday"],
        "hour_share": spans["hour"],
    }
    slices = {d: codes.days(start, end) for d, (start, end) in windows.items()}
    firsts = {d: day_number(start) for d, (start, _) in windows.items()}
    counts = {d: _PeriodCounts(n_rep, widths) for d in windows}
    # the rows cut where any window starts or ends: each piece's type, weekday and hour
    # counts added to every window holding it
    bounds = sorted({b for s in slices.values() for b in (s.start, s.stop)})
    pieces = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
        for at in range(lo, hi, rows):
            pieces.append(slice(at, min(at + rows, hi)))
    for piece in pieces:
        holding = [d for d, s in slices.items() if s.start <= piece.start and piece.stop <= s.stop]
        if not holding:
            continue
        rep = codes.read("rep", piece).astype(np.int32)
        if rep.size and (int(rep.min()) < 0 or int(rep.max()) >= n_rep):
            return None
        kind = codes.read("type", piece)
        levels = {
            "activity_type_share": kind,
            "weekday_share": codes.read("weekday", piece),
            "hour_share": codes.read("hour", piece),
        }
        for feature in ("weekday_share", "hour_share"):
            value = levels[feature]
            if value.size and int(value.min()) < -1:
                return None
            levels[feature] = value.astype(np.int32) + 1
        for feature, level in levels.items():
            key = rep * widths[feature]
            key += level
            n = np.bincount(key, minlength=n_rep * widths[feature])
            for days in holding:
                counts[days].shares[feature] += n
        del levels, key, n
        seconds = codes.read("gap_seconds", piece)
        previous_day = codes.read("previous_day", piece)
        previous = codes.read("previous", piece)
        for days in holding:
            held = counts[days]
            # a previous touch before the window (or none): the view never sees it
            seen = previous_day >= firsts[days]
            followed = seen & (seconds >= 0)
            by_rep, gap = rep[followed], seconds[followed]
            if gap.size and (int(gap.max()) >= 2**31 or int(by_rep.max()) >= known.len()):
                return None
            key = by_rep * 2
            key += gap <= FOLLOW_UP_DAYS * _DAY_SECONDS
            held.follow_ups += np.bincount(key, minlength=n_rep * 2)
            logs = np.divide(gap, _DAY_SECONDS)
            np.log1p(logs, out=logs)
            held.log_sums[0] += np.bincount(by_rep, weights=logs, minlength=n_rep)
            logs *= logs
            held.log_sums[1] += np.bincount(by_rep, weights=logs, minlength=n_rep)
            key = by_rep.astype(np.int64) << 32
            key |= gap
            held.keys.append(key)
            del logs, key, by_rep, gap
            seen &= previous != none
            key = rep[seen] * (width * width)
            step = previous[seen].astype(np.int32)
            step *= width
            key += step
            key += kind[seen]
            held.sequences += np.bincount(key, minlength=held.sequences.size)
            del seen, followed, key, step
    return {d: _period_frames(counts.pop(d), codes, widths) for d in list(counts)}


def _period_frames(counts: _PeriodCounts, codes: PracticeCodes, widths: dict[str, int]) -> dict:
    """The frames of one window's :class:`_PeriodCounts` (:func:`_coded_periods`), a rep's
    rows together in the files' order (by ``rep_id``, none first)."""
    reps = codes.reps
    n_rep = reps.height
    width = widths["activity_type_share"]
    types = pl.concat([codes.types.cast(pl.String), pl.Series([None], dtype=pl.String)])
    # a rep code's place in the files' order (the codes' order but a rep without an id first)
    null = reps.get_column("rep_id").is_null().to_numpy()
    rank = np.empty(n_rep, dtype=np.int64)
    rank[np.argsort(~null, kind="stable")] = np.arange(n_rep)

    def by_rep(table: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # the held (rep, level) cells of a count table, in the files' rep order
        at = np.flatnonzero(table)
        at = at[np.argsort(rank[at // levels], kind="stable")]
        return at // levels, at % levels, table[at].astype(np.float64)

    def named(feature: str, level: np.ndarray) -> pl.Series:
        # each level code's name as _share_counts names the level values (only those held)
        if feature == "activity_type_share":
            return types.gather(pl.Series(level)).rename("level")
        if feature == "follow_up_share":
            within, after = f"within {FOLLOW_UP_DAYS:g} days", f"after {FOLLOW_UP_DAYS:g} days"
            return pl.Series("level", np.where(level == 1, within, after), pl.String)
        held = np.unique(level)
        value = pl.Series("level", held - 1, dtype=pl.Int8)  # code 0: none
        value = pl.select(pl.when(value >= 0).then(value).alias("level"))
        name = weekday_name("level") if feature == "weekday_share" else hour_name("level")
        names = value.select(name).to_series()
        return names.gather(pl.Series(np.searchsorted(held, level)))

    parts = []
    for feature, table in (*counts.shares.items(), ("follow_up_share", counts.follow_ups)):
        rep, level, n = by_rep(table, table.size // n_rep)
        parts.append((rep, feature, named(feature, level), n))
    rep = np.concatenate([np.zeros(0, np.int64), *(p[0] for p in parts)])
    order = np.argsort(rank[rep], kind="stable")  # the features' rows of a rep together
    cells = pl.DataFrame(
        {
            "feature": pl.concat(
                [pl.Series([f] * len(r), dtype=pl.String) for r, f, _, _ in parts]
            ),
            "level": pl.concat([p[2] for p in parts]),
            "n": np.concatenate([np.zeros(0), *(p[3] for p in parts)]),
        }
    )[pl.Series(order)]
    shares = pl.concat([reps[pl.Series(rep[order])], cells], how="horizontal")
    rep, pair, n = by_rep(counts.sequences, width * width)
    sequences = pl.concat(
        [
            reps[pl.Series(rep)],
            pl.DataFrame(
                {
                    "previous_type": types.gather(pl.Series(pair // width)),
                    "activity_type": types.gather(pl.Series(pair % width)),
                    "n": n,
                }
            ),
        ],
        how="horizontal",
    )
    follow_ups = counts.follow_ups.reshape(n_rep, 2).sum(axis=1)
    rep, _, n = by_rep(follow_ups, 1)
    del n
    gap_reps = pl.concat(
        [
            reps[pl.Series(rep)],
            pl.DataFrame(
                {
                    "follow_ups": pl.Series(follow_ups[rep], dtype=pl.UInt32),
                    "log_gap_sum": counts.log_sums[0][rep],
                    "log_gap_squares": counts.log_sums[1][rep],
                }
            ),
        ],
        how="horizontal",
    )
    keys = np.concatenate([np.zeros(0, np.int64), *counts.keys])
    counts.keys.clear()
    return {
        "shares": shares.select(_PERIOD_COLUMNS["shares"]),
        "sequences": sequences.select(_PERIOD_COLUMNS["sequences"]),
        "gap_reps": gap_reps.select(_PERIOD_COLUMNS["gap_reps"]),
        "gap_keys": (_sorted_keys(keys), reps.get_column("rep_id").drop_nulls()),
    }


def ranked_gap_keys(parts: Sequence[pl.LazyFrame]) -> tuple[np.ndarray, pl.Series] | None:
    """:class:`_GapKeys`' sorted keys of the follow-ups ``parts`` (scans of frames of
    :func:`practice_gaps`' ``"gaps"``, ``rep_id`` an ``Enum``), made as each part is read:
    the reps' ids are every part's categories sorted (read from the parts' schemas first), so
    each follow-up's key holds its rep's rank at once (a look-up of its part's code), in one
    array of every follow-up (the parts' row counts read first): no second pass to renumber,
    no copy to put the parts together. The reps' ids may name reps without a follow-up (no
    run of keys: :func:`write_gap_key_runs` and :func:`write_sorted_gap_keys` skip them).
    None when a part's ``rep_id`` is not an ``Enum``, or a follow-up has no rep or seconds
    outside 0..2**31 (then :class:`_GapKeys` sorts them)."""
    kinds = [part.collect_schema().get("rep_id") for part in parts]
    if not all(isinstance(kind, pl.Enum) for kind in kinds):
        return None
    names = (
        pl.concat([pl.Series("rep_id", [], pl.String), *(k.categories for k in kinds)])
        .unique()
        .sort()
    )
    sizes = [part.select(pl.len()).collect().item() for part in parts]
    keys = np.empty(sum(sizes), dtype=np.int64)
    at = 0
    for part, kind, size in zip(parts, kinds, sizes, strict=True):
        frame = part.collect()
        if frame.height != size:  # never: the part changed while read
            return None
        reps, seconds = frame.get_column("rep_id"), frame.get_column("gap_seconds")
        if size and (reps.null_count() or seconds.min() < 0 or seconds.max() >= 2**31):
            return None
        rank = kind.categories.cast(pl.Enum(names)).to_physical().to_numpy().astype(np.int64)
        key = keys[at : at + size]
        np.take(rank, reps.to_physical().to_numpy(), out=key, mode="clip")  # unbuffered
        key <<= 32
        key |= seconds.to_numpy().astype(np.int64)
        at += size
        del frame, reps, seconds, key
    return _sorted_keys(keys), names


def write_sorted_gap_keys(keys: np.ndarray, names: pl.Series, path, *, row_group_size: int) -> int:
    """:func:`sorted_gaps`' frame of the sorted follow-up ``keys`` (the rep's rank among
    ``names`` above the seconds) written to Parquet ``path`` as the build writes its files,
    the rep ids spelled a slice at a time (streaming): no text column of every follow-up."""
    from pathlib import Path

    from effortlens.facts import PARQUET_CODEC

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pl.LazyFrame(
        {
            "rank": pl.Series(keys >> 32, dtype=pl.Int64).cast(pl.UInt32),
            "gap_seconds": pl.Series((keys & 0xFFFFFFFF).astype(np.int32)),
        }
    ).select(
        rep_id=pl.lit(names.cast(pl.String)).gather(pl.col("rank")), gap_seconds="gap_seconds"
    ).sink_parquet(path, compression=PARQUET_CODEC, statistics=True, row_group_size=row_group_size)
    return len(keys)


def _sorted_gaps_of(gaps: pl.DataFrame) -> pl.DataFrame:
    """:func:`sorted_gaps` of ``gaps`` (``rep_id`` a category), sorted by one integer key (the
    rep's rank among the reps' sorted ids, then the seconds) instead of by text: the same
    frame (10m, a year's 5.2M follow-ups: 1.4 -> 0.6 CPU s). Follow-ups without a rep or
    with seconds outside 0..2**31 take :func:`sorted_gaps`."""
    reps, seconds = gaps.get_column("rep_id"), gaps.get_column("gap_seconds")
    if gaps.is_empty() or reps.null_count() or seconds.min() < 0 or seconds.max() >= 2**31:
        return sorted_gaps(gaps)
    names = reps.unique().cast(pl.String).sort()
    key = reps.cast(pl.Enum(names)).to_physical().to_numpy().astype(np.int64) << 32
    key |= seconds.to_numpy().astype(np.int64)
    key.sort()
    return pl.DataFrame(
        {
            "rep_id": names.gather(pl.Series(key >> 32)),
            "gap_seconds": pl.Series(key & 0xFFFFFFFF).cast(pl.Int32),
        }
    )


class PracticePeriod:
    """A build's practice cells and gap runs over one period preset
    (:func:`write_practice_periods`): a view over exactly that period keeps whole reps of the
    period's touches, so its what differs sums reps' rows (:class:`PracticeRepCells`) and
    finds medians from their runs (:class:`PracticeGapRuns`), as a view without a period.

    Examples
    --------
    >>> PracticePeriod(build / PRACTICE_PERIODS / "364").start  # doctest: +SKIP
    datetime.date(2025, 1, 2)
    """

    def __init__(self, folder) -> None:
        """Read the period's ends, its cells into arrays and map its runs."""
        import json
        from pathlib import Path

        folder = Path(folder)
        period = json.loads((folder / "period.json").read_text("utf-8"))
        self.start = dt.date.fromisoformat(period["start"])
        self.end = dt.date.fromisoformat(period["end"])
        self.rep_cells = PracticeRepCells(
            pl.read_parquet(folder / "shares.parquet"),
            pl.read_parquet(folder / "sequences.parquet"),
        )
        self.gap_reps = pl.read_parquet(folder / "gap_reps.parquet")
        self.runs = PracticeGapRuns(folder)


def practice_period_of(enriched, flt) -> PracticePeriod | None:
    """The build's :class:`PracticePeriod` whose window is exactly ``flt``'s period, or None
    (no period, another one, facts enriched in memory, a build written before them)."""
    from effortlens.facts import read_once

    if flt.start is None or flt.end is None:
        return None
    start, end = (d.date() if isinstance(d, dt.datetime) else d for d in (flt.start, flt.end))
    days = (end - start).days + 1
    if days not in PRACTICE_PERIOD_DAYS:
        return None
    needed = ("period.json", "shares.parquet", "sequences.parquet", "gap_reps.parquet")
    period = read_once(
        enriched, f"{PRACTICE_PERIODS}/{days}", (*needed, *_GAP_RUN_FILES), PracticePeriod
    )
    return period if period is not None and (period.start, period.end) == (start, end) else None


def what_differs_preset(
    enriched,
    deviance: pl.DataFrame,
    flt,
    *,
    direction: str = "positive",
    rep_ids: Sequence[str] | None = None,
    min_support: int = 100,
) -> pl.DataFrame | None:
    """:func:`what_differs_coded` of a filter whose period is one of the build's presets
    (:func:`practice_period_of`), from the period's per-rep cells and gap runs: the same
    table (whole-number counts; the moments of the days between touches summed by rep:
    equal within 1e-12). None when the build has no such period or the filter names
    activity types: the caller counts the period's touches instead.

    Examples
    --------
    >>> what_differs_preset(enriched, rep_deviance(view), flt)  # doctest: +SKIP
    """
    from effortlens.filters import filter_frame

    if flt.activity_types:
        return None
    period = practice_period_of(enriched, flt)
    if period is None:
        return None
    reps = replace(flt, start=None, end=None)  # whole reps of the period's touches
    gap_reps = period.gap_reps
    return what_differs_in(
        pl.LazyFrame(schema={"rep_id": pl.String}),  # not read: cells and gaps given
        deviance,
        direction=direction,
        rep_ids=rep_ids,
        min_support=min_support,
        rep_cells=period.rep_cells.kept(reps),
        gaps={
            "gaps": None,
            "all_gap_reps": gap_reps,
            "gap_reps": filter_frame(gap_reps, reps),
            "runs": period.runs,
        },
    )
