"""Tables an export does not hold, derived from the ones it does: reps from the owners deals
and activities name, owners named by name or e-mail matched to rep ids, and stage history
from a snapshot of deals' current stages.

Every derivation is written in a note of the load report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import polars as pl

from effortlens.adapters.matching import merge_spellings, normalise_key
from effortlens.adapters.pieces import REASON, Piece, make_piece
from effortlens.adapters.reading import LINE, RAW, Context
from effortlens.adapters.values import closing_stage, outcome_vocabulary
from effortlens.loading.report import counted

if TYPE_CHECKING:
    from effortlens.settings import Settings


def reps_from_owners(pieces: list[Piece], ctx: Context) -> list[Piece]:
    """The pieces plus a ``reps`` piece of every owner they name (when no user file exists).

    Owners written with different case or spacing (``"anna becker"``, ``"Anna Becker"``) are
    one rep under the most frequent spelling, noted.
    """
    named = [p for p in pieces if "rep_id" in p.frame.columns]
    values = pl.concat(
        [p.frame["rep_id"] for p in named] or [pl.Series("rep_id", [], dtype=pl.String)]
    )
    merged, notes = merge_spellings(values, what="owner")
    ctx.note(*notes)
    spelling = {
        k: v
        for k, v in zip(values.to_list(), merged.to_list(), strict=True)
        if k is not None and k != v
    }
    out = []
    for piece in pieces:
        if spelling and "rep_id" in piece.frame.columns:
            piece = Piece(
                piece.table,
                piece.file,
                derived=piece.derived,
                frame=piece.frame.with_columns(
                    pl.col("rep_id").replace_strict(
                        spelling, default=pl.col("rep_id"), return_dtype=pl.String
                    )
                ),
            )
        out.append(piece)
    ids = merged.drop_nulls().unique().sort()
    frame = pl.DataFrame({"rep_id": ids}).with_columns(
        pl.lit(None, dtype=pl.UInt32).alias(LINE),
        pl.struct("rep_id").struct.json_encode().alias(RAW),
    )
    files = sorted({p.file for p in named})
    reps = make_piece(
        "reps",
        frame,
        {"rep_id": pl.col("rep_id"), "rep_name": pl.col("rep_id")},
        file=f"(owners named in {', '.join(files)})",
        derived=True,
    )
    return [reps, *out]


def resolve_owner_names(
    pieces: list[Piece], reps: list[Piece], ctx: Context, *, aliases: dict[str, str] | None = None
) -> list[Piece]:
    """Point owners written as a rep's name (or another alias, e.g. an e-mail address) at
    that rep's id; ids already known are left alone. Returns new pieces; notes the count."""
    ids: set[str] = set()
    by_key: dict[str, str] = {}
    for piece in reps:
        frame = piece.frame
        ids |= set(frame["rep_id"].drop_nulls().to_list())
        if "rep_name" in frame.columns:
            for rep_id, name in frame.select("rep_id", "rep_name").drop_nulls().iter_rows():
                by_key.setdefault(normalise_key(name), rep_id)
    for alias, rep_id in (aliases or {}).items():
        by_key.setdefault(normalise_key(alias), rep_id)
    out = []
    resolved = 0
    for piece in pieces:
        if "rep_id" not in piece.frame.columns:
            out.append(piece)
            continue
        values = piece.frame["rep_id"].drop_nulls().unique().to_list()
        mapping = {
            v: by_key[normalise_key(v)]
            for v in values
            if v not in ids and normalise_key(v) in by_key
        }
        if mapping:
            resolved += int(piece.frame["rep_id"].is_in(list(mapping)).sum())
            frame = piece.frame.with_columns(
                pl.col("rep_id").replace_strict(
                    mapping, default=pl.col("rep_id"), return_dtype=pl.String
                )
            )
            piece = Piece(piece.table, piece.file, frame, piece.derived)
        out.append(piece)
    if resolved:
        ctx.note(f"{resolved} rows name their owner by name or e-mail; matched to the rep's id")
    return out


def derived_stage_entries(
    opportunities: Piece,
    *,
    stages: tuple[str, ...],
    stage: pl.Series,
    stage_ts: pl.Series | None = None,
    file: str | None = None,
    settings: Settings | None = None,
) -> tuple[Piece, dict[str, int]]:
    """Stage entries derived from a snapshot of deals (no stage history in the export).

    A snapshot says where each deal is (or was when it closed), not when it moved, so the
    derivation serves the funnel (how far deals got), not times in stage. Every entry it makes
    has ``derived`` true: the flow measures no time in stage from it and counts only the
    stages it names as reached. For each deal of ``opportunities`` (a piece whose rows line
    up with ``stage``, the translated current or last reached stage, null where unknown or a
    closing label):

    - a deal whose stage is known enters the **first stage** at its created time (it entered
      the pipeline) and **that stage**, at ``stage_ts`` (a "stage date" column) when given,
      else at its created time; the stages between are *skipped*, not known to be passed;
    - a **won** deal with no stage known enters the first stage and the **last stage**, at its
      close time (else its created time): a won deal went the whole way;
    - an **open** deal with no stage known enters the first stage (it is in the pipeline);
    - a **lost or no-decision** deal with no stage known gets **no entry**: the export does
      not say where it was lost, and the flow counts it as "lost, stage unknown" rather than
      as a loss at the first stage. A lost deal whose known stage *is* the first stage enters
      only the first stage and is lost there: the export says so;
    - a stage name that is none of the stages is passed on and validation quarantines it
      (``unknown_stage``).

    A created, close or stage time before ``settings``' ``earliest_timestamp`` is a placeholder
    for a missing one (the deal's own validation reads it as empty, rule 5): it places no entry
    either, so a won deal whose close date is 0001-01-01 enters the last stage at its created
    time, as one whose close date is empty.

    Returns the piece and counts for the notes.
    """
    frame = opportunities.frame.with_columns(
        stage.alias("__stage"),
        (
            stage_ts
            if stage_ts is not None
            else pl.Series([None] * opportunities.frame.height, dtype=pl.String)
        ).alias("__stage_ts"),
    ).filter(pl.col(REASON).is_null())
    for column in ("created_ts", "close_ts"):  # a mapping may leave them out
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(column))
        elif settings is not None:
            frame = frame.with_columns(_placeholder_as_empty(frame[column], settings))
    if settings is not None:  # a stage date of 0001-01-01 too: the created time places it
        frame = frame.with_columns(_placeholder_as_empty(frame["__stage_ts"], settings))
    won = pl.col("outcome") == "won"
    known = pl.col("__stage").is_not_null()
    placed = known | won | (pl.col("outcome") == "open")  # a loss at no known stage: no entry
    first = pl.lit(stages[0])
    entries = pl.concat(
        [
            frame.filter(placed).with_columns(
                first.alias("__entry"), pl.col("created_ts").alias("__at")
            ),
            frame.filter(known & (pl.col("__stage") != stages[0])).with_columns(
                pl.col("__stage").alias("__entry"),
                pl.coalesce("__stage_ts", "created_ts").alias("__at"),
            ),
            frame.filter(~known & won & pl.lit(len(stages) > 1)).with_columns(
                pl.lit(stages[-1]).alias("__entry"),
                pl.coalesce("close_ts", "created_ts").alias("__at"),
            ),
        ],
        how="diagonal_relaxed",
    )
    timeless = entries.filter(pl.col("__at").is_null())
    entries = entries.filter(pl.col("__at").is_not_null())
    counts = {
        "no time known": timeless["opportunity_id"].n_unique() if timeless.height else 0,
        "deals": frame.height,
        "stage known": frame.filter(known).height,
        "won, last stage implied": frame.filter(~known & won).height,
        "open, stage unknown": frame.filter(~known & (pl.col("outcome") == "open")).height,
        "lost, stage unknown": frame.filter(~placed).height,
    }
    piece = make_piece(
        "stage_history",
        entries,
        {
            "opportunity_id": pl.col("opportunity_id"),
            "stage": pl.col("__entry"),
            "entered_ts": pl.col("__at"),
            "derived": pl.lit(value=True),
        },
        file=file or opportunities.file,
        derived=True,
    )
    return piece, counts


def current_stage(stages: pl.Series, ctx: Context) -> pl.Series:
    """Translated stage names with closing labels (Closed Won, Closed Lost) made null."""
    closing = closing_stage(stages, outcome_vocabulary(ctx), ctx.settings.stages)
    return pl.select(pl.when(~pl.lit(closing)).then(pl.lit(stages))).to_series()


def _placeholder_as_empty(text: pl.Series, settings: Settings) -> pl.Series:
    """``text`` (a deal's time as exported) with the times before ``earliest_timestamp`` as
    empty, as the deal's validation reads them (:func:`effortlens.loading.rules._check_early`).

    Examples
    --------
    >>> from effortlens.settings import load_settings
    >>> text = pl.Series("close_ts", ["0001-01-01", "2025-03-04", None, "soon"])
    >>> _placeholder_as_empty(text, load_settings()).to_list()
    [None, '2025-03-04', None, 'soon']
    """
    from effortlens.loading.timestamps import parse_timestamps

    earliest = settings.earliest_timestamp
    start = datetime(earliest.year, earliest.month, earliest.day, tzinfo=UTC)
    parsed = parse_timestamps(text.cast(pl.String), timezone=settings.timezone).values
    return pl.select(pl.when(~(parsed < start).fill_null(False)).then(text)).to_series()


def derive_missing_history(
    opportunities: Piece,
    stages: pl.Series,
    history: list[Piece],
    ctx: Context,
    *,
    stage_ts: pl.Series | None = None,
) -> list[Piece]:
    """Derived entries (:func:`derived_stage_entries`) for the deals of ``opportunities`` that
    have no entry in ``history``; ``stages`` are the deals' translated current stages and
    ``stage_ts`` when they entered them (ISO text, or ``None`` when the export has no date)."""
    known: set[str] = set()
    for piece in history:
        known |= set(piece.frame["opportunity_id"].drop_nulls().to_list())
    missing = ~opportunities.frame["opportunity_id"].is_in(list(known))
    subset = Piece(opportunities.table, opportunities.file, opportunities.frame.filter(missing))
    if not subset.frame.filter(pl.col(REASON).is_null()).height:
        return []
    derived, counts = derived_stage_entries(
        subset,
        stages=ctx.settings.stages,
        stage=current_stage(stages.filter(missing), ctx),
        stage_ts=stage_ts.filter(missing) if stage_ts is not None else None,
        settings=ctx.settings,
    )
    note = derived_note(opportunities.file, counts, stage_date=stage_ts is not None)
    if history:
        note += " (only the deals that have no entry in the stage history)"
    ctx.note(note)
    return [derived]


def derived_note(file: str, counts: dict[str, int], *, stage_date: bool) -> str:
    """The load-report note saying exactly what :func:`derived_stage_entries` derived."""
    return (
        f"{file}: stage history derived from {counts['deals']} deals' current stage (the "
        "export has none; every derived entry is marked derived): "
        f"{counts['stage known']} enter the first stage at their created time and their "
        "current or last stage at "
        + ("their stage date" if stage_date else "their created time")
        + f"; {counts['won, last stage implied']} won deals with no stage known enter the first "
        f"stage and the last stage at their close; {counts['open, stage unknown']} open deals "
        f"with no stage known stay at the first stage; {counts['lost, stage unknown']} lost or "
        "no-decision deals with no stage known get no entry: they are counted as lost, stage "
        "unknown. Conversion and leakage are the funnel's; times in stage are not measured."
        + (
            f" {counted(counts['no time known'], 'deal')} without a created date: kept, "
            "with an unknown age; no entry is derived where its time is unknown (the first "
            "stage; their current stage too unless a stage date is given)."
            if counts.get("no time known")
            else ""
        )
    )
