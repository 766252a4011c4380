"""How many activities a load holds, read from a lazy roll-up without collecting it."""

from __future__ import annotations

import polars as pl

from effortlens.enrich import Enriched
from effortlens.settings import load_settings


def _lazy(daily: pl.DataFrame | pl.LazyFrame) -> Enriched:
    acts = pl.DataFrame({"rep_id": ["r1"] * 9}).lazy()
    return Enriched(acts, acts, daily, pl.DataFrame({"rep_id": ["r1"]}), {}, load_settings())


def test_a_lazy_roll_up_is_counted_without_collecting_it():
    rolled = pl.DataFrame({"day": [1, 2, 3], "activities": [4, 0, 5], "other": [1.0, 2.0, 3.0]})
    lazy = _lazy(rolled.lazy())
    assert lazy.n_activities == 9
    assert not lazy.daily_is_made  # the roll-up is still lazy: one column was summed
    made = _lazy(rolled)
    assert made.n_activities == 9 and made.daily_is_made
    lazy.daily  # noqa: B018  (collected by a reader)
    assert lazy.daily_is_made and lazy.n_activities == 9


def test_an_empty_lazy_roll_up_counts_none():
    empty = pl.DataFrame({"activities": []}, schema={"activities": pl.UInt32})
    assert _lazy(empty.lazy()).n_activities == 0
