"""The one shared state of a workbook page: the data, the filter, the anonymise switch.

Every view on a page observes one :class:`PageState`; the filter bar, the anonymise toggle and
chart selections write to it. The facts come from the data folder's build
(:mod:`effortlens.facts`): the kernel holds the daily roll-up, reps and the small tables, while
activities and buyer actions stay ``LazyFrame`` scans of the Parquet facts. A filter change
slices the roll-up and narrows the scans; a view that needs events collects them already
filtered (``view.activities``), and only the columns of the filtered slice it reads.
"""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
from traitlets import Any, Bool, HasTraits, Instance, Unicode, observe

from effortlens.filters import Filter, filter_enriched, period_by_weeks, rep_runs, week_spans


class PageState(HasTraits):
    """Data, filter and presentation switches shared by every view on a page.

    Examples
    --------
    >>> state = PageState()
    >>> state.data = loaded  # a LoadedData from effortlens.loading  # doctest: +SKIP
    >>> state.filter = Filter(teams=("North",))  # every view refreshes once
    """

    data = Any(None, allow_none=True, help="LoadedData of the current load, or None.")
    enriched = Instance(
        "effortlens.enrich.Enriched", allow_none=True, help="Enriched facts of the whole data set."
    )
    filter = Instance(Filter, args=(), help="What the page is looking at.")
    view = Instance(
        "effortlens.enrich.Enriched",
        allow_none=True,
        help="The enriched facts under the current filter.",
    )
    anonymise = Bool(False, help="Show pseudonyms instead of names and ids everywhere.")
    error = Unicode("", help="Readable message when enrichment failed; '' otherwise.")

    def __init__(
        self, *, cache_dir=None, daily_counts=None, daily_rep_codes: bool = False, **kwargs
    ) -> None:
        """A page state; ``cache_dir`` overrides where enriched facts are cached.

        ``daily_counts``: the counts of the daily roll-up (:data:`effortlens.roe.COUNTS`) the
        page's views read, when not all of them; a load then holds only those and the columns
        every page reads (:data:`DAILY_KEYS`): not ``week`` (the Monday of ``day``: a view
        that groups by week derives it) nor ``peer_group``, unless named too. A count is 4 or
        8 bytes a row: 16-33 MB each at 10M activities, ``week`` 4, ``peer_group`` 1.
        ``daily_rep_codes``: hold the roll-up's ``rep_id`` as categorical codes
        (:func:`rep_codes`: 2 bytes a row instead of 16, 58 MB less at 10M), for a page whose
        views never join the roll-up's reps to a table keyed by text ids, or cast them to text
        first (:func:`as_text_reps`). Which page may hold what is fixed by
        tests/test_state_memory.py (each draws what it draws on the whole roll-up)."""
        self._cache_dir = cache_dir
        self._daily_counts = None if daily_counts is None else tuple(daily_counts)
        self._daily_rep_codes = daily_rep_codes
        self._pseudonyms = None
        # (the load's Enriched, its weekly_effort, week spans, rep_runs of its daily)
        self._weekly: tuple | None = None
        self._effort: list = []  # the last (load's Enriched, filter, its effort rows), newest first
        super().__init__(**kwargs)
        if self.data is not None:
            self._on_data({"new": self.data})

    @observe("data")
    def _on_data(self, change) -> None:
        from effortlens.enrich import enrich

        data = change["new"]
        self.error = ""
        if data is None:
            self.enriched = None
            return
        self._pseudonyms = None
        try:
            enriched = enrich(data, cache_dir=self._cache_dir)
        except (Exception, pl.exceptions.PanicException) as err:  # shown, never a traceback
            from effortlens.loading import DataError
            from effortlens_widgets.app import log_problem

            if isinstance(err, DataError):  # written for the user: what to fix in the data
                self.error = f"The data could not be prepared: {err}"
            else:
                at = log_problem("the data could not be prepared", err)
                self.error = (
                    "The data could not be prepared: EffortLens failed on it (a bug, not a "
                    "problem you can fix in the data). Please tell whoever runs EffortLens; "
                    f"the details are in the server log (EffortLens, {at})."
                )
            self.enriched = None
        else:
            if self._daily_counts is not None or self._daily_rep_codes:
                enriched = enriched.holding(  # the page's views read no other count
                    None if self._daily_counts is None else [*DAILY_KEYS, *self._daily_counts],
                    types={"rep_id": rep_codes(enriched)} if self._daily_rep_codes else None,
                )
            self.enriched = enriched

    @observe("enriched", "filter")
    def _on_filter(self, change) -> None:
        self.view = None if self.enriched is None else filter_enriched(self.enriched, self.filter)

    def roe_facts(self) -> pl.DataFrame | None:
        """The customer-facing effort the return-on-effort views sum, under the page filter.

        Without a period that is the load's weekly roll-up (rep × week × activity type,
        customer-facing only; :func:`weekly_effort`, made once per load): a filter change then
        sums a few hundred thousand rows at 10M activities instead of the four million of the
        daily roll-up. A period takes its whole weeks from the same roll-up and its other days
        (the partial weeks at its ends) from ``daily`` (:func:`effortlens.filters.
        period_by_weeks`). Each gives the same sums to :func:`effortlens.roe.roe_by` and
        :func:`effortlens.roe.roe_trend` by week as the filtered ``daily`` (``None`` before
        the data is loaded).
        """
        if self.view is None:
            return None
        return self.effort_under(self.filter)

    def effort_under(self, flt: Filter) -> pl.DataFrame:
        """:meth:`roe_facts` under ``flt`` (another period, such as the previous one, for
        instance): the customer-facing rows of the load's ``daily`` that ``flt`` keeps, its
        whole weeks summed per rep × week × activity type."""
        kept = self._weekly
        if kept is None or kept[0] is not self.enriched:
            daily = self.enriched.daily
            runs = rep_runs(daily)  # ~25 ms at 10M: a period with a team then slices its reps
            runs = runs if runs is None else as_text_reps(runs)  # joined with the reps table
            kept = self._weekly = (
                self.enriched,
                weekly_effort(daily, runs=runs),
                week_spans(daily),
                runs,
            )
        # the page's views read the same filter's rows in turn, and the headline the previous
        # period's between them: the last two are kept
        for enriched, kept_flt, kept_rows in self._effort:
            if enriched is self.enriched and kept_flt == flt:
                return kept_rows
        rows = period_by_weeks(
            kept[1],
            self._daily_of_reps(flt),
            flt,
            spans=kept[2],
            where=pl.col("is_customer_facing"),
        )
        self._effort = [(self.enriched, flt, rows), *self._effort[:1]]
        return rows

    def _daily_of_reps(self, flt: Filter) -> pl.DataFrame:
        """The load's ``daily`` rows :meth:`effort_under` may keep under ``flt``, a period:
        when ``flt`` names reps, teams, segments or roles, only the rows of the reps it may
        keep (the reps table's that pass it, and any rep of ``daily`` the table lacks),
        sliced from the rep-sorted roll-up (:func:`effortlens.filters.rows_of_reps`); ``flt``
        still applies to them."""
        from dataclasses import replace

        from effortlens.filters import filter_frame, rows_of_reps

        daily = self.enriched.daily
        runs = self._weekly[3]
        period = flt.start is not None or flt.end is not None  # else only weeks are read
        if runs is None or not period or not (flt.reps or flt.teams or flt.segments or flt.roles):
            return daily
        reps = self.enriched.reps
        owners = replace(flt, start=None, end=None, activity_types=())
        kept = pl.concat(
            [
                filter_frame(reps, owners, day_column="__none__").get_column("rep_id"),
                runs.join(reps, on="rep_id", how="anti").get_column("rep_id"),
            ]
        )
        return rows_of_reps(daily, runs, kept)

    @property
    def pseudonyms(self):
        """The page's pseudonyms, made when first needed (names hidden), from the facts.

        The reps' and managers' at once; the accounts' and contacts' (every id of the events
        and deals: 570k contacts at 10M activities, a scan of the events) when a frame shown
        first carries one of them (the same pseudonyms: they are numbered over the whole data).
        """
        if self._pseudonyms is None and self.enriched is not None:
            from effortlens.anonymise import Pseudonyms, build_pseudonyms

            enriched = self.enriched
            made = build_pseudonyms(reps=enriched.reps)

            def of(kind: str, column: str):
                return lambda: build_pseudonyms(
                    reps=enriched.reps.head(0), **{f"{kind}s": _ids(enriched, column)}
                ).maps[kind]

            maps = _OnDemand(made.maps)
            maps.later("account", of("account", "account_id"))
            maps.later("contact", of("contact", "contact_id"))
            self._pseudonyms = Pseudonyms(maps=maps, rep_names=made.rep_names)
        return self._pseudonyms

    def present(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` as the page may show it: pseudonymised when ``anonymise`` is on."""
        from effortlens.anonymise import anonymise_frame

        if not self.anonymise or self.pseudonyms is None:
            return frame
        return anonymise_frame(frame, self.pseudonyms)

    def unmask(self, kind: str, value: str) -> str:
        """The real id behind a value shown on the page (a pseudonym when anonymised).

        ``kind`` is ``rep``, ``manager``, ``account`` or ``contact``; other values pass through.
        """
        if not self.anonymise or self.pseudonyms is None:
            return value
        real = {v: k for k, v in self.pseudonyms.lookup(kind).items()}
        return real.get(value, value)

    def rep_label(self, rep_id: str) -> str:
        """The rep's name, or pseudonym when anonymised."""
        if self.enriched is None:
            return rep_id
        if self.anonymise and self.pseudonyms is not None:
            return self.pseudonyms.lookup("rep").get(rep_id, "Rep ?")
        kept = getattr(self, "_rep_names", None)
        if kept is None or kept[0] is not self.enriched:  # once per load: the filter bar asks
            names: dict[str, str] = {}  # for every rep (2,000 filters took 2 s)
            reps = self.enriched.reps
            for rep, name in reps.select("rep_id", "rep_name").iter_rows():
                names.setdefault(rep, name)
            kept = self._rep_names = (self.enriched, names)
        return kept[1].get(rep_id) or rep_id

    def update_filter(self, **changes) -> None:
        """Replace some fields of the filter (one refresh for all of them)."""
        from dataclasses import replace

        self.filter = replace(self.filter, **changes)


#: The columns of the daily roll-up every page holds: what a row is and what filters read.
#: ``week`` (derivable from ``day``) and ``peer_group`` are held by a page that holds every
#: count, or names them in ``daily_counts``.
DAILY_KEYS = (
    "rep_id",
    "day",
    "activity_type",
    "is_customer_facing",
    "team",
    "segment",
    "role",
)


def rep_codes(enriched) -> pl.Categorical:
    """The type a page holding its roll-up's ``rep_id`` as codes casts it to: the build's
    categorical of reps (:func:`effortlens.facts.held_categorical`, 2-byte codes up to
    16,000 reps and room for twice the reps table's)."""
    from effortlens.facts import held_categorical

    return held_categorical("rep_id", 2 * enriched.reps.height + 128, build=enriched.fingerprint)


def as_text_reps(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its ``rep_id`` as text when held as codes (:func:`rep_codes`), to join
    a table keyed by text rep ids (the reps, names, pseudonyms).

    Examples
    --------
    >>> codes = pl.DataFrame({"rep_id": ["r1", "r2"]}, schema={"rep_id": pl.Categorical()})
    >>> as_text_reps(codes).schema["rep_id"]
    String
    """
    if frame.schema.get("rep_id", pl.String) == pl.String:
        return frame
    return frame.with_columns(pl.col("rep_id").cast(pl.String))


#: The columns a filter without a period and the return-on-effort views read by rep and week.
WEEKLY_KEYS = ("rep_id", "week", "activity_type", "team", "segment", "role")


def weekly_effort(daily: pl.DataFrame, *, runs: pl.DataFrame | None = None) -> pl.DataFrame:
    """The customer-facing rows of a ``daily`` roll-up summed per rep × week × activity type
    (with the rep's team, segment and role): what the return-on-effort views sum when the page
    filter has no period.

    With ``runs`` (:func:`effortlens.filters.rep_runs` of ``daily``: each rep's rows lie
    together) the rows are summed a slice of whole reps at a time (:data:`EFFORT_SLICE_ROWS`
    rows or so): the same sums, without the ~190 MB transient of one group-by over the four
    million day rows of 10M activities.

    Examples
    --------
    >>> import datetime as dt
    >>> day = dt.date(2025, 1, 6)
    >>> daily = pl.DataFrame({"rep_id": ["r1", "r1", "r1"], "day": [day, day, day],
    ...     "week": [day] * 3, "activity_type": ["email", "email", "admin"],
    ...     "is_customer_facing": [True, True, False], "activities": [2, 1, 5],
    ...     "hours": [1.0, 0.5, 2.0], "responded": [1, 0, 0], "response_weight": [1.0, 0.0, 0.0],
    ...     "no_impact_hours": [0.5, 0.5, 0.0], "team": ["N"] * 3, "segment": ["S"] * 3,
    ...     "role": ["AE"] * 3})
    >>> weekly_effort(daily).select("activity_type", "activities", "hours").rows()
    [('email', 3, 1.5)]
    """
    from effortlens.roe import COUNTS

    keys = [c for c in WEEKLY_KEYS if c in daily.columns]

    def summed(rows: pl.DataFrame) -> pl.DataFrame:
        return (
            rows.lazy()
            .filter(pl.col("is_customer_facing"))
            .group_by(keys)
            .agg(pl.col(c).sum().cast(daily.schema[c]) for c in COUNTS)
            .with_columns(is_customer_facing=pl.lit(True))
            .collect()
        )

    if runs is None or daily.height <= EFFORT_SLICE_ROWS:
        return summed(daily)
    # cut where a rep's rows begin, about every EFFORT_SLICE_ROWS rows: no group spans a cut
    starts = runs.get_column("start").sort().to_numpy()
    wanted = np.arange(EFFORT_SLICE_ROWS, daily.height, EFFORT_SLICE_ROWS)
    found = np.searchsorted(starts, wanted)
    cuts = np.unique(
        np.concatenate([[0], starts[found[found < len(starts)]], [daily.height]])
    ).tolist()
    return pl.concat([summed(daily.slice(a, b - a)) for a, b in itertools.pairwise(cuts)])


#: Rows of ``daily`` :func:`weekly_effort` sums at a time (whole reps' rows).
EFFORT_SLICE_ROWS = 500_000


class _OnDemand(dict):
    """A dict whose values given to :meth:`later` are made when first read, then kept.

    Examples
    --------
    >>> d = _OnDemand({"a": 1})
    >>> d.later("b", lambda: 2)
    >>> "b" in d, d.get("b"), d["a"]
    (True, 2, 1)
    """

    def later(self, key, make) -> None:
        """Make ``key``'s value with ``make()`` when it is first read."""
        super().__setitem__(key, _Later(make))

    def __getitem__(self, key):
        value = super().__getitem__(key)
        if isinstance(value, _Later):
            value = value.make()
            super().__setitem__(key, value)
        return value

    def get(self, key, default=None):
        """As ``dict.get``, making a value given to :meth:`later`."""
        return self[key] if key in self else default

    def values(self):  # noqa: D102 - as dict's, made
        return [self[key] for key in self]

    def items(self):  # noqa: D102 - as dict's, made
        return [(key, self[key]) for key in self]


class _Later:
    __slots__ = ("make",)

    def __init__(self, make) -> None:
        self.make = make


def _ids(enriched, column: str) -> pl.Series:
    """Every distinct ``column`` value of the events and deals (events scanned, not held)."""
    frames = [enriched.lazy("activities"), enriched.lazy("actions")]
    if "opportunities" in enriched.tables:  # scanned: looking a table up would keep it
        from effortlens.enrich import table

        frames.append(table(enriched, "opportunities"))
    parts = [
        f.select(pl.col(column).unique()) for f in frames if column in f.collect_schema().names()
    ]
    if not parts:
        return pl.Series(column, [], dtype=pl.String)
    return pl.concat(parts).unique().collect().to_series()
