"""What a load tells the user: per-table counts, quarantine reasons, notes, and load errors.

Examples
--------
>>> r = LoadReport(tables=(TableReport("reps", "reps.csv", 3, 2, {"missing_id": 1}),))
>>> r.to_dict()["reps"]
{'read': 3, 'loaded': 2, 'quarantined': {'missing_id': 1}, 'file': 'reps.csv', 'missing': False}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl


class DataError(Exception):
    """The input cannot be loaded at all (missing file or column, unreadable file).

    The message names the file, the column and what was found instead.
    """


#: Reason codes, in the order the rules are checked; the first failing rule wins.
REASONS: tuple[str, ...] = (
    "missing_id",
    "bad_timestamp",
    "bad_value",
    "negative_duration",
    "future_timestamp",
    "unknown_stage",
    "no_account",
    "duplicate_id",
    "unknown_rep",
    "unknown_reference",
)

#: One row per quarantined input row.
QUARANTINE_SCHEMA = pl.Schema(
    {
        "table": pl.String(),
        "file": pl.String(),
        "row": pl.UInt32(),
        "column": pl.String(),
        "reason": pl.String(),
        "message": pl.String(),
        "raw": pl.String(),
    }
)


def counted(n: int, noun: str) -> str:
    """``n`` things in words for the report, with thousands separators and a plural.

    Parameters
    ----------
    n
        How many.
    noun
        The singular noun; an ``s`` is added unless ``n`` is 1.

    Examples
    --------
    >>> counted(1, "row"), counted(2_000, "blank line")
    ('1 row', '2,000 blank lines')
    """
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class TableReport:
    """Counts for one canonical table. ``loaded + sum(quarantined.values()) == read``."""

    table: str
    file: str | None
    read: int
    loaded: int
    quarantined: dict[str, int] = field(default_factory=dict)
    missing: bool = False

    @property
    def quarantined_total(self) -> int:
        """All quarantined rows of the table, whatever their reason."""
        return sum(self.quarantined.values())


@dataclass(frozen=True)
class LoadReport:
    """The load report: one :class:`TableReport` per canonical table, and notes.

    Attributes
    ----------
    tables
        In canonical table order.
    notes
        Sentences on what was mapped, assumed, filled in or ignored.
    """

    tables: tuple[TableReport, ...]
    notes: tuple[str, ...] = ()

    def __getitem__(self, table: str) -> TableReport:
        """The :class:`TableReport` of ``table``; ``KeyError`` when it is not reported."""
        for entry in self.tables:
            if entry.table == table:
                return entry
        raise KeyError(table)

    def to_dict(self) -> dict[str, dict]:
        """``{table: {"read", "loaded", "quarantined": {reason: n}, "file", "missing"}}``."""
        return {
            t.table: {
                "read": t.read,
                "loaded": t.loaded,
                "quarantined": dict(t.quarantined),
                "file": t.file,
                "missing": t.missing,
            }
            for t in self.tables
        }

    def to_frame(self) -> pl.DataFrame:
        """One row per table: table, file, read, loaded, quarantined, missing."""
        return pl.DataFrame(
            {
                "table": [t.table for t in self.tables],
                "file": [t.file for t in self.tables],
                "read": [t.read for t in self.tables],
                "loaded": [t.loaded for t in self.tables],
                "quarantined": [t.quarantined_total for t in self.tables],
                "missing": [t.missing for t in self.tables],
            },
            schema={
                "table": pl.String,
                "file": pl.String,
                "read": pl.Int64,
                "loaded": pl.Int64,
                "quarantined": pl.Int64,
                "missing": pl.Boolean,
            },
        )

    def to_text(self) -> str:
        """A plain-text table for the terminal, notes below it."""
        head = ("table", "file", "read", "loaded", "quarantined")
        rows = []
        for t in self.tables:
            if t.missing:
                rows.append((t.table, "(not provided)", "", "", ""))
                continue
            why = ", ".join(f"{r} {n:,}" for r, n in t.quarantined.items() if n)
            quarantined = f"{t.quarantined_total:,}" + (f" ({why})" if why else "")
            rows.append((t.table, t.file or "", f"{t.read:,}", f"{t.loaded:,}", quarantined))
        widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
        right = (False, False, True, True, False)

        def line(cells):
            return "  ".join(
                c.rjust(w) if r else c.ljust(w)
                for c, w, r in zip(cells, widths, right, strict=True)
            ).rstrip()

        out = [line(head), line(["-" * w for w in widths]), *map(line, rows)]
        if self.notes:
            out += ["", "notes:", *(f"- {n}" for n in self.notes)]
        return "\n".join(out)
