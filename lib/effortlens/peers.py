"""Peer groups: reps "just like me", who share the settings' peer keys (default segment + role).

A rep's peer group is the values of the peer keys joined with `` · `` (``"SMB · AE"``); a
missing value reads ``(none)``, so reps with unknown keys are peers of one another and never of
a rep whose value is known.

Examples
--------
>>> import polars as pl
>>> reps = pl.DataFrame({"rep_id": ["r1", "r2"], "segment": ["SMB", None], "role": ["AE", "AE"]})
>>> with_peer_group(reps, keys=["segment", "role"])["peer_group"].to_list()
['SMB · AE', '(none) · AE']
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

PEER_SEPARATOR = " · "
NO_VALUE = "(none)"


def peer_group_expr(*, keys: Sequence[str]) -> pl.Expr:
    """The peer-group label of a reps row: the ``keys`` values joined with `` · ``.

    Parameters
    ----------
    keys
        Reps-table columns, e.g. ``settings.peer_keys``; at least one.

    Examples
    --------
    >>> import polars as pl
    >>> pl.DataFrame({"segment": ["SMB"], "role": ["AE"]}).select(
    ...     peer_group_expr(keys=["segment", "role"]))["peer_group"].item()
    'SMB · AE'
    """
    if not keys:
        raise ValueError("peer groups need at least one key column")
    parts = [pl.col(k).cast(pl.String).fill_null(NO_VALUE) for k in keys]
    return pl.concat_str(parts, separator=PEER_SEPARATOR).alias("peer_group")


def with_peer_group(reps: pl.DataFrame, *, keys: Sequence[str]) -> pl.DataFrame:
    """``reps`` with a ``peer_group`` column built from ``keys`` (replaced if present).

    Parameters
    ----------
    reps
        A reps table holding the ``keys`` columns.
    keys
        Reps-table columns that define "peers just like me".

    Returns
    -------
    pl.DataFrame
        A new frame; the input is not changed.

    Examples
    --------
    >>> import polars as pl
    >>> reps = pl.DataFrame({"rep_id": ["r1"], "segment": ["SMB"], "role": ["AE"]})
    >>> with_peer_group(reps, keys=["segment"])["peer_group"].item()
    'SMB'
    """
    missing = [k for k in keys if k not in reps.columns]
    if missing:
        raise ValueError(f"peer keys {missing} are not columns of reps ({reps.columns})")
    return reps.with_columns(peer_group_expr(keys=keys))


def peer_groups(reps: pl.DataFrame, *, keys: Sequence[str] | None = None) -> pl.DataFrame:
    """One row per peer group: its key values and its reps, for a peer-group picker.

    Parameters
    ----------
    reps
        A reps table with ``peer_group`` (as :mod:`effortlens.enrich` writes it) or with the
        ``keys`` columns.
    keys
        Rebuild the groups from these columns; ``None`` keeps the ``peer_group`` column.

    Returns
    -------
    pl.DataFrame
        ``peer_group``, ``reps`` (count, UInt32) and ``rep_ids`` (sorted list), sorted by
        ``peer_group``.

    Examples
    --------
    >>> import polars as pl
    >>> reps = pl.DataFrame({"rep_id": ["r1", "r2"], "segment": ["SMB", "SMB"]})
    >>> peer_groups(reps, keys=["segment"])["reps"].item()
    2
    """
    grouped = reps if keys is None else with_peer_group(reps, keys=keys)
    return (
        grouped.group_by("peer_group")
        .agg(reps=pl.len().cast(pl.UInt32), rep_ids=pl.col("rep_id").sort())
        .sort("peer_group")
    )
