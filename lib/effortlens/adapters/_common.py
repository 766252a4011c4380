"""The machinery every adapter shares: read export files, parse times and amounts, route each
row to a canonical table (or set it aside with a reason), and validate through the
foundation's pipeline so that every source gets the same load report and quarantine.

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
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from effortlens.loading.delimited import read_csv_text
from effortlens.loading.timestamps import EXPECTED_TIMESTAMP, localize, parse_timestamps
from effortlens.adapters._vocab import merge_spellings, normalise_key, translate
from effortlens.adapters._vocab import vocabulary as _vocabulary
from effortlens.schema import TABLES

if TYPE_CHECKING:
    from effortlens.settings import Settings

#: Reason codes the adapters add to the foundation's, for rows set aside by meaning.
ADAPTER_REASONS: dict[str, str] = {
    "not_buyer_action": "an automatic reply, out-of-office or bounce: not a buyer's response",
    "not_completed": "planned, cancelled or draft work: not effort done",
    "deleted_record": "deleted in the CRM (IsDeleted = true)",
    "child_event": "a copy of a group event on an invitee's calendar (the organiser's counts)",
    "same_as_task": "an outgoing email already counted as its Task",
}

RAW_CHARS = 200
_LINE, _RAW, _REASON, _COLUMN, _MESSAGE = "__line", "__raw", "__reason", "__column", "__message"


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True, eq=False)
class Sheet:
    """One export file: its columns as text (blanks null), ``__line`` and ``__raw``."""

    path: Path
    frame: pl.DataFrame

    @property
    def name(self) -> str:
        return self.path.name

    def column(self, *candidates: str) -> str | None:
        """The first header among ``candidates`` (case and spacing ignored), or ``None``."""
        return find_column(self.frame.columns, *candidates)

    def get(self, *candidates: str) -> pl.Expr:
        """The first present candidate column, or a null literal."""
        name = self.column(*candidates)
        return pl.col(name) if name else pl.lit(None, dtype=pl.String)


def header_key(name: str) -> str:
    """Headers compared case-, space- and quote-insensitively."""
    return " ".join(name.replace('"', " ").replace("'", " ").lower().split())


def find_column(columns: Iterable[str], *candidates: str) -> str | None:
    """The first of ``candidates`` present in ``columns`` (compared by :func:`header_key`).

    Examples
    --------
    >>> find_column(["Deal Stage", "Amount"], "dealstage", "deal stage")
    'Deal Stage'
    """
    by_key = {}
    for name in columns:
        by_key.setdefault(header_key(name), name)
    for candidate in candidates:
        hit = by_key.get(header_key(candidate))
        if hit is not None:
            return hit
    return None


def read_header(path: Path) -> list[str]:
    """The header names of a CSV export (or the columns of a Parquet file)."""
    if path.suffix.lower() == ".parquet":
        return list(pl.read_parquet_schema(path))
    from effortlens.loading.delimited import decode_to_utf8, sniff_delimiter

    with open(path, "rb") as handle:
        head = handle.read(64 * 1024)
    data, _ = decode_to_utf8(head)
    line = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    delimiter = sniff_delimiter(line)
    try:
        return list(
            pl.read_csv(
                data.split(b"\n", 1)[0], separator=delimiter, infer_schema=False, n_rows=0
            ).columns
        )
    except pl.exceptions.PolarsError:
        return [c.strip().strip('"') for c in line.split(delimiter)]


def read_sheet(path: Path) -> Sheet:
    """Read an export file: values trimmed, blanks null, plus ``__line`` and ``__raw``."""
    frame = read_csv_text(path)
    columns = [c for c in frame.columns if not c.startswith("__")]
    frame = frame.select(columns).with_columns(
        pl.when(pl.col(c).str.strip_chars() != "").then(pl.col(c).str.strip_chars()).alias(c)
        for c in columns
    )
    raw = pl.struct([pl.col(c).str.slice(0, RAW_CHARS) for c in columns]).struct.json_encode()
    frame = frame.with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).alias(_LINE), raw.alias(_RAW)
    )
    return Sheet(Path(path), frame)


# ----------------------------------------------------------------------------- context


@dataclass
class Context:
    """What an adapter needs while it reads: settings, source conventions, and its notes.

    Attributes
    ----------
    settings
        Validated settings.
    timezone
        Zone of naive times in the export files (the mapping's, else the settings').
    day_first
        Slash-date order when the user fixed it (mapping ``date_format``), else ``None``.
    time_format
        An explicit ``strftime`` format for dates in these files, or ``None``.
    decimal
        ``"."`` or ``","`` when the user fixed it, else ``None`` (decided per column).
    values
        Extra value maps from the mapping: ``{"stage": {...}, "outcome": {...}, ...}``.
    """

    settings: Settings
    timezone: str
    day_first: bool | None = None
    time_format: str | None = None
    decimal: str | None = None
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, *sentences: str) -> None:
        for sentence in sentences:
            if sentence and sentence not in self.notes:
                self.notes.append(sentence)


# ----------------------------------------------------------------------------- values

_TRUE = ("true", "1", "yes", "y", "t", "x", "wahr", "ja", "vrai", "oui", "si", "sí", "waar")
_FALSE = ("false", "0", "no", "n", "f", "falsch", "nein", "faux", "non", "onwaar")


def boolean(expr: pl.Expr) -> pl.Expr:
    """``true``/``false`` as exports and spreadsheets write them (``TRUE``, ``1``, ``yes``...)."""
    lowered = expr.str.to_lowercase()
    return pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False)


#: Outcome labels understood in any source; a mapping's [values.outcome] adds to them.
OUTCOME_LABELS: dict[str, str] = {
    "won": "won",
    "closed won": "won",
    "closedwon": "won",
    "win": "won",
    "lost": "lost",
    "closed lost": "lost",
    "closedlost": "lost",
    "loss": "lost",
    "no decision": "no_decision",
    "no-decision": "no_decision",
    "closed no decision": "no_decision",
    "closed - no decision": "no_decision",
    "did nothing": "no_decision",
    "status quo": "no_decision",
    "no budget / did nothing": "no_decision",
    "open": "open",
    "in progress": "open",
    "active": "open",
}


def stage_vocabulary(ctx: Context, defaults: dict[str, str] | None = None) -> dict[str, str]:
    """Stage names -> the settings' stages: a source's defaults whose target the settings
    have, then the settings' ``[stages.map]``, then the mapping's ``[values.stage]``."""
    stages = ctx.settings.stages
    usable = {k: v for k, v in (defaults or {}).items() if v in stages}
    return _vocabulary(usable, ctx.settings.stage_map, ctx.values.get("stage", {}), targets=stages)


def outcome_vocabulary(ctx: Context) -> dict[str, str]:
    """Outcome labels -> open, won, lost, no_decision."""
    from effortlens.schema import OUTCOMES

    return _vocabulary(OUTCOME_LABELS, ctx.values.get("outcome", {}), targets=OUTCOMES)


def activity_vocabulary(ctx: Context, defaults: dict[str, str] | None = None) -> dict[str, str]:
    """Raw activity types -> canonical ones (the settings' map, then the mapping's)."""
    from effortlens.settings import ACTIVITY_TYPES

    return _vocabulary(
        defaults or {},
        ctx.settings.activity_map,
        ctx.values.get("activity_type", {}),
        targets=ACTIVITY_TYPES,
    )


def action_vocabulary(ctx: Context) -> dict[str, str]:
    """Raw buyer action types -> the settings' action types."""
    return _vocabulary(
        ctx.values.get("action_type", {}), targets=tuple(ctx.settings.action_weights)
    )


def evaluate(frame: pl.DataFrame, expr: pl.Expr) -> pl.Series:
    """``expr`` on ``frame`` as a series of its height (constants broadcast)."""
    return frame.with_columns(expr.alias("__evaluated"))["__evaluated"]


def translated(
    frame: pl.DataFrame,
    expr: pl.Expr,
    vocab: dict[str, str],
    ctx: Context,
    *,
    what: str,
    where: str,
) -> pl.Series:
    """``expr`` evaluated on ``frame`` and translated through ``vocab`` (notes to ``ctx``)."""
    values = evaluate(frame, expr.cast(pl.String)).alias(what)
    out, notes = translate(values, vocab, what=what, where=where)
    ctx.note(*notes)
    return out


def only(values: pl.Series, allowed: Iterable[str]) -> pl.Series:
    """``values`` where they are among ``allowed``, else null."""
    return values.replace_strict({a: a for a in allowed}, default=None, return_dtype=pl.String)


def closing_stage(
    values: pl.Series, outcomes: dict[str, str], stages: tuple[str, ...]
) -> pl.Series:
    """True where a stage name is a closing outcome (Closed Won, Closed Lost), not a stage."""
    labels, _ = translate(values, outcomes, what="stage")
    return (labels.is_in(["won", "lost", "no_decision"]) & ~values.is_in(stages)).fill_null(False)


_AUTOMATIC_SUBJECT = (
    r"(?i)^\s*(\[[^\]]*\]\s*)?(automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|"
    r"out of (the )?office|ooo\b|abwesenheit|automatische antwort|r[ée]ponse automatique|"
    r"absence du bureau|respuesta autom[áa]tica|fuera de la oficina|risposta automatica|"
    r"automatisch antwoord|afwezig|delivery status notification|undeliver|"
    r"mail delivery (failed|subsystem)|returned mail|failure notice)"
)
_AUTOMATIC_HEADER = (
    r'(?i)(auto-submitted"?\s*[:=]\s*"?auto-(replied|generated|notified)|x-autoreply|'
    r'x-autorespond|precedence"?\s*[:=]\s*"?auto_reply|x-ms-exchange-inbox-rules-loop)'
)
_AUTOMATIC_SENDER = r"(?i)^(mailer-daemon|postmaster|no-?reply|do-?not-?reply)@"


def is_automatic_reply(
    *, subject: pl.Expr, headers: pl.Expr | None = None, sender: pl.Expr | None = None
) -> pl.Expr:
    """True for automatic replies, out-of-office messages and bounces (not buyer actions).

    Told from the subject (English, German, French, Spanish, Italian, Dutch prefixes), the
    ``Auto-Submitted`` / ``X-Autoreply`` headers when exported, and mailer-daemon senders.

    Examples
    --------
    >>> f = pl.DataFrame({"s": ["Automatic reply: Pricing", "RE: Pricing", "Abwesenheitsnotiz"]})
    >>> f.select(is_automatic_reply(subject=pl.col("s")))["s"].to_list()
    [True, False, True]
    """
    flag = subject.str.contains(_AUTOMATIC_SUBJECT).fill_null(False)
    if headers is not None:
        flag = flag | headers.str.contains(_AUTOMATIC_HEADER).fill_null(False)
    if sender is not None:
        flag = flag | sender.str.strip_chars().str.contains(_AUTOMATIC_SENDER).fill_null(False)
    return flag


# ----------------------------------------------------------------------------- times


def _iso(values: pl.Series, *, as_date: bool) -> pl.Series:
    if as_date:
        return values.dt.strftime("%Y-%m-%d")
    return values.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")


def _epochs(values: pl.Series) -> pl.Series:
    """Unix epoch milliseconds (13 digits, HubSpot's API) or seconds (10) as ISO text."""
    text = values.str.strip_chars()
    ms = text.str.contains(r"^\d{13}$").fill_null(False)
    seconds = text.str.contains(r"^\d{10}$").fill_null(False)
    if not (ms.any() or seconds.any()):
        return values
    number = text.cast(pl.Int64, strict=False)
    stamp = (
        pl.select(
            pl.when(pl.lit(ms))
            .then(pl.from_epoch(pl.lit(number), time_unit="ms"))
            .when(pl.lit(seconds))
            .then(pl.from_epoch(pl.lit(number), time_unit="s"))
        )
        .to_series()
        .dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    )
    return pl.select(pl.coalesce(pl.lit(stamp), pl.lit(values))).to_series().alias(values.name)


def parse_time_columns(
    sheet: Sheet, columns: Iterable[str | None], ctx: Context, *, as_date: bool = False
) -> Sheet:
    """Parse ``columns`` of ``sheet`` (per column: its own day/month order) into ISO text.

    Adds ``__t:<col>`` (ISO 8601 UTC text, or a ``YYYY-MM-DD`` date) and ``__bad:<col>`` (a
    message where a value was given but cannot be read, else null).
    """
    frame = sheet.frame
    for column in dict.fromkeys(c for c in columns if c):
        if f"__t:{column}" in frame.columns:
            continue
        values = _epochs(frame[column])
        if ctx.time_format:
            naive = values.str.strptime(pl.Datetime("us"), ctx.time_format, strict=False)
            parsed = naive.dt.date() if as_date else localize(naive, timezone=ctx.timezone)[0]
            failed = values.is_not_null() & parsed.is_null()
            conflict = pl.Series([False] * len(values))
            expected = f"the format {ctx.time_format} (the mapping's date_format)"
        else:
            result = parse_timestamps(
                values, timezone=ctx.timezone, as_date=as_date, day_first=ctx.day_first
            )
            parsed, failed, conflict = result.values, result.failed, result.conflict
            ctx.note(*(f"{sheet.name}, {column}: {n}" for n in result.notes))
            expected = EXPECTED_TIMESTAMP
            if result.slash_order and int(conflict.sum()):
                ctx.note(
                    f"{sheet.name}, {column}: slash dates mix day-first and month-first values; "
                    f"read as {result.slash_order} (most values), {int(conflict.sum())} "
                    "contradicting values quarantined. Set date_format in a mapping to decide."
                )
        bad = (
            pl.when(pl.Series(conflict.fill_null(False)))
            .then(pl.format(f"{column}: '{{}}' contradicts the column's day/month order", values))
            .when(pl.Series(failed.fill_null(False)))
            .then(
                pl.format(
                    f"{column}: cannot read '{{}}' as a date/time; expected {expected}", values
                )
            )
        )
        frame = frame.with_columns(
            pl.Series(f"__t:{column}", _iso(parsed, as_date=as_date)),
        ).with_columns(bad.alias(f"__bad:{column}"))
    return Sheet(sheet.path, frame)


def time_field(*columns: str | None) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(value, bad message, column) of the first given source column among ``columns``.

    The columns must have been parsed by :func:`parse_time_columns`. A value that is given
    but unreadable does not fall through to the next column: it is bad.
    """
    present = [c for c in columns if c]
    if not present:
        none = pl.lit(None, dtype=pl.String)
        return none, none, none
    chosen = pl.coalesce(
        [pl.when(pl.col(c).is_not_null()).then(pl.lit(i)) for i, c in enumerate(present)]
    )

    def pick(prefix: str) -> pl.Expr:
        return pl.coalesce(
            [pl.when(chosen == i).then(pl.col(f"{prefix}{c}")) for i, c in enumerate(present)]
            + [pl.lit(None, dtype=pl.String)]
        )

    column = pl.coalesce(
        [pl.when(chosen == i).then(pl.lit(c)) for i, c in enumerate(present)] + [pl.lit(present[0])]
    )
    return pick("__t:"), pick("__bad:"), column


# ----------------------------------------------------------------------------- amounts

_SYMBOLS = {
    "US$": "USD",
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
    "CHF": "CHF",
    "R$": "BRL",
    "A$": "AUD",
    "C$": "CAD",
    "kr": None,
}
_CODE = re.compile(r"^([A-Z]{3})\s*(.*)$|^(.*?)\s*([A-Z]{3})$")


def parse_amounts(
    values: pl.Series, *, decimal: str | None = None, where: str = ""
) -> tuple[pl.Series, pl.Series, list[str]]:
    """Read money amounts as written in exports and spreadsheets.

    Handles currency symbols and codes (``$1,200.50``, ``1.200,50 €``, ``EUR 1200``), thousands
    separators (``,`` ``.`` space ``'``), decimal commas (where a value writes both marks the
    last one is the decimal mark; otherwise decided per column unless ``decimal`` is given)
    and ``(1,200)`` negatives.

    Returns the amounts as plain decimal text (values that cannot be read are returned as
    written, so validation quarantines them), the currency each value named (or null), and
    notes.

    Examples
    --------
    >>> a, c, _ = parse_amounts(pl.Series(["$1,200.50", "1.200,50 €", None, "abc"]))
    >>> a.to_list(), c.to_list()
    (['1200.50', '1200.50', None, 'abc'], ['USD', 'EUR', None, None])
    """
    distinct = [v for v in values.unique().to_list() if v is not None]
    stripped: dict[str, tuple[str, str | None]] = {}
    for raw in distinct:
        text = raw.replace("\u00a0", " ").strip()
        currency = None
        for symbol, code in sorted(_SYMBOLS.items(), key=lambda kv: -len(kv[0])):
            if symbol in text:
                text, currency = text.replace(symbol, "").strip(), code
                break
        match = _CODE.match(text)
        if match and currency is None:
            code = match.group(1) or match.group(4)
            rest = match.group(2) if match.group(1) else match.group(3)
            if rest and re.search(r"\d", rest):
                text, currency = rest.strip(), code
        negative = text.startswith("(") and text.endswith(")")
        text = text.strip("()").replace(" ", "").replace("'", "")
        stripped[raw] = (("-" if negative else "") + text, currency)
    texts = [t for t, _ in stripped.values()]
    if decimal is None:
        comma = any(re.search(r",\d{1,2}$", t) for t in texts) or any(
            re.search(r"\.\d{3}[.,]", t) for t in texts
        )
        point = any(re.search(r"\.\d{1,2}$", t) for t in texts)
        decimal = "," if comma and not point else "."
    notes = []
    amounts: dict[str, str] = {}
    for raw, (text, _) in stripped.items():
        mark = decimal
        if "," in text and "." in text:  # both written: the last one is the decimal mark
            mark = "," if text.rfind(",") > text.rfind(".") else "."
        number = text.replace(".", "").replace(",", ".") if mark == "," else text.replace(",", "")
        try:
            float(number)
            amounts[raw] = number
        except ValueError:
            amounts[raw] = raw
    if decimal == "," and distinct:
        notes.append(f"{where}amounts read with a decimal comma (1.234,50 = 1234.50)")
    symbols = sorted({c for _, c in stripped.values() if c})
    if symbols:
        notes.append(f"{where}currency read from the amounts themselves: {', '.join(symbols)}")
    amount = values.replace_strict(amounts, default=None, return_dtype=pl.String)
    currency = values.replace_strict(
        {raw: c for raw, (_, c) in stripped.items()}, default=None, return_dtype=pl.String
    )
    return amount.alias(values.name), currency.alias("currency"), notes


# ----------------------------------------------------------------------------- routing


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
    aside by the adapter, ``__reason``, ``__column`` and ``__message``.
    """

    table: str
    file: str
    frame: pl.DataFrame


def make_piece(
    table: str,
    sheet: Sheet | pl.DataFrame,
    fields: dict[str, pl.Expr],
    *,
    file: str | None = None,
    where: pl.Expr | None = None,
    rules: Iterable[Rule] = (),
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

    def chain(attr: str) -> pl.Expr:
        expr = None
        for rule in rules:
            value = getattr(rule, attr)
            value = pl.lit(value, dtype=pl.String) if isinstance(value, str | None) else value
            expr = (pl.when(rule.when) if expr is None else expr.when(rule.when)).then(value)
        return pl.lit(None, dtype=pl.String) if expr is None else expr.otherwise(None)

    frame = frame.select(
        *(pl.col(f"__f:{key}").alias(key) for key in fields),
        pl.col(_LINE),
        pl.col(_RAW),
        chain("reason").alias(_REASON),
        chain("column").cast(pl.String).alias(_COLUMN),
        chain("message").cast(pl.String).alias(_MESSAGE),
    )
    return Piece(table, name, frame)


def routing_note(sheet_name: str, rows: int, counts: dict[str, int]) -> str:
    """``"Task.csv: 40 rows -> activities 36, not used 4 (open tasks)"``."""
    parts = ", ".join(f"{target} {n}" for target, n in counts.items() if n)
    return f"{sheet_name}: {rows} rows -> {parts}" if parts else f"{sheet_name}: {rows} rows"


# ----------------------------------------------------------------------------- derived tables


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
                piece.frame.with_columns(
                    pl.col("rep_id").replace_strict(
                        spelling, default=pl.col("rep_id"), return_dtype=pl.String
                    )
                ),
            )
        out.append(piece)
    ids = merged.drop_nulls().unique().sort()
    frame = pl.DataFrame({"rep_id": ids}).with_columns(
        pl.lit(None, dtype=pl.UInt32).alias(_LINE),
        pl.struct("rep_id").struct.json_encode().alias(_RAW),
    )
    files = sorted({p.file for p in named})
    reps = make_piece(
        "reps",
        frame,
        {"rep_id": pl.col("rep_id"), "rep_name": pl.col("rep_id")},
        file=f"(owners named in {', '.join(files)})",
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
            piece = Piece(piece.table, piece.file, frame)
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
) -> tuple[Piece, dict[str, int]]:
    """Stage entries derived from a snapshot of deals (no stage history in the export).

    A snapshot says where each deal is (or was when it closed), not when it moved, so the
    derivation serves the funnel (how far deals got), not times in stage. For each deal of
    ``opportunities`` (a piece whose rows line up with ``stage``, the translated current or
    last reached stage, null where unknown or a closing label):

    - every deal enters the **first stage** at its created time: it entered the pipeline;
    - a deal whose stage is known also enters **that stage**, at ``stage_ts`` (a "stage date"
      column) when given, else at its created time; the stages between are *skipped*, which
      the flow counts as reached;
    - a **won** deal with no stage known also enters the **last stage**, at its close time
      (else its created time): a won deal went the whole way;
    - a lost, no-decision or open deal with no stage known stays at the first stage, so its
      loss counts as a leak there;
    - a stage name that is none of the stages is passed on and validation quarantines it
      (``unknown_stage``).

    Returns the piece and counts for the notes.
    """
    frame = opportunities.frame.with_columns(
        stage.alias("__stage"),
        (
            stage_ts
            if stage_ts is not None
            else pl.Series([None] * opportunities.frame.height, dtype=pl.String)
        ).alias("__stage_ts"),
    ).filter(pl.col(_REASON).is_null())
    won = pl.col("outcome") == "won"
    known = pl.col("__stage").is_not_null()
    first = pl.lit(stages[0])
    entries = pl.concat(
        [
            frame.with_columns(first.alias("__entry"), pl.col("created_ts").alias("__at")),
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
    counts = {
        "deals": frame.height,
        "stage known": frame.filter(known).height,
        "won, last stage implied": frame.filter(~known & won).height,
        "closed or open, stage unknown": frame.filter(~known & ~won).height,
    }
    piece = make_piece(
        "stage_history",
        entries,
        {
            "opportunity_id": pl.col("opportunity_id"),
            "stage": pl.col("__entry"),
            "entered_ts": pl.col("__at"),
        },
        file=file or opportunities.file,
    )
    return piece, counts


def current_stage(stages: pl.Series, ctx: Context) -> pl.Series:
    """Translated stage names with closing labels (Closed Won, Closed Lost) made null."""
    closing = closing_stage(stages, outcome_vocabulary(ctx), ctx.settings.stages)
    return pl.select(pl.when(~pl.lit(closing)).then(pl.lit(stages))).to_series()


def derive_missing_history(
    opportunities: Piece, stages: pl.Series, history: list[Piece], ctx: Context
) -> list[Piece]:
    """Derived entries (:func:`derived_stage_entries`) for the deals of ``opportunities`` that
    have no entry in ``history``; ``stages`` are the deals' translated current stages."""
    known: set[str] = set()
    for piece in history:
        known |= set(piece.frame["opportunity_id"].drop_nulls().to_list())
    missing = ~opportunities.frame["opportunity_id"].is_in(list(known))
    subset = Piece(opportunities.table, opportunities.file, opportunities.frame.filter(missing))
    if not subset.frame.filter(pl.col(_REASON).is_null()).height:
        return []
    derived, counts = derived_stage_entries(
        subset, stages=ctx.settings.stages, stage=current_stage(stages.filter(missing), ctx)
    )
    note = derived_note(opportunities.file, counts, stage_date=False)
    if history:
        note += " (only the deals that have no entry in the stage history)"
    ctx.note(note)
    return [derived]


def derived_note(file: str, counts: dict[str, int], *, stage_date: bool) -> str:
    """The load-report note saying exactly what :func:`derived_stage_entries` derived."""
    return (
        f"{file}: stage history derived from {counts['deals']} deals' current stage (the "
        "export has none): each deal enters the first stage at its created time; "
        f"{counts['stage known']} also enter their current or last stage at "
        + ("their stage date" if stage_date else "their created time")
        + f"; {counts['won, last stage implied']} won deals with no stage enter the last stage "
        f"at their close; {counts['closed or open, stage unknown']} lost, no-decision or open "
        "deals with no stage known stay at the first stage (their losses leak there). "
        "Conversion and leakage are the funnel's; times in stage are not measured."
    )


# ----------------------------------------------------------------------------- assembling


def assemble(pieces: list[Piece], ctx: Context, *, source: str, now=None):
    """Validate the pieces through the foundation's pipeline and return ``LoadedData``.

    Pieces of one table are stacked, each row keeping its export file and data row; rows set
    aside by the adapter go to the quarantine as ``pre_quarantined``; afterwards every
    quarantine row's ``raw`` is the export row as written. The context's notes join the
    report's.
    """
    from effortlens.loading import RawTable, validate_tables

    raw_tables: dict[str, RawTable] = {}
    set_aside: list[pl.DataFrame] = []
    lookups: list[pl.DataFrame] = []
    for table in TABLES:
        mine = [p for p in pieces if p.table == table]
        if not mine:
            continue
        frame = pl.concat(
            [p.frame.with_columns(pl.lit(p.file).alias("__file")) for p in mine],
            how="diagonal_relaxed",
        ).with_columns(
            pl.coalesce(pl.col(_LINE), pl.int_range(1, pl.len() + 1)).cast(pl.UInt32).alias("__row")
        )
        for column in TABLES[table].required:
            if column not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(column))
        label = " + ".join(dict.fromkeys(p.file for p in mine))
        canonical = [c for c in TABLES[table].columns if c in frame.columns]
        lookups.append(
            frame.select(
                pl.lit(table).alias("table"),
                pl.col("__file").alias("file"),
                pl.col("__row").alias("row"),
                pl.col(_RAW).alias("source_raw"),
            ).unique(subset=["table", "file", "row"], keep="first")
        )
        accepted = frame.filter(pl.col(_REASON).is_null())
        raw_tables[table] = RawTable(
            table=table,
            frame=accepted.select(
                *(pl.col(c).cast(pl.String) for c in canonical), "__row", "__file"
            ),
            file=label,
        )
        set_aside.append(
            frame.filter(pl.col(_REASON).is_not_null()).select(
                pl.lit(table).alias("table"),
                pl.col("__file").alias("file"),
                pl.col("__row").alias("row"),
                pl.col(_COLUMN).alias("column"),
                pl.col(_REASON).alias("reason"),
                pl.format("{} row {}: {}", "__file", "__row", _MESSAGE).alias("message"),
                pl.col(_RAW).alias("raw"),
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
    report = dataclasses.replace(data.report, notes=(*data.report.notes, *notes))
    return dataclasses.replace(data, quarantine=quarantine, report=report, source=source)


def currency_notes(opportunities: pl.DataFrame, settings) -> list[str]:
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
