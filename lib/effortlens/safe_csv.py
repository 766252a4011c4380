"""CSV files a spreadsheet opens without running anything in them (OWASP CSV injection).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets: a rep called ``=HYPERLINK("http://evil",
"click")`` becomes a link, ``+cmd|' /C calc'!A0`` a command. Following the OWASP guidance
(https://owasp.org/www-community/attacks/CSV_Injection), every CSV EffortLens writes goes
through :func:`csv_bytes`:

- a text cell (or a column name) starting with one of those characters gets a ``'`` in front,
  which spreadsheets show as text; a text cell that is a plain number (``-12.5``) is left as
  it is (it cannot run anything);
- every text cell is written between double quotes (embedded quotes doubled), so that a
  spreadsheet splitting on ``;`` or tabs cannot cut a cell open;
- numeric columns are written as numbers: a negative amount stays ``-12.5``.

Examples
--------
>>> import polars as pl
>>> frame = pl.DataFrame({"rep": ["=1+1", "Ann"], "delta": [-2.5, 3.0]})
>>> print(csv_bytes(frame).decode(), end="")
"rep","delta"
"'=1+1",-2.5
"Ann",3.0
"""

from __future__ import annotations

import re

import polars as pl

#: First characters a spreadsheet reads as the start of a formula (OWASP).
FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
#: What is put in front of such a cell.
PREFIX = "'"
_FORMULA = "^[" + re.escape("".join(FORMULA_STARTS)) + "]"
_PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def neutral_text(value: str | None) -> str | None:
    """``value`` with a ``'`` in front when a spreadsheet would read it as a formula.

    Examples
    --------
    >>> neutral_text("@SUM(A1:A9)"), neutral_text("-2+3"), neutral_text("-12"), neutral_text("Ann")
    ("'@SUM(A1:A9)", "'-2+3", '-12', 'Ann')
    """
    if value is None or not value:
        return value
    if value[0] in FORMULA_STARTS and not re.match(_PLAIN_NUMBER, value):
        return PREFIX + value
    return value


def neutralise(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every text cell and column name made safe to open in a spreadsheet.

    Text (and categorical) columns get :func:`neutral_text` on each cell; numeric, boolean,
    date and time columns are unchanged (a negative number stays a number).

    Parameters
    ----------
    frame
        Any frame about to be written as CSV.

    Returns
    -------
    polars.DataFrame
        Same rows and column order; text columns as ``String``.

    Examples
    --------
    >>> import polars as pl
    >>> neutralise(pl.DataFrame({"+x": ["+cmd|' /C calc'!A0"], "n": [-1]})).row(0, named=True)
    {"'+x": "'+cmd|' /C calc'!A0", 'n': -1}
    """
    textual = (pl.String, pl.Categorical, pl.Enum)
    columns = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, textual) or dtype in textual:
            text = col.cast(pl.String)
            risky = text.str.contains(_FORMULA) & ~text.str.contains(_PLAIN_NUMBER)
            col = pl.when(risky).then(pl.lit(PREFIX) + text).otherwise(text)
        columns.append(col.alias(neutral_text(name) or name))
    return frame.select(columns)


def csv_bytes(frame: pl.DataFrame) -> bytes:
    """The CSV of ``frame`` as UTF-8 bytes, neutralised (:func:`neutralise`) and text quoted.

    Every CSV the product writes (downloads in the apps) comes from here.

    Examples
    --------
    >>> import polars as pl
    >>> csv_bytes(pl.DataFrame({"a": ['a "b" c']})).decode().splitlines()
    ['"a"', '"a ""b"" c"']
    """
    return neutralise(frame).write_csv(quote_style="non_numeric").encode("utf-8")
