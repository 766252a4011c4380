"""Attribution: which seller activity earned each buyer action (DESIGN §5).

A buyer action is credited to the **latest customer-facing activity at or before it** (an
activity at the very same timestamp counts) on the same opportunity; if there is none, on the
same contact; if there is none, on the same account. Only activities within
``window_days`` count, and the boundary is **inclusive**: an activity exactly
``window_days × 24 h`` before the action still earns it, one microsecond earlier does not.
Actions with no such activity are *buyer-initiated*. When several activities share the
deciding timestamp on the same key, the one that comes last in the activities table wins.

Attribution always sees every rep's activities: filter by team or period only afterwards.

How it is computed, and why so: ``join_asof`` with ``by=`` needs both sides sorted within each
group, does not check it, and groups string keys slowly. Instead, for each level, every event
becomes one ``Int128``: ``hash(key) · 2^(T+R) + µs since the first event · 2^R + row`` (an
action's low bits are all ones, so it sorts after the activities of its own microsecond). The
activities' numbers are sorted as plain values (no payload to carry) and a plain as-of join
finds, for each action, the greatest activity number below it: the latest activity with the
same key hash at or before it; its row is in the low bits. Different hashes are further apart
than any window, so a lag within the window means the same hash; every such match is then
checked on the real key strings, and the rare action whose match came from a different key with
the same hash (odds ~n²/2^56 for n keys) is recomputed exactly by a join on the key. The result
is exact.

Examples
--------
>>> import polars as pl
>>> from datetime import datetime, timezone
>>> t = lambda d: datetime(2024, 5, d, 9, tzinfo=timezone.utc)
>>> acts = pl.DataFrame({"activity_id": ["a1"], "rep_id": ["r1"], "ts": [t(1)],
...     "activity_type": ["email"], "account_id": ["x"], "opportunity_id": ["o1"],
...     "contact_id": ["c1"]})
>>> actions = pl.DataFrame({"action_id": ["b1", "b2"], "ts": [t(2), t(28)],
...     "account_id": ["x", "x"], "opportunity_id": ["o1", "o1"], "contact_id": [None, None]})
>>> out = attribute_actions(acts, actions, window_days=14, customer_facing=["email"])
>>> out.select("action_id", "activity_id", "attribution_level", "buyer_initiated").rows()
[('b1', 'a1', 'opportunity', False), ('b2', None, None, True)]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

#: Attribution levels, most specific first, and the column each one matches on.
LEVELS: tuple[tuple[str, str], ...] = (
    ("opportunity", "opportunity_id"),
    ("contact", "contact_id"),
    ("account", "account_id"),
)

_US_PER_HOUR = 3_600_000_000
_HASH_SEED = 20240501
_MIN_KEY_BITS = 16


def key_hash(key: pl.Expr, bits: int) -> pl.Expr:
    """The top ``bits`` bits of the key's 64-bit hash: the key's part of the packed number.

    Keys with equal hashes are told apart by :func:`exact_matches`; a test can make every key
    collide by replacing this function.

    Examples
    --------
    >>> pl.select(key_hash(pl.lit("acme"), 16)).dtypes
    [UInt64]
    """
    return key.hash(_HASH_SEED) // 2 ** (64 - bits)


def _layout(*, span_us: int, window_us: int, rows: int) -> tuple[int, int, int]:
    """Bits of the packed number for the time (T), the row (R) and the key hash (K)."""
    time_bits = (span_us + window_us + 1).bit_length()  # hashes differ by more than a window
    row_bits = max(rows, 1).bit_length()  # rows < 2^R - 1: all ones is left for actions
    key_bits = min(64, 127 - time_bits - row_bits)
    if key_bits < _MIN_KEY_BITS:
        raise ValueError(
            f"cannot attribute {rows} activities over {span_us / 8.64e10:.0f} days in one pass"
        )
    return time_bits, row_bits, key_bits


def attribution_rows(
    activities: pl.DataFrame,
    actions: pl.DataFrame,
    *,
    window_days: int,
    customer_facing: Sequence[str],
    facing: pl.Series | None = None,
) -> pl.DataFrame:
    """The attributed activity of each buyer action, as a row number into ``activities``.

    The building block of :func:`attribute_actions` and of enrichment, which scatters the
    counts back to activities by row number without a join on string ids.

    Parameters
    ----------
    activities
        Canonical activities (``ts``, ``activity_type``, ``opportunity_id``, ``contact_id``,
        ``account_id``), in any order.
    actions
        Canonical buyer actions (``ts``, ``opportunity_id``, ``contact_id``, ``account_id``).
    window_days
        Attribution window in days, inclusive (``settings.attribution_window_days``).
    customer_facing
        Activity types that can earn a buyer action (``settings.customer_facing_types``).
    facing
        Which activities are customer-facing, when the caller has it already (one boolean a
        row, as ``activity_type.is_in(customer_facing)``); else worked out here.

    Returns
    -------
    pl.DataFrame
        One row per action, in the actions' order: ``activity_row`` (UInt32, the 0-based row
        of the credited activity, null when buyer-initiated), ``attribution_level`` (String:
        ``opportunity``, ``contact``, ``account`` or null) and ``lag_hours`` (Float64).

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import datetime, timezone
    >>> ts = datetime(2024, 5, 1, tzinfo=timezone.utc)
    >>> acts = pl.DataFrame({"ts": [ts, ts], "activity_type": ["internal", "call"],
    ...     "account_id": ["x", "x"], "opportunity_id": ["o1", "o1"], "contact_id": ["c", "c"]})
    >>> actions = acts.select("ts", "account_id", "opportunity_id", "contact_id")
    >>> attribution_rows(acts, actions, window_days=14, customer_facing=["call"]).rows()
    [(1, 'opportunity', 0.0), (1, 'opportunity', 0.0)]
    """
    n_actions = actions.height
    best_row = np.full(n_actions, -1, dtype=np.int64)
    best_lag = np.zeros(n_actions, dtype=np.int64)
    best_level = np.full(n_actions, -1, dtype=np.int8)
    window_us = int(window_days) * 24 * _US_PER_HOUR
    if facing is None:
        facing = activities["activity_type"].is_in(list(customer_facing))
    facing_mask = facing.fill_null(False).alias("_keep")

    if facing_mask.any() and n_actions:
        bounds = pl.concat([activities.select("ts"), actions.select("ts")]).select(
            first=pl.col("ts").dt.epoch("us").min(), last=pl.col("ts").dt.epoch("us").max()
        )
        origin_us, last_us = bounds.row(0)
        time_bits, row_bits, key_bits = _layout(
            span_us=last_us - origin_us, window_us=window_us, rows=activities.height
        )
        key_unit = pl.lit(2 ** (time_bits + row_bits), pl.Int128)
        row_unit = pl.lit(2**row_bits, pl.Int128)
        # the first level's keys as exact codes (no hash, no check): cheap when the rows come
        # grouped by it (the loaded order), and then its packed numbers are sorted already
        first = LEVELS[0][1]
        coded = key_codes(activities[first], actions[first], most=2**key_bits)

        def numbered(frame: pl.DataFrame, codes: pl.Series | None) -> pl.LazyFrame:
            """Row number, µs since the first event, and per level the key (the first
            level's code, else its hash) and its presence."""
            return frame.lazy().select(
                pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"),
                (pl.col("ts").dt.epoch("us") - origin_us).alias("t"),
                *(
                    codes.cast(pl.UInt64).alias(key)
                    if key == first and codes is not None
                    else key_hash(pl.col(key), key_bits).alias(key)
                    for _, key in LEVELS
                ),
                *(pl.col(key).is_not_null().alias(f"has_{key}") for _, key in LEVELS),
            )

        def packed(key: str, low: pl.Expr) -> pl.Expr:
            # Int128 arithmetic is cheap; Int128 when/then is not: rows without a key are
            # filtered out before packing instead of being masked
            return (
                pl.col(key).cast(pl.Int128) * key_unit
                + pl.col("t").cast(pl.Int128) * row_unit
                + low.cast(pl.Int128)
            ).alias("packed")

        facing_rows = numbered(activities, coded and coded[0]).filter(pl.lit(facing_mask))
        numbered_actions = numbered(actions, coded and coded[1]).collect()
        for code, (_, key) in enumerate(LEVELS):
            # only actions still unattributed need a less specific level
            pending = numbered_actions.filter(pl.Series(best_row < 0) & pl.col(f"has_{key}"))
            if pending.height == 0:
                continue
            left = pending.select(packed(key, pl.lit(2**row_bits - 1)), "row").sort("packed")
            candidates = facing_rows.filter(pl.col(f"has_{key}"))
            if code and pending.height * 8 < n_actions:  # few left: their keys' activities
                candidates = candidates.filter(pl.col(key).is_in(pending[key].unique().implode()))
            right = (
                candidates.select(packed(key, pl.col("row")).alias("packed_activity"))
                .collect()
                .to_series()
                .sort()  # the first level's: in order already when the rows are grouped by it
                .to_frame()
            )
            matched = (
                left.join_asof(
                    right,
                    left_on="packed",
                    right_on="packed_activity",
                    strategy="backward",
                    coalesce=False,
                )
                .select(
                    pl.col("row").alias("action_row"),
                    (pl.col("packed_activity") % row_unit).cast(pl.UInt32).alias("activity_row"),
                    (pl.col("packed") // row_unit - pl.col("packed_activity") // row_unit).alias(
                        "lag"
                    ),
                )
                .filter(pl.col("lag").is_between(0, window_us, closed="both"))
                .with_columns(pl.col("lag").cast(pl.Int64))
            )
            if code or coded is None:  # hashed keys: each match checked on the keys themselves
                same_key = (
                    actions[key].gather(matched["action_row"])
                    == activities[key].gather(matched["activity_row"])
                ).fill_null(False)
                if not same_key.all():
                    collided = matched.filter(~same_key)["action_row"]
                    matched = pl.concat(
                        [
                            matched.filter(same_key),
                            exact_matches(
                                activities,
                                facing_mask,
                                actions,
                                collided,
                                key=key,
                                window_us=window_us,
                            ),
                        ]
                    )
            at = matched["action_row"].to_numpy()
            best_row[at] = matched["activity_row"].to_numpy()
            best_lag[at] = matched["lag"].to_numpy()
            best_level[at] = code

    found = pl.Series(best_row >= 0)
    return pl.DataFrame(
        {
            "activity_row": pl.Series(best_row).cast(pl.UInt32, strict=False),
            "attribution_level": pl.Series(best_level).replace_strict(
                dict(enumerate(name for name, _ in LEVELS)), default=None, return_dtype=pl.String
            ),
            "lag_hours": pl.Series(best_lag / _US_PER_HOUR),
        }
    ).with_columns(pl.when(found).then(pl.all()).name.keep())


def key_codes(*keys: pl.Series, most: int = 2**32) -> tuple[pl.Series, ...] | None:
    """Each row's key as its rank among the distinct keys of all ``keys`` (a null: the code
    after the last): equal keys, equal codes, in the keys' order; None when there are
    ``most`` distinct keys or more. Worked out per run of equal keys, so it is cheap when the
    rows come grouped by the key (activities and actions in the loaded order, by opportunity:
    a partition's 3.5M events in ~50K runs).

    Examples
    --------
    >>> a, b = key_codes(pl.Series(["o2", "o2", None, "o1"]), pl.Series(["o3", "o1"]))
    >>> a.to_list(), b.to_list()
    ([1, 1, 3, 0], [2, 0])
    """
    runs = [key.rle().struct.unnest() for key in keys]
    distinct = pl.concat([run["value"] for run in runs]).drop_nulls().unique().sort()
    if distinct.len() >= min(most - 1, 2**32 - 1):
        return None
    return tuple(
        pl.Series(
            np.repeat(
                run["value"].cast(pl.Enum(distinct)).to_physical().fill_null(distinct.len()),
                run["len"].to_numpy(),
            ),
            dtype=pl.UInt32,
        )
        for run in runs
    )


def exact_matches(
    activities: pl.DataFrame,
    facing_mask: pl.Series,
    actions: pl.DataFrame,
    action_rows: pl.Series,
    *,
    key: str,
    window_us: int,
) -> pl.DataFrame:
    """The definition by a plain join on ``key``, for the few actions whose hash collided.

    Parameters
    ----------
    activities, actions
        As for :func:`attribution_rows`.
    facing_mask
        Which activities are customer-facing (one boolean per activity row).
    action_rows
        The 0-based rows of the actions to match.
    key
        The level's key column (``opportunity_id``, ``contact_id`` or ``account_id``).
    window_us
        The attribution window in microseconds, inclusive.

    Returns
    -------
    pl.DataFrame
        ``action_row``, ``activity_row`` (the latest customer-facing activity on the same key
        within the window; at equal times the later row) and ``lag`` (µs), one row per action
        that has one.
    """
    wanted = actions.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("action_row"), key, "ts")[
        action_rows
    ]
    candidates = activities.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("activity_row"),
        key,
        pl.col("ts").alias("activity_ts"),
    ).filter(facing_mask & pl.col(key).is_in(wanted[key].implode()))
    return (
        wanted.join(candidates, on=key)
        .with_columns(lag=(pl.col("ts").dt.epoch("us") - pl.col("activity_ts").dt.epoch("us")))
        .filter(pl.col("lag").is_between(0, window_us, closed="both"))
        # the latest activity; at equal times the later row, as in the packed order
        .sort("action_row", "lag", "activity_row", descending=[False, True, False])
        .group_by("action_row", maintain_order=True)
        .last()
        .select("action_row", "activity_row", "lag")
    )


def attribute_actions(
    activities: pl.DataFrame,
    actions: pl.DataFrame,
    *,
    window_days: int,
    customer_facing: Sequence[str],
) -> pl.DataFrame:
    """Buyer actions with the activity, level, rep and lag that earned each one.

    Parameters
    ----------
    activities, actions, window_days, customer_facing
        As for :func:`attribution_rows`.

    Returns
    -------
    pl.DataFrame
        ``actions`` (unchanged, same order) plus ``activity_id``, ``attribution_level``,
        ``rep_id`` (the credited activity's rep), ``lag_hours`` and ``buyer_initiated``.

    Examples
    --------
    See the module docstring.
    """
    rows = attribution_rows(
        activities, actions, window_days=window_days, customer_facing=customer_facing
    )
    return with_attribution(actions, activities, rows)


def with_attribution(
    actions: pl.DataFrame, activities: pl.DataFrame, rows: pl.DataFrame
) -> pl.DataFrame:
    """``actions`` plus the columns named by :func:`attribution_rows`' result ``rows``."""
    credited = activities.select("activity_id", "rep_id")[rows["activity_row"]]
    return actions.with_columns(
        credited["activity_id"],
        rows["attribution_level"],
        credited["rep_id"],
        rows["lag_hours"],
        buyer_initiated=rows["activity_row"].is_null(),
    )
