"""Peers and positive deviance: counts, limits, over-dispersion, shrinkage, what differs."""

from __future__ import annotations

import datetime as dt
import json
import math
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats

from effortlens.deviance import (
    EXACT_MAX_VOLUME,
    deviants_table,
    funnel_limits,
    overdispersion,
    peer_deviance,
    rep_deviance,
    response_counts,
    what_differs,
    win_counts,
)
from effortlens.peers import peer_groups, with_peer_group
from effortlens.settings import load_settings

T0 = dt.datetime(2024, 3, 4, 14, 0, tzinfo=dt.UTC)


def _reps(groups: dict[str, list[str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(rep, f"name {rep}", group) for group, reps in groups.items() for rep in reps],
        schema=["rep_id", "rep_name", "peer_group"],
        orient="row",
    )


def _counts(rows: list[tuple[str, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"rep_id": pl.String, "successes": pl.UInt32, "trials": pl.UInt32},
        orient="row",
    )


def _cohen_h(p1: float, p2: float) -> float:
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def _simulated(rng, *, reps: int, groups: int, rho: float, rates=(0.2, 0.3, 0.4)):
    """Reps in peer groups with beta-binomial (rho > 0) or binomial response counts."""
    rows, members = [], {}
    for i in range(reps):
        group = f"g{i % groups}"
        mean = rates[i % groups % len(rates)]
        n = int(rng.integers(1500, 5000))
        p = rng.beta(mean * (1 / rho - 1), (1 - mean) * (1 / rho - 1)) if rho > 0 else mean
        rows.append((f"r{i:03d}", int(rng.binomial(n, p)), n))
        members.setdefault(group, []).append(f"r{i:03d}")
    return _counts(rows), _reps(members)


# ------------------------------------------------------------------------------ peer groups


def test_peer_group_joins_keys_and_names_missing_values():
    reps = pl.DataFrame(
        {"rep_id": ["r1", "r2", "r3"], "segment": ["SMB", None, "SMB"], "role": ["AE"] * 3}
    )
    out = with_peer_group(reps, keys=["segment", "role"])
    assert out["peer_group"].to_list() == ["SMB · AE", "(none) · AE", "SMB · AE"]
    assert "peer_group" not in reps.columns
    groups = peer_groups(out)
    assert groups.select("peer_group", "reps").rows() == [("(none) · AE", 1), ("SMB · AE", 2)]
    assert groups.filter(pl.col("peer_group") == "SMB · AE")["rep_ids"].item().to_list() == [
        "r1",
        "r3",
    ]


def test_peer_group_rejects_unknown_keys():
    with pytest.raises(ValueError, match="tenure"):
        with_peer_group(pl.DataFrame({"rep_id": ["r1"]}), keys=["tenure"])


# ----------------------------------------------------------------------------------- counts


def test_response_counts_count_customer_facing_touches_and_responses():
    activities = pl.DataFrame(
        {
            "rep_id": ["r2", "r1", "r1", "r1", "r2"],
            "is_customer_facing": [True, True, True, False, False],
            "responded": [False, True, False, True, True],
        }
    )
    expected = _counts([("r1", 1, 2), ("r2", 0, 1)])
    assert_frame_equal(response_counts(activities), expected)


def test_win_counts_count_won_out_of_closed_deals():
    opportunities = pl.DataFrame(
        {
            "rep_id": ["r1", "r1", "r1", "r1", "r2"],
            "outcome": ["won", "lost", "no_decision", "open", "open"],
        }
    )
    assert_frame_equal(win_counts(opportunities), _counts([("r1", 1, 3)]))


# ------------------------------------------------------------------------- limits, direction


def _loo_betabinom(n: int, centre: float, centre_var: float):
    """The count distribution of a rep of volume n around a centre known to ``centre_var``."""
    rho = centre_var * n / (centre * (1 - centre) * (n - 1))
    concentration = 1 / rho - 1
    return stats.betabinom(n, centre * concentration, (1 - centre) * concentration)


def test_limits_are_exact_around_the_others_rate_with_its_own_variance():
    reps = _reps({"g": ["a", "b", "c"], "h": ["d", "e"]})
    counts = _counts([("a", 30, 100), ("b", 96, 300), ("c", 60, 200), ("d", 10, 50), ("e", 20, 50)])
    table = peer_deviance(counts, reps, min_volume=1, adjust_overdispersion=False)
    row = table.filter(pl.col("rep_id") == "b").row(0, named=True)
    # b is compared with a and c only (pooled: no over-dispersion), never with itself
    centre = (30 + 60) / 300
    g_rate = (30 + 96 + 60) / 600
    centre_var = g_rate * (1 - g_rate) / 300
    assert row["peer_rate"] == pytest.approx(centre)
    assert row["peer_rate_se"] == pytest.approx(math.sqrt(centre_var))
    assert row["rate"] == pytest.approx(0.32)
    dist = _loo_betabinom(300, centre, centre_var)
    for level, name in ((0.95, "95"), (0.998, "998")):
        tail = (1 - level) / 2
        assert row[f"lower_{name}"] == pytest.approx(dist.ppf(tail) / 300)
        assert row[f"upper_{name}"] == pytest.approx(dist.ppf(1 - tail) / 300)
    # wider than binomial limits around a known centre: the centre's own error counts
    assert row["upper_998"] > stats.binom.ppf(0.999, 300, centre) / 300
    p = 2 * min(dist.cdf(96), dist.sf(95))
    assert row["p_value"] == pytest.approx(p)
    assert row["z"] == pytest.approx(stats.norm.isf(p / 2))  # z from the same tail as the limits
    assert table.filter(pl.col("rep_id") == "d")["peer_rate"].item() == pytest.approx(0.4)
    assert table["overdispersion"].unique().to_list() == [0.0]


def test_z_and_the_limits_agree_on_every_rep():
    rng = np.random.default_rng(3)
    counts, reps = _simulated(rng, reps=90, groups=3, rho=0.01)
    # binomial limits on over-dispersed reps: many reps fall outside them
    table = peer_deviance(counts, reps, min_volume=1, adjust_overdispersion=False).filter(
        pl.col("z").is_not_null()
    )
    outside = (pl.col("rate") > pl.col("upper_998")) | (pl.col("rate") < pl.col("lower_998"))
    beyond = pl.col("z").abs() > stats.norm.isf(0.001)
    assert table.filter(outside != beyond).height == 0
    assert table.filter(outside).height > 0


@pytest.mark.parametrize("seed", [2, 5])
def test_every_flag_agrees_with_its_z_under_overdispersion_at_any_volume(seed):
    # the issue-12 audit found a rep flagged with z = -2.84: z came from a normal
    # approximation while the flag used exact limits. Here over-dispersion is estimated,
    # volumes are heavy-tailed (exact limits below EXACT_MAX_VOLUME, the beta approximation
    # above), rates run down to 2% (where the exact tails are skewed: on these seeds a
    # normal z disagrees with the limits on one or two reps) and a few reps are planted far
    # out, so that some are flagged.
    rng = np.random.default_rng(seed)
    rows, members = [], {}
    for i in range(120):
        group, mean = f"g{i % 4}", (0.02, 0.1, 0.3, 0.5)[i % 4]
        n = int(min(rng.lognormal(6.0, 1.3), 40_000)) + 30
        p = rng.beta(mean * 199, (1 - mean) * 199) * (2.0 if i in (3, 50) else 1.0)
        p = p * (0.4 if i in (17, 90) else 1.0)
        rows.append((f"r{i:03d}", int(rng.binomial(n, min(p, 0.95))), n))
        members.setdefault(group, []).append(f"r{i:03d}")
    table = peer_deviance(_counts(rows), _reps(members), min_volume=50).filter(
        pl.col("z").is_not_null()
    )
    assert table["overdispersion"][0] > 0
    assert (table["volume"] > EXACT_MAX_VOLUME).any() and (table["volume"] <= 500).any()
    cut = stats.norm.isf(0.001)
    outside = (pl.col("rate") > pl.col("upper_998")) | (pl.col("rate") < pl.col("lower_998"))
    assert table.filter(outside != (pl.col("z").abs() > cut)).is_empty()
    flagged = table.filter(pl.col("direction") != "none")
    assert flagged.height >= 2
    sign = pl.when(pl.col("direction") == "positive").then(1.0).otherwise(-1.0)
    assert flagged.filter((pl.col("z") * sign <= cut) | (pl.col("q_value") > 0.05)).is_empty()
    # and the other way round: beyond the limits with q <= 5% and enough volume is a flag
    missed = table.filter(
        outside & (pl.col("q_value") <= 0.05) & pl.col("eligible") & (pl.col("direction") == "none")
    )
    assert missed.is_empty()


def test_direction_needs_enough_volume_and_a_rate_outside_the_998_limits():
    reps = _reps({"g": ["hi", "lo", "mid", "mid2", "small"]})
    counts = _counts(
        [
            ("hi", 380, 1000),
            ("lo", 180, 1000),
            ("mid", 290, 1000),
            ("mid2", 300, 1000),
            ("small", 19, 20),
        ]
    )
    table = peer_deviance(counts, reps, min_volume=100, adjust_overdispersion=False)
    got = dict(table.select("rep_id", "direction").iter_rows())
    assert got == {
        "hi": "positive",
        "lo": "negative",
        "mid": "none",
        "mid2": "none",
        "small": "none",
    }
    small = table.filter(pl.col("rep_id") == "small").row(0, named=True)
    assert small["rate"] > small["upper_998"] and not small["eligible"]
    positive = table.filter(pl.col("rep_id") == "hi").row(0, named=True)
    assert positive["p_value"] < 0.002


def test_p_value_is_the_exact_two_sided_tail_around_the_other_rep():
    reps = _reps({"g": ["a", "b"]})
    table = peer_deviance(
        _counts([("a", 40, 100), ("b", 20, 100)]), reps, min_volume=1, adjust_overdispersion=False
    )
    # each is compared with the other; the other's rate is known to binomial precision
    var = 0.3 * 0.7 / 100
    a, b = _loo_betabinom(100, 0.2, var), _loo_betabinom(100, 0.4, var)
    p_a = 2 * a.sf(39)
    p_b = 2 * b.cdf(20)
    assert table["p_value"].to_list() == pytest.approx([p_a, p_b])
    low, high = sorted([p_a, p_b])
    q = {low: min(2 * low, high), high: high}  # Benjamini–Hochberg of two
    assert table["q_value"].to_list() == pytest.approx([q[p_a], q[p_b]])


def test_q_values_control_false_discoveries_and_gate_the_flags():
    rng = np.random.default_rng(17)
    counts, reps = _simulated(rng, reps=200, groups=4, rho=0.0)
    table = peer_deviance(counts, reps, min_volume=1, adjust_overdispersion=False)
    p = table["p_value"].to_numpy()
    order = np.argsort(p)
    expected = np.minimum.accumulate((p[order] * len(p) / np.arange(1, len(p) + 1))[::-1])[::-1]
    assert table["q_value"].to_numpy()[order] == pytest.approx(np.minimum(expected, 1))
    # a rep just outside the 99.8% limits is not flagged when its q-value is above 5%
    lonely = table.filter((pl.col("p_value") < 0.002) & (pl.col("q_value") > 0.05))
    assert (lonely["direction"] == "none").all()
    flagged = table.filter(pl.col("direction") != "none")
    assert (flagged["q_value"] <= 0.05).all() and (flagged["p_value"] < 0.002).all()


def test_reps_without_volume_have_null_rates_and_no_direction():
    reps = _reps({"g": ["a", "b", "idle"]})
    table = peer_deviance(_counts([("a", 40, 100), ("b", 20, 100)]), reps, min_volume=1)
    idle = table.filter(pl.col("rep_id") == "idle").row(0, named=True)
    assert idle["volume"] == 0 and idle["direction"] == "none"
    assert idle["rate"] is None and idle["shrunk_rate"] is None and idle["upper_998"] is None
    assert idle["peer_rate"] == pytest.approx(0.3)


def test_peer_groups_do_not_influence_each_other():
    reps = _reps({"g": ["a", "b", "c"], "h": ["d", "e"]})
    base = [("a", 30, 100), ("b", 90, 300), ("c", 60, 200)]
    one = peer_deviance(
        _counts([*base, ("d", 10, 50), ("e", 20, 50)]),
        reps,
        min_volume=1,
        adjust_overdispersion=False,
    )
    two = peer_deviance(
        _counts([*base, ("d", 45, 50), ("e", 2, 50)]),
        reps,
        min_volume=1,
        adjust_overdispersion=False,
    )
    assert_frame_equal(
        one.filter(pl.col("peer_group") == "g"), two.filter(pl.col("peer_group") == "g")
    )


def test_peer_keys_rebuild_the_groups():
    reps = pl.DataFrame(
        {"rep_id": ["a", "b", "c"], "segment": ["S", "S", "E"], "role": ["AE", "SDR", "AE"]}
    )
    counts = _counts([("a", 10, 100), ("b", 30, 100), ("c", 50, 100)])
    table = peer_deviance(counts, reps, min_volume=1, peer_keys=["role"])
    # each AE against the other AE; the lone SDR has no peer to be compared with
    assert dict(table.select("rep_id", "peer_rate").iter_rows()) == pytest.approx(
        {"a": 0.5, "c": 0.1, "b": None}
    )
    assert dict(table.select("rep_id", "peer_group").iter_rows()) == {
        "a": "AE",
        "b": "SDR",
        "c": "AE",
    }
    assert table.filter(pl.col("rep_id") == "b")["eligible"].item() is False
    with pytest.raises(ValueError, match="peer_group"):
        peer_deviance(counts, reps, min_volume=1)


def test_small_peer_groups_fall_back_to_a_broader_group_and_say_so():
    reps = pl.DataFrame(
        {
            "rep_id": [f"s{i}" for i in range(6)] + ["e0", "e1"] + [f"a{i}" for i in range(5)],
            "segment": ["SMB"] * 6 + ["ENT"] * 2 + ["ENT"] * 5,
            "role": ["AE"] * 6 + ["SDR"] * 2 + ["AE"] * 5,
        }
    )
    counts = _counts([(r, 30, 100) for r in reps["rep_id"]])
    table = peer_deviance(
        counts, reps, min_volume=1, peer_keys=["segment", "role"], min_peer_reps=5
    )
    got = dict(table.select("rep_id", "peer_group").iter_rows())
    basis = dict(table.select("rep_id", "peer_basis").iter_rows())
    assert got["s0"] == "SMB · AE" and basis["s0"] == "segment · role"
    assert got["a0"] == "ENT · AE"
    assert got["e0"] == "ENT" and basis["e0"] == "segment"  # two ENT SDRs: too few
    # with a larger minimum even the segment is too small: everyone is compared with all reps
    table = peer_deviance(
        counts, reps, min_volume=1, peer_keys=["segment", "role"], min_peer_reps=8
    )
    basis = dict(table.select("rep_id", "peer_basis").iter_rows())
    assert basis["e0"] == "all reps" and basis["s0"] == "all reps"


def test_peer_deviance_does_not_mutate_its_inputs():
    reps = _reps({"g": ["a", "b", "c"]})
    counts = _counts([("a", 30, 100), ("b", 50, 100), ("c", 10, 100)])
    reps_before, counts_before = reps.clone(), counts.clone()
    peer_deviance(counts, reps, min_volume=1)
    assert_frame_equal(reps, reps_before)
    assert_frame_equal(counts, counts_before)


def test_peer_deviance_reads_counts_by_rep_and_sorts_by_group_then_rep():
    # the reps' counts are looked up by id (counts in any order, a rep without counts has
    # volume 0, counts of a rep not in reps are ignored); rows by peer group, missing first
    rng = np.random.default_rng(5)
    ids = [f"r{i:02d}" for i in range(30)]
    reps = pl.DataFrame(
        {
            "rep_id": ids,
            "peer_group": [None if i % 10 == 3 else f"g{i % 3}" for i in range(30)],
        }
    )
    rows = [(rep, int(rng.integers(20, 60)), int(rng.integers(100, 200))) for rep in ids[1:]]
    counts = _counts([*rows, ("not a rep", 5, 10)])
    table = peer_deviance(counts, reps, min_volume=1)
    shuffled = peer_deviance(
        counts.sample(fraction=1.0, shuffle=True, seed=1),
        reps.sample(fraction=1.0, shuffle=True, seed=2),
        min_volume=1,
    )
    assert_frame_equal(table, shuffled, check_exact=True)
    groups = table["peer_group"].to_list()
    assert groups[:3] == [None] * 3 and groups[3:] == sorted(groups[3:])
    assert table.select("peer_group", "rep_id").equals(
        table.select("peer_group", "rep_id").sort("peer_group", "rep_id")
    )
    assert "not a rep" not in table["rep_id"]
    first = table.filter(pl.col("rep_id") == "r00")
    assert first["volume"].item() == 0 and first["rate"].item() is None
    expected = {rep: (s, n) for rep, s, n in rows}
    got = {r: (s, n) for r, s, n in table.select("rep_id", "successes", "volume").iter_rows()}
    assert all(got[rep] == expected[rep] for rep in expected)
    with pytest.raises(ValueError, match="more than one row"):
        peer_deviance(_counts([*rows, rows[0]]), reps, min_volume=1)


def test_large_volumes_switch_to_an_approximation_that_joins_the_exact_limits():
    reps = _reps({"g": ["a", "b", "c"]})
    n = EXACT_MAX_VOLUME
    counts = _counts([("a", n // 4, n), ("b", (n + 1) // 4, n + 1), ("c", n // 4, n)])
    table = peer_deviance(counts, reps, min_volume=1, adjust_overdispersion=False)
    exact, approx = table.filter(pl.col("rep_id") == "a"), table.filter(pl.col("rep_id") == "b")
    for column in ("lower_95", "upper_95", "lower_998", "upper_998"):
        assert approx[column].item() == pytest.approx(exact[column].item(), abs=1.5 / n)
    assert exact["upper_998"].item() * n == round(exact["upper_998"].item() * n)  # a count


def test_funnel_limits_narrow_with_volume_around_the_whole_groups_centre():
    reps = _reps({"g": ["a", "b", "c"], "h": ["d", "e"]})
    counts = _counts([("a", 30, 100), ("b", 40, 100), ("c", 140, 437), ("d", 5, 40), ("e", 9, 40)])
    table = peer_deviance(counts, reps, min_volume=1, adjust_overdispersion=False)
    lines = funnel_limits(table, points=200, start=1)
    g = lines.filter(pl.col("peer_group") == "g")
    width = dict(g.select("volume", pl.col("upper_998") - pl.col("lower_998")).iter_rows())
    assert width[1] == 1.0 and width[1] > width[20] > width[100] > width[437]
    assert g["volume"].min() == 1 and g["volume"].max() == round(437 * 1.2)
    assert g["peer_rate"].unique().to_list() == pytest.approx([210 / 637])  # pooled, rho = 0
    # a rep is tested against the others: near the line, never looser than a known centre
    rep_c = table.filter(pl.col("rep_id") == "c").row(0, named=True)
    line = g.filter(pl.col("volume") == 437).row(0, named=True)
    assert rep_c["upper_998"] == pytest.approx(line["upper_998"], abs=0.06)
    assert funnel_limits(table)["volume"].min() == 10  # a quarter of the smallest volume


# ------------------------------------------------------------------------- over-dispersion


def test_overdispersion_is_zero_for_binomial_reps_and_recovers_real_spread():
    rng = np.random.default_rng(5)
    counts, reps = _simulated(rng, reps=300, groups=5, rho=0.0)
    units = reps.join(counts, on="rep_id")
    assert overdispersion(units) < 0.0015
    counts, reps = _simulated(rng, reps=300, groups=5, rho=0.02)
    assert 0.013 < overdispersion(reps.join(counts, on="rep_id")) < 0.03


@pytest.mark.parametrize("seed", [2, 9, 21])
def test_the_fit_bracketed_by_the_last_round_equals_the_fit_over_the_whole_range(seed, monkeypatch):
    # fit_dispersion looks for each round's rho near the last round's first: the same root
    # within brentq's xtol (1e-8), so the same weights within 1e-5 (the rounds stop at 1e-4)
    from effortlens.deviance import funnel

    rng = np.random.default_rng(seed)
    counts, reps = _simulated(rng, reps=240, groups=4, rho=0.01)
    deviant = pl.col("rep_id").is_in(["r000", "r005", "r010"])
    counts = counts.with_columns(
        successes=pl.when(deviant).then(pl.col("trials") * 3 // 4).otherwise("successes")
    )
    units = reps.join(counts, on="rep_id")
    args = (
        units["successes"].cast(pl.Float64).to_numpy(),
        units["trials"].cast(pl.Float64).to_numpy(),
        units["peer_group"].rank("dense").cast(pl.Int64).to_numpy() - 1,
    )
    warm = funnel.fit_dispersion(*args)
    table = peer_deviance(counts, reps, min_volume=300)
    monkeypatch.setattr(funnel, "_WARM_BRACKET", 0.0)  # no bracket: always the whole range
    cold = funnel.fit_dispersion(*args)
    whole = peer_deviance(counts, reps, min_volume=300)
    assert 0.005 < cold.rho < 0.03 and abs(warm.rho - cold.rho) <= 1e-8
    np.testing.assert_allclose(warm.robust_weights, cold.robust_weights, rtol=0, atol=1e-5)
    assert cold.robust_weights[:1].max() < 0.5  # a planted deviant counts less
    floats = [c for c, t in table.schema.items() if t == pl.Float64]
    assert_frame_equal(table.drop(floats), whole.drop(floats))
    assert_frame_equal(table.select(floats), whole.select(floats), rel_tol=1e-6, abs_tol=1e-12)


def test_overdispersed_null_gives_no_more_false_deviants_than_the_998_limits_allow():
    rng = np.random.default_rng(8)
    counts, reps = _simulated(rng, reps=200, groups=4, rho=0.01)
    adjusted = peer_deviance(counts, reps, min_volume=300)
    plain = peer_deviance(counts, reps, min_volume=300, adjust_overdispersion=False)
    bound = stats.binom.ppf(0.99, adjusted["eligible"].sum(), 0.002)
    assert (adjusted["direction"] != "none").sum() <= bound
    assert (plain["direction"] != "none").sum() > 10 * bound  # why the adjustment is needed


def test_neither_deviants_nor_a_coached_subgroup_hide_the_deviants():
    rng = np.random.default_rng(13)
    counts, reps = _simulated(rng, reps=60, groups=3, rho=0.0)
    deviants = ["r000", "r001", "r002"]
    coached = [f"r{i:03d}" for i in range(10, 28)]  # a real effect: +4 points for 18 reps
    trials = pl.col("trials").cast(pl.Float64)
    shifted = counts.with_columns(
        successes=pl.when(pl.col("rep_id").is_in(deviants))
        .then(trials * 0.55)
        .when(pl.col("rep_id").is_in(coached))
        .then(pl.col("successes") + trials * 0.04)
        .otherwise("successes")
        .cast(pl.UInt32)
    )
    units = reps.join(shifted, on="rep_id")
    robust, plain = overdispersion(units), overdispersion(units, huber_k=float("inf"))
    bulk = overdispersion(units.filter(~pl.col("rep_id").is_in(deviants)), huber_k=float("inf"))
    assert robust < plain / 3  # the capped estimate tames the deviants' pull ...
    assert robust < 1.5 * bulk  # ... to near what the reps without them show
    table = peer_deviance(shifted, reps, min_volume=300)
    assert table.filter(pl.col("direction") != "none")["rep_id"].to_list() == deviants
    assert table["overdispersion"][0] == pytest.approx(robust)


def test_one_very_busy_rep_does_not_set_the_centre():
    # with over-dispersion each rep's weight is capped: a rep with 50x the volume of the
    # others moves the centre of the others about as much as any one of them
    rng = np.random.default_rng(2)
    rates = rng.normal(0.3, 0.04, 12).clip(0.05, 0.95)
    rows = [(f"r{i}", round(r * 500), 500) for i, r in enumerate(rates)]
    rows.append(("big", 25_000 * 45 // 100, 25_000))  # 45% on 25,000
    counts = _counts(rows)
    reps = _reps({"g": [r for r, *_ in rows]})
    table = peer_deviance(counts, reps, min_volume=1)
    pooled = sum(s for _, s, _ in rows) / sum(n for *_, n in rows)
    centre = table.filter(pl.col("rep_id") == "r0")["peer_rate"].item()
    assert pooled > 0.42  # a pooled centre would be the big rep's rate
    assert centre < 0.33  # the random-effects centre stays with the reps
    assert table.filter(pl.col("rep_id") == "big")["direction"].item() == "positive"


def test_shrinkage_uses_the_beta_prior_implied_by_the_overdispersion():
    rng = np.random.default_rng(21)
    counts, reps = _simulated(rng, reps=90, groups=3, rho=0.02)
    table = peer_deviance(counts, reps, min_volume=1)
    rho = table["overdispersion"][0]
    assert rho > 0
    prior = 1 / rho - 1
    expected = (table["successes"] + table["peer_rate"] * prior) / (table["volume"] + prior)
    assert table["shrunk_rate"].to_list() == pytest.approx(expected.to_list())
    between = (table["shrunk_rate"] - table["rate"]) * (table["shrunk_rate"] - table["peer_rate"])
    assert (between <= 1e-15).all()  # shrunk rate lies between the rate and the peer rate


def test_without_overdispersion_every_rep_shrinks_to_the_peer_rate():
    reps = _reps({"g": ["a", "b", "c"]})
    table = peer_deviance(
        _counts([("a", 30, 100), ("b", 31, 100), ("c", 29, 100)]), reps, min_volume=1
    )
    assert table["overdispersion"][0] == 0.0
    # each rep shrinks to the rate of the others
    assert table["shrunk_rate"].to_list() == pytest.approx([0.3, 0.295, 0.305])
    assert table["shrunk_rate"].to_list() == table["peer_rate"].to_list()


# ------------------------------------------------------------------------ deviants_table


def _enriched(activities: pl.DataFrame, reps: pl.DataFrame, opportunities: pl.DataFrame):
    return SimpleNamespace(
        activities=activities,
        reps=reps,
        tables={"opportunities": opportunities},
        settings=load_settings(),
    )


def test_deviants_table_lists_deviants_positive_first_by_distance():
    rows = []
    spec = {
        "hi": 0.45,
        "hi2": 0.40,
        "lo": 0.15,
        **{f"m{i}": 0.3 + (i % 5 - 2) / 100 for i in range(17)},
    }
    for rep, rate in spec.items():
        n, s = 1000, round(rate * 1000)
        rows += [(rep, True, i < s) for i in range(n)]
    activities = pl.DataFrame(
        rows, schema=["rep_id", "is_customer_facing", "responded"], orient="row"
    )
    reps = _reps({"SMB · AE": list(spec)})
    table = deviants_table(_enriched(activities, reps, pl.DataFrame()), metric="response_rate")
    assert table.columns[:8] == [
        "rep_id",
        "rep_name",
        "peer_group",
        "direction",
        "rate",
        "shrunk_rate",
        "peer_rate",
        "volume",
    ]
    assert table.select("rep_id", "direction").rows() == [
        ("hi", "positive"),
        ("hi2", "positive"),
        ("lo", "negative"),
    ]
    assert (table["q_value"] <= 0.05).all()  # the flag rule, shown in the table and --json
    assert table["peer_basis"].is_not_null().all()
    json.dumps(table.to_dicts())  # the CLI's --json can serialise it


def test_win_rate_deviance_works_on_pipeline_only_data():
    outcomes = {
        "ace": ["won"] * 40 + ["lost"] * 10,
        **{
            f"r{i}": ["won"] * 12 + ["lost"] * 30 + ["no_decision"] * 8 + ["open"] * 5
            for i in range(8)
        },
    }
    opportunities = pl.DataFrame(
        [(rep, o) for rep, os in outcomes.items() for o in os],
        schema=["rep_id", "outcome"],
        orient="row",
    )
    empty = pl.DataFrame(
        schema={"rep_id": pl.String, "is_customer_facing": pl.Boolean, "responded": pl.Boolean}
    )
    enriched = _enriched(empty, _reps({"g": list(outcomes)}), opportunities)
    table = rep_deviance(enriched, metric="win_rate")
    assert table.filter(pl.col("rep_id") == "r0")["volume"].item() == 50
    assert deviants_table(enriched, metric="win_rate")["rep_id"].to_list() == ["ace"]
    assert deviants_table(enriched, metric="response_rate").is_empty()
    with pytest.raises(ValueError, match="metric"):
        rep_deviance(enriched, metric="roe")


# ---------------------------------------------------------------------------- what differs


def _touches(rep: str, types: list[str], *, contacts: int = 4, gap_days: float = 1.0):
    """A rep's touches: ``types`` in order, round-robin over contacts so that each contact
    sees every ``contacts``-th touch, consecutive touches on a contact ``gap_days`` apart."""
    rows = []
    for i, activity_type in enumerate(types):
        contact, turn = i % contacts, i // contacts
        ts = T0 + dt.timedelta(days=turn * gap_days, minutes=contact)
        rows.append((rep, f"{rep}-{i}", f"{rep}-c{contact}", ts, activity_type))
    frame = pl.DataFrame(
        rows, schema=["rep_id", "activity_id", "contact_id", "ts", "activity_type"], orient="row"
    )
    return frame.with_columns(
        is_customer_facing=pl.lit(True),
        weekday=pl.col("ts").dt.weekday().cast(pl.Int8),
        hour=pl.col("ts").dt.hour().cast(pl.Int8),
    )


def _deviance(directions: dict[str, tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(rep, group, direction) for rep, (group, direction) in directions.items()],
        schema=["rep_id", "peer_group", "direction"],
        orient="row",
    )


def test_what_differs_ranks_the_activity_mix_that_differs_first():
    activities = pl.concat(
        [
            _touches("dev", ["call"] * 60 + ["email"] * 40),
            _touches("p1", ["call"] * 20 + ["email"] * 80),
            _touches("p2", ["call"] * 20 + ["email"] * 80),
            _touches("neg", ["call"] * 100),  # a negative deviant is nobody's peer
        ]
    )
    deviance = _deviance(
        {
            "dev": ("g", "positive"),
            "p1": ("g", "none"),
            "p2": ("g", "none"),
            "neg": ("g", "negative"),
        }
    )
    before = activities.clone()
    table = what_differs(activities, deviance, min_support=1000)
    assert_frame_equal(activities, before)
    top = table.row(0, named=True)
    assert (top["feature"], top["level"], top["rank"]) == ("activity_type_share", "call", 1)
    assert top["deviant_value"] == pytest.approx(0.6) and top["peer_value"] == pytest.approx(0.2)
    assert top["effect_size"] == pytest.approx(_cohen_h(0.6, 0.2))
    email = table.filter(pl.col("level") == "email").row(0, named=True)
    assert email["effect_size"] == pytest.approx(_cohen_h(0.4, 0.8))
    assert (top["deviant_base"], top["peer_base"]) == (100, 200)
    assert table["rank"].to_list() == list(range(1, table.height + 1))


def test_what_differs_compares_deviants_with_their_own_peer_group_only():
    activities = pl.concat(
        [
            _touches("devA", ["call"] * 60 + ["email"] * 40),
            _touches("peerA", ["call"] * 20 + ["email"] * 80),
            _touches("devB1", ["call"] * 30 + ["email"] * 70),
            _touches("devB2", ["call"] * 30 + ["email"] * 70),
            _touches("peerB", ["call"] * 30 + ["email"] * 70),
            _touches("peerC", ["call"] * 90 + ["email"] * 10),  # a group without deviants
        ]
    )
    deviance = _deviance(
        {
            "devA": ("A", "positive"),
            "peerA": ("A", "none"),
            "devB1": ("B", "positive"),
            "devB2": ("B", "positive"),
            "peerB": ("B", "none"),
            "peerC": ("C", "none"),
        }
    )
    call = (
        what_differs(activities, deviance, min_support=1000)
        .filter(pl.col("level") == "call")
        .row(0, named=True)
    )
    assert call["effect_size"] == pytest.approx(_cohen_h(0.6, 0.2) / 3)  # weights 1 (A), 2 (B)
    assert call["peer_value"] == pytest.approx((0.2 + 2 * 0.3) / 3)
    assert call["peer_groups"] == 2


def test_what_differs_sequences_measure_order_beyond_the_type_mix():
    alternating = ["call", "email"] * 100
    blocks = (["call"] * 10 + ["email"] * 10) * 10
    activities = pl.concat(
        [
            _touches("dev", alternating, contacts=1),
            _touches("p1", blocks, contacts=1),
        ]
    )
    deviance = _deviance({"dev": ("g", "positive"), "p1": ("g", "none")})
    table = what_differs(activities, deviance, min_support=50)
    types = table.filter(pl.col("feature") == "activity_type_share")
    assert types["effect_size"].abs().max() == pytest.approx(0.0)
    top = table.row(0, named=True)
    assert top["feature"] == "sequence" and top["measure"] == "cohen_h_beyond_mix"
    assert top["level"] in ("call → email", "email → call", "call → call", "email → email")
    call_email = table.filter(pl.col("level") == "call → email").row(0, named=True)
    # deviant: after a call always an email (P = 1) where emails are half of next touches
    assert call_email["deviant_value"] == pytest.approx(1.0 / (100 / 199))
    assert call_email["effect_size"] > 0.5


def test_what_differs_cadence_share_and_median_days():
    activities = pl.concat(
        [
            _touches("dev", ["call"] * 200, contacts=2, gap_days=1),
            _touches("p1", ["call"] * 200, contacts=2, gap_days=4),
            _touches("p2", ["call"] * 200, contacts=2, gap_days=6),
        ]
    )
    deviance = _deviance({"dev": ("g", "positive"), "p1": ("g", "none"), "p2": ("g", "none")})
    table = what_differs(activities, deviance, min_support=50)
    share = table.filter(pl.col("feature") == "follow_up_share").row(0, named=True)
    assert share["level"] == "within 2 days"
    assert (share["deviant_value"], share["peer_value"]) == (1.0, 0.0)
    assert share["effect_size"] == pytest.approx(_cohen_h(1.0, 0.0))
    median = table.filter(pl.col("feature") == "median_days_between_touches").row(0, named=True)
    assert median["deviant_value"] == pytest.approx(1.0)
    assert median["peer_value"] == pytest.approx(5.0)
    deviant_gaps = np.log1p(np.full(198, 1.0))
    peer_gaps = np.log1p(np.repeat([4.0, 6.0], 198))
    pooled = np.sqrt(
        (197 * deviant_gaps.var(ddof=1) + 395 * peer_gaps.var(ddof=1)) / (198 + 396 - 2)
    )
    assert median["effect_size"] == pytest.approx((deviant_gaps.mean() - peer_gaps.mean()) / pooled)
    assert (median["deviant_base"], median["measure"]) == (198, "cohen_d_log_days")


def test_what_differs_for_picked_reps_and_when_there_are_no_deviants():
    activities = pl.concat(
        [
            _touches("a", ["call"] * 50 + ["email"] * 50),
            _touches("b", ["call"] * 10 + ["email"] * 90),
        ]
    )
    deviance = _deviance({"a": ("g", "none"), "b": ("g", "none")})
    assert what_differs(activities, deviance).is_empty()
    picked = what_differs(activities, deviance, rep_ids=["a"], min_support=1000)
    call = picked.filter(pl.col("level") == "call").row(0, named=True)
    assert (call["deviant_value"], call["peer_value"]) == (0.5, 0.1)
    with pytest.raises(ValueError, match="direction"):
        what_differs(activities, deviance, direction="none")


# ------------------------------------------------------------------ planted truths and null


@pytest.fixture()
def planted(small_planted_enriched):
    """``(enriched, truth)`` of the shared planted sample (tests/conftest.py)."""
    return small_planted_enriched


@pytest.fixture()
def null(small_null_enriched):
    """``(enriched, truth)`` of the shared null sample (tests/conftest.py)."""
    return small_null_enriched


def _chance_bound(eligible: int) -> float:
    """Most reps outside the 99.8% limits by chance alone, in 99% of data sets."""
    return stats.binom.ppf(0.99, eligible, 0.002)


def test_planted_deviants_are_flagged_and_nobody_else_beyond_chance(planted):
    enriched, truth = planted
    table = rep_deviance(enriched)
    flagged = dict(table.filter(pl.col("direction") != "none").select("rep_id", "direction").rows())
    planted_reps = truth["positive_deviants"] + truth["negative_deviants"]
    assert truth["positive_deviants"] and truth["negative_deviants"]
    assert {rep: flagged.get(rep) for rep in planted_reps} == {
        **{rep: "positive" for rep in truth["positive_deviants"]},
        **{rep: "negative" for rep in truth["negative_deviants"]},
    }
    others = table.filter(pl.col("eligible") & ~pl.col("rep_id").is_in(planted_reps))
    assert (others["direction"] != "none").sum() <= _chance_bound(others.height)
    assert set(deviants_table(enriched)["rep_id"]) == set(flagged)


def test_planted_practice_ranks_first_in_what_differs(planted):
    enriched, truth = planted
    practice = truth["deviant_practice"]
    differs = what_differs(enriched.activities, rep_deviance(enriched), direction="positive")
    top = differs.row(0, named=True)
    assert (top["feature"], top["level"]) == (practice["feature"], practice["activity_type"])
    assert top["deviant_value"] == pytest.approx(practice["deviant_share"], abs=0.02)
    assert top["peer_value"] == pytest.approx(practice["peer_share"], abs=0.02)


@pytest.mark.parametrize("metric", ["response_rate", "win_rate"])
def test_null_data_has_no_more_false_deviants_than_the_998_limits_allow(null, metric):
    enriched, truth = null
    assert truth["positive_deviants"] == [] and truth["negative_deviants"] == []
    table = rep_deviance(enriched, metric=metric)
    eligible = int(table["eligible"].sum())
    assert eligible >= 30  # enough reps for the check to mean something
    assert (table["direction"] != "none").sum() <= _chance_bound(eligible)


def test_the_fits_root_finder_is_scipys_brentq_without_importing_scipy_optimize(monkeypatch):
    """fit_dispersion's brentq is scipy's compiled routine loaded alone: the same roots (to the
    bit, on curves like the fit's and on plain ones), the same refusals, and a fit in a fresh
    interpreter leaves scipy.optimize (and its ~23 MB) unimported."""
    import subprocess
    import sys

    from scipy import optimize

    from effortlens.deviance.funnel import _brentq  # noqa: PLC2701 - against scipy's

    rng = np.random.default_rng(3)
    for _ in range(200):
        centre, scale, power = rng.uniform(0.001, 0.49), rng.uniform(0.1, 50), rng.uniform(0.3, 3)

        def curve(x, centre=centre, scale=scale, power=power):
            return math.copysign(abs(centre - x) ** power, centre - x) * scale

        for low, high, xtol in [(0.0, 0.5, 1e-8), (centre * 0.98, centre * 1.02, 1e-8)]:
            if curve(low) > 0 > curve(high):
                assert _brentq(curve, low, high, xtol=xtol) == optimize.brentq(
                    curve, low, high, xtol=xtol
                )
    with pytest.raises(ValueError, match="NaN"):
        _brentq(lambda x: float("nan"), 0.0, 1.0, xtol=1e-8)
    with pytest.raises(ValueError):  # no sign change
        _brentq(lambda x: 1.0 + x, 0.0, 1.0, xtol=1e-8)

    def changed(*args):  # a scipy whose private routine takes other arguments
        raise TypeError("_brentq() takes 9 positional arguments")

    with monkeypatch.context() as patched:
        patched.setattr("effortlens.deviance.funnel._brent_routine", lambda: changed)
        line = lambda x: 0.3 - x  # noqa: E731
        assert _brentq(line, 0.0, 1.0, xtol=1e-8) == optimize.brentq(line, 0.0, 1.0, xtol=1e-8)
    fit = (
        "import sys, numpy as np\n"
        "from effortlens.deviance.funnel import fit_dispersion\n"
        "fit = fit_dispersion(np.array([30, 41, 29, 52, 18, 30, 44, 27]), np.full(8, 100),"
        " np.zeros(8, dtype=int))\n"
        "assert 0 < fit.rho < 0.5, fit.rho\n"
        "assert 'scipy.optimize' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", fit], check=True)


def test_quantiles_and_tails_left_to_scipy_are_scipys_without_importing_scipy_stats(
    monkeypatch,
):
    """The counts the exact tables leave undecided, and the tails of rough rows, are
    scipy.stats.betabinom's ppf and 2 min(cdf, sf) to the bit (random shapes, tiny and zero
    rho, a zero rate, counts past both ends of the support; every row of _exact sent there),
    and a kernel that meets one never imports scipy.stats."""
    import subprocess
    import sys

    from effortlens.deviance import funnel

    # the internals each answer is checked against scipy's for
    shapes = funnel._shapes  # noqa: SLF001
    betabinom_ppf = funnel._betabinom_ppf  # noqa: SLF001
    betabinom_two_sided = funnel._betabinom_two_sided  # noqa: SLF001
    exact_limits = funnel._exact  # noqa: SLF001
    rng = np.random.default_rng(11)
    n = 600
    volume = rng.integers(0, 1500, n)
    rate, rho = rng.uniform(0.001, 0.999, n), 10 ** rng.uniform(-12, -0.5, n)
    rho[:20], rate[20:25] = 0.0, 0.0  # the binomial limit; invalid shapes (NaN, as scipy)
    a, b = shapes(rate, rho)
    with np.errstate(all="ignore"):
        dist = stats.betabinom(volume, a, b)
        for q in (0.001, 0.025, 0.3, 0.975, 0.999):
            np.testing.assert_array_equal(betabinom_ppf(volume, rate, rho, q), dist.ppf(q))
        k = rng.integers(-1, volume + 2)
        want = 2 * np.minimum(dist.cdf(k), dist.sf(k - 1))
    np.testing.assert_array_equal(betabinom_two_sided(volume, rate, rho, k), want)
    # every row of the exact tables undecided and rough: each answer is scipy's
    monkeypatch.setattr(funnel, "_MAX_ERROR", -1.0)
    keep = volume > 0
    v, r, h = volume[keep], np.clip(rate[keep], 0.01, 0.99), rho[keep]
    s = rng.integers(0, v + 1)
    quantiles = [0.001, 0.999]
    counts, p = exact_limits(v, r, h, quantiles, s)
    aa, bb = shapes(r, h)
    exact = stats.betabinom(v, aa, bb)
    for got, q in zip(counts, quantiles, strict=True):
        np.testing.assert_array_equal(got, exact.ppf(q))
    np.testing.assert_array_equal(p, 2 * np.minimum(exact.cdf(s), exact.sf(s - 1)))
    undecided = (
        "import sys, numpy as np\n"
        "from effortlens.deviance import funnel\n"
        "funnel._MAX_ERROR = -1.0\n"
        "counts, p = funnel._exact(np.array([40, 300]), np.array([0.2, 0.6]),"
        " np.array([0.01, 0.0]), [0.001, 0.999], np.array([3, 200]))\n"
        "assert np.isfinite(counts[0]).all() and np.isfinite(p).all()\n"
        "assert 'scipy.stats' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", undecided], check=True)


def test_running_counts_of_each_reps_run_of_rows_equal_the_grouped_ones():
    """A roll-up sorted by rep (as a build writes it) is indexed from each rep's run of rows;
    shuffled, or holding a rep the list lacks, it is grouped instead: the counts of every
    period are the same three ways, and equal the rows summed."""
    from effortlens.deviance import response_count_index, response_counts_between

    rng = np.random.default_rng(7)
    days = [dt.date(2025, 3, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 40, 600)]
    daily = pl.DataFrame(
        {
            "rep_id": [f"r{int(r)}" for r in rng.integers(0, 9, 600)],
            "day": days,
            "is_customer_facing": rng.random(600) < 0.7,
            "activities": rng.integers(0, 5, 600),
            "responded": rng.integers(0, 3, 600),
        },
        schema_overrides={"activities": pl.UInt32, "responded": pl.UInt32},
    ).with_columns(responded=pl.min_horizontal("responded", "activities"))
    reps = pl.Series([f"r{i}" for i in range(10)])  # r9 has no row
    ordered = daily.sort("rep_id", "day")
    # the reps held as codes (a page's daily_rep_codes): the categories in another order than
    # the text's, so that a code's order is not the rep's
    categorical = pl.Categorical(pl.Categories("test.rep_id", namespace=str(rng.integers(1e9))))
    pl.Series([f"r{i}" for i in (8, 3, 0, 5, 1, 7, 2, 6, 4)], dtype=categorical)
    enum = pl.Enum([f"r{i}" for i in (8, 3, 0, 9, 5, 1, 7, 2, 6, 4)])
    coded = {
        f"{name} {kind}": frame.with_columns(pl.col("rep_id").cast(dtype))
        for name, frame in (("ordered", ordered), ("shuffled", daily))
        for kind, dtype in (("categorical", categorical), ("enum", enum))
    }
    indexes = {
        "runs": response_count_index(ordered, rep_ids=reps),
        "shuffled": response_count_index(daily, rep_ids=reps),
        "a rep missing": response_count_index(ordered, rep_ids=reps.head(5)),
        "grouped": response_count_index(ordered),
        **{name: response_count_index(frame, rep_ids=reps) for name, frame in coded.items()},
        "codes, a rep missing": response_count_index(coded["ordered enum"], rep_ids=reps.head(5)),
    }
    assert indexes["runs"].rep_ids.to_list() == reps.sort().to_list()  # the runs were read
    assert indexes["shuffled"].rep_ids.len() == 9  # grouped: reps with rows only
    for name in ("ordered categorical", "ordered enum"):  # the codes' runs: the same index
        index, runs = indexes[name], indexes["runs"]
        assert index.rep_ids.equals(runs.rep_ids) and index.first_day == runs.first_day
        assert np.array_equal(index.successes, runs.successes)
        assert np.array_equal(index.trials, runs.trials)
    for name in ("shuffled categorical", "shuffled enum", "codes, a rep missing"):
        assert indexes[name].rep_ids.len() < 10  # a rep in many runs, or not listed: grouped
    for start, end in [
        (None, None),
        (dt.date(2025, 3, 5), dt.date(2025, 3, 20)),
        (dt.date(2025, 4, 8), None),
        (None, dt.date(2025, 2, 1)),
    ]:
        kept = ordered.filter(
            pl.col("is_customer_facing") & (pl.col("activities") > 0),
            pl.col("day") >= (start or dt.date.min),
            pl.col("day") <= (end or dt.date.max),
        )
        summed = (
            kept.group_by("rep_id")
            .agg(successes=pl.col("responded").sum(), trials=pl.col("activities").sum())
            .sort("rep_id")
        )
        for index in indexes.values():
            counted = response_counts_between(index, start=start, end=end)
            assert_frame_equal(counted, summed, check_dtypes=False)


@pytest.mark.parametrize("weekday", range(7))
def test_what_differs_over_a_period_counts_the_touches_it_sees(planted, weekday, monkeypatch):
    """A period starting on any weekday: the picked deviant's and its peers' shares, follow-up
    share, transitions and median days are those of the period's touches, counted here by
    hand (a previous touch before the period forgotten), whether the compared touches are read
    once (few reps) or counted where they lie (most reps)."""
    from effortlens.deviance import differs, practice_facts, practice_in, what_differs_in
    from effortlens.filters import Filter
    from effortlens.vocabulary import SEQUENCE_SEPARATOR, WEEKDAY_NAMES

    enriched, truth = planted
    deviance = rep_deviance(enriched)
    practice = practice_facts(enriched.activities).collect()
    last = practice["day"].max()
    start = last - dt.timedelta(days=90)
    start -= dt.timedelta(days=(start.weekday() - weekday) % 7)
    flt = Filter(start=start, end=last - dt.timedelta(days=3))
    touches = practice_in(practice, flt).collect()
    assert touches.filter(pl.col("previous_day") < start)["previous_type"].is_null().all()
    deviant = truth["positive_deviants"][0]
    group = deviance.filter(pl.col("rep_id") == deviant)["peer_group"].item()
    peers = deviance.filter((pl.col("peer_group") == group) & (pl.col("direction") == "none"))
    sides = {"deviant": [deviant], "peer": peers["rep_id"].to_list()}
    tables = {}
    for at_most in (0.0, 1.0):  # counted where they lie, or read once
        monkeypatch.setattr(differs, "READ_ONCE_AT_MOST", at_most)
        tables[at_most] = what_differs_in(
            practice_in(practice, flt), deviance, rep_ids=[deviant], min_support=1
        )
    got = tables[1.0]
    assert_frame_equal(tables[0.0], got, check_exact=False, rel_tol=1e-12)

    def level(feature: str) -> pl.Expr:
        return {
            "activity_type_share": pl.col("activity_type"),
            "weekday_share": pl.col("weekday").map_elements(
                lambda d: WEEKDAY_NAMES[d - 1], return_dtype=pl.String
            ),
            "hour_share": pl.format("{}:00", pl.col("hour").cast(pl.String).str.zfill(2)),
            "follow_up_share": pl.when(pl.col("gap_days") <= 2)
            .then(pl.lit("within 2 days"))
            .otherwise(pl.lit("after 2 days")),
        }[feature]

    checked = 0
    for row in got.iter_rows(named=True):
        feature = row["feature"]
        for side, reps in sides.items():
            mine = touches.filter(pl.col("rep_id").is_in(reps))
            if feature == "median_days_between_touches":
                gaps = mine["gap_days"].drop_nulls()
                expected = (gaps.median(), float(gaps.len()))
            elif feature == "sequence":
                before, after = row["level"].split(SEQUENCE_SEPARATOR)
                moves = mine.filter(pl.col("previous_type").is_not_null())
                base = moves.filter(pl.col("previous_type") == before).height
                rate = moves.filter(pl.col("previous_type") == before)
                rate = (rate["activity_type"] == after).sum() / base
                expected = (rate / ((moves["activity_type"] == after).sum() / moves.height), base)
            else:
                if feature == "follow_up_share":
                    mine = mine.filter(pl.col("gap_days").is_not_null())
                named = mine.select(level(feature).alias("level"))["level"]
                expected = ((named == row["level"]).sum() / named.len(), float(named.len()))
            value, base = row[f"{side}_value"], row[f"{side}_base"]
            assert base == expected[1], (feature, row["level"], side)
            assert value == pytest.approx(expected[0], rel=1e-12), (feature, row["level"], side)
            checked += 1
    assert {"activity_type_share", "weekday_share", "hour_share"} <= set(got["feature"])
    assert {"follow_up_share", "sequence", "median_days_between_touches"} <= set(got["feature"])
    assert checked > 50
