"""Fuzz the loaders at length: thousands of seeded mutants of the tiny sample and the CRM fixtures.

The same mutator and checks as ``tests/test_fuzz_loading.py`` (``tests/fuzz_support.py``), for as
many cases as asked. Failing cases are copied to ``--keep`` with a ``CASE.txt`` saying how to
rebuild them (the seed folder and the seed number), so each can become a fixed example.

    .venv/bin/python bench/fuzz.py --cases 2000
    .venv/bin/python bench/fuzz.py --cases 300 --only salesforce --start 5000 --keep /tmp/fuzz

Prints one line per failure, then the outcomes (exit status counts), the time per seed folder
and the peak memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fuzz_support import canonical_seed, check_load, crm_seeds, mutate, run_cli  # noqa: E402


def _seeds(work: Path) -> list[tuple[str, Path]]:
    from effortlens.sample import generate

    tiny = generate(work / "tiny", size="tiny", seed=11, fmt="csv").parent
    found = [("canonical", canonical_seed(tiny, work / "seed_canonical"))]
    for name, folder in crm_seeds().items():
        if run_cli(["load", str(folder), "--json"])[0] == 0:
            found.append((name, folder))
        else:
            print(f"skipped {name}: it does not load as it is", file=sys.stderr)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--start", type=int, default=0, help="first seed number")
    parser.add_argument("--only", help="one seed folder (canonical, salesforce, hubspot, ...)")
    parser.add_argument("--keep", type=Path, help="copy failing cases into this folder")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="effortlens-fuzz-"))
    try:
        seeds = _seeds(work)
        if args.only:
            seeds = [s for s in seeds if s[0] == args.only]
            if not seeds:
                parser.error(f"no seed folder {args.only!r}")
        outcomes: Counter = Counter()
        seconds: dict[str, list[float]] = defaultdict(list)
        failures = 0
        started = time.perf_counter()
        for number in range(args.start, args.start + args.cases):
            if len(seeds) == 1:
                name, folder = seeds[0]
            else:
                name, folder = seeds[0] if number % 3 == 0 else seeds[1 + number % (len(seeds) - 1)]
            t = time.perf_counter()
            case = mutate(folder, work / "case", seed=number, seed_name=name)
            problems = check_load(case)
            seconds[name].append(time.perf_counter() - t)
            outcomes[case.status] += 1
            if problems:
                failures += 1
                print(f"FAIL {case.describe()}\n  " + "\n  ".join(problems), flush=True)
                if args.keep:
                    kept = args.keep / f"{name}-{number}"
                    shutil.rmtree(kept, ignore_errors=True)
                    shutil.copytree(case.folder, kept)
                    (kept / "CASE.txt").write_text(case.describe() + "\n" + "\n".join(problems))
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{args.cases} cases in {elapsed:.0f} s, {failures} failing")
    print("exit status:", dict(sorted(outcomes.items(), key=str)))
    for name, times in seconds.items():
        print(f"  {name:28} {len(times):5} cases  {sum(times) / len(times):.2f} s each")
    print(f"peak memory of the process: {peak:,.0f} MB")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
