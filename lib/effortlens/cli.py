"""The ``effortlens`` command line: sample data, loading any source, and every metric family.

Each subcommand is a thin shell over a ``lib`` function; the functions do the work and can be
called from scripts and notebooks the same way. Metric commands print a table, or JSON with
``--json``, so they can be scheduled without Jupyter.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from effortlens.sample import command as sample_command


def _cmd_sample(args: argparse.Namespace, *, parser: argparse.ArgumentParser) -> int:
    return sample_command.run(args, sample_command.out_dir(args, parser))


def _cmd_load(args: argparse.Namespace) -> int:
    from effortlens.adapters import load_command_text

    text = load_command_text(
        args.data_dir,
        settings=_settings(args),
        mapping=args.mapping,
        format=args.format,
        as_json=args.json,
    )
    print(text)
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from effortlens.adapters import detect_command_text

    print(detect_command_text(args.data_dir))
    return 0


def _cmd_mapping_template(args: argparse.Namespace) -> int:
    from effortlens.adapters import mapping_template_text

    print(mapping_template_text(args.data_dir), end="")
    return 0


def _settings(args: argparse.Namespace):
    """The settings of the data folder: ``--settings``, else DIR/settings.toml, else defaults
    (the same rule the apps follow)."""
    from effortlens.settings import settings_for_folder

    return settings_for_folder(args.data_dir, getattr(args, "settings", None))


def _enriched(args: argparse.Namespace):
    """Load any source (canonical, Salesforce, HubSpot, mapped CSV) and enrich it (cached)."""
    from effortlens.adapters import load_any
    from effortlens.enrich import enrich

    data = load_any(
        Path(args.data_dir), settings=_settings(args), mapping=args.mapping, format=args.format
    )
    return enrich(data, cache_dir=args.cache_dir)


def _print_frame(frame: pl.DataFrame, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(json.loads(frame.write_json()), indent=2))
        return
    if frame.height == 0:
        print("(no rows)")
        return
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=200,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        fmt_str_lengths=60,
    ):
        print(frame.with_columns(pl.col(floats).round(4)) if floats else frame)


def _metric_command(compute: Callable[[Any, argparse.Namespace], pl.DataFrame]):
    def run(args: argparse.Namespace) -> int:
        _print_frame(compute(_enriched(args), args), as_json=args.json)
        return 0

    return run


def _roe(enriched, args) -> pl.DataFrame:
    from effortlens.roe import roe_table

    return roe_table(enriched, by=args.by)


def _deviants(enriched, args) -> pl.DataFrame:
    from effortlens.deviance import deviants_table

    return deviants_table(enriched, metric=args.metric, min_volume=args.min_volume)


#: The flow columns the text table shows (``--json`` has them all).
FLOW_TEXT_COLUMNS = (
    "entered",
    "conversion",
    "leakage",
    "no_decision_rate",
    "median_days",
    "p90_days",
    "verification_rate",
    "blocked",
)


def _flow(enriched, args) -> pl.DataFrame:
    from effortlens.flow import flow_table

    table = flow_table(enriched, by=args.by)
    if args.json:
        return table
    keys = [c for c in table.columns if c not in FLOW_TEXT_COLUMNS and c not in _FLOW_DETAIL]
    return table.select(*keys, *FLOW_TEXT_COLUMNS)


_FLOW_DETAIL = {
    "stage_index",
    "reached",
    "skipped",
    "converted",
    "leaked",
    "no_decision",
    "open",
    "open_share",
    "moves",
    "verified",
    "verified_recorded",
}


def _habits(enriched, args) -> pl.DataFrame:
    from effortlens.habits import habits_table

    return habits_table(enriched)


def _organisation(enriched, args) -> pl.DataFrame:
    from effortlens.organisation import organisation_table

    return organisation_table(enriched)


def _cmd_findings(args: argparse.Namespace) -> int:
    from effortlens.findings import findings_text, team_findings

    found = team_findings(_enriched(args))
    if args.json:
        print(json.dumps([{"topic": f.topic, "text": f.plain} for f in found], indent=2))
    else:
        print(findings_text(found) or "(no findings)")
    return 0


def _cmd_intervention(args: argparse.Namespace) -> int:
    from effortlens.interventions import intervention_effect

    enriched = _enriched(args)
    known = enriched.tables["interventions"]["intervention_id"].to_list()
    if args.id not in known:
        print(
            f"effortlens: no intervention {args.id!r} in {args.data_dir}; "
            f"known: {', '.join(known) or '(none)'}",
            file=sys.stderr,
        )
        return 2
    effect = intervention_effect(
        enriched, intervention_id=args.id, metric=args.metric, n_boot=args.n_boot, seed=args.seed
    )
    if args.json:
        print(json.dumps(effect, indent=2, default=str))
    else:
        width = max(len(k) for k in effect)
        for key, value in effect.items():
            shown = f"{value:.4f}" if isinstance(value, float) else value
            print(f"{key:<{width}}  {shown}")
    return 0


def _data_args(p: argparse.ArgumentParser, *, as_json: bool = True) -> None:
    p.add_argument("data_dir", metavar="DATA", help="data folder (canonical or a CRM export)")
    p.add_argument("--settings", metavar="FILE", help="settings TOML (defaults serve the sample)")
    p.add_argument("--mapping", metavar="FILE", help="mapping TOML for exports in another shape")
    p.add_argument(
        "--format",
        choices=["canonical", "salesforce", "hubspot", "mapping"],
        help="override the detected format",
    )
    if as_json:
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="effortlens", description="See what sales effort achieves with buyers."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help=sample_command.HELP)
    sample_command.add_arguments(p)
    p.set_defaults(func=functools.partial(_cmd_sample, parser=p))

    p = sub.add_parser("load", help="load a data folder and print its load report")
    _data_args(p)
    p.set_defaults(func=_cmd_load)

    p = sub.add_parser("detect", help="say which export format a folder holds, or what is missing")
    p.add_argument("data_dir", metavar="DIR")
    p.set_defaults(func=_cmd_detect)

    p = sub.add_parser("mapping-template", help="print a mapping TOML to fill in for a folder")
    p.add_argument("data_dir", metavar="DIR")
    p.set_defaults(func=_cmd_mapping_template)

    metric_commands = [
        ("roe", "return on effort by a slice", _roe),
        ("deviants", "positive and negative deviants against their peers", _deviants),
        ("flow", "buyer-journey flow per stage", _flow),
        ("habits", "timing, cadence and sequence findings", _habits),
        ("organisation", "time for selling, internal load, attrition per team", _organisation),
    ]
    for name, help_text, compute in metric_commands:
        p = sub.add_parser(name, help=help_text)
        _data_args(p)
        p.add_argument("--cache-dir", metavar="DIR", help="enriched-facts cache folder")
        p.set_defaults(func=_metric_command(compute))
        if name == "roe":
            p.add_argument(
                "--by",
                default="rep",
                choices=["rep", "team", "segment", "role", "peer_group", "activity_type", "week"],
            )
        elif name == "deviants":
            p.add_argument(
                "--metric", choices=["response_rate", "win_rate"], default="response_rate"
            )
            p.add_argument("--min-volume", type=int, help="fewest trials to be called a deviant")
        elif name == "flow":
            p.add_argument(
                "--by", choices=["segment", "team", "rep_id"], help="one table per group"
            )

    p = sub.add_parser(
        "findings", help="the habits, deviance and journey findings in words (as the pages say)"
    )
    _data_args(p)
    p.add_argument("--cache-dir", metavar="DIR", help="enriched-facts cache folder")
    p.set_defaults(func=_cmd_findings)

    # `effortlens serve ...` is handed to effortlens_serve (Jupyter, Voila) before parsing here;
    # listed so that `effortlens --help` shows it.
    sub.add_parser("serve", help="publish the workbooks to a team (login)", add_help=False)

    p = sub.add_parser("intervention", help="difference-in-differences of one intervention")
    _data_args(p)
    p.add_argument("--cache-dir", metavar="DIR", help="enriched-facts cache folder")
    p.add_argument("--id", required=True, help="intervention_id")
    p.add_argument(
        "--metric",
        choices=["response_rate", "roe_per_100", "activities_per_week"],
        default="response_rate",
    )
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples over reps")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_intervention)
    return parser


def main(argv: list[str] | None = None) -> int:
    from effortlens.adapters import MappingError
    from effortlens.loading import DataError
    from effortlens.loading.report import LoadBug
    from effortlens.settings import SettingsError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        from effortlens_serve import main as serve

        return serve(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LoadBug as err:
        print(f"effortlens: {err}", file=sys.stderr)
        return 3
    except (SettingsError, DataError, MappingError) as err:
        print(f"effortlens: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unreadable folder, settings or mapping file
        where = err.filename or getattr(args, "data_dir", "")
        print(f"effortlens: {where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except (Exception, pl.exceptions.PanicException) as err:  # a panic is a BaseException
        where = getattr(args, "data_dir", None) or args.command
        print(f"effortlens: {LoadBug.of(str(where), err)}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
