"""Physical lines of a text file, counted without the CSV parser.

The reader and this count are independent: when they disagree, rows went missing inside a
file, and the load report says so. Line ends are found by byte (``\\n``, with ``\\r\\n``
read as one end; bare ``\\r`` ends are turned into ``\\n`` first by
:func:`normalise_line_ends`). A line break inside a quoted value (an even count of ``"``
before it means outside) continues the record: such lines are listed, so a row that
swallowed several lines (an unbalanced quote) can be named by its lines.

The scan runs over the bytes in chunks with numpy: about 1 s per GB, a few MB of memory.

Examples
--------
>>> count = count_lines(b'id,note\\n1,"two\\nlines"\\n2,x\\n')
>>> count.lines, count.records, count.continuation.tolist()
(4, 2, [3])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Bytes scanned at a time.
CHUNK = 1 << 23
_LF, _CR, _QUOTE = 10, 13, 34


@dataclass(frozen=True)
class LineCount:
    """What counting the physical lines of a text file found.

    Attributes
    ----------
    lines
        Physical lines, the header's included (a last line without a line end counts).
    header_lines
        Lines the header takes (more than one only when a quoted header name holds a break).
    continuation
        1-based numbers of the lines that start inside a quoted value (they continue the
        record of the line before).
    unclosed_at
        The line of a quote that is never closed, else ``None``.
    longest_line
        Bytes in the longest line.
    """

    lines: int
    header_lines: int = 1
    continuation: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    unclosed_at: int | None = None
    longest_line: int = 0

    @property
    def records(self) -> int:
        """Data records (the header's lines excluded), each however many lines it spans."""
        return max(self.lines - self.header_lines - self._data_continuation, 0)

    @property
    def _data_continuation(self) -> int:
        return int((self.continuation > self.header_lines).sum())

    @property
    def data_lines_inside_quotes(self) -> int:
        """Lines after the header's that start inside a quoted value (continuing a record)."""
        return self._data_continuation

    def multi_line_records(self) -> list[tuple[int, int, int]]:
        """``(data row, first line, last line)`` of each record spanning several lines.

        The data row is 1-based, counted as the reader counts rows (header excluded).

        Examples
        --------
        >>> count_lines(b'a,b\\n1,"x\\ny\\nz"\\n2,w\\n').multi_line_records()
        [(1, 2, 4)]
        """
        out: list[tuple[int, int, int]] = []
        data = self.continuation[self.continuation > self.header_lines]
        if not data.size:
            return out
        # runs of consecutive continuation lines belong to one record
        breaks = np.flatnonzero(np.diff(data) != 1) + 1
        before = 0
        for run in np.split(data, breaks):
            first, last = int(run[0]) - 1, int(run[-1])
            row = first - self.header_lines - before
            out.append((row, first, last))
            before += run.size
        return out

    def line_of_row(self, row: int) -> int:
        """The first physical line of data row ``row`` (1-based, header excluded).

        Examples
        --------
        >>> count_lines(b'a\\n"x\\ny"\\nz\\n').line_of_row(2)
        4
        """
        line = row + self.header_lines
        for _, first, last in self.multi_line_records():
            if first < line:
                line += last - first
        return line


def line_ends(data: bytes) -> str:
    """How the lines of ``data`` end: ``"LF"``, ``"CRLF"``, ``"CR"``, ``"mixed"`` or ``"none"``.

    Examples
    --------
    >>> line_ends(b"a\\rb\\r"), line_ends(b"a\\r\\nb\\r\\n"), line_ends(b"a")
    ('CR', 'CRLF', 'none')
    """
    if b"\r" not in data:
        return "LF" if b"\n" in data else "none"
    crlf = data.count(b"\r\n")
    cr, lf = data.count(b"\r") - crlf, data.count(b"\n") - crlf
    kinds = [name for name, n in (("LF", lf), ("CRLF", crlf), ("CR", cr)) if n]
    if not kinds:
        return "none"
    return kinds[0] if len(kinds) == 1 else "mixed"


def normalise_line_ends(data: bytes) -> tuple[bytes, str]:
    """``data`` with bare-CR line ends (old Mac, some Excel exports) turned into ``\\n``.

    Bare ``\\r`` are line ends when they outnumber the ``\\n`` ends; otherwise they are left
    as they are (a stray ``\\r`` inside a value of an LF file). Returns the bytes and the
    style found (see :func:`line_ends`).

    Examples
    --------
    >>> normalise_line_ends(b"id\\r1\\r2\\r")
    (b'id\\n1\\n2\\n', 'CR')
    >>> normalise_line_ends(b"id\\r\\n1\\r\\n")
    (b'id\\r\\n1\\r\\n', 'CRLF')
    """
    style = line_ends(data)
    if style not in ("CR", "mixed"):
        return data, style
    crlf = data.count(b"\r\n")
    bare_cr = data.count(b"\r") - crlf
    lf = data.count(b"\n") - crlf
    if bare_cr <= lf:
        return data, style
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n"), style


def count_lines(data: bytes, *, chunk: int = CHUNK) -> LineCount:
    """Count the physical lines of ``data`` and find those inside quoted values.

    Parameters
    ----------
    data
        The file's bytes, as UTF-8 (a ``"`` is byte 34 in it), line ends ``\\n`` or ``\\r\\n``.
    chunk
        Bytes scanned at a time (memory is about ten times this).

    Returns
    -------
    LineCount

    Examples
    --------
    >>> c = count_lines(b'id,name\\n1,"Ann\\n2,Bob\\n')
    >>> c.lines, c.unclosed_at, c.records
    (3, 2, 1)
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    n = buffer.size
    if n == 0:
        return LineCount(lines=0, header_lines=0)
    quotes = 0  # quotes seen before the current chunk
    newlines = 0  # line ends seen before the current chunk
    previous_end = -1  # position of the last line end seen
    longest = 0
    last_quote, last_quote_line = -1, 0
    continuation: list[np.ndarray] = []
    for start in range(0, n, chunk):
        part = buffer[start : start + chunk]
        ends = np.flatnonzero(part == _LF)
        quote_at = np.flatnonzero(part == _QUOTE)
        if quote_at.size:
            last_quote = start + int(quote_at[-1])
            last_quote_line = newlines + int(np.searchsorted(ends, quote_at[-1])) + 1
        if ends.size:
            inside = ((np.searchsorted(quote_at, ends) + quotes) & 1).astype(bool)
            # the line after an end inside quotes continues the record; line k ends at end k
            continuation.append(np.flatnonzero(inside) + newlines + 2)
            positions = ends + start
            lengths = np.diff(positions, prepend=previous_end) - 1
            longest = max(longest, int(lengths.max()))
            previous_end = int(positions[-1])
        quotes += quote_at.size
        newlines += ends.size
    tail = n - 1 - previous_end
    longest = max(longest, tail)
    lines = newlines + (1 if tail > 0 else 0)
    found = np.concatenate(continuation) if continuation else np.zeros(0, dtype=np.int64)
    found = found[found <= lines]  # a line end inside quotes at the very end opens no line
    unclosed = None
    if quotes % 2 and last_quote >= 0:
        # the quote that opened the value running to the end: where the last run of lines
        # inside quotes starts (in a file of quoted fields, an extra quote on line 4 leaves
        # every later line inside quotes), else the last quote
        unclosed = last_quote_line
        if found.size and found[-1] == lines:
            breaks = np.flatnonzero(np.diff(found) != 1)
            run_start = int(found[breaks[-1] + 1] if breaks.size else found[0])
            unclosed = run_start - 1
    header_lines = 1
    while header_lines + 1 in set(found[: header_lines + 1].tolist()):
        header_lines += 1
    return LineCount(
        lines=lines,
        header_lines=min(header_lines, lines),
        continuation=found.astype(np.int64),
        unclosed_at=unclosed,
        longest_line=longest,
    )
