"""HubSpot effort and buyer actions: the emails, calls and meetings exports.

What each becomes is described in :mod:`effortlens.adapters.hubspot`: outgoing emails,
outbound calls and meetings are effort; incoming and forwarded emails, inbound calls and
completed meetings are also buyer actions.

Examples
--------
>>> import polars as pl
>>> pl.select(_duration_minutes(pl.lit("0:01:30"))).item()
1.5
"""

from __future__ import annotations

import polars as pl

from effortlens.adapters.hubspot_objects import ID, OWNER, TIMESTAMP, Links, timed, word
from effortlens.adapters.pieces import ADAPTER_REASONS, Piece, Rule, make_piece, note_routing
from effortlens.adapters.reading import Context, Sheet
from effortlens.adapters.times import parse_time_columns
from effortlens.adapters.values import activity_vocabulary, is_automatic_reply, translated


def read_emails(sheet: Sheet, ctx: Context, links: Links) -> list[Piece]:
    """Outgoing emails as activities, incoming and forwarded ones as buyer replies."""
    sheet, ts, bad_ts = timed(sheet, ctx, *TIMESTAMP)
    direction = word(sheet.get("hs_email_direction", "Email direction"))
    incoming = direction.is_in(
        ["incomingemail", "forwardedemail", "incoming", "inbound"]
    ).fill_null(False)
    status = word(sheet.get("hs_email_status", "Email send status", "Email status"))
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
    note_routing(sheet, pieces, ctx)
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


def read_calls(sheet: Sheet, ctx: Context, links: Links) -> list[Piece]:
    """Outbound calls as activities, inbound ones as buyer replies."""
    sheet, ts, bad_ts = timed(sheet, ctx, *TIMESTAMP)
    inbound = (
        word(sheet.get("hs_call_direction", "Call direction"))
        .is_in(["inbound", "incoming"])
        .fill_null(False)
    )
    status = word(sheet.get("hs_call_status", "Call status"))
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
    note_routing(sheet, pieces, ctx)
    return pieces


def read_meetings(sheet: Sheet, ctx: Context, links: Links) -> list[Piece]:
    """Meetings as activities; completed ones also buyer ``meeting_held`` actions."""
    start = ("hs_meeting_start_time", "Meeting start time", *TIMESTAMP)
    sheet, ts, bad_ts = timed(sheet, ctx, *start)
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
    outcome = word(sheet.get("hs_meeting_outcome", "Meeting outcome"))
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
    note_routing(sheet, pieces, ctx)
    return pieces
