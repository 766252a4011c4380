"""Write a sample data set: draw the company, its events chunk by chunk, the files and the truth.

Part of :mod:`effortlens.sample` (the package docstring says what the data holds). The same
``(size, mode, seed)`` always gives byte-identical files.

Examples
--------
>>> import json, tempfile
>>> from pathlib import Path
>>> truth = json.loads(generate(Path(tempfile.mkdtemp()), size="tiny", seed=3).read_text())
>>> truth["leaky_stage"], truth["n_reps"]
('evaluation', 24)
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from effortlens.sample.arrays import Chunk, Context
from effortlens.sample.dirty import write_dirty
from effortlens.sample.events import generate_chunk
from effortlens.sample.plan import (
    INTERVENTION,
    ROLES,
    SEGMENTS,
    Calendar,
    Org,
    build_org,
    calibrate,
    duration_scale,
    make_calendar,
    model_for,
)
from effortlens.sample.sizes import FORMATS, MODES, resolve_size
from effortlens.sample.truth import GENERATOR_VERSION, truth_record
from effortlens.schema import SAMPLE_TRUTH_FILES, TABLES, conform
from effortlens.settings import Settings, load_settings

REPS_PER_CHUNK = 200  # reps drawn and written together; fixed, so chunking never changes data
DIRTY_MAX_REPS = REPS_PER_CHUNK
#: The file that describes a data set and its planted truths, and the file that says which
#: activity each buyer action truly answers (the loader notes both as not data).
TRUTH_FILE, RESPONSES_FILE = SAMPLE_TRUTH_FILES
CSV_DATETIME = "%Y-%m-%dT%H:%M:%SZ"


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
        ``"tiny"``, ``"small"``, ``"default"``, ``"1m"``, ``"10m"``, ``"100m"`` (see
        :data:`effortlens.sample.SIZES`) or a number of activities.
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
    ctx, start_day = _context(params, mode=mode, seed=seed, settings=settings)
    offsets = {"activity": 0, "action": 0, "opportunity": 0}
    customer_facing = np.zeros(ctx.org.n_reps, dtype=np.int64)
    calls = np.zeros(ctx.org.n_reps, dtype=np.int64)
    static = _static_tables(ctx.org, ctx.cal, start_day)
    n_chunks = -(-ctx.org.n_reps // REPS_PER_CHUNK)
    expected: dict[str, dict[str, int]] = {}
    if n_chunks == 1:
        chunk = _chunk(ctx, 0, seed=seed, offsets=offsets)
        customer_facing += chunk.customer_facing
        calls += chunk.calls
        if mode == "dirty":
            expected = _write_dirty(static, chunk, out_dir, seed=seed, settings=settings)
        else:
            for name, frame in {**static, **_chunk_tables(chunk)}.items():
                _write(frame, out_dir, name, _format_of(name, fmt))
    else:
        tmp = Path(tempfile.mkdtemp(prefix=".chunks-", dir=out_dir))
        try:
            parts: dict[str, list[Path]] = {}
            for k in range(n_chunks):
                chunk = _chunk(ctx, k, seed=seed, offsets=offsets)
                customer_facing += chunk.customer_facing
                calls += chunk.calls
                for name, frame in _chunk_tables(chunk).items():
                    path = tmp / f"{name}-{k:05d}.parquet"
                    frame.write_parquet(path)
                    parts.setdefault(name, []).append(path)
            for name, frame in static.items():
                _write(frame, out_dir, name, fmt)
            for name, paths in parts.items():
                _combine(paths, out_dir, name, _format_of(name, fmt))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    truth = truth_record(
        ctx.org,
        ctx.cal,
        ctx.model,
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


def _context(
    params: dict[str, int], *, mode: str, seed: int, settings: Settings
) -> tuple[Context, int]:
    """The company, calendar and rules every chunk shares, and the intervention's start day.

    Draws the company from the data set's main generator (seeded with ``seed``); the chunks
    draw from their own.
    """
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
    return ctx, start_day


def _chunk(ctx: Context, k: int, *, seed: int, offsets: dict[str, int]) -> Chunk:
    """Chunk ``k``: its reps' events, drawn from a generator of its own (seed, k)."""
    reps = np.arange(k * REPS_PER_CHUNK, min((k + 1) * REPS_PER_CHUNK, ctx.org.n_reps))
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, k])))
    return generate_chunk(ctx, reps, rng, offsets)


def _write_dirty(
    static: dict[str, pl.DataFrame],
    chunk: Chunk,
    out_dir: Path,
    *,
    seed: int,
    settings: Settings,
) -> dict[str, dict[str, int]]:
    """Write the tables as dirty CSV (and the true responses); return the expected quarantine."""
    tables = {**static, **_chunk_tables(chunk)}
    responses = tables.pop("_truth_responses")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 99991])))
    expected = write_dirty(tables, out_dir, rng=rng, settings=settings)
    responses.write_parquet(out_dir / RESPONSES_FILE)
    return expected


def _clear(out_dir: Path) -> None:
    """Remove what an earlier run wrote, so no stale file of another format stays behind."""
    for name in [*TABLES, "_truth_responses"]:
        for ext in FORMATS:
            (out_dir / f"{name}.{ext}").unlink(missing_ok=True)
    (out_dir / TRUTH_FILE).unlink(missing_ok=True)


def _format_of(name: str, fmt: str) -> str:
    """The format table ``name`` is written in: private truth tables are always Parquet."""
    return "parquet" if name.startswith("_") else fmt


def _chunk_tables(chunk: Chunk) -> dict[str, pl.DataFrame]:
    """The tables of a chunk by file name."""
    return {
        "activities": chunk.activities,
        "buyer_actions": chunk.buyer_actions,
        "opportunities": chunk.opportunities,
        "stage_history": chunk.stage_history,
        "_truth_responses": chunk.truth_responses,
    }


def _static_tables(org: Org, cal: Calendar, start_day: int) -> dict[str, pl.DataFrame]:
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
    """Write one table file."""
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
