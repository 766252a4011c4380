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


class LoadBug(DataError):
    """EffortLens itself failed on an input (a Polars panic, an unexpected error): a bug.

    Raised instead of the raw error so that every entry point shows one message naming the
    file that triggered it, and the page meant to explain bad data never goes blank.

    Examples
    --------
    >>> str(LoadBug.of("reps.csv", RuntimeError("boom")))[:52]
    'reps.csv: EffortLens failed on this file (a bug: Run'
    """

    @classmethod
    def of(cls, file: str, err: BaseException) -> LoadBug:
        """The bug of ``err`` raised while loading ``file``, in words."""
        first = (str(err).strip().splitlines() or [""])[0][:300]
        return cls(
            f"{file}: EffortLens failed on this file (a bug: {type(err).__name__}: {first}). "
            "Please report it with the file; other files may load on their own."
        )


#: Reason codes, in the order the rules are checked; the first failing rule wins.
#: ``merged_lines`` and ``extra_fields`` are found while reading a text file, before the
#: rules: several lines read as one row (an unbalanced quote), a line with more fields than
#: the header.
REASONS: tuple[str, ...] = (
    "merged_lines",
    "extra_fields",
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
    """Counts for one canonical table. ``loaded + sum(quarantined.values()) == read``.

    ``lines`` counts the physical lines of data of a text file (header excluded), apart from
    the parser; ``None`` when the table did not come from one text file. Of them,
    ``blank_lines`` were empty and ``quoted_lines`` lay inside a quoted value (continuing the
    row before); the others were read: :attr:`unaccounted` is zero unless rows were lost in
    reading, which :meth:`LoadReport.to_text` flags.
    """

    table: str
    file: str | None
    read: int
    loaded: int
    quarantined: dict[str, int] = field(default_factory=dict)
    missing: bool = False
    lines: int | None = None
    blank_lines: int = 0
    quoted_lines: int = 0

    @property
    def quarantined_total(self) -> int:
        """All quarantined rows of the table, whatever their reason."""
        return sum(self.quarantined.values())

    @property
    def unaccounted(self) -> int:
        """Physical lines neither read, blank nor inside a quoted value (0 when not counted).

        Examples
        --------
        >>> TableReport("reps", "reps.csv", 3, 3, lines=5, blank_lines=1).unaccounted
        1
        """
        if self.lines is None:
            return 0
        return self.lines - self.read - self.blank_lines - self.quoted_lines


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
        """``{table: {"read", "loaded", "quarantined": {reason: n}, "file", "missing",
        "lines"}}``; ``lines`` (``{"physical", "blank", "quoted"}``) only for tables read from
        one text file."""
        return {
            t.table: {
                "read": t.read,
                "loaded": t.loaded,
                "quarantined": dict(t.quarantined),
                "file": t.file,
                "missing": t.missing,
            }
            | (
                {
                    "lines": {
                        "physical": t.lines,
                        "blank": t.blank_lines,
                        "quoted": t.quoted_lines,
                    }
                }
                if t.lines is not None
                else {}
            )
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
        lost = [
            f"{t.table} ({t.file}): {t.unaccounted:,} of its {t.lines:,} physical lines were "
            f"not read (read {t.read:,}, blank {t.blank_lines:,}, inside quoted values "
            f"{t.quoted_lines:,}); check the file's quotes and line ends"
            for t in self.tables
            if t.unaccounted
        ]
        if lost:
            out += ["", "LINES NOT READ:", *(f"- {n}" for n in lost)]
        if self.notes:
            out += ["", "notes:", *(f"- {n}" for n in self.notes)]
        return "\n".join(out)
