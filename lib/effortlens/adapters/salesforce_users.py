"""Salesforce reps: ``User`` records (with ``UserRole`` names), their teams, managers, time
zones and exits, as described in :mod:`effortlens.adapters.salesforce`.

Examples
--------
>>> from effortlens.adapters import load_any
>>> # load_any("salesforce_export/")  # reads User.csv through read_users
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from effortlens.adapters.matching import merge_spellings
from effortlens.adapters.pieces import Piece, make_piece, routing_note
from effortlens.adapters.reading import Context, Sheet
from effortlens.adapters.salesforce_objects import frames, looked_up, pairs
from effortlens.adapters.times import parse_time_columns
from effortlens.loading.columns import boolean
from effortlens.loading.report import counted

_NOT_SELLER_NOTE = "not used: own no task, event, deal or email (admins, integration users)"


def _zones(values: pl.Series | None, ctx: Context, *, where: str) -> dict[str, str]:
    """``TimeZoneSidKey`` values that are IANA zones (Salesforce's are), to themselves."""
    if values is None:
        ctx.note(
            f"{where}: no TimeZoneSidKey column; every rep's local day and hour are in the "
            f"settings' zone {ctx.settings.timezone}"
        )
        return {}
    out, bad = {}, []
    for value in values.drop_nulls().unique().to_list():
        try:
            ZoneInfo(value)
            out[value] = value
        except (ZoneInfoNotFoundError, ValueError):
            bad.append(value)
    used = len(out)
    ctx.note(
        f"{where}: reps' time zones from TimeZoneSidKey ({counted(used, 'zone')}); local day, "
        "week and hour of their activities are in their own zone"
        + (
            f"; not a time zone, so the settings' zone is used: {', '.join(sorted(bad))}"
            if bad
            else ""
        )
    )
    return out


def read_users(sheets: dict[str, list[Sheet]], ctx: Context, pieces: list[Piece]) -> list[Piece]:
    """Reps from the User sheets: the owners of ``pieces`` and their managers."""
    roles = pairs(frames(sheets.get("UserRole", [])), "Id", "Name")
    out = []
    owners: set[str] = set()
    for piece in pieces:
        if "rep_id" in piece.frame.columns:
            owners |= set(piece.frame["rep_id"].drop_nulls().to_list())
    users = frames(sheets["User"])
    managers = pairs(users, "Id", "ManagerId")
    sellers = set(owners)
    frontier = set(owners)
    while frontier:
        frontier = {managers[u] for u in frontier if u in managers} - sellers
        sellers |= frontier
    for sheet in sheets["User"]:
        modified, hire = (
            sheet.column("LastModifiedDate"),
            sheet.column("Hire_Date__c", "HireDate__c", "Start_Date__c"),
        )
        exit_column = sheet.column("Exit_Date__c", "Termination_Date__c", "Exit_Date")
        sheet = parse_time_columns(sheet, [modified, hire, exit_column], ctx, as_date=True)
        frame = sheet.frame
        zones = _zones(
            frame[sheet.column("TimeZoneSidKey")] if sheet.column("TimeZoneSidKey") else None,
            ctx,
            where=sheet.name,
        )
        seller = frame["Id"].is_in(list(sellers))
        inactive = boolean(sheet.get("IsActive")).fill_null(False).not_()
        name = pl.coalesce(
            sheet.get("Name"),
            pl.concat_str(
                [sheet.get("FirstName"), sheet.get("LastName")], separator=" ", ignore_nulls=True
            ),
        )
        role_name = pl.coalesce(
            sheet.get("UserRole.Name"),
            looked_up(sheet.get("UserRoleId"), roles),
            sheet.get("Department"),
        )
        exit_date = pl.when(inactive).then(
            pl.coalesce(
                pl.col(f"__t:{exit_column}") if exit_column else pl.lit(None, dtype=pl.String),
                pl.col(f"__t:{modified}") if modified else pl.lit(None, dtype=pl.String),
            )
        )
        categories = {}
        for what, expr in {
            "team": role_name,
            "role": sheet.get("Title"),
            "segment": pl.coalesce(sheet.get("Segment__c"), sheet.get("Division")),
            "region": pl.coalesce(sheet.get("Region__c"), sheet.get("Country")),
        }.items():
            values = frame.filter(seller).select(expr.alias(what)).to_series()
            merged, notes = merge_spellings(values, what=what, where=sheet.name)
            ctx.note(*notes)
            lookup = dict(zip(values.to_list(), merged.to_list(), strict=True))
            categories[what] = expr.replace_strict(
                {k: v for k, v in lookup.items() if k is not None},
                default=expr,
                return_dtype=pl.String,
            )
        piece = make_piece(
            "reps",
            sheet,
            {
                "rep_id": pl.col("Id"),
                "rep_name": name,
                **categories,
                "manager_id": pl.when(pl.col("ManagerId").is_in(list(sellers))).then(
                    pl.col("ManagerId")
                )
                if "ManagerId" in frame.columns
                else pl.lit(None),
                "hire_date": pl.col(f"__t:{hire}") if hire else pl.lit(None),
                "timezone": looked_up(sheet.get("TimeZoneSidKey"), zones),
                "exit_date": exit_date,
                "exit_reason": looked_up(
                    sheet.get("Exit_Reason__c").str.to_lowercase(),
                    {"voluntary": "voluntary", "involuntary": "involuntary"},
                ),
            },
            where=seller,
        )
        out.append(piece)
        n_left = frame.filter(seller & inactive).height
        ctx.note(
            routing_note(
                sheet.name,
                frame.height,
                {
                    "reps": piece.frame.height,
                    _NOT_SELLER_NOTE: frame.height - piece.frame.height,
                },
            )
        )
        if n_left:
            source = "Exit_Date__c" if exit_column else "the date of LastModifiedDate"
            ctx.note(
                f"{sheet.name}: {n_left} inactive users kept as reps who left; exit date "
                f"from {source} (deactivation is normally a user's last edit), exit reason "
                "unknown unless Exit_Reason__c is given"
            )
    return out
