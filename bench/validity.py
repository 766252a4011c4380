"""Validity run: EffortLens' statistics scored against planted truth over many seeds.

Runs every metric (interventions, deviance, flow, habits) on ``--seeds`` seeds of the
project's generator (``small``) and of the second family
(:mod:`effortlens.validity.dgp`), each in ``planted`` and ``null`` mode, and prints the
figures of ``VALIDITY.md`` as a Markdown table (targets beside them).

    .venv/bin/python bench/validity.py --seeds 20 --json /tmp/validity.json

About 10-25 minutes for 20 seeds x 2 families x 2 modes on a 2-core machine (the EM of
``habit_effects`` is most of it; VALIDITY.md has the figures).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from effortlens.validity.harness import FAMILIES, make_run, run_all, summarise

#: (summary key, label, target text, check) for the Markdown table.
ROWS = [
    ("iv_coverage", "Intervention 95% CI covers the truth", ">= 90%", lambda v: v >= 0.90),
    (
        "iv_bias_share",
        "Intervention bias / effect (planted)",
        "|.| <= 10%",
        lambda v: abs(v) <= 0.10,
    ),
    ("iv_excludes_zero", "Intervention CI excludes 0", "power / false +", None),
    ("iv_sd_over_se", "Spread of estimates / stated SE", "about 1", None),
    ("iv_mean_estimate", "Intervention mean estimate", "", None),
    ("iv_mean_truth", "Intervention mean truth (estimand)", "", None),
    ("iv_dilution", "Dilution by attribution (project)", "stated", None),
    ("iv_p_min", "Smallest p-value", "> 0", lambda v: v > 0),
    ("iv_pre_trend_mean", "Pre-trend placebo, mean", "about 0", None),
    ("iv_pre_trend_excludes_zero", "Pre-trend interval excludes 0", "about 5%", None),
    ("dev_recall", "Deviants found", "vs oracle", None),
    ("dev_oracle_recall", "Oracle (true dispersion)", "", None),
    ("dev_by_ratio", "Found by rate ratio", "", None),
    ("dev_false_per_rep", "False flags per rep", "<= 0.5%", lambda v: v <= 0.005),
    ("dev_runs_with_false", "Runs with any false flag", "", None),
    ("dev_mean_rho", "Over-dispersion rho, mean", "", None),
    ("dev_mean_oracle_rho", "Oracle rho (true non-deviants), mean", "", None),
    ("flow_leaky_found", "Leaky stage named", "", None),
    ("flow_stalled_found", "Stalled stage named", "", None),
    ("flow_leaky_false_per_run", "Wrong leaky stages per run", "0 on null", None),
    ("flow_stalled_false_per_run", "Wrong stalled stages per run", "0 on null", None),
    ("flow_homogeneity_reject_5pct", "Leakage chi-square rejects at 5%", "5% on null", None),
    ("habits_method", "Habits estimator", "", None),
    ("habits_timing_top_share", "Planted timing cells at the top", "", None),
    ("habits_silence_lowest", "Silent cadence bin lowest", "", None),
    ("habits_quick_lift", "Lift of the 0-1 day cadence bin", "1 on null", None),
    ("habits_timing_flagged_runs", "Runs calling a timing effect", "few on null", None),
    ("habits_cadence_flagged_runs", "Runs calling a cadence effect", "few on null", None),
]


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def markdown(summary: dict[str, dict]) -> str:
    """One column per family/mode, one row per figure."""
    columns = sorted(summary)
    lines = [
        "| figure | target | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for key, label, target, _ in ROWS:
        cells = [_fmt(summary[c].get(key)) for c in columns]
        if all(c == "–" for c in cells):
            continue
        lines.append(f"| {label} | {target} | " + " | ".join(cells) + " |")
    errors = {
        c: [e for k, v in summary[c].items() if k.endswith("_errors") for e in v] for c in columns
    }
    for c, errs in errors.items():
        if errs:
            lines.append(f"\nErrors in {c}: {sorted(set(errs))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--modes", nargs="+", default=["planted", "null"])
    parser.add_argument("--json", type=Path, help="write every run's scores here")
    args = parser.parse_args(argv)
    rows = []
    started = time.perf_counter()
    for family in args.families:
        for mode in args.modes:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                rows.append(run_all(make_run(family, seed=seed, mode=mode)))
                print(
                    f"{family} {mode} seed {seed}: {time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                )
    summary = summarise(rows)
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "summary": summary}, indent=1, default=str))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
