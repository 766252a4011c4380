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
group, does not check it, and hashes string groups slowly. Instead each level packs its key
and the time into one ``Int128`` — ``hash(key) · 2^63 + µs since the earliest event`` — sorts
each side once by that single column and runs a plain as-of join on it. Two different keys are
then at least ~2^62 apart, so "the lag is between 0 and the window" also proves the key is the
same. A 63-bit hash collision between two different keys (odds ~n²/2^64, about 1 in 10 million
for a million opportunities) would let one key see the other's activities.

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
_KEY_STRIDE = 2**63  # hash(key) // 2 < 2^63, µs offsets < 2^62: packed values stay in Int128
_HASH_SEED = 20240501


def _packed(frame: pl.DataFrame, key: str, *, origin_us: int, index: str) -> pl.DataFrame:
    """Rows with a ``key``: ``packed`` = hash(key)·2^63 + µs since ``origin_us``, sorted."""
    return (
        frame.lazy()
        .filter(pl.col(key).is_not_null())
        .select(
            (
                (pl.col(key).hash(_HASH_SEED) // 2).cast(pl.Int128) * pl.lit(_KEY_STRIDE, pl.Int128)
                + (pl.col("ts").dt.epoch("us") - origin_us).cast(pl.Int128)
            ).alias("packed"),
            pl.col(index),
        )
        # stable: among equal (key, ts) the later activity stays later and wins the as-of
        .sort("packed", maintain_order=True)
        .collect(engine="in-memory")
    )


def attribution_rows(
    activities: pl.DataFrame,
    actions: pl.DataFrame,
    *,
    window_days: int,
    customer_facing: Sequence[str],
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

    facing = (
        activities.lazy()
        .with_row_index("activity_row")
        .filter(pl.col("activity_type").is_in(list(customer_facing)))
        .select("activity_row", "ts", *(key for _, key in LEVELS))
        .collect(engine="in-memory")
    )
    if facing.height and n_actions:
        bounds = pl.concat([facing.select("ts"), actions.select("ts")]).select(
            pl.col("ts").dt.epoch("us").min()
        )
        origin_us = int(bounds.item())
        numbered = (
            actions.lazy()
            .with_row_index("action_row")
            .select("action_row", "ts", *(key for _, key in LEVELS))
            .collect(engine="in-memory")
        )
        for code, (_, key) in enumerate(LEVELS):
            # only actions still unattributed need a less specific level
            pending = numbered.filter(pl.Series(best_row < 0))
            if pending.height == 0:
                break
            left = _packed(pending, key, origin_us=origin_us, index="action_row")
            right = _packed(facing, key, origin_us=origin_us, index="activity_row")
            matched = (
                left.join_asof(
                    right.with_columns(pl.col("packed").alias("packed_activity")),
                    on="packed",
                    strategy="backward",
                )
                .select(
                    "action_row",
                    "activity_row",
                    (pl.col("packed") - pl.col("packed_activity")).alias("lag"),
                )
                # 0 <= lag <= window also proves the same key: other keys are ~2^62 apart
                .filter(pl.col("lag").is_between(0, window_us, closed="both"))
                .with_columns(pl.col("lag").cast(pl.Int64))
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
