"""Reading a Parquet file within the limits of the load, before it is materialised.

The row count and schema come from the file's footer, so a small file of repeated values
(20 million rows in 80 KB) is refused before it is read (``limits.max_parquet_rows_per_kb``),
and the memory it would take is reserved against the load's budget. Columns of lists,
records or raw bytes cannot be validated: in a column a table needs they are refused with a
message, anywhere else they are left out and noted.

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
        The canonical table it holds, whose columns must be plain values; ``None`` for an
        export file (every list or record column is left out).

    Raises
    ------
    DataError
        When the file is not Parquet, has more columns than ``limits.max_columns``, more rows
        per KB than ``limits.max_parquet_rows_per_kb``, a value longer than
        ``limits.max_field_chars``, a list or record in a column ``table`` needs, or would go
        over the memory budget.
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
    spec = TABLES[table].columns if table else {}
    keep, dropped = [], []
    for column, dtype in schema.items():
        if not (dtype.is_nested() or dtype == pl.Binary or dtype == pl.Object):
            keep.append(column)
            continue
        canonical = canonical_header(column)
        if canonical in spec:
            raise DataError(
                f"{name}: column {column} holds {dtype} values; expected {spec[canonical]} "
                "(one plain value per row, not a list or a record)"
            )
        dropped.append(f"{column} ({dtype})")
    if dropped:
        guard.note(f"{name}: ignored columns of lists or records: " + ", ".join(dropped))
    estimate = rows * max(len(keep), 1) * guard.PARQUET_VALUE_BYTES
    why = f"{rows:,} rows x {len(keep):,} columns"
    uncompressed = _uncompressed_bytes(path, keep)
    if uncompressed is not None and uncompressed * guard.TEXT_BYTES_FACTOR > estimate:
        # a few rows of long, repetitive values: small on disk, large in memory
        estimate = uncompressed * guard.TEXT_BYTES_FACTOR
        why = f"{uncompressed / guard.MB:,.1f} MB of values once uncompressed"
    guard.reserve(name, estimate, why=why)
    try:
        frame = pl.read_parquet(path, columns=keep)
    except pl.exceptions.PolarsError as err:
        raise DataError(f"{name}: not a readable Parquet file ({_first_line(err)})") from err
    _check_field_lengths(name, frame, limits.max_field_chars)
    guard.check_memory(name, "reading it")
    return frame


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


def _uncompressed_bytes(path: Path, columns: list[str]) -> int | None:
    """The bytes of ``columns`` once decompressed, from the file's footer (``None`` when
    pyarrow, which reads footers in detail, is not installed or cannot read it)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:  # noqa: BLE001 - the Polars reader gives the message
        return None
    wanted = set(columns)
    total = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            if chunk.path_in_schema.split(".")[0] in wanted:
                total += chunk.total_uncompressed_size
    return total


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
