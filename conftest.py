"""Doctests of ``lib/`` and ``widgets/`` (``make test`` collects them with ``--doctest-modules``).

Each example runs in a temporary folder of its own: the working directory and the folder
``tempfile`` writes into are that example's ``tmp_path``, so no example reads data lying
around in the repository or writes into it. Examples that need real data carry
``# doctest: +SKIP``. The test suite's fixtures live in ``tests/conftest.py``.
"""

from __future__ import annotations

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _doctest_in_tmp_path(request, tmp_path, monkeypatch):
    """Run each doctest with ``tmp_path`` as working directory and temporary folder."""
    if not isinstance(request.node, pytest.Function):  # a doctest, not a test function
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield
