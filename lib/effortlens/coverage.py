"""What the data can say: which parts of a load are present, computed once per load.

Real exports are often partial: deals without activities, activities without any buyer
action, only won deals, a pipeline snapshot without stage changes, reps without a team. A
view that draws such data as if it were complete misleads: a 0% response rate where buyer
actions were simply not exported, every rep at a 100% win rate, times in stage invented from
a snapshot. :func:`data_coverage` says, once per load, what is there; every page and the
command line read it and say in words what cannot be measured and which export would add it
(:meth:`Coverage.caveats`).

- **Buyer actions**: none at all means response rates, return on effort, effort with no buyer
  action and silent streaks cannot be measured (they are unknown, not zero).
- **Outcomes**: closed deals of one outcome only (only won, or only lost) mean win rates
  cannot differ between reps.
- **Stage path**: ``recorded`` (stage changes exported), ``derived`` (made by EffortLens from
  each deal's current stage: no times in stage, no stage path between the first and the
  current stage, losses at an unknown stage), ``mixed`` (derived for the deals without
  recorded changes) or ``none`` (no stage history).
- **Groups**: reps without a team, segment or role are the group :data:`UNKNOWN`
  (:func:`with_known_groups`, applied when the facts are enriched), never a crash.

Examples
--------
>>> from effortlens.coverage import data_coverage
>>> cov = data_coverage(enriched, report=data.report)  # doctest: +SKIP
>>> cov.stage_path, cov.has_buyer_actions  # doctest: +SKIP
('derived', False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from effortlens.enrich import Enriched
    from effortlens.findings import Finding

#: The label of a rep group whose value is not recorded (a rep without a team, segment, role).
UNKNOWN = "(unknown)"
#: Reps-table columns that group reps on the pages.
GROUP_COLUMNS: tuple[str, ...] = ("team", "segment", "role")
#: Stage paths: as exported, derived from current stages, both, or no stage history.
STAGE_PATHS: tuple[str, ...] = ("recorded", "derived", "mixed", "none")
#: Closed outcomes, as the opportunities table writes them.
_CLOSED = ("won", "lost", "no_decision")

#: Which export adds what is missing, said once so that every page names the same files.
ADD_BUYER_ACTIONS = (
    "Add the export that records what buyers did — replies and inbound e-mails, meetings "
    "held, requests (Salesforce EmailMessage and Event, HubSpot e-mails with their direction, "
    "or the inbound rows of your activity log mapped as buyer actions)."
)
ADD_STAGE_HISTORY = (
    "Add the stage-history export (Salesforce OpportunityHistory, HubSpot deal stage "
    "history) to measure them."
)


def with_known_groups(
    reps: pl.DataFrame, *, columns: Sequence[str] = GROUP_COLUMNS
) -> pl.DataFrame:
    """``reps`` with an empty or missing team, segment or role written as :data:`UNKNOWN`.

    Columns absent from ``reps`` are added, all :data:`UNKNOWN`, so every page can group by
    them.

    Examples
    --------
    >>> reps = pl.DataFrame({"rep_id": ["r1", "r2"], "team": ["North", None]})
    >>> with_known_groups(reps).select("team", "segment").rows()
    [('North', '(unknown)'), ('(unknown)', '(unknown)')]
    """
    filled = []
    for column in columns:
        if column in reps.columns:
            value = pl.col(column).cast(pl.String).str.strip_chars()
            filled.append(
                pl.when(value.is_null() | (value == ""))
                .then(pl.lit(UNKNOWN))
                .otherwise(value)
                .alias(column)
            )
        else:
            filled.append(pl.lit(UNKNOWN, dtype=pl.String).alias(column))
    return reps.with_columns(filled)


@dataclass(frozen=True)
class Coverage:
    """What one load holds, and so what its pages can honestly say.

    Attributes
    ----------
    activities
        Seller activities loaded.
    buyer_actions
        Buyer actions loaded.
    deals
        Opportunities loaded.
    outcomes
        Closed deals by outcome (``won``, ``lost``, ``no_decision``).
    stage_path
        One of :data:`STAGE_PATHS`.
    derived_deals
        Deals whose stage entries were derived (``None`` when none were).
    unknown_groups
        Reps whose ``team``, ``segment`` or ``role`` is not recorded, by column.
    reps
        Reps loaded.

    Examples
    --------
    >>> cov = Coverage(activities=10, buyer_actions=0, deals=3,
    ...                outcomes={"won": 2, "lost": 0, "no_decision": 0})
    >>> cov.has_buyer_actions, cov.one_sided
    (False, 'won')
    """

    activities: int = 0
    buyer_actions: int = 0
    deals: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)
    stage_path: str = "recorded"
    derived_deals: int | None = None
    unknown_groups: Mapping[str, int] = field(default_factory=dict)
    reps: int = 0

    @property
    def has_activities(self) -> bool:
        """Seller activities exist."""
        return self.activities > 0

    @property
    def has_buyer_actions(self) -> bool:
        """Buyer actions exist, so response rates and return on effort can be measured."""
        return self.buyer_actions > 0

    @property
    def response_measurable(self) -> bool:
        """Activities and buyer actions both exist."""
        return self.has_activities and self.has_buyer_actions

    @property
    def closed(self) -> int:
        """Closed deals."""
        return sum(self.outcomes.get(o, 0) for o in _CLOSED)

    @property
    def one_sided(self) -> str | None:
        """``"won"`` or ``"lost"`` when every closed deal has that result, else ``None``.

        ``"lost"`` covers lost and no-decision deals together (no deal won).
        """
        if self.closed == 0:
            return None
        won = self.outcomes.get("won", 0)
        if won == self.closed:
            return "won"
        if won == 0:
            return "lost"
        return None

    @property
    def win_rate_measurable(self) -> bool:
        """Closed deals of both kinds (won, and lost or no decision) exist."""
        return self.closed > 0 and self.one_sided is None

    @property
    def times_in_stage(self) -> bool:
        """Times in stage are measured: stage changes were exported (for all deals or some)."""
        return self.stage_path in ("recorded", "mixed")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, with the derived flags.

        Examples
        --------
        >>> Coverage(stage_path="derived").to_dict()["times_in_stage"]
        False
        """
        out = asdict(self)
        out["outcomes"] = dict(self.outcomes)
        out["unknown_groups"] = dict(self.unknown_groups)
        out.update(
            has_buyer_actions=self.has_buyer_actions,
            one_sided_outcomes=self.one_sided,
            win_rate_measurable=self.win_rate_measurable,
            times_in_stage=self.times_in_stage,
        )
        return out

    def caveats(self, section: str | None = None) -> list[Finding]:
        """What a page (``section``) cannot say with this data, in words (topic ``coverage``).

        Parameters
        ----------
        section
            ``roe``, ``habits``, ``deviance``, ``deviance_win``, ``journey``,
            ``organisation``, ``mirror``; ``None`` gives every caveat (the command line).

        Examples
        --------
        >>> cov = Coverage(activities=5, buyer_actions=0)
        >>> [f.plain[:39] for f in cov.caveats("roe")]
        ['This data holds no buyer actions (repli']
        """
        from effortlens.findings import Finding

        found: list[Finding] = []
        response = {"roe", "habits", "deviance", "organisation", "mirror", None}
        if self.has_activities and not self.has_buyer_actions and section in response:
            found.append(
                Finding(
                    "coverage",
                    "This data holds **no buyer actions** (replies, meetings held, requests), "
                    "so response rates, return on effort and effort with no buyer action "
                    "cannot be measured here — they are unknown, not zero. " + ADD_BUYER_ACTIONS,
                )
            )
        if self.one_sided and section in {"journey", "deviance_win", None}:
            n = self.closed
            if self.one_sided == "won":
                what = f"Every closed deal in this data is **won** ({n:,} deal{_s(n)})"
                missing = "lost and no-decision deals"
            else:
                what = f"**No closed deal in this data is won** ({n:,} lost or no decision)"
                missing = "won deals"
            found.append(
                Finding(
                    "coverage",
                    f"{what}: the export seems to hold one side only, so win rates cannot "
                    f"tell reps or stages apart. Add the {missing} to compare them.",
                )
            )
        if self.stage_path in ("derived", "mixed") and section in {"journey", None}:
            if self.stage_path == "derived":
                text = (
                    "The stage history here is **derived from each deal's current stage** (the "
                    "export holds no stage changes): the funnel shows how far deals got, not "
                    "the path they took or when they moved. Times in stage and blocked deals "
                    "are not measured, stages between the first and the current one are not "
                    "counted as passed, and losses whose stage the export does not give are "
                    "shown as such. " + ADD_STAGE_HISTORY
                )
            else:
                some = f"{self.derived_deals:,} deals" if self.derived_deals else "Some deals"
                text = (
                    f"{some} have no recorded stage changes: their stage history is derived "
                    "from their current stage, so they count in the funnel only at the stages "
                    "they entered, and times in stage come from the other deals only."
                )
            found.append(Finding("coverage", text))
        groups = {
            "organisation": ("team",),
            "roe": GROUP_COLUMNS,
            "deviance": ("segment", "role"),
            "deviance_win": ("segment", "role"),
            "journey": ("team", "segment"),
            None: GROUP_COLUMNS,
        }.get(section, ())
        missing = [(c, self.unknown_groups.get(c, 0)) for c in groups]
        missing = [(c, n) for c, n in missing if n]
        if missing:
            parts = [f"{n:,} rep{_s(n)} without a {c}" for c, n in missing]
            found.append(
                Finding(
                    "coverage",
                    f"{_join(parts).capitalize()}: shown as the group **{UNKNOWN}**.",
                )
            )
        return found


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def stage_path_of(
    stage_history: pl.DataFrame | pl.LazyFrame | None,
) -> tuple[str, int | None]:
    """Whether the stage history of a load was recorded or derived, from its ``derived`` flag.

    Parameters
    ----------
    stage_history
        The ``stage_history`` table (eager or lazy), or ``None``. Entries whose ``derived``
        flag is true were made from a deal's current stage
        (:func:`effortlens.adapters.derivation.derived_stage_entries`); an empty flag, or no
        ``derived`` column (canonical files), means recorded.

    Returns
    -------
    tuple
        The stage path (:data:`STAGE_PATHS`: ``none`` without entries, ``derived`` when every
        entry is derived, ``mixed`` when some are, else ``recorded``) and how many deals'
        entries were derived (``None`` when none were).

    Examples
    --------
    >>> history = pl.DataFrame({"opportunity_id": ["o1", "o1", "o2"],
    ...                         "derived": [True, True, None]})
    >>> stage_path_of(history)
    ('mixed', 1)
    >>> stage_path_of(history.filter(pl.col("derived")))
    ('derived', 1)
    """
    if stage_history is None:
        return "none", None
    lazy = stage_history.lazy()
    if "derived" not in lazy.collect_schema().names():
        rows = int(lazy.select(pl.len()).collect().item())
        return ("recorded" if rows else "none"), None
    flag = pl.col("derived").fill_null(value=False)
    rows, derived, deals = (
        lazy.select(
            pl.len(),
            flag.sum(),
            pl.col("opportunity_id").filter(flag).n_unique(),
        )
        .collect()
        .row(0)
    )
    if not rows:
        return "none", None
    if not derived:
        return "recorded", None
    return ("derived" if derived == rows else "mixed"), int(deals)


def _lazy(enriched: Enriched, name: str) -> pl.LazyFrame | None:
    """A canonical table as a lazy frame (without collecting a lazy one), or ``None``."""
    tables = enriched.tables
    if name not in tables:
        return None
    return tables.lazy(name) if hasattr(tables, "lazy") else tables[name].lazy()


def _height(enriched: Enriched, name: str) -> int:
    """Rows of a canonical table, without collecting a lazy one."""
    lazy = _lazy(enriched, name)
    return 0 if lazy is None else int(lazy.select(pl.len()).collect().item())


def _activities(enriched: Enriched) -> int:
    n = getattr(enriched, "n_activities", None)  # without collecting lazy facts
    return int(n) if n is not None else enriched.activities.height


def data_coverage(enriched: Enriched, *, report: Any = None) -> Coverage:  # noqa: ARG001
    """What one enriched load holds (see the module notes).

    Parameters
    ----------
    enriched
        The enriched facts of the whole load (not a filtered view).
    report
        The load report (``data.report``); accepted for callers that have it. Whether the
        stage history was derived is read from its entries' ``derived`` flag.

    Returns
    -------
    Coverage

    Examples
    --------
    >>> from effortlens.enrich import enrich_tables
    >>> from effortlens.settings import load_settings
    >>> cov = data_coverage(enrich_tables({}, settings=load_settings()))
    >>> cov.has_activities, cov.stage_path
    (False, 'none')
    """
    opportunities = _lazy(enriched, "opportunities")  # counted, not held (a kernel's memory)
    outcomes: dict[str, int] = dict.fromkeys(_CLOSED, 0)
    deals = 0
    if opportunities is not None:
        deals = _height(enriched, "opportunities")
        if "outcome" in opportunities.collect_schema().names():
            for outcome, n in opportunities.group_by("outcome").len().collect().iter_rows():
                if outcome in outcomes:
                    outcomes[outcome] = int(n)
    stage_path, derived = stage_path_of(_lazy(enriched, "stage_history"))
    raw = enriched.tables.get("reps")
    unknown: dict[str, int] = {}
    if raw is not None and raw.height:
        for column in GROUP_COLUMNS:
            if column not in raw.columns:
                unknown[column] = raw.height
                continue
            value = pl.col(column).cast(pl.String).str.strip_chars()
            missing = value.is_null() | (value == "") | (value == UNKNOWN)  # raw or enriched
            unknown[column] = int(raw.select(missing.sum()).item())
    return Coverage(
        activities=_activities(enriched),
        buyer_actions=_height(enriched, "buyer_actions"),
        deals=deals,
        outcomes=outcomes,
        stage_path=stage_path,
        derived_deals=derived,
        unknown_groups={c: n for c, n in unknown.items() if n},
        reps=0 if raw is None else raw.height,
    )
