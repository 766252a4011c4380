"""Enrichment: the facts every metric reads, computed once per load and cached as Parquet.

:func:`enrich` attributes every buyer action (see :mod:`effortlens.attribution`), counts the
responses each activity earned, adds local calendar columns (in ``settings.timezone``) and the
rep's team, segment, role and peer group, and rolls everything up to one row per
rep × day × activity type (``daily``), which is small enough to filter and aggregate at
interactive speed. The result is cached under a fingerprint of the inputs and settings (see
:mod:`effortlens.cache`).

Examples
--------
>>> from effortlens.loading import load_folder  # doctest: +SKIP
>>> enriched = enrich(load_folder(folder, settings=settings))  # doctest: +SKIP
>>> enriched.daily.columns[:4]  # doctest: +SKIP
['rep_id', 'day', 'week', 'activity_type']
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import polars as pl

from effortlens.attribution import LEVELS, attribution_rows, with_attribution
from effortlens.cache import default_cache_dir, fingerprint, read_cached, write_cached
from effortlens.coverage import with_known_groups
from effortlens.peers import with_peer_group
from effortlens.schema import TABLES, conform
from effortlens.settings import Settings

#: Rep columns copied onto activities and daily rows.
REP_COLUMNS: tuple[str, ...] = ("team", "segment", "role", "peer_group")

#: Local calendar columns (in the settings' time zone) added to activities and actions.
CALENDAR = {"day": pl.Date(), "week": pl.Date(), "weekday": pl.Int8(), "hour": pl.Int8()}

ACTIVITY_EXTRA = {
    "is_customer_facing": pl.Boolean(),
    "hours": pl.Float64(),
    "n_responses": pl.UInt32(),
    "response_weight": pl.Float64(),
    "verifier_responses": pl.UInt32(),
    "responded": pl.Boolean(),
    **CALENDAR,
    **dict.fromkeys(REP_COLUMNS, pl.String()),
}
ACTION_EXTRA = {
    "activity_id": pl.String(),
    "attribution_level": pl.String(),
    "rep_id": pl.String(),
    "lag_hours": pl.Float64(),
    "buyer_initiated": pl.Boolean(),
    "day": pl.Date(),
    "week": pl.Date(),
}
#: Schemas of the enriched activities and actions: the canonical columns, then the added ones.
ACTIVITIES_SCHEMA = pl.Schema({**TABLES["activities"].columns, **ACTIVITY_EXTRA})
ACTIONS_SCHEMA = pl.Schema({**TABLES["buyer_actions"].columns, **ACTION_EXTRA})
DAILY_SCHEMA = pl.Schema(
    {
        "rep_id": pl.String(),
        "day": pl.Date(),
        "week": pl.Date(),
        "activity_type": pl.String(),
        "is_customer_facing": pl.Boolean(),
        "activities": pl.UInt32(),
        "hours": pl.Float64(),
        "responded": pl.UInt32(),
        "response_weight": pl.Float64(),
        "no_impact_hours": pl.Float64(),
        **dict.fromkeys(REP_COLUMNS, pl.String()),
    }
)
_FACTS = ("activities", "actions", "daily", "reps")
#: The attribution levels as an ``Enum`` of sorted names (:func:`enrich_tables` with ``coded``).
LEVEL_ENUM = pl.Enum(sorted(name for name, _ in LEVELS))
#: The activities' text columns :func:`enrich_tables` with ``coded`` takes as given when they
#: come as an ``Enum`` of their sorted distinct values (a partition of the partitioned build
#: reads them so: :func:`effortlens.partitioned.read_partition`).
CODED_INPUT: tuple[str, ...] = ("rep_id", "activity_type")


class Enriched:
    """The enriched facts of one load.

    Activities and actions may be held eagerly (a ``DataFrame``) or as a ``LazyFrame`` scanned
    from built facts (:mod:`effortlens.facts`); the attributes :attr:`activities` and
    :attr:`actions` always give a ``DataFrame`` (a lazy one is collected on first use and kept),
    :meth:`lazy` gives a ``LazyFrame`` to select and filter before collecting. A kernel that
    holds a build keeps only ``daily``, ``reps`` and the small tables in memory.

    Attributes
    ----------
    activities
        Canonical activities (in the loaded order) plus ``is_customer_facing``, ``hours``,
        ``n_responses``, ``response_weight``, ``verifier_responses``, ``responded``, local
        ``day``, ``week`` (Monday), ``weekday`` (ISO, Mon=1), ``hour`` and the rep's ``team``,
        ``segment``, ``role``, ``peer_group``.
    actions
        Canonical buyer actions plus ``activity_id`` (null = buyer-initiated),
        ``attribution_level``, ``rep_id``, ``lag_hours``, ``buyer_initiated``, local ``day``
        and ``week``.
    daily
        One row per rep × local day × activity type: ``activities``, ``hours``,
        ``responded``, ``response_weight``, ``no_impact_hours`` and the rep columns.
    reps
        Canonical reps plus ``peer_group``.
    tables
        The loaded canonical tables, unchanged (the two event tables may be lazy: reading
        ``tables["activities"]`` collects it).
    settings
        The settings used.
    fingerprint
        The cache key: a hash of the input tables, the settings and the code.
    aggregates
        Facts precomputed at build time for the views that would otherwise sort events
        (``"touches"``: one row per customer-facing touch with its cadence bin, sequences and
        habit credit, :func:`effortlens.habits.touch_facts`; ``"streaks"``: every silent run
        of two or more touches, :func:`effortlens.roe.streak_facts`), as lazy scans of the
        build; empty when the facts were enriched in memory (the views then read events).
        Unfiltered: a view applies its filter (:func:`effortlens.filters.filter_frame`).

    Examples
    --------
    >>> import polars as pl
    >>> from effortlens.settings import load_settings
    >>> e = enrich_tables({}, settings=load_settings())
    >>> lazy = e.replace(activities=e.activities.lazy())
    >>> lazy.is_lazy, lazy.activities.height, lazy.n_activities
    (True, 0, 0)
    """

    __slots__ = (
        "_events",
        "_held_daily",
        "aggregates",
        "reps",
        "tables",
        "settings",
        "fingerprint",
    )

    def __init__(
        self,
        activities: pl.DataFrame | pl.LazyFrame,
        actions: pl.DataFrame | pl.LazyFrame,
        daily: pl.DataFrame | pl.LazyFrame | Once,
        reps: pl.DataFrame,
        tables: Mapping[str, pl.DataFrame | pl.LazyFrame],
        settings: Settings,
        fingerprint: str = "",
        aggregates: Mapping[str, pl.LazyFrame] | None = None,
    ) -> None:
        """Hold the facts; ``activities``, ``actions`` and ``daily`` may be lazy."""
        self._events = {"activities": activities, "actions": actions}
        self.aggregates = dict(aggregates or {})
        self._held_daily = daily if isinstance(daily, Once) else Once(daily)
        self.reps = reps
        self.tables = tables if isinstance(tables, Tables) else Tables(tables)
        self.settings = settings
        self.fingerprint = fingerprint

    @property
    def daily(self) -> pl.DataFrame:
        """The daily roll-up (collected on first use when lazy: a filtered view's roll-up is
        made only if a view reads it, see :func:`effortlens.filters.filter_enriched`)."""
        return self._held_daily.made()

    @property
    def daily_is_made(self) -> bool:
        """False while ``daily`` is a lazy query not yet collected (a filtered view's)."""
        return isinstance(self._held_daily.frame, pl.DataFrame)

    @daily.setter
    def daily(self, frame: pl.DataFrame | pl.LazyFrame) -> None:
        self._held_daily = Once(frame)

    @property
    def activities(self) -> pl.DataFrame:
        """The enriched activities (collected on first use when lazy)."""
        return self._collected("activities")

    @property
    def actions(self) -> pl.DataFrame:
        """The enriched buyer actions (collected on first use when lazy)."""
        return self._collected("actions")

    def _collected(self, name: str) -> pl.DataFrame:
        frame = self._events[name]
        if isinstance(frame, pl.LazyFrame):
            frame = self._events[name] = frame.collect()
        return frame

    def lazy(self, name: str) -> pl.LazyFrame:
        """``"activities"`` or ``"actions"`` as a ``LazyFrame``: select and filter, then
        collect only what a view needs."""
        return self._events[name].lazy()

    @property
    def is_lazy(self) -> bool:
        """True while the activities are not in memory (read from built facts)."""
        return isinstance(self._events["activities"], pl.LazyFrame)

    @property
    def n_activities(self) -> int:
        """How many activities there are, without collecting them (from ``daily``)."""
        if not self.is_lazy:
            return self._events["activities"].height
        return int(self.daily["activities"].sum() or 0)

    def replace(self, **changes: Any) -> Enriched:
        """A copy with some fields replaced (``activities=``, ``daily=``, …)."""
        fields = {
            "activities": self._events["activities"],
            "actions": self._events["actions"],
            "daily": self._held_daily,  # a lazy one stays lazy, collected once for all copies
            "reps": self.reps,
            "tables": self.tables,
            "settings": self.settings,
            "fingerprint": self.fingerprint,
            "aggregates": self.aggregates,
        }
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Enriched has no field {sorted(unknown)[0]!r}")
        return Enriched(**{**fields, **changes})

    def holding(
        self,
        daily_columns: Sequence[str] | None = None,
        *,
        types: Mapping[str, pl.DataType] | None = None,
    ) -> Enriched:
        """A copy whose ``daily`` holds only ``daily_columns`` (those it has, in its order;
        ``None``: all), those named in ``types`` cast to their type: a page whose views read
        no other column of the roll-up holds less (the journey page sums no hours: 115 MB
        less at 10M activities), and a page may hold ``rep_id`` as categorical codes (2 bytes
        a row instead of 16). A ``daily`` not made yet (a build's scan) is then read so; a
        made one is selected and cast.

        Examples
        --------
        >>> from effortlens.settings import load_settings
        >>> e = enrich_tables({}, settings=load_settings())
        >>> e.holding(["rep_id", "day", "activities", "nowhere"]).daily.columns
        ['rep_id', 'day', 'activities']
        >>> e.holding(types={"rep_id": pl.Categorical()}).daily.schema["rep_id"]
        Categorical
        """
        held = self._held_daily
        frame = held.made() if held.deferred else held.frame
        names = frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns
        kept = names if daily_columns is None else [c for c in names if c in set(daily_columns)]
        casts = [pl.col(c).cast(t) for c, t in (types or {}).items() if c in kept]
        if kept == names and not casts:
            return self
        frame = frame.select(kept)
        return self.replace(daily=Once(frame.with_columns(casts), engine=held.engine))

    def __replace__(self, **changes: Any) -> Enriched:  # copy.replace (Python 3.13)
        return self.replace(**changes)

    def __repr__(self) -> str:
        kind = "lazy" if self.is_lazy else f"{self.n_activities} activities"
        return f"Enriched({kind}, {self.daily.height} daily rows, {self.reps.height} reps)"


class Once:
    """A frame that may be a lazy query, collected the first time it is asked for, or a
    function that makes it, called the first time (:func:`enrich_tables`' roll-up: a
    partition of the partitioned build never reads it); shared by the copies of an
    :class:`Enriched` (:meth:`Enriched.replace`), so that it is made once.

    ``engine``: how a lazy one is collected (a build's roll-up: ``"streaming"``,
    :mod:`effortlens.facts`).

    Examples
    --------
    >>> once = Once(pl.LazyFrame({"a": [1, 2]}))
    >>> once.made() is once.made(), isinstance(once.frame, pl.DataFrame)
    (True, True)
    >>> later = Once(lambda: pl.DataFrame({"a": [1]}))
    >>> later.deferred, later.made().height, later.deferred
    (True, 1, False)
    """

    __slots__ = ("engine", "frame")

    def __init__(
        self,
        frame: pl.DataFrame | pl.LazyFrame | Callable[[], pl.DataFrame],
        *,
        engine: str = "auto",
    ) -> None:
        """Hold ``frame``, collected with ``engine`` (if lazy) or called (if a function) when
        first made."""
        self.frame = frame
        self.engine = engine

    @property
    def deferred(self) -> bool:
        """True while the frame is a function not called yet."""
        return not isinstance(self.frame, pl.DataFrame | pl.LazyFrame)

    def made(self) -> pl.DataFrame:
        """The frame, collected or made now if it is not yet (and kept)."""
        if isinstance(self.frame, pl.LazyFrame):
            self.frame = self.frame.collect(engine=self.engine)
        elif self.deferred:
            self.frame = self.frame()
        return self.frame


def events(enriched: Any, name: str) -> pl.LazyFrame:
    """``enriched``'s ``"activities"`` or ``"actions"`` as a ``LazyFrame``, never collecting a
    lazy scan (any object with those attributes works, e.g. a test's stand-in).

    Examples
    --------
    >>> from effortlens.settings import load_settings
    >>> events(enrich_tables({}, settings=load_settings()), "actions").collect().height
    0
    """
    lazy = getattr(enriched, "lazy", None)
    return lazy(name) if callable(lazy) else getattr(enriched, name).lazy()


def precomputed(enriched: Any, name: str) -> pl.LazyFrame | None:
    """The build's precomputed fact ``name`` (see :attr:`Enriched.aggregates`) as an unfiltered
    ``LazyFrame``, or None when ``enriched`` was not read from a build that has it.

    Examples
    --------
    >>> from effortlens.settings import load_settings
    >>> precomputed(enrich_tables({}, settings=load_settings()), "streaks") is None
    True
    """
    return (getattr(enriched, "aggregates", None) or {}).get(name)


def table(enriched: Any, name: str) -> pl.LazyFrame:
    """Canonical table ``name`` of ``enriched`` as a ``LazyFrame`` (never collecting)."""
    tables = enriched.tables
    return tables.lazy(name) if isinstance(tables, Tables) else tables[name].lazy()


def has_rows(frame: pl.DataFrame | pl.LazyFrame) -> bool:
    """Whether ``frame`` has a row, reading at most one of a lazy scan."""
    if isinstance(frame, pl.DataFrame):
        return frame.height > 0
    return frame.head(1).collect().height > 0


class Tables(dict):
    """The canonical tables; a lazy one is collected when it is first looked up.

    Examples
    --------
    >>> import polars as pl
    >>> t = Tables({"reps": pl.LazyFrame({"rep_id": ["r1"]})})
    >>> t["reps"].height, t.get("none") is None
    (1, True)
    """

    def __getitem__(self, name: str) -> pl.DataFrame:
        frame = super().__getitem__(name)
        if isinstance(frame, pl.LazyFrame):
            frame = frame.collect()
            super().__setitem__(name, frame)
        return frame

    def get(self, name: str, default: Any = None) -> Any:
        """The table ``name``, or ``default`` when there is none (as ``dict.get``)."""
        return self[name] if name in self else default

    def values(self):  # noqa: D102 - as dict's, collected
        return [self[name] for name in self]

    def items(self):  # noqa: D102 - as dict's, collected
        return [(name, self[name]) for name in self]

    def lazy(self, name: str) -> pl.LazyFrame:
        """Table ``name`` as a ``LazyFrame`` (never collects)."""
        return super().__getitem__(name).lazy()


def enrich(data: Any, *, cache_dir: Path | str | None = None) -> Enriched:
    """Enrich a load, reading the facts from the cache when this exact input was seen before.

    Parameters
    ----------
    data
        A :class:`effortlens.loading.LoadedData` (anything with ``tables`` and ``settings``).
    cache_dir
        Where cached facts live; default :func:`effortlens.cache.default_cache_dir`
        (``$EFFORTLENS_CACHE``, else the per-user cache directory). If it cannot be written,
        a warning says so and the facts are returned all the same. A load read from a build
        (:func:`effortlens.facts.open_build`) carries its facts: they are returned as they are.

    Returns
    -------
    Enriched

    Examples
    --------
    >>> data = load_folder(folder, settings=settings)  # doctest: +SKIP
    >>> enrich(data).fingerprint == enrich(data).fingerprint  # doctest: +SKIP
    True
    """
    prebuilt = getattr(data, "enriched", None)
    if isinstance(prebuilt, Enriched):  # read from a build (effortlens.facts): nothing to do
        return prebuilt
    tables = _canonical_tables(data.tables)
    settings = data.settings
    key = fingerprint(tables, settings)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = read_cached(folder, key, names=_FACTS)
    if cached is not None and cached["activities"].height == tables["activities"].height:
        return Enriched(
            # the cache holds only the added columns: the canonical ones are the inputs'
            activities=_same_chunks(tables["activities"].hstack(cached["activities"])),
            actions=_same_chunks(tables["buyer_actions"].hstack(cached["actions"])),
            daily=cached["daily"],
            reps=cached["reps"],
            tables=tables,
            settings=settings,
            fingerprint=key,
        )
    enriched = enrich_tables(tables, settings=settings, fingerprint=key)
    added = {
        "activities": enriched.activities.select(list(ACTIVITY_EXTRA)),
        "actions": enriched.actions.select(list(ACTION_EXTRA)),
        "daily": enriched.daily,
        "reps": enriched.reps,
    }
    try:
        write_cached(folder, key, added)
    except OSError as err:  # a read-only or full disk costs speed next time, not this answer
        warnings.warn(f"enrichment cache not written to {folder}: {err}", stacklevel=2)
    return enriched


def enrich_tables(
    tables: Mapping[str, pl.DataFrame],
    *,
    settings: Settings,
    fingerprint: str = "",
    coded: bool = False,
) -> Enriched:
    """Compute the enriched facts of canonical ``tables``, without the cache.

    Parameters
    ----------
    tables
        Canonical table name to frame (as :func:`effortlens.loading.load_folder` gives them);
        each is conformed to its schema (a no-op for loaded tables), missing ones are empty.
    settings
        Customer-facing types, attribution window, time zone and peer keys come from here.
    fingerprint
        Stored on the result as is.
    coded
        Text columns as codes: the activities' ``rep_id``, ``activity_type``, ``team``,
        ``segment``, ``role``, ``peer_group`` and the actions' ``rep_id`` and
        ``attribution_level`` as ``pl.Enum`` of their sorted values (:data:`LEVEL_ENUM` for the
        level); the rep's columns gathered by each activity's rep code instead of copied text
        (a rep has one team, segment, role and peer group), the types cast once; the same
        values. A partition of the partitioned build writes them so (Parquet keeps an
        ``Enum`` as its codes and a dictionary page: 3.0M activities' fact ~1.4 -> ~1.05 CPU s
        to write, no text hashed; :func:`effortlens.partitioned._write_enums_as_text` reads
        them back as text) and hands them to pass 1 of the view facts as codes. The
        activities' :data:`CODED_INPUT` columns may then come as an ``Enum`` of their sorted
        distinct values (no text cast; the same facts).

    Returns
    -------
    Enriched

    Examples
    --------
    >>> import polars as pl
    >>> from effortlens.settings import load_settings
    >>> e = enrich_tables({"reps": pl.DataFrame({"rep_id": ["r1"], "segment": ["SMB"],
    ...     "role": ["AE"]})}, settings=load_settings())
    >>> e.reps["peer_group"].to_list(), e.activities.height, e.daily.height
    (['SMB · AE'], 0, 0)
    """
    tables = _canonical_tables(tables, coded=coded)
    activities = _same_chunks(tables["activities"])
    actions = _same_chunks(tables["buyer_actions"])
    # a rep without a team, segment or role is the group "(unknown)", never a null group
    reps = with_peer_group(with_known_groups(tables["reps"]), keys=settings.peer_keys)
    rep_code, rep_facts = _rep_codes(activities["rep_id"], reps)
    zones = _rep_zones(reps, timezone=settings.timezone)

    kinds = activities["activity_type"]
    if coded:  # coded once: flagged by its categories, written as codes, pass 1 takes them
        kinds = _sorted_enum(kinds)
    facing = is_customer_facing(kinds, settings.customer_facing_types)
    rows = attribution_rows(
        activities,
        actions,
        window_days=settings.attribution_window_days,
        customer_facing=settings.customer_facing_types,
        facing=facing,
    )
    # the rep columns copied onto each activity: text, or codes gathered by its rep's row
    on_reps = _coded_text(rep_facts) if coded else rep_facts
    credited = activities.select("activity_id", "rep_id")
    if coded:
        credited = credited.with_columns(on_reps["rep_id"].gather(rep_code))
        rows = rows.with_columns(pl.col("attribution_level").cast(LEVEL_ENUM))
    # columns made by expressions first, while every column still has the input's chunks; the
    # computed ones are then cut to the same chunks (an expression, a select or a drop over a
    # frame whose columns are chunked differently copies the whole frame: 1 GB at 10M
    # activities; the columns are picked by name instead)
    responded = _with_responses(
        _with_calendar(
            activities.with_columns(
                facing.alias("is_customer_facing"),
                (pl.col("duration_min") / 60).alias("hours"),
            ),
            timezone=settings.timezone,
            rep_zones=zones,
        ),
        actions,
        rows,
    )
    gathered = on_reps.drop([] if coded else "rep_id")[rep_code]
    if coded:
        gathered = gathered.with_columns(kinds)
    enriched_activities = _same_chunks(
        pl.DataFrame(
            gathered[c] if c in gathered.columns else responded[c] for c in ACTIVITIES_SCHEMA
        )
    )
    # an action's local day is its credited rep's (buyer-initiated ones: the settings' zone)
    attributed = _with_calendar(
        with_attribution(actions, credited, rows), timezone=settings.timezone, rep_zones=zones
    )
    enriched_actions = _same_chunks(pl.DataFrame(attributed[c] for c in ACTIONS_SCHEMA))
    return Enriched(
        activities=enriched_activities,
        actions=enriched_actions,
        # made when first read: a partition of the partitioned build reads its rows instead
        # (daily_rows; at 100M a partition's roll-up has ~93% of its activities' rows)
        daily=Once(
            lambda: _daily(
                enriched_activities,
                rep_code=rep_code,
                rep_facts=rep_facts,
                customer_facing=settings.customer_facing_types,
            )
        ),
        reps=reps,
        tables=tables,
        settings=settings,
        fingerprint=fingerprint,
    )


def is_customer_facing(types: pl.Series, customer_facing: Sequence[str]) -> pl.Series:
    """``types.is_in(customer_facing)`` (a null type: null), by one comparison per
    customer-facing type (a few: 3M rows 0.05 -> 0.02 CPU s); an ``Enum`` by its categories'
    flags.

    Examples
    --------
    >>> is_customer_facing(pl.Series(["call", None, "admin"]), ["email", "call"]).to_list()
    [True, None, False]
    """
    wanted = list(dict.fromkeys(customer_facing))
    if isinstance(types.dtype, pl.Enum):  # each category's flag, gathered by the codes
        return types.dtype.categories.is_in(wanted).gather(types.to_physical()).rename(types.name)
    if not wanted or len(wanted) > 16 or types.dtype != pl.String:
        return types.is_in(wanted)
    column = pl.col(types.name)
    either = pl.any_horizontal(column == value for value in wanted)
    return types.to_frame().select(either).to_series()


def _canonical_tables(
    tables: Mapping[str, pl.DataFrame], *, coded: bool = False
) -> dict[str, pl.DataFrame]:
    """All seven tables, each conformed to its schema (a no-op for loaded ones); missing ones
    empty. With ``coded``, the activities' :data:`CODED_INPUT` columns given as an ``Enum``
    are kept so (each conformed as its text would be: the same values)."""
    out = {}
    for name, spec in TABLES.items():
        if name not in tables:
            out[name] = spec.empty()
            continue
        frame = tables[name]
        kept = [
            frame[c]
            for c in (CODED_INPUT if coded and name == "activities" else ())
            if isinstance(frame.schema.get(c), pl.Enum)
        ]
        conformed = conform(frame.drop([c.name for c in kept]), name).collect(engine="in-memory")
        out[name] = conformed.with_columns(kept) if kept else conformed
    return out


def _sorted_enum(values: pl.Series) -> pl.Series:
    """``values`` (text, or an ``Enum``) as an ``Enum`` of their sorted distinct values: the
    same values; an ``Enum`` of those categories already is returned as it is.

    Examples
    --------
    >>> _sorted_enum(pl.Series(["b", None, "a", "b"])).dtype
    Enum(categories=['a', 'b'])
    >>> given = pl.Series(["b", "a"], dtype=pl.Enum(["a", "b"]))
    >>> _sorted_enum(given) is given, _sorted_enum(given[:1]).dtype
    (True, Enum(categories=['b']))
    """
    if isinstance(values.dtype, pl.Enum):
        categories = values.dtype.categories
        codes = values.to_physical().drop_nulls().to_numpy()
        held = np.count_nonzero(np.bincount(codes, minlength=categories.len()))
        if categories.is_sorted() and held == categories.len():
            return values
        values = values.cast(pl.String)
    return values.cast(pl.Enum(values.drop_nulls().unique().sort()))


def _rep_codes(rep_ids: pl.Series, reps: pl.DataFrame) -> tuple[pl.Series, pl.DataFrame]:
    """Each activity's row in the returned rep facts (``rep_id`` and :data:`REP_COLUMNS`).

    Reps missing from ``reps`` (the loader quarantines them, hand-made tables may not) get rows
    of their own with null rep columns. Cheaper than a join on the string ``rep_id``. An
    ``Enum`` of the reps the rows hold: its categories looked up, gathered by its codes.
    """
    if isinstance(rep_ids.dtype, pl.Enum):
        rep_ids = _sorted_enum(rep_ids)  # of the reps held, as the rows' unknown reps are
        of_category, facts = _rep_codes(rep_ids.dtype.categories, reps)
        return of_category.gather(rep_ids.to_physical()), facts
    facts = reps.select("rep_id", *REP_COLUMNS).unique("rep_id", keep="first", maintain_order=True)
    codes = rep_ids.cast(pl.Enum(facts["rep_id"]), strict=False)
    if codes.null_count():
        unknown = rep_ids.filter(codes.is_null()).unique().sort()
        facts = pl.concat([facts, unknown.to_frame("rep_id")], how="diagonal")
        codes = rep_ids.cast(pl.Enum(facts["rep_id"]))
    return codes.to_physical(), facts


def _coded_text(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with each text column an ``Enum`` of its sorted distinct values (the same
    values; a gather of its rows gathers codes, not text).

    Examples
    --------
    >>> _coded_text(pl.DataFrame({"t": ["b", None, "a"], "n": [1, 2, 3]})).schema["t"]
    Enum(categories=['a', 'b'])
    """
    return frame.with_columns(
        pl.col(c).cast(pl.Enum(frame[c].drop_nulls().unique().sort()))
        for c, kind in frame.schema.items()
        if kind == pl.String
    )


def _with_responses(
    activities: pl.DataFrame, actions: pl.DataFrame, rows: pl.DataFrame
) -> pl.DataFrame:
    """Scatter each action's count, weight and verifier flag back onto its activity row."""
    credited = rows["activity_row"].is_not_null()
    at = rows["activity_row"].filter(credited).to_numpy()
    earned = actions.select("weight", "is_verifier").filter(credited)
    size = activities.height
    responses = np.bincount(at, minlength=size)
    verified = np.bincount(at[earned["is_verifier"].fill_null(False).to_numpy()], minlength=size)
    weights = earned["weight"].fill_null(0).cast(pl.Float64).to_numpy()
    return activities.with_columns(
        pl.Series("n_responses", responses, pl.UInt32),
        pl.Series("response_weight", np.bincount(at, weights=weights, minlength=size), pl.Float64),
        pl.Series("verifier_responses", verified, pl.UInt32),
        pl.Series("responded", responses > 0, pl.Boolean),
    )


def _same_chunks(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every column cut into the chunks of its first column, by zero-copy
    slices (a column is rechunked first only if it was chunked differently)."""
    if frame.width == 0 or frame.height == 0:
        return frame
    lengths = frame.to_series(0).chunk_lengths()
    if all(column.chunk_lengths() == lengths for column in frame.iter_columns()):
        return frame
    starts = np.cumsum([0, *lengths[:-1]])

    def cut(column: pl.Series) -> pl.Series:
        if column.chunk_lengths() == lengths:
            return column
        whole = column.rechunk()
        return pl.concat(
            [whole.slice(start, n) for start, n in zip(starts, lengths, strict=True)],
            rechunk=False,
        )

    return pl.DataFrame([cut(column) for column in frame.iter_columns()])


def _rep_zones(reps: pl.DataFrame, *, timezone: str) -> dict[str, list[str]]:
    """Zone -> the reps whose ``timezone`` is a valid IANA zone other than ``timezone``."""
    if "timezone" not in reps.columns:
        return {}
    pairs = reps.select("rep_id", "timezone").drop_nulls()
    out: dict[str, list[str]] = {}
    for zone in pairs["timezone"].unique().sort().to_list():
        if zone == timezone:
            continue
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            continue  # not a zone: the settings' zone serves
        out[zone] = pairs.filter(pl.col("timezone") == zone)["rep_id"].to_list()
    return out


def _with_calendar(
    frame: pl.DataFrame, *, timezone: str, rep_zones: dict[str, list[str]] | None = None
) -> pl.DataFrame:
    """Add local ``day``, ``week`` (its Monday), ISO ``weekday`` and ``hour`` of ``ts``: in
    each rep's own zone (``rep_zones``, from the reps' ``timezone``), else in ``timezone``.

    A zone's offset from UTC is looked up for each hour of UTC the events span (its value at
    the hour's first and last microsecond; an hour whose two differ holds a transition and its
    events are converted one by one), and the calendar columns are integer arithmetic on the
    local microseconds: the values of the time-zone conversion of every event (1M events:
    0.06 -> 0.02 CPU s), assuming no zone changes its offset twice within one hour."""
    zone_of_rows = _zone_of_rows(frame, timezone=timezone, rep_zones=rep_zones)
    if zone_of_rows is not None:
        calendar = _calendar_by_hour(frame["ts"], zone_of_rows)
        if calendar is not None:
            return frame.with_columns(calendar)
    return _calendar_by_conversion(frame, timezone=timezone, rep_zones=rep_zones)


def _zone_of_rows(
    frame: pl.DataFrame, *, timezone: str, rep_zones: dict[str, list[str]] | None
) -> tuple[list[str], np.ndarray | None] | None:
    """The zones of ``frame``'s rows (``timezone`` first) and each row's index among them (the
    first of ``rep_zones`` that holds its rep, as the conversion's chain picks; None: all in
    ``timezone``); None when ``ts`` is not UTC microseconds."""
    if frame.schema.get("ts") != pl.Datetime("us", "UTC"):
        return None
    zones, which = [timezone], None
    if rep_zones and "rep_id" in frame.columns:
        which = np.zeros(frame.height, dtype=np.int8 if len(rep_zones) < 127 else np.int32)
        taken = np.zeros(frame.height, dtype=bool)
        for zone, ids in rep_zones.items():
            here = frame["rep_id"].is_in(ids).fill_null(False).to_numpy() & ~taken
            zones.append(zone)
            which[here] = len(zones) - 1
            taken |= here
    return zones, which


#: Microseconds in an hour and a day.
_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US
#: At most this many hours of UTC are looked up per zone (~114 years), else one by one.
_MOST_HOURS = 1_000_000
#: Events worked out at once (the temporary arrays: ~50 bytes an event of a slice).
_CALENDAR_SLICE = 1 << 20


def hours_with_events(us: np.ndarray, first: int, last: int, *, n_zones: int) -> np.ndarray | None:
    """The hours of UTC whose offsets :func:`_calendar_by_hour` looks up for events at ``us``
    (microseconds) from hour ``first`` to ``last``: None for every hour of that span, or when
    that would be more lookups than events (a stray event decades from the rest: one in 1915
    made a partition's calendar 7x slower), the sorted hours that hold events.

    Examples
    --------
    >>> us = np.array([0, 1, 5 * _HOUR_US, 9 * _HOUR_US])
    >>> print(hours_with_events(us, 0, 9, n_zones=1))
    [0 5 9]
    >>> hours_with_events(us, 0, 2, n_zones=1) is None
    True
    """
    if (last - first + 1) * max(n_zones, 1) <= us.size:
        return None
    return np.unique(us // _HOUR_US)


def _calendar_by_hour(
    ts: pl.Series, zone_of_rows: tuple[list[str], np.ndarray | None]
) -> list[pl.Series] | None:
    """``day``, ``week``, ``weekday`` and ``hour`` of UTC ``ts`` in each row's zone, by an
    offset looked up per hour of UTC (see :func:`_with_calendar`), a slice of events at a time;
    None when the events span more than :data:`_MOST_HOURS` hours."""
    zones, which = zone_of_rows
    physical = ts.to_physical()
    least, most = physical.min(), physical.max()
    first, last = (0, 0) if least is None else (least // _HOUR_US, most // _HOUR_US)
    missing = np.flatnonzero(ts.is_null().to_numpy()) if ts.null_count() else None
    us = (physical if missing is None else physical.fill_null(first * _HOUR_US)).to_numpy()
    present = hours_with_events(us, first, last, n_zones=len(zones))
    if (last - first + 1 if present is None else present.size) > _MOST_HOURS:
        return None
    # each zone's offset at the first microsecond of those hours, and the hours whose last
    # microsecond has another offset (a transition inside)
    grid = np.arange(first, last + 1, dtype=np.int64) if present is None else present
    starts = pl.Series(grid * _HOUR_US)
    offsets = []
    for zone in zones:
        at_first, at_last = (
            (at.cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(zone))
            .dt.replace_time_zone(None)
            .to_physical()
            .to_numpy()
            - at.to_numpy()
            for at in (starts, starts + (_HOUR_US - 1))
        )
        offsets.append((at_first, at_first != at_last))
    n = us.size
    day = np.empty(n, dtype=np.int32)
    week = np.empty(n, dtype=np.int32)
    weekday = np.empty(n, dtype=np.int8)
    hour = np.empty(n, dtype=np.int8)
    columns = (day, week, weekday, hour)
    if which is None and not np.any(offsets[0][0] % _HOUR_US):
        # one zone, whole hours from UTC: every microsecond of an hour of UTC falls in one
        # local hour, so each hour's calendar is worked out once and gathered per event
        tables = _calendar_of_local(grid * _HOUR_US + offsets[0][0])
        changing = offsets[0][1]
        for at in range(0, n, _CALENDAR_SLICE):
            part = slice(at, at + _CALENDAR_SLICE)
            hours = us[part] // _HOUR_US
            hours = hours - first if present is None else np.searchsorted(present, hours)
            for table, column in zip(tables, columns, strict=True):
                np.take(table, hours, out=column[part])
            exact = np.flatnonzero(changing[hours]) + at  # a transition inside: one by one
            if exact.size:
                wall = ts.gather(exact).dt.convert_time_zone(zones[0]).dt.replace_time_zone(None)
                local = wall.to_physical().fill_null(0).to_numpy()
                for values, column in zip(_calendar_of_local(local), columns, strict=True):
                    column[exact] = values
        return _calendar_columns(columns, missing)
    for at in range(0, n, _CALENDAR_SLICE):
        part = slice(at, at + _CALENDAR_SLICE)
        utc = us[part]
        hours = utc // _HOUR_US
        hours = hours - first if present is None else np.searchsorted(present, hours)
        if which is None:
            local, moved = offsets[0][0][hours], offsets[0][1][hours]
        else:
            zone_of = which[part]
            local, moved = np.empty(utc.size, dtype=np.int64), np.empty(utc.size, dtype=bool)
            for z, (offset, changing) in enumerate(offsets):
                rows = zone_of == z
                local[rows], moved[rows] = offset[hours[rows]], changing[hours[rows]]
        del hours
        local += utc
        for z, zone in enumerate(zones):  # an hour with a transition: converted one by one
            exact = np.flatnonzero(moved if which is None else moved & (zone_of == z))
            if exact.size:
                wall = ts.gather(exact + at).dt.convert_time_zone(zone).dt.replace_time_zone(None)
                local[exact] = wall.to_physical().fill_null(0).to_numpy()
        days = local // _DAY_US  # floor: days before 1970 too
        local -= days * _DAY_US
        local //= _HOUR_US
        hour[part] = local
        del local
        days = days.astype(np.int32)
        day[part] = days
        iso = (days + 3) % 7 + 1  # 1970-01-01 was a Thursday (ISO 4)
        weekday[part] = iso
        week[part] = days - (iso - 1)
    return _calendar_columns(columns, missing)


def _calendar_of_local(local: np.ndarray) -> tuple[np.ndarray, ...]:
    """Day (since 1970), its week's Monday, ISO weekday and hour of local microseconds."""
    days = local // _DAY_US  # floor: days before 1970 too
    hour = ((local - days * _DAY_US) // _HOUR_US).astype(np.int8)
    days = days.astype(np.int32)
    iso = ((days + 3) % 7 + 1).astype(np.int8)  # 1970-01-01 was a Thursday (ISO 4)
    return days, days - (iso - 1), iso, hour


def _calendar_columns(
    columns: tuple[np.ndarray, ...], missing: np.ndarray | None
) -> list[pl.Series]:
    """The calendar's day, week, weekday and hour as Series, null where ``ts`` was."""
    out = []
    for name, values in zip(CALENDAR, columns, strict=True):
        column = pl.Series(name, values)
        if missing is not None:
            column = column.scatter(missing, None)
        out.append(column.cast(CALENDAR[name]))
    return out


def _calendar_by_conversion(
    frame: pl.DataFrame, *, timezone: str, rep_zones: dict[str, list[str]] | None = None
) -> pl.DataFrame:
    """:func:`_with_calendar` by converting every event's time (any ``ts`` type)."""
    local = pl.col("ts").dt.convert_time_zone(timezone).dt.replace_time_zone(None)
    if rep_zones and "rep_id" in frame.columns:
        chain = None
        for zone, ids in rep_zones.items():
            here = pl.col("rep_id").is_in(ids)
            there = pl.col("ts").dt.convert_time_zone(zone).dt.replace_time_zone(None)
            chain = (pl.when(here) if chain is None else chain.when(here)).then(there)
        local = chain.otherwise(local)
    return (
        frame.lazy()
        .with_columns(local.alias("_local"))
        .with_columns(pl.col("_local").dt.date().alias("day"))
        .with_columns(
            pl.col("day").dt.truncate("1w").alias("week"),
            pl.col("day").dt.weekday().cast(pl.Int8).alias("weekday"),
            pl.col("_local").dt.hour().cast(pl.Int8).alias("hour"),
        )
        .drop("_local")
        .collect(engine="in-memory")
    )


def _daily(
    activities: pl.DataFrame,
    *,
    rep_code: pl.Series,
    rep_facts: pl.DataFrame,
    customer_facing: tuple[str, ...],
) -> pl.DataFrame:
    """One row per rep × day × activity type, with the rep columns.

    Grouping 10M rows into millions of groups by three keys, two of them strings, is slow;
    instead the keys are packed into one integer cell number (rep, day, type), summed by cell
    after one sort, and unpacked (:func:`daily_of_rows`). Sorted by rep (the reps table's
    order), day, activity type.
    """
    if activities.height == 0:
        return pl.DataFrame(schema=DAILY_SCHEMA)
    return daily_of_rows(  # as text: the coded facts' types are an Enum
        activities.select("day", pl.col("activity_type").cast(pl.String), *_DAILY_VALUES),
        rep_code=rep_code,
        rep_facts=rep_facts,
        customer_facing=customer_facing,
    )


#: What the roll-up sums of each activity (:data:`DAILY_SUMS` but the count), nulls as 0.
_DAILY_VALUES = (
    pl.col("hours").fill_null(0),
    pl.col("responded").cast(pl.UInt32).fill_null(0),
    pl.col("response_weight").fill_null(0),
    pl.when(pl.col("responded"))
    .then(0.0)
    .otherwise(pl.col("hours"))
    .fill_null(0)
    .alias("no_impact_hours"),
)


def daily_rows(activities: pl.DataFrame) -> pl.DataFrame:
    """One row per enriched activity with what the daily roll-up sums of it: ``rep_id``,
    ``day``, ``activity_type`` and :data:`DAILY_SUMS` but ``activities`` (each row counts
    one), in the activities' order, unsummed. A partition of the partitioned build writes
    these (at 100M its own roll-up would have ~93% of its activities' rows); the partitions'
    rows summed by :func:`daily_of_rows` with ``part`` give the roll-up.

    Examples
    --------
    >>> from effortlens.settings import load_settings
    >>> daily_rows(enrich_tables({}, settings=load_settings()).activities).columns
    ['rep_id', 'day', 'activity_type', 'hours', 'responded', 'response_weight', 'no_impact_hours']
    """
    return activities.select("rep_id", "day", "activity_type", *_DAILY_VALUES)


def daily_of_activities(
    activities: pl.DataFrame, reps: pl.DataFrame, *, customer_facing: Sequence[str]
) -> pl.DataFrame:
    """The daily roll-up of enriched ``activities`` (as :func:`enrich_tables` makes it), with
    the rep columns of ``reps`` (with their ``peer_group``; reps missing from it last, by id).

    Examples
    --------
    >>> from effortlens.settings import load_settings
    >>> e = enrich_tables({}, settings=load_settings())
    >>> daily_of_activities(e.activities, e.reps, customer_facing=["call"]).height
    0
    """
    rep_code, rep_facts = _rep_codes(activities["rep_id"], reps)
    return _daily(
        activities,
        rep_code=rep_code,
        rep_facts=rep_facts,
        customer_facing=tuple(customer_facing),
    )


def cell_order(cells: np.ndarray) -> np.ndarray:
    """``numpy.argsort(cells, kind="stable")`` of non-negative ``int64`` cell numbers.

    Cells in random order below 2**32 (a partition's or an in-memory load's activities) are
    put in order by one or two stable sorts of their 16-bit digits (numpy sorts 16-bit
    integers by radix: ~half the CPU of its timsort on int64); cells in few sorted runs (the
    partitions' roll-ups end to end, or sorted input) by numpy's timsort, which merges runs in
    less time and memory (the radix passes hold ~4 more bytes a row).

    Examples
    --------
    >>> cell_order(np.array([5, 70_000, 5, 1], dtype=np.int64)).tolist()
    [3, 0, 2, 1]
    """
    cells = np.ascontiguousarray(cells, dtype=np.int64)
    n = cells.size
    top = int(cells.max(initial=0))
    runs = np.count_nonzero(cells[1:] < cells[:-1]) if n > 1 else 0
    if top >= 2**32 or runs <= n >> 6 or sys.byteorder != "little":
        return np.argsort(cells, kind="stable")
    digits = cells.view(np.uint16)  # row i's k-th 16 bits at 4 * i + k
    order = np.argsort(digits[0::4], kind="stable").astype(np.int32 if n < 2**31 else np.int64)
    if top >= 2**16:
        # np.take: numpy's fancy indexing by int32 converts the indices first (~1.5x slower)
        order = np.take(order, np.argsort(np.take(digits[1::4], order), kind="stable"))
    return order


#: What :func:`daily_of_rows` sums per rep × day × activity type (``activities``: counted
#: when the rows do not hold it).
DAILY_SUMS: tuple[str, ...] = (
    "activities",
    "hours",
    "responded",
    "response_weight",
    "no_impact_hours",
)


def daily_of_rows(
    rows: pl.DataFrame,
    *,
    rep_code: pl.Series,
    rep_facts: pl.DataFrame,
    customer_facing: Sequence[str],
    part: str | None = None,
    types: pl.Series | None = None,
) -> pl.DataFrame:
    """The daily roll-up of ``rows`` (``day``, ``activity_type`` and the sums of
    :data:`DAILY_SUMS`, nulls as 0; without ``activities`` each row counts one): summed per
    rep × day × type, sorted by rep (its row in ``rep_facts``, whose row ``rep_code`` gives
    for each row), day, type; with the rep columns.

    The keys are packed into one integer cell number, summed by cell after one stable sort
    (:func:`cell_order`: numpy's argsort of one int64 beats a hash group-by into millions of
    groups by ~3x at 10M rows; the sums of a cell are added in row order), and unpacked.
    Rows of partial sums (the partitioned build's, :func:`effortlens.partitioned.write_daily`)
    add up to the sums of their rows.

    ``part``: the column that numbers each row's partition, the rows in partition order (the
    partitions' :func:`daily_rows` end to end): a cell's rows are summed per partition first,
    then those sums in partition order, the very additions of summing each partition's own
    roll-up and then the partitions' roll-ups' rows (the same bits).

    ``types``: the activity types, sorted and distinct, when ``activity_type`` holds each
    row's place among them (integers) rather than the text: the same cells in the same order.

    Examples
    --------
    >>> import datetime as dt
    >>> rows = pl.DataFrame({"day": [dt.date(2024, 5, 2)] * 3, "activity_type": ["call"] * 3,
    ...     "activities": [2, 1, 4], "hours": [1.0, 0.5, 2.0], "responded": [1, 0, 1],
    ...     "response_weight": [1.0, 0.0, 2.0], "no_impact_hours": [0.0, 0.5, 0.0]})
    >>> facts = pl.DataFrame({"rep_id": ["r1", "r2"], "team": ["T", "U"], "segment": ["S", "S"],
    ...     "role": ["AE", "AE"], "peer_group": ["S · AE", "S · AE"]})
    >>> out = daily_of_rows(rows, rep_code=pl.Series([1, 0, 1]), rep_facts=facts,
    ...     customer_facing=["call"])
    >>> out.select("rep_id", "activities", "hours", "responded").rows()
    [('r1', 1, 0.5, 0), ('r2', 6, 3.0, 2)]
    """
    if rows.height == 0:
        return pl.DataFrame(schema=DAILY_SCHEMA)
    if types is None:
        types = rows["activity_type"].unique().sort()
        kind_of_rows = rows["activity_type"].cast(pl.Enum(types)).to_physical()
    else:
        kind_of_rows = rows["activity_type"]
    day = rows["day"].to_physical().cast(pl.Int64)
    first_day = day.min()
    n_days, n_types = day.max() - first_day + 1, types.len()
    cell = (rep_code.cast(pl.Int64) * n_days + (day - first_day)) * n_types + kind_of_rows.cast(
        pl.Int64
    )
    cells_of_rows = cell.to_numpy()
    if cell.null_count():  # a row without a day: last, as numpy sorts NaN
        order = np.argsort(cells_of_rows, kind="stable")
    else:
        order = cell_order(cells_of_rows)
    sorted_cells = np.take(cells_of_rows, order)
    new_cell = np.r_[True, sorted_cells[1:] != sorted_cells[:-1]]
    starts = np.flatnonzero(new_cell)
    if part is None:
        runs = None
    else:  # a cell's rows of one partition are a run: summed first, then the runs' sums
        of_part = rows[part].to_numpy()
        if np.any(of_part[1:] < of_part[:-1]):
            raise ValueError(f"rows not in the order of their {part!r}")
        of_part = np.take(of_part, order)
        new_run = new_cell.copy()
        new_run[1:] |= of_part[1:] != of_part[:-1]
        runs = np.flatnonzero(new_run)
        del of_part, new_run
        starts_in_runs = np.flatnonzero(new_cell[runs])

    def total(name: str) -> np.ndarray:
        values = rows[name].fill_null(0).to_numpy()
        if runs is None:
            return np.add.reduceat(np.take(values, order), starts)
        return np.add.reduceat(np.add.reduceat(np.take(values, order), runs), starts_in_runs)

    if "activities" in rows.columns:
        counts = total("activities")
    else:
        counts = np.diff(np.r_[starts, len(order)])
    cells = pl.Series(sorted_cells[starts])
    sums = pl.DataFrame(
        {
            "activities": pl.Series(counts, dtype=pl.UInt32),
            "hours": total("hours"),
            "responded": pl.Series(total("responded"), dtype=pl.UInt32),
            "response_weight": total("response_weight"),
            "no_impact_hours": total("no_impact_hours"),
        }
    )
    rep = rep_facts[cells // (n_days * n_types)]
    kind = types.gather(cells % n_types)
    local_day = ((cells // n_types) % n_days + first_day).cast(pl.Int32).cast(pl.Date)
    return (
        pl.DataFrame(
            {
                "rep_id": rep["rep_id"],
                "day": local_day,
                "week": local_day.dt.truncate("1w"),
                "activity_type": kind,
                "is_customer_facing": kind.is_in(list(customer_facing)),
            }
        )
        .hstack(sums)
        .hstack(rep.select(REP_COLUMNS))
        .select(DAILY_SCHEMA.names())
    )
