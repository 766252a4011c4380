"""Any CSV export, read through a :class:`~effortlens.adapters.mapping.Mapping`.

What is derived when a file lacks it:

- **ids**: a table without an id column gets one per row from the row's mapped values
  (``row-<hash>``), so an exported row repeated verbatim is caught as a duplicate;
- **reps**: without a ``[reps]`` file, the reps are the distinct owners named by the other
  tables (a note says so); owners written as names where the reps file holds ids are matched
  to the rep of that name (noted);
- **outcome**: from the ``outcome`` column through the outcome labels; without one, from
  the ``stage`` column when it holds a closing label ("Closed Won", "Verloren" mapped in
  ``[values.outcome]``); otherwise the deal is open. Close dates of open deals are expected
  dates and are dropped (noted);
- **stage history**: from ``[stage_history]`` when mapped; else from the ``stage_dates``
  columns (one entry per filled date); else derived from each deal's current stage (see
  :func:`effortlens.adapters.derivation.derived_stage_entries`), so the flow and win-rate views
  work on pipeline-only exports.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from pathlib import Path

import polars as pl

from effortlens.adapters.derivation import (
    current_stage,
    derived_note,
    derived_stage_entries,
    reps_from_owners,
    resolve_owner_names,
)
from effortlens.adapters.mapping import Mapping, MappingError, TableSpec, check_columns
from effortlens.adapters.matching import merge_spellings
from effortlens.adapters.pieces import Piece, Rule, assemble, make_piece, routing_note
from effortlens.adapters.reading import Context, Sheet, across, file_list, read_sheet
from effortlens.adapters.times import parse_time_columns, time_field
from effortlens.adapters.values import (
    action_vocabulary,
    activity_vocabulary,
    evaluate,
    is_loss_reason_header,
    no_decision_labels,
    only,
    outcome_vocabulary,
    parse_amounts,
    stage_vocabulary,
    translated,
)
from effortlens.loading import LoadedData
from effortlens.loading.guard import guarded
from effortlens.loading.paths import inside
from effortlens.schema import OUTCOMES, TABLES
from effortlens.settings import Settings

_TIME_FIELDS = {"ts", "created_ts", "close_ts", "entered_ts", "stage_date"}
_DATE_FIELDS = {"hire_date", "exit_date", "start_date", "end_date"}
_CATEGORIES = {"team", "segment", "region", "role"}
_ID_OF = {
    "opportunities": "opportunity_id",
    "activities": "activity_id",
    "buyer_actions": "action_id",
}


def load_mapped(
    mapping: Mapping, folder: Path, *, settings: Settings, now: datetime | None = None
) -> LoadedData:
    """Load the files of ``folder`` as ``mapping`` says (see the module notes).

    Examples
    --------
    >>> # load_mapped(load_mapping("mapping.toml"), Path("exports"), settings=load_settings())
    """
    folder = Path(folder)
    if not mapping.tables:
        where = mapping.path or "the mapping"
        raise MappingError(
            f"{where}: names no table; add at least [opportunities] or [activities] with its "
            "file (a mapping of value maps only serves Salesforce or HubSpot exports: set "
            '[source] format = "salesforce" or "hubspot")'
        )
    check_columns(mapping, folder)
    ctx = mapping.context(settings)
    pieces: list[Piece] = []
    opportunities: list[tuple[Piece, pl.Series, pl.Series | None, Sheet, TableSpec]] = []
    sheets: dict[str, Sheet] = {}
    for spec in mapping.tables:
        if spec.file not in sheets:
            inside(folder, spec.file)  # never a file outside the data folder
            sheets[spec.file] = read_sheet(folder / spec.file)
        whole = sheets[spec.file]
        with guarded(spec.file):  # a bug names the file, not the folder
            sheet = Sheet(whole.path, whole.frame.filter(_where(spec, whole)))
            piece, extra = _read(spec, sheet, ctx, mapping)
        pieces.append(piece)
        if spec.table == "opportunities":
            opportunities.append((piece, extra["stage"], extra["stage_date"], extra["sheet"], spec))
        counts = {spec.table: piece.frame.height}
        if spec.where:
            counts["not used here (where)"] = whole.frame.height - sheet.frame.height
        ctx.note(routing_note(f"{spec.file} [{spec.table}]", whole.frame.height, counts))
    _note_unrouted(mapping, sheets, ctx)
    has_history = any(s.table == "stage_history" for s in mapping.tables)
    if not has_history:
        for piece, stage, stage_date, sheet, spec in opportunities:
            with across("deriving the deals' stage history", [spec.file]):
                pieces += _stage_entries(piece, stage, stage_date, sheet, spec, ctx)
    reps = [p for p in pieces if p.table == "reps"]
    others = [p for p in pieces if p.table != "reps"]
    # a bug in a step across files names the step and the files it read, not the folder
    named = [p.file for p in others if not p.file.startswith("(")]
    if reps:
        listed = [p.file for p in reps]
        step = f"matching the reps of {file_list(listed)} to the owners in {file_list(named)}"
        with across(step, [*listed, *named]):
            pieces = reps + resolve_owner_names(others, reps, ctx)
    else:
        with across("deriving reps from the owners they name", named):
            pieces = reps_from_owners(others, ctx)
        ctx.note(
            "no [reps] file in the mapping: reps are the owners named in the other files "
            "(no teams, segments or roles; map a reps file for peer groups)"
        )
    files = [p.file for p in pieces if not p.file.startswith("(")]
    with across("validating the tables they make", files):
        return assemble(pieces, ctx, source=str(folder), now=now)


def _where(spec: TableSpec, sheet: Sheet) -> pl.Expr:
    """The rows of ``sheet`` that ``spec.where`` keeps (values compared case- and
    space-insensitively)."""
    if not spec.where:
        return pl.lit(True)

    def key(expr: pl.Expr) -> pl.Expr:
        return expr.str.to_lowercase().str.strip_chars().str.replace_all(r"\s+", " ")

    keep = pl.lit(False)
    for group in spec.where:
        every = pl.lit(True)
        for condition in group:
            wanted = [" ".join(v.lower().split()) for v in condition.values]
            hit = key(pl.col(sheet.column(condition.column))).is_in(wanted).fill_null(False)
            every = every & (~hit if condition.negate else hit)
        keep = keep | every
    return keep


def _note_unrouted(mapping: Mapping, sheets: dict[str, Sheet], ctx: Context) -> None:
    """Say how many rows of a file split by ``where`` no entry took."""
    for file, sheet in sheets.items():
        specs = [s for s in mapping.tables if s.file == file]
        if not all(s.where for s in specs):
            continue
        taken = pl.lit(False)
        for spec in specs:
            taken = taken | _where(spec, sheet)
        left = sheet.frame.filter(~taken).height
        if left:
            ctx.note(
                f"{file}: {left} rows match no entry's where (neither effort nor buyer action); "
                "not read. Widen a where to count them"
            )


def _synthetic_id(columns: list[str]) -> pl.Expr:
    return pl.format(
        "row-{}",
        pl.concat_str([pl.col(c).fill_null("") for c in columns], separator="\x1f")
        .hash()
        .cast(pl.String),
    )


def _read(spec: TableSpec, sheet: Sheet, ctx: Context, mapping: Mapping) -> tuple[Piece, dict]:
    table = spec.table
    where = spec.file
    real = {k: sheet.column(f.column) for k, f in spec.fields.items() if f.column}
    exprs: dict[str, pl.Expr] = {}
    rules: list[Rule] = []
    frame_columns: dict[str, pl.Series] = {}

    # times and dates, each column with its own format when given
    for key, fspec in spec.fields.items():
        if key not in _TIME_FIELDS | _DATE_FIELDS or not fspec.column:
            if fspec.value is not None and key in _TIME_FIELDS | _DATE_FIELDS:
                exprs[key] = pl.lit(fspec.value)
            continue
        column = real[key]
        local = ctx
        if fspec.date_format:
            local = dataclasses.replace(
                ctx,
                notes=ctx.notes,
                day_first=_day_first(fspec.date_format),
                time_format=fspec.date_format if "%" in fspec.date_format else None,
            )
        sheet = parse_time_columns(sheet, [column], local, as_date=key in _DATE_FIELDS)
        value, bad, _ = time_field(column)
        exprs[key] = value
        if key != "stage_date":
            rules.append(
                Rule(
                    bad.is_not_null(),
                    "bad_timestamp" if key in _TIME_FIELDS else "bad_value",
                    key,
                    bad,
                )
            )

    frame = sheet.frame

    def source(key: str) -> pl.Expr:
        fspec = spec.fields[key]
        return (
            pl.lit(fspec.value, dtype=pl.String) if fspec.value is not None else pl.col(real[key])
        )

    vocabularies = {
        "activity_type": activity_vocabulary(ctx),
        "action_type": action_vocabulary(ctx),
        "outcome": outcome_vocabulary(ctx),
    }
    if table == "stage_history":
        vocabularies["stage"] = stage_vocabulary(ctx)
    for key in spec.fields:
        if key in exprs or (table == "opportunities" and key in ("stage", "stage_date")):
            continue
        if key in vocabularies:
            frame_columns[f"__v:{key}"] = translated(
                frame, source(key), vocabularies[key], ctx, what=key.replace("_", " "), where=where
            )
        elif key in _CATEGORIES:
            values = evaluate(frame, source(key)).alias(key)
            merged, notes = merge_spellings(values, what=key, where=where)
            ctx.note(*notes)
            frame_columns[f"__v:{key}"] = merged
        elif key == "amount":
            amount, currency, notes = parse_amounts(
                evaluate(frame, source(key)).alias(key),
                decimal=ctx.decimal,
                where=f"{where}, {spec.fields[key].column or 'amount'}: ",
            )
            ctx.note(*notes)
            frame_columns["__v:amount"] = amount
            frame_columns["__symbol_currency"] = currency
        elif key == "duration_min":
            frame_columns[f"__v:{key}"] = _minutes(evaluate(frame, source(key)))
        else:
            exprs[key] = source(key)
    # computed values under their own names, so that no export column is shadowed
    frame = frame.with_columns(v.alias(k) for k, v in frame_columns.items())
    for key in frame_columns:
        if key.startswith("__v:"):
            exprs[key.removeprefix("__v:")] = pl.col(key)

    stage = pl.Series("stage", [None] * frame.height, dtype=pl.String)
    stage_date = None
    if table == "opportunities":
        if "stage" in spec.fields:
            stage = translated(
                frame, source("stage"), stage_vocabulary(ctx), ctx, what="stage", where=where
            )
        outcomes = outcome_vocabulary(ctx)
        from_stage = (
            only(
                translated(
                    frame,
                    source("stage"),
                    outcomes,
                    Context(ctx.settings, ctx.timezone),
                    what="stage",
                    where=where,
                ),
                OUTCOMES,
            )
            if ("stage" in spec.fields)
            else pl.Series([None] * frame.height, dtype=pl.String)
        )
        given = (
            frame["__v:outcome"]
            if "outcome" in spec.fields
            else pl.Series([None] * frame.height, dtype=pl.String)
        )
        if "stage" in spec.fields:
            stage_nd = no_decision_labels(
                evaluate(frame, source("stage")), ctx, what="stage as outcome", where=where
            )
            from_stage = pl.select(
                pl.when(pl.lit(stage_nd)).then(pl.lit("no_decision")).otherwise(pl.lit(from_stage))
            ).to_series()
        outcome = pl.select(
            pl.coalesce(pl.lit(given), pl.lit(from_stage), pl.lit("open"))
        ).to_series()
        outcome = _no_decision(frame, outcome, spec, ctx, where=where)
        if "outcome" not in spec.fields:
            n_open_label = int((from_stage.is_null()).sum())
            ctx.note(
                f"{where}: no outcome column; outcome read from the stage column "
                f"({frame.height - n_open_label} closed by their stage label, "
                f"{n_open_label} open)"
            )
        frame = frame.with_columns(outcome.alias("__outcome"))
        exprs["outcome"] = pl.col("__outcome")
        if "close_ts" in exprs:
            exprs["close_ts"] = pl.when(pl.col("__outcome") != "open").then(exprs["close_ts"])
        currency = [source("currency")] if "currency" in spec.fields else []
        exprs["currency"] = pl.coalesce(
            *currency,
            pl.col("__symbol_currency") if "__symbol_currency" in frame.columns else pl.lit(None),
            pl.lit(mapping.currency, dtype=pl.String),
        )
        stage = current_stage(stage, ctx)
        stage_date = exprs.pop("stage_date", None)
        if stage_date is not None:
            stage_date = evaluate(frame, stage_date)

    if table in _ID_OF and _ID_OF[table] not in exprs:
        used = [c for c in real.values() if c]
        exprs[_ID_OF[table]] = _synthetic_id(used)
        ctx.note(
            f"{where}: no {_ID_OF[table]} column; each row's id is made from its values, "
            "so rows repeated verbatim count as duplicates"
        )
    exprs = {k: v for k, v in exprs.items() if k in TABLES[table].columns}
    piece = make_piece(table, Sheet(sheet.path, frame), exprs, file=spec.file, rules=rules)
    return piece, {"stage": stage, "stage_date": stage_date, "sheet": Sheet(sheet.path, frame)}


def _no_decision(
    frame: pl.DataFrame, outcome: pl.Series, spec: TableSpec, ctx: Context, *, where: str
) -> pl.Series:
    """Lost deals whose loss reason says no decision become ``no_decision``: the mapped
    ``loss_reason`` column and any column recognised as one by name."""
    mapped = spec.column("loss_reason")
    used = {f.column for f in spec.fields.values() if f.column}
    columns = list(
        dict.fromkeys(
            ([mapped] if mapped else [])
            + [
                c
                for c in frame.columns
                if not c.startswith("__") and c not in used and is_loss_reason_header(c)
            ]
        )
    )
    if not columns:
        return outcome
    flag = pl.Series([False] * frame.height, dtype=pl.Boolean)
    for column in columns:
        flag = flag | no_decision_labels(frame[column], ctx, what="loss reason", where=where)
    changed = (outcome == "lost") & flag
    ctx.note(
        f"{where}: {int(changed.sum())} lost deals read as no decision from the loss reason "
        f"({', '.join(columns)})"
    )
    return pl.select(
        pl.when(pl.lit(changed)).then(pl.lit("no_decision")).otherwise(pl.lit(outcome))
    ).to_series()


def _day_first(fmt: str) -> bool | None:
    from effortlens.adapters.mapping import DATE_FORMATS

    return DATE_FORMATS.get(fmt.lower())


def _minutes(values: pl.Series) -> pl.Series:
    """Durations as minutes: ``45``, ``45.5``, ``1:30`` (h:mm) or ``0:01:30`` (h:mm:ss)."""

    def convert(text: str) -> str:
        if re.fullmatch(r"\d+:\d{2}(:\d{2})?", text):
            parts = [int(p) for p in text.split(":")]
            seconds = parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) == 3 else 0)
            return str(seconds / 60)
        return text.replace(",", ".")

    mapping = {v: convert(v) for v in values.drop_nulls().unique().to_list()}
    return values.replace_strict(mapping, default=None, return_dtype=pl.String)


def _stage_entries(
    piece: Piece,
    stage: pl.Series,
    stage_date: pl.Series | None,
    sheet: Sheet,
    spec: TableSpec,
    ctx: Context,
) -> list[Piece]:
    if spec.stage_dates:
        vocab = stage_vocabulary(ctx)
        columns = {raw: sheet.column(col) for raw, col in spec.stage_dates.items()}
        sheet = parse_time_columns(sheet, list(columns.values()), ctx)
        targets, _ = _translate_keys(list(columns), vocab, ctx, where=spec.file)
        frames = []
        for raw, column in columns.items():
            frames.append(
                sheet.frame.filter(pl.col(column).is_not_null()).with_columns(
                    pl.lit(targets[raw]).alias("__stage"),
                    pl.col(f"__t:{column}").alias("__entered"),
                    pl.col(f"__bad:{column}").alias("__bad"),
                    pl.lit(column).alias("__column"),
                )
            )
        ids = piece.frame.select("__line", "opportunity_id")
        entries = pl.concat(frames, how="diagonal_relaxed").join(ids, on="__line", how="left")
        history = make_piece(
            "stage_history",
            Sheet(sheet.path, entries),
            {
                "opportunity_id": pl.col("opportunity_id"),
                "stage": pl.col("__stage"),
                "entered_ts": pl.col("__entered"),
            },
            file=spec.file,
            rules=[
                Rule(
                    pl.col("__bad").is_not_null(),
                    "bad_timestamp",
                    pl.col("__column"),
                    pl.col("__bad"),
                )
            ],
        )
        ctx.note(
            f"{spec.file}: {history.frame.height} stage entries from the stage date "
            f"columns {', '.join(columns.values())}"
        )
        return [history]
    if stage.null_count() == len(stage) and "stage" not in spec.fields:
        ctx.note(f"{spec.file}: no stage column; no stage history (win rates still work)")
        return []
    derived, counts = derived_stage_entries(
        piece, stages=ctx.settings.stages, stage=stage, stage_ts=stage_date, settings=ctx.settings
    )
    ctx.note(derived_note(spec.file, counts, stage_date=stage_date is not None))
    return [derived]


def _translate_keys(keys: list[str], vocab: dict[str, str], ctx: Context, *, where: str):
    from effortlens.adapters.matching import translate

    out, notes = translate(
        pl.Series(keys, dtype=pl.String), vocab, what="stage_dates stage", where=where
    )
    ctx.note(*notes)
    return dict(zip(keys, out.to_list(), strict=True)), notes
