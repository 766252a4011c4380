"""HubSpot deals: the deals export as opportunities, and its stage history (the
``Date entered "<stage> (<pipeline>)"`` columns, else derived from current stages).

Examples
--------
>>> stage_name("Closed Won (Sales Pipeline)", {"Sales Pipeline"})
'Closed Won'
"""

from __future__ import annotations

import re

import polars as pl

from effortlens.adapters.derivation import derive_missing_history
from effortlens.adapters.hubspot_objects import COMPANIES, ID, OWNER, first_id
from effortlens.adapters.pieces import Piece, Rule, make_piece, note_routing
from effortlens.adapters.reading import Context, Sheet
from effortlens.adapters.times import parse_time_columns, time_field
from effortlens.adapters.values import (
    closing_stage,
    loss_reason_outcome,
    no_decision_labels,
    only,
    outcome_vocabulary,
    parse_amounts,
    stage_vocabulary,
    translated,
)
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

_DATE_ENTERED = re.compile(
    r"^(?:hs_v2_date_entered_|hs_date_entered_|date entered\s*[\"'“”]*)(.+?)[\"'“”]*$",
    re.IGNORECASE,
)


def stage_name(raw: str, pipelines: set[str]) -> str:
    """``"Qualified To Buy (Sales Pipeline)"`` -> ``"Qualified To Buy"``."""
    match = re.match(r"^(.*?)\s*\(([^()]*)\)\s*$", raw)
    if match and (
        match.group(2).strip().lower() in pipelines
        or match.group(2).strip().lower().endswith("pipeline")
    ):
        return match.group(1)
    return raw


def read_deals(sheet: Sheet, ctx: Context) -> list[Piece]:
    """The deals as opportunities, and their stage entries (dated columns, else derived)."""
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
        {v: stage_name(v, pipelines) for v in stage_text.drop_nulls().unique().to_list()},
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
            "account_id": first_id(sheet, COMPANIES, ctx, "company") if company else pl.lit(None),
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
    note_routing(sheet, pieces, ctx)
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
    names = {c: stage_name(entered[c], pipelines) for c in columns}
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
