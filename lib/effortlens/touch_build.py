"""The build's touch facts, computed in one sort: :func:`effortlens.habits.touch_facts`, faster.

:func:`build_touch_facts` returns exactly what :func:`effortlens.habits.touch_facts` returns
(the same rows in the same order, the same values to the last bit: tests/test_touch_build.py),
for the build, which computes it once over all the data. What it does differently:

- The touches on a known contact are sorted by (contact, time, id) **once**; the contact
  history, both habit-credit fits and the output share that order (``touch_facts`` sorts them
  three times and joins the two credits back by ``activity_id``, a string join of millions of
  rows).
- The candidate (touch, buyer action) pairs are found once for both fits (they do not depend
  on the feature).
- The sequences are made from small integer codes of the activity types and looked up in a
  table of every sequence (no per-row string concatenation); the habit cells of the fits are
  numbered by integer arithmetic instead of a string key cast to a category.
- The expectation-maximisation of the credit computes the parts of each iteration that do
  not change once, and works a chunk of rows at a time (the same sums in the same order:
  equal to the bit), so that it holds little more than its inputs.
- The final order (by day, then rep, ties in the order above) is one stable integer sort.

Examples
--------
>>> facts = build_touch_facts(enriched)  # doctest: +SKIP
>>> facts.equals(touch_facts(enriched))  # doctest: +SKIP
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import polars as pl

from effortlens.enrich import events
from effortlens.habits import (
    CADENCE_EDGES,
    HOUR_BANDS,
    LAG_EDGES_HOURS,
    TOUCH_SEQUENCE_DAYS,
    TOUCH_SEQUENCE_LENGTHS,
    CandidatePairs,
    candidate_pairs,
    pairs_before,
)
from effortlens.vocabulary import SEQUENCE_SEPARATOR

if TYPE_CHECKING:
    from pathlib import Path

    from effortlens.enrich import Enriched

_REP_COLUMNS = ["rep_id", "team", "segment", "role"]
_CALENDAR = ["day", "activity_type", "weekday", "hour", "responded"]


def build_touch_facts(enriched: Enriched, *, iterations: int = 60) -> pl.DataFrame:
    """:func:`effortlens.habits.touch_facts` of ``enriched``, equal to it, in one sort.

    Parameters
    ----------
    enriched
        All the enriched facts (eager or lazy).
    iterations
        EM iterations of the credit (as :func:`effortlens.habits.habit_effects`).

    Returns
    -------
    pl.DataFrame
        As :func:`effortlens.habits.touch_facts`.

    Examples
    --------
    >>> build_touch_facts(enriched).columns[:4]  # doctest: +SKIP
    ['rep_id', 'team', 'segment', 'role']
    """
    acts = events(enriched, "activities")
    touches, same, on_contact = _on_contact(acts)
    window = float(enriched.settings.attribution_window_days)
    credits = _credits(
        touches,
        events(enriched, "actions"),
        same_contact=same[0],
        bin_order=on_contact["bin_order"],
        window=window,
        iterations=iterations,
    )
    del touches
    return with_credits(on_contact, credits, acts)


def _on_contact(acts: pl.LazyFrame) -> tuple[pl.DataFrame, list[np.ndarray], pl.DataFrame]:
    """The customer-facing touches on a known contact sorted by (contact, time, id), whether
    each of the previous touches is on the same contact, and the touch facts' columns of
    those touches without the credits (contact history: cadence bin and sequences)."""
    depth = max(TOUCH_SEQUENCE_LENGTHS) - 1
    wanted = dict.fromkeys(
        ["activity_id", "contact_id", "ts", "activity_type", "responded", *_REP_COLUMNS, *_CALENDAR]
    )
    touches = (
        acts.filter(pl.col("is_customer_facing"))
        .filter(pl.col("contact_id").is_not_null())
        .select(*wanted)
        .collect()
    )
    # the sort by (contact_id, ts, activity_id) by integer keys: a text sort of every row
    # cost ~0.4 CPU s per million touches, the contacts' ranks and an integer sort ~0.1
    order = _contact_order(_rank(touches["contact_id"]), touches["ts"], touches["activity_id"])
    touches = touches[order]
    same = [
        (touches["contact_id"].shift(k) == touches["contact_id"]).fill_null(False).to_numpy()
        for k in range(1, depth + 1)
    ]
    on_contact = touches.select(*_REP_COLUMNS, *_CALENDAR).with_columns(
        _bin_order(touches, same[0]),
        *_sequences(touches, same),
    )
    return touches, same, on_contact


def _contact_order(contact: pl.Series, ts: pl.Series, ids: pl.Series) -> np.ndarray:
    """The row order of ``sort("contact_id", "ts", "activity_id")`` (nulls first), by
    integer sorts: ``contact`` is each row's rank among the sorted contacts (0 for none,
    :func:`_rank`), ``ids`` the activity ids (read only where contact and time tie)."""
    t = ts.to_physical().cast(pl.Int64).fill_null(np.iinfo(np.int64).min)
    keys = pl.DataFrame({"g": contact.cast(pl.Int64), "t": t})
    order = _stable_order(keys["g"].to_numpy(), keys["t"].to_numpy())
    return _ties_by_id(order, keys, ids)


def _stable_order(g: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The stable row order by (``g``, ``t``), both int64 and ``g`` >= 0: one integer sort
    of ``g`` x span + ``t`` when it fits in int64 (~3x faster than a sort by two keys), else
    a sort by ``t`` then a stable :func:`radix_order` of ``g``."""
    if not len(g):
        return np.zeros(0, np.int64)
    key = _stable_key(g, t)
    if key is not None:
        return np.argsort(key, kind="stable")
    # too many groups for one key (e.g. 550k contacts over 18 months of microseconds): by
    # ``t``, then stably by ``g`` in 16-bit radix passes (~2x faster than numpy.lexsort)
    by_t = np.argsort(t, kind="stable")
    return by_t[radix_order(g[by_t])]


def _runs_order(g: np.ndarray, key: np.ndarray) -> np.ndarray:
    """``numpy.argsort(key, kind="stable")`` of a key that sorts as (``g``, time) (``g`` >= 0,
    :func:`_stable_key`): stably by ``g`` first (a radix sort), then by the key, whose stable
    sort (a timsort) merges the runs each group's rows then hold: rows read by deal and
    time (the loaded order) come in a few time-sorted runs per contact (3.5M events:
    0.16 -> 0.10 CPU s). The same order, ties as read."""
    by_group = radix_order(g)
    return by_group[np.argsort(key[by_group], kind="stable")]


def _stable_key(g: np.ndarray, t: np.ndarray) -> np.ndarray | None:
    """One int64 per row that sorts as (``g``, ``t``) and is equal only where both are
    (``g`` x span + ``t``, in :func:`time_steps` when microseconds do not fit), or None when
    no such key fits in int64 (rows given)."""
    low, span = int(t.min()), int(t.max()) - int(t.min()) + 1
    if (int(g.max()) + 1) * span < 2**63:
        return g * span + (t - low)
    steps, span = time_steps(t)  # whole seconds: the key fits again
    if (int(g.max()) + 1) * span < 2**63:
        return g * span + steps
    return None


def time_steps(t: np.ndarray) -> tuple[np.ndarray, int]:
    """``t`` (int64 times) counted from its least value in its largest common step among a
    second and a millisecond of microseconds (else as is), and the span of those counts (max +
    1): the same order and ties in a smaller range, so that a sort key made with a group (a
    contact) fits in 64 bits. Real event times are whole seconds: 2**26 steps over two years
    where microseconds take 2**46.

    Examples
    --------
    >>> steps, span = time_steps(np.array([5_000_000, 2_000_000, 2_000_000]))
    >>> steps.tolist(), span
    ([3, 0, 0], 4)
    """
    if not len(t):
        return t.astype(np.int64), 1
    low, high = int(t.min()), int(t.max())
    if high - low >= 2**63:  # a null time (the least int64): no smaller range
        return t, high - low + 1
    counted = t - low
    for step in (1_000_000, 1_000):
        if not (counted % step).any():
            counted //= step
            break
    return counted, int(counted.max()) + 1


#: The columns of a part's customer-facing touches that the practice facts, the streaks and
#: the habit credit's inputs read (:class:`PartTouches`).
_TOUCH_COLUMNS = [
    "activity_id",
    "contact_id",
    "ts",
    "rep_id",
    "account_id",
    "team",
    "segment",
    "role",
    "day",
    "activity_type",
    "weekday",
    "hour",
    "responded",
]


#: What :meth:`PartTouches._packed_in_order` moves in one gather, the first in the highest
#: bits.
_IN_ORDER_PACKED = ("ts", "contact", "rep_id", "activity_type")
#: The columns :meth:`PartTouches._packed_in_final_order` moves in one gather.
_PACKED_COLUMNS = ("rep_id", "activity_type", "day", "weekday", "hour", "responded")


class PartTouches:
    """The customer-facing touches of some activities, read once, with the integer codes and
    orders that :func:`build_practice_facts`, :func:`effortlens.roe.streak_facts` and
    :func:`touch_credit_inputs` each computed from the text before: a build's pass over a
    partition makes one and gives it to all three (each is computed when first asked for).

    Attributes
    ----------
    touches
        The touches as read (:data:`_TOUCH_COLUMNS` present in the activities), one chunk.
    answered
        The buyer actions on a contact: ``contact_id``, ``ts`` (empty without ``actions``).

    Examples
    --------
    >>> part = PartTouches(enriched.activities, enriched.actions)  # doctest: +SKIP
    >>> build_practice_facts(enriched.activities, part=part)  # doctest: +SKIP
    """

    def __init__(
        self,
        activities: pl.DataFrame | pl.LazyFrame,
        actions: pl.DataFrame | pl.LazyFrame | None = None,
    ) -> None:
        """Read the customer-facing touches of ``activities`` and the actions on a contact."""
        acts = activities.lazy()
        present = acts.collect_schema().names()
        touches = (
            acts.filter(pl.col("is_customer_facing"))
            .select(c for c in _TOUCH_COLUMNS if c in present)
            .collect()
        )
        # a gather from a scan's many chunks is several times slower: the columns gathered
        # whole are put in one chunk; text is coded, not gathered whole (copying it costs
        # ~0.25 CPU s per 2.5M touches)
        self.touches = touches.with_columns(
            touches[c].rechunk() for c, kind in touches.schema.items() if kind != pl.String
        )
        if actions is None:
            self.answered = pl.DataFrame(
                schema={"contact_id": self.touches.schema["contact_id"], "ts": pl.Datetime("us")}
            )
        else:
            self.answered = (
                actions.lazy()
                .filter(pl.col("contact_id").is_not_null())
                .select("contact_id", "ts")
                .collect()
            )
        self._codes: dict[str, tuple[pl.Series, np.ndarray]] = {}
        self._orders: dict[Any, Any] = {}
        self._in_day_order: dict[tuple[str, bool], pl.Series] = {}
        self._by_rep: dict[str, np.ndarray] = {}

    def coded(self, column: str) -> tuple[pl.Series, np.ndarray]:
        """:func:`_coded` of a text column of the touches (made once); a rep's team,
        segment or role from its rep's code when each rep has one (:func:`_coded_by`; an
        ``Enum``'s codes, the enrichment's, checked as integers), kept as a table by rep."""
        if column not in self._codes:
            found = None
            if column in _REP_COLUMNS[1:] and "rep_id" in self.touches.columns:
                rep = self.coded("rep_id")[1]
                if "rep_first" not in self._orders:  # each rep's first row, for all three
                    self._orders["rep_first"] = _first_rows(rep)
                first = self._orders["rep_first"]
                values = self.touches[column]
                if isinstance(values.dtype, pl.Enum):  # numbered from its codes, no text
                    found = _coded(values)
                else:
                    found = _coded_by(values, rep, first=first)
                if found is not None and len(rep):
                    held = first >= 0
                    table = np.full(len(first), -1, np.int64)  # each rep's code (at rep + 1)
                    table[held] = found[1][first[held]]
                    if not isinstance(values.dtype, pl.Enum) or np.array_equal(
                        table[rep + 1], found[1]
                    ):
                        self._by_rep[column] = table
            self._codes[column] = found or _coded(self.touches[column])
        return self._codes[column]

    def _in_final_order(self, column: str) -> np.ndarray:
        """The codes of a text column (:meth:`coded`) in ``order[by_day]`` (made once; a
        rep's team, segment or role by its rep's code: no gather of millions of rows)."""
        if ("final", column) not in self._orders:
            if "final" not in self._orders:
                self._orders["final"] = self.order[self.by_day]
            table = self._by_rep.get(column)
            if table is not None:
                codes = table[self._in_final_order("rep_id") + 1]
            elif (unpacked := self._unpacked(column)) is not None:
                values, low = unpacked
                codes = values + (low - 1)  # null (0): -1
            else:
                codes = self.coded(column)[1][self._orders["final"]]
            self._orders["final", column] = codes
        return self._orders["final", column]

    def _packed_in_final_order(self) -> dict[str, tuple[np.ndarray, int]]:
        """The codes of ``rep_id`` and ``activity_type`` (:meth:`coded`) and the integers of
        ``day``, ``weekday``, ``hour`` and ``responded`` in ``order[by_day]``, moved by ONE
        gather of an int64 per touch that holds them all (each a few bits:
        :func:`_gathered_packed`): ``{column: (values, low)}``, the row's value ``v - 1 + low``
        (``v`` 0: null), for the columns that fit in 63 bits together (made once; each taken
        out when asked for: :meth:`_unpacked`)."""
        if "packed" not in self._orders:
            columns, fields, lows = [], [], []
            held = 0
            for column in _PACKED_COLUMNS:
                dtype = self.touches.schema.get(column)
                if dtype is None:
                    continue
                if _is_text(dtype):
                    values, low = self.coded(column)[1] + 1, 0
                elif dtype == pl.Boolean or dtype == pl.Date or dtype.is_integer():
                    values, low = _from_one(self.touches[column])
                else:
                    continue
                bits = int(values.max(initial=0)).bit_length()
                if held + bits > 63:  # gathered alone
                    continue
                held += bits
                columns.append(column)
                fields.append(values)
                lows.append(low)
            values = None  # (each let go once packed)
            if "final" not in self._orders:
                self._orders["final"] = self.order[self.by_day]
            moved = _gathered_packed(fields, self._orders["final"])  # (they fit: not None)
            self._orders["packed"] = dict(zip(columns, zip(moved, lows, strict=True), strict=True))
        return self._orders["packed"]

    def _unpacked(self, column: str) -> tuple[np.ndarray, int] | None:
        """``column`` of :meth:`_packed_in_final_order` (taken out: its callers keep what they
        make of it), or None when it is not packed (or taken already)."""
        return self._packed_in_final_order().pop(column, None)

    @property
    def contacts(self) -> pl.Enum:
        """Every contact, touched or acting, and :data:`_LAST_CONTACT`, in sorted order."""
        if "contacts" not in self._orders:
            self._orders["contacts"] = pl.Enum(self.contact_names)
        return self._orders["contacts"]

    @property
    def contact_names(self) -> pl.Series:
        """:attr:`contacts`' categories: every contact and :data:`_LAST_CONTACT`, sorted."""
        self._code_contacts()
        return self._orders["contact_names"]

    @property
    def contact(self) -> np.ndarray:
        """Each touch's contact's place in :attr:`contacts` + 1, 0 without one (int64): the
        contacts' order, as :func:`_rank`."""
        self._code_contacts()
        return self._orders["contact"]

    def _code_contacts(self) -> None:
        """The contacts' names and places (:attr:`contact_names`, :attr:`contact`,
        :attr:`acting`) at once: the touched and acting contacts ranked together by
        :func:`_ranked_text` (3.1M ids: ~0.45 -> ~0.25 CPU s), else by an ``Enum`` of their
        distinct values."""
        if "contact" in self._orders:
            return
        touched, acting = self.touches["contact_id"], self.answered["contact_id"]
        held = touched.is_not_null().to_numpy() if touched.null_count() else None
        on = touched if held is None else touched.filter(pl.Series(held))
        last = pl.Series([_LAST_CONTACT], dtype=touched.dtype)
        given = pl.concat([on, acting.drop_nulls()], rechunk=True)
        found = _numbered_text(given)  # ids of one prefix and width: ranked by their number
        if found is not None and found[0].len() and found[0][-1] < _LAST_CONTACT:
            found = (pl.concat([found[0], last]), found[1])
        else:
            found = _ranked_text(pl.concat([given, last], rechunk=True))
        if found is None or acting.null_count():  # (no such actions: PartTouches drops them)
            ids = pl.concat([on.unique(), acting.drop_nulls().unique(), last]).unique().sort()
            enum = pl.Enum(ids)
            self._orders["contacts"] = enum
            self._orders["contact_names"] = ids
            code = touched.cast(enum).to_physical()
            self._orders["contact"] = (code.cast(pl.Int64).fill_null(-1) + 1).to_numpy()
            code = acting.cast(enum).to_physical()
            self._orders["acting"] = (code.cast(pl.Int64) + 1).to_numpy()
            return
        names, rank = found
        rank += 1  # 0: no contact
        self._orders["contact_names"] = names
        if held is None:
            self._orders["contact"] = rank[: len(on)]
        else:
            contact = np.zeros(len(touched), np.int64)
            contact[held] = rank[: len(on)]
            self._orders["contact"] = contact
        self._orders["acting"] = rank[len(on) : len(on) + acting.len()]

    @property
    def ts(self) -> np.ndarray:
        """The touches' times as int64 (null as the least int64: first, as ``sort`` puts it)."""
        if "ts" not in self._orders:
            ts = self.touches["ts"].to_physical().cast(pl.Int64)
            self._orders["ts"] = ts.fill_null(np.iinfo(np.int64).min).to_numpy()
        return self._orders["ts"]

    @property
    def by_time(self) -> np.ndarray:
        """The touches' order by (contact, time), those without a contact first, ties as
        read."""
        if "by_time" not in self._orders:
            key = _stable_key(self.contact, self.ts) if len(self.ts) else None
            if key is None:
                self._orders["by_time"] = _stable_order(self.contact, self.ts)
            else:  # the key kept: the ties of `order` are its equal neighbours
                self._orders["by_time"] = _runs_order(self.contact, key)
                self._orders["key"] = key
        return self._orders["by_time"]

    @property
    def order(self) -> np.ndarray:
        """The touches' order by (contact, time, ``activity_id``), those without a contact
        first (:func:`_contact_order`)."""
        if "order" not in self._orders:
            by_time, ids = self.by_time, self.touches["activity_id"]
            key = self._orders.pop("key", None)
            if key is None:
                keys = pl.DataFrame({"g": self.contact, "t": self.ts})
                self._orders["order"] = _ties_by_id(by_time, keys, ids)
            else:  # one gather of the (contact, time) key instead of two (~0.1 CPU s at 2.6M)
                ordered = key[by_time]
                tie = np.r_[False, ordered[1:] == ordered[:-1]]
                self._orders["order"] = _tied_by_id(by_time, tie, ids)
        return self._orders["order"]

    def in_order(self, name: str) -> np.ndarray:
        """The touches' ``contact`` (:attr:`contact`), ``ts`` (:attr:`ts`) or the codes of a
        text column (:meth:`coded`) in :attr:`order`, made once for the practice facts, the
        streaks and the credit inputs (a random gather of 2.6M rows costs 0.03-0.08 CPU s).
        ``contact`` and ``ts`` are also those in :attr:`by_time` (the two orders differ only
        among rows equal on both). Touches without ``activity_id`` (no :attr:`order`: only
        the streaks read them): in :attr:`by_time`. The contact, the time (whole seconds), rep
        and type are moved at once, packed in one int64 per touch when they fit."""
        if ("in_order", name) not in self._orders:
            ids = "activity_id" in self.touches.columns
            order = self.order if ids else self.by_time
            if name in _IN_ORDER_PACKED and self._packed_in_order(order):
                return self._orders["in_order", name]
            if name == "contact":
                values = self.contact
            elif name == "ts":
                values = self.ts
            else:
                values = self.coded(name)[1]
            self._orders["in_order", name] = values[order]
        return self._orders["in_order", name]

    def _packed_in_order(self, order: np.ndarray) -> bool:
        """:meth:`in_order` of the contact, time, rep and type by one gather of an int64 per
        touch packing the four (the time as whole seconds since the first:
        :func:`_whole_seconds`; :func:`_gathered_packed`); False (nothing made) when the
        times are not whole seconds or null, or the four pass 63 bits."""
        if not all(c in self.touches.columns for c in ("rep_id", "activity_type")):
            return False
        whole = _whole_seconds(self.touches["ts"], self.ts)
        if whole is None:
            return False
        low, per_second = whole[1:]
        fields = [whole[0], self.contact]
        fields += [self.coded(c)[1] + 1 for c in ("rep_id", "activity_type")]  # 0: null
        del whole
        moved = _gathered_packed(fields, order)
        if moved is None:
            return False
        seconds, contact, rep, kind = moved
        ts = seconds * per_second
        ts += low
        rep -= 1
        kind -= 1
        for name, values in zip(_IN_ORDER_PACKED, (ts, contact, rep, kind), strict=True):
            self._orders["in_order", name] = values
        self._orders["in_order", "seconds"] = seconds  # for the practice history
        return True

    def seconds_in_order(self) -> np.ndarray | None:
        """:func:`_whole_seconds` of the times in :attr:`order` (as :meth:`in_order`), or
        None when the times are not whole seconds or null: kept from :meth:`in_order`'s
        packed gather when it made them, and taken out (its one caller, the practice
        history, asks once: not held for the rest of the pass)."""
        ts = self.in_order("ts")
        if ("in_order", "seconds") in self._orders:
            return self._orders.pop(("in_order", "seconds"))
        whole = _whole_seconds(self.touches["ts"], ts)
        return None if whole is None else whole[0]

    @property
    def rep_order(self) -> np.ndarray:
        """``order[by_rep]``: the touches by (rep, contact, time, id) (made once)."""
        if "rep_order" not in self._orders:
            self._orders["rep_order"] = self.order[self.by_rep]
        return self._orders["rep_order"]

    @property
    def day_by_rep(self) -> pl.Series:
        """The touches' ``day`` in :attr:`rep_order` (made once)."""
        if "day_by_rep" not in self._orders:
            self._orders["day_by_rep"] = self.touches["day"].gather(pl.Series(self.rep_order))
        return self._orders["day_by_rep"]

    @property
    def acting(self) -> np.ndarray:
        """Each action of :attr:`answered`'s contact's place in :attr:`contacts` + 1 (int64),
        as :attr:`contact` (coded once for the streaks and the credit inputs)."""
        self._code_contacts()
        return self._orders["acting"]

    @property
    def without_contact(self) -> int:
        """How many touches have no contact (the first of :attr:`by_time` and :attr:`order`)."""
        return int(self.touches["contact_id"].null_count())

    @property
    def by_rep(self) -> np.ndarray:
        """Places in :attr:`order` sorted stably by rep (nulls first): ``order[by_rep]`` is
        the (rep, contact, time, id) order (a radix sort of small integers)."""
        if "by_rep" not in self._orders:
            rep_of = self.in_order("rep_id") + 1  # the rep's rank, 0 for null
            rep_of = rep_of.astype(np.int16) if rep_of.max(initial=0) < 2**15 else rep_of
            self._orders["by_rep"] = np.argsort(rep_of, kind="stable")
            self._orders["rep_count"] = np.bincount(rep_of)
        return self._orders["by_rep"]

    @property
    def rep_count(self) -> np.ndarray:
        """The touches of each rep (at its rank + 1; 0: no rep): the runs of :attr:`by_rep`."""
        if "rep_count" not in self._orders:
            _ = self.by_rep
        return self._orders["rep_count"]

    @property
    def rep_day(self) -> np.ndarray:
        """Places in ``order[by_rep]`` sorted stably by day (nulls first): the touches by
        (day, rep, contact, time, id), the practice facts' final order."""
        if "rep_day" not in self._orders:
            day = self.day_by_rep.to_physical().cast(pl.Int64)
            day = day.fill_null(int(day.min() or 0) - 1).to_numpy()
            self._orders["rep_day"] = radix_order(day - day.min(initial=0))
        return self._orders["rep_day"]

    @property
    def by_day(self) -> np.ndarray:
        """Places in :attr:`order` sorted stably by (day, rep), nulls first: ``order[by_day]``
        is the practice facts' final order, and the touch frame's when every touch has a
        contact (:func:`touch_credit_inputs`)."""
        if "by_day" not in self._orders:
            self._orders["by_day"] = self.by_rep[self.rep_day]
        return self._orders["by_day"]

    def in_day_order(self, column: str, *, coded: bool) -> pl.Series:
        """The touches' ``column`` in ``order[by_day]``, text as an ``Enum`` of its values
        when ``coded`` (:func:`_enumed`) else spelled (:func:`_spelled`): gathered once for
        the practice facts and the touch frame, which share that order."""
        dtype = self.touches.schema[column]
        coded = coded and _is_text(dtype)  # (the same Series for other columns)
        if (column, coded) not in self._in_day_order:
            if "final" not in self._orders:
                self._orders["final"] = self.order[self.by_day]
            final = self._orders["final"]
            if _is_text(dtype):
                names = self.coded(column)[0]
                codes = self._in_final_order(column)
                gathered = (_enumed if coded else _spelled)(names, codes, column)
            elif (unpacked := self._unpacked(column)) is not None:  # from the packed gather
                values, low = unpacked
                gathered = pl.Series(column, values + (low - 1))
                if self.touches[column].null_count():
                    gathered = pl.select(pl.when(pl.Series(values > 0)).then(gathered)).to_series()
                physical = self.touches[column].to_physical().dtype
                gathered = gathered.cast(pl.Int8 if dtype == pl.Boolean else physical).cast(dtype)
            else:
                gathered = self.touches[column].gather(final)
            self._in_day_order[column, coded] = gathered
        return self._in_day_order[column, coded]


def with_credits(
    on_contact: pl.DataFrame, credits: dict[str, np.ndarray], acts: pl.LazyFrame
) -> pl.DataFrame:
    """The touch facts: ``on_contact`` (:func:`touch_credit_inputs`' frame) with its
    ``credits`` (per feature, one per row), then the customer-facing touches of ``acts``
    without a contact, in (day, rep) order.

    Examples
    --------
    >>> with_credits(frame, {"timing": t, "cadence": c}, acts).height  # doctest: +SKIP
    81265
    """
    on_contact = on_contact.with_columns(
        # Float64 always: np.bincount of no pairs gives integers (no buyer actions), and the
        # partitioned build writes its credits as Float64 (habits' event path casts too)
        pl.Series(f"credit_{feature}", credit, pl.Float64)
        for feature, credit in credits.items()
    )
    columns = on_contact.columns
    schema = on_contact.schema
    without_contact = (
        acts.filter(pl.col("is_customer_facing"))
        .filter(pl.col("contact_id").is_null())
        .select(*_REP_COLUMNS, *_CALENDAR)
        .with_columns(
            pl.lit(None, schema[c]).alias(c) for c in columns[len(_REP_COLUMNS) + len(_CALENDAR) :]
        )
        .collect()
    )
    both = pl.concat([on_contact, without_contact])
    return both[_day_rep_order(both)]


#: The inputs of the credit fits per touch and per candidate pair, with their types
#: (:func:`touch_credit_inputs`).
CREDIT_INPUTS: dict[str, type] = {
    "cell_timing": np.int32,
    "cell_cadence": np.int32,
    "band": np.int8,
    "left": np.float64,
    "pair_touch": np.int32,
    "pair_action": np.int32,
    "pair_lag": np.float64,
}
#: A contact id after every real one (it sorts last as UTF-8 bytes): the contact of the
#: stand-in action by which :func:`touch_credit_inputs` sets the hours' origin.
_LAST_CONTACT = "\U0010ffff" * 4


def touch_credit_inputs(
    acts: pl.LazyFrame,
    actions: pl.LazyFrame,
    *,
    window: float,
    kinds: list[str],
    end: Any,
    part: PartTouches | None = None,
    coded: bool = False,
) -> tuple[pl.DataFrame, dict[str, np.ndarray], int]:
    """One part of the touches (every contact's whole history) and its inputs of the habit
    credit fits, numbered as over all the touches, for a build that fits the credit once
    over parts written apart (:mod:`effortlens.partitioned`).

    The arrays are those :func:`build_touch_facts` gives :func:`credit_em`, with the same
    values: the cells are numbered from ``kinds`` (every activity type of a touch on a
    contact, over all parts, sorted), and the hours are counted back from ``end`` (the
    latest touch or contact action over all parts). Concatenated over the parts, with each
    part's ``pair_touch`` and ``pair_action`` moved by the touches and actions before it,
    they are the whole fit's inputs (the pairs in another order).

    The frame is the part's touch facts without their credits, already in their final
    order (:func:`build_touch_facts`' rows of these touches: by day, then rep), with a
    column ``fit_row``: the touch's row in the arrays (null for a touch without a contact).
    :func:`credited_touches` adds the credits. Every column is gathered once, from the
    touches as read, into that order (text as small integer codes, spelled at the end):
    the touches are ordered by contact with integer keys (the contacts numbered in their
    sorted order with the actions' contacts), and never moved whole into that order.

    Parameters
    ----------
    acts, actions
        The part's enriched activities and buyer actions.
    window
        The attribution window in days.
    kinds, end
        As above.
    part
        The touches of ``acts`` and the actions on a contact of ``actions`` read and coded
        already (:class:`PartTouches`; shared with the practice facts and the streaks).
    coded
        The frame's text columns as ``Enum``s of the values they hold instead of ``String``
        (:func:`_enumed`): a build's scratch written and read again as codes, never spelled.

    Returns
    -------
    tuple
        The part's touch facts without credits and with ``fit_row``, the arrays
        (``cell_timing``, ``cell_cadence`` int32, ``band`` int8, ``left`` float64 per touch
        on a contact; ``pair_touch``, ``pair_action`` int32 and ``pair_lag`` float64 per
        candidate pair) and the part's number of actions on a contact.

    Examples
    --------
    >>> frame, arrays, n_actions = touch_credit_inputs(
    ...     acts, actions, window=14.0, kinds=["call", "email"], end=end)  # doctest: +SKIP
    >>> credited_touches(frame, fit_credits(arrays, ...))  # doctest: +SKIP
    """
    depth = max(TOUCH_SEQUENCE_LENGTHS) - 1
    part = part or PartTouches(acts, actions)
    touches, answered, contacts = part.touches, part.answered, part.contact_names
    # every contact (touched or acting, and the stand-in's) numbered in sorted order: the
    # numbers sort as the ids, so candidate_pairs sorts and joins integers to the same rows
    has_contact = part.contact > 0
    n_without = part.without_contact
    # (contact, time, id) order, the touches without a contact first: then dropped
    order = part.order[n_without:]
    n = len(order)
    contact_of = part.in_order("contact")[n_without:]  # (shared with the other two)
    ts = touches["ts"]
    if isinstance(ts.dtype, pl.Datetime) and not ts.null_count():  # its integers, ordered
        ts = pl.Series("ts", part.in_order("ts")[n_without:]).cast(ts.dtype)
    else:
        ts = ts.gather(order)
    history = pl.DataFrame(
        {
            # the contacts' places in `contacts` (Int64, as the actions' below: an empty
            # Enum of every contact for its physical type cost ~0.03 CPU s each)
            "contact_id": pl.Series(contact_of - 1),
            "ts": ts,
        }
    )
    same = []  # whether the k-th touch before is on the same contact
    for k in range(1, depth + 1):
        same.append(np.zeros(n, bool))
        same[-1][k:] = contact_of[k:] == contact_of[: max(n - k, 0)]
    kind_names, kind = part.coded("activity_type")
    on_kind = part.in_order("activity_type")[n_without:]
    bin_order = _bin_order(history, same[0])
    sequences = _sequence_codes(kind_names, on_kind, history["ts"], same)
    # the final order: the touches on a contact in the order above, then those without one
    # as read, sorted stably by (day, rep) (as with_credits orders them)
    rep_names, rep = part.coded("rep_id")
    if n_without:
        rows = np.concatenate([order, np.flatnonzero(~has_contact)])
        by_day = _day_rep_argsort(touches["day"].gather(rows), rep[rows] + 1, rep_names.len())
        final = rows[by_day]
    else:  # every touch on a contact: the practice facts' order, its columns gathered once
        by_day = part.by_day
    fit_row = pl.select(pl.when(pl.Series(by_day) < n).then(pl.Series(by_day))).to_series()
    spell = _enumed if coded else _spelled
    out: dict[str, pl.Series] = {}
    for column in [*_REP_COLUMNS, *_CALENDAR]:
        if not n_without:
            out[column] = part.in_day_order(column, coded=coded)
        elif column == "rep_id":
            out[column] = spell(rep_names, rep[final], column)
        elif column == "activity_type":
            out[column] = spell(kind_names, kind[final], column)
        elif _is_text(touches.schema[column]):
            names, codes = part.coded(column)
            out[column] = spell(names, codes[final], column)
        else:
            out[column] = touches[column].gather(final)
    out["bin_order"] = bin_order.gather(fit_row)
    for k, (labels, known) in zip(TOUCH_SEQUENCE_LENGTHS, sequences, strict=True):
        at = known.gather(fit_row)
        out[f"sequence_{k}"] = _present_enum(labels, at) if coded else labels.gather(at)
    out["fit_row"] = fit_row.rename("fit_row")
    frame = pl.DataFrame(out)
    arrays = {name: np.zeros(0, dtype) for name, dtype in CREDIT_INPUTS.items()}
    if n == 0:
        return frame, arrays, answered.height
    # a stand-in action after every contact at `end`: candidate_pairs counts the hours back
    # from the latest time it sees, so every part counts from the same instant; it is the
    # last action (its contact sorts last) and no touch shares its contact
    stand_in = pl.DataFrame(
        {"contact_id": [_LAST_CONTACT], "ts": [end]},
        schema={"contact_id": answered.schema["contact_id"], "ts": answered.schema["ts"]},
    )
    last = int(contacts.search_sorted(_LAST_CONTACT))  # the stand-in's code
    given = pl.DataFrame(
        {
            "contact_id": pl.Series(np.append(part.acting - 1, last)),
            "ts": pl.concat([answered["ts"], stand_in["ts"]]),
        }
    )
    pairs = _contact_pairs(history, given, window=window, touch_key=np.cumsum(~same[0]))
    kind_code = kind_names.cast(pl.Enum(kinds), strict=False).to_physical().cast(pl.Int64)
    kind_code = np.append(kind_code.fill_null(-1).to_numpy(), -1)[on_kind] + 1
    hour, weekday = (
        touches[c].cast(pl.Int64).fill_null(-1).to_numpy() + 1 for c in ("hour", "weekday")
    )
    moved = _gathered_packed([hour, weekday], order)  # one gather (0: null)
    hour, weekday = [v[order] for v in (hour, weekday)] if moved is None else moved
    hour -= 1
    weekday -= 1
    if touches["hour"].null_count():  # (a null hour's band: after the last, as NaN sorts)
        band = np.searchsorted(np.asarray(HOUR_BANDS), touches["hour"].to_numpy(), side="right")
        band = band[order]
    else:  # from the hours in order: no second gather
        band = np.searchsorted(np.asarray(HOUR_BANDS), hour, side="right")
    arrays = {
        # as _credits numbers them
        "cell_timing": ((kind_code * 9 + weekday + 1) * 26 + hour + 1).astype(np.int32),
        "cell_cadence": (kind_code * 256 + bin_order.cast(pl.Int64).to_numpy() + 128).astype(
            np.int32
        ),
        "band": band.astype(np.int8),
        "left": np.minimum(-pairs.ts_hours, window * 24),
        "pair_touch": pairs.touch.astype(np.int32),
        "pair_action": pairs.action.astype(np.int32),
        "pair_lag": pairs.lag,
    }
    return frame, arrays, pairs.actions - 1


def _contact_pairs(
    history: pl.DataFrame, given: pl.DataFrame, *, window: float, touch_key: np.ndarray
) -> CandidatePairs:
    """:func:`effortlens.habits.candidate_pairs` of ``history`` (touches by contact, then
    time) and ``given`` (actions), both with integer ``contact_id``: each action's latest
    touch at or before it on its contact found by a binary search of one integer key
    (contact, then time) instead of sorting the actions by two columns and an as-of join
    (~3x less CPU); by ``candidate_pairs`` itself when the key does not fit in 64 bits."""
    contact = history["contact_id"].cast(pl.Int64).to_numpy()
    acting = given["contact_id"].cast(pl.Int64).to_numpy()
    none = np.iinfo(np.int64).min
    ts = history["ts"].to_physical().cast(pl.Int64).fill_null(none).to_numpy()
    acted = given["ts"].to_physical().cast(pl.Int64).fill_null(none).to_numpy()
    steps, span = time_steps(np.concatenate([ts, acted]))
    largest = max(int(contact.max(initial=0)), int(acting.max(initial=0))) + 1
    if largest * span >= 2**63 or given["contact_id"].null_count():
        return candidate_pairs(history, given.lazy(), window=window, touch_key=touch_key)
    touch_key_sorted = contact * span + steps[: len(ts)]  # ascending: history's order
    action_key = acting * span + steps[len(ts) :]
    by_action = np.argsort(action_key, kind="stable")  # the actions' numbers: by (contact, time)
    # the last touch at or before each action (a touch at its instant counts), on its contact
    last = np.searchsorted(touch_key_sorted, action_key[by_action], side="right") - 1
    found = last >= 0
    found[found] = contact[last[found]] == acting[by_action[found]]
    end = max(history["ts"].max(), given["ts"].max() or history["ts"].max())
    return pairs_before(
        last[found],
        np.flatnonzero(found),
        given["ts"].gather(by_action[found]),
        history["ts"],
        key=touch_key,
        end=end,
        window=window,
        actions=given.height,
    )


def credited_touches(frame: pl.DataFrame, credits: dict[str, np.ndarray]) -> pl.DataFrame:
    """The touch facts of :func:`touch_credit_inputs`' ``frame``: each touch's ``credits``
    (per feature, in the fit's order: its ``fit_row``; null without a contact) in place of
    ``fit_row``. The same rows as :func:`with_credits` gives.

    Examples
    --------
    >>> credited_touches(frame, {"timing": t, "cadence": c}).height  # doctest: +SKIP
    81265
    """
    at = frame["fit_row"]
    return frame.drop("fit_row").with_columns(
        pl.Series(f"credit_{feature}", credit).gather(at) for feature, credit in credits.items()
    )


class MappedInputs(Mapping):
    """Arrays saved as ``folder/KEY.npy`` (a partition's :data:`CREDIT_INPUTS`, for
    :func:`fitted_credits`), each memory-mapped as it is looked up and unmapped when dropped:
    a fit holds no input's pages between its reads (100M: ~2.4 GB of inputs)."""

    def __init__(self, folder: Any, keys: Iterable[str]) -> None:  # noqa: D107
        self.folder, self.keys_ = folder, list(keys)

    def __getitem__(self, key: str) -> np.ndarray:
        path = self.folder / f"{key}.npy"
        try:
            return np.load(path, mmap_mode="r")
        except ValueError:  # an empty array cannot be mapped (older numpy)
            return np.load(path)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys_)

    def __len__(self) -> int:
        return len(self.keys_)


def fit_credits(
    arrays: dict[str, np.ndarray] | list[dict[str, np.ndarray]],
    *,
    n_actions: int | list[int],
    exposure_scale: float,
    iterations: int = 60,
    features: tuple[str, ...] = ("timing", "cadence"),
) -> dict[str, np.ndarray]:
    """Each touch's credit by the timing and by the cadence fit (:func:`credit_em`) from
    the inputs of :func:`touch_credit_inputs` over all the touches (arrays may be
    memory-mapped); ``exposure_scale`` is the contacts touched times the hours from the
    first touch to ``end``; ``features`` the fits to make. :func:`fitted_credits` one at a
    time (the parts as one).

    Examples
    --------
    >>> fit_credits(arrays, n_actions=n, exposure_scale=scale)["timing"]  # doctest: +SKIP
    """
    parts = arrays if isinstance(arrays, list) else [arrays]
    counts = n_actions if isinstance(n_actions, list) else [n_actions]
    fits = fitted_credits(
        parts,
        n_actions=counts,
        exposure_scale=exposure_scale,
        iterations=iterations,
        features=features,
    )
    return {f: np.concatenate(each) if len(each) != 1 else each[0] for f, each in fits}


def fitted_credits(
    parts: list[dict[str, np.ndarray]],
    *,
    n_actions: list[int],
    exposure_scale: float,
    iterations: int = 60,
    features: tuple[str, ...] = ("timing", "cadence"),
    threads: int | Callable[[], int] = 1,
) -> Iterator[tuple[str, list[np.ndarray]]]:
    """Each feature's fit (:func:`credit_em`) over the inputs of :func:`touch_credit_inputs`
    of every part, as if concatenated (each part's ``pair_touch`` and ``pair_action``
    numbered within it; ``n_actions`` per part): ``(feature, each part's touches' credits)``,
    one fit at a time (the first's credits may leave memory before the next).

    The parts are read a chunk at a time where they lie (memory-mapped, never copied
    into one array), and what both fits share is made once: each pair's layout row
    (:func:`_pair_layout`), lag slot and touch. A touch's credit is its pairs' credits
    added in the pairs' order (the bits of ``numpy.bincount(pair_touch,
    credit_em(...)[1])`` over the parts concatenated).

    ``threads``: how many threads work on it (an int, or a function asked at each step: the
    fit widens when the other work on the machine is done); the parts, and each iteration's
    chunks of actions, are shared out, and every sum is added in the order of one thread: the
    same bits on any number of threads.
    """
    with _Lanes(threads) as lanes:
        fits, layout = _credit_setup(parts, n_actions, [f"cell_{f}" for f in features], lanes)
        for feature, fit in zip(features, fits, strict=True):
            rate, credit = _credit_fit(
                fit,
                layout,
                sum(n_actions),
                exposure_scale,
                iterations=iterations,
                lanes=lanes,
            )
            del rate

            def summed(part_rows: tuple, credit: np.ndarray = credit) -> np.ndarray:
                part, rows = part_rows
                pair_touch = np.asarray(part["pair_touch"])
                out = np.zeros(len(part["band"]))
                for at in _chunks(len(pair_touch)):
                    # (``intp`` indices: numpy's fast path of ``add.at``, ~8x a narrower type's)
                    np.add.at(out, pair_touch[at].astype(np.intp), credit[rows(at)])
                return out

            credits = list(lanes.map(summed, _part_rows(parts, layout)))
            del credit, summed
            yield feature, credits
            del credits


def _whole_seconds_back(ts: pl.Series, back: int) -> np.ndarray | None:
    """``(ts - ts.shift(back)).dt.total_seconds()`` (whole seconds, as int64) from the times'
    integers, where the row ``back`` rows above is not later (elsewhere a floor, not Polars'
    truncation; the first ``back`` rows 0, not null); None when a time is null."""
    if ts.null_count() or not isinstance(ts.dtype, pl.Datetime):
        return None
    per_second = {"ns": 1_000_000_000, "us": 1_000_000, "ms": 1_000}[ts.dtype.time_unit]
    times = ts.to_physical().to_numpy()
    spans = np.zeros(len(times), np.int64)
    if back < len(times):
        spans[back:] = times[back:] - times[:-back]
    return spans // per_second


def _bin_order(touches: pl.DataFrame, same_contact: np.ndarray) -> pl.Series:
    """As ``habits._bin_order`` (0 = first touch on the contact)."""
    seconds = _whole_seconds_back(touches["ts"], 1)
    if seconds is not None:  # the same days, in numpy (a contact's touches are by time)
        bins = 1 + np.searchsorted(np.asarray(CADENCE_EDGES), seconds / 86_400, side="right")
        return pl.Series("bin_order", np.where(same_contact, bins, 0), pl.Int8)
    days_since = touches.select(
        ((pl.col("ts") - pl.col("ts").shift(1)).dt.total_seconds() / 86_400).fill_null(0.0)
    ).to_series()
    bins = 1 + sum((days_since >= e).cast(pl.Int32) for e in CADENCE_EDGES)
    return pl.Series("bin_order", np.where(same_contact, bins.to_numpy(), 0), pl.Int8)


def _sequences(touches: pl.DataFrame, same: list[np.ndarray]) -> list[pl.Series]:
    """``sequence_k`` as ``habits._sequence`` (the types of the contact's last ``k`` touches
    within :data:`TOUCH_SEQUENCE_DAYS`, or null), from integer codes of the types."""
    names, code = _coded(touches["activity_type"])
    return [
        labels.gather(known) for labels, known in _sequence_codes(names, code, touches["ts"], same)
    ]


def _sequence_codes(
    names: pl.Series, code: np.ndarray, ts: pl.Series, same: list[np.ndarray]
) -> list[tuple[pl.Series, pl.Series]]:
    """Per length in :data:`TOUCH_SEQUENCE_LENGTHS`, every sequence's label and each
    touch's row among them (null for none): :func:`_sequences` gathered; ``code`` numbers
    the types among ``names`` (sorted; -1 for none), ``ts`` the touches' times (contact order)."""
    n = max(names.len(), 1)
    out = []
    for k in TOUCH_SEQUENCE_LENGTHS:
        back = k - 1
        seconds = _whole_seconds_back(ts, back)
        if seconds is not None:  # (rows of one contact: by time, not negative)
            keep = same[back - 1] & (seconds / 86_400 <= TOUCH_SEQUENCE_DAYS)
        else:
            first_ts = ts.shift(back)
            span_days = (
                pl.select((ts - first_ts).dt.total_seconds() / 86_400).to_series().fill_null(np.inf)
            )
            keep = same[back - 1] & (span_days <= TOUCH_SEQUENCE_DAYS).to_numpy()
        number = np.zeros(len(code), dtype=np.int64)
        known = keep.copy()
        for j in range(back, -1, -1):  # the earliest touch first, the measured touch last
            c = _shifted(code, j)
            known &= c >= 0
            number = number * n + np.maximum(c, 0)
        labels = pl.Series(f"sequence_{k}", _sequence_labels(names.to_list(), k), pl.String)
        at = pl.select(pl.when(pl.Series(known)).then(pl.Series(number))).to_series()
        out.append((labels, at))
    return out


def _shifted(values: np.ndarray, k: int) -> np.ndarray:
    """``values`` moved down by ``k`` rows (the ``k``-th previous row), -1 at the top."""
    if k == 0:
        return values
    return np.concatenate([np.full(min(k, len(values)), -1, values.dtype), values[:-k]])


def _sequence_labels(names: list[str], k: int) -> list[str]:
    """Every sequence of ``k`` of ``names``, numbered as :func:`_sequences` numbers them."""
    labels = [""]
    for _ in range(k):
        labels = [f"{a}{SEQUENCE_SEPARATOR}{b}" if a else b for a in labels for b in names]
    return labels if names else [""]


def _credits(
    touches: pl.DataFrame,
    actions: pl.LazyFrame,
    *,
    same_contact: np.ndarray,
    bin_order: pl.Series,
    window: float,
    iterations: int,
) -> dict[str, np.ndarray]:
    """Each touch's buyer actions credited by the timing and by the cadence fit, as
    ``habits._touch_credit`` computes them (the same pairs, lags and sums)."""
    if touches.height == 0:
        return {"timing": np.zeros(0), "cadence": np.zeros(0)}
    # a contact number per touch: equal neighbours = same contact (rows are sorted by contact)
    pairs = candidate_pairs(touches, actions, window=window, touch_key=np.cumsum(~same_contact))
    pair_touch, pair_action, pair_lag = pairs.touch, pairs.action, pairs.lag
    ts_hours, end = pairs.ts_hours, pairs.end
    kind = touches["activity_type"]
    kind_code = kind.cast(pl.Enum(kind.drop_nulls().unique().sort())).to_physical()
    kind_code = kind_code.cast(pl.Int64).fill_null(-1).to_numpy() + 1
    hour = touches["hour"].cast(pl.Int64).fill_null(-1).to_numpy()
    weekday = touches["weekday"].cast(pl.Int64).fill_null(-1).to_numpy()
    band = np.searchsorted(np.asarray(HOUR_BANDS), touches["hour"].to_numpy(), side="right")
    left = np.minimum(-ts_hours, window * 24)
    span_hours = (end - touches["ts"].min()).total_seconds() / 3600.0
    exposure_scale = touches["contact_id"].n_unique() * span_hours
    cells = {
        # any numbering of the cells gives the same fit: a cell's sums never mix with another's
        "timing": (kind_code * 9 + weekday + 1) * 26 + hour + 1,
        "cadence": kind_code * 256 + bin_order.cast(pl.Int64).to_numpy() + 128,
    }
    out = {}
    for feature, cell in cells.items():
        _, credit = credit_em(
            cell,
            band.astype(np.int64),
            left,
            pair_action,
            pair_touch,
            pair_lag,
            pairs.actions,
            exposure_scale,
            iterations=iterations,
        )
        out[feature] = np.bincount(pair_touch, weights=credit, minlength=touches.height)
    return out


#: The habit credit's EM stops when an iteration changes no parameter by this much,
#: relatively (:func:`credit_em`, accelerated): its cells' rates are then within about this
#: of the converged fit's, relatively, far below what a view shows (rates in %, lifts to 0.01).
CREDIT_TOLERANCE = 1e-9


def credit_em(
    touch_cell: np.ndarray,
    touch_band: np.ndarray,
    touch_left: np.ndarray,
    pair_action: np.ndarray,
    pair_touch: np.ndarray,
    pair_lag: np.ndarray,
    n_actions: int,
    background_exposure: float,
    *,
    iterations: int,
    tolerance: float = CREDIT_TOLERANCE,
    accelerate: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Fractional credit of buyer actions to the touches before them (EM of a Poisson
    mixture): per cell the expected responses per touch, and each pair's credit. The one fit
    of the habit credit, for :func:`effortlens.habits.habit_effects` (the event path) and the
    build; tests/credit_reference.py writes it plainly, and without acceleration it gives the
    same numbers within a relative 1e-11 (6e-14 seen over 400 iterations: some sums add the
    same terms in another order, so not to the bit). The event path and the build give the
    same bits: no sum's order depends on how the cells are numbered.

    What the iterations do not change is computed once, so that an iteration makes two
    passes over the pairs and none over the touches:

    - each pair's cell and lag slot (band x lag bin) are one small integer, its *code*,
      the cells renumbered to those that have touches: a pair's weight is a lookup of its
      code in the table rate x density;
    - the pairs are laid out by action (:func:`_pair_layout`): block ``k`` holds each
      action's ``k``-th pair, every block in one order of the actions, so an action's total
      is its rows of blocks 0, 1, ... added in place (in the pairs' order: the sums of a
      lookup by action, without its random reads and ``numpy.add.at``);
    - a pair's credit is its weight over its action's total, so the M step's sums by cell
      and by slot are the table times one :func:`numpy.bincount` by code of the pairs'
      actions' inverse totals (summed over slots, then over cells): no credit per pair is
      held until the last iteration's are given;
    - a touch's exposure depends only on its band unless the end of the data cuts its
      window (the touches of the last 14 days): each cell's uncut touches are counted per
      band once, and only the cut touches are summed one by one.

    It holds each pair's code in the smallest integer that holds it and its rank among its
    action's pairs, two floats per action, and the cut touches; every other per-pair value
    is made :data:`_CHUNK` rows at a time (15.8M pairs: 3.8 CPU ns a pair an iteration where
    a lookup by action and ``add.at`` took 9.3).

    The iterations are accelerated (``accelerate``, SQUAREM: :func:`_fixed_point`): every
    third starts from a point extrapolated along the path of the three before it. It stops
    after at most ``iterations``, or as soon as one iteration
    changes no parameter by ``tolerance`` or more, relatively: each cell's rate and the
    background rate relative to their larger value (old or new), each lag bin's probability
    (density x width, a share of its band's 1). The default :data:`CREDIT_TOLERANCE` (1e-9)
    stops the two fits after 24 and 23 iterations on ``effortlens sample --size 3000000``
    (plain, without acceleration, 1e-7 took 36 and 30, 1e-9 took 53 and 44); measured
    against a fit run to 1e-14, a cell's rate is then within 8e-10 relatively and a touch's
    credit within 2e-7 (credits reach 3.1; plain to 1e-7: 2.7e-7 and 4e-5), so the numbers
    shown (rates in %, lifts to 0.01) are those of the converged fit.
    ``accelerate=False`` runs the plain EM (tests/credit_reference.py's iterations);
    ``tolerance=0`` runs every iteration.

    Examples
    --------
    >>> import numpy as np
    >>> one = np.array([0]); rate, credit = credit_em(one, one, np.array([400.0]), one, one,
    ...     np.array([2.0]), 1, 1000.0, iterations=3)
    >>> credit.round(3).tolist()  # one touch before the one action: all of its credit
    [1.0]
    """
    parts = [
        {
            "cell": touch_cell,
            "band": touch_band,
            "left": touch_left,
            "pair_action": pair_action,
            "pair_touch": pair_touch,
            "pair_lag": pair_lag,
        }
    ]
    (fit,), layout = _credit_setup(parts, [n_actions], ["cell"])
    rate, placed = _credit_fit(
        fit,
        layout,
        n_actions,
        background_exposure,
        iterations=iterations,
        tolerance=tolerance,
        accelerate=accelerate,
    )
    credit = np.empty(len(pair_action))
    for _, rows in _part_rows(parts, layout):
        for at in _chunks(len(pair_action)):
            np.take(placed, rows(at), out=credit[at], mode="clip")
    return rate, credit


class _Layout(NamedTuple):
    """Where :func:`_credit_fit` keeps each candidate pair (:func:`_pair_layout`): block
    ``k`` holds every action's ``k``-th pair (in the pairs' order), the actions in one order
    in every block (most pairs first, then by number), so that block ``k`` is a prefix of
    that order and an action's total is block 0's row plus block 1's row ... in place."""

    rank: np.ndarray  #: each pair's block (its number among its action's pairs)
    place: np.ndarray  #: each action's row in every block
    starts: list[int]  #: each block's first row
    sizes: list[int]  #: each block's rows (actions with more than ``k`` pairs)
    #: each part's pairs and actions before it (:func:`_part_rows`)
    offsets: tuple[tuple[int, int], ...] = ((0, 0),)

    def rows(self, at: slice, pair_action: np.ndarray) -> np.ndarray:
        """The rows of the pairs ``at`` (in the pairs' order) in the layout."""
        start = np.asarray(self.starts, np.int64)
        return start[self.rank[at]] + self.place[pair_action[at]]


def _pair_layout(pair_action: np.ndarray, n_total: int) -> _Layout:
    """:class:`_Layout` of the pairs of actions ``pair_action`` (numbered below ``n_total``)."""
    rank, counts = _ranked(pair_action, n_total)
    return _laid_out(rank, counts)


def _ranked(pair_action: np.ndarray, n_total: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's rank among its action's pairs (in the pairs' order) and each action's
    pairs (``n_total`` actions).

    The ranks come from runs of pairs whose actions increase (each action once in a run):
    the candidate pairs come as one run per rank (per partition in the partitioned build),
    so no sort is needed; pairs in any other order are ranked by a stable sort of their
    actions."""
    n_pairs = len(pair_action)
    most_runs = max(64, n_pairs >> 10)
    breaks = [0]
    for at in _chunks(n_pairs):
        lo = max(at.start - 1, 0)
        step = pair_action[lo + 1 : at.stop] <= pair_action[lo : at.stop - 1]
        breaks.extend((np.flatnonzero(step) + lo + 1).tolist())
        if len(breaks) > most_runs:
            break
    if len(breaks) <= most_runs:  # a few runs: ranked run by run
        counts = np.zeros(n_total, np.int64)
        rank = np.empty(n_pairs, _small_int(len(breaks)))
        for first, last in zip(breaks, [*breaks[1:], n_pairs], strict=True):
            acting = pair_action[first:last]
            rank[first:last] = counts[acting]
            counts[acting] += 1
        return rank, counts
    order = np.argsort(pair_action, kind="stable")
    counts = np.bincount(pair_action, minlength=n_total)
    first = np.cumsum(counts) - counts  # each action's first row in that order
    ranked = np.arange(n_pairs) - np.repeat(first, counts)
    rank = np.empty(n_pairs, _small_int(int(counts.max(initial=0))))
    rank[order] = ranked
    return rank, counts


def _laid_out(
    rank: np.ndarray, counts: np.ndarray, offsets: tuple[tuple[int, int], ...] = ((0, 0),)
) -> _Layout:
    """:class:`_Layout` of pairs ranked ``rank`` among their action's ``counts`` pairs (the
    parts' pairs and actions before each: ``offsets``)."""
    n_total = len(counts)
    most = int(counts.max(initial=0))
    # most pairs first, then by number: a stable sort of the counts, descending
    by_pairs = np.argsort((most - counts).astype(_small_int(most)), kind="stable")
    place = np.empty(n_total, _small_int(max(n_total, 1)))
    place[by_pairs] = np.arange(n_total)
    del by_pairs
    per_count = np.bincount(counts, minlength=most + 1)
    sizes = [int(n) for n in per_count[::-1].cumsum()[::-1][1:]]  # actions with > k pairs
    starts = np.cumsum([0, *sizes[:-1]]).tolist() if sizes else []
    return _Layout(rank, place, [int(s) for s in starts], sizes, offsets)


def _part_rows(parts: list[dict[str, np.ndarray]], layout: _Layout):
    """Per part, the part and a function of a slice of its pairs giving their layout rows
    (the parts' pairs and actions numbered on from the parts before: ``layout.offsets``)."""
    start = np.asarray(layout.starts, np.int64)
    for part, (at_pairs, at_actions) in zip(parts, layout.offsets, strict=True):
        pair_action = np.asarray(part["pair_action"])

        def rows(at: slice, pair_action=pair_action, at_pairs=at_pairs, at_actions=at_actions):
            ranks = layout.rank[at_pairs + at.start : at_pairs + at.stop]
            return start[ranks] + layout.place[pair_action[at].astype(np.int64) + at_actions]

        yield part, rows


class _Fit(NamedTuple):
    """What one fit's iterations do not change (:func:`_credit_setup`)."""

    has: np.ndarray  #: the cells that have touches
    uncut: np.ndarray  #: per cell that has, the touches of each band whose window is whole
    cut_cell: np.ndarray  #: per touch whose window the end cuts: its cell (of those that have)
    cut_slot: np.ndarray  #: its slot of the density
    cut_below: np.ndarray  #: its place in the cumulative density
    cut_hours: np.ndarray  #: its hours in the cut bin
    code: np.ndarray  #: each pair's code (cell that has x slot) at its layout row
    n_bands: int
    touches: int
    pairs: int


def _credit_setup(
    parts: list[dict[str, np.ndarray]],
    n_actions: list[int],
    cells: list[str],
    lanes: _Lanes | None = None,
) -> tuple[list[_Fit], _Layout]:
    """:class:`_Fit` of each touch cell column ``cells`` of the ``parts`` (the inputs of
    :func:`credit_em` as :func:`fitted_credits` takes them) and the pairs' layout; each
    part's action count goes in ``part["n_total"]``. ``lanes``: the threads the parts are
    shared out to (:class:`_Lanes`; default one, here)."""
    lanes = lanes or _Lanes(1)
    edges = np.asarray(LAG_EDGES_HOURS)
    n_bins = len(edges) - 1
    # plain views of memory-mapped inputs (a slice of a numpy.memmap costs ~40 us more)
    parts = [{key: np.asarray(values) for key, values in part.items()} for part in parts]
    n_bands = max((int(p["band"].max()) + 1 for p in parts if p["band"].size), default=1)
    n_cells = [max((int(p[c].max()) + 1 for p in parts if p[c].size), default=1) for c in cells]

    def touches_of(part_n: tuple) -> tuple:
        """A part's uncut touches of each cell per touch band, its cut touches one by one,
        its pairs' ranks and its actions' pair counts."""
        part, n = part_n
        uncut = [np.zeros((k, n_bands), np.int64) for k in n_cells]
        cut: list[list[tuple[np.ndarray, ...]]] = [[] for _ in cells]
        for at in _chunks(len(part["band"]), _SETUP_CHUNK):
            band = part["band"][at].astype(np.int64)
            left = part["left"][at]
            cut_bin = _lag_bins(left, edges)  # (n_bins: not cut)
            cuts = np.flatnonzero(cut_bin < n_bins)  # a few: the touches of the last 14 days
            cut_band, cut_at = band[cuts], cut_bin[cuts]
            slot = cut_band * n_bins + cut_at  # its slot of the density
            below = cut_band * (n_bins + 1) + cut_at  # its place in the cumulative
            hours = left[cuts] - edges[cut_at]  # its hours in the cut bin
            for c, column in enumerate(cells):
                cell = part[column][at].astype(np.int64)
                key = cell * n_bands + band
                size = n_cells[c] * n_bands
                counted = np.bincount(key, minlength=size) - np.bincount(key[cuts], minlength=size)
                uncut[c] += counted.reshape(-1, n_bands)
                cut[c].append((cell[cuts], slot, below, hours))
        pair_action = part["pair_action"]
        return (uncut, cut, *_ranked(pair_action, _action_count(pair_action, n)))

    # per touch band, the uncut touches of each cell and the cut touches one by one
    uncut = [np.zeros((n, n_bands), np.int64) for n in n_cells]
    cut_parts: list[list[tuple[np.ndarray, ...]]] = [[] for _ in cells]
    ranks, counts, offsets = [], [], []
    pairs_before = actions_before = 0
    for part_uncut, part_cut, rank, count in lanes.map(
        touches_of, zip(parts, n_actions, strict=True)
    ):
        for c in range(len(cells)):  # (counts: the same in any order)
            uncut[c] += part_uncut[c]
            cut_parts[c] += part_cut[c]  # in the parts' order
        ranks.append(rank)
        counts.append(count)
        offsets.append((pairs_before, actions_before))
        pairs_before += len(rank)
        actions_before += len(count)
    layout = _laid_out(
        np.concatenate(ranks) if len(ranks) != 1 else ranks[0],
        np.concatenate(counts) if len(counts) != 1 else counts[0],
        tuple(offsets),
    )
    del ranks, counts
    n_slots = n_bands * n_bins
    n_pairs = len(layout.rank)
    setups = []
    for c in range(len(cells)):
        cut_cell, cut_slot, cut_below, cut_hours = (
            np.concatenate([p[k] for p in cut_parts[c]]) if cut_parts[c] else np.zeros(0, np.int64)
            for k in range(4)
        )
        cut_parts[c] = []
        # the cells that have touches, renumbered 0.. (the others' rate is 0, as their exposure)
        has = (uncut[c].sum(axis=1) > 0) | (np.bincount(cut_cell, minlength=n_cells[c]) > 0)
        dense = np.cumsum(has) - 1
        n_codes = max(int(has.sum()), 1) * n_slots
        setups.append(
            [has, uncut[c][has], dense[cut_cell], cut_slot, cut_below, cut_hours, dense, n_codes]
        )
    # each pair's code at its row of the layout: an action's pairs in the same row of
    # blocks 0, 1, ... (its total is those rows added in order, no lookup by action)
    codes = [np.empty(n_pairs, _small_int(s[-1])) for s in setups]

    def place(part_rows: tuple) -> None:
        """A part's pairs' codes, each at its row (the parts' rows are apart)."""
        part, rows = part_rows
        for at in _chunks(len(part["pair_action"]), _SETUP_CHUNK):
            lag_bin = _lag_bins(part["pair_lag"][at], edges)
            np.minimum(lag_bin, n_bins - 1, out=lag_bin)
            touch = part["pair_touch"][at]
            slot = part["band"][touch].astype(np.int64) * n_bins + lag_bin
            placed = rows(at)
            for c, column in enumerate(cells):
                dense = setups[c][6]
                codes[c][placed] = dense[part[column][touch]] * n_slots + slot

    for _ in lanes.map(place, _part_rows(parts, layout)):
        pass
    n_touches = sum(len(p["band"]) for p in parts)
    fits = [
        _Fit(*s[:6], code, n_bands, n_touches, n_pairs)
        for s, code in zip(setups, codes, strict=True)
    ]
    return fits, layout


def _action_count(pair_action: np.ndarray, n_actions: int) -> int:
    """The actions the fit counts: ``n_actions``, or more if a pair names a later one."""
    return max(n_actions, int(pair_action.max()) + 1 if len(pair_action) else 0)


def _credit_fit(
    fit: _Fit,
    layout: _Layout,
    n_actions: int,
    background_exposure: float,
    *,
    iterations: int,
    tolerance: float = CREDIT_TOLERANCE,
    accelerate: bool = True,
    lanes: _Lanes | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`credit_em` of a :class:`_Fit` on the pairs' ``layout``: the rates, and each
    pair's credit at its row of the layout. ``lanes``: the threads its chunks of actions
    run on (:class:`_Lanes`; default one, here)."""
    lanes = lanes or _Lanes(1)
    edges = np.asarray(LAG_EDGES_HOURS)
    widths = np.diff(edges)
    n_bins = len(widths)
    n_bands = fit.n_bands
    n_slots = n_bands * n_bins
    has, uncut, code = fit.has, fit.uncut, fit.code
    cut_cell, cut_slot, cut_below, cut_hours = (
        fit.cut_cell,
        fit.cut_slot,
        fit.cut_below,
        fit.cut_hours,
    )
    used = np.flatnonzero(has)
    n_cells = len(has)
    n_codes = max(len(used), 1) * n_slots
    n_pairs, n_touches = fit.pairs, fit.touches
    # the actions without a pair: their total is the background alone
    alone = len(layout.place) - (layout.sizes[0] if layout.sizes else 0)
    # a chunk of actions at a time, its rows of every block in turn: the chunk's totals stay
    # in the cache while its actions' pairs are added (each action's in rank order as before);
    # the chunks' actions are apart, so the chunks run on any thread in any order
    chunks = [
        (
            slice(at.start, min(at.stop, layout.sizes[0])),
            [
                (
                    slice(start + at.start, start + min(at.stop, size)),
                    slice(at.start, min(at.stop, size)),
                )
                for start, size in zip(layout.starts, layout.sizes, strict=True)
                if size > at.start
            ],
        )
        for at in _chunks(layout.sizes[0] if layout.sizes else 0)
    ]
    totals = np.zeros(layout.sizes[0] if layout.sizes else 0)  # per action with a pair
    inverse = np.zeros(len(totals))
    # each action's background share (background / total), summed over all at once: held
    # for every iteration (100M: 16M actions; a new array each time cost ~80 ms of page faults)
    shares = np.zeros(len(totals))
    last = {}  # the last E step's table of weights (``totals`` holds its totals)

    def em_chunk(chunk: tuple, table: np.ndarray, background: float) -> list[np.ndarray]:
        """The E step of a chunk of actions (its pairs' weights added to its actions'
        totals, block after block), then its part of the M step: each block's inverse
        totals summed by code."""
        actions, blocks = chunk
        held = np.empty(actions.stop - actions.start)  # a block's weights
        totals[actions] = 0.0
        for rows, acting in blocks:  # each action's pairs added in their order, as by rank
            # mode "clip" (every code is in the table): "raise" buffers ``out`` first
            weight = np.take(table, code[rows], out=held[: rows.stop - rows.start], mode="clip")
            totals[acting] += weight
        np.add(totals[actions], background, out=totals[actions])
        np.divide(1.0, totals[actions], out=inverse[actions])
        np.divide(background, totals[actions], out=shares[actions])
        return [
            np.bincount(code[rows], weights=inverse[acting], minlength=n_codes)
            for rows, acting in blocks
        ]

    def em_step(rate: np.ndarray, density: np.ndarray, background: float) -> tuple:
        """One iteration from these parameters: the next parameters. A pair's credit is its
        weight over its action's total, so a code's credits are its weight times the sum of
        its pairs' actions' inverse totals: no credit is held per pair."""
        table = np.multiply.outer(rate[used], density.reshape(-1)).reshape(-1)
        last["table"] = table
        # M step: each block's sums by code added in the blocks' order (chunk by chunk)
        by_code = np.zeros(n_codes)
        for sums in lanes.map(lambda chunk: em_chunk(chunk, table, background), chunks):
            for summed in sums:
                by_code += summed
        # (an action without a pair: background / background, as its total is the background)
        alone_share = alone * np.divide(background, background) if alone else 0.0
        background_share = math.fsum((float(shares.sum()), alone_share))
        by_code *= table
        by_code = by_code.reshape(-1, n_slots)
        cumulative = np.concatenate(
            [np.zeros((n_bands, 1)), np.cumsum(density * widths, axis=1)], axis=1
        ).reshape(-1)
        whole = np.clip(cumulative.reshape(n_bands, n_bins + 1)[:, -1], 1e-9, 1.0)
        exposure = cumulative[cut_below] + cut_hours * density.reshape(-1)[cut_slot]
        np.clip(exposure, 1e-9, 1.0, out=exposure)
        exposed = np.bincount(cut_cell, exposure, minlength=len(used)).astype(np.float64)
        for b in range(n_bands):  # (not a matrix product: its sums' order varies with shapes)
            exposed += uncut[:, b] * whole[b]
        rate = np.zeros(n_cells)
        rate[used] = np.where(exposed > 0, by_code.sum(axis=1) / np.maximum(exposed, 1e-12), 0.0)
        # each slot's credits of every cell added in the order of their values (not of the
        # cells' numbers: the event path numbers the same cells otherwise, and gives these bits)
        mass = np.sort(by_code, axis=0).sum(axis=0).reshape(n_bands, n_bins)
        density = (mass + 1e-9) / widths
        density /= (density * widths).sum(axis=1, keepdims=True)
        return rate, density, background_share / max(background_exposure, 1e-9)

    start = (
        # (0 for a cell without touches, as after any iteration: nothing in the acceleration
        # depends on how many such cells the numbering leaves)
        np.where(has, max(n_pairs, 1) / max(n_touches, 1), 0.0),
        np.tile(1 / (edges[-1] * np.ones(n_bins)), (n_bands, 1)),  # per hour
        0.1 * n_actions / max(background_exposure, 1e-9),
    )
    rate = _fixed_point(
        em_step,
        start,
        widths=widths,
        iterations=iterations,
        tolerance=tolerance,
        accelerate=accelerate,
    )[0]
    # each pair's credit by the last E step: its weight over its action's total
    credit = np.zeros(n_pairs)

    def credit_chunk(chunk: tuple) -> None:
        for rows, acting in chunk[1]:
            np.take(last["table"], code[rows], out=credit[rows], mode="clip")
            np.divide(credit[rows], totals[acting], out=credit[rows])

    for _ in lanes.map(credit_chunk, chunks):
        pass
    return rate, credit


class _Lanes:
    """Calls of one function over items, on up to ``threads`` threads (an int, or a function
    asked before each :meth:`map`: the fit widens when the cores free up), their results in
    the items' order. Numpy lets go of the interpreter in the fit's loops, so the threads
    use the cores; each result is the one a call here gives (the calls share no sum)."""

    def __init__(self, threads: int | Callable[[], int] = 1) -> None:  # noqa: D107
        self.threads = threads
        self.pool: Any = None

    def __enter__(self) -> _Lanes:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the threads."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def map(self, function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``function(item)`` of each item, in order (a few ahead of the one given)."""
        threads = self.threads() if callable(self.threads) else self.threads
        if threads <= 1:
            yield from map(function, items)
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        if self.pool is None or self.pool._max_workers < threads:  # noqa: SLF001
            self.close()
            self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="credit")
        ahead: deque = deque()
        try:
            for item in items:
                ahead.append(self.pool.submit(function, item))
                if len(ahead) > 2 * threads:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
        finally:
            for future in ahead:  # a failure: the calls not started are dropped
                future.cancel()


def _fixed_point(
    step, start: tuple, *, widths: np.ndarray, iterations: int, tolerance: float, accelerate: bool
) -> tuple:
    """The parameters of :func:`credit_em`'s last ``step`` (an EM iteration), run from
    ``start`` until one changes no parameter by ``tolerance`` (:func:`_em_change`) or after
    ``iterations`` steps.

    Plain, every step starts from the last one's result. Accelerated (SQUAREM, Varadhan and
    Roland 2008, scheme S3), every third step starts from a point extrapolated from the three
    before it, along the path the plain iterations take: the same fixed point in fewer steps
    (``effortlens sample --size 3000000``: to a tolerance of 1e-10 in 26 + 27 steps where the
    plain EM takes 61 + 52; to 1e-7, 36 + 30). The stopping rule is the plain one: the
    last step, from wherever it started, changed no parameter by ``tolerance``.
    """
    current, cycle, last = start, [start], start
    for _ in range(iterations):
        last = step(*current)
        if _em_change(current, last, widths) < tolerance:
            break
        current = last
        if not accelerate:
            continue
        cycle.append(last)
        if len(cycle) == 3:
            current, cycle = _extrapolated(*cycle, widths), []
    return last


def _extrapolated(first: tuple, second: tuple, third: tuple, widths: np.ndarray) -> tuple:
    """SQUAREM's point from three successive EM parameters (rate, density, background):
    ``first - 2a r + a**2 v`` with ``r`` the first step, ``v`` the change between the two
    steps and ``a = -|r| / |v|`` (at most -1: ``a = -1`` gives ``third``), halved towards -1
    while a rate, density or the background would fall below 0; each band's density then
    normalised to 1 again."""

    def flat(params: tuple) -> np.ndarray:
        return np.concatenate([params[0], params[1].reshape(-1), [params[2]]])

    x0, x1, x2 = flat(first), flat(second), flat(third)
    r = x1 - x0
    v = x2 - x1 - r
    # exactly rounded sums (math.fsum): the same bits however the cells are numbered
    vv = math.fsum(v * v)
    a = -math.sqrt(math.fsum(r * r) / vv) if vv > 0 else -1.0
    n_rates = len(first[0])
    while a < -1.0:
        x = x0 - 2 * a * r + a * a * v
        if (x[:n_rates] >= 0).all() and (x[n_rates:] > 0).all():
            density = x[n_rates:-1].reshape(first[1].shape)
            density = density / (density * widths).sum(axis=1, keepdims=True)
            return x[:n_rates], density, float(x[-1])
        a = max((a - 1) / 2, -1.0)
    return third


#: Pairs or touches at a time in :func:`credit_em`'s loops (bounds their temporaries).
_CHUNK = 1 << 17


#: Rows at a time in :func:`_credit_setup`'s loops (once per fit: larger, fewer calls).
_SETUP_CHUNK = 1 << 20


def _chunks(n: int, size: int | None = None):
    """Slices of ``n`` rows, ``size`` (default :data:`_CHUNK`) at a time, in order."""
    size = size or _CHUNK
    return (slice(start, min(start + size, n)) for start in range(0, n, size))


def _lag_bins(hours: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each value's bin among ``edges`` (increasing, from 0): ``numpy.searchsorted(edges,
    hours, side="right") - 1`` clipped to ``0 .. len(edges) - 1`` (NaN: the last), as int64.
    When the edges are whole numbers (the lag edges), by a lookup of each value's whole
    part (clipped to 0 .. the last edge): a value's bin is its whole part's, as no edge lies
    between them (100M's 82M lags and 82M touches: ~0.6 CPU s less than the binary search)."""
    top = float(edges[-1]) if len(edges) else 0.0
    whole = len(edges) > 1 and edges[0] == 0 and top <= 1 << 16
    if not whole or not np.array_equal(edges, np.round(edges)):
        bins = np.searchsorted(edges, hours, side="right") - 1
        return np.clip(bins, 0, len(edges) - 1, out=bins)
    table = np.searchsorted(edges, np.arange(int(top) + 1), side="right") - 1
    at = np.fmin(hours, top)  # (NaN: the last edge, as searchsorted puts NaN after all)
    np.fmax(at, 0.0, out=at)
    return table.take(at.astype(np.intp))


def _small_int(largest: int) -> np.dtype:
    """The smallest signed integer type that holds ``0 .. largest``."""
    for kind in (np.int8, np.int16, np.int32):
        if largest <= np.iinfo(kind).max:
            return np.dtype(kind)
    return np.dtype(np.int64)


def _summed(index: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """``numpy.bincount(index, weights, minlength=n)`` (``index`` below ``n``) to the bit,
    a chunk at a time: each term added in order into zeros, without the full-length copy of
    ``index`` as ``intp`` that ``bincount`` makes."""
    out = np.zeros(n)
    for at in _chunks(len(index)):
        # (``intp`` indices: numpy's fast path of ``add.at``, ~8x a narrower type's)
        np.add.at(out, index[at].astype(np.intp), weights[at])
    return out


def _em_change(old: tuple, new: tuple, widths: np.ndarray) -> float:
    """The largest relative change of the credit EM's parameters (rate, density, background)
    from ``old`` to ``new`` (:func:`credit_em`'s stopping rule)."""
    (rate0, density0, background0), (rate1, density1, background1) = old, new
    tiny = np.finfo(np.float64).tiny
    # relative to the larger rate, floored at 1e-12 of the largest: a cell whose rate decays
    # towards zero (1e-105, 1e-108, ... into subnormals) otherwise changes by ~100% at every
    # step and holds the fit to its iteration cap
    floor = max(1e-12 * float(rate1.max(initial=0.0)), tiny)
    rates = np.abs(rate1 - rate0) / np.maximum(np.maximum(rate0, rate1), floor)
    shares = np.abs(density1 - density0) * widths
    background = abs(background1 - background0) / max(background0, background1, tiny)
    return max(float(rates.max(initial=0.0)), float(shares.max(initial=0.0)), background)


def _day_rep_order(frame: pl.DataFrame) -> pl.Series:
    """Row order by ``day``, then ``rep_id`` (nulls first, as ``sort`` puts them), ties in
    the frame's order: one stable sort of one integer."""
    reps = frame["rep_id"].drop_nulls().unique().sort()
    rep = frame["rep_id"].cast(pl.Enum(reps)).to_physical().cast(pl.Int64).fill_null(-1) + 1
    return pl.Series(_day_rep_argsort(frame["day"], rep.to_numpy(), reps.len()))


def _day_rep_argsort(day: pl.Series, rep: np.ndarray, n_reps: int) -> np.ndarray:
    """:func:`_day_rep_order` of rows whose ``rep`` is the rep's rank among ``n_reps``
    sorted reps (0 for none)."""
    day = day.to_physical().cast(pl.Int64)
    low = day.min() if day.null_count() < len(day) else 0
    day = (day - low + 1).fill_null(0)
    key = day.to_numpy() * (n_reps + 1) + rep
    return radix_order(key)


def radix_order(key: np.ndarray) -> np.ndarray:
    """``numpy.argsort(key, kind="stable")`` of non-negative integers below 2**32, by two
    passes of 16 bits (numpy's stable sort of 16-bit integers is a radix sort): ~3-4x less
    CPU on millions of rows; larger keys by ``numpy.argsort``."""
    top = int(key.max(initial=0))
    if top >= 2**32:
        return np.argsort(key, kind="stable")
    order = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
    if top >= 2**16:
        high = (key >> 16).astype(np.uint16)
        order = order[np.argsort(high[order], kind="stable")]
    return order


def day_rep_order(day: np.ndarray, rep: np.ndarray) -> np.ndarray:
    """``numpy.lexsort((rep, day))`` (integers, ``rep`` >= 0): when the day's offset, the
    rep and the row number fit in 63 bits together, each row is one int64 of the three
    (unique: the row breaks ties as the lexsort does) sorted by Polars, the row numbers
    read from the low bits, int32 when the rows allow (20M rows of 700 days x 5,000 reps:
    2.7 -> 1.0 CPU s, the same peak as the lexsort's), else the lexsort.

    Examples
    --------
    >>> day_rep_order(np.array([3, 1, 3, 1]), np.array([0, 2, 0, 1])).tolist()
    [3, 1, 0, 2]
    """
    rows = len(day)
    if not rows:
        return np.zeros(0, dtype=np.int64)
    low = int(day.min())
    span = int(day.max()) - low + 1
    width = int(rep.max()) + 1
    shift = max(rows - 1, 1).bit_length()
    if int(rep.min()) < 0 or (span * width).bit_length() + shift > 63:
        return np.lexsort((rep, day))
    key = day.astype(np.int64)
    key -= low
    key *= width
    key += rep
    key <<= shift
    for lo in range(0, rows, _CHUNK):  # the row numbers a chunk at a time: no second array
        key[lo : lo + _CHUNK] |= np.arange(lo, min(lo + _CHUNK, rows), dtype=np.int64)
    series = pl.Series(key)
    del key
    series = series.sort()  # the keys are unique: any sort is the order
    ordered = series.to_numpy()
    order = np.empty(rows, dtype=np.int32 if rows < 2**31 else np.int64)
    for lo in range(0, rows, _CHUNK):
        order[lo : lo + _CHUNK] = ordered[lo : lo + _CHUNK] & ((1 << shift) - 1)
    return order


def build_practice_facts(
    activities: pl.DataFrame | pl.LazyFrame,
    *,
    part: PartTouches | None = None,
    coded: bool = False,
) -> pl.DataFrame:
    """:func:`effortlens.deviance.practice_facts` collected, equal to it, by integer sorts.

    ``practice_facts`` sorts every touch by four keys, three of them strings, and shifts
    within each (rep, contact) group by window expressions; here the rep and contact are
    replaced by their ranks (an ``Enum`` of the sorted distinct values), the touches are
    ordered by (rep, contact, time) as integers, the rare touches equal on all three are put
    in ``activity_id`` order as the original does, and the previous touch is the previous row
    when it has the same rep and contact. ``part`` gives the touches of ``activities`` read
    and coded already (:class:`PartTouches`; shared with the streaks and the credit inputs).
    ``coded``: the text columns as ``Enum``s of the part's values (:func:`_enumed`) instead
    of ``String`` (a build groups them by rep as codes; the same values).

    Examples
    --------
    >>> build_practice_facts(enriched.activities).equals(
    ...     practice_facts(enriched.activities).collect())  # doctest: +SKIP
    True
    """
    from effortlens.deviance import PRACTICE_COLUMNS

    part = part or PartTouches(activities)
    touches = part.touches
    if touches.height == 0:
        return touches.with_columns(
            previous_type=pl.lit(None, pl.String),
            gap_days=pl.lit(None, pl.Float64),
            previous_day=pl.lit(None, pl.Date),
        ).select(PRACTICE_COLUMNS)
    kinds = part.coded("activity_type")[0]
    spell = _enumed if coded else _spelled
    packed = _packed_history(part)
    if packed is not None:  # moved as packed integers
        out = {}
        for column in PRACTICE_COLUMNS:
            if column == "previous_type":
                out[column] = spell(kinds, packed[column], column)
            elif column in packed:
                out[column] = packed[column]
            else:
                out[column] = part.in_day_order(column, coded=coded)
        return pl.DataFrame(out)
    # by (contact, time, id), then stably by rep (a radix sort of small integers): the order
    # of one sort by (rep, contact, time, id), the contact order shared with the credit inputs
    by_rep = part.by_rep
    # the history on a narrow frame in (rep, contact, time) order; every column is then
    # gathered once, straight into the final (day) order. Text columns move as small integer
    # codes and are spelled out at the end from their few distinct values (a random gather of
    # millions of strings costs ~5x more than the codes and the spelling together).
    # The reps in that order are sorted: counted, not gathered (nulls first, as 0)
    rep = np.repeat(np.arange(part.rep_count.size), part.rep_count)
    contact = part.in_order("contact")[by_rep]
    same = np.r_[False, (rep[1:] == rep[:-1]) & (contact[1:] == contact[:-1])] & (contact > 0)
    at = pl.Series(part.rep_order)  # (a frame indexed by a numpy array gathers ~7x slower)
    narrow = pl.DataFrame([touches["ts"].gather(at), part.day_by_rep, pl.Series("_same", same)])
    history = narrow.select(
        gap_days=pl.when("_same").then(
            (pl.col("ts") - pl.col("ts").shift(1)).dt.total_seconds() / 86_400
        ),
        previous_day=pl.when("_same").then(pl.col("day").shift(1)),
    )
    kind = part.in_order("activity_type")[by_rep]
    previous_kind = np.full(len(kind), -1, kind.dtype)  # the previous row's, if the same
    np.copyto(previous_kind[1:], kind[:-1], where=same[1:])
    # then stably by day: (day, rep, contact, time, id), the touch frame's order too when
    # every touch has a contact (the touches' columns gathered once for both)
    by_day = part.rep_day
    out = {}
    for column in PRACTICE_COLUMNS:
        if column == "previous_type":
            out[column] = spell(kinds, previous_kind[by_day], column)
        elif column in history.columns:
            out[column] = history[column].gather(by_day)
        else:
            out[column] = part.in_day_order(column, coded=coded)
    return pl.DataFrame(out)


def _packed_history(part: PartTouches) -> dict[str, Any] | None:
    """:func:`build_practice_facts`' history in its final order: ``gap_days`` and
    ``previous_day`` (as its frames make them) and ``previous_type``'s codes (-1: none), by two
    gathers of one int64 per touch instead of six (:func:`_gathered_packed`): each touch's
    whole seconds since the first, contact and type code moved into the (rep, contact, time,
    id) order, the previous touch of the same rep and contact found there, and the gap's
    seconds, the previous day and type moved into the final order. None (the frames' path)
    when a time is null or not whole seconds (:func:`_whole_seconds`), or the fields pass 63
    bits."""
    seconds = part.seconds_in_order()
    if seconds is None:
        return None
    fields = [seconds, part.in_order("contact"), part.in_order("activity_type") + 1]  # 0: none
    del seconds
    moved = _gathered_packed(fields, part.by_rep)  # (rep, contact, time, id): reps counted
    if moved is None:
        return None
    seconds, contact, kind = moved
    del moved
    day, low_day = _from_one(part.day_by_rep)  # 0: none
    rep = np.repeat(np.arange(part.rep_count.size), part.rep_count)
    same = np.zeros(len(rep), bool)  # the previous touch is of the same rep and contact
    same[1:] = (rep[1:] == rep[:-1]) & (contact[1:] == contact[:-1]) & (contact[1:] > 0)
    del rep, contact
    gap = np.zeros(len(same), np.int64)  # the gap's seconds + 1, the previous day and type
    gap[1:] = seconds[1:] - seconds[:-1] + 1
    del seconds
    before = [gap, np.zeros(len(same), np.int64), np.zeros(len(same), np.int64)]
    before[1][1:] = day[:-1]
    before[2][1:] = kind[:-1]
    del gap, day, kind
    for values in before:
        values *= same  # 0 unless the previous touch is of the same rep and contact
    moved = _gathered_packed(before, part.rep_day)
    if moved is None:
        return None
    gap, previous_day, previous = moved
    previous -= 1
    # divided as the frames divide total_seconds() (Polars multiplies by the reciprocal)
    gap_days = pl.select(pl.lit(pl.Series("gap_days", gap - 1)) / 86_400).to_series()
    dated = pl.Series("previous_day", previous_day + (low_day - 1)).cast(pl.Int32).cast(pl.Date)
    return {
        "previous_type": previous,
        "gap_days": pl.select(pl.when(pl.Series(gap > 0)).then(gap_days)).to_series(),
        "previous_day": pl.select(pl.when(pl.Series(previous_day > 0)).then(dated)).to_series(),
    }


#: A ``Datetime`` unit's ticks in a second.
_PER_SECOND = {"ns": 1_000_000_000, "us": 1_000_000, "ms": 1_000}


def _whole_seconds(ts: pl.Series, ints: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """``ts``' integers ``ints`` (in any order) as whole seconds since the first: the
    seconds (int64), the first's integer and the unit's ticks a second; None when ``ts`` is
    not a ``Datetime``, is empty or holds a null, or a time is not a whole number of seconds
    after the first.

    >>> ts = pl.Series([2_000_000, 5_000_000]).cast(pl.Datetime("us"))
    >>> _whole_seconds(ts, ts.to_physical().to_numpy())
    (array([0, 3]), 2000000, 1000000)
    >>> later = ts + pl.Series([0, 1]).cast(pl.Duration("us"))
    >>> _whole_seconds(later, later.to_physical().to_numpy()) is None
    True
    """
    if not isinstance(ts.dtype, pl.Datetime) or not len(ints) or ts.null_count():
        return None
    per_second = _PER_SECOND[ts.dtype.time_unit]
    low = int(ints.min())
    seconds = ints - low
    if (seconds % per_second).any():
        return None
    seconds //= per_second
    return seconds, low, per_second


def _from_one(values: pl.Series) -> tuple[np.ndarray, int]:
    """A Boolean, Date or integer column's integers ``v`` as ``v - low + 1`` (int64; null:
    0) and ``low``, their least (0 when all are null): small non-negative fields for
    :func:`_gathered_packed`.

    >>> _from_one(pl.Series([7, None, 5]))
    (array([3, 0, 1]), 5)
    """
    physical = values.to_physical().cast(pl.Int64)
    low = int(physical.min() or 0)
    return (physical - (low - 1)).fill_null(0).to_numpy(), low


def _gathered_packed(fields: list[np.ndarray], order: np.ndarray) -> list[np.ndarray] | None:
    """``[field[order] for field in fields]`` (int64) by ONE gather: the fields, small
    non-negative integers, packed into one int64 per row (the first in the highest bits, each
    as wide as its largest value), gathered by ``order`` and taken apart (a random gather of
    2.6M rows costs 0.03-0.08 CPU s, the packing and unpacking a few sequential passes).
    None when the fields need more than 63 bits together. The arrays are not changed; the
    list is emptied once they are packed (a caller's temporaries let go before the gather).

    >>> _gathered_packed([np.array([3, 0, 1]), np.array([0, 5, 2])], np.array([2, 0]))
    [array([1, 3]), array([2, 0])]
    >>> _gathered_packed([np.array([1 << 40]), np.array([1 << 22])], np.array([0])) is None
    True
    """
    bits = [int(field.max(initial=0)).bit_length() for field in fields]
    if sum(bits) > 63:
        return None
    if not fields:
        return []
    packed = fields[0].astype(np.int64)
    for field, width in zip(fields[1:], bits[1:], strict=True):
        packed <<= width
        packed |= field
    fields.clear()
    packed = packed[order]
    moved = []
    for width in bits[:0:-1]:  # the last field in the lowest bits
        moved.append(packed & ((1 << width) - 1))
        packed >>= width
    moved.append(packed)
    return moved[::-1]


def _coded(values: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """The sorted distinct values of a text column and each row's number among them (-1 for
    null), as Int64. An ``Enum`` of sorted categories (the enrichment's rep columns) is
    numbered from its codes (no text hashed: 2.6M rows ~0.08 -> ~0.02 CPU s), the names its
    categories present."""
    if isinstance(values.dtype, pl.Enum):
        categories = values.dtype.categories
        if not categories.is_sorted():
            return _coded(values.cast(pl.String))
        held = values.to_physical().fill_null(categories.len()).to_numpy()
        present = np.flatnonzero(np.bincount(held, minlength=categories.len() + 1)[:-1])
        number = np.full(categories.len() + 1, -1, np.int64)  # null (the last) -1
        number[present] = np.arange(len(present))
        return categories.gather(pl.Series(present)), number[held]
    names = values.drop_nulls().unique().sort()
    codes = values.cast(pl.Enum(names)).to_physical().cast(pl.Int64).fill_null(-1)
    return names, codes.to_numpy()


def _is_text(dtype: Any) -> bool:
    """Whether a column of this type holds text (``String``, or ``Enum`` codes of text)."""
    return dtype == pl.String or isinstance(dtype, pl.Enum)


#: The least and most bits of :func:`_ranked_text`'s table of hashes, and its most rounds.
_SLOT_BITS = (12, 22)
_SLOT_ROUNDS = 24


def _ranked_text(values: pl.Series) -> tuple[pl.Series, np.ndarray] | None:
    """The sorted distinct values of a text column without nulls and each row's place among
    them (int64), as an ``Enum`` of them would number the rows, without a hash table of the
    text: each value's 64-bit hash is put in a table indexed by some of its bits (rows whose
    slot another value took go again, by other bits: a few rounds), so each distinct hash
    gets a number; the values named once per number are sorted, and every row is checked
    against its name (exact: None when two values share a hash, or the rounds run out).
    3.1M contact ids (165k distinct): ~0.45 -> ~0.25 CPU s.

    Examples
    --------
    >>> names, rank = _ranked_text(pl.Series(["b", "a", "b", "c"]))
    >>> names.to_list(), rank.tolist()
    (['a', 'b', 'c'], [1, 0, 1, 2])
    """
    n = values.len()
    if not n:
        return values, np.zeros(0, np.int64)
    hashed = values.hash(_TEXT_SEED).to_numpy()
    bits = min(max(n.bit_length() - 2, _SLOT_BITS[0]), _SLOT_BITS[1])
    mask = np.uint64((1 << bits) - 1)
    number = np.empty(n, np.int64)
    left = np.arange(n)
    distinct = 0
    for rnd in range(_SLOT_ROUNDS):
        if not len(left):
            break
        shift = np.uint64(max(64 - bits - 2 * rnd, 0))  # another slice of the bits each round
        slot = ((hashed >> shift) & mask).astype(np.int64)
        taken = np.zeros(1 << bits, np.uint64)
        taken[slot] = hashed  # one hash a slot (the last written)
        won = taken[slot] == hashed
        used = np.zeros(1 << bits, bool)
        used[slot[won]] = True
        dense = np.cumsum(used) - 1 + distinct
        number[left[won]] = dense[slot[won]]
        distinct += int(used.sum())
        left, hashed = left[~won], hashed[~won]
    else:
        if len(left):
            return None
    first = np.empty(distinct, np.int64)
    rows = np.arange(n - 1, -1, -1)
    first[number[rows]] = rows  # each number's first row (the last write)
    named = values.gather(pl.Series(first))
    by_name = named.arg_sort().to_numpy()
    place = np.empty(distinct, np.int64)
    place[by_name] = np.arange(distinct)
    rank = place[number]
    names = named.gather(pl.Series(by_name))
    if not (names.gather(pl.Series(rank)) == values).all():  # two values of one hash
        return None
    return names, rank


#: The seed of :func:`_ranked_text`'s hashes.
_TEXT_SEED = 0x5EED


def _numbered_text(values: pl.Series) -> tuple[pl.Series, np.ndarray] | None:
    """:func:`_ranked_text` of ids that are one prefix and a number of a fixed width
    (``CON008735``): the numbers, parsed from the text, rank the rows (a table over their
    range, no hash or sort of the text). None when the ids are not so (nulls, widths or
    prefixes that differ, numbers too sparse): every row is checked against its name and the
    names must sort as the numbers. 3.1M contact ids: ~0.22 -> ~0.11 CPU s.

    Examples
    --------
    >>> names, rank = _numbered_text(pl.Series(["C07", "C03", "C07", "C10"]))
    >>> names.to_list(), rank.tolist()
    (['C03', 'C07', 'C10'], [1, 0, 1, 2])
    >>> _numbered_text(pl.Series(["C7", "C10"])) is None  # widths differ: text order is not 7, 10
    True
    """
    n = values.len()
    if not n or values.null_count() or not _is_text(values.dtype):
        return None
    values = values.cast(pl.String)
    width = values.str.len_bytes()
    one = values[0]
    digits = len(one) - len(one.rstrip("0123456789"))
    if width.min() != width.max() or not 0 < digits <= 18:
        return None
    number = values.str.slice(-digits).cast(pl.Int64, strict=False)
    if number.null_count():
        return None
    at = number.to_numpy()
    low = int(at.min())
    span = int(at.max()) - low + 1
    if span > max(4 * n, 1 << 20):  # sparse numbers: a table would cost more than the hash
        return None
    at = at - low
    seen = np.zeros(span, bool)
    seen[at] = True
    dense = np.cumsum(seen) - 1
    rank = dense[at]
    row = np.empty(int(dense[-1]) + 1, np.int64)
    row[rank] = np.arange(n)  # a row of each number (the last written)
    names = values.gather(pl.Series(row))
    if not names.is_sorted() or not (names.gather(pl.Series(rank)) == values).all():
        return None  # another prefix, signs or spaces: the text does not sort as the numbers
    return names, rank


def _coded_by(
    values: pl.Series, group: np.ndarray, *, first: np.ndarray | None = None
) -> tuple[pl.Series, np.ndarray] | None:
    """:func:`_coded` of ``values`` when each ``group`` (codes from -1) holds one value (a
    rep's team): the groups' first values coded, each row's code its group's, checked
    against every row (a string comparison: ~3x less CPU than hashing every row); None
    when a group holds two values. ``first``: :func:`_first_rows` of ``group`` when known."""
    if not len(group):
        return None
    first = _first_rows(group) if first is None else first
    held = first >= 0
    names, codes = _coded(values.gather(pl.Series(first[held])))
    by_group = np.full(len(first), -1, np.int64)
    by_group[held] = codes
    code = by_group[group + 1]
    if not values.eq_missing(_spelled(names, code, values.name)).all():
        return None
    return names, code


def _first_rows(group: np.ndarray) -> np.ndarray:
    """Each group's first row (groups numbered from -1: at their number + 1), -1 for a
    number no row holds."""
    first = np.full(int(group.max(initial=-1)) + 2, -1, np.int64)
    rows = np.arange(len(group) - 1, -1, -1)
    first[group[rows] + 1] = rows  # the last write of each group is its first row
    return first


def _spelled(names: pl.Series, codes: np.ndarray, name: str) -> pl.Series:
    """The values of :func:`_coded`'s ``codes`` (null for -1), as a text column ``name``."""
    at = pl.Series(codes)
    return names.gather(pl.select(pl.when(at >= 0).then(at)).to_series()).rename(name)


def _enumed(names: pl.Series, codes: np.ndarray, name: str) -> pl.Series:
    """:func:`_spelled` as an ``Enum`` of ``names`` (the same values: the codes are its
    physical codes; ~10x less CPU than spelling millions of rows, and written to Parquet
    without hashing the text)."""
    enum = pl.Enum(names)
    physical = _ENUM_PHYSICAL[pl.Series(dtype=enum).to_physical().dtype]
    # the codes in the Enum's own width (no cast in Polars: ~2x less CPU), -1 as null (0
    # under it, as the cast left it)
    if codes.min(initial=0) >= 0:
        return pl.Series(name, codes.astype(physical)).cat.to(enum)
    values = pl.Series(name, np.maximum(codes, 0).astype(physical))
    return pl.select(pl.when(pl.Series(codes >= 0)).then(values)).to_series().cat.to(enum)


#: The numpy type of an ``Enum``'s physical codes.
_ENUM_PHYSICAL = {pl.UInt8: np.uint8, pl.UInt16: np.uint16, pl.UInt32: np.uint32}


def _present_enum(labels: pl.Series, at: pl.Series) -> pl.Series:
    """``labels.gather(at)`` as an ``Enum`` of the labels it holds (in their order in
    ``labels``), as text when two labels are equal."""
    number = at.fill_null(-1).to_numpy()
    present = np.flatnonzero(np.bincount(number + 1, minlength=labels.len() + 1)[1:])
    held = labels.gather(present)
    if held.n_unique() < held.len():
        return labels.gather(at)
    code = np.full(labels.len() + 1, -1, np.int64)  # each label's code, none (-1) last
    code[present] = np.arange(len(present))
    return _enumed(held, code[number], labels.name)


def _rank(values: pl.Series) -> pl.Series:
    """1 + the rank of each value among the sorted distinct values; 0 for null (Int64)."""
    distinct = values.drop_nulls().unique().sort()
    return values.cast(pl.Enum(distinct)).to_physical().cast(pl.Int64).fill_null(-1) + 1


def _ties_by_id(order: np.ndarray, keys: pl.DataFrame, ids: pl.Series) -> np.ndarray:
    """``order`` with each run of rows equal on ``keys`` put in ``ids`` order (nulls first)."""
    g = keys["g"].to_numpy()[order]
    t = keys["t"].to_numpy()[order]
    tie = np.r_[False, (g[1:] == g[:-1]) & (t[1:] == t[:-1])]
    return _tied_by_id(order, tie, ids)


def _tied_by_id(order: np.ndarray, tie: np.ndarray, ids: pl.Series) -> np.ndarray:
    """``order`` with each run of rows that ``tie`` (True: equal to the row before in
    ``order``) put in ``ids`` order (nulls first)."""
    if not tie.any():
        return order
    start = tie.copy()
    start[:-1] |= tie[1:]  # every row of a run: the first is not a tie with its predecessor
    at = np.flatnonzero(start)
    run = np.cumsum(~tie)[at]
    tied = pl.DataFrame({"run": run, "id": ids.gather(order[at]), "row": order[at]})
    fixed = tied.sort("run", "id", nulls_last=False, maintain_order=True)["row"].to_numpy()
    out = order.copy()
    out[at] = fixed
    return out


#: The practice codes' columns (:func:`write_practice_codes`), each a ``.npy`` file.
PRACTICE_CODE_COLUMNS: tuple[str, ...] = (
    "day",
    "rep",
    "type",
    "previous",
    "weekday",
    "hour",
    "gap_seconds",
    "previous_day",
)


#: Rows of the practice facts :func:`write_practice_codes` reads at a time.
_PRACTICE_SLICE = 1 << 19


def _save_in_order(path: Path, values: np.ndarray, order: np.ndarray) -> None:
    """``values[order]`` written to ``path`` as a ``.npy`` file, permuted a chunk at a time (no
    second copy of the column)."""
    with open(path, "wb") as out:
        header = {"descr": np.lib.format.dtype_to_descr(values.dtype)}
        header |= {"fortran_order": False, "shape": (order.size,)}
        np.lib.format.write_array_header_1_0(out, header)
        for at in range(0, order.size, _CHUNK):
            out.write(np.take(values, order[at : at + _CHUNK]).data)


def write_practice_codes(practice: pl.DataFrame | pl.LazyFrame, folder: Any) -> int:
    """Write :func:`effortlens.deviance.practice_facts` as integer codes, one ``.npy`` per
    column (:data:`PRACTICE_CODE_COLUMNS`), sorted by day, then rep: what
    :func:`effortlens.deviance.what_differs_coded` counts a period's touches from (a slice
    of the days, a mask of the compared reps, ``numpy.bincount``), instead of grouping the
    period's rows of text by Polars.

    - ``day`` and ``previous_day``: days since 1970-01-01 (int32; the rep's previous touch on
      the contact, -2**31 for none);
    - ``rep``: the rep's row in ``rep.keys.parquet`` (``rep_id``, ``team``, ``segment``,
      ``role``: a filter on them is applied to that small table; int16 up to 32,767 reps);
    - ``type`` and ``previous``: the activity type's (the previous touch's) row in
      ``type.keys.parquet`` (``activity_type``, sorted; the number of types stands for
      none), uint8 up to 254 types;
    - ``weekday``, ``hour``: int8 as in the facts, -1 for none;
    - ``gap_seconds``: the days since the previous touch in whole seconds (``gap_days`` is
      exactly ``gap_seconds / 86400``), -1 for none; int32 when it fits, else int64.

    Touches without a day are left out (no period holds them; a view without a period reads
    the per-rep cells). Returns the number of touches written.

    Examples
    --------
    >>> write_practice_codes(practice_facts(enriched.activities), build / "practice_codes")
    ... # doctest: +SKIP
    8583700
    """
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scan = practice.lazy()
    n_all = scan.select(pl.len()).collect().item()
    slices = [scan.slice(at, _PRACTICE_SLICE) for at in range(0, n_all, _PRACTICE_SLICE)]

    def distinct(*exprs: pl.Expr) -> pl.DataFrame:
        # of the touches with a day, a slice at a time (never a whole text column held)
        parts = [s.filter(pl.col("day").is_not_null()).select(*exprs).unique() for s in slices]
        schema = scan.select(*exprs).collect_schema()
        return pl.concat([pl.DataFrame(schema=schema), *(p.collect() for p in parts)]).unique()

    dated = np.empty(0, dtype=bool)

    def column(expr: pl.Expr, dtype: Any) -> np.ndarray:
        # a slice at a time (every slice in the same row order), cast to its small integer
        # type in the query (a text column to its Enum code as it is read): what is held is
        # the written column's bytes, not a string or a float (100M touches)
        out = np.empty(n_all, dtype=pl.select(pl.lit(0, dtype)).to_series().to_numpy().dtype)
        for at, part in zip(range(0, n_all, _PRACTICE_SLICE), slices, strict=True):
            values = part.select(expr.to_physical().cast(dtype)).collect().to_series()
            out[at : at + len(values)] = values.to_numpy()
        return out if dated.all() else out[dated]

    reps = (
        distinct(pl.col("rep_id", "team", "segment", "role"))
        .sort(pl.all(), nulls_last=True)
        .group_by("rep_id", maintain_order=True)
        .agg(pl.all().first())  # one row a rep (the facts have one)
        .sort("rep_id", nulls_last=True)
    )
    reps.write_parquet(folder / "rep.keys.parquet")
    known = reps["rep_id"].drop_nulls()
    rep_type = pl.Int16 if reps.height <= np.iinfo(np.int16).max else pl.Int32
    dated = np.ones(n_all, dtype=bool)
    day = column(pl.col("day").to_physical().fill_null(np.iinfo(np.int32).min), pl.Int32)
    dated = day != np.iinfo(np.int32).min
    day = day[dated]
    # a null rep: the last row of the keys
    rep = column(
        # strict=False: a touch without a day (left out below) may name a rep no dated one does
        pl.col("rep_id").cast(pl.Enum(known), strict=False).to_physical().fill_null(known.len()),
        rep_type,
    )
    order = day_rep_order(day, rep)  # by day, then rep, ties in the facts' order
    if order.size < 2**31:
        order = order.astype(np.int32)
    rows = order.size

    def save(name: str, values: np.ndarray) -> None:
        _save_in_order(folder / f"{name}.npy", values, order)

    save("rep", rep)
    save("day", day)
    del rep, day
    types = (
        pl.concat(
            [
                distinct(pl.col(c).drop_nulls().alias("activity_type"))
                for c in ("activity_type", "previous_type")
            ]
        )
        .unique()
        .to_series()
        .sort()
    )
    types.to_frame().write_parquet(folder / "type.keys.parquet")
    kind = pl.UInt8 if types.len() < 255 else pl.UInt16
    for name, source in (("type", "activity_type"), ("previous", "previous_type")):
        code = pl.col(source).cast(pl.Enum(types), strict=False).to_physical()
        code = code.fill_null(types.len())  # strict=False: as the reps' codes above
        save(name, column(code, kind))
    for name in ("weekday", "hour"):
        save(name, column(pl.col(name).fill_null(-1), pl.Int8))
    seconds = (pl.col("gap_days") * 86_400).round()
    top = scan.select(seconds.max()).collect(engine="streaming").item()
    wide = pl.Int32 if top is None or top < 2**31 else pl.Int64
    save("gap_seconds", column(seconds.fill_null(-1), wide))
    none = np.iinfo(np.int32).min
    save("previous_day", column(pl.col("previous_day").to_physical().fill_null(none), pl.Int32))
    return rows


#: The practice codes' columns a partition keeps (:func:`practice_part_codes`) with their
#: types there: codes among the partition's own values (-1: none), ``gap_seconds`` as int64
#: (the build's type is chosen from every partition's largest).
_PART_CODE_TYPES: dict[str, Any] = {
    "day": np.int32,
    "rep": np.int32,
    "type": np.int32,
    "previous": np.int32,
    "weekday": np.int8,
    "hour": np.int8,
    "gap_seconds": np.int64,
    "previous_day": np.int32,
}


def _present_codes(values: pl.Series, names: pl.Series) -> np.ndarray:
    """Each row's place among ``names`` (sorted text), -1 for null: ``values`` is an ``Enum``
    (its categories looked up once, the rows moved as codes) or text."""
    if isinstance(values.dtype, pl.Enum):
        lookup = values.dtype.categories.cast(pl.Enum(names), strict=False).to_physical()
        physical = values.to_physical()
        codes = lookup.cast(pl.Int32).gather(physical)
    else:
        codes = values.cast(pl.Enum(names), strict=False).to_physical().cast(pl.Int32)
    return codes.fill_null(-1).to_numpy()


def _distinct_rows(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``frame.select(columns).unique()`` (rows in another order): when every column is an
    ``Enum``, from one integer per row made of their codes (the distinct integers' first
    rows: 2.6M practice facts ~0.1 -> ~0.04 CPU s), else by ``unique``."""
    types = [frame.schema[c] for c in columns]
    widths = [t.categories.len() + 1 if isinstance(t, pl.Enum) else 0 for t in types]
    if not frame.height or not all(widths) or math.prod(widths) >= 2**63:
        return frame.select(columns).unique()
    key = np.zeros(frame.height, np.int64)
    for column, width in zip(columns, widths, strict=True):
        key *= width
        key += frame[column].to_physical().fill_null(width - 1).to_numpy()  # null: the last
    return frame.select(columns)[pl.Series(key).arg_unique()]


def practice_part_codes(practice: pl.DataFrame, folder: Any) -> int:
    """One partition's part of :func:`write_practice_codes` (a partitioned build's pass 1),
    merged by :func:`merge_practice_codes`: its touches with a day, in its order, as codes
    among its own values (``rep``: its sorted reps, ``type`` and ``previous``: its sorted
    activity types, -1 for none; ``<column>.npy``), its distinct (rep, team, segment, role)
    (``rep.keys.parquet``) and types (``type.keys.parquet``), and the largest gap in seconds
    of all its touches (``top.json``). ``practice``: its practice facts, text as ``Enum``
    codes or as text. Nothing is hashed or sorted but the few distinct values. Returns the
    touches written."""
    import json
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seconds = (pl.col("gap_days") * 86_400).round()
    top = practice.select(seconds.max()).item()
    (folder / "top.json").write_text(json.dumps(top))
    dated = (
        practice.filter(pl.col("day").is_not_null()) if practice["day"].null_count() else practice
    )
    reps = _distinct_rows(dated, ["rep_id", "team", "segment", "role"])
    reps = reps.with_columns(pl.all().cast(pl.String))
    reps.write_parquet(folder / "rep.keys.parquet")
    known = reps["rep_id"].drop_nulls().unique().sort()
    types = (
        pl.concat(
            [
                dated.select(pl.col(c).drop_nulls().unique().cast(pl.String).alias("activity_type"))
                for c in ("activity_type", "previous_type")
            ]
        )
        .to_series()
        .unique()
        .sort()
    )
    types.to_frame().write_parquet(folder / "type.keys.parquet")
    columns = {
        "day": dated["day"].to_physical(),
        "rep": _present_codes(dated["rep_id"], known),
        "type": _present_codes(dated["activity_type"], types),
        "previous": _present_codes(dated["previous_type"], types),
        "weekday": dated["weekday"].fill_null(-1),
        "hour": dated["hour"].fill_null(-1),
        "gap_seconds": dated.select(seconds.fill_null(-1).cast(pl.Int64)).to_series(),
        "previous_day": dated["previous_day"].to_physical().fill_null(np.iinfo(np.int32).min),
    }
    for name, values in columns.items():
        if isinstance(values, pl.Series):
            values = values.to_numpy()
        np.save(folder / f"{name}.npy", np.asarray(values).astype(_PART_CODE_TYPES[name]))
    return dated.height


def _ascending(values: np.ndarray) -> bool:
    """Whether ``values`` never go down."""
    return len(values) < 2 or bool(np.all(values[1:] >= values[:-1]))


def _merged_by_day(
    parts: list[Path], folder: Path, luts: dict[str, list[np.ndarray]], dtypes: dict[str, Any]
) -> int:
    """The tail of :func:`merge_practice_codes` when every partition's rows are by day: a
    day at a time, the day's rows of every partition (a slice of each, in partition order)
    put in rep order by a stable sort of their reps (a radix sort of 16-bit codes, in the
    cache), each column's day written as it is gathered: the same order as one stable sort
    of (day, rep) over the partitions end to end, without that sort or any whole column held
    (100M: 81.8M touches, 11.5 -> 6.0 CPU s). ``luts``: each partition's code + 1 -> the
    build's (rep, type, previous); ``dtypes``: each column's written type."""
    days = [np.load(p / "day.npy", mmap_mode="r") for p in parts]
    rows = sum(len(d) for d in days)
    rep = [
        np.take(luts["rep"][k], np.load(p / "rep.npy").astype(np.intp) + 1)
        for k, p in enumerate(parts)
    ]
    held = [d for d in days if len(d)]
    spans = []  # a day's number, its slice of each partition, its rows' order
    if held:  # the days some partition holds (not every day between: one stray date is far)
        present = np.unique(np.concatenate([d[np.r_[True, d[1:] != d[:-1]]] for d in held]))
        firsts = np.stack([np.searchsorted(d, present.astype(d.dtype), "left") for d in days])
        lasts = np.stack([np.searchsorted(d, present.astype(d.dtype), "right") for d in days])
        for j in range(len(present)):
            starts, stops = firsts[:, j].tolist(), lasts[:, j].tolist()
            cut = [
                (k, lo, hi) for k, (lo, hi) in enumerate(zip(starts, stops, strict=True)) if hi > lo
            ]
            if cut:
                reps = np.concatenate([rep[k][lo:hi] for k, lo, hi in cut])
                spans.append((int(present[j]), cut, np.argsort(reps, kind="stable")))
    for name, dtype in dtypes.items():
        pieces = (
            rep if name == "rep" else [np.load(p / f"{name}.npy", mmap_mode="r") for p in parts]
        )
        lut = None if name == "rep" else luts.get(name)
        with open(folder / f"{name}.npy", "wb") as out:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype))}
            header |= {"fortran_order": False, "shape": (rows,)}
            np.lib.format.write_array_header_1_0(out, header)
            for day, cut, order in spans:
                if name == "day":
                    out.write(np.full(len(order), day, dtype=dtype).data)
                    continue
                if lut is None:
                    values = np.concatenate([pieces[k][lo:hi] for k, lo, hi in cut])
                else:
                    values = np.concatenate(
                        [np.take(lut[k], pieces[k][lo:hi].astype(np.intp) + 1) for k, lo, hi in cut]
                    )
                out.write(np.take(values, order).astype(dtype, copy=False).data)
        del pieces
    return rows


def merge_practice_codes(parts: list[Any], folder: Any) -> int:
    """:func:`write_practice_codes` of a partitioned build's practice facts from each
    partition's codes (:func:`practice_part_codes`, ``parts`` in partition order): the same
    files, byte for byte. The key tables are the partitions' distinct keys put together as
    :func:`write_practice_codes` puts the facts' together; each partition's codes are
    renumbered among them by a lookup of its few values; the rows, in partition order, are
    put by day, then rep as there (:func:`day_rep_order`). No text is read or hashed (100M:
    81.8M touches, ~30 s of text reads and hashes before). Returns the touches written."""
    import json
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = [Path(p) for p in parts]
    strings = {c: pl.String for c in ("rep_id", "team", "segment", "role")}
    reps = (
        pl.concat(
            [
                pl.DataFrame(schema=strings),
                *(pl.read_parquet(p / "rep.keys.parquet") for p in parts),
            ]
        )
        .unique()
        .sort(pl.all(), nulls_last=True)
        .group_by("rep_id", maintain_order=True)
        .agg(pl.all().first())  # one row a rep (the facts have one)
        .sort("rep_id", nulls_last=True)
    )
    reps.write_parquet(folder / "rep.keys.parquet")
    known = reps["rep_id"].drop_nulls()
    rep_type = np.int16 if reps.height <= np.iinfo(np.int16).max else np.int32
    types = (
        pl.concat(
            [
                pl.DataFrame(schema={"activity_type": pl.String}),
                *(pl.read_parquet(p / "type.keys.parquet") for p in parts),
            ]
        )
        .unique()
        .to_series()
        .sort()
    )
    types.to_frame().write_parquet(folder / "type.keys.parquet")
    kind = np.uint8 if types.len() < 255 else np.uint16
    tops = [json.loads((p / "top.json").read_text()) for p in parts]
    tops = [t for t in tops if t is not None]
    wide = np.int32 if not tops or max(tops) < 2**31 else np.int64

    def lookup(names: pl.Series, among: pl.Series) -> np.ndarray:
        # a partition's code + 1 (0: none) -> the build's code (none: after every value)
        found = names.cast(pl.Enum(among)).to_physical().cast(pl.Int64).to_numpy()
        return np.r_[among.len(), found]

    luts: dict[str, list[np.ndarray]] = {"rep": [], "type": []}
    for p in parts:
        local = pl.read_parquet(p / "rep.keys.parquet")["rep_id"].drop_nulls().unique().sort()
        luts["rep"].append(lookup(local, known).astype(rep_type))
        luts["type"].append(
            lookup(pl.read_parquet(p / "type.keys.parquet").to_series(), types).astype(kind)
        )
    luts["previous"] = luts["type"]

    def column(name: str, dtype: Any) -> np.ndarray:
        # every partition's column end to end, in the build's type (renumbered codes)
        pieces = [np.load(p / f"{name}.npy", mmap_mode="r") for p in parts]
        out = np.empty(sum(len(x) for x in pieces), dtype=dtype)
        at = 0
        for k, piece in enumerate(pieces):
            if name in luts:
                out[at : at + len(piece)] = np.take(luts[name][k], piece.astype(np.intp) + 1)
            else:
                out[at : at + len(piece)] = piece
            at += len(piece)
        return out

    dtypes = {
        "rep": rep_type,
        "day": np.int32,
        "type": kind,
        "previous": kind,
        "weekday": np.int8,
        "hour": np.int8,
        "gap_seconds": wide,
        "previous_day": np.int32,
    }
    if all(_ascending(np.load(p / "day.npy", mmap_mode="r")) for p in parts):
        return _merged_by_day(parts, folder, luts, dtypes)
    day, rep = column("day", np.int32), column("rep", rep_type)
    # by day, then rep, ties in the facts' order (day_rep_order's): each partition's rows
    # are by day, then rep already, so numpy's stable sort (a timsort) merges their runs
    key = day.astype(np.int64)
    if len(key):
        key -= int(key.min())
        key *= int(rep.max()) + 1
        key += rep
    order = np.argsort(key, kind="stable")
    del key
    if order.size < 2**31:
        order = order.astype(np.int32)
    rows = order.size

    def save(name: str, values: np.ndarray) -> None:
        _save_in_order(folder / f"{name}.npy", values, order)

    save("rep", rep)
    save("day", day)
    del rep, day
    for name, dtype in (
        ("type", kind),
        ("previous", kind),
        ("weekday", np.int8),
        ("hour", np.int8),
        ("gap_seconds", wide),
        ("previous_day", np.int32),
    ):
        save(name, column(name, dtype))
    return rows
