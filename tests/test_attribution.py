"""Attribution of buyer actions to seller activities (DESIGN §5), on tiny hand-made frames."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens import attribution
from effortlens.attribution import attribute_actions, attribution_rows
from effortlens.schema import conform

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
CUSTOMER_FACING = ["email", "call", "meeting"]


def _activities(*rows: tuple) -> pl.DataFrame:
    """(activity_id, rep_id, ts, type, account, opportunity, contact) tuples."""
    cols = [
        "activity_id",
        "rep_id",
        "ts",
        "activity_type",
        "account_id",
        "opportunity_id",
        "contact_id",
    ]
    return conform(
        pl.DataFrame([dict(zip(cols, r, strict=True)) for r in rows]), "activities"
    ).collect()


def _actions(*rows: tuple) -> pl.DataFrame:
    """(action_id, ts, account, opportunity, contact) tuples; a reply of weight 1."""
    cols = ["action_id", "ts", "account_id", "opportunity_id", "contact_id"]
    frame = pl.DataFrame([dict(zip(cols, r, strict=True)) for r in rows]).with_columns(
        action_type=pl.lit("reply"), is_verifier=pl.lit(False), weight=pl.lit(1.0)
    )
    return conform(frame, "buyer_actions").collect()


def _credit(activities, actions, *, window_days=14):
    out = attribute_actions(
        activities, actions, window_days=window_days, customer_facing=CUSTOMER_FACING
    )
    return out.select("action_id", "activity_id", "attribution_level", "rep_id")


def _expect(*rows: tuple) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "action_id": pl.String,
            "activity_id": pl.String,
            "attribution_level": pl.String,
            "rep_id": pl.String,
        },
        orient="row",
    )


def test_window_boundary_is_inclusive_to_the_microsecond():
    acts = _activities(("a1", "r1", T0, "email", "x", "o1", "c1"))
    window = timedelta(days=14)
    actions = _actions(
        ("exactly", T0 + window, "x", "o1", "c1"),
        ("one_us_late", T0 + window + timedelta(microseconds=1), "x", "o1", "c1"),
        ("same_instant", T0, "x", "o1", "c1"),
        ("one_us_early", T0 - timedelta(microseconds=1), "x", "o1", "c1"),
    )
    assert_frame_equal(
        _credit(acts, actions),
        _expect(
            ("exactly", "a1", "opportunity", "r1"),
            ("one_us_late", None, None, None),
            ("same_instant", "a1", "opportunity", "r1"),
            ("one_us_early", None, None, None),
        ),
    )


def test_window_follows_the_setting():
    acts = _activities(("a1", "r1", T0, "call", "x", None, "c1"))
    actions = _actions(("b", T0 + timedelta(days=3, hours=1), "x", None, "c1"))
    assert _credit(acts, actions, window_days=3)["activity_id"].to_list() == [None]
    assert _credit(acts, actions, window_days=4)["activity_id"].to_list() == ["a1"]


def test_latest_activity_at_or_before_wins_and_ties_go_to_the_later_row():
    acts = _activities(
        ("old", "r1", T0 - timedelta(days=2), "email", "x", "o1", "c1"),
        ("tie_first", "r1", T0, "email", "x", "o1", "c1"),
        ("tie_last", "r2", T0, "call", "x", "o1", "c1"),
        ("after", "r1", T0 + timedelta(hours=2), "email", "x", "o1", "c1"),
    )
    actions = _actions(("b", T0 + timedelta(hours=1), "x", "o1", "c1"))
    assert_frame_equal(_credit(acts, actions), _expect(("b", "tie_last", "opportunity", "r2")))


def test_opportunity_beats_contact_beats_account_even_when_older():
    acts = _activities(
        ("on_deal", "r1", T0 - timedelta(days=10), "email", "x", "o1", "c9"),
        ("on_contact", "r2", T0 - timedelta(days=1), "call", "x", "o2", "c1"),
        ("on_account", "r3", T0 - timedelta(hours=1), "meeting", "x", None, "c7"),
    )
    actions = _actions(
        ("deal_action", T0, "x", "o1", "c1"),
        ("contact_action", T0, "x", "o3", "c1"),
        ("account_action", T0, "x", "o3", "c3"),
        ("other_account", T0, "y", "o3", "c3"),
    )
    assert_frame_equal(
        _credit(acts, actions),
        _expect(
            ("deal_action", "on_deal", "opportunity", "r1"),
            ("contact_action", "on_contact", "contact", "r2"),
            ("account_action", "on_account", "account", "r3"),
            ("other_account", None, None, None),
        ),
    )


def test_a_level_outside_the_window_falls_through_to_the_next():
    acts = _activities(
        ("stale_deal", "r1", T0 - timedelta(days=20), "email", "x", "o1", "c9"),
        ("fresh_contact", "r2", T0 - timedelta(days=2), "email", "x", None, "c1"),
    )
    actions = _actions(("b", T0, "x", "o1", "c1"))
    assert_frame_equal(_credit(acts, actions), _expect(("b", "fresh_contact", "contact", "r2")))


def test_non_customer_facing_activities_earn_nothing():
    acts = _activities(
        ("email", "r1", T0 - timedelta(days=1), "email", "x", "o1", "c1"),
        ("admin", "r1", T0 - timedelta(hours=1), "admin", "x", "o1", "c1"),
        ("internal", "r1", T0, "internal", "x", "o1", "c1"),
    )
    actions = _actions(("b", T0, "x", "o1", "c1"), ("c", T0, "z", None, "c5"))
    assert_frame_equal(
        _credit(acts, actions),
        _expect(("b", "email", "opportunity", "r1"), ("c", None, None, None)),
    )


def test_missing_keys_never_match_each_other():
    acts = _activities(("a1", "r1", T0, "email", "x", None, None))
    actions = _actions(("b", T0 + timedelta(hours=1), "y", None, None))
    assert _credit(acts, actions)["activity_id"].to_list() == [None]


def test_lag_level_and_buyer_initiated_columns():
    acts = _activities(("a1", "r1", T0, "email", "x", "o1", "c1"))
    actions = _actions(
        ("b1", T0 + timedelta(hours=30), "x", "o1", None),
        ("b2", T0 + timedelta(days=30), "x", "o1", None),
    )
    out = attribute_actions(acts, actions, window_days=14, customer_facing=CUSTOMER_FACING)
    assert out["lag_hours"].to_list() == [30.0, None]
    assert out["buyer_initiated"].to_list() == [False, True]
    # the actions' own columns come back unchanged, in order
    assert_frame_equal(out.select(actions.columns), actions)


def test_every_reps_activity_is_seen():
    """An action on a deal owned by r1 is credited to r2, who touched it last."""
    acts = _activities(
        ("mine", "r1", T0 - timedelta(days=3), "email", "x", "o1", "c1"),
        ("theirs", "r2", T0 - timedelta(days=1), "call", "x", "o1", "c1"),
    )
    actions = _actions(("b", T0, "x", "o1", "c1"))
    assert _credit(acts, actions)["rep_id"].to_list() == ["r2"]


def test_empty_inputs():
    acts = _activities(("a1", "r1", T0, "email", "x", "o1", "c1"))
    no_acts = acts.clear()
    actions = _actions(("b", T0, "x", "o1", "c1"))
    assert _credit(no_acts, actions)["activity_id"].to_list() == [None]
    assert _credit(acts, actions.clear()).height == 0
    rows = attribution_rows(no_acts, actions.clear(), window_days=14, customer_facing=["email"])
    assert rows.schema == pl.Schema(
        {"activity_row": pl.UInt32, "attribution_level": pl.String, "lag_hours": pl.Float64}
    )


def test_inputs_not_mutated():
    acts = _activities(
        ("a2", "r1", T0 + timedelta(days=1), "email", "x", "o1", "c1"),
        ("a1", "r1", T0, "email", "x", "o1", "c1"),
    )
    actions = _actions(("b", T0 + timedelta(days=2), "x", "o1", "c1"))
    before = (acts.clone(), actions.clone())
    _credit(acts, actions)
    assert_frame_equal(acts, before[0])
    assert_frame_equal(actions, before[1])


def _brute_force(acts: list[dict], actions: list[dict], window: timedelta) -> list:
    """The definition, read literally: one action at a time, one level at a time."""
    credited = []
    for b in actions:
        found = None
        for level, key in (("opportunity", "opp"), ("contact", "con"), ("account", "acc")):
            if b[key] is None:
                continue
            candidates = [
                (a["ts"], i)
                for i, a in enumerate(acts)
                if a["type"] in CUSTOMER_FACING
                and a[key] == b[key]
                and b["ts"] - window <= a["ts"] <= b["ts"]
            ]
            if candidates:
                found = (acts[max(candidates)[1]]["id"], level)
                break
        credited.append(found or (None, None))
    return credited


@pytest.mark.parametrize("collide", [False, True], ids=["real_hash", "every_key_collides"])
@pytest.mark.parametrize("seed", range(6))
def test_matches_the_literal_definition_on_random_data(seed, collide, monkeypatch):
    exact_calls = []
    if collide:  # every key gets the same hash: only the exact check can tell them apart
        monkeypatch.setattr(attribution, "key_hash", lambda key, bits: pl.lit(0, pl.UInt64))
        exact = attribution.exact_matches
        monkeypatch.setattr(
            attribution, "exact_matches", lambda *a, **k: exact_calls.append(1) or exact(*a, **k)
        )
    rng = random.Random(seed)
    hours = [timedelta(hours=h) for h in range(0, 24 * 40, 7)]

    def maybe(prefix, n):
        return None if rng.random() < 0.25 else f"{prefix}{rng.randrange(n)}"

    acts = [
        {
            "id": f"a{i}",
            "ts": T0 + rng.choice(hours),
            "type": rng.choice(["email", "admin", "call"]),
            "opp": maybe("o", 4),
            "con": maybe("c", 5),
            "acc": f"x{rng.randrange(3)}",
        }
        for i in range(80)
    ]
    actions = [
        {
            "id": f"b{i}",
            "ts": T0 + rng.choice(hours),
            "opp": maybe("o", 4),
            "con": maybe("c", 5),
            "acc": f"x{rng.randrange(3)}",
        }
        for i in range(60)
    ]
    got = attribute_actions(
        _activities(
            *[(a["id"], "r", a["ts"], a["type"], a["acc"], a["opp"], a["con"]) for a in acts]
        ),
        _actions(*[(b["id"], b["ts"], b["acc"], b["opp"], b["con"]) for b in actions]),
        window_days=5,
        customer_facing=CUSTOMER_FACING,
    )
    expected = _brute_force(acts, actions, timedelta(days=5))
    assert list(zip(got["activity_id"], got["attribution_level"], strict=True)) == expected
    assert got["attribution_level"].null_count() < len(actions)  # the test data does match
    assert bool(exact_calls) == collide


def test_planted_responses_are_recovered(small_planted):
    """The generator knows which activity each buyer action answered; attribution finds it."""
    from effortlens.loading import load_folder
    from effortlens.settings import load_settings

    truth_file = small_planted / "_truth_responses.parquet"
    data = load_folder(small_planted, settings=load_settings())
    got = attribute_actions(
        data.tables["activities"],
        data.tables["buyer_actions"],
        window_days=data.settings.attribution_window_days,
        customer_facing=data.settings.customer_facing_types,
    )
    truth = pl.read_parquet(truth_file)
    joined = got.join(truth, on="action_id", how="inner", suffix="_true")
    responses = joined.filter(pl.col("activity_id_true").is_not_null())
    initiated = joined.filter(pl.col("activity_id_true").is_null())
    recovered = (responses["activity_id"] == responses["activity_id_true"]).mean()
    initiated_found = initiated["buyer_initiated"].mean()
    print(
        json.dumps(
            {
                "responses": responses.height,
                "recovered": recovered,
                "buyer_initiated": initiated.height,
                "initiated_kept_apart": initiated_found,
            }
        )
    )
    assert responses.height > 100 and initiated.height > 10
    assert recovered >= 0.85
    assert initiated_found >= 0.6


def test_weekly_numbers_match_plain_pandas_and_duckdb(tiny_planted):
    """The benchmark's straightforward implementations of the definition agree with ours."""
    import sys
    from pathlib import Path

    from effortlens.enrich import enrich_tables
    from effortlens.loading import load_folder
    from effortlens.roe import roe_by
    from effortlens.settings import load_settings

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from reference import canonical, weekly_duckdb, weekly_pandas

    settings = load_settings()
    tables = load_folder(tiny_planted, settings=settings).tables
    ours = canonical(roe_by(enrich_tables(tables, settings=settings).daily, by=["team", "week"]))
    options = {
        "customer_facing": settings.customer_facing_types,
        "window_days": settings.attribution_window_days,
        "timezone": settings.timezone,
    }
    assert ours.height > 50 and ours["responded"].sum() > 100
    assert_frame_equal(weekly_pandas(tables, **options), ours, check_exact=False, rel_tol=1e-9)
    assert_frame_equal(weekly_duckdb(tables, **options), ours, check_exact=False, rel_tol=1e-9)
