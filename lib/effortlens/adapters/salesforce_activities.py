"""Salesforce effort and buyer actions: ``Task``, ``Event`` and ``EmailMessage`` records.

What each becomes is described in :mod:`effortlens.adapters.salesforce`: tasks are typed by
the chain of :mod:`effortlens.adapters.task_types` (inbound calls are buyer replies), events
are meetings unless typed otherwise, incoming emails are buyer replies and outgoing ones
effort, counted once when logged as a Task.

Examples
--------
>>> from effortlens.adapters import load_any
>>> # load_any("salesforce_export/")  # reads Task, Event and EmailMessage through these
"""

from __future__ import annotations

import polars as pl

from effortlens.adapters.pieces import (
    ADAPTER_REASONS,
    REASON,
    Piece,
    Rule,
    make_piece,
    note_routing,
)
from effortlens.adapters.reading import LINE, Context, Sheet
from effortlens.adapters.salesforce_objects import (
    PREFIX_OPPORTUNITY,
    Links,
    deleted_rule,
    looked_up,
    prefixed,
)
from effortlens.adapters.task_types import task_types, type_note
from effortlens.adapters.times import parse_time_columns, time_field
from effortlens.adapters.values import activity_vocabulary, is_automatic_reply, translated
from effortlens.loading.columns import boolean


def read_tasks(
    sheet: Sheet, ctx: Context, links: Links
) -> tuple[list[Piece], dict[str, str | None]]:
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
        "opportunity_id": prefixed(what, PREFIX_OPPORTUNITY),
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
        deleted_rule(sheet),
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
    note_routing(sheet, pieces, ctx)
    kept_ids = activities.frame.filter(pl.col(REASON).is_null()).select("activity_id", LINE)
    linked = (
        kept_ids.join(
            frame.select(LINE, sheet.get("EmailMessageId").alias("__email")), on=LINE, how="left"
        )
        .select("activity_id", "__email")
        .drop_nulls("activity_id")
    )
    return pieces, dict(linked.iter_rows())


def read_events(sheet: Sheet, ctx: Context, links: Links) -> list[Piece]:
    """Events as activities (meetings unless typed otherwise); invitees' copies set aside."""
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
            "opportunity_id": prefixed(what, PREFIX_OPPORTUNITY),
            "contact_id": who,
            "duration_min": minutes,
        },
        rules=[
            deleted_rule(sheet),
            Rule(
                boolean(sheet.get("IsChild")).fill_null(False),
                "child_event",
                "IsChild",
                ADAPTER_REASONS["child_event"],
            ),
            Rule(bad_ts.is_not_null(), "bad_timestamp", ts_column, bad_ts),
        ],
    )
    note_routing(sheet, [piece], ctx)
    return [piece]


def read_emails(
    sheet: Sheet, ctx: Context, links: Links, kept_tasks: dict[str, str | None]
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
        "opportunity_id": prefixed(related, PREFIX_OPPORTUNITY),
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
            deleted_rule(sheet),
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
            deleted_rule(sheet),
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
                        looked_up(sheet.get("Id"), {e: t for t, e in kept_tasks.items() if e}),
                    ),
                    pl.lit(ADAPTER_REASONS["same_as_task"]),
                ),
            ),
            bad,
        ],
    )
    pieces = [actions, activities]
    note_routing(sheet, pieces, ctx)
    return pieces
