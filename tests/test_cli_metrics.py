"""The metric commands of the ``effortlens`` script, run as a scheduler would run them."""

from __future__ import annotations

import json

import pytest

from effortlens.cli import main


def _json(capsys, argv: list[str]):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture()
def cache(enrich_cache):
    """The session's enrichment cache (tests/conftest.py): the facts are computed once."""
    return ["--cache-dir", str(enrich_cache)]


def test_deviants_json_names_the_planted_positive_deviants(small_planted, capsys, cache):
    truth = json.loads((small_planted / "truth.json").read_text())
    rows = _json(capsys, ["deviants", str(small_planted), "--json", *cache])
    for row in rows:
        assert {"rep_id", "peer_group", "direction", "rate", "peer_rate", "volume"} <= set(row)
        assert row["direction"] in ("positive", "negative")
    positive = {r["rep_id"] for r in rows if r["direction"] == "positive"}
    assert positive, "no positive deviant found on planted data"
    assert positive <= set(truth["positive_deviants"])
    negative = {r["rep_id"] for r in rows if r["direction"] == "negative"}
    assert negative <= set(truth["negative_deviants"])


def test_intervention_json_covers_the_planted_effect(small_planted, capsys, cache):
    truth = json.loads((small_planted / "truth.json").read_text())["intervention"]
    out = _json(
        capsys,
        [
            "intervention",
            str(small_planted),
            "--id",
            truth["intervention_id"],
            "--json",
            "--n-boot",
            "400",
            *cache,
        ],
    )
    assert {"estimate", "ci_low", "ci_high", "n_treated", "n_control"} <= set(out)
    assert out["ci_low"] <= truth["effect"] <= out["ci_high"]
    assert out["ci_low"] > 0
    assert out["n_treated"] > 0 and out["n_control"] > 0


def test_unknown_intervention_is_a_clear_error(small_planted, capsys, cache):
    assert main(["intervention", str(small_planted), "--id", "NOPE", *cache]) == 2
    err = capsys.readouterr().err
    assert "NOPE" in err and "INT-" in err


def test_flow_json_has_per_stage_fields_and_finds_the_leak(small_planted, capsys, cache):
    truth = json.loads((small_planted / "truth.json").read_text())
    rows = _json(capsys, ["flow", str(small_planted), "--json", *cache])
    assert [r["stage"] for r in rows][:2] == ["prospect", "discovery"]
    for row in rows:
        assert {"conversion", "leakage", "median_days", "p90_days", "verification_rate"} <= set(row)
    leakiest = max(rows, key=lambda r: r["leakage"] or 0)["stage"]
    assert leakiest == truth["leaky_stage"]


def test_roe_by_team_text_table_lists_every_team(small_planted, capsys, cache):
    assert main(["roe", str(small_planted), "--by", "team", *cache]) == 0
    out = capsys.readouterr().out
    truth = json.loads((small_planted / "truth.json").read_text())
    assert truth["low_selling_team"] in out
    assert "roe_per_100" in out


def test_organisation_and_habits_json(small_planted, capsys, cache):
    truth = json.loads((small_planted / "truth.json").read_text())
    teams = _json(capsys, ["organisation", str(small_planted), "--json", *cache])
    lowest = min(teams, key=lambda r: r["selling_time"])["team"]
    assert lowest == truth["low_selling_team"]
    habits = _json(capsys, ["habits", str(small_planted), "--json", *cache])
    assert {h["finding"] for h in habits} >= {"best timing", "cadence"}


def test_metric_command_on_a_folder_without_reps_exits_2(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "activities.csv").write_text("activity_id,rep_id,ts,activity_type\n")
    assert main(["roe", str(data), "--cache-dir", str(tmp_path / "c")]) == 2
    assert "reps" in capsys.readouterr().err


def test_findings_say_what_the_pages_say(small_planted, capsys, cache):
    from effortlens import load_folder, load_settings
    from effortlens.enrich import enrich
    from effortlens.findings import findings_text, team_findings

    assert main(["findings", str(small_planted), *cache]) == 0
    printed = capsys.readouterr().out.strip()
    enriched = enrich(load_folder(small_planted, settings=load_settings()), cache_dir=cache[1])
    assert printed == findings_text(team_findings(enriched))
    truth = json.loads((small_planted / "truth.json").read_text())
    assert truth["leaky_stage"] in printed
    rows = _json(capsys, ["findings", str(small_planted), "--json", *cache])
    assert [r["text"] for r in rows] == printed.splitlines()
