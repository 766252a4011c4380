"""The type of a logged activity, read through a documented chain of evidence.

CRM tasks often carry no type: a Salesforce export with an empty ``Type`` and no
``TaskSubtype`` column still tells emails from calls by other fields. Each row's type is the
first step of this chain that gives one:

1. **value map**: the mapping's ``[values.activity_type]``, applied to the ``Type`` value;
   ``"" = "email"`` maps the empty ``Type``;
2. **TaskSubtype**: ``Email``, ``ListEmail`` (email), ``Call`` (call), ``LinkedIn`` (social);
   ``Task`` and ``Cadence`` say nothing and fall through;
3. **Type**: through the settings' ``[activities.map]`` and close spellings; ``Other`` says
   nothing and falls through; a value no map knows is passed on (the loader maps it to
   ``other`` and reports it);
4. **EmailMessageId**: a task linked to an email message is an email;
5. **call fields**: a ``CallType``, ``CallDurationInSeconds`` above zero, ``CallObject`` or
   ``CallDisposition`` makes a call;
6. **Subject prefix**: ``Email: …``, ``Call …``, ``Meeting …``, ``LinkedIn …``, ``Demo …``,
   ``Proposal …`` (after an optional ``[tag]`` or arrow, as email and dialer integrations
   write them);
7. **default**: the settings' ``[activities.map]`` entry for the empty value (``"" = "call"``),
   else ``other``.

The load notes say how many rows each step typed.

Examples
--------
>>> from pathlib import Path
>>> from effortlens.adapters.reading import Context, Sheet
>>> from effortlens.settings import load_settings
>>> ctx = Context(settings=load_settings(), timezone="UTC")
>>> frame = pl.DataFrame({"Type": [None, "Call", None], "Subject": ["Email: hi", None, "x"],
...                       "CallType": [None, None, "Outbound"]})
>>> types, steps = task_types(Sheet(Path("Task.csv"), frame), ctx)
>>> types.to_list(), steps
(['email', 'call', 'call'], {'Type': 1, 'call fields': 1, 'Subject prefix': 1})
"""

from __future__ import annotations

import polars as pl

from effortlens.adapters.matching import translate
from effortlens.adapters.reading import Context, Sheet
from effortlens.adapters.values import activity_vocabulary, evaluate

#: The steps of the chain, in order, as the notes name them.
STEPS: tuple[str, ...] = (
    "value map",
    "TaskSubtype",
    "Type",
    "EmailMessageId",
    "call fields",
    "Subject prefix",
    "default",
)
#: TaskSubtype values that name a type (Task and Cadence do not).
SUBTYPES: dict[str, str] = {
    "email": "email",
    "listemail": "email",
    "call": "call",
    "linkedin": "social",
}
#: Type values that say nothing about the channel.
UNINFORMATIVE_TYPES: frozenset[str] = frozenset({"other", "task", "to do", "todo", "none", "-"})
_LEAD = r"(?i)^\W*(?:\[[^\]]*\]\s*\W*)*"
#: Subject prefixes, checked in order (the first that matches wins).
SUBJECT_PREFIXES: tuple[tuple[str, str], ...] = (
    (
        "email",
        _LEAD + r"(?:e-?mail|mass e-?mail|list e-?mail|sent e-?mail|inbound e-?mail|"
        r"outbound e-?mail|reply|re|fw|fwd)\b",
    ),
    ("meeting", _LEAD + r"(?:meeting|mtg|video call|zoom|teams meeting|event)\b"),
    (
        "call",
        _LEAD + r"(?:call|phone|cold call|logged call|outbound call|voicemail|vm|"
        r"dial(?:ed)?)\b",
    ),
    ("social", _LEAD + r"(?:linkedin|inmail)\b"),
    ("demo", _LEAD + r"(?:demo|presentation)\b"),
    ("proposal", _LEAD + r"(?:proposal|quote|offer)\b"),
)


def _key(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_lowercase().str.strip_chars().str.replace_all(r"\s+", " ")


def task_types(sheet: Sheet, ctx: Context) -> tuple[pl.Series, dict[str, int]]:
    """Each row's raw activity type by the chain above, and how many rows each step typed.

    Parameters
    ----------
    sheet
        The task export (missing columns are simply steps that give nothing).
    ctx
        Settings and the mapping's value maps; close-spelling notes go to its notes.

    Returns
    -------
    The types (canonical where a step knows it, else the raw ``Type``) and the counts per
    step (steps that typed nothing left out).
    """
    frame = sheet.frame
    explicit = {
        " ".join(k.lower().split()): v for k, v in ctx.values.get("activity_type", {}).items()
    }
    type_value = evaluate(frame, sheet.get("Type"))
    by_map = evaluate(
        frame,
        _key(sheet.get("Type").fill_null("")).replace_strict(
            explicit, default=None, return_dtype=pl.String
        ),
    )
    by_subtype = evaluate(
        frame,
        sheet.get("TaskSubtype")
        .str.to_lowercase()
        .replace_strict(SUBTYPES, default=None, return_dtype=pl.String),
    )
    translated, notes = translate(
        type_value, activity_vocabulary(ctx), what="activity type", where=sheet.name
    )
    ctx.note(*notes)
    by_type = pl.select(
        pl.when(~_key(pl.lit(translated)).is_in(list(UNINFORMATIVE_TYPES))).then(pl.lit(translated))
    ).to_series()
    by_email = evaluate(
        frame, pl.when(sheet.get("EmailMessageId").is_not_null()).then(pl.lit("email"))
    )
    call = (
        sheet.get("CallType").is_not_null()
        | (sheet.get("CallDurationInSeconds").cast(pl.Float64, strict=False) > 0).fill_null(False)
        | sheet.get("CallObject").is_not_null()
        | sheet.get("CallDisposition").is_not_null()
    )
    by_call = evaluate(frame, pl.when(call).then(pl.lit("call")))
    subject = sheet.get("Subject")
    prefix = None
    for target, pattern in SUBJECT_PREFIXES:
        hit = subject.str.contains(pattern).fill_null(False)
        prefix = (pl.when(hit) if prefix is None else prefix.when(hit)).then(pl.lit(target))
    by_subject = evaluate(frame, prefix.otherwise(None) if prefix is not None else pl.lit(None))
    default = ctx.settings.activity_map.get("", "other")
    by_default = pl.Series([default] * frame.height, dtype=pl.String)

    found = [by_map, by_subtype, by_type, by_email, by_call, by_subject, by_default]
    steps = pl.DataFrame({f"s{i}": s.cast(pl.String) for i, s in enumerate(found)})
    step = steps.select(
        pl.coalesce(
            [pl.when(pl.col(f"s{i}").is_not_null()).then(pl.lit(i)) for i in range(len(found))]
        ).alias("step")
    )["step"]
    types = steps.select(pl.coalesce(list(steps.columns)).alias("type"))["type"]
    counts = {STEPS[i]: n for i, n in sorted(step.value_counts().iter_rows()) if n}
    if counts.get("default"):
        counts[f"default ({default})"] = counts.pop("default")
    return types.alias("activity_type"), counts


def type_note(file: str, counts: dict[str, int]) -> str:
    """``"Task.csv: activity types from Type 4, EmailMessageId 2, Subject prefix 1"``."""
    parts = ", ".join(f"{step} {n:,}" for step, n in counts.items())
    return (
        f"{file}: activity types read from {parts} (the chain: value map, TaskSubtype, Type, "
        "EmailMessageId, call fields, Subject prefix, default)"
    )
