"""Routing the rows of export files to canonical tables, and validating them together.

A :class:`Piece` holds the rows of one export file headed for one canonical table
(:func:`make_piece`); :func:`assemble` validates all pieces through the loading pipeline, so
every source gets the same load report and quarantine.

How rows are counted (the load report's ``read`` per table):

- a row of an export file that is a *candidate* for a canonical table counts as read for that
  table (an incoming email is a candidate buyer action, an outgoing one a candidate activity);
- a candidate the adapter rejects by meaning (an auto-reply, a task not done, a deleted
  record) is quarantined with its own reason code (see :data:`ADAPTER_REASONS`), so
  ``loaded + quarantined = read`` holds per table and the row can be looked at;
- a row that is no candidate for any table (an ``OpportunityHistory`` row that records an
  amount change but no stage change) is not read; each file's routing note counts it.

Quarantined rows name the export file and the data row in it (1-based), and ``raw`` holds the
export row as written (long texts cut to 200 characters).

Examples
--------
>>> frame = pl.DataFrame({"Id": ["t1", "t2"], "Status": ["Completed", "Open"],
...                       "__line": [1, 2], "__raw": ["{}", "{}"]})
>>> piece = make_piece("activities", frame, {"activity_id": pl.col("Id")}, file="Task.csv",
...                    rules=[Rule(pl.col("Status") == "Open", "not_completed", None, "open")])
>>> piece.frame["__reason"].to_list()
[None, 'not_completed']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from effortlens.adapters.accounting import SourceReport, file_reports
from effortlens.adapters.reading import EXTRA, LINE, MERGED, RAW, Context, Sheet
from effortlens.loading import LoadedData, RawTable, validate_tables
from effortlens.schema import TABLES
from effortlens.settings import Settings

#: Reason codes the adapters add to the foundation's, for rows set aside by meaning.
ADAPTER_REASONS: dict[str, str] = {
    "not_buyer_action": "an automatic reply, out-of-office or bounce: not a buyer's response",
    "not_completed": "planned, cancelled or draft work: not effort done",
    "deleted_record": "deleted in the CRM (IsDeleted = true)",
    "child_event": "a copy of a group event on an invitee's calendar (the organiser's counts)",
    "same_as_task": "an outgoing email already counted as its Task",
}
_RECORD_SCHEMA = {"table": pl.String, "file": pl.String, "row": pl.UInt32}
#: Column of the reason a row is set aside (null for rows passed on).
REASON = "__reason"
#: Column of the source column a set-aside row is faulted for.
COLUMN = "__column"
#: Column of the message of a set-aside row.
MESSAGE = "__message"


@dataclass(frozen=True)
class Rule:
    """Set a row aside: where ``when`` holds, quarantine it with ``reason``."""

    when: pl.Expr
    reason: str
    column: str | pl.Expr | None
    message: str | pl.Expr


@dataclass(frozen=True, eq=False)
class Piece:
    """Rows of one export file headed for one canonical table.

    ``frame`` holds canonical columns as text plus ``__line``, ``__raw`` and, for rows set
    aside by the adapter, ``__reason``, ``__column`` and ``__message``. ``derived`` marks
    records EffortLens made rather than read (counted apart in the per-file report).
    """

    table: str
    file: str
    frame: pl.DataFrame
    derived: bool = False


def make_piece(
    table: str,
    sheet: Sheet | pl.DataFrame,
    fields: dict[str, pl.Expr],
    *,
    file: str | None = None,
    where: pl.Expr | None = None,
    rules: Iterable[Rule] = (),
    derived: bool = False,
) -> Piece:
    """Build a :class:`Piece`: the rows of ``sheet`` where ``where`` holds, as ``fields``.

    The first rule that holds sets a row aside with its reason. ``fields`` may only name
    columns of the canonical ``table``.
    """
    frame = sheet.frame if isinstance(sheet, Sheet) else sheet
    name = file or (sheet.name if isinstance(sheet, Sheet) else "?")
    unknown = set(fields) - set(TABLES[table].columns)
    if unknown:
        raise ValueError(f"{table} has no column(s) {sorted(unknown)}")
    if where is not None:
        frame = frame.filter(where)
    frame = frame.with_columns(
        expr.cast(pl.String).alias(f"__f:{key}") for key, expr in fields.items()
    )
    rules = list(rules)
    if MERGED in frame.columns:  # several records read as one (see reading.read_sheet)
        merged = Rule(pl.col(MERGED).is_not_null(), "merged_lines", None, pl.col(MERGED))
        rules.insert(0, merged)
    if EXTRA in frame.columns:  # a line with more fields than the header (reading.read_sheet)
        rules.insert(0, Rule(pl.col(EXTRA).is_not_null(), "extra_fields", None, pl.col(EXTRA)))

    def chain(attr: str) -> pl.Expr:
        expr = None
        for rule in rules:
            value = getattr(rule, attr)
            value = pl.lit(value, dtype=pl.String) if isinstance(value, str | None) else value
            expr = (pl.when(rule.when) if expr is None else expr.when(rule.when)).then(value)
        return pl.lit(None, dtype=pl.String) if expr is None else expr.otherwise(None)

    frame = frame.select(
        *(pl.col(f"__f:{key}").alias(key) for key in fields),
        pl.col(LINE),
        pl.col(RAW),
        chain("reason").alias(REASON),
        chain("column").cast(pl.String).alias(COLUMN),
        chain("message").cast(pl.String).alias(MESSAGE),
    )
    return Piece(table, name, frame, derived)


def routing_note(sheet_name: str, rows: int, counts: dict[str, int]) -> str:
    """``"Task.csv: 40 rows -> activities 36, not used 4 (open tasks)"``."""
    parts = ", ".join(f"{target} {n}" for target, n in counts.items() if n)
    return f"{sheet_name}: {rows} rows -> {parts}" if parts else f"{sheet_name}: {rows} rows"


def note_routing(sheet: Sheet, pieces: list[Piece], ctx: Context) -> None:
    """Note where the rows of ``sheet`` went: its :func:`routing_note` over ``pieces``."""
    counts: dict[str, int] = {}
    for piece in pieces:
        counts[piece.table] = counts.get(piece.table, 0) + piece.frame.height
    ctx.note(routing_note(sheet.name, sheet.frame.height, counts))


def assemble(
    pieces: list[Piece], ctx: Context, *, source: str, now: datetime | None = None
) -> LoadedData:
    """Validate the pieces through the foundation's pipeline and return ``LoadedData``.

    Pieces of one table are stacked, each row keeping its export file and data row; rows set
    aside by the adapter go to the quarantine as ``pre_quarantined``; afterwards every
    quarantine row's ``raw`` is the export row as written. The context's notes join the
    report's.
    """
    raw_tables: dict[str, RawTable] = {}
    set_aside: list[pl.DataFrame] = []
    lookups: list[pl.DataFrame] = []
    records: list[pl.DataFrame] = []
    for table in TABLES:
        mine = [p for p in pieces if p.table == table]
        if not mine:
            continue
        frame = pl.concat(
            [p.frame.with_columns(pl.lit(p.file).alias("__file")) for p in mine],
            how="diagonal_relaxed",
        ).with_columns(
            pl.coalesce(pl.col(LINE), pl.int_range(1, pl.len() + 1)).cast(pl.UInt32).alias("__row")
        )
        for column in TABLES[table].required:
            if column not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(column))
        label = " + ".join(dict.fromkeys(p.file for p in mine))
        canonical = [c for c in TABLES[table].columns if c in frame.columns]
        records.append(
            frame.select(
                pl.lit(table).alias("table"),
                pl.col("__file").alias("file"),
                pl.col("__row").alias("row"),
            )
        )
        lookups.append(
            frame.select(
                pl.lit(table).alias("table"),
                pl.col("__file").alias("file"),
                pl.col("__row").alias("row"),
                pl.col(RAW).alias("source_raw"),
            ).unique(subset=["table", "file", "row"], keep="first")
        )
        accepted = frame.filter(pl.col(REASON).is_null())
        raw_tables[table] = RawTable(
            table=table,
            frame=accepted.select(
                *(pl.col(c).cast(pl.String) for c in canonical), "__row", "__file"
            ),
            file=label,
        )
        set_aside.append(
            frame.filter(pl.col(REASON).is_not_null()).select(
                pl.lit(table).alias("table"),
                pl.col("__file").alias("file"),
                pl.col("__row").alias("row"),
                pl.col(COLUMN).alias("column"),
                pl.col(REASON).alias("reason"),
                pl.format("{} row {}: {}", "__file", "__row", MESSAGE).alias("message"),
                pl.col(RAW).alias("raw"),
            )
        )
    pre = pl.concat(set_aside) if set_aside else None
    data = validate_tables(raw_tables, settings=ctx.settings, now=now, pre_quarantined=pre)
    quarantine = (
        data.quarantine.join(
            pl.concat(lookups), on=["table", "file", "row"], how="left", maintain_order="left"
        )
        .with_columns(pl.coalesce("source_raw", "raw").alias("raw"))
        .select(data.quarantine.columns)
    )
    notes = [*ctx.notes, *currency_notes(data.tables["opportunities"], ctx.settings)]
    files = file_reports(
        pl.concat(records) if records else pl.DataFrame(schema=_RECORD_SCHEMA),
        quarantine,
        {(p.table, p.file) for p in pieces if p.derived},
    )
    report = SourceReport(
        tables=data.report.tables, notes=(*data.report.notes, *notes), files=files
    )
    return dataclasses.replace(data, quarantine=quarantine, report=report, source=source)


def currency_notes(opportunities: pl.DataFrame, settings: Settings) -> list[str]:
    """Say which currencies the deal amounts are in and which can be converted.

    Amounts in different currencies are never added up unless the settings'
    ``[currency_rates]`` give a rate for each (to the settings' currency).

    Examples
    --------
    >>> from effortlens.settings import load_settings
    >>> opps = pl.DataFrame({"amount": [1.0, 2.0], "currency": ["USD", "EUR"]})
    >>> currency_notes(opps, load_settings())[0][:38]
    'deal amounts are in 2 currencies: EUR '
    """
    given = opportunities.filter(pl.col("amount").is_not_null())
    counts = dict(given.group_by("currency").len().sort("currency").iter_rows())
    if len(counts) < 2:
        return []
    listed = ", ".join(f"{c} ({n} deals)" for c, n in counts.items())
    missing = sorted(
        c for c in counts if c != settings.currency and c not in settings.currency_rates
    )
    if missing:
        return [
            f"deal amounts are in {len(counts)} currencies: {listed}. No rate to "
            f"{settings.currency} for {', '.join(missing)} in the settings' [currency_rates]"
            ", so amounts are shown per currency and never added across currencies"
        ]
    return [
        f"deal amounts are in {len(counts)} currencies: {listed}; converted to "
        f"{settings.currency} with the settings' [currency_rates] where summed"
    ]
