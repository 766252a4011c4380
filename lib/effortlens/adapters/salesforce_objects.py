"""Salesforce export objects as read: API field names, ids, essential columns, and what one
object tells about another's records (a deal's account, a contact's account, a user's zone).

Every header is renamed to its API field name whatever its case (Data Loader writes
``OWNERID``), every id column put in its 18-character form, and Salesforce's empty lookup
made null (:func:`normalised`). :func:`check_essential` names, in one message, every file
that lacks a column EffortLens cannot do without.

Examples
--------
>>> import polars as pl
>>> from pathlib import Path
>>> from effortlens.adapters.reading import Sheet
>>> sheet = Sheet(Path("Task.csv"), pl.DataFrame({"OWNERID": ["000000000000000AAA"]}))
>>> normalised(sheet).frame.rows(), normalised(sheet).frame.columns
([(None,)], ['OwnerId'])
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from effortlens.adapters.pieces import ADAPTER_REASONS, Rule
from effortlens.adapters.reading import Context, Sheet, header_key, read_header
from effortlens.adapters.salesforce_ids import EMPTY_IDS, normalise_ids
from effortlens.loading import DataError
from effortlens.loading.columns import boolean

ID_COLUMNS: tuple[str, ...] = (
    "Id",
    "OwnerId",
    "AccountId",
    "WhoId",
    "WhatId",
    "OpportunityId",
    "ManagerId",
    "UserRoleId",
    "ParentId",
    "ActivityId",
    "RelatedToId",
    "CreatedById",
    "ContactId",
    "ReplyToEmailMessageId",
    "ParentRoleId",
)


#: Columns each object cannot be read without (one group: any of its names). A missing
#: optional column (``IsDeleted``, ``TaskSubtype``, ``CallType``…) is simply not used.
ESSENTIAL: dict[str, tuple[tuple[str, ...], ...]] = {
    "Task": (("Id",), ("OwnerId",), ("CompletedDateTime", "CreatedDate", "ActivityDate")),
    "Event": (("Id",), ("OwnerId",), ("StartDateTime", "ActivityDateTime", "ActivityDate")),
    "EmailMessage": (("Id",), ("Incoming",), ("MessageDate", "CreatedDate")),
    "Opportunity": (("Id",), ("OwnerId",), ("StageName", "IsClosed"), ("CreatedDate",)),
    "OpportunityHistory": (("OpportunityId",), ("StageName",), ("CreatedDate",)),
    "OpportunityFieldHistory": (("OpportunityId",), ("Field",), ("NewValue",), ("CreatedDate",)),
    "User": (("Id",),),
    "UserRole": (("Id",), ("Name",)),
    "Contact": (("Id",),),
    "CurrencyType": (("IsoCode",), ("ConversionRate",)),
    "DatedConversionRate": (("IsoCode",), ("ConversionRate",), ("StartDate",)),
}


_WHY_ESSENTIAL = {
    "Id": "each record's id",
    "OwnerId": "who did it or owns it",
    "CreatedDate": "when it happened or was created",
    "StageName": "the deal's stage and outcome",
    "Incoming": "whether the buyer or the seller wrote the email",
}

#: Key prefixes of account and opportunity ids (a ``WhatId`` names either).
PREFIX_ACCOUNT, PREFIX_OPPORTUNITY = "001", "006"


def looked_up(expr: pl.Expr, table: dict[str, str]) -> pl.Expr:
    """``expr``'s values looked up in ``table`` (null where absent)."""
    return expr.replace_strict(table, default=None, return_dtype=pl.String)


def prefixed(expr: pl.Expr, prefix: str) -> pl.Expr:
    """``expr`` where its id starts with ``prefix`` (an object's key prefix), else null."""
    return pl.when(expr.str.starts_with(prefix)).then(expr)


def frames(sheets: list[Sheet]) -> pl.DataFrame | None:
    """The sheets' frames stacked (columns matched by name), or ``None`` without sheets."""
    return pl.concat([s.frame for s in sheets], how="diagonal_relaxed") if sheets else None


def pairs(frame: pl.DataFrame | None, key: str, value: str) -> dict[str, str]:
    """``key`` -> ``value`` over ``frame``'s rows (first value per key; ``{}`` without them)."""
    if frame is None or key not in frame.columns or value not in frame.columns:
        return {}
    rows = frame.select(key, value).drop_nulls().unique(subset=[key], keep="first")
    return dict(rows.iter_rows())


class Links:
    """What other objects tell about a record: a deal's account, a contact's account…"""

    def __init__(self, sheets: dict[str, list[Sheet]]):
        """Links read from the Opportunity, Contact and User sheets."""
        opps = frames(sheets.get("Opportunity", []))
        contacts = frames(sheets.get("Contact", []))
        self.opportunity_account = pairs(opps, "Id", "AccountId")
        self.contact_account = pairs(contacts, "Id", "AccountId")
        self.email_contact = {}
        if contacts is not None and "Email" in contacts.columns:
            self.email_contact = {k.lower(): v for k, v in pairs(contacts, "Email", "Id").items()}
        self.user_zones: dict[str, list[str]] = {}
        for user, zone in pairs(frames(sheets.get("User", [])), "Id", "TimeZoneSidKey").items():
            self.user_zones.setdefault(zone, []).append(user)

    def in_owner_zone(
        self, ts: pl.Expr, raw: list[str | None], owner: pl.Expr, ctx: Context
    ) -> pl.Expr:
        """``ts`` (ISO UTC text) with the times written without a zone (a date, a naive time)
        read in the owner's ``TimeZoneSidKey`` instead of the source zone: a task due
        2024-03-05 for a rep in Los Angeles is that day in Los Angeles."""
        present = [c for c in raw if c]
        zones = {z: ids for z, ids in self.user_zones.items() if z != ctx.timezone and is_zone(z)}
        if not present or not zones:
            return ts
        written = pl.coalesce([pl.col(c) for c in present])
        naive = ~written.str.contains(r"(Z|[+-]\d{2}:?\d{2})\s*$").fill_null(True)
        local = (
            ts.str.to_datetime(time_zone="UTC", strict=False)
            .dt.convert_time_zone(ctx.timezone)
            .dt.replace_time_zone(None)
        )
        out = None
        for zone, ids in zones.items():
            hit = naive & owner.is_in(ids).fill_null(False)
            there = (
                local.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
                .dt.convert_time_zone("UTC")
                .dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            )
            out = (pl.when(hit) if out is None else out.when(hit)).then(there)
        return out.otherwise(ts)

    def account(self, *, account: pl.Expr, what: pl.Expr, contact: pl.Expr) -> pl.Expr:
        """An activity's account: its own, the ``WhatId`` account, its deal's, its contact's."""
        return pl.coalesce(
            account,
            prefixed(what, PREFIX_ACCOUNT),
            looked_up(what, self.opportunity_account),
            looked_up(contact, self.contact_account),
        )

    def contact_by_email(self, address: pl.Expr) -> pl.Expr:
        """The contact whose e-mail is the first address of ``address``."""
        first = address.str.split(";").list.first().str.strip_chars().str.to_lowercase()
        return looked_up(first, self.email_contact)


def check_essential(sheets: dict[str, list[Sheet]]) -> None:
    """Raise one :class:`DataError` naming every file that lacks an essential column, the
    column, and the columns found. Optional columns may be missing: they are not used.

    Examples
    --------
    >>> from pathlib import Path
    >>> sheet = Sheet(Path("Task.csv"), pl.DataFrame({"Id": ["1"], "Subject": ["x"]}))
    >>> try:
    ...     check_essential({"Task": [sheet]})
    ... except DataError as err:
    ...     print(str(err).splitlines()[1][:60])
      - Task.csv has no OwnerId column (who did it or owns it).
    """
    problems = []
    for kind, kind_sheets in sheets.items():
        for sheet in kind_sheets:
            columns = [c for c in sheet.frame.columns if not c.startswith("__")]
            if sheet.path.is_file():  # the headers as written, before names were normalised
                columns = read_header(sheet.path)
            for group in ESSENTIAL.get(kind, ()):
                if sheet.column(*group) is None:
                    names = " or ".join(group)
                    why = _WHY_ESSENTIAL.get(group[0], "needed to read it")
                    problems.append(
                        f"  - {sheet.name} has no {names} column ({why}). "
                        f"Columns found: {', '.join(columns)}"
                    )
    if problems:
        raise DataError(
            "Salesforce export files lack a column EffortLens cannot do without; export "
            "these fields too (Data Loader: add them to the query) and load again:\n"
            + "\n".join(problems)
        )


#: API field names read here; headers are renamed to them whatever their case (Data Loader
#: writes ``OWNERID``), then every id column is put in its 18-character form.
API_FIELDS: tuple[str, ...] = (
    *ID_COLUMNS,
    "IsDeleted",
    "IsClosed",
    "IsWon",
    "IsActive",
    "IsChild",
    "IsBounced",
    "Incoming",
    "StageName",
    "Field",
    "OldValue",
    "NewValue",
    "Name",
    "FirstName",
    "LastName",
    "Title",
    "Division",
    "Department",
    "Country",
    "UserRole.Name",
    "Status",
    "Type",
    "TaskSubtype",
    "CallType",
    "CallDurationInSeconds",
    "DurationInMinutes",
    "Subject",
    "Headers",
    "FromAddress",
    "ToAddress",
    "Amount",
    "CurrencyIsoCode",
    "CloseDate",
    "CreatedDate",
    "LastModifiedDate",
    "ActivityDate",
    "ActivityDateTime",
    "StartDateTime",
    "EndDateTime",
    "CompletedDateTime",
    "MessageDate",
    "Email",
    "EmailMessageId",
    "CallObject",
    "CallDisposition",
    "TimeZoneSidKey",
    "IsoCode",
    "ConversionRate",
    "StartDate",
    "NextStartDate",
    "IsCorporate",
    "LastStageChangeDate",
)


def normalised(sheet: Sheet) -> Sheet:
    """``sheet`` with headers renamed to their API field names, ids in 18-character form
    and the empty lookup null."""
    canonical = {header_key(f): f for f in API_FIELDS}
    renames = {
        c: canonical[header_key(c)]
        for c in sheet.frame.columns
        if header_key(c) in canonical
        and c != canonical[header_key(c)]
        and canonical[header_key(c)] not in sheet.frame.columns
    }
    frame = sheet.frame.rename(renames)
    text = [c for c in frame.columns if not c.startswith("__") and frame[c].dtype == pl.String]
    # Salesforce's empty lookup (fifteen zeros) names no record: null in every column
    frame = frame.with_columns(
        pl.when(pl.col(c).str.to_uppercase().is_in(list(EMPTY_IDS)))
        .then(None)
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    )
    ids = [c for c in frame.columns if c in ID_COLUMNS or (c in text and c.endswith("Id"))]
    return Sheet(sheet.path, normalise_ids(frame, ids))


def deleted_rule(sheet: Sheet) -> Rule:
    """Deleted records (``IsDeleted``; an export without the column has none)."""
    return Rule(
        boolean(sheet.get("IsDeleted")).fill_null(False),
        "deleted_record",
        "IsDeleted",
        ADAPTER_REASONS["deleted_record"],
    )


def is_zone(value: str) -> bool:
    """Whether ``value`` names an IANA time zone."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
