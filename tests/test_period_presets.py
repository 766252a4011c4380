"""The practice cells and gap runs of the page's period presets (issue 13): a build writes,
for "Last 52 weeks" and "Last 26 weeks", each rep's counts and follow-ups over the window the
page's period control computes, and a comparison over exactly that window sums reps' rows as
one without a period does: the same table as counting the period's touches, in both builds,
and a build from before them (or another window) still counts the touches."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import effortlens.deviance.differs as differs
import effortlens.facts as facts
from effortlens.deviance import rep_deviance
from effortlens.deviance.differs import (
    PRACTICE_PERIOD_DAYS,
    PRACTICE_PERIODS,
    practice_codes_of,
    practice_period_of,
    what_differs_coded,
    what_differs_preset,
)
from effortlens.facts import open_build
from effortlens.filters import Filter, filter_enriched
from effortlens.settings import load_settings

#: The presets' labels on the page (effortlens_widgets.controls.PERIODS).
LABELS = {364: "Last 52 weeks", 182: "Last 26 weeks"}


@pytest.fixture(scope="module")
def page(tiny_planted):
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app

    return positive_deviance_app(data_dir=tiny_planted)


def _page_filter(page, label: str) -> Filter:
    page.filter_bar.set_period(label)
    try:
        return page.filter_bar.current_filter()
    finally:
        page.filter_bar.set_period("All data")


def test_the_build_s_windows_are_the_page_s_periods(page):
    from effortlens_widgets.controls import PERIODS

    enriched = page.state.enriched
    assert set(LABELS) == set(PRACTICE_PERIOD_DAYS) <= set(PERIODS.values())
    for days in PRACTICE_PERIOD_DAYS:
        flt = _page_filter(page, LABELS[days])
        assert PERIODS[LABELS[days]] == days and flt.start is not None
        period = practice_period_of(enriched, flt)
        assert period is not None, days
        assert (period.start, period.end) == (flt.start, flt.end)
        # a day off at either end is another period: the touches are counted
        for other in (
            dataclasses.replace(flt, start=flt.start + dt_day()),
            dataclasses.replace(flt, end=flt.end - dt_day()),
            dataclasses.replace(flt, start=flt.start - dt_day(), end=flt.end - dt_day()),
        ):
            assert practice_period_of(enriched, other) is None
    # the 13 and 4 weeks are not written: counted from the codes
    for label in ("Last 13 weeks", "Last 4 weeks"):
        assert practice_period_of(enriched, _page_filter(page, label)) is None


def dt_day():
    import datetime as dt

    return dt.timedelta(days=1)


def _selections(enriched, flt):
    reps = enriched.reps
    yield "everything", flt, {}
    for column, field in (("team", "teams"), ("segment", "segments"), ("role", "roles")):
        for value in reps[column].drop_nulls().unique().sort()[:2]:
            yield f"{column} {value}", dataclasses.replace(flt, **{field: (value,)}), {}
    rep = reps["rep_id"].sort()[0]
    yield "a rep filtered", dataclasses.replace(flt, reps=(rep,)), {}
    yield "negative", flt, {"direction": "negative"}
    yield "min support 1", flt, {"min_support": 1}


def test_every_selection_over_a_preset_equals_counting_the_period_s_touches(page):
    enriched = page.state.enriched
    codes = practice_codes_of(enriched)
    assert codes is not None
    compared = 0
    for days in PRACTICE_PERIOD_DAYS:
        period = _page_filter(page, LABELS[days])
        for name, flt, kwargs in _selections(enriched, period):
            deviance = rep_deviance(filter_enriched(enriched, flt))
            picks = [None]
            if deviance.height:  # a rep picked in the funnel plot: the first and a peer
                picks += [deviance["rep_id"].sort()[:1].to_list()]
                picks += [deviance["rep_id"].sort()[-1:].to_list()]
            for rep_ids in picks:
                fast = what_differs_preset(enriched, deviance, flt, rep_ids=rep_ids, **kwargs)
                slow = what_differs_coded(codes, deviance, flt, rep_ids=rep_ids, **kwargs)
                assert fast is not None, (days, name)
                assert_frame_equal(fast, slow, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)
                compared += fast.height
                medians = pl.col("feature") == "median_days_between_touches"
                assert fast.filter(medians)["deviant_value"].to_list() == (
                    slow.filter(medians)["deviant_value"].to_list()
                )
    assert compared > 50  # tables with rows were compared, not only empty ones
    # activity types: only the events can say (None, as the codes say)
    flt = dataclasses.replace(period, activity_types=("call",))
    assert what_differs_preset(enriched, rep_deviance(enriched), flt) is None


def test_the_page_takes_the_preset_s_cells_and_the_same_table(page, monkeypatch):
    view = page.views[0]
    calls: list[int] = []
    of = differs.practice_period_of

    def counted(enriched, flt):
        found = of(enriched, flt)
        calls.append(found is not None)
        return found

    monkeypatch.setattr(differs, "practice_period_of", counted)
    page.filter_bar.set_period("Last 52 weeks")
    try:
        deviance = rep_deviance(filter_enriched(page.state.enriched, page.state.filter))
        fast = view._what_differs(page.state.view, deviance)  # noqa: SLF001
        assert calls and calls[-1]
        monkeypatch.setattr(differs, "practice_period_of", lambda enriched, flt: None)
        slow = view._what_differs(page.state.view, deviance)  # noqa: SLF001
    finally:
        page.filter_bar.set_period("All data")
    assert_frame_equal(fast, slow, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


def test_a_build_from_before_them_counts_the_touches(tiny_planted, tmp_path):
    built = open_build(tiny_planted, cache_dir=tmp_path / "cache")
    enriched = built.enriched
    last = differs.build_last_day(built.path)
    start, end = differs.preset_window(last, 364)
    flt = Filter(start=start, end=end)
    assert practice_period_of(enriched, flt) is not None
    shutil.rmtree(built.path / PRACTICE_PERIODS)
    facts._READ_ONCE.clear()  # noqa: SLF001 - the process had read them
    assert practice_period_of(enriched, flt) is None
    assert what_differs_preset(enriched, rep_deviance(enriched), flt) is None


def _settings(partition_rows: int, above: int = 20_000_000):
    s = load_settings()
    limits = dataclasses.replace(
        s.limits, partition_rows=partition_rows, partition_above_rows=above
    )
    return dataclasses.replace(s, limits=limits)


@pytest.mark.parametrize("above", [20_000_000, 10_000])
def test_the_partitioned_build_writes_the_same_preset_files(tiny_planted, tmp_path, above):
    settings = _settings(3_000, above=above)
    whole = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "a", partitioned=False)
    parts = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    one, other = whole.path / PRACTICE_PERIODS, parts.path / PRACTICE_PERIODS
    practice_parts = list((parts.path / "practice.parquet").glob("*.parquet"))
    assert len(practice_parts) > 1 if above == 10_000 else not practice_parts  # read part by part
    files = sorted(str(p.relative_to(one)) for p in one.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(other)) for p in other.rglob("*") if p.is_file())
    assert len(files) == 8 * len(PRACTICE_PERIOD_DAYS)
    for relative in files:
        a, b = one / relative, other / relative
        if relative.endswith(".json"):
            assert json.loads(a.read_text()) == json.loads(b.read_text())
        elif relative.endswith(".npy"):
            x, y = np.load(a), np.load(b)
            assert x.dtype == y.dtype and np.array_equal(x, y), relative
        else:
            x, y = pl.read_parquet(a), pl.read_parquet(b)
            assert x.height > 0 and x.schema == y.schema, relative
            keys = [c for c in x.columns if x.schema[c] != pl.Float64]
            # a rep's rows in one order (their order within a rep is not decided)
            x, y = x.sort(keys, nulls_last=True), y.sort(keys, nulls_last=True)
            assert_frame_equal(x, y, check_exact=False, rel_tol=1e-12)
    # and the period ends as the page's: the build's last day with data
    for days in PRACTICE_PERIOD_DAYS:
        period = json.loads((one / str(days) / "period.json").read_text())
        start, end = differs.preset_window(differs.build_last_day(whole.path), days)
        assert (period["start"], period["end"]) == (start.isoformat(), end.isoformat())


def test_gaps_sorted_by_rank_are_sorted_gaps():
    from effortlens.deviance.differs import (
        _sorted_gaps_of,  # noqa: PLC2701 - the fast sort
        sorted_gaps,
    )

    rng = np.random.default_rng(5)
    n = 5_000
    ids = np.array([f"R{i:04d}" for i in rng.permutation(300)] + ["r1", "R", "Rb", "é"])
    for seconds in (
        rng.integers(0, 2**31, n),  # the whole 32-bit range, ties
        rng.integers(0, 5, n),
        np.r_[rng.integers(0, 100, n - 1), 2**31],  # past Int32: the text sort
        np.r_[rng.integers(0, 100, n - 1), -1],
    ):
        frame = pl.DataFrame(
            {"rep_id": rng.choice(ids, n), "gap_seconds": seconds.astype(np.int64)}
        ).with_columns(pl.col("rep_id").cast(pl.Categorical))
        assert_frame_equal(_sorted_gaps_of(frame), sorted_gaps(frame))
    with_null = frame.with_columns(pl.when(pl.col("gap_seconds") > 50).then("rep_id"))
    assert_frame_equal(_sorted_gaps_of(with_null), sorted_gaps(with_null))


def _period_files(folder) -> dict:
    """Every file of a practice periods folder: Parquet frames sorted by their keys (a rep's
    rows in one order), arrays, the period's JSON."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = str(path.relative_to(folder))
        if relative.endswith(".json"):
            out[relative] = json.loads(path.read_text())
        elif relative.endswith(".npy"):
            out[relative] = np.load(path)
        else:
            frame = pl.read_parquet(path)
            keys = [c for c in frame.columns if frame.schema[c] != pl.Float64]
            out[relative] = frame.sort(keys, nulls_last=True)
    return out


def _assert_same_periods(one, other) -> None:
    a, b = _period_files(one), _period_files(other)
    assert sorted(a) == sorted(b)
    for relative, x in a.items():
        y = b[relative]
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), relative
        elif isinstance(x, pl.DataFrame):
            assert x.schema == y.schema, relative
            assert_frame_equal(x, y, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)
        else:
            assert x == y, relative


@pytest.mark.parametrize("data", ["tiny_planted", "tiny_null"])
def test_the_presets_counted_from_the_codes_equal_the_facts_frames(data, request, tmp_path):
    """The integer counts of the codes (differs._coded_periods) against the Polars group-bys
    of the practice facts they were made from, planted differences or none."""
    built = open_build(request.getfixturevalue(data), cache_dir=tmp_path / "cache")
    folder = built.path
    codes = differs.PracticeCodes(folder / facts.PRACTICE_CODES)
    last = differs.build_last_day(folder)
    parts = [pl.scan_parquet(folder / facts.AGGREGATES_LAYOUT["practice"])]
    frames = differs.write_practice_periods(parts, tmp_path / "frames", last)
    counted = differs.write_practice_periods(parts, tmp_path / "codes", last, codes=codes)
    assert frames == counted and all(frames.values())
    _assert_same_periods(tmp_path / "frames", tmp_path / "codes")
    _assert_same_periods(tmp_path / "codes", folder / PRACTICE_PERIODS)  # what the build wrote
    # the rows of each file: a rep's together, in rep order (no group-by's order)
    for days in PRACTICE_PERIOD_DAYS:
        shares = pl.read_parquet(tmp_path / "codes" / str(days) / "shares.parquet")
        assert shares["rep_id"].is_sorted()
        feature = shares.select(pl.col("feature").rle_id().over("rep_id"))["feature"]
        assert feature.max() == 3  # the four features' runs of each rep
        assert shares.select(pl.col("feature").n_unique().over("rep_id")).to_series().max() == 4


def _edge_facts(seed: int) -> pl.DataFrame:
    """Practice facts with what a period must decide: previous touches before the window,
    follow-ups either side of the two days (and exactly two days), types, weekdays and hours
    missing, reps without a segment, a type only ever previous, touches without a type."""
    import datetime as dt

    rng = np.random.default_rng(seed)
    n = 6_000
    first = dt.date(2024, 1, 1)
    day = np.sort(rng.integers(0, 500, n))
    rep = rng.integers(0, 40, n)
    has_previous = rng.random(n) < 0.7
    gap = rng.choice([0, 3_600, 2 * 86_400, 2 * 86_400 + 1, 9 * 86_400, 400 * 86_400], n)

    def some(values, missing: float) -> list:
        return [None if rng.random() < missing else v for v in values.tolist()]

    def dates(days) -> list:
        return [None if d is None else first + dt.timedelta(days=d) for d in days]

    previous_day = (day - rng.integers(0, 300, n)).tolist()
    return pl.DataFrame(
        {
            "rep_id": [f"R{r:03d}" for r in rep],
            "team": [f"T{r % 3}" for r in rep],
            "segment": [None if r < 5 else "S" for r in rep],
            "role": "AE",
            "day": pl.Series(dates(day.tolist()), dtype=pl.Date),
            "activity_type": some(rng.choice(["call", "email", "meeting"], n), 0.02),
            "weekday": pl.Series(some(rng.integers(1, 8, n), 0.03), dtype=pl.Int8),
            "hour": pl.Series(some(rng.integers(0, 24, n), 0.03), dtype=pl.Int8),
            "previous_type": [
                t if p else None
                for t, p in zip(
                    some(rng.choice(["call", "email", "demo"], n), 0.02),
                    has_previous.tolist(),
                    strict=True,
                )
            ],
            "gap_days": pl.Series(
                [g / 86_400 if p else None for g, p in zip(gap, has_previous, strict=True)],
                dtype=pl.Float64,
            ),
            "previous_day": pl.Series(
                dates(d if p else None for d, p in zip(previous_day, has_previous, strict=True)),
                dtype=pl.Date,
            ),
        }
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_the_presets_counted_from_the_codes_decide_the_edges_as_the_frames(seed, tmp_path):
    import datetime as dt

    from effortlens.touch_build import write_practice_codes

    facts_frame = _edge_facts(seed)
    path = tmp_path / "practice.parquet"
    facts_frame.write_parquet(path)
    write_practice_codes(facts_frame, tmp_path / "practice_codes")
    codes = differs.PracticeCodes(tmp_path / "practice_codes")
    last = dt.date(2024, 1, 1) + dt.timedelta(days=499)
    parts = [pl.scan_parquet(path)]
    for presets in (PRACTICE_PERIOD_DAYS, (364, 182, 30, 1), (1_000,)):
        one, other = tmp_path / f"frames{presets}", tmp_path / f"codes{presets}"
        frames = differs.write_practice_periods(parts, one, last, presets=presets)
        counted = differs.write_practice_periods(parts, other, last, presets=presets, codes=codes)
        assert frames == counted
        _assert_same_periods(one, other)
    # a follow-up without a rep: the frames count them (the same files)
    no_rep = facts_frame.with_columns(pl.when(pl.col("rep_id") != "R007").then(pl.col("rep_id")))
    no_rep.write_parquet(tmp_path / "no_rep.parquet")
    parts = [pl.scan_parquet(tmp_path / "no_rep.parquet")]
    write_practice_codes(no_rep, tmp_path / "codes_no_rep")
    codes = differs.PracticeCodes(tmp_path / "codes_no_rep")
    assert differs._coded_periods(codes, {364: differs.preset_window(last, 364)}) is None  # noqa: SLF001
    frames = differs.write_practice_periods(parts, tmp_path / "f_no_rep", last)
    counted = differs.write_practice_periods(parts, tmp_path / "c_no_rep", last, codes=codes)
    assert frames == counted
    _assert_same_periods(tmp_path / "f_no_rep", tmp_path / "c_no_rep")


def test_a_build_without_seller_activities_completes_without_periods(tmp_path):
    """Deals only (no activities, so no touch and no rep in the practice codes): the build
    completes (the counts by rep had no width: a ZeroDivisionError in every such build,
    caught by the CLI's empty-result tests) and, as before the counts, writes no period
    (no touch in any window: the page has nothing to read there)."""
    data = tmp_path / "deals"
    data.mkdir()
    (data / "reps.csv").write_text("rep_id,rep_name\nr1,Ann\n")
    (data / "opportunities.csv").write_text(
        "opportunity_id,account_id,rep_id,created_ts,outcome\no1,a1,r1,2024-01-02,open\n"
    )
    folder = open_build(data, cache_dir=tmp_path / "cache").path
    codes = differs.PracticeCodes(folder / facts.PRACTICE_CODES)
    assert codes.reps.height == 0
    last = differs.build_last_day(folder)
    windows = {d: w for d in PRACTICE_PERIOD_DAYS if (w := differs.preset_window(last, d))}
    assert differs._coded_periods(codes, windows) is None  # noqa: SLF001
    assert not (folder / PRACTICE_PERIODS).exists()
    parts = [pl.scan_parquet(folder / facts.AGGREGATES_LAYOUT["practice"])]
    assert differs.write_practice_periods(parts, tmp_path / "codes", last, codes=codes) == {}
