"""The load report of an export, per source file: what was read, loaded and set aside from
each file, apart from what was derived, so that nothing is counted twice.

The per-table counts of :class:`~effortlens.loading.LoadReport` count *records*: a deal
quarantined in ``opportunities`` and the stage entries derived from it, quarantined with it in
``stage_history``, are records of two tables. Summed across tables they count one export row
several times. Here each export row counts once, in its file:

- **read**: the file's rows that were candidates for a table (rows of no use to any table,
  such as an ``OpportunityHistory`` row that only changed the amount, are counted in the
  file's routing note);
- **loaded**: rows with at least one record loaded; **quarantined**: rows all of whose
  records were set aside (the first record's reason). ``loaded + quarantined == read`` holds
  per file;
- **derived**: records made by EffortLens rather than read (stage entries from deals' current
  stages, reps from the owners named): loaded or set aside (most often together with the
  deal they came from), and never counted as read;
- **lines**: for a text file, its physical lines of data counted apart from the reader
  (:class:`~effortlens.loading.report.FileLines`): the rows the reader produced, blank lines
  and lines inside quoted values; any difference is a problem the report flags ("LINES NOT
  READ"). A file's ``read`` may be fewer than its rows: rows of use to no table (an admin
  user, a history row that only changed the amount) are counted in its routing note. A file
  read only to look things up (``Contact.csv``, ``UserRole.csv``) is listed too, read 0.

Examples
--------
>>> r = SourceReport(tables=(), files=(FileReport("Task.csv", 3, 2, {"bad_timestamp": 1},
...     {"activities": 3}),))
>>> print(r.files_text().splitlines()[2])
Task.csv     3       2  1 (bad_timestamp 1)  activities 3
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from effortlens.loading import LoadReport
from effortlens.loading.report import FileLines, counted


@dataclass(frozen=True)
class FileReport:
    """One source file (or one derivation, when ``derived``).

    Attributes
    ----------
    file
        The export file's name, or what a derivation came from.
    read
        Rows read (for a derivation: records derived).
    loaded
        Rows with a record loaded.
    quarantined
        Rows set aside, by reason (for a derivation: records set aside with their source row).
    tables
        Canonical table -> records routed there from this file.
    derived
        True for records EffortLens derived rather than read.
    lines
        The physical lines of a text file and the rows its reader produced, else ``None``
        (a Parquet file, a derivation, or a load outside :func:`~effortlens.adapters.load_any`).
    """

    file: str
    read: int
    loaded: int
    quarantined: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    derived: bool = False
    lines: FileLines | None = None

    @property
    def quarantined_total(self) -> int:
        """Rows set aside from this file, whatever the reason."""
        return sum(self.quarantined.values())


@dataclass(frozen=True)
class SourceReport(LoadReport):
    """A :class:`~effortlens.loading.LoadReport` that also counts per source file.

    Attributes
    ----------
    files
        One :class:`FileReport` per export file read, then one per derivation.
    """

    files: tuple[FileReport, ...] = ()

    def files_frame(self) -> pl.DataFrame:
        """One row per source file and derivation: file, derived, lines (physical lines of
        data, text files only; null otherwise) = rows (rows the reader produced holding a
        value) + blank lines + lines in quotes (inside a quoted value, continuing a row) +
        lines not read (0 unless rows were lost in reading), read, loaded, quarantined, tables
        (``"activities 12, buyer_actions 1"``). Summing ``read`` over the rows whose
        ``derived`` is false counts every export row once."""

        def of(f: FileReport, key: str) -> int | None:
            if f.lines is None:
                return None
            return {
                "lines": f.lines.physical,
                "rows": f.lines.rows,
                "blank lines": f.lines.blank,
                "lines in quotes": f.lines.quoted,
                "lines not read": f.lines.unaccounted,
            }[key]

        return pl.DataFrame(
            {
                "file": [f.file for f in self.files],
                "derived": [f.derived for f in self.files],
                **{k: [of(f, k) for f in self.files] for k in LINE_COLUMNS},
                "read": [f.read for f in self.files],
                "loaded": [f.loaded for f in self.files],
                "quarantined": [f.quarantined_total for f in self.files],
                "tables": [_tables(f) for f in self.files],
            },
            schema={
                "file": pl.String,
                "derived": pl.Boolean,
                **dict.fromkeys(LINE_COLUMNS, pl.Int64),
                "read": pl.Int64,
                "loaded": pl.Int64,
                "quarantined": pl.Int64,
                "tables": pl.String,
            },
        )

    def files_dict(self) -> dict[str, dict]:
        """``{file: {"read", "loaded", "quarantined": {reason: n}, "tables", "derived",
        "lines"}}``; ``lines`` (``{"physical", "rows", "blank", "quoted", "not_read"}``, see
        :class:`~effortlens.loading.report.FileLines`) only for text files."""
        return {
            f.file: {
                "read": f.read,
                "loaded": f.loaded,
                "quarantined": dict(f.quarantined),
                "tables": dict(f.tables),
                "derived": f.derived,
            }
            | ({"lines": f.lines.to_dict()} if f.lines is not None else {})
            for f in self.files
        }

    def lines_not_read(self) -> list[str]:
        """Each table, then each export text file, whose physical lines and rows read
        disagree, in words; ``[]`` when every line is accounted for."""
        found = [f.lines.problem() for f in self.files if f.lines is not None]
        return super().lines_not_read() + [p for p in found if p]

    def files_text(self) -> str:
        """The per-file table (export files first, then what was derived), and the files
        whose lines were not all read ("LINES NOT READ")."""
        lost = [f.lines.problem() for f in self.files if f.lines is not None]
        lost = [p for p in lost if p]
        flag = ["", "LINES NOT READ:", *(f"- {n}" for n in lost)] if lost else []
        return "\n".join([self._files_table(), *flag])

    def _files_table(self) -> str:
        head = ("file", "lines", "rows", "read", "loaded", "quarantined", "went to")
        rows = []
        for f in self.files:
            why = ", ".join(f"{r} {n:,}" for r, n in f.quarantined.items() if n)
            rows.append(
                (
                    f.file,
                    _lines(f.lines),
                    "" if f.lines is None else f"{f.lines.rows:,}",
                    f"{f.read:,}",
                    f"{f.loaded:,}",
                    f"{f.quarantined_total:,}" + (f" ({why})" if why else ""),
                    (_tables(f) or "(no table)") + (" (derived, not read)" if f.derived else ""),
                )
            )
        widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
        right = (False, True, True, True, True, False, False)

        def line(cells):
            return "  ".join(
                c.rjust(w) if r else c.ljust(w)
                for c, w, r in zip(cells, widths, right, strict=True)
            ).rstrip()

        return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])

    def to_text(self) -> str:
        """Per source file (each export row once, derived records apart), then per table."""
        if not self.files:
            return super().to_text()
        real = [f for f in self.files if not f.derived]
        read = sum(f.read for f in real)
        loaded = sum(f.loaded for f in real)
        lead = (
            f"{counted(read, 'export row')} read from {counted(len(real), 'file')}: "
            f"{loaded:,} loaded, {read - loaded:,} quarantined (derived records counted apart)."
        )
        return "\n".join(
            [lead, "", "per export file:", self._files_table(), "", "per table (records):"]
        ) + ("\n" + super().to_text())


#: The line columns of :meth:`SourceReport.files_frame`.
LINE_COLUMNS = ("lines", "rows", "blank lines", "lines in quotes", "lines not read")


def _tables(f: FileReport) -> str:
    return ", ".join(f"{t} {n:,}" for t, n in f.tables.items() if n)


def _lines(lines: FileLines | None) -> str:
    """A file's physical lines for the text table: ``"12"``, ``"12 (1 blank, 2 in quotes)"``,
    ``"12 (1 NOT READ)"``; empty for a Parquet file or a derivation."""
    if lines is None:
        return ""
    parts = [
        f"{n:,} {what}"
        for n, what in (
            (lines.blank, "blank"),
            (lines.quoted, "in quotes"),
            (lines.unaccounted, "NOT READ"),
        )
        if n
    ]
    return f"{lines.physical:,}" + (f" ({', '.join(parts)})" if parts else "")


def with_lines(report: SourceReport, lines: Mapping[str, FileLines]) -> SourceReport:
    """``report`` with each export text file's physical lines (see :class:`FileReport`).

    A file read but routed to no table (read only to look things up, or holding no row) is
    added after the files that were, read 0, so that every file read shows its lines.

    Examples
    --------
    >>> r = SourceReport(tables=(), files=(FileReport("Task.csv", 3, 3),))
    >>> r = with_lines(r, {"Task.csv": FileLines("Task.csv", 5, 3, 1, 0),
    ...                    "Contact.csv": FileLines("Contact.csv", 2, 2)})
    >>> [(f.file, f.read, f.lines.unaccounted) for f in r.files]
    [('Task.csv', 3, 1), ('Contact.csv', 0, 0)]
    >>> r.lines_not_read()[0][:48]
    'Task.csv: 1 of its 5 physical lines were not rea'
    """
    if not lines:
        return report
    real = [dataclasses.replace(f, lines=lines.get(f.file)) for f in report.files if not f.derived]
    named = {f.file for f in report.files}
    extra = [FileReport(name, 0, 0, lines=n) for name, n in lines.items() if name not in named]
    made = [f for f in report.files if f.derived]
    return dataclasses.replace(report, files=(*real, *extra, *made))


def file_reports(
    records: pl.DataFrame, quarantine: pl.DataFrame, derived: set[tuple[str, str]]
) -> tuple[FileReport, ...]:
    """Count per source file.

    Parameters
    ----------
    records
        Every record an adapter passed on or set aside: ``table``, ``file``, ``row``.
    quarantine
        The load's quarantine (``table``, ``file``, ``row``, ``reason``).
    derived
        The (table, file) pairs whose records were derived, not read.

    Examples
    --------
    >>> records = pl.DataFrame({"table": ["opportunities", "stage_history", "stage_history"],
    ...     "file": ["d.csv"] * 3, "row": [1, 1, 1]}).cast({"row": pl.UInt32})
    >>> quarantine = pl.DataFrame({"table": ["opportunities", "stage_history"],
    ...     "file": ["d.csv"] * 2, "row": [1, 1], "reason": ["bad_value", "unknown_reference"]}
    ...     ).cast({"row": pl.UInt32})
    >>> [(f.file, f.read, f.quarantined) for f in
    ...  file_reports(records, quarantine, {("stage_history", "d.csv")})]
    [('d.csv', 1, {'bad_value': 1}), ('(derived from d.csv)', 2, {'unknown_reference': 2})]
    """
    key = ["table", "file", "row"]
    is_derived = pl.struct("table", "file").is_in(
        pl.DataFrame(
            {"table": [t for t, _ in derived], "file": [f for _, f in derived]},
            schema={"table": pl.String, "file": pl.String},
        )
        .to_struct()
        .implode()
    )
    set_aside = quarantine.select(*key, "reason").unique(key, keep="first", maintain_order=True)
    marked = records.select(*key).join(set_aside, on=key, how="left", maintain_order="left")
    marked = marked.with_columns(is_derived.alias("derived"))
    out: list[FileReport] = []
    real = marked.filter(~pl.col("derived"))
    for file in real["file"].unique(maintain_order=True).to_list():
        mine = real.filter(pl.col("file") == file)
        tables = dict(mine.group_by("table", maintain_order=True).len().iter_rows())
        rows = mine.group_by("row", maintain_order=True).agg(
            pl.col("reason").is_not_null().all().alias("out"),
            pl.col("reason").drop_nulls().first().alias("reason"),
        )
        reasons = dict(
            rows.filter(pl.col("out")).group_by("reason", maintain_order=True).len().iter_rows()
        )
        n_out = int(rows["out"].sum())
        out.append(FileReport(file, rows.height, rows.height - n_out, reasons, tables))
    made = marked.filter(pl.col("derived"))
    for (table, file), group in made.group_by(["table", "file"], maintain_order=True):
        n_out = int(group["reason"].is_not_null().sum())
        reasons = dict(
            group.drop_nulls("reason").group_by("reason", maintain_order=True).len().iter_rows()
        )
        out.append(
            FileReport(
                str(file) if str(file).startswith("(") else f"(derived from {file})",
                group.height,
                group.height - n_out,
                reasons,
                {str(table): group.height},
                derived=True,
            )
        )
    return tuple(out)


def stage_history_source(report: LoadReport) -> str:
    """Where a load's stage history came from: ``"recorded"`` (read from a history export or
    a canonical file), ``"derived"`` (made from deals' current stages: no path, no times in
    stage), ``"mixed"`` (some deals each way) or ``"none"``.

    Examples
    --------
    >>> from effortlens.loading import TableReport
    >>> r = SourceReport(tables=(TableReport("stage_history", "d.csv", 4, 4),),
    ...     files=(FileReport("(derived from d.csv)", 4, 4, tables={"stage_history": 4},
    ...     derived=True),))
    >>> stage_history_source(r)
    'derived'
    """
    try:
        table = report["stage_history"]
    except KeyError:
        return "none"
    if table.missing or not table.loaded:
        return "none"
    files = getattr(report, "files", ())
    derived = sum(f.loaded for f in files if f.derived and "stage_history" in f.tables)
    if not derived:
        return "recorded"
    return "derived" if derived >= table.loaded else "mixed"
