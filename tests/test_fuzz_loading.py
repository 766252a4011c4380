"""Fuzzing the loaders: seeded mutants of the tiny sample and of every CRM fixture.

Each case copies a seed folder (the tiny sample cut to its first rows, or a folder of
``tests/data/crm`` that loads cleanly as it is), applies one to three mutations drawn from a
seeded ``random.Random`` (see ``tests/fuzz_support.py``) and runs ``effortlens load DIR --json`` in
this process. Whatever the mutant holds:

- the exit status is 0 (a load report) or 2 (one message, prefixed, naming a file or the
  folder), never 3 (a bug) and never a traceback;
- every table keeps ``loaded + quarantined == read``;
- a text table's physical lines equal an independent count, and every one of them is read,
  blank or inside a quoted value;
- the case's peak memory stays bounded.

``EFFORTLENS_FUZZ_CASES`` sets how many cases run (default 200, about a minute);
``bench/fuzz.py`` runs thousands. The issue's fixed examples are in
``tests/test_loading_guard.py``.
"""

from __future__ import annotations

import os
import resource

import pytest
from fuzz_support import canonical_seed, check_load, crm_seeds, mutate, run_cli

CASES = int(os.environ.get("EFFORTLENS_FUZZ_CASES", "200"))
#: Most a single case may add to the test process's peak memory.
CASE_PEAK_MB = 512


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> list[tuple[str, object]]:
    """(name, folder) of every seed: the cut tiny sample, then the CRM fixtures that load."""
    from effortlens.sample import generate

    tiny = generate(tmp_path_factory.mktemp("fuzz_tiny"), size="tiny", seed=11, fmt="csv")
    found = [("canonical", canonical_seed(tiny.parent, tmp_path_factory.mktemp("fuzz_seed")))]
    for name, folder in crm_seeds().items():
        status, _, _ = run_cli(["load", str(folder), "--json"])
        if status == 0:  # a fixture being written beside the tests is not a seed yet
            found.append((name, folder))
    assert len(found) >= 4, found
    return found


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("number", range(CASES))
def test_a_mutated_folder_loads_or_says_why(number, seeds, tmp_path):
    # a third of the cases mutate the canonical sample, the rest each CRM fixture in turn
    name, folder = seeds[0] if number % 3 == 0 else seeds[1 + number % (len(seeds) - 1)]
    case = mutate(folder, tmp_path / "case", seed=number, seed_name=name)
    before = _peak_mb()

    problems = check_load(case)

    assert not problems, case.describe() + "\n" + "\n".join(problems)
    assert _peak_mb() - before < CASE_PEAK_MB, case.describe()
