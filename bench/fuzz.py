"""Fuzz the loaders at length: thousands of seeded mutants of the tiny sample and the CRM fixtures.

The same mutator and checks as ``tests/test_fuzz_loading.py`` (``tests/fuzz_support.py``), for as
many cases as asked. Failing cases are copied to ``--keep`` with a ``CASE.txt`` saying how to
rebuild them (the seed folder and the seed number), so each can become a fixed example.

    .venv/bin/python bench/fuzz.py --cases 2000
    .venv/bin/python bench/fuzz.py --cases 300 --only salesforce --start 5000 --keep /tmp/fuzz

Prints one line per failure, then the outcomes (exit status counts), the time per seed folder
and the largest memory one load took (its own peak: ``VmHWM`` above what the process held
before it, the peak reset before each case; a case over ``fuzz_support.CASE_PEAK_MB`` fails).
``--fixed`` runs the inputs issue 10 found (``fuzz_support.FIXED_EXAMPLES``) first.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fuzz_support import (  # noqa: E402
    FIXED_EXAMPLES,
    check_load,
    crm_seeds,
    fixed_example,
    mutate,
    seed_folders,
)


def _seeds(work: Path) -> list[tuple[str, Path]]:
    found = seed_folders(_tiny(work), work)
    missing = sorted(set(crm_seeds()) - {name for name, _ in found})
    if missing:
        print(f"skipped {', '.join(missing)}: they do not load as they are", file=sys.stderr)
    return found


def _tiny(work: Path) -> Path:
    from effortlens.sample import generate

    folder = work / "tiny"
    if not (folder / "reps.csv").exists():
        generate(folder, size="tiny", seed=11, fmt="csv")
    return folder


def _fixed(work: Path) -> int:
    """Run the fixed examples; return how many failed."""
    failures = 0
    for name, (_, _, status, message) in FIXED_EXAMPLES.items():
        case = fixed_example(name, _tiny(work), work / "fixed")
        problems = check_load(case)
        if case.status != status:
            problems.append(f"exit status {case.status}, expected {status}")
        if message is not None and message not in case.message:
            problems.append(f"message {case.message[:200]!r} lacks {message!r}")
        print(
            f"fixed: {name}: {'FAIL ' + '; '.join(problems) if problems else 'ok'}"
            f" ({case.peak_mb:,.0f} MB)",
            flush=True,
        )
        failures += bool(problems)
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--start", type=int, default=0, help="first seed number")
    parser.add_argument("--only", help="one seed folder (canonical, salesforce, hubspot, ...)")
    parser.add_argument("--keep", type=Path, help="copy failing cases into this folder")
    parser.add_argument("--fixed", action="store_true", help="run the fixed examples first")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="effortlens-fuzz-"))
    peak = 0.0
    try:
        failures = _fixed(work) if args.fixed else 0
        seeds = _seeds(work)
        if args.only:
            seeds = [s for s in seeds if s[0] == args.only]
            if not seeds:
                parser.error(f"no seed folder {args.only!r}")
        outcomes: Counter = Counter()
        seconds: dict[str, list[float]] = defaultdict(list)
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
            peak = max(peak, case.peak_mb)
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
    print(f"\n{args.cases} cases in {elapsed:.0f} s, {failures} failing")
    print("exit status:", dict(sorted(outcomes.items(), key=str)))
    for name, times in seconds.items():
        print(f"  {name:28} {len(times):5} cases  {sum(times) / len(times):.2f} s each")
    print(f"largest memory one load took (its own VmHWM above the process's): {peak:,.0f} MB")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
