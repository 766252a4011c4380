"""Loading that loses nothing: read files, validate every row, report what was set aside.

Modules, in the order data goes through them:

- :mod:`~effortlens.loading.delimited`: delimited text as Excel and CRMs write it (encoding,
  delimiter), every column kept as text;
- :mod:`~effortlens.loading.timestamps`: the dates and times people and spreadsheets write;
- :mod:`~effortlens.loading.columns`: one column read by its type (text, numbers, true/false
  values, dates, vocabularies);
- :mod:`~effortlens.loading.rules`: the row rules and their order, the quarantine reasons;
- :mod:`~effortlens.loading.table`: one table through the rules into loaded and quarantined
  rows;
- :mod:`~effortlens.loading.pipeline`: all tables in dependency order (:func:`validate_tables`)
  and folders of canonical files (:func:`load_folder`);
- :mod:`~effortlens.loading.report`: the load report, :class:`DataError` and :class:`LoadBug`;
- :mod:`~effortlens.loading.lines`: physical lines counted apart from the CSV parser;
- :mod:`~effortlens.loading.guard`: the ``[limits]`` of a load (columns, value length,
  Parquet density, memory budget) and what no input may raise.

Examples
--------
>>> from effortlens.loading import load_folder
>>> data = load_folder("sample_data/generated/default")  # doctest: +SKIP
>>> print(data.report.to_text())  # doctest: +SKIP
"""

from __future__ import annotations

from effortlens.loading.columns import BOOLEAN_SPELLINGS, boolean, parse_booleans
from effortlens.loading.delimited import decode_to_utf8, read_csv_text, read_delimited
from effortlens.loading.pipeline import LoadedData, load_folder, validate_tables
from effortlens.loading.report import (
    QUARANTINE_SCHEMA,
    REASONS,
    DataError,
    LoadBug,
    LoadReport,
    TableReport,
)
from effortlens.loading.table import RawTable
from effortlens.loading.timestamps import (
    EXPECTED_TIMESTAMP,
    ParsedTimes,
    localize,
    parse_timestamps,
)

__all__ = [
    "BOOLEAN_SPELLINGS",
    "EXPECTED_TIMESTAMP",
    "QUARANTINE_SCHEMA",
    "REASONS",
    "DataError",
    "LoadBug",
    "LoadReport",
    "LoadedData",
    "ParsedTimes",
    "RawTable",
    "TableReport",
    "boolean",
    "decode_to_utf8",
    "load_folder",
    "localize",
    "parse_booleans",
    "parse_timestamps",
    "read_csv_text",
    "read_delimited",
    "validate_tables",
]
