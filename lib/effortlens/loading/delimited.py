"""Reading delimited text the way Excel and CRMs write it: every column kept as text.

Encoding: UTF-8 (with or without BOM), UTF-16 with BOM (Excel's "Unicode text"), else
Windows-1252 / Latin-1. Delimiter: sniffed from the header line among ``,`` ``;`` tab ``|``.
Line ends: LF, CRLF and bare CR (old Mac, some Excel exports). Quoted fields and doubled
quotes are handled by the Polars reader; the physical lines are counted apart from it
(:mod:`effortlens.loading.lines`), so a row lost inside a file shows in the load report.

Before a file is parsed, its size is checked against the memory budget of the load and its
header against ``limits.max_columns``; after, its values against ``limits.max_field_chars``
(:mod:`effortlens.loading.guard`). Every failure is a :class:`DataError` naming the file, the
line or column, and what was expected.
"""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from effortlens.loading import guard
from effortlens.loading.lines import LineCount, count_lines, normalise_line_ends
from effortlens.loading.report import DataError, LoadBug

#: The delimiters :func:`sniff_delimiter` chooses among, the first winning ties.
DELIMITERS = (",", ";", "\t", "|")


def decode_to_utf8(data: bytes, *, name: str = "the file") -> tuple[bytes, str]:
    """The UTF-8 bytes of text as Excel and CRMs write it, and the encoding found.

    A UTF-8 or UTF-16 byte-order mark decides; otherwise the bytes are UTF-8 when they decode
    as such, else Windows-1252, else Latin-1 (which decodes any byte).

    Parameters
    ----------
    data
        The file's bytes (or its first bytes: a multi-byte character cut at the end of a
        UTF-8 prefix makes the guess fall back to Windows-1252).
    name
        The file, for messages.

    Returns
    -------
    tuple of (bytes, str)
        The text as UTF-8 without a byte-order mark, and ``"utf-8-sig"``, ``"utf-16"``,
        ``"utf-8"``, ``"cp1252"`` or ``"latin-1"``.

    Raises
    ------
    DataError
        When a byte-order mark promises UTF-8 or UTF-16 and the bytes after it are not: the
        message names the line and column of the first bad byte.

    Examples
    --------
    >>> decode_to_utf8("Zoë".encode("cp1252"))
    (b'Zo\\xc3\\xab', 'cp1252')
    >>> decode_to_utf8(b"\\xef\\xbb\\xbfrep_id")
    (b'rep_id', 'utf-8-sig')
    >>> decode_to_utf8(b"\\xef\\xbb\\xbfid\\nBor\\xffis", name="reps.csv")
    Traceback (most recent call last):
    ...
    effortlens.loading.report.DataError: reps.csv: line 2, column 4: byte 0xff is not UTF-8...
    """
    if data.startswith(codecs.BOM_UTF8):
        body = data[len(codecs.BOM_UTF8) :]
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise _not_encoded(name, body, err, "UTF-8") from err
        return body, "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16").encode("utf-8"), "utf-16"
        except UnicodeError as err:
            raise _not_encoded(name, data, err, "UTF-16") from err
    try:
        data.decode("utf-8")
        return data, "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252").encode("utf-8"), "cp1252"
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined: plain Latin-1 has them all
        return data.decode("latin-1").encode("utf-8"), "latin-1"


def _not_encoded(name: str, data: bytes, err: UnicodeError, encoding: str) -> DataError:
    """Where ``data`` stops being ``encoding``, in lines and columns, for a message."""
    start = getattr(err, "start", 0)
    if encoding == "UTF-8":
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        where = f"line {line}, column {column}: byte 0x{data[start]:02x} is not UTF-8"
    else:
        where = f"byte {start:,}: the bytes are not UTF-16"
    return DataError(
        f"{name}: {where}, while the file starts with a {encoding} byte-order mark; expected "
        f"{encoding} throughout (re-save it as CSV UTF-8, or without the byte-order mark)"
    )


def sniff_delimiter(header_line: str) -> str:
    """The delimiter of a header line: the most frequent of ``, ; tab |`` outside quotes.

    Examples
    --------
    >>> sniff_delimiter('rep_id;"name, full";team')
    ';'
    """
    outside, quoted = [], False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted:
            outside.append(char)
    counts = {d: outside.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # first listed wins ties, "," first
    return best if counts[best] else ","


@dataclass(frozen=True)
class TextTable:
    """A delimited text file read as all-String columns, and how it was read.

    Attributes
    ----------
    frame
        Headers as written (BOM removed), every value as text, empty fields null.
    delimiter, encoding
        As found (see :func:`sniff_delimiter`, :func:`decode_to_utf8`).
    line_ends
        ``"LF"``, ``"CRLF"``, ``"CR"``, ``"mixed"`` or ``"none"``.
    count
        The physical lines, counted apart from the parser (:func:`~effortlens.loading.lines.
        count_lines`); ``count.records == frame.height + len(surplus)`` unless rows were lost.
    rows
        The 1-based data-row number of each row of ``frame`` when lines were set aside
        (``surplus``), else ``None`` (the rows are numbered in order).
    surplus
        Lines set aside because they hold more fields than the header, as
        ``(data row, line, fields, text)`` (only when asked, see :func:`read_text_table`).
    """

    frame: pl.DataFrame
    delimiter: str
    encoding: str
    line_ends: str
    count: LineCount
    rows: pl.Series | None = None
    surplus: tuple[tuple[int, int, int, str], ...] = ()

    @property
    def lost(self) -> int:
        """Records counted in the lines but not read as rows (negative: rows read twice)."""
        return self.count.records - self.frame.height - len(self.surplus)

    @property
    def data_lines(self) -> int:
        """Physical lines after the header's first line, counted apart from the reader."""
        return max(self.count.lines - 1, 0)

    @property
    def quoted_lines(self) -> int:
        """Lines of :attr:`data_lines` inside a quoted value: continuing a row, or a header
        name the reader read over several lines. Lines the count finds inside the header
        (a quote opened on line 1) that the reader did not put in a name are not among them:
        swallowed by the header, they are lines not read.

        Examples
        --------
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "t.csv"
        >>> _ = p.write_bytes(b'id,"note\\nlong"\\n1,"a\\nb"\\n')
        >>> text = read_text_table(p)
        >>> text.data_lines, text.quoted_lines, text.frame.height
        (3, 2, 1)
        """
        in_names = sum(str(name).count("\n") for name in self.frame.columns)
        in_header = min(max(self.count.header_lines - 1, 0), in_names)
        return in_header + self.count.data_lines_inside_quotes


def header_fields(header_line: str, delimiter: str) -> int:
    """How many fields a header line has (delimiters outside quotes, plus one).

    Examples
    --------
    >>> header_fields('a,"b,c",d', ",")
    3
    """
    count, quoted = 1, False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif char == delimiter and not quoted:
            count += 1
    return count


def read_text_table(path: Path, *, set_aside_surplus: bool = False) -> TextTable:
    """Read a delimited text file within the limits of the load under way.

    Parameters
    ----------
    path
        The file.
    set_aside_surplus
        Lines with more fields than the header are set aside (``TextTable.surplus``) and the
        others read, instead of refusing the file; only in files where every record is one
        line.

    Returns
    -------
    TextTable

    Raises
    ------
    DataError
        When the file cannot be read (rights), is empty, is not valid in the encoding its
        byte-order mark names, has more columns than ``limits.max_columns`` or a value longer
        than ``limits.max_field_chars``, would go over the memory budget, or cannot be parsed;
        the message names the file and the line or column. A Polars panic becomes a
        :class:`~effortlens.loading.report.LoadBug` naming the file.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "reps.csv"
    >>> _ = p.write_bytes(b"rep_id,team\\rr1,North\\rr2,South\\r")
    >>> text = read_text_table(p)
    >>> text.frame.rows(), text.line_ends, text.count.records
    ([('r1', 'North'), ('r2', 'South')], 'CR', 2)
    """
    path = Path(path)
    name = path.name
    limits = guard.current_limits()
    with guard.guarded(name):
        size = path.stat().st_size
        guard.reserve(
            name, size * guard.TEXT_BYTES_FACTOR, why=f"{size / guard.MB:,.1f} MB of text"
        )
        data, encoding = decode_to_utf8(path.read_bytes(), name=name)
        data, ends = normalise_line_ends(data)
        header_line, _, _ = data.partition(b"\n")
        first_line = header_line.decode("utf-8", errors="replace").rstrip("\r")
        if not first_line.strip():
            raise DataError(f"{name}: the file is empty or its first line (the header) is blank")
        delimiter = sniff_delimiter(first_line)
        columns = header_fields(first_line, delimiter)
        if columns > limits.max_columns:
            raise DataError(
                f"{name}: line 1 (the header) has {columns:,} columns, more than "
                f"limits.max_columns ({limits.max_columns:,}); expected one column per field "
                "(raise the limit in the settings if the file is right)"
            )
        count = count_lines(data)
        # many short fields (a wide file of empty values) cost more than their bytes
        cells = count.records * columns * guard.TEXT_CELL_BYTES
        if cells > size * guard.TEXT_BYTES_FACTOR:
            guard.reserve(
                name,
                cells - size * guard.TEXT_BYTES_FACTOR,
                why=f"{count.records:,} records x {columns:,} columns",
            )
        rows, surplus = None, ()
        try:
            frame = _parse(name, data, delimiter, count)
        except DataError:
            found = _surplus_lines(data, delimiter, columns, count) if set_aside_surplus else []
            if not found:
                raise
            frame, rows, surplus = _parse_without(name, data, delimiter, count, found)
        _check_header_lengths(name, frame.columns, limits.max_field_chars)
        del data
        if count.longest_line > limits.max_field_chars or count.continuation.size:
            _check_field_lengths(name, frame, count, limits.max_field_chars)
        guard.check_memory(name, "reading it")
    return TextTable(frame, delimiter, encoding, ends, count, rows, surplus)


def _surplus_lines(
    data: bytes, delimiter: str, expected: int, count: LineCount
) -> list[tuple[int, int, str]]:
    """``(line, fields, text)`` of the lines with more fields than ``expected`` (files whose
    records are one line each; counted with numpy, lines holding quotes checked one by one)."""
    if count.continuation.size or count.unclosed_at is not None or count.lines < 2:
        return []
    buffer = np.frombuffer(data, dtype=np.uint8)
    starts = np.concatenate([[0], np.flatnonzero(buffer == 10) + 1])[: count.lines]
    bounds = np.append(starts, buffer.size)

    def per_line(byte: int) -> np.ndarray:
        return np.diff(np.searchsorted(np.flatnonzero(buffer == byte), bounds))

    delimiters, quotes = per_line(ord(delimiter)), per_line(34)
    found = []
    for index in np.flatnonzero(delimiters + 1 > expected):
        if index == 0:
            continue
        text = data[bounds[index] : bounds[index + 1]].decode("utf-8", errors="replace")
        text = text.rstrip("\r\n")
        fields = header_fields(text, delimiter) if quotes[index] else int(delimiters[index]) + 1
        if fields > expected:
            found.append((int(index) + 1, fields, text))
    return found


def _parse_without(
    name: str, data: bytes, delimiter: str, count: LineCount, found: list[tuple[int, int, str]]
) -> tuple[pl.DataFrame, pl.Series, tuple[tuple[int, int, int, str], ...]]:
    """The file read without the ``found`` lines; the data-row numbers of the rows read."""
    drop = {line - 1 for line, _, _ in found}  # 0-based line indexes
    lines = data.split(b"\n")
    kept = b"\n".join(line for i, line in enumerate(lines) if i not in drop)
    frame = _parse(name, kept, delimiter, count)
    header = count.header_lines
    surplus = tuple((line - header, line, fields, text) for line, fields, text in found)
    set_aside = {row for row, _, _, _ in surplus}
    rows = [r for r in range(1, count.records + 1) if r not in set_aside]
    if len(rows) != frame.height:  # the reader and the count disagree: say so, read nothing
        line, fields, _ = found[0]
        raise DataError(
            f"{name}: line {line:,} has {fields:,} fields, more than the header; expected no "
            "more fields than the header (a value holding the delimiter is quoted)"
        )
    return frame, pl.Series("__row", rows, dtype=pl.UInt32), surplus


def _parse(name: str, data: bytes, delimiter: str, count: LineCount) -> pl.DataFrame:
    """The Polars reader on ``data``; its errors in words, with the line when it is known."""
    try:
        return pl.read_csv(
            io.BytesIO(data), separator=delimiter, infer_schema=False, quote_char='"'
        )
    except pl.exceptions.PolarsError as err:
        hint = str(err).splitlines()[0]
        if count.unclosed_at is not None:
            raise DataError(
                f'{name}: line {count.unclosed_at:,} opens a quoted value (") that is never '
                "closed, so every line after it would be one value; expected each quote to be "
                'closed (a quote inside a value is written twice: "")'
            ) from err
        ragged = _ragged_line(data, delimiter)
        if ragged is not None:
            line, found, expected = ragged
            raise DataError(
                f"{name}: line {line:,} has {found:,} fields, the header {expected:,}; expected "
                "no more fields than the header (a value holding the delimiter is quoted)"
            ) from err
        spans = count.multi_line_records()
        where = (
            f"; line {spans[0][1]:,} starts a value in quotes that runs to line {spans[0][2]:,}"
            if spans
            else ""
        )
        raise DataError(
            f"{name}: cannot be read as {delimiter!r}-separated text ({hint}){where}; check that "
            "no line has more fields than the header and that quotes are closed"
        ) from err
    except pl.exceptions.PanicException as err:
        raise LoadBug.of(name, err) from err


def _ragged_line(data: bytes, delimiter: str) -> tuple[int, int, int] | None:
    """The first line with more fields than the header: (line, fields, header fields)."""
    import csv

    reader = csv.reader(
        io.StringIO(data.decode("utf-8", errors="replace"), newline=""), delimiter=delimiter
    )
    try:
        header = next(reader)
        for record in reader:
            if len(record) > len(header):
                return reader.line_num, len(record), len(header)
    except (csv.Error, StopIteration):
        return None
    return None


def _check_header_lengths(name: str, columns: list[str], limit: int) -> None:
    """Refuse a column name longer than ``limit`` characters."""
    for number, column in enumerate(columns, start=1):
        if len(column) > limit:
            raise DataError(
                f"{name}: line 1 (the header), column {number:,}: a name of {len(column):,} "
                f"characters, longer than limits.max_field_chars ({limit:,}); expected a "
                "header line of column names"
            )


def _check_field_lengths(name: str, frame: pl.DataFrame, count: LineCount, limit: int) -> None:
    """Refuse a value longer than ``limit`` characters, naming its line and column."""
    if not frame.width or not frame.height:
        return
    longest = frame.select(pl.all().str.len_chars().max()).row(0)
    for column, length in zip(frame.columns, longest, strict=True):
        if length is not None and length > limit:
            row = frame.select(pl.col(column).str.len_chars().arg_max()).item() + 1
            raise DataError(
                f"{name}: line {count.line_of_row(row):,}, column {column}: a value of "
                f"{length:,} characters, longer than limits.max_field_chars ({limit:,}); "
                "expected shorter values (raise the limit in the settings if the file is right)"
            )


def read_delimited(path: Path) -> tuple[pl.DataFrame, str, str]:
    """Read a delimited text file as all-String columns (see :func:`read_text_table`).

    Returns the frame (headers as written, BOM removed), the delimiter and the encoding.
    Raises :class:`DataError` naming the file when it is empty, malformed or over a limit.
    """
    text = read_text_table(path)
    return text.frame, text.delimiter, text.encoding


def read_csv_text(path: Path) -> pl.DataFrame:
    """Read an Excel-made or CRM-exported CSV with every column as ``String``.

    Handles UTF-8 with BOM, Windows-1252 / Latin-1, UTF-16, ``,`` ``;`` tab and ``|``
    delimiters (sniffed from the header line), quoted fields and CRLF, LF or bare-CR line
    ends. Values are kept exactly as written (parsing happens in validation); empty fields
    are null.

    Parameters
    ----------
    path
        The file.

    Raises
    ------
    DataError
        When the file is empty, over a limit or cannot be parsed as delimited text.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "reps.csv"
    >>> _ = p.write_bytes("\\ufeffrep_id;rep_name\\r\\nr1;Zoë\\r\\n".encode("utf-8"))
    >>> read_csv_text(p).rows()
    [('r1', 'Zoë')]
    """
    return read_delimited(path)[0]
