"""The code keeps one home for each name: ruff's rules (pyproject.toml) hold on every folder.

D1 (public names carry docstrings), SLF001 and PLC2701 (no private name crosses modules) are
part of the selected rules, so a private import or an undocumented public function fails here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ["lib", "widgets", "serve", "tests", "bench", "deploy", "conftest.py"]


def _ruff() -> str:
    found = Path(sys.executable).with_name("ruff")
    if found.exists():
        return str(found)
    on_path = shutil.which("ruff")
    if on_path is None:
        pytest.skip("ruff is not installed (make test installs it)")
    return on_path


def test_ruff_check_passes_with_the_private_name_and_docstring_rules():
    run = subprocess.run(
        [_ruff(), "check", "--no-cache", *FOLDERS], cwd=REPO, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_rules_catch_a_private_import_across_modules(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        '"""A probe."""\n\nfrom effortlens.loading.report import _private_name\n\n\n'
        "def public():\n    return _private_name\n"
    )
    run = subprocess.run(
        [_ruff(), "check", "--no-cache", "--config", str(REPO / "pyproject.toml"), str(probe)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "import-private-name" in run.stdout, run.stdout
    assert "undocumented-public-function" in run.stdout, run.stdout
