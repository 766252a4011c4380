"""The second data family and a few fast seeds of the validity harness (bench/validity.py is
the full run; VALIDITY.md its results)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from effortlens.enrich import enrich_tables
from effortlens.schema import TABLES
from effortlens.settings import load_settings
from effortlens.validity.dgp import Family, generate_tables
from effortlens.validity.harness import validity_run


@pytest.fixture(scope="module")
def planted():
    return generate_tables(seed=5, mode="planted")


def test_tables_are_canonical_and_seeded(planted):
    tables, truth = planted
    for name, frame in tables.items():
        assert frame.schema == TABLES[name].schema, name
    again, _ = generate_tables(seed=5, mode="planted")
    assert again["activities"].equals(tables["activities"])
    assert not generate_tables(seed=6)[0]["activities"].equals(tables["activities"])


def test_peer_groups_are_unequal_and_volumes_heavy_tailed(planted):
    tables, truth = planted
    sizes = sorted(truth["peer_groups"].values())
    assert sizes[0] <= 2 and sizes[-1] >= 20
    volume = tables["activities"].group_by("rep_id").len()["len"].to_numpy()
    assert volume.max() > 3 * np.median(volume)


def test_reps_differ_by_more_than_chance_without_any_deviant():
    tables, truth = generate_tables(seed=2, mode="null")
    assert truth["deviants"] == {} and truth["intervention"]["effect"] == 0.0
    enriched = enrich_tables(tables, settings=load_settings())
    rates = (
        enriched.activities.filter("is_customer_facing")
        .group_by("rep_id", "peer_group")
        .agg(n=pl.len(), r=pl.col("responded").mean())
        .filter(pl.col("n") >= 300)
        .with_columns(
            centre=(pl.col("r") * pl.col("n")).sum().over("peer_group")
            / pl.col("n").sum().over("peer_group")
        )
    )
    chi2 = (
        (rates["r"] - rates["centre"]) ** 2 / (rates["centre"] * (1 - rates["centre"]) / rates["n"])
    ).sum()
    assert chi2 / rates.height > 1.5  # over-dispersed: well above the binomial's 1


def test_segment_trends_pull_smb_down_and_enterprise_up():
    family = Family(rep_sd=0.0, shock_sd=0.0, trend_scale=1.0)
    tables, _ = generate_tables(seed=3, mode="null", family=family)
    enriched = enrich_tables(tables, settings=load_settings())
    halves = (
        enriched.activities.filter("is_customer_facing")
        .with_columns(late=pl.col("day") >= pl.col("day").min() + pl.duration(days=140))
        .group_by("segment", "late")
        .agg(pl.col("responded").mean())
        .pivot(on="late", index="segment", values="responded")
    )
    change = dict(zip(halves["segment"], halves["true"] - halves["false"], strict=True))
    assert change["SMB"] < -0.02 and change["Enterprise"] > 0.02


def test_the_estimand_truth_is_exact_on_the_counterfactual():
    run = validity_run(seed=4, mode="planted")
    assert run.counterfactual is not None
    # only the participants' after-start touches can gain buyer actions
    extra = run.enriched.actions.height - run.counterfactual.actions.height
    assert extra > 0
    treated = set(run.truth["intervention"]["treated"])
    gained = (
        run.enriched.activities.select("activity_id", "rep_id", "day", a="responded")
        .join(run.counterfactual.activities.select("activity_id", b="responded"), on="activity_id")
        .filter(pl.col("a") != pl.col("b"))
    )
    assert set(gained["rep_id"]) <= treated
    start = pl.lit(run.truth["intervention"]["start_date"]).str.to_date()
    assert gained.filter(pl.col("day") < start).height == 0


# --- a few fast seeds of the harness (bench/validity.py runs 20 of each family) -------------

from effortlens.validity.harness import (  # noqa: E402
    score_deviance,
    score_flow,
    score_habits,
    score_interventions,
)


@pytest.fixture(scope="module")
def planted_run():
    return validity_run(seed=4, mode="planted")


@pytest.fixture(scope="module")
def null_run():
    return validity_run(seed=4, mode="null")


def test_intervention_within_peer_groups_survives_strong_segment_trends():
    # SMB drifts down and Enterprise up twice as fast as the family's default, most
    # participants are in SMB: a pooled comparison would read far below the truth
    run = validity_run(seed=7, mode="planted", trend_scale=2.0)
    scored = score_interventions(run, n_boot=999)
    assert scored["covered"], scored
    assert abs(scored["estimate"] - scored["truth"]) < 0.25 * scored["truth"], scored
    assert abs(scored["pre_trend"]) < 0.02
    assert scored["p_value"] >= 1 / 1000


def test_intervention_on_null_data_covers_zero(null_run):
    scored = score_interventions(null_run, n_boot=999)
    assert scored["truth"] == 0 and scored["covered"], scored


def test_deviance_finds_the_strong_deviant_and_flags_nobody_on_null(planted_run, null_run):
    planted = score_deviance(planted_run)
    assert planted["by_ratio"]["2.5"][0] == 1, planted
    assert planted["false_flags"] == 0
    assert planted["rho"] < 2 * planted["oracle_rho"]  # the deviants widen the limits little
    null = score_deviance(null_run)
    assert null["false_flags"] == 0 and null["reps_tested"] >= 40


def test_flow_names_the_planted_stages_and_none_on_null(planted_run, null_run):
    planted = score_flow(planted_run)
    assert (planted["leaky"], planted["stalled"]) == (["evaluation"], ["negotiation"])
    null = score_flow(null_run)
    assert null["leaky"] == [] and null["stalled"] == []


def test_habits_recover_planted_timing_and_find_none_on_null(planted_run, null_run):
    planted = score_habits(planted_run)
    assert planted["method"] == "habit_effects"
    assert planted["timing_top_share"] == 1.0 and planted["silence_lowest"]
    null = score_habits(null_run)
    assert null["timing_flagged"] == 0 and null["cadence_flagged"] == 0
    assert 0.93 < null["quick_lift"] < 1.07  # last-touch credit would read about 1.3


# --- the project's own generator through the same scorers (the shared small samples) -------


def _project_run(sample, mode: str):
    from effortlens.validity.harness import Run

    enriched, truth = sample
    return Run("project", 23, mode, enriched, truth)


def test_project_family_passes_the_harness_checks(small_planted_enriched, small_null_enriched):
    planted = _project_run(small_planted_enriched, "planted")
    null = _project_run(small_null_enriched, "null")
    # interventions: the planted 0.08 (on the buyers' scale) covered, zero covered on null
    effect = score_interventions(planted, n_boot=999)
    assert effect["covered"] and effect["excludes_zero"], effect
    assert abs(effect["estimate"] - effect["planted"]) < 0.25 * effect["planted"], effect
    assert score_interventions(null, n_boot=999)["covered"]
    # deviance: every planted deviant, no false flag, the same as the oracle
    found = score_deviance(planted)
    assert found["found"] == found["planted"] == found["oracle_found"] and found["has_q"]
    assert found["false_flags"] == 0
    assert score_deviance(null)["false_flags"] == 0
    # flow: the planted stages named, none on null
    flow = score_flow(planted)
    assert (flow["leaky"], flow["stalled"]) == ([flow["leaky_truth"]], [flow["stalled_truth"]])
    assert score_flow(null)["leaky"] == [] and score_flow(null)["stalled"] == []
    # habits (no generator truth used by the method): planted timing on top, nothing on null
    habits = score_habits(planted)
    assert habits["timing_top_share"] >= 0.8 and habits["silence_lowest"], habits
    quiet = score_habits(null)
    assert quiet["timing_flagged"] == 0 and quiet["cadence_flagged"] == 0, quiet
