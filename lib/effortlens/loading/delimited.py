"""Reading delimited text the way Excel and CRMs write it: every column kept as text.

Encoding: UTF-8 (with or without BOM), UTF-16 with BOM (Excel's "Unicode text"), else
Windows-1252 / Latin-1. Delimiter: sniffed from the header line among ``,`` ``;`` tab ``|``.
Quoted fields, doubled quotes and CRLF line ends are handled by the Polars reader.
"""

from __future__ import annotations

import codecs
import io
from pathlib import Path

import polars as pl

from effortlens.loading.report import DataError

#: The delimiters :func:`sniff_delimiter` chooses among, the first winning ties.
DELIMITERS = (",", ";", "\t", "|")


def decode_to_utf8(data: bytes) -> tuple[bytes, str]:
    """The UTF-8 bytes of text as Excel and CRMs write it, and the encoding found.

    A UTF-8 or UTF-16 byte-order mark decides; otherwise the bytes are UTF-8 when they decode
    as such, else Windows-1252, else Latin-1 (which decodes any byte).

    Parameters
    ----------
    data
        The file's bytes (or its first bytes: a multi-byte character cut at the end of a
        UTF-8 prefix makes the guess fall back to Windows-1252).

    Returns
    -------
    tuple of (bytes, str)
        The text as UTF-8 without a byte-order mark, and ``"utf-8-sig"``, ``"utf-16"``,
        ``"utf-8"``, ``"cp1252"`` or ``"latin-1"``.

    Examples
    --------
    >>> decode_to_utf8("Zoë".encode("cp1252"))
    (b'Zo\\xc3\\xab', 'cp1252')
    >>> decode_to_utf8(b"\\xef\\xbb\\xbfrep_id")
    (b'rep_id', 'utf-8-sig')
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :], "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16").encode("utf-8"), "utf-16"
    try:
        data.decode("utf-8")
        return data, "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252").encode("utf-8"), "cp1252"
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined: plain Latin-1 has them all
        return data.decode("latin-1").encode("utf-8"), "latin-1"


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


def read_delimited(path: Path) -> tuple[pl.DataFrame, str, str]:
    """Read a delimited text file as all-String columns.

    Returns the frame (headers as written, BOM removed), the delimiter and the encoding.
    Raises :class:`DataError` naming the file when it is empty or malformed.
    """
    path = Path(path)
    data, encoding = decode_to_utf8(path.read_bytes())
    first_line = data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    if not first_line.strip():
        raise DataError(f"{path.name}: the file is empty or its first line (the header) is blank")
    delimiter = sniff_delimiter(first_line)
    try:
        frame = pl.read_csv(
            io.BytesIO(data), separator=delimiter, infer_schema=False, quote_char='"'
        )
    except pl.exceptions.PolarsError as err:
        hint = str(err).splitlines()[0]
        raise DataError(
            f"{path.name}: cannot be read as {delimiter!r}-separated text ({hint}); check that "
            "no line has more fields than the header and that quotes are closed"
        ) from err
    return frame, delimiter, encoding


def read_csv_text(path: Path) -> pl.DataFrame:
    """Read an Excel-made or CRM-exported CSV with every column as ``String``.

    Handles UTF-8 with BOM, Windows-1252 / Latin-1, UTF-16, ``,`` ``;`` tab and ``|``
    delimiters (sniffed from the header line), quoted fields and CRLF line ends. Values are
    kept exactly as written (parsing happens in validation); empty fields are null.

    Parameters
    ----------
    path
        The file.

    Raises
    ------
    DataError
        When the file is empty or cannot be parsed as delimited text.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "reps.csv"
    >>> _ = p.write_bytes("\\ufeffrep_id;rep_name\\r\\nr1;Zoë\\r\\n".encode("utf-8"))
    >>> read_csv_text(p).rows()
    [('r1', 'Zoë')]
    """
    return read_delimited(path)[0]
