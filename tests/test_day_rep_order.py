"""The (day, rep) order of the practice codes and the habit touch codes
(:func:`effortlens.touch_build.day_rep_order`): one packed integer key sorted by Polars
instead of ``numpy.lexsort``, the same permutation (ties in row order), and the lexsort
itself where the key would not fit."""

from __future__ import annotations

import numpy as np
import pytest

from effortlens.touch_build import day_rep_order


@pytest.mark.parametrize("rows", [0, 1, 2, 3, 1_000, 200_000])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64])
def test_the_lexsort_order(rows, dtype):
    rng = np.random.default_rng(rows)
    # partition-like: runs of sorted days, few reps (many ties), the reps' codes small
    day = np.concatenate([np.sort(rng.integers(19_000, 19_700, rows // 3)) for _ in range(3)])
    day = np.r_[day, rng.integers(19_000, 19_700, rows - len(day))].astype(np.int32)
    rep = rng.integers(0, min(np.iinfo(dtype).max, 6_000), rows).astype(dtype)
    order = day_rep_order(day, rep)
    np.testing.assert_array_equal(order, np.lexsort((rep, day)))


def test_keys_too_wide_take_the_lexsort():
    day = np.array([0, 2**40, 5, 5, 0], dtype=np.int64)
    rep = np.array([5, 1, 2**20, 3, 5], dtype=np.int64)
    np.testing.assert_array_equal(day_rep_order(day, rep), np.lexsort((rep, day)))
    negative = np.array([1, -1, 0])
    np.testing.assert_array_equal(
        day_rep_order(np.zeros(3, np.int32), negative), np.lexsort((negative, np.zeros(3)))
    )
