"""Reading one column: text, numbers, true/false values, dates and times, vocabularies.

Each reader takes the column as given (text, or already typed from Parquet) and returns the
canonical values, and, where a value can be given but unreadable, the rows that failed. The
rules (:mod:`effortlens.loading.rules`) turn failures into quarantine reasons.

Examples
--------
>>> import polars as pl
>>> values, failed = parse_booleans(pl.Series(["Yes", "0", "maybe", None]))
>>> values.to_list(), failed.to_list()
([True, False, None, None], [False, False, True, False])
"""

from __future__ import annotations

import re
from collections.abc import Callable

import polars as pl

from effortlens.loading.timestamps import ParsedTimes, localize, parse_timestamps
from effortlens.settings import ACTIVITY_TYPES, Settings

#: Every spelling of a true/false value EffortLens reads, compared trimmed and lower-cased:
#: English, the 1/0 and y/n/t/f of exports, ``x`` (a ticked spreadsheet cell), and German,
#: French, Spanish and Dutch words. Canonical files and CRM exports share this one set.
BOOLEAN_SPELLINGS: dict[str, bool] = {
    **dict.fromkeys(
        ("true", "1", "yes", "y", "t", "x", "wahr", "ja", "vrai", "oui", "si", "sí", "waar"),
        True,
    ),
    **dict.fromkeys(
        ("false", "0", "no", "n", "f", "falsch", "nein", "faux", "non", "onwaar"), False
    ),
}
#: What a true/false value may look like, for messages.
EXPECTED_BOOLEAN = "true/false, yes/no or 1/0"

_GROUPED_COMMA = r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$"
_DECIMAL_COMMA = r"^[+-]?[\d.]*\d,\d+$"


def no_failures(n: int) -> pl.Series:
    """A mask of ``n`` rows in which no row fails.

    Examples
    --------
    >>> no_failures(2).to_list()
    [False, False]
    """
    return pl.repeat(False, n, eager=True)


def canonical_header(name: str) -> str:
    """A header as a canonical column name: BOM and blanks dropped, lower case, ``_`` joins.

    Examples
    --------
    >>> canonical_header("\\ufeff Rep ID ")
    'rep_id'
    """
    return re.sub(r"[\s\-]+", "_", name.lstrip("\ufeff").strip().lower())


def vocabulary_word(value: str) -> str:
    """A value in vocabulary form (lower case, ``_`` joins), to compare with a vocabulary.

    Examples
    --------
    >>> vocabulary_word(" Meeting Held ")
    'meeting_held'
    """
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


def is_untidy(column: str) -> pl.Expr:
    """Whether a text column has values with surrounding blanks, or empty values.

    Examples
    --------
    >>> pl.DataFrame({"team": ["North", " South"]}).select(is_untidy("team")).item()
    True
    """
    return (pl.col(column).str.contains(r"^\s|\s$") | (pl.col(column) == "")).any()


def parse_text(values: pl.Series, *, tidy: bool = False) -> pl.Series:
    """Trimmed text, empty as null; returned as is (no copy) when ``tidy`` or already clean.

    Parameters
    ----------
    values
        The column.
    tidy
        The caller knows (from :func:`is_untidy`) that no value needs trimming.

    Examples
    --------
    >>> parse_text(pl.Series([" North ", "", None])).to_list()
    ['North', None, None]
    """
    values = values.cast(pl.String)
    if tidy or not values.to_frame("s").select(is_untidy("s")).item():
        return values
    trimmed = values.str.strip_chars()
    return (
        pl.select(pl.when(pl.lit(trimmed) != "").then(pl.lit(trimmed)))
        .to_series()
        .alias(values.name)
    )


def translate_distinct(
    values: pl.Series,
    translate: Callable[[str], object],
    dtype=pl.String,
    *,
    distinct: list[str] | None = None,
) -> pl.Series:
    """``translate`` applied once to each distinct value (``distinct``, when the caller has
    them): fast on long columns of few values.

    Examples
    --------
    >>> translate_distinct(pl.Series(["eur", "usd", "eur"]), str.upper).to_list()
    ['EUR', 'USD', 'EUR']
    """
    values = values.cast(pl.String)
    if distinct is None:
        distinct = values.drop_nulls().unique().to_list()
    mapping = {u: translate(u) for u in distinct}
    if dtype == pl.String and all(u == word for u, word in mapping.items()):
        return values  # every value its own translation (canonical data): no lookup a row
    return values.replace_strict(mapping, default=None, return_dtype=dtype)


def parse_numbers(values: pl.Series, *, decimal_comma: bool) -> tuple[pl.Series, pl.Series]:
    """Float64 values, and the rows whose text is not a finite number (NaN counts as empty).

    ``1,200.5`` groups thousands with commas. With ``decimal_comma`` (a ``;``-separated file),
    a column in which some value reads ``12,5`` writes decimals with a comma and dots group
    thousands.

    Examples
    --------
    >>> numbers, failed = parse_numbers(pl.Series(["1,200.5", "abc", None]), decimal_comma=False)
    >>> numbers.to_list(), failed.to_list()
    ([1200.5, None, None], [False, True, False])
    """
    if values.dtype.is_numeric():
        numbers = values.cast(pl.Float64).fill_nan(None)
        return numbers, numbers.is_infinite().fill_null(False)
    text = parse_text(values)
    if decimal_comma and text.str.contains(_DECIMAL_COMMA).any():
        text = text.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True)
    else:
        grouped = text.str.contains(_GROUPED_COMMA).fill_null(False)
        text = pl.select(
            pl.when(grouped).then(pl.lit(text).str.replace_all(",", "")).otherwise(pl.lit(text))
        ).to_series()
    numbers = text.cast(pl.Float64, strict=False)
    bad = text.is_not_null() & (numbers.is_null() | numbers.is_infinite())
    return numbers.fill_nan(None), bad.fill_null(False)


def boolean(expr: pl.Expr) -> pl.Expr:
    """True/false from text written in any of :data:`BOOLEAN_SPELLINGS` (case and blanks
    ignored); null where the text is empty or none of them.

    The one definition of a true/false value: canonical files (:func:`parse_booleans`) and
    CRM exports (the adapters' flags such as ``IsDeleted``) both read through it.

    Examples
    --------
    >>> f = pl.DataFrame({"v": ["TRUE", " no ", "ja", "x", "", "maybe"]})
    >>> f.select(boolean(pl.col("v")))["v"].to_list()
    [True, False, True, True, None, None]
    """
    return (
        expr.cast(pl.String)
        .str.strip_chars()
        .str.to_lowercase()
        .replace_strict(BOOLEAN_SPELLINGS, default=None, return_dtype=pl.Boolean)
    )


def parse_booleans(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Booleans read by :func:`boolean`, and the rows given but none of its spellings.

    Examples
    --------
    >>> flags, failed = parse_booleans(pl.Series(["yes", "n", "maybe", " "]))
    >>> flags.to_list(), failed.to_list()
    ([True, False, None, None], [False, False, True, False])
    """
    if values.dtype == pl.Boolean:
        return values, no_failures(len(values))
    flags = values.to_frame("v").select(boolean(pl.col("v"))).to_series().alias(values.name)
    return flags, parse_text(values).is_not_null() & flags.is_null()


def parse_times(values: pl.Series, *, timezone: str, as_date: bool) -> ParsedTimes:
    """Dates or UTC timestamps of a column; typed columns skip the text round trip.

    Text goes through :func:`~effortlens.loading.timestamps.parse_timestamps`. A typed
    Datetime with a zone is converted, a naive one read as wall time in ``timezone``.

    Examples
    --------
    >>> from datetime import datetime
    >>> typed = pl.Series([datetime(2024, 3, 5, 9, 30)])
    >>> parse_times(typed, timezone="Europe/Berlin", as_date=False).values.dt.hour().to_list()
    [8]
    """
    no_problem = no_failures(len(values))
    if isinstance(values.dtype, pl.Datetime | pl.Date):
        if as_date:
            if isinstance(values.dtype, pl.Datetime) and values.dtype.time_zone:
                values = values.dt.convert_time_zone(timezone)
            typed = values.dt.date() if isinstance(values.dtype, pl.Datetime) else values
        elif isinstance(values.dtype, pl.Datetime) and values.dtype.time_zone:
            typed = values.dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC"))
        else:
            typed = localize(values.cast(pl.Datetime("us")), timezone=timezone)[0]
        return ParsedTimes(typed, no_problem, no_problem, None, ())
    return parse_timestamps(values, timezone=timezone, as_date=as_date)


def parse_activity_types(
    values: pl.Series, settings: Settings
) -> tuple[pl.Series, list[tuple[str, int]]]:
    """Canonical activity types, and (value as given, rows) of those that became ``other``.

    A type is kept when canonical, else mapped by the settings' ``[activities.map]``, else
    ``other``.

    Examples
    --------
    >>> from effortlens.settings import load_settings
    >>> types, other = parse_activity_types(pl.Series(["Call", "Fax"]), load_settings())
    >>> types.to_list(), other
    (['call', 'other'], [('Fax', 1)])
    """

    def canonical(raw: str) -> str | None:
        word = raw.strip().lower()
        if not word:
            return None
        return word if word in ACTIVITY_TYPES else settings.activity_map.get(word, "other")

    uniques = values.cast(pl.String).drop_nulls().unique().to_list()
    types = translate_distinct(values, canonical, distinct=uniques)
    unmapped = [u for u in uniques if canonical(u) == "other" and u.strip().lower() != "other"]
    counts: list[tuple[str, int]] = []
    if unmapped:
        tally = (
            pl.DataFrame({"raw": values.cast(pl.String)})
            .filter(pl.col("raw").is_in(unmapped))
            .group_by("raw")
            .len()
            .sort("len", "raw", descending=[True, False])
        )
        counts = list(tally.iter_rows())
    return types, counts
