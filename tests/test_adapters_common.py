"""The adapters' shared pieces: value matching, ids, amounts, automatic replies."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_series_equal

from effortlens.adapters import salesforce_id18
from effortlens.adapters._common import boolean, is_automatic_reply, parse_amounts
from effortlens.adapters._sfid import normalise_ids
from effortlens.adapters._vocab import merge_spellings, translate, vocabulary


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


def test_salesforce_ids_15_and_18_characters_become_one():
    id15 = "0065e00000OpAc5"
    id18 = salesforce_id18(id15)
    assert len(id18) == 18 and id18.startswith(id15)
    assert salesforce_id18(id18) == id18
    assert salesforce_id18(id18.lower()) == id18  # case lost in a spreadsheet, restored
    assert salesforce_id18(id18.upper()) == id18
    assert salesforce_id18("Acme Corp") == "Acme Corp"
    assert salesforce_id18(None) is None


def test_salesforce_ids_with_different_case_stay_different_records():
    assert salesforce_id18("0015e00000AbCdE") != salesforce_id18("0015e00000ABCDE")


def test_normalise_ids_joins_mixed_forms_and_leaves_the_input_alone():
    frame = pl.DataFrame({"Id": ["0065e00000OpAc5", "0065E00000OPAC5AAF"], "Name": ["a", "b"]})
    out = normalise_ids(frame, ["Id", "OwnerId"])
    assert out["Id"].n_unique() == 1
    assert out["Name"].to_list() == ["a", "b"]
    assert frame["Id"].to_list() == ["0065e00000OpAc5", "0065E00000OPAC5AAF"]


def test_parse_amounts_reads_symbols_codes_and_separators():
    values = pl.Series(["$1,200.50", "1.200,50 €", "EUR 300", "(1,000)", "CHF 2'500", None, "n/a"])
    amount, currency, _ = parse_amounts(values)
    assert amount.to_list() == ["1200.50", "1200.50", "300", "-1000", "2500", None, "n/a"]
    assert currency.to_list() == ["USD", "EUR", "EUR", None, "CHF", None, None]


def test_parse_amounts_decides_the_decimal_comma_per_column():
    amount, _, notes = parse_amounts(pl.Series(["48.000,00", "12000", "9,5"]))
    assert amount.to_list() == ["48000.00", "12000", "9.5"]
    assert any("decimal comma" in n for n in notes)
    amount, _, notes = parse_amounts(pl.Series(["48,000", "12,000.25"]))
    assert amount.to_list() == ["48000", "12000.25"]
    assert not any("decimal comma" in n for n in notes)


def test_automatic_replies_are_told_from_subject_headers_and_sender():
    frame = pl.DataFrame(
        {
            "subject": [
                "RE: pricing",
                "Automatic reply: pricing",
                "Abwesenheitsnotiz: Angebot",
                "RE: pricing",
                "Undeliverable: pricing",
                "Réponse automatique : offre",
            ],
            "headers": [None, None, None, '{"Auto-Submitted": "auto-replied"}', None, None],
            "sender": [
                "ann@acme.example",
                "ann@acme.example",
                "jo@firma.example",
                "ann@acme.example",
                "MAILER-DAEMON@mx.example",
                "luc@societe.example",
            ],
        }
    )
    flags = frame.select(
        is_automatic_reply(
            subject=pl.col("subject"), headers=pl.col("headers"), sender=pl.col("sender")
        )
    )
    assert flags.to_series().to_list() == [False, True, True, True, True, True]


def test_boolean_reads_crm_and_spreadsheet_spellings():
    frame = pl.DataFrame({"v": ["true", "FALSE", "1", "0", "Yes", "ja", "", None, "maybe"]})
    out = frame.select(boolean(pl.col("v"))).to_series().to_list()
    assert out == [True, False, True, False, True, True, None, None, None]
