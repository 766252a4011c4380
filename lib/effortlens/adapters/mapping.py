"""A mapping: how to read any CSV export, written by the user in TOML.

Each canonical table is a TOML table naming its ``file`` (relative to the data folder) and,
for each canonical field, the column that holds it (or a constant, or a column with its own
date format). Value maps translate the words in the files to EffortLens's: stage names in
any language to the settings' stages, outcome labels to open/won/lost/no_decision, activity
and buyer-action types to canonical ones.

.. code-block:: toml

    [source]
    timezone = "Europe/Berlin"     # zone of naive times (default: the settings')
    date_format = "D/M/YYYY"       # auto, M/D/YYYY, D/M/YYYY, YYYY-MM-DD, D.M.YYYY or %d.%m.%Y
    decimal = ","                  # auto, "." or ","
    currency = "EUR"               # currency of amounts that name none

    [opportunities]                # a pipeline-only export is enough
    file = "pipeline.csv"
    opportunity_id = "Deal ID"     # leave out: each row is one deal (id from its content)
    rep_id = "Owner"
    created_ts = "Created"
    close_ts = { column = "Closed", format = "%d.%m.%Y" }
    amount = "Value"
    stage = "Phase"                # current stage, or the outcome label once closed
    outcome = "Status"             # leave out to read it from the stage
    stage_dates = { discovery = "Date qualified", proposal = "Offer sent" }
    loss_reason = "Why lost"       # "No Decision / Non-Responsive" makes a no-decision loss

    [[activities]]                 # [[...]] when several files feed one table
    file = "calls.csv"
    activity_type = { value = "call" }
    ts = "Date"
    rep_id = "User"

    [[activities]]                 # one activity log, both directions: the seller's rows…
    file = "log.csv"
    where = { Direction = "OUTBOUND" }
    ts = "Date"
    rep_id = "Agent"
    activity_type = "Type"

    [[buyer_actions]]              # …and the buyer's (any of the conditions: a list)
    file = "log.csv"
    where = [{ Direction = "INBOUND" }, { Status = ["REPLIED", "CONNECTED"] }]
    ts = "Date"
    account_id = "Account"
    action_type = "Type"           # through [values.action_type]

    [values.stage]
    "Qualifizierung" = "discovery"
    [values.outcome]
    "Gewonnen" = "won"
    "Keine Entscheidung" = "no_decision"
    [values.action_type]
    "EMAIL" = "reply"
    "MEETING" = "meeting_held"

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> p = Path(tempfile.mkdtemp()) / "mapping.toml"
>>> _ = p.write_text('[opportunities]\\nfile = "d.csv"\\nrep_id = "Owner"\\n'
...                  'created_ts = "Created"\\nstage = "Stage"\\n')
>>> load_mapping(p).tables[0].fields["rep_id"].column
'Owner'
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from effortlens.adapters.reading import Context, find_column, read_header
from effortlens.loading.paths import UnsafePath, check_relative, inside
from effortlens.schema import OUTCOMES, TABLES
from effortlens.settings import Settings

#: Fields a mapping may give beyond the canonical columns.
EXTRA_FIELDS: dict[str, dict[str, str]] = {
    "opportunities": {
        "stage": "the deal's current stage (or its outcome label once closed)",
        "stage_date": "when the deal entered its current stage",
        "stage_dates": "a table: stage -> column holding the date the deal entered it",
        "loss_reason": "why a lost deal was lost; no-decision labels make it a no_decision",
    },
}
#: Keys every table entry may have besides its fields.
ENTRY_KEYS: tuple[str, ...] = ("file", "where")
#: Canonical fields a mapping may leave out although the table requires them.
OPTIONAL_KEYS: dict[str, tuple[str, ...]] = {
    "opportunities": ("opportunity_id", "outcome", "created_ts"),
    "activities": ("activity_id",),
    "buyer_actions": ("action_id",),
}
#: Date formats by name; anything with a % is a strftime format.
DATE_FORMATS: dict[str, bool | None] = {
    "auto": None,
    "iso": None,
    "yyyy-mm-dd": None,
    "m/d/yyyy": False,
    "mm/dd/yyyy": False,
    "d/m/yyyy": True,
    "dd/mm/yyyy": True,
    "d.m.yyyy": True,
    "dd.mm.yyyy": True,
}
VALUE_MAPS: tuple[str, ...] = ("stage", "outcome", "activity_type", "action_type")
SOURCE_KEYS: tuple[str, ...] = (
    "format",
    "timezone",
    "date_format",
    "decimal",
    "currency",
    "loss_reason",
)


class MappingError(ValueError):
    """A mapping file EffortLens cannot use; the message names the file and the key."""


@dataclass(frozen=True)
class FieldSpec:
    """Where one canonical field comes from: a ``column``, or a constant ``value``."""

    column: str | None = None
    value: str | None = None
    date_format: str | None = None


@dataclass(frozen=True)
class Condition:
    """Rows whose ``column`` holds one of ``values`` (case and spacing ignored), or with
    ``negate`` none of them."""

    column: str
    values: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True)
class TableSpec:
    """One file feeding one canonical table.

    ``where`` keeps the rows that meet every condition of at least one of its groups (empty:
    every row), so that one file can feed several tables.
    """

    table: str
    file: str
    fields: dict[str, FieldSpec]
    stage_dates: dict[str, str] = field(default_factory=dict)
    where: tuple[tuple[Condition, ...], ...] = ()

    def column(self, name: str) -> str | None:
        """The source column the mapping gives for the canonical field ``name``, or ``None``."""
        spec = self.fields.get(name)
        return spec.column if spec else None


@dataclass(frozen=True)
class Mapping:
    """A validated mapping (build it with :func:`load_mapping`).

    Attributes
    ----------
    path
        The mapping file.
    format
        ``None`` for a generic mapping; ``"salesforce"`` or ``"hubspot"`` when the mapping only
        adds value maps and source conventions to an export of that CRM.
    timezone, date_format, decimal, currency
        Source conventions (``None``: the settings' zone, automatic date order and decimal
        mark, the settings' currency).
    tables
        One :class:`TableSpec` per file and table.
    values
        Value maps: ``{"stage": {...}, "outcome": {...}, "activity_type": {...},
        "action_type": {...}}``.
    """

    path: Path | None
    format: str | None = None
    timezone: str | None = None
    date_format: str | None = None
    decimal: str | None = None
    currency: str | None = None
    tables: tuple[TableSpec, ...] = ()
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    loss_reason: tuple[str, ...] = ()

    def context(self, settings: Settings) -> Context:
        """The reading context for these conventions and value maps, checked against
        ``settings`` (stage targets must be among the settings' stages)."""
        where = str(self.path) if self.path else "mapping"
        for raw, target in self.values.get("stage", {}).items():
            if target not in settings.stages:
                raise MappingError(
                    f"{where}: values.stage.{_quote(raw)} must be one of the settings' stages "
                    f"{list(settings.stages)}, got {target!r}"
                )
        for raw, target in self.values.get("action_type", {}).items():
            if target not in settings.action_weights:
                raise MappingError(
                    f"{where}: values.action_type.{_quote(raw)} must be one of "
                    f"{list(settings.action_weights)}, got {target!r}"
                )
        fmt = (self.date_format or "auto").lower()
        return Context(
            settings=settings,
            timezone=self.timezone or settings.timezone,
            day_first=DATE_FORMATS.get(fmt),
            time_format=_strftime(self.date_format) if "%" in (self.date_format or "") else None,
            decimal=self.decimal,
            values={k: dict(v) for k, v in self.values.items()},
            loss_reason=self.loss_reason,
        )


def _quote(key: str) -> str:
    return key if key.replace("_", "").isalnum() else f'"{key}"'


def _strftime(text: str | None) -> str | None:
    return text if text and "%" in text else None


def _fail(where: str, key: str, problem: str) -> MappingError:
    return MappingError(f"{where}: {key} {problem}")


def _string(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, key, f"must be a non-empty text, got {value!r}")
    return value.strip()


def _field(value: Any, where: str, key: str) -> FieldSpec:
    if isinstance(value, str):
        return FieldSpec(column=_string(value, where, key))
    if isinstance(value, dict):
        unknown = set(value) - {"column", "value", "format"}
        if unknown:
            raise _fail(
                where, key, f"has unknown keys {sorted(unknown)}; use column, value, format"
            )
        if ("column" in value) == ("value" in value):
            raise _fail(where, key, 'needs either column = "..." or value = "..."')
        if "value" in value:
            return FieldSpec(value=_string(value["value"], where, f"{key}.value"))
        fmt = value.get("format")
        if fmt is not None:
            fmt = _date_format(fmt, where, f"{key}.format")
        return FieldSpec(column=_string(value["column"], where, f"{key}.column"), date_format=fmt)
    raise _fail(
        where,
        key,
        f'must be a column name, or {{ column = "..." }} / {{ value = "..." }}, got {value!r}',
    )


def _date_format(value: Any, where: str, key: str) -> str:
    text = _string(value, where, key)
    if "%" not in text and text.lower() not in DATE_FORMATS:
        raise _fail(
            where,
            key,
            f"must be one of {sorted(DATE_FORMATS)} or a strftime format "
            f"such as '%d.%m.%Y %H:%M', got {text!r}",
        )
    return text


def _table(name: str, body: Any, where: str) -> TableSpec:
    if not isinstance(body, dict):
        raise _fail(where, f"[{name}]", "must be a table of field = column lines")
    key = f"[{name}]"
    if "file" not in body:
        raise _fail(where, key, 'needs file = "..." (the export file, relative to the data folder)')
    file = _string(body["file"], where, f"{name}.file")
    try:
        check_relative(file)  # no absolute path, no "..": refused before any file is touched
    except UnsafePath as err:
        raise _fail(where, f"{name}.file", f"= {err}") from None
    allowed = set(TABLES[name].columns) | set(EXTRA_FIELDS.get(name, {}))
    fields: dict[str, FieldSpec] = {}
    stage_dates: dict[str, str] = {}
    conditions = _where(body.get("where"), where, f"{name}.where")
    for field_name, value in body.items():
        if field_name in ENTRY_KEYS:
            continue
        if field_name not in allowed:
            hint = difflib.get_close_matches(field_name, sorted(allowed), n=1)
            raise _fail(
                where,
                f"{name}.{field_name}",
                "is not a field of "
                + name
                + (f"; did you mean {hint[0]}?" if hint else "")
                + f" Fields: {', '.join(sorted(allowed))} (and file, where)",
            )
        if field_name == "stage_dates":
            if not isinstance(value, dict) or not value:
                raise _fail(where, f"{name}.stage_dates", 'must be a table stage = "column"')
            stage_dates = {
                str(s): _string(c, where, f"{name}.stage_dates.{s}") for s, c in value.items()
            }
            continue
        fields[field_name] = _field(value, where, f"{name}.{field_name}")
    optional = set(OPTIONAL_KEYS.get(name, ()))
    missing = [c for c in TABLES[name].required if c not in fields and c not in optional]
    if name == "opportunities" and "outcome" not in fields and "stage" not in fields:
        missing.append("outcome or stage")
    if missing:
        described = "; ".join(
            f"{m} ({TABLES[name].description.get(m, 'the deal stage or outcome label')})"
            for m in missing
        )
        raise _fail(where, f"[{name}]", f"is missing required field(s): {described}")
    return TableSpec(name, file, fields, stage_dates, conditions)


def _texts(value: Any, where: str, key: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str | int | float | bool) for v in values):
        raise _fail(where, key, f"must be a value or a list of values, got {value!r}")
    return tuple(str(v).lower() if isinstance(v, bool) else str(v) for v in values)


def _where(value: Any, where: str, key: str) -> tuple[tuple[Condition, ...], ...]:
    """``where = { Column = "value" }``, ``{ Column = ["a", "b"] }``, ``{ Column = { not =
    "x" } }``; a list of such tables keeps rows meeting any of them."""
    if value is None:
        return ()
    groups = value if isinstance(value, list) else [value]
    if not groups or not all(isinstance(g, dict) and g for g in groups):
        raise _fail(
            where,
            key,
            f'must be a table such as {{ Direction = "INBOUND" }} or a list of them, got {value!r}',
        )
    out = []
    for group in groups:
        conditions = []
        for column, wanted in group.items():
            if isinstance(wanted, dict):
                if set(wanted) != {"not"}:
                    raise _fail(where, f"{key}.{column}", "takes a value, a list, or { not = ... }")
                conditions.append(
                    Condition(column, _texts(wanted["not"], where, f"{key}.{column}"), True)
                )
            else:
                conditions.append(Condition(column, _texts(wanted, where, f"{key}.{column}")))
        out.append(tuple(conditions))
    return tuple(out)


def parse_mapping(
    data: dict[str, Any], *, where: str = "mapping", path: Path | None = None
) -> Mapping:
    """Validate a mapping already read from TOML (see :func:`load_mapping`)."""
    allowed = {"source", "values", *TABLES}
    for key in data:
        if key not in allowed:
            hint = difflib.get_close_matches(key, sorted(allowed), n=1)
            raise _fail(
                where,
                f"[{key}]",
                "is not a section of a mapping"
                + (f"; did you mean [{hint[0]}]?" if hint else "")
                + f" Sections: {', '.join(sorted(allowed))}",
            )
    source = data.get("source", {})
    if not isinstance(source, dict):
        raise _fail(where, "[source]", "must be a table")
    for key in source:
        if key not in SOURCE_KEYS:
            raise _fail(where, f"source.{key}", f"is not known; keys: {', '.join(SOURCE_KEYS)}")
    fmt = source.get("format")
    if fmt is not None and fmt not in ("salesforce", "hubspot", "mapping"):
        raise _fail(where, "source.format", f"must be salesforce, hubspot or mapping, got {fmt!r}")
    timezone = source.get("timezone")
    if timezone is not None:
        try:
            ZoneInfo(_string(timezone, where, "source.timezone"))
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise _fail(
                where,
                "source.timezone",
                f"must be an IANA time zone such as 'Europe/Paris', got {timezone!r}",
            ) from err
    date_format = source.get("date_format")
    if date_format is not None:
        date_format = _date_format(date_format, where, "source.date_format")
    decimal = source.get("decimal")
    if decimal not in (None, "auto", ".", ","):
        raise _fail(where, "source.decimal", f'must be "auto", "." or ",", got {decimal!r}')
    loss_reason = source.get("loss_reason", ())
    if isinstance(loss_reason, str):
        loss_reason = (loss_reason,)
    if not isinstance(loss_reason, list | tuple) or not all(
        isinstance(c, str) and c.strip() for c in loss_reason
    ):
        raise _fail(
            where,
            "source.loss_reason",
            f"must be a column name or a list of them, got {loss_reason!r}",
        )
    currency = source.get("currency")
    if currency is not None and not (
        isinstance(currency, str) and len(currency) == 3 and currency.isalpha()
    ):
        raise _fail(
            where, "source.currency", f"must be a three-letter code such as 'EUR', got {currency!r}"
        )

    tables: list[TableSpec] = []
    for name in TABLES:
        if name not in data:
            continue
        bodies = data[name] if isinstance(data[name], list) else [data[name]]
        tables += [_table(name, body, where) for body in bodies]

    values: dict[str, dict[str, str]] = {}
    raw_values = data.get("values", {})
    if not isinstance(raw_values, dict):
        raise _fail(where, "[values]", "must be a table")
    empty: list[str] = []
    for kind, entries in raw_values.items():
        if kind not in VALUE_MAPS:
            raise _fail(
                where, f"[values.{kind}]", f"is not a value map; maps: {', '.join(VALUE_MAPS)}"
            )
        if not isinstance(entries, dict):
            raise _fail(where, f"[values.{kind}]", 'must be a table of "raw value" = "target"')
        out = {}
        for raw, target in entries.items():
            if target == "":
                empty.append(f"values.{kind}.{_quote(raw)}")
                continue
            if not isinstance(target, str):
                raise _fail(where, f"values.{kind}.{_quote(raw)}", f"must be text, got {target!r}")
            if kind == "outcome" and target not in OUTCOMES:
                raise _fail(
                    where,
                    f"values.outcome.{_quote(raw)}",
                    f"must be one of {list(OUTCOMES)}, got {target!r}",
                )
            if kind == "activity_type":
                from effortlens.settings import ACTIVITY_TYPES

                if target not in ACTIVITY_TYPES:
                    raise _fail(
                        where,
                        f"values.activity_type.{_quote(raw)}",
                        f"must be one of {list(ACTIVITY_TYPES)}, got {target!r}",
                    )
            out[raw] = target
        values[kind] = out
    if empty:
        raise MappingError(
            f"{where}: {len(empty)} value(s) still to fill in (an empty target): "
            + ", ".join(empty[:8])
            + (" …" if len(empty) > 8 else "")
            + "; give each a target, or delete the line"
        )
    return Mapping(
        path=path,
        format=None if fmt == "mapping" else fmt,
        timezone=timezone,
        date_format=date_format,
        decimal=None if decimal in (None, "auto") else decimal,
        currency=currency.upper() if currency else None,
        tables=tuple(tables),
        values=values,
        loss_reason=tuple(c.strip() for c in loss_reason),
    )


def load_mapping(path: str | Path, *, folder: str | Path | None = None, settings=None) -> Mapping:
    """Read and validate a mapping file.

    Parameters
    ----------
    path
        The TOML file.
    folder
        The data folder; when given, every ``file`` must exist there and every column named
        must be in that file's header.
    settings
        When given, stage and action-type targets must exist in the settings.

    Raises
    ------
    MappingError
        Naming the file, the key, and what was expected (with the columns found when a column
        is not there, and the closest one).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "mapping.toml"
    >>> _ = p.write_text('[opportunities]\\nfile = "d.csv"\\nrep_id = "Owner"\\n')
    >>> try:
    ...     load_mapping(p)
    ... except MappingError as err:
    ...     print(str(err).split(": ", 1)[1][:62])
    [opportunities] is missing required field(s): outcome or stage
    """
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"mapping file not found: {path}")
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise MappingError(f"{path}: not valid TOML ({err})") from err
    mapping = parse_mapping(data, where=str(path), path=path)
    if settings is not None:
        mapping.context(settings)
    if folder is not None:
        check_columns(mapping, Path(folder))
    return mapping


def check_columns(mapping: Mapping, folder: Path) -> None:
    """Raise :class:`MappingError` when a mapped file or column is not in ``folder``."""
    where = str(mapping.path) if mapping.path else "mapping"
    for spec in mapping.tables:
        try:
            inside(folder, spec.file)  # symlinks out of the data folder are refused too
        except UnsafePath as err:
            raise _fail(where, f"{spec.table}.file", f"= {err}") from None
        path = folder / spec.file
        if not path.is_file():
            present = sorted(p.name for p in folder.iterdir() if p.is_file())
            raise _fail(
                where,
                f"{spec.table}.file",
                f"names {spec.file!r}, which is not in "
                f"{folder}; files there: {', '.join(present) or '(none)'}",
            )
        headers = read_header(path)
        named = [(k, f.column) for k, f in spec.fields.items() if f.column]
        named += [(f"stage_dates.{s}", c) for s, c in spec.stage_dates.items()]
        named += [(f"where.{c.column}", c.column) for group in spec.where for c in group]
        for key, column in named:
            if find_column(headers, column) is None:
                hint = difflib.get_close_matches(column, headers, n=1, cutoff=0.6)
                raise _fail(
                    where,
                    f"{spec.table}.{key}",
                    f"names column {column!r}, which is not in {spec.file}"
                    + (f"; did you mean {hint[0]!r}?" if hint else "")
                    + f" Columns: {', '.join(headers)}",
                )
