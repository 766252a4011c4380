"""The enrichment as a PySpark job: the same facts as :func:`effortlens.enrich.enrich_tables`,
for data past one machine (``effortlens build --engine spark``; docs/spark.md).

PySpark is imported only inside the functions here, so ``effortlens`` stays importable without
it (``pip install "effortlens[spark]"`` and a Java 17+ runtime bring it).

What it computes, exactly as the Polars enrichment does (DESIGN §5, :mod:`effortlens.attribution`):

- **Attribution.** Each buyer action goes to the latest customer-facing activity at or before
  it on the same opportunity, else the same contact, else the same account, within
  ``attribution_window_days`` (inclusive, to the microsecond). Per level, the activities and
  the actions with that key are put in one stream, partitioned by the key and ordered by
  (time, activities before actions, row order); a running ``last`` over that order is, for an
  action, the latest activity at or before it, and **at equal times the one that comes last in
  the activities table** (the tie rule). The most specific level with a match wins.
- **Row order** is the order of the input Parquet: files sorted by path, then each file's rows
  (Spark's ``_metadata.file_path`` and ``_metadata.row_index``), the order Polars reads the same
  files in. The canonical tables must therefore be written in their loaded order (as
  ``effortlens build`` and :func:`write_canonical` write them).
- **Per-activity counts** (``n_responses``, ``response_weight``, ``verifier_responses``,
  ``responded``), **local calendar** columns (``day``, ``week`` = its Monday, ISO ``weekday``,
  ``hour``, in ``settings.timezone``), the rep's columns, and the **daily roll-up** (one row
  per rep × local day × activity type).

Only Spark SQL expressions are used (no Python UDF), so executors need no EffortLens install:
the driver needs ``effortlens`` and ``pyspark``.

The facts are written as Parquet folders (part files) under ``out_dir`` in the layout
:data:`FACTS_LAYOUT` names; :func:`read_facts` reads them back as Polars frames with the
enrichment's schemas (Spark has no unsigned integers: counts are written as Int32 and cast
back to UInt32 on reading).

Examples
--------
>>> from effortlens.settings import load_settings
>>> build_facts_spark("canonical/", "facts/", load_settings())  # doctest: +SKIP
{'activities': 'facts/activities.parquet', 'actions': 'facts/actions.parquet', ...}
>>> read_facts("facts/")["daily"].columns[:4]  # doctest: +SKIP
['rep_id', 'day', 'week', 'activity_type']
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from effortlens.attribution import LEVELS
from effortlens.coverage import GROUP_COLUMNS, UNKNOWN
from effortlens.enrich import ACTIONS_SCHEMA, ACTIVITIES_SCHEMA, DAILY_SCHEMA, REP_COLUMNS
from effortlens.peers import NO_VALUE, PEER_SEPARATOR
from effortlens.schema import TABLES
from effortlens.settings import Settings, load_settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

# --- the output layout: effortlens.facts defines it -----------------------------------------------

try:
    from effortlens.facts import FACT_SCHEMAS, FACTS_LAYOUT
except ImportError:  # pragma: no cover - a tree without the facts store
    #: Fact name -> path under a build (here always a folder of part files).
    FACTS_LAYOUT: dict[str, str] = {
        "activities": "activities.parquet",
        "actions": "actions.parquet",
        "daily": "daily.parquet",
        "reps": "reps.parquet",
    }
    FACT_SCHEMAS: dict[str, pl.Schema] = {
        "activities": ACTIVITIES_SCHEMA,
        "actions": ACTIONS_SCHEMA,
        "daily": DAILY_SCHEMA,
    }

#: reps: the canonical reps plus ``peer_group``.
REPS_SCHEMA = pl.Schema({**TABLES["reps"].columns, "peer_group": pl.String()})


def fact_schemas() -> dict[str, pl.Schema]:
    """The Polars schema of each written fact (:data:`FACTS_LAYOUT`'s names).

    Examples
    --------
    >>> fact_schemas()["activities"].names()[:3]
    ['activity_id', 'rep_id', 'ts']
    """
    return {**FACT_SCHEMAS, "reps": FACT_SCHEMAS.get("reps", REPS_SCHEMA)}


# --- Spark session and types ---------------------------------------------------------------------

_US_PER_HOUR = 3_600_000_000
#: Row order is file rank · 2^40 + row in file (a file of up to 10^12 rows).
_FILE_SHIFT = 2**40
_ORDER = "_row_order"
_EMPTY_AUTHORITY = r"^([A-Za-z][A-Za-z0-9+.-]*):///"
#: The canonical tables the enrichment reads.
ENRICHED_TABLES: tuple[str, ...] = ("reps", "activities", "buyer_actions")

_SPARK_CONF = {
    # every calendar column is computed from UTC, in the settings' time zone
    "spark.sql.session.timeZone": "UTC",
    # Datetime("us", "UTC") as Polars reads it (Spark's default INT96 is not)
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


def local_session(
    *, cores: int = 2, shuffle_partitions: int = 4, short_jobs: bool = False
) -> SparkSession:
    """A Spark session on this machine (``local[cores]``, UI off), for tests and small data.

    ``short_jobs`` starts the JVM with the quick JIT only and the serial collector: about half
    the CPU for a job of seconds (the tests), slower code for long ones. It applies only when
    this call starts the JVM.

    Examples
    --------
    >>> spark = local_session(cores=2)  # doctest: +SKIP
    """
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("effortlens-build")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(cores))
        .config("spark.driver.memory", "2g")
    )
    if short_jobs:
        builder = builder.config(
            "spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
        )
    for key, value in _SPARK_CONF.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _spark_type(dtype: pl.DataType):
    from pyspark.sql import types as T

    if dtype == pl.String:
        return T.StringType()
    if isinstance(dtype, pl.Datetime):
        return T.TimestampType()
    if dtype == pl.Date:
        return T.DateType()
    if dtype == pl.Float64:
        return T.DoubleType()
    if dtype == pl.Boolean:
        return T.BooleanType()
    if dtype == pl.Int8:
        return T.ByteType()
    if dtype in (pl.UInt32, pl.Int32):
        return T.IntegerType()
    if dtype in (pl.Int64, pl.UInt64):
        return T.LongType()
    raise TypeError(f"no Spark type for {dtype}")


# --- reading the canonical tables ---------------------------------------------------------------


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def read_canonical(spark: SparkSession, input_dir: str | Path) -> dict[str, DataFrame]:
    """The canonical tables the enrichment reads (:data:`ENRICHED_TABLES`) under
    ``input_dir``, each with a row-order column ``_row_order``.

    A table is ``<name>.parquet`` (a file or a folder of part files) or a folder ``<name>``;
    missing tables are empty. Columns are selected and cast to the canonical schema (missing
    optional ones are null). The rows must be valid already (as :func:`load_folder` leaves
    them): this job enriches, it does not validate.

    Examples
    --------
    >>> tables = read_canonical(spark, "s3a://bucket/effortlens/canonical")  # doctest: +SKIP
    """
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    base = str(input_dir)
    out = {}
    for name in ENRICHED_TABLES:
        spec = TABLES[name]
        frame = None
        for candidate in (f"{name}.parquet", name):
            path = _join(base, candidate)
            if "://" not in base and not Path(path).exists():
                continue
            try:
                frame = spark.read.parquet(path)
                break
            except AnalysisException:
                continue
        columns = [
            (F.col(c) if frame is not None and c in frame.columns else F.lit(None))
            .cast(_spark_type(dtype))
            .alias(c)
            for c, dtype in spec.columns.items()
        ]
        if frame is None:
            schema = T.StructType(
                [T.StructField(c, _spark_type(d), True) for c, d in spec.columns.items()]
                + [T.StructField(_ORDER, T.LongType(), True)]
            )
            out[name] = spark.createDataFrame([], schema)
            continue
        # the files' order from the listing (no job); a file the listing missed fails loudly
        # (the listing says file:///x where the row says file:/x: both are cut to file:/x)
        files = sorted(re.sub(_EMPTY_AUTHORITY, r"\1:/", f) for f in frame.inputFiles())
        path = F.regexp_replace("_metadata.file_path", _EMPTY_AUTHORITY, "$1:/")
        rank = F.array_position(F.array(*(F.lit(f) for f in files)), path)
        rank = F.when(rank > 0, rank - 1).otherwise(
            F.raise_error(F.concat(F.lit("file not in the listing: "), path))
        )
        out[name] = frame.select(
            *columns, (rank * _FILE_SHIFT + F.col("_metadata.row_index")).alias(_ORDER)
        )
    return out


def write_canonical(tables: Mapping[str, pl.DataFrame], folder: str | Path) -> Path:
    """Write loaded canonical tables as ``<name>.parquet`` files, in their order, for the job.

    Examples
    --------
    >>> import polars as pl, tempfile
    >>> folder = write_canonical({"reps": pl.DataFrame({"rep_id": ["r1"]})}, tempfile.mkdtemp())
    >>> sorted(p.name for p in folder.iterdir())
    ['reps.parquet']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.write_parquet(folder / f"{name}.parquet")
    return folder


# --- the enrichment -----------------------------------------------------------------------------


def _local_calendar(ts: Column, zone: Column, *, hour: bool) -> list[Column]:
    """``day``, ``week`` (its Monday) and, with ``hour``, ISO ``weekday`` and ``hour`` of ``ts``
    in the time zone ``zone`` names (the session time zone is UTC: see :data:`_SPARK_CONF`)."""
    from pyspark.sql import functions as F

    local = F.from_utc_timestamp(ts, zone)
    day = F.to_date(local)
    columns = [day.alias("day"), F.date_sub(day, F.weekday(day)).alias("week")]
    if hour:
        columns += [
            (F.weekday(day) + 1).cast("byte").alias("weekday"),
            F.hour(local).cast("byte").alias("hour"),
        ]
    return columns


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _rep_zone(reps: DataFrame, *, settings: Settings) -> Column:
    """The zone of a rep's local calendar: the reps' ``timezone`` when it is a real IANA zone,
    else the settings' (as :func:`effortlens.enrich.enrich_tables`; zones checked here, on the
    driver: the reps' distinct zones are few)."""
    from pyspark.sql import functions as F

    zones = reps.select("timezone").where(F.col("timezone").isNotNull()).distinct().collect()
    valid = sorted(z for (z,) in zones if z != settings.timezone and _is_zone(z))
    if not valid:
        return F.lit(settings.timezone)
    return F.when(F.col("timezone").isin(valid), F.col("timezone")).otherwise(
        F.lit(settings.timezone)
    )


def _attribution(
    activities: DataFrame, actions: DataFrame, *, settings: Settings
) -> DataFrame | None:
    """Per attributed action: ``_row_order`` (the action's), ``_activity_order``, ``_lag_us``
    and ``attribution_level``; ``None`` when there is nothing to attribute to."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    facing = list(settings.customer_facing_types)
    window_us = int(settings.attribution_window_days) * 24 * _US_PER_HOUR
    candidates = activities.filter(F.col("activity_type").isin(facing)) if facing else None
    if candidates is None:
        return None
    matches = []
    for code, (_, key) in enumerate(LEVELS):
        stream = (
            candidates.filter(F.col(key).isNotNull())
            .select(
                F.col(key).alias("_key"),
                F.unix_micros("ts").alias("_t"),
                F.lit(0).alias("_kind"),  # activities first at equal times: "at or before"
                F.col(_ORDER),
            )
            .unionByName(
                actions.filter(F.col(key).isNotNull()).select(
                    F.col(key).alias("_key"),
                    F.unix_micros("ts").alias("_t"),
                    F.lit(1).alias("_kind"),
                    F.col(_ORDER),
                )
            )
        )
        # the running last activity: latest time, and at equal times the later row
        running = (
            Window.partitionBy("_key")
            .orderBy("_t", "_kind", _ORDER)
            .rowsBetween(Window.unboundedPreceding, Window.currentRow)
        )
        latest = F.last(
            F.when(F.col("_kind") == 0, F.struct(F.col("_t").alias("t"), F.col(_ORDER).alias("o"))),
            ignorenulls=True,
        ).over(running)
        matched = (
            stream.withColumn("_m", latest)
            .filter((F.col("_kind") == 1) & F.col("_m").isNotNull())
            .select(
                F.col(_ORDER),
                F.struct(
                    F.lit(code).alias("code"),
                    F.col("_m.o").alias("activity_order"),
                    (F.col("_t") - F.col("_m.t")).alias("lag_us"),
                ).alias("_match"),
            )
            .filter(F.col("_match.lag_us") <= window_us)
        )
        matches.append(matched)
    union = matches[0]
    for more in matches[1:]:
        union = union.unionByName(more)
    level_name = F.element_at(
        F.array(*(F.lit(level) for level, _ in LEVELS)), F.col("_best.code") + 1
    )
    return (
        union.groupBy(_ORDER)
        .agg(F.min("_match").alias("_best"))  # the most specific level (smallest code)
        .select(
            F.col(_ORDER),
            F.col("_best.activity_order").alias("_activity_order"),
            F.col("_best.lag_us").alias("_lag_us"),
            level_name.alias("attribution_level"),
        )
    )


def _rep_facts(reps: DataFrame, *, settings: Settings) -> DataFrame:
    """Reps with a missing or blank team, segment or role as ``(unknown)``
    (:func:`effortlens.coverage.with_known_groups`), and ``peer_group``."""
    from pyspark.sql import functions as F

    known = {}
    for column in GROUP_COLUMNS:
        value = F.regexp_replace(F.col(column).cast("string"), r"(?U)^\s+|\s+$", "")
        known[column] = F.when(value.isNull() | (value == ""), F.lit(UNKNOWN)).otherwise(value)
    reps = reps.withColumns(known)
    parts = [F.coalesce(F.col(k).cast("string"), F.lit(NO_VALUE)) for k in settings.peer_keys]
    return reps.withColumn("peer_group", F.concat_ws(PEER_SEPARATOR, *parts))


def enrich_frames(
    tables: Mapping[str, DataFrame], *, settings: Settings
) -> tuple[dict[str, DataFrame], list[DataFrame]]:
    """The enriched facts as Spark frames, each with ``_row_order`` (the output order).

    The attribution and the enriched activities are persisted (memory and disk): each is read
    twice.

    Parameters
    ----------
    tables
        As :func:`read_canonical` returns them.
    settings
        Customer-facing types, attribution window, time zone and peer keys.

    Returns
    -------
    facts : dict[str, pyspark.sql.DataFrame]
        ``activities`` and ``actions`` (every canonical and added column), ``daily``, ``reps``.
    persisted : list[pyspark.sql.DataFrame]
        The frames persisted on the way: unpersist them once the facts are written.

    Examples
    --------
    >>> facts, persisted = enrich_frames(tables, settings=settings)  # doctest: +SKIP
    """
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    facing = list(settings.customer_facing_types)
    activities = tables["activities"]
    actions = tables["buyer_actions"]
    reps = _rep_facts(tables["reps"], settings=settings)
    # one row per rep_id, the first in the reps table's order, as the Polars enrichment keeps
    first = Window.partitionBy("rep_id").orderBy(_ORDER)
    rep_columns = (
        reps.withColumn("_n", F.row_number().over(first))
        .filter(F.col("_n") == 1)
        .select(
            "rep_id",
            *REP_COLUMNS,
            F.col(_ORDER).alias("_rep_order"),
            _rep_zone(reps, settings=settings).alias("_zone"),
        )
    )
    # the settings' zone for activities of reps not in reps and for buyer-initiated actions
    zone = F.coalesce("_zone", F.lit(settings.timezone))

    attributed = _attribution(activities, actions, settings=settings)
    if attributed is not None:
        attributed = attributed.persist(StorageLevel.MEMORY_AND_DISK)
        credited = activities.select(
            F.col(_ORDER).alias("_activity_order"), "activity_id", "rep_id"
        )
        enriched_actions = (
            actions.join(attributed, _ORDER, "left")
            .join(credited, "_activity_order", "left")
            .join(rep_columns.select("rep_id", "_zone"), "rep_id", "left")
        )
        earned = (
            attributed.join(actions.select(_ORDER, "weight", "is_verifier"), _ORDER)
            .groupBy("_activity_order")
            .agg(
                F.count(F.lit(1)).cast("int").alias("n_responses"),
                F.sum(F.coalesce("weight", F.lit(0.0))).alias("response_weight"),
                F.sum(F.coalesce(F.col("is_verifier").cast("int"), F.lit(0)))
                .cast("int")
                .alias("verifier_responses"),
            )
            .withColumnRenamed("_activity_order", _ORDER)
        )
    else:
        enriched_actions = actions.select(
            "*",
            F.lit(None).cast("string").alias("activity_id"),
            F.lit(None).cast("string").alias("rep_id"),
            F.lit(None).cast("string").alias("attribution_level"),
            F.lit(None).cast("long").alias("_lag_us"),
            F.lit(None).cast("long").alias("_activity_order"),
            F.lit(None).cast("string").alias("_zone"),
        )
        earned = None
    enriched_actions = enriched_actions.select(
        *TABLES["buyer_actions"].columns,
        "activity_id",
        "attribution_level",
        "rep_id",
        (F.col("_lag_us") / F.lit(float(_US_PER_HOUR))).alias("lag_hours"),
        F.col("_activity_order").isNull().alias("buyer_initiated"),
        # an action's local day is its credited rep's (buyer-initiated: the settings' zone)
        *_local_calendar(F.col("ts"), zone, hour=False),
        _ORDER,
    )

    with_counts = activities if earned is None else activities.join(earned, _ORDER, "left")
    n_responses = (F.coalesce("n_responses", F.lit(0)) if earned is not None else F.lit(0)).cast(
        "int"
    )
    enriched_activities = (
        with_counts.join(rep_columns, "rep_id", "left")
        .select(
            *TABLES["activities"].columns,
            (F.col("activity_type").isin(facing) if facing else F.lit(False)).alias(
                "is_customer_facing"
            ),
            (F.col("duration_min") / 60).alias("hours"),
            n_responses.alias("n_responses"),
            (F.coalesce("response_weight", F.lit(0.0)) if earned is not None else F.lit(0.0))
            .cast("double")
            .alias("response_weight"),
            (F.coalesce("verifier_responses", F.lit(0)) if earned is not None else F.lit(0))
            .cast("int")
            .alias("verifier_responses"),
            (n_responses > 0).alias("responded"),
            *_local_calendar(F.col("ts"), zone, hour=True),
            *REP_COLUMNS,
            "_rep_order",
            _ORDER,
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )

    hours = F.coalesce("hours", F.lit(0.0))
    daily = (
        enriched_activities.groupBy("rep_id", "day", "activity_type")
        .agg(
            F.count(F.lit(1)).cast("int").alias("activities"),
            F.sum(hours).alias("hours"),
            F.sum(F.col("responded").cast("int")).cast("int").alias("responded"),
            F.sum("response_weight").alias("response_weight"),
            F.sum(F.when(F.col("responded"), F.lit(0.0)).otherwise(hours)).alias("no_impact_hours"),
        )
        .join(rep_columns, "rep_id", "left")
        .select(
            "rep_id",
            "day",
            F.date_sub("day", F.weekday("day")).alias("week"),
            "activity_type",
            (F.col("activity_type").isin(facing) if facing else F.lit(False)).alias(
                "is_customer_facing"
            ),
            "activities",
            "hours",
            "responded",
            "response_weight",
            "no_impact_hours",
            *REP_COLUMNS,
            # the Polars order: reps in the reps table's order (unknown reps last, by id), day,
            # activity type
            F.struct(
                F.col("_rep_order").isNull(),
                F.col("_rep_order"),
                "rep_id",
                "day",
                "activity_type",
            ).alias(_ORDER),
        )
    )
    facts = {
        "activities": enriched_activities.drop("_rep_order"),
        "actions": enriched_actions,
        "daily": daily,
        "reps": reps,
    }
    persisted = [enriched_activities] + ([attributed] if attributed is not None else [])
    return facts, persisted


# --- writing and reading the facts --------------------------------------------------------------


def write_facts(facts: Mapping[str, DataFrame], out_dir: str | Path) -> dict[str, str]:
    """Write ``facts`` (from :func:`enrich_frames`) in :data:`FACTS_LAYOUT`, rows in order.

    Each fact is sorted by ``_row_order`` (a range partitioning: part files in order) and
    written as a Parquet folder, replacing what was there. Returns fact name -> path.
    """
    from pyspark.sql import functions as F

    base = str(out_dir)
    schemas = fact_schemas()
    written = {}
    for name, relative in FACTS_LAYOUT.items():
        path = _join(base, relative)
        columns = [F.col(c).cast(_spark_type(dtype)).alias(c) for c, dtype in schemas[name].items()]
        (
            facts[name]
            .orderBy(_ORDER)
            .select(*columns)
            .write.mode("overwrite")
            .option("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
            .option("compression", "zstd")
            .parquet(path)
        )
        written[name] = path
    return written


def _parts(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else [folder]


def _as_schema(frame: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    return frame.select(pl.col(c).cast(dtype) for c, dtype in schema.items())


def read_facts(out_dir: str | Path) -> dict[str, pl.DataFrame]:
    """The facts :func:`write_facts` wrote (a local folder), as Polars frames in the
    enrichment's schemas (:func:`fact_schemas`) and in row order.

    Examples
    --------
    >>> facts = read_facts("facts/")  # doctest: +SKIP
    >>> facts["activities"].schema == fact_schemas()["activities"]  # doctest: +SKIP
    True
    """
    out = {}
    for name, relative in FACTS_LAYOUT.items():
        schema = fact_schemas()[name]
        parts = _parts(Path(out_dir) / relative)
        frames = [_as_schema(pl.scan_parquet(p), schema) for p in parts]
        out[name] = pl.concat(frames).collect() if frames else pl.DataFrame(schema=schema)
    return out


def conform_facts(spark_dir: str | Path, folder: str | Path) -> dict[str, int]:
    """Rewrite the facts Spark wrote under ``spark_dir`` into ``folder`` with the exact
    Polars dtypes (UInt32 counts), one file per Spark part, in order; returns rows per fact.

    Spark has no unsigned integers; a build read by :mod:`effortlens.facts` checks the dtypes.
    Each part is streamed (``sink_parquet``), so memory stays bounded.
    """
    rows = {}
    for name, relative in FACTS_LAYOUT.items():
        schema = fact_schemas()[name]
        target = Path(folder) / relative
        if target.is_dir():
            shutil.rmtree(target)  # a previous build's parts
        target.mkdir(parents=True)
        total = 0
        for i, part in enumerate(_parts(Path(spark_dir) / relative)):
            out = target / f"part-{i:05d}.parquet"
            _as_schema(pl.scan_parquet(part), schema).sink_parquet(out, statistics=True)
            total += pl.scan_parquet(out).select(pl.len()).collect().item()
        rows[relative] = total
    return rows


def write_build_facts(
    tables: Mapping[str, pl.DataFrame],
    folder: str | Path,
    *,
    settings: Settings,
    spark: SparkSession | None = None,
) -> dict[str, int]:
    """Enrich loaded canonical ``tables`` on Spark and write the facts under ``folder`` in
    :data:`FACTS_LAYOUT` with the exact schemas; returns rows per fact path.

    What ``effortlens build --engine spark`` runs in place of the Polars enrichment: the
    tables (validated by :func:`effortlens.adapters.load_any`, in their loaded order) go to a
    temporary folder as Parquet, the Spark job enriches them, and the facts are conformed to
    the Polars dtypes (:func:`conform_facts`).

    Examples
    --------
    >>> rows = write_build_facts(data.tables, "build/", settings=settings)  # doctest: +SKIP
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".spark-", dir=folder))
    try:
        canonical = write_canonical(
            {name: tables[name] for name in ENRICHED_TABLES if name in tables},
            scratch / "canonical",
        )
        build_facts_spark(canonical, scratch / "facts", settings, spark=spark)
        return conform_facts(scratch / "facts", folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def build_facts_spark(
    input_dir: str | Path,
    out_dir: str | Path,
    settings: Settings | None = None,
    *,
    spark: SparkSession | None = None,
) -> dict[str, str]:
    """Enrich the canonical tables under ``input_dir`` on Spark and write the facts to
    ``out_dir``.

    Parameters
    ----------
    input_dir
        A folder (local, ``s3a://``, ``abfss://``, ``dbfs:/``…) of canonical tables as Parquet,
        valid and in their loaded order (see :func:`read_canonical`).
    out_dir
        Where the facts go (:data:`FACTS_LAYOUT`); existing facts there are replaced.
    settings
        Default: the default settings.
    spark
        The session; default the active one (``spark-submit``, Databricks), else a
        :func:`local_session`. Its SQL time zone is set to UTC and timestamps are written as
        microseconds (:data:`_SPARK_CONF`).

    Returns
    -------
    dict[str, str]
        Fact name -> the path written.

    Examples
    --------
    >>> build_facts_spark("s3a://bucket/canonical", "s3a://bucket/facts")  # doctest: +SKIP
    """
    from pyspark.sql import SparkSession

    settings = settings if settings is not None else load_settings()
    if spark is None:
        spark = SparkSession.getActiveSession() or local_session()
    for key, value in _SPARK_CONF.items():
        spark.conf.set(key, value)
    facts, persisted = enrich_frames(read_canonical(spark, input_dir), settings=settings)
    try:
        return write_facts(facts, out_dir)
    finally:
        for frame in persisted:
            frame.unpersist()


def main(argv: list[str] | None = None) -> int:
    """``spark-submit spark_build.py INPUT OUT [--settings FILE]`` (docs/spark.md)."""
    parser = argparse.ArgumentParser(
        prog="effortlens-spark", description="Enrich canonical Parquet tables on Spark."
    )
    parser.add_argument("input_dir", help="folder of canonical tables (<table>.parquet)")
    parser.add_argument("out_dir", help="where the facts are written")
    parser.add_argument("--settings", help="a settings TOML file (default: the defaults)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    written = build_facts_spark(args.input_dir, args.out_dir, load_settings(args.settings))
    for name, path in written.items():
        print(f"{name}: {path}")
    print(f"spark build: {time.perf_counter() - started:.1f} s")
    return 0


def build_command(args: argparse.Namespace) -> int:
    """``effortlens build DATA --engine spark``: validate with Polars, enrich on Spark.

    The facts go into the build store (:func:`effortlens.facts.open_build`) when it takes an
    ``engine``; otherwise into ``<cache dir>/spark/<folder hash>/`` in :data:`FACTS_LAYOUT`.
    The session is a :func:`local_session` unless one is active (``spark-submit``).
    """
    from effortlens import facts
    from effortlens.settings import settings_for_folder

    def say(message: str) -> None:
        print(f"effortlens: {message}", file=sys.stderr)

    folder = Path(args.data_dir).expanduser()
    settings = settings_for_folder(folder, getattr(args, "settings", None))
    started = time.perf_counter()
    if "engine" in inspect.signature(facts.open_build).parameters:
        built = facts.open_build(
            folder,
            settings=settings,
            mapping=args.mapping,
            format=args.format,
            cache_dir=getattr(args, "cache_dir", None),
            force=getattr(args, "force", False),
            say=say,
            engine="spark",
        )
        state = f"built on Spark ({built.rebuilt})" if built.rebuilt else "current (nothing to do)"
        print(f"{args.data_dir}: {state} in {time.perf_counter() - started:.1f} s")
        print(f"facts: {built.path}")
        return 0
    from effortlens.adapters import load_any
    from effortlens.cache import default_cache_dir

    data = load_any(folder, settings=settings, mapping=args.mapping, format=args.format)
    name = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:24]
    cache = getattr(args, "cache_dir", None)
    out = Path(cache if cache else default_cache_dir()) / "spark" / name
    rows = write_build_facts(data.tables, out, settings=settings)
    if getattr(args, "json", False):
        print(json.dumps({"facts": str(out), "engine": "spark", "rows": rows}, indent=2))
    else:
        print(f"{args.data_dir}: enriched on Spark in {time.perf_counter() - started:.1f} s")
        print(f"facts: {out} ({', '.join(f'{k} {v:,} rows' for k, v in rows.items())})")
        say("this build store has no Spark engine yet: the apps do not read these facts")
        print(data.report.to_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
