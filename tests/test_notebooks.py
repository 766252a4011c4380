"""Every workbook is committed clean and runs top to bottom headless on generated data."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
WORKBOOKS = sorted((REPO / "workbooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_the_start_here_workbook_exists():
    assert REPO / "workbooks" / "00_start_here.ipynb" in WORKBOOKS


@pytest.mark.parametrize("path", WORKBOOKS, ids=lambda p: p.name)
def test_workbook_is_committed_without_outputs_or_metadata(path):
    nb = nbformat.read(path, as_version=4)
    problems = []
    if set(nb.metadata) != {"kernelspec"}:
        problems.append(f"notebook metadata {sorted(nb.metadata)} (only kernelspec allowed)")
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append("kernelspec is not python3")
    for i, cell in enumerate(nb.cells):
        if cell.metadata:
            problems.append(f"cell {i} has metadata {dict(cell.metadata)}")
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            problems.append(f"cell {i} has outputs or an execution count")
    assert not problems, f"{path.name}: run `make strip`: " + "; ".join(problems)


@pytest.mark.parametrize("path", WORKBOOKS, ids=lambda p: p.name)
def test_workbook_runs_headless_without_errors(path, tiny_planted):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env={**os.environ, "EFFORTLENS_DATA": str(tiny_planted)})

    errors = [
        f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error" or (out.output_type == "stream" and out.name == "stderr")
    ]
    assert not errors, errors

    # the last cell displays the one root widget of the app
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert any(WIDGET_VIEW in out.get("data", {}) for out in last.outputs), last.outputs

    # no view shows a failure message (the widgets' state is saved with the notebook)
    shown = _widget_texts(nb)
    failures = [text for text in shown if 'class="el-error"' in text]
    assert not failures, failures
    if path.name == "00_start_here.ipynb":
        assert any("The data is sound" in text for text in shown), "no load report headline"


def _widget_texts(nb) -> list[str]:
    """The text values of every widget the notebook left on the page."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return [
        model["state"]["value"]
        for model in state.get("state", {}).values()
        if isinstance(model.get("state", {}).get("value"), str)
    ]
