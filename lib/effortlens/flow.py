"""Buyer-journey flow: where deals convert, leak, stall, and which stage moves buyers verified.

Reads ``opportunities`` and ``stage_history`` only (buyer actions if there are any), so it works
on pipeline-only data. Stages are ``settings.stages``, in order.

Definitions
-----------
- **Reached**: a deal reached stage *k* when it entered *k*, or skipped it: it entered a stage
  before *k* and one after. Stages before a deal's first recorded stage were not reached (the
  deal joined the pipeline there). Backward moves do not undo progress: a deal is placed at
  the *furthest* stage it entered. ``skipped`` counts deals that reached *k* without an entry.
- **Conversion** of *k*: deals that reached *k* and then reached a later stage, or were won,
  over deals that reached *k*. **Leakage**: deals whose furthest stage is *k* and that closed
  ``lost`` or ``no_decision``, over deals that reached *k*; ``no_decision_rate`` the
  ``no_decision`` part of it. The rest of the deals that reached *k* are still open there
  (``open_share``), so conversion + leakage + open share = 1.
- **Time in stage**: each stage entry lasts until the deal's next stage entry, else its close;
  a deal still open is *censored* at ``as_of`` (it has stayed at least that long). Median and
  p90 are Kaplan–Meier estimates: the first duration by which half (90%) of the stays have
  ended, counting censored stays as at risk until their censoring time. They are null when
  that share of stays had not ended by the longest observed stay.
- **Blockage**: an open deal is blocked when the age of its current (latest) stage entry at
  ``as_of`` exceeds that stage's *historical* p90: the 90th percentile (linear
  interpolation) of the stays in that stage, over all deals, that have ended. Stays still
  running are left out of this bar on purpose, so deals stuck for good cannot raise it.
- **Verification** of stage *moves*: every entry after a deal's first (its creation in the
  pipeline, which no buyer verifies) is a move. A move is verified when it names a
  ``verifier_action_id``, or when a buyer verifier action (``is_verifier``, else
  ``settings.verifiers``) on the same deal falls within ``settings.attribution_window_days``
  before the entry (inclusive) and after the deal's previous entry: the evidence must have
  been earned in the stage being left, so one action never backs two moves.
  ``verified_recorded`` counts the moves verified by ``verifier_action_id`` alone.
- ``as_of`` defaults to the latest timestamp in ``opportunities`` and ``stage_history``.
- **Derived stage history** (entries with ``derived`` true, made from each deal's current
  stage by an adapter): such a deal reaches only the stages it entered; no time in stage,
  move, verification or blockage is measured from its entries. A loss is placed where the
  export says it was: at the deal's current (last) stage when the export gives one — the
  first stage included, so a deal lost at the first stage leaks there — while a loss whose
  stage the export does not give has no entry and counts as ``lost_stage_unknown`` on the
  first stage's row, never as a leak (see :func:`flow_table`).

Examples
--------
>>> from effortlens.flow import flow_table
>>> flow_table(enriched)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from effortlens.coverage import stage_path_of
from effortlens.normal import normal_sf
from effortlens.settings import Settings

if TYPE_CHECKING:
    from effortlens.enrich import Enriched

LEAK_OUTCOMES: tuple[str, ...] = ("lost", "no_decision")
_DAY_SECONDS = 86_400
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class _FlowData:
    opportunities: pl.DataFrame
    stage_history: pl.DataFrame | None  # None only with stays given (stays_under)
    reps: pl.DataFrame | None
    actions: pl.DataFrame | None
    settings: Settings


def _flow_data(
    source: Enriched | dict[str, pl.DataFrame],
    settings: Settings | None,
    *,
    needs: tuple[str, ...] = ("opportunities", "stage_history"),
) -> _FlowData:
    """Accept an ``Enriched`` or a dict of canonical tables (then ``settings`` is required)."""
    if isinstance(source, dict):
        tables = source
        actions = tables.get("buyer_actions")
    else:
        tables = source.tables
        actions = source.actions
        settings = settings or source.settings
    if settings is None:
        raise ValueError("flow needs settings (settings.stages) when given plain tables")
    for name in needs:
        if tables.get(name) is None:
            raise ValueError(f"flow needs the {name} table")
    if actions is not None and actions.is_empty():
        actions = None
    return _FlowData(
        opportunities=tables["opportunities"],
        stage_history=tables.get("stage_history"),
        reps=tables.get("reps"),
        actions=actions,
        settings=settings,
    )


def _by_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _as_of(data: _FlowData, as_of: datetime | None) -> datetime:
    if as_of is not None:
        return as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    latest = [
        data.stage_history["entered_ts"].max(),
        data.opportunities["created_ts"].max(),
        data.opportunities["close_ts"].max(),
    ]
    latest = [t for t in latest if t is not None]
    return max(latest) if latest else datetime.now(UTC)


def _stage_order(settings: Settings) -> pl.DataFrame:
    return _stage_frame(tuple(settings.stages))


@functools.lru_cache(maxsize=16)
def _stage_frame(stages: tuple[str, ...]) -> pl.DataFrame:
    """The stages and their order (made once per list of stages: a draw joins it ~8 times)."""
    return pl.DataFrame(
        {"stage": list(stages), "stage_index": range(len(stages))},
        schema={"stage": pl.String, "stage_index": pl.Int32},
    )


def _deals(data: _FlowData, by: list[str]) -> pl.DataFrame:
    """One row per opportunity: owner, outcome, close time and the ``by`` columns."""
    deals = data.opportunities.select("opportunity_id", "rep_id", "outcome", "close_ts")
    extra = [c for c in by if c not in deals.columns]
    if extra:
        if data.reps is None or any(c not in data.reps.columns for c in extra):
            raise ValueError(f"flow by {extra}: not columns of opportunities or reps")
        deals = deals.join(data.reps.select("rep_id", *extra), on="rep_id", how="left")
    return deals


def _days(end: pl.Expr, start: pl.Expr) -> pl.Expr:
    return (end - start).dt.total_seconds() / _DAY_SECONDS


def _verifier_rows(actions: pl.DataFrame | pl.LazyFrame, settings: Settings):
    """The buyer verifiers on a deal among ``actions`` (``is_verifier``, else the settings')."""
    return actions.filter(_is_verifier(actions.collect_schema().names(), settings))


def _is_verifier(names: list[str], settings: Settings) -> pl.Expr:
    """Whether an action is a buyer verifier on a deal (:func:`_verifier_rows`)."""
    in_list = pl.col("action_type").is_in(list(settings.verifiers))
    is_verifier = pl.col("is_verifier").fill_null(in_list) if "is_verifier" in names else in_list
    return pl.col("opportunity_id").is_not_null() & is_verifier


#: Columns of :func:`verifier_facts`: what flow reads of a verifier, and what a filter reads.
VERIFIER_COLUMNS: tuple[str, ...] = (
    "opportunity_id",
    "ts",
    "action_type",
    "is_verifier",
    "rep_id",
    "day",
)


def verifier_facts(actions: pl.DataFrame | pl.LazyFrame, *, settings: Settings) -> pl.LazyFrame:
    """The buyer actions the flow reads (verifiers on a deal), with the columns a page filter
    reads: computed once by the build, so that a journey page never reads every action.

    :func:`flow_table`, :func:`stage_flags` and :func:`blocked_deals` of a view whose buyer
    actions are these, filtered as the view's (:func:`with_verifiers`), equal those of the
    view itself: they read nothing else of the actions.

    Examples
    --------
    >>> verifier_facts(enriched.lazy("actions"), settings=enriched.settings)  # doctest: +SKIP
    """
    names = actions.collect_schema().names()
    return _verifier_rows(actions.lazy(), settings).select(
        c for c in VERIFIER_COLUMNS if c in names
    )


def with_verifiers(view: Enriched, enriched: Enriched, flt) -> Enriched:
    """``view`` (``enriched`` filtered by ``flt``) whose buyer actions are only the build's
    verifier facts under the same filter: what the flow functions read, without reading
    every action. ``view`` itself when ``enriched`` has no such facts.

    Examples
    --------
    >>> flow_table(with_verifiers(state.view, state.enriched, state.filter))  # doctest: +SKIP
    """
    from effortlens.enrich import precomputed
    from effortlens.filters import filter_actions

    verifiers = precomputed(enriched, "verifiers")
    if verifiers is None:
        return view
    actions = filter_actions(enriched.replace(actions=verifiers), flt)
    return view.replace(actions=actions.lazy())


def _verified_entries(data: _FlowData, entries: pl.DataFrame) -> pl.DataFrame:
    """``entries`` + ``verified_by``: ``verifier_action_id``, ``buyer_action`` or null."""
    recorded = pl.col("verifier_action_id").is_not_null()
    if data.actions is None:
        return entries.with_columns(
            verified_by=pl.when(recorded).then(pl.lit("verifier_action_id"))
        )
    verifiers = (
        _verifier_rows(data.actions, data.settings)
        .select("opportunity_id", verifier_ts=pl.col("ts"))
        .sort("opportunity_id", "verifier_ts")
    )
    # entries arrive sorted by (opportunity_id, entered_ts); the latest verifier at or before
    # the entry is the one to test against the previous entry
    matched = entries.join_asof(
        verifiers,
        left_on="entered_ts",
        right_on="verifier_ts",
        by="opportunity_id",
        strategy="backward",
        tolerance=timedelta(days=data.settings.attribution_window_days),
        check_sortedness=False,  # both sorted by (opportunity_id, time) just above
    )
    earned_in_stage = pl.col("verifier_ts").is_not_null() & (
        pl.col("previous_ts").is_null() | (pl.col("verifier_ts") > pl.col("previous_ts"))
    )
    return matched.with_columns(
        verified_by=pl.when(recorded)
        .then(pl.lit("verifier_action_id"))
        .when(earned_in_stage)
        .then(pl.lit("buyer_action"))
    ).drop("verifier_ts")


def stage_stays(
    source: Enriched | dict[str, pl.DataFrame],
    *,
    settings: Settings | None = None,
    by: str | Sequence[str] | None = None,
    as_of: datetime | None = None,
) -> pl.DataFrame:
    """Every stage entry with how long it lasted and whether a buyer verified it.

    Parameters
    ----------
    source
        An :class:`effortlens.enrich.Enriched`, or a dict of canonical tables with at least
        ``opportunities`` and ``stage_history`` (``reps`` for owner columns in ``by``,
        ``buyer_actions`` for verification by actions).
    settings
        Required with a dict of tables; defaults to the enriched load's.
    by
        Deal-owner columns to carry (``"team"``, ``"segment"``, ``"rep_id"``...).
    as_of
        When open deals are censored (default: the latest timestamp in the data).

    Returns
    -------
    pl.DataFrame
        ``opportunity_id``, ``by`` columns, ``stage``, ``stage_index``, ``entered_ts``,
        ``ended_ts`` (next entry, else close, else ``as_of``), ``days`` (duration),
        ``ended`` (False = censored: still open), ``outcome``, ``move`` (False for the deal's
        first entry), ``verifier_action_id``, ``verified_by`` (``verifier_action_id``,
        ``buyer_action`` or null), ``verified`` and ``derived`` (the deal's stage path was
        derived from its current stage: ``days`` is then not a time in stage); entries whose
        stage is not in the settings are left out.

    Examples
    --------
    >>> stays = stage_stays(tables, settings=load_settings(), by="team")  # doctest: +SKIP
    """
    data = _flow_data(source, settings)
    return _stays(data, _by_list(by), _as_of(data, as_of))


def _derived_flag(history: pl.DataFrame, *, assume: bool = False) -> pl.Expr:
    """Each entry's ``derived`` flag; ``assume`` where it is empty or the column is absent."""
    if "derived" in history.columns:
        return pl.col("derived").fill_null(value=assume)
    return pl.lit(assume, dtype=pl.Boolean)


#: The last stays computed, with what they were computed from: a journey page draws the flow,
#: the blocked deals and the stage flags from the same deals, and would sort them three times.
_LAST_STAYS: list[tuple[tuple, pl.DataFrame]] = []
_KEEP_STAYS = 2
#: The stays last given (:func:`stays_under`), found by their frame: what their runs give.
_LAST_GIVEN: list[Stays] = []
#: Their deal x stage rows as numpy arrays (:func:`_expanded`).
_LAST_EXPANDED: list[tuple[Stays, tuple]] = []


def _given_of(stays: pl.DataFrame) -> Stays | None:
    """The :class:`Stays` whose frame ``stays`` is (the same object), with their runs."""
    if _LAST_GIVEN and _LAST_GIVEN[0].frame is stays and _LAST_GIVEN[0].runs is not None:
        return _LAST_GIVEN[0]
    return None


def forget_stays() -> None:
    """Drop the stays kept for the draw just made (a page's next draw filters new frames, so
    they would never be read again): a kernel then does not hold them while it waits for its
    viewer (one row per stage entered: 597k rows, ~50 MB at 10M activities).

    Examples
    --------
    >>> forget_stays()
    """
    _LAST_STAYS.clear()
    _LAST_THRESHOLDS.clear()  # keyed by the stays they were computed from
    _LAST_BLOCKED.clear()  # so are the blocked deals
    _LAST_REACHED.clear()  # so are the deal x stage rows
    _LAST_GIVEN.clear()
    _LAST_EXPANDED.clear()
    _LAST_IN_ORDER.clear()


def _stays(
    data: _FlowData,
    by_cols: list[str],
    cutoff: datetime | None,
    *,
    assume_derived: bool = False,
    given: Stays | None = None,
) -> pl.DataFrame:
    if given is not None:  # the per-rep stays made by stays_under, with the owner's columns
        if by_cols == ["rep_id"]:
            if given.reached is not None and not (
                _LAST_REACHED and _LAST_REACHED[0][0] is given.frame
            ):
                _LAST_REACHED[:] = [(given.frame, (("rep_id",), False), given.reached)]
            _LAST_GIVEN[:] = [given]  # its frame's runs, read by _reached and the numpy paths
            return given.frame
        if data.reps is None:
            raise ValueError(f"flow by {by_cols}: given stays need the reps table")
        return _with_owner_columns(given.frame, data.reps, by_cols)
    frames = (data.opportunities, data.stage_history, data.reps, data.actions, data.settings)
    options = (tuple(by_cols), cutoff, assume_derived)
    per_rep = (("rep_id",), cutoff, assume_derived)  # what a split by owner columns extends
    base = None
    for (kept, kept_options), stays in _LAST_STAYS:
        if all(a is b for a, b in zip(kept, frames, strict=True)):
            if kept_options == options:
                return stays  # the same frames (not equal ones: the same objects) and options
            if kept_options == per_rep:
                base = stays
    extra = [c for c in by_cols if c != "rep_id"]
    if (
        base is not None
        and "rep_id" in by_cols
        and data.reps is not None
        and all(c in data.reps.columns and c not in data.opportunities.columns for c in extra)
        and data.reps["rep_id"].is_unique().all()
    ):  # the per-rep stays with the owner's columns: the same rows, in the same order
        stays = _with_owner_columns(base, data.reps, by_cols)
    else:
        stays = _computed_stays(data, by_cols, cutoff, assume_derived=assume_derived)
    _LAST_STAYS.insert(0, ((frames, options), stays))
    del _LAST_STAYS[_KEEP_STAYS:]
    return stays


def _with_owner_columns(base: pl.DataFrame, reps: pl.DataFrame, by_cols: list[str]):
    """The per-rep stays ``base`` with the owner's ``by_cols``: the same rows, in order."""
    extra = [c for c in by_cols if c != "rep_id"]
    return base.join(
        reps.select("rep_id", *extra), on="rep_id", how="left", maintain_order="left"
    ).select("opportunity_id", *by_cols, *base.columns[2:])


def _computed_stays(
    data: _FlowData, by_cols: list[str], cutoff: datetime, *, assume_derived: bool = False
) -> pl.DataFrame:
    stays = _uncensored_stays(data, by_cols, assume_derived=assume_derived)
    stays = stays.with_columns(
        ended_ts=pl.col("ended_ts").fill_null(pl.lit(cutoff).cast(stays.schema["entered_ts"]))
    ).with_columns(days=_days(pl.col("ended_ts"), pl.col("entered_ts")))
    return (  # still sorted by (opportunity_id, entered_ts, stage_index): joins keep the order
        _verified_entries(data, stays).select(
            "opportunity_id",
            *by_cols,
            "stage",
            "stage_index",
            "entered_ts",
            "ended_ts",
            "days",
            "ended",
            "outcome",
            "move",
            "verifier_action_id",
            "verified_by",
            verified=pl.col("verified_by").is_not_null(),
            derived="derived",
        )
    )


def _uncensored_stays(
    data: _FlowData, by_cols: list[str], *, assume_derived: bool = False
) -> pl.DataFrame:
    """The stays before censoring and verification: ``ended_ts`` null where the stay has not
    ended (a censored stay ends at ``as_of``), with ``previous_ts``, ``move``, ``ended`` and
    each deal's ``derived`` flag; sorted by (opportunity_id, entered_ts, stage_index)."""
    deals = _deals(data, by_cols)
    history = data.stage_history
    entries = (
        history.select(
            "opportunity_id",
            "stage",
            "entered_ts",
            "verifier_action_id",
            derived=_derived_flag(history, assume=assume_derived),
        )
        .join(_stage_order(data.settings), on="stage", how="inner")
        .join(deals, on="opportunity_id", how="inner")
        .sort("opportunity_id", "entered_ts", "stage_index")
    )
    # sorted by deal: the next (previous) row is the deal's next (previous) entry when it is
    # the same deal's (a plain shift, not a window per deal)
    deal = pl.col("opportunity_id")
    next_entry = pl.when(deal.shift(-1) == deal).then(pl.col("entered_ts").shift(-1))
    previous_ts = pl.when(deal.shift(1) == deal).then(pl.col("entered_ts").shift(1))
    closed = pl.col("outcome") != "open"
    ended_ts = next_entry.fill_null(pl.when(closed).then(pl.col("close_ts")))
    derived = (  # the deal's path was derived: any of its entries is
        pl.col("derived").any().over("opportunity_id")
        if bool(entries["derived"].any())
        else pl.col("derived")
    )
    return entries.with_columns(
        previous_ts=previous_ts,
        move=previous_ts.is_not_null(),
        ended=ended_ts.is_not_null(),
        ended_ts=ended_ts,
    ).with_columns(derived=derived)


_VERIFIED_BY = pl.Enum(["verifier_action_id", "buyer_action"])
#: A deal's outcome as a small code (0: any other, or none).
_OUTCOME_CODE = {"won": 1, "lost": 2, "no_decision": 3, "open": 4}
_LEAK_CODES = tuple(_OUTCOME_CODE[o] for o in LEAK_OUTCOMES)


@dataclass(frozen=True)
class StayIndex:
    """Every deal's stays, made once per load (:func:`stay_index`), for :func:`stays_under`
    to mask per filter instead of computing them again."""

    frame: pl.DataFrame  # the stays, uncensored and unverified (see stay_index)
    deal: np.ndarray  # each stay's deal: a row of the opportunities given
    low: np.ndarray  # each stay's verifiers: positions (low, high] in verifier_order
    high: np.ndarray
    verifier_order: np.ndarray  # the verifiers' rows (on a known deal) by deal, then time
    latest: pl.Series  # each deal's latest timestamp (created, closed, stage entries)
    run_start: np.ndarray  # each deal's first stay (a row of frame), for its path:
    paths: tuple[np.ndarray, ...]  # first and furthest stage, stages entered (bits), derived
    by_duration: np.ndarray | None = None  # the stays not derived, for Kaplan-Meier (below)
    assume_derived: bool = False  # as given to stay_index: every unflagged entry derived
    #: per deal (run): its outcome (:data:`_OUTCOME_CODE`) and its owner's code (the dense
    #: rank of ``rep_id``, 0 for none: the order :func:`stage_flags` sums reps in); and the
    #: rows of each open deal's current (latest) stay not derived, the blocked candidates
    run_outcome: np.ndarray | None = None
    run_rep: np.ndarray | None = None
    current: np.ndarray | None = None
    #: per stay, its place in ``by_duration`` (:data:`_NOT_RANKED` for a derived one): the
    #: order of a few kept stays is theirs sorted (:func:`stays_under`)
    duration_rank: np.ndarray | None = None


@dataclass(frozen=True)
class Stays:
    """The stays of the deals a filter keeps, as :func:`stage_stays` gives them by
    ``rep_id`` (without ``ended_ts`` and ``verifier_action_id``; ``stage``, ``outcome`` and
    ``verified_by`` as categories, 1-4 bytes a row instead of a string), and their
    ``as_of``: what :func:`flow_table`, :func:`stage_flags` and :func:`blocked_deals` read
    (``stays=``)."""

    frame: pl.DataFrame
    as_of: datetime
    reached: pl.DataFrame | None = None  # the deal x stage rows by rep_id (see _reached)
    by_duration: np.ndarray | None = None  # rows of frame: see _duration_order
    #: the index's ``assume_derived``: these stays are for ``stage_path="derived"`` exactly
    #: when it is true (:func:`flow_table` refuses any other ``stage_path`` with them)
    assume_derived: bool = False
    #: the kept deals' runs of rows: first row, first and furthest stage, stages entered
    #: (bits), derived path, outcome code, owner code (see StayIndex); and the rows of frame
    #: that may be blocked (StayIndex.current): read by numpy instead of group-bys
    runs: tuple[np.ndarray, ...] | None = None
    current: np.ndarray | None = None
    recorded: np.ndarray | None = None  # per row: verified by a recorded verifier_action_id


def stay_index(
    source: Enriched | dict[str, pl.DataFrame],
    *,
    settings: Settings | None = None,
    assume_derived: bool = False,
) -> StayIndex | None:
    """Every deal's stays, held once (a page's load) so that a filter masks them
    (:func:`stays_under`) instead of computing them again: the stays of the deals kept,
    with their censoring and buyer verification, equal those the flow functions compute
    from the filtered tables.

    A stay's censoring needs the filter's ``as_of`` (each deal's latest timestamp is kept);
    its buyer verification, whether a verifier kept by the filter falls in the stay's window
    (each stay's candidate verifiers are kept as a range of the deal's verifiers by time:
    the latest verifier within ``settings.attribution_window_days`` before the entry is
    after the previous entry exactly when one of those is).

    Parameters
    ----------
    source, settings
        As in :func:`flow_table`: every deal of the load, its stage history, the ``reps``
        (``rep_id`` as the stays carry it) and the buyer verifiers (``buyer_actions`` of a
        dict, or the enriched load's actions).
    assume_derived
        As ``stage_path="derived"`` of :func:`flow_table`.

    Returns
    -------
    StayIndex or None
        None when ``opportunity_id`` is not unique in the opportunities.

    Examples
    --------
    >>> index = stay_index(tables, settings=load_settings())  # doctest: +SKIP
    >>> flow_table(tables, settings=s, stays=stays_under(index))  # doctest: +SKIP
    """
    data = _flow_data(source, settings)
    opps = data.opportunities
    if not opps["opportunity_id"].is_unique().all():
        return None
    plain = _FlowData(opps, data.stage_history, data.reps, None, data.settings)
    stays = _uncensored_stays(plain, ["rep_id"], assume_derived=assume_derived)
    rows = opps.select("opportunity_id").with_row_index("__deal")
    coded = _row_codes(opps["opportunity_id"])  # each deal's id its row: no join to find it
    if coded:
        deal = stays["opportunity_id"].cast(pl.UInt32).to_numpy()
    else:
        deal = (
            stays.select("opportunity_id")
            .join(rows, on="opportunity_id", how="left", maintain_order="left")["__deal"]
            .to_numpy()
        )
    entered_type = stays.schema["entered_ts"]
    entered = stays["entered_ts"].to_physical().to_numpy()
    previous = stays["previous_ts"].to_physical().fill_null(np.iinfo(np.int64).min).to_numpy()
    unit = {"ns": 1_000_000_000, "us": 1_000_000, "ms": 1_000}[entered_type.time_unit]
    window = data.settings.attribution_window_days * _DAY_SECONDS * unit
    # a verifier backs the stay when entered - window <= its time <= entered and its time is
    # after the previous entry: after low = max(entered - window - 1, previous), at most high
    low_time = np.maximum(entered - window - 1, previous)
    if data.actions is not None:
        actions = data.actions.lazy()
        verifiers = actions.select(  # every row given: a filter's mask is of these rows
            "opportunity_id",
            pl.col("ts").cast(entered_type),
            __verifier=_is_verifier(actions.collect_schema().names(), data.settings).fill_null(
                value=False
            ),
        ).collect()
        ids = verifiers["opportunity_id"]
        if coded and ids.dtype == opps.schema["opportunity_id"]:
            found = ids.cast(pl.UInt32, strict=False).set(ids >= opps.height, None)
        else:
            found = verifiers.select("opportunity_id").join(
                rows, on="opportunity_id", how="left", maintain_order="left"
            )["__deal"]
        on_deal = found.is_not_null().to_numpy() & verifiers["__verifier"].to_numpy()
        v_deal = found.fill_null(0).to_numpy().astype(np.int64)
        v_time = verifiers["ts"].to_physical().fill_null(np.iinfo(np.int64).max).to_numpy()
        on_deal &= v_time != np.iinfo(np.int64).max  # a verifier without a time backs nothing
        positions = _verifier_positions if entered.dtype.kind == "i" else _ranked_positions
        order, low, high = positions(
            v_deal, v_time, on_deal, deal, low_time, entered, n_deals=opps.height, unit=unit
        )
    else:
        order = np.empty(0, dtype=np.int64)
        low = high = np.zeros(stays.height, dtype=np.uint32)
    history_latest = (
        data.stage_history.group_by("opportunity_id")
        .agg(__latest=pl.col("entered_ts").max())
        .select(pl.col("opportunity_id"), pl.col("__latest"))
    )
    latest = (
        opps.select("opportunity_id", "created_ts", "close_ts")
        .join(history_latest, on="opportunity_id", how="left", maintain_order="left")
        .select(pl.max_horizontal("created_ts", "close_ts", "__latest"))
        .to_series()
    )
    stages = list(data.settings.stages)
    stage_type = pl.Enum(stages) if len(set(stages)) == len(stages) else pl.String
    frame = stays.select(
        "opportunity_id",
        "rep_id",
        pl.col("stage").cast(stage_type),
        "stage_index",
        "entered_ts",
        pl.when("ended").then(_days(pl.col("ended_ts"), pl.col("entered_ts"))).alias("days"),
        "ended",
        pl.col("outcome").cast(pl.Categorical),
        "move",
        recorded=pl.col("verifier_action_id").is_not_null(),
        derived="derived",
    )
    run_start = np.flatnonzero(np.diff(deal.astype(np.int64), prepend=-1) != 0)
    if len(run_start):
        first, furthest, bits, path_derived = _paths(frame, run_start, derived=False)
    else:
        first = furthest = bits = np.empty(0, dtype=np.int64)
        path_derived = np.empty(0, dtype=bool)
    small = np.int8 if len(stages) < 127 else np.int64
    paths = (
        first.astype(small),
        furthest.astype(small),
        bits.astype(np.int32) if len(stages) < 31 else bits,
        path_derived,
    )
    run_outcome, run_rep, current = _run_codes(frame, run_start)
    by_duration = _duration_order(frame)
    duration_rank = np.full(frame.height, _NOT_RANKED, dtype=np.uint32)
    duration_rank[by_duration] = np.arange(len(by_duration), dtype=np.uint32)
    return StayIndex(
        frame=frame,
        run_start=run_start.astype(np.uint32),
        paths=paths,
        run_outcome=run_outcome,
        run_rep=run_rep,
        current=current,
        by_duration=by_duration,
        duration_rank=duration_rank if frame.height < _NOT_RANKED else None,
        deal=_same_or(stays["opportunity_id"], deal.astype(np.uint32)),
        low=low,
        high=high,
        verifier_order=order.astype(np.uint32) if len(order) < 2**32 else order,
        latest=latest,
        assume_derived=assume_derived,
    )


def _row_codes(ids: pl.Series) -> bool:
    """Whether ``ids`` are integers 0, 1, ..., each its row (deals coded by the page)."""
    if not ids.dtype.is_integer() or ids.null_count() or len(ids) >= 2**32:
        return False
    return bool(np.array_equal(ids.to_numpy(), np.arange(len(ids))))


def _verifier_positions(
    v_deal: np.ndarray,
    v_time: np.ndarray,
    on_deal: np.ndarray,
    deal: np.ndarray,
    low_time: np.ndarray,
    entered: np.ndarray,
    *,
    n_deals: int,
    unit: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The verifiers on a deal (rows where ``on_deal``) by deal, then time (stable), and for
    each stay the positions in that order of its deal's verifiers up to ``low_time`` and up
    to ``entered``: the verifiers in (low, high] are its candidates (:func:`stay_index`).

    Keyed as deal x (time - first) / step with step a second when every verifier's time is a
    whole second from the first (else the time's unit): one key per verifier, no look-up of
    the distinct times; as the key by the times' dense rank (:func:`_ranked_positions`) when
    that one overflows. A stay's keys follow its deal's rows (sorted by entry within a deal):
    each search reads the keys in order."""
    rows = np.flatnonzero(on_deal)
    if len(rows) == 0:
        zeros = np.zeros(len(deal), dtype=np.uint32)
        return np.empty(0, dtype=np.int64), zeros, zeros
    times = v_time[rows]
    first = int(times.min())
    shifted = times - first
    step = unit if not np.any(shifted % unit) else 1
    span = int(shifted.max()) // step
    width = span + 2  # 0: before the first verifier; 1 + (time - first) / step: at it
    if n_deals * width >= 2**62:
        return _ranked_positions(v_deal, v_time, on_deal, deal, low_time, entered)
    keys = v_deal[rows] * np.int64(width) + (shifted // step + 1)
    by_key = _stable_order(keys)
    order, keys = rows[by_key], keys[by_key]
    base = deal.astype(np.int64) * np.int64(width)

    def position(at: np.ndarray) -> np.ndarray:  # the deal's verifiers at or before at
        counted = np.clip(np.floor_divide(at - first, step) + 1, 0, span + 1)
        return np.searchsorted(keys, base + counted, side="right").astype(np.uint32)

    return order, position(low_time), position(entered)


def _ranked_positions(
    v_deal: np.ndarray,
    v_time: np.ndarray,
    on_deal: np.ndarray,
    deal: np.ndarray,
    low_time: np.ndarray,
    entered: np.ndarray,
    **_: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_verifier_positions` keyed by the verifiers' times' dense rank (entry times
    with nulls: numpy floats, NaN counting every verifier)."""
    times = pl.Series(v_time[on_deal]).unique().sort().to_numpy()  # numpy: 10x slower
    width = np.int64(len(times) + 1)
    v_key = v_deal * width + np.searchsorted(times, v_time)
    v_key = np.where(on_deal, v_key, np.iinfo(np.int64).max)
    order = np.argsort(v_key, kind="stable")
    order = order[on_deal[order]]
    v_key = v_key[order]
    base = deal.astype(np.int64) * width

    def position(at: np.ndarray) -> np.ndarray:
        counted = np.searchsorted(times, at, side="right")  # distinct times <= at
        return np.searchsorted(v_key, base + counted, side="left").astype(np.uint32)

    return order, position(low_time), position(entered)


def _run_codes(
    frame: pl.DataFrame, run_start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per run of a deal's stays: its outcome code and owner code; and the rows of the open
    deals' current stays not derived (what :func:`_blocked_of` reads as candidates)."""
    if frame.height == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty.astype(np.int8), empty, empty.astype(np.uint32)
    firsts = pl.Series(run_start.astype(np.int64))
    outcome = (
        frame["outcome"]
        .gather(firsts)
        .cast(pl.String)
        .replace_strict(_OUTCOME_CODE, default=0, return_dtype=pl.Int8)
        .fill_null(0)
        .to_numpy()
    )
    rep = frame["rep_id"].gather(firsts).rank("dense").fill_null(0).to_numpy().astype(np.int64)
    last = np.append(run_start[1:], frame.height).astype(np.int64) - 1
    derived = frame["derived"].fill_null(value=False).to_numpy()[last]
    current = last[(outcome == _OUTCOME_CODE["open"]) & ~derived]
    return outcome, rep.astype(np.int32), current.astype(np.uint32)


def _duration_order(frame: pl.DataFrame) -> np.ndarray:
    """The rows of the stays not derived by stage (``stage_index``, nulls first), within a
    stage the ended ones by duration, then the open ones by entry, latest first (by duration
    under any ``as_of``): what Kaplan-Meier reads in order, kept once per load so that a
    filter selects from it instead of sorting (:func:`_kaplan_meier_in_order`).

    Sorted by one integer key at a time, stable, the last key first: the negated entry, the
    duration's float bits ordered as integers (the ended), then (stage, open) as a small
    integer (numpy's radix sort): a four-column stable sort took 5.5 CPU s of 6M stays."""
    kept = frame.select(
        pl.col("stage_index").fill_null(-1),
        open=~pl.col("ended"),
        days=pl.col("days"),
        entered=pl.col("entered_ts").to_physical(),
        derived=pl.col("derived"),
    ).with_row_index("__row")
    kept = kept.filter(~pl.col("derived"))
    bits = kept["days"].cast(pl.Float64).fill_null(0.0).to_numpy().view(np.int64)
    plain = (
        kept["open"].null_count() == 0
        and kept["entered"].null_count() == 0
        and kept.filter(~pl.col("open"))["days"].null_count() == 0
        and not np.any(bits == np.iinfo(np.int64).min)  # -0.0
        and -1 <= int(kept["stage_index"].min() or 0)
        and int(kept["stage_index"].max() or 0) < 2**14
    )
    if not plain:  # nulls where none are expected, or a negative zero: as a four-column sort
        ordered = kept.with_columns(-pl.col("entered")).sort(
            ["stage_index", "open", "days", "entered"], maintain_order=True
        )
        rows = ordered["__row"].to_numpy()
    else:
        # a float's bits as a signed integer: ordered as the float for +, reversed for -
        by_days = np.where(bits < 0, bits ^ np.int64(0x7FFF_FFFF_FFFF_FFFF), bits)
        is_open = kept["open"].to_numpy()
        # least significant key first, each sort stable: entry (latest first), duration (the
        # ended), then stage and open
        order = _stable_order(-kept["entered"].to_numpy())
        order = order[_stable_order(np.where(is_open, 0, by_days)[order])]
        group = kept["stage_index"].to_numpy().astype(np.int16) * 2 + is_open
        order = order[np.argsort(group[order], kind="stable")]
        rows = kept["__row"].to_numpy()[order]
    return rows.astype(np.uint32) if frame.height < 2**32 else rows


def _stable_order(key: np.ndarray) -> np.ndarray:
    """The positions of ``key`` sorted, ties in order (polars: several times numpy's speed)."""
    ordered = pl.DataFrame({"key": key}).with_row_index("at").sort("key", maintain_order=True)
    return ordered["at"].to_numpy()


def _same_or(ids: pl.Series, rows: np.ndarray) -> np.ndarray:
    """``ids`` as numpy without a copy when they equal ``rows`` (deals coded by their row),
    else ``rows``."""
    if ids.dtype == pl.UInt32 and ids.null_count() == 0 and ids.n_chunks() == 1:
        view = ids.to_numpy()
        if np.array_equal(view, rows):
            return view
    return rows


def stays_under(
    index: StayIndex,
    *,
    deals: np.ndarray | None = None,
    verifiers: np.ndarray | None = None,
) -> Stays | None:
    """The stays of the deals a filter keeps (``deals``: a mask of the opportunities given to
    :func:`stay_index`, None for all), verified by the verifiers it keeps (``verifiers``: a
    mask of the verifiers given, None for all), censored at the kept deals' latest
    timestamp; None when no deal is kept.

    Examples
    --------
    >>> stays = stays_under(index, deals=kept)  # doctest: +SKIP
    """
    latest = index.latest if deals is None else index.latest.filter(pl.Series(deals))
    as_of = latest.max()
    if as_of is None:
        return None
    frame, low, high = index.frame, index.low, index.high
    starts, paths, by_duration = index.run_start, index.paths, index.by_duration
    codes = (index.run_outcome, index.run_rep)
    current = index.current
    few = deals is not None and _FEW_DEALS * int(np.count_nonzero(deals)) < len(deals)
    if few and index.duration_rank is not None and index.current is not None:
        return _few_stays_under(index, deals[index.deal[starts]], verifiers, as_of)
    if deals is not None:
        rows = deals[index.deal]
        frame = frame.filter(pl.Series(rows))
        low, high = low[rows], high[rows]
        runs = rows[starts]  # the kept deals' paths, their first stays in the kept rows
        kept_row = np.cumsum(rows, dtype=np.int32 if len(rows) < 2**31 else np.int64) - 1
        starts = kept_row[starts[runs]]
        paths = tuple(p[runs] for p in paths)
        codes = tuple(None if c is None else c[runs] for c in codes)
        if current is not None:
            current = kept_row[current[rows[current]]]
        if by_duration is not None:
            by_duration = kept_row[by_duration[rows[by_duration]]]  # the kept rows, in order
    backed = _backed(index, low, high, verifiers)
    return _stays_of(index, frame, backed, as_of, starts, paths, codes, by_duration, current)


def _backed(
    index: StayIndex, low: np.ndarray, high: np.ndarray, verifiers: np.ndarray | None
) -> np.ndarray:
    """Whether a kept verifier (``verifiers``: a mask of the index's, None for all) is among
    each kept stay's candidates, positions (``low``, ``high``] of ``verifier_order``."""
    if verifiers is None:
        return high > low
    n = len(index.verifier_order)
    span = high.astype(np.int64) - low
    read = int(span.sum())
    if 4 * read < n:  # the kept stays' candidates read one by one: fewer than the verifiers
        first = np.cumsum(span) - span
        at = np.repeat(low.astype(np.int64) - first, span) + np.arange(read)
        counted = np.zeros(read + 1, dtype=np.int64)
        np.cumsum(verifiers[index.verifier_order[at]], out=counted[1:])
        return counted[first + span] > counted[first]
    counted = np.zeros(n + 1, dtype=np.int32 if n < 2**31 else np.int64)
    np.cumsum(verifiers[index.verifier_order], out=counted[1:])
    return counted[high] > counted[low]


#: :func:`stays_under` reads the kept deals' rows by their runs when at most one deal in this
#: many is kept (a team, a rep): each array it reads is then as long as the kept stays,
#: not as every stay, and their Kaplan-Meier order is sorted, not selected from every stay's.
_FEW_DEALS = 16


def _few_stays_under(
    index: StayIndex, runs: np.ndarray, verifiers: np.ndarray | None, as_of: datetime
) -> Stays:
    """:func:`stays_under` of the stays of the kept runs ``runs`` (a mask of the deals' runs)
    read by position: the same frame, runs and orders as masking every stay gives."""
    starts = index.run_start
    kept = np.flatnonzero(runs)
    ends = np.append(starts[1:], index.frame.height).astype(np.int64)[kept]
    lengths = ends - starts[kept]
    offsets = np.cumsum(lengths) - lengths  # each kept run's first row among the kept rows
    at = np.repeat(starts[kept] - offsets, lengths) + np.arange(int(lengths.sum()))
    frame = index.frame[pl.Series(at)]
    low, high = index.low[at], index.high[at]
    paths = tuple(p[kept] for p in index.paths)
    codes = tuple(c[kept] for c in (index.run_outcome, index.run_rep))
    derived = frame["derived"].fill_null(value=False).to_numpy()
    last = offsets + lengths - 1
    current = last[(codes[0] == _OUTCOME_CODE["open"]) & ~derived[last]]
    rank = index.duration_rank[at]  # each kept stay's place in every stay's order
    order = np.argsort(rank, kind="stable")
    by_duration = order[: int(np.count_nonzero(rank != _NOT_RANKED))]
    return _stays_of(
        index,
        frame,
        _backed(index, low, high, verifiers),
        as_of,
        offsets,
        paths,
        codes,
        by_duration.astype(np.int64),
        current,
    )


#: :attr:`StayIndex.duration_rank` of a stay in no Kaplan-Meier order (derived).
_NOT_RANKED = np.iinfo(np.uint32).max


def _stays_of(
    index: StayIndex,
    frame: pl.DataFrame,
    backed: np.ndarray,
    as_of: datetime,
    starts: np.ndarray,
    paths: tuple[np.ndarray, ...],
    codes: tuple[np.ndarray | None, ...],
    by_duration: np.ndarray | None,
    current: np.ndarray | None,
) -> Stays:
    """:func:`stays_under`'s :class:`Stays` of the kept stays ``frame`` (the index's kept
    rows), whether a kept verifier backs each, and their runs and orders."""
    entered_type = frame.schema["entered_ts"]
    stays = (
        frame.lazy()
        .with_columns(backed=pl.Series(backed, dtype=pl.Boolean))
        .select(
            "opportunity_id",
            "rep_id",
            "stage",
            "stage_index",
            "entered_ts",
            pl.col("days").fill_null(_days(pl.lit(as_of).cast(entered_type), pl.col("entered_ts"))),
            "ended",
            "outcome",
            "move",
            verified_by=pl.when("recorded")
            .then(pl.lit("verifier_action_id", dtype=_VERIFIED_BY))
            .when("backed")
            .then(pl.lit("buyer_action", dtype=_VERIFIED_BY)),
            verified=pl.col("recorded") | pl.col("backed"),
            derived="derived",
        )
        .collect()
    )
    runs = None
    if codes[0] is not None and codes[1] is not None:
        runs = (
            starts.astype(np.int64),
            *(p.astype(np.int64) if p.dtype != bool else p for p in paths),
            *codes,
        )
    return Stays(  # the deal x stage rows made when read (_given_reached)
        frame=stays,
        as_of=as_of,
        by_duration=by_duration,
        assume_derived=index.assume_derived,
        runs=runs,
        current=None if current is None else current.astype(np.int64),
        recorded=frame["recorded"].to_numpy(),
    )


def _group_codes(frame: pl.DataFrame, keys: list[str]) -> np.ndarray:
    """A dense integer code per row of ``frame`` for its ``keys`` values (nulls a value)."""
    if keys == ["stage_index"] or keys == ["stage", "stage_index"]:
        return frame["stage_index"].fill_null(-1).to_numpy().astype(np.int64)
    groups = (
        frame.select(keys)
        .with_row_index("row")
        .group_by(keys)
        .agg("row")
        .with_row_index("group")
        .explode("row")
    )
    codes = np.empty(frame.height, dtype=np.int64)
    codes[groups["row"].to_numpy()] = groups["group"].to_numpy()
    return codes


def _kaplan_meier_quantiles(
    stays: pl.DataFrame, *, keys: list[str], quantiles: dict[str, float]
) -> pl.DataFrame:
    """Kaplan–Meier duration quantiles per ``keys`` group (``days``, ``ended``).

    One sort of the stays by (group, duration), then per group: at each distinct duration the
    stays that end there and the stays still at risk, the survival as the running product of
    (1 - ended / at risk), and each quantile as the first duration where the survival falls
    to 1 - q (the same products, in the same order, as a per-group window would compute).
    """
    schema = {
        **{k: stays.schema[k] for k in keys},
        "stays": pl.UInt32,
        **{name: pl.Float64 for name in quantiles},
    }
    if stays.height == 0:
        return pl.DataFrame(schema=schema)
    code = _group_codes(stays, keys)
    days = stays["days"].to_numpy()
    by_days = stays["days"].arg_sort().to_numpy()  # then a stable sort by group
    if len(code) and -(2**15) <= code.min() and code.max() < 2**15:
        code = code.astype(np.int16)  # numpy's stable sort of 16-bit integers is a radix sort
    order = by_days[np.argsort(code[by_days], kind="stable")]
    code, days = code[order], days[order]
    ended = stays["ended"].to_numpy()[order].astype(np.int64)
    n = len(order)
    new_time = np.ones(n, dtype=bool)
    new_time[1:] = (code[1:] != code[:-1]) | (days[1:] != days[:-1])
    starts = np.flatnonzero(new_time)  # one row per (group, distinct duration)
    ends = np.add.reduceat(ended, starts)
    leaving = np.diff(np.append(starts, n))
    times, groups = days[starts], code[starts]
    m = len(starts)
    new_group = np.ones(m, dtype=bool)
    new_group[1:] = groups[1:] != groups[:-1]
    first = np.flatnonzero(new_group)
    last = np.append(first[1:], m)
    behind = np.append(np.cumsum(leaving[::-1])[::-1], 0)  # stays at this duration or later
    at_risk = behind[:-1] - np.repeat(behind[last], last - first)
    factor = 1 - ends / at_risk
    survival = np.empty(m)
    for a, b in zip(first.tolist(), last.tolist(), strict=True):
        np.multiply.accumulate(factor[a:b], out=survival[a:b])
    index = np.arange(m)
    columns: dict[str, Any] = {}
    for name, q in quantiles.items():
        hit = np.where(survival <= 1 - q + _TOLERANCE, index, m)
        at = np.minimum.reduceat(hit, first)
        columns[name] = pl.Series(
            name, np.where(at < m, times[np.minimum(at, m - 1)], np.nan), dtype=pl.Float64
        ).fill_nan(None)
    return (
        stays.select(keys)[order[starts[first]]]
        .with_columns(pl.Series("stays", np.add.reduceat(leaving, first), dtype=pl.UInt32))
        .with_columns(columns.values())
    )


def _kaplan_meier_in_order(
    stays: pl.DataFrame, order: np.ndarray, *, quantiles: dict[str, float]
) -> pl.DataFrame | None:
    """:func:`_kaplan_meier_quantiles` by ``stage`` and ``stage_index`` of the stays not
    derived, read in ``order`` (:func:`_duration_order`: per stage the ended stays by
    duration, then the open ones by duration) instead of sorted; None when the rows are not
    in that order (then sort).

    The survival falls only where a stay ended: at each distinct duration of the ended stays,
    those at risk are the ended and open stays of the stage at that duration or later (the
    open ones found by a binary search), and the durations where only open stays leave
    multiply the survival by exactly 1.
    """
    groups = _stage_runs_in_order(stays, order)
    if groups is None:
        return None
    out_times: list[np.ndarray] = []
    out_surv: list[np.ndarray] = []
    counts: list[int] = []
    firsts: list[int] = []
    for a, ended_days, open_days in groups:
        e = len(ended_days)
        firsts.append(a)
        counts.append(e + len(open_days))
        if e == 0:
            out_times.append(np.empty(0))
            out_surv.append(np.empty(0))
            continue
        new_time = np.ones(e, dtype=bool)
        new_time[1:] = ended_days[1:] != ended_days[:-1]
        starts = np.flatnonzero(new_time)
        times = ended_days[starts]
        ends = np.diff(np.append(starts, e))
        at_risk = (e - starts) + _open_from(open_days, times)
        out_times.append(times)
        out_surv.append(np.multiply.accumulate(1 - ends / at_risk))
    columns: dict[str, Any] = {}
    for name, q in quantiles.items():
        values: list[float | None] = [None] * len(firsts)  # a list: fill_nan is a query
        for g, (times, survival) in enumerate(zip(out_times, out_surv, strict=True)):
            hit = np.flatnonzero(survival <= 1 - q + _TOLERANCE)
            if len(hit):
                values[g] = float(times[hit[0]])
        columns[name] = pl.Series(name, values, dtype=pl.Float64)
    at = pl.Series(order[np.array(firsts, dtype=np.int64)], dtype=pl.Int64)
    return pl.DataFrame(
        [
            stays["stage"].gather(at),
            stays["stage_index"].gather(at),
            pl.Series("stays", counts, dtype=pl.UInt32),
            *columns.values(),
        ]
    )


def _open_from(open_days: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Per distinct duration of ``times`` (ascending), the open stays of ``open_days``
    (ascending) that lasted at least as long: the fewer searched in the more."""
    if len(open_days) >= len(times):
        return len(open_days) - np.searchsorted(open_days, times, side="left")
    # an open stay lasted at least times[j] exactly when more than j of the times are <= it
    below = np.searchsorted(times, open_days, side="right")
    return len(open_days) - np.cumsum(np.bincount(below, minlength=len(times) + 1))[:-1]


def time_in_stage(stays: pl.DataFrame, *, by: str | Sequence[str] | None = None) -> pl.DataFrame:
    """Kaplan–Meier median and p90 days in each stage (open deals censored).

    Parameters
    ----------
    stays
        :func:`stage_stays` (with the ``by`` columns).
    by
        Extra grouping columns.

    Returns
    -------
    pl.DataFrame
        ``by`` columns, ``stage``, ``stage_index``, ``stays``, ``median_days`` and
        ``p90_days`` (Kaplan–Meier), ``ended_p90_days`` (p90 of the stays that ended: the
        historical bar for blockage), sorted. Stays of deals whose stage path was derived
        (``derived``) are left out: their entry times are not when they entered a stage.

    Examples
    --------
    >>> time_in_stage(stage_stays(tables, settings=s))  # doctest: +SKIP
    """
    return _time_in_stage(stays, by=by)


def _time_in_stage(
    stays: pl.DataFrame,
    *,
    by: str | Sequence[str] | None,
    historical: bool = True,
    by_duration: np.ndarray | None = None,
) -> pl.DataFrame:
    """:func:`time_in_stage`; without ``ended_p90_days`` unless ``historical`` (the flow
    table reads only the Kaplan-Meier quantiles); ``by_duration`` (without ``by``): the
    stays not derived in :func:`_duration_order`'s order (:attr:`Stays.by_duration`)."""
    keys = [*_by_list(by), "stage", "stage_index"]
    if by_duration is not None and not historical and keys == ["stage", "stage_index"]:
        quantiles = _kaplan_meier_in_order(
            stays, by_duration, quantiles={"median_days": 0.5, "p90_days": 0.9}
        )
        if quantiles is not None:
            return quantiles
    if "derived" in stays.columns:  # only the columns read: a filter copies what it keeps
        stays = stays.select(*keys, "days", "ended", "derived").filter(~pl.col("derived"))
    quantiles = _kaplan_meier_quantiles(
        stays, keys=keys, quantiles={"median_days": 0.5, "p90_days": 0.9}
    )
    if not historical:
        return quantiles
    ended_p90 = (
        stays.filter("ended")
        .group_by(keys)
        .agg(ended_p90_days=pl.col("days").quantile(0.9, interpolation="linear"))
    )
    return quantiles.join(ended_p90, on=keys, how="left").sort(keys)


def blocked_deals(
    source: Enriched | dict[str, pl.DataFrame],
    *,
    settings: Settings | None = None,
    as_of: datetime | None = None,
    by: str | Sequence[str] | None = None,
    stays: Stays | None = None,
) -> pl.DataFrame:
    """Open deals stuck in their current stage beyond the stage's p90 time in stage.

    Parameters
    ----------
    source, settings, as_of
        As in :func:`stage_stays`.
    by
        Deal-owner columns to carry along, e.g. ``["team", "rep_id"]``.
    stays
        The stays of ``source`` already made (:func:`stays_under`): ``as_of`` is then theirs
        and the stage history is not read.

    Returns
    -------
    pl.DataFrame
        ``opportunity_id``, ``rep_id``, ``by`` columns, ``stage``, ``entered_ts``,
        ``age_days``, ``threshold_days`` (the stage's historical p90, of its ended stays),
        ``over_days``; longest overdue first.

    Examples
    --------
    >>> blocked_deals(enriched).group_by("stage").len()  # doctest: +SKIP
    """
    data = _flow_data(source, settings, needs=_needs(stays))
    by_cols = [c for c in _by_list(by) if c != "rep_id"]
    cutoff = None if stays is not None else _as_of(data, as_of)
    return _blocked(_stays(data, ["rep_id", *by_cols], cutoff, given=stays), by_cols)


def _needs(stays: Stays | None) -> tuple[str, ...]:
    return ("opportunities",) if stays is not None else ("opportunities", "stage_history")


def _blockage_thresholds(stays: pl.DataFrame) -> pl.DataFrame:
    """Per stage, over all deals: the age beyond which an open deal there is blocked."""
    if _LAST_THRESHOLDS and _LAST_THRESHOLDS[0][0] is stays:  # the same stays (see _stays)
        return _LAST_THRESHOLDS[0][1]
    given = _given_of(stays)
    if given is not None and given.by_duration is not None:
        thresholds = _thresholds_in_order(stays, given.by_duration)
        if thresholds is not None:
            _LAST_THRESHOLDS[:] = [(stays, thresholds)]
            return thresholds
    ended = pl.col("ended")
    if "derived" in stays.columns:
        ended = ended & ~pl.col("derived")
    thresholds = (  # the ended_p90_days of time_in_stage, without its Kaplan-Meier part
        stays.select("stage", "stage_index", "days", ended=ended)
        .filter("ended")
        .group_by("stage", "stage_index")
        .agg(threshold_days=pl.col("days").quantile(0.9, interpolation="linear"))
    )
    _LAST_THRESHOLDS[:] = [(stays, thresholds)]
    return thresholds


_LAST_THRESHOLDS: list[tuple[pl.DataFrame, pl.DataFrame]] = []


def _stage_runs_in_order(
    stays: pl.DataFrame, order: np.ndarray
) -> list[tuple[int, np.ndarray, np.ndarray]] | None:
    """The stays not derived read in ``order`` (:func:`_duration_order`), per stage: its
    first position in ``order``, the ended stays' durations (ascending) and the open ones';
    None when the rows are not in that order (or a duration is not a number). Kept for the
    draw (Kaplan-Meier and the blockage thresholds read them)."""
    if _LAST_IN_ORDER and _LAST_IN_ORDER[0][0] is stays and _LAST_IN_ORDER[0][1] is order:
        return _LAST_IN_ORDER[0][2]
    groups = _stage_runs_of(stays, order)
    _LAST_IN_ORDER[:] = [(stays, order, groups)]
    return groups


_LAST_IN_ORDER: list[tuple[pl.DataFrame, np.ndarray, list | None]] = []


def _stage_runs_of(
    stays: pl.DataFrame, order: np.ndarray
) -> list[tuple[int, np.ndarray, np.ndarray]] | None:
    if stays.height == 0 or len(order) == 0:
        return None
    code = stays["stage_index"].fill_null(-1).to_numpy()[order].astype(np.int64)
    ended = stays["ended"].to_numpy()[order]
    days = stays["days"].to_numpy()[order]
    if np.any(np.diff(code) < 0) or np.isnan(days).any():
        return None
    bounds = np.concatenate(([0], np.flatnonzero(code[1:] != code[:-1]) + 1, [len(order)]))
    groups = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        e = int(np.count_nonzero(ended[a:b]))
        if not ended[a : a + e].all():
            return None
        ended_days, open_days = days[a : a + e], days[a + e : b]
        if np.any(np.diff(ended_days) < 0) or np.any(np.diff(open_days) < 0):
            return None
        groups.append((a, ended_days, open_days))
    return groups


def _linear_quantile(ordered: np.ndarray, q: float) -> float:
    """Polars' ``quantile(q, interpolation="linear")`` of ascending ``ordered`` (not empty)."""
    at = (len(ordered) - 1) * q
    low = int(np.floor(at))
    lower, upper = ordered[low], ordered[min(low + 1, len(ordered) - 1)]
    return float(lower) if lower == upper else float((at - low) * (upper - lower) + lower)


def _thresholds_in_order(stays: pl.DataFrame, order: np.ndarray) -> pl.DataFrame | None:
    """:func:`_blockage_thresholds` from the ended stays of each stage read in ``order``
    (already by duration: the p90 read at its place, no group-by); None when out of order."""
    groups = _stage_runs_in_order(stays, order)
    if groups is None or stays.schema["stage"] == pl.String:  # stage names may repeat
        return None
    rows = [(a, _linear_quantile(ended, 0.9)) for a, ended, _ in groups if len(ended)]
    at = pl.Series([order[a] for a, _ in rows], dtype=pl.Int64)
    return pl.DataFrame(
        [
            stays["stage"].gather(at),
            stays["stage_index"].gather(at),
            pl.Series("threshold_days", [t for _, t in rows], dtype=pl.Float64),
        ]
    )


def _blocked_rows(given: Stays, stays: pl.DataFrame) -> tuple[np.ndarray, ...] | None:
    """The blocked stays of ``given`` (its frame ``stays``) by numpy: rows, stage index, age
    and threshold; None when not known by numpy (then :func:`_blocked_of` by Polars)."""
    if given.current is None or given.by_duration is None:
        return None
    thresholds = _blockage_thresholds(stays)
    if _LAST_THRESHOLDS[0][0] is not stays or stays.schema["stage"] == pl.String:
        return None
    size = int(thresholds["stage_index"].max() or 0) + 1 if thresholds.height else 1
    bar = np.full(size + 1, np.nan)  # the last: any stage without a threshold
    bar[thresholds["stage_index"].to_numpy()] = thresholds["threshold_days"].to_numpy()
    current = given.current
    stage = stays["stage_index"].fill_null(-1).to_numpy()[current].astype(np.int64)
    stage = np.where((stage >= 0) & (stage < size), stage, size)
    age = stays["days"].to_numpy()[current]
    over = age > bar[stage]  # no threshold (NaN): never
    return current[over], stage[over], age[over], bar[stage][over]


def _blocked(stays: pl.DataFrame, by_cols: list[str]) -> pl.DataFrame:
    if _LAST_BLOCKED and _LAST_BLOCKED[0][0] is stays and _LAST_BLOCKED[0][1] == by_cols:
        return _LAST_BLOCKED[0][2]  # the same stays (see _stays): the flow table's, again
    blocked = _blocked_of(stays, by_cols)
    _LAST_BLOCKED[:] = [(stays, list(by_cols), blocked)]
    return blocked


_LAST_BLOCKED: list[tuple[pl.DataFrame, list[str], pl.DataFrame]] = []


def _blocked_of(stays: pl.DataFrame, by_cols: list[str]) -> pl.DataFrame:
    given = _given_of(stays)
    found = None if given is None or by_cols else _blocked_rows(given, stays)
    if found is not None:
        rows, _, age, bar = found
        ids = stays["opportunity_id"]
        if ids.dtype.is_integer() and ids.null_count() == 0:  # longest overdue, then by id
            by = np.lexsort((ids.to_numpy()[rows], -(age - bar)))
            rows, age, bar = rows[by], age[by], bar[by]
        at = pl.Series(rows, dtype=pl.Int64)
        blocked = pl.DataFrame(
            [
                stays["opportunity_id"].gather(at),
                stays["rep_id"].gather(at),
                stays["stage"].gather(at).cast(pl.String),
                stays["entered_ts"].gather(at),
                pl.Series("age_days", age, dtype=pl.Float64),
                pl.Series("threshold_days", bar, dtype=pl.Float64),
                pl.Series("over_days", age - bar, dtype=pl.Float64),
            ]
        )
        if ids.dtype.is_integer() and ids.null_count() == 0:
            return blocked
        return blocked.sort("over_days", "opportunity_id", descending=[True, False])
    thresholds = _blockage_thresholds(stays).drop("stage_index")
    # the stays are sorted by deal, then entry time and stage: a deal's current (latest)
    # entry is its last row
    deal = pl.col("opportunity_id")
    current = (pl.col("outcome") == "open") & (deal != deal.shift(-1)).fill_null(value=True)
    if "derived" in stays.columns:  # a derived entry's age is not an age in the stage
        current = current & ~pl.col("derived")
    return (  # one query
        stays.lazy()
        .filter(current)
        .join(thresholds.lazy(), on="stage", how="inner")
        .filter(pl.col("days") > pl.col("threshold_days"))
        .select(
            "opportunity_id",
            "rep_id",
            *by_cols,
            pl.col("stage").cast(pl.String),  # a category in stays_under's
            "entered_ts",
            age_days="days",
            threshold_days="threshold_days",
            over_days=pl.col("days") - pl.col("threshold_days"),
        )
        .sort("over_days", "opportunity_id", descending=[True, False])
        .collect()
    )


#: The last deal x stage rows computed, with the stays and options they came from: a journey
#: draw reads them for the flow table and again for the stage flags (see :func:`_stays`).
_LAST_REACHED: list[tuple[pl.DataFrame, tuple, pl.DataFrame]] = []


def _reached(stays: pl.DataFrame, by_cols: list[str], *, derived: bool = False) -> pl.DataFrame:
    """One row per deal x stage reached: entered (explicitly) or skipped, and how it ended.

    A deal whose stage path was derived (``derived`` column of the stays, or every deal when
    ``derived`` is given) reaches only the stages it entered: the stages between are not
    known to have been passed. ``stage_unknown`` is false here; :func:`_unknown_losses` adds
    the losses at no known stage. The stages a deal entered are kept as the bits of one
    integer (stage indices are small), not as a list per deal.
    """
    options = (tuple(by_cols), derived)
    if _LAST_REACHED and _LAST_REACHED[0][0] is stays and _LAST_REACHED[0][1] == options:
        return _LAST_REACHED[0][2]
    given = _given_of(stays)
    if given is not None and by_cols == ["rep_id"] and not derived:
        starts, first, furthest, bits, path_derived = given.runs[:5]
        reached = _reached_of_paths(
            stays.select("opportunity_id", "rep_id", "outcome"),
            ["rep_id"],
            starts,
            first,
            furthest,
            bits,
            path_derived,
        )
        _LAST_REACHED[:] = [(stays, options, reached)]
        return reached
    reached = _reached_by_runs(stays, by_cols, derived=derived)
    if reached is None:  # not one run of rows per group: grouped
        reached = _reached_grouped(stays, by_cols, derived=derived)
    _LAST_REACHED[:] = [(stays, options, reached)]
    return reached


def _reached_by_runs(
    stays: pl.DataFrame, by_cols: list[str], *, derived: bool
) -> pl.DataFrame | None:
    """:func:`_reached`'s rows from the stays as :func:`_stays` gives them (sorted by deal:
    each deal's rows one run, its owner and outcome the same on each), in numpy: one
    reduction per run instead of a group-by; None when the groups are not runs of rows.

    The same rows as :func:`_reached_grouped` (deals in the stays' order, each deal's stages
    in order, where the group-by's order is arbitrary); every use of them sums them by group.
    """
    keys = ["opportunity_id", *by_cols, "outcome"]
    if stays.height == 0 or not stays["opportunity_id"].is_sorted():
        return None
    frame = stays.select(keys)
    new_deal = frame["opportunity_id"].ne_missing(frame["opportunity_id"].shift(1)).to_numpy()
    new_deal[0] = True
    for c in keys[1:]:  # a deal whose rows differ in owner or outcome: not one group
        column = frame[c]
        changed = column.ne_missing(column.shift(1)).to_numpy()
        if (changed[1:] & ~new_deal[1:]).any():
            return None
    starts = np.flatnonzero(new_deal)
    stage = stays["stage_index"]
    if stage.null_count():
        return None
    first, furthest, bits, path_derived = _paths(stays, starts, derived=derived)
    return _reached_of_paths(frame, by_cols, starts, first, furthest, bits, path_derived)


def _paths(
    stays: pl.DataFrame, starts: np.ndarray, *, derived: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per run of a deal's stays (``starts``): its first and furthest stage index, the stages
    it entered as bits, and whether its path was derived."""
    stage = stays["stage_index"].to_numpy().astype(np.int64)
    first = np.minimum.reduceat(stage, starts)
    furthest = np.maximum.reduceat(stage, starts)
    bits = np.bitwise_or.reduceat(np.left_shift(1, stage), starts)
    if "derived" in stays.columns:
        flags = stays["derived"].fill_null(value=False).to_numpy().astype(np.int64)
        path_derived = np.maximum.reduceat(flags, starts).astype(bool) | derived
    else:
        path_derived = np.full(len(starts), derived)
    return first, furthest, bits, path_derived


def _reached_of_paths(
    frame: pl.DataFrame,
    by_cols: list[str],
    starts: np.ndarray,
    first: np.ndarray,
    furthest: np.ndarray,
    bits: np.ndarray,
    path_derived: np.ndarray,
) -> pl.DataFrame:
    """:func:`_reached`'s rows of the deals whose stays start at rows ``starts`` of ``frame``
    (``opportunity_id``, ``by_cols``, ``outcome``), from their paths (:func:`_paths`)."""
    group, index, entered = _expand_paths(first, furthest, bits, path_derived)
    return frame[starts[group]].select(
        "opportunity_id",
        *by_cols,
        pl.Series("stage_index", index, dtype=pl.Int32),
        "outcome",
        pl.Series("entered", entered, dtype=pl.Boolean),
        pl.Series("at_furthest", index == furthest[group], dtype=pl.Boolean),
        pl.lit(value=False).alias("stage_unknown"),
    )


def _expand_paths(
    first: np.ndarray, furthest: np.ndarray, bits: np.ndarray, path_derived: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per deal x stage reached, from the deals' paths: the deal (its position), the stage
    index and whether it was entered; deals in order, each deal's stages in order."""
    spans = furthest - first + 1
    group = np.repeat(np.arange(len(first)), spans)
    offsets = np.cumsum(spans) - spans
    index = first[group] + (np.arange(len(group)) - offsets[group])
    entered = (np.right_shift(bits[group], index) & 1).astype(bool)
    keep = ~path_derived[group] | entered  # a derived path: only the stages entered
    return group[keep], index[keep], entered[keep]


def _expanded(given: Stays) -> tuple[np.ndarray, ...]:
    """:func:`_reached`'s rows of ``given`` (by ``rep_id``, not derived) as numpy: the
    deal's run, the stage index, entered, at the deal's furthest stage; kept for the draw.

    Stage by stage (the deals that reached each, in order): every reader counts them in
    bins, which no order changes, and a few passes over the deals per stage cost a third of
    :func:`_expand_paths`' per-row arithmetic.
    """
    if _LAST_EXPANDED and _LAST_EXPANDED[0][0] is given:
        return _LAST_EXPANDED[0][1]
    _, first, furthest, bits, path_derived = given.runs[:5]
    parts: list[tuple[np.ndarray, ...]] = []
    if len(first):
        for stage in range(int(first.min()), int(furthest.max()) + 1):
            entered = (np.right_shift(bits, stage) & 1).astype(bool)
            reached = (first <= stage) & (furthest >= stage) & (~path_derived | entered)
            group = np.flatnonzero(reached)
            parts.append(
                (group, np.full(len(group), stage), entered[group], furthest[group] == stage)
            )
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        parts.append((empty, empty, empty.astype(bool), empty.astype(bool)))
    expanded = tuple(np.concatenate(p) for p in zip(*parts, strict=True))
    _LAST_EXPANDED[:] = [(given, expanded)]
    return expanded


def _reached_grouped(stays: pl.DataFrame, by_cols: list[str], *, derived: bool) -> pl.DataFrame:
    """:func:`_reached` by a group-by per deal (any order of stays)."""
    flag = pl.col("derived").any() if "derived" in stays.columns else pl.lit(value=False)
    bit = pl.lit(2, dtype=pl.Int64).pow(pl.col("stage_index"))
    paths = stays.group_by("opportunity_id", *by_cols, "outcome").agg(
        first=pl.col("stage_index").min(),
        furthest=pl.col("stage_index").max(),
        entered_bits=bit.bitwise_or(),
        derived=flag | pl.lit(derived),
    )
    entered = (pl.col("entered_bits") // bit) % 2 == 1
    reached = (
        paths.with_columns(
            stage_index=pl.int_ranges("first", pl.col("furthest") + 1, dtype=pl.Int32)
        )
        .explode("stage_index")
        .filter(~pl.col("derived") | entered)  # a derived path: only the stages entered
        .select(
            "opportunity_id",
            *by_cols,
            "stage_index",
            "outcome",
            entered=entered,
            at_furthest=pl.col("stage_index") == pl.col("furthest"),
            stage_unknown=pl.lit(value=False),
        )
    )
    return reached


def _unknown_losses(data: _FlowData, stays: pl.DataFrame, by_cols: list[str]) -> pl.DataFrame:
    """Deals lost or closed with no decision that have no stage entry, at the first stage.

    Only where stage history was derived (a snapshot of current stages): there a loss gets
    no entry when the export does not say at which stage it was lost, so it is "lost, stage
    unknown", not a leak at the first stage. Rows shaped as :func:`_reached`'s.
    """
    return (
        _deals(data, by_cols)
        .filter(pl.col("outcome").is_in(LEAK_OUTCOMES))
        .join(stays.select("opportunity_id").unique(), on="opportunity_id", how="anti")
        .select(
            "opportunity_id",
            *by_cols,
            stage_index=pl.lit(0, dtype=pl.Int32),
            outcome="outcome",
            entered=pl.lit(value=False),
            at_furthest=pl.lit(value=True),
            stage_unknown=pl.lit(value=True),
        )
    )


def _counts(reached: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    here = pl.col("at_furthest")
    known = ~pl.col("stage_unknown")
    return reached.group_by(keys).agg(
        reached=pl.len().cast(pl.UInt32),
        entered=pl.col("entered").sum().cast(pl.UInt32),
        skipped=(~pl.col("entered") & known).sum().cast(pl.UInt32),
        converted=(~here | (pl.col("outcome") == "won")).sum().cast(pl.UInt32),
        leaked=(here & known & pl.col("outcome").is_in(LEAK_OUTCOMES)).sum().cast(pl.UInt32),
        no_decision=(here & known & (pl.col("outcome") == "no_decision")).sum().cast(pl.UInt32),
        lost_stage_unknown=(here & ~known).sum().cast(pl.UInt32),
        open=(here & (pl.col("outcome") == "open")).sum().cast(pl.UInt32),
    )


_FLOW_COLUMNS = [
    "stage",
    "stage_index",
    "reached",
    "entered",
    "skipped",
    "converted",
    "conversion",
    "leaked",
    "leakage",
    "no_decision",
    "no_decision_rate",
    "lost_stage_unknown",
    "open",
    "open_share",
    "median_days",
    "p90_days",
    "moves",
    "verified",
    "verified_recorded",
    "verification_rate",
    "blocked",
    "blocked_after_days",
]


def flow_table(
    tables_or_enriched: Enriched | dict[str, pl.DataFrame],
    *,
    settings: Settings | None = None,
    by: str | Sequence[str] | None = None,
    as_of: datetime | None = None,
    stage_path: str | None = None,
    stays: Stays | None = None,
) -> pl.DataFrame:
    """The buyer journey per stage: conversion, leakage, time in stage, verification, blockage.

    Parameters
    ----------
    tables_or_enriched
        An :class:`effortlens.enrich.Enriched`, or a dict of canonical tables holding
        ``opportunities`` and ``stage_history`` (and ``reps`` for owner columns in ``by``,
        ``buyer_actions`` to verify by buyer actions).
    settings
        Required with a dict of tables (for ``stages``, ``verifiers`` and the attribution
        window); defaults to the enriched load's.
    by
        Deal-owner columns: ``"segment"``, ``"team"``, ``"rep_id"``, or a list.
    as_of
        When open deals are censored and blockage is measured (default: the latest
        timestamp in the data).
    stage_path
        Default: read from the ``derived`` flag of ``stage_history``
        (:func:`effortlens.coverage.stage_path_of`): ``"recorded"``, ``"derived"``,
        ``"mixed"`` or ``"none"``. Giving ``"derived"`` for tables without the flag treats
        every entry as derived.
    stays
        The stays of ``source`` already made (:func:`stays_under`): ``as_of`` is then theirs
        and the stage history is not read. Their index's ``assume_derived`` must agree with
        ``stage_path``: true exactly for ``"derived"`` (else ``ValueError``).

    Notes
    -----
    Entries flagged ``derived`` were made from each deal's current stage (a snapshot
    export, :func:`effortlens.adapters.derivation.derived_stage_entries`). For a deal whose
    entries are derived:

    - it reaches only the stages it entered: no invented path between, nothing ``skipped``;
    - no time in stage, no move, no verification and no blockage is measured from its
      entries (their times are not when it entered a stage); when every deal is derived,
      ``median_days``, ``p90_days``, ``blocked`` and ``blocked_after_days`` are null;
    - **losses**: a deal lost or closed with no decision is counted where the export says
      it was: at its current (last) stage when the export gives one, *including the first
      stage* (a lost deal whose stage is the first stage was lost there, a leak); a lost deal
      whose stage the export does not give (its stage reads "Closed Lost", or is empty) has
      no entry, and is counted in ``lost_stage_unknown`` on the first stage's row (it entered
      the pipeline), never as a leak there. This applies where stage history was derived
      (``stage_path`` derived or mixed); with recorded history a deal without entries is
      left out, as before.

    Returns
    -------
    pl.DataFrame
        ``by`` columns, then ``stage``, ``stage_index``, ``reached``, ``entered``,
        ``skipped``, ``converted``, ``conversion``, ``leaked``, ``leakage``, ``no_decision``,
        ``no_decision_rate``, ``lost_stage_unknown``, ``open``, ``open_share``,
        ``median_days``, ``p90_days``,
        ``moves`` (entries that were not a deal's first), ``verified`` and
        ``verified_recorded`` (moves backed by buyer evidence, and by a recorded
        ``verifier_action_id``), ``verification_rate`` (verified / moves), ``blocked`` (open
        deals currently there past the stage's historical p90) and ``blocked_after_days``
        (that p90, over all deals), ``stage_path``; one row per stage in the
        settings' order (per ``by`` group, stages the group's deals reached). Rates are null
        where nothing reached (or moved into) the stage. Conversion + leakage + open share
        + ``lost_stage_unknown`` / reached = 1.

    Examples
    --------
    >>> flow_table(enriched).select("stage", "conversion", "leakage")  # doctest: +SKIP
    """
    if stage_path not in (None, "recorded", "derived", "mixed", "none"):
        raise ValueError(f"stage_path {stage_path!r}: recorded, derived, mixed or none")
    data = _flow_data(tables_or_enriched, settings, needs=_needs(stays))
    if stage_path is None:
        if data.stage_history is None:
            raise ValueError("flow_table with given stays needs their stage_path")
        stage_path = stage_path_of(data.stage_history)[0]
    if stays is not None and (stage_path == "derived") != stays.assume_derived:
        made = "with" if stays.assume_derived else "without"
        raise ValueError(
            f"flow_table: stage_path {stage_path!r} with stays from a stay_index made {made} "
            f"assume_derived: their reached stages differ (make the index with "
            f"assume_derived={stage_path == 'derived'})"
        )
    by_cols = _by_list(by)
    given = stays
    stays = _stays(
        data,
        list(dict.fromkeys([*by_cols, "rep_id"])),
        None if stays is not None else _as_of(data, as_of),
        assume_derived=stage_path == "derived",
        given=stays,
    )
    by_duration = None
    if given is not None and stays is given.frame and not by_cols:
        by_duration = given.by_duration
        if stage_path in ("recorded", "none") and not bool(stays["derived"].any()):
            table = _flow_of_runs(data, stays, given)
            if table is not None:
                return table.with_columns(stage_path=pl.lit(stage_path, dtype=pl.String))
    derived = stage_path == "derived" or (stays.height > 0 and bool(stays["derived"].all()))
    keys = [*by_cols, "stage_index"]
    owners = list(dict.fromkeys([*by_cols, "rep_id"]))  # as the stage flags read them
    reached = _reached(stays, owners)
    if stage_path in ("derived", "mixed") or bool(stays["derived"].any()):
        unknown = _unknown_losses(data, stays, owners)
        unknown = unknown.with_columns(pl.col("outcome").cast(reached.schema["outcome"]))
        reached = pl.concat([reached, unknown], how="vertical_relaxed")
    counts = _counts(reached, keys)
    timing = _time_in_stage(stays, by=by_cols, historical=False, by_duration=by_duration).select(
        *keys, "median_days", "p90_days"
    )
    # the rest as one query (a few small frames: each eager step costs a query's overhead)
    moves = stays.lazy().filter(pl.col("move") & ~pl.col("derived"))
    verification = moves.group_by(keys).agg(
        moves=pl.len().cast(pl.UInt32),
        verified=pl.col("verified").sum().cast(pl.UInt32),
        verified_recorded=(pl.col("verified_by") == "verifier_action_id").sum().cast(pl.UInt32),
    )
    blocked = (
        _blocked(stays, [c for c in by_cols if c != "rep_id"])
        .lazy()
        .join(_stage_order(data.settings).lazy(), on="stage")
        .group_by(keys)
        .agg(blocked=pl.len().cast(pl.UInt32))
    )
    skeleton = (
        _stage_order(data.settings)
        .lazy()
        .join(
            _blockage_thresholds(stays)
            .lazy()
            .select("stage_index", blocked_after_days="threshold_days"),
            on="stage_index",
            how="left",
        )
    )
    if by_cols:
        skeleton = counts.lazy().select(by_cols).unique().join(skeleton, how="cross")
    table = (
        skeleton.join(counts.lazy(), on=keys, how="left", nulls_equal=True)  # may be empty
        .join(timing.lazy(), on=keys, how="left", nulls_equal=True)
        .join(verification, on=keys, how="left", nulls_equal=True)
        .join(blocked, on=keys, how="left", nulls_equal=True)
        .with_columns(
            pl.col(
                "reached",
                "entered",
                "skipped",
                "converted",
                "leaked",
                "no_decision",
                "lost_stage_unknown",
                "open",
                "moves",
                "verified",
                "verified_recorded",
                "blocked",
            ).fill_null(0)
        )
    )
    if by_cols:
        table = table.filter(pl.col("reached") > 0)

    def share(count: str, base: str = "reached") -> pl.Expr:
        return pl.when(pl.col(base) > 0).then(pl.col(count) / pl.col(base))

    table = table.with_columns(
        conversion=share("converted"),
        leakage=share("leaked"),
        no_decision_rate=share("no_decision"),
        open_share=share("open"),
        verification_rate=share("verified", "moves"),
    )
    if derived:  # a snapshot says where deals are, not when they moved: nothing timed
        table = table.with_columns(
            pl.lit(None, dtype=pl.Float64).alias(c)
            for c in ("median_days", "p90_days", "blocked_after_days")
        ).with_columns(blocked=pl.lit(None, dtype=pl.UInt32))
    return (
        table.select(*by_cols, *_FLOW_COLUMNS)
        .with_columns(stage_path=pl.lit(stage_path, dtype=pl.String))
        .sort(keys)
        .collect()
    )


def _flow_of_runs(data: _FlowData, stays: pl.DataFrame, given: Stays) -> pl.DataFrame | None:
    """:func:`flow_table` without ``by`` of given stays with nothing derived, by numpy bin
    counts of their runs and rows instead of group-bys and joins (the same numbers); None
    when a part cannot be read so (the stays out of duration order, unknown stages)."""
    order = _stage_order(data.settings)
    size = order.height
    if _given_of(stays) is not given or stays.schema["stage"] == pl.String:
        return None
    found = _blocked_rows(given, stays)
    timing = _time_in_stage(stays, by=None, historical=False, by_duration=given.by_duration)
    if found is None or timing.height and int(timing["stage_index"].max()) >= size:
        return None
    group, index, entered, at_furthest = _expanded(given)
    outcome = given.runs[5][group]
    stage = stays["stage_index"].to_numpy()
    if len(index) and int(index.max()) >= size or len(stage) and int(stage.max()) >= size:
        return None
    move = stays["move"].to_numpy() & ~stays["derived"].to_numpy()  # derived: none
    verified = stays["verified"].to_numpy()
    recorded = given.recorded
    if recorded is None or len(recorded) != stays.height:
        return None

    # one bin count per kind of row: the deal x stage rows by (stage, entered, at the
    # furthest stage, outcome code), the stays by (stage, move, verified, recorded)
    key = ((index * 2 + entered) * 2 + at_furthest) * 8 + outcome
    cells = np.bincount(key, minlength=size * 32).reshape(size, 2, 2, 8)
    furthest = cells[:, :, 1, :].sum(axis=1)  # per stage x outcome, at the furthest stage
    won, nd, is_open = (_OUTCOME_CODE[o] for o in ("won", "no_decision", "open"))
    key = ((stage.astype(np.int64) * 2 + move) * 2 + verified) * 2 + recorded
    moved = np.bincount(key, minlength=size * 8).reshape(size, 2, 2, 2)[:, 1]
    counts = {
        "reached": cells.sum(axis=(1, 2, 3)),
        "entered": cells[:, 1].sum(axis=(1, 2)),
        "skipped": cells[:, 0].sum(axis=(1, 2)),
        "converted": cells[:, :, 0, :].sum(axis=(1, 2)) + furthest[:, won],
        "leaked": furthest[:, list(_LEAK_CODES)].sum(axis=1),
        "no_decision": furthest[:, nd],
        "lost_stage_unknown": np.zeros(size, dtype=np.int64),
        "open": furthest[:, is_open],
        "moves": moved.sum(axis=(1, 2)),
        "verified": moved[:, 1].sum(axis=1),
        "verified_recorded": moved[:, :, 1].sum(axis=1),
        "blocked": np.bincount(found[1], minlength=size),
    }

    # a few values per stage: Python lists (a Series' fill_nan or scatter is a query each)
    def share(part: str, base: str = "reached") -> pl.Series:
        whole = counts[base].astype(np.float64).tolist()
        values = [
            c / w if w > 0 else None
            for c, w in zip(counts[part].astype(np.float64).tolist(), whole, strict=True)
        ]
        return pl.Series(values, dtype=pl.Float64)

    def by_stage(frame: pl.DataFrame, column: str) -> pl.Series:
        values: list[float | None] = [None] * size
        for at, value in zip(frame["stage_index"].to_list(), frame[column].to_list(), strict=True):
            values[at] = value
        return pl.Series(column, values, dtype=pl.Float64)

    thresholds = _blockage_thresholds(stays)
    columns = {name: pl.Series(name, values.astype(np.uint32)) for name, values in counts.items()}
    return pl.DataFrame(
        {
            "stage": order["stage"],
            "stage_index": order["stage_index"],
            **{c: columns[c] for c in ("reached", "entered", "skipped", "converted")},
            "conversion": share("converted"),
            "leaked": columns["leaked"],
            "leakage": share("leaked"),
            "no_decision": columns["no_decision"],
            "no_decision_rate": share("no_decision"),
            "lost_stage_unknown": columns["lost_stage_unknown"],
            "open": columns["open"],
            "open_share": share("open"),
            "median_days": by_stage(timing, "median_days"),
            "p90_days": by_stage(timing, "p90_days"),
            "moves": columns["moves"],
            "verified": columns["verified"],
            "verified_recorded": columns["verified_recorded"],
            "verification_rate": share("verified", "moves"),
            "blocked": columns["blocked"],
            "blocked_after_days": by_stage(thresholds, "threshold_days"),
        }
    )


def leakage_homogeneity(flow: pl.DataFrame) -> dict[str, float]:
    """Chi-square test that deals leak at the same rate at every stage.

    Among deals whose fate at a stage is known (``leaked`` there or ``converted`` beyond it;
    deals still open there are left out), Pearson's chi-square of the stages x (leaked,
    converted) table. A deal that leaves stage *k* counts once at each stage it passed, which
    is the discrete-time hazard likelihood, so the test is valid.

    Parameters
    ----------
    flow
        A :func:`flow_table` without ``by``.

    Returns
    -------
    dict
        ``chi2``, ``dof``, ``p_value`` (``nan`` with fewer than two testable stages).

    Examples
    --------
    >>> leakage_homogeneity(flow_table(enriched))["p_value"]  # doctest: +SKIP
    """
    from scipy import stats

    table = flow.filter(pl.col("leaked") + pl.col("converted") > 0).select(
        pl.col("leaked").cast(pl.Float64), pl.col("converted").cast(pl.Float64)
    )
    if table.height < 2 or (table.sum().row(0)[0] == 0) or (table.sum().row(0)[1] == 0):
        return {"chi2": float("nan"), "dof": 0, "p_value": float("nan")}
    result = stats.chi2_contingency(table.to_numpy(), correction=False)
    return {
        "chi2": float(result.statistic),
        "dof": int(result.dof),
        "p_value": float(result.pvalue),
    }


#: Effect sizes a stage needs before it is called leaky or stalled (besides the test).
MIN_LEAK_RATIO = 1.5
MIN_LEAK_POINTS = 0.05
MIN_STAY_RATIO = 1.5
#: Family-wise error rate of the per-stage tests (Bonferroni over the stages tested).
STAGE_ALPHA = 0.05


def _rep_stage_sums(
    frame: pl.DataFrame, values: dict[str, pl.Expr], stages: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per rep (rows, every rep of ``frame``, a null one too) x stage index: the sums of each
    of ``values`` (shape reps x stages x values), and the rows per stage index; one select
    and numpy bin counts (a rep's code is its ``rep_id`` when that is an integer code)."""
    rep = pl.col("rep_id")
    coded = frame.schema["rep_id"].is_integer() and frame["rep_id"].null_count() == 0
    cells = frame.select(
        rep if coded else rep.rank("dense").fill_null(0),
        pl.col("stage_index"),
        *(expr.fill_null(0).cast(pl.Float64).alias(name) for name, expr in values.items()),
    )
    code = cells["rep_id"].to_numpy().astype(np.int64)
    stage = cells["stage_index"].to_numpy().astype(np.int64)
    return _code_stage_sums(code, stage, {name: cells[name].to_numpy() for name in values}, stages)


def _code_stage_sums(
    code: np.ndarray, stage: np.ndarray, values: dict[str, np.ndarray], stages: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_rep_stage_sums` of rows given as numpy: each row's rep code (reps in code
    order), stage index and the values summed."""
    code, stage = code.astype(np.int64), stage.astype(np.int64)
    seen = np.zeros(int(code.max()) + 1 if len(code) else 0, dtype=bool)
    seen[code] = True
    row = (np.cumsum(seen) - 1)[code]  # the reps present, in code order
    reps = int(seen.sum())
    cell = row * stages + stage
    sums = np.empty((reps, stages, len(values)))
    for j, name in enumerate(values):
        weights = values[name]
        sums[:, :, j] = np.bincount(cell, weights=weights, minlength=reps * stages).reshape(
            reps, stages
        )
    return sums, np.bincount(stage, minlength=stages)


def _flag_sums(
    given: Stays, stays: pl.DataFrame, stages: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`stage_flags`' per rep x stage sums of ``given`` (its frame ``stays``) from its
    runs: the deal x stage rows' leaks and known fates, the stays' ends and days, and the
    stays per stage; the same rows in the same order as the frames' (equal sums)."""
    group, index, _, at_furthest = _expanded(given)
    starts, outcome, rep = given.runs[0], given.runs[5], given.runs[6]
    seen = np.zeros(int(rep.max()) + 1 if len(rep) else 0, dtype=bool)
    seen[rep] = True
    row = (np.cumsum(seen) - 1)[rep]  # per deal, its rep's row: the reps present, in order
    reps = int(seen.sum())
    # the deal x stage rows by cell (rep x stage), at the furthest stage and outcome code:
    # the leaks and known fates are sums of these counts (whole numbers, exact as floats)
    cell = row[group] * stages + index
    counted = np.bincount(
        (cell * 2 + at_furthest) * 8 + outcome[group], minlength=reps * stages * 16
    ).reshape(reps, stages, 2, 8)
    leaked = counted[:, :, 1, list(_LEAK_CODES)].sum(axis=2)
    converted = counted[:, :, 0, :].sum(axis=2) + counted[:, :, 1, _OUTCOME_CODE["won"]]
    leak = np.empty((reps, stages, 2))
    leak[:, :, 0] = leaked
    leak[:, :, 1] = leaked + converted
    lengths = np.diff(np.append(starts, stays.height))
    stage = stays["stage_index"].to_numpy().astype(np.int64)
    cell = np.repeat(row, lengths) * stages + stage
    ended = stays["ended"].to_numpy()
    time = np.empty((reps, stages, 2))
    time[:, :, 0] = np.bincount(cell * 2 + ended, minlength=reps * stages * 2).reshape(
        reps, stages, 2
    )[:, :, 1]
    days = stays["days"].fill_null(0).to_numpy().astype(np.float64)
    time[:, :, 1] = np.bincount(cell, weights=days, minlength=reps * stages).reshape(reps, stages)
    return leak, time, np.bincount(stage, minlength=stages)


def _clustered_z(influence: np.ndarray, difference: float) -> float:
    """``difference`` over its rep-cluster (sandwich) standard error."""
    r = len(influence)
    if r < 2:
        return float("nan")
    var = float((influence**2).sum()) * r / (r - 1)
    return difference / var**0.5 if var > 0 else float("nan")


def stage_flags(
    source: Enriched | dict[str, pl.DataFrame],
    *,
    settings: Settings | None = None,
    as_of: datetime | None = None,
    min_leak_ratio: float = MIN_LEAK_RATIO,
    min_leak_points: float = MIN_LEAK_POINTS,
    min_stay_ratio: float = MIN_STAY_RATIO,
    alpha: float = STAGE_ALPHA,
    stays: Stays | None = None,
) -> pl.DataFrame:
    """Which stage leaks or stalls beyond the others: an effect size *and* a test, per stage.

    A reader of :func:`flow_table` would take the largest leakage or the longest median as
    "the" leaky or stalled stage, and some stage always is largest, even when every stage
    behaves alike. Here a stage is named only when it differs from the other stages by a
    set amount and by more than chance.

    - **Leaky**: the stage's leak hazard (deals that ended lost or with no decision there,
      over deals whose fate there is known: they leaked or moved on) against the hazard of
      all other stages pooled. Leaky when the hazard is at least ``min_leak_ratio`` times
      and ``min_leak_points`` above the others', and the one-sided test of the difference
      rejects at ``alpha`` after Bonferroni over the stages tested.
    - **Stalled**: the stage's exit rate (stays that ended, over days spent there, open
      stays counting their days so far: the censored exponential rate) against the other
      stages'. ``stay_ratio`` = others' rate / the stage's rate, how many times longer a
      stay there lasts; stalled when at least ``min_stay_ratio`` and the one-sided test of
      the log ratio rejects as above.
    - Deals of one rep are not independent (a rep's pipeline shares its buyers and habits),
      so both tests use standard errors clustered by deal owner (sandwich, over reps).

    Parameters
    ----------
    source, settings, as_of
        As in :func:`flow_table`.
    min_leak_ratio, min_leak_points, min_stay_ratio
        The effect sizes.
    alpha
        Family-wise error rate over the stages.
    stays
        The stays of ``source`` already made (:func:`stays_under`): ``as_of`` is then theirs
        and the stage history is not read.

    Returns
    -------
    pl.DataFrame
        ``stage``, ``stage_index``, ``fate_known``, ``leak_hazard``, ``others_leak_hazard``,
        ``leak_ratio``, ``leak_p`` (Bonferroni-adjusted), ``leaky``, ``stays``,
        ``stay_ratio``, ``stall_p`` (adjusted), ``stalled``; one row per stage in order.
        No stage flagged means "no stage stands out".

    Examples
    --------
    >>> stage_flags(enriched).filter("leaky")["stage"].to_list()  # doctest: +SKIP
    ['evaluation']
    """
    data = _flow_data(source, settings, needs=_needs(stays))
    cutoff = None if stays is not None else _as_of(data, as_of)
    stays = _stays(data, ["rep_id"], cutoff, given=stays)
    order = _stage_order(data.settings)
    # one pass each: per rep x stage sums; a stage's "others" are the rep's total minus it
    given = _given_of(stays)
    if given is not None:  # the same sums from the runs' numpy arrays
        leak, time, per_stage = _flag_sums(given, stays, order.height)
    else:
        reached = _reached(stays, ["rep_id"])
        leaked = pl.col("at_furthest") & pl.col("outcome").is_in(LEAK_OUTCOMES)
        converted = ~pl.col("at_furthest") | (pl.col("outcome") == "won")
        leak, _ = _rep_stage_sums(
            reached,
            {"leaked": leaked, "fate": leaked.cast(pl.Float64) + converted.cast(pl.Float64)},
            order.height,
        )
        time, per_stage = _rep_stage_sums(
            stays, {"ended": pl.col("ended"), "days": pl.col("days")}, order.height
        )
    leak_all, time_all = leak.sum(axis=1), time.sum(axis=1)
    counts = dict(enumerate(per_stage.tolist()))
    rows = []
    for stage, index in order.iter_rows():
        row: dict[str, Any] = {"stage": stage, "stage_index": index}
        leaked_in, fate_in = leak[:, index, 0], leak[:, index, 1]
        leaked_out, fate_out = leak_all[:, 0] - leaked_in, leak_all[:, 1] - fate_in
        f_in, f_out = fate_in.sum(), fate_out.sum()
        row["fate_known"] = int(f_in)
        if f_in > 0 and f_out > 0:
            h_in = leaked_in.sum() / f_in
            h_out = leaked_out.sum() / f_out
            influence = (leaked_in - h_in * fate_in) / f_in - (
                leaked_out - h_out * fate_out
            ) / f_out
            z = _clustered_z(influence, h_in - h_out)
            row |= {
                "leak_hazard": h_in,
                "others_leak_hazard": h_out,
                "leak_ratio": h_in / h_out if h_out > 0 else None,
                "leak_p": normal_sf(z) if z == z else None,
            }
        ended_in, days_in = time[:, index, 0], time[:, index, 1]
        ended_out, days_out = time_all[:, 0] - ended_in, time_all[:, 1] - days_in
        e_in, e_out = ended_in.sum(), ended_out.sum()
        d_in, d_out = days_in.sum(), days_out.sum()
        row["stays"] = int(counts.get(index, 0))
        if min(e_in, e_out) > 0 and min(d_in, d_out) > 0:
            ratio = (e_out / d_out) / (e_in / d_in)
            influence = (ended_out / e_out - days_out / d_out) - (ended_in / e_in - days_in / d_in)
            z = _clustered_z(influence, float(np.log(ratio)))
            row |= {"stay_ratio": ratio, "stall_p": normal_sf(z) if z == z else None}
        rows.append(row)
    schema = {
        "stage": pl.String,
        "stage_index": pl.Int32,
        "fate_known": pl.Int64,
        "leak_hazard": pl.Float64,
        "others_leak_hazard": pl.Float64,
        "leak_ratio": pl.Float64,
        "leak_p": pl.Float64,
        "stays": pl.Int64,
        "stay_ratio": pl.Float64,
        "stall_p": pl.Float64,
    }
    table = pl.DataFrame(rows, schema=schema)
    tested_leak = max(int(table["leak_p"].is_not_null().sum()), 1)
    tested_stall = max(int(table["stall_p"].is_not_null().sum()), 1)
    return (
        table.with_columns(
            leak_p=(pl.col("leak_p") * tested_leak).clip(upper_bound=1.0),
            stall_p=(pl.col("stall_p") * tested_stall).clip(upper_bound=1.0),
        )
        .with_columns(
            leaky=(
                (pl.col("leak_ratio") >= min_leak_ratio)
                & (pl.col("leak_hazard") - pl.col("others_leak_hazard") >= min_leak_points)
                & (pl.col("leak_p") < alpha)
            ).fill_null(False),
            stalled=(
                (pl.col("stay_ratio") >= min_stay_ratio) & (pl.col("stall_p") < alpha)
            ).fill_null(False),
        )
        .select(
            "stage",
            "stage_index",
            "fate_known",
            "leak_hazard",
            "others_leak_hazard",
            "leak_ratio",
            "leak_p",
            "leaky",
            "stays",
            "stay_ratio",
            "stall_p",
            "stalled",
        )
    )
