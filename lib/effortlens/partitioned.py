"""The partitioned build: validate in chunks, enrich per partition, for inputs too big for memory.

``effortlens build`` takes this path when the event tables of a folder hold more rows than
``limits.partition_above_rows`` (or with ``--partitioned``). It writes the same facts as the
in-memory build (:func:`effortlens.facts.build`), in the same layout, with memory bounded by
the size of a partition rather than of the data:

1. **Validate in chunks** (:func:`effortlens.loading.pipeline.load_folder_chunked`): each
   event table is split by one streaming pass (``sink_parquet`` to ``pl.PartitionBy``) into
   chunks by a hash of its id, so the duplicate rule stays exact; each chunk is validated as a
   whole table would be, and the input row number of every loaded row is kept.
2. **Partition by connected keys**, planned before the load (:func:`plan_partitions`) so
   that each chunk writes its loaded rows by partition at once (no pass that reads every
   event again to split them). Attribution matches an action to an activity on the same
   opportunity, else contact, else account. The keys of every activity and action read
   (distinct ``(account, contact, opportunity)`` triples as the load reads them, found by a
   streaming ``unique``; the rows the load quarantines too, which can only join components)
   are the edges of a graph; its connected components are the accounts when the data is
   consistent (opportunities and contacts nest inside one account). Rows whose keys disagree
   across accounts (an opportunity or contact seen under two accounts) join those accounts
   into one component: **nothing is quarantined and no second pass is needed**, the match is
   exact because every candidate match shares a key, hence a component. Components are
   packed into partitions of about ``chunk_rows`` events (largest first, into the lightest
   partition). A single component larger than that stays whole: its partition is bigger.
   Events without any key match nothing: they are spread over every partition by input row.
   Each event finds its partition by its first key (account, else contact, else
   opportunity; :class:`~effortlens.loading.pipeline.Partitions`), or, when a key column
   cannot be planned, after the load by its key triple (:func:`partition_events`).
3. **Enrich per partition** with :func:`effortlens.enrich.enrich_tables`, the partition's
   rows sorted in the loaded order (the tables' sort keys, ties by input row): the tie rule of
   attribution (at equal times on the same key, the activity *later in the loaded table*
   wins) is decided exactly as in memory. Each partition writes one part file of
   ``activities.parquet/`` and ``actions.parquet/`` (folders of part files,
   :func:`effortlens.facts.scan_fact`).
4. **Daily roll-up**: each partition writes what the roll-up sums of each of its activities
   (:func:`effortlens.enrich.daily_rows`), a file per run of reps (the runs fixed before any
   partition starts, :func:`roll_up_slices`; one ``group_by`` over every event passed 8 GB at
   100M), added up per partition then across partitions by one integer cell number a row, in
   the in-memory roll-up's order, a piece of consecutive reps at a time (:func:`write_daily`),
   and written by the process that sums it: started as soon as every partition has started
   and a process is free, beside the last partitions.

5. **View facts** (above ``limits.partition_above_rows``, :func:`write_view_facts`): what a
   contact's history gives, per partition (practice, verifiers, streaks, the touches' history
   columns), in the partition's enrichment process on its facts in memory (pass 1, the touches'
   extent taken from the loaded partitions first); the habit credit as **one** fit over the
   compact inputs of every partition (memory-mapped integer codes and lags), the touch facts
   then rewritten in day order, the habit and practice cells summed over them, and the habit
   touch codes made from them.

The small tables, the quarantine and the load's report are written beside the partitions.

What differs from the in-memory build: the event facts are in partition order (loaded order
within each partition) rather than one loaded order; the sums of the daily roll-up and of the
habit credit's fit are added in another order (floating-point totals and credits may differ
in the last bits, tested to 1e-9 relative); a rep's touches of one day come in partition
order. Every row, value and count is otherwise the same (tests/test_partitioned.py).

Examples
--------
>>> from effortlens.settings import load_settings  # doctest: +SKIP
>>> rows = write_partitioned("exports/big", staging, settings=load_settings())  # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import io
import json
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from effortlens import processes
from effortlens.cache import scratch_dir
from effortlens.enrich import DAILY_SCHEMA, DAILY_SUMS, REP_COLUMNS, daily_rows, enrich_tables
from effortlens.loading.pipeline import (
    EVENT_TABLES,
    ISOLATE_ABOVE_ROWS,
    SCRATCH_CODEC,
    ChunkedLoad,
    Partitions,
    in_child,
    load_folder_chunked,
    scan_quarantine,
    streamable_rows,
)
from effortlens.loading.table import ROW, SORT_KEYS
from effortlens.settings import Settings

#: Events (activities + buyer actions) per chunk and per partition when not set.
DEFAULT_CHUNK_ROWS = 4_000_000
#: The key levels attribution matches on, as graph node prefixes.
_KEYS = (("account_id", "a"), ("contact_id", "c"), ("opportunity_id", "o"))
_PART = "__part"
#: A roll-up row's rep: its place in :attr:`RollUpSlices.reps` (:func:`_write_roll_up_rows`).
_REP = "__rep"
#: Roll-up rows summed at once (:func:`write_daily`): numpy's sort and gathers of pieces that
#: stay in the cache (100M, a run of 6.3M rows: 1.7-1.9 CPU s whole, ~0.8 in pieces of ~260k).
_PIECE_ROWS = 1 << 18
#: A roll-up row's ``no_impact_hours`` from its ``hours`` and ``responded`` (nulls as 0): the
#: value :func:`effortlens.enrich.daily_rows` gives (its hours when it has no response), not
#: written by the partitions (8 of 37 bytes a row).
_NO_IMPACT = (
    pl.when(pl.col("responded") == 1).then(0.0).otherwise(pl.col("hours")).alias("no_impact_hours")
)
#: The seed of the hash that finds each event's key triple (:func:`partition_events`).
_TRIPLE_SEED = 20240501
#: The partitions' scratch files: each is written once and read whole once, so neither
#: compressed nor with statistics (3m, 3.5M events: written and read 1.8 -> 1.4 CPU s against
#: lz4; 1.7x the disk, ~5 GB at 100M events).
_PARTITION_CODEC = "uncompressed"


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
    views: Path | None = None,
) -> tuple[dict[str, int], PassOne | None]:
    """Validate and enrich ``folder`` partition by partition into build folder ``staging``.

    What does not wait for the partitions (the small tables, the quarantine, the load's
    report) is written beside their processes, and the daily roll-up in a process of its own
    as soon as every partition has started and a slot is free (:func:`_enrich_partitions`):
    no step runs in one process while the other core idles.

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
    views
        A scratch folder for the view facts (:func:`write_view_facts`). When given and the
        load holds more events than ``limits.partition_above_rows`` (the view facts are then
        written part by part), pass 1 of the view facts (:func:`_view_part`) runs in each
        partition's process right after its enrichment, on its facts in memory, and writes its
        scratch there: one process a partition, not two, and the facts not read back.

    Returns
    -------
    rows, pass_one
        Rows per file written (relative to ``staging``), for the manifest; pass 1's
        :class:`PassOne` for :func:`write_view_facts` when it ran, else ``None``.
    """
    staging = Path(staging)
    say = step or (lambda _name: None)
    if chunk_rows is None:
        chunk_rows = getattr(settings.limits, "partition_rows", DEFAULT_CHUNK_ROWS)
    scratch = scratch_dir(staging.parent, "partitioned")
    try:
        _read_input_ahead(Path(folder))
        say("load and validate")
        # the whole load in a process of its own when large: what the parent keeps of it is
        # the result (the small tables), not the validation's high-water mark (100M: 4.8 GB)
        isolated = (streamable_rows(folder) or 0) > ISOLATE_ABOVE_ROWS
        run = in_child if isolated else (lambda function, *a, **k: function(*a, **k))
        arguments = (folder, scratch / "valid")
        # the load writes its loaded events by partition (:func:`plan_partitions`)
        options = {"settings": settings, "now": now, "chunk_rows": chunk_rows}
        options["parts"] = scratch / "parts"
        if isolated:  # its frames come back through files, not a pipe (100M: 1 GB pickled)
            data = _read_load(in_child(_load_to_files, *arguments, **options))
        else:
            data = _load_by_partition(*arguments, **options)
        say("enrich")
        if data.partitions is not None:
            parts = data.partitions
        elif sum(data.rows.values()) > ISOLATE_ABOVE_ROWS:  # its memory goes back after it
            parts = in_child(
                partition_events, data.events, scratch / "parts", chunk_rows=chunk_rows
            )
        else:
            parts = partition_events(data.events, scratch / "parts", chunk_rows=chunk_rows)
        events = sum(data.rows.values())
        pass_one = None
        if views is not None and events > settings.limits.partition_above_rows:
            pass_one = PassOne(Path(views), _loaded_extent(scratch / "parts", settings), [])
        isolate = events > ISOLATE_ABOVE_ROWS
        run = Children(isolate=isolate, workers=build_workers(settings) if isolate else 1)

        def loaded_files() -> dict[str, int]:
            try:
                return _write_loaded(
                    data, staging, table_files=table_files, quarantine_file=quarantine_file,
                    report_file=report_file, report_json=report_json,
                )  # fmt: skip
            except BaseException as err:
                run.stop(err)  # the partitions' processes too: the failure is told at once
                raise

        # the files that need none of the partitions, written while they are enriched; the
        # partitions' idle processes ended after (their memory back for the habit credit's fit)
        with ThreadPoolExecutor(max_workers=1) as lane, run:
            loaded = lane.submit(loaded_files)
            rows = _enrich_partitions(
                data, parts, staging, scratch / "slim", settings=settings, layout=layout,
                run=run, step=say, pass_one=pass_one, slice_rows=4 * chunk_rows,
            )  # fmt: skip
            say("write facts")
            rows.update(loaded.result())
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    _discard(scratch)  # the loaded partitions and roll-up rows: not waited for
    return rows, pass_one


#: Folders :func:`_discard` is deleting, each in a thread of its own.
_DISCARDING: list[threading.Thread] = []


def _discard(folder: Path) -> None:
    """Delete ``folder`` in a thread of its own (:func:`discarded` waits for it): the build
    goes on meanwhile. The partitioned scratch (the loaded partitions and the roll-up rows)
    took 0.5 s of the build's wall at 10m in the 100M shape, nearly all of it waiting on the
    disk (0.08 CPU s); at 100M it is ~10 GB, much of it not yet written back, and the stretch
    that deleted it took 10 s with a core idle. A build killed meanwhile leaves it to the next
    one (:func:`effortlens.cache.scratch_dir` deletes the working folders of processes gone)."""
    thread = threading.Thread(
        target=shutil.rmtree, args=(folder,), kwargs={"ignore_errors": True}, daemon=True
    )
    thread.start()
    _DISCARDING.append(thread)


def discarded() -> None:
    """Wait until every folder given to :func:`_discard` is deleted."""
    while _DISCARDING:
        _DISCARDING.pop().join()


def _write_loaded(
    data: ChunkedLoad,
    staging: Path,
    *,
    table_files: dict[str, str],
    quarantine_file: str,
    report_file: str,
    report_json: Callable[[Any], dict[str, Any]],
) -> dict[str, int]:
    """The files of :func:`write_partitioned` made of the load alone: the small tables, the
    quarantine and the load's report; rows per file written."""
    rows = {}
    for name, relative in table_files.items():
        frame = data.tables[name]
        _write(frame, staging / relative, row_group_size=max(frame.height, 1))
        rows[relative] = frame.height
    # the files each chunk of the load wrote, streamed into one (100M: 6.7M rows, ~3 GB
    # in memory, never held)
    target = staging / quarantine_file
    target.parent.mkdir(parents=True, exist_ok=True)
    scan_quarantine(data.quarantine).sink_parquet(target, statistics=True, engine="streaming")
    rows[quarantine_file] = pl.scan_parquet(target).select(pl.len()).collect().item()
    report = {
        "report": report_json(data.report),
        "missing_tables": list(data.missing_tables),
        "source": str(data.source),
    }
    (staging / report_file).write_text(json.dumps(report, indent=1, default=str), "utf-8")
    return rows


@dataclass
class PassOne:
    """Pass 1 of the view facts run in the partitions' processes, each right after its
    enrichment (:func:`write_partitioned` with ``views``), for :func:`write_view_facts`.

    Attributes
    ----------
    scratch
        The view facts' scratch folder pass 1 wrote in.
    extent
        What every partition's pass 1 took of all the touches (:func:`_loaded_extent`).
    metas
        Each partition's :func:`_view_part` result, in partition order.
    """

    scratch: Path
    extent: dict[str, Any]
    metas: list[dict[str, Any]]


def _loaded_extent(parts: Path, settings: Settings) -> dict[str, Any]:
    """:func:`_touch_extent` from the loaded partitions under ``parts``, before the
    enrichment: the event facts hold the same rows, times, types and contacts (the enrichment
    adds columns, it drops and changes no row), and a touch is customer facing when its type
    is one of ``settings.customer_facing_types``, as the enrichment marks it. One streaming
    pass over three columns of the activities and two of the actions (3m: 0.09 CPU s)."""
    files = {
        table: sorted((parts / table).glob(f"{_PART}=*/*.parquet"))
        for table in ("activities", "buyer_actions")
    }
    kinds: list[str] = []
    first = last = answered = None
    frames = []
    if files["activities"]:
        touches = (
            pl.scan_parquet(files["activities"], hive_partitioning=False)
            .filter(pl.col("activity_type").is_in(list(settings.customer_facing_types)))
            .filter(pl.col("contact_id").is_not_null())
        )
        frames += [
            touches.select(pl.col("activity_type").drop_nulls().unique()),
            touches.select(first=pl.col("ts").min(), last=pl.col("ts").max()),
        ]
    if files["buyer_actions"]:
        frames.append(
            pl.scan_parquet(files["buyer_actions"], hive_partitioning=False)
            .filter(pl.col("contact_id").is_not_null())
            .select(pl.col("ts").max())
        )
    found = pl.collect_all(frames, engine="streaming") if frames else []
    if files["activities"]:
        kinds = found[0].to_series().sort().to_list()
        first, last = found[1]["first"].item(), found[1]["last"].item()
    if files["buyer_actions"]:
        answered = found[-1].item()
    end = None if last is None else max(last, answered or last)
    return {"kinds": kinds, "first": first, "end": end}


def _load_by_partition(folder: Path, out: Path, *, parts: Path, **options: Any) -> ChunkedLoad:
    """:func:`load_folder_chunked` writing its loaded events by partition under ``parts``
    (:func:`plan_partitions`), or in chunks when the keys cannot be planned.

    The plan is found in a thread while the load reads and validates the small tables and
    checks the event tables' ids (Polars works without the interpreter's lock: both cores);
    the chunks start as soon as the ids are checked, each waiting for the plan after its
    validation (:class:`~effortlens.loading.pipeline.PendingPartitions`): the plan's end
    (100M: ~10 s on one core) has the chunks' processes beside it, not an idle core.
    """
    from concurrent.futures import ThreadPoolExecutor

    from effortlens.loading.pipeline import PendingPartitions

    pending = PendingPartitions(Path(out) / "plan.pickle")

    def planned() -> Partitions | None:
        plan = plan_partitions(folder, parts, chunk_rows=options["chunk_rows"])
        pending.found(plan)  # for the chunks' processes waiting on the file
        return plan

    with ThreadPoolExecutor(max_workers=1) as thread:
        pending.future = thread.submit(planned)
        return load_folder_chunked(folder, out, partitions=pending, **options)


def _load_to_files(folder: Path, out: Path, **options: Any) -> ChunkedLoad:
    """:func:`_load_by_partition`, its frames written under ``out/frames`` and replaced by
    the paths (what a child process sends back: a pickled frame of 1 GB would be held three
    times at once, by the child, the pipe and the parent); the quarantine is files already."""
    import dataclasses

    frames = out / "frames"  # each small table written as soon as it is validated
    data = _load_by_partition(folder, out, tables_to=frames, **options)
    tables = {name: frames / f"{name}.parquet" for name in data.tables}
    return dataclasses.replace(data, tables=tables)


def _read_load(data: ChunkedLoad) -> ChunkedLoad:
    """The tables of :func:`_load_to_files`' load read back; its quarantine stays files
    (6.7M rows at 100M, ~3 GB in memory), streamed into the build."""
    import dataclasses

    tables = {name: pl.read_parquet(path) for name, path in data.tables.items()}
    return dataclasses.replace(data, tables=tables)


def _write(frame: pl.DataFrame, path: Path, *, row_group_size: int | None) -> None:
    """``frame`` written as the in-memory build writes its files (its codec, statistics)."""
    from effortlens.facts import PARQUET_CODEC

    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(
        path, compression=PARQUET_CODEC, statistics=True, row_group_size=row_group_size
    )


def _triple_hash() -> pl.Expr:
    """A 64-bit hash of a row's keys (account, contact, opportunity; nulls included)."""
    return pl.struct([key for key, _ in _KEYS]).hash(_TRIPLE_SEED)


def _components(events: dict[str, list[Path]]) -> tuple[pl.DataFrame, np.ndarray, int]:
    """The distinct key triples of every loaded event with the ``component`` of each (null:
    no key), events per component, and events without any key."""
    keys = [key for key, _ in _KEYS]
    scans = [pl.scan_parquet(paths).select(keys) for paths in events.values() if paths]
    return _triple_components(pl.concat(scans))


def _triple_components(
    scan: pl.LazyFrame | pl.DataFrame, *, count: pl.Expr | None = None
) -> tuple[pl.DataFrame, np.ndarray, int]:
    """:func:`_components` of the key triples of ``scan`` (one row an event, or, with
    ``count``, the events of a row: ``count`` summed per triple; or, a ``DataFrame``, the
    distinct triples already, their events in ``n``)."""
    keys = [key for key, _ in _KEYS]
    if isinstance(scan, pl.DataFrame):
        triples = scan
    else:
        # distinct triples first (a streaming group-by on the raw keys): 9M distinct triples
        # at 100M events
        counted = pl.len() if count is None else count
        triples = scan.group_by(keys).agg(counted.alias("n")).collect(engine="streaming")
    # the graph's nodes are the prefixed keys "a:<account>", "c:<contact>", "o:<opportunity>"
    # numbered in their sorted order: the prefixes sort the levels, the values' own order
    # within one; a node's code is its level's offset plus the value's rank among the level's
    # distinct values, found by a join on the raw key (3m: 0.34 CPU s by an `Enum` cast of
    # the formatted nodes, 0.17 by joins)
    codes, values = [], []
    for key, prefix in _KEYS:
        distinct = triples[key].drop_nulls().unique().sort()
        ranks = pl.DataFrame(
            {key: distinct, prefix: pl.int_range(distinct.len(), dtype=pl.UInt32, eager=True)}
        )
        codes.append(
            triples.select(key).join(ranks, on=key, how="left", maintain_order="left")[prefix]
        )
        values.append(distinct)
    component, weight, keyless = _coded_components(codes, triples["n"], values)
    return triples.select(keys).with_columns(component), weight, keyless


def _coded_components(
    codes: list[pl.Series], n: pl.Series, values: list[pl.Series]
) -> tuple[pl.Series, np.ndarray, int]:
    """The ``component`` of each distinct key triple (null: no key), events per component
    and events without any key, from each key's code in a triple (its rank among the key's
    ``values``, sorted; null: none) and the triple's events ``n``.

    The graph's nodes are the prefixed keys "a:<account>", "c:<contact>", "o:<opportunity>"
    numbered in their sorted order (the prefixes sort the levels): a node's number is its
    level's offset plus its code; components are numbered by their first node.
    """
    size, shifted = 0, []
    for code, distinct in zip(codes, values, strict=True):
        shifted.append(code + size if size else code)
        size += distinct.len()
    coded = pl.DataFrame(
        [s.alias(prefix) for s, (_, prefix) in zip(shifted, _KEYS, strict=True)] + [n.alias("n")]
    )
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = [("a", "c"), ("a", "o"), ("c", "o")]
    edges = pl.concat(
        [coded.select(pl.col(x).alias("u"), pl.col(y).alias("v")).drop_nulls() for x, y in pairs]
    )
    graph = coo_matrix(
        (np.ones(edges.height, dtype=np.int8), (edges["u"].to_numpy(), edges["v"].to_numpy())),
        shape=(size, size),
    )
    _, labels = connected_components(graph, directed=False)
    # each triple's component is its first key's (its keys are all in it)
    first = coded.select(pl.coalesce("a", "c", "o").alias("code"), "n")
    keyed = first.drop_nulls("code")
    minlength = int(labels.max()) + 1 if len(labels) else 0
    weight = np.bincount(
        labels[keyed["code"].to_numpy()], weights=keyed["n"].to_numpy(), minlength=minlength
    )
    keyless = first.filter(pl.col("code").is_null())["n"].sum()
    of_code = pl.Series("component", labels, dtype=pl.UInt32)
    component = of_code.gather(first["code"])  # null: no key
    return component, weight, int(keyless or 0)


def _pack(weight: np.ndarray, *, chunk_rows: int, keyless: int = 0) -> np.ndarray:
    """Partition of each component: largest first into the lightest of ``ceil((total +
    keyless) / chunk_rows)`` partitions (deterministic: ties by component number), each
    starting with its even share of the ``keyless`` events (spread by
    :func:`partition_events`).

    Examples
    --------
    >>> _pack(np.array([5.0, 1.0, 3.0]), chunk_rows=10, keyless=11).tolist()
    [0, 1, 1]
    """
    n_parts = max(1, int(-(-(weight.sum() + keyless) // max(chunk_rows, 1))))
    heap = [(keyless / n_parts, p) for p in range(n_parts)]
    order = np.argsort(-weight, kind="stable")
    parts = []
    # the lightest partition takes the next component: popped and pushed back in one step
    # (Python numbers: 100M, 1.5M components, 1.2 -> 0.7 s)
    for w in weight[order].tolist():
        load, p = heap[0]
        parts.append(p)
        heapq.heapreplace(heap, (load + w, p))
    out = np.zeros(len(weight), dtype=np.uint32)
    out[order] = parts
    return out


def _dictionary_triples(
    sources: list[tuple[Path, dict[str, str]]], *, rows_to: Path | None = None
) -> tuple[list[pl.Series], pl.Series, list[pl.Series], tuple[str, ...]]:
    """The distinct key triples of the event files ``sources`` (each file and its text key
    columns: key -> column) as the load reads them (trimmed, empty as null), coded: each
    key's code in each triple (its rank among the key's distinct read values; null: none),
    the triple's events, each key's distinct read values (sorted), and the keys whose every
    written value needs no trimming and is not empty.

    No text is hashed a row: each row group's key columns are read as Parquet keeps them,
    indices into a small dictionary of the row group's values (Arrow's reader); the row
    group's triples of indices are counted (one integer a triple), and only those are put
    in one code space through the dictionaries' distinct values (10m: 1.5M triples of row
    groups and 1.7M dictionary values for 11.6M events, against 11.6M triples of text hashed
    and grouped by :func:`_text_triples`).

    With ``rows_to``, what the load needs to write the keys as codes
    (:attr:`~effortlens.loading.pipeline.Partitions.codes`): each row's place among the
    dictionaries' values, a file a table and key (``rows-<table>-<key>.u32``, the table as
    the file is named), and each place's read value, its rank among the key's distinct
    values (``flat-<key>.u32``).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from effortlens.loading.columns import is_untidy

    keys = [key for key, _ in _KEYS]
    dictionaries: list[list[pa.Array]] = [[] for _ in keys]
    offsets = [0] * len(keys)  # flat codes: each dictionary's values, then its null code
    local: list[list[np.ndarray]] = []
    batch: list[list[np.ndarray]] = [[] for _ in keys]
    base, held = list(offsets), 0  # the batch's first flat codes, its rows

    def count() -> None:  # the batch's triples of flat codes, counted
        spans = [offset - first for offset, first in zip(offsets, base, strict=True)]
        local.append(_counted_triples([np.concatenate(b) for b in batch], spans, base))
        for b in batch:
            b.clear()

    for file, given in sources:
        columns = [given[key] for key in keys if key in given]
        parquet = pq.ParquetFile(file, read_dictionary=columns)
        places = []  # each row's place among the dictionaries' values, a file a key
        if rows_to is not None:
            rows_to.mkdir(parents=True, exist_ok=True)
            table = file.stem.strip().lower()  # as the load names it
            places = [open(rows_to / f"rows-{table}-{key}.u32", "wb") for key in keys]  # noqa: SIM115
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=columns, use_threads=False)
            if not table.num_rows:
                continue
            for j, key in enumerate(keys):
                if key in given:
                    column = table.column(given[key])
                    if column.num_chunks == 1:
                        column = column.chunk(0)
                    else:
                        column = column.unify_dictionaries().combine_chunks()
                    dictionary, index = column.dictionary, column.indices
                    if index.null_count:  # a null's index: the dictionary's size
                        index = pc.fill_null(index, len(dictionary))
                    index = index.to_numpy()
                else:  # no such column: every row's key is null
                    dictionary = pa.array([], pa.string())
                    index = np.zeros(table.num_rows, np.uint32)
                dictionaries[j].append(dictionary)
                batch[j].append(
                    np.add(index, offsets[j] - base[j], dtype=np.uint64, casting="unsafe")
                )
                if places:
                    place = np.add(index, offsets[j], dtype=np.uint32, casting="unsafe")
                    places[j].write(place.tobytes())
                offsets[j] += len(dictionary) + 1
            held += table.num_rows
            if held >= _PLAN_BATCH_ROWS:
                count()
                base, held = list(offsets), 0
        for handle in places:
            handle.close()
    if held:
        count()
    # each flat code's value as the load reads it, then its rank among the distinct ones
    codes, values, tidy = [], [], []
    n = pl.Series("n", np.concatenate([part[-1] for part in local]) if local else [], pl.UInt32)
    for j, key in enumerate(keys):
        parts = []
        for dictionary in dictionaries[j]:
            parts += [dictionary.cast(pa.large_string()), pa.nulls(1, pa.large_string())]
        flat = pa.concat_arrays(parts) if parts else pa.array([], pa.large_string())
        encoded = pc.dictionary_encode(flat)  # each written value once, nulls kept
        written = pl.from_arrow(encoded.dictionary).alias(key)
        if not written.to_frame().select(is_untidy(key)).item():
            tidy.append(key)  # the written values are the read ones: ranked by one sort
            order = written.arg_sort().to_numpy()
            rank = np.empty(len(order), np.uint32)
            rank[order] = np.arange(len(order), dtype=np.uint32)
            of_written = pl.Series("code", rank)
            distinct = written.gather(order)
        else:
            read = written.to_frame().select(_read_key(key)).to_series()
            distinct = read.drop_nulls().unique().sort()
            ranks = pl.DataFrame(
                {key: distinct, "code": pl.int_range(distinct.len(), dtype=pl.UInt32, eager=True)}
            )
            of_written = read.to_frame().join(ranks, on=key, how="left", maintain_order="left")
            of_written = of_written["code"]
        of_flat = of_written.gather(pl.from_arrow(encoded.indices))  # null: null
        if rows_to is not None:
            of_flat.fill_null(_NO_CODE).to_numpy().astype(np.uint32).tofile(
                rows_to / f"flat-{key}.u32"
            )
        triples = np.concatenate([part[j] for part in local]) if local else []
        codes.append(of_flat.gather(pl.Series(triples, dtype=pl.UInt32)).alias(key))
        values.append(distinct)
    # the triples of every row group in one code space, counted once more (packed, when
    # one integer holds them)
    bits = [int(distinct.len()).bit_length() for distinct in values]
    if sum(bits) <= 64:
        packed, shift = pl.lit(0, pl.UInt64), 0
        for code, distinct, width in zip(codes, values, bits, strict=True):
            packed = packed | (code.fill_null(distinct.len()).cast(pl.UInt64) * (1 << shift))
            shift += width
        counted = _counted(pl.select(packed.alias("p"), n), ["p"], pl.col("n").sum())
        shift, unpacked = 0, []
        for key, distinct, width in zip(keys, values, bits, strict=True):
            code = (pl.col("p") // (1 << shift)) % (1 << width)
            unpacked.append(pl.when(code < distinct.len()).then(code).cast(pl.UInt32).alias(key))
            shift += width
        coded = counted.select(*unpacked, "n")
    else:
        coded = _counted(pl.DataFrame([*codes, n]), keys, pl.col("n").sum())
    return [coded[key] for key in keys], coded["n"], values, tuple(tidy)


def _counted(frame: pl.DataFrame, keys: list[str], count: pl.Expr) -> pl.DataFrame:
    """``frame``'s distinct ``keys`` with ``count`` (as ``n``) by Polars' streaming group-by
    (in memory too: 1M integers of 100k values 33 ns a row against 52 for the eager one; 11.6M
    of 4.6M, 0.97 against 2.17 CPU s)."""
    grouped = frame.lazy().group_by(keys).agg(count.alias("n"))
    return grouped.collect(engine="streaming")


#: Rows whose key triples :func:`_dictionary_triples` counts at once (a few row groups).
_PLAN_BATCH_ROWS = 1_000_000


def _counted_triples(
    codes: list[np.ndarray], spans: list[int], base: list[int]
) -> list[np.ndarray]:
    """The distinct rows of ``codes`` (one array a key, each code below its ``spans``), each
    plus its key's ``base``, and their counts (last)."""
    bits = [int(span).bit_length() for span in spans]
    if sum(bits) <= 64:  # one integer a row
        packed, shift = codes[0], bits[0]
        for code, width in zip(codes[1:], bits[1:], strict=True):
            packed = packed | (code << np.uint64(shift))
            shift += width
        counted = _counted(pl.DataFrame({"p": packed}), ["p"], pl.len())
        packed, shift, distinct = counted["p"].to_numpy(), 0, []
        for width in bits:
            mask = np.uint64((1 << width) - 1)
            distinct.append(((packed >> np.uint64(shift)) & mask).astype(np.uint32))
            shift += width
    else:
        frame = pl.DataFrame({f"k{j}": code for j, code in enumerate(codes)})
        counted = _counted(frame, frame.columns, pl.len())
        distinct = [counted[f"k{j}"].to_numpy().astype(np.uint32) for j in range(len(codes))]
    return [code + np.uint32(first) for code, first in zip(distinct, base, strict=True)] + [
        counted["n"].to_numpy()
    ]


def plan_partitions(folder: Path, out: Path, *, chunk_rows: int) -> Partitions | None:
    """The partition of every key value of ``folder``'s event tables, found before the load
    from their key columns as the load reads them (text, trimmed, empty as null): what
    :func:`effortlens.loading.pipeline.load_folder_chunked` needs to write each chunk's loaded
    rows by partition (:class:`~effortlens.loading.pipeline.Partitions`); ``None`` when a key
    column is not plain (the load then writes chunks and :func:`partition_events` splits them).

    The graph is the one :func:`partition_events` builds, over every *read* event (the rows
    the load will quarantine too): its components are those of the loaded events or unions of
    them, so every event attribution may match is still in its partition, and a partition is
    still about ``chunk_rows`` events read. An event's partition is its first key's
    (account, else contact, else opportunity; its keys are all in one component); without
    any key, its input row modulo the number of partitions, as :func:`partition_events`.
    """
    from pyarrow import ArrowException as ArrowError

    from effortlens.loading.columns import canonical_header
    from effortlens.loading.pipeline import _table_files

    if streamable_rows(folder) is None:
        return None  # the load says why
    keys = [key for key, _ in _KEYS]
    files, _ = _table_files(folder)
    scans, sources, plain = [], [], True
    for name in EVENT_TABLES:
        if name not in files:
            continue
        given: dict[str, str] = {}
        for column, dtype in pl.read_parquet_schema(files[name]).items():
            key = canonical_header(column)
            if key not in keys:
                continue
            if key in given or dtype.is_nested() or dtype in (pl.Binary, pl.Object):
                return None  # the load refuses or decides: no plan
            given[key] = column
            plain = plain and dtype == pl.String
        sources.append((files[name], given))
        scans.append(
            pl.scan_parquet(files[name]).select(
                pl.col(given[key]).cast(pl.String).alias(key)
                if key in given
                else pl.lit(None, pl.String).alias(key)
                for key in keys
            )
        )
    if not scans:
        return None
    try:
        if plain:  # text keys: their triples from the files' dictionaries, no text hashed
            codes, n, values, tidy = _dictionary_triples(sources, rows_to=out / "codes")
        else:
            codes, n, values, tidy = _text_triples(scans)
    except (pl.exceptions.PolarsError, OSError, ArrowError):
        return None  # an unreadable file: the load says what is wrong with it
    component, weight, keyless = _coded_components(codes, n, values)
    n_parts = max(1, int(-(-(weight.sum() + keyless) // max(chunk_rows, 1))))
    part = pl.Series(_PART, _pack(weight, chunk_rows=chunk_rows, keyless=keyless)).gather(component)
    coded = pl.DataFrame([code.alias(key) for code, key in zip(codes, keys, strict=True)])
    coded = coded.with_columns(part)
    out.mkdir(parents=True, exist_ok=True)
    maps, earlier = [], pl.lit(True)
    for key, distinct in zip(keys, values, strict=True):  # each value of a key where it is
        first = earlier & pl.col(key).is_not_null()  # a triple's first key
        path = out / f"map-{key}.parquet"
        found = coded.filter(first).select(key, _PART).unique(key)
        found.select(distinct.gather(found[key]).alias(key), _PART).write_parquet(path)
        maps.append(path)
        earlier = earlier & pl.col(key).is_null()
    key_codes = None
    if (out / "codes" / f"flat-{keys[-1]}.u32").exists():  # each row's place was written
        key_codes = _key_codes(codes, values, part, n_parts, out)
    return Partitions(out, tuple(keys), tuple(maps), n_parts, tidy, key_codes)


#: No value (a null key) in the arrays of :func:`_key_codes`
#: (:data:`effortlens.loading.pipeline.NO_CODE`).
_NO_CODE = 0xFFFFFFFF


def _key_codes(
    codes: list[pl.Series], values: list[pl.Series], part: pl.Series, n_parts: int, out: Path
) -> Path:
    """The rest of what the chunks need to write the key columns as integer codes
    (:attr:`~effortlens.loading.pipeline.Partitions.codes`, beside what
    :func:`_dictionary_triples` wrote there): each key value's code, its rank among the
    sorted values of that key in its partition (every value of a key is in one partition:
    its triples' component's), and its partition, by its rank among all the key's values;
    each partition's values written in order to ``out/values/__part=<p>/<key>.parquet`` for
    :func:`read_partition`.

    A partition's code order is its values' order, so :func:`loaded_order` sorts by the
    codes as by the text; the chunks write 4-byte codes instead of text (100M: 3 of the 6
    text columns of 117M events; no dictionary to build, 4-byte gathers by partition).
    """
    folder = out / "values"
    for key, code, distinct in zip([k for k, _ in _KEYS], codes, values, strict=True):
        # each value's partition (a triple with this key has a component, so a partition)
        keyed = code.is_not_null()
        part_of = np.zeros(distinct.len(), np.uint32)
        part_of[code.filter(keyed).to_numpy()] = part.filter(keyed).to_numpy()
        order = np.argsort(part_of, kind="stable")  # by partition, then by value
        counts = np.bincount(part_of, minlength=n_parts)
        starts = np.cumsum(counts) - counts
        rank = np.empty(distinct.len(), np.int64)
        rank[order] = np.arange(distinct.len()) - np.repeat(starts, counts)
        rank.astype(np.uint32).tofile(out / "codes" / f"local-{key}.u32")
        part_of.tofile(out / "codes" / f"part-{key}.u32")
        for p in range(n_parts):
            (folder / f"{_PART}={p}").mkdir(parents=True, exist_ok=True)
            held = distinct.gather(order[starts[p] : starts[p] + counts[p]]).alias(key)
            held.to_frame().write_parquet(folder / f"{_PART}={p}" / f"{key}.parquet")
    return out / "codes"


def _text_triples(
    scans: list[pl.LazyFrame],
) -> tuple[list[pl.Series], pl.Series, list[pl.Series], tuple[str, ...]]:
    """:func:`_dictionary_triples` of key columns read as text (``scans``: the event tables'
    key columns cast to text, as written): one streaming group-by of every row's triple."""
    from effortlens.loading.columns import is_untidy

    keys = [key for key, _ in _KEYS]
    # the distinct triples as written, then as the load reads them (trimmed, empty as
    # null; 3m: 0.8 -> 0.6 CPU s against trimming every row first): the same triples
    # when no value has blanks around it or is empty (then no chunk looks for one)
    written = pl.concat(scans).group_by(keys).agg(pl.len().alias("n")).collect(engine="streaming")
    untidy = written.select(is_untidy(key) for key in keys).row(0)
    tidy = tuple(key for key, flag in zip(keys, untidy, strict=True) if not flag)
    triples = written
    if len(tidy) != len(keys):
        read = written.lazy().select(*(_read_key(key).alias(key) for key in keys), "n")
        triples = read.group_by(keys).agg(pl.col("n").sum()).collect(engine="streaming")
    codes, values = [], []
    for key in keys:
        distinct = triples[key].drop_nulls().unique().sort()
        ranks = pl.DataFrame(
            {key: distinct, "code": pl.int_range(distinct.len(), dtype=pl.UInt32, eager=True)}
        )
        codes.append(
            triples.select(key).join(ranks, on=key, how="left", maintain_order="left")["code"]
        )
        values.append(distinct)
    return codes, triples["n"], values, tidy


def _read_key(column: str) -> pl.Expr:
    """A key column as the load reads it (:func:`effortlens.loading.columns.parse_text`)."""
    text = pl.col(column).cast(pl.String).str.strip_chars()
    return pl.when(text != "").then(text)


def partition_events(events: dict[str, list[Path]], out: Path, *, chunk_rows: int) -> int:
    """Write the validated ``events`` (table -> part files, deleted after) under
    ``out/<table>/__part=<p>/``; the number of partitions.

    Events without any key never match anything in attribution: they are spread over every
    partition by their input row (``__row`` modulo the number of partitions, deterministic),
    so no partition holds more than its share of them (100M: 16.6M activities, which all
    went to partition 0 before and took 6.3 GB to enrich).
    """
    if not any(events.values()):
        return 0
    triples, weight, keyless = _components(events)
    part_of = _pack(weight, chunk_rows=chunk_rows, keyless=keyless)
    n_parts = max(1, int(-(-(weight.sum() + keyless) // max(chunk_rows, 1))))
    keys = [key for key, _ in _KEYS]
    part = pl.Series(_PART, part_of).gather(triples["component"])  # null: no key
    # each event finds its triple's partition by a join on the triple's 64-bit hash (3m:
    # 0.3 CPU s against 0.6 by a join on a formatted text node), exact when the distinct
    # triples' hashes differ; else by a join on the three keys
    hashed = triples.select(_triple_hash().alias("__h"), part)
    by_hash = hashed["__h"].n_unique() == hashed.height
    spread = (pl.col(ROW) % n_parts).cast(pl.UInt32)
    keyless_row = pl.all_horizontal(pl.col(keys).is_null())
    for name, paths in events.items():
        if not paths:
            continue
        scan = pl.scan_parquet(paths)
        if by_hash:
            scan = scan.with_columns(_triple_hash().alias("__h"))
            scan = scan.join(hashed.lazy(), on="__h", how="left").drop("__h")
        else:
            mapping = triples.select(keys).with_columns(part).lazy()
            scan = scan.join(mapping, on=keys, how="left", nulls_equal=True)
        (
            # a keyed event whose triple was not found would be written under `__part=null`
            scan.with_columns(
                pl.when(keyless_row).then(spread).otherwise(pl.col(_PART)).alias(_PART)
            ).sink_parquet(
                pl.PartitionBy(out / name, key=_PART, include_key=False),
                mkdir=True,
                engine="streaming",
                compression=_PARTITION_CODEC,
                statistics=False,
            )
        )
        written = {path.name for path in (out / name).iterdir()}
        if not written <= {f"{_PART}={p}" for p in range(n_parts)}:  # never: a bug
            raise RuntimeError(f"events of {name} outside every partition: {sorted(written)}")
        for path in paths:
            path.unlink(missing_ok=True)
    return n_parts


def read_partition(folder: Path, table: str, *, coded: Sequence[str] = ()) -> pl.DataFrame:
    """One partition of one table (its part files in ``folder``), in the loaded order (sort
    keys, nulls last, ties by input row), without the input row column; one chunk a column.

    Each column is made one chunk, gathered in the loaded order and let go before the next
    (100M, a 3.2M-row partition of 30 chunk files: ~0.2 CPU s against 0.23-0.26 for Polars'
    lazy gather of every column, which left 30 chunks a column (the enrichment and the facts'
    write ~0.1 CPU s slower on them) and held ~280 MB more). The text columns named in
    ``coded`` come as an ``Enum`` of their sorted distinct values (:func:`_sorted_codes`),
    coded before the gather, which then moves codes, not text (what the coded enrichment
    takes: :data:`effortlens.enrich.CODED_INPUT`).

    Examples
    --------
    >>> read_partition(parts / "activities" / "__part=0", "activities")  # doctest: +SKIP
    """
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return pl.DataFrame()
    keys = list(SORT_KEYS[table])
    frame = pl.read_parquet(files, hive_partitioning=False)
    text = _key_text(folder, frame)  # key columns written as codes: their values, in order
    order = loaded_order(frame, keys)  # by the codes: in the values' order
    if order is None:  # keys too wide for one number: the general sort
        frame = frame.with_columns(text[key].gather(frame[key]).alias(key) for key in text)
        return frame.sort([*keys, ROW], nulls_last=True).drop(ROW)
    frame = frame.drop(ROW)
    # a gather from 30 chunks costs ~3x one from a single chunk: each column rechunked first
    return pl.DataFrame(
        [
            text[name].gather(column.rechunk().gather(order)).alias(name)
            if name in text
            else (_sorted_codes(column) if name in coded else column.rechunk()).gather(order)
            for name in frame.columns
            for column in [frame.drop_in_place(name)]
        ]
    )


def _key_text(folder: Path, frame: pl.DataFrame) -> dict[str, pl.Series]:
    """The values of each key column of ``frame`` (rows of partition folder ``folder``) that
    the load wrote as codes (:func:`_key_codes`), in their order: a code is a place."""
    values = folder.parent.parent / "values" / folder.name
    return {
        key: pl.read_parquet(values / f"{key}.parquet").to_series()
        for key, _ in _KEYS
        if key in frame.columns and frame[key].dtype == pl.UInt32
    }


def read_loaded(file: Path) -> pl.DataFrame:
    """One file of a partition as the load wrote it (its rows in input order, with ``__row``),
    its key columns as text (:func:`read_partition` reads a partition in the loaded order)."""
    frame = pl.read_parquet(file, hive_partitioning=False)
    text = _key_text(file.parent, frame)
    return frame.with_columns(text[key].gather(frame[key]).alias(key) for key in text)


def _sorted_codes(column: pl.Series) -> pl.Series:
    """A text ``column`` as an ``Enum`` of its sorted distinct values (the same values); when
    its rows come in runs of equal values (the load writes them in input order: a 100M
    partition's 3.2M activities hold 5,000 runs of reps), worked out per run: one comparison
    a row, not a hash (0.07 -> 0.02 CPU s). Other columns are returned as they are.

    Examples
    --------
    >>> _sorted_codes(pl.Series(["b", "b", None, "a", "b"])).to_list()
    ['b', 'b', None, 'a', 'b']
    >>> _sorted_codes(pl.Series(["b", "b", "a"])).dtype
    Enum(categories=['a', 'b'])
    """
    if column.dtype != pl.String:
        return column
    head = column.head(_RUN_PROBE)
    if head.len() and head.rle_id().max() * 8 > head.len():  # not in runs: a hash a row
        return column.cast(pl.Enum(column.drop_nulls().unique().sort()))
    runs = column.rle().struct.unnest()
    distinct = runs["value"].drop_nulls().unique().sort()
    codes = runs["value"].cast(pl.Enum(distinct)).to_physical().cast(pl.Int64).fill_null(-1)
    physical = pl.Series(column.name, np.repeat(codes.to_numpy(), runs["len"].to_numpy()))
    return physical.cast(pl.UInt32, strict=False).cat.to(pl.Enum(distinct))  # -1: null


def loaded_order(frame: pl.DataFrame, keys: list[str]) -> pl.Series | None:
    """The row order of ``frame`` sorted by ``keys`` (nulls last), ties by input row
    (``__row``), as Polars' row indices; None when the keys do not fit one 64-bit number.

    Each key becomes a small integer (text: its rank among the distinct values; a time or a
    number: its offset from the least), the keys are packed into one ``uint64`` and sorted
    stably after the input rows: one integer sort instead of a sort on text and times (3m:
    0.37 -> 0.3 CPU s a partition of 750K activities). The load's part files come in input
    row order (one a chunk, chunks in order), so the rows are not sorted by ``__row`` then;
    Polars' stable sort of the packed keys (100M, 3.2M activities: 0.28 -> 0.22 CPU s with
    the rest) gives the indices a gather takes without a conversion.

    Examples
    --------
    >>> frame = pl.DataFrame({"k": ["b", None, "a", "b"], "__row": [3, 0, 2, 1]})
    >>> frame[loaded_order(frame, ["k"])]["__row"].to_list()
    [2, 1, 3, 0]
    """
    packed = np.zeros(frame.height, dtype=np.uint64)
    width = 0
    for key in keys:
        column = frame[key]
        if column.dtype == pl.String:
            distinct = column.drop_nulls().unique().sort()
            codes, top = column.cast(pl.Enum(distinct)).to_physical(), distinct.len()
        elif column.dtype.is_temporal() or column.dtype.is_integer():
            number = column.to_physical().cast(pl.Int64)
            least, most = number.min(), number.max()
            if least is None:  # no value: every row ties
                codes, top = pl.Series(np.zeros(frame.height, dtype=np.uint64)), 0
            else:
                codes, top = number - least, most - least + 1
        else:
            return None
        bits = int(top).bit_length()  # the nulls' code `top` sorts them last
        width += bits
        if width > 64:
            return None
        values = codes.cast(pl.UInt64).fill_null(top).to_numpy()
        packed = (packed << np.uint64(bits)) | values
    by_row = None if frame[ROW].is_sorted() else frame[ROW].arg_sort()
    if by_row is not None:
        packed = packed[by_row.to_numpy()]
    stable = pl.arg_sort_by("packed", maintain_order=True)
    order = pl.DataFrame({"packed": packed}).select(stable).to_series()
    return order if by_row is None else by_row.gather(order)


#: Rows of a column :func:`_sorted_codes` looks at to tell whether it comes in runs.
_RUN_PROBE = 1 << 16
#: Memory a partition's process takes per event of ``limits.partition_rows`` (100M, 4.2M
#: events a partition: pass 1 of the view facts peaked at 1.9 GB, the enrichment at 1.6).
PARTITION_BYTES_PER_ROW = 500
#: Memory the habit credit's fit takes per touch (100M: 4.1 GB for 81.7M touches, the build's
#: peak): the practice steps run beside it only when both fit the memory budget.
FIT_BYTES_PER_TOUCH = 50


def build_workers(settings: Settings) -> int:
    """How many partitions the partitioned build works on at once, each in a process of its
    own: ``limits.build_workers``, or when it is 0, two, fewer on one core or when the memory
    budget (:meth:`effortlens.settings.Limits.memory_budget_bytes`) holds fewer partitions
    (about 0.5 GB per million ``limits.partition_rows`` each).

    Examples
    --------
    >>> import dataclasses
    >>> from effortlens.settings import load_settings
    >>> s = load_settings()
    >>> build_workers(s) in (1, 2)
    True
    >>> small = dataclasses.replace(s.limits, memory_budget_mb=1_024, partition_rows=4_000_000)
    >>> build_workers(dataclasses.replace(s, limits=small))
    1
    >>> build_workers(dataclasses.replace(s, limits=dataclasses.replace(small, build_workers=3)))
    3
    """
    limits = settings.limits
    asked = getattr(limits, "build_workers", 0)
    if asked:
        return asked
    rows = max(getattr(limits, "partition_rows", DEFAULT_CHUNK_ROWS), 1)
    fits = limits.memory_budget_bytes() // (rows * PARTITION_BYTES_PER_ROW)
    return int(max(1, min(2, os.cpu_count() or 1, fits)))


#: What each step of the build that runs in a child is called in a failure's message.
_STEP_WORDS = {
    "enrich_partition": "enrich",
    "_view_part": "view facts: pass 1",
    "_fit_touch_credits": "view facts: habit credit fit",
    "_touch_part": "view facts: pass 2",
    "_day_ordered_touches": "view facts: touches in day order",
    "_habit_cells": "view facts: habit cells",
    "_touch_codes": "view facts: habit touch codes",
    "_practice_cells": "view facts: practice cells",
    "_practice_gap_facts": "view facts: practice gaps",
    "_practice_codes": "view facts: practice codes",
    "_practice_periods": "view facts: practice periods",
    "_ordered_streaks": "view facts: streaks in order",
    "write_daily": "write facts: daily roll-up",
}


def child_threads(workers: int, cores: int | None = None) -> int | None:
    """Threads each child's pools get when ``workers`` children run at once: the cores shared
    out (two children on two cores: one each, not two each fighting over two cores); ``None``
    (as many as the cores) for one at a time.

    Examples
    --------
    >>> child_threads(2, cores=2), child_threads(2, cores=8), child_threads(1, cores=8)
    (1, 4, None)
    """
    if workers <= 1:
        return None
    return max(1, (cores if cores is not None else os.cpu_count() or 1) // workers)


def _step_words(function: Callable[..., Any]) -> str:
    name = getattr(function, "__name__", "a step")
    return _STEP_WORDS.get(name, name.strip("_").replace("_", " "))


class _Stopped(Exception):
    """A call refused or cut short because another call of its :class:`Children` failed."""


class Children:
    """Calls run each in a process of its own, at most ``workers`` at once over every thread
    that makes them, when ``isolate``; else here, as plain calls (one at a time).

    The processes are workers (:mod:`effortlens.processes`) that run one call after another:
    a call takes a worker that has just finished one (with the same thread count) rather than
    start a process, so that neither the imports nor the memory's first touch are paid again
    (each page a fresh process touches is a page fault: at 100M a quarter of the build's CPU).
    A worker no call takes within ``processes.IDLE_SECONDS`` ends and its memory goes back; the
    idle ones end too when a new process must start, when a call fails, and at :meth:`close`.

    The first call to fail stops the others: their processes are killed and calls not yet
    started are refused, so the failure is raised at once (not after the partition beside it
    ends). A child killed outright (the out-of-memory killer) raises
    :class:`effortlens.build_failure.BuildFailed` naming the step and the partition; an
    exception raised in a child is raised here as it was, with a note naming them.

    A child that starts while another runs, or one of several calls that :meth:`each` runs at
    once, gets its share of the cores for its Polars and BLAS thread pools
    (:func:`child_threads`: two children on two cores, one thread each, not two each fighting
    over two cores); a child alone, as many threads as cores. ``threads`` fixes the count
    for every child instead (0: as they choose).

    Examples
    --------
    >>> children = Children(isolate=False, workers=2)
    >>> children(max, 2, 3), children.each(min, [((2, 3), {}), ((5, 1), {})])
    (3, [2, 1])
    """

    def __init__(self, *, isolate: bool, workers: int, threads: int | None = None) -> None:
        """Children for calls in processes of their own when ``isolate`` (none started yet)."""
        self.isolate = isolate
        self.workers = max(1, workers) if isolate else 1
        self.threads = threads
        self._slots = threading.BoundedSemaphore(self.workers)
        self._lock = threading.Lock()
        self._live: set[Any] = set()
        #: The first failure of any call; every later call is refused.
        self.failure: BaseException | None = None

    def __call__(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, in a fresh process of its own (its memory goes back
        when it ends) once one of the ``workers`` slots is free. Stopped by another call's
        failure, it raises that failure."""
        return self._first_failure(self.call, _step_words(function), function, args, kwargs)

    def call(
        self,
        what: str,
        function: Callable[..., Any],
        args: tuple,
        kwargs: dict[str, Any],
        *,
        together: int = 1,
        threads: int | None = None,
    ) -> Any:
        """:meth:`__call__`, ``what`` naming the call in a failure's message; ``together``:
        how many calls run at once with it (its threads: its share of the cores). ``threads``
        fixes this call's thread count instead (0: every core's, whatever runs beside it: a
        step of one lane that may outlive the other lane's process, so that it has the cores
        when that one ends; the system shares them until then)."""
        if not self.isolate:
            return function(*args, **kwargs)
        with self._slots:
            if self.failure is not None:
                raise _Stopped(what)
            try:
                return self._in_child(
                    what, function, args, kwargs, together=together, threads=threads
                )
            except _Stopped:
                raise
            except BaseException as err:
                self.stop(err)
                raise

    def stop(self, failure: BaseException) -> None:
        """Kill every running child and refuse new calls: ``failure`` is the build's. The
        idle workers end too (their memory goes back)."""
        with self._lock:
            if self.failure is None:
                self.failure = failure
            live = list(self._live)
        for process in live:
            process.kill()
        processes.end_idle()

    def close(self) -> None:
        """End the idle workers now (their memory goes back) rather than when they time out:
        before a step that needs the memory."""
        processes.end_idle()

    def __enter__(self) -> Children:
        """Children that :meth:`close` when the block ends."""
        return self

    def __exit__(self, *_exc: object) -> None:
        """:meth:`close`."""
        self.close()

    def _in_child(
        self,
        what: str,
        function: Callable[..., Any],
        args: tuple,
        kwargs: dict[str, Any],
        *,
        together: int,
        threads: int | None = None,
    ) -> Any:
        from effortlens import build_failure

        with self._lock:
            count = self.threads if threads is None else threads
            if count is None:
                count = child_threads(max(together, len(self._live) + 1, 1))
        worker = processes.take(count or None)
        with self._lock:
            if self.failure is not None:
                processes.give_back(worker)
                raise _Stopped(what)
            self._live.add(worker.process)
        try:
            status, value, trace = worker.run(function, args, kwargs)
        finally:
            with self._lock:
                self._live.discard(worker.process)
        if status == "ok":
            if self.failure is None:
                processes.give_back(worker)
            else:  # another call failed meanwhile: the build stops, the memory goes back now
                worker.end()
            return value
        worker.end()  # a worker whose call failed is not used again
        if self.failure is not None:  # killed because another call failed first
            raise _Stopped(what)
        if status == "died":
            raise build_failure.died(what, worker.process.exitcode)
        if isinstance(value, MemoryError):
            raise build_failure.out_of_memory(what) from value
        value.__cause__ = _ChildTraceback(trace)
        value.add_note(f"(in the build step {what}, in a process of its own)")
        raise value

    def each(
        self,
        function: Callable[..., Any],
        calls: list[tuple[tuple, dict[str, Any]]],
        *,
        done: Callable[[int], None] | None = None,
        what: str | None = None,
    ) -> list[Any]:
        """``function(*args, **kwargs)`` for each ``(args, kwargs)`` of ``calls``, as many at
        once as slots are free; the results in the order of ``calls``, whatever order they
        finish in. ``done(k)`` is called (in this thread) as each call finishes, ``k`` the
        calls finished so far. The first call to fail raises here at once (the others are
        killed; calls not yet started are not run); its message names call ``i`` as
        "``what``, partition i of n" (``what`` default: the step of ``function``)."""
        finished = done or (lambda _k: None)
        what = what or _step_words(function)
        n = len(calls)
        named = [(f"{what}, partition {i} of {n}", a, k) for i, (a, k) in enumerate(calls, 1)]
        if not self.isolate or self.workers <= 1 or n <= 1:
            results = []
            for name, args, kwargs in named:
                results.append(self._first_failure(self.call, name, function, args, kwargs))
                finished(len(results))
            return results
        from concurrent.futures import ThreadPoolExecutor, as_completed

        results: list[Any] = [None] * n
        # a thread per call at once, each waiting on its own child process (the thread that
        # starts a child outlives it: the child's parent-death signal follows that thread)
        with ThreadPoolExecutor(max_workers=min(self.workers, n)) as threads:
            at_once = min(self.workers, n)
            futures = {
                threads.submit(self.call, name, function, args, kwargs, together=at_once): i
                for i, (name, args, kwargs) in enumerate(named)
            }
            try:
                for k, future in enumerate(as_completed(futures), start=1):
                    results[futures[future]] = self._first_failure(future.result)
                    finished(k)
            except BaseException as err:
                self.stop(err)  # the calls running are killed: their threads end at once
                for future in futures:
                    future.cancel()
                raise
        return results

    def _first_failure(self, function: Callable[..., Any], /, *args: Any) -> Any:
        """``function(*args)``; a call stopped by another's failure raises that failure."""
        try:
            return function(*args)
        except _Stopped:
            if self.failure is None:
                raise
            # its own cause kept (the child's traceback): `from None` would wipe it from the
            # failure's object, which the other call raises too
            raise self.failure from self.failure.__cause__


class _ChildTraceback(Exception):
    """The traceback of an exception raised in a child process (as its cause)."""

    def __str__(self) -> str:
        return "\n" + (self.args[0] if self.args else "")


def each_in_children(
    function: Callable[..., Any],
    calls: list[tuple[tuple, dict[str, Any]]],
    *,
    isolate: bool,
    workers: int,
    done: Callable[[int], None] | None = None,
    what: str | None = None,
) -> list[Any]:
    """``function(*args, **kwargs)`` for each ``(args, kwargs)`` of ``calls``; the results in
    the order of ``calls``, whatever order they finish in (:meth:`Children.each`).

    With ``isolate``, each call runs in a fresh process of its own (its memory goes back when
    it ends), up to ``workers`` at once; else here, one after another. ``done(k)`` is called
    (here) as each call finishes, ``k`` the calls finished so far. The first call to fail
    raises here at once, named "``what``, partition i of n" (the others are killed; calls not
    yet started are not run).

    Examples
    --------
    >>> each_in_children(max, [((2, 3), {}), ((5, 1), {})], isolate=False, workers=2)
    [3, 5]
    """
    children = Children(isolate=isolate, workers=workers)
    try:
        return children.each(function, calls, done=done, what=what)
    finally:
        children.close()


def _enrich_partitions(
    data: ChunkedLoad,
    n_parts: int,
    staging: Path,
    slim: Path,
    *,
    settings: Settings,
    layout: dict[str, str],
    run: Children,
    step: Callable[[str], None] | None = None,
    pass_one: PassOne | None = None,
    slice_rows: int,
) -> dict[str, int]:
    """Enrich each partition (by ``run``: in a child process of its own when the data is
    large, up to :func:`build_workers` at once) and write its part of the event facts and of
    the slim roll-up, with ``pass_one`` pass 1 of its view facts too (its results go to
    ``pass_one.metas``); the reps fact once; the daily roll-up (:func:`write_daily`) in a
    process of its own (every core's threads) as soon as every partition has started and a
    slot of ``run`` is free, beside the last partitions (it waits there for their roll-up
    rows). Rows per file written."""
    slim.mkdir(parents=True, exist_ok=True)
    say = step or (lambda _name: None)
    # a partition's enrichment reads its events and the reps only: the other tables are not
    # sent to every partition's process (100M: millions of stage and deal rows, 28 times)
    tables = {"reps": data.tables["reps"]}
    reps = enrich_tables(tables, settings=settings).reps
    _write(reps, staging / layout["reps"], row_group_size=max(reps.height, 1))
    counts = {layout["activities"]: 0, layout["actions"]: 0, layout["reps"]: reps.height}
    n = max(n_parts, 1)
    views = None
    if pass_one is not None:
        window = float(settings.attribution_window_days)
        views = {"scratch": pass_one.scratch, "window": window, **pass_one.extent}
    # the runs of reps the roll-up is summed by, fixed now: each partition writes its rows by
    # run and each run's sum reads its own files (not every file once a run)
    slices = roll_up_slices(
        _rep_facts(data.tables["reps"], settings), data.rows.get("activities", 0),
        slice_rows=slice_rows,
    )  # fmt: skip
    options = {"settings": settings, "layout": layout, "views": views, "slices": slices}
    calls = [((p, slim.parent / "parts", staging, slim, tables), options) for p in range(n)]
    at_once = min(run.workers, n)
    say(
        f"enrich: {n} partitions, {at_once} at a time"
        + (", each with its view facts' pass 1" if views else "")
    )
    free = threading.Event()  # every partition started and a slot free: the roll-up's turn

    def done(k: int) -> None:
        say(f"enrich: partition {k}/{n} done")
        if k > n - at_once:
            free.set()

    # the roll-up's process has every core's threads: it sums once the last partition has
    # written its rows, mostly after the last partition, the cores its alone (it starts when
    # no partition is left to start and a slot of `run` is free: never a third process)
    summing = Children(isolate=run.isolate, workers=1, threads=0)

    def roll_up() -> int | None:
        free.wait()
        if run.failure is not None:
            return None
        # the idle worker (the one just freed) ends first: a reused worker keeps its fused
        # partitions' high-water memory (10m, 3.9M events: 2.7-2.8 GB), the roll-up's would
        # come on top of it (100M: ~3 GB); in a fresh process it is the roll-up's alone
        run.close()
        try:  # written by its process (100M: ~18M rows, never sent back through a pipe)
            return summing(
                write_daily, slim, data.tables["reps"], staging / layout["daily"],
                settings=settings, slice_rows=slice_rows, parts=n, slices=slices,
            )  # fmt: skip
        except BaseException as err:
            run.stop(err)  # the last partitions too: the failure is told at once
            raise

    what = "enrich and view facts' pass 1" if views else "enrich"
    with ThreadPoolExecutor(max_workers=1) as lane:
        daily = lane.submit(roll_up)
        try:
            every = run.each(enrich_partition, calls, done=done, what=what)
        except BaseException as err:
            run.stop(err)
            summing.stop(err)  # the roll-up is refused, or killed
            raise
        finally:
            free.set()
        counts[layout["daily"]] = daily.result()
    for written, meta in every:  # in partition order
        for relative, rows in written.items():
            counts[relative] += rows
        if pass_one is not None and meta is not None:
            pass_one.metas.append(meta)
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
    views: dict[str, Any] | None = None,
    slices: RollUpSlices | None = None,
) -> tuple[dict[str, int], dict[str, Any] | None]:
    """Enrich partition ``p``; write its event facts and slim roll-up rows (with ``slices``,
    a file per run of reps: :func:`_write_roll_up_rows`); with ``views``
    (the view facts' ``scratch`` folder, ``window`` and the extent of :func:`_view_part`),
    pass 1 of its view facts over its facts as they are in memory. Rows written per fact,
    and pass 1's result (``None`` when it did not run: it runs where
    :func:`write_view_facts` would, for partition 0 and each partition with activities)."""
    from effortlens.enrich import ACTIONS_SCHEMA, ACTIVITIES_SCHEMA, CODED_INPUT

    activities = read_partition(
        parts_root / "activities" / f"{_PART}={p}", "activities", coded=CODED_INPUT
    )
    actions = read_partition(parts_root / "buyer_actions" / f"{_PART}={p}", "buyer_actions")
    given = dict(tables)
    if activities.width:
        given["activities"] = activities
    if actions.width:
        given["buyer_actions"] = actions
    enriched = enrich_tables(given, settings=settings, coded=True)
    del given, activities, actions
    name = f"part-{p:05d}.parquet"
    # what the roll-up sums of each activity, unsummed (its own roll-up, which write_daily
    # would add up across partitions, has ~93% of its rows at 100M: not made at all), with
    # its partition; whole files only (moved into place): write_daily may be waiting for them,
    # so they come first (the last partition's, before its facts and its pass 1)
    if enriched.activities.height and slices is not None:
        _write_roll_up_rows(daily_rows(enriched.activities), slim, p, slices)
    elif enriched.activities.height:
        own = daily_rows(enriched.activities).with_columns(pl.lit(p, pl.UInt32).alias(_PART))
        own.write_parquet(slim / f".{name}", compression=SCRATCH_CODEC)
        (slim / f".{name}").rename(slim / name)
        del own
    else:  # no roll-up rows: said by an empty file of another name
        (slim / f"part-{p:05d}.none").touch()
    written = {}
    facts = {}
    for fact, schema in (("activities", ACTIVITIES_SCHEMA), ("actions", ACTIONS_SCHEMA)):
        facts[fact] = getattr(enriched, fact).select(schema.names())
        written[layout[fact]] = facts[fact].height
        if not facts[fact].height and p:
            continue
        _write_enums_as_text(facts[fact], staging / layout[fact] / name, row_group_size=262_144)
    del enriched  # the reps: pass 1 reads the event facts only
    if views is None or not (facts["activities"].height or p == 0):
        return written, None
    options = {k: v for k, v in views.items() if k != "scratch"}
    events = (facts["activities"].lazy(), facts["actions"].lazy())
    del facts
    return written, _view_part(
        name, staging, views["scratch"], settings=settings, events=events, **options
    )


@dataclass(frozen=True)
class RollUpSlices:
    """The runs of reps the daily roll-up is summed by (:func:`write_daily`), fixed before any
    partition is enriched: each partition writes its roll-up rows a file per run
    (:func:`_write_roll_up_rows`), so that each run's sum reads its own files only.

    Attributes
    ----------
    reps
        The rep ids in the roll-up's order (:func:`_rep_facts`).
    starts
        The place in ``reps`` of each run's first rep (ascending, the first 0).
    """

    reps: tuple[str, ...]
    starts: tuple[int, ...]


def _rep_facts(reps: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """The daily roll-up's rep columns, a row per rep in the roll-up's order (the first row
    of a rep id listed twice)."""
    from effortlens.coverage import with_known_groups
    from effortlens.peers import with_peer_group

    reps = with_peer_group(with_known_groups(reps), keys=settings.peer_keys)
    return reps.select("rep_id", *REP_COLUMNS).unique("rep_id", keep="first", maintain_order=True)


def roll_up_slices(facts: pl.DataFrame, rows: int, *, slice_rows: int) -> RollUpSlices:
    """Runs of the reps of ``facts`` (:func:`_rep_facts`) of equal counts, about two per
    ``slice_rows`` of the ``rows`` activities (a run's files are held while it is summed).

    Examples
    --------
    >>> facts = pl.DataFrame({"rep_id": ["a", "b", "c", "d", "e"]})
    >>> roll_up_slices(facts, 100, slice_rows=80).starts
    (0, 1, 3)
    >>> roll_up_slices(facts, 10**9, slice_rows=1).starts
    (0, 1, 2, 3, 4)
    """
    n = facts.height
    k = max(1, min(n, -(-2 * max(rows, 0) // max(slice_rows, 1))))
    return RollUpSlices(tuple(facts["rep_id"].to_list()), tuple(i * n // k for i in range(k)))


def _write_roll_up_rows(rows: pl.DataFrame, slim: Path, p: int, slices: RollUpSlices) -> None:
    """Partition ``p``'s roll-up rows (:func:`effortlens.enrich.daily_rows`, ``rows``),
    written into the folder ``slim/part-<p>`` a file per run of reps of ``slices``
    (``<run>.arrow``): its rows in their order, the rep as its place in ``slices.reps``
    (``__rep``), the activity type as an ``Enum`` of the partition's own types, sorted. Rows
    of reps not in ``slices.reps`` go to ``unknown.arrow`` (by ``rep_id`` as text, with the
    partition's number in ``__part``). Arrow IPC, uncompressed: written once and read once,
    memory-mapped. The folder is moved into place whole: :func:`write_daily` may be waiting
    for it."""
    folder = slim / f".part-{p:05d}"
    folder.mkdir()
    ids = rows["rep_id"]
    if isinstance(ids.dtype, pl.Enum):  # each category's place, gathered by the codes
        places = ids.dtype.categories.cast(pl.Enum(slices.reps), strict=False)
        code = places.to_physical().gather(ids.to_physical())
    else:
        code = ids.cast(pl.Enum(slices.reps), strict=False).to_physical()
    unknown = code.is_null()
    if unknown.any():  # as text: an Enum's categories differ between partitions
        rows.filter(unknown).with_columns(
            pl.col(pl.Enum, pl.Categorical).cast(pl.String), pl.lit(p, pl.UInt32).alias(_PART)
        ).write_ipc(folder / "unknown.arrow", compression="uncompressed")
        rows, code = rows.filter(~unknown), code.filter(~unknown)
    kinds = rows["activity_type"].cast(pl.String)
    places = code.cast(pl.UInt32).to_numpy()
    # no `no_impact_hours`: write_daily makes it from `hours` and `responded` (_NO_IMPACT)
    known = rows.drop("rep_id", "no_impact_hours", strict=False).with_columns(
        kinds.cast(pl.Enum(kinds.unique().drop_nulls().sort())), pl.Series(_REP, places)
    )
    # runs end to end, each in its rows' order: a gather that reads forward (by rep it
    # costs ~0.3 CPU s more a partition of 3.2M rows; write_daily sorts a run's rows by rep)
    of_run = np.searchsorted(np.asarray(slices.starts), places, side="right") - 1
    ends = np.cumsum(np.bincount(of_run, minlength=len(slices.starts)))
    if len(slices.starts) > 1 and known.height:
        known = known[np.argsort(of_run.astype(np.uint16), kind="stable")]
    start = 0
    for run, end in enumerate(ends.tolist()):
        if end > start:
            known.slice(start, end - start).write_ipc(
                folder / f"{run:05d}.arrow", compression="uncompressed"
            )
        start = end
    folder.rename(slim / f"part-{p:05d}")


def slim_rows(daily: pl.DataFrame) -> pl.DataFrame:
    """Rows of partial sums :func:`write_daily` adds up too: the keys and sums of a part's
    own daily roll-up (a rep's day of one type may have events in several parts). A
    partition of the build writes its activities' unsummed rows instead
    (:func:`effortlens.enrich.daily_rows` and its partition's number, :func:`enrich_partition`):
    its own roll-up has ~93% of its activities' rows at 100M."""
    return daily.select("rep_id", "day", "activity_type", *DAILY_SUMS)


def write_daily(
    slim: Path,
    reps: pl.DataFrame,
    target: Path,
    *,
    settings: Settings,
    slice_rows: int,
    parts: int | None = None,
    slices: RollUpSlices | None = None,
    threads: int = 2,
) -> int:
    """The daily roll-up summed across partitions, in the in-memory roll-up's order, written
    to ``target`` as the in-memory build writes it; its rows.

    ``slim`` holds each partition's rows (:func:`effortlens.enrich.daily_rows` with their
    partition's number in ``__part``, a file per partition; or rows of partial sums,
    :func:`slim_rows`): their sums per rep x day x type are added up a slice of reps at a
    time, each slice a run of reps in the roll-up's order holding about ``slice_rows`` rows:
    one ``group_by`` over every rep x day x type at once went past 8 GB at 100M events
    (~15-22M groups with text keys), a slice's stays near its own size. The slices' sorted
    sums, put end to end, are the whole roll-up's order.

    With ``slices`` the partitions wrote their rows a folder each, a file per run of reps
    (:func:`_write_roll_up_rows`): each run is summed from its own files (without, each slice
    is filtered out of every file), one run after another, a piece of consecutive reps at a
    time, ``threads`` pieces at once (:func:`_summed_runs`).

    With ``parts``, it first waits until that many partitions have written their rows (a
    file or folder each, ``part-<p>.none`` when it has none: :func:`enrich_partition`),
    started beside the last partitions (:func:`_enrich_partitions`).
    """
    import time

    from effortlens.facts import KERNEL_CATEGORICAL, ROW_GROUP

    while parts is not None and len(list(slim.glob("part-*"))) < parts:
        time.sleep(0.05)  # killed with the build if a partition fails
    facts = _rep_facts(reps, settings)
    held = facts.with_columns(pl.col(REP_COLUMNS).cast(pl.Categorical))  # gathered as codes
    categorical = pl.col(KERNEL_CATEGORICAL).cast(pl.Categorical)

    def summed(rows: pl.LazyFrame | pl.DataFrame, types: pl.Series | None = None) -> pl.DataFrame:
        return _daily_of(rows, held, settings, types=types).with_columns(categorical)

    if slices is not None:
        if list(slices.reps) != facts["rep_id"].to_list():
            raise ValueError("the roll-up's runs of reps are not of these reps")
        sliced = _summed_runs(slim, slices, summed, threads=threads)
        unknown = sorted(slim.glob("part-*/unknown.arrow"))
        if unknown:  # reps not in the table: last, by id (as _rep_codes numbers them)
            sliced.append(summed(pl.scan_ipc(unknown)))
    else:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            sliced = list(pool.map(summed, _slices_of_rows(slim, facts, slice_rows)))
    daily = pl.concat(sliced or [pl.DataFrame(schema=DAILY_SCHEMA)], rechunk=False)
    daily = daily.with_columns(categorical)
    del sliced
    # as the in-memory build writes it: every kernel reads it at its first draw (one row
    # group of text columns at 10m: +170 MB peak, +0.8 CPU s for the habits page)
    _write(daily, target, row_group_size=ROW_GROUP)
    return daily.height


def _summed_runs(
    slim: Path,
    slices: RollUpSlices,
    summed: Callable[[pl.DataFrame, pl.Series], pl.DataFrame],
    *,
    threads: int,
) -> list[pl.DataFrame]:
    """The roll-up of the partitions' rows by runs of reps (:func:`_write_roll_up_rows`) in
    the roll-up's order: a run's files read (memory-mapped), in partition order, each sorted
    by rep (stably: ~200k rows a file at 100M, in the cache) with its partition's number and
    the activity types as places among every file's types (sorted), then summed in pieces of
    consecutive reps of about :data:`_PIECE_ROWS` rows (a slice of each file), ``threads``
    at a time, by ``summed(piece, types)``."""
    folders = sorted(path for path in slim.glob("part-*") if path.is_dir())
    names = [f"{run:05d}.arrow" for run in range(len(slices.starts))]
    runs = [
        [(int(folder.name.removeprefix("part-")), folder / name) for folder in folders]
        for name in names
    ]
    runs = [[(p, path) for p, path in files if path.is_file()] for files in runs]
    kinds = [pl.read_ipc_schema(path)["activity_type"].categories for f in runs for _, path in f]
    types = pl.concat([pl.Series("activity_type", [], pl.String), *kinds]).unique().sort()
    ends = [*slices.starts[1:], len(slices.reps)]
    small = len(slices.reps) <= 2**16  # numpy sorts 16-bit integers by radix

    def read(p: int, path: Path) -> pl.DataFrame:
        frame = pl.read_ipc(path)
        rep = frame[_REP].to_numpy()
        frame = frame[np.argsort(rep.astype(np.uint16) if small else rep, kind="stable")]
        kind = frame["activity_type"]
        place = kind.dtype.categories.cast(pl.Enum(types)).to_physical()
        return frame.with_columns(
            place.gather(kind.to_physical()).alias("activity_type"),
            _NO_IMPACT,
            pl.lit(p, pl.UInt32).alias(_PART),
        )

    out = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        # a run's files are read while the run before is cut and summed (queued before its
        # sums: the threads never wait for this one to cut the pieces, nor the first sums of
        # a run for the last read of it; 100M: 15 runs, one core idle ~20% of the roll-up's
        # 13 s when each run waited for its reads, then its sums)
        reading = [pool.submit(read, *file) for file in runs[0]] if runs else []
        for i, (first, end) in enumerate(zip(slices.starts, ends, strict=True)):
            frames = [future.result() for future in reading]
            later = runs[i + 1] if i + 1 < len(runs) else []
            reading = [pool.submit(read, *file) for file in later]
            if not frames:
                continue
            reps = [frame[_REP].to_numpy() for frame in frames]
            per_rep = sum(np.bincount(r - first, minlength=end - first) for r in reps)
            piece = (np.cumsum(per_rep) - 1) // _PIECE_ROWS  # each rep's piece
            cuts = first + np.r_[0, np.flatnonzero(np.diff(piece)) + 1, end - first]
            at = [np.searchsorted(r, cuts) for r in reps]  # each file's rows of each piece
            pieces = [
                pl.concat(
                    [
                        frame.slice(a[k], a[k + 1] - a[k])
                        for frame, a in zip(frames, at, strict=True)
                    ]
                )
                for k in range(len(cuts) - 1)
            ]
            del frames
            out += [pool.submit(summed, rows, types) for rows in pieces]
            del pieces
        return [piece.result() for piece in out]


def _slices_of_rows(slim: Path, facts: pl.DataFrame, slice_rows: int) -> list[pl.LazyFrame]:
    """Runs of reps of about ``slice_rows`` rows of the files ``slim/part-*.parquet``, each
    filtered out of every file, the reps not in ``facts`` last."""
    files = sorted(slim.glob("part-*.parquet"))
    if not files:
        return []
    rows = pl.scan_parquet(files)
    per_rep = (  # rows per rep, in the roll-up's order; reps not in `reps` last
        rows.group_by("rep_id")
        .agg(pl.len().alias("n"))
        .collect(engine="streaming")
        .join(facts.select("rep_id").with_row_index("__rep"), on="rep_id", how="left")
        .sort("__rep", "rep_id", nulls_last=True)
    )
    known = per_rep.filter(pl.col("__rep").is_not_null())
    cut = (known["n"].cum_sum() - 1) // max(slice_rows, 1)  # slice number of each rep
    groups = [known.filter(cut == c)["rep_id"] for c in cut.unique(maintain_order=True)]
    unknown = per_rep.filter(pl.col("__rep").is_null())["rep_id"]
    if unknown.len():  # sorted among themselves as the whole roll-up sorts them: last
        groups.append(unknown)
    return [rows.filter(pl.col("rep_id").is_in(ids.implode())) for ids in groups]


def _daily_of(
    rows: pl.LazyFrame | pl.DataFrame,
    facts: pl.DataFrame,
    settings: Settings,
    *,
    types: pl.Series | None = None,
) -> pl.DataFrame:
    """The daily roll-up of ``rows`` (the partitions' roll-up rows of some reps), sorted by
    rep (its row in ``facts``; reps not in it after, by id), day, type: summed by one integer
    cell number a row (:func:`effortlens.enrich.daily_of_rows`; 3m: 0.4 CPU s against 2.2 by
    a streaming text group-by of every activity and a sort on the text keys). A row's rep is
    its ``rep_id``, or its row in ``facts`` (``__rep``, :func:`_write_roll_up_rows`); its
    activity type its text, or with ``types`` its place among them. The rep columns come as
    ``facts`` has them (``Categorical``: gathered as codes)."""
    from effortlens.enrich import _rep_codes, daily_of_rows

    frame = rows.collect() if isinstance(rows, pl.LazyFrame) else rows  # partition order
    if _REP in frame.columns:
        rep_code, rep_facts = frame[_REP], facts
        frame = frame.drop(_REP)
    else:
        rep_code, rep_facts = _rep_codes(frame["rep_id"], facts)
        frame = frame.drop("rep_id")
    return daily_of_rows(
        frame,
        rep_code=rep_code,
        rep_facts=rep_facts,
        customer_facing=settings.customer_facing_types,
        # a cell summed per partition, then across: the additions of the partitions' own
        # roll-ups added up (the same bits)
        part=_PART if _PART in frame.columns else None,
        types=types,
    ).cast({name: kind for name, kind in DAILY_SCHEMA.items() if name not in REP_COLUMNS})


__all__ = ["DEFAULT_CHUNK_ROWS", "should_partition", "write_partitioned"]


# ------------------------------------------------- the precomputed view facts, part by part


def write_view_facts(
    folder: str | Path,
    *,
    settings: Settings,
    isolate: bool | None = None,
    iterations: int = 60,
    step: Callable[[str], None] | None = None,
    pass_one: PassOne | None = None,
) -> dict[str, int]:
    """Every precomputed view fact of the partitioned build in ``folder``, with memory
    bounded by a partition (and by the habit credit's one fit); rows per relative path.

    A partition holds every contact's whole history (contacts are nodes of its component), so
    what a contact's history gives is computed per partition, from its part of the event facts:

    - ``practice`` and its rep cells, ``verifiers``: one part file per partition (as before);
    - ``streaks``: found per partition, then put in the build's order
      (:func:`effortlens.roe.sort_streak_facts`) a range of lengths at a time, written as
      part files in that order (the folder read in name order is the in-memory order), and
      those of 4+ touches again by rep, a range of teams per part file
      (:func:`effortlens.roe.rep_ordered_streaks`);
    - ``touches``: the habit credit is **one** fit over every touch and candidate pair
      (:func:`effortlens.touch_build.credit_em`, two fits). Pass 1 writes each partition's
      touches without credits and its fit inputs as integer codes numbered as over all
      touches (:func:`effortlens.touch_build.touch_credit_inputs`); the fit runs once over the
      inputs where pass 1 wrote them (mapped); pass 1 also writes each partition's touches
      with their text as codes (its part in (day, rep) order, :func:`_touch_scratch`), merged
      into part files of whole days by one stable integer sort per range, each touch's credits
      taken by its fit row (:func:`_day_order_plan`, :func:`_day_ordered_touches`);
    - the habit touch codes: :func:`effortlens.habits.write_touch_codes` of the merged codes;
    - the habit cells: summed from the habit touch codes (:func:`_habit_cells_of_codes`; the
      group-by sums of :func:`effortlens.habits.touch_cells` a run of reps at a time,
      :func:`_habit_cells`, when some touch has no day).

    The fit adds its sums in another order than the in-memory build (the touches and pairs
    are in partition order), so the credits may differ from it in the last bits; every
    other value is equal (tests/test_partitioned.py).

    Parameters
    ----------
    folder
        A build folder whose event facts are folders of part files (one per partition).
    settings
        The build's settings.
    isolate
        Run each partition, the fit and each merge in a process of its own (their memory goes
        back when they exit), up to :func:`build_workers` processes at once: the partitions
        of each pass, and the practice facts' cells, gaps, periods and codes and the streaks
        beside the habit credit's fit and the touch steps (when the fit and a partition fit
        the memory budget together). The same files as one at a time. Default: above
        ``ISOLATE_ABOVE_ROWS`` events.
    iterations
        EM iterations of the habit credit.
    step
        Called with what is being done (a progress note).
    pass_one
        Pass 1 when it ran already, in the partitions' processes of the enrichment
        (:func:`write_partitioned` with ``views``): its scratch folder (deleted here) and
        results; else pass 1 runs here, a process per partition.

    Examples
    --------
    >>> write_view_facts(staging, settings=settings)  # doctest: +SKIP
    {'practice.parquet/part-00000.parquet': 81265, ...}
    """
    from effortlens.facts import FACTS_LAYOUT, HABIT_TOUCHES, PRACTICE_CODES

    folder = Path(folder)
    say = step or (lambda _name: None)
    names = _part_names(folder / FACTS_LAYOUT["activities"])
    if isolate is None:
        events = sum(
            pl.scan_parquet(path).select(pl.len()).collect().item()
            for fact in ("activities", "actions")
            for path in sorted((folder / FACTS_LAYOUT[fact]).glob("*.parquet"))
        )
        isolate = events > ISOLATE_ABOVE_ROWS

    n_parts = len(names)
    workers = min(build_workers(settings) if isolate else 1, max(n_parts, 1))
    run = Children(isolate=isolate, workers=workers)
    per_part = getattr(settings.limits, "partition_rows", DEFAULT_CHUNK_ROWS)
    # a run of reps at a time: about four partitions' touches or follow-ups
    slice_rows = 4 * per_part
    scratch = pass_one.scratch if pass_one is not None else scratch_dir(folder.parent, "views")
    rows: dict[str, int] = {}
    written: dict[str, dict[str, int]] = {}  # each later step's files, merged in order
    stop = threading.Event()
    # set but while the touch steps run a process in each slot (the day order): the
    # practice side starts none of its steps then (it would take one of their two slots),
    # but beside the fit and the habit touch codes, one process each
    narrow = threading.Event()
    narrow.set()
    # made when the practice side's steps beside the fit are done: the fit then takes every
    # core (before, one core's threads: the side's process has the other)
    wide = scratch / "em" / "wide"

    def practice_side() -> None:
        """The steps that read only what pass 1 wrote of the practice facts and streaks,
        beside the habit credit's fit and the touch steps when two processes fit at once:
        each started while the touch steps run one process (the fit, the habit touch codes),
        so that both cores stay busy and neither side waits for a slot; the fit takes every
        core once the side has no step left (``wide``)."""
        steps = [
            ("practice cells", _practice_cells, (scratch, folder), {}),
            ("practice gaps", _practice_gap_facts, (scratch, folder), {"slice_rows": slice_rows}),
            # the codes first: the periods read a window's touches from them when written
            ("practice codes", _practice_codes, (folder, scratch), {}),
            ("practice periods", _practice_periods, (folder,), {}),
            (
                "streaks in order",
                _ordered_streaks,
                (streak_files(), folder),
                {"rows_per_part": per_part},
            ),
            # nothing of the side left to run beside the fit: every core is the fit's (the
            # streaks wait for the day order when the fit ends first)
            None,
        ]
        for each in steps:
            if each is None:
                wide.parent.mkdir(parents=True, exist_ok=True)
                wide.touch()
                continue
            label, function, args, kwargs = each
            narrow.wait()
            if stop.is_set():  # the other steps failed
                return
            say(f"view facts: {label}")
            written[label] = run(function, *args, **kwargs)
        written["practice codes"] = {f"{PRACTICE_CODES}/day.npy": written["practice codes"]}

    def streak_files() -> list[Path]:  # Parquet or Arrow IPC, in partition order
        return _scratch_files(scratch / "streaks")

    from concurrent.futures import ThreadPoolExecutor

    try:
        if pass_one is not None:  # done beside the enrichment, in its processes
            extent = pass_one.extent
            metas = [dict(meta) for meta in pass_one.metas]
            if len(metas) != n_parts:  # never: a bug
                raise RuntimeError(f"pass 1 of {len(metas)} partitions, {n_parts} written")
        else:
            say("view facts: global extent")
            extent = _touch_extent(folder)
            window = float(settings.attribution_window_days)
            say(f"view facts: pass 1, {n_parts} partitions, {workers} at a time")
            options = {"settings": settings, "window": window, **extent}
            metas = run.each(
                _view_part,
                [((name, folder, scratch), options) for name in names],
                done=lambda k: say(f"view facts: pass 1, partition {k}/{n_parts} done"),
            )
        for meta in metas:  # in partition order, as one after another would give them
            rows.update(meta.pop("rows"))
        # pass 1's touches as the day order reads them (_touch_scratch; kept from the fit's
        # inputs)
        scratched = [meta.pop("touch", None) for meta in metas]
        n_touches = sum(m["touches"] for m in metas)
        # the practice side beside the fit when the fit and a partition fit in the budget
        fit_bytes = n_touches * FIT_BYTES_PER_TOUCH + per_part * PARTITION_BYTES_PER_ROW
        beside = workers > 1 and fit_bytes <= settings.limits.memory_budget_bytes()
        # the idle workers end (pass 1's: a reused worker keeps its peak), their memory back
        # for the fit and the practice side beside it
        run.close()
        with ThreadPoolExecutor(max_workers=1) as lane:
            side = lane.submit(practice_side) if beside else None
            # pass 1's touch files, read by the day order right after the fit: written with
            # the partitions, some have left the page cache by then (100M: ~1.7 GB; the day
            # order's first seconds waited on faults reading them a few pages at a time, one
            # core idle): read ahead as the practice side ends (beside the fit's end) and
            # again as the fit ends (what is in memory is not asked for again)
            ahead = [part["file"] for part in scratched if part is not None]
            if side is not None:
                side.add_done_callback(lambda _side: _read_ahead(ahead))
            try:
                credits = None
                if n_touches and extent["end"] is not None:
                    say(f"view facts: habit credit fit ({n_touches:,} touches)")
                    span_hours = (extent["end"] - extent["first"]).total_seconds() / 3600.0
                    credits = run(
                        _fit_touch_credits,
                        scratch,
                        names,
                        metas,
                        exposure_scale=sum(m["contacts"] for m in metas) * span_hours,
                        iterations=iterations,
                        wide=None if side is None else wide,
                        threads=child_threads(workers) or 1,
                    )
                    run.close()  # the fit's worker (100M: ~4 GB at its peak) ends
                _read_ahead(ahead)
                offsets = np.cumsum([0] + [m["touches"] for m in metas]).tolist()
                narrow.clear()  # both slots for the day order
                # no pass 2: pass 1 wrote each partition's touches as the day order reads
                # them, which takes their credits (_touch_scratch, _credited)
                if any(part is None for part in scratched):  # never: a bug
                    raise RuntimeError("pass 1 wrote no touches for the day order")
                parts = scratched
                del scratched
                say("view facts: touches in day order")
                groups, shared = _day_order_plan(
                    scratch,
                    parts,
                    rows_per_part=per_part,
                    workers=workers,
                    codes=folder / HABIT_TOUCHES,
                    credits=credits,
                    offsets=offsets,
                )
                del parts
                written["day order"] = dict(
                    sorted(
                        (relative, n)
                        for group in run.each(
                            _day_ordered_touches,
                            [((scratch, folder, group), shared) for group in groups],
                        )
                        for relative, n in group.items()
                    )
                )
                narrow.set()  # the practice side's next steps beside the touch codes
                say("view facts: habit touch codes and cells")
                codes = sorted((scratch / "codes").glob("*.arrow"))
                # one thread when the practice side's next steps run beside it, every core
                # when it is done (100M, 43a875f: it had ended 38 s before, and the touch
                # codes ran 40 s on one thread while the other core idled)
                alone = side is None or side.done()
                how: dict[str, Any] = {"together": 1 if alone else workers}
                if shared.get("codes") is not None:  # written by the day order's ranges
                    function, args = _touch_codes_of_ranges, (shared["codes"],)
                    # in the day order's last worker, taken again: its memory is faulted in
                    # already (100M-size stage: a fresh process spent ~2.6 CPU s more, most
                    # of it system time); the step's threads are its own (a core each)
                    how["threads"] = child_threads(min(workers, len(groups))) or 0
                else:
                    function, args = _touch_codes, (codes, folder / HABIT_TOUCHES)
                try:
                    n_codes, cells = run.call(
                        _step_words(function), function, args, {"cells": folder}, **how
                    )
                except _Stopped:  # by the practice side's failure: that one is the build's
                    if run.failure is None:
                        raise
                    raise run.failure from run.failure.__cause__  # its child's traceback kept
                written["touch codes"] = {f"{HABIT_TOUCHES}/day.npy": n_codes}
                if cells is None:  # touches without a day, or too many cells for dense sums
                    say("view facts: habit cells")
                    cells = run(_habit_cells, scratch, folder, slice_rows=slice_rows)
                written["habit cells"] = cells
            except BaseException as err:
                stop.set()
                narrow.set()  # the practice side, if waiting, sees the failure and ends
                run.stop(err)  # the practice side's process too: the failure is told at once
                raise
            if side is None:
                practice_side()
            else:
                side.result()
        for step in (  # the files in the order of the steps one after another
            "day order", "habit cells", "practice cells", "practice gaps", "practice periods",
            "touch codes", "practice codes", "streaks in order",
        ):  # fmt: skip
            rows.update(written[step])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def _read_ahead(paths: list[Path]) -> threading.Thread:
    """Ask the system to read the files ``paths`` into memory, in order, in a thread of its
    own (``posix_fadvise(WILLNEED)`` of the chunks not in memory:
    :func:`effortlens.warm.advise_missing`): the reads are queued at the disk's pace, large
    and in order, instead of a process faulting each page in when it reads it. Nothing is
    asked where ``posix_fadvise`` is missing; a file gone is skipped."""
    from effortlens.warm import Span, advise_missing

    def run() -> None:
        if not hasattr(os, "posix_fadvise"):
            return
        for path in paths:
            try:
                advise_missing(path, [Span(path.name, 0, path.stat().st_size, "scratch")])
            except (OSError, ValueError):  # gone (the scratch deleted) or unreadable
                continue

    thread = threading.Thread(target=run, name="effortlens-read-ahead", daemon=True)
    thread.start()
    return thread


def _read_input_ahead(folder: Path) -> threading.Thread | None:
    """The raw files of ``folder`` asked into memory at the build's start
    (:func:`_read_ahead`): the small tables first, then the event tables in the order the load
    reads them; ``None`` (nothing asked) when they would take more than half of the memory
    available, where reading them ahead would push out of memory what the build reads next.

    Why: the load reads the event files from several places at once (the partition plan's
    key columns in a thread, each chunk's row groups in its process): on a cold page cache
    those scattered reads came at 3-6 MB/s on this machine's disk, and the load's first
    ~45 s of a 100M build (1.4 GB of Parquet) waited on them; the same files read in order
    come at ~450 MB/s (3 s). A warm build asks nothing (:func:`~effortlens.warm.advise_missing`
    skips what is in memory).
    """
    from effortlens.loading.pipeline import _table_files
    from effortlens.loading.report import DataError
    from effortlens.warm import available_memory

    try:
        files, _ = _table_files(folder)
        events = [files[name] for name in EVENT_TABLES if name in files]
        paths = [path for name, path in files.items() if name not in EVENT_TABLES] + events
        size = sum(path.stat().st_size for path in paths)
    except (OSError, DataError):  # the load says what is wrong with the folder
        return None
    if not paths or size > available_memory() // 2:
        return None
    return _read_ahead(paths)


def _part_names(parts: Path) -> list[str]:
    return [p.name for p in sorted(parts.glob("*.parquet"))] if parts.is_dir() else []


def _scan_part(folder: Path, fact: str, name: str) -> pl.LazyFrame:
    """One partition's part of an event fact (an empty frame of its schema if it wrote none)."""
    from effortlens.facts import FACT_SCHEMAS, FACTS_LAYOUT

    path = folder / FACTS_LAYOUT[fact] / name
    if path.is_file():
        return pl.scan_parquet(path)
    return pl.LazyFrame(schema=FACT_SCHEMAS[fact])


def _touch_extent(folder: Path) -> dict[str, Any]:
    """What the habit credit takes from all the touches at once (one streaming scan): the
    activity types of touches on a contact (sorted), the first touch and ``end`` (the latest
    touch or buyer action on a contact, as :func:`effortlens.habits.candidate_pairs` has it)."""
    from effortlens.facts import FACTS_LAYOUT, scan_fact

    touches = (
        scan_fact(folder, FACTS_LAYOUT["activities"])
        .filter(pl.col("is_customer_facing"))
        .filter(pl.col("contact_id").is_not_null())
    )
    kinds = (
        touches.select(pl.col("activity_type").drop_nulls().unique())
        .collect(engine="streaming")
        .to_series()
        .sort()
        .to_list()
    )
    span = touches.select(first=pl.col("ts").min(), last=pl.col("ts").max()).collect(
        engine="streaming"
    )
    actions = scan_fact(folder, FACTS_LAYOUT["actions"])
    answered = (
        actions.filter(pl.col("contact_id").is_not_null())
        .select(pl.col("ts").max())
        .collect(engine="streaming")
        .item()
    )
    first, last = span["first"].item(), span["last"].item()
    end = None if last is None else max(last, answered or last)
    return {"kinds": kinds, "first": first, "end": end}


def _view_part(
    name: str,
    folder: Path,
    scratch: Path,
    *,
    settings: Settings,
    window: float,
    kinds: list[str],
    first: Any,
    end: Any,
    events: tuple[pl.LazyFrame, pl.LazyFrame] | None = None,
) -> dict[str, Any]:
    """Pass 1 over partition ``name``: its practice facts and cells, verifiers (written), its
    streaks and touches without credits (scratch) and its credit-fit inputs (scratch).
    ``events``: its activities and actions facts when held (the enrichment's frames, in its
    process: :func:`enrich_partition`), else read from ``folder``."""
    from effortlens.deviance import practice_cells, practice_gaps
    from effortlens.deviance.differs import coded_practice_cells, coded_practice_gaps
    from effortlens.facts import AGGREGATES_LAYOUT, FACTS_LAYOUT, ROW_GROUP, _rep_sorted
    from effortlens.flow import verifier_facts
    from effortlens.roe import streak_facts
    from effortlens.touch_build import PartTouches, build_practice_facts, touch_credit_inputs

    if events is None:
        events = (_scan_part(folder, "activities", name), _scan_part(folder, "actions", name))
    acts, actions = events
    rows: dict[str, int] = {}

    def write(frame: pl.DataFrame, relative: str) -> None:
        # Enums spelled (the actions' rep_id: small): the bytes of a pass over the text facts
        _write(_spelled_enums(frame), folder / relative, row_group_size=ROW_GROUP)
        rows[relative] = frame.height

    # the touches read, their text coded and ordered by contact once for the three below
    part = PartTouches(acts, actions)
    # text as Enum codes: grouped by rep as integers (3.5M events: 0.8 -> 0.4 CPU s), spelled
    # for the stored facts and the (small) sums only
    practice = build_practice_facts(acts, part=part, coded=True)
    relative = f"{AGGREGATES_LAYOUT['practice']}/{name}"
    rows[relative] = _write_enums_as_text(practice, folder / relative, row_group_size=ROW_GROUP)
    _practice_part_codes(practice, scratch, name)  # merged by the practice codes step
    # a rep's sums in this partition: by bincount of the codes (else grouped), as text
    counted = coded_practice_cells(practice) or practice_cells(practice)
    for cell, cells in counted.items():
        sums = _rep_sorted(cells.lazy().with_columns(pl.col(pl.Enum).cast(pl.String)))
        _write(sums, scratch / cell / name, row_group_size=ROW_GROUP)
    # its follow-ups, its reps' sums (by bincount in row order: the same bits in every run)
    gaps = coded_practice_gaps(practice)
    for kind, frame in (gaps or practice_gaps(practice)).items():
        frame = frame.lazy().collect()
        if kind == "gaps":  # read whole once by the gap facts: Arrow IPC (rep_id an Enum)
            _write_scratch(frame, scratch / kind / f"{Path(name).stem}.arrow")
        else:
            _write_enums_as_text(frame, scratch / kind / name, row_group_size=ROW_GROUP)
    del gaps
    del practice
    write(
        verifier_facts(actions, settings=settings).collect(),
        f"{AGGREGATES_LAYOUT['verifiers']}/{name}",
    )
    reps = pl.scan_parquet(folder / FACTS_LAYOUT["reps"]).collect()
    # in any order: _ordered_streaks sorts every partition's together, reading each whole
    # once: Arrow IPC (3.5M events: ~0.1 -> ~0.02 CPU s against Parquet)
    found = streak_facts(acts, actions, reps, part=part, ordered=False)
    _write_scratch(found, scratch / "streaks" / f"{Path(name).stem}.arrow")
    del found
    touches, arrays, n_actions = touch_credit_inputs(
        acts, actions, window=window, kinds=kinds, end=end, part=part, coded=True
    )
    del part
    # as the day order reads them: no pass 2 (text as the codes of the values it holds)
    touch = _touch_scratch(touches, scratch, name)
    em = scratch / "em" / name
    em.mkdir(parents=True, exist_ok=True)
    for key, values in arrays.items():
        np.save(em / f"{key}.npy", values)
    return {
        "rows": rows,
        "touches": len(arrays["band"]),  # on a contact: the fit's rows
        "pairs": len(arrays["pair_touch"]),
        "actions": n_actions,
        # the first touch on each contact has cadence bin 0
        "contacts": int((touches["bin_order"] == 0).sum()),
        "touch": touch,
    }


def _write_scratch(frame: pl.DataFrame, path: Path) -> None:
    """``frame`` as uncompressed Arrow IPC, for scratch that a later step of the build reads
    whole once (its types kept, ``Enum``s included: nothing encoded or compressed; 3.5M-event
    partition: its 2M follow-ups 0.06-0.15 -> ~0.01 CPU s against Parquet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_ipc(path, compression="uncompressed")


def _spelled_enums(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its ``Enum`` columns as text: each value gathered from the categories by
    its code (millions of rows: ~2x less CPU than ``cast(pl.String)``)."""
    return frame.with_columns(
        pl.Series(c, t.categories).gather(frame[c].to_physical())
        for c, t in frame.schema.items()
        if isinstance(t, pl.Enum)
    )


def _write_enums_as_text(frame: pl.DataFrame, path: Path, *, row_group_size: int | None) -> int:
    """Write ``frame`` as :func:`_write` writes :func:`_spelled_enums` of it (its ``Enum``
    columns read back as ``String``: the same values, schema and statistics), without
    spelling or hashing millions of strings: Polars writes an ``Enum`` as its codes and
    categories (a dictionary page), and the file's Arrow schema is the text frame's (3.5M
    practice facts: 0.59 -> 0.25 CPU s). The text frame is written instead when the file
    would not read back as text (an ``Enum`` of unsorted categories, or a Polars that keeps
    its own schema). Returns the rows written."""
    from effortlens.facts import PARQUET_CODEC

    enums = [c for c, t in frame.schema.items() if isinstance(t, pl.Enum)]
    text = pl.Schema({c: pl.String if c in enums else t for c, t in frame.schema.items()})
    if not enums or not all(frame.schema[c].categories.is_sorted() for c in enums):
        _write(_spelled_enums(frame), path, row_group_size=row_group_size)
        return frame.height
    buffer = io.BytesIO()  # the Arrow schema a text frame is written with
    pl.DataFrame(schema=text).write_parquet(buffer)
    buffer.seek(0)
    schema = pl.read_parquet_metadata(buffer)["ARROW:schema"]
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(
        path,
        compression=PARQUET_CODEC,
        statistics=True,
        row_group_size=row_group_size,
        metadata={"ARROW:schema": schema},
    )
    if pl.read_parquet_schema(path) != text:
        _write(_spelled_enums(frame), path, row_group_size=row_group_size)
    return frame.height


def _fit_touch_credits(
    scratch: Path,
    names: list[str],
    metas: list[dict[str, Any]],
    *,
    exposure_scale: float,
    iterations: int,
    wide: Path | None = None,
    threads: int = 1,
) -> dict[str, Path]:
    """The habit credit's fits over every partition's inputs, read where pass 1 wrote them
    (memory-mapped, not concatenated: :func:`effortlens.touch_build.fitted_credits`); each
    touch's credits saved (in partition order).

    On ``threads`` threads until the file ``wide`` exists (the practice side beside it is
    done), then on every core; on every core from the start without ``wide``. The same bits
    on any number of threads."""
    from effortlens.touch_build import CREDIT_INPUTS, MappedInputs, fitted_credits

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def lanes() -> int:
        return max(cores or 1, 1) if wide is None or wide.exists() else max(threads, 1)

    em = scratch / "em"
    parts = [MappedInputs(em / name, CREDIT_INPUTS) for name in names]
    out = {}
    fits = fitted_credits(
        parts,
        n_actions=[m["actions"] for m in metas],
        exposure_scale=exposure_scale,
        iterations=iterations,
        threads=lanes,
    )
    for feature, credits in fits:  # one at a time: the first's credits leave memory
        out[feature] = em / f"credit_{feature}.npy"
        with open(out[feature], "wb") as file:  # the parts end to end: one array
            shape = (sum(len(c) for c in credits),)
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float64))}
            np.lib.format.write_array_header_1_0(
                file, header | {"fortran_order": False, "shape": shape}
            )
            for part in credits:
                file.write(part.astype(np.float64, copy=False).data)
        del credits
    del parts, fits
    for name in names:
        shutil.rmtree(em / name, ignore_errors=True)
    return out


def _touch_part(
    name: str,
    folder: Path,
    scratch: Path,
    *,
    credits: dict[str, Path] | None,
    offset: int,
    n: int,
) -> dict[str, Any]:
    """Pass 2 over partition ``name`` as the build ran it before pass 1 wrote its touches for
    the day order (:func:`_touch_scratch`): pass 1's Parquet (``touch1/<name>``, in their
    final order, by day then rep: :func:`effortlens.touch_build.touch_credit_inputs`) with
    their credits, their text as codes (scratch ``touch2/<name>.arrow``:
    :func:`_touch_file`). No build runs it now: the tests' reference for the day order of
    credited touches (tests/test_touch_steps.py)."""
    from effortlens.touch_build import credited_touches

    touches = pl.read_parquet(scratch / "touch1" / name)
    given = {}
    for feature in ("timing", "cadence"):
        if credits is None:
            given[feature] = np.zeros(0)
        else:
            given[feature] = np.array(np.load(credits[feature], mmap_mode="r")[offset : offset + n])
    frame = credited_touches(touches, given)
    del touches
    return _touch_file(frame, scratch / "touch2" / f"{Path(name).stem}.arrow", name)


def _touch_scratch(touches: pl.DataFrame, scratch: Path, name: str) -> dict[str, Any]:
    """Pass 1's touches of partition ``name`` (:func:`effortlens.touch_build.touch_credit_inputs`:
    in their final order, by day then rep; ``fit_row`` for the credits) written as the day
    order reads them (scratch ``touch1/<name>.arrow``: :func:`_touch_file`): no pass 2 then,
    the day order takes each touch's credits by its ``fit_row`` (:func:`_credited`). Pass 2
    read the Parquet pass 1 wrote, took the credits and wrote the same again (100M: 18-24
    CPU s, a step of its own); this costs pass 1 about what its Parquet write did."""
    if "fit_row" in touches.columns:  # a row of the partition's fit rows: 4 bytes enough
        touches = touches.with_columns(pl.col("fit_row").cast(pl.UInt32))
    return _touch_file(touches, scratch / "touch1" / f"{Path(name).stem}.arrow", name)


#: The credit columns the fit gives each touch (``credit_<feature>``, in this order).
_CREDIT_FEATURES = ("timing", "cadence")


def _touch_file(frame: pl.DataFrame, path: Path, name: str) -> dict[str, Any]:
    """A partition's touch facts ``frame`` (by day then rep; credited, or with their
    ``fit_row``) written to ``path`` as the day order reads them (uncompressed Arrow IPC:
    ranges of its rows read in place), each text column (``String``, or ``Enum``) as its
    codes among the partition's own values; returned, what :func:`_day_order_plan` merges
    by: those values per column (``names``: code *i* spells ``names[column][i]``), the rows
    and the rows per day (``days``, ``counts``: the partition's runs of days, null first),
    the touch facts' schema, the distinct key rows (:func:`_touch_code_keys`) and whether
    the rows hold ``fit_row`` (``fit_rows``: credited by the day order)."""
    names: dict[str, list[str]] = {}
    coded = {}
    for column, dtype in frame.schema.items():
        if dtype == pl.String:  # numbered as the partition's distinct values come (any order)
            dtype = pl.Enum(frame[column].drop_nulls().unique())
        elif not isinstance(dtype, pl.Enum):
            continue
        names[column] = dtype.categories.to_list()
        coded[column] = frame[column].cast(dtype).to_physical()
    frame = frame.with_columns(**coded)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_ipc(path, compression="uncompressed")
    runs = frame["day"].to_physical().rle()
    day = runs.struct.field("value")
    if not day.is_sorted(nulls_last=False) or day.null_count() > 1 or day.n_unique() < len(day):
        raise RuntimeError(f"pass 1 wrote the touches of {name} out of day order")  # a bug
    fit_rows = "fit_row" in frame.columns
    schema = {c: (pl.String if c in names else t) for c, t in frame.schema.items()}
    if fit_rows:  # the touch facts' columns: the credits in place of the fit row
        del schema["fit_row"]
        schema.update({f"credit_{feature}": pl.Float64 for feature in _CREDIT_FEATURES})
    return {
        "name": name,
        "file": path,
        "rows": frame.height,
        "days": day.to_list(),
        "counts": runs.struct.field("len").to_list(),
        "names": names,
        "schema": schema,
        "keys": _touch_code_keys(frame),
        "fit_rows": fit_rows,
    }


def _credited(piece: pl.DataFrame, credits: dict[str, np.ndarray], offset: int) -> pl.DataFrame:
    """``piece`` (rows of a partition's :func:`_touch_scratch`) with each touch's credits in
    place of its ``fit_row``, as :func:`effortlens.touch_build.credited_touches` gives them:
    ``credits`` per feature (every touch's, in the fit's order; the partition's from
    ``offset``), null without a fit row."""
    at = piece["fit_row"]
    known = at.len() - at.null_count()
    where = (at.cast(pl.Int64).fill_null(0) + offset).to_numpy() if known else None
    columns = []
    for feature in _CREDIT_FEATURES:
        name = f"credit_{feature}"
        if where is None:  # no touch of it on a contact
            columns.append(pl.Series(name, [None] * at.len(), pl.Float64))
            continue
        values = pl.Series(name, np.take(credits[feature], where))
        if known < at.len():
            values = pl.select(pl.when(at.is_not_null()).then(values)).to_series()
        columns.append(values)
    return piece.drop("fit_row").with_columns(columns)


def _touch_code_keys(frame: pl.DataFrame) -> dict[str, pl.DataFrame] | None:
    """The distinct rows of each habit touch code's key columns
    (:data:`effortlens.habits.TOUCH_CODE_KEYS`) among ``frame``'s touches with a day, as
    they are in ``frame`` (text as the partition's codes); ``None`` when some key column is
    missing."""
    from effortlens.habits import TOUCH_CODE_KEYS

    if any(c not in frame.columns for columns in TOUCH_CODE_KEYS.values() for c in columns):
        return None
    dated = frame["day"].is_not_null().to_numpy() if frame["day"].null_count() else None
    return {
        name: _distinct_rows([frame[c] for c in columns], dated)
        for name, columns in TOUCH_CODE_KEYS.items()
    }


def _distinct_rows(columns: list[pl.Series], kept: np.ndarray | None = None) -> pl.DataFrame:
    """The distinct rows of ``columns`` (integers: codes, small numbers) among those
    ``kept`` (a mask; all without), in any order: each row one integer of its columns'
    values (null after every value), marked present in an array of all of them (a 100M
    partition's 2.7M rows: a few ms a column, several times less than Polars' unique of
    the rows); a unique of the rows when that array would pass 2**26."""
    places = []
    space = 1
    for values in columns:
        physical = values.to_physical()
        if not physical.dtype.is_integer():
            space = 1 << 27
            break
        known = physical.len() - physical.null_count()
        low = int(physical.min()) if known else 0
        width = (int(physical.max()) - low + 2) if known else 1
        places.append((low, width))
        space *= width
    if space > 1 << 26:
        frame = pl.DataFrame(columns)
        return (frame if kept is None else frame.filter(pl.Series(kept))).unique()
    key = np.zeros(columns[0].len() if columns else 0, dtype=np.int32)  # space <= 2**26
    for values, (low, width) in zip(columns, places, strict=True):
        physical = values.to_physical()
        if physical.null_count():  # null: the digit after every value
            if physical.dtype in (pl.Int8, pl.Int16, pl.UInt8, pl.UInt16):  # max + 1 fits
                physical = physical.cast(pl.Int32)
            physical = physical.fill_null(low + width - 1)
        key *= width
        key += physical.to_numpy()
        if low:
            key -= low
    present = np.zeros(space, dtype=bool)
    present[key if kept is None else key[kept]] = True
    found = np.flatnonzero(present)
    out = {}
    for values, (low, width) in reversed(list(zip(columns, places, strict=True))):
        digit = pl.Series(found % width)
        found = found // width
        decoded = pl.select(pl.when(digit < width - 1).then(digit + low)).to_series()
        out[values.name] = decoded.cast(values.to_physical().dtype).cast(values.dtype)
    return pl.DataFrame([out[values.name].rename(values.name) for values in columns])


def _habit_cells(scratch: Path, folder: Path, *, slice_rows: int) -> dict[str, int]:
    """The habit cells summed over every touch, a run of reps at a time (about
    ``slice_rows`` touches, read once for the four cells): streaming group-bys over all of
    them at once passed 8 GB at 100M (81.6M touches). The touches are read from
    ``scratch/codes`` (:func:`_day_ordered_touches`: the touch facts with their text keys as
    ``Enum``s of the sorted values), so the runs are ranges of rep codes and the group-bys
    are by small integers (2.5x less CPU than by text; :func:`effortlens.facts._cells` writes
    the keys as text or categories as before).
    Each run's cells sorted by rep, the runs end to end in rep order, as
    :func:`effortlens.facts.write_aggregates` writes them."""
    from effortlens.facts import _HABIT_CELLS, AGGREGATES_LAYOUT, ROW_GROUP, _cells, scan_fact
    from effortlens.habits import touch_cells

    files = sorted((scratch / "codes").glob("*.arrow"))
    # no touch at all: the cells of the (empty) touch facts, as before
    touches = pl.scan_ipc(files) if files else scan_fact(folder, AGGREGATES_LAYOUT["touches"])
    rep = pl.col("rep_id").to_physical()  # an Enum of the sorted reps: codes in rep order
    per_rep = (
        touches.group_by(rep).agg(pl.len().alias("n")).collect(engine="streaming").sort("rep_id")
    )
    known = per_rep.filter(pl.col("rep_id").is_not_null())
    run = (known["n"].cum_sum() - 1) // max(slice_rows, 1)
    runs: list[pl.Expr] = [
        rep.is_between(codes.min(), codes.max())
        for codes in (known.filter(run == r)["rep_id"] for r in run.unique(maintain_order=True))
    ]
    if per_rep["rep_id"].null_count():  # no rep: first, as one sort by rep puts them
        runs.insert(0, rep.is_null())
    made: dict[str, list[pl.DataFrame]] = {cell: [] for cell in _HABIT_CELLS}
    for kept in runs or [pl.lit(True)]:
        some = touches.filter(kept).collect(engine="streaming")
        plans = touch_cells(some)
        for cell in _HABIT_CELLS:
            made[cell].append(_cells(plans[cell.removeprefix("habit_")]))
        del some, plans
    rows = {}
    for cell in _HABIT_CELLS:
        frame = pl.concat(made.pop(cell), rechunk=False)
        relative = AGGREGATES_LAYOUT[cell]
        _write(frame, folder / relative, row_group_size=ROW_GROUP)
        rows[relative] = frame.height
    return rows


def _practice_cells(scratch: Path, folder: Path) -> dict[str, int]:
    """The practice cells: each partition's sums per rep added up (a rep's touches may lie in
    several partitions), by rep as :func:`effortlens.facts.write_aggregates` writes them, a
    rep's rows in the order of their other keys (a group-by's order, which differed from one
    build to the next; the counts are whole numbers, their sums exact in any order)."""
    from effortlens.facts import AGGREGATES_LAYOUT, ROW_GROUP, _rep_sorted

    rows = {}
    for cell in ("shares", "sequences"):
        parts = pl.scan_parquet(sorted((scratch / cell).glob("*.parquet")))
        columns = parts.collect_schema().names()
        keys = [c for c in columns if c != "n"]
        summed = _rep_sorted(parts.group_by(keys).agg(pl.col("n").sum()).select(columns))
        # (each row's keys are its own: one order; the reps' none first, as _rep_sorted)
        summed = summed.sort(["rep_id", *(k for k in keys if k != "rep_id")])
        relative = AGGREGATES_LAYOUT[f"practice_{cell}"]
        _write(summed, folder / relative, row_group_size=ROW_GROUP)
        rows[relative] = summed.height
    return rows


def _practice_periods(folder: Path) -> dict[str, int]:
    """The practice cells and gap runs of the page's period presets, from the practice facts'
    parts as :func:`effortlens.facts.write_aggregates` writes them."""
    from effortlens.facts import write_practice_periods

    return write_practice_periods(folder)


def _practice_gap_facts(scratch: Path, folder: Path, *, slice_rows: int) -> dict[str, int]:
    """The follow-ups by rep (:func:`effortlens.deviance.practice_gaps`): every partition's
    sorted by rep, then gap, and each rep's sums added up over the partitions, as
    :func:`effortlens.facts.write_aggregates` writes them.

    Each partition's follow-ups are kept as one int64 each (the rep's code above the
    seconds), the codes renumbered as the reps' ids sort and the keys sorted in place: the
    order of :func:`effortlens.deviance.sorted_gaps` without a sort by text (3m: 0.9 -> 0.3
    CPU s; 100M: ~80M follow-ups, 8 bytes each instead of a rep id and a float), the rep
    ids spelled only as the file is written. Follow-ups whose key would not fit (no rep,
    seconds outside 0..2**31) take the sort by text, a run of reps (about ``slice_rows``)
    at a time."""
    from effortlens.deviance import sorted_gaps
    from effortlens.deviance.differs import (
        _GapKeys,
        ranked_gap_keys,
        write_gap_key_runs,
        write_gap_runs,
        write_sorted_gap_keys,
    )
    from effortlens.facts import AGGREGATES_LAYOUT, PRACTICE_GAP_RUNS, ROW_GROUP, _rep_sorted

    files = _scratch_files(scratch / "gaps")
    # each follow-up's key made with its rep's rank as its part is read (the parts' Enum
    # categories known first); else numbered in order of appearance, then renumbered
    made = ranked_gap_keys([_scan_scratch(path) for path in files]) if files else None
    if made is None and files:
        held = _GapKeys()
        for path in files:
            held.add(_read_scratch(path))
            if held.frames:
                break
        made = None if held.frames else held.sorted_keys()
        del held
    relative = AGGREGATES_LAYOUT["practice_gaps"]
    rows = {}
    if made is not None:
        keys, names = made
        rows[relative] = write_sorted_gap_keys(
            keys, names, folder / relative, row_group_size=ROW_GROUP
        )
        rows[f"{PRACTICE_GAP_RUNS}/seconds.npy"] = write_gap_key_runs(
            keys, names, folder / PRACTICE_GAP_RUNS
        )
        del keys, names, made
    else:
        # sorted a run of reps at a time (one sort of all of them with text reps would
        # pass 8 GB at 100M), the runs end to end in rep order: the whole sort's order
        scan = pl.concat(  # (an Enum's categories differ from one partition to the next)
            [_scan_scratch(path).with_columns(pl.col("rep_id").cast(pl.String)) for path in files]
        )
        per_rep = scan.group_by("rep_id").agg(pl.len().alias("n")).collect().sort("rep_id")
        run = (per_rep["n"].cum_sum() - 1) // slice_rows
        slices = [
            sorted_gaps(scan.filter(pl.col("rep_id").is_in(ids.implode())))
            for ids in (per_rep.filter(run == r)["rep_id"] for r in run.unique(maintain_order=True))
        ]
        if per_rep["rep_id"].null_count():  # sorted first, as one sort puts them
            slices.insert(0, sorted_gaps(scan.filter(pl.col("rep_id").is_null())))
        # the wider seconds type of any run is the one a whole sort would choose
        gaps = pl.concat(slices or [sorted_gaps(scan)], how="vertical_relaxed", rechunk=False)
        del slices
        _write(gaps, folder / relative, row_group_size=ROW_GROUP)
        rows[relative] = gaps.height
        # and mapped by rep, with each rep's counts by bin (a slice of the seconds at a time)
        rows[f"{PRACTICE_GAP_RUNS}/seconds.npy"] = write_gap_runs(gaps, folder / PRACTICE_GAP_RUNS)
        del gaps
    parts = pl.scan_parquet(sorted((scratch / "gap_reps").glob("*.parquet")))
    sums = {"follow_ups": pl.UInt32, "log_gap_sum": pl.Float64, "log_gap_squares": pl.Float64}
    summed = _rep_sorted(_summed_in_order(parts.collect(), sums).lazy())
    relative = AGGREGATES_LAYOUT["practice_gap_reps"]
    _write(summed, folder / relative, row_group_size=ROW_GROUP)
    rows[relative] = summed.height
    return rows


def _summed_in_order(frame: pl.DataFrame, sums: dict[str, Any]) -> pl.DataFrame:
    """The columns ``sums`` of ``frame`` summed over its rows of equal other columns (nulls
    equal, counted as 0), as ``sums``' types: one row per key, in the keys' order (nulls
    first), each key's rows added in their order in ``frame`` (the parts' order), so the
    same bits in every build (a Polars group-by's float sums differ from run to run)."""
    keys = [c for c in frame.columns if c not in sums]
    ordered = frame.with_row_index("_row").sort([*keys, "_row"])
    new = [pl.col(k).ne_missing(pl.col(k).shift(1)) for k in keys]
    first = ordered.select(
        pl.any_horizontal(pl.int_range(pl.len()) == 0, *new).alias("first")
    ).to_series()
    group = np.cumsum(first.to_numpy()) - 1
    out = ordered.filter(first).select(keys)
    return out.with_columns(
        pl.Series(
            name,
            np.bincount(
                group,
                weights=ordered[name].cast(pl.Float64).fill_null(0.0).to_numpy(),
                minlength=out.height,
            ),
        ).cast(dtype)
        for name, dtype in sums.items()
    ).select(frame.columns)


def _scratch_files(folder: Path) -> list[Path]:
    """Pass 1's files of one kind in ``folder``, in partition order: Parquet or, where pass 1
    wrote them so, uncompressed Arrow IPC (``.arrow``)."""
    files = [*folder.glob("*.parquet"), *folder.glob("*.arrow")]
    return sorted(files, key=lambda path: (path.stem, path.suffix))


def _read_scratch(path: Path) -> pl.DataFrame:
    """A file of :func:`_scratch_files`, read whole."""
    return pl.read_ipc(path) if path.suffix == ".arrow" else pl.read_parquet(path)


def _scan_scratch(path: Path) -> pl.LazyFrame:
    """A file of :func:`_scratch_files`, scanned."""
    return pl.scan_ipc(path) if path.suffix == ".arrow" else pl.scan_parquet(path)


def _streak_key(frame: pl.DataFrame) -> np.ndarray | None:
    """One uint64 per streak in :func:`effortlens.roe.sort_streak_facts`' order but for
    ``first_ts``: the touches counted down from the most above the contact's id (its bytes
    past the prefix every id shares, big-endian: an integer in the ids' byte order), or None
    when they do not fit 64 bits (or an id is missing, not ASCII or holds a NUL byte)."""
    contact, touches = frame.get_column("contact_id"), frame.get_column("touches")
    if not frame.height or contact.null_count() or touches.null_count():
        return None
    if (
        contact.str.contains("\x00", literal=True).any()
        or (contact.str.len_bytes() != contact.str.len_chars()).any()
    ):
        return None
    least, most = contact.min(), contact.max()
    shared = 0  # every id between the least and the most shares their common prefix
    while shared < min(len(least), len(most)) and least[shared] == most[shared]:
        shared += 1
    suffix = contact.str.slice(shared)
    width = int(suffix.str.len_bytes().max())
    top = int(touches.max())
    if 8 * width + max(1, (top - int(touches.min())).bit_length()) > 64:
        return None
    key = (top - touches.cast(pl.Int64)).to_numpy().astype(np.uint64) << np.uint64(8 * width)
    if width:
        word = suffix.str.pad_end(8, "\x00").cast(pl.Binary)
        word = word.bin.reinterpret(dtype=pl.UInt64, endianness="big").to_numpy()
        key |= word >> np.uint64(64 - 8 * width)
    return key


def _sorted_streaks(frame: pl.DataFrame) -> pl.DataFrame:
    """:func:`effortlens.roe.sort_streak_facts` of ``frame`` (collected): sorted by two
    integer keys (:func:`_streak_key`, then ``first_ts``) and gathered from one chunk a
    column, not by the text of the contacts' ids (100M, 4.2M streaks: 5.3 -> ~2 CPU s);
    by text when the key does not fit. Streaks alike in all three keys stay in ``frame``'s
    order."""
    from effortlens.roe import sort_streak_facts

    key = _streak_key(frame)
    if key is None:
        return sort_streak_facts(frame)
    keys = pl.DataFrame({"key": key, "first_ts": frame.get_column("first_ts")})
    order = keys.select(pl.arg_sort_by("key", "first_ts", maintain_order=True)).to_series()
    del keys, key
    frame = frame.rechunk()  # a gather from 30 chunks a column costs ~5x one from one
    return frame[order]


def _write_rep_ordered(stored: pl.LazyFrame, long: int, folder: Path, *, rows_per_part: int):
    """:func:`effortlens.roe.rep_ordered_streaks` of ``stored`` written a range of teams per
    part (as :func:`_ordered_streaks` did: teams in order, nulls last, at most
    ``rows_per_part`` streaks a part unless one team has more), from its first ``long`` rows
    (the streaks of :data:`effortlens.roe.STREAK_BY_REP_TOUCHES` or more touches: the
    stored streaks are longest first) read once, put in (team, rep, position) order by one
    stable sort of an integer per streak (each team's and rep's rank among their sorted
    values, nulls last): no read of the shorter streaks, no sort by text, no read per part."""
    from effortlens.facts import AGGREGATES_LAYOUT
    from effortlens.roe import STREAK_BY_REP_TOUCHES, STREAK_COLUMNS, write_rep_ordered_streaks

    read = [c for c in STREAK_COLUMNS if c != "days"]  # what rep_ordered_streaks keeps
    frame = (
        stored.head(long)
        .with_row_index("position")
        .filter(pl.col("touches") >= STREAK_BY_REP_TOUCHES)  # all of them: longest first
        .select(pl.col("position").cast(pl.UInt32), "team", *read)
        .collect()
    )

    def rank(column: str) -> tuple[np.ndarray, pl.Series]:
        # each row's value's place among the sorted values, a missing one last; and those
        values = frame.get_column(column)
        names = values.drop_nulls().unique().sort()
        code = values.cast(pl.Enum(names)).to_physical().cast(pl.Int64).fill_null(names.len())
        return code.to_numpy(), names

    team, teams = rank("team")
    rep, reps = rank("rep_id")
    key = team * (reps.len() + 1) + rep
    order = pl.DataFrame({"key": key}).select(pl.arg_sort_by("key", maintain_order=True))
    order = order.to_series()
    per_team = np.bincount(team, minlength=teams.len() + 1)
    frame = frame.drop("team").rechunk()
    rows, at, held = {}, 0, 0
    bounds = []  # each part's rows of the ordered streaks
    for n in per_team.tolist():
        if not n:
            continue
        if bounds and held + n <= rows_per_part:
            bounds[-1][1] += n
            held += n
        else:
            bounds.append([at, at + n])
            held = n
        at += n
    for i, (lo, hi) in enumerate(bounds):
        part = frame[order.slice(lo, hi - lo)]
        relative = f"{AGGREGATES_LAYOUT['streaks_by_rep']}/part-{i:05d}.parquet"
        write_rep_ordered_streaks(part, folder / relative)
        rows[relative] = part.height
    return rows


def _ordered_streaks(
    files: list[Path], folder: Path, *, rows_per_part: int = 4_000_000
) -> dict[str, int]:
    """The streaks of every partition in the build's order, as part files: a range of
    lengths (longest first) per part, each sorted by :func:`effortlens.roe.sort_streak_facts`
    (its first key is the length, so the parts in name order are the whole order); then those
    of 4+ touches again by rep, read back from the parts a range of teams (in team order, at most
    ``rows_per_part`` streaks unless one team has more) per part file
    (:func:`effortlens.roe.rep_ordered_streaks`)."""
    from effortlens.facts import AGGREGATES_LAYOUT, ROW_GROUP
    from effortlens.roe import (
        STREAK_BY_REP_TOUCHES,
        rep_ordered_streaks,
        sort_streak_facts,
        write_rep_ordered_streaks,
    )

    # (pass 1's parts: Parquet or uncompressed Arrow IPC, :func:`_scratch_files`)
    scans = [_scan_scratch(path) for path in files]
    streaks = pl.concat(scans) if scans else pl.scan_parquet(files)
    lengths = (
        streaks.group_by("touches")
        .len()
        .collect(engine="streaming")
        .sort("touches", descending=True)
    )
    ranges: list[tuple[int, int]] = []  # (longest, shortest) of each part
    held = 0
    for length, n in lengths.iter_rows():
        if ranges and held + n <= rows_per_part:
            ranges[-1] = (ranges[-1][0], length)
            held += n
        else:
            ranges.append((length, length))
            held = n
    rows = {}
    for i, (longest, shortest) in enumerate(ranges or [(0, 0)]):
        kept = streaks.filter(pl.col("touches").is_between(shortest, longest))
        frame = _sorted_streaks(kept.collect()) if ranges else sort_streak_facts(streaks)
        relative = f"{AGGREGATES_LAYOUT['streaks']}/part-{i:05d}.parquet"
        _write(frame, folder / relative, row_group_size=ROW_GROUP)
        rows[relative] = frame.height
        del frame
    stored = pl.scan_parquet(sorted((folder / AGGREGATES_LAYOUT["streaks"]).glob("*.parquet")))
    long = sum(n for length, n in lengths.iter_rows() if length >= STREAK_BY_REP_TOUCHES)
    if long:  # the stored streaks' first rows: read once, ordered by integer keys
        rows.update(_write_rep_ordered(stored, long, folder, rows_per_part=rows_per_part))
        return rows
    teams = (
        stored.filter(pl.col("touches") >= STREAK_BY_REP_TOUCHES)
        .group_by("team")
        .len()
        .collect(engine="streaming")
        .sort("team", nulls_last=True)
    )
    batches: list[list[str | None]] = []  # the teams of each part
    held = 0
    for team, n in teams.iter_rows():
        if batches and held + n <= rows_per_part:
            batches[-1].append(team)
            held += n
        else:
            batches.append([team])
            held = n
    for i, names in enumerate(batches or [None]):
        by_rep = rep_ordered_streaks(stored, teams=names)
        relative = f"{AGGREGATES_LAYOUT['streaks_by_rep']}/part-{i:05d}.parquet"
        write_rep_ordered_streaks(by_rep, folder / relative)
        rows[relative] = by_rep.height
    return rows


def _day_order_plan(
    scratch: Path,
    parts: list[dict[str, Any]],
    *,
    rows_per_part: int,
    workers: int,
    codes: Path | None = None,
    credits: dict[str, Path] | None = None,
    offsets: list[int] | None = None,
) -> tuple[list[list[tuple[int, list[tuple[Path, int, int, int]]]]], dict[str, Any]]:
    """How :func:`_day_ordered_touches` merges pass 2's partitions (:func:`_touch_part`'s
    ``parts``, in partition order) into part files of a range of days each: the ranges as
    the base build cut them (whole days, in day order, about ``rows_per_part`` rows each,
    the touches without a day in the first), each with every partition's rows of it (a
    slice of rows: each partition is in day order), in up to ``workers`` groups of about
    equal rows; and what every group shares (``shared``: each text column's values over all
    partitions, sorted, and each partition's codes renumbered among them).

    With ``codes`` (the habit touch codes' folder), when every touch has a day: the ranges
    write the habit touch codes too (``shared["codes"]``: :func:`_touch_code_ranges`). Parts
    written by pass 1 (:func:`_touch_scratch`) are credited by the day order: from the fit's
    ``credits`` (files per feature), each partition's from its ``offsets``."""
    texts = list(parts[0]["names"]) if parts else []
    names = {
        c: pl.Series(c, [v for p in parts for v in p["names"][c]], pl.String).unique().sort()
        for c in texts
    }
    remaps = [
        {
            c: pl.Series(p["names"][c], dtype=pl.String).cast(pl.Enum(names[c])).to_physical()
            for c in texts
        }
        for p in parts
    ]
    per_day: dict[Any, int] = {}
    for p in parts:
        for day, n in zip(p["days"], p["counts"], strict=True):
            per_day[day] = per_day.get(day, 0) + n
    ranges: list[list[Any]] = []  # [first day, last day, rows] of each part file
    for day in sorted(per_day, key=lambda d: (d is not None, d or 0)):  # null first
        n = per_day[day]
        if ranges and ranges[-1][2] + n <= rows_per_part:
            ranges[-1][1:] = [day, ranges[-1][2] + n]
        else:
            ranges.append([day, day, n])
    ranges = ranges or [[None, None, 0]]
    # each partition's rows up to the end of each range
    ends = []
    for p in parts:
        days = [d for d in p["days"] if d is not None]
        counts = np.cumsum(p["counts"])
        stops = []
        for _, last, _ in ranges:
            runs = (len(p["days"]) - len(days)) + int(
                np.searchsorted(np.asarray(days, dtype=np.int64), last, side="right")
                if last is not None
                else 0
            )
            stops.append(int(counts[runs - 1]) if runs else 0)
        ends.append(stops)
    files = [p.get("file", scratch / "touch2" / f"{Path(p['name']).stem}.arrow") for p in parts]
    planned = []
    for i, (_, _, rows) in enumerate(ranges):
        pieces = [
            (files[k], ends[k][i - 1] if i else 0, ends[k][i], k)
            for k in range(len(parts))
            if ends[k][i] > (ends[k][i - 1] if i else 0)
        ]
        planned.append((i, rows, pieces))
    groups: list[list[tuple[int, list[tuple[Path, int, int, int]]]]] = [
        [] for _ in range(max(1, min(workers, len(planned))))
    ]
    load = [0] * len(groups)
    for i, rows, pieces in planned:  # each range to the lightest group, in range order
        g = load.index(min(load))
        groups[g].append((i, pieces))
        load[g] += rows
    low = min((d for d in per_day if d is not None), default=0)
    schema = parts[0]["schema"] if parts else {}
    shared = {"names": names, "remaps": remaps, "low": low, "schema": schema}
    if any(p.get("fit_rows") for p in parts):
        if offsets is None:  # never: write_view_facts gives them
            raise RuntimeError("touches with fit rows and no credit offsets")
        shared.update(credits=credits, offsets=offsets[: len(parts)])
    if codes is not None and None not in per_day:
        at = np.cumsum([0] + [rows for _, _, rows in ranges]).tolist()
        shared["codes"] = _touch_code_ranges(
            parts, names, remaps, codes, scratch / "touch_codes", at=at[:-1], days=per_day
        )
    return groups, shared


def _touch_code_ranges(
    parts: list[dict[str, Any]],
    names: dict[str, pl.Series],
    remaps: list[dict[str, pl.Series]],
    out: Path,
    scratch: Path,
    *,
    at: list[int],
    days: dict[Any, int],
) -> dict[str, Any] | None:
    """What the day order's ranges need to write the habit touch codes
    (:func:`effortlens.habits.write_touch_code_range`): the key tables, from every
    partition's distinct key rows (:func:`_touch_code_keys`, renumbered as ``Enum``s of the
    sorted values, as the ranges' codes), the layout, the files started in ``out``; each
    range's first row (``at``). ``None`` (the codes read from the day order's scratch, as
    before) when a partition has no key rows, there are no touches, or the keys do not pack
    (:func:`effortlens.habits.touch_code_layout`); or when the habit cells from the codes would
    not fit their dense sums (:data:`_CELL_SPACE`)."""
    from effortlens.habits import (
        TOUCH_CODE_KEYS,
        TOUCH_SEQUENCE_LENGTHS,
        start_touch_codes,
        touch_code_dictionary,
        touch_code_layout,
    )

    rows = sum(days.values())
    if not rows or any(p["keys"] is None for p in parts if p["rows"]):
        return None
    dictionaries = {}
    for name, columns in TOUCH_CODE_KEYS.items():
        found = [
            p["keys"][name].with_columns(
                names[c].gather(remaps[k][c].gather(p["keys"][name][c])).cast(pl.Enum(names[c]))
                for c in columns
                if c in names
            )
            for k, p in enumerate(parts)
            if p["rows"]
        ]
        dictionaries[name] = touch_code_dictionary(pl.concat(found), name).rechunk()
    layout = touch_code_layout(dictionaries, rows=rows, first=min(days), last=max(days))
    if layout is None:
        return None
    sizes = layout["sizes"]
    widest = max(
        sizes["type"] * sizes["cell"],
        sizes["type"] * sizes["bin"],
        *(sizes[f"sequence_{k}"] for k in TOUCH_SEQUENCE_LENGTHS),
    )
    if widest * 4 > _CELL_SPACE:  # the cells by the group-bys, from the codes' scratch
        return None
    shutil.rmtree(out, ignore_errors=True)
    start_touch_codes(out, layout)
    scratch.mkdir(parents=True, exist_ok=True)
    return {"out": out, "scratch": scratch, "layout": layout, "at": at}


def _plain(values: pl.Series, shift: int) -> np.ndarray:
    """``values`` (integers) + ``shift`` as int64, null as 0: an array of its own (a column
    of one chunk would otherwise come as a read-only view of Polars' buffer)."""
    return (values.cast(pl.Int64) + shift).fill_null(0).to_numpy(writable=True)


def _taken(frame: pl.DataFrame, order: np.ndarray) -> pl.DataFrame:
    """``frame``'s rows in ``order``: columns without nulls by ``numpy.take`` on their
    physical values (3m: about half the CPU of Polars' gather), the others by Polars."""
    columns = []
    for name, values in frame.rechunk().to_dict().items():
        if values.null_count() or values.dtype == pl.Boolean:
            columns.append(values.gather(order))
        else:
            taken = np.take(values.to_physical().to_numpy(), order)
            columns.append(pl.Series(name, taken).cast(values.dtype))
    return pl.DataFrame(columns)


def _day_ordered_touches(
    scratch: Path,
    folder: Path,
    ranges: list[tuple[int, list[tuple[Path, int, int, int]]]],
    *,
    names: dict[str, pl.Series],
    remaps: list[dict[str, pl.Series]],
    low: int,
    schema: dict[str, Any],
    codes: dict[str, Any] | None = None,
    credits: dict[str, Path] | None = None,
    offsets: list[int] | None = None,
) -> dict[str, int]:
    """The touch facts of some ranges of days (:func:`_day_order_plan`) in the in-memory
    build's order, by day then rep (a day's touches of one rep in partition order), one part
    file per range; beside each, its rows with their text keys as ``Enum``s of the sorted
    values of all the touches (``scratch/codes``: what :func:`_habit_cells` and
    :func:`_touch_codes` read); or, with ``codes`` (:func:`_touch_code_ranges`), the
    range's habit touch codes written in place instead
    (:func:`effortlens.habits.write_touch_code_range`: no scratch written and read again).

    Each range's rows are read in place from pass 2's files, or pass 1's
    (:func:`_touch_scratch`: credited here, :func:`_credited` from the fit's ``credits``,
    mapped, each partition's from its ``offsets``) (each partition's rows of the
    range: a slice, in day then rep order), their codes renumbered among all the values, and
    merged by one stable integer sort of (day, rep) (the rep's place among the sorted reps):
    no text is read, hashed or sorted (3m, with pass 2: 3.2-3.5 -> 2.1 CPU s; the text sort
    was 0.55 of it, the merge's stable sort of the partitions' runs takes 0.02). The part file
    is written from the codes (:func:`_write_enums_as_text`: read back as the text, the same
    values, schema and statistics; no text spelled)."""
    from effortlens.facts import AGGREGATES_LAYOUT, ROW_GROUP

    rows = {}
    if codes is None:
        (scratch / "codes").mkdir(parents=True, exist_ok=True)
    n_reps = names["rep_id"].len() if "rep_id" in names else 0
    for i, pieces in ranges:
        # the fit's credits mapped for this range alone: the pages it read are let go with
        # it (mapped over every range, a child's resident set grew to all of them, 100M: 1.3 GB)
        given = {f: np.load(path, mmap_mode="r") for f, path in (credits or {}).items()}
        frames = []
        for path, start, stop, k in pieces:
            piece = pl.scan_ipc(path).slice(start, stop - start).collect()
            piece = piece.with_columns(remaps[k][c].gather(piece[c]).alias(c) for c in names)
            if "fit_row" in piece.columns:
                piece = _credited(piece, given, offsets[k])
            frames.append(piece)
        del given
        if frames:
            frame = pl.concat(frames, rechunk=False)
        else:  # no touch at all: an empty part file of the touch facts' schema
            frame = pl.DataFrame(
                schema={c: (pl.UInt32 if c in names else t) for c, t in schema.items()}
            )
        del frames
        key = _plain(frame["day"].to_physical(), 1 - low)  # null first, as the sort
        key *= n_reps + 1
        if n_reps:
            key += _plain(frame["rep_id"], 1)
        # the partitions' runs of rows, each in order: merged by numpy's stable sort (a
        # timsort: runs found and merged, 3m: 0.02 CPU s against 0.55 for the text sort)
        order = np.argsort(key, kind="stable")
        del key
        frame = _taken(frame, order)
        relative = f"{AGGREGATES_LAYOUT['touches']}/part-{i:05d}.parquet"
        # the text as Enums of the sorted values, written as their codes and a dictionary
        # page, read back as the text (100M-size range of 3.9M touches: the spelled gather
        # and text write 1.35 -> 0.5 CPU s)
        rows[relative] = _write_enums_as_text(
            frame.with_columns(pl.col(c).cat.to(pl.Enum(names[c])) for c in names),
            folder / relative,
            row_group_size=ROW_GROUP,
        )
        if codes is not None:  # the range's habit touch codes, in place
            from effortlens.habits import write_touch_code_range

            write_touch_code_range(
                frame,
                codes["out"],
                codes["scratch"],
                index=i,
                at=codes["at"][i],
                layout=codes["layout"],
            )
            del frame
            continue
        coded = frame.with_columns(pl.col(c).cat.to(pl.Enum(names[c])) for c in names)
        # scratch read whole twice (habit cells, touch codes), in place: Arrow IPC
        coded.write_ipc(scratch / "codes" / f"part-{i:05d}.arrow", compression="uncompressed")
        del frame, coded
    return rows


def _practice_codes(folder: Path, scratch: Path | None = None) -> int:
    """:func:`effortlens.touch_build.write_practice_codes` of every partition's practice
    facts: merged from the codes each partition's pass 1 wrote in ``scratch``
    (:func:`_practice_part_codes`; no text read or hashed), or, when some partition wrote
    none, read from the facts (a column at a time, its text as ``Enum`` codes); put in day,
    then rep order. The same files either way."""
    from effortlens.facts import AGGREGATES_LAYOUT, PRACTICE_CODES, scan_fact
    from effortlens.touch_build import merge_practice_codes, write_practice_codes

    practice = scan_fact(folder, AGGREGATES_LAYOUT["practice"])
    if not practice.collect_schema().names():  # no partition wrote practice facts
        return 0
    if scratch is not None:
        files = sorted((folder / AGGREGATES_LAYOUT["practice"]).glob("*.parquet"))
        parts = [scratch / PRACTICE_CODES / Path(f.name).stem for f in files]
        if parts and all((p / "done").is_file() for p in parts):
            return merge_practice_codes(parts, folder / PRACTICE_CODES)
    return write_practice_codes(practice, folder / PRACTICE_CODES)


def _practice_part_codes(practice: pl.DataFrame, scratch: Path, name: str) -> None:
    """Pass 1's part of the practice codes: partition ``name``'s ``practice`` as codes among
    its own values (:func:`effortlens.touch_build.practice_part_codes`) in ``scratch``,
    marked done when whole (:func:`_practice_codes` merges them)."""
    from effortlens.facts import PRACTICE_CODES
    from effortlens.touch_build import practice_part_codes

    out = scratch / PRACTICE_CODES / Path(name).stem
    shutil.rmtree(out, ignore_errors=True)
    practice_part_codes(practice, out)
    (out / "done").touch()


#: Touches per step of :func:`_habit_cells_of_codes` (a run of whole owners) and the most
#: cells one step sums in its dense arrays.
_CELL_ROWS = 1 << 22
_CELL_SPACE = 1 << 24


def _habit_cells_of_codes(codes: Path, folder: Path) -> dict[str, int] | None:
    """The habit cells (:func:`effortlens.habits.touch_cells` summed, as :func:`_habit_cells`
    writes them) from the habit touch codes in ``codes`` (every touch with a day,
    :func:`effortlens.habits.write_touch_codes`), read by owner (``by_owner/``: a run of
    whole owners, about :data:`_CELL_ROWS` touches, at a time): :class:`_CellSums`.
    ``None`` (nothing written) when a run's cells would pass :data:`_CELL_SPACE`.

    3m (2.6M touches): ~0.3 against ~1.0 CPU s for the group-bys over the touches."""
    from effortlens.habits import TOUCH_BY_OWNER, _mapped, owner_runs

    sums = _CellSums.of_keys(codes)
    if sums is None:
        return None
    by_owner = codes / "by_owner"
    starts = np.load(by_owner / "starts.npy")
    column = {name: _mapped(by_owner / f"{name}.npy") for name in TOUCH_BY_OWNER}
    runs = []
    for first, last in owner_runs(starts, rows=_CELL_ROWS, most=sums.most_owners):
        at = slice(int(starts[first]), int(starts[last]))
        counts = np.diff(starts[first : last + 1])
        runs.append(sums.of_run(first, last, counts, {n: c[at] for n, c in column.items()}))
    return sums.written(runs, codes, folder)


class _CellSums:
    """The habit cells' sums a run of whole owners at a time, from the habit touch codes by
    owner (:func:`_habit_cells_of_codes`; or as :func:`effortlens.habits.write_by_owner`
    gathers them, :func:`_touch_codes_of_ranges`): each cell one integer of the owner's
    place in the run and the touch's type and timing cell, cadence bin or sequence code,
    summed by ``numpy.bincount`` (the key tables give the cells' columns). The sums are added
    by owner, then in day order, so two builds write the same bytes (a group-by's order
    changes the last bits of the credit sums and the rows' order within a rep), whatever
    the runs."""

    def __init__(self, sizes: dict[str, int]) -> None:
        """Sums over key tables of ``sizes`` rows (by name: type, cell, bin, sequences)."""
        from effortlens.habits import TOUCH_SEQUENCE_LENGTHS

        self.sequences = [f"sequence_{k}" for k in TOUCH_SEQUENCE_LENGTHS]
        self.n_type, self.n_cell, self.n_bin = (sizes[k] for k in ("type", "cell", "bin"))
        self.width = {"timing": self.n_type * self.n_cell, "cadence": self.n_type * self.n_bin}
        self.width.update({s: sizes[s] for s in self.sequences})
        #: an owner's cells (the timing cells' four counters)
        self.per_owner = max(max(self.width.values()) * 4, 1)
        #: the most owners a run holds: its cells within _CELL_SPACE
        self.most_owners = _CELL_SPACE // self.per_owner

    @classmethod
    def of_keys(cls, codes: Path) -> _CellSums | None:
        """Sums over the key tables in ``codes``; ``None`` when one owner's cells would pass
        :data:`_CELL_SPACE`."""
        from effortlens.habits import TOUCH_SEQUENCE_LENGTHS

        names = ("type", "cell", "bin", *(f"sequence_{k}" for k in TOUCH_SEQUENCE_LENGTHS))
        sizes = {
            n: pl.scan_parquet(codes / f"{n}.keys.parquet").select(pl.len()).collect().item()
            for n in names
        }
        sums = cls(sizes)
        return sums if sums.most_owners else None

    def of_run(
        self, first: int, last: int, counts: np.ndarray, column: dict[str, np.ndarray]
    ) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
        """The cells of owners ``first`` to ``last - 1`` with ``counts`` touches each, whose
        touches' columns by owner (type, cell, bin, responded, credits, sequences) are
        ``column``: per cell, each present cell's number and its sums."""
        width = self.width
        found = {}

        def cells(cell: str, key: np.ndarray, size: int, weights: np.ndarray | None = None) -> None:
            """Each cell's sums of one run: ``key`` = cell x 4 + on contact x 2 + answered
            (timing), cell x 2 + answered (the rest)."""
            parts = 4 if cell == "timing" else 2
            counts = np.bincount(key, minlength=size * width[cell] * parts)
            counts = counts.reshape(-1, parts)
            n = counts.sum(axis=1)
            present = np.flatnonzero(n)
            sums = {"n": n[present], "responded": counts[present, 1]}
            if cell == "timing":
                sums["responded"] = sums["responded"] + counts[present, 3]
                sums["n_contact"] = counts[present, 2] + counts[present, 3]
            if weights is not None:
                credited = np.bincount(key // parts, weights=weights, minlength=size * width[cell])
                sums["credited"] = credited[present]
            found[cell] = (present + first * width[cell], sums)

        size = last - first
        owner = np.repeat(np.arange(size, dtype=np.int64), counts)
        kind = owner * self.n_type + column["type"]
        answered = column["responded"].astype(np.int64)
        bins = column["bin"]
        on_contact = bins >= 0
        key = ((kind * self.n_cell + column["cell"]) * 2 + on_contact) * 2 + answered
        cells("timing", key, size, column["credit_timing"])
        key = ((kind * self.n_bin + bins) * 2 + answered)[on_contact]
        cells("cadence", key, size, column["credit_cadence"][on_contact])
        for name in self.sequences:
            sequence = column[name]
            has = sequence >= 0
            cells(name, ((owner * width[name] + sequence) * 2 + answered)[has], size)
        return found

    def written(
        self,
        runs: list[dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]],
        codes: Path,
        folder: Path,
    ) -> dict[str, int]:
        """The habit cells of ``runs`` (:meth:`of_run`'s, in owner order) written into the
        build folder ``folder``, their columns from the key tables in ``codes``; rows per
        file."""
        from effortlens.facts import AGGREGATES_LAYOUT, ROW_GROUP, _cells

        keys = {
            name: pl.read_parquet(codes / f"{name}.keys.parquet")
            for name in ("owner", "type", "cell", "bin", *self.sequences)
        }
        width, n_type, n_cell, n_bin = self.width, self.n_type, self.n_cell, self.n_bin
        named = {
            "timing": ("n", "responded", "n_contact", "credited"),
            "cadence": ("n", "responded", "credited"),
        }
        owners = keys["owner"].select("rep_id", "team", "segment", "role")
        kinds = keys["type"].select("activity_type")
        written = {}
        for cell in width:
            found = [run[cell] for run in runs]
            index = np.concatenate([r[0] for r in found]) if found else np.zeros(0, np.int64)
            if cell in ("timing", "cadence"):
                inner = keys["cell"] if cell == "timing" else keys["bin"].select("bin_order")
                span = n_cell if cell == "timing" else n_bin
                columns = [
                    owners[index // width[cell]],
                    kinds[(index // span) % n_type],
                    inner[index % span],
                ]
            else:
                columns = [
                    owners[index // width[cell]],
                    keys[cell][index % width[cell]].select("activity_type", "sequence"),
                ]
            sums = {}
            for name in named.get(cell, ("n", "responded")):
                values = np.concatenate([r[1][name] for r in found]) if found else np.zeros(0)
                sums[name] = pl.Series(name, values).cast(
                    pl.Float64 if name == "credited" else pl.UInt32
                )
            frame = _cells(pl.concat([*columns, pl.DataFrame(sums)], how="horizontal").lazy())
            relative = AGGREGATES_LAYOUT[f"habit_{cell}"]
            _write(frame, folder / relative, row_group_size=ROW_GROUP)
            written[relative] = frame.height
        return written


def _touch_codes_of_ranges(
    codes: dict[str, Any], *, cells: Path, threads: int | None = None
) -> tuple[int, dict[str, int] | None]:
    """:func:`_touch_codes` when the day order wrote the habit touch codes' columns a range
    at a time (:func:`_touch_code_ranges`): the rest of them
    (:func:`effortlens.habits.finish_touch_codes`), the habit cells summed from each run of
    owners' columns as they are written by owner (:class:`_CellSums`: not read back), on
    ``threads`` threads (default: a core each; the totals beside the runs, two runs at once:
    100M, ~10 CPU s on one thread before, the other core idle)."""
    from effortlens.habits import finish_touch_codes, owner_runs

    layout = codes["layout"]
    sums = _CellSums(layout["sizes"])
    each_run = runs_of = None
    if sums.most_owners:  # else the cells by the group-bys (None)
        each_run = sums.of_run

        def runs_of(starts: np.ndarray) -> list[tuple[int, int]]:
            return owner_runs(starts, rows=_CELL_ROWS, most=sums.most_owners)

    runs: list[Any] = []

    def kept(first: int, last: int, counts: np.ndarray, column: dict[str, np.ndarray]) -> None:
        runs.append((first, each_run(first, last, counts, column)))

    written = finish_touch_codes(
        codes["out"],
        codes["scratch"],
        layout,
        each_run=None if each_run is None else kept,
        runs_of=runs_of,
        threads=threads or os.cpu_count() or 1,
    )
    if each_run is None:
        return written, None
    runs = [found for _, found in sorted(runs, key=lambda run: run[0])]
    return written, sums.written(runs, codes["out"], cells)


def _touch_codes(
    files: list[Path], out: Path, *, cells: Path | None = None
) -> tuple[int, dict[str, int] | None]:
    """:func:`effortlens.habits.write_touch_codes` of the day-ordered touches ``files``
    (Arrow IPC) whose text keys are ``Enum``s of their sorted values (4 bytes or less a row
    instead of a string: 100M touches fit in memory); the codes are the same as of the text
    (the dictionaries sort and rank the same), and the key tables are written back as text.
    With ``cells`` (a build folder), the habit cells summed from the codes are written there
    (:func:`_habit_cells_of_codes`) when every touch has a day (the codes leave out those
    without one) and they fit dense arrays; else ``None`` for them."""
    from effortlens.habits import write_touch_codes

    if not files:
        return 0, None
    touches = pl.scan_ipc(files)
    written = write_touch_codes(touches, out)
    for keys in sorted(out.rglob("*.keys.parquet")):
        table = pl.read_parquet(keys)
        if any(isinstance(t, pl.Enum) for t in table.dtypes):
            table.with_columns(pl.col(pl.Enum).cast(pl.String)).write_parquet(keys)
    if cells is None or written != touches.select(pl.len()).collect().item():
        return written, None
    return written, _habit_cells_of_codes(out, cells)
