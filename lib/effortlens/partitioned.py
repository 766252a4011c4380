"""The partitioned build: validate in chunks, enrich per partition, for inputs too big for memory.

``effortlens build`` takes this path when the event tables of a folder hold more rows than
``limits.partition_above_rows`` (or with ``--partitioned``). It writes the same facts as the
in-memory build (:func:`effortlens.facts.build`), in the same layout, with memory bounded by
the size of a partition rather than of the data:

1. **Validate in chunks** (:func:`effortlens.loading.pipeline.load_folder_chunked`): each
   event table is split by one streaming pass (``sink_parquet`` to ``pl.PartitionBy``) into
   chunks by a hash of its id, so the duplicate rule stays exact; each chunk is validated as a
   whole table would be, and the input row number of every loaded row is kept.
2. **Partition by connected keys.** Attribution matches an action to an activity on the same
   opportunity, else contact, else account. The keys of every loaded activity and action
   (distinct ``(account, contact, opportunity)`` triples, found by a streaming ``unique``) are
   the edges of a graph; its connected components are the accounts when the data is
   consistent (opportunities and contacts nest inside one account). Rows whose keys disagree
   across accounts (an opportunity or contact seen under two accounts) join those accounts
   into one component: **nothing is quarantined and no second pass is needed**, the match is
   exact because every candidate match shares a key, hence a component. Components are
   packed into partitions of about ``chunk_rows`` events (largest first, into the lightest
   partition). A single component larger than that stays whole: its partition is bigger.
3. **Enrich per partition** with :func:`effortlens.enrich.enrich_tables`, the partition's
   rows sorted in the loaded order (the tables' sort keys, ties by input row): the tie rule of
   attribution (at equal times on the same key, the activity *later in the loaded table*
   wins) is decided exactly as in memory. Each partition writes one part file of
   ``activities.parquet/`` and ``actions.parquet/`` (folders of part files,
   :func:`effortlens.facts.scan_fact`).
4. **Daily roll-up** summed across partitions by a streaming ``group_by`` over a slim
   projection (rep, day, type and the sums), then sorted as the in-memory roll-up is.

What differs from the in-memory build: the event facts are in partition order (loaded order
within each partition) rather than one loaded order; the sums of the daily roll-up are added
in another order (floating-point totals may differ in the last bits). Every row, value and
count is otherwise the same (tests/test_partitioned.py).

Examples
--------
>>> from effortlens.settings import load_settings  # doctest: +SKIP
>>> rows = write_partitioned("exports/big", staging, settings=load_settings())  # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import json
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from effortlens.cache import scratch_dir
from effortlens.enrich import DAILY_SCHEMA, REP_COLUMNS, enrich_tables
from effortlens.loading.pipeline import (
    ISOLATE_ABOVE_ROWS,
    ChunkedLoad,
    in_child,
    load_folder_chunked,
    streamable_rows,
)
from effortlens.loading.table import ROW, SORT_KEYS
from effortlens.settings import Settings

#: Events (activities + buyer actions) per chunk and per partition when not set.
DEFAULT_CHUNK_ROWS = 4_000_000
#: The key levels attribution matches on, as graph node prefixes.
_KEYS = (("account_id", "a"), ("contact_id", "c"), ("opportunity_id", "o"))
_PART = "__part"


def should_partition(folder: str | Path, *, settings: Settings) -> tuple[bool, str]:
    """Whether ``folder`` is built partitioned by default, and why (in words).

    Partitioned when its event tables are Parquet and hold more rows than
    ``settings.limits.partition_above_rows``.

    Examples
    --------
    >>> import tempfile
    >>> from effortlens.settings import load_settings
    >>> should_partition(tempfile.mkdtemp(), settings=load_settings())[0]
    False
    """
    rows = streamable_rows(folder)
    limit = getattr(settings.limits, "partition_above_rows", 20_000_000)
    if rows is None:
        return False, "in memory (the event tables are not Parquet files of a canonical folder)"
    if rows > limit:
        return True, (
            f"partitioned ({rows:,} events, more than limits.partition_above_rows = {limit:,})"
        )
    return False, f"in memory ({rows:,} events, limits.partition_above_rows = {limit:,})"


def write_partitioned(
    folder: str | Path,
    staging: str | Path,
    *,
    settings: Settings,
    layout: dict[str, str],
    table_files: dict[str, str],
    quarantine_file: str,
    report_file: str,
    report_json: Callable[[Any], dict[str, Any]],
    now: datetime | None = None,
    chunk_rows: int | None = None,
    step: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Validate and enrich ``folder`` partition by partition into build folder ``staging``.

    Parameters
    ----------
    folder
        A canonical folder whose activities (and buyer actions) are Parquet.
    staging
        The build folder being written (:mod:`effortlens.facts` names the files: ``layout``,
        ``table_files``, ``quarantine_file``, ``report_file``, and ``report_json`` turns the
        load report into JSON).
    settings, now
        As for :func:`effortlens.loading.load_folder`.
    chunk_rows
        Events per chunk and per partition; default ``limits.partition_rows``.
    step
        Called with the name of each step (a progress bar).

    Returns
    -------
    dict[str, int]
        Rows per file written (relative to ``staging``), for the manifest.
    """
    staging = Path(staging)
    say = step or (lambda _name: None)
    if chunk_rows is None:
        chunk_rows = getattr(settings.limits, "partition_rows", DEFAULT_CHUNK_ROWS)
    scratch = scratch_dir(staging.parent, "partitioned")
    try:
        say("load and validate")
        data = load_folder_chunked(
            folder, scratch / "valid", settings=settings, now=now, chunk_rows=chunk_rows
        )
        say("enrich")
        if sum(data.rows.values()) > ISOLATE_ABOVE_ROWS:  # its memory goes back after it
            parts = in_child(
                partition_events, data.events, scratch / "parts", chunk_rows=chunk_rows
            )
        else:
            parts = partition_events(data.events, scratch / "parts", chunk_rows=chunk_rows)
        rows = _enrich_partitions(
            data, parts, staging, scratch / "slim", settings=settings, layout=layout
        )
        say("write facts")
        daily = _daily(scratch / "slim", data, settings=settings)
        _write(daily, staging / layout["daily"], row_group_size=max(daily.height, 1))
        rows[layout["daily"]] = daily.height
        for name, relative in table_files.items():
            frame = data.tables[name]
            _write(frame, staging / relative, row_group_size=max(frame.height, 1))
            rows[relative] = frame.height
        _write(data.quarantine, staging / quarantine_file, row_group_size=None)
        rows[quarantine_file] = data.quarantine.height
        report = {
            "report": report_json(data.report),
            "missing_tables": list(data.missing_tables),
            "source": str(data.source),
        }
        (staging / report_file).write_text(json.dumps(report, indent=1, default=str), "utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def _write(frame: pl.DataFrame, path: Path, *, row_group_size: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, statistics=True, row_group_size=row_group_size)


def _node() -> pl.Expr:
    """A row's graph node: its first key among account, contact, opportunity (prefixed)."""
    return pl.coalesce(pl.format(f"{prefix}:{{}}", pl.col(key)) for key, prefix in _KEYS)


def _components(events: dict[str, list[Path]]) -> tuple[pl.DataFrame, np.ndarray]:
    """Node -> component and events per component, from the keys of every loaded event."""
    keys = [key for key, _ in _KEYS]
    scans = [pl.scan_parquet(paths).select(keys) for paths in events.values() if paths]
    # distinct triples first (a streaming group-by on the raw keys), prefixed afterwards: 9M
    # distinct triples at 100M events instead of formatting 117M rows
    triples = (
        pl.concat(scans)
        .group_by(keys)
        .agg(pl.len().alias("n"))
        .collect(engine="streaming")
        .select(
            *(pl.format(f"{prefix}:{{}}", pl.col(key)).alias(prefix) for key, prefix in _KEYS),
            "n",
        )
    )
    nodes = (
        pl.concat([triples.select(pl.col(p).alias("node")) for _, p in _KEYS])
        .drop_nulls()
        .unique()
        .sort("node")
        .with_row_index("code")
    )
    coded = triples.select(
        *(
            pl.col(p).replace_strict(nodes["node"], nodes["code"], default=None).alias(p)
            for _, p in _KEYS
        ),
        "n",
    )
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = [("a", "c"), ("a", "o"), ("c", "o")]
    edges = pl.concat(
        [coded.select(pl.col(x).alias("u"), pl.col(y).alias("v")).drop_nulls() for x, y in pairs]
    )
    size = nodes.height
    graph = coo_matrix(
        (np.ones(edges.height, dtype=np.int8), (edges["u"].to_numpy(), edges["v"].to_numpy())),
        shape=(size, size),
    )
    _, labels = connected_components(graph, directed=False)
    component = pl.Series("component", labels, dtype=pl.UInt32)
    # events per component: each triple's count goes to the component of its first key
    first = coded.select(pl.coalesce("a", "c", "o").alias("code"), "n").drop_nulls("code")
    weight = np.bincount(
        labels[first["code"].to_numpy()], weights=first["n"].to_numpy(), minlength=labels.max() + 1
    )
    return nodes.select("node").with_columns(component), weight


def _pack(weight: np.ndarray, *, chunk_rows: int) -> np.ndarray:
    """Partition of each component: largest first into the lightest of ``ceil(total /
    chunk_rows)`` partitions (deterministic: ties by component number)."""
    n_parts = max(1, int(-(-weight.sum() // max(chunk_rows, 1))))
    heap = [(0.0, p) for p in range(n_parts)]
    out = np.zeros(len(weight), dtype=np.uint32)
    for c in np.argsort(-weight, kind="stable"):
        load, p = heapq.heappop(heap)
        out[c] = p
        heapq.heappush(heap, (load + float(weight[c]), p))
    return out


def partition_events(events: dict[str, list[Path]], out: Path, *, chunk_rows: int) -> int:
    """Write the validated ``events`` (table -> part files, deleted after) under
    ``out/<table>/__part=<p>/``; the number of partitions.

    Events without any key (never matched) go to partition 0.
    """
    if not any(events.values()):
        return 0
    nodes, weight = _components(events)
    part_of = _pack(weight, chunk_rows=chunk_rows)
    mapping = nodes.select(
        "node", pl.Series(_PART, part_of)[nodes["component"]].alias(_PART)
    ).lazy()
    for name, paths in events.items():
        if not paths:
            continue
        (
            pl.scan_parquet(paths)
            .with_columns(_node().alias("__node"))
            .join(mapping, left_on="__node", right_on="node", how="left")
            .with_columns(pl.col(_PART).fill_null(0))
            .drop("__node")
            .sink_parquet(
                pl.PartitionBy(out / name, key=_PART, include_key=False),
                mkdir=True,
                engine="streaming",
            )
        )
        for path in paths:
            path.unlink(missing_ok=True)
    return int(part_of.max()) + 1 if len(part_of) else 1


def _read_part(folder: Path, table: str) -> pl.DataFrame:
    """One partition of one table, in the loaded order (sort keys, ties by input row)."""
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return pl.DataFrame()
    keys = list(SORT_KEYS[table])
    return (
        pl.read_parquet(files, hive_partitioning=False)
        .sort([*keys, ROW], nulls_last=True)
        .drop(ROW)
    )


def _enrich_partitions(
    data: ChunkedLoad,
    n_parts: int,
    staging: Path,
    slim: Path,
    *,
    settings: Settings,
    layout: dict[str, str],
) -> dict[str, int]:
    """Enrich each partition (in a child process of its own when the data is large) and write
    its part of the event facts and of the slim roll-up; the reps fact once."""
    slim.mkdir(parents=True, exist_ok=True)
    tables = {n: f for n, f in data.tables.items() if n not in ("activities", "buyer_actions")}
    reps = enrich_tables(tables, settings=settings).reps
    _write(reps, staging / layout["reps"], row_group_size=max(reps.height, 1))
    counts = {layout["activities"]: 0, layout["actions"]: 0, layout["reps"]: reps.height}
    isolate = sum(data.rows.values()) > ISOLATE_ABOVE_ROWS
    for p in range(max(n_parts, 1)):
        arguments = (p, slim.parent / "parts", staging, slim, tables)
        options = {"settings": settings, "layout": layout}
        if isolate:  # a fresh process per partition: its memory goes back after it
            written = in_child(enrich_partition, *arguments, **options)
        else:
            written = enrich_partition(*arguments, **options)
        for relative, n in written.items():
            counts[relative] += n
    return counts


def enrich_partition(
    p: int,
    parts_root: Path,
    staging: Path,
    slim: Path,
    tables: dict[str, pl.DataFrame],
    *,
    settings: Settings,
    layout: dict[str, str],
) -> dict[str, int]:
    """Enrich partition ``p``; write its event facts and slim roll-up rows; rows written."""
    from effortlens.enrich import ACTIONS_SCHEMA, ACTIVITIES_SCHEMA

    activities = _read_part(parts_root / "activities" / f"{_PART}={p}", "activities")
    actions = _read_part(parts_root / "buyer_actions" / f"{_PART}={p}", "buyer_actions")
    given = dict(tables)
    if activities.width:
        given["activities"] = activities
    if actions.width:
        given["buyer_actions"] = actions
    enriched = enrich_tables(given, settings=settings)
    written = {}
    for fact, schema in (("activities", ACTIVITIES_SCHEMA), ("actions", ACTIONS_SCHEMA)):
        frame = getattr(enriched, fact)
        written[layout[fact]] = frame.height
        if not frame.height and p:
            continue
        target = staging / layout[fact] / f"part-{p:05d}.parquet"
        _write(frame.select(schema.names()), target, row_group_size=262_144)
    acts = enriched.activities
    if acts.height:
        acts.select(
            "rep_id",
            "day",
            "activity_type",
            pl.col("hours").fill_null(0.0),
            pl.col("responded").cast(pl.UInt32),
            pl.col("response_weight").fill_null(0.0),
            pl.when(pl.col("responded"))
            .then(0.0)
            .otherwise(pl.col("hours"))
            .fill_null(0.0)
            .alias("no_impact_hours"),
        ).write_parquet(slim / f"part-{p:05d}.parquet")
    return written


def _daily(slim: Path, data: ChunkedLoad, *, settings: Settings) -> pl.DataFrame:
    """The daily roll-up summed across partitions, in the in-memory roll-up's order."""
    files = sorted(slim.glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema=DAILY_SCHEMA)
    from effortlens.coverage import with_known_groups
    from effortlens.peers import with_peer_group

    reps = with_peer_group(with_known_groups(data.tables["reps"]), keys=settings.peer_keys)
    facts = (
        reps.select("rep_id", *REP_COLUMNS)
        .unique("rep_id", keep="first", maintain_order=True)
        .with_row_index("__rep")
    )
    sums = (
        pl.scan_parquet(files)
        .group_by("rep_id", "day", "activity_type")
        .agg(
            pl.len().cast(pl.UInt32).alias("activities"),
            pl.col("hours").sum(),
            pl.col("responded").sum().cast(pl.UInt32),
            pl.col("response_weight").sum(),
            pl.col("no_impact_hours").sum(),
        )
        .collect(engine="streaming")
    )
    return (
        sums.join(facts, on="rep_id", how="left")
        .sort("__rep", "day", "activity_type", nulls_last=True)
        .with_columns(
            pl.col("day").dt.truncate("1w").alias("week"),
            pl.col("activity_type")
            .is_in(list(settings.customer_facing_types))
            .alias("is_customer_facing"),
        )
        .select(DAILY_SCHEMA.names())
        .cast(dict(DAILY_SCHEMA))
    )


__all__ = ["DEFAULT_CHUNK_ROWS", "should_partition", "write_partitioned"]
