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

    #: What the bug names: a file, or the files a step across files read.
    where: str = ""
    #: The step across files that failed (``"linking Task.csv to Opportunity.csv"``), or ``""``
    #: when the bug is in one file.
    step: str = ""

    @classmethod
    def of(cls, file: str, err: BaseException, *, step: str = "") -> LoadBug:
        """The bug of ``err`` raised while loading ``file``, in words.

        With ``step`` (a step that works across several files: links, derivation, assembly),
        ``file`` names the files it read and the message says the step.

        Examples
        --------
        >>> bug = LoadBug.of("Task.csv, Opportunity.csv", KeyError("Id"),
        ...     step="linking Task.csv to Opportunity.csv")
        >>> str(bug).split(" (a bug")[0]
        'Task.csv, Opportunity.csv: EffortLens failed while linking Task.csv to Opportunity.csv'
        >>> bug.where, bug.subject
        ('Task.csv, Opportunity.csv', 'these files while linking Task.csv to Opportunity.csv')
        """
        first = (str(err).strip().splitlines() or [""])[0][:300]
        what = f"while {step}" if step else "on this file"
        bug = cls(
            f"{file}: EffortLens failed {what} (a bug: {type(err).__name__}: {first}). "
            f"Please report it with the file{'s' if step else ''}; other files may load on "
            "their own."
        )
        bug.where, bug.step = file, step
        return bug

    @property
    def plural(self) -> bool:
        """Whether the bug names several files (a step across files that read more than one)."""
        return ", " in self.where

    @property
    def subject(self) -> str:
        """What failed, after "EffortLens failed on": ``"this file"``, or with a step ``"these
        files while <step>"`` (``"this file while <step>"`` when the step read one file)."""
        if not self.step:
            return "this file"
        return f"{'these files' if self.plural else 'this file'} while {self.step}"


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
    "early_timestamp",
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


def lines_not_read(
    label: str, *, physical: int, read: int, blank: int, quoted: int, read_as: str = "read"
) -> str | None:
    """The problem, in words, when a text file's physical lines and the rows read disagree.

    ``physical`` lines of data (counted apart from the parser) should be ``read`` rows,
    ``blank`` lines and ``quoted`` lines inside quoted values (continuing a row); ``None``
    when they are.

    Examples
    --------
    >>> print(lines_not_read("Task.csv", physical=12, read=9, blank=1, quoted=1))
    Task.csv: 1 of its 12 physical lines were not read (read 9, blank 1, inside quoted values 1);...
    >>> lines_not_read("Task.csv", physical=12, read=10, blank=1, quoted=1) is None
    True
    """
    missing = physical - read - blank - quoted
    if not missing:
        return None
    counts = f"{read_as} {read:,}, blank {blank:,}, inside quoted values {quoted:,}"
    if missing < 0:
        return (
            f"{label}: {-missing:,} more rows were read than its {physical:,} physical lines "
            f"hold ({counts}); check the file's quotes and line ends"
        )
    return (
        f"{label}: {missing:,} of its {physical:,} physical lines were not read ({counts}); "
        "check the file's quotes and line ends"
    )


@dataclass(frozen=True)
class FileLines:
    """The physical lines of data of one export text file and the rows its reader produced.

    ``physical`` is counted apart from the parser (:func:`~effortlens.loading.lines.
    count_lines`, header excluded); ``rows`` are the rows the reader produced that hold a
    value, ``blank`` those that hold none (empty lines), ``quoted`` the lines inside quoted
    values (each continuing the row before). :attr:`unaccounted` is zero unless rows were
    lost (or read twice) in reading.

    Examples
    --------
    >>> FileLines("Task.csv", physical=12, rows=10, blank=1, quoted=1).unaccounted
    0
    >>> FileLines("Task.csv", physical=12, rows=9, blank=1, quoted=1).to_dict()
    {'physical': 12, 'rows': 9, 'blank': 1, 'quoted': 1, 'not_read': 1}
    """

    file: str
    physical: int
    rows: int
    blank: int = 0
    quoted: int = 0

    @property
    def unaccounted(self) -> int:
        """Physical lines neither read as a row, blank nor inside a quoted value."""
        return self.physical - self.rows - self.blank - self.quoted

    def to_dict(self) -> dict[str, int]:
        """``{"physical", "rows", "blank", "quoted", "not_read"}`` (``not_read`` is
        :attr:`unaccounted`: negative when more rows were read than lines hold)."""
        return {
            "physical": self.physical,
            "rows": self.rows,
            "blank": self.blank,
            "quoted": self.quoted,
            "not_read": self.unaccounted,
        }

    def problem(self) -> str | None:
        """The difference in words (see :func:`lines_not_read`), or ``None``."""
        return lines_not_read(
            self.file,
            physical=self.physical,
            read=self.rows,
            blank=self.blank,
            quoted=self.quoted,
            read_as="rows read",
        )


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

    def lines_not_read(self) -> list[str]:
        """Each table whose physical lines and rows read disagree, in words (see
        :func:`lines_not_read`); ``[]`` when every line is accounted for."""
        out = []
        for t in self.tables:
            if t.lines is None:
                continue
            problem = lines_not_read(
                f"{t.table} ({t.file})",
                physical=t.lines,
                read=t.read,
                blank=t.blank_lines,
                quoted=t.quoted_lines,
            )
            if problem:
                out.append(problem)
        return out

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
        lost = self.lines_not_read()
        if lost:
            out += ["", "LINES NOT READ:", *(f"- {n}" for n in lost)]
        if self.notes:
            out += ["", "notes:", *(f"- {n}" for n in self.notes)]
        return "\n".join(out)
