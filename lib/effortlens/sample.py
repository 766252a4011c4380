"""Deterministic sample data with planted truths, written beside the data in ``truth.json``.

The generator writes the seven canonical tables of a made-up B2B sales company (reps in teams,
segments and roles; their activities, deals, stage history and the buyers' responses) for a
fixed period starting 2025-01-06. The same ``(size, mode, seed)`` always gives byte-identical
files. Buyer actions are drawn as responses to specific seller activities (the true cause of
each is in ``_truth_responses.parquet``), plus about 10% buyer-initiated ones.

Modes:

- ``"planted"``: positive and negative deviants and the practice behind the positive ones, a
  leaky stage, a stalled stage, an unverified stage, an intervention with a known effect, a
  team with low time for selling and the most voluntary exits, and timing, cadence and
  sequence effects. ``truth.json`` says exactly what and where; ``sample_data/README.md``
  explains each for people.
- ``"null"``: the same volumes and structure with nothing planted.
- ``"dirty"``: planted data written as Excel-like CSV with bad rows of every quarantine reason
  injected; the expected quarantine counts are in ``truth.json``.

Examples
--------
>>> import json, tempfile
>>> from pathlib import Path
>>> from effortlens.sample import generate
>>> out = Path(tempfile.mkdtemp())
>>> truth = json.loads(generate(out, size="tiny", seed=3).read_text())
>>> truth["leaky_stage"], truth["n_reps"]
('evaluation', 24)
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from effortlens._sample_events import Chunk, Context, generate_chunk
from effortlens._sample_plan import (
    ROLES,
    SEGMENTS,
    build_org,
    calibrate,
    duration_scale,
    make_calendar,
    model_for,
)
from effortlens.schema import TABLES, conform
from effortlens.settings import load_settings

#: Named sizes: reps, weeks of data and the activities aimed at.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"n_reps": 24, "weeks": 18, "n_activities": 15_000},
    "small": {"n_reps": 60, "weeks": 52, "n_activities": 100_000},
    "default": {"n_reps": 60, "weeks": 78, "n_activities": 300_000},
    "1m": {"n_reps": 200, "weeks": 78, "n_activities": 1_000_000},
    "10m": {"n_reps": 2000, "weeks": 78, "n_activities": 10_000_000},
}
MODES = ("planted", "null", "dirty")
FORMATS = ("parquet", "csv")
GENERATOR_VERSION = 1
ACTIVITIES_PER_REP = 5_000  # per 78 weeks, for sizes given as a number of activities
REPS_PER_CHUNK = 200  # reps drawn and written together; fixed, so chunking never changes data
DIRTY_MAX_REPS = REPS_PER_CHUNK
TRUTH_FILE = "truth.json"
RESPONSES_FILE = "_truth_responses.parquet"
CSV_DATETIME = "%Y-%m-%dT%H:%M:%SZ"
INTERVENTION = {
    "intervention_id": "INT-01",
    "name": "Buyer-first follow-up coaching",
    "practice": "follow-ups that answer the buyer's own questions from the last conversation",
}


def resolve_size(size: str | int) -> tuple[str, dict[str, int]]:
    """The label and parameters of ``size``: a name in :data:`SIZES` or a number of activities.

    Examples
    --------
    >>> resolve_size("tiny")[1]["n_reps"]
    24
    >>> resolve_size(250_000)
    ('250000', {'n_reps': 50, 'weeks': 78, 'n_activities': 250000})
    """
    if isinstance(size, str) and size.strip().lower() in SIZES:
        label = size.strip().lower()
        return label, dict(SIZES[label])
    try:
        n = int(size)
    except (TypeError, ValueError):
        names = ", ".join(SIZES)
        raise ValueError(
            f"size must be one of {names} or a number of activities, got {size!r}"
        ) from None
    if n < 1_000:
        raise ValueError(f"size as a number of activities must be at least 1000, got {n}")
    return str(n), {
        "n_reps": max(24, round(n / ACTIVITIES_PER_REP)),
        "weeks": 78,
        "n_activities": n,
    }


def generate(
    out_dir: Path,
    *,
    size: str | int = "default",
    mode: str = "planted",
    seed: int = 7,
    fmt: str = "parquet",
) -> Path:
    """Write a sample data set and its ``truth.json`` into ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder to write into (created if missing). Earlier table files of either format
        are replaced.
    size
        ``"tiny"``, ``"small"``, ``"default"``, ``"1m"``, ``"10m"`` (see :data:`SIZES`) or a
        number of activities.
    mode
        ``"planted"``, ``"null"`` or ``"dirty"`` (always CSV).
    seed
        Seed of the ``numpy`` PCG64 generator; the same arguments give identical files.
    fmt
        ``"parquet"`` or ``"csv"`` (ISO 8601 timestamps with ``Z``).

    Returns
    -------
    Path
        The ``truth.json`` written.

    Examples
    --------
    >>> import tempfile
    >>> path = generate(Path(tempfile.mkdtemp()), size="tiny", mode="null")
    >>> path.name
    'truth.json'
    """
    label, params = resolve_size(size)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if mode == "dirty":
        fmt = "csv"
        if params["n_reps"] > DIRTY_MAX_REPS:
            raise ValueError(
                f"dirty mode is for data sets of up to {DIRTY_MAX_REPS} reps; size {label!r} has "
                f"{params['n_reps']}: use tiny, small or default"
            )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear(out_dir)

    settings = load_settings()
    cal = make_calendar(params["weeks"], settings.timezone)
    model = model_for(mode)
    rng = np.random.Generator(np.random.PCG64(seed))
    org = build_org(params["n_reps"], cal, model=model, rng=rng)
    calibrate(org, cal, params["n_activities"])
    start_day = 7 * (params["weeks"] // 2)
    n_accounts = int(org.book_size.sum())
    digits = len(str(int(params["n_activities"] * 1.5)))
    ctx = Context(
        org=org,
        cal=cal,
        model=model,
        settings=settings,
        intervention_start=int(cal.day_start(np.array([start_day]))[0]),
        cf_duration_scale=duration_scale(org, cal, settings.default_duration_min),
        stage_scale=float(np.clip(params["weeks"] / 40, 0.45, 1.0)),
        widths={
            "activity": max(7, digits),
            "action": max(7, digits),
            "opportunity": max(6, digits - 1),
            "account": max(5, len(str(n_accounts))),
            "contact": max(6, len(str(len(org.contact_count)))),
        },
    )

    n_chunks = -(-org.n_reps // REPS_PER_CHUNK)
    offsets = {"activity": 0, "action": 0, "opportunity": 0}
    customer_facing = np.zeros(org.n_reps, dtype=np.int64)
    calls = np.zeros(org.n_reps, dtype=np.int64)
    tmp = Path(tempfile.mkdtemp(prefix=".chunks-", dir=out_dir)) if n_chunks > 1 else None
    parts: dict[str, list[Path]] = {}
    kept: Chunk | None = None
    try:
        for k in range(n_chunks):
            reps = np.arange(k * REPS_PER_CHUNK, min((k + 1) * REPS_PER_CHUNK, org.n_reps))
            chunk_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, k])))
            chunk = generate_chunk(ctx, reps, chunk_rng, offsets)
            customer_facing += chunk.customer_facing
            calls += chunk.calls
            if tmp is None:
                kept = chunk
                continue
            for name, frame in _chunk_tables(chunk).items():
                path = tmp / f"{name}-{k:05d}.parquet"
                frame.write_parquet(path)
                parts.setdefault(name, []).append(path)
        static = _static_tables(org, cal, start_day)
        if mode == "dirty":
            from effortlens._sample_dirty import write_dirty

            tables = {**static, **_chunk_tables(kept)}
            responses = tables.pop("_truth_responses")
            dirty_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 99991])))
            expected = write_dirty(tables, out_dir, rng=dirty_rng, settings=settings)
            responses.write_parquet(out_dir / RESPONSES_FILE)
        else:
            expected = {}
            for name, frame in static.items():
                _write(frame, out_dir, name, fmt)
            if kept is not None:
                for name, frame in _chunk_tables(kept).items():
                    _write(frame, out_dir, name, "parquet" if name.startswith("_") else fmt)
            for name, paths in parts.items():
                _combine(paths, out_dir, name, "parquet" if name.startswith("_") else fmt)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    truth = _truth(
        org,
        cal,
        model,
        mode=mode,
        seed=seed,
        label=label,
        fmt=fmt,
        start_day=start_day,
        n_activities=offsets["activity"],
        customer_facing=customer_facing,
        calls=calls,
        expected=expected,
    )
    path = out_dir / TRUTH_FILE
    path.write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return path


def ensure_sample(
    out_dir: Path, *, size: str | int = "default", mode: str = "planted", seed: int = 7
) -> Path:
    """Generate into ``out_dir`` unless it already holds this very data set; return ``out_dir``.

    The data is regenerated when ``truth.json`` is missing, names other arguments or an older
    generator, or a table file is missing.

    Examples
    --------
    >>> import tempfile
    >>> out = ensure_sample(Path(tempfile.mkdtemp()), size="tiny")
    >>> ensure_sample(out, size="tiny") == out
    True
    """
    out_dir = Path(out_dir)
    label, _ = resolve_size(size)
    try:
        truth = json.loads((out_dir / TRUTH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        truth = None
    fresh = (
        isinstance(truth, dict)
        and truth.get("size") == label
        and truth.get("mode") == mode
        and truth.get("seed") == seed
        and truth.get("generator_version") == GENERATOR_VERSION
        and (out_dir / RESPONSES_FILE).is_file()
        and all((out_dir / f"{name}.{truth.get('format')}").is_file() for name in TABLES)
    )
    if not fresh:
        generate(out_dir, size=size, mode=mode, seed=seed)
    return out_dir


def _clear(out_dir: Path) -> None:
    """Remove what an earlier run wrote, so no stale file of another format stays behind."""
    for name in [*TABLES, "_truth_responses"]:
        for ext in FORMATS:
            (out_dir / f"{name}.{ext}").unlink(missing_ok=True)
    (out_dir / TRUTH_FILE).unlink(missing_ok=True)


def _chunk_tables(chunk: Chunk) -> dict[str, pl.DataFrame]:
    return {
        "activities": chunk.activities,
        "buyer_actions": chunk.buyer_actions,
        "opportunities": chunk.opportunities,
        "stage_history": chunk.stage_history,
        "_truth_responses": chunk.truth_responses,
    }


def _static_tables(org, cal, start_day: int) -> dict[str, pl.DataFrame]:
    """Reps, the intervention and its participants."""
    exit_date = [
        cal.start + timedelta(days=int(d)) if d < cal.n_days else None for d in org.exit_day
    ]
    reps = pl.DataFrame(
        {
            "rep_id": org.rep_id,
            "rep_name": org.rep_name,
            "team": [org.team_names[t] for t in org.team],
            "segment": [SEGMENTS[s] for s in org.segment],
            "region": [org.team_region[t] for t in org.team],
            "role": [ROLES[r] for r in org.role],
            "manager_id": [org.team_manager[t] for t in org.team],
            "hire_date": org.hire_date,
            "exit_date": pl.Series(exit_date, dtype=pl.Date),
            "exit_reason": pl.Series(org.exit_reason, dtype=pl.String),
        }
    )
    start = cal.start + timedelta(days=start_day)
    interventions = pl.DataFrame(
        {
            **{k: [v] for k, v in INTERVENTION.items()},
            "start_date": [start],
            "end_date": [start + timedelta(days=55)],
        }
    )
    participants = pl.DataFrame(
        {
            "intervention_id": INTERVENTION["intervention_id"],
            "rep_id": [org.rep_id[i] for i in np.flatnonzero(org.treated)],
        }
    )
    frames = {
        "reps": reps,
        "interventions": interventions,
        "intervention_participants": participants,
    }
    return {name: conform(frame, name).collect() for name, frame in frames.items()}


def _write(frame: pl.DataFrame, out_dir: Path, name: str, fmt: str) -> None:
    if fmt == "parquet":
        frame.write_parquet(out_dir / f"{name}.parquet")
    else:
        frame.write_csv(
            out_dir / f"{name}.csv", datetime_format=CSV_DATETIME, date_format="%Y-%m-%d"
        )


def _combine(paths: list[Path], out_dir: Path, name: str, fmt: str) -> None:
    """Stream chunk files into one table file, so 10M rows never sit in memory at once."""
    if fmt == "parquet":
        pl.scan_parquet(paths).sink_parquet(out_dir / f"{name}.parquet", row_group_size=250_000)
        return
    with open(out_dir / f"{name}.csv", "wb") as handle:
        for k, path in enumerate(paths):
            pl.read_parquet(path).write_csv(
                handle, include_header=k == 0, datetime_format=CSV_DATETIME, date_format="%Y-%m-%d"
            )


def _truth(
    org,
    cal,
    model,
    *,
    mode,
    seed,
    label,
    fmt,
    start_day,
    n_activities,
    customer_facing,
    calls,
    expected,
) -> dict[str, Any]:
    planted = model.planted
    positive = [org.rep_id[i] for i in np.flatnonzero(org.positive)]
    negative = [org.rep_id[i] for i in np.flatnonzero(org.negative)]
    treated = np.flatnonzero(org.treated)
    practice = None
    if planted:
        groups = {org.peer_group(i) for i in np.flatnonzero(org.positive)}
        peers = (
            np.array([org.peer_group(i) in groups for i in range(org.n_reps)])
            & ~org.positive
            & ~org.negative
        )
        practice = {
            "feature": "activity_type_share",
            "activity_type": "call",
            "deviant_share": round(
                float(calls[org.positive].sum() / customer_facing[org.positive].sum()), 4
            ),
            "peer_share": round(float(calls[peers].sum() / customer_facing[peers].sum()), 4),
        }
    start = cal.start + timedelta(days=start_day)
    return {
        "mode": mode,
        "seed": seed,
        "size": label,
        "n_reps": org.n_reps,
        "n_activities": int(n_activities),
        "period_start": cal.start.isoformat(),
        "period_end": cal.end.isoformat(),
        "timezone": cal.timezone,
        "positive_deviants": positive,
        "negative_deviants": negative,
        "deviant_practice": practice,
        "leaky_stage": "evaluation" if planted else None,
        "stalled_stage": "negotiation" if planted else None,
        "unverified_stage": "commit" if planted else None,
        "intervention": {
            "intervention_id": INTERVENTION["intervention_id"],
            "name": INTERVENTION["name"],
            "metric": "response_rate",
            "effect": float(model.effect),
            "start_date": start.isoformat(),
            "treated": [org.rep_id[i] for i in treated],
            "peer_groups": [list(g) for g in sorted({org.peer_group(i) for i in treated})],
        },
        "low_selling_team": org.team_names[org.low_team] if planted else None,
        "timing": {
            "best_weekdays": list(model.best_weekdays),
            "best_hours": list(model.best_hours),
            "multiplier": model.timing_multiplier,
        }
        if planted
        else None,
        "cadence": {
            "silence_days": model.silence_days,
            "multiplier": model.cadence_multiplier,
        }
        if planted
        else None,
        "sequence": {
            "sequence": ["call", "email"],
            "within_days": model.sequence_within_days,
            "multiplier": model.sequence_multiplier,
        }
        if planted
        else None,
        "expected_quarantine": expected,
        "format": fmt,
        "generator_version": GENERATOR_VERSION,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m effortlens.sample [--size …] [--mode …] [--seed N] [--format …] OUT_DIR``."""
    from effortlens.cli import main as cli_main

    return cli_main(["sample", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
