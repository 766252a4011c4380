"""Settings: defaults, partial overrides merged over them, and a clear message per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from effortlens.settings import ACTION_TYPES, ACTIVITY_TYPES, SettingsError, load_settings


def settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_valid_and_serve_the_design():
    s = load_settings()
    assert s.stages == ("prospect", "discovery", "evaluation", "proposal", "negotiation", "commit")
    assert s.customer_facing == ("email", "call", "meeting", "demo", "proposal", "social")
    assert s.internal == ("internal", "admin")
    assert set(s.action_weights) == set(ACTION_TYPES)
    assert s.verifiers == ("meeting_held", "proposal_requested", "mutual_plan", "verbal_commit")
    assert set(s.default_duration_min) == set(ACTIVITY_TYPES)
    assert set(s.activity_map.values()) <= set(ACTIVITY_TYPES)
    assert (s.attribution_window_days, s.peer_keys) == (14, ("segment", "role"))
    assert s.source == "<defaults>"


def test_partial_override_merges_over_the_defaults(tmp_path):
    path = settings_file(
        tmp_path,
        'timezone = "Europe/Paris"\n'
        "[activities.map]\n"
        '"Webinar" = "demo"\n'
        "[attribution]\n"
        "window_days = 7\n"
        "[currency_rates]\n"
        "EUR = 1.08\n",
    )
    s = load_settings(path)
    defaults = load_settings()
    assert (s.timezone, s.attribution_window_days) == ("Europe/Paris", 7)
    assert s.activity_map["webinar"] == "demo"  # keys are lower-cased
    assert s.activity_map["zoom"] == "meeting"  # the defaults' map is kept
    assert s.currency_rates == {"EUR": 1.08}
    assert s.stages == defaults.stages and s.action_weights == defaults.action_weights
    assert s.source == str(path)
    assert s.fingerprint() != defaults.fingerprint()
    assert load_settings(path).fingerprint() == s.fingerprint()


def test_customer_facing_types_include_other_only_when_asked(tmp_path):
    assert "other" not in load_settings().customer_facing_types
    path = settings_file(tmp_path, "[activities]\nother_is_customer_facing = true\n")
    assert load_settings(path).customer_facing_types[-1] == "other"


@pytest.mark.parametrize(
    ("toml", "key", "expected"),
    [
        ('timezone = "Mars/Olympus"', "timezone", "an IANA time zone"),
        ('currency = "dollars"', "currency", "a three-letter ISO code"),
        ("[stages]\norder = []", "stages.order", "at least one stage"),
        ('[stages]\norder = ["a", "a"]', "stages.order", "a list without repeats"),
        ('[stages.map]\nfinale = "victory"', "stages.map.finale", "one of stages.order"),
        (
            '[activities]\ncustomer_facing = ["email", "fax"]',
            "activities.customer_facing",
            "a list drawn from",
        ),
        ('[activities]\ninternal = ["email"]', "activities.internal", "disjoint from"),
        (
            '[activities]\nother_is_customer_facing = "yes"',
            "activities.other_is_customer_facing",
            "true or false",
        ),
        ('[activities.map]\nfax = "telegram"', "activities.map.fax", "one of"),
        (
            "[activities.default_duration_min]\ncall = -5",
            "activities.default_duration_min.call",
            ">= 0",
        ),
        (
            "[activities.default_duration_min]\nfax = 5",
            "activities.default_duration_min.fax",
            "a key among",
        ),
        ('[buyer_actions.weights]\nreply = "high"', "buyer_actions.weights.reply", "a number"),
        (
            '[buyer_actions]\nverifiers = ["handshake"]',
            "buyer_actions.verifiers",
            "a list drawn from",
        ),
        (
            "[attribution]\nwindow_days = -3",
            "attribution.window_days",
            "a positive whole number of days",
        ),
        (
            "[attribution]\nwindow_days = 2.5",
            "attribution.window_days",
            "a positive whole number of days",
        ),
        (
            "[organisation]\nworking_hours_per_week = 200",
            "organisation.working_hours_per_week",
            "a number of hours in (0, 168]",
        ),
        ('[peers]\nkeys = ["rep_name"]', "peers.keys", "a list drawn from"),
        ("[peers]\nmin_volume = 0", "peers.min_volume", "a whole number >= 1"),
        ("[currency_rates]\nEUR = 0", "currency_rates.EUR", "a positive number"),
    ],
)
def test_each_invalid_value_names_file_and_key(tmp_path, toml, key, expected):
    path = settings_file(tmp_path, toml + "\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key} must be ")
    assert expected in message


def test_unknown_key_is_rejected_with_the_known_ones(tmp_path):
    path = settings_file(tmp_path, "[attribution]\nwindow_days = 7\nwindow_hours = 3\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(err.value) == (
        f"{path}: unknown setting 'attribution.window_hours'; known keys here: window_days"
    )
    path = settings_file(tmp_path, 'colour = "blue"\n')
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings(path)


def test_section_given_as_a_value_is_rejected(tmp_path):
    path = settings_file(tmp_path, "stages = 3\n")
    with pytest.raises(SettingsError, match=r"'stages' must be a table \(\[stages\]\)"):
        load_settings(path)


def test_bad_toml_and_missing_file(tmp_path):
    path = settings_file(tmp_path, "timezone = \n")
    with pytest.raises(SettingsError, match=rf"^{path}: not valid TOML"):
        load_settings(path)
    with pytest.raises(SettingsError, match="settings file not found"):
        load_settings(tmp_path / "nope.toml")


def test_cli_reports_a_bad_settings_file_and_exits_2(tmp_path, capsys):
    from effortlens.cli import main

    path = settings_file(tmp_path, "[attribution]\nwindow_days = 0\n")
    assert main(["load", str(tmp_path), "--settings", str(path)]) == 2
    assert "attribution.window_days must be" in capsys.readouterr().err
