"""Shared fixtures: generated data sets and their enriched facts, made once per test session.

Nothing a test run writes lands in the repository: the data sets live under pytest's temporary
folder; ``$EFFORTLENS_CACHE`` names a temporary folder for the whole session (so an
``enrich()`` without ``cache_dir``, and every Voilà kernel, never writes ``./.cache``); the
browser tests' screenshots and logs go to ``$EFFORTLENS_TEST_ARTIFACTS``, a temporary folder
named at the end of the run; and :func:`_repository_stays_clean` fails the run if files
appeared in the repository anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pytest

if TYPE_CHECKING:
    from effortlens.enrich import Enriched

REPO = Path(__file__).resolve().parents[1]
CACHE_ENV = "EFFORTLENS_CACHE"  # effortlens.cache.CACHE_ENV, without importing it this early
ARTIFACTS_ENV = "EFFORTLENS_TEST_ARTIFACTS"  # read by tests/browser_support.py
#: Paths a test run may touch in the repository: the environment, Python's own caches, and
#: ``test-artifacts/``, where ``bench/load_test.py`` (not a test) writes its logs.
ALLOWED_PARTS = {
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    "test-artifacts",
}
#: Folders people author: a new untracked file in one is work in progress, perhaps saved while
#: the tests run, not a test's output. Ignored files count everywhere (caches, generated data).
SOURCE_FOLDERS = {"lib", "widgets", "tests", "docs", "workbooks", "bench", "deploy", "share"}

_session: dict[str, object] = {}


# --- the repository stays as it was ------------------------------------------------------------


def _untracked_files() -> dict[str, int] | None:
    """Untracked and ignored files of the repository, by mtime, that a test could have written.

    Leaves out :data:`ALLOWED_PARTS`, tracked files and new files in :data:`SOURCE_FOLDERS`
    (people edit those, sometimes while the tests run).

    ``None`` when the folder is not a git checkout (an sdist, say), where there is nothing to
    compare.
    """
    try:
        out = subprocess.run(
            # no optional locks: never hold .git/index.lock while someone commits
            [
                "git",
                "--no-optional-locks",
                "status",
                "--porcelain=v1",
                "-z",
                "--ignored",
                "--untracked-files=all",
            ],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    entries = out.split(b"\0")
    files: dict[str, int] = {}
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if not entry:
            continue
        status, path = entry[:2].decode(), os.fsdecode(entry[3:])
        if status[0] in "RC":
            i += 1  # a rename's or copy's source path follows
        if status not in ("??", "!!"):
            continue  # tracked files: edits are people's work, not a test's
        parts = set(Path(path).parts)
        if parts & ALLOWED_PARTS or any(p.endswith(".egg-info") for p in parts):
            continue
        if status == "??" and Path(path).parts[0] in SOURCE_FOLDERS:
            continue
        try:
            files[path] = (REPO / path).stat().st_mtime_ns
        except OSError:
            continue
    return files


def pytest_sessionstart(session: pytest.Session) -> None:
    """Before anything is collected: note the repository's files; point the cache elsewhere."""
    _session["files"] = _untracked_files()
    _session["cache_env"] = os.environ.get(CACHE_ENV)
    _session["cache"] = os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="effortlens-test-cache-")
    if ARTIFACTS_ENV not in os.environ:
        artifacts = tempfile.mkdtemp(prefix="effortlens-test-artifacts-")
        _session["artifacts"] = os.environ[ARTIFACTS_ENV] = artifacts


def pytest_terminal_summary(terminalreporter) -> None:
    """Say where the browser tests left their screenshots and Voilà logs, if they ran."""
    artifacts = _session.get("artifacts")
    if artifacts and Path(str(artifacts)).is_dir():
        terminalreporter.write_line(f"browser screenshots and Voilà logs: {artifacts}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the session's enrichment cache (and an artifacts folder no test used).

    Runs before :func:`pytest_terminal_summary`, which names the artifacts folder if it stays.
    """
    artifacts = _session.get("artifacts")
    if artifacts is not None:
        os.environ.pop(ARTIFACTS_ENV, None)
        with contextlib.suppress(OSError):
            Path(str(artifacts)).rmdir()  # only when empty
    cache = _session.pop("cache", None)
    if cache is None:
        return
    shutil.rmtree(str(cache), ignore_errors=True)
    previous = _session.pop("cache_env", None)
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = str(previous)


def written_into_repository() -> list[str]:
    """Files created or changed in the repository since the session started (untracked ones)."""
    before = _session.get("files")
    after = _untracked_files()
    if before is None or after is None:
        return []
    return sorted(p for p, mtime in after.items() if before.get(p) != mtime)


@pytest.fixture(scope="session", autouse=True)
def _repository_stays_clean():
    """Fail the run if a test wrote files into the repository (``git status --ignored``)."""
    yield
    written = written_into_repository()
    if written:
        shown = "\n  ".join(written[:20]) + ("\n  …" if len(written) > 20 else "")
        pytest.fail(
            f"{len(written)} file(s) appeared or changed in the repository during the test run; "
            f"tests write under tmp_path (if another process, such as a benchmark or a server "
            f"run beside the tests, wrote them, run the tests again):\n  {shown}",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _deviance_work_ahead_done():
    """After each test, wait for the deviance pages' presets worked ahead (a background
    thread per page, ``Deviance._work_ahead``): none of them runs on into the next test (where
    it could meet that test's patched functions or counters)."""
    yield
    import threading

    for thread in threading.enumerate():
        if thread.name == "effortlens-deviance-ahead":
            thread.join(120)


# --- generated data sets -----------------------------------------------------------------------


def _generate(tmp_path_factory, name: str, **kwargs) -> Path:
    from effortlens.sample import generate

    out = tmp_path_factory.mktemp(name)
    generate(out, **kwargs)
    return out


@pytest.fixture(scope="session")
def tiny_planted(tmp_path_factory) -> Path:
    """A tiny planted data set (Parquet) with truth.json beside it."""
    return _generate(tmp_path_factory, "tiny_planted", size="tiny", mode="planted", seed=11)


@pytest.fixture(scope="session")
def tiny_null(tmp_path_factory) -> Path:
    """Same volumes as tiny_planted, nothing planted."""
    return _generate(tmp_path_factory, "tiny_null", size="tiny", mode="null", seed=11)


@pytest.fixture(scope="session")
def tiny_dirty(tmp_path_factory) -> Path:
    """A tiny CSV data set with bad rows of every kind and expected quarantine counts."""
    return _generate(tmp_path_factory, "tiny_dirty", size="tiny", mode="dirty", seed=11)


@pytest.fixture(scope="session")
def small_planted(tmp_path_factory) -> Path:
    """A small planted data set large enough for the planted-truth metric tests."""
    return _generate(tmp_path_factory, "small_planted", size="small", mode="planted", seed=23)


@pytest.fixture(scope="session")
def small_null(tmp_path_factory) -> Path:
    """Same volumes as small_planted, nothing planted."""
    return _generate(tmp_path_factory, "small_null", size="small", mode="null", seed=23)


# --- the same data sets loaded and enriched ----------------------------------------------------


class EnrichedSample(NamedTuple):
    """A generated data set's enriched facts and its ``truth.json``; unpacks as a pair."""

    enriched: Enriched
    truth: dict


def _enriched_sample(folder: Path, cache_dir: Path) -> EnrichedSample:
    from effortlens.enrich import enrich
    from effortlens.loading import load_folder
    from effortlens.settings import load_settings

    enriched = enrich(load_folder(folder, settings=load_settings()), cache_dir=cache_dir)
    return EnrichedSample(enriched, json.loads((folder / "truth.json").read_text()))


@pytest.fixture(scope="session")
def enrich_cache(tmp_path_factory) -> Path:
    """The enrichment cache the shared enriched fixtures use."""
    return tmp_path_factory.mktemp("enrich_cache")


@pytest.fixture(scope="session")
def small_planted_enriched(small_planted, enrich_cache) -> EnrichedSample:
    """``small_planted`` loaded with the default settings and enriched: ``(enriched, truth)``.

    Shared by the whole session: tests read it and never change it.
    """
    return _enriched_sample(small_planted, enrich_cache)


@pytest.fixture(scope="session")
def small_null_enriched(small_null, enrich_cache) -> EnrichedSample:
    """``small_null`` loaded with the default settings and enriched: ``(enriched, truth)``."""
    return _enriched_sample(small_null, enrich_cache)


@pytest.fixture(scope="session")
def tiny_planted_enriched(tiny_planted, enrich_cache) -> EnrichedSample:
    """``tiny_planted`` loaded with the default settings and enriched: ``(enriched, truth)``."""
    return _enriched_sample(tiny_planted, enrich_cache)


@pytest.fixture(scope="session")
def hand_enriched() -> Enriched:
    """A hand-made load, enriched: small enough to check every number by hand.

    Reps ``r1`` (Ann, team A), ``r2`` (Bo, B) and ``idle`` (Cy, B), all SMB AEs; six activities
    from Monday 2024-03-04 15:00 UTC (r1: email and call that day, admin the next, a meeting
    on day 9; r2: emails on days 2 and 9); three buyer actions: a reply 5 hours in, a held
    meeting on day 3 (weight 3, a verifier) and a reply on day 9 one hour after r1's meeting.
    """
    from datetime import UTC, datetime, timedelta

    import polars as pl

    from effortlens.enrich import enrich_tables
    from effortlens.schema import conform
    from effortlens.settings import load_settings

    t0 = datetime(2024, 3, 4, 15, tzinfo=UTC)
    reps = pl.DataFrame(
        {
            "rep_id": ["r1", "r2", "idle"],
            "rep_name": ["Ann", "Bo", "Cy"],
            "team": ["A", "B", "B"],
            "segment": ["SMB"] * 3,
            "role": ["AE"] * 3,
        }
    )
    activities = pl.DataFrame(
        {
            "activity_id": [f"a{i}" for i in range(6)],
            "rep_id": ["r1", "r1", "r1", "r2", "r2", "r1"],
            "ts": [t0 + timedelta(days=d) for d in (0, 0, 1, 2, 9, 9)],
            "activity_type": ["email", "call", "admin", "email", "email", "meeting"],
            "account_id": ["x"] * 6,
            "opportunity_id": ["o1", "o2", "o1", "o3", "o3", "o4"],
            "contact_id": ["c1", "c2", None, "c3", "c3", "c4"],
            "duration_min": [6.0, 12.0, 30.0, 6.0, 6.0, 45.0],
        }
    )
    actions = pl.DataFrame(
        {
            "action_id": ["b1", "b2", "b3"],
            "ts": [
                t0 + timedelta(hours=5),
                t0 + timedelta(days=3),
                t0 + timedelta(days=9, hours=1),
            ],
            "account_id": ["x"] * 3,
            "opportunity_id": ["o1", "o3", "o4"],
            "contact_id": ["c1", "c3", "c4"],
            "action_type": ["reply", "meeting_held", "reply"],
            "is_verifier": [False, True, False],
            "weight": [1.0, 3.0, 1.0],
        }
    )
    tables = {"reps": reps, "activities": activities, "buyer_actions": actions}
    return enrich_tables(
        {name: conform(frame, name).collect() for name, frame in tables.items()},
        settings=load_settings(),
    )


# --- browsers ----------------------------------------------------------------------------------


#: Slows every page's JavaScript this many times (Chrome's CPU throttling), to shake out tests
#: that read a page before its widgets have all drawn: ``EFFORTLENS_TEST_CPU_THROTTLE=4``.
THROTTLE_ENV = "EFFORTLENS_TEST_CPU_THROTTLE"


class _ThrottledBrowser:
    """A browser whose ``new_page`` pages run their JavaScript ``rate`` times slower."""

    def __init__(self, browser, rate: float) -> None:
        self._browser, self._rate = browser, rate

    def new_page(self, **kwargs):
        page = self._browser.new_page(**kwargs)
        session = page.context.new_cdp_session(page)
        session.send("Emulation.setCPUThrottlingRate", {"rate": self._rate})
        return page

    def __getattr__(self, name: str):
        return getattr(self._browser, name)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright, one for the whole session."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from browser_support import launch_chromium

    rate = float(os.environ.get(THROTTLE_ENV) or 1)
    with sync_api.sync_playwright() as p:
        chromium = launch_chromium(p)
        yield _ThrottledBrowser(chromium, rate) if rate > 1 else chromium
        chromium.close()
