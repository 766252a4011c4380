"""The canonical data model: seven tables, their Polars schemas, required columns and keys.

Every loader and adapter ends by casting to these schemas; every metric starts from them.
All timestamps are timezone-aware UTC (``pl.Datetime("us", "UTC")``), all ids are strings,
dates without time (hire, exit, intervention windows) are ``pl.Date``.

Examples
--------
>>> from effortlens.schema import TABLES
>>> TABLES["activities"].required
('activity_id', 'rep_id', 'ts', 'activity_type')
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")

OUTCOMES: tuple[str, ...] = ("open", "won", "lost", "no_decision")
EXIT_REASONS: tuple[str, ...] = ("voluntary", "involuntary")


@dataclass(frozen=True)
class TableSchema:
    """One canonical table.

    Parameters
    ----------
    name
        Table name, also the file stem a user provides (``activities.csv``).
    columns
        Column name to Polars dtype, in canonical order.
    required
        Columns that must be present in the file header; a row with a null in ``key`` or in
        one of ``not_null`` is quarantined.
    key
        The column that identifies a row (unique), or ``None`` for link tables.
    not_null
        Columns that must be non-null in every loaded row.
    description
        One line per column, for the README and the load report.
    """

    name: str
    columns: dict[str, pl.DataType]
    required: tuple[str, ...]
    key: str | None
    not_null: tuple[str, ...]
    description: dict[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> pl.Schema:
        """The table's Polars schema, column name to dtype."""
        return pl.Schema(self.columns)

    def empty(self) -> pl.DataFrame:
        """An empty frame with this table's schema."""
        return pl.DataFrame(schema=self.schema)


REPS = TableSchema(
    name="reps",
    columns={
        "rep_id": pl.String(),
        "rep_name": pl.String(),
        "team": pl.String(),
        "segment": pl.String(),
        "region": pl.String(),
        "role": pl.String(),
        "manager_id": pl.String(),
        "hire_date": pl.Date(),
        "exit_date": pl.Date(),
        "exit_reason": pl.String(),
        "timezone": pl.String(),
    },
    required=("rep_id",),
    key="rep_id",
    not_null=("rep_id",),
    description={
        "rep_id": "seller id (string, unique)",
        "rep_name": "display name (hidden by the anonymise toggle)",
        "team": "team the seller belongs to",
        "segment": "market segment served (e.g. SMB, Mid-Market, Enterprise)",
        "region": "sales region",
        "role": "role (e.g. AE, SDR)",
        "manager_id": "rep_id or name of the seller's manager",
        "hire_date": "date hired",
        "exit_date": "date left, empty while employed",
        "exit_reason": "voluntary or involuntary, empty while employed",
        "timezone": "the rep's IANA time zone (e.g. Europe/Berlin) for local day, week and "
        "hour; empty means the settings' zone",
    },
)

ACTIVITIES = TableSchema(
    name="activities",
    columns={
        "activity_id": pl.String(),
        "rep_id": pl.String(),
        "ts": UTC_TS,
        "activity_type": pl.String(),
        "account_id": pl.String(),
        "opportunity_id": pl.String(),
        "contact_id": pl.String(),
        "duration_min": pl.Float64(),
    },
    required=("activity_id", "rep_id", "ts", "activity_type"),
    key="activity_id",
    not_null=("activity_id", "rep_id", "ts", "activity_type"),
    description={
        "activity_id": "effort id (unique)",
        "rep_id": "the seller who did it (must be in reps)",
        "ts": "when (ISO 8601; naive times are read in the settings' time zone)",
        "activity_type": "email, call, meeting, demo, proposal, social, internal, admin, or a raw "
        "type mapped in the settings",
        "account_id": "buyer account",
        "opportunity_id": "deal, if linked",
        "contact_id": "buyer contact, if known",
        "duration_min": "minutes; empty means the settings' default for the type",
    },
)

BUYER_ACTIONS = TableSchema(
    name="buyer_actions",
    columns={
        "action_id": pl.String(),
        "ts": UTC_TS,
        "account_id": pl.String(),
        "opportunity_id": pl.String(),
        "contact_id": pl.String(),
        "action_type": pl.String(),
        "is_verifier": pl.Boolean(),
        "weight": pl.Float64(),
    },
    required=("action_id", "ts", "account_id", "action_type"),
    key="action_id",
    not_null=("action_id", "ts", "account_id", "action_type"),
    description={
        "action_id": "buyer response id (unique)",
        "ts": "when the buyer acted",
        "account_id": "buyer account (required)",
        "opportunity_id": "deal, if linked",
        "contact_id": "the buyer contact who acted",
        "action_type": "reply, meeting_accepted, meeting_held, content_engaged, referral, "
        "proposal_requested, mutual_plan, verbal_commit",
        "is_verifier": "buyer evidence of progress; empty means the settings' verifier list",
        "weight": "impact weight; empty means the settings' weight for the type",
    },
)

OPPORTUNITIES = TableSchema(
    name="opportunities",
    columns={
        "opportunity_id": pl.String(),
        "account_id": pl.String(),
        "rep_id": pl.String(),
        "created_ts": UTC_TS,
        "amount": pl.Float64(),
        "currency": pl.String(),
        "close_ts": UTC_TS,
        "outcome": pl.String(),
    },
    required=("opportunity_id", "rep_id", "created_ts", "outcome"),
    key="opportunity_id",
    # a deal without a created date is kept (its age is unknown), not set aside
    not_null=("opportunity_id", "rep_id", "outcome"),
    description={
        "opportunity_id": "deal id (unique)",
        "account_id": "buyer account",
        "rep_id": "owner (must be in reps)",
        "created_ts": "when the deal was created; empty: kept, with an unknown age",
        "amount": "deal value; may be empty on open deals",
        "currency": "ISO currency code; empty means the settings' currency",
        "close_ts": "when it closed; empty while open",
        "outcome": "open, won, lost or no_decision",
    },
)

STAGE_HISTORY = TableSchema(
    name="stage_history",
    columns={
        "opportunity_id": pl.String(),
        "stage": pl.String(),
        "entered_ts": UTC_TS,
        "verifier_action_id": pl.String(),
        "derived": pl.Boolean(),
    },
    required=("opportunity_id", "stage", "entered_ts"),
    key=None,
    not_null=("opportunity_id", "stage", "entered_ts"),
    description={
        "opportunity_id": "deal id",
        "stage": "stage entered (one of the settings' ordered stages)",
        "entered_ts": "when the deal entered the stage",
        "verifier_action_id": "buyer action that verified the move, if any",
        "derived": "true when EffortLens made the entry from the deal's current stage (no "
        "stage change exported: its time is not when the deal entered the stage); empty "
        "means recorded",
    },
)

INTERVENTIONS = TableSchema(
    name="interventions",
    columns={
        "intervention_id": pl.String(),
        "name": pl.String(),
        "practice": pl.String(),
        "start_date": pl.Date(),
        "end_date": pl.Date(),
    },
    required=("intervention_id", "start_date"),
    key="intervention_id",
    not_null=("intervention_id", "start_date"),
    description={
        "intervention_id": "id (unique)",
        "name": "what it was called",
        "practice": "the practice it taught",
        "start_date": "first day",
        "end_date": "last day, if it ended",
    },
)

INTERVENTION_PARTICIPANTS = TableSchema(
    name="intervention_participants",
    columns={"intervention_id": pl.String(), "rep_id": pl.String()},
    required=("intervention_id", "rep_id"),
    key=None,
    not_null=("intervention_id", "rep_id"),
    description={
        "intervention_id": "the intervention (must be in interventions)",
        "rep_id": "a participating rep (must be in reps)",
    },
)

TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (
        REPS,
        ACTIVITIES,
        BUYER_ACTIONS,
        OPPORTUNITIES,
        STAGE_HISTORY,
        INTERVENTIONS,
        INTERVENTION_PARTICIPANTS,
    )
}

#: ``reps`` is always required, plus at least one of these.
EFFORT_OR_PIPELINE: tuple[str, ...] = ("activities", "opportunities")

#: The files the sample generator writes beside its tables: its answer key (what was planted
#: and which activity each buyer action truly answers), never read as data.
SAMPLE_TRUTH_FILES: tuple[str, ...] = ("truth.json", "_truth_responses.parquet")


def why_ignored(name: str) -> str:
    """The note for a file in a data folder that is not read as a table.

    Examples
    --------
    >>> why_ignored("notes.txt")
    'notes.txt (not named after a table)'
    >>> why_ignored("truth.json")
    "truth.json (the sample generator's answer key, not data)"
    """
    if name in SAMPLE_TRUTH_FILES:
        return f"{name} (the sample generator's answer key, not data)"
    return f"{name} (not named after a table)"


def conform(frame: pl.DataFrame | pl.LazyFrame, table: str) -> pl.LazyFrame:
    """Select and cast ``frame`` to the canonical schema of ``table``.

    Missing optional columns are added as nulls; extra columns are dropped. Casting is
    strict: values must already be parseable (loaders quarantine the rest first).

    Examples
    --------
    >>> import polars as pl
    >>> conform(pl.DataFrame({"rep_id": ["r1"]}), "reps").collect().columns[:3]
    ['rep_id', 'rep_name', 'team']
    """
    spec = TABLES[table]
    lf = frame.lazy()
    present = set(lf.collect_schema().names())
    return lf.select(
        [
            (pl.col(name) if name in present else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in spec.columns.items()
        ]
    )
