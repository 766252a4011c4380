"""Return on effort, trends with rolling means, no-impact effort and silent streaks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.roe import roe_by, roe_table, roe_trend, silent_streaks

MON = date(2024, 3, 4)


def _acts(rows: list[tuple]) -> pl.DataFrame:
    """Enriched-activity-like rows: (team, type, customer_facing, hours, weight, day)."""
    return pl.DataFrame(
        rows,
        schema={
            "team": pl.String,
            "activity_type": pl.String,
            "is_customer_facing": pl.Boolean,
            "hours": pl.Float64,
            "response_weight": pl.Float64,
            "day": pl.Date,
        },
        orient="row",
    ).with_columns(
        responded=pl.col("response_weight") > 0,
        week=pl.col("day").dt.truncate("1w"),
    )


ACTS = _acts(
    [
        ("A", "email", True, 0.1, 2.0, MON),
        ("A", "email", True, 0.1, 0.0, MON),
        ("A", "call", True, 0.3, 3.0, MON + timedelta(days=1)),
        ("A", "admin", False, 1.0, 0.0, MON),
        ("B", "call", True, 0.5, 0.0, MON + timedelta(days=14)),
    ]
)


def test_roe_by_slice_by_hand():
    got = roe_by(ACTS, by=["team"])
    expected = pl.DataFrame(
        {
            "team": ["A", "B"],
            "activities": pl.Series([3, 1], dtype=pl.UInt32),
            "hours": [0.5, 0.5],
            "responded": pl.Series([2, 0], dtype=pl.UInt32),
            "response_weight": [5.0, 0.0],
            "no_impact_hours": [0.1, 0.5],
            "response_rate": [2 / 3, 0.0],
            "roe_per_100": [500 / 3, 0.0],
            "roe_per_hour": [10.0, 0.0],
            "no_impact_activities": pl.Series([1, 1], dtype=pl.UInt32),
            "no_impact_share": [1 / 3, 1.0],
        }
    )
    assert_frame_equal(got, expected)


def test_roe_by_activity_type_period_and_overall():
    by_type = roe_by(ACTS, by=["activity_type"])
    assert by_type.select("activity_type", "activities", "roe_per_100").rows() == [
        ("call", 2, 150.0),
        ("email", 2, 100.0),
    ]  # admin is not customer-facing: no row
    by_month = roe_by(ACTS, by=["month"])
    assert by_month.select("month", "activities").rows() == [(date(2024, 3, 1), 4)]
    overall = roe_by(ACTS)
    assert overall.select("activities", "responded", "response_rate").rows() == [(4, 2, 0.5)]


def test_empty_slices_have_zero_counts_and_null_rates():
    nothing = ACTS.filter(pl.col("team") == "nobody")
    assert roe_by(nothing, by=["team"]).height == 0
    overall = roe_by(nothing)
    assert overall.select(
        "activities", "hours", "response_rate", "roe_per_100", "roe_per_hour", "no_impact_share"
    ).rows() == [(0, 0.0, None, None, None, None)]


def test_reps_with_no_activity_get_a_row():
    facts = ACTS.with_columns(
        rep_id=pl.when(pl.col("team") == "A").then(pl.lit("r1")).otherwise(pl.lit("r2"))
    )
    reps = pl.DataFrame({"rep_id": ["r1", "r2", "idle"], "team": ["A", "B", "B"]})
    got = roe_by(facts, by=["rep_id", "team"], reps=reps)
    assert got.select("rep_id", "activities", "response_rate").rows() == [
        ("idle", 0, None),
        ("r1", 3, 2 / 3),
        ("r2", 1, 0.0),
    ]
    with pytest.raises(ValueError, match="reps columns"):
        roe_by(facts, by=["activity_type"], reps=reps)


def test_trend_fills_quiet_weeks_and_rolls_ratio_of_sums():
    got = roe_trend(ACTS, period="week", by=["team"], window=2)
    weeks = [MON, MON + timedelta(weeks=1), MON + timedelta(weeks=2)]
    expected = pl.DataFrame(
        {
            "team": ["A"] * 3 + ["B"] * 3,
            "week": weeks * 2,
            "activities": pl.Series([3, 0, 0, 0, 0, 1], dtype=pl.UInt32),
            "response_rate": [2 / 3, None, None, None, None, 0.0],
            "rolling_activities": pl.Series([3, 3, 0, 0, 0, 1], dtype=pl.UInt32),
            "rolling_response_rate": [2 / 3, 2 / 3, None, None, None, 0.0],
            "rolling_roe_per_100": [500 / 3, 500 / 3, None, None, None, 0.0],
        }
    )
    assert_frame_equal(got.select(expected.columns), expected)


def test_trend_by_day_with_explicit_range_and_no_slices():
    got = roe_trend(
        ACTS, period="day", window=3, start=MON - timedelta(days=1), end=MON + timedelta(days=2)
    )
    assert got.select("day", "activities", "rolling_activities", "rolling_responded").rows() == [
        (MON - timedelta(days=1), 0, 0, 0),
        (MON, 2, 2, 1),
        (MON + timedelta(days=1), 1, 3, 2),
        (MON + timedelta(days=2), 0, 3, 2),
    ]
    assert roe_trend(ACTS.clear(), period="week").height == 0
    with pytest.raises(ValueError, match="period"):
        roe_trend(ACTS, period="fortnight")


@pytest.mark.parametrize(
    "by", [["rep_id"], ["team", "week"], ["activity_type"], ["day"], ["peer_group", "month"]]
)
def test_daily_and_activities_give_the_same_answer(by, hand_enriched):
    e = hand_enriched
    assert_frame_equal(roe_by(e.daily, by=by), roe_by(e.activities, by=by))
    assert_frame_equal(
        roe_trend(e.daily, by=by[:1] if by != ["day"] else []),
        roe_trend(e.activities, by=by[:1] if by != ["day"] else []),
    )


def test_roe_table_lists_every_rep_and_other_slices(hand_enriched):
    e = hand_enriched
    by_rep = roe_table(e, by="rep")
    assert by_rep.columns[:4] == ["rep_id", "rep_name", "team", "peer_group"]
    assert by_rep.select(
        "rep_id", "rep_name", "activities", "responded", "response_weight"
    ).rows() == [
        ("idle", "Cy", 0, 0, 0.0),
        ("r1", "Ann", 3, 2, 2.0),
        ("r2", "Bo", 2, 1, 3.0),
    ]
    assert roe_table(e, by="activity_type")["activity_type"].to_list() == [
        "call",
        "email",
        "meeting",
    ]
    with pytest.raises(ValueError, match="--by"):
        roe_table(e, by="colour")


def _touches(spec: list[tuple]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kind, contact, hours after t0, rep, customer_facing) with kind 'touch' or 'action'."""
    t0 = datetime(2024, 3, 4, 15, tzinfo=UTC)
    touch = [s for s in spec if s[0] == "touch"]
    act = [s for s in spec if s[0] == "action"]
    activities = pl.DataFrame(
        {
            "contact_id": [s[1] for s in touch],
            "ts": [t0 + timedelta(hours=s[2]) for s in touch],
            "rep_id": [s[3] for s in touch],
            "account_id": ["x"] * len(touch),
            "is_customer_facing": [s[4] for s in touch],
        }
    )
    actions = pl.DataFrame(
        {
            "contact_id": [s[1] for s in act],
            "ts": [t0 + timedelta(hours=s[2]) for s in act],
        }
    )
    return activities, actions


def test_silent_streaks_break_at_buyer_actions():
    activities, actions = _touches(
        [
            ("touch", "c1", 0, "r1", True),
            ("touch", "c1", 24, "r1", True),
            ("touch", "c1", 48, "r2", True),
            ("action", "c1", 48, None, None),  # same instant as the third touch: after it
            ("touch", "c1", 72, "r1", True),
            ("touch", "c1", 96, "r1", False),  # internal note: not a touch
            ("touch", "c1", 120, "r1", True),
            ("touch", "c2", 0, "r3", True),
            ("touch", "c2", 1, "r3", True),
            ("action", "c9", 0, None, None),
        ]
    )
    got = silent_streaks(activities, actions, min_touches=2)
    assert got.select(
        "contact_id", "rep_id", "touches", "reps", "days", "ended_by_response"
    ).rows() == [
        ("c1", "r2", 3, 2, 2.0, True),
        ("c1", "r1", 2, 1, 2.0, False),
        ("c2", "r3", 2, 1, 1 / 24, False),
    ]
    assert silent_streaks(activities, actions, min_touches=3)["touches"].to_list() == [3]
    before = (activities.clone(), actions.clone())
    silent_streaks(activities, actions.clear(), min_touches=6)
    assert_frame_equal(activities, before[0])
    assert_frame_equal(actions, before[1])


def test_inputs_not_mutated():
    frame = ACTS.clone()
    roe_by(ACTS, by=["team", "month"])
    roe_trend(ACTS, by=["team"])
    assert_frame_equal(ACTS, frame)


# -- planted truths and null data ---------------------------------------------------------------


def _rep_against_peers(e) -> pl.DataFrame:
    """Each rep's counts and ROE against their peer group without them, and a binomial z."""
    reps = roe_by(e.daily, by=["rep_id", "peer_group"])
    group = roe_by(e.daily, by=["peer_group"]).select(
        "peer_group",
        *(pl.col(c).alias(f"group_{c}") for c in ("activities", "responded", "response_weight")),
    )
    peers_n = pl.col("group_activities") - pl.col("activities")
    peer_rate = (pl.col("group_responded") - pl.col("responded")) / peers_n
    return reps.join(group, on="peer_group").with_columns(
        peer_roe_per_100=100
        * (pl.col("group_response_weight") - pl.col("response_weight"))
        / peers_n,
        peer_rate=peer_rate,
        z=(pl.col("response_rate") - peer_rate)
        / (peer_rate * (1 - peer_rate) / pl.col("activities")).sqrt(),
    )


def test_planted_deviants_earn_more_per_100_activities_than_their_peers(small_planted_enriched):
    enriched, truth = small_planted_enriched
    reps = _rep_against_peers(enriched)
    positive = reps.filter(pl.col("rep_id").is_in(truth["positive_deviants"]))
    negative = reps.filter(pl.col("rep_id").is_in(truth["negative_deviants"]))
    assert positive.height == len(truth["positive_deviants"]) > 0
    assert (positive["roe_per_100"] > 1.25 * positive["peer_roe_per_100"]).all(), positive
    assert (negative["roe_per_100"] < 0.8 * negative["peer_roe_per_100"]).all(), negative
    # and they are the reps furthest above their peers
    top = reps.sort("z", descending=True).head(len(truth["positive_deviants"]))["rep_id"]
    assert set(top) == set(truth["positive_deviants"])


def test_null_data_rep_rates_stay_within_binomial_noise(small_null_enriched):
    reps = _rep_against_peers(small_null_enriched.enriched).filter(pl.col("activities") >= 100)
    assert reps.height >= 40
    # 99.8% limits: about 0.1 of 60 reps expected outside by chance
    assert (reps["z"].abs() > 3.09).sum() <= 1, reps.sort("z")
    assert reps["z"].std() < 1.3


def test_stored_streaks_read_back_with_their_stored_days(small_planted_enriched):
    """A reader of stored streaks makes ``days`` again from the first and last touch instead
    of decoding it: the very values stored, for every streak, read by position or filtered."""
    from effortlens.roe import STREAK_COLUMNS, streak_facts, streaks_at, streaks_from_facts

    enriched = small_planted_enriched.enriched
    stored = streak_facts(enriched.activities, enriched.actions, enriched.reps)
    assert stored["days"].n_unique() > 100  # fractional days of every length
    as_stored = stored.select(STREAK_COLUMNS)
    assert_frame_equal(streaks_from_facts(stored, min_touches=2), as_stored, check_exact=True)
    every = pl.Series(range(stored.height), dtype=pl.UInt32)
    assert_frame_equal(
        streaks_at(stored.lazy(), every, group_rows=1_000), as_stored, check_exact=True
    )


def test_stored_streaks_read_from_their_file_give_the_days_written(
    small_planted_enriched, tmp_path
):
    """Written as a build writes them and read back, the streaks' ``days`` made again from
    their first and last touch are the values in the file, and those of the expression the
    build always wrote (a literal copy here: a change to either side fails)."""
    from effortlens.roe import (
        STREAK_COLUMNS,
        sort_streak_facts,
        streak_facts,
        streaks_at,
        write_streak_facts,
    )

    enriched = small_planted_enriched.enriched
    stored = sort_streak_facts(streak_facts(enriched.activities, enriched.actions, enriched.reps))
    write_streak_facts(stored, tmp_path / "streaks.parquet")
    on_file = pl.read_parquet(tmp_path / "streaks.parquet")
    written = ((pl.col("last_ts") - pl.col("first_ts")).dt.total_seconds() / 86_400).alias("days")
    assert on_file["days"].equals(on_file.select(written).to_series())
    every = pl.Series(range(on_file.height), dtype=pl.UInt32)
    read = streaks_at(pl.scan_parquet(tmp_path / "streaks.parquet"), every, group_rows=1_000)
    assert_frame_equal(read, on_file.select(STREAK_COLUMNS), check_exact=True)


def test_streaks_read_by_position_equal_the_filtered_and_sorted_streaks():
    """A page finds its longest streaks in the load's index and reads only those rows: the
    same rows, in the same order, as filtering and sorting every stored streak."""
    from effortlens.filters import Filter, filter_frame
    from effortlens.roe import (
        streak_index,
        streak_positions,
        streak_slices,
        streaks_at,
        streaks_from_facts,
    )

    stored = (
        _streak_rows(
            500,
            contact=lambda i: f"c{i:04d}",
            accounts=37,
            reps=(7, 11),
            teams=3,
            lengths=(13, 9),
            first_hours=lambda i: i,
            days=3,
            ended_every=3,
            days_spread=60,
        )
        .sort(["touches", "contact_id", "first_ts"], descending=[True, False, False])
        .lazy()
    )  # as a build stores them: longest first
    index = streak_index(stored, min_touches=4)
    assert index[0].height == stored.filter(pl.col("touches") >= 4).collect().height
    for flt in (
        Filter(),
        Filter(teams=("T1",)),
        Filter(reps=("r3",)),
        Filter(start=date(2024, 1, 20), end=date(2024, 2, 10)),
        Filter(teams=("T2",), end=date(2024, 1, 30)),
    ):
        for touches, top in ((4, 50), (7, 1000)):
            expected = streaks_from_facts(filter_frame(stored, flt), min_touches=touches, top=top)
            positions = streak_positions(index, flt, min_touches=touches, top=top)
            for group_rows in (1, 7, 10_000):  # one slice per row, some, one for all
                got = streaks_at(stored, positions, group_rows=group_rows)
                assert_frame_equal(got, expected)
            assert expected.height > 0
    assert streak_slices(pl.Series([1, 2, 9]), group_rows=4) == [(1, 2), (9, 1)]
    assert streaks_at(stored, pl.Series([], dtype=pl.UInt32), group_rows=4).height == 0


def test_stored_streaks_are_written_in_the_build_order_and_read_back_by_position(
    tmp_path, monkeypatch
):
    """The build's streaks: :func:`sort_streak_facts` puts rows of any order (a build in
    parts) in the stored order, and the file :func:`write_streak_facts` writes, in row groups
    of ``STREAK_ROW_GROUP`` rows, gives the same rows by position as in memory."""
    import pyarrow.parquet as pq

    import effortlens.roe as roe
    from effortlens.filters import Filter, filter_frame
    from effortlens.roe import (
        sort_streak_facts,
        streak_index,
        streak_positions,
        streaks_at,
        streaks_from_facts,
        write_streak_facts,
    )

    n = 400
    rows = _streak_rows(
        n,
        contact=lambda i: f"c{(i * 17) % 97:03d}",
        accounts=23,
        reps=(5, 13),
        teams=4,
        lengths=(11, 8),
        first_hours=lambda i: (i * 29) % n,
        days=2,
        ended_every=4,
        days_spread=45,
    )  # repeated contacts
    ordered = sort_streak_facts(rows.sample(fraction=1.0, shuffle=True, seed=3).lazy())
    key = ["touches", "contact_id", "first_ts"]
    assert ordered.select(key).equals(rows.sort(key, descending=[True, False, False]).select(key))
    assert ordered["touches"].is_sorted(descending=True)
    halves = [ordered.slice(0, n // 2), ordered.slice(n // 2)]  # parts in either order
    assert sort_streak_facts(pl.concat(halves[::-1])).equals(ordered)

    monkeypatch.setattr(roe, "STREAK_ROW_GROUP", 64)
    path = tmp_path / "built" / "streaks.parquet"
    write_streak_facts(ordered, path)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == -(-n // 64)
    assert meta.row_group(0).column(0).compression == "LZ4"
    stored = pl.scan_parquet(path)
    assert stored.collect().equals(ordered)
    index = streak_index(stored, min_touches=4)
    for flt in (Filter(), Filter(teams=("T1",)), Filter(reps=("r4",), end=date(2024, 1, 30))):
        expected = streaks_from_facts(filter_frame(stored, flt), min_touches=4, top=40)
        positions = streak_positions(index, flt, min_touches=4, top=40)
        assert_frame_equal(streaks_at(stored, positions, group_rows=64), expected)
        assert expected.height > 0


def _streak_rows(
    n, *, contact, accounts, reps, teams, lengths, first_hours, days, ended_every, days_spread
) -> pl.DataFrame:
    """``n`` stored streak facts (:func:`effortlens.roe.streak_facts`' columns) spread over
    contacts, accounts, reps (``reps`` = (stride, count)), teams, lengths and days."""
    rep_stride, rep_count = reps
    start = datetime(2024, 1, 1, tzinfo=UTC)
    step, spread = lengths
    return pl.DataFrame(
        {
            "contact_id": [contact(i) for i in range(n)],
            "account_id": [f"a{i % accounts}" for i in range(n)],
            "rep_id": [f"r{(i * rep_stride) % rep_count}" for i in range(n)],
            "touches": [2 + (i * step) % spread for i in range(n)],
            "reps": [1] * n,
            "first_ts": [start + timedelta(hours=first_hours(i)) for i in range(n)],
            "last_ts": [start + timedelta(hours=i, days=days) for i in range(n)],
            "days": [float(days)] * n,
            "ended_by_response": [i % ended_every == 0 for i in range(n)],
            "day": [date(2024, 1, 1) + timedelta(days=i % days_spread) for i in range(n)],
            "team": [f"T{(i * rep_stride) % rep_count % teams}" for i in range(n)],
            "segment": ["S"] * n,
            "role": ["AE"] * n,
        },
        schema_overrides={"touches": pl.UInt32, "reps": pl.UInt32},
    )


def test_streaks_read_from_the_rep_ordered_copy_equal_the_filtered_streaks(tmp_path, monkeypatch):
    """A rep's or a team's longest streaks read from the build's rep-ordered copy (a rep's
    lie together there) are the rows, in the order, of filtering and sorting every stored
    streak: for a rep, a team, several reps, a rep without streaks, with periods."""
    import effortlens.roe as roe
    from effortlens.filters import Filter, filter_frame
    from effortlens.roe import (
        rep_ordered_streaks,
        streak_index,
        streaks_from_facts,
        streaks_read,
        write_rep_ordered_streaks,
        write_streak_facts,
    )

    rows = _streak_rows(
        900,
        contact=lambda i: f"c{(i * 31) % 211:03d}",
        accounts=41,
        reps=(7, 23),
        teams=5,
        lengths=(11, 14),
        first_hours=lambda i: (i * 13) % 900,
        days=4,
        ended_every=3,
        days_spread=90,
    ).sort(["touches", "contact_id", "first_ts"], descending=[True, False, False])
    monkeypatch.setattr(roe, "STREAK_BY_REP_GROUP", 16)
    write_streak_facts(rows, tmp_path / "streaks.parquet")
    write_rep_ordered_streaks(rep_ordered_streaks(rows), tmp_path / "by_rep.parquet")
    stored = pl.scan_parquet(tmp_path / "streaks.parquet")
    by_rep = pl.scan_parquet(tmp_path / "by_rep.parquet")
    ordered = by_rep.collect()
    assert ordered.height == rows.filter(pl.col("touches") >= 4).height
    assert ordered["rep_id"].n_unique() == 23 and not ordered["position"].is_sorted()
    # each row is the stored streak at its position
    at = rows.select(ordered.columns[1:])[ordered["position"].to_list()]
    assert_frame_equal(ordered.drop("position"), at, check_exact=True)
    index = streak_index(stored, min_touches=4, by_rep=by_rep)
    assert "by_rep" in index[0].columns
    nowhere = stored.filter(pl.lit(False))  # the stored streaks unread: the copy's rows only
    team_reps = tuple(rows.filter(pl.col("team") == "T2")["rep_id"].unique().sort())
    for flt in (
        Filter(reps=("r3",)),
        Filter(teams=("T2",)),
        Filter(reps=team_reps[:3]),  # several reps of a team
        Filter(reps=("r3", "r17", "r8")),
        Filter(reps=("r3",), start=date(2024, 1, 20), end=date(2024, 2, 20)),
        Filter(teams=("T1",), end=date(2024, 1, 30)),
        Filter(reps=("r404",)),  # a rep without streaks
    ):
        for touches, top in ((4, 1000), (4, 10), (9, 50)):
            expected = streaks_from_facts(filter_frame(stored, flt), min_touches=touches, top=top)
            # a rep's or a team's 1,000 longest: the copy's rows only (the stored unread)
            only_copy = top == 1000 and touches == 4
            got = streaks_read(
                nowhere if only_copy else stored,
                index,
                flt,
                min_touches=touches,
                top=top,
                group_rows=64,
                sliced_groups=5,
                by_rep=by_rep,
            )
            assert_frame_equal(got, expected, check_exact=True)
            assert expected.height > 0 or flt.reps == ("r404",)
            # and read from the stored streaks (no copy): the same
            alone = streaks_read(
                stored, index, flt, min_touches=touches, top=top, group_rows=64, sliced_groups=99
            )
            assert_frame_equal(alone, expected, check_exact=True)
    # everything: the longest lie at the top of the stored streaks, read there
    expected = streaks_from_facts(stored, min_touches=4, top=40)
    got = streaks_read(
        stored, index, Filter(), min_touches=4, top=40, group_rows=64, sliced_groups=5,
        by_rep=by_rep.filter(pl.lit(False)),
    )  # fmt: skip
    assert_frame_equal(got, expected, check_exact=True)
    # written a range of teams at a time (a partitioned build), a streak without a team too
    teamless = rows.with_columns(
        team=pl.when(pl.col("rep_id") == "r5").then(None).otherwise(pl.col("team"))
    )
    whole = rep_ordered_streaks(teamless)
    assert whole["rep_id"].tail(1).item() == "r5"  # no team: last
    batches = [["T0", "T1"], ["T2"], ["T3", "T4", None]]
    parts = pl.concat(rep_ordered_streaks(teamless, teams=t) for t in batches)
    assert_frame_equal(parts, whole, check_exact=True)
    assert rep_ordered_streaks(teamless, teams=["T9"]).height == 0
    # a copy without every indexed streak is not used
    assert "by_rep" not in streak_index(stored, by_rep=by_rep.head(10))[0].columns
    assert "by_rep" not in streak_index(stored, min_touches=3, by_rep=by_rep)[0].columns


def _tied_touches(seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Touches on few contacts at whole hours (many at one instant), some without a contact
    or a rep or not customer-facing, and buyer actions at a touch's very instant or between,
    some on contacts never touched."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n, m = 4_000, 1_200
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    hours = rng.integers(0, 30 * 24, n)
    ts = [t0 + timedelta(hours=int(h)) for h in hours]
    contacts = rng.integers(0, 60, n)
    acts = pl.DataFrame(
        {
            "contact_id": [None if rng.random() < 0.1 else f"c{c}" for c in contacts],
            "ts": ts,
            "rep_id": [None if rng.random() < 0.05 else f"r{r}" for r in rng.integers(0, 4, n)],
            "account_id": [f"a{c % 7}" for c in contacts],
            "is_customer_facing": rng.random(n) < 0.9,
        }
    ).with_columns(day=pl.col("ts").dt.date())
    at = rng.integers(0, n, m)
    shift = np.where(rng.random(m) < 0.3, 0, rng.integers(1, 100, m))
    actions = pl.DataFrame(
        {
            "contact_id": ["z" if rng.random() < 0.05 else acts["contact_id"][int(i)] for i in at],
            "ts": [t0 + timedelta(hours=int(hours[i] + s)) for i, s in zip(at, shift, strict=True)],
        }
    )
    reps = pl.DataFrame(
        {
            "rep_id": ["r0", "r1", "r2"],
            "team": ["A", "B", None],
            "segment": ["SMB"] * 3,
            "role": ["AE", "SDR", "AE"],
        }
    )
    return acts, actions, reps


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_streak_facts_are_the_silent_streaks_on_loads_full_of_ties(seed):
    """The build's streaks (found by integer sorts) are :func:`silent_streaks`' runs of two
    or more with the last rep's columns, in :func:`sort_streak_facts`' order; a contact's
    touches at one instant leave its last touch undecided there, so the last touch's
    columns are compared where the last instant holds one touch, and are one of them else."""
    from effortlens.roe import sort_streak_facts, streak_facts

    acts, actions, reps = _tied_touches(seed)
    got = streak_facts(acts, actions, reps)
    want = sort_streak_facts(
        silent_streaks(acts, actions, min_touches=2, last=("day",))
        .lazy()
        .join(reps.lazy(), on="rep_id", how="left")
    )
    last = ["rep_id", "day", "team", "segment", "role"]
    assert got.height > 100 and got.columns == want.columns
    assert_frame_equal(got.drop(last), want.drop(last))
    touched = acts.filter(pl.col("is_customer_facing") & pl.col("contact_id").is_not_null())
    alone = touched.group_by("contact_id", "ts").agg(pl.len().alias("n"), pl.col("rep_id"))
    lone = got.join(
        alone,
        left_on=["contact_id", "last_ts"],
        right_on=["contact_id", "ts"],
        how="left",
        maintain_order="left",
    )
    assert lone["n"].min() == 1 < lone["n"].max()  # both kinds are there
    single = lone["n"] == 1
    assert_frame_equal(
        got.filter(single.to_list()), want.filter(single.to_list()), check_exact=True
    )
    # where tied, the last rep is one of those touching at that instant
    assert all(
        r in reps for r, reps in lone.filter(~single).select("rep_id", "rep_id_right").rows()
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_streaks_by_binary_search_are_those_of_one_sort_of_touches_and_actions(
    seed, monkeypatch, small_planted_enriched
):
    """The streaks found by a binary search of each touch among its contact's actions equal,
    to the bit, those found by one sort of the touches and actions together (the way kept for
    keys past 64 bits, the build's way before), on loads full of ties and the planted sample."""
    from effortlens import touch_build
    from effortlens.roe import streak_facts

    enriched = small_planted_enriched[0]
    for acts, actions, reps in (
        _tied_touches(seed),
        (enriched.activities, enriched.actions, enriched.reps),
    ):
        got = streak_facts(acts, actions, reps)
        with monkeypatch.context() as patched:  # no time range small enough: one sort
            patched.setattr(touch_build, "time_steps", lambda t: (t, 2**63))
            want = streak_facts(acts, actions, reps)
        assert got.height > 100 and got["ended_by_response"].any()
        assert_frame_equal(got, want, check_exact=True)


def test_streak_order_by_one_integer_key_or_three_is_the_same():
    import numpy as np

    from effortlens.roe import _event_order  # noqa: PLC2701 - both of its ways

    rng = np.random.default_rng(4)
    kind = np.arange(3_000) >= 2_000
    few, many = rng.integers(0, 30, 3_000), rng.integers(0, 2**31, 3_000)
    for contact, ts in (
        (few, rng.integers(0, 20, 3_000)),  # one key fits
        (many, rng.integers(0, 2**40, 3_000)),  # it does not: by time, then contacts by radix
        (few, rng.integers(-(2**62), 2**62, 3_000)),  # not even the time twice: lexsort
    ):
        contact[::7] = contact[1]  # a repeated contact, ties in time
        ts[::5] = ts[0]
        want = np.lexsort((kind, ts, contact))
        assert _event_order(contact, ts, 2_000).tolist() == want.tolist()
