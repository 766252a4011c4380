"""Habits and patterns: which timings, cadences and sequences of touches earn buyer response.

All functions read the *enriched* activities (see :mod:`effortlens.enrich`): one row per
activity with ``is_customer_facing``, ``responded``, and ``weekday``/``hour`` already in the
settings' time zone. Only customer-facing activities count as touches; the response of a touch
is ``responded`` (at least one buyer action attributed to it).

Definitions
-----------
- **Timing**: response rate per activity type x ISO weekday (Mon=1) x local hour, with volumes.
- **Cadence**: for each touch on a contact, the days elapsed since the previous touch on the
  same contact (by any rep), binned ``0-1, 2-3, 4-7, 8-14, 15-30, 31+``; the first touch on a
  contact is its own bin (``first touch``). Touches without a contact are left out.
- **Sequences**: the activity types of the last *k* touches on a contact ending with the touch
  whose response is measured (``call → email`` = an email whose previous touch on the contact
  was a call), all within ``within_days`` of the first of them. ``lift = P(response |
  sequence) / P(response)``, where ``P(response)`` is the rate of all touches that have a
  length-*k* history; ``lift_over_type`` divides instead by the rate of touches of the same
  final type with such a history, i.e. what the preceding touches add. Sequences are ranked
  by ``lift_over_type`` by default: plain lift mostly restates that meetings and demos are
  answered more often than emails, whatever came before them.
- **Beyond noise**: :func:`response_homogeneity` is Pearson's chi-square test that the response
  rate is the same in every cell, summed over strata (e.g. within each activity type) so that
  a different type mix across cells is not mistaken for a timing or cadence effect.

Examples
--------
>>> from effortlens.habits import response_by_cadence
>>> response_by_cadence(enriched.activities)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import polars as pl

from effortlens.enrich import events
from effortlens.measures import pooled_response_rate, response_rate, touch_counts
from effortlens.vocabulary import FIRST_TOUCH as FIRST_TOUCH
from effortlens.vocabulary import SEQUENCE_SEPARATOR, hour_name, weekday_name

if TYPE_CHECKING:
    from effortlens.enrich import Enriched

#: Left edges (days) of the cadence bins after ``0-1``: 0-1, 2-3, 4-7, 8-14, 15-30, 31+.
CADENCE_EDGES: tuple[int, ...] = (2, 4, 8, 15, 31)


def _touches(activities: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Customer-facing activities only."""
    return activities.lazy().filter(pl.col("is_customer_facing"))


def _with_lift(frame: pl.DataFrame, overall_rate: float | None) -> pl.DataFrame:
    lift = pl.col("response_rate") / overall_rate if overall_rate else pl.lit(None)
    return frame.with_columns(lift=lift.cast(pl.Float64))


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """``numerator / denominator``, null where the denominator is zero (no lift defined)."""
    return pl.when(denominator > 0).then(numerator / denominator)


def wilson_interval(
    *, responded: str = "responded", trials: str = "activities", level: float = 0.95
) -> list[pl.Expr]:
    """Wilson score interval of the rate ``responded / trials``: ``rate_low``, ``rate_high``.

    Examples
    --------
    >>> frame = pl.DataFrame({"responded": [20], "activities": [100]})
    >>> [round(v, 3) for v in frame.select(wilson_interval()).row(0)]
    [0.133, 0.289]
    """
    from effortlens.normal import normal_ppf  # scipy's norm.ppf without importing scipy

    z = normal_ppf(0.5 + level / 2)
    n = pl.col(trials).cast(pl.Float64)
    rate = pl.col(responded) / n
    centre = (rate + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * (rate * (1 - rate) / n + z**2 / (4 * n**2)).sqrt() / (1 + z**2 / n)
    return [(centre - half).alias("rate_low"), (centre + half).alias("rate_high")]


def _overall_rate(lf: pl.LazyFrame) -> float | None:
    row = lf.select(pl.col("responded").mean()).collect().item()
    return None if row is None else float(row)


def response_by_timing(
    activities: pl.DataFrame | pl.LazyFrame,
    *,
    by: Sequence[str] = ("activity_type", "weekday", "hour"),
) -> pl.DataFrame:
    """Response rate of customer-facing touches per activity type x weekday x local hour.

    Parameters
    ----------
    activities
        Enriched activities (needs ``is_customer_facing``, ``responded`` and the ``by``
        columns; ``weekday`` is ISO, Mon=1, and ``hour`` is local, as enrichment writes them).
    by
        The cells. Drop ``"activity_type"`` for a weekday x hour grid over all types.

    Returns
    -------
    pl.DataFrame
        The ``by`` columns, ``activities`` (volume), ``responded``, ``response_rate``,
        ``lift`` (cell rate over the rate of all touches) and, when ``activity_type`` is one
        of ``by``, ``lift_over_type`` (over the rate of all touches of the cell's type: the
        timing effect without the type's own rate), sorted by the ``by`` columns.

    Examples
    --------
    >>> response_by_timing(enriched.activities, by=["weekday", "hour"])  # doctest: +SKIP
    """
    touches = _touches(activities)
    cells = touch_counts(touches, by=by).sort(list(by)).collect()
    cells = _with_lift(cells, _overall_rate(touches))
    if "activity_type" not in by:
        return cells
    type_rate = pooled_response_rate("activity_type")
    return cells.with_columns(lift_over_type=_ratio(pl.col("response_rate"), type_rate))


def _cadence_labels(edges: Sequence[int]) -> list[str]:
    lows = [0, *edges]
    labels = [f"{lo}-{hi - 1}" for lo, hi in zip(lows[:-1], edges, strict=True)]
    return [*labels, f"{edges[-1]}+"]


def _contact_history(
    activities: pl.DataFrame | pl.LazyFrame, depth: int, *, keep: Sequence[str] = ()
) -> pl.LazyFrame:
    """Touches on a known contact in time order, with the ``depth`` previous touches' types and
    timestamps on the same contact (``prev_type_1``, ``prev_ts_1``, ...)."""
    ordered = (
        _touches(activities)
        .select(
            *dict.fromkeys(["activity_id", "contact_id", "ts", "activity_type", "responded", *keep])
        )
        .filter(pl.col("contact_id").is_not_null())
        .sort("contact_id", "ts", "activity_id")
    )
    previous = []
    for k in range(1, depth + 1):
        # rows are sorted by contact: a plain shift is the previous touch when the contact matches
        same_contact = pl.col("contact_id").shift(k) == pl.col("contact_id")
        previous += [
            pl.when(same_contact).then(pl.col(column).shift(k)).alias(f"prev_{name}_{k}")
            for column, name in (("activity_type", "type"), ("ts", "ts"))
        ]
    return ordered.with_columns(previous)


def response_by_cadence(
    activities: pl.DataFrame | pl.LazyFrame,
    *,
    edges: Sequence[int] = CADENCE_EDGES,
    by: Sequence[str] = (),
) -> pl.DataFrame:
    """Response rate against the days since the previous touch on the same contact.

    Parameters
    ----------
    activities
        Enriched activities (``contact_id``, ``ts``, ``activity_type``, ``activity_id``,
        ``is_customer_facing``, ``responded``).
    edges
        Ascending whole-day left edges of the bins after the first; the default gives
        ``0-1, 2-3, 4-7, 8-14, 15-30, 31+`` (a gap of 1.9 days is in ``0-1``).
    by
        Extra grouping columns, e.g. ``["activity_type"]``.

    Returns
    -------
    pl.DataFrame
        ``by`` columns, ``cadence_bin`` (``first touch`` then the bins in order),
        ``bin_order`` (0 = first touch), ``min_days_since`` (bin's lower edge, null for the
        first touch), ``activities``, ``responded``, ``response_rate``, ``lift`` (over all
        touches on known contacts). Empty bins are omitted.

    Examples
    --------
    >>> response_by_cadence(enriched.activities)  # doctest: +SKIP
    """
    edges = _checked_edges(edges)
    touches = _contact_history(activities, 1, keep=by).with_columns(bin_order=_bin_order(edges))
    return _cadence_cells(touches, edges=edges, by=by)


def _checked_edges(edges: Sequence[int]) -> list[int]:
    edges = list(edges)
    if not edges or any(b <= a for a, b in zip([0, *edges], edges, strict=False)):
        raise ValueError(f"edges must be ascending positive whole days, got {edges}")
    return edges


def _bin_order(edges: Sequence[int]) -> pl.Expr:
    """The cadence bin of a touch from ``prev_ts_1`` (0 = first touch on the contact)."""
    days_since = (pl.col("ts") - pl.col("prev_ts_1")).dt.total_seconds() / 86_400
    return (
        pl.when(pl.col("prev_ts_1").is_null())
        .then(0)
        .otherwise(1 + pl.sum_horizontal([days_since >= e for e in edges]))
        .cast(pl.Int8)
    )


def _cadence_cells(
    touches: pl.LazyFrame, *, edges: Sequence[int], by: Sequence[str] = (), weighted: bool = False
) -> pl.DataFrame:
    """Counts per cadence bin of touches on known contacts that carry ``bin_order`` (or of
    :func:`touch_cells`' weighted cells: ``n`` touches, ``responded`` of them)."""
    labels = [FIRST_TOUCH, *_cadence_labels(edges)]
    lower = pl.DataFrame(
        {
            "bin_order": pl.Series(range(len(labels)), dtype=pl.Int8),
            "cadence_bin": labels,
            "min_days_since": [None, 0, *edges],
        },
        schema_overrides={"min_days_since": pl.Int32},
    )
    counts = _counted if weighted else (lambda frame, by: touch_counts(frame, by=by))
    cells = (
        counts(touches, [*by, "bin_order"])
        .join(lower.lazy(), on="bin_order", how="left")
        .select(
            *by,
            "cadence_bin",
            "bin_order",
            "min_days_since",
            "activities",
            "responded",
            "response_rate",
        )
        .sort([*by, "bin_order"])
        .collect()
    )
    return _with_lift(cells, _pooled_rate(touches) if weighted else _overall_rate(touches))


def sequence_lift(
    activities: pl.DataFrame | pl.LazyFrame,
    *,
    lengths: Sequence[int] = (2, 3),
    within_days: float = 14,
    min_support: int = 50,
    rank_by: str = "lift_over_type",
) -> pl.DataFrame:
    """Short sequences of activity types on a contact, ranked by lift of the last touch's
    response over chance.

    Parameters
    ----------
    activities
        Enriched activities (as for :func:`response_by_cadence`).
    lengths
        Sequence lengths to count (each at least 2).
    within_days
        All touches of a sequence fall within this many days of its first touch.
    min_support
        Fewest touches a sequence needs to be listed.
    rank_by
        ``"lift_over_type"`` (default: what the earlier touches add to the last one) or
        ``"lift"`` (over all touches with such a history).

    Returns
    -------
    pl.DataFrame
        ``sequence`` (types joined by `` → ``, the measured touch last), ``length``,
        ``support`` (touches ending such a sequence), ``responded``, ``response_rate``,
        ``base_rate`` (all touches with a length-*k* history), ``lift``, ``type_rate`` and
        ``lift_over_type`` (against touches of the same last type with such a history),
        sorted by ``rank_by`` (descending), then support.

    Examples
    --------
    >>> sequence_lift(enriched.activities, lengths=[2], min_support=50)  # doctest: +SKIP
    """
    if rank_by not in ("lift", "lift_over_type"):
        raise ValueError(f"rank_by must be 'lift' or 'lift_over_type', got {rank_by!r}")
    lengths = sorted(set(lengths))
    if not lengths or lengths[0] < 2:
        raise ValueError(f"sequence lengths must be at least 2, got {list(lengths)}")
    history = _contact_history(activities, lengths[-1] - 1).collect().lazy()
    eligible = {
        k: history.filter(_sequence(k, within_days).is_not_null()).select(
            sequence=_sequence(k, within_days), activity_type="activity_type", responded="responded"
        )
        for k in lengths
    }
    return _rank_sequences(eligible, min_support=min_support, rank_by=rank_by)


def _sequence(k: int, within_days: float) -> pl.Expr:
    """The length-``k`` sequence ending with a touch of :func:`_contact_history`, or null when
    it has no such history within ``within_days``."""
    first_ts = pl.col(f"prev_ts_{k - 1}")
    span_days = (pl.col("ts") - first_ts).dt.total_seconds() / 86_400
    types = [pl.col(f"prev_type_{j}") for j in range(k - 1, 0, -1)]
    return pl.when(first_ts.is_not_null() & (span_days <= within_days)).then(
        pl.concat_str([*types, pl.col("activity_type")], separator=SEQUENCE_SEPARATOR)
    )


def _rank_sequences(
    eligible: dict[int, pl.LazyFrame], *, min_support: int, rank_by: str, weighted: bool = False
) -> pl.DataFrame:
    """:func:`sequence_lift`'s table from the touches with a length-k history (``sequence``,
    ``activity_type``, ``responded``), per length k; or from :func:`touch_cells`' weighted
    cells (``n`` touches, ``responded`` of them)."""
    per_length = []
    for k, touches in eligible.items():
        if weighted:
            by_type = _counted(touches, ["activity_type"])
            support = pl.col("n").sum().cast(pl.UInt32)
            base = _pooled_rate(touches)
        else:
            by_type = touch_counts(touches, by=["activity_type"])
            support = pl.len().cast(pl.UInt32)
            base = touches.select(pl.col("responded").mean()).collect().item()
        by_type = by_type.select("activity_type", type_rate=pl.col("response_rate"))
        per_length.append(
            touches.group_by("sequence")
            .agg(
                support=support,
                responded=pl.col("responded").sum().cast(pl.UInt32),
                activity_type=pl.col("activity_type").first(),
            )
            .with_columns(
                response_rate(activities="support"),
                length=pl.lit(k, dtype=pl.Int8),
                base_rate=pl.lit(base, dtype=pl.Float64),
            )
            .join(by_type, on="activity_type", how="left")
        )
    return (
        pl.concat(per_length)
        .filter(pl.col("support") >= min_support)
        .with_columns(
            lift=_ratio(pl.col("response_rate"), pl.col("base_rate")),
            lift_over_type=_ratio(pl.col("response_rate"), pl.col("type_rate")),
        )
        .select(
            "sequence",
            "length",
            "support",
            "responded",
            "response_rate",
            "base_rate",
            "lift",
            "type_rate",
            "lift_over_type",
        )
        .sort([rank_by, "support", "sequence"], descending=[True, True, False], nulls_last=True)
        .collect()
    )


def response_homogeneity(
    cells: pl.DataFrame,
    *,
    over: Sequence[str],
    strata: Sequence[str] = (),
    min_activities: int = 1,
) -> dict[str, Any]:
    """Chi-square test that the response rate is equal across cells (within each stratum).

    Within each stratum, Pearson's chi-square of the 2 x k table (responded, not responded) x
    cells; the statistics and degrees of freedom of independent strata add up.

    Parameters
    ----------
    cells
        An aggregated frame with ``activities`` and ``responded`` per cell, such as
        :func:`response_by_timing` or :func:`response_by_cadence` return.
    over
        The columns that identify a cell within a stratum, e.g. ``["weekday", "hour"]``.
    strata
        Columns that split the test, e.g. ``["activity_type"]``.
    min_activities
        Cells with fewer activities are left out before testing (chosen on volume only, so
        the test stays valid); a stratum left with fewer than two cells adds nothing.

    Returns
    -------
    dict
        ``chi2``, ``dof``, ``p_value`` (``nan`` when nothing could be tested), ``cells``
        (cells tested).

    Examples
    --------
    >>> cells = response_by_timing(enriched.activities)  # doctest: +SKIP
    >>> response_homogeneity(
    ...     cells, over=["weekday", "hour"], strata=["activity_type"]
    ... )  # doctest: +SKIP
    """
    from scipy import stats

    strata = list(strata)
    group = strata or [pl.lit(0).alias("_stratum")]
    tested = (
        cells.lazy()
        .group_by([*strata, *over])
        .agg(
            pl.col("activities").sum().cast(pl.Float64), pl.col("responded").sum().cast(pl.Float64)
        )
        .filter(pl.col("activities") >= min_activities)
        .with_columns(
            stratum_rate=(pl.col("responded").sum() / pl.col("activities").sum()).over(group),
            n_cells=pl.len().over(group),
        )
        .filter(
            (pl.col("n_cells") >= 2) & (pl.col("stratum_rate") > 0) & (pl.col("stratum_rate") < 1)
        )
    )
    expected = pl.col("activities") * pl.col("stratum_rate")
    # (observed - expected)^2 / expected, for the responded and the silent column of the table
    squared_gap = (pl.col("responded") - expected) ** 2
    chi2_terms = squared_gap / expected + squared_gap / (pl.col("activities") - expected)
    summary = tested.select(
        chi2=chi2_terms.sum(),
        cells=pl.len(),
        strata=pl.struct(group).n_unique() if strata else pl.len().clip(upper_bound=1),
    ).collect()
    n_cells, n_strata = summary["cells"].item(), summary["strata"].item()
    dof = int(n_cells - n_strata)
    chi2 = float(summary["chi2"].item() or 0.0)
    p_value = float(stats.chi2.sf(chi2, dof)) if dof > 0 else float("nan")
    return {"chi2": chi2, "dof": dof, "p_value": p_value, "cells": int(n_cells)}


#: Joins the activity type, weekday and hour of a timing cell in ``habits_table``.
TIMING_SEPARATOR = " · "


def _timing_label() -> pl.Expr:
    return pl.concat_str(
        [pl.col("activity_type"), weekday_name(), hour_name()], separator=TIMING_SEPARATOR
    )


def _with_bounds(frame: pl.DataFrame, *, trials: str) -> pl.DataFrame:
    """Add ``lift``-like bounds over ``type_rate``: the 95% Wilson limits of the rate divided
    by the rate of the activity type. Ranking by them lets volume count: a cell of 60
    touches needs a far higher rate than one of 2,000 to be called best."""
    return frame.with_columns(wilson_interval(trials=trials)).with_columns(
        lift_low=_ratio(pl.col("rate_low"), pl.col("type_rate")),
        lift_high=_ratio(pl.col("rate_high"), pl.col("type_rate")),
    )


def rank_habits(
    timing: pl.DataFrame,
    cadence: pl.DataFrame,
    sequences: pl.DataFrame,
    *,
    min_activities: int = 50,
    top: int = 5,
) -> pl.DataFrame:
    """Rank already computed habit tables into the headline habits (see :func:`habits_table`).

    Parameters
    ----------
    timing
        :func:`response_by_timing` by activity type, weekday and hour.
    cadence
        :func:`response_by_cadence`.
    sequences
        :func:`sequence_lift` (ranked by ``lift_over_type``).
    min_activities, top
        As in :func:`habits_table`.

    Returns
    -------
    pl.DataFrame
        As :func:`habits_table`.

    Examples
    --------
    >>> acts = enriched.activities  # doctest: +SKIP
    >>> rank_habits(response_by_timing(acts), response_by_cadence(acts),
    ...             sequence_lift(acts))  # doctest: +SKIP
    """
    columns = ["finding", "pattern", "activities", "responded", "response_rate", "lift"]
    ranked = _with_bounds(
        timing.with_columns(
            type_rate=pooled_response_rate("activity_type"),
            lift=pl.col("lift_over_type"),
        ),
        trials="activities",
    ).filter(pl.col("activities") >= min_activities)
    best = ranked.sort(["lift_low", "activities"], descending=True, nulls_last=True).head(top)
    worst = (
        ranked.join(best, on=["activity_type", "weekday", "hour"], how="anti")
        .sort(["lift_high", "activities"], descending=[False, True], nulls_last=True)
        .head(top)
    )
    timing_rows = [
        frame.with_columns(finding=pl.lit(name), pattern=_timing_label())
        for name, frame in (("best timing", best), ("worst timing", worst))
    ]
    cadence_rows = cadence.with_columns(
        finding=pl.lit("cadence"), pattern=pl.col("cadence_bin").cast(pl.String)
    )
    sequence_rows = (
        _with_bounds(sequences, trials="support")
        .sort(["lift_low", "support"], descending=True, nulls_last=True)
        .head(top)
        .with_columns(
            finding=pl.lit("sequence"),
            pattern="sequence",
            activities="support",
            lift="lift_over_type",
        )
    )
    return pl.concat(
        [frame.select(columns) for frame in (*timing_rows, cadence_rows, sequence_rows)],
        how="vertical_relaxed",
    )


def habits_table(
    enriched: Enriched,
    *,
    min_activities: int = 50,
    top: int = 5,
    min_support: int = 50,
    within_days: float = 14,
) -> pl.DataFrame:
    """The headline habits for the command line: best and worst timing cells, every cadence
    bin, the top sequences.

    Parameters
    ----------
    enriched
        An :class:`effortlens.enrich.Enriched` (its ``activities`` are used).
    min_activities
        Fewest touches a timing cell needs to be ranked.
    top
        How many best and worst timing cells, and how many sequences.
    min_support, within_days
        As in :func:`sequence_lift`.

    Returns
    -------
    pl.DataFrame
        ``finding`` (``best timing``, ``worst timing``, ``cadence``, ``sequence``),
        ``pattern`` (e.g. ``call · Tue · 10:00``, ``8-14`` days since the previous touch,
        ``call → email``), ``activities``, ``responded``, ``response_rate``, ``lift``.
        Timing cells and sequences are measured against touches of the same activity type
        (their ``lift`` is ``lift_over_type``), so that a cell or sequence is not "best"
        merely for being a meeting; a cadence bin's lift is over all touches. Best cells
        and sequences are ranked by the lower 95% (Wilson) limit of that lift, worst cells
        by the upper limit, so a small cell needs a larger difference to be listed.

    Examples
    --------
    >>> habits_table(enriched, top=3)  # doctest: +SKIP
    """
    activities = events(enriched, "activities")
    return rank_habits(
        response_by_timing(activities),
        response_by_cadence(activities),
        sequence_lift(activities, min_support=min_support, within_days=within_days),
        min_activities=min_activities,
        top=top,
    )


# ------------------------------------------------------------- credit not biased by last touch

#: Lag bins (hours after a touch) of the response-lag density, up to the attribution window.
LAG_EDGES_HOURS: tuple[float, ...] = (0, 1, 3, 6, 12, 24, 48, 96, 168, 336)
#: Local-hour bands of a touch; each band has its own lag density (an evening touch is
#: answered next morning, a morning touch within hours).
HOUR_BANDS: tuple[int, ...] = (11, 15)
#: Earlier touches on the contact that may have caused a buyer action (the latest first).
MAX_CANDIDATES = 8
#: A habit is named only when its credited rate differs from what its activity type predicts
#: by at least this factor (or its inverse) *and* the test rejects (Bonferroni over cells).
MIN_HABIT_LIFT = 1.2
#: Fewest touches a cell needs to be tested (a rep-clustered error needs many reps' touches).
MIN_HABIT_ACTIVITIES = 200
HABIT_ALPHA = 0.05


def _habit_cells(feature: str) -> list[str]:
    """The columns naming a habit cell of ``feature``."""
    if feature == "timing":
        return ["weekday", "hour"]
    if feature == "cadence":
        return ["bin_order"]
    raise ValueError(f"feature must be 'timing' or 'cadence', got {feature!r}")


def habit_effects(
    enriched: Enriched,
    *,
    feature: str = "timing",
    edges: Sequence[int] = CADENCE_EDGES,
    window_days: float | None = None,
    iterations: int = 60,
    min_lift: float = MIN_HABIT_LIFT,
    min_activities: int = MIN_HABIT_ACTIVITIES,
    alpha: float = HABIT_ALPHA,
) -> pl.DataFrame:
    """Timing or cadence habits measured by an estimate that last-touch attribution does
    not bias.

    Last-touch attribution credits a buyer action to the latest touch before it, so a quick
    follow-up is credited with answers to the touch before it, and a late-day touch with
    overnight answers to the day's earlier touches: on data with no habit at all, the
    ``0-1`` day cadence bin and some timing cells look better than they are. Here each buyer
    action on a contact is instead shared among *all* touches on that contact in the window
    before it, in proportion to how likely each was to cause it: its cell's response rate
    times the density of the lag since it (an expectation-maximisation fit of a Poisson
    mixture: every touch adds its own chance of an answer, spread over the days after it,
    and buyers also act unprompted). The lag density is learnt from the data, separately
    for touches in the morning, around midday and late in the day (:data:`HOUR_BANDS`);
    a touch near the end of the data counts only the part of its window the data covers.

    Each cell is compared with what its activity-type mix predicts (indirect
    standardisation): ``lift = credited / expected``, so a cell is not "best" for being full
    of meetings. The test is a z of the credited count against the expected one, with a
    standard error clustered by rep (a rep's touches share buyers and habits), Bonferroni
    over the cells with at least ``min_activities`` touches (smaller cells are shown, not
    tested); a cell is named (``flag``) only when that test rejects at ``alpha`` *and* its
    lift is at least ``min_lift`` (or at most ``1 / min_lift``).

    Parameters
    ----------
    enriched
        An :class:`effortlens.enrich.Enriched` (``activities`` and ``actions``).
    feature
        ``"timing"`` (weekday x local hour) or ``"cadence"`` (days since the previous touch
        on the contact, binned as :func:`response_by_cadence`).
    edges
        Cadence bin edges.
    window_days
        Longest lag credited; default the settings' attribution window.
    iterations
        EM iterations.
    min_lift, min_activities, alpha
        The flag rule: cells with fewer touches are shown but not tested.

    Returns
    -------
    pl.DataFrame
        The cell columns (``weekday``, ``hour``; or ``cadence_bin``, ``bin_order``,
        ``min_days_since``), ``activities``, ``credited`` (buyer actions credited), ``expected``
        (from the activity types), ``lift``, ``effect_rate`` (credited per touch),
        ``z``, ``p_value`` (Bonferroni), ``flag`` (``better``, ``worse`` or null), sorted by the
        cell columns.

    Examples
    --------
    >>> habit_effects(enriched, feature="cadence").select("cadence_bin", "lift")  # doctest: +SKIP
    """
    window = float(window_days or enriched.settings.attribution_window_days)
    per_touch = _touch_credit(
        events(enriched, "activities"),
        events(enriched, "actions"),
        feature=feature,
        edges=edges,
        window=window,
        iterations=iterations,
    )
    return _effects_table(
        per_touch.lazy(),
        feature=feature,
        edges=edges,
        min_lift=min_lift,
        min_activities=min_activities,
        alpha=alpha,
    )


def _touch_credit(
    activities: pl.LazyFrame,
    actions: pl.LazyFrame,
    *,
    feature: str,
    edges: Sequence[int],
    window: float,
    iterations: int,
) -> pl.DataFrame:
    """Each touch on a known contact with its cell and the buyer actions credited to it
    (``activity_id``, ``rep_id``, ``activity_type``, the cell columns, ``credited``)."""
    cells = _habit_cells(feature)
    touches = (
        _touches(activities)
        .filter(pl.col("contact_id").is_not_null())
        .select("activity_id", "rep_id", "contact_id", "ts", "activity_type", "weekday", "hour")
        .sort("contact_id", "ts", "activity_id")
        .collect()
    )
    if feature == "cadence":
        gap = (pl.col("ts") - pl.col("ts").shift(1)).dt.total_seconds() / 86_400
        same = pl.col("contact_id") == pl.col("contact_id").shift(1)
        touches = touches.with_columns(
            bin_order=pl.when(same)
            .then(1 + pl.sum_horizontal([gap >= e for e in edges]))
            .otherwise(0)
            .cast(pl.Int8)
        )
    keep = ["activity_id", "rep_id", "activity_type", *cells]
    if touches.height == 0:
        return touches.select(keep).with_columns(credited=pl.lit(0.0))
    pairs = candidate_pairs(touches, actions, window=window)
    pair_touch, pair_action, pair_lag = pairs.touch, pairs.action, pairs.lag
    ts_hours, end = pairs.ts_hours, pairs.end
    stratum = touches.select(
        code=pl.concat_str(["activity_type", *cells], separator="|")
        .cast(pl.Categorical)
        .to_physical()
    )["code"].to_numpy()
    band = np.searchsorted(np.asarray(HOUR_BANDS), touches["hour"].to_numpy(), side="right")
    left = np.minimum(-ts_hours, window * 24)
    span_hours = (end - touches["ts"].min()).total_seconds() / 3600.0
    from effortlens.touch_build import credit_em  # the one fit (it imports this module)

    rate, credit = credit_em(
        stratum.astype(np.int64),
        band.astype(np.int64),
        left,
        pair_action,
        pair_touch,
        pair_lag,
        pairs.actions,
        touches["contact_id"].n_unique() * span_hours,
        iterations=iterations,
    )
    # as floats when no pair was credited too (np.bincount then gives integers)
    credited = np.bincount(pair_touch, weights=credit, minlength=touches.height)
    return touches.select(keep).with_columns(credited=pl.Series(credited, dtype=pl.Float64))


class CandidatePairs(NamedTuple):
    """Each buyer action's candidate touches (:func:`candidate_pairs`)."""

    touch: np.ndarray  #: the touch's row
    action: np.ndarray  #: the action's number (actions sorted by contact, then time)
    lag: np.ndarray  #: hours from the touch to the action
    ts_hours: np.ndarray  #: each touch's time, in hours before ``end``
    end: Any  #: the latest touch or action
    actions: int  #: actions on a known contact


def candidate_pairs(
    touches: pl.DataFrame,
    actions: pl.LazyFrame,
    *,
    window: float,
    touch_key: np.ndarray | None = None,
) -> CandidatePairs:
    """The touches that may have earned each buyer action, for the habit credit fits: the
    latest touch at or before the action on its contact and up to :data:`MAX_CANDIDATES` - 1
    before it, within ``window`` days.

    ``touches`` are sorted by contact, then time (``contact_id``, ``ts``); ``touch_key``
    numbers their contacts (any values equal exactly where the contacts are; default: the
    contact ids themselves). One home for :func:`habit_effects`' event path and the build's
    :func:`effortlens.touch_build.build_touch_facts`.

    Examples
    --------
    >>> import datetime as dt
    >>> t = [dt.datetime(2025, 1, 6, h) for h in (9, 10, 12)]
    >>> touches = pl.DataFrame({"contact_id": ["c", "c", "c"], "ts": t})
    >>> actions = pl.LazyFrame({"contact_id": ["c"], "ts": [dt.datetime(2025, 1, 6, 11)]})
    >>> pairs = candidate_pairs(touches, actions, window=14)
    >>> pairs.touch.tolist(), pairs.lag.tolist()
    ([1, 0], [1.0, 2.0])
    """
    actions = (
        actions.filter(pl.col("contact_id").is_not_null())
        .select("contact_id", action_ts="ts")
        .sort("contact_id", "action_ts")
        .collect()
        .with_row_index("action")
    )
    end = max(touches["ts"].max(), actions["action_ts"].max() or touches["ts"].max())
    latest = actions.join_asof(
        touches.select("contact_id", "ts").with_row_index("row"),
        left_on="action_ts",
        right_on="ts",
        by="contact_id",
        strategy="backward",
        check_sortedness=False,
    ).filter(pl.col("row").is_not_null())
    key = touches["contact_id"].to_numpy() if touch_key is None else touch_key
    return pairs_before(
        latest["row"].to_numpy().astype(np.int64),
        latest["action"].to_numpy().astype(np.int64),
        latest["action_ts"],
        touches["ts"],
        key=key,
        end=end,
        window=window,
        actions=actions.height,
    )


def pairs_before(
    last_row: np.ndarray,
    action: np.ndarray,
    action_ts: pl.Series,
    ts: pl.Series,
    *,
    key: np.ndarray,
    end: Any,
    window: float,
    actions: int,
) -> CandidatePairs:
    """:func:`candidate_pairs` from each action's latest touch at or before it on its
    contact: ``last_row`` (the touch's row; touches sorted by contact, then time), ``action``
    (the action's number) and ``action_ts`` of the actions that have one; ``ts`` the
    touches' times, ``key`` their contacts' numbers, ``end`` the latest touch or action,
    ``actions`` the actions on a known contact.

    Each step back is taken only by the actions whose touch one step nearer was a candidate:
    the touches run by contact, then time (null times first), so a touch of another contact,
    a null time or one past the window ends an action's candidates (3.5M events: ~0.5M
    actions x 8 steps -> a few steps of those with more). Each step's pairs are in action
    order.

    Examples
    --------
    >>> import datetime as dt
    >>> t = pl.Series([dt.datetime(2025, 1, 6, h) for h in (9, 10, 12)])
    >>> acted = pl.Series([dt.datetime(2025, 1, 6, 11)])
    >>> latest, action, key = np.array([1]), np.array([0]), np.zeros(3)
    >>> pairs = pairs_before(latest, action, acted, t, key=key, end=t.max(), window=14, actions=1)
    >>> pairs.touch.tolist(), pairs.lag.tolist()
    ([1, 0], [1.0, 2.0])
    """
    ts_hours = (ts - end).dt.total_seconds().to_numpy() / 3600.0
    action_hours = (action_ts - end).dt.total_seconds().to_numpy() / 3600.0
    action_key = key[last_row]
    rows, act, lag = [], [], []
    for k in range(MAX_CANDIDATES):
        g = last_row - k
        ok = g >= 0
        g_safe = np.where(ok, g, 0)
        ok &= key[g_safe] == action_key
        delay = action_hours - ts_hours[g_safe]
        ok &= (delay >= 0) & (delay <= window * 24)
        rows.append(g_safe[ok])
        act.append(action[ok])
        lag.append(delay[ok])
        if not ok.all():  # the others have no candidate further back
            last_row, action = last_row[ok], action[ok]
            action_hours, action_key = action_hours[ok], action_key[ok]
    return CandidatePairs(
        np.concatenate(rows), np.concatenate(act), np.concatenate(lag), ts_hours, end, actions
    )


def _effects_table(
    per_touch: pl.LazyFrame,
    *,
    feature: str,
    edges: Sequence[int],
    min_lift: float,
    min_activities: int,
    alpha: float,
) -> pl.DataFrame:
    """:func:`habit_effects`' table from credited touches (``rep_id``, ``activity_type``, the
    cell columns, ``credited``; with ``n``, rows that stand for ``n`` touches), summed per
    cell, rep and type first (no per-touch frame)."""
    cells = _habit_cells(feature)
    weight = "n" in per_touch.collect_schema().names()
    per_type = (
        per_touch.group_by([*cells, "rep_id", "activity_type"])
        .agg(
            n=pl.col("n").sum().cast(pl.UInt32) if weight else pl.len(),
            credited=pl.col("credited").sum(),
        )
        .filter(pl.col("n") > 0)
        .collect(engine="streaming")
    )
    # each touch is expected the mean credit of its activity type (indirect standardisation)
    type_mean = pl.col("credited").sum().over("activity_type") / pl.col("n").sum().over(
        "activity_type"
    )
    per_type = per_type.with_columns(expected=pl.col("n") * type_mean).with_columns(
        excess=pl.col("credited") - pl.col("expected")
    )
    # the spread of a cell's excess credit, clustered by rep: a rep's touches share buyers
    # and habits, so they are not independent draws
    by_rep = per_type.group_by(*cells, "rep_id").agg(pl.col("excess").sum())
    spread = by_rep.group_by(cells).agg(
        variance=(pl.col("excess") ** 2).sum() * pl.len() / (pl.len() - 1).clip(lower_bound=1)
    )
    table = (
        per_type.group_by(cells)
        .agg(
            activities=pl.col("n").sum().cast(pl.UInt32),
            credited=pl.col("credited").sum(),
            expected=pl.col("expected").sum(),
        )
        .join(spread, on=cells, how="left")
    )
    return _effects_finish(
        table,
        feature=feature,
        edges=edges,
        min_lift=min_lift,
        min_activities=min_activities,
        alpha=alpha,
    )


def _effects_finish(
    table: pl.DataFrame,
    *,
    feature: str,
    edges: Sequence[int],
    min_lift: float,
    min_activities: int,
    alpha: float,
) -> pl.DataFrame:
    """:func:`habit_effects`' table from its sums per cell (the cell columns, ``activities``,
    ``credited``, ``expected`` and the rep-clustered ``variance`` of the excess credit),
    worked out in numpy (a page redraws it on every filter change)."""
    cells = _habit_cells(feature)
    table = table.sort(cells)
    stats = _effect_stats(
        table["credited"].cast(pl.Float64).to_numpy(),
        table["expected"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        table["variance"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        table["activities"].to_numpy(),
        min_lift=min_lift,
        min_activities=min_activities,
        alpha=alpha,
    )
    if feature == "cadence":
        table = table.with_columns(_cadence_columns(table["bin_order"].to_list(), list(edges)))
        cells = ["cadence_bin", "bin_order", "min_days_since"]
    return table.select(*cells, "activities", "credited", "expected").with_columns(stats)


def _effect_stats(
    credited: np.ndarray,
    expected: np.ndarray,
    variance: np.ndarray,
    activities: np.ndarray,
    *,
    min_lift: float,
    min_activities: int,
    alpha: float,
) -> list[pl.Series]:
    """:func:`_effects_finish`' columns ``lift``, ``effect_rate``, ``z``, ``p_value`` and
    ``flag`` of the cells' sums, in numpy."""
    from effortlens.normal import normal_sf_array  # without importing scipy

    with np.errstate(divide="ignore", invalid="ignore"):
        # null where the denominator is not positive (as _ratio)
        lift = np.where(expected > 0, credited / expected, np.nan)
        effect_rate = credited / activities
        spread = np.sqrt(variance)
        z = np.where(spread > 0, (credited - expected) / spread, np.nan)
    tested = activities >= min_activities
    p = np.minimum(1.0, 2 * normal_sf_array(np.abs(np.nan_to_num(z))) * max(int(tested.sum()), 1))
    p = np.where(tested, p, np.nan)
    significant = p < alpha
    flag = np.where(
        significant & (lift >= min_lift),
        "better",
        np.where(significant & (lift <= 1 / min_lift), "worse", ""),
    )
    return [
        pl.Series("lift", lift, dtype=pl.Float64, nan_to_null=True),
        pl.Series("effect_rate", effect_rate, dtype=pl.Float64),
        pl.Series("z", z, dtype=pl.Float64, nan_to_null=True),
        pl.Series("p_value", p, dtype=pl.Float64, nan_to_null=True),
        pl.Series("flag", [f or None for f in flag.tolist()], dtype=pl.String),
    ]


def _cadence_columns(order: list[int | None], edges: list[int]) -> list[pl.Series]:
    """``cadence_bin`` and ``min_days_since`` of the cadence bins ``order`` (``bin_order``)."""
    labels = [FIRST_TOUCH, *_cadence_labels(edges)]
    lower = [None, 0, *edges]
    known = [b is not None and 0 <= b < len(labels) for b in order]
    return [
        pl.Series(
            "cadence_bin",
            [labels[b] if k else None for b, k in zip(order, known, strict=True)],
            dtype=pl.String,
        ),
        pl.Series(
            "min_days_since",
            [lower[b] if k else None for b, k in zip(order, known, strict=True)],
            dtype=pl.Int32,
        ),
    ]


# ------------------------------------------------------- precomputed at build time, per touch

#: Sequence lengths and window stored by :func:`touch_facts` (the views' defaults).
TOUCH_SEQUENCE_LENGTHS: tuple[int, ...] = (2, 3)
TOUCH_SEQUENCE_DAYS: float = 14


def touch_facts(enriched: Enriched, *, iterations: int = 60) -> pl.DataFrame:
    """One row per customer-facing touch with everything the habit views group by, computed
    once over all the data (the build stores it: a view then filters and sums, never sorts).

    The history-dependent columns are those of the whole data: the cadence bin is the days
    since the previous touch on the contact *by anyone* (as :func:`response_by_cadence`
    defines it), a sequence is the contact's last touches by anyone, and the credit comes from
    one :func:`habit_effects` fit over every touch. A filtered view counts the touches in its
    filter with those values; on the whole data the tables are the event path's.

    Parameters
    ----------
    enriched
        All the enriched facts.
    iterations
        EM iterations of the credit (as :func:`habit_effects`).

    Returns
    -------
    pl.DataFrame
        ``rep_id``, ``team``, ``segment``, ``role``, ``day``, ``activity_type``, ``weekday``,
        ``hour``, ``responded``; for touches on a known contact (else null): ``bin_order``
        (cadence bin, 0 = first touch), ``sequence_2`` and ``sequence_3`` (the sequence of
        that length ending here, null without such a history within
        :data:`TOUCH_SEQUENCE_DAYS`), ``credit_timing`` and ``credit_cadence`` (buyer actions
        credited by the timing and cadence fits). Sorted by day and rep.

    Examples
    --------
    >>> facts = touch_facts(enriched)  # doctest: +SKIP
    >>> touch_habits(facts.lazy())["cadence"]  # doctest: +SKIP
    """
    acts = events(enriched, "activities")
    rep_cols = ["rep_id", "team", "segment", "role"]
    calendar = ["day", "activity_type", "weekday", "hour", "responded"]
    depth = max(TOUCH_SEQUENCE_LENGTHS) - 1
    on_contact = (
        _contact_history(acts, depth, keep=[*rep_cols, *calendar])
        .with_columns(
            bin_order=_bin_order(CADENCE_EDGES),
            **{f"sequence_{k}": _sequence(k, TOUCH_SEQUENCE_DAYS) for k in TOUCH_SEQUENCE_LENGTHS},
        )
        .collect()
    )
    window = float(enriched.settings.attribution_window_days)
    for feature in ("timing", "cadence"):
        credit = _touch_credit(
            acts,
            events(enriched, "actions"),
            feature=feature,
            edges=CADENCE_EDGES,
            window=window,
            iterations=iterations,
        ).select("activity_id", pl.col("credited").alias(f"credit_{feature}"))
        on_contact = on_contact.join(credit, on="activity_id", how="left")
    columns = [
        *rep_cols,
        *calendar,
        "bin_order",
        *(f"sequence_{k}" for k in TOUCH_SEQUENCE_LENGTHS),
        "credit_timing",
        "credit_cadence",
    ]
    schema = on_contact.select(columns).schema
    without_contact = (
        _touches(acts)
        .filter(pl.col("contact_id").is_null())
        .select(*rep_cols, *calendar)
        .with_columns(pl.lit(None, schema[c]).alias(c) for c in columns[len(rep_cols) + 5 :])
        .collect()
    )
    # by day, then rep: a page's period reads only the row groups of its days
    return pl.concat([on_contact.select(columns), without_contact]).sort(
        "day", "rep_id", maintain_order=True
    )


#: The columns a view may filter the touch facts on besides the day (and so the keys that
#: :func:`touch_cells` keeps).
TOUCH_CELL_KEYS: tuple[str, ...] = ("rep_id", "team", "segment", "role", "activity_type")


def touch_cells(touches: pl.DataFrame | pl.LazyFrame) -> dict[str, pl.LazyFrame]:
    """:func:`touch_facts` summed per rep and activity type (no day): what the habit tables
    need, a few hundred thousand rows at 10M activities instead of millions of touches.

    A view filtered by rep, team, segment, role or activity type (not by period) filters these
    and sums them (:func:`touch_habits` takes them as they are); :func:`touch_habits` of
    per-touch rows sums them this way first.

    Parameters
    ----------
    touches
        :func:`touch_facts` rows (or a lazy scan of them), filtered or not.

    Returns
    -------
    dict
        Lazy frames keyed by :data:`TOUCH_CELL_KEYS` plus: ``"timing"`` (``weekday``, ``hour``:
        ``n`` touches, ``responded``, ``n_contact`` touches on a known contact and their
        ``credited``), ``"cadence"`` (``bin_order``: ``n``, ``responded``, ``credited``) and
        ``"sequence_2"``, ``"sequence_3"`` (``sequence``: ``n``, ``responded``).

    Examples
    --------
    >>> cells = {k: v.collect() for k, v in touch_cells(facts).items()}  # doctest: +SKIP
    >>> touch_habits(cells)["cadence"]  # doctest: +SKIP
    """
    lf = touches.lazy()
    keys = list(TOUCH_CELL_KEYS)
    answered = pl.col("responded").cast(pl.UInt32).sum()
    on_contact = pl.col("bin_order").is_not_null()
    cells = {
        "timing": lf.group_by(*keys, "weekday", "hour").agg(
            n=pl.len().cast(pl.UInt32),
            responded=answered,
            n_contact=on_contact.sum().cast(pl.UInt32),
            credited=pl.col("credit_timing").sum(),
        ),
        "cadence": lf.filter(on_contact)
        .group_by(*keys, "bin_order")
        .agg(
            n=pl.len().cast(pl.UInt32), responded=answered, credited=pl.col("credit_cadence").sum()
        ),
    }
    for k in TOUCH_SEQUENCE_LENGTHS:
        cells[f"sequence_{k}"] = (
            lf.filter(pl.col(f"sequence_{k}").is_not_null())
            .group_by(*keys, sequence=f"sequence_{k}")
            .agg(n=pl.len().cast(pl.UInt32), responded=answered)
        )
    return cells


def _counted(cells: pl.LazyFrame, by: Sequence[str]) -> pl.LazyFrame:
    """``activities``, ``responded`` and ``response_rate`` per ``by`` from weighted cells."""
    return (
        cells.group_by(list(by))
        .agg(
            activities=pl.col("n").sum().cast(pl.UInt32),
            responded=pl.col("responded").sum().cast(pl.UInt32),
        )
        .with_columns(response_rate())
    )


def _pooled_rate(cells: pl.LazyFrame) -> float | None:
    row = cells.select(pl.col("responded").sum(), pl.col("n").sum()).collect().row(0)
    return float(row[0]) / row[1] if row[1] else None


def _timing_table(cells: pl.LazyFrame) -> pl.DataFrame:
    """:func:`response_by_timing`'s table from weighted cells (``activity_type``, ``weekday``,
    ``hour``, ``n`` touches, ``responded`` of them)."""
    timing_by = ["activity_type", "weekday", "hour"]
    return _with_lift(
        _counted(cells, timing_by).sort(timing_by).collect(), _pooled_rate(cells)
    ).with_columns(
        lift_over_type=_ratio(pl.col("response_rate"), pooled_response_rate("activity_type"))
    )


def touch_habits(
    touches: pl.DataFrame | pl.LazyFrame | dict[str, pl.DataFrame | pl.LazyFrame],
    *,
    min_support: int = 50,
    min_lift: float = MIN_HABIT_LIFT,
    min_activities: int = MIN_HABIT_ACTIVITIES,
    alpha: float = HABIT_ALPHA,
) -> dict[str, Any]:
    """The habit tables of the touches in a view, from :func:`touch_facts` (filtered) or from
    :func:`touch_cells` (filtered by rep, team, segment, role or activity type).

    Parameters
    ----------
    touches
        :func:`touch_facts` rows (a lazy scan of the build's) filtered as the view needs, or a
        :func:`touch_cells` dict of them.
    min_support
        As in :func:`sequence_lift`.
    min_lift, min_activities, alpha
        As in :func:`habit_effects`.

    Returns
    -------
    dict
        ``timing`` (:func:`response_by_timing`), ``cadence`` (:func:`response_by_cadence`),
        ``sequences`` (:func:`sequence_lift`, lengths :data:`TOUCH_SEQUENCE_LENGTHS` within
        :data:`TOUCH_SEQUENCE_DAYS`) and ``effects`` (``{"timing": …, "cadence": …}`` as
        :func:`habit_effects`): on the whole data, the same tables as the event functions.

    Examples
    --------
    >>> touch_habits(enriched.aggregates["touches"])["timing"]  # doctest: +SKIP
    """
    if isinstance(touches, dict):
        cells = {name: frame.lazy() for name, frame in touches.items()}
    else:  # summed once, streaming, then every table reads the small sums
        plans = touch_cells(touches)  # collected together: the touches are scanned once
        summed = pl.collect_all(list(plans.values()), engine="streaming")
        cells = {name: frame.lazy() for name, frame in zip(plans, summed, strict=True)}
    timing = _timing_table(cells["timing"])
    cadence = _cadence_cells(cells["cadence"], edges=CADENCE_EDGES, weighted=True)
    eligible = {k: cells[f"sequence_{k}"] for k in TOUCH_SEQUENCE_LENGTHS}
    sequences = _rank_sequences(
        eligible, min_support=min_support, rank_by="lift_over_type", weighted=True
    )
    effects = {
        feature: _effects_table(
            cells[feature].select(
                "rep_id",
                "activity_type",
                *_habit_cells(feature),
                n="n_contact" if feature == "timing" else "n",
                credited="credited",
            ),
            feature=feature,
            edges=CADENCE_EDGES,
            min_lift=min_lift,
            min_activities=min_activities,
            alpha=alpha,
        )
        for feature in ("timing", "cadence")
    }
    return {"timing": timing, "cadence": cadence, "sequences": sequences, "effects": effects}


# -------------------------------------------- per touch as integer codes: a period's sums

#: Code column -> the :func:`touch_facts` columns it numbers (the row of its key table). A
#: null ``bin_order`` or sequence (no contact, no such history) is coded -1; the other keys
#: number null as a value, as a group-by does.
TOUCH_CODE_KEYS: dict[str, tuple[str, ...]] = {
    "owner": ("rep_id", "team", "segment", "role"),
    "type": ("activity_type",),
    "cell": ("weekday", "hour"),
    "bin": ("bin_order",),
    **{f"sequence_{k}": (f"sequence_{k}", "activity_type") for k in TOUCH_SEQUENCE_LENGTHS},
}
#: The other columns of :func:`write_touch_codes` (``day`` as days since 1970-01-01; the
#: credits with 0 where :func:`touch_facts` has null).
TOUCH_CODE_VALUES: tuple[str, ...] = ("day", "responded", "credit_timing", "credit_cadence")
_NULL_CODED = ("bin", *(f"sequence_{k}" for k in TOUCH_SEQUENCE_LENGTHS))


def _narrowest(most: int) -> type:
    for dtype in (np.int8, np.int16, np.int32):
        if most <= np.iinfo(dtype).max:
            return dtype
    return np.int64


#: The per-day running totals :func:`write_touch_codes` adds (``running_<name>.npy``, row
#: *i* = the sums of the touches before the *i*-th day from the first): a period without a
#: rep, team, segment or role restriction is the difference of two rows. Days without a
#: touch have no row when some are missing between the first and the last: the rows' days
#: (from the first) are then in ``running_days.npy`` (weeks: ``running_weeks.npy``), so
#: the files grow with the days that have touches, not with the span (an activity dated
#: 0001-01-01 beside this year's: 739,000 days, ~58 GB of totals at ~78 KB a day).
TOUCH_RUNNING: tuple[str, ...] = ("counts", *(f"sequence_{k}" for k in TOUCH_SEQUENCE_LENGTHS))
#: The running sums of the habit effects :func:`write_touch_codes` adds: per day the credit
#: per type x (1 + cell or bin) as double-doubles (``running_credit_<feature>.npy``: day x
#: (high, low) x code), per :data:`TOUCH_WEEK_DAYS` days the touches per rep x (1 + cell or
#: bin) (``running_rep_<cell or bin>.npy``).
TOUCH_RUNNING_EFFECTS: tuple[str, ...] = (
    "credit_timing",
    "credit_cadence",
    "rep_cell",
    "rep_bin",
)
#: The columns :func:`write_touch_codes` also writes sorted by owner, then day
#: (``by_owner/``, with ``starts.npy``: owner *o*'s rows are ``starts[o]:starts[o + 1]``).
TOUCH_BY_OWNER: tuple[str, ...] = (
    "day",
    "type",
    "cell",
    "bin",
    "responded",
    *(f"sequence_{k}" for k in TOUCH_SEQUENCE_LENGTHS),
    "credit_timing",
    "credit_cadence",
)


def _rep_of_owner(owners: pl.DataFrame) -> np.ndarray:
    """The rep of each owner code (a rep whose team changed has several owners): 1, 2, … in
    ``rep_id`` order; a null ``rep_id`` is a rep of its own, 0."""
    return (
        owners.select(pl.col("rep_id").rank("dense").fill_null(0)).to_series().to_numpy()
    ).astype(np.int32)


def _slot(codes: np.ndarray) -> np.ndarray:
    """1 + ``codes`` (-1: none -> 0) as ``int32``, in one pass."""
    slot = codes.astype(np.int32)
    slot += 1
    return slot


def _sums_by(codes: np.ndarray, size: int, *, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(codes, weights=weights, minlength=size)[:size]


def _running(code_of: Any, days: np.ndarray, present: np.ndarray, size: int) -> np.ndarray:
    """Running totals by day of the counts of ``code_of(rows)`` (codes below ``size`` of the
    touches ``rows``, a slice), ``days`` the touches' day numbers from the first, sorted, and
    ``present`` the distinct ones (:func:`_distinct_sorted`): row *i* holds the counts over
    the touches of the days ``present[0 … i - 1]`` (``len(present) + 1`` rows; a day without
    a touch would add a row equal to the one before it, so it has none: one activity dated
    0001-01-01 would otherwise make 739,000 rows). Counted :data:`_CHUNK` touches at a time
    (each chunk's days only).

    Examples
    --------
    >>> days = np.array([0, 0, 9])
    >>> _running(lambda rows: np.array([1, 0, 1])[rows], days, np.array([0, 9]), 2).tolist()
    [[0, 0], [1, 1], [1, 2]]
    """
    running = np.zeros((len(present) + 1, size), dtype=np.intp)
    per_day = running[1:].reshape(-1)  # a view: each day's counts, then summed in place
    for rows in _chunks(len(days)):
        key = _row_of_day(days[rows], present)
        first, last = int(key[0]), int(key[-1])
        key -= first
        key *= size
        key += code_of(rows)
        per_day[first * size : (last + 1) * size] += np.bincount(
            key, minlength=(last - first + 1) * size
        )
    np.cumsum(running, axis=0, out=running)
    return running


def _distinct_sorted(values: np.ndarray) -> np.ndarray:
    """The distinct values of ``values`` (sorted: days or weeks of the touches), in order, as
    ``int32``; read :data:`_CHUNK` values at a time.

    Examples
    --------
    >>> _distinct_sorted(np.array([3, 3, 5, 9, 9])).tolist()
    [3, 5, 9]
    """
    parts = []
    for rows in _chunks(len(values)):
        chunk = values[rows]
        new = np.empty(len(chunk), dtype=bool)
        new[0] = rows.start == 0 or chunk[0] != values[rows.start - 1]
        np.not_equal(chunk[1:], chunk[:-1], out=new[1:])
        parts.append(chunk[new].astype(np.int32))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


def _row_of_day(days: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The row of each of ``days`` among ``present`` (sorted, holding every one of them) as
    ``int64``: simply ``days - present[0]`` when no day between the first and the last is
    missing (a row per day: the usual case, no search)."""
    if len(present) and int(present[-1]) - int(present[0]) + 1 == len(present):
        rows = days.astype(np.int64)
        rows -= int(present[0])
        return rows
    return np.searchsorted(present, days).astype(np.int64, copy=False)


#: Rows per step of :func:`write_touch_codes`'s passes over the touches (their temporary
#: arrays are a chunk's, not every touch's).
_CHUNK = 1 << 20

#: Days per block of the per-week running touches per rep x cell or bin (from the first day).
TOUCH_WEEK_DAYS = 7


def _day_sums(
    code: np.ndarray, weights: np.ndarray, days: np.ndarray, present: np.ndarray, size: int
) -> np.ndarray:
    """Per day the sums of ``weights`` by ``code`` (below ``size``) of the touches, ``days``
    their day numbers from the first, sorted, ``present`` the distinct ones: ``(len(present),
    size)``, a row per day with a touch (as :func:`_running`), :data:`_CHUNK` touches at a
    time."""
    sums = np.zeros((len(present), size))
    flat = sums.reshape(-1)
    for rows in _chunks(len(days)):
        key = _row_of_day(days[rows], present)
        first, last = int(key[0]), int(key[-1])
        key -= first
        key *= size
        key += code[rows]
        flat[first * size : (last + 1) * size] += np.bincount(
            key, weights=weights[rows], minlength=(last - first + 1) * size
        )
    return sums


def _running_double(per_day: np.ndarray) -> np.ndarray:
    """Running totals of ``per_day`` (a row per day) as double-doubles: ``(days + 1, 2,
    size)``, row *i* the high and low parts of the sums of days ``0 … i - 1``. A period's
    sum is then ``(hi[b] - hi[a]) + (lo[b] - lo[a])``, within ~1e-16 of itself relatively
    (a plain float running total would lose a one-day period's small credits: 1e-13 beside
    totals of 1e3).

    Examples
    --------
    >>> running = _running_double(np.array([[1e3], [1e-13], [2.0]]))
    >>> ((running[2, 0] - running[1, 0]) + (running[2, 1] - running[1, 1])).tolist()
    [1e-13]
    """
    out = np.zeros((len(per_day) + 1, 2, per_day.shape[1]))
    high = np.zeros(per_day.shape[1])
    low = np.zeros(per_day.shape[1])
    for i, x in enumerate(per_day):  # two-sum of high and x, its error carried in low
        total = high + x
        back = total - high
        low = low + ((high - (total - back)) + (x - back))
        high = total + low
        low = low - (high - total)
        out[i + 1, 0], out[i + 1, 1] = high, low
    return out


def _chunks(rows: int, size: int = _CHUNK) -> list[slice]:
    return [slice(lo, min(lo + size, rows)) for lo in range(0, rows, size)]


def _save_taken(path: Any, values: np.ndarray, order: np.ndarray, dtype: Any = None) -> None:
    """``np.save(path, values[order].astype(dtype))``, written a chunk at a time: the taken
    copy is never whole in memory (the same bytes)."""
    from numpy.lib import format as npy

    dtype = np.dtype(values.dtype if dtype is None else dtype)
    header = {"descr": npy.dtype_to_descr(dtype), "fortran_order": False, "shape": (len(order),)}
    with open(path, "wb") as out:
        npy.write_array_header_1_0(out, header)
        for rows in _chunks(len(order)):
            out.write(np.take(values, order[rows]).astype(dtype, copy=False).data)


def _day_order(day: np.ndarray, rep_cell: np.ndarray, *, day_sorted: bool) -> np.ndarray:
    """``np.lexsort((rep_cell, day))``; for sorted days, a chunk of whole days at a time (its
    temporaries a chunk's; a day's touches never cross a chunk, so the order is the same)."""
    from effortlens.touch_build import day_rep_order  # its lexsort, by one packed-key sort

    if not day_sorted:
        return day_rep_order(day, rep_cell)
    rows = len(day)
    order = np.empty(rows, dtype=np.int32 if rows < 2**31 else np.int64)
    lo = 0
    while lo < rows:
        hi = min(lo + _CHUNK, rows)
        if hi < rows:  # back to the first touch of the day at hi (or on to the next day)
            hi = int(np.searchsorted(day, day[hi], side="left"))
            if hi <= lo:
                hi = int(np.searchsorted(day, day[lo], side="right"))
        local = day_rep_order(day[lo:hi], rep_cell[lo:hi])
        local += lo
        order[lo:hi] = local
        lo = hi
    return order


def _touch_code(touches: pl.LazyFrame, name: str, folder: Any) -> tuple[np.ndarray, pl.DataFrame]:
    """The code of ``name`` (:data:`TOUCH_CODE_KEYS`) per touch, in ``touches``' order (only
    its columns read), and its key table (written to ``<name>.keys.parquet``)."""
    columns = list(TOUCH_CODE_KEYS[name])
    part = touches.select(columns).collect()
    numbered_keys = _integer_key_code(part, drop_null_first=name in _NULL_CODED)
    if numbered_keys is not None:
        code, dictionary = numbered_keys
        del part
        written = dictionary
        if name.startswith("sequence_"):
            written = dictionary.rename({columns[0]: "sequence"})
        written.write_parquet(folder / f"{name}.keys.parquet")
        return code, dictionary
    # a chunk of touches at a time: the unique rows and the join's temporaries are a chunk's
    chunks = (chunk.unique() for chunk in part.iter_slices(_CHUNK // 4))  # none without touches
    dictionary = pl.concat([part.clear(), *chunks]).unique()
    if name in _NULL_CODED:
        dictionary = dictionary.drop_nulls(columns[0])
    dictionary = dictionary.sort(columns, nulls_last=True)
    numbered = dictionary.with_row_index("code")
    code = np.empty(part.height, dtype=_narrowest(dictionary.height))
    for rows in _chunks(part.height, _CHUNK // 4):
        code[rows] = (
            part[rows]
            .join(numbered, on=columns, how="left", nulls_equal=True, maintain_order="left")["code"]
            .fill_null(-1)
            .to_numpy()
        )
    del part, numbered
    written = dictionary
    if name.startswith("sequence_"):
        written = dictionary.rename({columns[0]: "sequence"})
    written.write_parquet(folder / f"{name}.keys.parquet")
    return code, dictionary


#: The most key values :func:`_integer_key_code` numbers in one array (the product of each
#: column's values + 1; 100M activities' owners: ~12M): 80 MB at most.
_KEY_SPACE = 1 << 24


def _value_span(values: pl.Series) -> tuple[int, int] | None:
    """The least physical value of an ``Enum`` or integer column and how many values from it
    to its largest (an ``Enum``: 0 and its categories' count; no value: 0, 0); ``None`` for
    any other type. One key column's place when rows are packed into one integer.

    >>> _value_span(pl.Series([3, None, 5]))
    (3, 3)
    >>> _value_span(pl.Series(["b"], dtype=pl.Enum(["a", "b"])))
    (0, 2)
    """
    if isinstance(values.dtype, pl.Enum):
        return 0, len(values.dtype.categories)
    if not values.dtype.is_integer():
        return None
    known = values.drop_nulls()
    if not known.len():
        return 0, 0
    low = int(known.min())
    return low, int(known.max()) - low + 1


def _integer_key_code(
    part: pl.DataFrame, *, drop_null_first: bool
) -> tuple[np.ndarray, pl.DataFrame] | None:
    """The code of each row of ``part`` among its sorted distinct rows (nulls last; with
    ``drop_null_first``, rows whose first column is null are not keys and get -1) and those
    rows, when every column is an ``Enum`` or an integer: each row one integer from the
    columns' physical values (null after every value, as the sort puts it; 4 bytes a row),
    so the rows' order is the integers' order, their presence one mark and each row's code
    a lookup. What :func:`_touch_code`'s unique, sort and join give,
    by integers (the partitioned build's touches have ``Enum`` text); else ``None``."""
    columns = part.columns
    places: list[tuple[int, int]] = []  # per column: its offset and its values' count + 1
    space = 1
    for column in columns:
        span = _value_span(part[column])
        if span is None:
            return None
        low, count = span
        places.append((low, count + 1))
        space *= count + 1
        if space > _KEY_SPACE:
            return None

    key = np.zeros(part.height, dtype=np.int32)  # space <= _KEY_SPACE
    for column, (low, width) in zip(columns, places, strict=True):
        for rows in _chunks(part.height):
            values = part[column][rows].to_physical()
            if values.null_count():
                values = values.fill_null(low + width - 1)
            at = key[rows]
            at *= width
            shifted = values.to_numpy()
            if low:  # in the column's own type: values past int32 with a small span fit
                shifted = shifted - low
            at += shifted
    present = np.zeros(space, dtype=bool)
    present[key] = True
    if drop_null_first:  # the first column's null: the last block of keys
        present[(places[0][1] - 1) * (space // places[0][1]) :] = False
    found = np.flatnonzero(present)
    number = np.full(space, -1, dtype=np.int32)
    number[found] = np.arange(len(found))
    code = np.empty(part.height, dtype=_narrowest(len(found)))
    for rows in _chunks(part.height):
        code[rows] = number[key[rows]]
    del key
    decoded = {}
    rest = found
    for column, (low, width) in reversed(list(zip(columns, places, strict=True))):
        digit = rest % width
        rest = rest // width
        at = pl.Series(digit)
        values = pl.select(pl.when(at < width - 1).then(at + low)).to_series()
        dtype = part.schema[column]
        if isinstance(dtype, pl.Enum):
            values = dtype.categories.gather(values).cast(dtype)
        decoded[column] = values.cast(dtype).rename(column)
    return code, pl.DataFrame([decoded[c] for c in columns])


def _pair_code(rows: int, bound: int, make: Any) -> np.ndarray:
    """``make(chunk)`` (int64 codes of a chunk of touches, each ``<= bound``) for every
    touch, in the narrowest integer type of their largest."""
    codes = np.empty(rows, dtype=_narrowest(bound))
    for chunk in _chunks(rows):
        codes[chunk] = make(chunk)
    return codes.astype(_narrowest(int(codes.max(initial=0))), copy=False)


def write_touch_codes(touches: pl.DataFrame | pl.LazyFrame, folder: Any) -> int:
    """Write :func:`touch_facts` as day-sorted integer codes, one ``.npy`` per column, plus a
    key table per code (``<code>.keys.parquet``, row *i* = code *i*), and what makes a
    period's habit tables cheap for :func:`period_habits`:

    - per-day running totals (:data:`TOUCH_RUNNING`) of the touches and the answered ones
      per (activity type, cadence bin, timing cell) and per sequence code: a period's
      counts are two rows of each (exact: whole numbers);
    - per touch, its type x timing cell, type x cadence bin, rep x timing cell and rep x
      cadence bin as one code each (``type_cell.npy``, ``type_bin.npy``, ``rep_cell.npy``,
      ``rep_bin.npy``; a day's touches are sorted by ``rep_cell``): the habit effects, whose
      rep-clustered spread needs the period's touches, are three bincounts per feature (the
      credits are summed so, not as running totals: a difference of two large float sums
      would lose the small ones);
    - the columns again sorted by owner, then day (:data:`TOUCH_BY_OWNER`): a team's or a
      rep's touches are a few contiguous blocks;
    - the running sums of the habit effects (:data:`TOUCH_RUNNING_EFFECTS`): per day the
      credit per type x (1 + cell or bin) as double-doubles (exact enough for a one-day
      period's small credits), per week the touches per rep x (1 + cell or bin): a period's
      effects then read its touches for the excess credit per rep x cell only.

    A kernel maps the files (reads a period's rows in place). Touches without a day are
    left out (no period holds them). Returns the number of touches written.

    Memory: ``touches`` is read a column (or a code's key columns) at a time, and each
    column is written as soon as it is made, then let go; the day order and the owner order
    are one permutation each, applied a chunk at a time. The peak holds the permutation and
    a few code columns (~20-30 bytes per touch), not every column.

    Why codes per touch, not per rep x week cells: a rep has ~50 touches a week spread over
    ~1,000 (activity type, weekday, hour) timing cells, so rep x week cells would be almost
    as many rows as touches (10M activities: ~8M cells for 8.6M touches), while the rep x
    cell x type sums the habit effects need cannot be summed over anything coarser than the
    period's touches.

    Examples
    --------
    >>> write_touch_codes(touch_facts(enriched), build / "habit_touches")  # doctest: +SKIP
    8583700
    """
    from pathlib import Path

    folder = Path(folder)
    (folder / "by_owner").mkdir(parents=True, exist_ok=True)
    touches = touches.lazy().filter(pl.col("day").is_not_null())
    day_series = touches.select("day").collect().to_series()
    day_sorted = day_series.is_sorted()
    day = day_series.to_physical().to_numpy().astype(np.int32)
    del day_series
    rows = len(day)
    sizes: dict[str, int] = {}

    def code(name: str) -> np.ndarray:
        values, dictionary = _touch_code(touches, name, folder)
        sizes[name] = dictionary.height
        return values

    def load(name: str) -> np.ndarray:
        return np.load(folder / f"{name}.npy")

    def pair(first: Any, width: int, *, cell: np.ndarray | None, bins: np.ndarray) -> Any:
        """A chunk's first x width + 1 + (timing cell on a contact, or cadence bin)."""

        def make(chunk: slice) -> np.ndarray:
            slot = _slot(bins[chunk])
            if cell is not None:
                on_contact = slot > 0
                slot = _slot(cell[chunk])
                slot *= on_contact
            codes = first(chunk).astype(np.int64) * width
            codes += slot
            return codes

        return make

    # the day order: by day, then rep x (1 + timing cell on a contact) (a period's bincounts
    # per rep then add up neighbouring counters: several times faster than in time order)
    owner, owners = _touch_code(touches, "owner", folder)
    sizes["owner"] = owners.height
    rep_of_owner = _rep_of_owner(owners)
    del owners
    cell, bins = code("cell"), code("bin")
    n_cells, n_bins = sizes["cell"], sizes["bin"]
    most_rep = int(rep_of_owner.max(initial=0))
    rep_cell = _pair_code(
        rows,
        (most_rep + 1) * (n_cells + 1),
        pair(lambda c, owner=owner: rep_of_owner[owner[c]], n_cells + 1, cell=cell, bins=bins),
    )
    order = _day_order(day, rep_cell, day_sorted=day_sorted)
    for name, values in (
        ("day", day),
        ("owner", owner),
        ("cell", cell),
        ("bin", bins),
        ("rep_cell", rep_cell),
    ):
        _save_taken(folder / f"{name}.npy", values, order)
    del day, owner, cell, bins, rep_cell, values
    # every other column read, coded, written in day order and let go, one at a time
    for name in ("type", *(f"sequence_{k}" for k in TOUCH_SEQUENCE_LENGTHS)):
        _save_taken(folder / f"{name}.npy", code(name), order)
    for name, fill in (("responded", False), ("credit_timing", 0.0), ("credit_cadence", 0.0)):
        values = touches.select(pl.col(name).fill_null(fill)).collect().to_series().to_numpy()
        _save_taken(folder / f"{name}.npy", values, order)
        del values
    del order
    # per touch: type x (1 + timing cell on a contact), type x (1 + bin), and rep x bin
    # (what a period's habit effects sum)
    col = {name: load(name) for name in ("day", "owner", "type", "cell", "bin", "responded")}
    n_types = sizes["type"]
    for name, first, most, width, timing in (
        ("type_cell", lambda c: col["type"][c], n_types, n_cells + 1, True),
        ("type_bin", lambda c: col["type"][c], n_types, n_bins + 1, False),
        ("rep_bin", lambda c: rep_of_owner[col["owner"][c]], most_rep + 1, n_bins + 1, False),
    ):
        make = pair(first, width, cell=col["cell"] if timing else None, bins=col["bin"])
        np.save(folder / f"{name}.npy", _pair_code(rows, most * width, make))
    # per-day running totals: a row per day with a touch (and its day, when some are missing)
    day = col["day"]
    span = int(day[-1]) - int(day[0]) + 1 if rows else 0
    days = day - day[0] if rows else day
    del day
    present = _distinct_sorted(days)
    _save_present(folder / "running_days.npy", present, span)

    def per_tbc(chunk: slice) -> np.ndarray:
        codes = col["type"][chunk].astype(np.int64) * (n_bins + 1)
        codes += _slot(col["bin"][chunk])
        codes *= n_cells
        codes += col["cell"][chunk]
        codes *= 2
        codes += col["responded"][chunk]
        return codes

    size = n_types * (n_bins + 1) * n_cells
    counts = _running(per_tbc, days, present, size * 2)
    np.save(folder / "running_counts.npy", counts.astype(_narrowest(int(counts[-1].sum()))))
    del counts
    for k in TOUCH_SEQUENCE_LENGTHS:
        name = f"sequence_{k}"
        sequence = load(name)

        def per_sequence(chunk: slice, sequence: np.ndarray = sequence) -> np.ndarray:
            codes = _slot(sequence[chunk]).astype(np.int64)
            codes *= 2
            codes += col["responded"][chunk]
            return codes

        running = _running(per_sequence, days, present, (sizes[name] + 1) * 2)
        np.save(folder / f"running_{name}.npy", running.astype(_narrowest(rows)))
        del sequence, running
    del days
    # the columns again by owner, then day (as the partitioned build's ranges write them)
    col.clear()
    write_by_owner(folder, owners=sizes["owner"])
    # per feature, what a period's habit effects need besides each touch's excess credit:
    # the credit per type x (1 + cell or bin) as per-day running double-doubles, and the
    # touches per rep x (1 + cell or bin) as per-week running counts (read from the files)
    day = _mapped(folder / "day.npy")
    days = (day - day[0]).astype(np.int32) if rows else np.zeros(0, dtype=np.int32)
    weeks = days // TOUCH_WEEK_DAYS
    n_weeks = int(weeks[-1]) + 1 if rows else 0
    present_weeks = _distinct_sorted(weeks)
    _save_present(folder / "running_weeks.npy", present_weeks, n_weeks)
    for feature, name, width in (("timing", "cell", n_cells + 1), ("cadence", "bin", n_bins + 1)):
        code = _mapped(folder / f"type_{name}.npy")
        credit = _mapped(folder / f"credit_{feature}.npy")
        per_day = _day_sums(code, credit, days, present, n_types * width)
        np.save(folder / f"running_credit_{feature}.npy", _running_double(per_day))
        del per_day
        code = _mapped(folder / f"rep_{name}.npy")
        weekly = _running(
            lambda c, code=code: code[c], weeks, present_weeks, (most_rep + 1) * width
        )
        most = int(weekly[-1].max(initial=0))
        np.save(folder / f"running_rep_{name}.npy", weekly.astype(_narrowest(most)))
        del weekly, code, credit
    return rows


def _save_present(path: Any, present: np.ndarray, span: int) -> None:
    """``present`` (the days, or weeks, from the first with a touch: the running totals'
    rows) to ``path`` when some of the ``span`` from the first to the last are missing; else
    nothing (a row per day, as readers take the files without it)."""
    if len(present) < span:
        np.save(path, present.astype(np.int32, copy=False))


def _mapped(path: Any, *, mode: str = "r") -> np.ndarray:
    """``path`` (an ``.npy``) mapped: its pages are read when a period reads them. ``mode``
    ``"c"`` (copy on write) maps weights a bincount reads in place (it copies read-only
    ones); nothing writes to them."""
    try:  # a plain array over the mapped pages (no memmap subclass on every slice)
        return np.asarray(np.load(path, mmap_mode=mode))
    except ValueError:  # an empty array has no data to map
        return np.load(path)


class _Mapped(dict):
    """``.npy`` files of a folder by name, mapped when first asked for."""

    def __init__(self, folder: Any) -> None:
        super().__init__()
        self.folder = folder

    def map(self, *names: str) -> None:
        """Map ``names`` now."""
        for name in names:
            self[name] = self[name]

    def __missing__(self, name: str) -> np.ndarray:
        mode = "c" if name.startswith("credit_") else "r"
        self[name] = array = _mapped(self.folder / f"{name}.npy", mode=mode)
        return array


class TouchCodes:
    """The touch codes of :func:`write_touch_codes` in ``folder``, mapped (not read) when
    first used: a kernel holds a few key tables and reads a period's rows only when it sums
    them.

    Examples
    --------
    >>> codes = TouchCodes(build / "habit_touches")  # doctest: +SKIP
    >>> period_habits(codes, Filter(start=dt.date(2026, 4, 1)))["timing"]  # doctest: +SKIP
    """

    def __init__(self, folder: Any) -> None:
        """Read the key tables of ``folder``; its columns are mapped when first used."""
        from pathlib import Path

        folder = Path(folder)
        self.columns = _Mapped(folder)
        self.by_owner = _Mapped(folder / "by_owner")
        self.keys = {
            name: pl.read_parquet(folder / f"{name}.keys.parquet") for name in TOUCH_CODE_KEYS
        }
        self.rep_of_owner = _rep_of_owner(self.keys["owner"])
        self.n_reps = int(self.rep_of_owner.max()) + 1 if self.keys["owner"].height else 0
        #: (activity type, weekday, hour) per type code x cells + cell code
        self.timing_keys = (
            self.keys["type"]
            .join(self.keys["cell"], how="cross")
            .select("activity_type", "weekday", "hour")
        )
        self.shape = {name: keys.height for name, keys in self.keys.items()}
        self._allowed_memo: dict[str, dict[tuple, np.ndarray | None]] = {}
        #: whether a timing key holds a null (the tables then sort them first)
        self.nulls = {
            "timing": any(
                self.keys[name].null_count().sum_horizontal().item() for name in ("type", "cell")
            )
        }
        type_code = {t: i for i, t in enumerate(self.keys["type"]["activity_type"].to_list())}
        # mapped now (~7 ms at 10m, at the first draw), not at a reader's first filter;
        # mapping reads no page
        self.by_owner.map(*TOUCH_BY_OWNER, "starts")
        #: whether the build wrote the running sums of the habit effects (older builds: the
        #: period's touches are summed instead)
        self.running_effects = all(
            (folder / f"running_{name}.npy").is_file() for name in TOUCH_RUNNING_EFFECTS
        )
        #: the days (weeks) from the first of the running totals' rows, when some days
        #: (weeks) without a touch have none; None: a row per day (week)
        self.running_days, self.running_weeks = (
            np.load(folder / f"running_{unit}.npy")
            if (folder / f"running_{unit}.npy").is_file()
            else None
            for unit in ("days", "weeks")
        )
        self.columns.map(
            "day",
            *(f"{a}_{b}" for a in ("type", "rep") for b in ("cell", "bin")),
            "credit_timing",
            "credit_cadence",
            *(f"running_{name}" for name in TOUCH_RUNNING),
            *(f"running_{name}" for name in TOUCH_RUNNING_EFFECTS if self.running_effects),
        )
        #: every sequence of every length (``sequence_<k>`` keys, one after the other) and
        #: where each length's start in it
        self.sequence_names = pl.concat(
            [self.keys[f"sequence_{k}"]["sequence"] for k in TOUCH_SEQUENCE_LENGTHS]
        )
        self.sequence_offsets = dict(
            zip(
                TOUCH_SEQUENCE_LENGTHS,
                np.cumsum([0, *(self.shape[f"sequence_{k}"] for k in TOUCH_SEQUENCE_LENGTHS)]),
                strict=False,
            )
        )
        #: per sequence length, the type code of each sequence's last touch
        self.sequence_types = {
            k: np.array(
                [type_code[t] for t in self.keys[f"sequence_{k}"]["activity_type"].to_list()],
                dtype=np.intp,
            )
            for k in TOUCH_SEQUENCE_LENGTHS
        }

    @property
    def days(self) -> tuple[Any, Any] | None:
        """First and last day with a touch (``datetime.date``), None without touches."""
        day = self.columns["day"]
        if not len(day):
            return None
        epoch = pl.Series([int(day[0]), int(day[-1])], dtype=pl.Int32).cast(pl.Date)
        return epoch[0], epoch[1]

    def _period(self, flt: Any) -> tuple[int | None, int | None]:
        """The first and last day number of ``flt``'s period (None: open)."""
        from effortlens.filters import day_number

        return (
            None if flt.start is None else day_number(flt.start),
            None if flt.end is None else day_number(flt.end),
        )

    def _allowed(self, name: str, flt: Any) -> np.ndarray | None:
        """Which codes of ``name`` (``owner`` or ``type``) ``flt`` keeps; None: all. Kept for
        the last few restrictions (a team's codes serve its periods too)."""
        restriction = tuple(getattr(flt, f) for f in _RESTRICTING[name])
        if not any(restriction):
            return None
        memo = self._allowed_memo.setdefault(name, {})
        if restriction in memo:
            return memo[restriction]
        from effortlens.filters import filter_frame

        keys = self.keys[name]
        kept = filter_frame(keys.with_row_index("code"), replace_period(flt))
        allowed = None
        if kept.height < keys.height:
            allowed = np.zeros(keys.height, dtype=bool)
            allowed[kept["code"].to_numpy()] = True
            allowed.flags.writeable = False  # shared by the calls that find it here
        if len(memo) >= 16:
            memo.clear()
        memo[restriction] = allowed
        return allowed

    def _day_rows(self, day: np.ndarray, first: int | None, last: int | None) -> slice:
        """The rows of ``day`` (sorted) from day ``first`` to ``last`` (inclusive)."""
        lo, hi = 0, len(day)
        # the bound in the column's type: another would convert (and read) the whole column
        if first is not None:
            lo = int(np.searchsorted(day, day.dtype.type(first), side="left"))
        if last is not None:
            hi = max(lo, int(np.searchsorted(day, day.dtype.type(last), side="right")))
        return slice(lo, hi)

    def _owner_blocks(self, owners: np.ndarray, flt: Any) -> list[tuple[int, int, int]]:
        """(owner, first row, end row) of the owner-sorted rows ``flt`` keeps, per kept
        owner with touches in its period."""
        starts = self.by_owner["starts"]
        day = self.by_owner["day"]
        first, last = self._period(flt)
        blocks = []
        for owner in np.flatnonzero(owners):
            lo, hi = int(starts[owner]), int(starts[owner + 1])
            if first is not None or last is not None:
                rows = self._day_rows(day[lo:hi], first, last)
                lo, hi = lo + rows.start, lo + rows.stop
            if hi > lo:
                blocks.append((int(owner), lo, hi))
        return blocks

    def count(self, flt: Any) -> int:
        """How many touches ``flt`` keeps."""
        types = self._allowed("type", flt)
        owners = self._allowed("owner", flt)
        if owners is None:
            counts = self._running_sums("counts", flt)
            if types is not None:
                counts = counts.reshape(self.shape["type"], -1)[types]
            return int(counts.sum())
        blocks = self._owner_blocks(owners, flt)
        if types is None:
            return sum(hi - lo for _, lo, hi in blocks)
        kept = self.by_owner["type"]
        return int(sum(types[kept[lo:hi]].sum() for _, lo, hi in blocks))

    def _day_span(self, flt: Any, span: int) -> tuple[int, int]:
        """The period of ``flt`` as day numbers from the first touch's, ``lo`` to ``hi``
        (exclusive), within ``0 … span``."""
        day = self.columns["day"]
        first, last = self._period(flt)
        lo = 0 if first is None else min(max(first - int(day[0]), 0), span)
        hi = span if last is None else min(max(last - int(day[0]) + 1, lo), span)
        return lo, hi

    def _running_rows(self, flt: Any) -> tuple[int, int]:
        """The rows of the per-day running totals whose difference is the period of ``flt``
        (every touch has a day: there is one)."""
        day = self.columns["day"]
        lo, hi = self._day_span(flt, int(day[-1]) - int(day[0]) + 1)
        return _rows_of(self.running_days, lo, hi)

    def _running_sums(self, name: str, flt: Any) -> np.ndarray:
        """The sums of ``running_<name>`` over the period of ``flt``: two rows."""
        running = self.columns[f"running_{name}"]
        if not len(self.columns["day"]):
            return np.zeros(running.shape[1], dtype=np.int64)
        lo, hi = self._running_rows(flt)
        return running[hi].astype(np.int64) - running[lo]

    def _period_credit(self, feature: str, flt: Any) -> np.ndarray:
        """The credit of ``feature`` per type x (1 + cell or bin) over the period of ``flt``:
        two rows of its per-day running double-doubles."""
        running = self.columns[f"running_credit_{feature}"]
        if not len(self.columns["day"]):
            return np.zeros(running.shape[2])
        lo, hi = self._running_rows(flt)
        return (running[hi, 0] - running[lo, 0]) + (running[hi, 1] - running[lo, 1])

    def _period_rep_counts(self, name: str, flt: Any) -> np.ndarray:
        """The touches per rep x (1 + ``name``, cell or bin) over the period of ``flt``:
        two rows of the per-week running counts, and a bincount of the partial weeks'
        touches at either end."""
        running = self.columns[f"running_rep_{name}"]
        day, code = self.columns["day"], self.columns[f"rep_{name}"]
        if not len(day):
            return np.zeros(running.shape[1], dtype=np.int64)
        days = int(day[-1]) - int(day[0]) + 1
        lo, hi = self._day_span(flt, days)
        week = TOUCH_WEEK_DAYS
        first_week = -(-lo // week)  # the whole weeks inside lo … hi
        end_week = (days - 1) // week + 1 if hi == days else hi // week
        start = int(day[0])
        if first_week >= end_week:  # no whole week: the touches themselves
            rows = self._day_rows(day, start + lo, start + hi - 1)
            return _sums_by(code[rows], running.shape[1]).astype(np.int64)
        first_row, end_row = _rows_of(self.running_weeks, first_week, end_week)
        counts = running[end_row].astype(np.int64) - running[first_row]
        for a, b in ((lo, first_week * week), (end_week * week, hi)):
            if b > a:
                rows = self._day_rows(day, start + a, start + b - 1)
                counts += _sums_by(code[rows], running.shape[1])
        return counts

    def sums(self, flt: Any) -> dict[str, Any]:
        """The sums :func:`period_habits` makes its tables of, over the touches ``flt`` keeps:

        - ``counts`` (type, 1 + bin, cell, responded): touches;
        - ``sequence_<k>`` (1 + sequence code, responded): touches;
        - ``timing`` and ``cadence``: :func:`_effect_sums` of the touches on a contact (per
          type x cell or bin: touches, credit; per rep x cell or bin: touches, excess
          credit), the reps every rep of the build or only the kept ones.

        Without a rep, team, segment or role restriction, the counts are two rows of the
        running totals and the effect sums bincounts of the period's slice of the day-sorted
        codes; with one, bincounts of the kept owners' blocks. An activity-type restriction
        zeroes the other types (and weighs their touches 0 in the per-rep sums).
        """
        n_types, n_cells, n_bins = self.shape["type"], self.shape["cell"], self.shape["bin"]
        types = self._allowed("type", flt)
        owners = self._allowed("owner", flt)
        if owners is None:
            sums: dict[str, Any] = {
                "counts": self._running_sums("counts", flt).reshape(
                    n_types, n_bins + 1, n_cells, 2
                ),
                **{
                    f"sequence_{k}": self._running_sums(f"sequence_{k}", flt).reshape(-1, 2)
                    for k in TOUCH_SEQUENCE_LENGTHS
                },
            }
            rows = self._day_rows(self.columns["day"], *self._period(flt))

            def take(name: str) -> np.ndarray:
                return self.columns[name][rows]

            n_reps = self.n_reps
            running = self.running_effects
        else:
            sums, take, n_reps = self._owner_sums(owners, flt)
            running = False
        if types is not None:
            dropped = ~types
            sums["counts"][dropped] = 0
            for k in TOUCH_SEQUENCE_LENGTHS:
                sums[f"sequence_{k}"][1 + np.flatnonzero(dropped[self.sequence_types[k]])] = 0
        on_contact = sums["counts"][:, 1:].sum(axis=3)  # (type, bin, cell)
        for feature, name, n_tc in (
            ("timing", "cell", on_contact.sum(axis=1)),
            ("cadence", "bin", on_contact.sum(axis=2)),
        ):
            sums[feature] = _effect_sums(
                n_tc,
                take(f"type_{name}"),
                take(f"rep_{name}"),
                take(f"credit_{feature}"),
                n_reps=n_reps,
                kept=types,
                credit_tc=self._period_credit(feature, flt) if running else None,
                n_rc=(self._period_rep_counts(name, flt) if running and types is None else None),
            )
        return sums

    def _owner_sums(self, owners: np.ndarray, flt: Any) -> tuple[dict[str, Any], Any, int]:
        """:meth:`sums`' counts of the kept owners' touches (owner-sorted blocks), a
        ``take(name)`` of their codes per touch and how many reps they have."""
        n_types, n_cells, n_bins = self.shape["type"], self.shape["cell"], self.shape["bin"]
        blocks = self._owner_blocks(owners, flt)
        lengths = np.array([hi - lo for _, lo, hi in blocks], dtype=np.intp)

        def gather(name: str) -> np.ndarray:
            column = self.by_owner[name]
            if len(blocks) == 1:
                return np.asarray(column[blocks[0][1] : blocks[0][2]])
            return np.concatenate([column[lo:hi] for _, lo, hi in blocks] or [column[:0]])

        # the kept reps, numbered 0, 1, … (a rep with several owners once)
        reps, local = np.unique(
            self.rep_of_owner[[owner for owner, _, _ in blocks]], return_inverse=True
        )
        rep = np.repeat(local.astype(np.intp), lengths)
        types = gather("type").astype(np.intp)
        bin_slot = _slot(gather("bin"))
        cell = gather("cell")
        responded = gather("responded").astype(np.intp)
        per_tbc = (types * (n_bins + 1) + bin_slot) * n_cells + cell
        size = n_types * (n_bins + 1) * n_cells
        sums = {
            "counts": _sums_by(per_tbc * 2 + responded, size * 2).reshape(
                n_types, n_bins + 1, n_cells, 2
            )
        }
        for k in TOUCH_SEQUENCE_LENGTHS:
            name = f"sequence_{k}"
            size = self.shape[name] + 1
            sums[name] = _sums_by(_slot(gather(name)) * 2 + responded, size * 2).reshape(size, 2)
        cell_slot = _slot(cell)
        cell_slot *= bin_slot > 0
        codes = {
            "type_cell": types * (n_cells + 1) + cell_slot,
            "type_bin": types * (n_bins + 1) + bin_slot,
            "rep_cell": rep * (n_cells + 1) + cell_slot,
            "rep_bin": rep * (n_bins + 1) + bin_slot,
        }

        def take(name: str) -> np.ndarray:
            return codes[name] if name in codes else gather(name)

        return sums, take, len(reps)


def _rows_of(present: np.ndarray | None, lo: int, hi: int) -> tuple[int, int]:
    """The rows of running totals whose difference sums the days (or weeks) ``lo`` to ``hi``
    (exclusive) from the first: ``lo, hi`` with a row per day, else the places of ``lo`` and
    ``hi`` among the days ``present`` (row *i* sums ``present[0 … i - 1]``).

    Examples
    --------
    >>> _rows_of(np.array([0, 5, 6]), 1, 6), _rows_of(None, 1, 6)
    ((1, 2), (1, 6))
    """
    if present is None:
        return lo, hi
    return int(np.searchsorted(present, lo)), int(np.searchsorted(present, hi))


#: Touches per step of :func:`_effect_sums`' pass over a period's touches: its working arrays
#: are a step's (512 kB, in the CPU's cache), not the period's (at 10m a 90-day period is 1.4M
#: touches: fresh 11 MB arrays, three per feature, whose pages a kernel faults in at every
#: change).
_EFFECT_STEP = 1 << 16


def _effect_sums(
    n_tc: np.ndarray,
    type_code: np.ndarray,
    rep_code: np.ndarray,
    credit: np.ndarray,
    *,
    n_reps: int,
    kept: np.ndarray | None,
    credit_tc: np.ndarray | None = None,
    n_rc: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sums of one habit feature's effects over touches: ``n_tc`` (type, cell) the
    touches on a contact, ``type_code`` / ``rep_code`` per touch its type or rep x (1 + cell;
    0 off a contact), ``credit`` its credit, ``kept`` the activity types kept (None: all).
    Returns ``n_tc``, the credit per type x cell, the touches per rep x cell and their
    excess credit (credit less the mean credit of the touch's type: indirect
    standardisation), each per touch as the touch facts' path sums them. ``credit_tc``
    (per type x (1 + cell), every type) and ``n_rc`` (per rep x (1 + cell), ``kept``
    None), when given, are those sums already made (from the build's running totals).

    The per-rep sums go over the touches :data:`_EFFECT_STEP` at a time, added in place in
    the touches' order (``np.add.at``): the same sums, bit for bit, as one ``np.bincount``."""
    n_types, width = n_tc.shape[0], n_tc.shape[1] + 1
    if credit_tc is None:
        credit_tc = _sums_by(type_code, n_types * width, weights=credit)
    credit_tc = credit_tc.reshape(n_types, width)
    if kept is not None:
        credit_tc = np.where(kept[:, None], credit_tc, 0.0)
    n_t = n_tc.sum(axis=1)
    mean_t = np.divide(credit_tc[:, 1:].sum(axis=1), n_t, out=np.zeros(n_types), where=n_t > 0)
    mean_w = np.repeat(mean_t, width)  # per type code
    counted_w = None if kept is None else np.repeat(kept, width).astype(np.float64)
    size = n_reps * width
    count = n_rc is None or kept is not None
    excess_sum = np.zeros(size)
    n_sum = np.zeros(size, dtype=np.intp if kept is None else np.float64) if count else None
    step = max(min(_EFFECT_STEP, len(type_code)), 1)
    code = np.empty(step, dtype=np.intp)  # the index type of take and add.at: one conversion
    excess = np.empty(step)
    counted = None if counted_w is None else np.empty(step)
    for lo in range(0, len(type_code), step):
        hi = min(lo + step, len(type_code))
        c, e = code[: hi - lo], excess[: hi - lo]
        c[...] = type_code[lo:hi]
        np.take(mean_w, c, out=e, mode="clip")  # "raise" would copy through a buffer
        np.subtract(credit[lo:hi], e, out=e)
        w = None
        if counted is not None:
            w = counted[: hi - lo]
            np.take(counted_w, c, out=w, mode="clip")
            e *= w
        c[...] = rep_code[lo:hi]
        np.add.at(excess_sum, c, e)
        if n_sum is not None:
            np.add.at(n_sum, c, 1 if w is None else w)
    if count:
        n_rc = n_sum
    n_rc = n_rc.reshape(n_reps, width)
    excess_rc = excess_sum.reshape(n_reps, width)
    return n_tc, credit_tc[:, 1:], n_rc[:, 1:], excess_rc[:, 1:]


def touch_codes_of(enriched: Any) -> TouchCodes | None:
    """The :class:`TouchCodes` of the build ``enriched`` was read from (mapped once per
    process and build), or None: facts enriched in memory, or a build without them (older,
    or partitioned above ``limits.partition_above_rows``).

    Examples
    --------
    >>> touch_codes_of(open_build(folder).enriched)  # doctest: +SKIP
    <effortlens.habits.TouchCodes object at ...>
    """
    from effortlens.facts import HABIT_TOUCHES, read_once

    return read_once(enriched, HABIT_TOUCHES, ("rep_cell.npy",), TouchCodes)


#: Code -> the filter fields that restrict it.
_RESTRICTING = {"owner": ("reps", "teams", "segments", "roles"), "type": ("activity_types",)}


def replace_period(flt: Any) -> Any:
    """``flt`` without its period."""
    from dataclasses import replace

    return replace(flt, start=None, end=None)


def _dense_effects(
    sums: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    cell_keys: pl.DataFrame,
    *,
    feature: str,
    min_lift: float,
    min_activities: int,
    alpha: float,
) -> pl.DataFrame:
    """:func:`_effects_table` of the touches on a contact, from :func:`_effect_sums`: per
    type x cell their count and credit, per rep x cell their count and excess credit."""
    n_tc, credit_tc, n_rc, excess_rc = sums
    n_t = n_tc.sum(axis=1)
    mean_t = np.divide(credit_tc.sum(axis=1), n_t, out=np.zeros(len(n_t)), where=n_t > 0)
    present = n_rc > 0
    k = present.sum(axis=0)
    variance = (np.where(present, excess_rc, 0.0) ** 2).sum(axis=0) * k / np.maximum(k - 1, 1)
    activities = n_tc.sum(axis=0)
    used = np.flatnonzero(activities)
    credited = credit_tc.sum(axis=0)[used]
    expected = (n_tc * mean_t[:, None]).sum(axis=0)[used]
    activities, variance = activities[used], variance[used]
    keys, cells = cell_keys[used], _habit_cells(feature)
    if any(keys[c].has_nulls() for c in cells):  # sorted as Polars sorts nulls
        return _effects_finish(
            keys.hstack(
                [
                    pl.Series("activities", activities, dtype=pl.UInt32),
                    pl.Series("credited", credited, dtype=pl.Float64),
                    pl.Series("expected", expected, dtype=pl.Float64),
                    pl.Series("variance", variance, dtype=pl.Float64),
                ]
            ),
            feature=feature,
            edges=CADENCE_EDGES,
            min_lift=min_lift,
            min_activities=min_activities,
            alpha=alpha,
        )
    # the cells in their order (each once), in numpy: the keys are written sorted
    order = np.lexsort([keys[c].to_numpy() for c in reversed(cells)])
    if (order != np.arange(len(order))).any():
        keys = keys[order]
        credited, expected = credited[order], expected[order]
        activities, variance = activities[order], variance[order]
    stats = _effect_stats(
        credited,
        expected,
        variance,
        activities,
        min_lift=min_lift,
        min_activities=min_activities,
        alpha=alpha,
    )
    if feature == "cadence":
        label, lower = _cadence_columns(keys["bin_order"].to_list(), list(CADENCE_EDGES))
        keys = pl.DataFrame([label, keys["bin_order"], lower])
    sums_of_cells = [
        pl.Series("activities", activities, dtype=pl.UInt32),
        pl.Series("credited", credited, dtype=pl.Float64),
        pl.Series("expected", expected, dtype=pl.Float64),
    ]
    return keys.hstack([*sums_of_cells, *stats])


def _counts_table(keys: pl.DataFrame, n: np.ndarray, answered: np.ndarray) -> pl.LazyFrame:
    used = np.flatnonzero(n)
    return (
        keys[used]
        .hstack(
            [
                pl.Series("n", n[used], dtype=pl.UInt32),
                pl.Series("responded", answered[used], dtype=pl.UInt32),
            ]
        )
        .lazy()
    )


def _rates(n: np.ndarray, answered: np.ndarray) -> tuple[np.ndarray, float | None]:
    """``answered / n`` per row and the pooled rate (None without touches), as
    :func:`effortlens.measures.response_rate` and :func:`_pooled_rate` give them."""
    total = int(n.sum())
    pooled = float(int(answered.sum())) / total if total else None
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, answered / n, np.nan), pooled


def _lift_over(rate: np.ndarray, pooled: float | None) -> np.ndarray:
    """``rate / pooled`` as :func:`_with_lift` (null without a pooled rate)."""
    return rate / pooled if pooled else np.full(len(rate), np.nan)


def _float(name: str, values: np.ndarray) -> pl.Series:
    return pl.Series(name, values, dtype=pl.Float64, nan_to_null=True)


def _counts_columns(n: np.ndarray, answered: np.ndarray, rate: np.ndarray) -> list[pl.Series]:
    return [
        pl.Series("activities", n, dtype=pl.UInt32),
        pl.Series("responded", answered, dtype=pl.UInt32),
        _float("response_rate", rate),
    ]


def _timing_of_counts(codes: TouchCodes, n: np.ndarray, answered: np.ndarray) -> pl.DataFrame:
    """:func:`_timing_table` of the touches (``n``) and answered ones per type x cells + cell,
    from numpy: one frame, no query (the same numbers, rows and types)."""
    n_cells = codes.shape["cell"]
    used = np.flatnonzero(n)
    rate, pooled = _rates(n[used], answered[used])
    n_t = n.reshape(-1, n_cells).sum(axis=1)[used // n_cells]
    answered_t = answered.reshape(-1, n_cells).sum(axis=1)[used // n_cells]
    with np.errstate(divide="ignore", invalid="ignore"):
        type_rate = answered_t / n_t
        over_type = np.where(type_rate > 0, rate / type_rate, np.nan)
    table = codes.timing_keys[used].hstack(
        [
            *_counts_columns(n[used], answered[used], rate),
            _float("lift", _lift_over(rate, pooled)),
            _float("lift_over_type", over_type),
        ]
    )
    if codes.nulls["timing"]:  # the keys put nulls last, the tables first
        table = table.sort(["activity_type", "weekday", "hour"])
    return table


def _cadence_of_counts(codes: TouchCodes, n: np.ndarray, answered: np.ndarray) -> pl.DataFrame:
    """:func:`_cadence_cells` of the touches on a contact (``n``) and answered ones per bin."""
    used = np.flatnonzero(n)
    rate, pooled = _rates(n[used], answered[used])
    order = codes.keys["bin"]["bin_order"].to_numpy()[used]
    labels = [FIRST_TOUCH, *_cadence_labels(CADENCE_EDGES)]
    lower = [None, 0, *CADENCE_EDGES]
    known = [0 <= b < len(labels) for b in order.tolist()]
    return pl.DataFrame(
        [
            pl.Series(
                "cadence_bin",
                [labels[b] if k else None for b, k in zip(order.tolist(), known, strict=True)],
                dtype=pl.String,
            ),
            pl.Series("bin_order", order, dtype=pl.Int8),
            pl.Series(
                "min_days_since",
                [lower[b] if k else None for b, k in zip(order.tolist(), known, strict=True)],
                dtype=pl.Int32,
            ),
            *_counts_columns(n[used], answered[used], rate),
            _float("lift", _lift_over(rate, pooled)),
        ]
    )


def _sequences_of_counts(
    codes: TouchCodes, sums: dict[str, np.ndarray], *, min_support: int
) -> pl.DataFrame:
    """:func:`_rank_sequences` (by ``lift_over_type``) of the touches with a length-k history
    per sequence code (``sums["sequence_<k>"]``: 1 + code, answered), in numpy, then one
    sort."""
    rows, parts = [], []  # per length: the rows of codes.sequence_names, their columns
    for k in TOUCH_SEQUENCE_LENGTHS:
        both = sums[f"sequence_{k}"][1:]
        n, answered = both[:, 0] + both[:, 1], both[:, 1]
        kind = codes.sequence_types[k]  # the type code of each sequence's last touch
        n_t = np.bincount(kind, weights=n, minlength=codes.shape["type"])
        answered_t = np.bincount(kind, weights=answered, minlength=codes.shape["type"])
        _, base = _rates(n, answered)
        used = np.flatnonzero(n >= max(min_support, 1))
        rate, _ = _rates(n[used], answered[used])
        with np.errstate(divide="ignore", invalid="ignore"):
            type_rate = answered_t[kind[used]] / n_t[kind[used]]
            over_type = np.where(type_rate > 0, rate / type_rate, np.nan)
        # null without a base rate or with a zero one (as _ratio)
        lift = rate / base if base else np.full(len(used), np.nan)
        rows.append(used + codes.sequence_offsets[k])
        parts.append(
            (
                np.full(len(used), k),
                n[used],
                answered[used],
                rate,
                np.full(len(used), np.nan if base is None else base),
                lift,
                type_rate,
                over_type,
            )
        )
    # one frame of both lengths' rows (a frame per length and their concatenation cost more)
    length, support, responded, *rates = (np.concatenate(c) for c in zip(*parts, strict=True))
    table = pl.DataFrame(
        [
            codes.sequence_names.gather(np.concatenate(rows)),
            pl.Series("length", length, dtype=pl.Int8),
            pl.Series("support", support, dtype=pl.UInt32),
            pl.Series("responded", responded, dtype=pl.UInt32),
            *(
                _float(name, values)
                for name, values in zip(
                    ("response_rate", "base_rate", "lift", "type_rate", "lift_over_type"),
                    rates,
                    strict=True,
                )
            ),
        ]
    )
    return table.sort(
        ["lift_over_type", "support", "sequence"],
        descending=[True, True, False],
        nulls_last=True,
    )


def period_habits(
    codes: TouchCodes,
    flt: Any,
    *,
    min_support: int = 50,
    min_lift: float = MIN_HABIT_LIFT,
    min_activities: int = MIN_HABIT_ACTIVITIES,
    alpha: float = HABIT_ALPHA,
) -> dict[str, Any]:
    """:func:`touch_habits` of the touches that ``flt`` (an
    :class:`effortlens.filters.Filter`, with or without a period) keeps, made from
    :meth:`TouchCodes.sums`: without a rep, team, segment or role restriction the tables
    are two rows of the build's running totals per day, and only the rep-clustered spread
    of the habit effects reads the period's touches (the excess credit per rep x cell: one
    gather and one bincount per feature, the reps present from per-week running counts and
    the partial weeks' touches); with one,
    everything is summed from the kept owners' blocks. The same tables as
    :func:`touch_habits` of the filtered :func:`touch_facts` (activity types as text); float
    sums may differ in the last bits (another order).

    Examples
    --------
    >>> period_habits(codes, Filter(start=dt.date(2026, 4, 6)))["cadence"]  # doctest: +SKIP
    """
    sums = codes.sums(flt)
    keys = codes.keys
    by = sums["counts"]
    every = by.sum(axis=1).reshape(-1, 2)  # (type x cells + cell, responded)
    bins = by.sum(axis=(0, 2))[1:]
    timing = _timing_of_counts(codes, every[:, 0] + every[:, 1], every[:, 1])
    cadence = _cadence_of_counts(codes, bins[:, 0] + bins[:, 1], bins[:, 1])
    sequences = _sequences_of_counts(codes, sums, min_support=min_support)
    effects = {
        feature: _dense_effects(
            sums[feature],
            keys[key],
            feature=feature,
            min_lift=min_lift,
            min_activities=min_activities,
            alpha=alpha,
        )
        for feature, key in (("timing", "cell"), ("cadence", "bin"))
    }
    return {"timing": timing, "cadence": cadence, "sequences": sequences, "effects": effects}


# ------------------------------- the touch codes written a range of whole days at a time


def touch_code_dictionary(part: pl.DataFrame, name: str) -> pl.DataFrame:
    """The key table of code ``name`` (:data:`TOUCH_CODE_KEYS`) of touches whose key columns
    are ``part`` (or their distinct rows: the same table): the distinct rows sorted, nulls
    last (without those whose first column is null, for the codes that number them -1), as
    :func:`_touch_code` numbers them."""
    columns = list(TOUCH_CODE_KEYS[name])
    dictionary = part.select(columns).unique()
    if name in _NULL_CODED:
        dictionary = dictionary.drop_nulls(columns[0])
    return dictionary.sort(columns, nulls_last=True)


#: The per-touch columns of :func:`write_touch_codes` in day order (``<name>.npy``).
_PER_TOUCH = (
    "day",
    "owner",
    "cell",
    "bin",
    "rep_cell",
    "type",
    *(f"sequence_{k}" for k in TOUCH_SEQUENCE_LENGTHS),
    "responded",
    "credit_timing",
    "credit_cadence",
    "type_cell",
    "type_bin",
    "rep_bin",
)
#: Those whose type is their largest value's (:func:`_pair_code`): known once all are made.
_PAIRED = ("rep_cell", "type_cell", "type_bin", "rep_bin")


def touch_code_layout(
    dictionaries: dict[str, pl.DataFrame], *, rows: int, first: int, last: int
) -> dict[str, Any] | None:
    """What :func:`write_touch_code_range` and :func:`finish_touch_codes` share to write
    :func:`write_touch_codes`' files a range of whole days at a time: the key tables
    (:func:`touch_code_dictionary` of every touch), the ``rows`` touches (all with a day,
    from day ``first`` to ``last``, days since 1970-01-01) and each column's type. Each key
    column must be an ``Enum`` (the ranges give its physical codes) or an integer; ``None``
    when one is not, or the keys do not pack in 62 bits."""
    packed: dict[str, tuple[list[tuple[int, int]], np.ndarray]] = {}
    for name, dictionary in dictionaries.items():
        places = []
        space = 1
        for column in TOUCH_CODE_KEYS[name]:
            span = _value_span(dictionary[column])
            if span is None:
                return None
            low, count = span
            places.append((low, count + 1))
            space *= count + 1
        if space >= 1 << 62:
            return None
        keys = _packed(
            {c: dictionary[c].to_physical() for c in TOUCH_CODE_KEYS[name]}, name, places
        )
        if len(keys) and not (np.diff(keys) > 0).all():  # never: the key table's order
            raise RuntimeError(f"the touch codes' {name} keys are not in packed order")
        packed[name] = (places, keys)
    sizes = {name: dictionary.height for name, dictionary in dictionaries.items()}
    rep_of_owner = _rep_of_owner(dictionaries["owner"])
    most_rep = int(rep_of_owner.max(initial=0))
    n_cells, n_bins, n_types = sizes["cell"], sizes["bin"], sizes["type"]
    dtypes = {name: np.dtype(_narrowest(size)) for name, size in sizes.items()}
    dtypes.update(
        day=np.dtype(np.int32),
        responded=np.dtype(np.bool_),
        credit_timing=np.dtype(np.float64),
        credit_cadence=np.dtype(np.float64),
        # as _pair_code starts them: by their bound (narrowed at the end if need be)
        rep_cell=np.dtype(_narrowest((most_rep + 1) * (n_cells + 1))),
        type_cell=np.dtype(_narrowest(n_types * (n_cells + 1))),
        type_bin=np.dtype(_narrowest(n_types * (n_bins + 1))),
        rep_bin=np.dtype(_narrowest((most_rep + 1) * (n_bins + 1))),
    )
    return {
        "dictionaries": dictionaries,
        "packed": packed,
        "sizes": sizes,
        "rep_of_owner": rep_of_owner,
        "most_rep": most_rep,
        "dtypes": dtypes,
        "rows": rows,
        "first": first,
        "span": last - first + 1,
        "weeks": (last - first) // TOUCH_WEEK_DAYS + 1,
    }


def _packed(columns: dict[str, pl.Series], name: str, places: list[tuple[int, int]]) -> np.ndarray:
    """Each row's key columns (physical values) as one int64, in the key table's order
    (each column's value - its low, null after every value)."""
    key = np.zeros(0, dtype=np.int64)
    space = int(np.prod([width for _, width in places], dtype=np.int64))
    kind = np.int32 if space < 1 << 31 else np.int64
    for k, (column, (low, width)) in enumerate(zip(TOUCH_CODE_KEYS[name], places, strict=True)):
        values = columns[column]
        if values.null_count():  # null: the digit after every value
            if values.dtype in (pl.Int8, pl.Int16, pl.UInt8, pl.UInt16):  # max + 1 fits
                values = values.cast(pl.Int32)
            values = values.fill_null(low + width - 1)
        digits = values.to_numpy()
        if not k:
            key = digits.astype(kind)
        else:
            key *= width
            key += digits
        if low:
            key -= low
    return key


#: The most keys a code's lookup table holds (:func:`_coded`; 100M activities' owners: 30M
#: keys of 5,000 reps x 501 teams x 3 segments x 2 roles); past it, a binary search.
_LOOKUP_SPACE = 1 << 25


def _coded(columns: dict[str, pl.Series], name: str, layout: dict[str, Any]) -> np.ndarray:
    """Code ``name`` of each row whose key columns (physical values) are ``columns``: its
    key's place among the key table's (-1 where there is none: a null first column of the
    codes that number it so), by a lookup table of every key (made once per ``layout``)."""
    places, keys = layout["packed"][name]
    key = _packed(columns, name, places)
    dtype = layout["dtypes"][name]
    space = int(np.prod([width for _, width in places], dtype=np.int64))
    if space <= _LOOKUP_SPACE:
        tables = layout.setdefault("tables", {})
        if name not in tables:
            table = np.full(space, -1, dtype=dtype)
            table[keys] = np.arange(len(keys))
            tables[name] = table
        code = tables[name][key]
        if name not in _NULL_CODED and len(code) and int(code.min()) < 0:  # never
            raise RuntimeError(f"a touch's {name} is not in the touch codes' key table")
        return code
    at = np.searchsorted(keys, key)
    found = at < len(keys)
    found[found] = keys[at[found]] == key[found]
    if name not in _NULL_CODED and not found.all():  # never: the tables hold every key
        raise RuntimeError(f"a touch's {name} is not in the touch codes' key table")
    at[~found] = -1
    return at.astype(dtype)


def _times_plus(first: np.ndarray, width: int, then: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``first * width + then`` in ``dtype`` (wide enough for every value)."""
    out = first.astype(dtype)
    out *= width
    np.add(out, then, out=out, casting="unsafe")
    return out


def _data_at(path: Any) -> int:
    """Where the data of ``path`` (an ``.npy``) start."""
    from numpy.lib import format as npy

    with open(path, "rb") as file:
        npy.read_magic(file)
        npy.read_array_header_1_0(file)
        return file.tell()


def start_touch_codes(folder: Any, layout: dict[str, Any]) -> None:
    """The per-touch files of :func:`write_touch_codes` in ``folder``, their header written
    and their length set, for :func:`write_touch_code_range` to fill a range at a time."""
    from pathlib import Path

    folder = Path(folder)
    (folder / "by_owner").mkdir(parents=True, exist_ok=True)
    for name in _PER_TOUCH:
        _npy_sized(folder / f"{name}.npy", layout["dtypes"][name], layout["rows"])


def _npy_sized(path: Any, dtype: Any, rows: int) -> int:
    """An ``.npy`` file of ``rows`` values of ``dtype`` at ``path``: its header written and
    its length set (the values zero until written in place); where the values start."""
    from numpy.lib import format as npy

    dtype = np.dtype(dtype)
    header = {"descr": npy.dtype_to_descr(dtype), "fortran_order": False, "shape": (rows,)}
    with open(path, "wb") as out:
        npy.write_array_header_1_0(out, header)
        at = out.tell()
        out.truncate(at + rows * dtype.itemsize)
    return at


def write_touch_code_range(
    frame: pl.DataFrame, folder: Any, scratch: Any, *, index: int, at: int, layout: dict[str, Any]
) -> None:
    """Range ``index`` of :func:`write_touch_codes`' files: ``frame``, whole days of the
    touches in the order the codes are read (by day, then rep), every one with a day, its
    key text as physical codes of the key tables' ``Enum``s, are rows ``at …`` of the
    touches. Their codes are written in place into ``folder``'s per-touch files
    (:func:`start_touch_codes`), each day's touches ordered by rep x timing cell as
    :func:`write_touch_codes` orders them (a stable sort of whole days: the same order);
    the range's per-day counts and credit sums and per-week counts go to ``scratch`` for
    :func:`finish_touch_codes` (the credit sums added in :func:`_day_sums`' chunks of every
    touch: the same float sums)."""
    from pathlib import Path

    folder, scratch = Path(folder), Path(scratch)
    rows = frame.height
    sizes, dtypes = layout["sizes"], layout["dtypes"]
    n_cells, n_bins, n_types = sizes["cell"], sizes["bin"], sizes["type"]
    day = frame["day"].to_physical().cast(pl.Int32).to_numpy()
    if rows and (frame["day"].null_count() or not frame["day"].is_sorted()):
        raise RuntimeError("a range of the touch codes without a day or out of day order")
    physical = {c: frame[c].to_physical() for c in {c for k in TOUCH_CODE_KEYS.values() for c in k}}
    code = {
        name: _coded({c: physical[c] for c in columns}, name, layout)
        for name, columns in TOUCH_CODE_KEYS.items()
    }
    del physical
    rep = layout["rep_of_owner"][code["owner"]]
    bin_slot = _slot(code["bin"])
    cell_slot = _slot(code["cell"])
    cell_slot *= bin_slot > 0  # a timing cell on a contact only
    rep_cell = _times_plus(rep, n_cells + 1, cell_slot, dtypes["rep_cell"])
    order = _day_order(day, rep_cell, day_sorted=True)
    values = {
        "day": day,
        "owner": code["owner"],
        "cell": code["cell"],
        "bin": code["bin"],
        "rep_cell": rep_cell,
        "type": code["type"],
        **{f"sequence_{k}": code[f"sequence_{k}"] for k in TOUCH_SEQUENCE_LENGTHS},
        "responded": frame["responded"].fill_null(False).to_numpy(),
        "credit_timing": frame["credit_timing"].fill_null(0.0).to_numpy(),
        "credit_cadence": frame["credit_cadence"].fill_null(0.0).to_numpy(),
    }
    taken = {name: np.take(v, order) for name, v in values.items()}
    del values, code, rep_cell
    rep = np.take(rep, order)
    bin_slot = np.take(bin_slot, order)
    cell_slot = np.take(cell_slot, order)
    kind = taken["type"]
    taken["type_cell"] = _times_plus(kind, n_cells + 1, cell_slot, dtypes["type_cell"])
    taken["type_bin"] = _times_plus(kind, n_bins + 1, bin_slot, dtypes["type_bin"])
    taken["rep_bin"] = _times_plus(rep, n_bins + 1, bin_slot, dtypes["rep_bin"])
    del rep
    kind = kind.astype(np.int64)
    most = {name: int(taken[name].max(initial=0)) for name in _PAIRED}
    for name in _PER_TOUCH:
        dtype = dtypes[name]
        values = np.ascontiguousarray(taken[name].astype(dtype, copy=False))
        path = folder / f"{name}.npy"
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, memoryview(values).cast("B"), _data_at(path) + at * dtype.itemsize)
        finally:
            os.close(fd)
    # what the running totals add up: per day (this range's days with a touch), per week
    # (its weeks with one)
    first = layout["first"]
    days = taken["day"].astype(np.int64) - first
    present = _distinct_sorted(days)
    n_days = len(present)
    local = _row_of_day(days, present)
    answered = taken["responded"].astype(np.int64)

    def per_day(codes: np.ndarray, size: int) -> np.ndarray:
        return np.bincount(local * size + codes, minlength=n_days * size).reshape(n_days, size)

    size = n_types * (n_bins + 1) * n_cells * 2
    tbc = ((kind * (n_bins + 1) + bin_slot) * n_cells + taken["cell"]) * 2 + answered
    sums: dict[str, np.ndarray] = {"counts": per_day(tbc, size)}
    del tbc
    for k in TOUCH_SEQUENCE_LENGTHS:
        name = f"sequence_{k}"
        slot = _slot(taken[name]).astype(np.int64) * 2 + answered
        sums[f"running_{name}"] = per_day(slot, (sizes[name] + 1) * 2)
    # the credit per day by type x (1 + cell or bin): added in _day_sums' chunks of all
    # the touches (a day's sum is its chunks' sums added in order: the same bits)
    cuts = [0]
    chunk = ((at // _CHUNK) + 1) * _CHUNK - at
    while chunk < rows:
        cuts.append(chunk)
        chunk += _CHUNK
    cuts.append(rows)
    for feature, name, width in (("timing", "cell", n_cells + 1), ("cadence", "bin", n_bins + 1)):
        paired = taken[f"type_{name}"].astype(np.int64)
        credit = taken[f"credit_{feature}"]
        span = n_types * width
        total = np.zeros((n_days, span))
        flat = total.reshape(-1)
        for lo, hi in zip(cuts, cuts[1:], strict=False):
            if hi <= lo:
                continue
            a, b = int(local[lo]), int(local[hi - 1])
            key = (local[lo:hi] - a) * span + paired[lo:hi]
            flat[a * span : (b + 1) * span] += np.bincount(
                key, weights=credit[lo:hi], minlength=(b - a + 1) * span
            )
        sums[f"credit_{feature}"] = total
        # the touches per rep x (1 + cell or bin) per week
        weeks = days // TOUCH_WEEK_DAYS
        present_weeks = _distinct_sorted(weeks)
        n_weeks = len(present_weeks)
        width_rep = (layout["most_rep"] + 1) * width
        sums[f"rep_{name}"] = np.bincount(
            _row_of_day(weeks, present_weeks) * width_rep + taken[f"rep_{name}"],
            minlength=n_weeks * width_rep,
        ).reshape(n_weeks, width_rep)
        sums[f"rep_{name}_weeks"] = present_weeks
    sums["days"] = present
    sums["most"] = np.array([most[name] for name in _PAIRED], dtype=np.int64)
    np.savez(scratch / f"range-{index:05d}.npz", **sums)


def finish_touch_codes(
    folder: Any,
    scratch: Any,
    layout: dict[str, Any],
    *,
    each_run: Callable[[int, int, np.ndarray, dict[str, np.ndarray]], Any] | None = None,
    runs_of: Callable[[np.ndarray], list[tuple[int, int]]] | None = None,
    threads: int = 1,
) -> int:
    """What :func:`write_touch_codes` writes besides the per-touch columns, once every range
    is in (:func:`write_touch_code_range`): the key tables, the running totals (added up
    from the ranges' sums), the columns by owner (:func:`write_by_owner`, ``each_run`` and
    ``runs_of`` as there); the paired codes narrowed to their largest value's type. The same
    files as :func:`write_touch_codes` of the touches. Returns the number of touches.

    With ``threads`` > 1, the totals are added up beside the columns by owner, and the
    owners' runs of those run that many at once (numpy's sorts, gathers, bincounts and the
    writes let go of the GIL): the step was one thread (100M: ~10 CPU s in ~10 s of wall, the
    other core idle)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        totals = pool.submit(_touch_code_totals, folder, scratch, layout)
        if threads <= 1:  # one after another, as before
            totals.result()
        write_by_owner(
            folder,
            owners=layout["sizes"]["owner"],
            each_run=each_run,
            runs_of=runs_of,
            pool=pool if threads > 1 else None,
        )
        totals.result()
    return layout["rows"]


def _touch_code_totals(folder: Any, scratch: Any, layout: dict[str, Any]) -> None:
    """:func:`finish_touch_codes` but the columns by owner: the key tables, the paired codes
    narrowed, the running totals and credit sums added up from the ranges' sums."""
    from pathlib import Path

    folder, scratch = Path(folder), Path(scratch)
    for name, dictionary in layout["dictionaries"].items():
        written = dictionary.with_columns(pl.col(pl.Enum).cast(pl.String))
        if name.startswith("sequence_"):
            written = written.rename({TOUCH_CODE_KEYS[name][0]: "sequence"})
        written.write_parquet(folder / f"{name}.keys.parquet")
    ranges = [dict(np.load(p)) for p in sorted(scratch.glob("range-*.npz"))]
    rows, span, n_weeks = layout["rows"], layout["span"], layout["weeks"]
    most = np.max([r["most"] for r in ranges], axis=0) if ranges else np.zeros(len(_PAIRED))
    for name, largest in zip(_PAIRED, most.tolist(), strict=True):
        dtype = np.dtype(_narrowest(int(largest)))
        if dtype != layout["dtypes"][name]:  # as _pair_code narrows them
            np.save(folder / f"{name}.npy", np.load(folder / f"{name}.npy").astype(dtype))

    # a row per day (week) with a touch: the ranges hold whole days, one after the other;
    # a week may be in two
    none = [np.zeros(0, dtype=np.int32)]
    days = np.unique(np.concatenate([r["days"] for r in ranges] or none))
    _save_present(folder / "running_days.npy", days, span)
    weeks = np.unique(np.concatenate([r["rep_cell_weeks"] for r in ranges] or none))
    _save_present(folder / "running_weeks.npy", weeks, n_weeks)

    def running(name: str, *, weekly: str | None = None) -> np.ndarray:
        size = ranges[0][name].shape[1]
        present = weeks if weekly else days
        total = np.zeros((len(present) + 1, size), dtype=np.intp)
        for r in ranges:
            total[1 + np.searchsorted(present, r[weekly] if weekly else r["days"])] += r[name]
        np.cumsum(total, axis=0, out=total)
        return total

    counts = running("counts")
    np.save(folder / "running_counts.npy", counts.astype(_narrowest(int(counts[-1].sum()))))
    del counts
    for k in TOUCH_SEQUENCE_LENGTHS:
        name = f"running_sequence_{k}"
        np.save(folder / f"{name}.npy", running(name).astype(_narrowest(rows)))
    for feature, name in (("timing", "cell"), ("cadence", "bin")):
        per_day = np.zeros((len(days), ranges[0][f"credit_{feature}"].shape[1]))
        for r in ranges:
            per_day[np.searchsorted(days, r["days"])] = r[f"credit_{feature}"]
        np.save(folder / f"running_credit_{feature}.npy", _running_double(per_day))
        del per_day
        weekly = running(f"rep_{name}", weekly=f"rep_{name}_weeks")
        most_week = int(weekly[-1].max(initial=0))
        np.save(folder / f"running_rep_{name}.npy", weekly.astype(_narrowest(most_week)))
        del weekly


#: Touches a run of whole owners holds at most (but one owner with more) when
#: :func:`write_by_owner` writes the columns by owner a run at a time.
BY_OWNER_ROWS = 1 << 22


def owner_runs(starts: np.ndarray, *, rows: int, most: int | None = None) -> list[tuple[int, int]]:
    """Runs of whole owners, in owner order, each ``(first, last)``: owners ``first`` to
    ``last - 1``, rows ``starts[first]:starts[last]`` of the columns by owner (``starts`` as
    ``by_owner/starts.npy``), about ``rows`` touches (one owner at least), ``most`` owners
    at most.

    Examples
    --------
    >>> owner_runs(np.array([0, 3, 3, 9, 10]), rows=4)
    [(0, 2), (2, 3), (3, 4)]
    >>> owner_runs(np.array([0, 3, 3, 9, 10]), rows=100, most=3)
    [(0, 3), (3, 4)]
    """
    n = len(starts) - 1
    runs = []
    first = 0
    while first < n:
        last = int(np.searchsorted(starts, starts[first] + rows, side="right")) - 1
        last = min(max(last, first + 1), n, first + most if most else n)
        runs.append((first, last))
        first = last
    return runs


def write_by_owner(
    folder: Any,
    *,
    owners: int,
    each_run: Callable[[int, int, np.ndarray, dict[str, np.ndarray]], Any] | None = None,
    runs_of: Callable[[np.ndarray], list[tuple[int, int]]] | None = None,
    pool: Executor | None = None,
) -> list[Any]:
    """The columns :data:`TOUCH_BY_OWNER` of ``folder``'s per-touch files (``owner.npy`` of
    ``owners`` codes) again by owner, then day, in ``folder/by_owner`` with ``starts.npy``
    (for :func:`write_touch_codes` and :func:`finish_touch_codes`). A run of whole owners at a time
    (``runs_of(starts)``, default :func:`owner_runs` of :data:`BY_OWNER_ROWS`): each column's
    rows of the run gathered from the per-touch file (mapped: no copy of it read in) and
    written in place, the files held open for writing until all are in (the build's checksum
    watcher waits for them); ``pool`` runs the runs at once. ``each_run(first, last, counts,
    columns)`` is called with each run's owners, their touches and the run's columns (by
    owner) as they are gathered, here or in ``pool``: its results, in run order, are
    returned."""
    from pathlib import Path

    folder = Path(folder)
    (folder / "by_owner").mkdir(parents=True, exist_ok=True)
    owner = np.load(folder / "owner.npy")
    # a stable sort keeps the day order within an owner; each owner's first row counted
    # (every code is below `owners`: not gathered and searched)
    order = np.argsort(owner, kind="stable")
    starts = np.zeros(owners + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=owners)[:owners], out=starts[1:])
    del owner
    np.save(folder / "by_owner" / "starts.npy", starts.astype(np.int64))
    columns = {name: _mapped(folder / f"{name}.npy") for name in TOUCH_BY_OWNER}
    files: dict[str, tuple[int, int, int]] = {}  # name: descriptor, data offset, item size
    try:
        for name, values in columns.items():
            path = folder / "by_owner" / f"{name}.npy"
            at = _npy_sized(path, values.dtype, len(order))
            files[name] = (os.open(path, os.O_WRONLY), at, values.dtype.itemsize)

        def one(run: tuple[int, int]) -> Any:
            first, last = run
            lo, hi = int(starts[first]), int(starts[last])
            taken = {}
            for name, values in columns.items():
                taken[name] = np.ascontiguousarray(np.take(values, order[lo:hi]))
                fd, at, size = files[name]
                data = memoryview(taken[name]).cast("B")
                done = 0
                while done < len(data):
                    done += os.pwrite(fd, data[done:], at + lo * size + done)
            if each_run is None:
                return None
            return each_run(first, last, np.diff(starts[first : last + 1]), taken)

        runs = (runs_of or (lambda s: owner_runs(s, rows=BY_OWNER_ROWS)))(starts)
        return list(pool.map(one, runs) if pool is not None else map(one, runs))
    finally:
        for fd, _, _ in files.values():
            os.close(fd)
