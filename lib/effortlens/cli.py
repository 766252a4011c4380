"""The ``effortlens`` command line: generate sample data, load and check a data folder.

Each subcommand is a thin shell over a ``lib`` function; the functions do the work and can be
called from scripts and notebooks the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_sample(args: argparse.Namespace) -> int:
    from effortlens.sample import generate

    truth = generate(
        Path(args.out_dir), size=args.size, mode=args.mode, seed=args.seed, fmt=args.format
    )
    print(f"wrote {args.mode} sample ({args.size}, seed {args.seed}) to {args.out_dir}")
    print(f"truth: {truth}")
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    from effortlens.load import DataError, load_folder
    from effortlens.settings import load_settings

    settings = load_settings(args.settings)
    try:
        data = load_folder(Path(args.data_dir), settings=settings)
    except DataError as err:
        print(f"effortlens: cannot load {args.data_dir}: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(data.report.to_dict(), indent=2))
    else:
        print(data.report.to_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="effortlens", description="See what sales effort achieves with buyers."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="write a deterministic sample data set with planted truths")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--size", default="default", help="tiny, small, default, 1m, 10m, or N activities")
    p.add_argument("--mode", choices=["planted", "null", "dirty"], default="planted")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("load", help="load a data folder and print its load report")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--settings", metavar="FILE", help="settings TOML (defaults serve the sample)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_load)
    return parser


def main(argv: list[str] | None = None) -> int:
    from effortlens.settings import SettingsError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as err:
        print(f"effortlens: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
