"""Finding sentences: tiny tables say what they hold; planted data finds the planted thing;
null data says nothing stands out where that is the question."""

from __future__ import annotations

import json

import polars as pl
import pytest

from effortlens.findings import (
    Finding,
    by_section,
    deviance_findings,
    findings_html,
    findings_text,
    habits_findings,
    intervention_findings,
    intervention_verdict,
    journey_findings,
    mirror_findings,
    organisation_findings,
    roe_headline,
    team_findings,
)
from effortlens.vocabulary import WEEKDAY_NAMES, hour_label


def _habits(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema=["finding", "pattern", "activities", "responded", "response_rate", "lift"],
        orient="row",
    )


def test_finding_html_escapes_data_and_bolds_the_stressed_words():
    finding = Finding("deviants", "**<Ann & Bo>** beat peers.")
    assert finding.plain == "<Ann & Bo> beat peers."
    assert finding.html == "<b>&lt;Ann &amp; Bo&gt;</b> beat peers."
    assert findings_html([]) == ""
    html = findings_html([finding, Finding("what_differs", "Next.", new_line=True)])
    assert html == '<div class="el-finding"><b>&lt;Ann &amp; Bo&gt;</b> beat peers.<br>Next.</div>'
    assert findings_text([finding, Finding("x", "Two.")]) == "<Ann & Bo> beat peers.\nTwo."


def test_habits_findings_name_the_top_ranked_cell_the_weakest_follow_up_and_sequence():
    table = _habits(
        [
            ("best timing", "call · Tue · 09:00", 400, 120, 0.30, 1.5),
            ("best timing", "email · Mon · 10:00", 900, 90, 0.10, 1.2),
            ("worst timing", "email · Sun · 22:00", 60, 1, 0.02, 0.2),
            ("cadence", "first touch", 900, 9, 0.01, 0.1),  # never the "least answered"
            ("cadence", "0-1", 500, 100, 0.20, 1.2),
            ("cadence", "31+", 49, 0, 0.0, 0.0),  # too few touches to be named
            ("cadence", "15-30", 300, 15, 0.05, 0.4),
            ("sequence", "call → email", 700, 140, 0.20, 1.8),
        ]
    )
    found = habits_findings(table)
    assert [f.topic for f in found] == ["timing", "cadence", "sequence"]
    assert found[0].plain.startswith("Calls on Tue at 09:00 are answered 1.5× as often as calls")
    assert "**15-30 days**" in found[1].text
    assert found[2].plain.startswith("An email that ends the sequence call → email")
    assert "700 times seen" in found[2].plain


def test_habits_findings_name_a_sequence_only_when_its_lower_limit_clears_the_bar():
    # 1.3x on 787 touches (a null sample's top sequence): its lower 95% limit is ~1.15x
    weak = ("sequence", "call → demo → email", 787, 153, 0.195, 1.3)
    strong = ("sequence", "call → email", 3000, 900, 0.30, 1.5)  # lower limit ~1.43x
    effects = {"timing": pl.DataFrame(), "cadence": pl.DataFrame()}
    (silent,) = habits_findings(_habits([weak]), effects=effects)
    assert silent.plain.startswith("No sequence of touches stands out")
    assert habits_findings(_habits([weak])) == []  # the command line's table: no sentence
    (named,) = habits_findings(_habits([weak, strong]), effects=effects)
    assert "call → email" in named.plain and "demo" not in named.plain
    assert "credited to the last touch" in named.plain


def test_habits_findings_stay_silent_when_the_best_is_no_better_than_its_type():
    table = _habits(
        [
            ("best timing", "call · Tue · 09:00", 400, 40, 0.10, 1.0),
            ("sequence", "call → email", 700, 70, 0.10, 0.9),
        ]
    )
    assert habits_findings(table) == []


def _deviance(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema=["rep_id", "rep_name", "peer_group", "direction", "rate", "peer_rate", "z"],
        orient="row",
    )


def test_deviance_findings_say_nothing_stands_out_without_deviants():
    table = _deviance([("a", "Ann", "g", "none", 0.2, 0.2, 0.1)])
    (finding,) = deviance_findings(table, pl.DataFrame(), metric="win_rate")
    assert finding.plain.startswith("No rep stands outside the 99.8% limits")
    assert "win rate" in finding.plain


def test_deviance_findings_name_positive_deviants_largest_z_first():
    table = _deviance(
        [
            ("a", "Ann", "g", "positive", 0.30, 0.2, 3.1),
            ("b", None, "g", "positive", 0.40, 0.2, 5.0),
            ("c", "Cy", "g", "negative", 0.05, 0.2, -4.0),
            ("d", "Di", "g", "none", 0.2, 0.2, 0.0),
        ]
    )
    differs = pl.DataFrame(
        {
            "feature": ["activity_type_share"],
            "level": ["call"],
            "deviant_value": [0.5],
            "peer_value": [0.2],
        }
    )
    deviants, differs_finding = deviance_findings(table, differs, metric="response_rate")
    text = deviants.plain
    assert text.startswith("2 reps beat peers just like them on response rate")
    assert text.index("b (g): 40%") < text.index("Ann (g): 30%")  # no name: the id
    assert "1 rep falls clearly below" in text
    assert differs_finding.new_line
    assert "activity type share — call (50% against 20%" in differs_finding.plain


def test_deviance_findings_say_when_no_positive_deviant_is_no_reassurance():
    # a null sample's win rates: one rep far below, the others' limits too wide to tell
    table = _deviance(
        [("a", "Ann", "g", "negative", 0.0, 0.36, -3.6), ("b", "Bo", "g", "none", 0.3, 0.3, 0.1)]
    ).with_columns(volume=pl.Series([21, 40]), detectable=pl.Series([False, True]))
    (finding,) = deviance_findings(table, pl.DataFrame(), metric="win_rate")
    assert finding.plain == (
        "No rep beats their peers on win rate beyond chance, but for 1 of 2 reps the limits "
        "are too wide to tell. 1 rep falls clearly below their peers."
    )
    powered = table.with_columns(detectable=pl.lit(True))
    (finding,) = deviance_findings(powered, pl.DataFrame(), metric="win_rate")
    assert finding.plain.startswith("No rep beats their peers on win rate beyond chance. 1 rep")


def test_journey_findings_name_the_leakiest_slowest_and_least_verified_stage():
    flow = pl.DataFrame(
        {
            "stage": ["prospect", "proposal", "commit", "never"],
            "entered": [100, 50, 20, 0],
            "leakage": [0.1, 0.4, 0.05, 0.9],
            "median_days": [5.0, 30.0, 10.0, 99.0],
            "p90_days": [9.0, 60.0, None, 99.0],
            "verification_rate": [0.9, 0.6, 0.2, 0.0],
        }
    )
    leak, wait, verified = journey_findings(flow)
    assert "**proposal**" in leak.text and "40%" in leak.plain
    assert "**proposal**" in wait.text and "slowest 10% over 60" in wait.plain
    assert verified.text.startswith("**commit**")
    *_, unknown = journey_findings(flow, has_evidence=False)
    assert "cannot be judged" in unknown.plain
    assert journey_findings(flow.filter(pl.col("entered") == 0)) == []


def test_journey_findings_name_no_unverified_stage_when_none_stands_out():
    flow = pl.DataFrame(
        {
            "stage": ["discovery", "evaluation", "commit"],
            "entered": [4000, 3300, 2000],
            "leakage": [0.15, 0.14, 0.15],
            "median_days": [14.0, 14.0, 13.5],
            "p90_days": [30.0, 30.0, 29.0],
            "verification_rate": [0.82, 0.70, 0.67],  # a null sample's spread
        }
    )
    *_, verified = journey_findings(flow)
    assert verified.plain == (
        "No stage stands out for lack of buyer evidence: 67% to 82% of stage entries had a "
        "buyer verifier."
    )


def test_journey_findings_say_a_stall_is_a_slower_exit_with_its_median():
    flow = pl.DataFrame(
        {
            "stage": ["proposal", "negotiation"],
            "entered": [900, 800],
            "leakage": [0.1, 0.1],
            "median_days": [12.0, 44.0],
            "p90_days": [30.0, None],
            "verification_rate": [0.8, 0.8],
        }
    )
    flags = pl.DataFrame(
        {
            "stage": ["proposal", "negotiation"],
            "leak_hazard": [0.1, 0.1],
            "others_leak_hazard": [0.1, 0.1],
            "leak_ratio": [1.0, 1.0],
            "leaky": [False, False],
            "stay_ratio": [0.5, 8.0],
            "stalled": [False, True],
        }
    )
    found = {f.topic: f.plain for f in journey_findings(flow, flags=flags)}
    assert found["leakage"].startswith("No stage stands out for leakage")
    assert found["waiting"] == (
        "Deals stall at negotiation (deals leave it 8.0× more slowly per day than the other "
        "stages; median stay 44 days)."
    )


def _daily(responded: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "is_customer_facing": [True, False],
            "activities": [10, 5],
            "hours": [5.0, 2.0],
            "responded": [responded, 0],
            "response_weight": [2.0 * responded, 0.0],
            "no_impact_hours": [1.0, 2.0],
        }
    )


def test_roe_headline_compares_with_the_period_before():
    headline = roe_headline(_daily(4), previous=_daily(2))
    rows = {r["metric"]: r for r in headline.iter_rows(named=True)}
    assert rows["activities"]["value"] == 10 and rows["activities"]["previous"] == 10
    assert rows["response_rate"]["value"] == pytest.approx(0.4)
    assert rows["response_rate"]["change"] == pytest.approx(0.2)
    assert rows["roe_per_100"]["value"] == pytest.approx(80.0)
    assert rows["no_impact_share"]["higher_is_better"] is False
    alone = roe_headline(_daily(4))
    assert alone["previous"].null_count() == alone.height
    assert alone["change"].null_count() == alone.height


def test_by_section_keeps_each_pages_findings_together():
    found = [Finding("timing", "a"), Finding("deviants", "b"), Finding("cadence", "c")]
    assert [[f.text for f in group] for group in by_section(found)] == [["a", "c"], ["b"]]


def test_organisation_findings_name_the_least_selling_and_most_leaving_teams():
    table = pl.DataFrame(
        {
            "team": ["A", "B", "C"],
            "selling_time": [0.30, 0.12, None],
            "internal_load": [0.40, 0.60, None],
            "annualised_attrition": [0.05, 0.10, 0.25],
        }
    )
    shares = pl.DataFrame({"metric": ["response_rate"], "share_between": [0.3]})
    found = organisation_findings(table, shares, {"rho": -0.8, "n_teams": 3})
    assert [f.topic for f in found] == ["selling_time", "attrition", "between_teams"]
    assert found[0].text.startswith("**B** has the least time left for selling: 12%")
    assert found[1].text.startswith("**C** loses the most people by choice (25% a year)")
    with_four = organisation_findings(table, shares, {"rho": -0.8, "n_teams": 4})
    assert "rank correlation of -0.80" in with_four[2].plain
    assert organisation_findings(table.clear(), shares, {}) == []


def test_intervention_verdict_reads_the_interval():
    assert "real rise" in intervention_verdict({"ci_low": 0.01, "ci_high": 0.1})
    assert "did worse" in intervention_verdict({"ci_low": -0.1, "ci_high": -0.01})
    assert "chance" in intervention_verdict({"ci_low": -0.01, "ci_high": 0.1})
    assert "Not enough" in intervention_verdict({"ci_low": None, "ci_high": None})


def test_pre_trend_text_says_alike_only_when_the_placebo_interval_holds_zero():
    from effortlens.findings import pre_trend_text

    alike = {"metric": "response_rate", "pre_trend": 0.004}
    alike |= {"pre_trend_low": -0.01, "pre_trend_high": 0.018}
    assert pre_trend_text(alike) == (
        "Before the start, participants and comparison moved alike (+0.4 pts, ±1.4 pts)."
    )
    apart = alike | {"pre_trend": -0.019, "pre_trend_low": -0.037, "pre_trend_high": -0.001}
    text = pre_trend_text(apart)
    assert text.startswith("Caution: before the start, participants and comparison already")
    assert "1 in 10" in text  # its measured false-alarm rate (VALIDITY.md), not a verdict
    assert pre_trend_text(alike | {"pre_trend": None}) == ""


def test_intervention_findings_stress_the_verdict():
    effect = {
        "metric": "response_rate",
        "estimate": 0.05,
        "ci_low": 0.02,
        "ci_high": 0.08,
        "n_treated": 10,
        "n_control": 20,
        "window_weeks": 8,
        "start_date": "2025-07-07",
    }
    (finding,) = intervention_findings(effect)
    assert finding.text.startswith(f"**{intervention_verdict(effect)}** ")
    assert finding.plain.endswith(
        "+5.0 pts (95% CI +2.0 pts to +8.0 pts), 10 participants vs 20 "
        "comparison reps, 8 weeks either side of 2025-07-07."
    )


def test_mirror_findings_compare_the_week_with_the_peer_median():
    summary = pl.DataFrame(
        {
            "metric": ["activities", "response_rate"],
            "week": ["2025-03-03", "2025-03-03"],
            "value": [40.0, 0.25],
            "peer_median": [30.0, 0.30],
            "peers": [1, 1],
        }
    )
    (finding,) = mirror_findings(summary, rep_label="Ann <3")
    assert finding.plain == (
        "Week of 2025-03-03: Ann <3 answered by buyers on 25% of touches — below the peer "
        "median of 30% (1 peer)."
    )
    assert "Ann &lt;3" in finding.html
    no_peers = summary.with_columns(peer_median=pl.lit(None, pl.Float64))
    assert mirror_findings(no_peers, rep_label="Ann") == []


# --- planted truths and null data -----------------------------------------------------------


def _enriched(folder, cache_dir):
    from effortlens import load_folder, load_settings
    from effortlens.enrich import enrich

    return enrich(load_folder(folder, settings=load_settings()), cache_dir=cache_dir)


def test_team_findings_find_what_was_planted(small_planted, tmp_path):
    truth = json.loads((small_planted / "truth.json").read_text())
    found = {f.topic: f.plain for f in team_findings(_enriched(small_planted, tmp_path))}
    timing = truth["timing"]
    planted_slots = [
        f"on {WEEKDAY_NAMES[d - 1]} at {hour_label(h)}"
        for d in timing["best_weekdays"]
        for h in timing["best_hours"]
    ]
    assert any(slot in found["timing"] for slot in planted_slots), found["timing"]
    assert "31+ days" in found["cadence"]  # the planted silence starts at 21 days
    assert " → ".join(truth["sequence"]["sequence"]) + " is answered" in found["sequence"]
    assert found["deviants"].startswith(f"{len(truth['positive_deviants'])} reps beat peers")
    assert truth["deviant_practice"]["activity_type"] in found["what_differs"]
    assert truth["leaky_stage"] in found["leakage"]
    assert truth["stalled_stage"] in found["waiting"]
    assert truth["unverified_stage"] in found["verification"]


def test_team_findings_on_null_data_say_no_rep_stands_out(small_null, tmp_path):
    found = {f.topic: f.plain for f in team_findings(_enriched(small_null, tmp_path))}
    assert found["deviants"].startswith("No rep stands outside the 99.8% limits")
    assert "what_differs" not in found
    # nothing was planted: no habit, sequence or stage is named
    for topic in ("timing", "cadence", "sequence", "leakage", "waiting", "verification"):
        assert found[topic].startswith("No "), (topic, found[topic])
