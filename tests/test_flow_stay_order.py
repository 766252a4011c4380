"""The stay index's verifier positions and duration order, each against the path it replaced
(tests/test_flow.py covers the stays they give against the flow of filtered tables)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from effortlens import flow
from effortlens.flow import (
    _duration_order,  # noqa: PLC2701
    _ranked_positions,  # noqa: PLC2701
    _verifier_positions,  # noqa: PLC2701
    stay_index,
)


def _verifiers(rng, *, n_deals: int, n: int, step: int):
    """Verifiers on a few times (ties within and across deals), some of no deal or no time,
    and stays sorted by deal, then entry, as stay_index makes them."""
    t0 = 1_700_000_000 * 1_000_000  # microseconds
    v_deal = rng.integers(0, n_deals, n).astype(np.int64)
    v_time = t0 + rng.integers(0, 50, n) * step
    on_deal = rng.random(n) < 0.9
    v_time[rng.random(n) < 0.05] = np.iinfo(np.int64).max  # no time: never on a deal
    on_deal &= v_time != np.iinfo(np.int64).max
    deal = np.sort(rng.integers(0, n_deals, 3 * n_deals))
    entered = t0 + rng.integers(-5, 60, len(deal)) * step // 2
    order = np.lexsort((entered, deal))
    deal, entered = deal[order], entered[order]
    previous = np.where(np.diff(deal, prepend=-1) == 0, np.roll(entered, 1), np.iinfo(np.int64).min)
    low_time = np.maximum(entered - 7 * step - 1, previous)
    return v_deal, v_time, on_deal, deal, low_time, entered


@pytest.mark.parametrize("step", [1_000_000, 1_000_001, 7])  # whole seconds, or not
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_verifier_positions_equal_those_keyed_by_the_times_rank(step, seed):
    args = _verifiers(np.random.default_rng(seed), n_deals=40, n=600, step=step)
    new = _verifier_positions(*args, n_deals=40, unit=1_000_000)
    old = _ranked_positions(*args)
    for got, want in zip(new, old, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert new[2].max() > new[1].min()  # some stays have candidates


def test_verifier_positions_of_no_verifier_on_a_deal():
    args = list(_verifiers(np.random.default_rng(3), n_deals=5, n=50, step=1_000_000))
    args[2] = np.zeros(50, dtype=bool)
    new = _verifier_positions(*args, n_deals=5, unit=1_000_000)
    old = _ranked_positions(*args)
    for got, want in zip(new, old, strict=True):
        np.testing.assert_array_equal(got, want)


def test_verifier_positions_fall_back_to_the_rank_when_the_key_overflows(monkeypatch):
    args = _verifiers(np.random.default_rng(4), n_deals=40, n=600, step=1_000_000)
    called = []
    ranked = _ranked_positions
    monkeypatch.setattr(flow, "_ranked_positions", lambda *a: called.append(1) or ranked(*a))
    got = _verifier_positions(*args, n_deals=2**60, unit=1_000_000)
    assert called
    for g, w in zip(got, ranked(*args), strict=True):
        np.testing.assert_array_equal(g, w)


def _four_column_order(frame: pl.DataFrame) -> np.ndarray:
    """_duration_order as it was: one stable sort by four columns."""
    return (
        frame.select(
            pl.col("stage_index").fill_null(-1),
            ~pl.col("ended"),
            pl.col("days"),
            -pl.col("entered_ts").to_physical(),
            pl.col("derived"),
        )
        .with_row_index("__row")
        .filter(~pl.col("derived"))
        .sort(["stage_index", "ended", "days", "entered_ts"], maintain_order=True)["__row"]
        .to_numpy()
        .astype(np.uint32)
    )


def _stays(rng, n: int) -> pl.DataFrame:
    ended = rng.random(n) < 0.7
    days = np.where(ended, rng.integers(-3, 20, n) / 4, np.nan)  # ties, negatives, zeros
    return pl.DataFrame(
        {
            "stage_index": rng.integers(0, 6, n).astype(np.int32),
            "ended": ended,
            "days": pl.Series(days).fill_nan(None),
            "entered_ts": pl.Series(rng.integers(0, 30, n) * 3_600_000_000).cast(
                pl.Datetime("us", "UTC")
            ),
            "derived": rng.random(n) < 0.2,
        }
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_duration_order_equals_the_four_column_sort(seed):
    stays = _stays(np.random.default_rng(seed), 2_000)
    got = _duration_order(stays)
    np.testing.assert_array_equal(got, _four_column_order(stays))
    assert got.dtype == np.uint32


@pytest.mark.parametrize(
    "change",
    [
        {"days": -0.0},  # a negative zero: sorted as before, by the four columns
        {"entered_ts": None},
        {"stage_index": None},
    ],
)
def test_duration_order_of_odd_stays_equals_the_four_column_sort(change):
    stays = _stays(np.random.default_rng(5), 500)
    (column, value), *_ = change.items()
    at = np.flatnonzero(stays["ended"].to_numpy() & ~stays["derived"].to_numpy())[:20]
    values = stays[column].to_list()
    for i in at:
        values[i] = value
    stays = stays.with_columns(pl.Series(column, values, dtype=stays.schema[column]))
    np.testing.assert_array_equal(_duration_order(stays), _four_column_order(stays))


def test_deals_coded_by_their_row_give_the_stays_of_their_ids(small_planted_enriched):
    """Deal ids that are their rows' numbers are read without a join: the same stays, deals,
    verifier ranges and order as the ids as text (verifiers of no known deal included)."""
    enriched, _ = small_planted_enriched
    opps = enriched.tables["opportunities"].sort("opportunity_id")
    ids = opps["opportunity_id"]
    actions = enriched.actions.lazy().collect()
    stray = actions.head(7).with_columns(opportunity_id=pl.lit("no such deal"))
    actions = pl.concat([actions, stray])
    text = {
        "opportunities": opps,
        "stage_history": enriched.tables["stage_history"],
        "reps": enriched.reps,
        "buyer_actions": actions,
    }
    code = pl.DataFrame(
        {"opportunity_id": ids, "__code": pl.Series(range(len(ids)), dtype=pl.UInt32)}
    )

    def coded(frame: pl.DataFrame, missing: int | None) -> pl.DataFrame:
        found = frame.join(code, on="opportunity_id", how="left", maintain_order="left")
        code_of = pl.col("__code") if missing is None else pl.col("__code").fill_null(missing)
        return found.with_columns(opportunity_id=code_of).drop("__code")

    codes = {
        **text,
        "opportunities": coded(opps, None),
        "stage_history": coded(text["stage_history"], None),
        "buyer_actions": coded(actions, len(ids) + 3),  # a code of no deal
    }
    assert flow._row_codes(codes["opportunities"]["opportunity_id"])  # noqa: SLF001
    plain, quick = (stay_index(t, settings=enriched.settings) for t in (text, codes))
    assert len(plain.verifier_order) > 0 and plain.high.max() > 0
    for name in ("deal", "low", "high", "verifier_order", "run_start", "by_duration"):
        np.testing.assert_array_equal(getattr(quick, name), getattr(plain, name))
    assert quick.frame.drop("opportunity_id").equals(plain.frame.drop("opportunity_id"))
