"""Reading export files: headers, sheets of text values, and what an adapter reads with.

An export file is read as a :class:`Sheet`: every column as trimmed text (blanks null), plus
the data-row number (``__line``) and the row as written (``__raw``, long texts cut to
200 characters) so a quarantined row can be traced back. Headers are compared case-, space-
and quote-insensitively (:func:`header_key`).

Examples
--------
>>> find_column(["Deal Stage", "Amount"], "dealstage", "deal stage")
'Deal Stage'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from effortlens.loading import guard
from effortlens.loading.delimited import decode_to_utf8, read_text_table, sniff_delimiter
from effortlens.loading.lines import normalise_line_ends
from effortlens.loading.parquet import read_parquet_table
from effortlens.loading.report import DataError, FileLines, counted

if TYPE_CHECKING:
    from effortlens.settings import Settings

#: File name endings of the export files an adapter reads.
DATA_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".txt", ".parquet")
#: Longest text kept per value in ``__raw``.
RAW_CHARS = 200
#: Column of the 1-based data-row number in the export file.
LINE = "__line"
#: Column of the export row as written (JSON), for the quarantine.
RAW = "__raw"
#: Column saying why a row cannot be used as read (several records read as one behind an
#: unbalanced quote), else null; :func:`~effortlens.adapters.pieces.make_piece` sets such
#: rows aside as ``merged_lines``.
MERGED = "__merged"
#: Column saying why a row cannot be used as read (its line holds more fields than the
#: header), else null; :func:`~effortlens.adapters.pieces.make_piece` sets such rows aside
#: as ``extra_fields``.
EXTRA = "__extra_fields"
#: The line as written of a row with surplus fields (its ``__raw``).
_EXTRA_LINE = "__extra_line"


@dataclass(frozen=True, eq=False)
class Sheet:
    """One export file: its columns as text (blanks null), ``__line`` and ``__raw``."""

    path: Path
    frame: pl.DataFrame

    @property
    def name(self) -> str:
        """The export file's name, for notes and messages."""
        return self.path.name

    def column(self, *candidates: str) -> str | None:
        """The first header among ``candidates`` (case and spacing ignored), or ``None``."""
        return find_column(self.frame.columns, *candidates)

    def get(self, *candidates: str) -> pl.Expr:
        """The first present candidate column, or a null literal."""
        name = self.column(*candidates)
        return pl.col(name) if name else pl.lit(None, dtype=pl.String)


def header_key(name: str) -> str:
    """Headers compared case-, space- and quote-insensitively."""
    return " ".join(name.replace('"', " ").replace("'", " ").lower().split())


def find_column(columns: Iterable[str], *candidates: str) -> str | None:
    """The first of ``candidates`` present in ``columns`` (compared by :func:`header_key`).

    Examples
    --------
    >>> find_column(["Deal Stage", "Amount"], "dealstage", "deal stage")
    'Deal Stage'
    """
    by_key = {}
    for name in columns:
        by_key.setdefault(header_key(name), name)
    for candidate in candidates:
        hit = by_key.get(header_key(candidate))
        if hit is not None:
            return hit
    return None


def read_header(path: Path) -> list[str]:
    """The header names of a CSV export (or the columns of a Parquet file).

    Only the first 64 KB are read; any line end (LF, CRLF, bare CR) ends the header, and
    bytes that do not decode are replaced (the full read names them). ``OSError`` when the
    file cannot be opened.
    """
    if path.suffix.lower() == ".parquet":
        try:
            return list(pl.read_parquet_schema(path))
        except pl.exceptions.PolarsError as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise OSError(f"not a readable Parquet file ({first})") from err
    with open(path, "rb") as handle:
        head = handle.read(64 * 1024)
    try:
        data, _ = decode_to_utf8(head, name=path.name)
    except DataError:  # a byte-order mark and bad bytes: the header may still be fine
        data = head.removeprefix(b"\xef\xbb\xbf")
    data, _ = normalise_line_ends(data.split(b"\n", 1)[0] + b"\n")
    line = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    delimiter = sniff_delimiter(line)
    try:
        return list(
            pl.read_csv(
                data.split(b"\n", 1)[0], separator=delimiter, infer_schema=False, n_rows=0
            ).columns
        )
    except pl.exceptions.PolarsError:
        return [c.strip().strip('"') for c in line.split(delimiter)]


def cannot_read(path: Path, err: Exception) -> str:
    """A sentence for an export file whose header could not be read (see :func:`read_header`).

    Examples
    --------
    >>> cannot_read(Path("Task.csv"), PermissionError(13, "Permission denied"))
    'Task.csv: cannot be read: permission denied; check the access rights of the file'
    """
    if isinstance(err, OSError) and err.errno is not None:
        return str(guard.unreadable(path.name, err))
    return f"{path.name}: cannot be read ({err}); expected a CSV or Parquet export"


def read_sheet(path: Path) -> Sheet:
    """Read an export file: values trimmed, blanks null, plus ``__line`` and ``__raw``.

    Read within the limits of the load under way (:mod:`effortlens.loading.guard`); bare-CR
    line ends, lines inside quoted values and any record the reader missed are noted for the
    load report, and a text file's physical lines (counted apart from the reader) are kept
    for it beside the rows read (:class:`~effortlens.loading.report.FileLines`, see
    :func:`~effortlens.loading.guard.count_file`). A line with more fields than the header
    (a value holding the delimiter, not quoted) does not refuse the file: it stays a row, its
    first fields as values, with :data:`EXTRA` saying why it is set aside (the file, the
    line, the field counts), so the file's rows read are still loaded + quarantined.

    Raises
    ------
    DataError
        Naming the file, and the line or column, when it cannot be read; a failure of
        EffortLens itself is a :class:`~effortlens.loading.report.LoadBug` naming the file.
    """
    with guard.guarded(Path(path).name):
        return _read_sheet(Path(path))


def _read_sheet(path: Path) -> Sheet:
    """:func:`read_sheet` inside its guard."""
    text = None
    if path.suffix.lower() == ".parquet":
        frame = read_parquet_table(path).select(pl.all().cast(pl.String))
    else:
        text = read_text_table(path, set_aside_surplus=True)
        _note_lines(path.name, text)
        frame = _with_extra_fields(text, _with_merged(text))
    columns = [c for c in frame.columns if not c.startswith("__")]
    kept = [c for c in (MERGED, EXTRA, _EXTRA_LINE) if c in frame.columns]
    frame = frame.select(columns + kept).with_columns(
        pl.when(pl.col(c).str.strip_chars() != "").then(pl.col(c).str.strip_chars()).alias(c)
        for c in columns
    )
    raw = pl.struct([pl.col(c).str.slice(0, RAW_CHARS) for c in columns]).struct.json_encode()
    if EXTRA in frame.columns:  # the line as written: its fields do not match the header
        line = pl.struct(pl.col(_EXTRA_LINE).alias("line")).struct.json_encode()
        raw = pl.when(pl.col(EXTRA).is_not_null()).then(line).otherwise(raw)
        frame = frame.with_columns(raw.alias(RAW)).drop(_EXTRA_LINE)
        raw = pl.col(RAW)
    frame = frame.with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).alias(LINE), raw.alias(RAW)
    )
    # a line of empty fields (a row deleted in a spreadsheet) holds nothing to load: counted
    # apart as blank, like the blank lines of a canonical table, its neighbours keep their rows
    empty = pl.lit(bool(columns)) & pl.all_horizontal(
        [pl.col(c).is_null() for c in (*columns, *kept) if c != _EXTRA_LINE]
    )
    blank = int(frame.select(empty.sum()).item()) if columns and frame.height else 0
    if text is not None:
        guard.count_file(_file_lines(path.name, text, rows=frame.height - blank, blank=blank))
    if blank:
        frame = frame.filter(~empty)
        what = "blank line" if text is not None else "blank row"
        guard.note(f"{path.name}: skipped {counted(blank, what)} (every field empty)")
    return Sheet(path, frame)


def _file_lines(name: str, text, *, rows: int, blank: int) -> FileLines:
    """The physical lines of ``text`` after its header line (counted apart from the reader)
    beside the rows the reader produced (surplus-field rows included): ``rows`` holding a
    value, ``blank`` holding none; lines a quote on the header line swallowed are not read."""
    return FileLines(
        name, physical=text.data_lines, rows=rows, blank=blank, quoted=text.quoted_lines
    )


def file_list(names: Iterable[str]) -> str:
    """File names in words, each once: ``"A.csv"``, ``"A.csv and B.csv"``, ``"A.csv, B.csv
    and C.csv"``.

    Examples
    --------
    >>> file_list(["Task.csv", "Event.csv", "Task.csv", "User.csv"])
    'Task.csv, Event.csv and User.csv'
    """
    unique = list(dict.fromkeys(n for n in names if n))
    if len(unique) < 2:
        return "".join(unique)
    return ", ".join(unique[:-1]) + " and " + unique[-1]


def across(step: str, names: Iterable[str]):
    """Guard a step that works across several export files (links, derivation, assembly).

    A failure of EffortLens inside it is a :class:`~effortlens.loading.report.LoadBug` that
    names ``names`` (the files the step read) and ``step`` (what it was doing, naming them:
    ``"linking Task.csv to Opportunity.csv"``); see :func:`effortlens.loading.guard.guarded`.

    Examples
    --------
    >>> with across("linking Task.csv to Opportunity.csv", ["Task.csv", "Opportunity.csv"]):
    ...     raise KeyError("Id")
    Traceback (most recent call last):
    ...
    effortlens.loading.report.LoadBug: Task.csv, Opportunity.csv: EffortLens failed while ...
    """
    listed = ", ".join(dict.fromkeys(n for n in names if n)) or "the export files"
    return guard.guarded(listed, step=step)


def _with_merged(text) -> pl.DataFrame:
    """The frame of ``text`` with :data:`MERGED` where a row swallowed whole records.

    A value may span lines (a multi-line description); a row is merged when a line inside one
    of its values holds about as many delimiters as a record (4/5 of the header's, all of them
    for narrow files): the lines after an unbalanced quote.
    """
    frame = text.frame
    spans = text.count.multi_line_records()
    if not spans or frame.width < 2:
        return frame
    separators = frame.width - 1
    threshold = separators if frame.width <= 6 else max(int(0.8 * separators), 1)
    merged: dict[int, str] = {}
    for row, first, last in spans:
        if not 1 <= row <= frame.height:
            continue
        for value in frame.row(row - 1):
            lines = value.splitlines()[1:] if isinstance(value, str) else []
            if any(line.count(text.delimiter) >= threshold for line in lines):
                merged[row] = (
                    f"lines {first:,}-{last:,} were read as one row (a quote on line {first:,} "
                    "is not closed on that line); expected one line per record"
                )
                break
    if not merged:
        return frame
    reasons = [merged.get(i) for i in range(1, frame.height + 1)]
    return frame.with_columns(pl.Series(MERGED, reasons, dtype=pl.String))


def _with_extra_fields(text, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the lines set aside for surplus fields put back as rows, in file order.

    Such a row keeps its first fields (as many as the header has) so that it is routed like
    its neighbours, and :data:`EXTRA` names the line and the field counts (the quarantine
    message adds the file and the data row).
    """
    if not text.surplus:
        return frame
    import csv
    import io

    columns = frame.columns
    header = len(columns)
    values: dict[str, list[str | None]] = {c: [] for c in columns}
    reasons, rows = [], []
    for row, line, fields, line_text in text.surplus:
        parsed = next(csv.reader(io.StringIO(line_text), delimiter=text.delimiter), [])
        parsed = [*parsed[:header], *[None] * (header - len(parsed[:header]))]
        for column, value in zip(columns, parsed, strict=True):
            values[column].append(value if value != "" else None)
        reasons.append(
            f"line {line:,} has {fields:,} fields, the header {header:,}; expected no more "
            "fields than the header (a value holding the delimiter is quoted)"
        )
        rows.append(row)
    order = "__order"
    extra = pl.DataFrame(
        {**values, EXTRA: reasons, _EXTRA_LINE: [t[:RAW_CHARS] for *_, t in text.surplus]},
        schema={**dict.fromkeys(columns, pl.String), EXTRA: pl.String, _EXTRA_LINE: pl.String},
    ).with_columns(pl.Series(order, rows, dtype=pl.UInt32))
    numbered = frame.with_columns(
        text.rows.alias(order),
        pl.lit(None, dtype=pl.String).alias(EXTRA),
        pl.lit(None, dtype=pl.String).alias(_EXTRA_LINE),
    )
    return pl.concat([numbered, extra], how="diagonal_relaxed").sort(order).drop(order)


def _note_lines(name: str, text) -> None:
    """Notes on how the lines of an export were read, when anything is worth saying."""
    count = text.count
    if text.line_ends == "CR":
        guard.note(f"{name}: lines end with a bare CR (old Mac or Excel); read as such")
    spans = count.multi_line_records()
    if spans:
        inside = count.lines - count.header_lines - count.records
        guard.note(
            f"{name}: {count.lines - count.header_lines:,} lines of data hold "
            f"{count.records:,} records: {inside:,} lines lie inside quoted values "
            f"(multi-line text), the first in row {spans[0][0]:,} (lines {spans[0][1]:,}-"
            f"{spans[0][2]:,})"
        )
    if text.lost:
        guard.note(
            f"{name}: counting the lines finds {count.records:,} records but the reader read "
            f"{text.frame.height:,} rows; check the file's quotes and line ends"
        )


def data_files(folder: Path) -> list[Path]:
    """The export files of ``folder`` (by their ending, hidden files skipped), sorted by name.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("Task.csv", ".hidden.csv", "notes.md"):
    ...     _ = (folder / name).write_text("Id\\n")
    >>> [p.name for p in data_files(folder)]
    ['Task.csv']
    """
    try:
        return sorted(
            p
            for p in folder.iterdir()
            if not p.name.startswith(".") and p.suffix.lower() in DATA_SUFFIXES and p.is_file()
        )
    except OSError as err:
        raise guard.unreadable(str(folder), err) from err


@dataclass
class Context:
    """What an adapter needs while it reads: settings, source conventions, and its notes.

    Attributes
    ----------
    settings
        Validated settings.
    timezone
        Zone of naive times in the export files (the mapping's, else the settings').
    day_first
        Slash-date order when the user fixed it (mapping ``date_format``), else ``None``.
    time_format
        An explicit ``strftime`` format for dates in these files, or ``None``.
    decimal
        ``"."`` or ``","`` when the user fixed it, else ``None`` (decided per column).
    values
        Extra value maps from the mapping: ``{"stage": {...}, "outcome": {...}, ...}``.
    loss_reason
        Columns the mapping names as loss reasons (``[source] loss_reason``), read for
        no-decision losses besides those recognised by name.
    notes
        Sentences for the load report, gathered while reading (see :meth:`note`).
    """

    settings: Settings
    timezone: str
    day_first: bool | None = None
    time_format: str | None = None
    decimal: str | None = None
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    loss_reason: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    def note(self, *sentences: str) -> None:
        """Add sentences to the notes of the load report, each once, in order."""
        for sentence in sentences:
            if sentence and sentence not in self.notes:
                self.notes.append(sentence)
