"""Back stage entries with buyer actions: the last step of drawing a chunk's events.

Part of :mod:`effortlens.sample`. A stage entry is *backed* when a buyer action on the deal
(later relabelled as a verifier type) stands behind it; see :func:`back_entries`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from effortlens.sample.draw import DAY

#: A stage entry waits at most this many days for the buyer action that backs it.
MOVE_DAYS = 10


def back_entries(x_deal, x_ts, x_acc, e_deal, e_t, wanted, e_close, e_acc, u):
    """Back the ``wanted`` stage entries with a buyer action; return the picks and entry times.

    Entries are taken in order within each deal (entries sorted by deal, then time), and each
    buyer action backs at most one entry:

    - the deal's creation (its first entry) takes the latest action in the 14 days before on
      its account that is on no deal yet (the meeting that opened the deal; the caller links
      it to the deal), else the deal's first response within 21 days after creation (and
      within 7 days after the next entry);
    - a later entry takes the deal's latest response since the previous entry and pick; if
      there is none, the seller moves the stage to just after the next response, when that
      comes within ``MOVE_DAYS`` and before the deal's next event.

    Entries not wanted stay unbacked, where they were drawn.

    Parameters
    ----------
    x_deal, x_ts, x_acc
        Per buyer action: deal index (-1: none), UTC seconds, account index.
    e_deal, e_t
        Per stage entry, sorted by deal then time: deal index and UTC seconds.
    wanted
        Which entries are to be backed.
    e_close, e_acc
        Per entry: its deal's close (or end) in UTC seconds, and its account index.
    u
        One uniform number per entry: where a moved entry lands after its action.

    Returns
    -------
    tuple
        The picked action index of each entry (-1: none) and the entry times after moves.
    """
    e_t = e_t.copy()
    n = len(e_t)
    pick = np.full(n, -1, dtype=np.int64)
    first = np.concatenate([[True], e_deal[1:] != e_deal[:-1]])
    ordinal = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))
    has_next = np.concatenate([e_deal[:-1] == e_deal[1:], [False]])
    number = np.arange(len(x_ts))
    on_deal = pl.DataFrame({"deal": x_deal, "rts": x_ts, "ri": number}).filter(
        pl.Series(x_deal >= 0)
    )
    off_deal = pl.DataFrame({"acc": x_acc, "rts": x_ts, "ri": number}).filter(pl.Series(x_deal < 0))
    on_deal, off_deal = on_deal.sort("rts"), off_deal.sort("rts")
    lower = np.full(n, np.iinfo(np.int64).min)  # actions at or before this are used up
    for j in range(int(ordinal.max(initial=-1)) + 1):
        at = np.flatnonzero((ordinal == j) & wanted)
        frame = pl.DataFrame(
            {
                "deal": e_deal[at],
                "acc": e_acc[at],
                "t": e_t[at],
                "lo": lower[at],
                "bound": np.where(has_next[at], e_t[np.minimum(at + 1, n - 1)], e_close[at]),
                "close": e_close[at],
                "k": at,
            }
        )
        if j == 0:
            found, moved = _back_creations(frame, on_deal, off_deal)
        else:
            found, moved = _back_later(frame, on_deal)
        for picked in (found, moved):
            pick[picked["k"].to_numpy()] = picked["ri"].to_numpy()
        k, rts = moved["k"].to_numpy(), moved["rts"].to_numpy()
        room = moved["bound"].to_numpy() - rts
        e_t[k] = rts + np.minimum(3600 + (u[k] * 7 * 3600).astype(np.int64), room // 2)
        done = np.flatnonzero(has_next & (ordinal == j))
        used = np.where(pick[done] >= 0, x_ts[np.maximum(pick[done], 0)], np.iinfo(np.int64).min)
        lower[done + 1] = np.maximum(np.maximum(lower[done], e_t[done]), used)
    return pick, e_t


def _back_creations(
    frame: pl.DataFrame, on_deal: pl.DataFrame, off_deal: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Picks for deal creations: the opening meeting before, else the first response after."""
    found = (
        _asof(frame, off_deal, "backward", pl.col("t"), by="acc")
        .filter(pl.col("rts") >= pl.col("t") - 14 * DAY)
        .sort("t", "k")
        .unique("ri", keep="first", maintain_order=True)
    )
    rest = frame.filter(~pl.col("k").is_in(found["k"].implode()))
    after = _asof(rest, on_deal, "forward", pl.col("t") - 1).filter(
        pl.col("rts")
        < pl.min_horizontal(
            pl.col("t") + 21 * DAY,
            pl.max_horizontal("bound", pl.col("t") + 7 * DAY),
            "close",
        )
    )
    found = pl.concat([found.select(after.columns), after])
    return found, found.clear()


def _back_later(frame: pl.DataFrame, on_deal: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Picks for later entries: the latest response since, else one soon after (moved to)."""
    found = _asof(frame, on_deal, "backward", pl.col("t")).filter(pl.col("rts") > pl.col("lo"))
    rest = frame.filter(~pl.col("k").is_in(found["k"].implode()))
    moved = _asof(rest, on_deal, "forward", pl.max_horizontal("t", "lo")).filter(
        pl.col("rts") < pl.min_horizontal(pl.col("t") + MOVE_DAYS * DAY, pl.col("bound") - 3600)
    )
    return found, moved


def _asof(entries, responses, strategy: str, at: pl.Expr, by: str = "deal") -> pl.DataFrame:
    """Each entry's nearest action on its deal at/before (backward) or after (forward) ``at``."""
    left = entries.with_columns(at=at).sort("at")
    return left.join_asof(
        responses,
        left_on="at",
        right_on="rts",
        by=by,
        strategy=strategy,
        allow_exact_matches=strategy == "backward",
        check_sortedness=False,
    ).filter(pl.col("ri").is_not_null())
