from __future__ import annotations

import datetime as dt

import polars as pl
from polars.testing import assert_frame_equal

from effortlens.anonymise import anonymise_frame, build_pseudonyms
from effortlens.filters import Filter, filter_frame

D = dt.date


def _facts() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "rep_id": ["a", "a", "b", "c"],
            "team": ["North", "North", "South", "North"],
            "segment": ["SMB", "SMB", "SMB", "Enterprise"],
            "activity_type": ["call", "email", "call", "demo"],
            "day": [D(2025, 1, 6), D(2025, 2, 1), D(2025, 1, 31), D(2025, 3, 1)],
        }
    )


def test_empty_filter_keeps_everything_and_is_everything():
    assert Filter().is_everything
    assert_frame_equal(filter_frame(_facts(), Filter()), _facts())


def test_filter_combines_fields_and_period_is_inclusive():
    flt = Filter(teams=("North",), start=D(2025, 1, 6), end=D(2025, 2, 1))
    assert filter_frame(_facts(), flt)["activity_type"].to_list() == ["call", "email"]


def test_filter_skips_columns_a_frame_lacks_and_honours_ignore():
    deals = pl.DataFrame({"rep_id": ["a", "b"], "created_ts": [dt.datetime(2025, 1, 7)] * 2})
    flt = Filter(reps=("a",), activity_types=("call",), start=D(2025, 1, 8))
    # created_ts is a datetime: compared by its date; 2025-01-07 is before the start
    assert filter_frame(deals, flt, day_column="created_ts").height == 0
    kept = filter_frame(_facts(), Filter(activity_types=("call",)), ignore=("activity_types",))
    assert kept.height == 4


def test_filter_does_not_mutate_input():
    facts = _facts()
    before = facts.clone()
    filter_frame(facts, Filter(teams=("South",)))
    assert_frame_equal(facts, before)


def test_previous_period_is_equally_long_and_just_before():
    flt = Filter(start=D(2025, 3, 1), end=D(2025, 3, 31), teams=("North",))
    prev = flt.previous_period()
    assert (prev.start, prev.end, prev.teams) == (D(2025, 1, 29), D(2025, 2, 28), ("North",))
    assert Filter().previous_period() is None


def test_describe_names_period_and_slices():
    text = Filter(start=D(2025, 1, 1), end=D(2025, 1, 31), teams=("North",)).describe()
    assert "2025-01-01" in text and "team North" in text
    assert Filter().describe() == "everything"


REPS = pl.DataFrame(
    {
        "rep_id": ["r1", "r2", "r3"],
        "rep_name": ["Ada Lovelace", "Bo Diddley", "Cy Twombly"],
        "manager_id": ["m1", "m1", None],
    }
)


def test_pseudonyms_hide_names_and_keep_ids_and_names_consistent():
    p = build_pseudonyms(reps=REPS, salt="x")
    out = anonymise_frame(REPS, p)
    assert out["rep_id"].to_list() == out["rep_name"].to_list()
    text = str(out.to_dicts())
    for real in ["Ada", "Bo Diddley", "Cy", "r1", "m1"]:
        assert real not in text
    assert out["manager_id"][2] is None  # nulls stay null
    assert out["rep_id"].n_unique() == 3


def test_pseudonyms_are_stable_and_depend_on_salt():
    a = anonymise_frame(REPS, build_pseudonyms(reps=REPS, salt="x"))
    b = anonymise_frame(REPS.reverse(), build_pseudonyms(reps=REPS.reverse(), salt="x"))
    assert_frame_equal(a, b.reverse())
    orders = {
        tuple(anonymise_frame(REPS, build_pseudonyms(reps=REPS, salt=s))["rep_id"])
        for s in ["a", "b", "c", "d", "e", "f"]
    }
    assert len(orders) > 1


def test_name_only_frames_and_accounts_are_replaced():
    p = build_pseudonyms(reps=REPS, accounts=pl.Series(["acc-9"]), salt="x")
    view = pl.DataFrame({"rep_name": ["Bo Diddley"], "account_id": ["acc-9"], "n": [3]})
    out = anonymise_frame(view, p)
    assert out["rep_name"][0] == p.lookup("rep")["r2"]
    assert out["account_id"][0] == "Account 1"
    unknown = anonymise_frame(pl.DataFrame({"contact_id": ["c-1"]}), p)
    assert unknown["contact_id"][0] == "Contact ?"
