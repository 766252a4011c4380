"""Score EffortLens' statistics against planted truth, over seeds of two data families.

One *run* is one seed of one family in one mode (``planted`` or ``null``): the canonical
tables, their enriched facts and the truth. Each ``score_*`` function measures one metric on
one run and returns plain numbers; :func:`summarise` turns many runs into the figures of
``VALIDITY.md``.

Families
--------
- ``project``: :func:`effortlens.sample.generate` (``size="small"`` by default).
- ``validity``: :func:`effortlens.validity.dgp.generate_tables` (written apart from it).

Truth of the intervention estimand
----------------------------------
The estimate is a change in the *attributed* response rate. For the ``validity`` family the
truth is exact: the same run with the intervention's extra buyer actions removed (same random
numbers) is enriched too, and the estimand's value is the participants' mean after-start
attributed rate with the effect minus without it. The ``project`` generator has no such
counterfactual; there the planted effect (on the buyers' response probability) is the
reference, and the dilution by attribution is measured apart with the generator's record of
true causes (``dilution``).

Examples
--------
>>> run = validity_run(seed=1, mode="planted")  # doctest: +SKIP
>>> score_interventions(run)["covered"]  # doctest: +SKIP
True
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from effortlens.enrich import Enriched, enrich_tables
from effortlens.settings import load_settings
from effortlens.validity.dgp import generate_tables

FAMILIES: tuple[str, ...] = ("project", "validity")


@dataclass
class Run:
    """One seed of one family in one mode."""

    family: str
    seed: int
    mode: str
    enriched: Enriched
    truth: dict[str, Any]
    counterfactual: Enriched | None = None
    #: activity ids the generator records as true causes of a buyer action (project family)
    true_causes: pl.Series | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def validity_run(*, seed: int, mode: str = "planted", **family: Any) -> Run:
    """A run of the second family, with its counterfactual (no intervention effect)."""
    from effortlens.validity.dgp import Family

    tables, truth = generate_tables(seed=seed, mode=mode, family=Family(**family))
    settings = load_settings()
    enriched = enrich_tables(tables, settings=settings)
    counterfactual = None
    if truth["intervention"]["effect"]:
        cf_tables = {**tables, "buyer_actions": truth["counterfactual_actions"]}
        counterfactual = enrich_tables(cf_tables, settings=settings)
    return Run("validity", seed, mode, enriched, truth, counterfactual)


def project_run(*, seed: int, mode: str = "planted", size: str = "small") -> Run:
    """A run of the project's own generator (written to a temporary folder, then loaded)."""
    from effortlens import generate, load_folder

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        truth = json.loads(generate(out, size=size, mode=mode, seed=seed).read_text())
        data = load_folder(out, settings=load_settings())
        causes = pl.read_parquet(out / "_truth_responses.parquet")["activity_id"].drop_nulls()
        enriched = enrich_tables(data.tables, settings=data.settings)
    return Run("project", seed, mode, enriched, truth, true_causes=causes)


def make_run(family: str, *, seed: int, mode: str) -> Run:
    """One generated data set of ``family`` ("project" or the second family) with its truth."""
    if family == "project":
        return project_run(seed=seed, mode=mode)
    if family == "validity":
        return validity_run(seed=seed, mode=mode)
    raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")


# ------------------------------------------------------------------------- interventions


def _with_true_causes(enriched: Enriched, causes: pl.Series) -> Enriched:
    """The same facts with ``responded`` from the generator's record of true causes."""

    activities = enriched.activities.with_columns(
        responded=pl.col("activity_id").is_in(causes.implode())
    )
    daily = (
        activities.group_by("rep_id", "day", "activity_type")
        .agg(responded_true=pl.col("responded").sum().cast(pl.UInt32))
        .join(enriched.daily, on=["rep_id", "day", "activity_type"], how="right")
        .with_columns(responded=pl.col("responded_true").fill_null(0))
        .drop("responded_true")
        .select(enriched.daily.columns)
    )
    return enriched.replace(activities=activities, daily=daily)


def score_interventions(run: Run, **options: Any) -> dict[str, Any]:
    """Estimate, CI, the estimand's true value, coverage and whether the CI excludes zero."""
    from effortlens.interventions import intervention_effect

    iid = run.truth["intervention"]["intervention_id"]
    effect = intervention_effect(run.enriched, intervention_id=iid, **options)
    planted = float(run.truth["intervention"]["effect"])
    if run.counterfactual is not None:
        without = intervention_effect(run.counterfactual, intervention_id=iid, **options)
        truth = effect["treated_after"] - without["treated_after"]
    else:
        truth = planted
    out = {
        "estimate": effect["estimate"],
        "ci_low": effect["ci_low"],
        "ci_high": effect["ci_high"],
        "p_value": effect["p_value"],
        "planted": planted,
        "truth": truth,
        "covered": effect["ci_low"] <= truth <= effect["ci_high"],
        "excludes_zero": effect["ci_low"] > 0 or effect["ci_high"] < 0,
        "n_treated": effect["n_treated"],
        "n_control": effect["n_control"],
    }
    for key in ("pre_trend", "pre_trend_low", "pre_trend_high"):
        if key in effect:
            out[key] = effect[key]
    if run.true_causes is not None and planted:
        causal = intervention_effect(
            _with_true_causes(run.enriched, run.true_causes), intervention_id=iid, **options
        )
        out["estimate_true_causes"] = causal["estimate"]
    return out


# ------------------------------------------------------------------------------ deviance


def _oracle(run: Run, counts: pl.DataFrame, **options: Any) -> tuple[pl.DataFrame, float]:
    """The same funnel with the over-dispersion of the reps the truth says are no deviants.

    The oracle's ``rho`` is the plain (uncapped) moment estimate over the true non-deviants
    alone: the dispersion an estimator could reach if it knew who the deviants were. The
    flag rule is the method's own, so the two differ only in the dispersion used.
    """
    from effortlens.deviance import overdispersion, peer_deviance

    truth = run.truth
    deviants = set(truth["positive_deviants"]) | set(truth["negative_deviants"])
    table = peer_deviance(counts, run.enriched.reps, **options)
    units = table.filter(~pl.col("rep_id").is_in(list(deviants))).select(
        "peer_group", "successes", trials="volume"
    )
    rho = overdispersion(units, huber_k=float("inf"))
    reps = run.enriched.reps.drop("peer_group").join(
        table.select("rep_id", "peer_group"), on="rep_id"
    )
    options = {k: v for k, v in options.items() if k not in ("peer_keys", "min_peer_reps")}
    return peer_deviance(counts, reps, rho=rho, **options), rho


def score_deviance(run: Run) -> dict[str, Any]:
    """Recall of the planted deviants (by rate ratio), false flags, and the oracle's recall."""
    from effortlens import rep_deviance
    from effortlens.measures import response_counts

    table = rep_deviance(run.enriched, metric="response_rate")
    settings = run.enriched.settings
    options: dict[str, Any] = {"min_volume": settings.min_volume}
    if "peer_basis" in table.columns:  # the same groups as the method's
        options |= {"peer_keys": settings.peer_keys, "min_peer_reps": settings.min_peer_reps}
    oracle, oracle_rho = _oracle(run, response_counts(run.enriched.activities), **options)
    table = table.join(oracle.select("rep_id", oracle="direction"), on="rep_id")
    truth_dir = {r: "positive" for r in run.truth["positive_deviants"]} | {
        r: "negative" for r in run.truth["negative_deviants"]
    }
    ratios = run.truth.get("deviants") or {}
    flagged = dict(zip(table["rep_id"], table["direction"], strict=True))
    oracle_flag = dict(zip(table["rep_id"], table["oracle"], strict=True))
    found = {r: flagged.get(r) == d for r, d in truth_dir.items()}
    oracle_found = {r: oracle_flag.get(r) == d for r, d in truth_dir.items()}
    others = table.filter(~pl.col("rep_id").is_in(list(truth_dir)))
    testable = others.filter(pl.col("eligible"))
    false_flags = int((testable["direction"] != "none").sum())
    return {
        "planted": len(truth_dir),
        "found": sum(found.values()),
        "oracle_found": sum(oracle_found.values()),
        "by_ratio": {
            str(ratios.get(r, "project")): [int(found[r]), int(oracle_found[r])] for r in found
        },
        "reps_tested": testable.height,
        "false_flags": false_flags,
        "oracle_false_flags": int((testable["oracle"] != "none").sum()),
        "rho": float(table["overdispersion"][0]) if "overdispersion" in table.columns else None,
        "oracle_rho": oracle_rho,
        "has_q": "q_value" in table.columns,
    }


# ----------------------------------------------------------------------------------- flow


def score_flow(run: Run) -> dict[str, Any]:
    """Which stage is named leaky and stalled (None = no stage stands out) against the truth.

    Before issue 12 the flow table named no stage; a reader took the largest leakage and the
    longest median stay, so those stand for the method when the table has no flag columns.
    """
    from effortlens import flow
    from effortlens.flow import flow_table, leakage_homogeneity

    table = flow_table(run.enriched)
    if hasattr(flow, "stage_flags"):
        flags = flow.stage_flags(run.enriched)
        leaky = flags.filter(pl.col("leaky"))["stage"].to_list()
        stalled = flags.filter(pl.col("stalled"))["stage"].to_list()
    else:
        leaky = [table.sort("leakage", descending=True, nulls_last=True)["stage"][0]]
        stalled = [table.sort("median_days", descending=True, nulls_last=True)["stage"][0]]
    homogeneity = leakage_homogeneity(table)
    return {
        "leaky_truth": run.truth.get("leaky_stage"),
        "stalled_truth": run.truth.get("stalled_stage"),
        "leaky": leaky,
        "stalled": stalled,
        "leaky_found": run.truth.get("leaky_stage") in leaky,
        "stalled_found": run.truth.get("stalled_stage") in stalled,
        "leaky_false": len([s for s in leaky if s != run.truth.get("leaky_stage")]),
        "stalled_false": len([s for s in stalled if s != run.truth.get("stalled_stage")]),
        "homogeneity_p": homogeneity["p_value"],
    }


# --------------------------------------------------------------------------------- habits


def _habit_cells(run: Run) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """Timing (weekday x hour) and cadence cells as the method ranks them.

    Uses :func:`effortlens.habits.habit_effects` when it exists (the estimator that
    attribution does not bias), else the attributed response rates.
    """
    from effortlens import habits

    if hasattr(habits, "habit_effects"):
        timing = habits.habit_effects(run.enriched, feature="timing")
        cadence = habits.habit_effects(run.enriched, feature="cadence")
        return timing, cadence, "habit_effects"
    timing = habits.response_by_timing(run.enriched.activities, by=["weekday", "hour"])
    cadence = habits.response_by_cadence(run.enriched.activities)
    return timing, cadence, "attributed"


def score_habits(run: Run, *, min_activities: int = 200) -> dict[str, Any]:
    """Planted timing cells at the top, the silent bins at the bottom; on null data, whether
    the method calls anything beyond noise and how far the quick follow-up bin is lifted."""
    from effortlens import habits

    timing, cadence, method = _habit_cells(run)
    rate = "effect_rate" if method == "habit_effects" else "response_rate"
    cells = timing.filter(pl.col("activities") >= min_activities).sort(rate, descending=True)
    out: dict[str, Any] = {"method": method}
    quick = cadence.filter(pl.col("cadence_bin") == "0-1")
    out["quick_lift"] = float(quick["lift"][0]) if quick.height else None
    if method == "habit_effects":
        out["timing_flagged"] = int(timing["flag"].is_not_null().sum())
        out["cadence_flagged"] = int(cadence["flag"].is_not_null().sum())
    else:
        acts = run.enriched.activities
        t = habits.response_homogeneity(
            habits.response_by_timing(acts),
            over=["weekday", "hour"],
            strata=["activity_type"],
            min_activities=20,
        )
        c = habits.response_homogeneity(
            habits.response_by_cadence(acts, by=["activity_type"]),
            over=["bin_order"],
            strata=["activity_type"],
            min_activities=20,
        )
        out["timing_flagged"] = int(t["p_value"] < 0.01)
        out["cadence_flagged"] = int(c["p_value"] < 0.01)
    timing_truth = run.truth.get("timing")
    if timing_truth:
        planted = pl.col("weekday").is_in(timing_truth["best_weekdays"]) & pl.col("hour").is_in(
            timing_truth["best_hours"]
        )
        k = len(timing_truth["best_weekdays"]) * len(timing_truth["best_hours"])
        top = cells.head(k).with_columns(planted=planted)
        out["timing_top_share"] = float(top["planted"].mean())
        silence = run.truth["cadence"]["silence_days"]
        ranked = cadence.filter(pl.col("cadence_bin") != habits.FIRST_TOUCH).sort(rate)
        lowest = ranked["min_days_since"][0]
        out["silence_lowest"] = bool(lowest is not None and lowest >= silence - 1)
    return out


# ------------------------------------------------------------------------------ summaries


def run_all(run: Run) -> dict[str, Any]:
    """Every score of one run, with the run's family, seed and mode."""
    row: dict[str, Any] = {"family": run.family, "seed": run.seed, "mode": run.mode}
    for name, scorer in (
        ("interventions", score_interventions),
        ("deviance", score_deviance),
        ("flow", score_flow),
        ("habits", score_habits),
    ):
        try:
            row[name] = scorer(run)
        except Exception as err:  # one failed metric must not hide the others
            row[name] = {"error": f"{type(err).__name__}: {err}"}
    return row


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Figures per family and mode: coverage, bias, power, recall, false flags."""
    out: dict[str, dict[str, Any]] = {}
    keys = sorted({(r["family"], r["mode"]) for r in rows})
    for family, mode in keys:
        runs = [r for r in rows if r["family"] == family and r["mode"] == mode]
        s: dict[str, Any] = {"runs": len(runs)}
        iv = [r["interventions"] for r in runs if "error" not in r["interventions"]]
        if iv:
            truth = [x["truth"] for x in iv]
            est = np.array([x["estimate"] for x in iv])
            half = np.array([(x["ci_high"] - x["ci_low"]) / 2 for x in iv]) / 1.96
            s["iv_runs"] = len(iv)
            s["iv_coverage"] = float(np.mean([x["covered"] for x in iv]))
            s["iv_excludes_zero"] = float(np.mean([x["excludes_zero"] for x in iv]))
            s["iv_mean_estimate"] = float(est.mean())
            s["iv_mean_truth"] = float(np.mean(truth))
            if mode == "planted":
                s["iv_bias_share"] = float((est.mean() - np.mean(truth)) / np.mean(truth))
            s["iv_sd_over_se"] = float(np.std(est - np.array(truth), ddof=1) / half.mean())
            s["iv_p_min"] = float(min(x["p_value"] for x in iv))
            if "estimate_true_causes" in iv[0]:
                causal = np.array([x["estimate_true_causes"] for x in iv])
                s["iv_dilution"] = float(1 - est.sum() / causal.sum())
            if "pre_trend" in iv[0]:
                s["iv_pre_trend_mean"] = _mean([x["pre_trend"] for x in iv])
                # the placebo's own false alarms: nothing starts before the start, so its
                # interval should exclude 0 in about 5% of runs (the page's "Caution")
                placebo = [x for x in iv if x.get("pre_trend_low") is not None]
                if placebo:
                    s["iv_pre_trend_excludes_zero"] = float(
                        np.mean(
                            [x["pre_trend_low"] > 0 or x["pre_trend_high"] < 0 for x in placebo]
                        )
                    )
        s["iv_errors"] = [
            r["interventions"]["error"] for r in runs if "error" in r["interventions"]
        ]
        dv = [r["deviance"] for r in runs if "error" not in r["deviance"]]
        if dv:
            planted = sum(x["planted"] for x in dv)
            s["dev_recall"] = f"{sum(x['found'] for x in dv)}/{planted}" if planted else None
            s["dev_oracle_recall"] = (
                f"{sum(x['oracle_found'] for x in dv)}/{planted}" if planted else None
            )
            by_ratio: dict[str, list[int]] = {}
            for x in dv:
                for ratio, (f, o) in x["by_ratio"].items():
                    cell = by_ratio.setdefault(ratio, [0, 0, 0])
                    cell[0] += f
                    cell[1] += o
                    cell[2] += 1
            s["dev_by_ratio"] = {
                k: f"{f}/{n} (oracle {o}/{n})" for k, (f, o, n) in by_ratio.items()
            }
            tested = sum(x["reps_tested"] for x in dv)
            s["dev_false_per_rep"] = sum(x["false_flags"] for x in dv) / max(tested, 1)
            s["dev_runs_with_false"] = float(np.mean([x["false_flags"] > 0 for x in dv]))
            s["dev_oracle_false_per_rep"] = sum(x["oracle_false_flags"] for x in dv) / max(
                tested, 1
            )
            s["dev_mean_rho"] = _mean([x["rho"] for x in dv])
            s["dev_mean_oracle_rho"] = _mean([x["oracle_rho"] for x in dv])
        s["dev_errors"] = [r["deviance"]["error"] for r in runs if "error" in r["deviance"]]
        fl = [r["flow"] for r in runs if "error" not in r["flow"]]
        if fl:
            if mode == "planted":
                s["flow_leaky_found"] = float(np.mean([x["leaky_found"] for x in fl]))
                s["flow_stalled_found"] = float(np.mean([x["stalled_found"] for x in fl]))
            s["flow_leaky_false_per_run"] = float(np.mean([x["leaky_false"] for x in fl]))
            s["flow_stalled_false_per_run"] = float(np.mean([x["stalled_false"] for x in fl]))
            s["flow_homogeneity_reject_5pct"] = float(
                np.mean([(x["homogeneity_p"] or 1) < 0.05 for x in fl])
            )
        s["flow_errors"] = [r["flow"]["error"] for r in runs if "error" in r["flow"]]
        hb = [r["habits"] for r in runs if "error" not in r["habits"]]
        if hb:
            s["habits_method"] = hb[0]["method"]
            s["habits_quick_lift"] = _mean([x["quick_lift"] for x in hb])
            s["habits_timing_flagged_runs"] = float(np.mean([x["timing_flagged"] > 0 for x in hb]))
            s["habits_cadence_flagged_runs"] = float(
                np.mean([x["cadence_flagged"] > 0 for x in hb])
            )
            if mode == "planted":
                s["habits_timing_top_share"] = _mean([x["timing_top_share"] for x in hb])
                s["habits_silence_lowest"] = float(np.mean([x["silence_lowest"] for x in hb]))
        s["habits_errors"] = [r["habits"]["error"] for r in runs if "error" in r["habits"]]
        out[f"{family}/{mode}"] = s
    return out
