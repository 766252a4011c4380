"""Salesforce record ids: 15-character (case-sensitive) and 18-character (case-safe) forms.

An 18-character id is the 15-character id plus three check characters that encode which of
its letters are upper case, five letters per check character. Reports and the UI show
15-character ids, the API and Data Loader 18-character ones, and spreadsheets may change the
case of either. EffortLens stores every Salesforce id in the 18-character form with the case
of its first 15 characters restored from the check characters, so that all of these join.

Examples
--------
>>> salesforce_id18("0015e00000AbCdE")
'0015e00000AbCdEAAV'
>>> salesforce_id18("0015E00000ABCDEAAV")  # case damaged, restored from the suffix
'0015e00000AbCdEAAV'
"""

from __future__ import annotations

import re

import polars as pl

_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
#: Salesforce's empty lookup: a lookup field with no record exports as fifteen zeros (plus
#: ``AAA`` in 18-character form). It names no record, so it is read as empty.
EMPTY_IDS: frozenset[str] = frozenset({"000000000000000", "000000000000000AAA"})
_ID = re.compile(r"^[a-zA-Z0-9]{15}([a-zA-Z0-5]{3})?$")


def _check_chars(id15: str) -> str:
    out = []
    for chunk in range(3):
        bits = 0
        for i, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


def salesforce_id18(value: str | None) -> str | None:
    """The canonical 18-character form of a Salesforce id, or ``value`` unchanged if not one.

    A 15-character id gets its check characters; an 18-character id gets the case of its
    first 15 characters restored from its check characters (so ids whose case a spreadsheet
    changed still join).

    Examples
    --------
    >>> salesforce_id18("0065e00000XyZab")
    '0065e00000XyZabAAF'
    >>> salesforce_id18("0065e00000xyzabaaf")
    '0065e00000XyZabAAF'
    >>> salesforce_id18("Acme Corp")  # not an id: unchanged
    'Acme Corp'
    >>> salesforce_id18("000000000000000AAA") is None  # the empty lookup names no record
    True
    """
    if value is None or value.upper() in EMPTY_IDS:
        return None
    if not _ID.match(value):
        return value
    if len(value) == 15:
        return value + _check_chars(value)
    suffix = value[15:].upper()
    chars = list(value[:15])
    for chunk, check in enumerate(suffix):
        bits = _SUFFIX.index(check)
        for i in range(5):
            pos = chunk * 5 + i
            chars[pos] = chars[pos].upper() if bits >> i & 1 else chars[pos].lower()
    id15 = "".join(chars)
    return id15 + _check_chars(id15)


def normalise_ids(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Return ``frame`` with the Salesforce ids in ``columns`` in 18-character form.

    Each distinct id is converted once; columns not in ``frame`` are ignored. Salesforce's
    empty lookup (``000000000000000AAA`` or ``000000000000000``) becomes null.

    Examples
    --------
    >>> f = pl.DataFrame({"Id": ["0065e00000XyZab", "0065e00000XyZabAAF", "000000000000000"]})
    >>> normalise_ids(f, ["Id"])["Id"].to_list()
    ['0065e00000XyZabAAF', '0065e00000XyZabAAF', None]
    """
    present = [c for c in columns if c in frame.columns]
    if not present:
        return frame
    distinct = pl.concat([frame[c].drop_nulls() for c in present]).unique().to_list()
    lookup = {v: salesforce_id18(v) for v in distinct}
    return frame.with_columns(
        pl.when(pl.col(c).str.to_uppercase().is_in(list(EMPTY_IDS)))
        .then(None)
        .otherwise(pl.col(c).replace_strict(lookup, default=pl.col(c), return_dtype=pl.String))
        .alias(c)
        for c in present
    )
