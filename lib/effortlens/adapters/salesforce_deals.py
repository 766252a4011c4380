"""Salesforce deals: ``Opportunity`` records and their stage history
(``OpportunityHistory``, ``OpportunityFieldHistory``, else derived from current stages).

Outcomes, no-decision losses, amounts converted with the export's own rates, and stage
entries are read as described in :mod:`effortlens.adapters.salesforce`.

Examples
--------
>>> DEFAULT_STAGES["Negotiation/Review"]
'negotiation'
"""

from __future__ import annotations

import polars as pl

from effortlens.adapters.currency import RateTables
from effortlens.adapters.derivation import derive_missing_history
from effortlens.adapters.pieces import REASON, Piece, Rule, make_piece, note_routing, routing_note
from effortlens.adapters.reading import Context, Sheet
from effortlens.adapters.salesforce_objects import deleted_rule, pairs
from effortlens.adapters.times import parse_time_columns, time_field
from effortlens.adapters.values import (
    closing_stage,
    evaluate,
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


_CLOSING_NOTE = "not used: entering a closed stage (the outcome is taken from Opportunity)"


_OLD_VALUE_NOTE = "stage_history (the first change's OldValue at the deal's CreatedDate)"


def _outcome_labels(
    frame: pl.DataFrame, expr: pl.Expr, ctx: Context, *, where: str, what: str
) -> pl.Series:
    """Outcome named by a label column (only values the outcome vocabulary knows)."""
    values = translated(frame, expr, outcome_vocabulary(ctx), ctx, what=what, where=where)
    return only(values, OUTCOMES)


def read_opportunities(
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
            deleted_rule(sheet),
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
    note_routing(sheet, [piece], ctx)
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


def read_stage_history(
    sheets: dict[str, list[Sheet]],
    ctx: Context,
    opportunity_pieces: list[tuple[Piece, pl.Series, pl.Series | None]],
) -> list[Piece]:
    """Stage entries from the history exports, then derived ones for deals without any."""
    vocab = stage_vocabulary(ctx, DEFAULT_STAGES)
    outcomes = outcome_vocabulary(ctx)
    pieces: list[Piece] = []
    created_by_opp: dict[str, str] = {}
    for piece, _, _ in opportunity_pieces:
        created_by_opp |= pairs(piece.frame, "opportunity_id", "created_ts")

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
        rules=[deleted_rule(sheet), Rule(bad_ts.is_not_null(), "bad_timestamp", created, bad_ts)],
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
            deleted_rule(sheet),
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
