"""The partitioned build's touch steps after the habit credit's fit (effortlens.partitioned):
pass 2's partitions merged into day order give one stable sort of them by (day, rep), the
same whether pass 1 wrote the text or ``Enum`` codes; the habit cells summed from the habit
touch codes equal the group-bys over the touches, and the same bytes twice."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens import partitioned
from effortlens.facts import AGGREGATES_LAYOUT
from effortlens.touch_build import build_touch_facts

CREDITS = ("credit_timing", "credit_cadence")
CELLS = ("habit_timing", "habit_cadence", "habit_sequence_2", "habit_sequence_3")
# the steps themselves (private to the build)
touch_part = partitioned._touch_part  # noqa: SLF001
day_order_plan = partitioned._day_order_plan  # noqa: SLF001
day_ordered_touches = partitioned._day_ordered_touches  # noqa: SLF001
habit_cells = partitioned._habit_cells  # noqa: SLF001
touch_codes = partitioned._touch_codes  # noqa: SLF001
habit_cells_of_codes = partitioned._habit_cells_of_codes  # noqa: SLF001


@pytest.fixture(scope="module")
def touches(tiny_planted_enriched) -> pl.DataFrame:
    """The in-memory build's touch facts of the tiny planted sample (day, rep order)."""
    enriched, _ = tiny_planted_enriched
    facts = build_touch_facts(enriched)
    assert facts.height > 1_000
    # every 50th touch as one without a contact: no credits (pass 1 gives it no fit row)
    without = pl.int_range(pl.len()) % 50 == 0
    return facts.with_columns(pl.when(~without).then(pl.col(c)) for c in CREDITS)


def _stage(touches: pl.DataFrame, scratch: Path, *, parts: int, enums: bool) -> list[dict]:
    """``touches`` dealt into ``parts`` partitions (each still in day, rep order) written as
    pass 1 writes them (credits apart, ``fit_row``), then pass 2 over each."""
    em = scratch / "em"
    (scratch / "touch1").mkdir(parents=True)
    em.mkdir()
    frames, credits, names = [], {c: [] for c in CREDITS}, []
    for p in range(parts + 1):  # and a partition without touches last
        part = touches.filter(pl.int_range(pl.len()) % parts == p) if p < parts else touches.clear()
        on = part["credit_timing"].is_not_null()
        fit_row = pl.select(pl.when(pl.Series(on)).then(pl.Series(on).cum_sum() - 1)).to_series()
        for c in CREDITS:
            credits[c].append(part.filter(on)[c].to_numpy())
        frame = part.drop(*CREDITS).with_columns(fit_row.alias("fit_row"))
        if enums:  # pass 1 writing its text as codes
            frame = frame.with_columns(
                pl.col(c).cast(pl.Enum(frame[c].drop_nulls().unique()))
                for c, t in frame.schema.items()
                if t == pl.String
            )
        name = f"part-{p:05d}.parquet"
        frame.write_parquet(scratch / "touch1" / name)
        frames.append(frame)
        names.append(name)
    paths = {}
    for c in CREDITS:
        paths[c.removeprefix("credit_")] = em / f"{c}.npy"
        np.save(paths[c.removeprefix("credit_")], np.concatenate(credits[c]))
    offsets = np.cumsum([0] + [len(x) for x in credits["credit_timing"]]).tolist()
    return [
        touch_part(
            name,
            scratch,
            scratch,
            credits=paths,
            offset=offsets[p],
            n=offsets[p + 1] - offsets[p],
        )
        for p, name in enumerate(names)
    ]


@pytest.mark.parametrize("enums", [False, True])
def test_pass_two_merged_in_day_order_is_one_stable_sort(touches, tmp_path, enums):
    parts = 3
    scratch, folder = tmp_path / "scratch", tmp_path / "build"
    made = _stage(touches, scratch, parts=parts, enums=enums)
    assert [m["rows"] for m in made] == [
        touches.filter(pl.int_range(pl.len()) % parts == p).height for p in range(parts)
    ] + [0]
    rows_per_part = touches.height // 5  # several part files of whole days
    groups, shared = day_order_plan(scratch, made, rows_per_part=rows_per_part, workers=2)
    assert len(groups) == 2
    written = {}
    for group in groups:
        written.update(day_ordered_touches(scratch, folder, group, **shared))
    files = sorted((folder / AGGREGATES_LAYOUT["touches"]).glob("*.parquet"))
    assert len(files) == len(written) >= 5
    got = [pl.read_parquet(f) for f in files]
    assert all(f.height <= rows_per_part for f in got)
    for a, b in zip(got, got[1:], strict=False):  # whole days in each file
        assert a["day"].max() < b["day"].min()
    # the partitions end to end, sorted stably by day then rep: a rep's touches of a day in
    # partition order
    dealt = pl.concat(
        touches.filter(pl.int_range(pl.len()) % parts == p) for p in range(parts)
    ).sort("day", "rep_id", nulls_last=False, maintain_order=True)
    assert_frame_equal(pl.concat(got), dealt, check_exact=True)
    # beside each file its rows with the text as Enums of every value, sorted
    coded = pl.concat(pl.read_ipc(f) for f in sorted((scratch / "codes").glob("*.arrow")))
    for column, dtype in coded.schema.items():
        if isinstance(dtype, pl.Enum):
            assert dtype.categories.equals(touches[column].drop_nulls().unique().sort())
    assert_frame_equal(coded.with_columns(pl.col(pl.Enum).cast(pl.String)), dealt)


def test_habit_cells_from_the_touch_codes_equal_the_group_bys(touches, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    (scratch / "codes").mkdir(parents=True)
    coded = touches.with_columns(
        pl.col(c).cast(pl.Enum(touches[c].drop_nulls().unique().sort()))
        for c, t in touches.schema.items()
        if t == pl.String
    )
    third = coded.height // 3 + 1
    for i, frame in enumerate(coded.iter_slices(third)):
        frame.write_ipc(scratch / "codes" / f"part-{i:05d}.arrow")
    files = sorted((scratch / "codes").glob("*.arrow"))
    # the group-bys over the touches, a run of reps at a time
    habit_cells(scratch, tmp_path / "old", slice_rows=third)
    n, cells = touch_codes(files, tmp_path / "new" / "habit_touches", cells=tmp_path / "new")
    assert n == touches.height
    assert set(cells) == {AGGREGATES_LAYOUT[c] for c in CELLS}
    for relative, rows in cells.items():
        old = pl.read_parquet(tmp_path / "old" / relative)
        new = pl.read_parquet(tmp_path / "new" / relative)
        assert old.schema == new.schema and old.height == new.height == rows > 0
        keys = [c for c in old.columns if c not in ("n", "responded", "n_contact", "credited")]
        as_text = pl.col(pl.Categorical).cast(pl.String)
        old = old.with_columns(as_text).sort(keys, nulls_last=True)
        new_sorted = new.with_columns(as_text).sort(keys, nulls_last=True)
        counts = [c for c in ("n", "responded", "n_contact") if c in old.columns]
        assert_frame_equal(
            old.drop("credited", strict=False), new_sorted.drop("credited", strict=False)
        )
        if "credited" in old.columns:
            assert_frame_equal(old, new_sorted, check_exact=False, rel_tol=1e-12, abs_tol=1e-15)
        assert old[counts[0]].sum() > 0
        # by rep (nulls first), as the group-bys' files, and within a rep by the other keys
        assert (
            new["rep_id"].to_list() == new.sort("rep_id", maintain_order=True)["rep_id"].to_list()
        )
    # a few owners at a time, and again: the same bytes (the sums' order is fixed)
    monkeypatch.setattr(partitioned, "_CELL_ROWS", 97)
    again = habit_cells_of_codes(tmp_path / "new" / "habit_touches", tmp_path / "again")
    assert again == cells
    for relative in cells:
        assert (tmp_path / "again" / relative).read_bytes() == (
            tmp_path / "new" / relative
        ).read_bytes()


def test_no_touch_at_all_gives_one_empty_part_of_the_touch_schema(touches, tmp_path):
    scratch, folder = tmp_path / "scratch", tmp_path / "build"
    made = _stage(touches.clear(), scratch, parts=2, enums=False)
    assert [m["rows"] for m in made] == [0, 0, 0]
    groups, shared = day_order_plan(scratch, made, rows_per_part=1_000, workers=2)
    assert len(groups) == 1
    written = day_ordered_touches(scratch, folder, groups[0], **shared)
    assert list(written.values()) == [0]
    (path,) = sorted((folder / AGGREGATES_LAYOUT["touches"]).glob("*.parquet"))
    assert pl.read_parquet(path).schema == touches.schema


def _small_chunks(monkeypatch, size: int) -> None:
    """The touch codes' passes over the touches in chunks of ``size`` rows."""
    from effortlens import habits

    chunks = habits._chunks  # noqa: SLF001
    monkeypatch.setattr(habits, "_CHUNK", size)
    monkeypatch.setattr(habits, "_chunks", lambda rows, size=size: chunks(rows, size))


def _day_ordered_both_ways(touches, tmp_path, *, parts: int, rows_per_part: int):
    """The day order of ``touches`` staged in ``parts`` parts run twice: first writing its
    codes to scratch for the touch codes step (run here into ``old``), then with the habit
    touch codes written in place (into ``new``, not yet finished). ``(old, new, shared,
    touches coded, cells)``: the second plan's ``shared`` and the first way's results."""
    scratch, old, new = tmp_path / "scratch", tmp_path / "old", tmp_path / "new"
    made = _stage(touches, scratch, parts=parts, enums=True)
    groups, shared = day_order_plan(scratch, made, rows_per_part=rows_per_part, workers=2)
    assert "codes" not in shared
    for group in groups:
        day_ordered_touches(scratch, old, group, **shared)
    files_old = sorted((scratch / "codes").glob("*.arrow"))
    n_old, cells_old = touch_codes(files_old, old / "habit_touches", cells=old)
    shutil.rmtree(scratch / "codes")
    groups, shared = day_order_plan(
        scratch, made, rows_per_part=rows_per_part, workers=2, codes=new / "habit_touches"
    )
    assert shared["codes"] is not None
    for group in groups:
        day_ordered_touches(scratch, new, group, **shared)
    assert not (scratch / "codes").exists()  # nothing written to be read again
    return old, new, shared, n_old, cells_old


@pytest.mark.parametrize(("parts", "files", "chunk"), [(3, 5, 97), (1, 1, 1 << 20), (4, 9, 1000)])
def test_the_day_order_writes_the_habit_touch_codes_of_the_codes_step(
    touches, tmp_path, monkeypatch, parts, files, chunk
):
    # the day order's ranges write the habit touch codes (and the cells from them) byte for
    # byte as the touch codes step wrote them from the day order's scratch: every .npy
    # (the credit sums per day added in the same chunks of all touches), the key tables
    _small_chunks(monkeypatch, chunk)
    old, new, shared, n_old, cells_old = _day_ordered_both_ways(
        touches, tmp_path, parts=parts, rows_per_part=touches.height // files + 1
    )
    n_new, cells_new = partitioned._touch_codes_of_ranges(shared["codes"], cells=new)  # noqa: SLF001
    assert n_new == n_old == touches.height
    assert cells_new == cells_old and len(cells_new) == len(CELLS)
    made_old = sorted(p.relative_to(old) for p in old.rglob("*") if p.is_file())
    made_new = sorted(p.relative_to(new) for p in new.rglob("*") if p.is_file())
    assert made_new == made_old
    assert len([p for p in made_old if p.suffix == ".npy"]) == 31
    for relative in made_old:
        assert (new / relative).read_bytes() == (old / relative).read_bytes(), relative


def test_touch_codes_keep_the_scratch_when_a_touch_has_no_day(touches, tmp_path):
    scratch = tmp_path / "scratch"
    undated = touches.with_columns(
        pl.when(pl.int_range(pl.len()) % 101 != 3).then(pl.col("day")).alias("day")
    ).sort("day", "rep_id", nulls_last=False, maintain_order=True)
    made = _stage(undated, scratch, parts=2, enums=True)
    groups, shared = day_order_plan(
        scratch, made, rows_per_part=1_000, workers=2, codes=tmp_path / "codes"
    )
    assert "codes" not in shared and not (tmp_path / "codes").exists()


def test_the_partitioned_build_takes_the_codes_the_day_order_wrote(
    tiny_planted, tmp_path, monkeypatch
):
    # a loaded build's touches all have a day: its touch codes step finishes what the day
    # order's ranges wrote, and never reads the touches again (in process: the patch holds)
    import dataclasses

    from effortlens.facts import HABIT_TOUCHES, open_build
    from effortlens.settings import load_settings

    def read_again(*_args, **_kwargs):
        raise AssertionError("the touch codes read from the day order's scratch")

    monkeypatch.setattr(partitioned, "_touch_codes", read_again)
    settings = load_settings()
    limits = dataclasses.replace(settings.limits, partition_rows=3_000, partition_above_rows=10_000)
    settings = dataclasses.replace(settings, limits=limits)
    parts = open_build(tiny_planted, settings=settings, cache_dir=tmp_path, partitioned=True)
    codes = parts.path / HABIT_TOUCHES
    day = np.load(codes / "day.npy")
    assert len(day) == parts.enriched.aggregates["touches"].collect().height > 1_000
    assert (np.diff(day) >= 0).all()
    assert len(np.load(codes / "by_owner" / "starts.npy")) > 2


def _row_groups(path: Path) -> list[list[tuple]]:
    """Each row group's rows and each column's statistics (min, max, nulls) of ``path``."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    groups = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        stats = [group.column(c).statistics for c in range(group.num_columns)]
        groups.append(
            [group.num_rows, *((s.min, s.max, s.null_count) if s else None for s in stats)]
        )
    return groups


def test_the_day_order_writes_its_parts_from_the_codes_as_the_text(touches, tmp_path, monkeypatch):
    # each part file is written from the text's codes (Enums of the sorted values: no text
    # spelled), and reads back as the text frame written as text reads back: the same
    # schema, values, row groups and statistics (what a filter's row group pruning reads)
    from effortlens import facts

    monkeypatch.setattr(facts, "ROW_GROUP", 64)  # several row groups a part
    scratch, folder = tmp_path / "scratch", tmp_path / "build"
    made = _stage(touches, scratch, parts=3, enums=True)
    groups, shared = day_order_plan(scratch, made, rows_per_part=touches.height // 3, workers=1)
    day_ordered_touches(scratch, folder, groups[0], **shared)
    files = sorted((folder / AGGREGATES_LAYOUT["touches"]).glob("*.parquet"))
    assert len(files) >= 3
    for path in files:
        got = pl.read_parquet(path)
        assert got.schema == touches.schema and got["sequence_3"].null_count() > 0
        as_text = tmp_path / "text.parquet"
        partitioned._write(got, as_text, row_group_size=64)  # noqa: SLF001
        assert_frame_equal(pl.read_parquet(as_text), got, check_exact=True)
        assert pl.read_parquet_schema(path) == pl.read_parquet_schema(as_text)
        written, text = _row_groups(path), _row_groups(as_text)
        assert len(written) == -(-got.height // 64) > 1 and written == text
        # some row group lacks a text column's least or greatest value of all the touches
        # (its statistics are its own values', not the Enum's categories': the check can fail)
        ends = {c: (v[0], v[-1]) for c, v in shared["names"].items()}
        assert any(tuple(g[1 + got.columns.index(c)][:2]) != ends[c] for g in written for c in ends)


@pytest.mark.parametrize("parts", [1, 3])
def test_pass_one_scratch_gives_the_files_of_pass_two(touches, tmp_path, parts):
    # pass 1 writing its touches as the day order reads them (_touch_scratch: no pass 2, the
    # day order takes the credits by fit row) gives the same part files and habit touch
    # codes, byte for byte, as pass 2 over pass 1's Parquet; every 50th touch has no credits
    old, new = tmp_path / "old", tmp_path / "new"
    made = _stage(touches, old / "scratch", parts=parts, enums=True)
    credits = {f: old / "scratch" / "em" / f"credit_{f}.npy" for f in ("timing", "cadence")}
    scratched, at = [], [0]
    for p, part in enumerate(made):
        frame = pl.read_parquet(old / "scratch" / "touch1" / part["name"])
        scratched.append(
            partitioned._touch_scratch(frame, new / "scratch", part["name"])  # noqa: SLF001
        )
        at.append(at[-1] + int(frame["fit_row"].is_not_null().sum()))
        assert scratched[-1]["fit_rows"] and scratched[-1]["rows"] == part["rows"], p
        assert scratched[-1]["schema"] == part["schema"]
    assert at[-1] == len(np.load(credits["timing"])) > 0
    rows_per_part = touches.height // 4 + 1
    for folder, plan, kwargs in (
        (old, made, {}),
        (new, scratched, {"credits": credits, "offsets": at}),
    ):
        groups, shared = day_order_plan(
            folder / "scratch",
            plan,
            rows_per_part=rows_per_part,
            workers=2,
            codes=folder / "habit_touches",
            **kwargs,
        )
        assert ("credits" in shared) == bool(kwargs)
        for group in groups:
            day_ordered_touches(folder / "scratch", folder, group, **shared)
        partitioned._touch_codes_of_ranges(shared["codes"], cells=folder)  # noqa: SLF001
    for folder in (old, new):
        shutil.rmtree(folder / "scratch")
    made_old = sorted(p.relative_to(old) for p in old.rglob("*") if p.is_file())
    made_new = sorted(p.relative_to(new) for p in new.rglob("*") if p.is_file())
    assert made_new == made_old and len(made_old) > 40
    for relative in made_old:
        assert (new / relative).read_bytes() == (old / relative).read_bytes(), relative
    got = pl.concat(pl.read_parquet(f) for f in sorted((new / "touches.parquet").glob("*")))
    assert got["credit_timing"].null_count() == touches["credit_timing"].null_count() > 0


@pytest.mark.parametrize(("cell_rows", "threads"), [(97, 2), (1_000, 3), (1 << 22, 1)])
def test_the_touch_codes_by_owner_and_cells_in_runs_on_threads_are_the_same_bytes(
    touches, tmp_path, monkeypatch, cell_rows, threads
):
    # the columns by owner written a run of owners at a time, runs on several threads at
    # once beside the running totals, the cells summed from each run as it is gathered: the
    # same bytes as write_touch_codes of the touches and the cells read back from its files
    from effortlens import habits

    monkeypatch.setattr(partitioned, "_CELL_ROWS", cell_rows)
    monkeypatch.setattr(habits, "BY_OWNER_ROWS", cell_rows)
    old, new, shared, n_old, cells_old = _day_ordered_both_ways(
        touches, tmp_path, parts=3, rows_per_part=touches.height // 4 + 1
    )
    runs = habits.owner_runs(
        np.load(old / "habit_touches" / "by_owner" / "starts.npy"), rows=cell_rows
    )
    assert len(runs) > 10 if cell_rows < touches.height else len(runs) == 1  # whole owners
    n_new, cells_new = partitioned._touch_codes_of_ranges(  # noqa: SLF001
        shared["codes"], cells=new, threads=threads
    )
    assert n_new == n_old == touches.height
    assert cells_new == cells_old and len(cells_new) == len(CELLS)
    made_old = sorted(p.relative_to(old) for p in old.rglob("*") if p.is_file())
    made_new = sorted(p.relative_to(new) for p in new.rglob("*") if p.is_file())
    assert made_new == made_old
    assert len([p for p in made_old if p.parent.name == "by_owner"]) == 10
    for relative in made_old:
        assert (new / relative).read_bytes() == (old / relative).read_bytes(), relative


def test_pass_one_touch_files_are_read_ahead_before_the_day_order(
    tiny_planted, tmp_path, monkeypatch
):
    # the day order reads pass 1's touch files right after the fit: they are asked into
    # memory (WILLNEED of the chunks not in memory) as the fit ends, each file once a call,
    # in partition order, before the day order reads any
    import dataclasses

    from effortlens import warm
    from effortlens.facts import open_build
    from effortlens.settings import load_settings

    asked: list[tuple[str, int]] = []
    read: list[str] = []
    advise = warm.advise_missing

    def advised(path, spans):
        if path.suffix == ".arrow":  # not the build's files (a kernel's open reads ahead)
            asked.append((path.name, sum(span.length for span in spans)))
            assert path.stat().st_size == asked[-1][1] > 0  # the whole file
        return advise(path, spans)

    ordered = partitioned._day_ordered_touches  # noqa: SLF001

    def day_order(scratch, folder, ranges, **kwargs):
        read.append(f"{len(asked)} asked")
        return ordered(scratch, folder, ranges, **kwargs)

    monkeypatch.setattr(warm, "advise_missing", advised)
    monkeypatch.setattr(partitioned, "_day_ordered_touches", day_order)
    s = load_settings()
    limits = dataclasses.replace(s.limits, partition_rows=3_000, partition_above_rows=3_000)
    settings = dataclasses.replace(s, limits=limits)
    open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    parts = sorted(p.name for p in (tmp_path / "b").rglob("activities.parquet/*.parquet"))
    names = [f"{Path(p).stem}.arrow" for p in parts]
    assert len(names) >= 5
    # the last call (as the fit ends) asked every file, in order, before the day order read
    assert [name for name, _ in asked[-len(names) :]] == names
    assert read and all(int(r.split()[0]) >= len(names) for r in read)
    # a file gone meanwhile is skipped, the others still asked
    gone = tmp_path / "gone.arrow"
    kept = tmp_path / "kept.arrow"
    kept.write_bytes(b"x" * 10_000)
    asked.clear()
    partitioned._read_ahead([gone, kept]).join()  # noqa: SLF001
    assert asked == [("kept.arrow", 10_000)]


def test_the_habit_touch_codes_run_in_the_day_orders_last_worker(
    tiny_planted, tmp_path, monkeypatch
):
    # the touch codes step asks for the day order's thread count: it takes the day order's
    # last worker again (its memory faulted in already), not a fresh process; also when
    # the practice side is done by then (the step alone: at 100M, as a rule)
    import dataclasses
    import time

    from effortlens import processes
    from effortlens.facts import open_build
    from effortlens.settings import load_settings

    s = load_settings()
    limits = dataclasses.replace(s.limits, partition_rows=3_000, partition_above_rows=3_000)
    settings = dataclasses.replace(s, limits=limits)
    if partitioned.build_workers(settings) < 2:
        pytest.skip("one worker: the day order and the practice side one at a time")
    built = open_build(tiny_planted, settings=settings, cache_dir=tmp_path / "b", partitioned=True)
    ran: list[tuple[str, int, int, int | None]] = []
    run = processes.Worker.run

    def traced(self, function, args, kwargs):
        ran.append((function.__name__, self.process.pid, self.calls, self.threads))
        return run(self, function, args, kwargs)

    side = ("_practice_cells", "_practice_gap_facts", "_practice_codes", "_practice_periods")
    side += ("_ordered_streaks",)

    def waiting(self, function, args, kwargs):
        if function.__name__ == "_fit_touch_credits":  # a long fit: the side ends beside it
            deadline = time.monotonic() + 120
            while len({r[0] for r in ran} & set(side)) < len(side):
                if time.monotonic() > deadline:  # the side's steps not beside the fit
                    break
                time.sleep(0.05)
            time.sleep(0.5)  # the side's last call returned
        return traced(self, function, args, kwargs)

    monkeypatch.setattr(processes.Worker, "run", waiting)
    partitioned.write_view_facts(built.path, settings=settings, isolate=True)
    day = [r for r in ran if r[0] == "_day_ordered_touches"]
    (codes,) = [r for r in ran if r[0] == "_touch_codes_of_ranges"]
    assert len(day) >= 2
    assert codes[3] == day[-1][3] == 1  # the day order's thread count: one each of two
    assert codes[1] in {r[1] for r in day} and codes[2] > 0  # a worker's later call
