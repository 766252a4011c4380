"""Interventions: comparable groups, equal windows, difference-in-differences, bootstrap CI."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.interventions import intervention_effect, intervention_weekly

D = dt.date
START = D(2024, 3, 4)
PEER = "SMB · AE"


def _enriched(windows: dict[str, tuple[tuple[int, int], tuple[int, int]]], **reps_extra):
    """A tiny enriched-shaped namespace. ``windows`` maps rep_id to ((activities, responded)
    before, (activities, responded) after); the data run from 2024-02-05 to 2024-04-01, so four
    whole weeks fit on each side of the 2024-03-04 start."""
    rep_ids = ["t1", "t2", "c1", "c2", "c3", "c4", "c5"]
    reps = pl.DataFrame(
        {
            "rep_id": rep_ids,
            "peer_group": [PEER, PEER, PEER, PEER, "ENT · AE", PEER, PEER],
            "hire_date": [None, None, None, D(2023, 1, 1), None, D(2024, 2, 20), None],
            "exit_date": [None] * 7,
        },
        schema_overrides={"hire_date": pl.Date, "exit_date": pl.Date},
    ).with_columns(**reps_extra)
    rows = [
        ("t1", D(2024, 2, 5), "email", True, 1, 0, 0.0),  # data start
        ("t1", D(2024, 4, 1), "email", True, 1, 0, 0.0),  # data end (outside the windows)
        ("t1", D(2024, 3, 12), "internal", False, 50, 0, 0.0),
    ]  # not customer-facing
    for rep_id, (before, after) in windows.items():
        for day, (n, responded) in ((D(2024, 2, 14), before), (D(2024, 3, 13), after)):
            if n:
                rows.append((rep_id, day, "email", True, n, responded, 2.0 * responded))
    daily = pl.DataFrame(
        rows,
        schema={
            "rep_id": pl.String,
            "day": pl.Date,
            "activity_type": pl.String,
            "is_customer_facing": pl.Boolean,
            "activities": pl.UInt32,
            "responded": pl.UInt32,
            "response_weight": pl.Float64,
        },
        orient="row",
    )
    tables = {
        "interventions": pl.DataFrame(
            {"intervention_id": ["I1"], "name": ["call coaching"], "start_date": [START]}
        ),
        "intervention_participants": pl.DataFrame(
            {"intervention_id": ["I1", "I1", "I2"], "rep_id": ["t1", "t2", "c1"]}
        ),
    }
    return SimpleNamespace(daily=daily, reps=reps, tables=tables)


WINDOWS = {
    "t1": ((10, 2), (10, 6)),  # with its data-start activity: 2/11 before, 6/10 after
    "t2": ((20, 4), (20, 8)),  # +0.2
    "c1": ((10, 2), (10, 3)),  # +0.1 (in another intervention: still a comparison rep)
    "c2": ((10, 5), (10, 5)),  # 0
    "c3": ((10, 0), (10, 10)),  # another peer group: left out
    "c4": ((10, 0), (10, 10)),  # hired inside the before window: left out
    "c5": ((10, 1), (0, 0)),  # not active after the start: left out
}


def test_effect_is_mean_change_of_participants_minus_comparison():
    effect = intervention_effect(_enriched(WINDOWS), intervention_id="I1", min_activities=1)
    # t1's data-start activity (1, no response) falls in its before window: 2/11
    t1_change = 6 / 10 - 2 / 11
    expected = (t1_change + 0.2) / 2 - (0.1 + 0.0) / 2
    assert effect["estimate"] == pytest.approx(expected)
    assert (effect["n_treated"], effect["n_control"], effect["n_participants"]) == (2, 2, 2)
    assert effect["window_weeks"] == 4
    assert (effect["before_start"], effect["start_date"], effect["after_end"]) == (
        D(2024, 2, 5),
        START,
        D(2024, 3, 31),
    )
    assert effect["treated_before"] == pytest.approx((2 / 11 + 0.2) / 2)
    assert effect["control_after"] == pytest.approx((0.3 + 0.5) / 2)


def test_bootstrap_ci_is_seeded_and_p_never_zero():
    enriched = _enriched(WINDOWS)
    one = intervention_effect(enriched, intervention_id="I1", min_activities=1, seed=3, n_boot=1000)
    again = intervention_effect(
        enriched, intervention_id="I1", min_activities=1, seed=3, n_boot=1000
    )
    assert one == again
    assert one["ci_low"] < one["estimate"] < one["ci_high"]
    assert 1 / 1001 <= one["p_value"] <= 1


def test_ci_collapses_when_every_rep_changes_alike():
    same = {"t2": ((20, 4), (20, 8)), "c1": ((10, 2), (10, 3)), "c2": ((10, 2), (10, 3))}
    enriched = _enriched(same)
    enriched.tables["intervention_participants"] = pl.DataFrame(
        {"intervention_id": ["I1"], "rep_id": ["t2"]}
    )
    effect = intervention_effect(enriched, intervention_id="I1", min_activities=1, n_boot=500)
    assert effect["estimate"] == pytest.approx(0.1)
    assert effect["ci_low"] == pytest.approx(0.1)
    assert effect["ci_high"] == pytest.approx(0.1)
    # a bootstrap p-value is never 0: at least 1 / (B + 1)
    assert effect["p_value"] == pytest.approx(1 / 501)


def _two_groups(changes: dict[str, tuple[str, bool, float, float]], *, weeks: int = 4):
    """Enriched-shaped data: rep_id -> (peer group, participant?, rate before, rate after),
    100 activities a week, the same rate every week of a window."""
    rows = []
    for rep_id, (_, _, before, after) in changes.items():
        for k in range(-weeks, weeks):
            rate = before if k < 0 else after
            rows.append((rep_id, START + dt.timedelta(weeks=k, days=2), 100, round(100 * rate)))
    first = next(iter(changes))  # mark the span of the data: whole weeks on both sides
    rows += [(first, START - dt.timedelta(weeks=weeks), 0, 0)]
    rows += [(first, START + dt.timedelta(weeks=weeks, days=-1), 0, 0)]
    daily = pl.DataFrame(
        rows, schema=["rep_id", "day", "activities", "responded"], orient="row"
    ).with_columns(
        activity_type=pl.lit("email"),
        is_customer_facing=pl.lit(True),
        response_weight=pl.col("responded").cast(pl.Float64),
        activities=pl.col("activities").cast(pl.UInt32),
        responded=pl.col("responded").cast(pl.UInt32),
    )
    reps = pl.DataFrame(
        {
            "rep_id": list(changes),
            "peer_group": [g for g, *_ in changes.values()],
            "hire_date": None,
            "exit_date": None,
        },
        schema_overrides={"hire_date": pl.Date, "exit_date": pl.Date},
    )
    tables = {
        "interventions": pl.DataFrame({"intervention_id": ["I1"], "start_date": [START]}),
        "intervention_participants": pl.DataFrame(
            {"intervention_id": "I1", "rep_id": [r for r, (_, t, *_) in changes.items() if t]}
        ),
    }
    return SimpleNamespace(daily=daily, reps=reps, tables=tables)


def test_comparison_is_made_within_peer_groups_weighted_by_participants():
    # SMB drifts down 0.04, Enterprise up 0.04; the true effect is +0.05 in both. Most
    # participants are in SMB, most comparison reps in Enterprise: a pooled comparison would
    # read 0.05 - 0.04 - (0.04 - 0.04 * 2/6)... far below 0.05.
    changes = {
        "s1": ("SMB", True, 0.20, 0.21),  # -0.04 + 0.05
        "s2": ("SMB", True, 0.22, 0.23),
        "s3": ("SMB", True, 0.18, 0.19),
        "s4": ("SMB", False, 0.20, 0.16),
        "e1": ("ENT", True, 0.30, 0.39),  # +0.04 + 0.05
        "e2": ("ENT", False, 0.30, 0.34),
        "e3": ("ENT", False, 0.28, 0.32),
        "e4": ("ENT", False, 0.31, 0.35),
        "m1": ("MM", True, 0.25, 0.40),  # no comparison rep in MM: unmatched
    }
    effect = intervention_effect(_two_groups(changes), intervention_id="I1", min_activities=1)
    assert effect["estimate"] == pytest.approx(0.05)
    assert (effect["n_treated"], effect["n_control"], effect["n_unmatched"]) == (4, 4, 1)
    assert effect["peer_groups"] == 2
    assert "same peer group" in effect["estimand"] and "attribution" in effect["estimand"]
    # the placebo: nothing moved apart before the start
    assert effect["pre_trend"] == pytest.approx(0.0)


def test_estimate_is_the_fixed_effects_regression_with_group_by_period_effects():
    # The issue asks for the comparison within peer groups *or* a regression with rep fixed
    # effects and peer-group x period effects. They are the same estimator when the
    # treatment effect may differ by group: OLS of the rep x period rates on rep effects,
    # group x after effects and group-specific participant x after effects, whose
    # coefficients averaged with the participants' weights are the estimate. A single
    # participant x after coefficient (no interaction) weights groups by
    # n_t n_c / (n_t + n_c) instead: another number when effects differ between groups.
    rng = np.random.default_rng(4)
    # per peer group: participants, comparison reps, the effect on the participants
    sizes = {"SMB": (6, 3, 0.02), "MM": (2, 5, 0.08), "ENT": (1, 4, 0.15)}
    changes = {}
    for group, (n_t, n_c, lift) in sizes.items():
        for i in range(n_t + n_c):
            before = float(rng.uniform(0.1, 0.4))
            trend = {"SMB": -0.04, "MM": 0.0, "ENT": 0.05}[group]
            after = before + trend + (lift if i < n_t else 0.0) + float(rng.normal(0, 0.02))
            changes[f"{group}{i}"] = (group, i < n_t, round(before, 2), round(after, 2))
    effect = intervention_effect(_two_groups(changes), intervention_id="I1", min_activities=1)

    reps = list(changes)
    groups = sorted(sizes)
    y, saturated, pooled = [], [], []
    for r, (group, treated, before, after) in changes.items():
        for post, rate in ((0, before), (1, after)):
            fixed = [float(r == other) for other in reps]  # rep fixed effects
            fixed += [float(post and group == g) for g in groups]  # peer group x period
            saturated.append(fixed + [float(post and treated and group == g) for g in groups])
            pooled.append([*fixed, float(post and treated)])
            y.append(rate)
    coef, *_ = np.linalg.lstsq(np.array(saturated), np.array(y), rcond=None)
    per_group = dict(zip(groups, coef[-len(groups) :], strict=True))
    weights = {g: sizes[g][0] / sum(t for t, _, _ in sizes.values()) for g in groups}
    regression = sum(weights[g] * per_group[g] for g in groups)
    assert effect["estimate"] == pytest.approx(regression, abs=1e-9)
    single, *_ = np.linalg.lstsq(np.array(pooled), np.array(y), rcond=None)
    assert abs(single[-1] - effect["estimate"]) > 0.005  # variance weights, not participants'


def test_pre_trend_shows_groups_already_moving_apart():
    changes = {f"t{i}": ("SMB", True, 0.2, 0.2) for i in range(4)}
    changes |= {f"c{i}": ("SMB", False, 0.2, 0.2) for i in range(4)}
    enriched = _two_groups(changes)
    # participants rise by 0.1 from the first half of the before window to the second
    late = pl.col("day").is_between(START - dt.timedelta(weeks=2), START - dt.timedelta(days=1))
    enriched.daily = enriched.daily.with_columns(
        responded=pl.when(late & pl.col("rep_id").str.starts_with("t"))
        .then(pl.col("responded") + 10)
        .otherwise("responded")
    )
    effect = intervention_effect(enriched, intervention_id="I1", min_activities=1)
    assert effect["pre_trend"] == pytest.approx(0.1)


def test_eligibility_is_decided_before_the_start():
    changes = {f"t{i}": ("SMB", True, 0.2, 0.3) for i in range(3)}
    changes |= {f"c{i}": ("SMB", False, 0.2, 0.2) for i in range(3)}
    enriched = _two_groups(changes)
    # t0 leaves two weeks after the start and goes quiet: still a participant (intention to
    # treat), with the rate of the weeks it worked
    enriched.reps = enriched.reps.with_columns(
        exit_date=pl.when(pl.col("rep_id") == "t0").then(pl.lit(START + dt.timedelta(weeks=2)))
    )
    enriched.daily = enriched.daily.filter(
        ~((pl.col("rep_id") == "t0") & (pl.col("day") >= START + dt.timedelta(weeks=2)))
    )
    effect = intervention_effect(enriched, intervention_id="I1", min_activities=250)
    assert effect["n_treated"] == 3 and effect["estimate"] == pytest.approx(0.1)
    # one who left before the start is out
    enriched.reps = enriched.reps.with_columns(
        exit_date=pl.when(pl.col("rep_id") == "t0").then(pl.lit(START - dt.timedelta(days=1)))
    )
    assert intervention_effect(enriched, intervention_id="I1", min_activities=1)["n_treated"] == 2


def test_bootstrap_interval_has_the_width_sampling_theory_predicts():
    # 60 participants and 60 comparison reps whose changes are drawn with known spread
    rng = np.random.default_rng(5)
    rep_ids = [f"t{i}" for i in range(60)] + [f"c{i}" for i in range(60)]
    before = rng.integers(20, 40, size=120)
    after = np.clip(before + rng.normal(0, 10, size=120).round().astype(int), 0, 100)
    daily = pl.DataFrame(
        {
            "rep_id": rep_ids * 2,
            "day": [D(2024, 2, 5)] * 120 + [D(2024, 3, 31)] * 120,
            "activity_type": "email",
            "is_customer_facing": True,
            "activities": [100] * 240,
            "responded": np.concatenate([before, after]),
            "response_weight": 0.0,
        },
        schema_overrides={"activities": pl.UInt32, "responded": pl.UInt32},
    )
    reps = pl.DataFrame(
        {"rep_id": rep_ids, "peer_group": PEER, "hire_date": None, "exit_date": None},
        schema_overrides={"hire_date": pl.Date, "exit_date": pl.Date},
    )
    tables = {
        "interventions": pl.DataFrame({"intervention_id": ["I1"], "start_date": [START]}),
        "intervention_participants": pl.DataFrame(
            {"intervention_id": "I1", "rep_id": rep_ids[:60]}
        ),
    }
    enriched = SimpleNamespace(daily=daily, reps=reps, tables=tables)
    effect = intervention_effect(enriched, intervention_id="I1", min_activities=1, n_boot=4000)
    changes = (after - before) / 100
    se = np.sqrt(changes[:60].var(ddof=1) / 60 + changes[60:].var(ddof=1) / 60)
    assert effect["estimate"] == pytest.approx(changes[:60].mean() - changes[60:].mean())
    assert effect["ci_high"] - effect["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_window_can_be_set_and_is_checked_against_the_data():
    enriched = _enriched(WINDOWS)
    effect = intervention_effect(enriched, intervention_id="I1", min_activities=1, window_weeks=3)
    # the before window starts 2024-02-12: t1's data-start activity (02-05) is left out
    assert effect["window_weeks"] == 3
    assert effect["treated_before"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no peer group has both"):
        # one week before the start (from 2024-02-26) holds no activity
        intervention_effect(enriched, intervention_id="I1", min_activities=1, window_weeks=1)
    with pytest.raises(ValueError, match="at most 4 whole weeks"):
        intervention_effect(enriched, intervention_id="I1", min_activities=1, window_weeks=5)


def test_default_window_is_capped():
    effect = intervention_effect(
        _enriched(WINDOWS), intervention_id="I1", min_activities=1, max_window_weeks=3
    )
    assert effect["window_weeks"] == 3


def test_unknown_intervention_and_metric_are_clear_errors():
    enriched = _enriched(WINDOWS)
    with pytest.raises(ValueError, match="unknown intervention 'I9'; known: \\['I1'\\]"):
        intervention_effect(enriched, intervention_id="I9")
    with pytest.raises(ValueError, match="metric must be one of"):
        intervention_effect(enriched, intervention_id="I1", min_activities=1, metric="win_rate")


def test_min_activities_drops_reps_quiet_before_the_start():
    busier = {**WINDOWS, "c2": ((20, 10), (20, 10))}
    effect = intervention_effect(_enriched(busier), intervention_id="I1", min_activities=12)
    # before the start t1 (11) and c1 (10) are too quiet: t2 (+0.2) against c2 (0)
    assert (effect["n_treated"], effect["n_control"]) == (1, 1)
    assert effect["estimate"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no peer group has both"):
        intervention_effect(_enriched(WINDOWS), intervention_id="I1", min_activities=12)
    with pytest.raises(ValueError, match="no peer group has both"):
        intervention_effect(_enriched(WINDOWS), intervention_id="I1")  # 20 by default


def test_other_metrics():
    enriched = _enriched(WINDOWS)
    roe = intervention_effect(
        enriched, intervention_id="I1", min_activities=1, metric="roe_per_100"
    )
    rate = intervention_effect(enriched, intervention_id="I1", min_activities=1)
    assert roe["estimate"] == pytest.approx(200 * rate["estimate"])  # weight 2 per response
    volume = intervention_effect(
        enriched, intervention_id="I1", min_activities=1, metric="activities_per_week"
    )
    # t1: 11 before, 10 after; t2: 20, 20; c1, c2: 10, 10; c5 (eligible before the start,
    # intention to treat) 10, then none: (-1/4 + 0) / 2 - (0 + 0 - 10/4) / 3
    assert volume["estimate"] == pytest.approx(-1 / 8 + 10 / 12)
    assert rate["n_no_after"] == 1  # c5 has no response rate after the start


def test_weekly_series_pools_each_group_by_week_since_start():
    weekly = intervention_weekly(_enriched(WINDOWS), intervention_id="I1", min_activities=1)
    assert weekly.height == 16
    assert weekly.columns == [
        "group",
        "week_index",
        "week_start",
        "period",
        "reps",
        "activities",
        "value",
    ]
    participants = weekly.filter(pl.col("group") == "participants")
    expected = pl.DataFrame(
        {
            "week_index": [-4, -3, -2, -1, 0, 1, 2, 3],
            "week_start": [START + dt.timedelta(weeks=k) for k in range(-4, 4)],
            "activities": [1, 30, 0, 0, 0, 30, 0, 0],
            "value": [0.0, 6 / 30, None, None, None, 14 / 30, None, None],
        },
        schema_overrides={"week_index": pl.Int32, "activities": pl.UInt32},
    )
    assert_frame_equal(participants.select(expected.columns), expected)
    assert participants["reps"].unique().to_list() == [2]
    assert participants["period"].to_list() == ["before"] * 4 + ["after"] * 4


def test_inputs_are_not_mutated():
    enriched = _enriched(WINDOWS)
    daily, reps = enriched.daily.clone(), enriched.reps.clone()
    intervention_effect(enriched, intervention_id="I1", min_activities=1)
    intervention_weekly(enriched, intervention_id="I1", min_activities=1)
    assert_frame_equal(enriched.daily, daily)
    assert_frame_equal(enriched.reps, reps)


# --- planted truths and null data (generated by effortlens.sample) ---------------------------


def test_planted_intervention_effect_is_recovered(small_planted_enriched):
    enriched, truth = small_planted_enriched
    truth = truth["intervention"]
    effect = intervention_effect(enriched, intervention_id=truth["intervention_id"], seed=1)
    assert effect["ci_low"] <= truth["effect"] <= effect["ci_high"], effect
    assert effect["ci_low"] > 0, effect
    assert effect["start_date"] == D.fromisoformat(truth["start_date"])
    assert effect["n_treated"] == len(truth["treated"]) and effect["n_control"] >= 20
    assert effect["window_weeks"] == 12
    # the weekly series shows the gap opening after the start
    weekly = intervention_weekly(enriched, intervention_id=truth["intervention_id"])
    after = weekly.filter(pl.col("period") == "after").group_by("group").agg(pl.col("value").mean())
    gap = dict(after.rows())
    before = (
        weekly.filter(pl.col("period") == "before").group_by("group").agg(pl.col("value").mean())
    )
    gap_before = dict(before.rows())
    assert gap["participants"] - gap["comparison"] > truth["effect"] / 2
    assert abs(gap_before["participants"] - gap_before["comparison"]) < truth["effect"] / 2
    # the practice changed answers, not volume
    volume = intervention_effect(
        enriched, intervention_id=truth["intervention_id"], metric="activities_per_week"
    )
    assert volume["ci_low"] < 0 < volume["ci_high"]


def test_null_intervention_ci_covers_zero(small_null_enriched):
    enriched, truth = small_null_enriched
    truth = truth["intervention"]
    assert truth["effect"] == 0
    for metric in ("response_rate", "roe_per_100"):
        effect = intervention_effect(
            enriched, intervention_id=truth["intervention_id"], metric=metric
        )
        assert effect["ci_low"] < 0 < effect["ci_high"], effect
