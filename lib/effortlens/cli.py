"""The ``effortlens`` command line: sample data, loading any source, and every metric family.

Each subcommand is a thin shell over a ``lib`` function; the functions do the work and can be
called from scripts and notebooks the same way. Metric commands print a table, or JSON with
``--json``, so they can be scheduled without Jupyter.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
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
        by_file=args.by_file,
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
    """The facts of any source (canonical, Salesforce, HubSpot, mapped CSV) from its current
    build (effortlens.facts): built, or rebuilt when stale, saying so on stderr."""
    from effortlens.facts import open_build

    built = _open_build(args, open_build)
    args.load_report = getattr(built.data, "report", None)  # for effortlens.coverage
    return built.enriched


def _open_build(args: argparse.Namespace, open_build, **options):
    def say(message: str) -> None:
        print(f"effortlens: {message}", file=sys.stderr)

    folder = Path(args.data_dir)
    settings = _settings(args) if getattr(args, "settings", None) else None
    return open_build(
        folder,
        settings=settings,
        mapping=args.mapping,
        format=args.format,
        cache_dir=getattr(args, "cache_dir", None),
        say=say,
        **options,
    )


def _wait_for(child, timeout: float = 300.0) -> None:
    """Wait for a child process (at most ``timeout`` seconds, then end it)."""
    import subprocess

    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _cmd_build(args: argparse.Namespace) -> int:
    if args.engine == "spark":
        from effortlens import spark_build

        return spark_build.build_command(args)
    from effortlens.facts import open_build

    partitioned = getattr(args, "partitioned", None)
    options = {} if partitioned is None else {"partitioned": partitioned}
    bundle = None
    if args.warm:  # a cache folder's first notebook kernel would make the chart module
        from effortlens.warm import prepare_chart_bundle

        bundle = prepare_chart_bundle(getattr(args, "cache_dir", None))  # beside the build
    try:
        built = _open_build(args, open_build, force=args.force, **options)
        warmed = None
        if args.warm:  # the first viewer's kernel then finds the files in memory
            from effortlens.warm import warm_build, warm_kernel_imports

            warm_kernel_imports()  # what a build pushed out of memory of the kernel's imports
            warmed = warm_build(built.path)
    finally:
        if bundle is not None:
            _wait_for(bundle)
    files = built.manifest["files"]
    size = sum(f["bytes"] for f in files.values())
    state = f"built ({built.rebuilt})" if built.rebuilt else "current (nothing to do)"
    if args.json:
        print(json.dumps({"build": str(built.path), "state": state, **built.manifest}, indent=2))
    else:
        print(f"{args.data_dir}: {state}")
        print(f"facts: {built.path} ({len(files)} files, {size / 2**20:,.1f} MiB)")
        if "build" in built.manifest:
            print(f"build: {built.manifest['build']}")
        if warmed is not None:
            print(f"warmed: {warmed}")
        print(built.data.report.to_text())
    return 0


#: Words that mark a share (printed as a percentage in the human tables).
_SHARE_WORDS = ("rate", "share", "conversion", "leakage", "selling_time", "internal_load")
#: Columns a person reads, per command (``--wide`` or ``--json`` give them all); the key
#: columns of a table (its ``by``) are kept in front whatever the command.
COMPACT_COLUMNS: dict[str, tuple[str, ...]] = {
    "roe": ("activities", "response_rate", "roe_per_100", "no_impact_share"),
    "deviants": (
        "rep_name",
        "peer_group",
        "direction",
        "rate",
        "peer_rate",
        "volume",
        "q_value",
    ),
    "flow": (
        "stage",
        "entered",
        "conversion",
        "leakage",
        "lost_stage_unknown",
        "median_days",
        "verification_rate",
        "blocked",
    ),
    "habits": ("finding", "pattern", "activities", "response_rate", "lift"),
    "organisation": (
        "team",
        "headcount",
        "selling_time",
        "internal_load",
        "annualised_attrition",
        "response_rate",
    ),
}
#: Row keys of ``roe`` per ``--by`` (shown before the figures).
_ROE_KEYS = {"rep": ("rep_name", "team"), "peer_group": ("peer_group",), "week": ("week",)}


#: p- and q-values: three decimals, and "<0.001" rather than a rounded 0.0.
_PROBABILITIES = ("p_value", "q_value")


def _is_share(column: str) -> bool:
    return any(word in column for word in _SHARE_WORDS)


def _compact(frame: pl.DataFrame, command: str, args: argparse.Namespace) -> pl.DataFrame:
    """The columns a person reads: the command's own, with the table's keys first, and
    without columns that are empty throughout (e.g. times in stage not measured)."""
    wanted = list(COMPACT_COLUMNS.get(command, frame.columns))
    if command == "roe":
        by = getattr(args, "by", "rep")
        wanted = [*_ROE_KEYS.get(by, (by,)), *wanted]
    elif command == "flow" and getattr(args, "by", None):
        wanted = [args.by, *wanted]
    shown = [c for c in dict.fromkeys(wanted) if c in frame.columns]
    shown = [c for c in shown if frame[c].null_count() < frame.height or c in frame.columns[:1]]
    if "lost_stage_unknown" in shown and not frame["lost_stage_unknown"].sum():
        shown.remove("lost_stage_unknown")  # only derived stage history has such losses
    return frame.select(shown) if shown else frame


def _human(frame: pl.DataFrame) -> pl.DataFrame:
    """Shares as percentages, other decimals rounded, missing values as a dash."""
    out = []
    for column, dtype in frame.schema.items():
        if dtype.is_float() and _is_share(column):
            value = (pl.col(column) * 100).round(1).cast(pl.String) + "%"
        elif dtype.is_float() and column in _PROBABILITIES:
            value = (
                pl.when(pl.col(column) < 0.001)
                .then(pl.lit("<0.001"))
                .otherwise(pl.col(column).round(3).cast(pl.String))
            )
        elif dtype.is_float():
            value = pl.col(column).round(2).cast(pl.String)
        else:
            value = pl.col(column).cast(pl.String)
        out.append(value.fill_null("—").alias(column))
    return frame.select(out)


def _print_frame(
    frame: pl.DataFrame,
    *,
    as_json: bool,
    command: str = "",
    args: argparse.Namespace | None = None,
    empty: str = "",
) -> None:
    """Print a metric table: JSON, or a compact human table (``--wide``: every column).

    An empty table prints why it is empty (``empty``) instead of a bare "no rows": on
    stderr with ``--json``, so that the JSON stays valid.
    """
    if as_json:
        print(json.dumps(json.loads(frame.write_json()), indent=2))
        if frame.height == 0 and empty:
            print(f"effortlens: {empty}", file=sys.stderr)
        return
    if frame.height == 0:
        print(empty or "Nothing to show for this data.")
        return
    if args is not None and not getattr(args, "wide", False):
        frame = _compact(frame, command, args)
    width = shutil.get_terminal_size((120, 24)).columns
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=max(width, 80),
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_hide_dtype_separator=True,
        fmt_str_lengths=40,
    ):
        print(_human(frame))


def _metric_command(compute: Callable[[Any, argparse.Namespace], pl.DataFrame], command: str = ""):
    def run(args: argparse.Namespace) -> int:
        enriched = _enriched(args)
        coverage = _coverage(args, enriched)
        frame = compute(enriched, args)
        notes = _command_caveats(command, coverage, args)
        for note in notes:  # what the table cannot say, on stderr: stdout stays the table
            print(f"effortlens: note: {note}", file=sys.stderr)
        _print_frame(
            frame,
            as_json=args.json,
            command=command,
            args=args,
            empty=_empty_reason(command, enriched, coverage, args) if frame.height == 0 else "",
        )
        return 0

    return run


def _coverage(args: argparse.Namespace, enriched):
    """What the load can say (effortlens.coverage), with the load report of its build."""
    from effortlens.coverage import data_coverage

    return data_coverage(enriched, report=getattr(args, "load_report", None))


#: The coverage caveat section of each command.
_SECTIONS = {
    "roe": "roe",
    "habits": "habits",
    "organisation": "organisation",
    "flow": "journey",
}


def _command_caveats(command: str, coverage, args: argparse.Namespace) -> list[str]:
    section = _SECTIONS.get(command)
    if command == "deviants":
        section = "deviance_win" if args.metric == "win_rate" else "deviance"
    if section is None:
        return []
    return [f.plain for f in coverage.caveats(section)]


def _empty_reason(command: str, enriched, coverage, args: argparse.Namespace) -> str:
    """Why a metric table is empty, in words, with what to do."""
    folder = args.data_dir
    if command in ("roe", "habits", "organisation") and not coverage.has_activities:
        return (
            f"No seller activities in {folder} (deals only): add an activities export "
            "(e-mails, calls, meetings) to see this. 'effortlens flow' and "
            "'effortlens deviants --metric win_rate' work without."
        )
    if command == "habits" and not coverage.has_buyer_actions:
        return (
            f"No buyer actions in {folder}, so no touch can be called answered. "
            "Add the export that records what buyers did."
        )
    if command == "flow":
        if not coverage.deals:
            return f"No deals in {folder}: add an opportunities (deals) export."
        return (
            f"No stage history in {folder}, and none could be derived: add the deals' "
            "stage (or the stage-history export)."
        )
    if command == "deviants":
        from effortlens.deviance import rep_deviance
        from effortlens.findings import deviance_findings, findings_text

        if args.metric == "response_rate" and not coverage.response_measurable:
            return (
                "Response rates cannot be compared: this data has no "
                + ("seller activities" if not coverage.has_activities else "buyer actions")
                + ". Try --metric win_rate."
            )
        if args.metric == "win_rate" and not coverage.win_rate_measurable:
            return "Win rates cannot be compared: " + (
                "this data has no closed deals."
                if not coverage.closed
                else "every closed deal has the same result."
            )
        deviance = rep_deviance(enriched, metric=args.metric)
        return findings_text(deviance_findings(deviance, pl.DataFrame(), metric=args.metric))
    if command == "organisation":
        return f"No team in {folder} has reps employed during the activity data."
    return "Nothing in this data matches."


def _roe(enriched, args) -> pl.DataFrame:
    from effortlens.roe import roe_table

    table = roe_table(enriched, by=args.by)
    if not _coverage(args, enriched).has_activities:  # deals only: no effort to show
        return table.head(0)
    if not _coverage(args, enriched).has_buyer_actions:  # unknown, not 0%
        unknown = [c for c in _RESPONSE_COLUMNS if c in table.columns]
        table = table.with_columns(pl.lit(None, dtype=table.schema[c]).alias(c) for c in unknown)
    return table


#: ``roe`` columns that need buyer actions.
_RESPONSE_COLUMNS = (
    "responded",
    "response_weight",
    "response_rate",
    "roe_per_100",
    "roe_per_hour",
    "no_impact_activities",
    "no_impact_hours",
    "no_impact_share",
)


def _deviants(enriched, args) -> pl.DataFrame:
    from effortlens.deviance import deviants_table

    return deviants_table(enriched, metric=args.metric, min_volume=args.min_volume)


def _flow(enriched, args) -> pl.DataFrame:
    from effortlens.flow import flow_table

    # stage_path says whether the stage path was recorded or derived (also in the JSON)
    path = _coverage(args, enriched).stage_path
    return flow_table(enriched, by=args.by, stage_path=path)


def _habits(enriched, args) -> pl.DataFrame:
    from effortlens.habits import habits_table

    return habits_table(enriched)


def _organisation(enriched, args) -> pl.DataFrame:
    from effortlens.organisation import organisation_table

    return organisation_table(enriched)


def _cmd_findings(args: argparse.Namespace) -> int:
    from effortlens.findings import findings_text, team_findings

    enriched = _enriched(args)
    found = team_findings(enriched, coverage=_coverage(args, enriched))
    if args.json:
        print(json.dumps([{"topic": f.topic, "text": f.plain} for f in found], indent=2))
    else:
        print(
            findings_text(found)
            or "No finding stands out in this data: no stage, habit or rep differs beyond "
            "chance, or the data holds too little to tell."
        )
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
    if args.metric != "activities_per_week" and not _coverage(args, enriched).has_buyer_actions:
        print(
            f"effortlens: {args.data_dir} holds no buyer actions, so --metric {args.metric} "
            "cannot be measured (it would read 0 for everyone); use --metric "
            "activities_per_week, or add the export that records what buyers did.",
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
    """The ``effortlens`` argument parser: one subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="effortlens", description="See what sales effort achieves with buyers."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help=sample_command.HELP)
    sample_command.add_arguments(p)
    p.set_defaults(func=functools.partial(_cmd_sample, parser=p))

    p = sub.add_parser("load", help="load a data folder and print its load report")
    _data_args(p)
    p.add_argument(
        "--by-file",
        action="store_true",
        help="count per export file (read, loaded, quarantined; derived apart), not per table",
    )
    p.set_defaults(func=_cmd_load)

    p = sub.add_parser(
        "build", help="validate, enrich and write the facts of a folder (reused while current)"
    )
    _data_args(p)
    p.add_argument("--cache-dir", metavar="DIR", help="cache folder (default $EFFORTLENS_CACHE)")
    p.add_argument("--force", action="store_true", help="rebuild even when the build is current")
    p.add_argument(
        "--no-warm",
        dest="warm",
        action="store_false",
        help="do not read the facts ahead into memory for the apps' first viewer (by default "
        "up to half the memory available: seconds at 10M activities, up to half a minute at "
        "100M), nor make the notebooks' chart module when the cache folder lacks it (by "
        "default beside the build, in a child process: about three CPU seconds, once)",
    )
    p.add_argument(
        "--engine", choices=["polars", "spark"], default="polars", help="who computes the facts"
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--partitioned",
        dest="partitioned",
        action="store_const",
        const=True,
        default=None,
        help="validate in chunks and enrich per partition (default: when the event tables "
        "hold more rows than limits.partition_above_rows); with --force to redo a current build",
    )
    how.add_argument(
        "--in-memory",
        dest="partitioned",
        action="store_const",
        const=False,
        help="validate and enrich in memory, however large the input",
    )
    p.set_defaults(func=_cmd_build)

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
        p.add_argument(
            "--wide", action="store_true", help="every column (the default shows the main ones)"
        )
        p.set_defaults(func=_metric_command(compute, name))
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


def _report_bug(err: Exception) -> None:
    """A bug in EffortLens, in words: the file and what to do. The exception itself (its name
    and message, for the bug report) only with ``EFFORTLENS_DEBUG=1``."""
    text = str(err)
    # a step across files (links, derivation, assembly) names its files and itself
    where = getattr(err, "where", "") or text.partition(": EffortLens failed on this file")[0]
    subject = getattr(err, "subject", "this file")
    print(
        f"effortlens: {where}: EffortLens failed on {subject} (a bug, not a problem with your "
        "data; other files may load on their own). Please report it with the file; run again "
        "with EFFORTLENS_DEBUG=1 to print the details to include.",
        file=sys.stderr,
    )
    if os.environ.get("EFFORTLENS_DEBUG"):
        print(f"effortlens: details: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the ``effortlens`` command line on ``argv``; return the exit code (never raise)."""
    from effortlens.adapters import MappingError
    from effortlens.build_failure import BuildFailed
    from effortlens.loading import DataError
    from effortlens.loading.report import LoadBug
    from effortlens.settings import SettingsError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        from effortlens_serve import main as serve

        return serve(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler
        return code
    except BrokenPipeError:  # `effortlens roe DATA | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing left to flush at exit
        return 0
    except LoadBug as err:
        _report_bug(err)
        return 3
    except (SettingsError, DataError, MappingError, BuildFailed) as err:  # in words
        print(f"effortlens: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unreadable folder, settings or mapping file
        where = err.filename or getattr(args, "data_dir", "")
        print(f"effortlens: {where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except (Exception, pl.exceptions.PanicException) as err:  # a panic is a BaseException
        where = getattr(args, "data_dir", None) or args.command
        _report_bug(LoadBug.of(str(where), err))
        return 3


if __name__ == "__main__":
    sys.exit(main())
