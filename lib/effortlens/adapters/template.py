"""Write a mapping template for a folder of CSV exports, pre-filled by guessing from headers.

Each file is assigned to the canonical table whose distinctive fields its header shows most
(a stage, outcome or amount column: ``opportunities``; a type or duration column:
``activities``; team, segment, role or manager: ``reps``; an action type: ``buyer_actions``);
each field gets the column whose header is one of its usual names (English, German, French,
Spanish), else is left commented out. The stage, outcome and activity-type values found in the
files are listed with a guessed target, or an empty one to fill in. The date order and decimal
mark are read off the values. Everything guessed says so in a comment.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "deals.csv").write_text("Deal ID,Owner,Created,Stage,Amount\\n"
...                                       "1,Ann,2024-01-05,Closed Won,100\\n")
>>> print([l for l in mapping_template(folder).splitlines() if l.startswith("rep_id")][0])
rep_id = "Owner"   # guessed; required: owner (must be in reps)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl

from effortlens.adapters.matching import translate
from effortlens.adapters.reading import Context, header_key, read_sheet
from effortlens.adapters.values import NO_DECISION_PATTERN, is_loss_reason_header
from effortlens.schema import OUTCOMES, TABLES

#: Usual header names per field, most specific first.
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "opportunities": {
        "opportunity_id": (
            "opportunity id",
            "deal id",
            "record id",
            "mql id",
            "deal number",
            "deal-id",
            "deal no",
            "opportunity number",
            "id",
        ),
        "account_id": (
            "account id",
            "company id",
            "account",
            "account name",
            "company",
            "company name",
            "organization",
            "organisation",
            "customer",
            "client",
            "firma",
            "unternehmen",
            "kunde",
            "société",
            "entreprise",
            "empresa",
            "cliente",
        ),
        "rep_id": (
            "owner id",
            "owner",
            "deal owner",
            "opportunity owner",
            "owner name",
            "sales rep",
            "sales agent",
            "sr id",
            "sales rep id",
            "salesperson",
            "account executive",
            "rep",
            "assigned to",
            "user",
            "verantwortlich",
            "besitzer",
            "vertriebsmitarbeiter",
            "propriétaire",
            "responsable",
            "vendedor",
            "commercial",
        ),
        "created_ts": (
            "created date",
            "create date",
            "created",
            "date created",
            "created at",
            "creation date",
            "open date",
            "engage date",
            "engaged date",
            "first contact date",
            "opened",
            "start date",
            "erstellt am",
            "erstellt",
            "angelegt",
            "date de création",
            "créé le",
            "fecha de creación",
            "creado",
        ),
        "close_ts": (
            "close date",
            "closed date",
            "date closed",
            "won date",
            "closed won date",
            "closed at",
            "closed on",
            "abschlussdatum",
            "abschluss",
            "geschlossen am",
            "date de clôture",
            "fecha de cierre",
            "cierre",
        ),
        "amount": (
            "amount",
            "deal value",
            "close value",
            "closed value",
            "value",
            "deal size",
            "opportunity amount",
            "revenue",
            "arr",
            "acv",
            "total",
            "betrag",
            "wert",
            "umsatz",
            "montant",
            "valeur",
            "importe",
            "valor",
        ),
        "currency": ("currency", "currency code", "currencyisocode", "währung", "devise", "moneda"),
        "outcome": (
            "outcome",
            "result",
            "won/lost",
            "deal status",
            "status",
            "ergebnis",
            "statut",
            "résultat",
            "estado",
            "resultado",
        ),
        "stage": (
            "stage",
            "deal stage",
            "stage name",
            "pipeline stage",
            "phase",
            "current stage",
            "stufe",
            "verkaufsphase",
            "étape",
            "etapa",
            "fase",
        ),
        "stage_date": (
            "stage date",
            "last stage change",
            "last stage change date",
            "stage changed",
            "date entered current stage",
        ),
    },
    "activities": {
        "activity_id": ("activity id", "task id", "event id", "record id", "id"),
        "rep_id": (
            "owner id",
            "owner",
            "assigned to",
            "activity owner",
            "user",
            "rep",
            "sales rep",
            "sales agent",
            "created by",
            "mitarbeiter",
            "verantwortlich",
            "utilisateur",
            "usuario",
        ),
        "ts": (
            "timestamp",
            "activity date",
            "activity datetime",
            "activity date time",
            "completed date",
            "date time",
            "datetime",
            "date",
            "time",
            "when",
            "completed",
            "start",
            "start time",
            "created date",
            "created at",
            "datum",
            "zeitpunkt",
            "fecha",
            "heure",
        ),
        "activity_type": (
            "activity type",
            "type",
            "channel",
            "kind",
            "task type",
            "category",
            "typ",
            "art",
            "kanal",
            "canal",
            "tipo",
        ),
        "account_id": (
            "account id",
            "company id",
            "account",
            "company",
            "organization",
            "firma",
            "société",
            "empresa",
        ),
        "opportunity_id": ("opportunity id", "deal id", "opportunity", "deal"),
        "contact_id": (
            "contact id",
            "contact",
            "person",
            "lead",
            "contact email",
            "kontakt",
            "contacto",
        ),
        "duration_min": (
            "duration (min)",
            "duration min",
            "duration",
            "minutes",
            "length",
            "dauer",
            "durée",
            "duración",
        ),
    },
    "reps": {
        "rep_id": (
            "rep id",
            "user id",
            "owner id",
            "employee id",
            "sales agent",
            "sales rep",
            "id",
            "email",
        ),
        "rep_name": ("rep name", "full name", "name", "owner name", "user"),
        "team": ("team", "sales team", "group"),
        "segment": ("segment", "market segment", "division"),
        "region": ("region", "territory", "regional office", "office", "country"),
        "role": ("role", "title", "job title", "position"),
        "manager_id": ("manager id", "manager", "reports to"),
        "hire_date": ("hire date", "start date", "hired", "joined"),
        "exit_date": ("exit date", "termination date", "end date", "left"),
        "exit_reason": ("exit reason", "termination reason", "reason for leaving"),
        "timezone": ("time zone", "timezone", "time zone sid key", "tz"),
    },
    "buyer_actions": {
        "action_id": ("action id", "response id", "record id", "id"),
        "ts": ("timestamp", "date", "time", "when", "datum"),
        "account_id": ("account id", "company id", "account", "company"),
        "opportunity_id": ("opportunity id", "deal id", "opportunity", "deal"),
        "contact_id": ("contact id", "contact", "person"),
        "action_type": ("action type", "action", "response type", "response", "buyer action"),
    },
}
DISTINCTIVE: dict[str, tuple[str, ...]] = {
    "opportunities": ("stage", "outcome", "amount", "close_ts"),
    "activities": ("activity_type", "duration_min"),
    "reps": ("team", "segment", "role", "manager_id", "hire_date"),
    "buyer_actions": ("action_type",),
}
_TIMES = {"created_ts", "close_ts", "ts", "stage_date", "hire_date", "exit_date"}
_MAX_VALUES = 60


def words(name: str) -> str:
    """A header as lower-case words, whatever its case and style: ``deal_stage``,
    ``DealStage``, ``Deal-Stage`` and ``DEAL STAGE`` are all ``"deal stage"``.

    Examples
    --------
    >>> [words(h) for h in ("deal_stage", "closeValue", "CreatedDate", "Won Date", "sr_id")]
    ['deal stage', 'close value', 'created date', 'won date', 'sr id']
    """
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.strip())
    text = re.sub(r"__c$", "", text)
    return " ".join(re.sub(r"[_\-./:]+", " ", header_key(text)).split())


def guess_fields(table: str, headers: list[str]) -> dict[str, str]:
    """Field -> header for ``table`` (exact usual names first, then names containing one);
    headers are compared in any case and style (:func:`words`).

    Examples
    --------
    >>> guess_fields("opportunities", ["Deal ID", "Deal Owner Name", "Phase"])["stage"]
    'Phase'
    >>> guess_fields("opportunities", ["deal_stage", "close_value", "engage_date"])["amount"]
    'close_value'
    """
    keys: dict[str, str] = {}
    for h in headers:
        keys.setdefault(words(h), h)
    used: set[str] = set()
    out: dict[str, str] = {}
    for exact in (True, False):
        for fld, names in SYNONYMS[table].items():
            if fld in out:
                continue
            for name in names:
                hit = (
                    keys.get(name)
                    if exact
                    else next(
                        (
                            h
                            for k, h in keys.items()
                            if len(name) >= 4
                            and h not in used
                            and f" {name} " in f" {k} "
                            and not re.match(r"(has|is|n|num|number of) ", k)
                        ),
                        None,
                    )
                )
                if hit and hit not in used:
                    out[fld] = hit
                    used.add(hit)
                    break
    return out


#: Headers of a file of people at buyers (contacts), never the reps.
_CONTACT_HINTS = ("first name", "last name", "email", "phone", "contact id", "contact")
_BUYER_HINTS = ("account", "account id", "company", "company name", "organization", "customer")


def _assign(headers: list[str]) -> tuple[str | None, dict[str, str], str]:
    """(table, fields, why not) for a file: the table whose distinctive fields it shows most.

    Deals need a stage, outcome or close date (an amount alone is an account's revenue); reps
    need more than a job title when the file names buyers' companies (that is a contacts file).
    """
    keys = {words(h) for h in headers}
    best, best_score, best_fields = None, 0, {}
    for table in SYNONYMS:
        fields = guess_fields(table, headers)
        score = sum(1 for f in DISTINCTIVE[table] if f in fields)
        if table == "opportunities" and not {"stage", "outcome", "close_ts"} & set(fields):
            score = 0
        if table == "reps":
            people_at_buyers = keys & set(_CONTACT_HINTS) and keys & set(_BUYER_HINTS)
            if people_at_buyers and not {"team", "manager_id", "hire_date"} & set(fields):
                score = 0
        if score > best_score:
            best, best_score, best_fields = table, score, fields
    why = ""
    if best is None:
        if keys & set(_CONTACT_HINTS) and keys & set(_BUYER_HINTS):
            why = "people at buyers' companies (contacts), not sellers"
        else:
            why = "no stage, outcome, close date, activity type, team or manager column"
    return best, best_fields, why


#: Time fields a table needs, looked for by their values when no header names them.
_NEEDED_TIMES = {"activities": "ts", "buyer_actions": "ts", "opportunities": "created_ts"}
_DATE_SHAPE = r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4})"


def _times_by_value(
    table: str, fields: dict[str, str], frame: pl.DataFrame, headers: list[str]
) -> dict[str, str]:
    """The needed time field of ``table`` from a column whose values are dates (ISO, slash or
    dotted dates, with or without a time), when no header named it."""
    from effortlens.loading.timestamps import parse_timestamps

    needed = _NEEDED_TIMES.get(table)
    if needed is None or needed in fields:
        return {}
    used = set(fields.values())
    for header in headers:
        if header in used:
            continue
        values = frame[header].drop_nulls().head(200)
        if values.is_empty():
            continue
        shaped = values.str.contains(_DATE_SHAPE).mean() or 0.0
        if shaped < 0.8:
            continue
        parsed = parse_timestamps(values, timezone="UTC")
        if 1.0 - float(parsed.failed.mean() or 0.0) >= 0.8:
            return {needed: header}
    return {}


def _toml(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _date_hint(columns: list[tuple[str, pl.Series]]) -> tuple[str | None, str]:
    """(date_format or None, comment) from the values of the date columns."""
    if not columns:
        return None, "no date columns found"
    orders, ambiguous, dotted = set(), [], False
    for column, series in columns:
        values = series.drop_nulls()
        if values.str.contains(r"^\d{1,2}\.\d{1,2}\.\d{4}").any():
            dotted = True
        parts = values.str.extract_groups(r"^(\d{1,2})[/-](\d{1,2})[/-]\d{4}").struct.unnest()
        first, second = parts[:, 0].cast(pl.Int32), parts[:, 1].cast(pl.Int32)
        if first.is_null().all():
            continue
        day_first, month_first = bool((first > 12).any()), bool((second > 12).any())
        if day_first != month_first:
            orders.add("D/M/YYYY" if day_first else "M/D/YYYY")
        elif not day_first:
            ambiguous.append(column)
    if len(orders) == 1:
        order = orders.pop()
        return order, f"the files' slash dates read as {order} (a part above 12 shows it)"
    if ambiguous:
        return None, (
            f"slash dates in {', '.join(ambiguous)} never have a day above 12: "
            "M/D/YYYY or D/M/YYYY cannot be told from the values; set date_format"
        )
    if dotted:
        return "D.M.YYYY", "the files write dates as D.M.YYYY"
    return None, "dates look like ISO (2024-03-05) or are told apart per value"


def mapping_template(folder: str | Path) -> str:
    """A TOML mapping for ``folder``, pre-filled by guessing from its files' headers.

    Parameters
    ----------
    folder
        A folder of CSV exports.

    Returns
    -------
    str
        The mapping text: save it (e.g. as ``mapping.toml`` in the folder), check every guess,
        fill in the empty targets, and load with ``effortlens load DIR --mapping FILE``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "pipeline.csv").write_text("Owner,Created,Phase\\nAnn,2024-01-05,Won\\n")
    >>> "[opportunities]" in mapping_template(folder)
    True
    """
    from effortlens.adapters.hubspot import DEFAULT_STAGES as HS_STAGES
    from effortlens.adapters.reading import data_files
    from effortlens.adapters.salesforce import DEFAULT_STAGES as SF_STAGES
    from effortlens.adapters.values import (
        activity_vocabulary,
        outcome_vocabulary,
        parse_amounts,
        stage_vocabulary,
    )
    from effortlens.settings import load_settings

    folder = Path(folder)
    settings = load_settings()
    ctx = Context(settings=settings, timezone=settings.timezone)
    from effortlens.adapters.detect import detect_format

    detection = detect_format(folder)
    if detection.format in ("salesforce", "hubspot"):
        return crm_values_template(detection, ctx)
    assigned: list[tuple[str, Path, dict[str, str], pl.DataFrame]] = []
    unused: list[str] = []
    for path in data_files(folder):
        if path.suffix.lower() == ".parquet":
            unused.append(path.name)
            continue
        frame = read_sheet(path).frame
        headers = [c for c in frame.columns if not c.startswith("__")]
        table, fields, why = _assign(headers)
        if table is None:
            unused.append(f"{path.name} ({why})")
        else:
            fields = {**fields, **_times_by_value(table, fields, frame, headers)}
            assigned.append((table, path, fields, frame))

    lines = [
        f"# EffortLens mapping for {folder.name}, written by `effortlens mapping-template`.",
        "# Every guess below needs a look: fix a column name where it is wrong, uncomment a",
        "# field where its column exists under another name, give each empty value a target.",
        "# Load with:  effortlens load DIR --mapping THIS_FILE   (or save it as DIR/mapping.toml)",
        "",
    ]
    date_columns = [
        (f"{path.name}, {fields[k]}", frame[fields[k]])
        for _, path, fields, frame in assigned
        for k in fields
        if k in _TIMES
    ]
    date_format, date_comment = _date_hint(date_columns)
    decimal = None
    for _, _, fields, frame in assigned:
        if "amount" in fields:
            _, _, notes = parse_amounts(frame[fields["amount"]])
            if any("decimal comma" in n for n in notes):
                decimal = ","
    lines += [
        "[source]",
        "# Time zone of times written without one (leave out: the settings' zone):",
        '# timezone = "Europe/Berlin"',
        f"# Date order: {date_comment}.",
        f"date_format = {_toml(date_format)}"
        if date_format
        else '# date_format = "D/M/YYYY"'
        "   # auto, M/D/YYYY, D/M/YYYY, D.M.YYYY, or a strftime format like %d.%m.%Y %H:%M",
        f'decimal = "{decimal}"   # amounts are written 1.234,50'
        if decimal
        else '# decimal = ","   # when amounts are written 1.234,50',
        '# currency = "EUR"   # currency of amounts that name none (default: the settings\')',
        "",
    ]
    counts: dict[str, int] = {}
    for table, _, _, _ in assigned:
        counts[table] = counts.get(table, 0) + 1
    value_sources: dict[str, list[pl.Series]] = {
        "stage": [],
        "outcome": [],
        "activity_type": [],
        "loss_reason": [],
    }
    for table, path, fields, frame in assigned:
        header = f"[[{table}]]" if counts[table] > 1 else f"[{table}]"
        columns = [c for c in frame.columns if not c.startswith("__")]
        lines += [header, f"file = {_toml(path.name)}", f"# columns: {', '.join(columns)}"]
        names = list(TABLES[table].columns) + (
            ["stage", "stage_date", "loss_reason"] if table == "opportunities" else []
        )
        if table == "opportunities":
            loss = next((h for h in columns if is_loss_reason_header(h)), None)
            if loss:
                fields = {**fields, "loss_reason": loss}
            if "close_ts" in fields and not {"stage", "outcome"} & set(fields):
                won = words(fields["close_ts"]).startswith("won")
                fields = {**fields, "outcome": "won"} if won else fields
        for name in names:
            describe = TABLES[table].description.get(name) or {
                "stage": "the deal's current stage, or its outcome label once closed",
                "stage_date": "when the deal entered its current stage",
                "loss_reason": "why a deal was lost ('No Decision / …' makes it a no-decision)",
            }.get(name, "")
            required = name in TABLES[table].required and name not in (
                "opportunity_id",
                "activity_id",
                "action_id",
                "outcome",
                "created_ts",
            )
            tag = "required: " if required else ""
            if name == "outcome" and fields.get("outcome") == "won" and table == "opportunities":
                lines.append(
                    'outcome = { value = "won" }   # guessed: a won date and no stage or outcome '
                    "column, so every row is a won deal"
                )
            elif name in fields:
                lines.append(f"{name} = {_toml(fields[name])}   # guessed; {tag}{describe}")
            else:
                lines.append(f'# {name} = ""   # {tag}{describe}')
        if table == "opportunities":
            lines.append(
                '# stage_dates = { discovery = "Date qualified", proposal = "Date '
                'offer sent" }   # columns holding the date each stage was entered'
            )
            for key in ("stage", "outcome"):
                if key in fields and fields[key] in frame.columns:
                    value_sources["stage" if key == "stage" else "outcome"].append(
                        frame[fields[key]]
                    )
            if "loss_reason" in fields:
                value_sources["loss_reason"].append(frame[fields["loss_reason"]])
        if table == "activities" and "activity_type" in fields:
            value_sources["activity_type"].append(frame[fields["activity_type"]])
        direction = next(
            (h for h in columns if words(h) in ("direction", "incoming", "inbound", "outbound")),
            None,
        )
        if table == "activities" and direction:
            lines += [
                f"# {direction!r} says who acted: keep the seller's rows here and map the "
                "buyer's to [[buyer_actions]] from the same file, e.g.",
                f'# where = {{ {_toml(direction)} = "OUTBOUND" }}',
            ]
        lines.append("")

    outcomes = outcome_vocabulary(ctx)
    stages = stage_vocabulary(ctx, {**SF_STAGES, **HS_STAGES})
    stage_lines, outcome_lines, type_lines = [], [], []
    for values in value_sources["stage"] + value_sources["outcome"]:
        distinct = values.drop_nulls().unique(maintain_order=True).head(_MAX_VALUES)
        as_outcome, _ = translate(distinct, outcomes, what="outcome")
        as_stage, _ = translate(distinct, stages, what="stage")
        for raw, out, stg in zip(
            distinct.to_list(), as_outcome.to_list(), as_stage.to_list(), strict=True
        ):
            if out in OUTCOMES:
                outcome_lines.append((raw, out))
            elif stg in settings.stages:
                stage_lines.append((raw, stg))
            else:
                stage_lines.append((raw, ""))
    for values in value_sources["loss_reason"]:
        outcome_lines += _loss_reason_lines(values, ctx)
    for values in value_sources["activity_type"]:
        distinct = values.drop_nulls().unique(maintain_order=True).head(_MAX_VALUES)
        as_type, _ = translate(distinct, activity_vocabulary(ctx), what="activity type")
        type_lines += [
            (r, t if t in activity_vocabulary(ctx).values() else "")
            for r, t in zip(distinct.to_list(), as_type.to_list(), strict=True)
        ]

    def section(name: str, entries: list[tuple[str, str]], comment: str) -> list[str]:
        seen: dict[str, str] = {}
        for raw, target in entries:
            seen.setdefault(raw, target)
        if not seen:
            return [f"# [values.{name}]", f"# {comment}", ""]
        out = [f"[values.{name}]", f"# {comment}"]
        out += [
            f"{_toml(raw)} = {_toml(t)}" + ("   # guessed" if t else "   # fill in")
            for raw, t in seen.items()
        ]
        return out + [""]

    lines += section(
        "stage",
        stage_lines,
        "stage names in the files -> one of "
        + ", ".join(settings.stages)
        + " (your settings' stages). A value that is "
        "an outcome (won, lost, no decision) belongs in [values.outcome].",
    )
    lines += section(
        "outcome",
        outcome_lines,
        "outcome labels -> open, won, lost or "
        "no_decision (deals lost to no decision are a leak of their own)",
    )
    lines += section(
        "activity_type",
        type_lines,
        "activity types -> email, call, meeting, "
        "demo, proposal, social (customer-facing), internal, admin, or other",
    )
    if unused:
        lines.append("# files not matched to a table:")
        lines += [f"#   {u}" for u in unused]
    if not assigned:
        lines += [
            "# No file looked like deals, activities or reps. Write the sections by hand:",
            "# [opportunities]",
            '# file = "your_export.csv"',
            '# rep_id = "Owner"',
            '# created_ts = "Created"',
            '# stage = "Stage"',
        ]
    return "\n".join(lines).rstrip() + "\n"


def _loss_reason_lines(values: pl.Series, ctx: Context) -> list[tuple[str, str]]:
    """Loss reasons as outcome labels: no-decision words -> no_decision, others -> lost."""
    from effortlens.adapters.values import outcome_vocabulary

    distinct = values.drop_nulls().unique(maintain_order=True).head(_MAX_VALUES)
    known, _ = translate(distinct, outcome_vocabulary(ctx), what="loss reason")
    out = []
    for raw, target in zip(distinct.to_list(), known.to_list(), strict=True):
        if target not in OUTCOMES:
            target = "no_decision" if re.search(NO_DECISION_PATTERN, raw) else "lost"
        out.append((raw, target))
    return out


#: Where the Salesforce and HubSpot readers find the values a value map translates.
_CRM_VALUES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "salesforce": {
        "Opportunity": (("stage", "StageName"),),
        "OpportunityHistory": (("stage", "StageName"),),
        "Task": (("activity_type", "Type"),),
        "Event": (("activity_type", "Type"),),
    },
    "hubspot": {"deals": (("stage", "Deal Stage"), ("stage", "dealstage"))},
}


def _hubspot_stage_names(values: pl.Series, frame: pl.DataFrame) -> pl.Series:
    """Stage labels without their pipeline suffix, as the HubSpot reader reads them."""
    from effortlens.adapters.hubspot import stage_name

    pipeline = next((c for c in frame.columns if header_key(c) == "pipeline"), None)
    pipelines = (
        {p.strip().lower() for p in frame[pipeline].drop_nulls().to_list()} if pipeline else set()
    )
    names = {v: stage_name(v, pipelines) for v in values.drop_nulls().unique().to_list()}
    return values.replace_strict(names, default=None, return_dtype=pl.String)


def crm_values_template(detection, ctx: Context) -> str:
    """A mapping of value maps only for a folder of Salesforce or HubSpot exports.

    It lists the stage names, outcome labels, activity types and loss reasons found, with the
    target each is read as today. It names no table, so saved as ``mapping.toml`` it adds to
    the CRM's reader and never replaces it; lines with no target yet are commented out, so
    the file loads as written.
    """
    from effortlens.adapters.hubspot import DEFAULT_STAGES as HS_STAGES
    from effortlens.adapters.salesforce import DEFAULT_STAGES as SF_STAGES
    from effortlens.adapters.values import activity_vocabulary, stage_vocabulary

    fmt = detection.format
    settings = ctx.settings
    label = "Salesforce" if fmt == "salesforce" else "HubSpot"
    found: dict[str, list[pl.Series]] = {"stage": [], "activity_type": [], "loss_reason": []}
    loss_columns: list[str] = []
    for kind, paths in detection.files.items():
        for path in paths:
            frame = read_sheet(path).frame
            for what, column in _CRM_VALUES[fmt].get(kind, ()):
                hit = next((c for c in frame.columns if header_key(c) == header_key(column)), None)
                if hit:
                    values = frame[hit]
                    if fmt == "hubspot":  # "Qualified To Buy (Sales Pipeline)", as the reader
                        values = _hubspot_stage_names(values, frame)
                    found[what].append(values)
            if kind in ("Opportunity", "deals"):
                for c in frame.columns:
                    if not c.startswith("__") and is_loss_reason_header(c):
                        found["loss_reason"].append(frame[c])
                        loss_columns.append(c)
    stages = stage_vocabulary(ctx, SF_STAGES if fmt == "salesforce" else HS_STAGES)
    outcomes_vocab = {}
    from effortlens.adapters.values import outcome_vocabulary

    outcomes_vocab = outcome_vocabulary(ctx)
    stage_lines, outcome_lines, type_lines = [], [], []
    for values in found["stage"]:
        distinct = values.drop_nulls().unique(maintain_order=True).head(_MAX_VALUES)
        as_outcome, _ = translate(distinct, outcomes_vocab, what="outcome")
        as_stage, _ = translate(distinct, stages, what="stage")
        for raw, out, stg in zip(
            distinct.to_list(), as_outcome.to_list(), as_stage.to_list(), strict=True
        ):
            if out in OUTCOMES or re.search(NO_DECISION_PATTERN, raw):
                outcome_lines.append((raw, out if out in OUTCOMES else "no_decision"))
            else:
                stage_lines.append((raw, stg if stg in settings.stages else ""))
    for values in found["loss_reason"]:
        outcome_lines += _loss_reason_lines(values, ctx)
    types = activity_vocabulary(ctx)
    for values in found["activity_type"]:
        distinct = values.drop_nulls().unique(maintain_order=True).head(_MAX_VALUES)
        as_type, _ = translate(distinct, types, what="activity type")
        type_lines += [
            (r, t if t in types.values() else "")
            for r, t in zip(distinct.to_list(), as_type.to_list(), strict=True)
        ]

    def section(name: str, entries: list[tuple[str, str]], comment: str) -> list[str]:
        seen: dict[str, str] = {}
        for raw, target in entries:
            seen.setdefault(raw, target)
        out = [f"[values.{name}]", f"# {comment}"]
        if not seen:
            out.append("# (none found in the files)")
        for raw, target in seen.items():
            if target:
                out.append(
                    f"{_toml(raw)} = {_toml(target)}   # how it is read now; change to remap"
                )
            else:
                out.append(f'# {_toml(raw)} = ""   # not known yet: uncomment and fill in')
        return out + [""]

    lines = [
        f"# EffortLens value maps for {detection.folder.name}: {label} exports, written by",
        "# `effortlens mapping-template`. Saved as mapping.toml in the folder (or passed with",
        f"# --mapping), it adds to what the {label} reader knows and never replaces it: it names",
        "# no table. Change a target to remap a value; uncomment a line to give a target.",
        "",
        "[source]",
        f'format = "{fmt}"',
        '# timezone = "Europe/Berlin"   # zone of times written without one',
    ]
    if loss_columns:
        lines.append(
            f"# loss-reason columns found: {', '.join(dict.fromkeys(loss_columns))} (read "
            "for no-decision losses)"
        )
    lines += [
        '# loss_reason = "Your_Loss_Reason__c"   # another column holding why deals were lost',
        "",
    ]
    lines += section(
        "stage",
        stage_lines,
        "stage names -> one of " + ", ".join(settings.stages) + " (your settings' stages)",
    )
    lines += section(
        "outcome",
        outcome_lines,
        "closing stages and loss reasons -> won, lost or no_decision (a loss to no decision is "
        "a leak of its own)",
    )
    lines += section(
        "activity_type",
        type_lines,
        "activity types -> email, call, meeting, demo, proposal, social, internal, admin, other"
        + (
            " (a Task with no type is read from TaskSubtype, EmailMessageId, call fields and "
            'its Subject; "" = "email" types the empty Type)'
            if fmt == "salesforce"
            else " (HubSpot's emails, calls and meetings are typed by their export)"
        ),
    )
    return "\n".join(lines).rstrip() + "\n"
