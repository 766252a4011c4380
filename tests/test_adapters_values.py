"""Values of exports: money amounts as people write them, and automatic replies."""

from __future__ import annotations

import polars as pl

from effortlens.adapters.values import is_automatic_reply, parse_amounts


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
