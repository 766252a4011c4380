"""The partitions' roll-up from their activities' rows (summed per partition, then across:
the same bits as summing each partition's own roll-up), the roll-up made when first read, and
attribution's first level by exact key codes (against the literal definition and the hashed
path it replaces)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

import effortlens.attribution as attribution
import effortlens.enrich as enrich_module
from effortlens.attribution import attribution_rows, key_codes
from effortlens.enrich import (
    DAILY_SUMS,
    REP_COLUMNS,
    daily_of_activities,
    daily_of_rows,
    daily_rows,
    enrich_tables,
)
from effortlens.settings import load_settings

rep_codes = enrich_module._rep_codes  # noqa: SLF001

FACING = ["call", "email"]


def _facts(n_reps: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"rep_id": [f"r{i:03d}" for i in range(n_reps)]}
        | {c: [f"{c}{i % 3}" for i in range(n_reps)] for c in REP_COLUMNS}
    )


def _rows(rng: np.random.Generator, n: int, n_reps: int) -> pl.DataFrame:
    """Activities' roll-up rows over few cells (up to hundreds of rows a cell: numpy's
    reduceat adds long runs pairwise, short ones in order), values of mixed sizes, nulls,
    a rep missing from the reps table."""
    hours = rng.random(n) * 10.0 ** rng.integers(-3, 4, n)
    weight = rng.random(n) * 3
    rep = rng.integers(0, n_reps + 1, n)  # n_reps: not in the reps table
    return pl.DataFrame(
        {
            "rep_id": [f"r{i:03d}" for i in rep],
            "day": pl.Series(rng.integers(19_000, 19_006, n)).cast(pl.Int32).cast(pl.Date),
            "activity_type": rng.choice(["call", "email", "admin"], n),
            "hours": pl.Series(hours).scatter(rng.integers(0, n, 50), None),
            "responded": pl.Series(rng.integers(0, 2, n), dtype=pl.UInt32),
            "response_weight": pl.Series(weight).scatter(rng.integers(0, n, 50), None),
            "no_impact_hours": rng.random(n) * 2,
        }
    )


def _roll_up(rows: pl.DataFrame, facts: pl.DataFrame, **options) -> pl.DataFrame:
    """As the partitioned build sums its partitions' rows (``partitioned._daily_of``)."""
    rep_code, rep_facts = rep_codes(rows["rep_id"], facts)
    return daily_of_rows(
        rows.drop("rep_id"),
        rep_code=rep_code,
        rep_facts=rep_facts,
        customer_facing=FACING,
        **options,
    )


def _bits(frame: pl.DataFrame) -> list:
    return [
        column.to_numpy().view(np.uint64).tolist()
        if column.dtype == pl.Float64
        else column.to_list()
        for column in frame.iter_columns()
    ]


@pytest.mark.parametrize("n_parts", [1, 3, 7])
def test_rows_summed_per_partition_then_across_are_the_partitions_roll_ups_summed(n_parts):
    rng = np.random.default_rng(n_parts)
    n_reps = 4
    facts = _facts(n_reps)
    parts = [_rows(rng, int(rng.integers(2_000, 9_000)), n_reps) for _ in range(n_parts)]
    # before: each partition's own roll-up (its slim rows), then those summed
    own = [
        _roll_up(rows, facts).select("rep_id", "day", "activity_type", *DAILY_SUMS)
        for rows in parts
    ]
    want = _roll_up(pl.concat(own), facts)
    # now: the partitions' activity rows end to end, with their partition
    rows = pl.concat(
        [r.with_columns(pl.lit(p, pl.UInt16).alias("__part")) for p, r in enumerate(parts)]
    )
    got = _roll_up(rows, facts, part="__part")
    assert got.schema == want.schema
    assert _bits(got) == _bits(want)
    assert got["activities"].sum() == rows.height
    if n_parts > 1:  # the test can tell: the rows summed in one run differ in the last bits
        plain = _roll_up(rows.drop("__part"), facts)
        assert plain.select(pl.exclude(pl.Float64)).equals(got.select(pl.exclude(pl.Float64)))
        assert _bits(plain) != _bits(got)


def test_rows_out_of_partition_order_are_refused():
    rows = _rows(np.random.default_rng(1), 100, 2).with_columns(
        pl.Series("__part", [1] * 50 + [0] * 50, dtype=pl.UInt16)
    )
    with pytest.raises(ValueError, match="__part"):
        _roll_up(rows, _facts(2), part="__part")


def test_the_roll_up_is_made_when_first_read_and_equals_the_rows_summed(
    tiny_planted_enriched, monkeypatch
):
    whole = tiny_planted_enriched.enriched
    calls = []
    made = enrich_module._daily  # noqa: SLF001
    monkeypatch.setattr(enrich_module, "_daily", lambda *a, **k: calls.append(1) or made(*a, **k))
    tables = {name: whole.tables[name] for name in ("activities", "buyer_actions", "reps")}
    enriched = enrich_tables(tables, settings=whole.settings)
    assert not calls and enriched.activities.height and enriched.actions.height
    copy = enriched.replace(reps=enriched.reps)
    assert enriched.daily.equals(whole.daily)
    assert copy.daily is enriched.daily and len(calls) == 1  # made once, for both copies
    rows = daily_rows(enriched.activities)
    assert rows.height == enriched.activities.height
    summed = _roll_up(
        rows.with_columns(pl.lit(0, pl.UInt16).alias("__part")), whole.reps, part="__part"
    )
    in_one = daily_of_activities(
        enriched.activities, whole.reps, customer_facing=whole.settings.customer_facing_types
    )
    assert summed.drop("is_customer_facing").equals(in_one.drop("is_customer_facing"))
    assert in_one.equals(whole.daily)


# ------------------------------------------------------------------ attribution's first level

T0 = datetime(2024, 3, 8, tzinfo=UTC)  # DST starts 2024-03-10 in New York (not that UTC cares)


def _literal(acts: list[dict], actions: list[dict], window: timedelta) -> list:
    """The definition, one action and one level at a time; ties: the later activity row."""
    out = []
    for b in actions:
        found = (None, None)
        for level, key in (("opportunity", "opp"), ("contact", "con"), ("account", "acc")):
            if b[key] is None:
                continue
            candidates = [
                (a["ts"], i)
                for i, a in enumerate(acts)
                if a["type"] in FACING
                and a[key] == b[key]
                and b["ts"] - window <= a["ts"] <= b["ts"]
            ]
            if candidates:
                found = (max(candidates)[1], level)
                break
        out.append(found)
    return out


def _events(seed: int, loaded_order: bool) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    hours = [timedelta(hours=h) for h in range(0, 24 * 40, 5)]  # ties at equal times

    def maybe(prefix, n):
        return None if rng.random() < 0.25 else f"{prefix}{rng.randrange(n)}"

    def event(**extra):
        return {
            "ts": T0 + rng.choice(hours),
            "opp": maybe("o", 6),
            "con": maybe("c", 7),
            "acc": f"x{rng.randrange(3)}",
            **extra,
        }

    acts = [event(type=rng.choice(["email", "admin", "call"])) for _ in range(150)]
    actions = [event() for _ in range(90)]
    actions.append(event() | {"ts": T0 - timedelta(days=30)})  # before every activity
    if loaded_order:  # by opportunity (nulls last) then time, ties in input order

        def order(e):
            return (e["opp"] is None, e["opp"] or "", e["ts"])

        acts.sort(key=order)
        actions.sort(key=order)
    return acts, actions


def _frames(acts: list[dict], actions: list[dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    def frame(events, names):
        return pl.DataFrame(
            {
                "ts": pl.Series([e["ts"] for e in events], dtype=pl.Datetime("us", "UTC")),
                "opportunity_id": [e["opp"] for e in events],
                "contact_id": [e["con"] for e in events],
                "account_id": [e["acc"] for e in events],
                **names,
            }
        )

    return (
        frame(acts, {"activity_type": [a["type"] for a in acts]}),
        frame(actions, {}),
    )


@pytest.mark.parametrize("loaded_order", [True, False])
@pytest.mark.parametrize("seed", range(5))
def test_first_level_by_codes_equals_the_definition_and_the_hashed_path(
    seed, loaded_order, monkeypatch
):
    acts, actions = _events(seed, loaded_order)
    activities, buyer_actions = _frames(acts, actions)
    options = {"window_days": 4, "customer_facing": FACING}
    got = attribution_rows(activities, buyer_actions, **options)
    assert list(zip(got["activity_row"], got["attribution_level"], strict=True)) == _literal(
        acts, actions, timedelta(days=4)
    )
    assert got["attribution_level"].value_counts().height == 4  # three levels and none
    facing = activities["activity_type"].is_in(FACING)
    assert attribution_rows(activities, buyer_actions, facing=facing, **options).equals(got)
    monkeypatch.setattr(attribution, "key_codes", lambda *keys, most: None)  # the hashed path
    assert attribution_rows(activities, buyer_actions, **options).equals(got)


def test_key_codes_are_ranks_over_both_and_refuse_too_many():
    a = pl.Series(["b", "b", "a", None, "b", "c"])
    b = pl.Series([None, "d", "a"])
    codes = key_codes(a, b)
    assert [c.to_list() for c in codes] == [[1, 1, 0, 4, 1, 2], [4, 3, 0]]
    assert key_codes(a, b, most=6) is not None and key_codes(a, b, most=5) is None


def test_enrichment_passes_its_customer_facing_flags_to_attribution(tiny_planted, monkeypatch):
    from effortlens.loading import load_folder

    settings = load_settings()
    tables = load_folder(tiny_planted, settings=settings).tables
    seen = []
    rows = enrich_module.attribution_rows
    monkeypatch.setattr(
        enrich_module, "attribution_rows", lambda *a, **k: seen.append(k["facing"]) or rows(*a, **k)
    )
    enriched = enrich_tables(tables, settings=settings)
    assert seen[0].equals(enriched.activities["is_customer_facing"], check_names=False)


@pytest.mark.parametrize(
    "facing",
    [[], ["call"], ["call", "email", "call"], ["none"], [f"t{i}" for i in range(20)] + ["call"]],
)
def test_customer_facing_flags_are_is_in(facing):
    types = pl.Series(
        "activity_type", random.Random(3).choices(["call", "email", "admin", None, "t7", ""], k=500)
    )
    assert enrich_module.is_customer_facing(types, facing).equals(
        types.is_in(facing), check_names=False
    )


def test_responses_equal_the_weighted_counts_they_replace(tiny_planted_enriched):
    """Counts by integer ``bincount`` (verifier flags null as not), weights by a weighted one:
    the values (and types) of counting every credited action with weights 1, flag, weight."""
    whole = tiny_planted_enriched.enriched
    acts = whole.tables["activities"]
    actions = whole.tables["buyer_actions"]
    rng = np.random.default_rng(4)
    actions = actions.with_columns(  # nulls among the flags and weights
        actions[name].scatter(rng.integers(0, actions.height, 40), None)
        for name in ("is_verifier", "weight")
    )
    rows = attribution_rows(
        acts, actions, window_days=14, customer_facing=whole.settings.customer_facing_types
    )
    got = enrich_module._with_responses(acts, actions, rows)  # noqa: SLF001
    credited = rows["activity_row"].is_not_null()
    at = rows["activity_row"].filter(credited).to_numpy()
    earned = actions.filter(credited)

    def per_activity(weights):
        w = None if weights is None else weights.fill_null(0).cast(pl.Float64).to_numpy()
        return np.bincount(at, weights=w, minlength=acts.height)

    want = acts.with_columns(
        pl.Series("n_responses", per_activity(None), pl.UInt32),
        pl.Series("response_weight", per_activity(earned["weight"]), pl.Float64),
        pl.Series("verifier_responses", per_activity(earned["is_verifier"]), pl.UInt32),
        pl.Series("responded", per_activity(None) > 0, pl.Boolean),
    )
    assert got.equals(want)
    assert got["verifier_responses"].sum() > 0 and got["n_responses"].sum() > 0
    none = enrich_module._with_responses(acts, actions.head(0), rows.head(0))  # noqa: SLF001
    assert none.schema == want.schema and none["n_responses"].sum() == 0
