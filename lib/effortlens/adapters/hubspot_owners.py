"""HubSpot reps: the owners (users) export, with teams and archived owners who left, and
the e-mail addresses that name an owner elsewhere.

Examples
--------
>>> from effortlens.adapters import load_any
>>> # load_any("hubspot_exports/")  # reads the owners export through read_owners
"""

from __future__ import annotations

import polars as pl

from effortlens.adapters.hubspot_objects import word
from effortlens.adapters.matching import merge_spellings
from effortlens.adapters.pieces import Piece, make_piece, routing_note
from effortlens.adapters.reading import Context, Sheet
from effortlens.adapters.times import parse_time_columns
from effortlens.loading.columns import boolean


def read_owners(sheets: list[Sheet], ctx: Context) -> tuple[list[Piece], dict[str, str]]:
    """The owners as reps, and the e-mail addresses (aliases) that name each."""
    pieces = []
    aliases: dict[str, str] = {}
    for sheet in sheets:
        updated = sheet.column("updatedAt", "Last updated", "Updated at", "Last modified")
        sheet = parse_time_columns(sheet, [updated], ctx, as_date=True)
        first = sheet.get("firstName", "First Name", "firstname")
        last = sheet.get("lastName", "Last Name", "lastname")
        name = pl.concat_str([first, last], separator=" ", ignore_nulls=True)
        email = sheet.get("email", "Email")
        rep_id = pl.coalesce(
            sheet.get("Owner ID", "ownerId", "id", "hubspot_owner_id", "User ID"), email
        )
        archived = pl.coalesce(
            boolean(sheet.get("archived", "Archived", "Deactivated")),
            ~boolean(sheet.get("active", "Active")),
            word(sheet.get("Status", "User status")).is_in(["deactivated", "inactive"]),
        ).fill_null(False)
        frame = sheet.frame.with_columns(
            rep_id.alias("__id"), name.alias("__name"), email.alias("__email")
        )
        for alias_column in ("__name", "__email"):
            aliases |= {
                a: i for a, i in frame.select(alias_column, "__id").drop_nulls().iter_rows()
            }
        team_values = frame.with_columns(  # with_columns: no team column is one null per row
            sheet.get("teams", "Team", "Primary team", "Primary Team")
            .str.split(";")
            .list.first()
            .alias("__team")
        ).get_column("__team")
        teams, notes = merge_spellings(team_values, what="team", where=sheet.name)
        ctx.note(*notes)
        frame = frame.with_columns(teams.alias("__team"))
        piece = make_piece(
            "reps",
            Sheet(sheet.path, frame),
            {
                "rep_id": pl.col("__id"),
                "rep_name": pl.col("__name"),
                "team": pl.col("__team"),
                "role": sheet.get("Role", "role", "Job title", "jobtitle"),
                "exit_date": pl.when(archived).then(
                    pl.col(f"__t:{updated}") if updated else pl.lit(None, dtype=pl.String)
                ),
            },
        )
        pieces.append(piece)
        n_left = frame.filter(archived).height
        if n_left:
            ctx.note(
                f"{sheet.name}: {n_left} archived owners kept as reps who left; exit date "
                f"from {updated or '(no update date: unknown)'}, an approximation"
            )
        ctx.note(routing_note(sheet.name, frame.height, {"reps": piece.frame.height}))
    return pieces, aliases
