"""The partitioned build's streak files (partitioned._ordered_streaks: parts by ranges of
lengths, then by ranges of teams) are the whole sorted as the in-memory build sorts it
(roe.sort_streak_facts, roe.rep_ordered_streaks), on streaks with ties, nulls, one or several
partitions, one or many ranges."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from effortlens import partitioned
from effortlens.roe import rep_ordered_streaks, sort_streak_facts


def _streaks(seed: int, n: int, *, contacts: list[str | None]) -> pl.DataFrame:
    """Streak facts with ties in length, contact and first touch (never all three: a
    contact's streaks lie in one partition, as a build's), null teams and reps, and contacts
    of different lengths."""
    rng = np.random.default_rng(seed)
    contact = rng.integers(0, len(contacts), n)
    touches = rng.integers(2, 9, n)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    # a contact's streaks of one length start at distinct times; other contacts share them
    ts = [start + dt.timedelta(hours=int(h)) for h in rng.integers(0, 40, n)]
    frame = pl.DataFrame(
        {
            "contact_id": pl.Series([contacts[c] for c in contact], dtype=pl.String),
            "account_id": [f"A{c % 7}" for c in contact],
            "rep_id": pl.Series(
                [None if r == 0 else f"R{r}" for r in rng.integers(0, 6, n)], dtype=pl.String
            ),
            "touches": pl.Series(touches, dtype=pl.UInt32),
            "reps": pl.Series(rng.integers(1, 3, n), dtype=pl.UInt32),
            "first_ts": pl.Series(ts, dtype=pl.Datetime("us", "UTC")),
        }
    ).unique(["contact_id", "touches", "first_ts"], keep="first", maintain_order=True)
    teams = ["T b", "T a", None, "T c"]
    return frame.with_columns(
        last_ts=pl.col("first_ts") + pl.duration(hours=pl.col("touches").cast(pl.Int64)),
        days=pl.col("touches").cast(pl.Float64) / 24,
        ended_by_response=pl.col("reps") == 2,
        day=pl.col("first_ts").dt.date(),
        team=pl.Series([teams[i] for i in rng.integers(0, 4, frame.height)], dtype=pl.String),
        segment=pl.lit("SMB"),
        role=pl.lit("SDR"),
    )


def _files(folder: Path, frames: list[pl.DataFrame]) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i, frame in enumerate(frames):
        paths.append(folder / f"part-{i:05d}.parquet")
        frame.write_parquet(paths[-1], row_group_size=50)
    return paths


CONTACTS = [f"CON{i}" for i in range(0, 300, 7)] + ["CON", "CON1", "CON10", "CON100"]
SHORT = [f"C{i}" for i in range(40)]
WIDE = [f"{chr(65 + i % 26)}{i:03d}-{i * 7919:08d}" for i in range(60)]  # 13 bytes, no prefix


@pytest.mark.parametrize(
    ("contacts", "parts", "rows_per_part"),
    [
        (CONTACTS, 3, 40),  # many ranges of lengths and of teams
        (CONTACTS + [None], 1, 10**6),  # one partition, one range; null contacts
        (SHORT, 4, 1),  # one length (or team) per part
        (WIDE, 2, 100),  # long contacts
    ],
)
def test_parts_in_name_order_are_the_sorted_whole(tmp_path, contacts, parts, rows_per_part):
    every = _streaks(parts, 400 * parts, contacts=contacts)
    place = pl.col("contact_id").rank("dense").fill_null(0) % parts  # a contact's partition
    frames = [every.filter(place == i) for i in range(parts)]
    whole = pl.concat(frames)
    files = _files(tmp_path / "in", frames)
    rows = partitioned._ordered_streaks(files, tmp_path / "out", rows_per_part=rows_per_part)  # noqa: SLF001
    assert len(rows) > (4 if rows_per_part < 100 else 1)
    stored = pl.read_parquet(tmp_path / "out" / "streaks.parquet")
    assert stored.equals(sort_streak_facts(whole))
    by_rep = pl.read_parquet(tmp_path / "out" / "streaks_by_rep.parquet")
    assert by_rep.equals(rep_ordered_streaks(stored))


@pytest.mark.parametrize(
    ("contacts", "by_key"),
    [
        (CONTACTS, (True, True)),  # a shared prefix, ids 3-6 bytes: a prefix sorts first
        (SHORT + ["C", "C9999999"], (True, False)),  # 7 bytes past the prefix: 56 bits
        (["same"] * 5, (True, True)),  # one contact: nothing past the prefix
        (["CON1é", "CON1e", "CON1f", "CON1"], (False, False)),  # not ASCII: by text
        (["CON1\x00", "CON1", "CON10"], (False, False)),  # a NUL byte: by text
        (WIDE, (False, False)),  # 13 bytes past no prefix: by text
    ],
)
def test_streaks_sorted_by_integer_keys_are_sorted_as_by_text(contacts, by_key):
    """_sorted_streaks (the contact's bytes past the shared prefix in a 64-bit key beside the
    length) puts streaks in sort_streak_facts' order, ties of length and contact by first
    touch, whatever the ids; the key is made only where it keeps the text's order (lengths
    over 3 bits, then over 20: a 7-byte id's key no longer fits)."""
    sorted_streaks = partitioned._sorted_streaks  # noqa: SLF001
    key_of = partitioned._streak_key  # noqa: SLF001
    rng = np.random.default_rng(len(contacts))
    for touches, keyed in zip(((2, 9), (2, 2**20)), by_key, strict=True):
        frame = _streaks(3, 600, contacts=contacts)
        length = pl.Series(rng.integers(*touches, frame.height), dtype=pl.UInt32)
        # never alike in all three keys (their order is not decided), as a build's
        frame = frame.with_columns(touches=length).unique(
            ["contact_id", "touches", "first_ts"], keep="first", maintain_order=True
        )
        frame = pl.concat([frame.head(250), frame.tail(frame.height - 250)], rechunk=False)
        assert sorted_streaks(frame).equals(sort_streak_facts(frame))
        assert (key_of(frame) is not None) == keyed


def test_parts_written_as_arrow_ipc_give_the_files_of_parquet_parts(tmp_path):
    # pass 1 may write its streaks as uncompressed Arrow IPC (``.arrow``), some partitions or
    # all: the same streak files, byte for byte
    every = _streaks(3, 1_200, contacts=CONTACTS + [None])
    place = pl.col("contact_id").rank("dense").fill_null(0) % 3
    frames = [every.filter(place == i) for i in range(3)]
    written = {}
    for how in ("parquet", "some arrow", "all arrow"):
        files = _files(tmp_path / how / "in", frames)
        for path in files[1:] if how == "some arrow" else files if how == "all arrow" else []:
            pl.read_parquet(path).write_ipc(path.with_suffix(".arrow"), compression="uncompressed")
            path.unlink()
        files = partitioned._scratch_files(tmp_path / how / "in")  # noqa: SLF001
        assert len(files) == 3 and (how == "parquet") == all(f.suffix == ".parquet" for f in files)
        partitioned._ordered_streaks(files, tmp_path / how / "out", rows_per_part=40)  # noqa: SLF001
        out = tmp_path / how / "out"
        files = [f for f in out.rglob("*.parquet") if f.is_file()]
        written[how] = {str(f.relative_to(out)): f.read_bytes() for f in files}
    assert len(written["parquet"]) > 4
    assert written["parquet"] == written["some arrow"] == written["all arrow"]
