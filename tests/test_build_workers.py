"""The partitioned build's partitions run several at once (``limits.build_workers``): each in a
process of its own, the results gathered in partition order, so the build writes the very same
files as one partition at a time."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens import partitioned
from effortlens.facts import BUILD_STEPS, FACTS_LAYOUT, Progress, open_build
from effortlens.partitioned import build_workers, each_in_children
from effortlens.settings import SettingsError, load_settings

#: Files whose rows within a rep come in the order of a group-by (not decided, in any build).
UNORDERED = ("habit_cells/", "practice_cells/", "practice_periods/")


def _settings(**limits):
    s = load_settings()
    return dataclasses.replace(s, limits=dataclasses.replace(s.limits, **limits))


class _Steps(Progress):
    """A progress bar that keeps every step it is told."""

    def __init__(self, said: list[str]) -> None:
        super().__init__(BUILD_STEPS, stream=None)
        self.said = said

    def step(self, name: str) -> None:
        self.said.append(name)
        super().step(name)


#: What the enrichment's step says when pass 1 of the view facts runs in its processes.
FUSED = "each with its view facts' pass 1"


def test_two_partitions_at_a_time_write_the_same_files_as_one(tiny_planted, tmp_path, monkeypatch):
    # every partition of the enrichment and of both view-fact passes in a process of its own
    monkeypatch.setattr(partitioned, "ISOLATE_ABOVE_ROWS", 0)
    steps: dict[int, list[str]] = {1: [], 2: []}
    built = {}
    for workers in (1, 2):
        settings = _settings(
            partition_rows=6_000, partition_above_rows=6_000, build_workers=workers
        )
        assert build_workers(settings) == workers
        built[workers] = open_build(
            tiny_planted,
            settings=settings,
            cache_dir=tmp_path / str(workers),
            partitioned=True,
            progress=_Steps(steps[workers]),
        )
    one, two = (json.loads((built[w].path / "manifest.json").read_text()) for w in (1, 2))
    parts = [f for f in one["files"] if f.startswith(FACTS_LAYOUT["activities"] + "/")]
    assert len(parts) >= 3  # several partitions, so two ran at once
    assert set(one["files"]) == set(two["files"])
    for relative, entry in one["files"].items():  # byte for byte
        if entry["sha256"] == two["files"][relative]["sha256"]:
            continue
        # cells come by rep, a rep's rows in its group-by's order: not decided, two builds of
        # one partition at a time differ there too; the same rows and sums
        assert relative.startswith(UNORDERED), relative
        a, b = (pl.read_parquet(built[w].path / relative) for w in (1, 2))
        assert a.height == b.height > 0
        assert_frame_equal(a.sort(a.columns), b.sort(b.columns), check_exact=False, rel_tol=1e-12)
    n = len(parts)
    for workers in (1, 2):  # each pass says how many at a time, then what is done
        said = steps[workers]
        # pass 1 of the view facts runs in each partition's process with its enrichment
        assert f"enrich: {n} partitions, {workers} at a time, {FUSED}" in said
        # no pass 2: pass 1 wrote the touches as the day order reads them
        assert not [s for s in said if s.startswith("view facts: pass 2")]
        assert "view facts: touches in day order" in said
        assert not [s for s in said if s.startswith("view facts: pass 1")]
        done = [s for s in said if s.startswith("enrich: partition ")]
        assert done == [f"enrich: partition {k}/{n} done" for k in range(1, n + 1)]


def test_children_run_at_once_and_answer_in_the_calls_order(tmp_path):
    flag = tmp_path / "second-started"
    # the first call waits for the second to have started: it can only see it if they overlap
    first = (
        f"for i in $(seq 600); do [ -e {flag} ] && break; sleep 0.1; done;"
        f" ls {flag} >/dev/null && echo saw"
    )
    calls = [((first,), {}), ((f"touch {flag}; echo second",), {})]
    finished = []
    results = each_in_children(
        subprocess.getoutput, calls, isolate=True, workers=2, done=finished.append
    )
    assert results == ["saw", "second"]
    assert finished == [1, 2]


def test_a_failing_partition_fails_the_build_step():
    with pytest.raises(ValueError, match="invalid literal"):
        each_in_children(int, [(("1",), {}), (("x",), {})], isolate=True, workers=2)


def test_in_this_process_one_after_another_when_not_isolated():
    seen = []
    assert each_in_children(
        len, [(("ab",), {}), (("c",), {})], isolate=False, workers=2, done=seen.append
    ) == [2, 1]
    assert seen == [1, 2]


def test_the_setting_defaults_to_automatic_and_refuses_negative_counts(tmp_path):
    assert load_settings().limits.build_workers == 0
    assert 1 <= build_workers(load_settings()) <= 2
    # a memory budget that holds one partition's process works one partition at a time
    assert build_workers(_settings(memory_budget_mb=1_500, partition_rows=4_000_000)) == 1
    assert build_workers(_settings(memory_budget_mb=64, partition_rows=1_000)) >= 1
    own = tmp_path / "settings.toml"
    own.write_text("[limits]\nbuild_workers = 3\n")
    assert load_settings(own).limits.build_workers == 3
    own.write_text("[limits]\nbuild_workers = -1\n")
    with pytest.raises(SettingsError, match="build_workers"):
        load_settings(own)
