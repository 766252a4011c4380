"""Built facts (effortlens.facts, `effortlens build`): build once, warm starts read no raw row,
stale and damaged builds are rebuilt, and the cache lives in one place outside data and repo."""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import effortlens.adapters as adapters
import effortlens.facts as facts
from effortlens.cache import CacheLocationError, check_cache_dir, default_cache_dir
from effortlens.cli import main
from effortlens.enrich import enrich
from effortlens.facts import BuildWarning, open_build, verify_entry
from effortlens.loading import load_folder
from effortlens.settings import load_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def data(tiny_planted, tmp_path) -> Path:
    """A private copy of the tiny planted sample (tests change its files)."""
    folder = tmp_path / "data"
    shutil.copytree(tiny_planted, folder)
    return folder


@pytest.fixture
def loads(monkeypatch) -> list[Path]:
    """Every raw load made by a build (a spy on load_any, which the build calls)."""
    calls: list[Path] = []
    real = adapters.load_any

    def spy(folder, **options):
        calls.append(Path(folder))
        return real(folder, **options)

    monkeypatch.setattr(adapters, "load_any", spy)
    return calls


def _quiet_open(folder, cache):
    with warnings.catch_warnings():
        warnings.simplefilter("error", BuildWarning)
        return open_build(folder, cache_dir=cache)


def test_a_warm_start_reads_no_raw_row_and_serves_the_same_facts(data, tmp_path, loads):
    cache = tmp_path / "cache"
    first = open_build(data, cache_dir=cache)
    assert loads == [data] and first.rebuilt == "no build yet"
    again = _quiet_open(data, cache)
    assert loads == [data], "the warm start loaded the raw files again"
    assert again.rebuilt == "" and again.path == first.path
    fresh = enrich(load_folder(data, settings=load_settings()), cache_dir=tmp_path / "mem")
    assert again.enriched.is_lazy
    for name in ("activities", "actions"):
        assert_frame_equal(getattr(again.enriched, name), getattr(fresh, name))
    # a kernel holds the roll-up's and the reps' grouping columns as Categorical (the same values)
    for name in ("daily", "reps"):
        held = getattr(again.enriched, name)
        grouping = [c for c in facts.KERNEL_CATEGORICAL if c in held.columns]
        assert all(isinstance(held.schema[c], pl.Categorical) for c in grouping), held.schema
        # with codes as narrow as the values allow (a byte each: a few teams, types, roles)
        assert all(held.schema[c].categories.physical() == pl.UInt8 for c in grouping)
        expected = getattr(fresh, name).cast({c: held.schema[c] for c in grouping})
        assert_frame_equal(held, expected)
    for name in ("opportunities", "stage_history", "interventions", "buyer_actions"):
        assert_frame_equal(again.enriched.tables[name], fresh.tables[name])
    assert again.data.report.to_dict() == first.data.report.to_dict()
    assert again.data.report["activities"].loaded == fresh.activities.height


def test_a_stale_build_is_rebuilt_when_an_input_file_changes(data, tmp_path, loads):
    cache = tmp_path / "cache"
    first = open_build(data, cache_dir=cache)
    acts = pl.read_parquet(data / "activities.parquet")
    acts.head(acts.height - 100).write_parquet(data / "activities.parquet")
    with pytest.warns(BuildWarning, match=r"stale \(activities.parquet changed\)"):
        second = open_build(data, cache_dir=cache)
    assert len(loads) == 2 and second.path != first.path
    assert second.enriched.n_activities == acts.height - 100
    assert second.enriched.activities.height == acts.height - 100


def test_an_edit_that_keeps_size_and_mtime_is_seen_by_the_sampled_hash(data, tmp_path, loads):
    cache = tmp_path / "cache"
    open_build(data, cache_dir=cache)
    path = data / "truth.json"
    stat = path.stat()
    text = path.read_text()
    at = text.index('"') + 1
    path.write_text(text[:at] + ("X" if text[at] != "X" else "Y") + text[at + 1 :])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    with pytest.warns(BuildWarning, match=r"stale \(truth.json changed\)"):
        open_build(data, cache_dir=cache)
    assert len(loads) == 2


def test_a_settings_change_rebuilds(data, tmp_path, loads):
    cache = tmp_path / "cache"
    open_build(data, cache_dir=cache)
    (data / "settings.toml").write_text('timezone = "UTC"\n')
    with pytest.warns(BuildWarning, match="stale"):
        built = open_build(data, cache_dir=cache)
    assert built.enriched.settings.timezone == "UTC" and len(loads) == 2


def test_the_latest_build_record_names_the_folders_current_build(data, tmp_path):
    cache = tmp_path / "cache"
    assert facts.latest_build_record(data, cache_dir=cache) is None
    first = open_build(data, cache_dir=cache)
    record = facts.latest_build_record(data, cache_dir=cache)
    assert record["key"] == first.path.name and record["code"] == facts.code_version()
    (data / "settings.toml").write_text('timezone = "UTC"\n')
    with pytest.warns(BuildWarning, match="stale"):
        second = open_build(data, cache_dir=cache)
    record = facts.latest_build_record(data, cache_dir=cache)
    assert record["key"] == second.path.name != first.path.name


def test_a_first_build_is_announced_to_a_caller_that_listens(data, tmp_path, capsys):
    # a script's `effortlens roe DATA --json 2>log` on a folder never built waited minutes at
    # 10M with an empty stderr; a caller that gives no `say` is not warned of a first build
    said: list[str] = []
    open_build(data, cache_dir=tmp_path / "cache", say=said.append)
    assert said == [f"no build of {data} yet: building it"]
    open_build(data, cache_dir=tmp_path / "cache", say=said.append)
    assert len(said) == 1  # current: nothing to say
    _quiet_open(data, tmp_path / "other")  # no say: no BuildWarning either
    assert main(["roe", str(data), "--json", "--cache-dir", str(tmp_path / "cli")]) == 0
    assert f"effortlens: no build of {data} yet: building it" in capsys.readouterr().err


def test_a_copy_of_a_built_folder_is_said_stale_when_it_changes(data, tmp_path, loads):
    # the same files in two places open one build (the key is by content); the copy's next
    # change was rebuilt with no word, as no record named the copy's latest build
    cache = tmp_path / "cache"
    first = open_build(data, cache_dir=cache)
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)  # the files' times kept: the same key
    said: list[str] = []
    assert open_build(copy, cache_dir=cache, say=said.append).path == first.path
    assert said == [] and len(loads) == 1
    assert facts.latest_build_record(copy, cache_dir=cache)["key"] == first.path.name
    (copy / "reps.parquet").touch()
    open_build(copy, cache_dir=cache, say=said.append)
    assert said == [f"the build of {copy} is stale (reps.parquet changed): rebuilding"]
    assert len(loads) == 2


def test_the_progress_bar_names_each_view_table_and_covers_a_longer_line(data, tmp_path):
    # "precompute views" is most of a 10m build: the bar sat on it for 60% of the time (H3)
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    progress = facts.Progress(facts.BUILD_STEPS, stream=terminal)
    open_build(data, cache_dir=tmp_path / "cache", progress=progress)
    lines = [line.rstrip("\n") for line in terminal.getvalue().split("\r")[1:]]
    drawn = [re.match(r"\[[#.]+\] (\d)/6 (.*?) +[\d.]+ s *$", line) for line in lines]
    assert all(drawn), lines
    labels = [m[2] for m in drawn]
    views = labels[labels.index("precompute views") + 1 : labels.index("checksums")]
    assert "view facts: touches" in views and "view facts: habit touch codes" in views, labels
    assert {m[1] for m in drawn if m[2].startswith("view facts")} == {"4"}  # step 4 of 6
    for before, after in zip(lines, lines[1:], strict=False):  # no end of a longer line left
        assert len(after) >= len(before.rstrip()), (before, after)


def _damage(path: Path, how: str, entry: Path) -> None:
    if how == "byte flips":
        raw = bytearray(path.read_bytes())
        for at in range(len(raw) // 3, len(raw) // 3 + 64, 7):
            raw[at] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif how == "another table":
        pl.read_parquet(entry / "reps.parquet").write_parquet(path)
    else:  # same schema, every number doubled
        frame = pl.read_parquet(path)
        numbers = [c for c, t in frame.schema.items() if t.is_numeric()]
        frame.with_columns(pl.col(numbers) * 2).write_parquet(path)


@pytest.mark.parametrize("how", ["byte flips", "another table", "doubled values"])
@pytest.mark.parametrize("fact", ["daily.parquet", "activities.parquet"])
def test_a_damaged_build_is_reported_once_deleted_and_rebuilt(
    data, tmp_path, loads, how, fact, monkeypatch
):
    cache = tmp_path / "cache"
    first = open_build(data, cache_dir=cache)
    daily = first.enriched.daily
    path = first.path / fact
    stat = path.stat()
    _damage(path, how, first.path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # a tamper that restores mtime
    with pytest.warns(BuildWarning, match=f"damaged.*{fact}") as caught:
        again = open_build(data, cache_dir=cache)
    assert len([w for w in caught if issubclass(w.category, BuildWarning)]) == 1
    assert len(loads) == 2, "the damaged build was not rebuilt"
    assert again.path == first.path
    verify_entry(again.path)  # the rebuilt entry is whole
    assert_frame_equal(again.enriched.daily, daily)
    on_disk = pl.read_parquet(again.path / "daily.parquet")
    assert_frame_equal(on_disk.cast({c: daily.schema[c] for c in facts.KERNEL_CATEGORICAL}), daily)
    assert _quiet_open(data, cache).rebuilt == ""  # reported once: the next open is silent


def _hashed(monkeypatch) -> list[str]:
    """The names of the files hashed whole from now on (a spy on hashlib.file_digest)."""
    import hashlib

    names: list[str] = []
    real = hashlib.file_digest

    def spy(f, digest, /, **kwargs):
        names.append(Path(f.name).name)
        return real(f, digest, **kwargs)

    monkeypatch.setattr(hashlib, "file_digest", spy)
    return names


def test_an_open_whose_stamps_match_hashes_no_file_of_any_size(data, tmp_path, monkeypatch):
    # session 13: files under 16 MiB were hashed at every open (193 MB at 10M activities)
    cache = tmp_path / "cache"
    first = open_build(data, cache_dir=cache)
    assert first.manifest["files"]["daily.parquet"]["bytes"] < 2**20  # a small file
    hashed = _hashed(monkeypatch)
    os.utime(first.path / facts.VERIFIED_FILE)  # the record's tick is long past the files'
    assert _quiet_open(data, cache).rebuilt == ""
    assert hashed == []


@pytest.mark.parametrize("how", ["byte flips", "another table", "doubled values"])
def test_a_small_file_damaged_after_the_build_fails_its_checksum(data, tmp_path, how):
    first = open_build(data, cache_dir=tmp_path / "cache")
    path = first.path / "reps.parquet"
    stat = path.stat()
    assert stat.st_size < 2**20
    _damage(path, how, first.path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # a tamper that restores mtime
    with pytest.raises(facts.DamagedBuild, match="reps.parquet"):
        verify_entry(first.path)


def test_a_file_rewritten_in_the_tick_of_its_stamp_is_hashed_and_caught(
    data, tmp_path, monkeypatch
):
    # The file system's clock ticks every few ms: a write in the tick of the file's stamp can
    # keep its ctime. Make that happen: damage a file, record its new stamp as if it had been
    # taken in that tick (the record's mtime = the file's ctime).
    import json

    first = open_build(data, cache_dir=tmp_path / "cache")
    path = first.path / "daily.parquet"
    _damage(path, "byte flips", first.path)
    record = first.path / facts.VERIFIED_FILE
    stamps = json.loads(record.read_text("utf-8"))
    now = path.stat()
    stamps["daily.parquet"] = [now.st_ino, now.st_size, now.st_mtime_ns, now.st_ctime_ns]
    record.write_text(json.dumps(stamps), "utf-8")
    ctime = path.stat().st_ctime_ns
    os.utime(record, ns=(ctime, ctime))
    hashed = _hashed(monkeypatch)
    with pytest.raises(facts.DamagedBuild, match="daily.parquet fails its checksum"):
        verify_entry(first.path)
    assert hashed == ["daily.parquet"]  # the other files' stamps are older than the record


def test_a_file_hashed_in_the_tick_of_the_record_is_recorded_anew(data, tmp_path, monkeypatch):
    first = open_build(data, cache_dir=tmp_path / "cache")
    record = first.path / facts.VERIFIED_FILE
    ctime = (first.path / "reps.parquet").stat().st_ctime_ns
    os.utime(record, ns=(ctime, ctime))  # as if written in the tick of reps.parquet's write
    hashed = _hashed(monkeypatch)
    verify_entry(first.path)
    assert "reps.parquet" in hashed
    assert record.stat().st_mtime_ns > ctime  # written again, after: the next open trusts it
    hashed.clear()
    verify_entry(first.path)
    assert hashed == []


# --- checksums taken while the build writes, footers read at an open (session 13) -----------


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_watcher_keeps_a_hash_while_the_file_is_unchanged_and_hashes_a_rewrite(tmp_path):
    import time

    kept, rewritten, late = tmp_path / "kept.bin", tmp_path / "sub" / "again.bin", tmp_path / "z"
    rewritten.parent.mkdir()
    kept.write_bytes(b"k" * 5000)
    rewritten.write_bytes(b"a" * 5000)
    watcher = facts.ChecksumWatcher(tmp_path, settled_s=0.2)
    assert watcher.scan() == 0  # just written: not settled yet
    time.sleep(0.3)
    assert watcher.scan() == 2 and watcher.scan() == 0  # hashed once, then kept
    rewritten.write_bytes(b"b" * 5000)  # the same size, rewritten in place after its hash
    late.write_bytes(b"late")
    sums = watcher.checksums()
    assert sorted(watcher.hashed_at_end) == ["sub/again.bin", "z"]
    assert sums == {
        "kept.bin": (5000, _sha(kept)),
        "sub/again.bin": (5000, _sha(rewritten)),  # the final bytes'
        "z": (4, _sha(late)),
    }


def test_a_file_that_changed_after_its_hash_is_hashed_again_only_at_the_end(tmp_path):
    import time

    path, other = tmp_path / "pieces.bin", tmp_path / "other.bin"
    path.write_bytes(b"x")
    watcher = facts.ChecksumWatcher(tmp_path, settled_s=0.1)
    time.sleep(0.15)
    assert watcher.scan() == 1
    path.write_bytes(b"xy")  # written in pieces (the habit touch codes' arrays): a second one
    time.sleep(0.3)
    assert watcher.scan() == 0  # settled, but it may get a third: left to the end
    other.write_bytes(b"o")
    (tmp_path / ".working").mkdir()
    (tmp_path / ".working" / "a.bin").write_bytes(b"w")  # renamed into place when written
    (tmp_path / ".b.bin").write_bytes(b"w")
    time.sleep(0.15)
    assert watcher.scan() == 1  # other files are still hashed as they settle
    shutil.rmtree(tmp_path / ".working")
    (tmp_path / ".b.bin").unlink()
    path.write_bytes(b"xyz")
    time.sleep(0.15)
    assert watcher.scan() == 0
    assert watcher.checksums() == {"other.bin": (1, _sha(other)), "pieces.bin": (3, _sha(path))}
    assert watcher.hashed_while == ["pieces.bin", "other.bin"]
    assert watcher.hashed_at_end == ["pieces.bin"]


def test_what_is_left_at_the_end_is_hashed_in_the_files_order(tmp_path):
    names = [f"{k:02d}.bin" for k in range(12)]
    for k, name in enumerate(names):
        (tmp_path / name).write_bytes(bytes([k]) * (1 << 20) * (1 + k % 3))
    watcher = facts.ChecksumWatcher(tmp_path, settled_s=60)  # nothing settles: all at the end
    assert watcher.scan() == 0
    sums = watcher.checksums()
    assert list(sums) == names == watcher.hashed_at_end
    assert sums == {n: ((tmp_path / n).stat().st_size, _sha(tmp_path / n)) for n in names}


def test_the_watcher_hashes_no_file_a_process_still_writes_or_maps_writable(tmp_path):
    import subprocess
    import sys
    import time

    import numpy as np

    fcntl = pytest.importorskip("fcntl")
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    with open(probe, "rb") as reading:  # a read lease, as the watcher takes one
        try:
            fcntl.fcntl(reading.fileno(), fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except (AttributeError, OSError):
            pytest.skip("no file leases here (not Linux, or a file system without them)")
        fcntl.fcntl(reading.fileno(), fcntl.F_SETLEASE, fcntl.F_UNLCK)
    probe.unlink()
    done, kept_open, mapped = tmp_path / "done.bin", tmp_path / "open.bin", tmp_path / "m.npy"
    elsewhere = tmp_path / "elsewhere.bin"
    done.write_bytes(b"d" * 5000)
    writer = open(kept_open, "wb")  # noqa: SIM115 - a writer that pauses mid-file
    writer.write(b"o" * 5000)
    writer.flush()
    array = np.lib.format.open_memmap(mapped, mode="w+", dtype=np.int64, shape=(4096,))
    array[:100] = 7  # the touch codes fill their arrays so, the file itself closed
    script = (
        "import sys\n"
        f"with open({str(elsewhere)!r}, 'wb') as f:\n"
        "    f.write(b'e' * 5000); f.flush(); print('written', flush=True); sys.stdin.read()\n"
        "    f.write(b'end')\n"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert other.stdout.readline().strip() == "written"
    watcher = facts.ChecksumWatcher(tmp_path, settled_s=0.05)
    time.sleep(0.2)  # every file settled: unchanged for longer than settled_s
    assert watcher.scan() == 1 and watcher.hashed_while == ["done.bin"]
    writer.write(b"p" * 100)
    writer.close()
    array[100:] = 9
    array.flush()
    del array
    other.communicate("", timeout=60)
    time.sleep(0.2)
    assert watcher.scan() == 3
    sums = watcher.checksums()
    assert watcher.hashed_at_end == []  # each hashed once, whole
    assert sorted(watcher.hashed_while) == ["done.bin", "elsewhere.bin", "m.npy", "open.bin"]
    for path in (done, kept_open, mapped, elsewhere):
        assert sums[path.name] == (path.stat().st_size, _sha(path)), path.name
    assert sums["elsewhere.bin"][0] == 5003


def test_a_build_hashes_its_files_as_they_are_written_and_its_manifest_is_of_the_final_bytes(
    data, tmp_path, monkeypatch
):
    import json
    import time

    watchers: list[facts.ChecksumWatcher] = []

    class Recorded(facts.ChecksumWatcher):
        def start(self):
            watchers.append(self)
            return super().start()

        def scan(self):
            time.sleep(0.02)  # let the build write between scans
            return super().scan()

    monkeypatch.setattr(facts, "ChecksumWatcher", Recorded)
    monkeypatch.setattr(facts, "SETTLED_S", 0.0)
    monkeypatch.setattr(facts, "WATCH_EVERY_S", 0.0)
    built = open_build(data, cache_dir=tmp_path / "cache")
    (watcher,) = watchers
    assert watcher.hashed_while, "nothing was hashed while the build ran"
    files = json.loads((built.path / facts.MANIFEST_FILE).read_text("utf-8"))["files"]
    assert set(watcher.hashed_at_end) < set(files)
    for name, about in files.items():  # every checksum is of the bytes the build left
        assert about["sha256"] == _sha(built.path / name), name
        assert about["bytes"] == (built.path / name).stat().st_size


def test_an_open_reads_each_parquet_files_tail_once_and_nothing_more(data, tmp_path):
    import json

    import pyarrow.parquet as pq

    built = open_build(data, cache_dir=tmp_path / "cache")
    manifest = json.loads((built.path / facts.MANIFEST_FILE).read_text("utf-8"))
    expected = 0
    for name, about in manifest["files"].items():
        if name.endswith(".parquet"):
            footer = pq.ParquetFile(built.path / name).metadata.serialized_size + 8
            expected += min(max(footer, facts.FOOTER_READ), about["bytes"])
    assert expected and facts.read_footers(built.path, manifest) == expected


def test_cache_is_env_else_per_user_never_in_data_or_repo(data, tmp_path, monkeypatch):
    monkeypatch.delenv("EFFORTLENS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(data)  # the working directory is the data folder
    assert default_cache_dir() == (tmp_path / "xdg" / "effortlens").resolve()
    built = open_build(data)
    assert built.path.is_relative_to(tmp_path / "xdg")
    assert not any(p.name.startswith(".cache") for p in data.iterdir())
    for inside in (data / ".cache", data / "sub" / "cache", REPO / ".cache", REPO / "workbooks"):
        with pytest.raises(CacheLocationError, match="inside"):
            check_cache_dir(inside, data=data)
    monkeypatch.setenv("EFFORTLENS_CACHE", str(data / ".cache"))
    with pytest.raises(CacheLocationError):
        open_build(data)
    assert not (data / ".cache").exists()


def test_cli_build_then_roe_uses_the_build(data, tmp_path, loads, capsys, monkeypatch):
    cache = tmp_path / "cache"
    assert main(["build", str(data), "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "built (no build yet)" in out and "activities" in out
    assert main(["build", str(data), "--cache-dir", str(cache)]) == 0
    assert "current (nothing to do)" in capsys.readouterr().out
    assert main(["roe", str(data), "--cache-dir", str(cache), "--json"]) == 0
    assert '"rep_id"' in capsys.readouterr().out
    assert len(loads) == 1
    (data / "reps.parquet").touch()
    assert main(["roe", str(data), "--cache-dir", str(cache)]) == 0
    assert "stale (reps.parquet changed): rebuilding" in capsys.readouterr().err
    assert main(["build", str(data), "--cache-dir", str(data / "cache")]) == 2
    assert "inside the data folder" in capsys.readouterr().err


def test_kernels_opening_a_folder_together_build_it_once(data, tmp_path, loads):
    from concurrent.futures import ThreadPoolExecutor

    cache = tmp_path / "cache"
    with ThreadPoolExecutor(3) as pool:
        built = list(pool.map(lambda _: open_build(data, cache_dir=cache), range(3)))
    assert len(loads) == 1, "each kernel built the facts itself"
    assert len({b.path for b in built}) == 1
    assert sorted(b.rebuilt for b in built) == ["", "", "no build yet"]


def test_force_rebuilds_a_current_build(data, tmp_path, loads):
    cache = tmp_path / "cache"
    first = open_build(data, cache_dir=cache)
    again = open_build(data, cache_dir=cache, force=True)
    assert len(loads) == 2 and again.rebuilt == "rebuild forced" and again.path == first.path
    verify_entry(again.path)


# --- the code part of the key: only what a build runs (issue 13, session 6) ------------------


def _edited_digest(tmp_path: Path, relative: str, old: str, new: str) -> str:
    """``code_digest`` of a copy of the package with ``old`` replaced by ``new`` in one file."""
    package = Path(facts.__file__).parent
    copy = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / relative
    text = path.read_text("utf-8")
    assert text.count(old) == 1, (relative, old)
    path.write_text(text.replace(old, new), "utf-8")
    return facts.code_digest(copy)


@pytest.mark.parametrize(
    ("relative", "old", "new", "rebuilds"),
    [
        # view-only code: a page's habit tables, the period sums, a chart, a view's helper
        ("habits.py", "def touch_habits(", "def touch_habits(  # edited\n", False),
        ("habits.py", "def period_habits(", "def period_habits(  # edited\n", False),
        ("habits.py", "MIN_HABIT_LIFT = 1.2", "MIN_HABIT_LIFT = 1.3", False),
        ("charts/habits.py", "from __future__", "# edited\nfrom __future__", False),
        ("roe.py", "def roe_by(", "def roe_by(  # edited\n", False),
        ("flow.py", "def flow_table(", "def flow_table(  # edited\n", False),
        # the reference the build's touch facts are tested equal to (tests/test_touch_build.py)
        ("habits.py", "def touch_facts(", "def touch_facts(  # edited\n", False),
        # build-time code, in the modules read whole and deep in the views' modules
        ("facts.py", "def write_aggregates(", "def write_aggregates(  # edited\n", True),
        ("enrich.py", "from __future__", "# edited\nfrom __future__", True),
        ("touch_build.py", "def build_touch_facts(", "def build_touch_facts(  # e\n", True),
        ("touch_build.py", "def build_practice_facts(", "def build_practice_facts(  # e\n", True),
        ("touch_build.py", "def _credits(", "def _credits(  # edited\n", True),  # a helper
        ("habits.py", "def _overall_rate(", "def _overall_rate(  # edited\n", False),
        ("habits.py", "def write_touch_codes(", "def write_touch_codes(  # edited\n", True),
        ("habits.py", "(2, 4, 8, 15, 31)", "(2, 4, 8, 15, 30)", True),  # CADENCE_EDGES
        ("roe.py", "def streak_facts(", "def streak_facts(  # edited\n", True),
        ("flow.py", "def verifier_facts(", "def verifier_facts(  # edited\n", True),
        ("vocabulary.py", "def weekday_name(", "def weekday_name(  # edited\n", True),
        ("partitioned.py", "def write_partitioned(", "def write_partitioned(  # edited\n", True),
    ],
)
def test_the_code_version_changes_with_build_code_only(tmp_path, relative, old, new, rebuilds):
    before = facts.code_digest(Path(facts.__file__).parent)
    after = _edited_digest(tmp_path, relative, old, new)
    assert (after != before) is rebuilds


def test_the_code_version_is_remembered_per_source_and_equals_the_digest(tmp_path, monkeypatch):
    monkeypatch.setenv("EFFORTLENS_CACHE", str(tmp_path / "cache"))
    facts.code_version.cache_clear()
    try:
        first = facts.code_version()
        assert first == facts.code_digest(Path(facts.__file__).parent)
        assert (tmp_path / "cache" / "code-versions.json").is_file()
        facts.code_version.cache_clear()
        assert facts.code_version() == first  # read back
    finally:
        facts.code_version.cache_clear()
