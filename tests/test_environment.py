"""pyproject.toml and environment.yml name the same dependencies (conda users get what pip gets)."""

from __future__ import annotations

import re
import tomllib

from conftest import REPO

#: PyPI name -> conda-forge name where they differ.
CONDA_NAME = {"duckdb": "python-duckdb"}


def _pip_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    out = {}
    for requirement in requirements:
        name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", requirement).groups()
        out[CONDA_NAME.get(name.lower(), name.lower())] = spec.replace(" ", "")
    return out


def _conda_requirements() -> dict[str, str]:
    out = {}
    for line in (REPO / "environment.yml").read_text().splitlines():
        line = re.sub(r"\s+#.*$", "", line)  # a YAML comment: whitespace, then # to the end
        match = re.match(r"\s+-\s+([A-Za-z0-9_.-]+)\s*([<>=!].*)?$", line)
        if match and match.group(1) not in ("pip", "python", "conda-forge"):
            out[match.group(1).lower()] = (match.group(2) or "").replace(" ", "")
    return out


def test_environment_yml_lists_the_same_dependencies_and_bounds_as_pyproject():
    assert _conda_requirements() == _pip_requirements()


def test_environment_yml_is_a_conda_forge_python_311_spec_installing_the_package():
    text = (REPO / "environment.yml").read_text()
    assert re.search(r"channels:\s*\n\s+-\s+conda-forge", text)
    assert "- python=3.11" in text
    assert re.search(r"- pip:\s*\n\s+- -e \.", text)
