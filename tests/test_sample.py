"""The sample-data generator: deterministic, canonical, and its planted truths really in the data.

Every planted truth is measured here straight from the raw tables with Polars (never through
EffortLens metrics), using ``_truth_responses.parquet`` for which activity each buyer action
truly answers. Thresholds leave room for the noise of the tiny size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.sample import SIZES, ensure_sample, generate, resolve_size
from effortlens.schema import OUTCOMES, TABLES
from effortlens.settings import load_settings

SETTINGS = load_settings()
CUSTOMER_FACING = list(SETTINGS.customer_facing)
STAGES = list(SETTINGS.stages)
DAY_S = 86400


def _load(folder: Path) -> tuple[dict[str, pl.DataFrame], dict]:
    tables = {name: pl.read_parquet(folder / f"{name}.parquet") for name in TABLES}
    tables["responses"] = pl.read_parquet(folder / "_truth_responses.parquet")
    return tables, json.loads((folder / "truth.json").read_text())


@pytest.fixture(scope="module")
def planted(tiny_planted):
    return _load(tiny_planted)


@pytest.fixture(scope="module")
def null(tiny_null):
    return _load(tiny_null)


def _touches(tables: dict[str, pl.DataFrame], truth: dict) -> pl.DataFrame:
    """Customer-facing activities with: answered (truly), the rep's peer group, the days since
    the previous touch to the contact, that touch's type, and local weekday and hour."""
    answered = tables["responses"].drop_nulls("activity_id").select("activity_id").unique()
    return (
        tables["activities"]
        .filter(pl.col("activity_type").is_in(CUSTOMER_FACING))
        .with_columns(answered=pl.col("activity_id").is_in(answered["activity_id"].implode()))
        .sort("contact_id", "ts")
        .with_columns(
            gap_days=(pl.col("ts") - pl.col("ts").shift(1).over("contact_id")).dt.total_seconds()
            / DAY_S,
            previous_type=pl.col("activity_type").shift(1).over("contact_id"),
            local=pl.col("ts").dt.convert_time_zone(truth["timezone"]),
        )
        .with_columns(weekday=pl.col("local").dt.weekday(), hour=pl.col("local").dt.hour())
        .join(tables["reps"].select("rep_id", "team", "segment", "role"), on="rep_id")
    )


def _rate(frame: pl.DataFrame, condition: pl.Expr) -> float:
    return frame.filter(condition)["answered"].mean()


def _stage_entries(tables: dict[str, pl.DataFrame], truth: dict) -> pl.DataFrame:
    """Stage entries with their deal's outcome, time in stage and whether the deal left there."""
    period_end = pl.lit(date.fromisoformat(truth["period_end"]) + timedelta(days=1)).cast(
        pl.Datetime("us", "UTC")
    )
    history = tables["stage_history"].with_columns(
        k=pl.col("stage").replace_strict(STAGES, list(range(len(STAGES))))
    )
    return (
        history.sort("opportunity_id", "entered_ts")
        .join(
            tables["opportunities"].select("opportunity_id", "outcome", "close_ts"),
            on="opportunity_id",
        )
        .with_columns(
            last=pl.col("k").max().over("opportunity_id"),
            left_at=pl.coalesce(pl.col("entered_ts").shift(-1).over("opportunity_id"), "close_ts"),
        )
        .with_columns(
            leaked=(pl.col("k") == pl.col("last"))
            & pl.col("outcome").is_in(["lost", "no_decision"]),
            days=(pl.col("left_at") - pl.col("entered_ts")).dt.total_seconds() / DAY_S,
            open_days=(period_end - pl.col("entered_ts")).dt.total_seconds() / DAY_S,
        )
    )


# --- determinism, sizes and structure -------------------------------------------------------


def test_same_arguments_give_identical_files_and_another_seed_does_not(tmp_path, tiny_planted):
    generate(tmp_path / "again", size="tiny", seed=11)
    generate(tmp_path / "other", size="tiny", seed=12)
    names = sorted(p.name for p in tiny_planted.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "again").iterdir())
    for name in names:
        assert (tiny_planted / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert (tiny_planted / "activities.parquet").read_bytes() != (
        tmp_path / "other" / "activities.parquet"
    ).read_bytes()


def test_every_table_has_the_canonical_schema_and_unique_keys(planted):
    tables, _ = planted
    for name, spec in TABLES.items():
        frame = tables[name]
        assert frame.schema == spec.schema, name
        assert frame.height > 0, name
        assert frame.select(pl.col(spec.not_null).null_count()).sum_horizontal().item() == 0, name
        if spec.key:
            assert frame[spec.key].is_unique().all(), name
    assert set(tables["activities"]["activity_type"].unique()) <= set(
        SETTINGS.customer_facing
    ) | set(SETTINGS.internal)
    assert set(tables["opportunities"]["outcome"].unique()) <= set(OUTCOMES)
    assert set(tables["stage_history"]["stage"].unique()) <= set(STAGES)


def test_csv_output_holds_the_same_tables_as_parquet(tmp_path, planted):
    tables, _ = planted
    generate(tmp_path, size="tiny", seed=11, fmt="csv")
    assert "Z," in (tmp_path / "activities.csv").read_text().splitlines()[1]
    for name, spec in TABLES.items():
        assert_frame_equal(pl.read_csv(tmp_path / f"{name}.csv", schema=spec.schema), tables[name])


def test_sizes_and_ensure_sample(tmp_path, tiny_planted):
    assert resolve_size("10m")[1] == SIZES["10m"]
    assert resolve_size("250000")[1]["n_reps"] == 50
    with pytest.raises(ValueError, match="size must be one of"):
        resolve_size("huge")
    before = (tiny_planted / "activities.parquet").stat().st_mtime_ns
    assert ensure_sample(tiny_planted, size="tiny", seed=11) == tiny_planted
    assert (tiny_planted / "activities.parquet").stat().st_mtime_ns == before
    out = tmp_path / "s"
    ensure_sample(out, size="tiny", seed=11, mode="null")
    assert json.loads((out / "truth.json").read_text())["mode"] == "null"
    ensure_sample(out, size="tiny", seed=11)  # other arguments: regenerated
    assert json.loads((out / "truth.json").read_text())["mode"] == "planted"


def test_command_writes_into_out_dir_given_either_way(tmp_path, tiny_planted, capsys):
    from effortlens.cli import main as cli_main
    from effortlens.sample import main

    assert main(["--size", "tiny", "--seed", "11", "--out", str(tmp_path / "a")]) == 0
    assert cli_main(["sample", str(tmp_path / "b"), "--size", "tiny", "--seed", "11"]) == 0
    assert "wrote planted sample (tiny, seed 11)" in capsys.readouterr().out
    for name in ("activities.parquet", "truth.json"):
        expected = (tiny_planted / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() == expected
    assert main(["--size", "huge", str(tmp_path / "c")]) == 2
    assert "size must be one of" in capsys.readouterr().err
    for argv in ([], [str(tmp_path / "d"), "--out", str(tmp_path / "e")]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert "OUT_DIR or --out" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_sample_runs_as_a_module_without_importing_the_cli(tmp_path):
    code = (
        "import sys, runpy; sys.argv = ['x', '--help']\n"
        "try:\n    runpy.run_module('effortlens.sample', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0\n"
        "assert 'effortlens.cli' not in sys.modules, 'effortlens.sample imports the CLI'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "--out DIR" in done.stdout and "OUT_DIR" in done.stdout


def test_truth_file_describes_the_data(planted):
    tables, truth = planted
    reps = tables["reps"]
    assert truth["mode"] == "planted" and truth["seed"] == 11 and truth["size"] == "tiny"
    assert truth["n_reps"] == reps.height == SIZES["tiny"]["n_reps"]
    assert truth["n_activities"] == tables["activities"].height
    assert 12_000 < truth["n_activities"] < 18_000
    assert truth["timezone"] == SETTINGS.timezone
    local = tables["activities"]["ts"].dt.convert_time_zone(truth["timezone"]).dt.date()
    assert (
        truth["period_start"]
        <= local.min().isoformat()
        <= local.max().isoformat()
        <= truth["period_end"]
    )
    assert 2 <= len(truth["positive_deviants"]) <= 4 and 1 <= len(truth["negative_deviants"]) <= 2
    groups = reps.group_by("segment", "role").len()
    for rep in truth["positive_deviants"]:
        row = reps.filter(pl.col("rep_id") == rep).join(groups, on=["segment", "role"])
        assert row["len"].item() >= 6
    intervention = truth["intervention"]
    start = date.fromisoformat(intervention["start_date"])
    assert start - date.fromisoformat(truth["period_start"]) >= timedelta(weeks=8)
    assert date.fromisoformat(truth["period_end"]) - start >= timedelta(weeks=8)
    participants = tables["intervention_participants"]
    assert sorted(participants["rep_id"]) == sorted(intervention["treated"])
    assert tables["interventions"]["start_date"].item() == start
    assert 0.15 <= len(intervention["treated"]) / reps.height <= 0.4
    treated = reps.with_columns(treated=pl.col("rep_id").is_in(intervention["treated"]))
    mixed = treated.group_by("segment", "role").agg(pl.col("treated").sum(), pl.len())
    in_groups = mixed.filter(pl.col("treated") > 0)
    assert (in_groups["treated"] < in_groups["len"]).all()
    assert sorted(in_groups.select("segment", "role").rows()) == sorted(
        tuple(g) for g in intervention["peer_groups"]
    )
    assert truth["expected_quarantine"] == {}


def test_reps_work_only_while_employed(planted):
    tables, truth = planted
    reps = tables["reps"]
    assert (reps["exit_date"].is_null() == reps["exit_reason"].is_null()).all()
    assert "voluntary" in set(reps["exit_reason"].drop_nulls())
    assert set(reps["exit_reason"].drop_nulls()) <= {"voluntary", "involuntary"}
    assert reps["exit_date"].drop_nulls().len() >= 2
    assert (reps["hire_date"] > date.fromisoformat(truth["period_start"])).sum() >= 2
    dated = (
        tables["activities"]
        .join(reps, on="rep_id")
        .with_columns(day=pl.col("ts").dt.convert_time_zone(truth["timezone"]).dt.date())
    )
    assert dated.filter(pl.col("day") < pl.col("hire_date")).height == 0
    assert dated.filter(pl.col("day") >= pl.col("exit_date")).height == 0


def test_activities_happen_in_local_business_hours(planted):
    tables, truth = planted
    local = tables["activities"]["ts"].dt.convert_time_zone(truth["timezone"])
    assert local.dt.hour().is_between(7, 18).all()
    assert (local.dt.weekday() <= 5).mean() > 0.95
    assert tables["activities"]["duration_min"].min() > 0


def test_customer_facing_activities_sit_on_accounts_contacts_and_own_deals(planted):
    tables, _ = planted
    acts = tables["activities"]
    facing = acts.filter(pl.col("activity_type").is_in(CUSTOMER_FACING))
    assert (
        facing.select(pl.col("account_id", "contact_id").null_count()).sum_horizontal().item() == 0
    )
    assert facing["opportunity_id"].is_not_null().mean() > 0.5
    internal = acts.filter(~pl.col("activity_type").is_in(CUSTOMER_FACING))
    assert internal["account_id"].null_count() == internal.height
    on_deal = facing.drop_nulls("opportunity_id").join(
        tables["opportunities"].select(
            "opportunity_id", "rep_id", "account_id", "created_ts", "close_ts"
        ),
        on="opportunity_id",
        suffix="_deal",
    )
    assert on_deal.height == facing["opportunity_id"].drop_nulls().len()
    assert (on_deal["rep_id"] == on_deal["rep_id_deal"]).all()
    assert (on_deal["account_id"] == on_deal["account_id_deal"]).all()
    assert (on_deal["ts"] > on_deal["created_ts"]).all()
    assert on_deal.filter(pl.col("ts") > pl.col("close_ts")).height == 0


def test_buyer_actions_answer_real_activities_within_the_window(planted):
    tables, _ = planted
    actions = tables["buyer_actions"].join(tables["responses"], on="action_id")
    assert actions.height == tables["buyer_actions"].height
    initiated = actions.filter(pl.col("activity_id").is_null())
    assert 0.07 < initiated.height / actions.height < 0.13
    answers = actions.drop_nulls("activity_id").join(
        tables["activities"], on="activity_id", suffix="_act"
    )
    assert answers.height == actions.height - initiated.height
    assert (answers["account_id"] == answers["account_id_act"]).all()
    assert (answers["contact_id"] == answers["contact_id_act"]).all()
    same_deal = answers["opportunity_id"].eq_missing(answers["opportunity_id_act"])
    # the buyer meeting that opened a deal is linked to the deal it opened
    opened = answers.filter(~same_deal)
    assert opened["opportunity_id_act"].null_count() == opened.height
    assert same_deal.mean() > 0.9
    lag_h = (answers["ts"] - answers["ts_act"]).dt.total_seconds() / 3600
    assert lag_h.min() >= 0 and lag_h.max() < 14 * 24
    assert lag_h.median() < 24 and (lag_h < 72).mean() > 0.9
    assert set(answers["action_type"].unique()) <= set(SETTINGS.action_weights)
    assert (answers["action_type"] == "reply").mean() > 0.3
    expected_weight = actions["action_type"].replace_strict(SETTINGS.action_weights)
    assert (actions["weight"] == expected_weight).all()
    assert (actions["is_verifier"] == actions["action_type"].is_in(SETTINGS.verifiers)).all()
    # buyer-initiated: no customer-facing activity on that account in the 14 days before
    facing = tables["activities"].filter(pl.col("activity_type").is_in(CUSTOMER_FACING))
    before = initiated.sort("ts").join_asof(
        facing.select("account_id", pl.col("ts").alias("touch")).sort("touch"),
        left_on="ts",
        right_on="touch",
        by="account_id",
        strategy="backward",
        check_sortedness=False,
    )
    assert before.filter(pl.col("ts") - pl.col("touch") <= timedelta(days=14)).height == 0


def test_the_attribution_rule_recovers_the_true_responses(planted):
    tables, _ = planted
    facing = tables["activities"].filter(pl.col("activity_type").is_in(CUSTOMER_FACING))
    actions = tables["buyer_actions"].sort("ts")
    credited = actions.select("action_id")
    for level in ("opportunity_id", "contact_id", "account_id"):
        found = actions.drop_nulls(level).join_asof(
            facing.drop_nulls(level)
            .select(level, "activity_id", pl.col("ts").alias("at"))
            .sort("at"),
            left_on="ts",
            right_on="at",
            by=level,
            strategy="backward",
            tolerance="14d",
            check_sortedness=False,
        )
        credited = credited.join(
            found.select("action_id", pl.col("activity_id").alias(level)),
            on="action_id",
            how="left",
        )
    credited = credited.select(
        "action_id", credited_to=pl.coalesce("opportunity_id", "contact_id", "account_id")
    ).join(tables["responses"], on="action_id")
    right = credited["credited_to"].eq_missing(credited["activity_id"])
    assert right.mean() > 0.8


# --- planted truths, measured on the raw tables ------------------------------------------------


def test_deviants_answer_far_more_or_less_often_than_their_peers(planted):
    tables, truth = planted
    touches = _touches(tables, truth)
    deviants = truth["positive_deviants"] + truth["negative_deviants"]
    for rep in deviants:
        group = touches.filter(pl.col("rep_id") == rep).select("segment", "role").row(0)
        peers = touches.filter(
            (pl.col("segment") == group[0])
            & (pl.col("role") == group[1])
            & ~pl.col("rep_id").is_in(deviants)
        )
        ratio = _rate(touches, pl.col("rep_id") == rep) / peers["answered"].mean()
        if rep in truth["positive_deviants"]:
            assert ratio > 1.5, (rep, ratio)
        else:
            assert ratio < 0.65, (rep, ratio)


def test_the_deviants_practice_is_their_largest_difference(planted):
    tables, truth = planted
    touches = _touches(tables, truth)
    practice = truth["deviant_practice"]
    positive = truth["positive_deviants"]
    groups = touches.filter(pl.col("rep_id").is_in(positive)).select("segment", "role").unique()
    shares = (
        touches.join(groups, on=["segment", "role"])
        .filter(~pl.col("rep_id").is_in(truth["negative_deviants"]))
        .group_by(deviant=pl.col("rep_id").is_in(positive))
        .agg([(pl.col("activity_type") == t).mean().alias(t) for t in CUSTOMER_FACING])
        .sort("deviant")
    )
    peer, deviant = shares.drop("deviant").rows(named=True)
    assert practice["activity_type"] == "call" and practice["feature"] == "activity_type_share"
    assert deviant["call"] == pytest.approx(practice["deviant_share"], abs=1e-4)
    assert peer["call"] == pytest.approx(practice["peer_share"], abs=1e-4)
    assert practice["deviant_share"] > 1.8 * practice["peer_share"]
    differences = {t: abs(deviant[t] - peer[t]) for t in CUSTOMER_FACING}
    assert max(differences, key=differences.get) == "call"


def test_the_leaky_stage_loses_far_more_deals(planted, null):
    for (tables, truth), planted_here in ((planted, True), (null, False)):
        leakage = dict(
            _stage_entries(tables, truth).group_by("stage").agg(pl.col("leaked").mean()).iter_rows()
        )
        others = [v for s, v in leakage.items() if s != "evaluation"]
        if planted_here:
            assert truth["leaky_stage"] == "evaluation"
            assert leakage["evaluation"] > 1.5 * max(others)
        else:
            assert max(leakage.values()) - min(leakage.values()) < 0.15


def test_the_stalled_stage_takes_longer_and_holds_deals_past_p90(planted, null):
    for (tables, truth), planted_here in ((planted, True), (null, False)):
        entries = _stage_entries(tables, truth)
        stats = entries.group_by("stage").agg(
            median=pl.col("days").median(),
            stuck=(
                pl.col("days").is_null() & (pl.col("open_days") > pl.col("days").quantile(0.9))
            ).sum(),
        )
        median = dict(stats.select("stage", "median").iter_rows())
        stuck = dict(stats.select("stage", "stuck").iter_rows())
        others = [v for s, v in median.items() if s != "negotiation"]
        if planted_here:
            assert truth["stalled_stage"] == "negotiation"
            assert median["negotiation"] > 1.3 * max(others)
            assert stuck["negotiation"] > 2 * sum(v for s, v in stuck.items() if s != "negotiation")
        else:
            assert median["negotiation"] < 1.3 * sorted(others)[len(others) // 2]
            assert stuck["negotiation"] < 10


def test_the_unverified_stage_lacks_buyer_verifiers(planted, null):
    for (tables, truth), planted_here in ((planted, True), (null, False)):
        history = tables["stage_history"]
        verified = dict(
            history.group_by("stage")
            .agg(pl.col("verifier_action_id").is_not_null().mean())
            .iter_rows()
        )
        backed = history.drop_nulls("verifier_action_id").join(
            tables["buyer_actions"],
            left_on="verifier_action_id",
            right_on="action_id",
            suffix="_action",
        )
        assert backed.height == history["verifier_action_id"].drop_nulls().len()
        assert backed["is_verifier"].all()
        assert backed["opportunity_id"].eq_missing(backed["opportunity_id_action"]).all()
        assert backed["verifier_action_id"].is_unique().all()
        others = [v for s, v in verified.items() if s != "commit"]
        if planted_here:
            assert truth["unverified_stage"] == "commit"
            assert verified["commit"] < 0.2 and min(others) > 0.4
        else:
            assert (
                verified["commit"] > 0.25 and max(verified.values()) - min(verified.values()) < 0.3
            )


def test_the_intervention_lifts_only_participants_after_its_start(planted, null):
    for tables, truth in (planted, null):
        intervention = truth["intervention"]
        start = date.fromisoformat(intervention["start_date"])
        deviants = truth["positive_deviants"] + truth["negative_deviants"]
        touches = _touches(tables, truth).filter(
            pl.concat_list("segment", "role").is_in(intervention["peer_groups"])
            & ~pl.col("rep_id").is_in(deviants)
        )
        rate = {
            (treated, after): _rate(
                touches,
                (pl.col("rep_id").is_in(intervention["treated"]) == treated)
                & ((pl.col("local").dt.date() >= start) == after),
            )
            for treated in (True, False)
            for after in (True, False)
        }
        assert abs(rate[True, False] - rate[False, False]) < 0.04  # alike before
        did = (rate[True, True] - rate[True, False]) - (rate[False, True] - rate[False, False])
        assert did == pytest.approx(intervention["effect"], abs=0.045)
    assert planted[1]["intervention"]["effect"] == 0.08 and null[1]["intervention"]["effect"] == 0.0


def _selling_time(tables, truth) -> pl.DataFrame:
    start, end = date.fromisoformat(truth["period_start"]), date.fromisoformat(truth["period_end"])
    weeks = tables["reps"].select(
        "rep_id",
        "team",
        "exit_reason",
        weeks=(
            pl.min_horizontal(
                pl.col("exit_date").fill_null(end + timedelta(days=1)),
                pl.lit(end + timedelta(days=1)),
            )
            - pl.max_horizontal("hire_date", pl.lit(start))
        ).dt.total_days()
        / 7,
    )
    hours = (
        tables["activities"]
        .group_by("rep_id")
        .agg(
            selling=pl.col("duration_min")
            .filter(pl.col("activity_type").is_in(CUSTOMER_FACING))
            .sum()
            / 60
        )
    )
    return (
        weeks.join(hours, on="rep_id", how="left")
        .group_by("team")
        .agg(
            share=pl.col("selling").sum()
            / (SETTINGS.working_hours_per_week * pl.col("weeks").sum()),
            voluntary=(pl.col("exit_reason") == "voluntary").sum(),
        )
    )


def test_the_low_selling_team_has_little_time_for_selling_and_most_leavers(planted, null):
    tables, truth = planted
    teams = _selling_time(tables, truth)
    low = teams.filter(pl.col("team") == truth["low_selling_team"])
    rest = teams.filter(pl.col("team") != truth["low_selling_team"])
    assert 0.06 < low["share"].item() < 0.15
    assert rest["share"].is_between(0.22, 0.4).all()
    assert low["voluntary"].item() > rest["voluntary"].max()
    tables, truth = null
    assert truth["low_selling_team"] is None
    assert _selling_time(tables, truth)["share"].is_between(0.22, 0.4).all()


def test_timing_cadence_and_sequence_effects_show_in_raw_response_rates(planted, null):
    def effects(tables, truth):
        touches = _touches(tables, truth).filter(
            ~pl.col("rep_id").is_in(truth["positive_deviants"] + truth["negative_deviants"])
        )
        timing = truth["timing"] or {"best_weekdays": [2, 3, 4], "best_hours": [8, 9]}
        sweet = pl.col("weekday").is_in(timing["best_weekdays"]) & pl.col("hour").is_in(
            timing["best_hours"]
        )
        silent = pl.col("gap_days") >= 21
        follow_up = (
            (pl.col("activity_type") == "email")
            & (pl.col("previous_type") == "call")
            & (pl.col("gap_days") <= 2)
        )
        emails = touches.filter(pl.col("activity_type") == "email")
        return (
            _rate(touches, sweet) / _rate(touches, ~sweet),
            _rate(touches, silent) / _rate(touches, pl.col("gap_days") < 21),
            _rate(emails, follow_up) / _rate(emails, ~follow_up.fill_null(False)),
        )

    timing, cadence, sequence = effects(*planted)
    truth = planted[1]
    assert truth["cadence"]["silence_days"] == 21 and truth["sequence"]["sequence"] == [
        "call",
        "email",
    ]
    assert timing > 1.3 and cadence < 0.5 and sequence > 1.4
    timing, cadence, sequence = effects(*null)  # tiny: about 4 standard errors either side
    assert 0.75 < timing < 1.25 and 0.75 < cadence < 1.25 and 0.6 < sequence < 1.4
    assert null[1]["timing"] is null[1]["cadence"] is null[1]["sequence"] is None


def test_null_mode_plants_no_deviants(null):
    tables, truth = null
    assert truth["positive_deviants"] == truth["negative_deviants"] == []
    assert truth["deviant_practice"] is None
    touches = _touches(tables, truth)
    overall = touches["answered"].mean()
    reps = touches.group_by("rep_id").agg(rate=pl.col("answered").mean(), n=pl.len())
    z = (reps["rate"] - overall) / (overall * (1 - overall) / reps["n"]).sqrt()
    assert z.abs().max() < 3.5
    share = (touches["activity_type"] == "call").mean()
    calls = touches.group_by("rep_id").agg(
        call=(pl.col("activity_type") == "call").mean(), n=pl.len()
    )
    z_call = (calls["call"] - share) / (share * (1 - share) / calls["n"]).sqrt()
    assert z_call.abs().max() < 4


# --- dirty mode --------------------------------------------------------------------------------

VALID_TIMESTAMPS = (
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%:z",
    "%Y-%m-%d %H:%M:%S",
    "%m/%d/%Y %H:%M",
)


def _read_text(folder: Path, table: str) -> pl.DataFrame:
    separator = ";" if table == "opportunities" else ","
    return pl.read_csv(folder / f"{table}.csv", separator=separator, infer_schema=False)


def _parses(column: str) -> pl.Expr:
    return pl.coalesce(
        [
            pl.col(column).str.strptime(pl.Datetime("us"), f, strict=False)
            for f in VALID_TIMESTAMPS[2:]
        ]
        + [
            pl.col(column)
            .str.strptime(pl.Datetime("us", "UTC"), f, strict=False)
            .dt.replace_time_zone(None)
            for f in VALID_TIMESTAMPS[:2]
        ]
    ).is_not_null()


def _defects(table: str, frame: pl.DataFrame, rep_ids: pl.Series) -> dict[str, pl.Expr]:
    """Each quarantine reason as a test on the raw text of ``table``."""
    key = TABLES[table].key
    checks: dict[str, pl.Expr] = {}
    if key:
        checks["missing_id"] = pl.col(key).is_null()
        checks["duplicate_id"] = pl.col(key).is_not_null() & (pl.int_range(pl.len()).over(key) > 0)
    stamp = {
        "activities": "ts",
        "buyer_actions": "ts",
        "opportunities": "created_ts",
        "stage_history": "entered_ts",
    }.get(table)
    if stamp:
        checks["bad_timestamp"] = ~_parses(stamp)
        checks["future_timestamp"] = pl.col(stamp).str.starts_with("2099")
        year = pl.col(stamp).str.extract(r"^(\d{4})-").cast(pl.Int32)
        checks["early_timestamp"] = year < SETTINGS.earliest_timestamp.year
    if "rep_id" in frame.columns and table != "reps":
        checks["unknown_rep"] = ~pl.col("rep_id").is_in(rep_ids.implode())
    if table == "activities":
        checks["negative_duration"] = pl.col("duration_min").cast(pl.Float64) < 0
    if table == "buyer_actions":
        checks["no_account"] = pl.col("account_id").is_null()
    if table == "stage_history":
        known = STAGES + list(SETTINGS.stage_map)
        checks["unknown_stage"] = ~pl.col("stage").str.strip_chars().str.to_lowercase().is_in(known)
    if table == "opportunities":
        checks["bad_value"] = ~pl.col("outcome").is_in(OUTCOMES) | (
            pl.col("amount").is_not_null()
            & pl.col("amount").cast(pl.Float64, strict=False).is_null()
        )
    return checks


def test_dirty_csvs_hold_exactly_the_expected_bad_rows(tiny_dirty):
    truth = json.loads((tiny_dirty / "truth.json").read_text())
    assert truth["mode"] == "dirty" and truth["leaky_stage"] == "evaluation"
    expected = truth["expected_quarantine"]
    assert (tiny_dirty / "reps.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert (tiny_dirty / "opportunities.csv").read_text().splitlines()[0].count(";") == 7
    reps = _read_text(tiny_dirty, "reps")
    assert reps["hire_date"].str.contains("/").any()
    rep_ids = reps["rep_id"].drop_nulls()
    reasons_seen = set()
    for table in TABLES:
        frame = _read_text(tiny_dirty, table)
        assert frame.columns == list(TABLES[table].columns), table
        checks = _defects(table, frame, rep_ids)
        flags = frame.select(**{reason: check.fill_null(False) for reason, check in checks.items()})
        counts = {reason: flags[reason].sum() for reason in flags.columns if flags[reason].sum()}
        assert counts == expected.get(table, {}), table
        assert (flags.sum_horizontal() <= 1).all(), f"{table}: a bad row with two defects"
        reasons_seen |= set(counts)
        if table == "activities":
            bad = flags.sum_horizontal().sum()
            assert frame.height - bad == truth["n_activities"]
            assert frame["ts"].str.contains("/").any() and frame["ts"].str.contains(" ").any()
    assert reasons_seen == {
        "missing_id",
        "bad_timestamp",
        "unknown_rep",
        "duplicate_id",
        "negative_duration",
        "future_timestamp",
        "early_timestamp",
        "unknown_stage",
        "no_account",
        "bad_value",
    }
    assert all(n >= 3 for counts in expected.values() for n in counts.values())
