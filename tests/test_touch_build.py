"""The build's touch facts in one sort (effortlens.touch_build) equal habits.touch_facts: the
same rows, order and values to the bit, on the planted and null samples, the hand-made load
and random loads full of ties (same contact, same instant), touches without a contact, long
gaps and buyer actions at a touch's instant."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from credit_reference import reference_credit_em
from polars.testing import assert_frame_equal

from effortlens import touch_build
from effortlens.enrich import enrich_tables
from effortlens.habits import LAG_EDGES_HOURS, touch_facts
from effortlens.settings import load_settings
from effortlens.touch_build import CREDIT_TOLERANCE, build_touch_facts, credit_em


def _same(enriched, iterations: int = 60) -> pl.DataFrame:
    new = build_touch_facts(enriched, iterations=iterations)
    assert_frame_equal(new, touch_facts(enriched, iterations=iterations), check_exact=True)
    return new


def test_equal_on_the_planted_sample(small_planted_enriched):
    enriched, _ = small_planted_enriched
    new = _same(enriched)
    assert new["credit_timing"].sum() > 0  # the fit ran: there is something to be equal
    assert new["sequence_3"].null_count() < new.height


def test_equal_on_the_null_sample(small_null_enriched):
    _same(small_null_enriched[0])


def test_equal_on_the_hand_made_load(hand_enriched):
    _same(hand_enriched)


def _random_load(seed: int, *, contacts: int, with_actions: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    n, m = 3_000, 900
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    # whole hours over 60 days: many touches share a contact and an instant
    hours = rng.integers(0, 60 * 24, n)
    reps = pl.DataFrame(
        {
            "rep_id": ["r1", "r2", "r3"],
            "team": ["A", "B", None],
            "segment": ["SMB"] * 3,
            "role": ["AE"] * 3,
            "timezone": ["Europe/Paris", "America/New_York", None],
        }
    )
    contact = rng.integers(0, contacts, n).astype(str)
    activities = pl.DataFrame(
        {
            "activity_id": [f"a{i:05d}" for i in rng.permutation(n)],
            "rep_id": rng.choice(["r1", "r2", "r3", "ghost"], n).tolist(),
            "ts": [t0 + timedelta(hours=int(h)) for h in hours],
            "activity_type": rng.choice(["email", "call", "meeting", "demo", "admin"], n).tolist(),
            "account_id": ["x"] * n,
            "opportunity_id": [None] * n,
            "contact_id": [None if rng.random() < 0.1 else f"c{c}" for c in contact],
            "duration_min": [6.0] * n,
        }
    )
    tables = {"reps": reps, "activities": activities}
    if with_actions:
        at = rng.integers(0, n, m)  # many at a touch's very instant, the rest in between
        shift = np.where(rng.random(m) < 0.3, 0, rng.integers(1, 400, m))
        tables["buyer_actions"] = pl.DataFrame(
            {
                "action_id": [f"b{i}" for i in range(m)],
                "ts": [
                    t0 + timedelta(hours=int(hours[i] + s)) for i, s in zip(at, shift, strict=True)
                ],
                "account_id": ["x"] * m,
                "opportunity_id": [None] * m,
                "contact_id": [
                    None if rng.random() < 0.05 else activities["contact_id"][int(i)] for i in at
                ],
                "action_type": ["reply"] * m,
            }
        )
    return tables


@pytest.mark.parametrize(("seed", "contacts"), [(1, 40), (2, 400), (3, 5)])
def test_equal_on_random_loads_full_of_ties(seed, contacts):
    enriched = enrich_tables(_random_load(seed, contacts=contacts), settings=load_settings())
    new = _same(enriched, iterations=12)
    assert new["sequence_2"].null_count() < new.height


def test_equal_without_buyer_actions_and_without_touches():
    settings = load_settings()
    _same(enrich_tables(_random_load(4, contacts=30, with_actions=False), settings=settings))
    _same(enrich_tables({}, settings=settings))


def _em_args(
    seed: int,
    *,
    touches: int,
    pairs: int,
    actions: int,
    cells: int,
    lag_scale: float | None = None,
    narrow: bool = False,
) -> tuple:
    """Random arguments of the credit EM (``credit_em`` and its plain reference).

    Per touch: a cell of ``cells``, a band and the hours left in its window (some cut by the
    end of the data); per candidate pair: its action, its touch and its lag, uniform over the
    336-hour window or, with ``lag_scale``, exponential with that mean (a density worth
    learning). ``narrow`` gives the partitioned build's input types (int32 cells and indices,
    int8 bands). Then the number of actions and the exposure scale.
    """
    rng = np.random.default_rng(seed)
    cell = rng.integers(0, cells, touches)
    band = rng.integers(0, 3, touches)
    left = rng.uniform(0, 500, touches)
    pair_action = rng.integers(0, actions, pairs)
    pair_touch = rng.integers(0, touches, pairs)
    if lag_scale is None:
        lag = rng.uniform(0, 336, pairs)
    else:
        lag = rng.exponential(lag_scale, pairs).clip(0, 336)
    if narrow:
        cell, pair_action, pair_touch = (
            a.astype(np.int32) for a in (cell, pair_action, pair_touch)
        )
        band = band.astype(np.int8)
    return (cell, band, left, pair_action, pair_touch, lag, actions, 1e5)


#: How far ``credit_em``'s rates and credits may be from the plain reference's, relatively:
#: it adds some sums' terms in another order (by cell and lag slot, then over them).
EM_RTOL = 1e-11


def _close(got: tuple, want: tuple) -> bool:
    return all(
        a.shape == b.shape and np.allclose(a, b, rtol=EM_RTOL, atol=0)
        for a, b in zip(got, want, strict=True)
    )


def test_the_em_is_the_plain_reference_em():
    args = _em_args(5, touches=500, pairs=1_200, actions=300, cells=40)
    got = credit_em(*args, iterations=30, tolerance=1e-9, accelerate=False)
    want = reference_credit_em(*args, iterations=30)
    assert _close(got, want)
    assert not _close(got, reference_credit_em(*args, iterations=29, tolerance=0))


def test_the_em_counts_touches_cut_at_the_end_and_on_the_edges_as_the_reference():
    # touches with no hours left (exposure clipped to 1e-9), on a lag edge, in the last bin
    # and uncut, in cells that lie far apart (the fit renumbers the cells that have touches)
    args = list(_em_args(9, touches=600, pairs=1_400, actions=350, cells=5, lag_scale=40))
    left = args[2].copy()
    left[:40] = 0.0
    left[40:80] = np.resize(np.asarray(LAG_EDGES_HOURS), 40)
    left[80:100] = 335.5
    args[2] = left
    args[0] = args[0] * 1_000 + 7
    got = credit_em(*args, iterations=40, tolerance=0, accelerate=False)
    want = reference_credit_em(*args, iterations=40, tolerance=0)
    assert _close(got, want)
    assert np.count_nonzero(got[0]) == 5 and len(got[0]) == 4_008


@pytest.mark.parametrize("chunk", [1, 7, 1 << 17])
def test_the_em_by_chunks_in_small_integers_is_the_reference_em(monkeypatch, chunk):
    # the fit's chunked loops and sums, over the partitioned build's input types (int32
    # cells, int8 bands, more cells than an int8 holds), give the reference's numbers
    monkeypatch.setattr(touch_build, "_CHUNK", chunk)
    touches, actions = 700, 400
    args = _em_args(
        8, touches=touches, pairs=1_500, actions=actions, cells=300, lag_scale=30, narrow=True
    )
    got = credit_em(*args, iterations=25, tolerance=0, accelerate=False)
    want = reference_credit_em(*args, iterations=25, tolerance=0)
    assert _close(got, want)
    assert got[1].sum() > 0  # the credits are not all zero
    arrays = dict(
        zip(
            ["cell_timing", "band", "left", "pair_action", "pair_touch", "pair_lag"],
            args[:6],
            strict=True,
        )
    )
    fitted = touch_build.fit_credits(
        arrays | {"cell_cadence": args[0]},
        n_actions=actions,
        exposure_scale=1e5,
        iterations=25,
        features=("timing",),
    )["timing"]
    credit = credit_em(*args, iterations=25)[1]
    assert np.array_equal(fitted, np.bincount(args[4], weights=credit, minlength=touches))


def test_the_em_stops_when_converged_in_both_and_only_then():
    args = _em_args(6, touches=800, pairs=900, actions=500, cells=6, lag_scale=20)
    plain = functools.partial(credit_em, accelerate=False)
    stopped = plain(*args, iterations=400)
    reference = reference_credit_em(*args, iterations=400, tolerance=CREDIT_TOLERANCE)
    assert _close(stopped, reference)
    # the stop gives what some number of whole iterations gives, well before the cap ...
    runs = [plain(*args, iterations=n, tolerance=0) for n in range(1, 400)]
    at = [n + 1 for n, run in enumerate(runs) if np.array_equal(run[1], stopped[1])]
    assert at and 1 < at[0] < 400
    assert np.array_equal(runs[at[0] - 1][0], stopped[0])
    # ... the credits of a far longer fit, to within the tolerance's order
    longer = plain(*args, iterations=2_000, tolerance=0)[1]
    assert np.max(np.abs(stopped[1] - longer)) < 1_000 * CREDIT_TOLERANCE
    # ... and none of it before the parameters settled: a cruder tolerance stops sooner
    assert not np.array_equal(plain(*args, iterations=400, tolerance=1e-3)[1], stopped[1])


def test_a_cell_whose_rate_decays_to_zero_does_not_hold_the_em_to_its_cap(monkeypatch):
    # cell 1's touches are only ever candidates beside a touch of cell 0 (same lag), which
    # alone answers as many actions again: cell 1's rate halves at every plain EM step towards
    # zero. Measured relative to itself it changed by ~50% at every step, into subnormal
    # numbers: the plain fit took 1,053 iterations (the default cap is 60)
    cell = np.r_[np.zeros(200, np.int64), np.ones(200, np.int64)]
    band = np.zeros(400, np.int64)
    left = np.full(400, 500.0)
    pair_action = np.r_[np.arange(200), np.arange(200), 200 + np.arange(200)]
    pair_touch = np.r_[np.arange(200), 200 + np.arange(200), np.arange(200)]
    pair_lag = np.full(600, 2.0)
    args = (cell, band, left, pair_action, pair_touch, pair_lag, 450, 1e4)
    for accelerate in (True, False):
        count = _iterations(monkeypatch)
        rate, _ = credit_em(*args, iterations=3_000, accelerate=accelerate)
        assert rate[1] < 1e-15 * rate[0]  # it did decay ...
        assert count[0] < 200  # ... and the fit stopped on its own
        monkeypatch.undo()


def _iterations(monkeypatch) -> list[int]:
    """A list that counts the credit EM's iterations (its stopping rule runs once each)."""
    count = [0]
    change = touch_build._em_change  # noqa: SLF001 - counts its calls

    def counted(*args):
        count[0] += 1
        return change(*args)

    monkeypatch.setattr(touch_build, "_em_change", counted)
    return count


def test_the_accelerated_em_reaches_the_plain_em_fixed_point_in_fewer_iterations(monkeypatch):
    # SQUAREM changes the path, not the fixed point: stopped at the default tolerance, its
    # rates and credits are those of the plain reference run to convergence (1e-14), well
    # within what the plain EM stopped at the same tolerance reaches, in fewer iterations
    args = _em_args(4, touches=3_000, pairs=4_000, actions=2_500, cells=12, lag_scale=25)
    converged = reference_credit_em(*args, iterations=20_000, tolerance=1e-14)
    count = _iterations(monkeypatch)
    fast = credit_em(*args, iterations=1_000)
    n_fast, count[0] = count[0], 0
    plain = credit_em(*args, iterations=1_000, accelerate=False)
    n_plain = count[0]
    assert 3 < n_fast < n_plain / 2 and n_plain < 1_000
    for got in (fast, plain):
        np.testing.assert_allclose(got[0], converged[0], rtol=1_000 * CREDIT_TOLERANCE, atol=0)
        np.testing.assert_allclose(got[1], converged[1], rtol=0, atol=1_000 * CREDIT_TOLERANCE)
    # a few iterations of each: the accelerated one is nearer the fixed point
    far = [
        np.abs(credit_em(*args, iterations=12, accelerate=a)[0] - converged[0]).max()
        for a in (True, False)
    ]
    assert far[0] < far[1] / 3


def test_an_extrapolated_point_that_would_leave_the_parameters_domain_steps_back():
    from effortlens.touch_build import _extrapolated  # noqa: PLC2701 - its guard

    widths = np.diff(np.asarray(LAG_EDGES_HOURS))
    density = np.tile(1 / widths.sum() * np.ones(len(widths)), (1, 1))
    points = [(np.array([rate, 0.5]), density, 0.01) for rate in (0.3, 0.1, 0.05)]
    # far along the path the first rate would fall below 0: a shorter step keeps it >= 0
    rate, got_density, background = _extrapolated(*points, widths)
    assert (rate >= 0).all() and rate[0] < 0.05 and rate[1] == 0.5 and background == 0.01
    np.testing.assert_allclose((got_density * widths).sum(axis=1), 1.0)
    # no step between them: the last point as it is
    assert _extrapolated(points[2], points[2], points[2], widths) is points[2]


def _planted_pairs(seed: int, rates: list[float], *, mean_lag: float, background: float):
    """Touches on contacts over 200 days, each of cell ``c`` causing Poisson(``rates[c]``)
    buyer actions after an exponential lag (``mean_lag`` hours), and background actions at
    ``background`` per contact-hour: the credit EM's arguments of their candidate pairs."""
    from effortlens.habits import candidate_pairs

    rng = np.random.default_rng(seed)
    contacts, span = 4_000, 200 * 24
    per = rng.poisson(5, contacts)
    contact = np.repeat(np.arange(contacts), per)
    hours = rng.uniform(0, span, len(contact))
    cell = rng.integers(0, len(rates), len(contact))
    caused = rng.poisson(np.asarray(rates)[cell])
    act_contact = np.repeat(contact, caused)
    act_hours = np.repeat(hours, caused) + rng.exponential(mean_lag, caused.sum())
    n_background = rng.poisson(background * contacts * span)
    act_contact = np.concatenate([act_contact, rng.integers(0, contacts, n_background)])
    act_hours = np.concatenate([act_hours, rng.uniform(0, span, n_background)])
    kept = act_hours <= span
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    order = np.lexsort((hours, contact))
    touches = pl.DataFrame(
        {
            "contact_id": contact[order],
            "ts": [t0 + timedelta(hours=float(h)) for h in hours[order]],
        }
    )
    actions = pl.LazyFrame(
        {
            "contact_id": act_contact[kept],
            "ts": [t0 + timedelta(hours=float(h)) for h in act_hours[kept]],
        }
    )
    pairs = candidate_pairs(touches, actions, window=14)
    left = np.minimum(-pairs.ts_hours, 14 * 24)
    exposure = contacts * (pairs.end - touches["ts"].min()).total_seconds() / 3600
    band = np.zeros(len(order), np.int64)
    return (cell[order], band, left, pairs.action, pairs.touch, pairs.lag, pairs.actions, exposure)


def test_the_fit_recovers_the_planted_rates():
    # actions planted from the model itself: the accelerated fit finds each cell's rate (within
    # the sampling error of ~5,000 touches a cell) and the background, as the plain EM run
    # to convergence does
    rates = [0.02, 0.06, 0.15, 0.3]
    args = _planted_pairs(11, rates, mean_lag=20.0, background=2e-5)
    rate, credit = credit_em(*args, iterations=1_000)
    np.testing.assert_allclose(rate, rates, rtol=0.2)
    assert np.all(np.diff(rate) > 0)
    plain_rate, plain_credit = credit_em(
        *args, iterations=20_000, tolerance=1e-13, accelerate=False
    )
    np.testing.assert_allclose(rate, plain_rate, rtol=1e-7)
    np.testing.assert_allclose(credit, plain_credit, atol=1e-6)
    # each action's credit is shared among its pairs and the background: never more than 1
    totals = np.bincount(args[3], weights=credit, minlength=args[6])
    assert totals.max() <= 1 + 1e-12


def _ranks(pair_action: np.ndarray) -> np.ndarray:
    """Each pair's number among its action's pairs, in the pairs' order (one at a time)."""
    seen: dict[int, int] = {}
    out = []
    for a in pair_action.tolist():
        out.append(seen.get(a, 0))
        seen[a] = out[-1] + 1
    return np.asarray(out)


@pytest.mark.parametrize("as_runs", [False, True])
def test_the_pairs_layout_keeps_each_actions_pairs_in_order(as_runs):
    # the pairs in any order (ranked by a sort) or as the candidate pairs come, one run of
    # increasing actions per rank (ranked run by run): the same ranks as counted one by one,
    # each block a prefix of one order of the actions (most pairs first, then by number)
    args = _em_args(4, touches=400, pairs=2_000, actions=300, cells=10)
    pair_action = args[3]
    if as_runs:
        pair_action = pair_action[np.lexsort((pair_action, _ranks(pair_action)))]
    layout = touch_build._pair_layout(pair_action, 310)  # noqa: SLF001
    rank = _ranks(pair_action)
    assert np.array_equal(layout.rank, rank)
    counts = np.bincount(pair_action, minlength=310)
    order = np.lexsort((np.arange(310), -counts))
    assert np.array_equal(layout.place[order], np.arange(310))
    assert layout.sizes == [int((counts > k).sum()) for k in range(counts.max())]
    rows = layout.rows(slice(0, len(pair_action)), pair_action)
    assert np.array_equal(np.sort(rows), np.arange(len(pair_action)))  # one row each
    # and the fit on the pairs in that order is the plain reference's
    reordered = list(args)
    reordered[3] = pair_action
    got = credit_em(*reordered, iterations=20, tolerance=0, accelerate=False)
    assert _close(got, reference_credit_em(*reordered, iterations=20, tolerance=0))


@pytest.mark.parametrize(("seed", "contacts"), [(1, 40), (3, 5)])
def test_practice_facts_equal_on_random_loads_full_of_ties(seed, contacts):
    from effortlens.deviance import practice_facts
    from effortlens.touch_build import build_practice_facts

    acts = enrich_tables(_random_load(seed, contacts=contacts), settings=load_settings()).activities
    want = practice_facts(acts).collect()
    assert want["previous_type"].null_count() < want.height
    assert_frame_equal(build_practice_facts(acts), want, check_exact=True)
    assert_frame_equal(build_practice_facts(acts.lazy()), want, check_exact=True)
    assert_frame_equal(build_practice_facts(acts.head(0)), practice_facts(acts.head(0)).collect())


def test_practice_facts_equal_on_the_samples(small_planted_enriched, hand_enriched):
    from effortlens.deviance import practice_facts
    from effortlens.touch_build import build_practice_facts

    for acts in (small_planted_enriched[0].activities, hand_enriched.activities):
        assert_frame_equal(
            build_practice_facts(acts), practice_facts(acts).collect(), check_exact=True
        )


def _decoded_practice_codes(folder) -> pl.DataFrame:
    """The practice codes under ``folder`` spelled out as the practice facts' columns."""
    from effortlens.deviance.differs import PracticeCodes

    codes = PracticeCodes(folder)
    column = codes.columns
    types = pl.concat([codes.types, pl.Series([None], dtype=pl.String)])
    seconds = pl.Series(column["gap_seconds"]).cast(pl.Int64)
    reps = codes.reps.select(pl.all().gather(column["rep"]))
    return reps.hstack(
        [
            pl.Series("day", column["day"]).cast(pl.Date),
            types.gather(column["type"]).rename("activity_type"),
            pl.Series("weekday", column["weekday"]).replace(-1, None),
            pl.Series("hour", column["hour"]).replace(-1, None),
            types.gather(column["previous"]).rename("previous_type"),
            pl.select(gap_days=pl.when(seconds >= 0).then(seconds / 86_400)).to_series(),
            pl.Series("previous_day", column["previous_day"]).replace(-(2**31), None).cast(pl.Date),
        ]
    )


@pytest.mark.parametrize(("seed", "contacts"), [(1, 40), (3, 5)])
def test_practice_codes_are_the_practice_facts_on_loads_full_of_ties(
    seed, contacts, hand_enriched, tmp_path
):
    """The practice codes spell out the practice facts with a day (every column, to the
    bit), sorted by day then rep; the same codes from the facts in any row order."""
    from effortlens.deviance.differs import PRACTICE_COLUMNS
    from effortlens.touch_build import build_practice_facts, write_practice_codes

    random = enrich_tables(_random_load(seed, contacts=contacts), settings=load_settings())
    for index, acts in enumerate((random.activities, hand_enriched.activities)):
        facts = build_practice_facts(acts)
        folder = tmp_path / f"codes{index}"
        assert write_practice_codes(facts, folder) == facts["day"].count()
        got = _decoded_practice_codes(folder)
        assert got.select("day", "rep_id").equals(
            got.select("day", "rep_id").sort("day", "rep_id", nulls_last=True)
        )
        want = facts.filter(pl.col("day").is_not_null()).select(PRACTICE_COLUMNS)
        assert want["previous_type"].null_count() < want.height
        ordered = list(PRACTICE_COLUMNS)
        assert_frame_equal(
            got.select(ordered).sort(ordered, nulls_last=True),
            want.sort(ordered, nulls_last=True),
            check_dtypes=False,
            check_exact=True,
        )
        shuffled = tmp_path / f"shuffled{index}"
        write_practice_codes(facts.sample(fraction=1.0, shuffle=True, seed=seed).lazy(), shuffled)
        for name in ("rep.keys.parquet", "type.keys.parquet"):
            assert pl.read_parquet(folder / name).equals(pl.read_parquet(shuffled / name))
        again = _decoded_practice_codes(shuffled)
        assert got.select("day", "rep_id").equals(again.select("day", "rep_id"))
        assert_frame_equal(again.sort(ordered, nulls_last=True), got.sort(ordered, nulls_last=True))
    empty = build_practice_facts(random.activities.head(0))
    assert write_practice_codes(empty, tmp_path / "empty") == 0
    assert _decoded_practice_codes(tmp_path / "empty").height == 0


def test_practice_codes_leave_out_touches_without_a_day_whatever_rep_or_type_they_name(
    tmp_path,
):
    """An undated touch is left out of the practice codes, also when its rep or type is on no
    dated touch (its code was once looked up among the dated touches' and failed)."""
    import datetime as dt

    from effortlens.touch_build import write_practice_codes

    schema = {
        **{c: pl.String for c in ("rep_id", "team", "segment", "role", "activity_type")},
        "day": pl.Date,
        "weekday": pl.Int8,
        "hour": pl.Int8,
        "previous_type": pl.String,
        "gap_days": pl.Float64,
        "previous_day": pl.Date,
    }
    dated = {"rep_id": "A", "team": "T", "segment": "S", "role": "AE", "activity_type": "call"}
    dated |= {"day": dt.date(2025, 1, 6), "weekday": 1, "hour": 9}
    for undated in ({"rep_id": "Z"}, {"activity_type": "fax"}, {}):
        facts = pl.DataFrame([dated, {**dated, "day": None, **undated}], schema=schema)
        folder = tmp_path / f"codes-{len(list(tmp_path.iterdir()))}"
        assert write_practice_codes(facts, folder) == 1
        assert pl.read_parquet(folder / "rep.keys.parquet")["rep_id"].to_list() == ["A"]
        assert "fax" not in pl.read_parquet(folder / "type.keys.parquet").to_series().to_list()


@pytest.mark.parametrize(("seed", "contacts"), [(1, 40), (3, 5)])
def test_partitioned_touch_frame_is_the_touch_facts_in_their_final_order(seed, contacts):
    """The partitioned build's pass 1 frame (already by day, then rep, with each touch's row
    in the fit) with credits added equals the in-memory path's touch facts of the same
    credits, row for row, on loads full of ties and touches without a contact; the fit's
    rows are the in-memory contact order."""
    settings = load_settings()
    enriched = enrich_tables(_random_load(seed, contacts=contacts), settings=settings)
    acts, actions = enriched.lazy("activities"), enriched.lazy("actions")
    from effortlens.touch_build import _on_contact  # noqa: PLC2701 - the in-memory path's

    touches, _, on_contact = _on_contact(acts)
    kinds = touches["activity_type"].drop_nulls().unique().sort().to_list()
    end = max(touches["ts"].max(), actions.select(pl.col("ts").max()).collect().item())
    frame, arrays, _ = touch_build.touch_credit_inputs(
        acts, actions, window=14.0, kinds=kinds, end=end
    )
    rng = np.random.default_rng(seed)
    credits = {f: rng.random(on_contact.height) for f in ("timing", "cadence")}
    assert len(arrays["band"]) == on_contact.height
    assert frame["fit_row"].null_count() == frame.height - on_contact.height > 0
    want = touch_build.with_credits(on_contact, credits, acts)
    assert_frame_equal(touch_build.credited_touches(frame, credits), want, check_exact=True)


def test_stable_order_by_one_key_or_two_is_the_sort_order():
    from effortlens.touch_build import _stable_order  # noqa: PLC2701 - both of its ways

    rng = np.random.default_rng(5)
    g = rng.integers(0, 50, 5_000)
    for t in (rng.integers(0, 30, 5_000), rng.integers(-(2**62), 2**62, 5_000)):  # fits / not
        want = pl.DataFrame({"g": g, "t": t}).select(pl.arg_sort_by("g", "t", maintain_order=True))
        assert _stable_order(g, t).tolist() == want.to_series().to_list()
    # 2**20 groups over 2**45 microseconds: one key only counted in seconds (or milliseconds)
    many = rng.integers(0, 2**20, 5_000)
    for step in (1_000_000, 1_000, 1):
        t = rng.integers(0, 2**45 // step, 5_000) * step
        t[::9] = t[0]  # ties in time
        want = pl.DataFrame({"g": many, "t": t}).select(
            pl.arg_sort_by("g", "t", maintain_order=True)
        )
        assert _stable_order(many, t).tolist() == want.to_series().to_list()


def _credit_inputs(enriched) -> tuple:
    """:func:`touch_build.touch_credit_inputs` of all of ``enriched`` (one part)."""
    acts, actions = enriched.lazy("activities"), enriched.lazy("actions")
    touches = acts.filter(pl.col("is_customer_facing") & pl.col("contact_id").is_not_null())
    kinds = touches.select(pl.col("activity_type").drop_nulls().unique().sort()).collect()
    end = pl.concat([touches.select("ts"), actions.select("ts")]).select(pl.max("ts")).collect()
    return touch_build.touch_credit_inputs(
        acts, actions, window=14.0, kinds=kinds.to_series().to_list(), end=end.item()
    )


@pytest.mark.parametrize(("seed", "contacts"), [(1, 40), (2, 400), (3, 5), (0, 0)])
def test_credit_pairs_by_binary_search_are_those_of_the_as_of_join(
    seed, contacts, monkeypatch, small_planted_enriched
):
    """Each action's latest touch found by a binary search of one integer key gives the
    fit's inputs :func:`effortlens.habits.candidate_pairs` gives (its as-of join: the way
    kept for keys past 64 bits), to the bit, on loads full of ties (actions at a touch's
    very instant, touches at one instant) and on the planted sample (seed 0)."""
    if seed:
        enriched = enrich_tables(_random_load(seed, contacts=contacts), settings=load_settings())
    else:
        enriched = small_planted_enriched[0]
    got = _credit_inputs(enriched)
    with monkeypatch.context() as patched:  # no time range small enough: the as-of join
        patched.setattr(touch_build, "time_steps", lambda t: (t, 2**63))
        want = _credit_inputs(enriched)
    assert len(got[1]["pair_touch"]) > 100 and got[2] == want[2] > 0
    assert_frame_equal(got[0], want[0], check_exact=True)
    for key, values in got[1].items():
        assert values.dtype == want[1][key].dtype and np.array_equal(values, want[1][key]), key


@pytest.mark.parametrize(
    ("seed", "contacts", "every_contact"),
    [(1, 40, False), (3, 5, False), (1, 40, True), (2, 9, True)],
)
def test_one_part_of_touches_serves_the_practice_facts_streaks_and_credit_inputs(
    seed, contacts, every_contact
):
    """A partition's touches read, coded and ordered once (:class:`PartTouches`) and given in
    turn to the practice facts, the streaks and the credit inputs, as the partitioned build's
    pass 1 does, give what each gives on its own, on loads full of ties (same contact and
    instant, ids not in the order read), with touches without a contact or (the credit frame
    then in the practice facts' order, its columns theirs) without: the practice facts equal
    :func:`effortlens.deviance.practice_facts` (the text sort), the credit frame the in-memory
    touch facts (the text path's order)."""
    from effortlens.deviance import practice_facts
    from effortlens.roe import streak_facts
    from effortlens.touch_build import PartTouches, build_practice_facts

    load = _random_load(seed, contacts=contacts)
    if every_contact:
        load["activities"] = load["activities"].filter(pl.col("contact_id").is_not_null())
    enriched = enrich_tables(load, settings=load_settings())
    acts, actions = enriched.lazy("activities"), enriched.lazy("actions")
    part = PartTouches(acts, actions)
    assert (part.without_contact == 0) == every_contact
    kinds = part.touches["activity_type"].drop_nulls().unique().sort().to_list()
    end = max(part.touches["ts"].max(), actions.select(pl.col("ts").max()).collect().item())
    practice = build_practice_facts(acts, part=part)
    streaks = streak_facts(acts, actions, enriched.reps, part=part)
    frame, arrays, n_actions = touch_build.touch_credit_inputs(
        acts, actions, window=14.0, kinds=kinds, end=end, part=part
    )
    assert_frame_equal(practice, practice_facts(acts).collect(), check_exact=True)
    assert practice["previous_type"].null_count() < practice.height
    assert_frame_equal(streaks, streak_facts(acts, actions, enriched.reps), check_exact=True)
    assert streaks.height > 10
    alone = touch_build.touch_credit_inputs(acts, actions, window=14.0, kinds=kinds, end=end)
    assert_frame_equal(frame, alone[0], check_exact=True)
    assert n_actions == alone[2]
    for key, values in arrays.items():
        assert values.dtype == alone[1][key].dtype and np.array_equal(values, alone[1][key])
    _, _, on_contact = touch_build._on_contact(acts)  # noqa: SLF001 - the in-memory path's
    rng = np.random.default_rng(seed)
    credits = {f: rng.random(on_contact.height) for f in ("timing", "cadence")}
    want = touch_build.with_credits(on_contact, credits, acts)
    assert_frame_equal(touch_build.credited_touches(frame, credits), want, check_exact=True)


def test_the_stopped_fit_shows_what_a_converged_fit_shows(small_planted_enriched, monkeypatch):
    # the default tolerance (a cap of iterations it does not reach) against a fit run to
    # 1e-13 on the planted sample: each habit cell's credits (as the habit tables sum them,
    # cells of more than 20 touches) within 100x the tolerance relatively; the lifts a view
    # shows (to 0.01) equal
    enriched, _ = small_planted_enriched
    stopped = build_touch_facts(enriched, iterations=1_000)
    fit = touch_build.credit_em
    exact = functools.partial(fit, tolerance=1e-13)
    monkeypatch.setattr(touch_build, "credit_em", exact)
    converged = build_touch_facts(enriched, iterations=3_000)
    for feature, cell in (("timing", ["weekday", "hour"]), ("cadence", ["bin_order"])):
        credit = f"credit_{feature}"
        sums = [
            f.group_by("activity_type", *cell)
            .agg(pl.col(credit).sum(), pl.len())
            .filter(pl.col("len") > 20)
            .sort(pl.all().exclude(credit))
            for f in (stopped, converged)
        ]
        assert sums[0].height > 10 and sums[0].drop(credit).equals(sums[1].drop(credit))
        np.testing.assert_allclose(sums[0][credit], sums[1][credit], rtol=100 * CREDIT_TOLERANCE)
        lifts = [(s[credit] / s["len"] / (s[credit].sum() / s["len"].sum())).round(2) for s in sums]
        assert lifts[0].equals(lifts[1])
    # the default cap of 60 iterations: accelerated, the fit reaches the tolerance even on so
    # small a sample; the plain EM's cap binds long before it there
    monkeypatch.setattr(touch_build, "credit_em", fit)
    capped = build_touch_facts(enriched)["credit_cadence"]
    assert (capped - stopped["credit_cadence"]).abs().max() < 1e-6
    monkeypatch.setattr(touch_build, "credit_em", functools.partial(fit, accelerate=False))
    plain = build_touch_facts(enriched)["credit_cadence"]
    assert (plain - stopped["credit_cadence"]).abs().max() > 1e-5


def test_radix_order_is_the_stable_argsort():
    from effortlens.touch_build import radix_order

    rng = np.random.default_rng(6)
    for top in (300, 2**20, 2**40):  # one pass, two, numpy's own sort
        key = rng.integers(0, top, 20_000)
        assert radix_order(key).tolist() == np.argsort(key, kind="stable").tolist()


@pytest.mark.parametrize(("seed", "contacts"), [(1, 40), (2, 400), (3, 5)])
def test_coded_practice_facts_and_touch_frame_hold_the_text_values_as_enums(seed, contacts):
    """With ``coded=True`` (the partitioned build's pass 1) the practice facts and the credit
    frame hold every text column as an ``Enum`` of the values it holds (the sequences: only
    the labels present, not every combination of types) and are the text frames once spelled,
    row for row, on loads full of ties and touches without a contact; the arrays are the
    same."""
    from effortlens.partitioned import _spelled_enums  # noqa: PLC2701 - pass 1's spelling
    from effortlens.touch_build import PartTouches, build_practice_facts

    enriched = enrich_tables(_random_load(seed, contacts=contacts), settings=load_settings())
    acts, actions = enriched.lazy("activities"), enriched.lazy("actions")
    part = PartTouches(acts, actions)
    kinds = part.touches["activity_type"].drop_nulls().unique().sort().to_list()
    end = max(part.touches["ts"].max(), actions.select(pl.col("ts").max()).collect().item())
    practice = build_practice_facts(acts, part=part)
    coded = build_practice_facts(acts, part=part, coded=True)
    text = [c for c, t in practice.schema.items() if t == pl.String]
    assert text and all(isinstance(coded.schema[c], pl.Enum) for c in text)
    assert_frame_equal(_spelled_enums(coded), practice, check_exact=True)
    assert_frame_equal(coded.with_columns(pl.col(text).cast(pl.String)), practice)
    args = {"window": 14.0, "kinds": kinds, "end": end, "part": part}
    frame, arrays, n_actions = touch_build.touch_credit_inputs(acts, actions, **args)
    enums, coded_arrays, coded_actions = touch_build.touch_credit_inputs(
        acts, actions, coded=True, **args
    )
    text = [c for c, t in frame.schema.items() if t == pl.String]
    assert {"rep_id", "activity_type", "sequence_2", "sequence_3"} <= set(text)
    for column in text:
        dtype = enums.schema[column]
        assert isinstance(dtype, pl.Enum), column
        # no category that no row holds (pass 2 and the day order take them as the values)
        held = frame[column].drop_nulls().unique().sort()
        assert dtype.categories.sort().to_list() == held.to_list(), column
    assert_frame_equal(_spelled_enums(enums), frame, check_exact=True)
    assert n_actions == coded_actions
    for key, values in arrays.items():
        assert np.array_equal(values, coded_arrays[key]) and values.dtype == coded_arrays[key].dtype


def test_a_reps_team_coded_by_its_rep_is_the_text_coded_and_refused_when_a_rep_has_two():
    """:func:`touch_build._coded_by` (a team, segment or role coded through the rep's code)
    gives :func:`touch_build._coded`'s names and codes, nulls included, and None as soon as
    one rep's rows hold two values."""
    from effortlens.touch_build import _coded, _coded_by  # noqa: PLC2701 - both ways

    rng = np.random.default_rng(5)
    reps = rng.integers(-1, 30, 5_000)  # -1: no rep
    teams = np.array([f"t{r % 7}" for r in range(31)] + [None], dtype=object)
    values = pl.Series("team", teams[np.where(reps >= 0, reps, 31)].tolist(), pl.String)
    values = values.scatter(np.flatnonzero(reps == 3), None)  # a rep whose team is null
    got = _coded_by(values, reps)
    want = _coded(values)
    assert got is not None and got[0].equals(want[0]) and np.array_equal(got[1], want[1])
    assert want[0].to_list() == [f"t{k}" for k in range(7)] and (want[1] == -1).any()
    assert _coded_by(values.scatter(int(np.flatnonzero(reps == 5)[-1]), "t6"), reps) is None
    assert _coded_by(values.scatter(int(np.flatnonzero(reps == 3)[0]), "t1"), reps) is None
    assert _coded_by(values.head(0), reps[:0]) is None


@pytest.mark.parametrize(("seed", "contacts"), [(1, 40), (3, 5)])
def test_coded_facts_written_as_text_are_the_spelled_facts_written(seed, contacts, tmp_path):
    """Pass 1 writes the coded practice facts and follow-ups without spelling them
    (:func:`effortlens.partitioned._write_enums_as_text`): each file reads back as the spelled frame
    written by :func:`partitioned._write` (text columns, nulls, values), with the same
    statistics in every row group; an ``Enum`` of unsorted categories is spelled first."""
    import pyarrow.parquet as pq

    from effortlens import partitioned
    from effortlens.deviance import practice_gaps

    spelled_enums = partitioned._spelled_enums  # noqa: SLF001 - pass 1's writes
    write, write_as_text = partitioned._write, partitioned._write_enums_as_text  # noqa: SLF001
    from effortlens.touch_build import PartTouches, build_practice_facts

    enriched = enrich_tables(_random_load(seed, contacts=contacts), settings=load_settings())
    acts = enriched.lazy("activities")
    coded = build_practice_facts(acts, part=PartTouches(acts), coded=True)
    unsorted = pl.Enum(["z", "a"])
    frames = {
        "practice": coded,
        "gaps": practice_gaps(coded)["gaps"].collect(),
        "unsorted": coded.head(50).with_columns(
            pl.Series("rep_id", ["z", None, "a", "z", "a"] * 10, unsorted)
        ),
    }
    assert coded["previous_type"].null_count() and coded.height > 300
    for name, frame in frames.items():
        assert any(isinstance(t, pl.Enum) for t in frame.schema.values())
        got, want = tmp_path / f"{name}.parquet", tmp_path / f"{name}_spelled.parquet"
        assert write_as_text(frame, got, row_group_size=100) == frame.height
        write(spelled_enums(frame), want, row_group_size=100)
        read = pl.read_parquet(got)
        assert read.schema == pl.read_parquet(want).schema
        assert all(t != pl.Categorical and not isinstance(t, pl.Enum) for t in read.schema.values())
        assert_frame_equal(read, pl.read_parquet(want), check_exact=True)
        one, other = pq.ParquetFile(got).metadata, pq.ParquetFile(want).metadata
        assert one.num_row_groups == other.num_row_groups > (name != "unsorted")
        for group in range(one.num_row_groups):
            for column in range(one.num_columns):
                a = one.row_group(group).column(column).statistics
                b = other.row_group(group).column(column).statistics
                assert (a.min, a.max, a.null_count) == (b.min, b.max, b.null_count)


@pytest.mark.parametrize(("seed", "contacts"), [(1, 40), (2, 400), (3, 5)])
def test_part_orders_by_the_kept_key_are_the_sort_orders(seed, contacts, monkeypatch):
    """:class:`PartTouches`' (contact, time, id) order found from the (contact, time) key its
    (contact, time) order sorted (ties: equal neighbours of that key) is
    :func:`touch_build._contact_order`'s, and the order without a key (keys past 64 bits),
    on loads full of ties (one contact at one instant, ids not in the order read) and
    touches without a contact; the rep columns coded through each rep's first row are the
    text coded."""
    from effortlens.touch_build import PartTouches, _coded, _contact_order, _rank  # noqa: PLC2701

    enriched = enrich_tables(_random_load(seed, contacts=contacts), settings=load_settings())
    acts = enriched.lazy("activities")
    touches = acts.filter(pl.col("is_customer_facing")).collect()
    want = _contact_order(_rank(touches["contact_id"]), touches["ts"], touches["activity_id"])
    part = PartTouches(acts)
    assert part.without_contact > 0 and part.order.tolist() == want.tolist()
    sorted_keys = touches[part.by_time].select("contact_id", "ts")
    assert sorted_keys.is_duplicated().sum() > 10  # ties for the ids to break
    with monkeypatch.context() as patched:  # no key fits: the frame of keys
        patched.setattr(touch_build, "_stable_key", lambda g, t: None)
        assert PartTouches(acts).order.tolist() == want.tolist()
    for column in ("team", "segment", "role"):
        names, codes = part.coded(column)
        text = _coded(touches[column])
        assert names.equals(text[0]) and np.array_equal(codes, text[1]), column


@pytest.mark.parametrize(("seed", "contacts", "every_contact"), [(1, 40, False), (4, 300, True)])
def test_the_enrichments_coded_rep_columns_give_what_their_text_gives(
    seed, contacts, every_contact
):
    """The enrichment's coded facts (``enrich_tables(coded=True)``: rep, team, segment and role
    as ``Enum``s of sorted categories, reps without a touch among them), given to
    :class:`PartTouches` as the partitioned build's pass 1 gets them, give the practice facts,
    streaks and credit inputs of the text facts, text or coded: the coded frames' ``Enum``s hold
    only the values present (their dtypes equal the text path's), on loads full of ties with a
    rep missing from the reps table, a teamless rep and touches without a contact."""
    from effortlens.deviance import practice_cells
    from effortlens.deviance.differs import coded_practice_cells
    from effortlens.roe import streak_facts
    from effortlens.touch_build import PartTouches, build_practice_facts

    load = _random_load(seed, contacts=contacts)
    idle = {"rep_id": ["r0", "r9"], "team": ["Z", "A"], "segment": ["MM"] * 2, "role": ["SDR"] * 2}
    load["reps"] = pl.concat([load["reps"], pl.DataFrame({**idle, "timezone": [None, None]})])
    if every_contact:
        load["activities"] = load["activities"].filter(pl.col("contact_id").is_not_null())
    settings = load_settings()
    made = {coded: enrich_tables(load, settings=settings, coded=coded) for coded in (False, True)}
    team = made[True].activities.schema["team"]
    assert isinstance(team, pl.Enum) and "Z" in team.categories.to_list()  # a team no touch has
    assert isinstance(made[True].activities.schema["rep_id"], pl.Enum)
    got = {}
    for coded, enriched in made.items():
        acts, actions = enriched.lazy("activities"), enriched.lazy("actions")
        part = PartTouches(acts, actions)
        kinds = part.touches["activity_type"].drop_nulls().unique().sort().to_list()
        end = max(part.touches["ts"].max(), actions.select(pl.col("ts").max()).collect().item())
        args = {"window": 14.0, "kinds": kinds, "end": end, "part": part}
        got[coded] = {
            "practice": build_practice_facts(acts, part=part),
            "practice_codes": build_practice_facts(acts, part=part, coded=True),
            "streaks": streak_facts(acts, actions, made[False].reps, part=part),
            "inputs": touch_build.touch_credit_inputs(acts, actions, **args),
            "coded_inputs": touch_build.touch_credit_inputs(acts, actions, coded=True, **args),
        }
    text, codes = got[False], got[True]
    for name in ("practice", "practice_codes", "streaks"):
        assert_frame_equal(codes[name], text[name], check_exact=True)
    assert isinstance(codes["practice_codes"].schema["team"], pl.Enum)
    assert "Z" not in codes["practice_codes"].schema["team"].categories.to_list()
    assert codes["streaks"].schema["rep_id"] == pl.String and codes["streaks"].height > 10
    for name in ("inputs", "coded_inputs"):
        (frame, arrays, n_actions), (want, want_arrays, want_actions) = codes[name], text[name]
        assert_frame_equal(frame, want, check_exact=True)
        assert n_actions == want_actions
        for key, values in arrays.items():
            assert values.dtype == want_arrays[key].dtype
            assert np.array_equal(values, want_arrays[key])
    cells = coded_practice_cells(codes["practice_codes"])
    assert cells is not None
    for cell, frame in practice_cells(text["practice"]).items():
        want = frame.collect()
        assert_frame_equal(cells[cell].sort(want.columns), want.sort(want.columns))


def test_enum_codes_of_sorted_categories_are_the_text_codes_and_unsorted_ones_are_spelled():
    """:func:`touch_build._coded` of an ``Enum`` (numbered from its codes, its categories
    present) equals that of the same values as text; unsorted categories take the text path."""
    values = pl.Series("team", ["b", None, "d", "b", "a", None])
    want_names, want_codes = touch_build._coded(values)  # noqa: SLF001
    for categories in (["a", "b", "c", "d", "e"], ["e", "d", "c", "b", "a"]):
        names, codes = touch_build._coded(values.cast(pl.Enum(categories)))  # noqa: SLF001
        assert names.dtype == pl.String
        assert names.to_list() == want_names.to_list() == ["a", "b", "d"]
        assert codes.tolist() == want_codes.tolist() == [1, -1, 2, 1, 0, -1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_candidate_pairs_stepping_back_only_while_candidates_are_those_of_every_step(seed):
    """:func:`effortlens.habits.pairs_before` (each action steps back only while its touches
    are candidates) finds the pairs of every step back for every action, in their order, on
    touches by contact then time with runs of one instant, null times first and actions past
    the window."""
    from effortlens.habits import MAX_CANDIDATES, CandidatePairs, pairs_before

    def every_step(last_row, action, action_ts, ts, *, key, end, window, actions):
        # the definition: MAX_CANDIDATES steps back for every action, each step's in order
        ts_hours = (ts - end).dt.total_seconds().to_numpy() / 3600.0
        action_hours = (action_ts - end).dt.total_seconds().to_numpy() / 3600.0
        rows, act, lag = [], [], []
        for k in range(MAX_CANDIDATES):
            g = last_row - k
            ok = g >= 0
            g_safe = np.where(ok, g, 0)
            ok &= key[g_safe] == key[last_row]
            delay = action_hours - ts_hours[g_safe]
            ok &= (delay >= 0) & (delay <= window * 24)
            rows.append(g_safe[ok])
            act.append(action[ok])
            lag.append(delay[ok])
        return CandidatePairs(
            np.concatenate(rows), np.concatenate(act), np.concatenate(lag), ts_hours, end, actions
        )

    rng = np.random.default_rng(seed)
    n = 5_000
    contact = np.sort(rng.integers(0, 300, n))
    hours = rng.integers(0, 24 * 40, n)
    hours[rng.random(n) < 0.02] = -1  # null times: first within their contact
    frame = pl.DataFrame({"c": contact, "h": hours}).sort("c", "h")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    ts = pl.Series(
        [None if h < 0 else t0 + timedelta(hours=int(h)) for h in frame["h"]],
        dtype=pl.Datetime("us", "UTC"),
    )
    key = frame["c"].to_numpy()
    m = 2_000
    last_row = np.sort(rng.integers(0, n, m))
    acted = pl.Series(
        [
            t0 + timedelta(hours=int(max(frame["h"][int(r)], 0) + rng.integers(0, 24 * 20)))
            for r in last_row
        ],
        dtype=pl.Datetime("us", "UTC"),
    )
    args = {"key": key, "end": t0 + timedelta(days=80), "window": 14.0, "actions": m}
    want = every_step(last_row, np.arange(m), acted, ts, **args)
    got = pairs_before(last_row, np.arange(m), acted, ts, **args)
    assert len(want.touch) > m  # actions with several candidates
    for field in ("touch", "action", "lag", "ts_hours"):
        a, b = getattr(got, field), getattr(want, field)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), field
    assert got.end == want.end and got.actions == want.actions


@pytest.mark.parametrize("distinct", [1, 7, 5_000, 40_000])
def test_text_ranked_by_hashed_slots_is_the_enum_rank(distinct, monkeypatch):
    """:func:`touch_build._ranked_text` (each value's hash put in a table by some of its bits,
    a few rounds) numbers the rows as an ``Enum`` of the sorted values does, with few or many
    distinct values (many rounds in a small table); None when the rounds run out."""
    rng = np.random.default_rng(distinct)
    values = pl.Series([f"c{v}" for v in rng.integers(0, distinct, 60_000)])
    names = values.unique().sort()
    want = values.cast(pl.Enum(names)).to_physical().cast(pl.Int64).to_numpy()
    monkeypatch.setattr(touch_build, "_SLOT_BITS", (12, 12))  # 4,096 slots: several rounds
    got = touch_build._ranked_text(values)  # noqa: SLF001
    assert got is not None
    assert got[0].to_list() == names.to_list() and np.array_equal(got[1], want)
    monkeypatch.setattr(touch_build, "_SLOT_ROUNDS", 0)
    assert touch_build._ranked_text(values) is None  # noqa: SLF001


def test_contacts_ranked_by_the_enum_when_the_hashed_ranks_are_refused(monkeypatch):
    """Pass 1's touches numbered by their contacts' ``Enum`` (the fallback when
    :func:`touch_build._ranked_text` refuses) give the same places, names and orders."""
    from effortlens.touch_build import PartTouches

    enriched = enrich_tables(_random_load(5, contacts=300), settings=load_settings())
    acts, actions = enriched.lazy("activities"), enriched.lazy("actions")
    part = PartTouches(acts, actions)
    assert part.without_contact > 0
    monkeypatch.setattr(touch_build, "_SLOT_ROUNDS", 0)
    other = PartTouches(acts, actions)
    for name in ("contact", "acting", "order"):
        assert np.array_equal(getattr(part, name), getattr(other, name)), name
    assert part.contact_names.to_list() == other.contact_names.to_list()
    assert part.contacts == other.contacts


def test_pass_one_of_the_enrichments_coded_facts_writes_the_text_facts_files(tmp_path):
    """The partitioned build's pass 1 (``partitioned._view_part``) over the enrichment's coded
    facts (rep columns and the actions' rep and level as ``Enum``s) writes what it writes over
    the text facts: every file, the stored ones (practice facts, verifiers) byte for byte (a
    build that fuses pass 1 with the enrichment writes the files of one that reads the text
    facts back), the scratch frames and the credit fit's arrays."""
    from effortlens import partitioned
    from effortlens.facts import FACTS_LAYOUT

    load = _random_load(6, contacts=200)
    settings = load_settings()
    written = {}
    for coded in (False, True):
        enriched = enrich_tables(load, settings=settings, coded=coded)
        folder = tmp_path / f"coded{coded}"
        folder.mkdir()
        enriched.reps.write_parquet(folder / FACTS_LAYOUT["reps"])
        acts = enriched.activities.filter(pl.col("is_customer_facing"))
        on = acts.filter(pl.col("contact_id").is_not_null())
        extent = {
            "kinds": on["activity_type"].drop_nulls().unique().sort().to_list(),
            "first": on["ts"].min(),
            "end": max(on["ts"].max(), enriched.actions["ts"].max()),
        }
        events = (enriched.activities.lazy(), enriched.actions.lazy())
        partitioned._view_part(  # noqa: SLF001 - pass 1 of one partition
            "part-00000.parquet", folder, folder / "scratch", settings=settings, window=14.0,
            events=events, **extent,
        )  # fmt: skip
        written[coded] = {
            p.relative_to(folder): p for p in folder.rglob("*") if p.is_file() and "reps" != p.stem
        }
    assert written[True].keys() == written[False].keys()
    assert any("verifiers" in str(p) for p in written[True])
    for relative, path in written[True].items():
        other = written[False][relative]
        if path.suffix == ".npy":
            assert np.array_equal(np.load(path), np.load(other)), relative
        elif path.suffix == ".parquet" and "scratch" not in str(relative):  # stored: as text
            assert pl.read_parquet_schema(path) == pl.read_parquet_schema(other), relative
            assert_frame_equal(pl.read_parquet(path), pl.read_parquet(other), check_exact=True)
            assert path.read_bytes() == other.read_bytes(), relative  # a fused build's bytes
        elif path.suffix in (".parquet", ".arrow"):
            read = pl.read_ipc if path.suffix == ".arrow" else pl.read_parquet
            frame = read(path).with_columns(pl.col(pl.Enum).cast(pl.String))
            want = read(other).with_columns(pl.col(pl.Enum).cast(pl.String))
            assert_frame_equal(frame.sort(frame.columns), want.sort(want.columns)), relative
        else:
            assert path.read_bytes() == other.read_bytes(), relative


@pytest.mark.parametrize("unit", ["ns", "us", "ms"])
def test_whole_seconds_back_are_polars_total_seconds_where_times_do_not_go_back(unit):
    """:func:`touch_build._whole_seconds_back` (the cadence bins' and sequences' spans from
    the times' integers) equals Polars' ``total_seconds`` of the differences wherever the
    earlier row is not later (a contact's touches by time), to the second, around whole
    seconds; None with a null time."""
    rng = np.random.default_rng(3)
    ticks = {"ns": 10**9, "us": 10**6, "ms": 10**3}[unit]
    raw = np.sort(rng.integers(0, 400 * ticks, 4_000)) + rng.choice([0, 1, ticks - 1], 4_000)
    ts = pl.Series(np.sort(raw)).cast(pl.Datetime(unit, "UTC"))
    for back in (1, 2, 3):
        got = touch_build._whole_seconds_back(ts, back)  # noqa: SLF001
        want = (ts - ts.shift(back)).dt.total_seconds().fill_null(0).to_numpy()
        assert np.array_equal(got, want), back
    assert touch_build._whole_seconds_back(ts.scatter(5, None), 1) is None  # noqa: SLF001


def _base_credit_fit(
    fit: touch_build._Fit,
    layout: touch_build._Layout,
    n_actions: int,
    background_exposure: float,
    *,
    iterations: int,
    tolerance: float = touch_build.CREDIT_TOLERANCE,
    accelerate: bool = True,
    lanes: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    """2520967\'s ``touch_build._credit_fit``: the E step over every block, then the M step\'s
    sums by code block after block (the order of every sum the fit\'s bits hold to)."""
    edges = np.asarray(touch_build.LAG_EDGES_HOURS)
    widths = np.diff(edges)
    n_bins = len(widths)
    n_bands = fit.n_bands
    n_slots = n_bands * n_bins
    has, uncut, code = fit.has, fit.uncut, fit.code
    cut_cell, cut_slot, cut_below, cut_hours = (
        fit.cut_cell,
        fit.cut_slot,
        fit.cut_below,
        fit.cut_hours,
    )
    used = np.flatnonzero(has)
    n_cells = len(has)
    n_codes = max(len(used), 1) * n_slots
    n_pairs, n_touches = fit.pairs, fit.touches
    # the actions without a pair: their total is the background alone
    alone = len(layout.place) - (layout.sizes[0] if layout.sizes else 0)
    # a chunk of actions at a time, its rows of every block in turn: the chunk's totals stay
    # in the cache while its actions' pairs are added (each action's in rank order as before)
    blocks = [
        (slice(start + at.start, start + min(at.stop, size)), slice(at.start, min(at.stop, size)))
        for at in touch_build._chunks(layout.sizes[0] if layout.sizes else 0)  # noqa: SLF001
        for start, size in zip(layout.starts, layout.sizes, strict=True)
        if size > at.start
    ]
    totals = np.zeros(layout.sizes[0] if layout.sizes else 0)  # per action with a pair
    inverse = np.zeros(len(totals))
    held = np.empty(min(n_pairs, touch_build._CHUNK))  # noqa: SLF001
    last = {}  # the last E step's table of weights (``totals`` holds its totals)

    def em_step(rate: np.ndarray, density: np.ndarray, background: float) -> tuple:
        """One iteration from these parameters: the next parameters. A pair's credit is its
        weight over its action's total, so a code's credits are its weight times the sum of
        its pairs' actions' inverse totals: no credit is held per pair."""
        # E step: each pair's weight (its code's), added to its action's total
        table = np.multiply.outer(rate[used], density.reshape(-1)).reshape(-1)
        last["table"] = table
        totals[:] = 0.0
        for rows, acting in blocks:  # each action's pairs added in their order, as by rank
            # mode "clip" (every code is in the table): "raise" buffers ``out`` first
            weight = np.take(table, code[rows], out=held[: len(totals[acting])], mode="clip")
            totals[acting] += weight
        np.add(totals, background, out=totals)
        np.divide(1.0, totals, out=inverse)
        # (an action without a pair: background / background, as its total is the background)
        alone_share = alone * np.divide(background, background) if alone else 0.0
        background_share = math.fsum((float((background / totals).sum()), alone_share))
        # M step (each chunk's inverse totals summed by code while they are in the cache)
        by_code = np.zeros(n_codes)
        for rows, acting in blocks:
            by_code += np.bincount(code[rows], weights=inverse[acting], minlength=n_codes)
        by_code *= table
        by_code = by_code.reshape(-1, n_slots)
        cumulative = np.concatenate(
            [np.zeros((n_bands, 1)), np.cumsum(density * widths, axis=1)], axis=1
        ).reshape(-1)
        whole = np.clip(cumulative.reshape(n_bands, n_bins + 1)[:, -1], 1e-9, 1.0)
        exposure = cumulative[cut_below] + cut_hours * density.reshape(-1)[cut_slot]
        np.clip(exposure, 1e-9, 1.0, out=exposure)
        exposed = np.bincount(cut_cell, exposure, minlength=len(used)).astype(np.float64)
        for b in range(n_bands):  # (not a matrix product: its sums' order varies with shapes)
            exposed += uncut[:, b] * whole[b]
        rate = np.zeros(n_cells)
        rate[used] = np.where(exposed > 0, by_code.sum(axis=1) / np.maximum(exposed, 1e-12), 0.0)
        # each slot's credits of every cell added in the order of their values (not of the
        # cells' numbers: the event path numbers the same cells otherwise, and gives these bits)
        mass = np.sort(by_code, axis=0).sum(axis=0).reshape(n_bands, n_bins)
        density = (mass + 1e-9) / widths
        density /= (density * widths).sum(axis=1, keepdims=True)
        return rate, density, background_share / max(background_exposure, 1e-9)

    start = (
        # (0 for a cell without touches, as after any iteration: nothing in the acceleration
        # depends on how many such cells the numbering leaves)
        np.where(has, max(n_pairs, 1) / max(n_touches, 1), 0.0),
        np.tile(1 / (edges[-1] * np.ones(n_bins)), (n_bands, 1)),  # per hour
        0.1 * n_actions / max(background_exposure, 1e-9),
    )
    rate = touch_build._fixed_point(  # noqa: SLF001
        em_step,
        start,
        widths=widths,
        iterations=iterations,
        tolerance=tolerance,
        accelerate=accelerate,
    )[0]
    # each pair's credit by the last E step: its weight over its action's total
    credit = np.zeros(n_pairs)
    for rows, acting in blocks:
        np.take(last["table"], code[rows], out=credit[rows], mode="clip")
        np.divide(credit[rows], totals[acting], out=credit[rows])
    return rate, credit


def _parts_of_fits(seeds: tuple[int, ...]) -> list[dict[str, np.ndarray]]:
    """The partitioned build's credit inputs in parts (int32 cells and indices, each part's
    pairs and actions numbered within it), many pairs a code and an action, lags spread over
    magnitudes: the order of the fit's sums shows in its bits."""
    parts = []
    for seed in seeds:
        args = _em_args(
            seed, touches=900, pairs=3_000, actions=400, cells=40, lag_scale=8, narrow=True
        )
        keys = ["cell_timing", "band", "left", "pair_action", "pair_touch", "pair_lag"]
        arrays = dict(zip(keys, args[:6], strict=True))
        parts.append(arrays | {"cell_cadence": (args[0] % 17).astype(np.int32)})
    return parts


@pytest.mark.parametrize("chunk", [7, 1 << 17])
def test_the_fit_on_several_threads_gives_the_bits_of_2520967s_one(monkeypatch, chunk):
    # three parts: the parts' setup, each iteration's chunks of actions and the per-touch
    # sums shared out to threads, and the thread count changed between steps (the fit widens
    # when the practice side is done), give the bits of 2520967's fit (every block's E step,
    # then the M step block after block) on one thread
    monkeypatch.setattr(touch_build, "_CHUNK", chunk)
    parts = _parts_of_fits((11, 12, 13))
    options = {"n_actions": [400] * 3, "exposure_scale": 1e5, "iterations": 25}
    with monkeypatch.context() as patched:
        patched.setattr(touch_build, "_credit_fit", _base_credit_fit)
        want = dict(touch_build.fitted_credits(parts, **options))
    asked = []

    def widening() -> int:  # one thread for the first few steps, then three
        asked.append(1)
        return 1 if len(asked) < 6 else 3

    for threads in (1, 2, widening):
        got = dict(touch_build.fitted_credits(parts, **options, threads=threads))
        assert got.keys() == want.keys() == {"timing", "cadence"}
        for feature in want:
            assert len(got[feature]) == 3
            for a, b in zip(got[feature], want[feature], strict=True):
                assert np.array_equal(a, b), (threads, feature)  # to the bit
    assert len(asked) > 6  # asked at every step
    assert all(c.sum() > 0 for c in want["timing"])


@pytest.mark.parametrize("distinct", [1, 7, 5_000, 40_000])
def test_ids_of_one_prefix_ranked_by_their_numbers_are_the_enum_rank(distinct):
    """:func:`touch_build._numbered_text` (ids of one prefix and width ranked by their numbers,
    H3 s16) numbers the rows as an ``Enum`` of the sorted values does; ids whose text would
    not sort as their numbers are refused (None), never ranked wrong."""
    rng = np.random.default_rng(distinct)
    values = pl.Series([f"CON{v:06d}" for v in rng.integers(0, distinct, 60_000) * 7 + 3])
    names = values.unique().sort()
    want = values.cast(pl.Enum(names)).to_physical().cast(pl.Int64).to_numpy()
    got = touch_build._numbered_text(values)  # noqa: SLF001
    assert got is not None
    assert got[0].to_list() == names.to_list() and np.array_equal(got[1], want)
    for refused in (
        ["C7", "C10", "C7"],  # widths differ: "C10" sorts before "C7"
        ["CON000011", "CAN000012"],  # another prefix: the numbers' order is not the text's
        ["CON+12345", "CON012344"],  # a sign: "+" sorts before "0"
        ["CON 12345", "CON012345"],  # a space
        ["CON0000001", "CON9000000"] * 3,  # numbers too sparse for a table over their range
        ["CON000001", None],
        ["CONABC", "CONDEF"],  # no number
    ):
        assert touch_build._numbered_text(pl.Series(refused)) is None, refused  # noqa: SLF001


def test_contacts_ranked_by_their_numbers_give_the_hashed_ranks_places_and_orders(monkeypatch):
    """Pass 1's touches whose contacts are one prefix and a number (the samples' ``CON...``)
    get the places, names and orders the hashed ranks give them (with touches and actions
    without a contact); a contact id sorting after the stand-in's is ranked by the hashes."""
    from effortlens.touch_build import PartTouches

    tables = _random_load(5, contacts=300)
    for name in ("activities", "buyer_actions"):
        tables[name] = tables[name].with_columns(
            pl.col("contact_id")
            .str.slice(1)
            .cast(pl.Int64)
            .map_elements(lambda c: f"CON{c:06d}", return_dtype=pl.String)
        )
    enriched = enrich_tables(tables, settings=load_settings())
    acts, actions = enriched.lazy("activities"), enriched.lazy("actions")
    calls = []
    numbered = touch_build._numbered_text  # noqa: SLF001
    monkeypatch.setattr(touch_build, "_numbered_text", lambda v: calls.append(1) or numbered(v))
    part = PartTouches(acts, actions)
    assert part.without_contact > 0 and part.answered.height > 0
    assert len(part.contact) and calls  # ranked by their numbers
    assert numbered(part.touches["contact_id"].drop_nulls()) is not None
    monkeypatch.setattr(touch_build, "_numbered_text", lambda _: None)
    other = PartTouches(acts, actions)
    for name in ("contact", "acting", "order", "by_day"):
        assert np.array_equal(getattr(part, name), getattr(other, name)), name
    assert part.contact_names.to_list() == other.contact_names.to_list()
    assert part.contact_names[-1] == touch_build._LAST_CONTACT  # noqa: SLF001


@pytest.mark.parametrize("seed", [1, 2])
def test_columns_moved_in_one_packed_gather_are_the_columns_gathered(seed, monkeypatch):
    """:class:`PartTouches`' columns in the final (day, rep, contact, time, id) order, moved
    as one packed int64 per touch (H3 s16): each equals the column gathered by
    ``order[by_day]`` (dtype, values, nulls; text as its codes, as ``Enum`` and spelled),
    with nulls planted in every packed column; a column that would pass 63 bits is gathered
    (an ``Int64`` hour of 60 bits), as are all when nothing is packed; the in-order arrays
    the three passes share (packed too, or gathered one by one for times that are not whole
    seconds) are the arrays gathered by ``order``."""
    from effortlens.touch_build import PartTouches

    enriched = enrich_tables(_random_load(seed, contacts=200), settings=load_settings())
    rng = np.random.default_rng(seed)
    acts = enriched.activities
    n = acts.height

    def nulled(column: str) -> pl.Expr:
        hit = pl.Series(rng.random(n) < 0.05)
        return pl.when(hit).then(None).otherwise(pl.col(column)).alias(column)

    variants = {
        "as enriched": acts,
        "nulls": acts.with_columns(
            nulled(c) for c in ("day", "weekday", "hour", "responded", "activity_type")
        ),
        "wide hour": acts.with_columns(
            hour=pl.col("hour").cast(pl.Int64) * (1 << 55) + pl.col("weekday").cast(pl.Int64)
        ),
        "microseconds": acts.with_columns(
            pl.col("ts") + pl.Series(rng.integers(0, 5, n)).cast(pl.Duration("us"))
        ),
    }
    columns = ["rep_id", "team", "day", "activity_type", "weekday", "hour", "responded"]
    for label, frame in variants.items():
        for packing in (True, False):
            with monkeypatch.context() as patched:
                if not packing:
                    patched.setattr(touch_build, "_PACKED_COLUMNS", ())
                part = PartTouches(frame.lazy())
                final = pl.Series(part.order[part.by_day])
                packed = set(part._packed_in_final_order())  # noqa: SLF001
                for column in columns:
                    want = part.touches[column].gather(final)
                    got = part.in_day_order(column, coded=False)
                    assert_frame_equal(got.to_frame(), want.to_frame(), check_exact=True)
                    enum = part.in_day_order(column, coded=True)
                    assert enum.cast(pl.String).equals(want.cast(pl.String)), (label, column)
                assert ("hour" in packed) == (packing and label != "wide hour"), label
                for name, values in (("contact", part.contact), ("ts", part.ts)):
                    assert np.array_equal(part.in_order(name), values[part.order]), name
                rep = part.coded("rep_id")[1][part.order]
                assert np.array_equal(part.in_order("rep_id"), rep)
                kind = part.coded("activity_type")[1][part.order]
                assert np.array_equal(part.in_order("activity_type"), kind)
                assert np.array_equal(part.rep_order, part.order[part.by_rep])
                # the four moved in one packed gather but for times not whole seconds
                whole = part._packed_in_order(part.order)  # noqa: SLF001
                assert whole == (label != "microseconds"), label


@pytest.mark.parametrize("seed", [1, 2])
def test_practice_history_by_packed_gathers_is_the_reference_or_refused(seed, monkeypatch):
    """The practice facts' history moved by two packed gathers (``_packed_history``, H3 s16)
    gives :func:`effortlens.deviance.practice_facts`' rows to the bit (gaps of seconds to
    weeks, days with nulls planted, ties, touches without a contact); times that are not
    whole seconds, or null, take the frames' path (refused) and give them too."""
    from effortlens.deviance import practice_facts
    from effortlens.touch_build import PartTouches, build_practice_facts

    packed_history = touch_build._packed_history  # noqa: SLF001

    rng = np.random.default_rng(seed)
    acts = enrich_tables(_random_load(seed, contacts=60), settings=load_settings()).activities
    n = acts.height
    seconds = pl.Series(rng.integers(0, 86_400 * 9, n) * 1_000_000).cast(pl.Duration("us"))
    variants = {
        "seconds apart": acts.with_columns(pl.col("ts") + seconds),
        "null days": acts.with_columns(
            day=pl.when(pl.Series(rng.random(n) < 0.1)).then(None).otherwise(pl.col("day"))
        ),
        "microseconds": acts.with_columns(
            pl.col("ts") + pl.Series(rng.integers(0, 5, n)).cast(pl.Duration("us"))
        ),
        "null time": acts.with_columns(
            ts=pl.when(pl.col("is_customer_facing").cum_sum() == 1)  # the first touch's
            .then(None)
            .otherwise(pl.col("ts"))
        ),
    }
    calls = []

    def recorded(part):
        calls.append(packed_history(part))
        return calls[-1]

    monkeypatch.setattr(touch_build, "_packed_history", recorded)
    for label, frame in variants.items():
        calls.clear()
        want = practice_facts(frame).collect()
        assert want["gap_days"].null_count() < want.height
        assert_frame_equal(build_practice_facts(frame), want, check_exact=True)
        refused = label in ("microseconds", "null time")
        assert (calls[0] is None) == refused, label
        if not refused:  # the frames' path gives the same history
            assert packed_history(PartTouches(frame)) is not None
            with monkeypatch.context() as patched:
                patched.setattr(touch_build, "_packed_history", lambda _: None)
                assert_frame_equal(build_practice_facts(frame), want, check_exact=True)


def test_lag_bins_by_whole_hours_are_the_binary_searchs_bins():
    # the credit setup's lag and cut bins by a lookup of whole hours: the clipped
    # searchsorted bins of every value, edges, just under them, NaN, infinities, negatives
    from effortlens.touch_build import _lag_bins  # noqa: PLC2701 - its equality

    edges = np.asarray(LAG_EDGES_HOURS)
    rng = np.random.default_rng(3)
    hours = np.concatenate(
        [
            rng.uniform(-5, 400, 20_000),
            rng.exponential(30, 20_000),
            edges,
            np.nextafter(edges, -np.inf),
            np.nextafter(edges, np.inf),
            [np.nan, np.inf, -np.inf, -0.0, -1e-300, 1e300],
        ]
    )
    want = np.clip(np.searchsorted(edges, hours, side="right") - 1, 0, len(edges) - 1)
    got = _lag_bins(hours, edges)
    assert got.dtype == np.int64 and np.array_equal(got, want)
    assert len(np.unique(got)) == len(edges)  # every bin met
    # edges that are not whole numbers: the binary search itself
    odd = np.asarray([0.0, 0.5, 2.25, 7.0])
    want = np.clip(np.searchsorted(odd, hours, side="right") - 1, 0, len(odd) - 1)
    assert np.array_equal(_lag_bins(hours, odd), want)


def test_fields_moved_by_one_packed_gather_are_the_fields_gathered():
    """:func:`touch_build._gathered_packed` (pass 1's one mechanism for moving small
    integer columns by one gather, s17): planted fields of 0 to 40 bits, zeros, a null coded
    0 (:func:`touch_build._from_one`) and one field alone come out as ``field[order]``
    (int64), the arrays unchanged and the list emptied; fields of exactly 63 bits are
    packed, of 64 refused (None, nothing emptied)."""
    from effortlens.touch_build import _from_one, _gathered_packed  # noqa: PLC2701

    rng = np.random.default_rng(17)
    n = 50_000
    order = rng.permutation(n)[: n - 7]  # a random gather, some rows left out
    for widths in ([40, 1, 13, 9], [0, 5, 0], [20], [31, 32], [62, 1], [21, 21, 21]):
        fields = [rng.integers(0, 1 << w, n) if w else np.zeros(n, np.int64) for w in widths]
        for field, w in zip(fields, widths, strict=True):
            if w:
                field[rng.integers(0, n)] = (1 << w) - 1  # the field's widest value held
        kept = [f.copy() for f in fields]
        given = list(fields)
        moved = _gathered_packed(given, order)
        assert moved is not None and given == [], widths
        assert len(moved) == len(widths)
        for got, field, before in zip(moved, fields, kept, strict=True):
            assert got.dtype == np.int64 and np.array_equal(got, before[order]), widths
            assert np.array_equal(field, before)  # not changed
    for widths in ([32, 32], [63, 1], [40, 13, 11]):  # 64 bits
        fields = [np.full(n, (1 << w) - 1, np.int64) for w in widths]
        given = list(fields)
        assert _gathered_packed(given, order) is None and len(given) == len(widths), widths
    # a day with nulls and one of booleans, as the final order packs them
    days = pl.Series([None, 19_000, 19_003, None, 19_001], dtype=pl.Int32).cast(pl.Date)
    flags = pl.Series([True, None, False, True, None])
    (day, low_day), (flag, low_flag) = _from_one(days), _from_one(flags)
    assert low_day == 19_000 and day.tolist() == [0, 1, 4, 0, 2]
    assert low_flag == 0 and flag.tolist() == [2, 0, 1, 2, 0]
    at = np.array([4, 3, 2, 1, 0, 2])
    moved_day, moved_flag = _gathered_packed([day, flag], at)
    assert moved_day.tolist() == day[at].tolist() and moved_flag.tolist() == flag[at].tolist()
    nothing, low = _from_one(pl.Series([None, None], dtype=pl.Int16))
    assert low == 0 and nothing.tolist() == [0, 0]


@pytest.mark.parametrize("unit", ["ns", "us", "ms"])
def test_whole_seconds_since_the_first_or_refused(unit):
    """:func:`touch_build._whole_seconds` (the packed gathers' times, s17): the seconds since
    the least time, that time's integer and the unit's ticks a second, from the integers in
    any order; None for a time off the first's whole seconds, a null, no time or no
    ``Datetime``."""
    from effortlens.touch_build import _whole_seconds  # noqa: PLC2701

    per_second = {"ns": 10**9, "us": 10**6, "ms": 10**3}[unit]
    rng = np.random.default_rng(5)
    first = 1_700_000_000 * per_second + 123  # not a whole second since 1970: since the first
    ints = first + rng.integers(0, 86_400 * 60, 10_000) * per_second
    ints[17] = first
    ts = pl.Series(ints).cast(pl.Datetime(unit))
    shuffled = rng.permutation(ints)
    seconds, low, ticks = _whole_seconds(ts, shuffled)
    assert (low, ticks) == (first, per_second)
    assert seconds.dtype == np.int64 and np.array_equal(seconds * per_second + low, shuffled)
    off = ints.copy()
    off[5] += 1  # one tick off
    assert _whole_seconds(pl.Series(off).cast(pl.Datetime(unit)), off) is None
    assert _whole_seconds(ts.scatter(3, None), ints) is None
    assert _whole_seconds(ts.head(0), ints[:0]) is None
    assert _whole_seconds(pl.Series(ints), ints) is None  # integers, not times


@pytest.mark.parametrize(("seed", "contacts"), [(1, 40), (2, 400)])
def test_coded_gap_sums_are_the_group_bys_in_rep_order_and_decided(seed, contacts):
    """:func:`deviance.differs.coded_practice_gaps` (pass 1's per-partition gap sums by
    ``numpy.bincount``, s17): the follow-ups as :func:`practice_gaps`; ``gap_reps`` the
    group-by's rows in the reps' order (counts exact, sums to 1e-12), the same bits every
    run, with follow-ups of no rep planted; None for a rep in two teams or text reps; no
    follow-up at all: no row, the group-by's schema."""
    from effortlens.deviance import practice_gaps
    from effortlens.deviance.differs import coded_practice_gaps
    from effortlens.touch_build import build_practice_facts

    enriched = enrich_tables(_random_load(seed, contacts=contacts), settings=load_settings())
    coded = build_practice_facts(enriched.lazy("activities"), coded=True)
    rng = np.random.default_rng(seed)
    hit = pl.Series(rng.random(coded.height) < 0.05)
    unrepped = coded.with_columns(  # a follow-up without a rep: its team and the rest too
        pl.when(hit).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("rep_id", "team", "segment", "role")
    )
    for practice in (coded, unrepped):
        want = {k: f.collect() for k, f in practice_gaps(practice).items()}
        got = coded_practice_gaps(practice)
        assert got is not None
        assert_frame_equal(got["gaps"], want["gaps"], check_exact=True)
        reps = got["gap_reps"]
        assert reps.height > 2 and reps.schema == want["gap_reps"].schema
        assert reps["rep_id"].to_physical().fill_null(2**31).is_sorted()  # (null last)
        expected = want["gap_reps"].sort(pl.col("rep_id").to_physical(), nulls_last=True)
        sums = ["log_gap_sum", "log_gap_squares"]
        assert_frame_equal(reps.drop(sums), expected.drop(sums), check_exact=True)
        assert_frame_equal(reps, expected, check_exact=False, rel_tol=1e-12)
        assert coded_practice_gaps(practice)["gap_reps"].equals(reps)
    assert unrepped["gap_days"].filter(hit).null_count() < hit.sum()  # follow-ups of no rep
    follow_ups = coded.with_row_index().filter(
        pl.col("gap_days").is_not_null(), pl.col("team").is_not_null()
    )
    row = follow_ups["index"][0]
    other = pl.when(pl.int_range(pl.len()) == row).then(None).otherwise(pl.col("team"))
    assert coded_practice_gaps(coded.with_columns(team=other)) is None  # the rep in two teams
    assert coded_practice_gaps(coded.with_columns(pl.col("rep_id").cast(pl.String))) is None
    none = coded_practice_gaps(coded.with_columns(gap_days=pl.lit(None, pl.Float64)))
    assert none["gap_reps"].height == 0
    assert none["gap_reps"].schema == practice_gaps(coded)["gap_reps"].collect().schema
