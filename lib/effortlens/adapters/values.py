"""Reading values of exports: vocabularies of stages, outcomes and types, automatic replies,
and money amounts as people write them.

True/false values are read by :func:`effortlens.loading.columns.boolean`, the same reader
canonical files go through.

Examples
--------
>>> a, c, _ = parse_amounts(pl.Series(["$1,200.50", "1.200,50 €", None, "abc"]))
>>> a.to_list(), c.to_list()
(['1200.50', '1200.50', None, 'abc'], ['USD', 'EUR', None, None])
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import polars as pl

from effortlens.adapters.matching import translate, vocabulary
from effortlens.adapters.reading import Context, Sheet
from effortlens.schema import OUTCOMES
from effortlens.settings import ACTIVITY_TYPES

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


#: Words that name a loss to no decision inside a longer label ("No Decision / Non-Responsive",
#: "Lost - did nothing", "Keine Entscheidung"): the buyer chose nothing, not a competitor.
NO_DECISION_PATTERN = (
    r"(?i)\bno[\s_-]*decision\b|\bnodecision\b|\b(did|do)[\s_-]*nothing\b|\bstatus[\s_-]*quo\b|"
    r"\bnon[\s_-]*responsive\b|\bunresponsive\b|\bwent[\s_-]*dark\b|\bghosted\b|"
    r"\bno[\s_-]*response\b|\bkeine[\s_-]*entscheidung\b|\b(pas de|sans)[\s_-]*d[ée]cision\b|"
    r"\bsin[\s_-]*decisi[óo]n\b"
)
#: Headers of loss-reason fields, recognised by name (``Loss_Reason__c``, ``LossReason__c``,
#: ``Reason_Lost__c``, ``Closed Lost Reason``, ``lost_reason``…).
LOSS_REASON_HEADER = (
    r"(?i)(loss|lost|closed[\s_]*lost)[\s_]*(reason|cause)|"
    r"(reason|why)[\s_]*(for[\s_]*)?(loss|lost)"
)


def is_loss_reason_header(name: str) -> bool:
    """Whether a header names a loss-reason field (by its words, any case or style).

    Examples
    --------
    >>> [is_loss_reason_header(h) for h in ("LossReason__c", "Reason_Lost__c", "Amount")]
    [True, True, False]
    """
    return re.search(LOSS_REASON_HEADER, name) is not None


def no_decision_labels(values: pl.Series, ctx: Context, *, what: str, where: str) -> pl.Series:
    """True where a label (a stage name, a loss reason) says the deal was lost to no decision.

    The outcome vocabulary (the mapping's ``[values.outcome]`` first) decides a label it knows;
    otherwise a label containing the words of :data:`NO_DECISION_PATTERN` is a no-decision.

    Examples
    --------
    >>> from effortlens.settings import load_settings
    >>> ctx = Context(settings=load_settings(), timezone="UTC")
    >>> s = pl.Series(["No Decision / Non-Responsive", "Price", None, "Lost to competitor"])
    >>> no_decision_labels(s, ctx, what="loss reason", where="x.csv").to_list()
    [True, False, False, False]
    """
    known, notes = translate(values, outcome_vocabulary(ctx), what=what, where=where)
    ctx.note(*notes)
    by_vocabulary = known.is_in(list(OUTCOMES)) & values.is_not_null()
    by_words = values.str.contains(NO_DECISION_PATTERN).fill_null(False)
    flag = pl.select(
        pl.when(pl.lit(by_vocabulary))
        .then(pl.lit(known) == "no_decision")
        .otherwise(pl.lit(by_words))
    ).to_series()
    return flag.fill_null(False).alias(values.name)


def stage_vocabulary(ctx: Context, defaults: dict[str, str] | None = None) -> dict[str, str]:
    """Stage names -> the settings' stages: a source's defaults whose target the settings
    have, then the settings' ``[stages.map]``, then the mapping's ``[values.stage]``."""
    stages = ctx.settings.stages
    usable = {k: v for k, v in (defaults or {}).items() if v in stages}
    return vocabulary(usable, ctx.settings.stage_map, ctx.values.get("stage", {}), targets=stages)


def outcome_vocabulary(ctx: Context) -> dict[str, str]:
    """Outcome labels -> open, won, lost, no_decision."""
    return vocabulary(OUTCOME_LABELS, ctx.values.get("outcome", {}), targets=OUTCOMES)


def activity_vocabulary(ctx: Context, defaults: dict[str, str] | None = None) -> dict[str, str]:
    """Raw activity types -> canonical ones (the settings' map, then the mapping's)."""
    return vocabulary(
        defaults or {},
        ctx.settings.activity_map,
        ctx.values.get("activity_type", {}),
        targets=ACTIVITY_TYPES,
    )


def action_vocabulary(ctx: Context) -> dict[str, str]:
    """Raw buyer action types -> the settings' action types."""
    return vocabulary(ctx.values.get("action_type", {}), targets=tuple(ctx.settings.action_weights))


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


def loss_reason_outcome(sheet: Sheet, ctx: Context) -> tuple[pl.Series, list[str]]:
    """``"no_decision"`` where any loss-reason column says so, and the columns read: those the
    mapping names (``[source] loss_reason``) and those recognised by name
    (:func:`is_loss_reason_header`).

    Examples
    --------
    >>> from pathlib import Path
    >>> from effortlens.settings import load_settings
    >>> ctx = Context(settings=load_settings(), timezone="UTC")
    >>> sheet = Sheet(Path("o.csv"), pl.DataFrame({"LossReason__c": ["No Decision", "Price"]}))
    >>> label, columns = loss_reason_outcome(sheet, ctx)
    >>> label.to_list(), columns
    (['no_decision', None], ['LossReason__c'])
    """
    frame = sheet.frame
    named = [sheet.column(c) for c in ctx.loss_reason]
    missing = [c for c, hit in zip(ctx.loss_reason, named, strict=True) if hit is None]
    if missing:
        ctx.note(
            f"{sheet.name}: the mapping's loss_reason column(s) {', '.join(missing)} are not in "
            "the file; loss reasons read from the columns recognised by name"
        )
    columns = list(
        dict.fromkeys(
            [c for c in named if c]
            + [c for c in frame.columns if not c.startswith("__") and is_loss_reason_header(c)]
        )
    )
    flag = pl.Series([False] * frame.height, dtype=pl.Boolean)
    for column in columns:
        flag = flag | no_decision_labels(frame[column], ctx, what="loss reason", where=sheet.name)
    label = pl.select(pl.when(pl.lit(flag)).then(pl.lit("no_decision"))).to_series()
    return label.cast(pl.String), columns
