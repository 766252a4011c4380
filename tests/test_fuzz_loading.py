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
- the load's own peak memory (``VmHWM`` above what the process held before it, the peak
  reset first) stays under ``fuzz_support.CASE_PEAK_MB``.

``EFFORTLENS_FUZZ_CASES`` sets how many cases run (default 200, about a minute);
``bench/fuzz.py`` runs thousands. The inputs issue 10 found are fixed examples
(``fuzz_support.FIXED_EXAMPLES``), built afresh and checked the same way, each with the exit
status and message it must give; those that need a monkeypatch (an unreadable file, a
panic) or a build (a damaged cache) are fixed examples of ``tests/test_loading_guard.py`` and
``tests/test_build.py``.
"""

from __future__ import annotations

import os

import pytest
from fuzz_support import (
    FIXED_EXAMPLES,
    check_load,
    crm_seeds,
    fixed_example,
    mutate,
    seed_folders,
)

CASES = int(os.environ.get("EFFORTLENS_FUZZ_CASES", "200"))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> list[tuple[str, object]]:
    """(name, folder) of every seed: the cut tiny sample, then the CRM fixtures that load
    (generic CSVs through their filled-in mapping template)."""
    from effortlens.sample import generate

    tiny = generate(tmp_path_factory.mktemp("fuzz_tiny"), size="tiny", seed=11, fmt="csv")
    found = seed_folders(tiny.parent, tmp_path_factory.mktemp("fuzz_seeds"))
    assert len(found) >= len(crm_seeds()) - 1, [name for name, _ in found]
    return found


@pytest.mark.parametrize("number", range(CASES))
def test_a_mutated_folder_loads_or_says_why(number, seeds, tmp_path):
    # a third of the cases mutate the canonical sample, the rest each CRM fixture in turn
    name, folder = seeds[0] if number % 3 == 0 else seeds[1 + number % (len(seeds) - 1)]
    case = mutate(folder, tmp_path / "case", seed=number, seed_name=name)

    problems = check_load(case)  # exit status, message, invariant, lines, memory

    assert not problems, case.describe() + "\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The whole tiny sample as CSV, as issue 10 reproduced its findings on."""
    from effortlens.sample import generate

    return generate(tmp_path_factory.mktemp("fixed_tiny"), size="tiny", seed=11, fmt="csv").parent


@pytest.mark.parametrize("name", list(FIXED_EXAMPLES))
def test_each_input_issue_10_found_is_a_fixed_example(name, tiny, tmp_path):
    _, _, status, message = FIXED_EXAMPLES[name]
    case = fixed_example(name, tiny, tmp_path / "case")

    problems = check_load(case)

    assert not problems, case.describe() + "\n" + "\n".join(problems)
    assert case.status == status, case.message
    if message is not None:
        assert case.message.startswith("effortlens: "), case.message
        assert message in case.message.splitlines()[0]
