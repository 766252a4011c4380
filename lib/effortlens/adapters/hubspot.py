"""HubSpot exports, with property labels (the UI's default) or internal names.

What each export becomes:

owners -> reps
    ``Owner ID``/``id``, first + last name, ``Team``/``teams``/``Primary team``. Archived
    (deactivated) owners stay reps who left, exit date from ``updatedAt``/``Last updated``
    (noted as an approximation). Deals and activities name their owner by id (internal names)
    or by name (labels); both are matched to the owner, as are e-mail addresses. Without an
    owners export, the reps are the owners named in the other files.
deals -> opportunities and stage history
    ``Record ID``/``hs_object_id``, ``Deal owner``/``hubspot_owner_id``, ``Create Date``,
    ``Close Date`` (kept for closed deals only), ``Amount`` in ``Currency``
    (``deal_currency_code``), company from ``Associated Company IDs``/``associatedcompanyid``.
    Outcome: ``Is Closed Won``/``Is Deal Closed?`` (``hs_is_closed_won``/``hs_is_closed``)
    when exported, else the stage (closedwon, closedlost); a closed-lost deal whose
    ``Closed Lost Reason`` is an outcome label for no decision is ``no_decision``. Stage
    history: one entry per filled ``Date entered "<stage> (<pipeline>)"`` column
    (``hs_v2_date_entered_<stage id>``, ``hs_date_entered_<stage id>``); entering closed won/lost
    is the outcome, not a stage. Without those columns, entries are derived from each deal's
    current stage (see :func:`effortlens.adapters.derivation.derived_stage_entries`). Custom
    pipelines' stage ids or names go in the mapping's ``[values.stage]``.
emails -> activities and buyer actions
    ``Email direction`` EMAIL = the rep's email (an activity); INCOMING_EMAIL and
    FORWARDED_EMAIL (a buyer's email the rep forwarded into HubSpot) = a buyer ``reply``,
    except automatic replies and out-of-office messages (``not_buyer_action``). Outgoing
    emails whose send status is failed, scheduled or a draft are ``not_completed``.
calls -> activities and buyer actions
    Outbound calls are ``call`` activities (duration: ``h:mm:ss`` or milliseconds); inbound
    calls are the buyer calling: a buyer ``reply``. Cancelled, queued or failed calls are
    ``not_completed``.
meetings -> activities and buyer actions
    Every meeting is an activity (type from ``Activity type``/``hs_activity_type``, else
    meeting; duration from start and end) except cancelled or rescheduled ones; a meeting
    whose outcome is COMPLETED is also a buyer ``meeting_held`` action (a verifier).
contacts (optional) -> the account of an activity whose only association is a contact.

An activity's account: its associated company, else its contact's company, else its deal's.
Several associated ids in one cell (``"5001;5002"``) use the first, noted.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import polars as pl

from effortlens.adapters.derivation import (
    derive_missing_history,
    reps_from_owners,
    resolve_owner_names,
)
from effortlens.adapters.matching import merge_spellings
from effortlens.adapters.pieces import (
    ADAPTER_REASONS,
    Piece,
    Rule,
    assemble,
    make_piece,
    routing_note,
)
from effortlens.adapters.reading import Context, Sheet, read_sheet
from effortlens.adapters.times import parse_time_columns, time_field
from effortlens.adapters.values import (
    activity_vocabulary,
    closing_stage,
    is_automatic_reply,
    loss_reason_outcome,
    no_decision_labels,
    only,
    outcome_vocabulary,
    parse_amounts,
    stage_vocabulary,
    translated,
)
from effortlens.loading import LoadedData
from effortlens.loading.columns import boolean
from effortlens.schema import OUTCOMES

#: HubSpot's default sales pipeline -> EffortLens stages (ids and labels).
DEFAULT_STAGES: dict[str, str] = {
    "appointmentscheduled": "prospect",
    "Appointment Scheduled": "prospect",
    "qualifiedtobuy": "discovery",
    "Qualified To Buy": "discovery",
    "presentationscheduled": "evaluation",
    "Presentation Scheduled": "evaluation",
    "decisionmakerboughtin": "negotiation",
    "Decision Maker Bought-In": "negotiation",
    "contractsent": "commit",
    "Contract Sent": "commit",
}

ID = ("Record ID", "hs_object_id", "Deal ID", "dealId", "id", "Object ID")
OWNER = (
    "Deal owner",
    "hubspot_owner_id",
    "Activity assigned to",
    "HubSpot owner",
    "Email owner",
    "Call owner",
    "Meeting owner",
    "Owner",
    "Assigned to",
)
TIMESTAMP = (
    "hs_timestamp",
    "Activity date",
    "Timestamp",
    "hs_createdate",
    "Create date",
    "Created at",
)
CONTACTS = (
    "Associated Contact IDs",
    "Associated Contact ID",
    "associated_contact_ids",
    "associations.contacts",
    "Contact IDs",
    "Contact ID",
    "associated_contact",
    "Associated Contact",
)
COMPANIES = (
    "Associated Company IDs",
    "Associated Company ID",
    "Associated Company IDs (Primary)",
    "associated_company_ids",
    "associatedcompanyid",
    "associations.companies",
    "Company IDs",
    "Company ID",
    "Associated Company",
)
DEALS = (
    "Associated Deal IDs",
    "Associated Deal ID",
    "associated_deal_ids",
    "associations.deals",
    "Deal IDs",
    "Associated Deal",
)

_DATE_ENTERED = re.compile(
    r"^(?:hs_v2_date_entered_|hs_date_entered_|date entered\s*[\"'“”]*)(.+?)[\"'“”]*$",
    re.IGNORECASE,
)


def _word(expr: pl.Expr) -> pl.Expr:
    """Enumeration values compared as compact lower-case words (``"No show"`` = ``NO_SHOW``)."""
    return expr.str.to_lowercase().str.replace_all(r"[^a-z0-9]", "")


def _first_id(sheet: Sheet, candidates: tuple[str, ...], ctx: Context, what: str) -> pl.Expr:
    column = sheet.column(*candidates)
    if column is None:
        return pl.lit(None, dtype=pl.String)
    values = (
        pl.col(column).str.replace_all(r"[,|]", ";").str.split(";").list.first().str.strip_chars()
    )
    several = int(sheet.frame[column].str.contains(r"[;,|]").fill_null(False).sum())
    if several:
        ctx.note(
            f"{sheet.name}: {several} rows name several {what}s in {column}; the first is used"
        )
    return pl.when(values != "").then(values)


def _pairs(frames: list[pl.DataFrame], key: str, value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for frame in frames:
        if key in frame.columns and value in frame.columns:
            out |= dict(frame.select(key, value).drop_nulls().unique(key, keep="first").iter_rows())
    return out


class _Links:
    """Companies of contacts (contacts export) and of deals (deals export)."""

    def __init__(self, sheets: dict[str, list[Sheet]], ctx: Context):
        self.contact_company: dict[str, str] = {}
        self.deal_company: dict[str, str] = {}
        for sheet in sheets.get("contacts", []):
            frame = sheet.frame.select(
                _first_id(sheet, ID, ctx, "id").alias("k"),
                _first_id(sheet, COMPANIES, ctx, "company").alias("v"),
            )
            self.contact_company |= _pairs([frame], "k", "v")
        for sheet in sheets.get("deals", []):
            frame = sheet.frame.select(
                _first_id(sheet, ID, ctx, "id").alias("k"),
                _first_id(sheet, COMPANIES, ctx, "company").alias("v"),
            )
            self.deal_company |= _pairs([frame], "k", "v")

    def fields(self, sheet: Sheet, ctx: Context) -> dict[str, pl.Expr]:
        contact = _first_id(sheet, CONTACTS, ctx, "contact")
        deal = _first_id(sheet, DEALS, ctx, "deal")
        company = pl.coalesce(
            _first_id(sheet, COMPANIES, ctx, "company"),
            contact.replace_strict(self.contact_company, default=None, return_dtype=pl.String),
            deal.replace_strict(self.deal_company, default=None, return_dtype=pl.String),
        )
        return {"account_id": company, "opportunity_id": deal, "contact_id": contact}


def load_hubspot(
    files: dict[str, tuple[Path, ...]],
    *,
    ctx: Context,
    source: str = "",
    now: datetime | None = None,
) -> LoadedData:
    """Load HubSpot export files (by kind) into validated canonical tables.

    Parameters
    ----------
    files
        Kind (``"deals"``, ``"emails"``, ``"calls"``, ``"meetings"``, ``"owners"``,
        ``"contacts"``, as :func:`detect_format` returns them) to its export files.
    ctx
        Settings, source time zone (HubSpot's UI exports write the portal's zone) and value
        maps.
    source
        Where the files came from, for the report.
    now
        Load time.

    Examples
    --------
    >>> # load_any("hubspot_exports/", settings=load_settings())  # detects and calls this
    """
    sheets = {kind: [read_sheet(p) for p in paths] for kind, paths in files.items()}
    links = _Links(sheets, ctx)
    pieces: list[Piece] = []
    for sheet in sheets.get("emails", []):
        pieces += _emails(sheet, ctx, links)
    for sheet in sheets.get("calls", []):
        pieces += _calls(sheet, ctx, links)
    for sheet in sheets.get("meetings", []):
        pieces += _meetings(sheet, ctx, links)
    for sheet in sheets.get("deals", []):
        pieces += _deals(sheet, ctx)
    if sheets.get("owners"):
        reps, aliases = _owners(sheets["owners"], ctx)
        pieces = reps + resolve_owner_names(pieces, reps, ctx, aliases=aliases)
    else:
        pieces = reps_from_owners(pieces, ctx)
        ctx.note("no owners export: reps are the owners named in the other files (no teams)")
    return assemble(pieces, ctx, source=source, now=now)


def _route(sheet: Sheet, pieces: list[Piece], ctx: Context) -> None:
    counts: dict[str, int] = {}
    for piece in pieces:
        counts[piece.table] = counts.get(piece.table, 0) + piece.frame.height
    ctx.note(routing_note(sheet.name, sheet.frame.height, counts))


def _timed(sheet: Sheet, ctx: Context, *candidates: str) -> tuple[Sheet, pl.Expr, Rule]:
    column = sheet.column(*candidates)
    sheet = parse_time_columns(sheet, [column], ctx)
    ts, bad, where = time_field(column)
    if column is None:
        ctx.note(f"{sheet.name}: no timestamp column (looked for {', '.join(candidates)})")
    return sheet, ts, Rule(bad.is_not_null(), "bad_timestamp", where, bad)


def _emails(sheet: Sheet, ctx: Context, links: _Links) -> list[Piece]:
    sheet, ts, bad_ts = _timed(sheet, ctx, *TIMESTAMP)
    direction = _word(sheet.get("hs_email_direction", "Email direction"))
    incoming = direction.is_in(
        ["incomingemail", "forwardedemail", "incoming", "inbound"]
    ).fill_null(False)
    status = _word(sheet.get("hs_email_status", "Email send status", "Email status"))
    common = {"ts": ts, **links.fields(sheet, ctx)}
    automatic = is_automatic_reply(
        subject=sheet.get("hs_email_subject", "Email subject", "Subject"),
        headers=sheet.get("hs_email_headers", "Email headers"),
        sender=sheet.get("hs_email_from_email", "From email", "Email from address"),
    )
    actions = make_piece(
        "buyer_actions",
        sheet,
        {"action_id": sheet.get(*ID), "action_type": pl.lit("reply"), **common},
        where=incoming,
        rules=[
            Rule(
                automatic,
                "not_buyer_action",
                "subject",
                pl.format(
                    "'{}': {}",
                    sheet.get("hs_email_subject", "Email subject", "Subject").fill_null(""),
                    pl.lit(ADAPTER_REASONS["not_buyer_action"]),
                ),
            ),
            bad_ts,
        ],
    )
    activities = make_piece(
        "activities",
        sheet,
        {
            "activity_id": sheet.get(*ID),
            "rep_id": sheet.get(*OWNER),
            "activity_type": pl.lit("email"),
            **common,
        },
        where=~incoming,
        rules=[
            Rule(
                status.is_in(
                    ["failed", "scheduled", "draft", "sending", "canceled", "cancelled"]
                ).fill_null(False),
                "not_completed",
                "status",
                pl.format("send status '{}': {}", status, pl.lit(ADAPTER_REASONS["not_completed"])),
            ),
            bad_ts,
        ],
    )
    pieces = [actions, activities]
    _route(sheet, pieces, ctx)
    return pieces


def _duration_minutes(expr: pl.Expr) -> pl.Expr:
    """``h:mm:ss`` / ``mm:ss`` text, else HubSpot's milliseconds."""
    parts = expr.str.split(":")
    clock = (
        pl.when(parts.list.len() == 3)
        .then(
            parts.list.get(0, null_on_oob=True).cast(pl.Float64, strict=False) * 60
            + parts.list.get(1, null_on_oob=True).cast(pl.Float64, strict=False)
            + parts.list.get(2, null_on_oob=True).cast(pl.Float64, strict=False) / 60
        )
        .when(parts.list.len() == 2)
        .then(
            parts.list.get(0, null_on_oob=True).cast(pl.Float64, strict=False)
            + parts.list.get(1, null_on_oob=True).cast(pl.Float64, strict=False) / 60
        )
    )
    return (
        pl.when(expr.str.contains(":"))
        .then(clock)
        .otherwise(expr.cast(pl.Float64, strict=False) / 60_000)
    )


def _calls(sheet: Sheet, ctx: Context, links: _Links) -> list[Piece]:
    sheet, ts, bad_ts = _timed(sheet, ctx, *TIMESTAMP)
    inbound = (
        _word(sheet.get("hs_call_direction", "Call direction"))
        .is_in(["inbound", "incoming"])
        .fill_null(False)
    )
    status = _word(sheet.get("hs_call_status", "Call status"))
    common = {"ts": ts, **links.fields(sheet, ctx)}
    activities = make_piece(
        "activities",
        sheet,
        {
            "activity_id": sheet.get(*ID),
            "rep_id": sheet.get(*OWNER),
            "activity_type": pl.lit("call"),
            "duration_min": _duration_minutes(sheet.get("hs_call_duration", "Call duration")),
            **common,
        },
        where=~inbound,
        rules=[
            Rule(
                status.is_in(["canceled", "cancelled", "queued", "failed"]).fill_null(False),
                "not_completed",
                "status",
                pl.format("call status '{}': {}", status, pl.lit(ADAPTER_REASONS["not_completed"])),
            ),
            bad_ts,
        ],
    )
    actions = make_piece(
        "buyer_actions",
        sheet,
        {"action_id": sheet.get(*ID), "action_type": pl.lit("reply"), **common},
        where=inbound,
        rules=[bad_ts],
    )
    pieces = [activities] + ([actions] if actions.frame.height else [])
    _route(sheet, pieces, ctx)
    return pieces


def _meetings(sheet: Sheet, ctx: Context, links: _Links) -> list[Piece]:
    start = ("hs_meeting_start_time", "Meeting start time", *TIMESTAMP)
    sheet, ts, bad_ts = _timed(sheet, ctx, *start)
    end = sheet.column("hs_meeting_end_time", "Meeting end time")
    sheet = parse_time_columns(sheet, [end], ctx)
    begin = sheet.column(*start)
    minutes = pl.lit(None, dtype=pl.Float64)
    if end and begin:
        minutes = (
            (
                pl.col(f"__t:{end}").str.to_datetime(time_zone="UTC", strict=False)
                - pl.col(f"__t:{begin}").str.to_datetime(time_zone="UTC", strict=False)
            )
            .dt.total_minutes()
            .cast(pl.Float64)
        )
    outcome = _word(sheet.get("hs_meeting_outcome", "Meeting outcome"))
    types = translated(
        sheet.frame,
        sheet.get("hs_activity_type", "Activity type", "Call and meeting type"),
        activity_vocabulary(ctx),
        ctx,
        what="activity type",
        where=sheet.name,
    )
    frame = sheet.frame.with_columns(types.fill_null("meeting").alias("__type"))
    sheet = Sheet(sheet.path, frame)
    common = {"ts": ts, **links.fields(sheet, ctx)}
    activities = make_piece(
        "activities",
        sheet,
        {
            "activity_id": sheet.get(*ID),
            "rep_id": sheet.get(*OWNER),
            "activity_type": pl.col("__type"),
            "duration_min": minutes,
            **common,
        },
        rules=[
            Rule(
                outcome.is_in(["canceled", "cancelled", "rescheduled"]).fill_null(False),
                "not_completed",
                "outcome",
                pl.format(
                    "meeting outcome '{}': {}", outcome, pl.lit(ADAPTER_REASONS["not_completed"])
                ),
            ),
            bad_ts,
        ],
    )
    held = outcome.is_in(["completed", "held"]).fill_null(False)
    actions = make_piece(
        "buyer_actions",
        sheet,
        {"action_id": sheet.get(*ID), "action_type": pl.lit("meeting_held"), **common},
        where=held,
        rules=[bad_ts],
    )
    pieces = [activities, actions]
    _route(sheet, pieces, ctx)
    return pieces


def _stage_name(raw: str, pipelines: set[str]) -> str:
    """``"Qualified To Buy (Sales Pipeline)"`` -> ``"Qualified To Buy"``."""
    match = re.match(r"^(.*?)\s*\(([^()]*)\)\s*$", raw)
    if match and (
        match.group(2).strip().lower() in pipelines
        or match.group(2).strip().lower().endswith("pipeline")
    ):
        return match.group(1)
    return raw


def _deals(sheet: Sheet, ctx: Context) -> list[Piece]:
    created = sheet.column("createdate", "Create Date", "Created date", "hs_createdate")
    close = sheet.column("closedate", "Close Date")
    sheet = parse_time_columns(sheet, [created, close], ctx)
    created_ts, bad_created, _ = time_field(created)
    close_ts, bad_close, _ = time_field(close)
    frame = sheet.frame
    pipelines = {
        v.strip().lower()
        for v in (
            frame[sheet.column("pipeline", "Pipeline")].drop_nulls().to_list()
            if sheet.column("pipeline", "Pipeline")
            else []
        )
    }
    raw_stage = sheet.get("dealstage", "Deal Stage")
    stage_text = frame.select(raw_stage.alias("s")).to_series()
    stage_text = stage_text.replace_strict(
        {v: _stage_name(v, pipelines) for v in stage_text.drop_nulls().unique().to_list()},
        default=None,
        return_dtype=pl.String,
    )
    outcomes = outcome_vocabulary(ctx)
    stage_outcome = only(
        translated(
            frame.with_columns(stage_text.alias("__s")),
            pl.col("__s"),
            outcomes,
            Context(ctx.settings, ctx.timezone),
            what="stage",
            where=sheet.name,
        ),
        OUTCOMES,
    )
    # a closing stage named "Closed - No Decision" or the like is a no-decision loss
    stage_nd = no_decision_labels(stage_text, ctx, what="stage as outcome", where=sheet.name)
    stage_outcome = pl.select(
        pl.when(pl.lit(stage_nd)).then(pl.lit("no_decision")).otherwise(pl.lit(stage_outcome))
    ).to_series()
    # any loss-reason column (Closed Lost Reason, a custom one named in the mapping…)
    reason_outcome, _ = loss_reason_outcome(sheet, ctx)
    amount_column = sheet.column("amount", "Amount")
    amount, symbol_currency, notes = parse_amounts(
        frame[amount_column]
        if amount_column
        else pl.Series([None] * frame.height, dtype=pl.String),
        decimal=ctx.decimal,
        where=f"{sheet.name}, Amount: ",
    )
    ctx.note(*notes)
    frame = frame.with_columns(
        stage_outcome.alias("__stage_outcome"),
        reason_outcome.alias("__reason_outcome"),
        amount.alias("__amount"),
        symbol_currency.alias("__symbol"),
    )
    won_flag = boolean(sheet.get("hs_is_closed_won", "Is Closed Won"))
    closed_flag = boolean(sheet.get("hs_is_closed", "Is Deal Closed?", "Is closed"))
    by_stage = pl.col("__stage_outcome")
    lost_kind = (
        pl.when((pl.col("__reason_outcome") == "no_decision") | (by_stage == "no_decision"))
        .then(pl.lit("no_decision"))
        .otherwise(pl.lit("lost"))
    )
    outcome = (
        pl.when(won_flag.fill_null(False))
        .then(pl.lit("won"))
        .when(closed_flag.fill_null(False))
        .then(lost_kind)
        .when(closed_flag.is_not_null() & ~closed_flag.fill_null(True))
        .then(pl.lit("open"))
        .when(by_stage == "won")
        .then(pl.lit("won"))
        .when(by_stage.is_in(["lost", "no_decision"]))
        .then(lost_kind)
        .otherwise(pl.lit("open"))
    )
    frame = frame.with_columns(outcome.alias("__outcome"))
    sheet = Sheet(sheet.path, frame)
    company = sheet.column(*COMPANIES)
    opportunities = make_piece(
        "opportunities",
        sheet,
        {
            "opportunity_id": sheet.get(*ID),
            "rep_id": sheet.get(*OWNER),
            "account_id": _first_id(sheet, COMPANIES, ctx, "company") if company else pl.lit(None),
            "created_ts": created_ts,
            "amount": pl.col("__amount"),
            "currency": pl.coalesce(
                sheet.get("deal_currency_code", "Currency"), pl.col("__symbol")
            ),
            "close_ts": pl.when(pl.col("__outcome") != "open").then(close_ts),
            "outcome": pl.col("__outcome"),
        },
        rules=[
            Rule(bad_created.is_not_null(), "bad_timestamp", created, bad_created),
            Rule(
                bad_close.is_not_null() & (pl.col("__outcome") != "open"),
                "bad_timestamp",
                close,
                bad_close,
            ),
        ],
    )
    pieces = [opportunities]
    entered = {
        c: m.group(1)
        for c in frame.columns
        if (m := _DATE_ENTERED.match(c)) and not c.startswith("__")
    }
    vocab = stage_vocabulary(ctx, DEFAULT_STAGES)
    stages = translated(
        frame.with_columns(stage_text.alias("__s")),
        pl.col("__s"),
        vocab,
        ctx,
        what="stage",
        where=sheet.name,
    )
    history = (
        [_date_entered(sheet, entered, pipelines, vocab, outcomes, ctx, opportunities)]
        if entered
        else []
    )
    pieces += history + derive_missing_history(opportunities, stages, history, ctx)
    _route(sheet, pieces, ctx)
    return pieces


def _date_entered(
    sheet: Sheet,
    entered: dict[str, str],
    pipelines: set[str],
    vocab: dict[str, str],
    outcomes: dict[str, str],
    ctx: Context,
    opportunities: Piece,
) -> Piece:
    columns = list(entered)
    sheet = parse_time_columns(sheet, columns, ctx)
    names = {c: _stage_name(entered[c], pipelines) for c in columns}
    name_series = pl.Series(list(names.values()), dtype=pl.String)
    targets = dict(
        zip(
            columns,
            translated(
                pl.DataFrame({"s": name_series}),
                pl.col("s"),
                vocab,
                ctx,
                what="stage",
                where=sheet.name,
            ).to_list(),
            strict=True,
        )
    )
    closing = dict(
        zip(
            columns,
            closing_stage(name_series, outcomes, ctx.settings.stages).to_list(),
            strict=True,
        )
    )
    frames = []
    n_closing = 0
    for column in columns:
        filled = sheet.frame.filter(pl.col(column).is_not_null())
        if closing[column]:
            n_closing += filled.height
            continue
        frames.append(
            filled.with_columns(
                pl.lit(targets[column]).alias("__stage"),
                pl.col(f"__t:{column}").alias("__entered"),
                pl.col(f"__bad:{column}").alias("__bad"),
                pl.lit(column).alias("__column"),
            )
        )
    ids = opportunities.frame.select("__line", "opportunity_id")
    entries = (
        pl.concat(frames, how="diagonal_relaxed").join(ids, on="__line", how="left")
        if frames
        else None
    )
    if entries is None:
        entries = opportunities.frame.head(0).with_columns(
            *(
                pl.lit(None, dtype=pl.String).alias(c)
                for c in ("__stage", "__entered", "__bad", "__column")
            )
        )
    ctx.note(
        f"{sheet.name}: {entries.height} stage entries from {len(columns)} 'Date entered' "
        f"columns; {n_closing} entries into closed won/lost not used (the outcome is the "
        "deal's)"
    )
    unknown = sorted(
        {entered[c] for c in columns if not closing[c] and targets[c] not in ctx.settings.stages}
    )
    if unknown:
        ctx.note(
            f"{sheet.name}: stages not in the settings nor mapped (their entries are "
            f"quarantined as unknown_stage): {', '.join(unknown)}; map them in a mapping's "
            "[values.stage]"
        )
    return make_piece(
        "stage_history",
        Sheet(sheet.path, entries),
        {
            "opportunity_id": pl.col("opportunity_id"),
            "stage": pl.col("__stage"),
            "entered_ts": pl.col("__entered"),
        },
        rules=[
            Rule(
                pl.col("__bad").is_not_null(), "bad_timestamp", pl.col("__column"), pl.col("__bad")
            )
        ],
    )


def _owners(sheets: list[Sheet], ctx: Context) -> tuple[list[Piece], dict[str, str]]:
    pieces = []
    aliases: dict[str, str] = {}
    for sheet in sheets:
        updated = sheet.column("updatedAt", "Last updated", "Updated at", "Last modified")
        sheet = parse_time_columns(sheet, [updated], ctx, as_date=True)
        first = sheet.get("firstName", "First Name", "firstname")
        last = sheet.get("lastName", "Last Name", "lastname")
        name = pl.concat_str([first, last], separator=" ", ignore_nulls=True)
        email = sheet.get("email", "Email")
        rep_id = pl.coalesce(
            sheet.get("Owner ID", "ownerId", "id", "hubspot_owner_id", "User ID"), email
        )
        archived = pl.coalesce(
            boolean(sheet.get("archived", "Archived", "Deactivated")),
            ~boolean(sheet.get("active", "Active")),
            _word(sheet.get("Status", "User status")).is_in(["deactivated", "inactive"]),
        ).fill_null(False)
        frame = sheet.frame.with_columns(
            rep_id.alias("__id"), name.alias("__name"), email.alias("__email")
        )
        for alias_column in ("__name", "__email"):
            aliases |= {
                a: i for a, i in frame.select(alias_column, "__id").drop_nulls().iter_rows()
            }
        team_values = frame.select(
            sheet.get("teams", "Team", "Primary team", "Primary Team")
            .str.split(";")
            .list.first()
            .alias("team")
        ).to_series()
        teams, notes = merge_spellings(team_values, what="team", where=sheet.name)
        ctx.note(*notes)
        frame = frame.with_columns(teams.alias("__team"))
        piece = make_piece(
            "reps",
            Sheet(sheet.path, frame),
            {
                "rep_id": pl.col("__id"),
                "rep_name": pl.col("__name"),
                "team": pl.col("__team"),
                "role": sheet.get("Role", "role", "Job title", "jobtitle"),
                "exit_date": pl.when(archived).then(
                    pl.col(f"__t:{updated}") if updated else pl.lit(None, dtype=pl.String)
                ),
            },
        )
        pieces.append(piece)
        n_left = frame.filter(archived).height
        if n_left:
            ctx.note(
                f"{sheet.name}: {n_left} archived owners kept as reps who left; exit date "
                f"from {updated or '(no update date: unknown)'}, an approximation"
            )
        ctx.note(routing_note(sheet.name, frame.height, {"reps": piece.frame.height}))
    return pieces, aliases
