"""The ``sample`` command: ``python -m effortlens.sample`` and ``effortlens sample``.

Both share :func:`add_arguments` and :func:`run`. This module imports no other command, so
the command line (:mod:`effortlens.cli`) uses it without an import cycle.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--size", "tiny", "--out", "somewhere"])
>>> out_dir(args, parser), args.mode, args.seed
('somewhere', 'planted', 7)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from effortlens.sample.sizes import FORMATS, MODES

#: One line on what the command does.
HELP = "write a deterministic sample data set with planted truths"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sample command's arguments to ``parser`` (the folder as ``OUT_DIR`` or ``--out``).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> parser.parse_args(["x", "--mode", "null"]).mode
    'null'
    """
    parser.add_argument("out_dir", metavar="OUT_DIR", nargs="?", help="folder to write into")
    parser.add_argument("--out", metavar="DIR", help="folder to write into (same as OUT_DIR)")
    parser.add_argument(
        "--size", default="default", help="tiny, small, default, 1m, 10m, 100m, or N activities"
    )
    parser.add_argument("--mode", choices=list(MODES), default="planted")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", choices=list(FORMATS), default="parquet")


def out_dir(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The folder named by ``OUT_DIR`` or ``--out``; a usage error if neither or two differ.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> out_dir(parser.parse_args(["a", "--out", "a"]), parser)
    'a'
    """
    given = {d for d in (args.out_dir, args.out) if d is not None}
    if len(given) != 1:
        parser.error("name one folder to write into: OUT_DIR or --out DIR")
    return given.pop()


def run(args: argparse.Namespace, folder: str) -> int:
    """Generate the data set ``args`` describes into ``folder`` and say where; the exit code.

    Arguments the generator refuses (an unknown size, dirty data too large) are reported on
    standard error with exit code 2.
    """
    from effortlens.sample.generator import generate

    try:
        truth = generate(
            Path(folder), size=args.size, mode=args.mode, seed=args.seed, fmt=args.format
        )
    except ValueError as err:
        print(f"effortlens: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.mode} sample ({args.size}, seed {args.seed}) to {folder}")
    print(f"truth: {truth}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m effortlens.sample [--size …] [--mode …] [--seed N] [--format …] OUT_DIR``."""
    parser = argparse.ArgumentParser(prog="python -m effortlens.sample", description=HELP)
    add_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return run(args, out_dir(args, parser))
