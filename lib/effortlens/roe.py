"""Return on effort: response rate, ROE, no-impact effort and silent streaks (DESIGN §5).

Every function reads enriched facts (:mod:`effortlens.enrich`): either the enriched
``activities`` (one row per activity) or the much smaller ``daily`` roll-up (one row per rep ×
day × activity type) — the results are the same, ``daily`` is what interactive views should
query. Only customer-facing activities count.

- **response rate**: share of customer-facing activities with at least one attributed buyer
  action (``responded / activities``);
- **ROE per 100**: attributed buyer-action weight per 100 customer-facing activities;
- **ROE per hour**: attributed buyer-action weight per customer-facing hour;
- **no-impact effort**: customer-facing activities, and their hours, that earned no buyer action;
- **silent streak**: a run of ``min_touches`` or more customer-facing touches to one contact with
  no buyer action by that contact between them.

A slice with no customer-facing activity has zero counts and null rates (never 0 % or NaN).

Examples
--------
>>> roe_by(enriched.daily, by=["team"])  # doctest: +SKIP
>>> roe_trend(enriched.daily, period="week", by=["team"], window=4)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from effortlens.measures import COUNTS as COUNTS
from effortlens.measures import METRIC_LABELS as METRIC_LABELS
from effortlens.measures import METRICS as METRICS
from effortlens.measures import with_rates

if TYPE_CHECKING:
    from effortlens.enrich import Enriched
    from effortlens.touch_build import PartTouches

#: Period columns a slice may use; ``month`` and ``quarter`` are derived from the local day.
PERIODS: dict[str, str] = {"day": "1d", "week": "1w", "month": "1mo", "quarter": "1q"}

#: ``effortlens roe --by`` choices and the columns they slice by.
ROE_TABLE_BY: dict[str, tuple[str, ...]] = {
    "rep": ("rep_id", "rep_name", "team", "peer_group"),
    "team": ("team",),
    "segment": ("segment",),
    "role": ("role",),
    "peer_group": ("peer_group",),
    "activity_type": ("activity_type",),
    "week": ("week",),
}


def _facts(frame: pl.DataFrame | pl.LazyFrame, by: Sequence[str]) -> pl.LazyFrame:
    """Customer-facing rows with the :data:`COUNTS` columns, from activities or daily rows."""
    lf = frame.lazy().filter(pl.col("is_customer_facing"))
    names = lf.collect_schema().names()
    if "activities" not in names:  # one row per activity
        lf = lf.with_columns(
            pl.lit(1, pl.UInt32).alias("activities"),
            pl.col("responded").cast(pl.UInt32),
            pl.when(pl.col("responded"))
            .then(0.0)
            .otherwise(pl.col("hours"))
            .alias("no_impact_hours"),
        )
    derived = [
        pl.col("day").dt.truncate(every).alias(name)
        for name, every in PERIODS.items()
        if name in by and name not in names
    ]
    return lf.with_columns(derived) if derived else lf


def _sums(frame: pl.DataFrame | pl.LazyFrame, by: Sequence[str]) -> pl.LazyFrame:
    sums = [
        pl.col("activities").sum().cast(pl.UInt32),
        pl.col("hours").sum(),
        pl.col("responded").sum().cast(pl.UInt32),
        pl.col("response_weight").sum(),
        pl.col("no_impact_hours").sum(),
    ]
    lf = _facts(frame, by)
    return lf.group_by(list(by)).agg(sums) if by else lf.select(sums)


def _zero_filled(lf: pl.LazyFrame) -> pl.LazyFrame:
    return lf.with_columns(
        pl.col("activities", "responded").fill_null(0),
        pl.col("hours", "response_weight", "no_impact_hours").fill_null(0.0),
    )


def roe_by(
    frame: pl.DataFrame | pl.LazyFrame,
    *,
    by: Sequence[str] = (),
    reps: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Response rate, ROE and no-impact effort for each slice of ``by``.

    Parameters
    ----------
    frame
        Enriched ``activities`` or ``daily`` rows, filtered as the view requires (never
        filter before :func:`effortlens.enrich.enrich`).
    by
        Slice columns, e.g. ``["rep_id"]``, ``["team", "week"]``, ``["activity_type"]``;
        ``month`` and ``quarter`` are derived from ``day``. Empty: one row for everything.
    reps
        When given (and ``by`` are reps columns such as ``rep_id``, ``team``, ``peer_group``),
        every rep group in ``reps`` gets a row, with zero counts if it had no activity.

    Returns
    -------
    pl.DataFrame
        ``by`` columns, :data:`COUNTS` (``activities`` and ``responded`` UInt32, the rest
        Float64) and :data:`METRICS`, sorted by ``by``.

    Examples
    --------
    >>> import polars as pl
    >>> acts = pl.DataFrame({"team": ["A", "A", "B"], "is_customer_facing": [True] * 3,
    ...     "hours": [0.5, 0.5, 1.0], "responded": [True, False, False],
    ...     "response_weight": [2.0, 0.0, 0.0]})
    >>> roe_by(acts, by=["team"]).select("team", "response_rate", "roe_per_100").rows()
    [('A', 0.5, 100.0), ('B', 0.0, 0.0)]
    """
    by = list(by)
    out = _sums(frame, by)
    if reps is not None:
        missing = [c for c in by if c not in reps.columns]
        if missing or not by:
            raise ValueError(f"reps can complete slices by reps columns only; not {missing or by}")
        out = _zero_filled(
            reps.lazy().select(by).unique().join(out, on=by, how="left", nulls_equal=True)
        )
    return with_rates(out).sort(by, nulls_last=True).collect(engine="in-memory")


def roe_trend(
    frame: pl.DataFrame | pl.LazyFrame,
    *,
    period: str = "week",
    by: Sequence[str] = (),
    window: int = 4,
    start: date | None = None,
    end: date | None = None,
) -> pl.DataFrame:
    """Metrics per ``period`` (and slice), with rolling values over the last ``window`` periods.

    Every period from ``start`` to ``end`` appears for every slice, with zero counts where
    there was no activity, so a rolling window always spans ``window`` calendar periods. The
    rolling metrics are ratios of rolling sums (an activity-weighted rolling mean): a quiet
    week weighs less than a busy one.

    Parameters
    ----------
    frame
        Enriched ``activities`` or ``daily`` rows.
    period
        ``"day"``, ``"week"``, ``"month"`` or ``"quarter"`` (local calendar).
    by
        Slice columns (one line per slice), e.g. ``["team"]``.
    window
        Number of periods in the rolling window (1 = no smoothing).
    start, end
        First and last period shown; default: the first and last with activity.

    Returns
    -------
    pl.DataFrame
        ``by``, ``period`` column, :data:`COUNTS`, :data:`METRICS`, and ``rolling_`` +
        counts and metrics; sorted by ``by`` then period.

    Examples
    --------
    >>> trend = roe_trend(enriched.daily, period="week", by=["team"])  # doctest: +SKIP
    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {list(PERIODS)}, got {period!r}")
    if window < 1:
        raise ValueError(f"window must be at least 1 period, got {window}")
    by = list(by)
    every = PERIODS[period]
    sums = _sums(frame, [*by, period]).collect(engine="in-memory")
    first = pl.lit(start).dt.truncate(every) if start else pl.col(period).min()
    last = pl.lit(end).dt.truncate(every) if end else pl.col(period).max()
    bounds = sums.select(first.alias("first"), last.alias("last")) if sums.height else None
    if bounds is None or bounds["first"].item() is None:
        grid = pl.DataFrame(schema={period: pl.Date})
    else:
        grid = pl.DataFrame(
            {
                period: pl.date_range(
                    bounds["first"].item(), bounds["last"].item(), every, eager=True
                )
            }
        )
    slices = sums.select(by).unique() if by else pl.DataFrame()
    full = slices.join(grid, how="cross") if by else grid
    counts = _zero_filled(
        full.lazy().join(sums.lazy(), on=[*by, period], how="left", nulls_equal=True)
    ).sort([*by, period], nulls_last=True)

    def rolling(column: str) -> pl.Expr:
        expr = pl.col(column).rolling_sum(window, min_samples=1)
        return (expr.over(by) if by else expr).alias(f"rolling_{column}")

    out = with_rates(counts).with_columns(rolling(c) for c in COUNTS)
    return with_rates(out, prefix="rolling_").collect(engine="in-memory")


def silent_streaks(
    activities: pl.DataFrame | pl.LazyFrame,
    actions: pl.DataFrame | pl.LazyFrame,
    *,
    min_touches: int = 4,
    last: Sequence[str] = (),
) -> pl.DataFrame:
    """Runs of ``min_touches`` or more customer-facing touches to one contact, unanswered.

    A run is the touches to a contact between two of that contact's buyer actions (or before
    the first, or after the last). A buyer action at the same instant as a touch counts as
    after it, as in attribution.

    Parameters
    ----------
    activities
        Enriched activities (``is_customer_facing``, ``contact_id``, ``ts``, ``rep_id``).
    actions
        Buyer actions (``contact_id``, ``ts``): canonical or enriched.
    min_touches
        Shortest run reported.
    last
        Further activity columns to report as they are on the run's last touch (e.g.
        ``["day"]``, its local day), after the columns below.

    Returns
    -------
    pl.DataFrame
        One row per streak: ``contact_id``, ``account_id``, ``rep_id`` (who made the last
        touch), ``touches`` (UInt32), ``reps`` (distinct reps touching), ``first_ts``,
        ``last_ts``, ``days`` (from first to last touch), ``ended_by_response`` (the contact
        acted after the last touch), then ``last``; longest first.

    Examples
    --------
    >>> silent_streaks(enriched.activities, enriched.actions, min_touches=5)  # doctest: +SKIP
    """
    if min_touches < 1:
        raise ValueError(f"min_touches must be at least 1, got {min_touches}")
    touches = (
        activities.lazy()
        .filter(pl.col("is_customer_facing") & pl.col("contact_id").is_not_null())
        .select(
            "contact_id",
            "ts",
            "rep_id",
            "account_id",
            *last,
            pl.lit(0, pl.UInt8).alias("kind"),
        )
    )
    schema = touches.collect_schema()
    answers = (
        actions.lazy()
        .filter(pl.col("contact_id").is_not_null())
        # only the contacts touched matter (a filtered view touches few of them)
        .join(touches.select("contact_id").unique(), on="contact_id", how="semi")
        .select(
            "contact_id",
            "ts",
            pl.lit(None, pl.String).alias("rep_id"),
            pl.lit(None, pl.String).alias("account_id"),
            *[pl.lit(None, schema[c]).alias(c) for c in last],
            pl.lit(1, pl.UInt8).alias("kind"),
        )
    )
    same_contact_next = pl.col("contact_id").shift(-1) == pl.col("contact_id")
    return (
        pl.concat([touches, answers])
        .sort("contact_id", "ts", "kind")
        .with_columns(
            # a run number that grows at every buyer action; with the contact it names a run
            run=pl.col("kind").cum_sum(),
            answered=(pl.col("kind").shift(-1) == 1) & same_contact_next,
        )
        .filter(pl.col("kind") == 0)
        .group_by("contact_id", "run")
        .agg(
            pl.col("account_id").first(),
            pl.col("rep_id").last(),
            pl.len().cast(pl.UInt32).alias("touches"),
            pl.col("rep_id").n_unique().cast(pl.UInt32).alias("reps"),
            pl.col("ts").first().alias("first_ts"),
            pl.col("ts").last().alias("last_ts"),
            pl.col("answered").last().fill_null(False).alias("ended_by_response"),
            *[pl.col(c).last() for c in last],
        )
        .filter(pl.col("touches") >= min_touches)
        .with_columns(_streak_days())
        .select(
            *STREAK_COLUMNS,
            *last,
        )
        .sort(["touches", "contact_id", "first_ts"], descending=[True, False, False])
        # measured at 10M activities: streaming 2.4 s, in-memory 2.9 s, same result
        .collect(engine="streaming")
    )


#: Shortest run kept by :func:`streak_facts` (the widest a view can ask for).
#: The columns of a silent streak, as the streak tables list them.
STREAK_COLUMNS = (
    "contact_id",
    "account_id",
    "rep_id",
    "touches",
    "reps",
    "first_ts",
    "last_ts",
    "days",
    "ended_by_response",
)
#: The columns a reader of stored streaks reads: ``days`` is made again from the first and last
#: touch, as :func:`silent_streaks` made it (the same value; decoding its stored column was
#: ~10-15% of reading a filter's streaks at 10M activities).
_STREAK_READ = tuple(c for c in STREAK_COLUMNS if c != "days")


def _streak_days() -> pl.Expr:
    """A streak's ``days``: from its first to its last touch."""
    return ((pl.col("last_ts") - pl.col("first_ts")).dt.total_seconds() / 86_400).alias("days")


STREAK_FACTS_MIN_TOUCHES = 2


def streak_facts(
    activities: pl.DataFrame | pl.LazyFrame,
    actions: pl.DataFrame | pl.LazyFrame,
    reps: pl.DataFrame | pl.LazyFrame,
    *,
    part: PartTouches | None = None,
    ordered: bool = True,
) -> pl.DataFrame:
    """Every silent streak of two or more touches over all the data, for the build to store.

    A view then lists streaks by filtering this small table (:func:`streaks_from_facts`)
    instead of sorting every touch in its filter. A streak is the run of touches to a contact
    by *anyone* between two of its buyer actions (:func:`silent_streaks` on all events); a
    filtered view lists the streaks whose last touch is in its filter: by that touch's rep
    (and the rep's team, segment, role) and its local ``day``.

    Parameters
    ----------
    activities, actions
        All enriched activities and buyer actions (as for :func:`silent_streaks`).
    reps
        Reps with ``rep_id``, ``team``, ``segment``, ``role``.
    part
        The touches of ``activities`` and the actions on a contact of ``actions`` read and
        coded already (:class:`effortlens.touch_build.PartTouches`; a build's pass over a
        partition shares them with the practice facts and the credit inputs).
    ordered
        In :func:`sort_streak_facts`' order (else in any order: a build that sorts the
        streaks of every partition together saves a sort per partition).

    Returns
    -------
    pl.DataFrame
        :func:`silent_streaks`' columns for ``min_touches=2``, plus ``day`` (local day of the
        last touch) and the last rep's ``team``, ``segment``, ``role``.

    Examples
    --------
    >>> facts = streak_facts(enriched.activities, enriched.actions, enriched.reps)  # doctest: +SKIP
    >>> streaks_from_facts(facts, min_touches=4)  # doctest: +SKIP
    """
    # silent_streaks(activities, actions, min_touches=2, last=("day",)) by integer arrays:
    # the touches ordered by (contact, time) with integer keys (shared with the practice facts
    # and the credit inputs: PartTouches), each touch's run the number of the contact's
    # actions before it (an action at a touch's instant comes after it), found by a binary
    # search in the actions' (contact, time) keys; runs cut and summed in numpy, text
    # gathered for the streaks only. The same rows (a contact's touches at one instant in the
    # order read, where silent_streaks leaves them undecided), ~3x less CPU than the frames
    from effortlens.touch_build import PartTouches, _spelled, time_steps

    part = part or PartTouches(activities, actions)
    touches = part.touches
    row = part.by_time[part.without_contact :]  # the touches on a contact, in contact order
    # their contacts and times: those in `order` (shared; it differs from by_time only among
    # rows equal on both)
    on = part.in_order("contact")[part.without_contact :]
    ts = part.in_order("ts")[part.without_contact :]
    # their reps (a null rep counts as one value), in `order` too: rows in another place than
    # in by_time's are in one run, so the (run, rep) pairs counted below are the same
    rep = part.in_order("rep_id")[part.without_contact :] + 1
    acting = part.answered
    acted = (
        part.acting,  # coded once (shared with the credit inputs)
        acting["ts"].to_physical().cast(pl.Int64).fill_null(np.iinfo(np.int64).min).to_numpy(),
    )
    steps, span = time_steps(np.concatenate([ts, acted[1]]))
    largest = max(int(on.max(initial=0)), int(acted[0].max(initial=0))) + 1
    if largest * span < 2**63:
        touch_key = on * span + steps[: len(ts)]
        action_key = np.sort(acted[0] * span + steps[len(ts) :])
        run = np.searchsorted(action_key, touch_key, side="left")  # the actions before
        answered = np.zeros(len(on), dtype=bool)  # the first action after is on the contact
        if len(action_key):
            following = action_key[np.minimum(run, len(action_key) - 1)]
            answered = (run < len(action_key)) & (following // span == on)
    else:  # keys past 64 bits: touches and actions in one sort (touch before action)
        contact = np.concatenate([on, acted[0]])
        events = _event_order(contact, np.concatenate([ts, acted[1]]), len(on))
        is_touch = events < len(on)
        sorted_contact = contact[events]
        same_next = np.r_[sorted_contact[1:] == sorted_contact[:-1], False]
        answered = (np.r_[~is_touch[1:], False] & same_next)[is_touch]
        run = np.cumsum(~is_touch)[is_touch]  # grows at every action: with the contact, a run
        moved = events[is_touch]  # as they were (the touches were in this order), but sure
        row, on, rep = row[moved], on[moved], rep[moved]
    starts = np.flatnonzero(np.r_[True, (on[1:] != on[:-1]) | (run[1:] != run[:-1])])
    ends = np.r_[starts[1:], len(row)] - 1
    kept = (ends - starts + 1) >= STREAK_FACTS_MIN_TOUCHES
    group = np.cumsum(np.r_[True, (on[1:] != on[:-1]) | (run[1:] != run[:-1])]) - 1
    rep_names, rep_code = part.coded("rep_id")
    pairs = pl.Series(group * (rep_names.len() + 1) + rep).unique()  # (run, rep) pairs
    distinct = pairs.to_numpy() // (rep_names.len() + 1)
    rep_counts = np.bincount(distinct, minlength=len(starts))
    first, last = pl.Series(row[starts[kept]]), pl.Series(row[ends[kept]])
    contacts = part.contact_names
    streaks = pl.DataFrame(
        {
            "contact_id": contacts.gather(pl.Series(on[starts[kept]] - 1)),
            "account_id": touches["account_id"].gather(first),
            # as text (an Enum of the enrichment's codes spelled: its reps present)
            "rep_id": _spelled(rep_names, rep_code[row[ends[kept]]], "rep_id"),
            "touches": pl.Series((ends - starts + 1)[kept], dtype=pl.UInt32),
            "reps": pl.Series(rep_counts[kept], dtype=pl.UInt32),
            "first_ts": touches["ts"].gather(first),
            "last_ts": touches["ts"].gather(last),
        }
    ).with_columns(
        _streak_days(),
        ended_by_response=pl.Series(answered[ends[kept]]),
        day=touches["day"].gather(last),
    )
    rep_columns = reps.lazy().select("rep_id", "team", "segment", "role").unique("rep_id")
    with_reps = streaks.lazy().join(rep_columns, on="rep_id", how="left")
    return sort_streak_facts(with_reps) if ordered else with_reps.collect()


def _event_order(contact: np.ndarray, ts: np.ndarray, n_touches: int) -> np.ndarray:
    """The stable order of events by (``contact``, ``ts``, touch before action): the first
    ``n_touches`` are touches, the rest actions; one integer sort when the key fits in int64,
    else a sort by (``ts``, kind) then a stable radix sort of ``contact``
    (:func:`effortlens.touch_build.radix_order`)."""
    if not len(contact):
        return np.zeros(0, np.int64)
    kind = np.arange(len(contact)) >= n_touches
    low, span = int(ts.min()), int(ts.max()) - int(ts.min()) + 1
    if (int(contact.max()) + 1) * span * 2 < 2**63:
        return np.argsort((contact * span + (ts - low)) * 2 + kind, kind="stable")
    from effortlens.touch_build import radix_order

    # too many contacts for one key: by (ts, kind), then stably by contact in radix passes
    if span * 2 < 2**63:
        by_time = np.argsort((ts - low) * 2 + kind, kind="stable")
    else:
        by_time = np.lexsort((kind, ts))
    return by_time[radix_order(contact[by_time])]


def sort_streak_facts(frame: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Put streak facts in the order a build stores them (:func:`streak_facts` ends with it).

    A build that finds streaks piece by piece (per partition of contacts) concatenates the
    pieces and calls this, so that both paths store the same rows in the same order:
    longest first, then by ``contact_id`` and ``first_ts``. :func:`streak_index` relies on it.

    Parameters
    ----------
    frame
        Streak facts (:func:`streak_facts`' columns), in any order; lazy or not.

    Returns
    -------
    pl.DataFrame
        The same rows, sorted and collected.

    Examples
    --------
    >>> import polars as pl
    >>> rows = pl.DataFrame({"touches": [2, 5, 5], "contact_id": ["c", "b", "a"],
    ...                      "first_ts": [1, 2, 3]})
    >>> sort_streak_facts(rows.lazy())["contact_id"].to_list()
    ['a', 'b', 'c']
    """
    return (
        frame.lazy()
        .sort(["touches", "contact_id", "first_ts"], descending=[True, False, False])
        .collect()
    )


def streaks_from_facts(
    facts: pl.DataFrame | pl.LazyFrame, *, min_touches: int = 4, top: int | None = None
) -> pl.DataFrame:
    """:func:`silent_streaks`' table from :func:`streak_facts` (filtered as the view needs).

    Parameters
    ----------
    facts
        :func:`streak_facts` rows, or a lazy scan of them, already filtered.
    min_touches
        Shortest run reported (at least :data:`STREAK_FACTS_MIN_TOUCHES`).
    top
        Keep only this many, the longest (an org of 2,000 reps has hundreds of thousands).

    Returns
    -------
    pl.DataFrame
        As :func:`silent_streaks`, longest first.

    Examples
    --------
    >>> streaks_from_facts(enriched.aggregates["streaks"], min_touches=5)  # doctest: +SKIP
    """
    if min_touches < STREAK_FACTS_MIN_TOUCHES:
        raise ValueError(
            f"the built streaks hold runs of {STREAK_FACTS_MIN_TOUCHES} touches or more, "
            f"not {min_touches}"
        )
    longest = (
        facts.lazy()
        .filter(pl.col("touches") >= min_touches)
        .select(*_STREAK_READ)
        .sort(["touches", "contact_id", "first_ts"], descending=[True, False, False])
    )
    longest = longest if top is None else longest.head(top)
    return longest.with_columns(_streak_days()).select(STREAK_COLUMNS).collect()


#: Rows per row group of the stored streak facts (:func:`write_streak_facts`).
STREAK_ROW_GROUP = 65_536


def write_streak_facts(frame: pl.DataFrame, path: str | Path) -> None:
    """Write :func:`streak_facts` (in :func:`sort_streak_facts`' order) as a build stores them:
    in the build's codec (:data:`effortlens.facts.PARQUET_CODEC`, LZ4), in row groups of
    :data:`STREAK_ROW_GROUP` rows.

    The ROE page reads a filter's longest streaks from this file on every filter change, a
    few row slices (:func:`streaks_at`) or a filtered scan. Written with zstd in row groups of
    262,144 rows, each group's ``contact_id`` and ``account_id`` were dictionary-encoded and
    zstd-compressed, and reading any row of a group cost 15-25 ms (a scan for one rep
    ~100-170 ms at 10M activities). Groups of 65,536 rows hold too many distinct contacts for
    Polars to dictionary-encode them, and LZ4 decompresses several times faster: a slice
    costs ~4 ms and the scan for one rep ~30 ms (the file is ~35% larger: 48 MB against 35).

    Parameters
    ----------
    frame
        The streak facts (or one part of them, for a build written in parts).
    path
        The Parquet file to write (its folder is made).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_streak_facts(pl.DataFrame({"touches": [3, 2]}), folder / "streaks.parquet")
    >>> pl.read_parquet(folder / "streaks.parquet")["touches"].to_list()
    [3, 2]
    """
    from effortlens.facts import PARQUET_CODEC  # one codec for every build file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(
        path, compression=PARQUET_CODEC, statistics=True, row_group_size=STREAK_ROW_GROUP
    )


#: The shortest runs :func:`rep_ordered_streaks` holds (a ROE page's default, its index's).
STREAK_BY_REP_TOUCHES = 4
#: Rows per row group of :func:`rep_ordered_streaks` as a build stores them: a team's ~4,300
#: streaks of 4+ touches at 10M activities lie in one or two groups, each decoded in a fraction
#: of the ~2-3 ms a group of :data:`STREAK_ROW_GROUP` rows costs.
STREAK_BY_REP_GROUP = 8_192


def rep_ordered_streaks(
    facts: pl.DataFrame | pl.LazyFrame, *, teams: Sequence[str | None] | None = None
) -> pl.DataFrame:
    """The stored streaks of :data:`STREAK_BY_REP_TOUCHES` or more touches again, ordered by
    the last touch's team and rep (then as stored), each with its ``position`` in ``facts``.

    The build writes them beside :func:`streak_facts` (``streaks_by_rep``): one rep's longest
    streaks lie all along the stored streaks (in 9 of the 13 row groups of 4+ touches at 10M
    activities) and a team's in several; here a rep's or a team's lie together, in a group or
    two of :data:`STREAK_BY_REP_GROUP` rows (:func:`streaks_read`).

    Parameters
    ----------
    facts
        The build's :func:`streak_facts`, in :func:`sort_streak_facts`' order (as stored).
    teams
        Only the streaks of these teams (None: a streak without one), for a build that writes
        the copy a range of teams at a time (in team order, nulls last, the parts are the
        whole); all when None.

    Returns
    -------
    pl.DataFrame
        ``position`` (UInt32, the row in ``facts``) and the columns a reader reads
        (:func:`silent_streaks`' but ``days``), by ``team``, ``rep_id`` and ``position``.

    Examples
    --------
    >>> rows = pl.DataFrame({"contact_id": ["a", "b", "c"], "account_id": ["x"] * 3,
    ...     "rep_id": ["r2", "r1", "r2"], "touches": [9, 5, 2], "reps": [1, 1, 1],
    ...     "first_ts": [1, 2, 3], "last_ts": [4, 5, 6], "ended_by_response": [False] * 3,
    ...     "team": ["T"] * 3})
    >>> rep_ordered_streaks(rows)["position"].to_list()
    [1, 0]
    """
    kept = pl.col("touches") >= STREAK_BY_REP_TOUCHES
    if teams is not None:
        named = pl.col("team").is_in([t for t in teams if t is not None])
        kept &= (named | pl.col("team").is_null()) if None in teams else named
    return (
        facts.lazy()
        .with_row_index("position")
        .filter(kept)
        .sort(["team", "rep_id", "position"], nulls_last=True)
        .select(pl.col("position").cast(pl.UInt32), *_STREAK_READ)
        .collect()
    )


def write_rep_ordered_streaks(frame: pl.DataFrame, path: str | Path) -> None:
    """Write :func:`rep_ordered_streaks` as a build stores them: the build's codec, row groups
    of :data:`STREAK_BY_REP_GROUP` rows.

    Examples
    --------
    >>> write_rep_ordered_streaks(rep_ordered_streaks(stored),
    ...                           folder / "streaks_by_rep.parquet")  # doctest: +SKIP
    """
    from effortlens.facts import PARQUET_CODEC  # one codec for every build file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(
        path, compression=PARQUET_CODEC, statistics=True, row_group_size=STREAK_BY_REP_GROUP
    )


#: The columns of the streak facts a page filter reads that are the last rep's (one value per
#: ``rep_id``: :func:`streak_facts` joins them from the reps).
STREAK_REP_COLUMNS = ("team", "segment", "role")


def streak_index(
    facts: pl.LazyFrame, *, min_touches: int = 4, by_rep: pl.LazyFrame | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Where each streak of ``min_touches`` or more lies in :func:`streak_facts` as a build
    stores them (longest first), with what a page filter reads: 16 bytes a streak.

    A page makes it once per load; a filter change then finds the positions of its longest
    streaks here and reads only those rows (:func:`streaks_at`) instead of filtering and
    sorting every stored streak.

    Parameters
    ----------
    facts
        The build's :func:`streak_facts` (one file, sorted longest first), lazily scanned.
    min_touches
        Shortest run indexed.
    by_rep
        The build's :func:`rep_ordered_streaks` of ``facts``, lazily scanned, if it has them:
        the index then also says where each streak lies there (``by_rep``).

    Returns
    -------
    tuple of pl.DataFrame
        The index: ``position`` (the row of ``facts``), ``touches``, ``rep_id``
        (categorical), ``day`` and (with ``by_rep``) ``by_rep``, the row there, in the order
        of ``facts``; and each ``rep_id``'s ``team``, ``segment`` and ``role`` (a filter on
        those keeps the reps it names).

    Examples
    --------
    >>> index, reps = streak_index(precomputed(enriched, "streaks"))  # doctest: +SKIP
    >>> kept = filter_frame(reps, flt, day_column="__none__")["rep_id"]  # doctest: +SKIP
    """
    names = facts.collect_schema().names()
    extra = [c for c in STREAK_REP_COLUMNS if c in names]
    # read a stored row group at a time: the text columns of every indexed streak decoded at
    # once were a ~75 MB transient of the ROE page's first draw at 10M activities (863k
    # streaks); a group's are ~5 MB, and only its categorical rep codes are kept
    parts, reps = [], []
    stored = facts.select(pl.len()).collect().item()
    for offset in range(0, stored, STREAK_ROW_GROUP):
        rows = (
            facts.slice(offset, STREAK_ROW_GROUP)
            .select("touches", "rep_id", "day", *extra)
            .with_row_index("position", offset=offset)
            .filter(pl.col("touches") >= min_touches)
            .collect()
        )
        reps.append(rows.select("rep_id", *extra).unique())
        parts.append(_index_columns(rows))
    if not parts:  # no stored streak: the empty index, with its columns
        rows = facts.select("touches", "rep_id", "day", *extra).with_row_index("position")
        parts, reps = [_index_columns(rows.collect())], [rows.select("rep_id", *extra).collect()]
    index = pl.concat(parts)
    if by_rep is not None and min_touches >= STREAK_BY_REP_TOUCHES:
        index = _with_rep_rows(index, by_rep)
    return index, pl.concat(reps).unique()


def _with_rep_rows(index: pl.DataFrame, by_rep: pl.LazyFrame) -> pl.DataFrame:
    """``index`` with ``by_rep``, each streak's row in the rep-ordered streaks (their
    ``position`` column inverted); ``index`` as it is if they do not hold every one."""
    positions = by_rep.select("position").collect()["position"].to_numpy()
    wanted = index["position"].to_numpy()
    if wanted.size and (positions.size == 0 or wanted.max() > positions.max()):
        return index
    rows = np.full(positions.max() + 1 if positions.size else 0, -1, dtype=np.int64)
    rows[positions] = np.arange(positions.size)
    at = rows[wanted]
    if (at < 0).any():
        return index
    return index.with_columns(by_rep=pl.Series(at, dtype=pl.UInt32))


def _index_columns(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.select("position", "touches", pl.col("rep_id").cast(pl.Categorical), "day")


def streak_positions(
    index: tuple[pl.DataFrame, pl.DataFrame], flt, *, min_touches: int, top: int
) -> pl.Series:
    """The positions in the stored streaks of the ``top`` longest of ``min_touches`` or more
    that the page filter ``flt`` keeps (by the last touch's rep and day), longest first.

    Examples
    --------
    >>> streak_positions(streak_index(stored), Filter(teams=("North",)), min_touches=4,
    ...                  top=1000)  # doctest: +SKIP
    """
    return streak_rows(index, flt, min_touches=min_touches, top=top)["position"]


def streak_rows(
    index: tuple[pl.DataFrame, pl.DataFrame], flt, *, min_touches: int, top: int
) -> pl.DataFrame:
    """:func:`streak_positions` with, if the index has them, the streaks' rows in the
    rep-ordered streaks (``by_rep``).

    Examples
    --------
    >>> streak_rows(streak_index(stored, by_rep=ordered), Filter(reps=("r1",)),
    ...             min_touches=4, top=1000)  # doctest: +SKIP
    """
    from effortlens.filters import filter_frame

    rows, reps = index
    wanted = pl.col("touches") >= min_touches
    if flt.reps or flt.teams or flt.segments or flt.roles:
        kept = filter_frame(reps, flt, day_column="__none__", ignore=("activity_types",))
        wanted &= pl.col("rep_id").is_in(kept["rep_id"].cast(pl.String).implode())
    if flt.start is not None:
        wanted &= pl.col("day") >= flt.start
    if flt.end is not None:
        wanted &= pl.col("day") <= flt.end
    return (
        rows.lazy()
        .filter(wanted)
        .head(top)
        .select("position", *(["by_rep"] if "by_rep" in rows.columns else []))
        .collect()
    )


def streaks_read(
    built: pl.LazyFrame,
    index: tuple[pl.DataFrame, pl.DataFrame],
    flt,
    *,
    min_touches: int,
    top: int,
    group_rows: int,
    sliced_groups: int,
    by_rep: pl.LazyFrame | None = None,
) -> pl.DataFrame | None:
    """The ``top`` longest streaks the page filter ``flt`` keeps, read by position from
    whichever stored copy decodes fewer rows: the rep-ordered streaks (``by_rep``, a rep's or
    a team's lie together, in groups of :data:`STREAK_BY_REP_GROUP` rows) or the stored
    streaks (``built``, longest first, groups of ``group_rows``); None when that would be
    more than ``sliced_groups`` groups of ``built`` (filtering every stored streak costs
    less). The same rows in the same order as :func:`streaks_from_facts` of the filtered
    streaks.

    Examples
    --------
    >>> streaks_read(stored, streak_index(stored, by_rep=ordered), Filter(reps=("r1",)),
    ...              min_touches=4, top=1000, group_rows=65_536, sliced_groups=5,
    ...              by_rep=ordered)  # doctest: +SKIP
    """
    rows = streak_rows(index, flt, min_touches=min_touches, top=top)
    groups = _groups(rows["position"], group_rows)  # as many as streaks_at's slices
    by_reps = flt.reps or flt.teams or flt.segments or flt.roles  # else spread over all reps
    if by_rep is not None and by_reps and "by_rep" in rows.columns:
        # at 10M activities one rep's 1,000 longest lie in 9 groups of the stored streaks
        # (~2-3 ms each to decode) and in one of the rep-ordered ones
        ordered = rows.sort("by_rep")
        slices = _groups(ordered["by_rep"], STREAK_BY_REP_GROUP)
        if slices * STREAK_BY_REP_GROUP < min(groups, sliced_groups) * group_rows:
            read = streaks_at(by_rep, ordered["by_rep"], group_rows=STREAK_BY_REP_GROUP)
            return read[ordered["position"].arg_sort()]
    if groups <= sliced_groups:
        return streaks_at(built, rows["position"], group_rows=group_rows)
    return None


def streaks_at(facts: pl.LazyFrame, positions: pl.Series, *, group_rows: int) -> pl.DataFrame:
    """:func:`silent_streaks`' columns of the rows of ``facts`` at ``positions`` (ascending).

    The rows wanted from one stored row group (``group_rows`` rows each) are read as one
    slice: decoding a row group's text columns is most of what reading any of its rows costs.

    Examples
    --------
    >>> streaks_at(precomputed(enriched, "streaks"), pl.Series([0, 1, 5]),
    ...            group_rows=262_144)  # doctest: +SKIP
    """
    slices = streak_slices(positions, group_rows=group_rows)
    if not slices:
        return facts.select(*STREAK_COLUMNS).head(0).collect()
    parts = [facts.slice(start, length).select(*_STREAK_READ) for start, length in slices]
    rows = pl.concat(parts).collect()
    wanted, values, i, at = [], positions.to_list(), 0, 0
    for start, length in slices:  # both ascending: each position's row in ``rows``
        while i < len(values) and values[i] < start + length:
            wanted.append(at + values[i] - start)
            i += 1
        at += length
    return rows[wanted].lazy().with_columns(_streak_days()).select(STREAK_COLUMNS).collect()


def _groups(positions: pl.Series, group_rows: int) -> int:
    """How many row groups of ``group_rows`` rows ``positions`` lie in."""
    return int(np.unique(positions.to_numpy() // group_rows).size)


def streak_slices(positions: pl.Series, *, group_rows: int) -> list[tuple[int, int]]:
    """``(start, length)`` of the row ranges :func:`streaks_at` reads for ``positions``: one
    for those in each stored row group of ``group_rows`` rows.

    Examples
    --------
    >>> streak_slices(pl.Series([0, 2, 40_000, 70_000]), group_rows=65_536)
    [(0, 40001), (70000, 1)]
    """
    ranges: list[tuple[int, int]] = []
    for p in positions.to_list():
        if ranges and p // group_rows == ranges[-1][0] // group_rows:
            ranges[-1] = (ranges[-1][0], p - ranges[-1][0] + 1)
        else:
            ranges.append((p, 1))
    return ranges


def roe_table(enriched: Enriched, *, by: str = "rep") -> pl.DataFrame:
    """The table ``effortlens roe DATA --by …`` prints: ROE by rep, team, activity type….

    Parameters
    ----------
    enriched
        An :class:`effortlens.enrich.Enriched`.
    by
        One of :data:`ROE_TABLE_BY` (``rep``, ``team``, ``segment``, ``role``,
        ``peer_group``, ``activity_type``, ``week``). By rep, every rep is listed, idle
        ones with zero activities.

    Returns
    -------
    pl.DataFrame
        The slice columns, ``activities``, ``hours``, ``responded``, ``response_weight``,
        ``response_rate``, ``roe_per_100``, ``roe_per_hour``, ``no_impact_activities``,
        ``no_impact_hours``, ``no_impact_share``.

    Examples
    --------
    >>> roe_table(enriched, by="team")  # doctest: +SKIP
    """
    if by not in ROE_TABLE_BY:
        raise ValueError(f"--by must be one of {list(ROE_TABLE_BY)}, got {by!r}")
    columns = list(ROE_TABLE_BY[by])
    if by == "rep":
        # summed by rep_id alone, then the rep's name, team and peer group joined onto the
        # small result: grouping the daily roll-up by four text keys costs ~0.5 GB at 10M
        per_rep = roe_by(enriched.daily, by=["rep_id"], reps=enriched.reps)
        names = enriched.reps.select(columns).unique("rep_id", keep="first", maintain_order=True)
        table = names.join(per_rep, on="rep_id", how="left").sort(columns, nulls_last=True)
    else:
        table = roe_by(enriched.daily, by=columns)
    return table.select(
        *columns,
        *COUNTS[:4],
        *METRICS[:3],
        "no_impact_activities",
        "no_impact_hours",
        "no_impact_share",
    )
