"""Matching the values people type to the words EffortLens knows, and saying what was done.

Two kinds of column:

- **vocabulary fields** (stage, outcome, activity type, action type) have a known set of
  targets. A raw value is matched after normalising case and whitespace; then ignoring
  punctuation and spaces (``"Pro X"`` = ``"ProX"``); then by close spelling (difflib, ratio
  >= 0.85). Every merge and every close-spelling match is written in a note, never silent.
  Values that match nothing are passed on unchanged (validation maps or quarantines them).
- **categories** (team, segment, region, role) have no fixed list. Spellings that differ only
  in case, spaces or punctuation are merged into the most frequent spelling, with a note;
  near misses (``"Enterprse"`` / ``"Enterprise"``) are reported but never merged, since
  ``"Team 1"`` and ``"Team 10"`` are as close as a typo. A near miss is two spellings with
  the same words but one, that one long (5+ letters) and close (ratio >= 0.85): ``"East
  Sales"`` and ``"West Sales"`` are not reported.

Examples
--------
>>> import polars as pl
>>> vocab = {"closed won": "won", "closed lost": "lost"}
>>> out, notes = translate(pl.Series(["Closed Won", "Closd Lost"]), vocab, what="outcome")
>>> out.to_list()
['won', 'lost']
"""

from __future__ import annotations

import difflib
import re
from collections import Counter

import polars as pl

#: Close-spelling threshold (difflib ratio) for vocabulary matches ("Emial" -> "email" is 0.8).
FUZZY_CUTOFF = 0.8


def normalise_key(value: str) -> str:
    """Lower case, trimmed, inner whitespace collapsed: the key vocabularies are stored under.

    Examples
    --------
    >>> normalise_key("  Closed   Won ")
    'closed won'
    """
    return " ".join(str(value).lower().split())


def compact_key(value: str) -> str:
    """:func:`normalise_key` without spaces and punctuation (``"Pro-X"`` -> ``"prox"``).

    Examples
    --------
    >>> compact_key("Negotiation / Review")
    'negotiationreview'
    """
    return re.sub(r"[\W_]+", "", normalise_key(value))


def vocabulary(*maps: dict[str, str], targets: tuple[str, ...] = ()) -> dict[str, str]:
    """Merge value maps (later ones win) into one normalised vocabulary.

    Each target also maps to itself, so canonical values pass through.

    Examples
    --------
    >>> vocabulary({"Qualifizierung": "discovery"}, targets=("discovery",))
    {'discovery': 'discovery', 'qualifizierung': 'discovery'}
    """
    out = {normalise_key(t): t for t in targets}
    for mapping in maps:
        out.update({normalise_key(k): v for k, v in mapping.items()})
    return out


def _match(raw: str, vocab: dict[str, str], compact: dict[str, str]) -> tuple[str | None, str]:
    """(key matched, how): how is "exact", "spelling" or "close"; key None when no match."""
    key = normalise_key(raw)
    if key in vocab:
        return key, "exact"
    squeezed = compact_key(raw)
    if squeezed and squeezed in compact:
        return compact[squeezed], "spelling"
    close = difflib.get_close_matches(key, list(vocab), n=1, cutoff=FUZZY_CUTOFF)
    if close:
        return close[0], "close"
    return None, "none"


def translate(
    values: pl.Series, vocab: dict[str, str], *, what: str, where: str = ""
) -> tuple[pl.Series, list[str]]:
    """Map raw values through ``vocab``; unmatched values are returned unchanged.

    Parameters
    ----------
    values
        Raw text (nulls stay null).
    vocab
        Normalised raw value -> target, as built by :func:`vocabulary`.
    what
        The field's name for notes (``"stage"``).
    where
        The file, for notes.

    Returns
    -------
    The translated series and the notes: merged spellings and close-spelling matches.

    Examples
    --------
    >>> out, notes = translate(pl.Series(["Pro X", "ProX"]), {"pro x": "proposal"}, what="stage")
    >>> out.to_list(), len(notes)
    (['proposal', 'proposal'], 1)
    """
    compact: dict[str, str] = {}
    for key in vocab:
        compact.setdefault(compact_key(key), key)
    counts = Counter(v for v in values.to_list() if v is not None)
    mapping: dict[str, str] = {}
    merged: dict[str, list[str]] = {}
    close: list[str] = []
    for raw in sorted(counts):
        key, how = _match(raw, vocab, compact)
        if key is None:
            continue
        mapping[raw] = vocab[key]
        if how == "close":
            close.append(f"'{raw}' ({counts[raw]}) read as '{key}' -> {vocab[key]}")
        else:
            merged.setdefault(key, []).append(raw)
    prefix = f"{where}: " if where else ""
    notes = [
        f"{prefix}{what} spellings "
        + ", ".join(f"'{s}' ({counts[s]})" for s in spellings)
        + f" merged as '{key}'"
        for key, spellings in merged.items()
        if len(spellings) > 1
    ]
    if close:
        notes.append(
            f"{prefix}{what} values matched by close spelling: "
            + "; ".join(close)
            + " (check them; add them to the mapping to silence this)"
        )
    out = values.replace_strict(mapping, default=values, return_dtype=pl.String)
    return out.alias(values.name), notes


def _preference(spelling: str, count: int) -> tuple:
    """Most frequent first; on ties the tidiest (single spaces, more capitals), then A-Z."""
    untidy = spelling != " ".join(spelling.split())
    return (-count, untidy, -sum(c.isupper() for c in spelling), spelling)


def _near_miss(a: str, b: str) -> bool:
    """Same words but one, and that one a long word spelled nearly the same."""
    wa, wb = normalise_key(a).split(), normalise_key(b).split()
    if len(wa) != len(wb):
        return False
    differ = [(x, y) for x, y in zip(wa, wb, strict=True) if x != y]
    if len(differ) != 1:
        return False
    x, y = differ[0]
    return (
        min(len(x), len(y)) >= 5
        and not (x.isdigit() or y.isdigit())
        and difflib.SequenceMatcher(None, x, y).ratio() >= 0.85
    )


def merge_spellings(
    values: pl.Series, *, what: str, where: str = ""
) -> tuple[pl.Series, list[str]]:
    """Merge category spellings that differ only in case, spaces or punctuation.

    The most frequent spelling wins (ties: the tidiest, then alphabetical). Near misses are
    reported, not merged.

    Examples
    --------
    >>> s = pl.Series(["Mid-Market", "Mid Market", "Mid-Market", "Enterprise"])
    >>> out, notes = merge_spellings(s, what="segment")
    >>> out.to_list()
    ['Mid-Market', 'Mid-Market', 'Mid-Market', 'Enterprise']
    """
    counts = Counter(v for v in values.to_list() if v is not None)
    groups: dict[str, list[str]] = {}
    for raw in counts:
        groups.setdefault(compact_key(raw) or raw, []).append(raw)
    mapping: dict[str, str] = {}
    notes: list[str] = []
    prefix = f"{where}: " if where else ""
    winners: dict[str, str] = {}
    for key, spellings in sorted(groups.items()):
        best = sorted(spellings, key=lambda s: _preference(s, counts[s]))[0]
        winners[key] = best
        if len(spellings) > 1:
            mapping.update({s: best for s in spellings})
            listed = ", ".join(f"'{s}' ({counts[s]})" for s in sorted(spellings))
            notes.append(f"{prefix}{what} spellings {listed} merged as '{best}'")
    spellings = sorted(winners.values())
    if len(spellings) <= 300:
        for i, a in enumerate(spellings):
            for b in spellings[i + 1 :]:
                if _near_miss(a, b):
                    notes.append(
                        f"{prefix}{what} '{a}' ({counts[a]}) and '{b}' ({counts[b]}) look like "
                        "one spelled two ways but were kept apart; correct the file if they are"
                    )
    out = values.replace_strict(mapping, default=values, return_dtype=pl.String)
    return out.alias(values.name), notes
