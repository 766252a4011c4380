"""Matching the values people type to EffortLens's vocabularies, and merging spellings."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_series_equal

from effortlens.adapters.matching import merge_spellings, translate, vocabulary


def test_translate_merges_spellings_that_differ_in_case_and_spaces_and_says_so():
    vocab = vocabulary({"Pro X": "proposal"}, targets=("proposal",))
    values = pl.Series(["Pro X", "ProX", "pro  x", None])
    out, notes = translate(values, vocab, what="stage", where="deals.csv")
    assert out.to_list() == ["proposal", "proposal", "proposal", None]
    assert len(notes) == 1
    assert "'Pro X' (1)" in notes[0] and "'ProX' (1)" in notes[0] and "deals.csv" in notes[0]


def test_translate_matches_misspellings_by_close_spelling_and_never_silently():
    vocab = vocabulary({"Negotiation/Review": "negotiation", "email": "email"})
    out, notes = translate(pl.Series(["Negotation/Review", "Emial"]), vocab, what="type")
    assert out.to_list() == ["negotiation", "email"]
    assert len(notes) == 1
    assert "'Negotation/Review' (1) read as 'negotiation/review'" in notes[0]
    assert "'Emial' (1) read as 'email'" in notes[0]


def test_translate_leaves_unknown_values_for_validation_to_judge():
    vocab = vocabulary({"closed won": "won"})
    out, notes = translate(pl.Series(["Qualifizierung"]), vocab, what="stage")
    assert out.to_list() == ["Qualifizierung"]
    assert notes == []


def test_translate_does_not_mutate_its_input():
    values = pl.Series("s", ["Closed Won"])
    translate(values, {"closed won": "won"}, what="outcome")
    assert values.to_list() == ["Closed Won"]


def test_merge_spellings_keeps_the_most_frequent_spelling():
    values = pl.Series(["Mid-Market", "Mid Market", "Mid-Market", "mid market", "SMB"])
    out, notes = merge_spellings(values, what="segment", where="User.csv")
    assert out.to_list() == ["Mid-Market"] * 4 + ["SMB"]
    assert notes == [
        "User.csv: segment spellings 'Mid Market' (1), 'Mid-Market' (2), "
        "'mid market' (1) merged as 'Mid-Market'"
    ]


def test_merge_spellings_reports_near_misses_without_merging_them():
    values = pl.Series(
        ["Enterprise", "Enterprise", "Enterprse", "East Sales", "West Sales", "Team 1", "Team 10"]
    )
    out, notes = merge_spellings(values, what="segment")
    assert_series_equal(out, values)
    assert len(notes) == 1
    assert "'Enterprise' (2) and 'Enterprse' (1)" in notes[0]
