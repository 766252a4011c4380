"""The habit touch codes of Enum-coded touches (the partitioned build's), numbered by integer
keys, equal those of the text (the in-memory build's unique, sort and join): every file the
same bytes, the key tables the same values, nulls sorted last or left out (code -1)."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens import habits
from effortlens.habits import write_touch_codes


def _touches(seed: int, rows: int) -> pl.DataFrame:
    """Touch facts by day: text keys with nulls, int8 hours with nulls and -1, repeats."""
    rng = np.random.default_rng(seed)

    def pick(values: list, share_null: float) -> list:
        out = rng.choice(np.array(values, dtype=object), rows).tolist()
        return [None if rng.random() < share_null else v for v in out]

    days = np.sort(rng.integers(0, 60, rows))
    return pl.DataFrame(
        {
            "rep_id": pick([f"R{i:03d}" for i in range(40)], 0.05),
            "team": pick(["East", "West", "North"], 0.02),
            "segment": pick(["SMB", "Enterprise"], 0.0),
            "role": pick(["AE", "SDR"], 0.1),
            "day": [date(2025, 1, 6) + timedelta(days=int(d)) for d in days],
            "activity_type": pick(["call", "email", "demo"], 0.03),
            "weekday": pl.Series(pick(list(range(7)), 0.02), dtype=pl.Int8),
            "hour": pl.Series(pick([-1, *range(24)], 0.05), dtype=pl.Int8),
            "responded": rng.random(rows) < 0.3,
            "bin_order": pl.Series(pick(list(range(7)), 0.3), dtype=pl.Int8),
            "sequence_2": pick(["call → email", "email → call", "demo → demo"], 0.4),
            "sequence_3": pick(["call → call → email", "email → demo → call"], 0.5),
            "credit_timing": rng.random(rows),
            "credit_cadence": rng.random(rows),
        }
    )


def _as_enums(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(c).cast(pl.Enum(frame[c].drop_nulls().unique().sort()))
        for c, t in frame.schema.items()
        if t == pl.String
    )


def _files(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.npy"))
    }


@pytest.mark.parametrize(("seed", "rows"), [(1, 3_000), (2, 17)])
def test_enum_touches_give_the_codes_of_the_text(tmp_path, monkeypatch, seed, rows):
    text = _touches(seed, rows)
    numbered = []  # which codes the integer keys numbered (a spy)
    keys_of = habits._integer_key_code  # noqa: SLF001 - spied on

    def spy(*args, **kwargs):
        numbered.append(keys_of(*args, **kwargs))
        return numbered[-1]

    space = habits._KEY_SPACE  # noqa: SLF001 - narrowed for the reference
    monkeypatch.setattr(habits, "_KEY_SPACE", 1)  # the reference: every code by the join
    write_touch_codes(text, tmp_path / "joined")
    monkeypatch.setattr(habits, "_KEY_SPACE", space)
    monkeypatch.setattr(habits, "_integer_key_code", spy)
    write_touch_codes(text, tmp_path / "text")
    assert _files(tmp_path / "text") == _files(tmp_path / "joined") != {}
    # owner, cell, bin, type, sequence_2, sequence_3: text takes the join
    assert [n is not None for n in numbered] == [False, True, True, False, False, False]
    numbered.clear()
    assert write_touch_codes(_as_enums(text), tmp_path / "enum") == rows
    assert len(numbered) == 6 and all(n is not None for n in numbered)
    assert _files(tmp_path / "enum") == _files(tmp_path / "text") != {}
    for keys in sorted((tmp_path / "text").glob("*.keys.parquet")):
        got = pl.read_parquet(tmp_path / "enum" / keys.name)
        assert_frame_equal(got.with_columns(pl.col(pl.Enum).cast(pl.String)), pl.read_parquet(keys))
    codes = np.load(tmp_path / "enum" / "bin.npy")
    assert (codes == -1).any()  # a touch without a cadence bin: no key, code -1


def test_too_many_keys_take_the_join(tmp_path, monkeypatch):
    text = _touches(3, 500)
    write_touch_codes(text, tmp_path / "text")
    monkeypatch.setattr(habits, "_KEY_SPACE", 10)  # the owners' keys no longer fit
    write_touch_codes(_as_enums(text), tmp_path / "enum")
    assert _files(tmp_path / "enum") == _files(tmp_path / "text")


def test_integer_keys_past_int32_with_a_small_span_are_numbered_in_sort_order():
    far = 2**40
    part = pl.DataFrame(
        {"big": [far + 3, far + 1, None, far + 3, far + 1], "small": [2, 5, 5, None, 5]},
        schema={"big": pl.Int64, "small": pl.Int8},
    )
    code, keys = habits._integer_key_code(part, drop_null_first=False)  # noqa: SLF001
    want = part.unique().sort(["big", "small"], nulls_last=True)
    assert_frame_equal(keys, want)
    rows = keys.with_row_index("code")
    joined = part.join(
        rows, on=["big", "small"], how="left", nulls_equal=True, maintain_order="left"
    )
    assert code.tolist() == joined["code"].to_list()
