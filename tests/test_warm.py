"""What the first viewer after a build meets (issue 13): the build's files read ahead into the
page cache at the end of ``effortlens build`` (:mod:`effortlens.warm`), and the deviance
page's period files read at its first draw (a preheated kernel's), not at the viewer's first
period change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import effortlens.facts as facts
import effortlens.warm as warm
from effortlens.cli import main
from effortlens.deviance.differs import PRACTICE_PERIOD_DAYS, PRACTICE_PERIODS
from effortlens.facts import MANIFEST_FILE, PRACTICE_CODES, open_build
from effortlens.warm import EVENT_FACTS, TIERS, warm_build, warm_plan


@pytest.fixture(scope="module")
def entry(tiny_planted) -> Path:
    return open_build(tiny_planted).path


def _manifest_files(entry: Path) -> dict[str, int]:
    files = json.loads((entry / MANIFEST_FILE).read_text("utf-8"))["files"]
    return {name: int(about["bytes"]) for name, about in files.items()}


def _recorded(entry: Path, **kwargs) -> dict[str, list[warm.Span]]:
    asked: dict[str, list[warm.Span]] = {}

    def advise(path, spans):
        asked.setdefault(Path(path).relative_to(entry).as_posix(), []).extend(spans)

    warm_build(entry, advise=advise, **kwargs)
    return asked


def _event_fact(name: str) -> bool:
    return name in EVENT_FACTS or name.split("/", 1)[0] in EVENT_FACTS


def _covered(spans) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, end in sorted((s.offset, s.offset + s.length) for s in spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [tuple(m) for m in merged]


def test_with_room_every_file_of_the_build_is_read_ahead_whole(entry):
    files = _manifest_files(entry)
    asked = _recorded(entry, budget=2**40)
    assert set(files) <= set(asked)
    assert set(asked) - set(files) <= {MANIFEST_FILE, facts.VERIFIED_FILE, facts.REPORT_FILE}
    assert MANIFEST_FILE in asked  # read by every open before any fact
    for name, size in files.items():
        assert _covered(asked[name]) == ([(0, size)] if size else []), name


def test_the_event_facts_footers_come_first(entry, monkeypatch):
    # every file of the tiny build is below the size read ahead first: lower it so the
    # event facts are read ahead last, after their footers
    monkeypatch.setattr(warm, "SMALL_FILE_BYTES", 1)
    plan = warm_plan(entry, budget=2**40)
    events = [s for s in plan if s.tier == "events"]
    assert events and all(_event_fact(s.name) for s in events)
    first_event = plan.index(events[0])
    footers = [s for s in plan[:first_event] if _event_fact(s.name)]
    assert {s.name for s in footers} == {s.name for s in events if s.name.endswith(".parquet")}
    for span in footers:  # exactly the Parquet metadata and its 8-byte tail
        path = entry / span.name
        size = path.stat().st_size
        assert span.offset + span.length == size
        assert span.length == pq.ParquetFile(path).metadata.serialized_size + 8


def test_a_budget_reads_the_tiers_in_order_then_the_same_last_share_of_each_file(
    entry, monkeypatch
):
    monkeypatch.setattr(warm, "SMALL_FILE_BYTES", 64 * 2**10)
    whole = warm_plan(entry, budget=2**40)
    need = {t: sum(s.length for s in whole if s.tier == t) for t in TIERS}
    assert all(need.values()), need  # every tier has files in this build
    budget = need["every open"] + need["first draw"] + need["filter change"] // 3
    plan = warm_plan(entry, budget=budget)
    assert sum(s.length for s in plan) <= budget
    assert [s.tier for s in plan] == sorted((s.tier for s in plan), key=TIERS.index)
    assert {s.tier for s in plan} == {"every open", "first draw", "filter change"}
    assert [s for s in plan if s.tier != "filter change"] == [
        s for s in whole if s.tier in ("every open", "first draw")
    ]
    cut = [s for s in plan if s.tier == "filter change"]
    sizes = {s.name: s.length for s in whole if s.tier == "filter change"}
    assert len(cut) > 1
    for span in cut:  # the file's tail: its latest days when sorted by day
        assert span.offset + span.length == sizes[span.name]
        assert span.length / sizes[span.name] == pytest.approx(1 / 3, abs=4096 / sizes[span.name])
    assert warm_plan(entry, budget=0) == []


def test_each_span_is_asked_of_the_system_in_chunks(entry, monkeypatch):
    monkeypatch.setattr(warm, "CHUNK", 4096)
    calls: dict[str, list[warm.Span]] = {}

    def fadvise(fd, offset, length, advice):
        assert advice == os.POSIX_FADV_WILLNEED and 0 < length <= 4096
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).relative_to(entry.resolve()).as_posix()
        calls.setdefault(name, []).append(warm.Span(name, offset, length, ""))

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    warmed = warm_build(entry, budget=2**40)
    files = _manifest_files(entry)
    assert warmed.total == sum(files.values()) and warmed.bytes >= warmed.total
    for name, size in files.items():
        if size:
            assert _covered(calls[name]) == [(0, size)], name


def test_effortlens_build_reads_its_build_ahead_unless_told_not_to(
    tiny_planted, entry, monkeypatch, capsys
):
    warmed: list[Path] = []
    monkeypatch.setattr(
        warm, "warm_build", lambda path: warmed.append(Path(path)) or warm.Warmed(1, 2, 3, 4)
    )
    imports: list[str] = []
    monkeypatch.setattr(warm, "warm_kernel_imports", lambda: imports.append("asked") or 0)
    assert main(["build", str(tiny_planted)]) == 0
    assert warmed == [entry] and "warmed: " in capsys.readouterr().out
    assert imports == ["asked"]  # the kernels' packages too
    assert main(["build", str(tiny_planted), "--no-warm"]) == 0
    assert warmed == [entry] and "warmed" not in capsys.readouterr().out
    assert imports == ["asked"]


def test_a_page_kernels_imports_are_read_ahead():
    # a build pushes the installed packages out of memory; the next kernel read its imports
    # from disk one fault at a time (issue 13): every compiled module a page's kernel holds
    # of KERNEL_PACKAGES is among those read ahead, each file whole
    import sys

    import effortlens_widgets.apps.positive_deviance  # noqa: F401  (scipy.stats too)
    import effortlens_widgets.apps.return_on_effort  # noqa: F401

    files = {p.resolve() for p in warm.kernel_import_files()}
    held, tops = set(), set()
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if name.split(".")[0] not in warm.KERNEL_PACKAGES or spec is None or not spec.origin:
            continue
        compiled = spec.origin if spec.origin.endswith(".so") else spec.cached
        if compiled and Path(compiled).is_file():
            held.add(Path(compiled).resolve())
            tops.add(name.split(".")[0])
    assert {"altair", "ipywidgets", "polars", "scipy", "IPython"} <= tops
    assert len(held) > 300 and held <= files, sorted(held - files)[:5]
    asked: dict[Path, list[warm.Span]] = {}
    total = warm.warm_kernel_imports(advise=lambda path, spans: asked.update({path: spans}))
    assert {p.resolve() for p in asked} == files
    assert total == sum(p.stat().st_size for p in asked) > 50 * 2**20
    assert all(s.offset == 0 and s.length == p.stat().st_size for p, (s,) in asked.items())


def test_the_deviance_page_reads_its_period_files_at_its_first_draw(tiny_planted, monkeypatch):
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app

    read: dict = {}  # this test's own memo of the files read once per process
    monkeypatch.setattr(facts, "_READ_ONCE", read)
    page = positive_deviance_app(data_dir=tiny_planted)
    build = facts.entry_of(page.state.enriched)
    ahead = {(build, f"{PRACTICE_PERIODS}/{days}") for days in PRACTICE_PERIOD_DAYS}
    assert ahead | {(build, PRACTICE_CODES)} <= set(read)
    assert "spans" in vars(read[build, PRACTICE_CODES])  # the codes' value spans too
    kept = dict(read)
    view = page.views[0]
    for label in ("Last 52 weeks", "Last 26 weeks", "Last 13 weeks", "All data"):
        page.filter_bar.set_period(label)
        assert view.problem == "" and "deviance" in view.frames, label
    # the viewer's period changes read no file of these again: the same objects
    assert read.keys() == kept.keys()
    assert all(read[key] is kept[key] for key in kept)


def test_a_server_reads_its_data_s_latest_build_ahead(tiny_planted, entry, monkeypatch, tmp_path):
    from effortlens_serve.app import warm_data

    warmed: list[Path] = []
    monkeypatch.setattr(
        warm, "warm_build", lambda path: warmed.append(Path(path)) or warm.Warmed(1, 2, 3, 4)
    )
    warm_data(str(tiny_planted)).join(60)
    assert warmed == [entry]
    assert warm_data(None) is None
    assert warm.warm_latest_build(tmp_path) == warm.Warmed(0, 0, 0, 0)  # never built
    assert warmed == [entry]


def test_a_period_s_last_day_reads_one_column_of_the_deals_once_per_load(tiny_planted, monkeypatch):
    import polars as pl

    import effortlens_widgets.controls as controls
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app

    page = positive_deviance_app(data_dir=tiny_planted)
    enriched = page.state.enriched
    calls = []
    real = controls.last_day
    monkeypatch.setattr(controls, "last_day", lambda e: calls.append(e) or real(e))
    for label in ("Last 52 weeks", "Last 13 weeks", "Last 52 weeks"):
        page.filter_bar.set_period(label)
    assert calls == [enriched]  # once for the load, whichever preset
    # the deviance page never shows deals: its first period did not read their table
    assert isinstance(dict.__getitem__(enriched.tables, "opportunities"), pl.LazyFrame)
    opportunities = enriched.tables.lazy("opportunities").collect()
    expected = max(enriched.daily["day"].max(), opportunities["created_ts"].max().date())
    assert page.state.filter.end == expected
    assert (page.state.filter.end - page.state.filter.start).days == 363


# --- a kernel opening a build reads ahead what is not in memory (session 13) -----------------


def _willneed(monkeypatch, folder: Path) -> dict[str, list[tuple[int, int]]]:
    """The (offset, length) asked with WILLNEED of the files in ``folder``, from now on."""
    asked: dict[str, list[tuple[int, int]]] = {}
    real = os.posix_fadvise

    def fadvise(fd, offset, length, advice):
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if advice == os.POSIX_FADV_WILLNEED and path.is_relative_to(folder.resolve()):
            asked.setdefault(path.name, []).append((offset, length))
        return real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    return asked


def test_opening_a_build_reads_ahead_in_a_thread_what_is_not_in_memory(
    tiny_planted, tmp_path, monkeypatch
):
    import shutil

    copy = tmp_path / "build"
    shutil.copytree(open_build(tiny_planted).path, copy)
    files = _manifest_files(copy)
    with open(copy / "daily.parquet", "rb") as f:  # this test's copy dropped from memory
        os.fdatasync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    asked = _willneed(monkeypatch, copy)
    warm.warm_opened(copy).join(60)
    spans = [warm.Span("", o, n, "") for o, n in asked["daily.parquet"]]
    assert _covered(spans) == [(0, files["daily.parquet"])]
    # a file in memory is not asked for (read, then asked at once: no time to be dropped)
    asked.clear()
    reps = copy / "reps.parquet"
    reps.read_bytes()
    warm.advise_missing(reps, [warm.Span("reps.parquet", 0, files["reps.parquet"], "")])
    assert asked == {}
    with open(reps, "rb") as f:
        os.fdatasync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    warm.advise_missing(reps, [warm.Span("reps.parquet", 0, files["reps.parquet"], "")])
    assert list(asked) == ["reps.parquet"]


def test_an_open_reads_ahead_every_tier_but_the_event_facts(tiny_planted, entry, monkeypatch):
    monkeypatch.setattr(warm, "SMALL_FILE_BYTES", 1)  # the event facts as large as at 10M
    plan = warm_plan(entry, budget=2**40, tiers=warm.OPEN_TIERS)
    assert {s.tier for s in plan} == set(warm.OPEN_TIERS) and "events" not in warm.OPEN_TIERS
    events = [s for s in plan if _event_fact(s.name)]
    assert events and all(s.length < (entry / s.name).stat().st_size for s in events)  # footers
    started: list[Path] = []
    monkeypatch.setattr(warm, "warm_opened", lambda path: started.append(Path(path)))
    open_build(tiny_planted)
    assert started == [entry]


def test_a_kernels_read_ahead_is_capped_and_takes_the_tiers_in_order(
    tiny_planted, tmp_path, monkeypatch
):
    # a cold 100M build: 7.75 GB of tiers a kernel would read ahead; each kernel of a pool
    # asks at most OPEN_READ_AHEAD_BYTES, the files its first draw reads first
    import shutil

    copy = tmp_path / "build"
    shutil.copytree(open_build(tiny_planted).path, copy)
    files = _manifest_files(copy)
    for name in files:  # the whole copy dropped from memory
        with open(copy / name, "rb") as f:
            os.fdatasync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    monkeypatch.setattr(warm, "SMALL_FILE_BYTES", 1)  # tiers as a large build's
    plan = warm.warm_plan(copy, budget=2**40, tiers=warm.OPEN_TIERS)
    first = [s for s in plan if s.tier == plan[0].tier]
    cap = sum(s.length for s in first) + 4096  # the first tier and a little of the next
    assert cap < sum(s.length for s in plan) // 2
    monkeypatch.setattr(warm, "OPEN_READ_AHEAD_BYTES", cap)
    asked = _willneed(monkeypatch, copy)
    warm.warm_opened(copy).join(60)
    total = sum(n for spans in asked.values() for _, n in spans)
    assert 0 < total <= cap
    # the tiers in order: nothing asked of a file only the last tier holds
    last = {Path(s.name).name for s in plan if s.tier == warm.OPEN_TIERS[-1]}
    earlier = {Path(s.name).name for s in plan if s.tier != warm.OPEN_TIERS[-1]}
    assert last - earlier and not set(asked) & (last - earlier)


def test_effortlens_build_makes_the_notebooks_chart_module_unless_told_not_to(
    tiny_planted, monkeypatch, tmp_path
):
    # the very first notebook kernel after a build into a new cache folder made the offline
    # chart module itself (a child process: 2.6 s of its first chart's 4.3 s at 10M
    # activities, issue 13); the build makes it beside itself, once per cache folder
    import altair as alt

    from effortlens_widgets import panels

    started: list[Path] = []
    real = warm.start_chart_bundle
    monkeypatch.setattr(warm, "start_chart_bundle", lambda path: started.append(path) or real(path))
    cache = tmp_path / "cache"
    module = warm.chart_bundle_path(cache)
    assert main(["build", str(tiny_planted), "--cache-dir", str(cache), "--no-warm"]) == 0
    assert started == [] and not warm.has_chart_bundle(module)
    assert main(["build", str(tiny_planted), "--cache-dir", str(cache)]) == 0
    assert started == [module] and warm.has_chart_bundle(module)
    assert module.read_text("utf-8").count("vega") > 10
    assert not list(module.parent.glob("*.tmp"))  # written whole under another name, moved
    assert main(["build", str(tiny_planted), "--cache-dir", str(cache)]) == 0
    assert started == [module]  # there: not made again
    # a kernel on that cache folder takes it as it is, and starts no child process
    monkeypatch.setenv("EFFORTLENS_CACHE", str(cache))
    monkeypatch.delenv(panels.SERVED_BUNDLE_ENV, raising=False)
    monkeypatch.setattr(panels, "_OFFLINE", False)
    chart = alt.JupyterChart
    monkeypatch.setattr(chart, "_esm", chart._esm)  # noqa: SLF001  (restored after the test)
    monkeypatch.setattr(chart, "_is_offline", chart._is_offline)  # noqa: SLF001
    panels.enable_offline_charts()
    assert started == [module]
    assert chart._esm == module.read_text("utf-8")  # noqa: SLF001


def test_a_damaged_chart_module_is_made_again(tmp_path):
    module = warm.chart_bundle_path(tmp_path)
    module.parent.mkdir(parents=True)
    module.write_text("export default {}", "utf-8")  # a stub, as a full disk might leave
    assert not warm.has_chart_bundle(module)
    child = warm.prepare_chart_bundle(tmp_path)
    assert child is not None and child.wait(120) == 0
    assert warm.has_chart_bundle(module) and warm.prepare_chart_bundle(tmp_path) is None
