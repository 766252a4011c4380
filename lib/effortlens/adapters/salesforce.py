"""Salesforce exports (Data Loader or the weekly Data Export: API field names as headers).

What each object becomes:

``User`` -> reps
    ``Id``, ``Name`` (else first + last name), team = the ``UserRole`` name (``UserRole.csv``
    or a ``UserRole.Name`` column; else ``Department``), role = ``Title``, segment =
    ``Segment__c`` else ``Division``, region = ``Region__c`` else ``Country``, manager =
    ``ManagerId``, hire date = ``Hire_Date__c``/``HireDate__c``/``Start_Date__c`` when there.
    Only users who own a task, event, deal or sent email, and their managers, are reps; the
    others (admins, integration users) are counted in a note. Inactive users stay reps: they
    left, and their exit date is ``Exit_Date__c``/``Termination_Date__c`` when there, else the
    date of ``LastModifiedDate`` (deactivating a user is normally its last edit; a note says
    so); the exit reason is ``Exit_Reason__c`` when there. ``TimeZoneSidKey`` is the rep's
    ``timezone`` (local day, week and hour of their activities).
``Task`` -> activities (and buyer actions)
    time = ``CompletedDateTime``, else ``CreatedDate``, else ``ActivityDate``; type by the
    chain of :mod:`effortlens.adapters.task_types` (value map, ``TaskSubtype``, ``Type``,
    ``EmailMessageId``, call fields, ``Subject`` prefix, settings default; counted per step in
    a note); duration = ``CallDurationInSeconds`` / 60. Inbound calls (``CallType`` =
    Inbound) are the buyer calling: buyer actions of type ``reply``. Set aside: deleted
    tasks, tasks not done (``IsClosed`` false).
``Event`` -> activities
    time = ``StartDateTime`` else ``ActivityDateTime`` else ``ActivityDate``; type = ``Type``,
    blank meaning ``meeting``; duration = ``DurationInMinutes``. Set aside: deleted events and
    the invitees' copies of group events (``IsChild`` true).
``EmailMessage`` -> buyer actions (incoming) and activities (outgoing)
    Incoming emails are buyer ``reply`` actions, except automatic replies, out-of-office
    messages and bounces (``not_buyer_action``). Outgoing emails are ``email`` activities of
    their sender (``CreatedById``), except drafts and emails already logged as a Task
    (``ActivityId``, or the Task's ``EmailMessageId``), which count once, as the Task, when
    that Task is loaded; when validation quarantines the Task, the email counts instead.
``Opportunity`` -> opportunities
    outcome: open while ``IsClosed`` is false; won when ``IsWon``; else lost, or no_decision
    when ``StageName`` or any loss-reason field (recognised by name, or named in the
    mapping's ``[source] loss_reason``) says so: a label the mapping's ``[values.outcome]``
    maps to no_decision, or one holding the words (``"No Decision / Non-Responsive"``).
    ``CloseDate`` is kept for closed deals only (on open deals it is an expected date).
    ``Amount`` in ``CurrencyIsoCode``, converted into the settings' currency with
    ``CurrencyType`` / ``DatedConversionRate`` when exported (see
    :mod:`effortlens.adapters.currency`). A deal without ``CreatedDate`` is kept (unknown
    age); ``LastStageChangeDate`` dates its current stage.
``OpportunityHistory`` / ``OpportunityFieldHistory`` -> stage history
    History rows whose stage differs from the deal's previous row are stage entries (rows that
    only change amount or dates are not; entering Closed Won/Lost is the outcome, not a
    stage). Field history (``Field`` = StageName) gives ``NewValue`` at ``CreatedDate``, and
    the first change's ``OldValue`` at the deal's ``CreatedDate``. Deals with no history get
    entries derived from their current stage (see
    :func:`effortlens.adapters.derivation.derived_stage_entries`).

Every id is turned into its 18-character form (case restored from the checksum), so files
mixing 15- and 18-character ids, or ids whose case a spreadsheet changed, join; the empty
lookup ``000000000000000AAA`` (or ``000000000000000``) is null in every column. A missing
optional column is not used; a missing essential one (:data:`ESSENTIAL`) stops the load with
one message naming the file, the column and the columns found. Account of an
activity: ``AccountId``, else ``WhatId`` when it is an account, else the deal's account, else
the contact's (from ``Contact.csv``); activities with a contact but no account are kept.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from effortlens.adapters.currency import RateTables, rate_tables
from effortlens.adapters.derivation import derive_missing_history, reps_from_owners
from effortlens.adapters.matching import merge_spellings
from effortlens.adapters.pieces import (
    ADAPTER_REASONS,
    REASON,
    Piece,
    Rule,
    assemble,
    make_piece,
    routing_note,
)
from effortlens.adapters.reading import (
    LINE,
    Context,
    Sheet,
    header_key,
    read_header,
    read_sheet,
)
from effortlens.adapters.salesforce_ids import EMPTY_IDS, normalise_ids
from effortlens.adapters.task_types import task_types, type_note
from effortlens.adapters.times import parse_time_columns, time_field
from effortlens.adapters.values import (
    activity_vocabulary,
    closing_stage,
    evaluate,
    is_automatic_reply,
    loss_reason_outcome,
    no_decision_labels,
    only,
    outcome_vocabulary,
    parse_amounts,
    stage_vocabulary,
    translated,
)
from effortlens.loading import DataError, LoadedData
from effortlens.loading.columns import boolean
from effortlens.loading.report import counted
from effortlens.schema import OUTCOMES

ID_COLUMNS: tuple[str, ...] = (
    "Id",
    "OwnerId",
    "AccountId",
    "WhoId",
    "WhatId",
    "OpportunityId",
    "ManagerId",
    "UserRoleId",
    "ParentId",
    "ActivityId",
    "RelatedToId",
    "CreatedById",
    "ContactId",
    "ReplyToEmailMessageId",
    "ParentRoleId",
)

#: Salesforce's default sales process -> EffortLens stages (used when the target is a stage
#: of the settings; the settings' and the mapping's maps win).
DEFAULT_STAGES: dict[str, str] = {
    "Prospecting": "prospect",
    "Qualification": "discovery",
    "Needs Analysis": "discovery",
    "Value Proposition": "evaluation",
    "Id. Decision Makers": "evaluation",
    "Perception Analysis": "evaluation",
    "Proposal/Price Quote": "proposal",
    "Negotiation/Review": "negotiation",
}
#: Columns each object cannot be read without (one group: any of its names). A missing
#: optional column (``IsDeleted``, ``TaskSubtype``, ``CallType``…) is simply not used.
ESSENTIAL: dict[str, tuple[tuple[str, ...], ...]] = {
    "Task": (("Id",), ("OwnerId",), ("CompletedDateTime", "CreatedDate", "ActivityDate")),
    "Event": (("Id",), ("OwnerId",), ("StartDateTime", "ActivityDateTime", "ActivityDate")),
    "EmailMessage": (("Id",), ("Incoming",), ("MessageDate", "CreatedDate")),
    "Opportunity": (("Id",), ("OwnerId",), ("StageName", "IsClosed"), ("CreatedDate",)),
    "OpportunityHistory": (("OpportunityId",), ("StageName",), ("CreatedDate",)),
    "OpportunityFieldHistory": (("OpportunityId",), ("Field",), ("NewValue",), ("CreatedDate",)),
    "User": (("Id",),),
    "UserRole": (("Id",), ("Name",)),
    "Contact": (("Id",),),
    "CurrencyType": (("IsoCode",), ("ConversionRate",)),
    "DatedConversionRate": (("IsoCode",), ("ConversionRate",), ("StartDate",)),
}
_WHY_ESSENTIAL = {
    "Id": "each record's id",
    "OwnerId": "who did it or owns it",
    "CreatedDate": "when it happened or was created",
    "StageName": "the deal's stage and outcome",
    "Incoming": "whether the buyer or the seller wrote the email",
}

_PREFIX_ACCOUNT, _PREFIX_OPPORTUNITY = "001", "006"
_CLOSING_NOTE = "not used: entering a closed stage (the outcome is taken from Opportunity)"
_OLD_VALUE_NOTE = "stage_history (the first change's OldValue at the deal's CreatedDate)"
_NOT_SELLER_NOTE = "not used: own no task, event, deal or email (admins, integration users)"


def _lookup(expr: pl.Expr, table: dict[str, str]) -> pl.Expr:
    return expr.replace_strict(table, default=None, return_dtype=pl.String)


def _prefixed(expr: pl.Expr, prefix: str) -> pl.Expr:
    return pl.when(expr.str.starts_with(prefix)).then(expr)


def _frames(sheets: list[Sheet]) -> pl.DataFrame | None:
    return pl.concat([s.frame for s in sheets], how="diagonal_relaxed") if sheets else None


def _pairs(frame: pl.DataFrame | None, key: str, value: str) -> dict[str, str]:
    if frame is None or key not in frame.columns or value not in frame.columns:
        return {}
    rows = frame.select(key, value).drop_nulls().unique(subset=[key], keep="first")
    return dict(rows.iter_rows())


class _Links:
    """What other objects tell about a record: a deal's account, a contact's account…"""

    def __init__(self, sheets: dict[str, list[Sheet]]):
        opps = _frames(sheets.get("Opportunity", []))
        contacts = _frames(sheets.get("Contact", []))
        self.opportunity_account = _pairs(opps, "Id", "AccountId")
        self.contact_account = _pairs(contacts, "Id", "AccountId")
        self.email_contact = {}
        if contacts is not None and "Email" in contacts.columns:
            self.email_contact = {k.lower(): v for k, v in _pairs(contacts, "Email", "Id").items()}
        self.user_zones: dict[str, list[str]] = {}
        for user, zone in _pairs(_frames(sheets.get("User", [])), "Id", "TimeZoneSidKey").items():
            self.user_zones.setdefault(zone, []).append(user)

    def in_owner_zone(
        self, ts: pl.Expr, raw: list[str | None], owner: pl.Expr, ctx: Context
    ) -> pl.Expr:
        """``ts`` (ISO UTC text) with the times written without a zone (a date, a naive time)
        read in the owner's ``TimeZoneSidKey`` instead of the source zone: a task due
        2024-03-05 for a rep in Los Angeles is that day in Los Angeles."""
        present = [c for c in raw if c]
        zones = {z: ids for z, ids in self.user_zones.items() if z != ctx.timezone and _is_zone(z)}
        if not present or not zones:
            return ts
        written = pl.coalesce([pl.col(c) for c in present])
        naive = ~written.str.contains(r"(Z|[+-]\d{2}:?\d{2})\s*$").fill_null(True)
        local = (
            ts.str.to_datetime(time_zone="UTC", strict=False)
            .dt.convert_time_zone(ctx.timezone)
            .dt.replace_time_zone(None)
        )
        out = None
        for zone, ids in zones.items():
            hit = naive & owner.is_in(ids).fill_null(False)
            there = (
                local.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
                .dt.convert_time_zone("UTC")
                .dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            )
            out = (pl.when(hit) if out is None else out.when(hit)).then(there)
        return out.otherwise(ts)

    def account(self, *, account: pl.Expr, what: pl.Expr, contact: pl.Expr) -> pl.Expr:
        return pl.coalesce(
            account,
            _prefixed(what, _PREFIX_ACCOUNT),
            _lookup(what, self.opportunity_account),
            _lookup(contact, self.contact_account),
        )

    def contact_by_email(self, address: pl.Expr) -> pl.Expr:
        first = address.str.split(";").list.first().str.strip_chars().str.to_lowercase()
        return _lookup(first, self.email_contact)


def load_salesforce(
    files: dict[str, tuple[Path, ...]],
    *,
    ctx: Context,
    source: str = "",
    now: datetime | None = None,
) -> LoadedData:
    """Load Salesforce export files (by object) into validated canonical tables.

    Parameters
    ----------
    files
        Object name (``"Opportunity"``, ``"Task"``…, as :func:`detect_format` returns them)
        to its export files.
    ctx
        Settings, source time zone and value maps (see :class:`Context`).
    source
        Where the files came from, for the report.
    now
        Load time (future timestamps are quarantined).

    Returns
    -------
    effortlens.loading.LoadedData

    Examples
    --------
    >>> from effortlens.adapters import detect_format, load_any
    >>> from effortlens.settings import load_settings
    >>> # load_any("exports/", settings=load_settings())  # detects Salesforce and calls this
    """
    sheets = {kind: [_normalised(read_sheet(p)) for p in paths] for kind, paths in files.items()}
    check_essential(sheets)
    links = _Links(sheets)
    pieces: list[Piece] = []

    kept_tasks: dict[str, str | None] = {}
    for sheet in sheets.get("Task", []):
        task_pieces, kept = _tasks(sheet, ctx, links)
        pieces += task_pieces
        kept_tasks |= kept
    for sheet in sheets.get("Event", []):
        pieces += _events(sheet, ctx, links)
    email_sheets = sheets.get("EmailMessage", [])
    email_pieces = [p for sheet in email_sheets for p in _emails(sheet, ctx, links, kept_tasks)]
    rates = rate_tables(
        _frames(sheets.get("CurrencyType", [])), _frames(sheets.get("DatedConversionRate", []))
    )
    opportunity_pieces = [
        _opportunities(sheet, ctx, rates) for sheet in sheets.get("Opportunity", [])
    ]
    pieces += [piece for piece, _, _ in opportunity_pieces]
    pieces += _stage_history(sheets, ctx, opportunity_pieces)

    if sheets.get("User"):
        pieces += _users(sheets, ctx, pieces + email_pieces)
    else:
        pieces = reps_from_owners(pieces + email_pieces, ctx)
        email_pieces = []
        ctx.note("no User export: reps are the owner ids of tasks, events and deals, unnamed")
    data = assemble(pieces + email_pieces, ctx, source=source, now=now)
    # dedupe never drops both copies: an email set aside as its Task is kept when that Task
    # was itself quarantined by validation (a bad time, an unknown owner…)
    loaded = set(data.tables["activities"]["activity_id"].to_list())
    lost = {t for t in kept_tasks if t not in loaded}
    if lost and email_pieces:
        still = {t: e for t, e in kept_tasks.items() if t in loaded}
        email_pieces = [p for sheet in email_sheets for p in _emails(sheet, ctx, links, still)]
        data = assemble(pieces + email_pieces, ctx, source=source, now=now)
    return data


def check_essential(sheets: dict[str, list[Sheet]]) -> None:
    """Raise one :class:`DataError` naming every file that lacks an essential column, the
    column, and the columns found. Optional columns may be missing: they are not used.

    Examples
    --------
    >>> sheet = Sheet(Path("Task.csv"), pl.DataFrame({"Id": ["1"], "Subject": ["x"]}))
    >>> try:
    ...     check_essential({"Task": [sheet]})
    ... except DataError as err:
    ...     print(str(err).splitlines()[1][:60])
      - Task.csv has no OwnerId column (who did it or owns it).
    """
    problems = []
    for kind, kind_sheets in sheets.items():
        for sheet in kind_sheets:
            columns = [c for c in sheet.frame.columns if not c.startswith("__")]
            if sheet.path.is_file():  # the headers as written, before names were normalised
                columns = read_header(sheet.path)
            for group in ESSENTIAL.get(kind, ()):
                if sheet.column(*group) is None:
                    names = " or ".join(group)
                    why = _WHY_ESSENTIAL.get(group[0], "needed to read it")
                    problems.append(
                        f"  - {sheet.name} has no {names} column ({why}). "
                        f"Columns found: {', '.join(columns)}"
                    )
    if problems:
        raise DataError(
            "Salesforce export files lack a column EffortLens cannot do without; export "
            "these fields too (Data Loader: add them to the query) and load again:\n"
            + "\n".join(problems)
        )


#: API field names read here; headers are renamed to them whatever their case (Data Loader
#: writes ``OWNERID``), then every id column is put in its 18-character form.
API_FIELDS: tuple[str, ...] = (
    *ID_COLUMNS,
    "IsDeleted",
    "IsClosed",
    "IsWon",
    "IsActive",
    "IsChild",
    "IsBounced",
    "Incoming",
    "StageName",
    "Field",
    "OldValue",
    "NewValue",
    "Name",
    "FirstName",
    "LastName",
    "Title",
    "Division",
    "Department",
    "Country",
    "UserRole.Name",
    "Status",
    "Type",
    "TaskSubtype",
    "CallType",
    "CallDurationInSeconds",
    "DurationInMinutes",
    "Subject",
    "Headers",
    "FromAddress",
    "ToAddress",
    "Amount",
    "CurrencyIsoCode",
    "CloseDate",
    "CreatedDate",
    "LastModifiedDate",
    "ActivityDate",
    "ActivityDateTime",
    "StartDateTime",
    "EndDateTime",
    "CompletedDateTime",
    "MessageDate",
    "Email",
    "EmailMessageId",
    "CallObject",
    "CallDisposition",
    "TimeZoneSidKey",
    "IsoCode",
    "ConversionRate",
    "StartDate",
    "NextStartDate",
    "IsCorporate",
    "LastStageChangeDate",
)


def _normalised(sheet: Sheet) -> Sheet:
    canonical = {header_key(f): f for f in API_FIELDS}
    renames = {
        c: canonical[header_key(c)]
        for c in sheet.frame.columns
        if header_key(c) in canonical
        and c != canonical[header_key(c)]
        and canonical[header_key(c)] not in sheet.frame.columns
    }
    frame = sheet.frame.rename(renames)
    text = [c for c in frame.columns if not c.startswith("__") and frame[c].dtype == pl.String]
    # Salesforce's empty lookup (fifteen zeros) names no record: null in every column
    frame = frame.with_columns(
        pl.when(pl.col(c).str.to_uppercase().is_in(list(EMPTY_IDS)))
        .then(None)
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    )
    ids = [c for c in frame.columns if c in ID_COLUMNS or (c in text and c.endswith("Id"))]
    return Sheet(sheet.path, normalise_ids(frame, ids))


def _route(sheet: Sheet, pieces: list[Piece], ctx: Context, not_used: int = 0) -> None:
    counts: dict[str, int] = {}
    for piece in pieces:
        counts[piece.table] = counts.get(piece.table, 0) + piece.frame.height
    if not_used:
        counts["not used"] = not_used
    ctx.note(routing_note(sheet.name, sheet.frame.height, counts))


def _deleted(sheet: Sheet) -> Rule:
    """Deleted records (``IsDeleted``; an export without the column has none)."""
    return Rule(
        boolean(sheet.get("IsDeleted")).fill_null(False),
        "deleted_record",
        "IsDeleted",
        ADAPTER_REASONS["deleted_record"],
    )


def _tasks(sheet: Sheet, ctx: Context, links: _Links) -> tuple[list[Piece], dict[str, str | None]]:
    """The task pieces, and the tasks the adapter kept: id -> the EmailMessageId they name."""
    sheet = parse_time_columns(
        sheet,
        [
            sheet.column("CompletedDateTime"),
            sheet.column("CreatedDate"),
            sheet.column("ActivityDate"),
        ],
        ctx,
    )
    written = [
        sheet.column("CompletedDateTime"),
        sheet.column("CreatedDate"),
        sheet.column("ActivityDate"),
    ]
    ts, bad_ts, ts_column = time_field(*written)
    ts = links.in_owner_zone(ts, written, sheet.get("OwnerId"), ctx)
    types, steps = task_types(sheet, ctx)
    ctx.note(type_note(sheet.name, steps))
    frame = sheet.frame.with_columns(types.alias("__type"))
    what, who = sheet.get("WhatId"), sheet.get("WhoId")
    common = {
        "ts": ts,
        "account_id": links.account(account=sheet.get("AccountId"), what=what, contact=who),
        "opportunity_id": _prefixed(what, _PREFIX_OPPORTUNITY),
        "contact_id": who,
    }
    inbound = (sheet.get("CallType").str.to_lowercase() == "inbound").fill_null(False)
    if sheet.column("IsClosed"):
        done = boolean(pl.col(sheet.column("IsClosed"))).fill_null(True)
    else:
        done = ~sheet.get("Status").str.to_lowercase().is_in(
            ["not started", "in progress", "waiting on someone else", "deferred", "open"]
        ).fill_null(False)
    rules = [
        _deleted(sheet),
        Rule(
            ~done,
            "not_completed",
            "Status",
            pl.format(
                "task not done (Status '{}'): {}",
                sheet.get("Status").fill_null(""),
                pl.lit(ADAPTER_REASONS["not_completed"]),
            ),
        ),
        Rule(bad_ts.is_not_null(), "bad_timestamp", ts_column, bad_ts),
    ]
    frame_sheet = Sheet(sheet.path, frame)
    activities = make_piece(
        "activities",
        frame_sheet,
        {
            "activity_id": sheet.get("Id"),
            "rep_id": sheet.get("OwnerId"),
            "activity_type": pl.col("__type"),
            "duration_min": sheet.get("CallDurationInSeconds").cast(pl.Float64, strict=False) / 60,
            **common,
        },
        where=~inbound,
        rules=rules,
    )
    actions = make_piece(
        "buyer_actions",
        frame_sheet,
        {"action_id": sheet.get("Id"), "action_type": pl.lit("reply"), **common},
        where=inbound,
        rules=rules,
    )
    pieces = [activities] + ([actions] if actions.frame.height else [])
    _route(sheet, pieces, ctx)
    kept_ids = activities.frame.filter(pl.col(REASON).is_null()).select("activity_id", LINE)
    linked = (
        kept_ids.join(
            frame.select(LINE, sheet.get("EmailMessageId").alias("__email")), on=LINE, how="left"
        )
        .select("activity_id", "__email")
        .drop_nulls("activity_id")
    )
    return pieces, dict(linked.iter_rows())


def _events(sheet: Sheet, ctx: Context, links: _Links) -> list[Piece]:
    columns = [
        sheet.column(c)
        for c in ("StartDateTime", "ActivityDateTime", "ActivityDate", "EndDateTime")
    ]
    sheet = parse_time_columns(sheet, columns, ctx)
    ts, bad_ts, ts_column = time_field(*columns[:3])
    ts = links.in_owner_zone(ts, columns[:3], sheet.get("OwnerId"), ctx)
    vocab = activity_vocabulary(ctx)
    types = translated(
        sheet.frame, sheet.get("Type"), vocab, ctx, what="activity type", where=sheet.name
    )
    frame = sheet.frame.with_columns(types.fill_null("meeting").alias("__type"))
    minutes = sheet.get("DurationInMinutes").cast(pl.Float64, strict=False)
    end = sheet.column("EndDateTime")
    if end and sheet.column("StartDateTime"):
        span = (
            pl.col(f"__t:{end}").str.to_datetime(time_zone="UTC", strict=False)
            - pl.col(f"__t:{sheet.column('StartDateTime')}").str.to_datetime(
                time_zone="UTC", strict=False
            )
        ).dt.total_minutes()
        minutes = pl.coalesce(minutes, span.cast(pl.Float64))
    what, who = sheet.get("WhatId"), sheet.get("WhoId")
    piece = make_piece(
        "activities",
        Sheet(sheet.path, frame),
        {
            "activity_id": sheet.get("Id"),
            "rep_id": sheet.get("OwnerId"),
            "ts": ts,
            "activity_type": pl.col("__type"),
            "account_id": links.account(account=sheet.get("AccountId"), what=what, contact=who),
            "opportunity_id": _prefixed(what, _PREFIX_OPPORTUNITY),
            "contact_id": who,
            "duration_min": minutes,
        },
        rules=[
            _deleted(sheet),
            Rule(
                boolean(sheet.get("IsChild")).fill_null(False),
                "child_event",
                "IsChild",
                ADAPTER_REASONS["child_event"],
            ),
            Rule(bad_ts.is_not_null(), "bad_timestamp", ts_column, bad_ts),
        ],
    )
    _route(sheet, [piece], ctx)
    return [piece]


def _emails(
    sheet: Sheet, ctx: Context, links: _Links, kept_tasks: dict[str, str | None]
) -> list[Piece]:
    """Incoming emails as buyer actions, outgoing ones as activities; an outgoing email is set
    aside as ``same_as_task`` only when the Task it was logged as is kept."""
    task_ids = list(kept_tasks)
    email_ids = [e for e in kept_tasks.values() if e]
    columns = [sheet.column("MessageDate"), sheet.column("CreatedDate")]
    sheet = parse_time_columns(sheet, columns, ctx)
    ts, bad_ts, ts_column = time_field(*columns)
    incoming = boolean(sheet.get("Incoming")).fill_null(False)
    related = sheet.get("RelatedToId")
    contact = (
        pl.when(incoming)
        .then(links.contact_by_email(sheet.get("FromAddress")))
        .otherwise(links.contact_by_email(sheet.get("ToAddress")))
    )
    common = {
        "ts": ts,
        "account_id": links.account(
            account=pl.lit(None, dtype=pl.String), what=related, contact=contact
        ),
        "opportunity_id": _prefixed(related, _PREFIX_OPPORTUNITY),
        "contact_id": contact,
    }
    bad = Rule(bad_ts.is_not_null(), "bad_timestamp", ts_column, bad_ts)
    automatic = is_automatic_reply(
        subject=sheet.get("Subject"),
        headers=sheet.get("Headers"),
        sender=sheet.get("FromAddress"),
    ) | boolean(sheet.get("IsBounced")).fill_null(False)
    actions = make_piece(
        "buyer_actions",
        sheet,
        {"action_id": sheet.get("Id"), "action_type": pl.lit("reply"), **common},
        where=incoming,
        rules=[
            _deleted(sheet),
            Rule(
                automatic,
                "not_buyer_action",
                "Subject",
                pl.format(
                    "'{}': {}",
                    sheet.get("Subject").fill_null(""),
                    pl.lit(ADAPTER_REASONS["not_buyer_action"]),
                ),
            ),
            bad,
        ],
    )
    activities = make_piece(
        "activities",
        sheet,
        {
            "activity_id": sheet.get("Id"),
            "rep_id": sheet.get("CreatedById"),
            "activity_type": pl.lit("email"),
            **common,
        },
        where=~incoming,
        rules=[
            _deleted(sheet),
            Rule(
                sheet.get("Status") == "5",
                "not_completed",
                "Status",
                "a draft (Status 5): " + ADAPTER_REASONS["not_completed"],
            ),
            Rule(
                sheet.get("ActivityId").is_in(task_ids).fill_null(False)
                | sheet.get("Id").is_in(email_ids).fill_null(False),
                "same_as_task",
                "ActivityId",
                pl.format(
                    "logged as Task {}: {}",
                    pl.coalesce(
                        sheet.get("ActivityId"),
                        _lookup(sheet.get("Id"), {e: t for t, e in kept_tasks.items() if e}),
                    ),
                    pl.lit(ADAPTER_REASONS["same_as_task"]),
                ),
            ),
            bad,
        ],
    )
    pieces = [actions, activities]
    _route(sheet, pieces, ctx)
    return pieces


def _outcome_labels(
    frame: pl.DataFrame, expr: pl.Expr, ctx: Context, *, where: str, what: str
) -> pl.Series:
    """Outcome named by a label column (only values the outcome vocabulary knows)."""
    values = translated(frame, expr, outcome_vocabulary(ctx), ctx, what=what, where=where)
    return only(values, OUTCOMES)


def _opportunities(
    sheet: Sheet, ctx: Context, rates: RateTables | None = None
) -> tuple[Piece, pl.Series, pl.Series | None]:
    """The opportunities piece and, aligned with its rows, each deal's translated stage and
    when it entered it (``LastStageChangeDate``, when exported)."""
    created, close = sheet.column("CreatedDate"), sheet.column("CloseDate")
    stage_changed = sheet.column("LastStageChangeDate")
    sheet = parse_time_columns(sheet, [created, close, stage_changed], ctx)
    created_ts, bad_created, _ = time_field(created)
    close_ts, bad_close, _ = time_field(close)
    frame = sheet.frame
    stage_label = _outcome_labels(
        frame, sheet.get("StageName"), ctx, where=sheet.name, what="stage as outcome"
    )
    stage_nd = no_decision_labels(
        evaluate(frame, sheet.get("StageName")), ctx, what="stage as outcome", where=sheet.name
    )
    stage_label = pl.select(
        pl.when(pl.lit(stage_nd)).then(pl.lit("no_decision")).otherwise(pl.lit(stage_label))
    ).to_series()
    reason_label, loss_columns = loss_reason_outcome(sheet, ctx)
    amount, symbol_currency, notes = parse_amounts(
        frame[sheet.column("Amount")]
        if sheet.column("Amount")
        else pl.Series([None] * frame.height, dtype=pl.String),
        decimal=ctx.decimal,
        where=f"{sheet.name}, Amount: ",
    )
    ctx.note(*notes)
    currency = evaluate(
        frame, pl.coalesce(sheet.get("CurrencyIsoCode"), pl.lit(symbol_currency))
    ).str.to_uppercase()
    if rates:
        amount, currency = _converted(sheet, amount, currency, rates, ctx)
    frame = frame.with_columns(
        stage_label.alias("__stage_outcome"),
        reason_label.alias("__reason_outcome"),
        amount.alias("__amount"),
        currency.alias("__currency"),
    )
    closed = boolean(sheet.get("IsClosed"))
    won = boolean(sheet.get("IsWon")).fill_null(False)
    no_decision = (pl.col("__stage_outcome") == "no_decision") | (
        pl.col("__reason_outcome") == "no_decision"
    )
    outcome = (
        pl.when(closed.is_null())
        .then(pl.col("__stage_outcome").fill_null("open"))
        .when(~closed)
        .then(pl.lit("open"))
        .when(won)
        .then(pl.lit("won"))
        .when(no_decision.fill_null(False))
        .then(pl.lit("no_decision"))
        .otherwise(pl.lit("lost"))
    )
    piece = make_piece(
        "opportunities",
        Sheet(sheet.path, frame.with_columns(outcome.alias("__outcome"))),
        {
            "opportunity_id": sheet.get("Id"),
            "account_id": sheet.get("AccountId"),
            "rep_id": sheet.get("OwnerId"),
            "created_ts": created_ts,
            "amount": pl.col("__amount"),
            "currency": pl.col("__currency"),
            "close_ts": pl.when(pl.col("__outcome") != "open").then(close_ts),
            "outcome": pl.col("__outcome"),
        },
        rules=[
            _deleted(sheet),
            Rule(bad_created.is_not_null(), "bad_timestamp", created, bad_created),
            Rule(
                bad_close.is_not_null() & (pl.col("__outcome") != "open"),
                "bad_timestamp",
                close,
                bad_close,
            ),
        ],
    )
    stages = translated(
        frame,
        sheet.get("StageName"),
        stage_vocabulary(ctx, DEFAULT_STAGES),
        ctx,
        what="stage",
        where=sheet.name,
    )
    _route(sheet, [piece], ctx)
    outcomes = piece.frame.filter(pl.col(REASON).is_null())["outcome"]
    n_nd = int((outcomes == "no_decision").sum())
    read_from = ["StageName", *loss_columns]
    ctx.note(
        f"{sheet.name}: {n_nd} lost deals read as no decision (from "
        + ", ".join(read_from)
        + "; labels such as 'No Decision / Non-Responsive', or the mapping's [values.outcome])"
        + (
            ""
            if loss_columns
            else "; no loss-reason column found (name yours in a mapping: "
            '[source] loss_reason = "Your_Field__c")'
        )
    )
    stage_ts = None
    if stage_changed:
        stage_ts = evaluate(sheet.frame, pl.col(f"__t:{stage_changed}"))
    return piece, stages, stage_ts


def _converted(
    sheet: Sheet, amount: pl.Series, currency: pl.Series, rates: RateTables, ctx: Context
) -> tuple[pl.Series, pl.Series]:
    """Amounts in the settings' currency with the export's rates (dated by CloseDate)."""
    target = ctx.settings.currency
    day = evaluate(sheet.frame, sheet.get("CloseDate").str.slice(0, 10).str.to_date(strict=False))
    given = currency.fill_null(target) if target in rates.known() else currency
    converted, how = rates.convert(amount, given, day, target=target)
    n_dated, n_static = int((how == "dated").sum()), int((how == "static").sum())
    stuck = sorted(
        set(given.filter(how.is_null() & amount.is_not_null()).drop_nulls().to_list()) - {target}
    )
    if target not in rates.known():
        ctx.note(
            f"{sheet.name}: the export's rate tables have no rate for the settings' currency "
            f"{target}; amounts kept in their own currencies"
        )
        return amount, currency
    ctx.note(
        f"{sheet.name}: {n_dated + n_static} amounts converted to {target} with the export's "
        f"rates ({n_dated} by DatedConversionRate at their CloseDate, {n_static} by "
        "CurrencyType)"
        + (f"; no rate for {', '.join(stuck)}: those kept in their own currency" if stuck else "")
    )
    out_currency = pl.select(
        pl.when(pl.lit(how).is_not_null()).then(pl.lit(target)).otherwise(pl.lit(given))
    ).to_series()
    return converted, out_currency


def _stage_history(
    sheets: dict[str, list[Sheet]],
    ctx: Context,
    opportunity_pieces: list[tuple[Piece, pl.Series, pl.Series | None]],
) -> list[Piece]:
    vocab = stage_vocabulary(ctx, DEFAULT_STAGES)
    outcomes = outcome_vocabulary(ctx)
    pieces: list[Piece] = []
    created_by_opp: dict[str, str] = {}
    for piece, _, _ in opportunity_pieces:
        created_by_opp |= _pairs(piece.frame, "opportunity_id", "created_ts")

    for sheet in sheets.get("OpportunityHistory", []):
        pieces.append(_history_changes(sheet, ctx, vocab, outcomes))
    for sheet in sheets.get("OpportunityFieldHistory", []):
        pieces.append(_field_history(sheet, ctx, vocab, outcomes, created_by_opp))

    history = list(pieces)
    for piece, stages, stage_ts in opportunity_pieces:
        pieces += derive_missing_history(piece, stages, history, ctx, stage_ts=stage_ts)
    return pieces


def _history_changes(
    sheet: Sheet, ctx: Context, vocab: dict[str, str], outcomes: dict[str, str]
) -> Piece:
    created = sheet.column("CreatedDate")
    sheet = parse_time_columns(sheet, [created], ctx)
    ts, bad_ts, _ = time_field(created)
    frame = sheet.frame.with_columns(ts.alias("__ts")).sort(
        "OpportunityId", "__ts", "__line", nulls_last=True
    )
    stage_key = pl.col("StageName").str.to_lowercase().str.replace_all(r"\s+", " ")
    changed = (stage_key != stage_key.shift(1).over("OpportunityId")).fill_null(True)
    closing = closing_stage(frame["StageName"].fill_null(""), outcomes, ctx.settings.stages)
    frame = frame.with_columns(closing.alias("__closing"))
    candidates = frame.filter(changed & ~pl.col("__closing") & pl.col("StageName").is_not_null())
    n_closing = frame.filter(changed & pl.col("__closing")).height
    n_same = frame.filter(~changed).height
    stages = translated(candidates, pl.col("StageName"), vocab, ctx, what="stage", where=sheet.name)
    piece = make_piece(
        "stage_history",
        Sheet(sheet.path, candidates.with_columns(stages.alias("__stage"))),
        {
            "opportunity_id": pl.col("OpportunityId"),
            "stage": pl.col("__stage"),
            "entered_ts": pl.col("__ts"),
        },
        rules=[_deleted(sheet), Rule(bad_ts.is_not_null(), "bad_timestamp", created, bad_ts)],
    )
    ctx.note(
        routing_note(
            sheet.name,
            sheet.frame.height,
            {
                "stage_history": piece.frame.height,
                _CLOSING_NOTE: n_closing,
                "not used: amount or date changes within a stage": n_same,
            },
        )
    )
    return piece


def _field_history(
    sheet: Sheet,
    ctx: Context,
    vocab: dict[str, str],
    outcomes: dict[str, str],
    created_by_opp: dict[str, str],
) -> Piece:
    created = sheet.column("CreatedDate")
    sheet = parse_time_columns(sheet, [created], ctx)
    ts, bad_ts, _ = time_field(created)
    frame = sheet.frame.with_columns(ts.alias("__ts"))
    if "OldValue" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("OldValue"))
    is_stage = pl.col("Field").str.to_lowercase().str.replace_all(r"[\s_]", "") == "stagename"
    changes = frame.filter(is_stage.fill_null(False)).sort(
        "OpportunityId", "__ts", "__line", nulls_last=True
    )
    first = (
        changes.filter(pl.col("OpportunityId").is_first_distinct())
        .with_columns(
            pl.col("OldValue").alias("__value"),
            pl.col("OpportunityId")
            .replace_strict(created_by_opp, default=None, return_dtype=pl.String)
            .alias("__ts"),
            pl.lit("old").alias("__from"),
        )
        .filter(pl.col("__value").is_not_null() & pl.col("__ts").is_not_null())
    )
    entries = pl.concat(
        [
            first,
            changes.with_columns(
                pl.col("NewValue").alias("__value"), pl.lit("new").alias("__from")
            ),
        ],
        how="diagonal_relaxed",
    ).filter(pl.col("__value").is_not_null())
    closing = closing_stage(entries["__value"], outcomes, ctx.settings.stages)
    candidates = entries.filter(~closing)
    stages = translated(candidates, pl.col("__value"), vocab, ctx, what="stage", where=sheet.name)
    piece = make_piece(
        "stage_history",
        Sheet(sheet.path, candidates.with_columns(stages.alias("__stage"))),
        {
            "opportunity_id": pl.col("OpportunityId"),
            "stage": pl.col("__stage"),
            "entered_ts": pl.col("__ts"),
        },
        rules=[
            _deleted(sheet),
            Rule(
                bad_ts.is_not_null() & (pl.col("__from") == "new"), "bad_timestamp", created, bad_ts
            ),
        ],
    )
    ctx.note(
        routing_note(
            sheet.name,
            frame.height,
            {
                "stage_history (NewValue at CreatedDate)": candidates.filter(
                    pl.col("__from") == "new"
                ).height,
                _OLD_VALUE_NOTE: candidates.filter(pl.col("__from") == "old").height,
                _CLOSING_NOTE: int(closing.sum()),
                "not used: changes of other fields": frame.height - changes.height,
            },
        )
    )
    return piece


def _is_zone(value: str) -> bool:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _zones(values: pl.Series | None, ctx: Context, *, where: str) -> dict[str, str]:
    """``TimeZoneSidKey`` values that are IANA zones (Salesforce's are), to themselves."""
    if values is None:
        ctx.note(
            f"{where}: no TimeZoneSidKey column; every rep's local day and hour are in the "
            f"settings' zone {ctx.settings.timezone}"
        )
        return {}
    out, bad = {}, []
    for value in values.drop_nulls().unique().to_list():
        try:
            ZoneInfo(value)
            out[value] = value
        except (ZoneInfoNotFoundError, ValueError):
            bad.append(value)
    used = len(out)
    ctx.note(
        f"{where}: reps' time zones from TimeZoneSidKey ({counted(used, 'zone')}); local day, "
        "week and hour of their activities are in their own zone"
        + (
            f"; not a time zone, so the settings' zone is used: {', '.join(sorted(bad))}"
            if bad
            else ""
        )
    )
    return out


def _users(sheets: dict[str, list[Sheet]], ctx: Context, pieces: list[Piece]) -> list[Piece]:
    roles = _pairs(_frames(sheets.get("UserRole", [])), "Id", "Name")
    out = []
    owners: set[str] = set()
    for piece in pieces:
        if "rep_id" in piece.frame.columns:
            owners |= set(piece.frame["rep_id"].drop_nulls().to_list())
    users = _frames(sheets["User"])
    managers = _pairs(users, "Id", "ManagerId")
    sellers = set(owners)
    frontier = set(owners)
    while frontier:
        frontier = {managers[u] for u in frontier if u in managers} - sellers
        sellers |= frontier
    for sheet in sheets["User"]:
        modified, hire = (
            sheet.column("LastModifiedDate"),
            sheet.column("Hire_Date__c", "HireDate__c", "Start_Date__c"),
        )
        exit_column = sheet.column("Exit_Date__c", "Termination_Date__c", "Exit_Date")
        sheet = parse_time_columns(sheet, [modified, hire, exit_column], ctx, as_date=True)
        frame = sheet.frame
        zones = _zones(
            frame[sheet.column("TimeZoneSidKey")] if sheet.column("TimeZoneSidKey") else None,
            ctx,
            where=sheet.name,
        )
        seller = frame["Id"].is_in(list(sellers))
        inactive = boolean(sheet.get("IsActive")).fill_null(False).not_()
        name = pl.coalesce(
            sheet.get("Name"),
            pl.concat_str(
                [sheet.get("FirstName"), sheet.get("LastName")], separator=" ", ignore_nulls=True
            ),
        )
        role_name = pl.coalesce(
            sheet.get("UserRole.Name"),
            _lookup(sheet.get("UserRoleId"), roles),
            sheet.get("Department"),
        )
        exit_date = pl.when(inactive).then(
            pl.coalesce(
                pl.col(f"__t:{exit_column}") if exit_column else pl.lit(None, dtype=pl.String),
                pl.col(f"__t:{modified}") if modified else pl.lit(None, dtype=pl.String),
            )
        )
        categories = {}
        for what, expr in {
            "team": role_name,
            "role": sheet.get("Title"),
            "segment": pl.coalesce(sheet.get("Segment__c"), sheet.get("Division")),
            "region": pl.coalesce(sheet.get("Region__c"), sheet.get("Country")),
        }.items():
            values = frame.filter(seller).select(expr.alias(what)).to_series()
            merged, notes = merge_spellings(values, what=what, where=sheet.name)
            ctx.note(*notes)
            lookup = dict(zip(values.to_list(), merged.to_list(), strict=True))
            categories[what] = expr.replace_strict(
                {k: v for k, v in lookup.items() if k is not None},
                default=expr,
                return_dtype=pl.String,
            )
        piece = make_piece(
            "reps",
            sheet,
            {
                "rep_id": pl.col("Id"),
                "rep_name": name,
                **categories,
                "manager_id": pl.when(pl.col("ManagerId").is_in(list(sellers))).then(
                    pl.col("ManagerId")
                )
                if "ManagerId" in frame.columns
                else pl.lit(None),
                "hire_date": pl.col(f"__t:{hire}") if hire else pl.lit(None),
                "timezone": _lookup(sheet.get("TimeZoneSidKey"), zones),
                "exit_date": exit_date,
                "exit_reason": _lookup(
                    sheet.get("Exit_Reason__c").str.to_lowercase(),
                    {"voluntary": "voluntary", "involuntary": "involuntary"},
                ),
            },
            where=seller,
        )
        out.append(piece)
        n_left = frame.filter(seller & inactive).height
        ctx.note(
            routing_note(
                sheet.name,
                frame.height,
                {
                    "reps": piece.frame.height,
                    _NOT_SELLER_NOTE: frame.height - piece.frame.height,
                },
            )
        )
        if n_left:
            source = "Exit_Date__c" if exit_column else "the date of LastModifiedDate"
            ctx.note(
                f"{sheet.name}: {n_left} inactive users kept as reps who left; exit date "
                f"from {source} (deactivation is normally a user's last edit), exit reason "
                "unknown unless Exit_Reason__c is given"
            )
    return out
