"""HubSpot export files as read: the header names of ids, owners, times and associations,
and what one export tells about another's records (a contact's or a deal's company).

Headers are HubSpot's property labels (the UI's default) or internal names; each column is
looked for under both (:data:`ID`, :data:`OWNER`, :data:`TIMESTAMP`, :data:`CONTACTS`,
:data:`COMPANIES`, :data:`DEALS`).

Examples
--------
>>> import polars as pl
>>> pl.select(word(pl.lit("No show"))).item()
'noshow'
"""

from __future__ import annotations

import polars as pl

from effortlens.adapters.pieces import Rule
from effortlens.adapters.reading import Context, Sheet
from effortlens.adapters.times import parse_time_columns, time_field

#: Header names of a record's id.
ID = ("Record ID", "hs_object_id", "Deal ID", "dealId", "id", "Object ID")
#: Header names of a record's owner (an id with internal names, a name with labels).
OWNER = (
    "Deal owner",
    "hubspot_owner_id",
    "Activity assigned to",
    "HubSpot owner",
    "Email owner",
    "Call owner",
    "Meeting owner",
    "Owner",
    "Assigned to",
)
#: Header names of an activity's time.
TIMESTAMP = (
    "hs_timestamp",
    "Activity date",
    "Timestamp",
    "hs_createdate",
    "Create date",
    "Created at",
)
#: Header names of associated contacts, companies and deals.
CONTACTS = (
    "Associated Contact IDs",
    "Associated Contact ID",
    "associated_contact_ids",
    "associations.contacts",
    "Contact IDs",
    "Contact ID",
    "associated_contact",
    "Associated Contact",
)


COMPANIES = (
    "Associated Company IDs",
    "Associated Company ID",
    "Associated Company IDs (Primary)",
    "associated_company_ids",
    "associatedcompanyid",
    "associations.companies",
    "Company IDs",
    "Company ID",
    "Associated Company",
)


DEALS = (
    "Associated Deal IDs",
    "Associated Deal ID",
    "associated_deal_ids",
    "associations.deals",
    "Deal IDs",
    "Associated Deal",
)


def word(expr: pl.Expr) -> pl.Expr:
    """Enumeration values compared as compact lower-case words (``"No show"`` = ``NO_SHOW``)."""
    return expr.str.to_lowercase().str.replace_all(r"[^a-z0-9]", "")


def first_id(sheet: Sheet, candidates: tuple[str, ...], ctx: Context, what: str) -> pl.Expr:
    """The first id of ``candidates``' column (several ids in a cell: the first, noted)."""
    column = sheet.column(*candidates)
    if column is None:
        return pl.lit(None, dtype=pl.String)
    values = (
        pl.col(column).str.replace_all(r"[,|]", ";").str.split(";").list.first().str.strip_chars()
    )
    several = int(sheet.frame[column].str.contains(r"[;,|]").fill_null(False).sum())
    if several:
        ctx.note(
            f"{sheet.name}: {several} rows name several {what}s in {column}; the first is used"
        )
    return pl.when(values != "").then(values)


def pairs(frames: list[pl.DataFrame], key: str, value: str) -> dict[str, str]:
    """``key`` -> ``value`` over the rows of ``frames`` (first value per key)."""
    out: dict[str, str] = {}
    for frame in frames:
        if key in frame.columns and value in frame.columns:
            out |= dict(frame.select(key, value).drop_nulls().unique(key, keep="first").iter_rows())
    return out


class Links:
    """Companies of contacts (contacts export) and of deals (deals export)."""

    def __init__(self, sheets: dict[str, list[Sheet]], ctx: Context):
        """Links read from the contacts and deals exports."""
        self.contact_company: dict[str, str] = {}
        self.deal_company: dict[str, str] = {}
        for sheet in sheets.get("contacts", []):
            frame = sheet.frame.select(
                first_id(sheet, ID, ctx, "id").alias("k"),
                first_id(sheet, COMPANIES, ctx, "company").alias("v"),
            )
            self.contact_company |= pairs([frame], "k", "v")
        for sheet in sheets.get("deals", []):
            frame = sheet.frame.select(
                first_id(sheet, ID, ctx, "id").alias("k"),
                first_id(sheet, COMPANIES, ctx, "company").alias("v"),
            )
            self.deal_company |= pairs([frame], "k", "v")

    def fields(self, sheet: Sheet, ctx: Context) -> dict[str, pl.Expr]:
        """An activity's company, deal and contact: its company, else its contact's, else its
        deal's."""
        contact = first_id(sheet, CONTACTS, ctx, "contact")
        deal = first_id(sheet, DEALS, ctx, "deal")
        company = pl.coalesce(
            first_id(sheet, COMPANIES, ctx, "company"),
            contact.replace_strict(self.contact_company, default=None, return_dtype=pl.String),
            deal.replace_strict(self.deal_company, default=None, return_dtype=pl.String),
        )
        return {"account_id": company, "opportunity_id": deal, "contact_id": contact}


def timed(sheet: Sheet, ctx: Context, *candidates: str) -> tuple[Sheet, pl.Expr, Rule]:
    """``sheet`` with its time column parsed, the time, and the rule for unreadable times."""
    column = sheet.column(*candidates)
    sheet = parse_time_columns(sheet, [column], ctx)
    ts, bad, where = time_field(column)
    if column is None:
        ctx.note(f"{sheet.name}: no timestamp column (looked for {', '.join(candidates)})")
    return sheet, ts, Rule(bad.is_not_null(), "bad_timestamp", where, bad)
