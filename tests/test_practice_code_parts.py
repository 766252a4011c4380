"""The practice codes of a partitioned build merged from each partition's codes
(touch_build.practice_part_codes / merge_practice_codes) are the files write_practice_codes
writes from the practice facts, byte for byte."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from effortlens import partitioned
from effortlens.touch_build import (
    build_practice_facts,
    merge_practice_codes,
    practice_part_codes,
    write_practice_codes,
)

practice_codes = partitioned._practice_codes  # noqa: SLF001
practice_codes_of_part = partitioned._practice_part_codes  # noqa: SLF001
spelled_enums = partitioned._spelled_enums  # noqa: SLF001

SCHEMA = {
    **{c: pl.String for c in ("rep_id", "team", "segment", "role")},
    "day": pl.Date,
    "activity_type": pl.String,
    "weekday": pl.Int8,
    "hour": pl.Int8,
    "previous_type": pl.String,
    "gap_days": pl.Float64,
    "previous_day": pl.Date,
}


def _odd_part(*, huge_gap: bool) -> pl.DataFrame:
    """Touches the samples lack: without a day (naming a rep and a type no dated touch
    does), without a rep, a rep of another partition in another team (two tuples: the
    smallest is kept), a type only as the previous one, and a gap past 2**31 seconds."""
    row = {"rep_id": "R001", "team": "ZZ team", "segment": "SMB", "role": "AE"}
    row |= {"day": dt.date(2025, 1, 6), "activity_type": "call", "weekday": 0, "hour": 9}
    row |= {"previous_type": "email", "gap_days": 0.25, "previous_day": dt.date(2025, 1, 5)}
    rows = [
        row,
        {**row, "day": None, "rep_id": "nobody dated", "activity_type": "fax"},
        {**row, "rep_id": None, "team": None, "hour": None, "previous_type": None},
        {**row, "previous_type": "carrier pigeon", "gap_days": None, "previous_day": None},
        {**row, "day": dt.date(2024, 12, 30), "weekday": None},
        {**row, "gap_days": 30_000.0 if huge_gap else 3.5},
    ]
    return pl.DataFrame(rows, schema=SCHEMA)


def _parts(activities: pl.DataFrame, *, huge_gap: bool) -> list[pl.DataFrame]:
    """Practice facts of the touches dealt into partitions by contact, as pass 1 makes them
    (text as ``Enum`` codes of each partition's values), one as text, one empty."""
    contact = pl.col("contact_id").hash(seed=3) % 3
    coded = [build_practice_facts(activities.filter(contact == k), coded=True) for k in range(3)]
    empty = build_practice_facts(activities.head(0), coded=True)
    return [coded[0], _odd_part(huge_gap=huge_gap), coded[1], empty, coded[2]]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_merged_practice_codes_are_the_codes_of_the_facts_byte_for_byte(
    tiny_planted_enriched, tmp_path
):
    activities = tiny_planted_enriched[0].activities
    for huge_gap in (False, True):
        parts = _parts(activities, huge_gap=huge_gap)
        assert any(isinstance(t, pl.Enum) for t in parts[0].dtypes)  # coded, as pass 1's
        facts = pl.concat([spelled_enums(p) for p in parts])  # as the part files read
        want, got = tmp_path / f"want{huge_gap}", tmp_path / f"got{huge_gap}"
        n = write_practice_codes(facts.lazy(), want)
        folders = [tmp_path / f"part{huge_gap}{k}" for k in range(len(parts))]
        written = [practice_part_codes(p, f) for p, f in zip(parts, folders, strict=True)]
        assert sum(written) == n == facts["day"].count() > 1_000
        assert merge_practice_codes(folders, got) == n
        assert _files(got) == _files(want)
        keys = pl.read_parquet(got / "rep.keys.parquet")
        assert keys.filter(pl.col("rep_id") == "R001")["team"].to_list() != ["ZZ team"]
        assert keys["rep_id"].null_count() == 1  # the rep of no one, last
        assert "carrier pigeon" in pl.read_parquet(got / "type.keys.parquet").to_series()
        assert "fax" not in pl.read_parquet(got / "type.keys.parquet").to_series()
        wide = (got / "gap_seconds.npy").read_bytes()[:128]
        assert (b"<i8" in wide) is huge_gap


def test_the_build_step_merges_when_every_partition_wrote_its_codes_else_reads_the_facts(
    tiny_planted_enriched, tmp_path
):
    from effortlens.facts import AGGREGATES_LAYOUT, PRACTICE_CODES

    parts = _parts(tiny_planted_enriched[0].activities, huge_gap=False)
    folder, scratch = tmp_path / "build", tmp_path / "scratch"
    for k, part in enumerate(parts):
        name = f"part-{k:05d}.parquet"
        target = folder / AGGREGATES_LAYOUT["practice"] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        spelled_enums(part).write_parquet(target)
        practice_codes_of_part(part, scratch, name)
    merged = practice_codes(folder, scratch)
    files = _files(folder / PRACTICE_CODES)
    (folder / PRACTICE_CODES / "day.npy").unlink()
    # a partition without its codes (an old scratch): the facts are read instead
    (scratch / PRACTICE_CODES / "part-00002" / "done").unlink()
    assert practice_codes(folder, scratch) == merged
    assert _files(folder / PRACTICE_CODES) == files


PRACTICE_SIDE = (
    "_practice_cells",
    "_practice_gap_facts",
    "_practice_codes",
    "_practice_periods",
    "_ordered_streaks",
)


def _touch_codes_together(together: dict[str, int]) -> int:
    """How many calls the habit touch codes step was told run with it: its call is
    ``_touch_codes_of_ranges`` when the day order wrote the codes (every touch with a day),
    else ``_touch_codes``; exactly one of them runs."""
    (name,) = {"_touch_codes", "_touch_codes_of_ranges"} & together.keys()
    return together[name]


def test_the_practice_side_starts_no_step_while_the_day_order_runs(
    tiny_planted, tmp_path, monkeypatch
):
    """The day order runs a process in each slot: the practice side (beside the fit and the
    habit touch codes) starts none of its steps between its start and end.
    The files are those of the view facts written one step at a time, in process."""
    import dataclasses
    import shutil
    import threading
    import time

    from effortlens.facts import open_build
    from effortlens.settings import load_settings

    s = load_settings()
    limits = dataclasses.replace(s.limits, partition_rows=3_000, partition_above_rows=3_000)
    settings = dataclasses.replace(s, limits=limits)
    built = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    folders = {}
    for how in ("children", "in process"):
        folders[how] = tmp_path / how.replace(" ", "_") / "build"
        shutil.copytree(built.path, folders[how])
    calls: list[tuple[str, float, float]] = []
    lock = threading.Lock()
    in_child = partitioned.Children._in_child  # noqa: SLF001

    together: dict[str, int] = {}

    def traced(self, what, function, args, kwargs, **options):
        together[function.__name__] = options.get("together", 1)
        start = time.perf_counter()
        try:
            return in_child(self, what, function, args, kwargs, **options)
        finally:
            with lock:
                calls.append((function.__name__, start, time.perf_counter()))

    monkeypatch.setattr(partitioned.Children, "_in_child", traced)
    closed: list[float] = []
    close = partitioned.Children.close

    def closing(self):
        closed.append(time.perf_counter())
        close(self)

    monkeypatch.setattr(partitioned.Children, "close", closing)
    rows = partitioned.write_view_facts(folders["children"], settings=settings, isolate=True)
    # the day order's two ranges (it credits pass 1's touches: no pass 2 since 0591558)
    wide = [c for c in calls if c[0] == "_day_ordered_touches"]
    assert len(wide) >= 2 and {c[0] for c in calls} >= set(PRACTICE_SIDE)
    first, last = min(c[1] for c in wide), max(c[2] for c in wide)
    # the idle workers (pass 1's, then the fit's: a reused worker keeps its peak) end before
    # the fit and the practice side start, and once the fit is done
    (fit,) = [c for c in calls if c[0] == "_fit_touch_credits"]
    starts = [c[1] for c in calls if c[0] in (*PRACTICE_SIDE, "_fit_touch_credits")]
    assert any(max(c[2] for c in calls if c[0] == "_view_part") <= t <= min(starts) for t in closed)
    assert any(fit[2] <= t <= first for t in closed)
    # the habit touch codes take one core: the practice side's next steps start beside them
    assert _touch_codes_together(together) == 2
    for name, start, _ in calls:
        if name in PRACTICE_SIDE:
            assert not first <= start < last, (name, start - first, last - first)
    alone = partitioned.write_view_facts(folders["in process"], settings=settings, isolate=False)
    assert rows == alone
    for relative in rows:  # the practice side's files (a group-by's rows in any order)
        if relative.startswith(("practice", "streaks")) and relative.endswith(".parquet"):
            a, b = (pl.read_parquet(folders[how] / relative) for how in folders)
            assert_frame_equal(a.sort(a.columns), b.sort(b.columns), rel_tol=1e-12)
        elif relative.startswith("practice"):
            want = (folders["in process"] / relative).read_bytes()
            assert (folders["children"] / relative).read_bytes() == want, relative


def test_the_habit_touch_codes_take_every_core_once_the_practice_side_is_done(
    tiny_planted, tmp_path, monkeypatch
):
    """The practice side runs beside the fit; when it has no step left by the time the habit
    touch codes start, they get the cores of both slots (at 100M they ran 40 s on one thread
    while the other core idled)."""
    import dataclasses
    import threading
    import time

    from effortlens.facts import open_build
    from effortlens.settings import load_settings

    s = load_settings()
    limits = dataclasses.replace(s.limits, partition_rows=3_000, partition_above_rows=3_000)
    settings = dataclasses.replace(s, limits=limits)
    built = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    in_child = partitioned.Children._in_child  # noqa: SLF001
    together: dict[str, int] = {}
    side_done: list[str] = []
    lock = threading.Lock()

    def traced(self, what, function, args, kwargs, **options):
        together[function.__name__] = options.get("together", 1)
        if function.__name__ == "_fit_touch_credits":  # a long fit: the side ends beside it
            deadline = time.monotonic() + 120
            while len(side_done) < len(PRACTICE_SIDE) and time.monotonic() < deadline:
                time.sleep(0.05)
        try:
            return in_child(self, what, function, args, kwargs, **options)
        finally:
            if function.__name__ in PRACTICE_SIDE:
                with lock:
                    side_done.append(function.__name__)

    monkeypatch.setattr(partitioned.Children, "_in_child", traced)
    partitioned.write_view_facts(built.path, settings=settings, isolate=True)
    assert sorted(side_done) == sorted(PRACTICE_SIDE)
    assert _touch_codes_together(together) == 1


def _gap_files(folder: Path) -> dict[str, bytes | pl.DataFrame]:
    # the reps' sums as frames: a rep's parts are added by a group-by, in any order
    return {
        str(p.relative_to(folder)): pl.read_parquet(p) if "gap_reps" in p.name else p.read_bytes()
        for p in sorted(folder.rglob("*.*"))
    }


def _same_gap_files(a: dict, b: dict) -> bool:
    for name in a.keys() | b.keys():
        if isinstance(a.get(name), pl.DataFrame) and isinstance(b.get(name), pl.DataFrame):
            assert_frame_equal(a[name], b[name], rel_tol=1e-12)
        elif a.get(name) != b.get(name):
            return False
    return True


def test_the_practice_gaps_read_pass_ones_files_as_ipc_with_enum_reps_as_parquet(tmp_path):
    """Pass 1 may write its follow-ups as uncompressed Arrow IPC, rep_id an Enum of the
    partition's own reps: the gap facts, runs and rep sums are those of its Parquet files
    with text reps, byte for byte; also when a follow-up without a rep sends them down the
    sort by text."""
    import numpy as np

    from effortlens.deviance import practice_gaps
    from effortlens.facts import AGGREGATES_LAYOUT, PRACTICE_GAP_RUNS

    rng = np.random.default_rng(3)
    written = {}
    for how in ("parquet", "arrow", "parquet without rep", "arrow without rep"):
        scratch, folder = tmp_path / how / "scratch", tmp_path / how / "build"
        for k in range(3):
            n = 400
            reps = [f"R{r:03d}" for r in rng.permutation(60)[:20]]  # each its own reps
            practice = pl.DataFrame(
                {
                    "rep_id": rng.choice(reps, n),
                    "team": "T",
                    "segment": "S",
                    "role": "AE",
                    "gap_days": np.where(rng.random(n) < 0.2, np.nan, rng.exponential(3, n)),
                }
            ).with_columns(pl.col("gap_days").fill_nan(None))
            if how.endswith("without rep") and k == 1:
                practice = practice.with_columns(
                    rep_id=pl.when(pl.int_range(n) == 7).then(None).otherwise("rep_id")
                )
            for kind, frame in practice_gaps(practice).items():
                out = scratch / kind / f"part-{k:05d}"
                out.parent.mkdir(parents=True, exist_ok=True)
                frame = frame.collect()
                if how.startswith("arrow") and kind == "gaps":
                    enum = pl.Enum(frame["rep_id"].drop_nulls().unique().sort())
                    frame = frame.with_columns(pl.col("rep_id").cast(enum))
                    frame.write_ipc(out.with_suffix(".arrow"), compression="uncompressed")
                else:
                    frame.write_parquet(out.with_suffix(".parquet"))
        rng = np.random.default_rng(3)  # the same follow-ups for each way
        rows = partitioned._practice_gap_facts(scratch, folder, slice_rows=100)  # noqa: SLF001
        assert rows[AGGREGATES_LAYOUT["practice_gaps"]] > 0
        assert (folder / PRACTICE_GAP_RUNS / "seconds.npy").is_file()
        written[how] = (rows, _gap_files(folder))
    for how in ("", " without rep"):
        (rows, files), (want_rows, want) = written[f"arrow{how}"], written[f"parquet{how}"]
        assert rows == want_rows and files.keys() == want.keys()
        assert _same_gap_files(files, want)
    assert written["parquet"][0] != written["parquet without rep"][0]  # one rep less


def test_the_fit_takes_every_core_once_the_practice_side_is_done(tmp_path, monkeypatch):
    """The fit asks at each step how many threads to use: ``threads`` while the file
    ``wide`` is missing (the practice side runs beside it), every core once it exists, and
    every core from the start without ``wide`` (nothing beside it)."""
    import os

    from effortlens import touch_build

    asked = {}

    def fitted(parts, **options):
        asked["threads"] = options["threads"]
        return iter(())

    monkeypatch.setattr(touch_build, "fitted_credits", fitted)
    (tmp_path / "em").mkdir()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    wide = tmp_path / "em" / "wide"
    fit = partitioned._fit_touch_credits  # noqa: SLF001
    fit(tmp_path, [], [], exposure_scale=1.0, iterations=3, wide=wide, threads=1)
    lanes = asked["threads"]
    assert lanes() == 1
    wide.touch()
    assert lanes() == cores
    fit(tmp_path, [], [], exposure_scale=1.0, iterations=3, threads=1)
    assert asked["threads"]() == cores


def test_ranked_gap_keys_are_the_gap_keys_sorted(tmp_path):
    """The follow-ups' keys made with each rep's rank as its part is read (the parts' Enum
    categories, in any order and naming reps without a follow-up) name the same rep and
    seconds, in the same order, as the keys numbered by appearance and renumbered; a part
    without an Enum, a follow-up without a rep or past 31 bits: None (the other way)."""
    import numpy as np

    from effortlens.deviance.differs import (
        _GapKeys,  # noqa: PLC2701 - the way it replaces
        ranked_gap_keys,
    )

    rng = np.random.default_rng(8)
    frames = []
    for k in range(4):
        n = 3_000 if k != 2 else 0
        reps = [f"R{r:03d}" for r in rng.permutation(90)[:30]]  # each part its own, unsorted
        frame = pl.DataFrame(
            {
                "rep_id": pl.Series(rng.choice(reps[:25], n), dtype=pl.Enum(reps)),
                "gap_seconds": rng.choice([0, 1, 86_400, 2**31 - 1], n).astype(np.float64),
            }
        )
        frames.append(frame)
    held = _GapKeys()
    for frame in frames:
        held.add(frame)
    want_keys, want_names = held.sorted_keys()
    keys, names = ranked_gap_keys([f.lazy() for f in frames])
    assert len(keys) == sum(f.height for f in frames) and np.all(np.diff(keys) >= 0)
    assert names.len() > want_names.len()  # reps without a follow-up named too
    assert keys.dtype == want_keys.dtype == np.int64
    spelled = [
        pl.DataFrame({"rep_id": by.gather(pl.Series(k >> 32)), "gap_seconds": k & 0xFFFFFFFF})
        for k, by in ((keys, names), (want_keys, want_names))
    ]
    assert spelled[0].equals(spelled[1])
    # the files written from either are the same bytes
    from effortlens.deviance.differs import write_gap_key_runs, write_sorted_gap_keys

    for k, by, name in ((keys, names, "a"), (want_keys, want_names, "b")):
        write_sorted_gap_keys(k, by, tmp_path / name / "gaps.parquet", row_group_size=1000)
        write_gap_key_runs(k, by, tmp_path / name / "runs")
    for path in sorted((tmp_path / "a").rglob("*.*")):
        other = tmp_path / "b" / path.relative_to(tmp_path / "a")
        assert path.read_bytes() == other.read_bytes(), path.name
    text = frames[0].with_columns(pl.col("rep_id").cast(pl.String))
    no_rep = frames[1].with_columns(pl.when(pl.int_range(pl.len()) != 5).then("rep_id"))
    too_far = frames[3].with_columns(pl.lit(2.0**31).alias("gap_seconds"))
    for odd in (text, no_rep, too_far):
        assert ranked_gap_keys([frames[0].lazy(), odd.lazy()]) is None
    assert ranked_gap_keys([]) is not None and len(ranked_gap_keys([])[0]) == 0


def test_codes_merged_a_day_at_a_time_are_the_codes_of_the_facts(
    tiny_planted_enriched, tmp_path, monkeypatch
):
    """Partitions whose rows are by day (as pass 1 writes them) are merged a day at a time
    (touch_build._merged_by_day), one that is not by the stable sort of every row: the same
    bytes as write_practice_codes of the facts either way."""
    import effortlens.touch_build as touch_build

    by_day = touch_build._merged_by_day  # noqa: SLF001
    calls = []
    monkeypatch.setattr(
        touch_build, "_merged_by_day", lambda *a, **k: calls.append(1) or by_day(*a, **k)
    )
    activities = tiny_planted_enriched[0].activities
    for in_day_order in (True, False):
        parts = _parts(activities, huge_gap=in_day_order)
        if in_day_order:  # the odd part's touches by day, as the facts are written
            parts[1] = parts[1].sort("day", maintain_order=True)
        facts = pl.concat([spelled_enums(p) for p in parts])
        want, got = tmp_path / f"want{in_day_order}", tmp_path / f"got{in_day_order}"
        n = write_practice_codes(facts.lazy(), want)
        folders = [tmp_path / f"part{in_day_order}{k}" for k in range(len(parts))]
        for part, folder in zip(parts, folders, strict=True):
            practice_part_codes(part, folder)
        calls.clear()
        assert merge_practice_codes(folders, got) == n > 1_000
        assert calls == ([1] if in_day_order else [])
        assert _files(got) == _files(want)
    # no touch with a day at all: the same empty files
    empty = [build_practice_facts(activities.head(0), coded=True)] * 2
    folders = [tmp_path / f"empty{k}" for k in range(2)]
    for part, folder in zip(empty, folders, strict=True):
        practice_part_codes(part, folder)
    write_practice_codes(pl.concat([spelled_enums(p) for p in empty]).lazy(), tmp_path / "ew")
    assert merge_practice_codes(folders, tmp_path / "eg") == 0
    assert _files(tmp_path / "eg") == _files(tmp_path / "ew")


def test_codes_merged_a_day_at_a_time_with_stray_dates_far_apart(
    tiny_planted_enriched, tmp_path, monkeypatch
):
    """A touch dated 0001-01-01 and one 9999-12-31 (the loader reads both as valid times):
    merged a day at a time over the days the partitions hold (not the ~3.65M calendar days
    between: H8 measured 12 CPU s and 1.5 GB for them), the facts' bytes."""
    import effortlens.touch_build as touch_build

    by_day = touch_build._merged_by_day  # noqa: SLF001
    calls = []
    monkeypatch.setattr(
        touch_build, "_merged_by_day", lambda *a, **k: calls.append(1) or by_day(*a, **k)
    )
    activities = tiny_planted_enriched[0].activities
    parts = _parts(activities, huge_gap=False)
    stray = _odd_part(huge_gap=False).head(1)
    far = [dt.date(1, 1, 1), dt.date(9999, 12, 31)]
    parts[1] = pl.concat([stray.with_columns(day=pl.lit(d)) for d in far] + [parts[1]])
    parts[1] = parts[1].sort("day", maintain_order=True)
    facts = pl.concat([spelled_enums(p) for p in parts])
    n = write_practice_codes(facts.lazy(), tmp_path / "want")
    folders = [tmp_path / f"part{k}" for k in range(len(parts))]
    for part, folder in zip(parts, folders, strict=True):
        practice_part_codes(part, folder)
    assert merge_practice_codes(folders, tmp_path / "got") == n
    assert calls == [1]
    assert _files(tmp_path / "got") == _files(tmp_path / "want")


def _cell_parts(scratch: Path, rng, *, shuffled: bool) -> None:
    """Pass 1's practice cells of three partitions (shares, sequences and gap_reps per rep,
    the same reps in several partitions, a rep without an id): the same rows each time,
    ``shuffled`` within each file. A rep's ``log_gap_sum`` is 1e16, 1 and -1e16 in the
    partitions' order: 0 added in that order, 1 in some others."""
    import numpy as np

    reps = [None, "R1", "R2", "R3", "R10"]
    for k in range(3):
        shares = pl.DataFrame(
            {
                "rep_id": [r for r in reps for _ in range(6)],
                "feature": ["weekday_share", "activity_type_share", "hour_share"] * 10,
                "level": [f"L{j % 4}" for j in range(30)],
                "n": rng.integers(1, 50, 30).astype(float),
            }
        ).unique(["rep_id", "feature", "level"], keep="first", maintain_order=True)
        sequences = pl.DataFrame(
            {
                "rep_id": [r for r in reps for _ in range(4)],
                "previous_type": ["call", "email", None, "call"] * 5,
                "activity_type": ["email", "email", "call", "call"] * 5,
                "n": rng.integers(1, 50, 20).astype(float),
            }
        )
        gap_reps = pl.DataFrame(
            {
                "rep_id": reps,
                "team": ["T", "T", None, "U", "U"],
                "follow_ups": pl.Series(rng.integers(1, 9, 5), dtype=pl.UInt32),
                "log_gap_sum": [1e16, 1.0, -1e16][k] * np.ones(5),
                "log_gap_squares": rng.random(5),
            }
        )
        for kind, frame in (("shares", shares), ("sequences", sequences), ("gap_reps", gap_reps)):
            if shuffled:
                frame = frame.sample(fraction=1.0, shuffle=True, seed=k)
            out = scratch / kind / f"part-{k:05d}.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(out)


def test_practice_cells_come_in_one_order_with_their_sums_added_in_partition_order(tmp_path):
    """The practice cells (shares, sequences) come by rep, none first, then by their other
    keys, and the reps' gap sums are their partitions' rows added in partition order: the
    same bytes however the rows lie in the partitions' files (a group-by's order and float
    sums differed from one build to the next)."""
    import numpy as np

    from effortlens.deviance import practice_gaps
    from effortlens.facts import AGGREGATES_LAYOUT

    written = []
    for shuffled in (False, True, True):
        scratch, folder = tmp_path / f"{len(written)}" / "scratch", tmp_path / f"{len(written)}"
        _cell_parts(scratch, np.random.default_rng(5), shuffled=shuffled)
        practice = pl.DataFrame(
            {"rep_id": ["R1", "R2"], "team": "T", "segment": "S", "role": "AE", "gap_days": 1.5}
        )
        gaps = practice_gaps(practice)["gaps"].collect()
        gaps.write_parquet((scratch / "gaps").mkdir() or scratch / "gaps" / "part-00000.parquet")
        rows = partitioned._practice_cells(scratch, folder)  # noqa: SLF001
        rows |= partitioned._practice_gap_facts(scratch, folder, slice_rows=10)  # noqa: SLF001
        cells = ("shares", "sequences", "gap_reps")
        files = {c: (folder / AGGREGATES_LAYOUT[f"practice_{c}"]).read_bytes() for c in cells}
        written.append((rows, files))
    assert written[0] == written[1] == written[2]
    for cell in ("shares", "sequences"):
        frame = pl.read_parquet(folder / AGGREGATES_LAYOUT[f"practice_{cell}"])
        keys = ["rep_id", *(c for c in frame.columns if c not in ("rep_id", "n"))]
        assert frame.equals(frame.sort(keys, nulls_last=False))
        assert (
            frame["rep_id"][0] is None
            and frame.height == rows[AGGREGATES_LAYOUT[f"practice_{cell}"]]
        )
        parts = pl.read_parquet(tmp_path / "0" / "scratch" / cell)
        summed = parts.group_by(keys).agg(pl.col("n").sum())
        assert_frame_equal(frame, summed.select(frame.columns), check_row_order=False)
    reps = pl.read_parquet(folder / AGGREGATES_LAYOUT["practice_gap_reps"])
    assert reps["rep_id"].to_list() == [None, "R1", "R10", "R2", "R3"]
    assert reps["log_gap_sum"].to_list() == [0.0] * 5  # (1e16 + 1) - 1e16, in that order
    parts = pl.read_parquet(tmp_path / "0" / "scratch" / "gap_reps")
    follow_ups = parts.group_by("rep_id").agg(pl.col("follow_ups").sum()).sort("rep_id")
    assert reps["follow_ups"].to_list() == follow_ups["follow_ups"].to_list()
    assert reps.schema["follow_ups"] == pl.UInt32


def test_two_partitioned_builds_write_the_same_practice_cells(tiny_planted, tmp_path):
    """Two partitioned builds of the same data and code write each practice cells file byte
    for byte alike (the shares' and sequences' rows were in a group-by's order within a rep,
    which differed between two builds; the reps' gap sums too in their last bits)."""
    import dataclasses

    from effortlens.facts import open_build
    from effortlens.settings import load_settings

    settings = load_settings()
    limits = dataclasses.replace(settings.limits, partition_rows=3_000, partition_above_rows=1_000)
    settings = dataclasses.replace(settings, limits=limits)
    files = []
    for k in range(2):
        built = open_build(
            tiny_planted, settings=settings, cache_dir=tmp_path / f"b{k}", partitioned=True
        )
        cells = sorted((built.path / "practice_cells").glob("*.parquet"))
        assert len(cells) == 4
        files.append({p.name: p.read_bytes() for p in cells})
    assert files[0] == files[1]
