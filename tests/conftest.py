"""Shared fixtures: small generated data sets, made once per test session (never committed)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright, one for the whole session."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from _browser import launch_chromium

    with sync_api.sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()
