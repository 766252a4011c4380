"""Reading a Parquet file within the limits of the load, before it is materialised.

The row count, the schema and each row group's rows and sizes come from the file's footer
(read here, :func:`row_groups`, no pyarrow needed), so a small file of repeated values (20
million rows in 80 KB) is refused before it is read (``limits.max_parquet_rows_per_kb``, per
file and per row group), and the memory its values take once decompressed is reserved against
the load's budget. A dictionary-encoded file is cheap to read (its values share the
dictionary) but not to validate: once read, its values' full size is checked against
``limits.max_parquet_expansion`` and the budget before anything else touches them. Columns of
lists, records or raw bytes cannot be validated: in a canonical table's column they are
refused with a message, anywhere else in a canonical file they are left out and noted; in an
export file (whose needed columns are not known here) they are refused.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "reps.parquet"
>>> pl.DataFrame({"rep_id": ["r1"], "tags": [["a", "b"]]}).write_parquet(path)
>>> read_parquet_table(path, table="reps").columns
['rep_id']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from effortlens.loading import guard
from effortlens.loading.columns import canonical_header
from effortlens.loading.report import DataError
from effortlens.schema import TABLES


def read_parquet_table(path: Path, *, table: str | None = None) -> pl.DataFrame:
    """A Parquet file as a frame, within the limits of the load under way.

    Parameters
    ----------
    path
        The file.
    table
        The canonical table it holds, whose columns must be plain values (others of lists or
        records are left out and noted); ``None`` for an export file (any column of lists or
        records is refused: which columns an adapter needs is not known here).

    Raises
    ------
    DataError
        When the file is not Parquet, has more columns than ``limits.max_columns``, more rows
        per KB (in the file or in one row group) than ``limits.max_parquet_rows_per_kb``,
        values that outgrow it more than ``limits.max_parquet_expansion`` times, a value longer
        than ``limits.max_field_chars``, a list or record where a plain value is expected, or
        would go over the memory budget.
    """
    name = path.name
    limits = guard.current_limits()
    size = path.stat().st_size
    try:
        schema = pl.read_parquet_schema(path)
        rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    except pl.exceptions.PolarsError as err:
        raise DataError(f"{name}: not a readable Parquet file ({_first_line(err)})") from err
    if len(schema) > limits.max_columns:
        raise DataError(
            f"{name}: {len(schema):,} columns, more than limits.max_columns "
            f"({limits.max_columns:,}); raise the limit in the settings if the file is right"
        )
    kb = max(size / 1024, 1.0)
    if rows > limits.max_parquet_rows_per_kb * kb:
        raise DataError(
            f"{name}: {rows:,} rows in {kb:,.0f} KB ({rows / kb:,.0f} rows per KB), more than "
            f"limits.max_parquet_rows_per_kb ({limits.max_parquet_rows_per_kb:,}): values "
            "repeated this much would take far more memory than the file; expected real "
            "records (raise the limit in the settings if the file is right)"
        )
    groups = row_groups(path)
    _check_row_groups(name, groups or [], limits.max_parquet_rows_per_kb)
    spec = TABLES[table].columns if table else {}
    keep, dropped = [], []
    for column, dtype in schema.items():
        if not (dtype.is_nested() or dtype == pl.Binary or dtype == pl.Object):
            keep.append(column)
            continue
        canonical = canonical_header(column)
        if table is None or canonical in spec:
            plain = "one plain value per row, not a list or a record"
            expected = f"{spec[canonical]} ({plain})" if canonical in spec else plain
            raise DataError(f"{name}: column {column} holds {dtype} values; expected {expected}")
        dropped.append(f"{column} ({dtype})")
    if dropped:
        guard.note(f"{name}: ignored columns of lists or records: " + ", ".join(dropped))
    estimate = rows * max(len(keep), 1) * guard.PARQUET_VALUE_BYTES
    why = f"{rows:,} rows x {len(keep):,} columns"
    wanted = set(keep)
    uncompressed = (
        sum(n for g in groups for column, n in g.uncompressed.items() if column in wanted)
        if groups is not None
        else None
    )
    if uncompressed is not None:
        _check_expansion(name, uncompressed, size, limits.max_parquet_expansion, "decompressed")
        if uncompressed * guard.TEXT_BYTES_FACTOR > estimate:
            # a few rows of long, repetitive values: small on disk, large in memory
            estimate = uncompressed * guard.TEXT_BYTES_FACTOR
            why = f"{uncompressed / guard.MB:,.1f} MB of values once uncompressed"
    guard.reserve(name, estimate, why=why)
    try:
        frame = pl.read_parquet(path, columns=keep)
    except pl.exceptions.PolarsError as err:
        raise DataError(f"{name}: not a readable Parquet file ({_first_line(err)})") from err
    # dictionary-encoded values share their dictionary once read; every step after this one
    # (trimming, casting, validating) gives each value its own copy: check their full size
    values = _values_bytes(frame)
    _check_expansion(name, values, size, limits.max_parquet_expansion, "read")
    if values * guard.TEXT_BYTES_FACTOR > estimate:
        guard.reserve(
            name,
            values * guard.TEXT_BYTES_FACTOR - estimate,
            why=f"{values / guard.MB:,.1f} MB of values once read",
        )
    _check_field_lengths(name, frame, limits.max_field_chars)
    guard.check_memory(name, "reading it")
    return frame


def _values_bytes(frame: pl.DataFrame) -> int:
    """The memory ``frame``'s values take once each has its own copy (a categorical column,
    as Arrow writes dictionaries, counts each row's text, not its dictionary once)."""
    categorical = [c for c, t in frame.schema.items() if isinstance(t, pl.Categorical | pl.Enum)]
    size = frame.drop(categorical).estimated_size()
    if categorical and frame.height:
        texts = frame.select(pl.col(categorical).cat.len_bytes().cast(pl.UInt64).sum()).row(0)
        size += sum(n or 0 for n in texts) + 16 * frame.height * len(categorical)
    return size


#: Values may always take this much memory, whatever ``limits.max_parquet_expansion`` says.
EXPANSION_FLOOR = 256 * guard.MB


def _check_expansion(name: str, values: int, size: int, limit: int, how: str) -> None:
    """Refuse a file whose values take more than ``limit`` times its size (and the floor)."""
    if values <= max(limit * size, EXPANSION_FLOOR):
        return
    times = values / max(size, 1)
    raise DataError(
        f"{name}: its values take {values / guard.MB:,.0f} MB once {how}, {times:,.0f} "
        f"times the file's {max(size / 1024, 1):,.0f} KB, more than "
        f"limits.max_parquet_expansion ({limit:,}): expected real records, not a few values "
        "repeated (raise the limit in the settings if the file is right)"
    )


def _check_row_groups(name: str, groups: list[RowGroup], limit: int) -> None:
    """Refuse a row group holding more rows per KB than ``limit`` (files of several groups)."""
    if len(groups) < 2:
        return  # one group: the file's own density, checked before
    for number, group in enumerate(groups, start=1):
        kb = max(group.compressed / 1024, 1.0)
        if group.rows > limit * kb:
            raise DataError(
                f"{name}: row group {number:,} of {len(groups):,} holds {group.rows:,} rows in "
                f"{kb:,.0f} KB ({group.rows / kb:,.0f} rows per KB), more than "
                f"limits.max_parquet_rows_per_kb ({limit:,}): values repeated this much would "
                "take far more memory than the file; expected real records (raise the limit "
                "in the settings if the file is right)"
            )


def _check_field_lengths(name: str, frame: pl.DataFrame, limit: int) -> None:
    """Refuse a text value longer than ``limit`` characters, naming its row and column."""
    text = [c for c, t in frame.schema.items() if t in (pl.String, pl.Categorical)]
    if not text or not frame.height:
        return
    longest = frame.select(pl.col(text).cast(pl.String).str.len_chars().max()).row(0)
    for column, length in zip(text, longest, strict=True):
        if length is not None and length > limit:
            row = frame.select(pl.col(column).cast(pl.String).str.len_chars().arg_max()).item()
            raise DataError(
                f"{name}: row {row + 1:,}, column {column}: a value of {length:,} characters, "
                f"longer than limits.max_field_chars ({limit:,}); raise the limit in the "
                "settings if the file is right"
            )


@dataclass(frozen=True)
class RowGroup:
    """One row group of a Parquet file, from its footer.

    Attributes
    ----------
    rows
        Rows in the group.
    compressed
        Bytes the group takes in the file.
    uncompressed
        Top-level column -> bytes its values take once decompressed (a dictionary-encoded
        column counts its dictionary once).
    """

    rows: int
    compressed: int
    uncompressed: dict[str, int]


#: Largest footer read (a real one holds a few KB per row group and column).
MAX_FOOTER_BYTES = 64 * guard.MB


def row_groups(path: Path) -> list[RowGroup] | None:
    """The row groups of a Parquet file, read from its footer; ``None`` when it is unreadable.

    The footer is Thrift's compact protocol (``FileMetaData``): only the row groups' rows and
    sizes are taken, and a footer that does not parse is left to the Parquet reader's message.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "reps.parquet"
    >>> pl.DataFrame({"rep_id": ["r1", "r2"]}).write_parquet(path)
    >>> [(g.rows, list(g.uncompressed)) for g in row_groups(path)]
    [(2, ['rep_id'])]
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            if size < 12:
                return None
            handle.seek(size - 8)
            tail = handle.read(8)
            length = int.from_bytes(tail[:4], "little")
            if tail[4:] != b"PAR1" or not 0 < length <= min(size - 12, MAX_FOOTER_BYTES):
                return None
            handle.seek(size - 8 - length)
            footer = handle.read(length)
        meta = _Compact(footer).struct()
        groups = []
        for group in meta.get(4) or []:
            uncompressed: dict[str, int] = {}
            compressed = 0
            for chunk in group.get(1) or []:
                column = chunk.get(3) or {}
                top = (column.get(3) or [b""])[0].decode("utf-8", errors="replace")
                uncompressed[top] = uncompressed.get(top, 0) + int(column.get(6) or 0)
                compressed += int(column.get(7) or 0)
            groups.append(
                RowGroup(int(group.get(3) or 0), int(group.get(6) or compressed), uncompressed)
            )
        return groups
    except (OSError, ValueError, IndexError, TypeError, AttributeError, RecursionError):
        return None


class _Compact:
    """A reader of Thrift's compact protocol: structs as ``{field id: value}``."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def byte(self) -> int:
        value = self.data[self.at]
        self.at += 1
        return value

    def varint(self) -> int:
        value = shift = 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int, depth: int):
        if kind in (1, 2):  # booleans in a struct's field header
            return kind == 1
        if kind == 3:
            return self.byte()
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            self.at += 8
            return None
        if kind == 8:
            n = self.varint()
            if self.at + n > len(self.data):
                raise ValueError("binary past the footer")
            self.at += n
            return self.data[self.at - n : self.at]
        if kind in (9, 10):
            header = self.byte()
            n, element = header >> 4, header & 0x0F
            if n == 15:
                n = self.varint()
            if n > len(self.data) - self.at:
                raise ValueError("list longer than the footer")
            if element in (1, 2):  # booleans in a list take a byte each
                return [self.byte() == 1 for _ in range(n)]
            return [self.value(element, depth + 1) for _ in range(n)]
        if kind == 11:
            n = self.varint()
            if n:
                types = self.byte()
                for _ in range(n):
                    self.value(types >> 4, depth + 1)
                    self.value(types & 0x0F, depth + 1)
            return None
        if kind == 12:
            return self.struct(depth + 1)
        raise ValueError(f"unknown Thrift type {kind}")

    def struct(self, depth: int = 0) -> dict[int, object]:
        if depth > 32:
            raise ValueError("structs nested too deep")
        fields: dict[int, object] = {}
        last = 0
        while True:
            header = self.byte()
            if header == 0:
                return fields
            delta, kind = header >> 4, header & 0x0F
            last = last + delta if delta else self.zigzag()
            fields[last] = self.value(kind, depth)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
