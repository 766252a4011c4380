"""Straightforward pandas and DuckDB versions of attribution + weekly ROE, for the benchmark.

Both follow DESIGN §5 literally, as an analyst would write them: three as-of joins (deal,
contact, account), keep the most specific match within the window (inclusive), count each
activity's attributed actions, then sum per team × local week. Each returns the same weekly
table as EffortLens (``team``, ``week``, ``activities``, ``hours``, ``responded``,
``response_weight``) so the benchmark can check that all three agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

LEVELS = ("opportunity_id", "contact_id", "account_id")
WEEKLY_COLUMNS = ("team", "week", "activities", "hours", "responded", "response_weight")


def weekly_duckdb(
    tables: dict[str, pl.DataFrame],
    *,
    customer_facing: Sequence[str],
    window_days: int,
    timezone: str,
    threads: int = 2,
) -> pl.DataFrame:
    """Attribution + weekly ROE per team in DuckDB (ASOF joins), from Arrow tables."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads={int(threads)}")
    con.execute(f"SET TimeZone='{timezone}'")
    acts = tables["activities"].to_arrow()  # noqa: F841  (DuckDB reads the local variables)
    actions = tables["buyer_actions"].to_arrow()  # noqa: F841
    reps = tables["reps"].select("rep_id", "team").to_arrow()  # noqa: F841
    types = ", ".join(f"'{t}'" for t in customer_facing)
    # whole hours: with a session time zone, DuckDB adds "1 DAY" as a calendar day (23 or 25 h
    # across DST), while the window is window_days x 24 h
    window = f"INTERVAL {int(window_days) * 24} HOUR"
    asof = "\n".join(
        f"""{name} AS (
            SELECT b.action_id, c.activity_id, c.ts AS activity_ts
            FROM actions b ASOF JOIN cf c ON b.{key} = c.{key} AND b.ts >= c.ts),"""
        for name, key in zip(("by_deal", "by_contact", "by_account"), LEVELS, strict=True)
    )
    sql = f"""
        WITH cf AS (
            SELECT activity_id, ts, opportunity_id, contact_id, account_id
            FROM acts WHERE activity_type IN ({types})),
        {asof}
        credited AS (
            SELECT b.weight, CASE
                WHEN d.activity_ts >= b.ts - {window} THEN d.activity_id
                WHEN c.activity_ts >= b.ts - {window} THEN c.activity_id
                WHEN a.activity_ts >= b.ts - {window} THEN a.activity_id END AS activity_id
            FROM actions b
            LEFT JOIN by_deal d USING (action_id)
            LEFT JOIN by_contact c USING (action_id)
            LEFT JOIN by_account a USING (action_id)),
        per_activity AS (
            SELECT activity_id, count(*) AS n, sum(weight) AS w
            FROM credited WHERE activity_id IS NOT NULL GROUP BY activity_id)
        SELECT r.team,
               CAST(date_trunc('week', timezone('{timezone}', x.ts)) AS DATE) AS week,
               count(*) AS activities,
               sum(x.duration_min / 60) AS hours,
               count(p.n) AS responded,
               coalesce(sum(p.w), 0) AS response_weight
        FROM acts x
        LEFT JOIN per_activity p USING (activity_id)
        LEFT JOIN reps r USING (rep_id)
        WHERE x.activity_type IN ({types})
        GROUP BY ALL
    """
    out = pl.from_arrow(con.sql(sql).to_arrow_table())
    con.close()
    return canonical(out)


def weekly_pandas(
    tables: dict[str, pl.DataFrame],
    *,
    customer_facing: Sequence[str],
    window_days: int,
    timezone: str,
) -> pl.DataFrame:
    """Attribution + weekly ROE per team in pandas (``merge_asof`` per level)."""
    import pandas as pd

    acts = tables["activities"].to_pandas()
    actions = tables["buyer_actions"].to_pandas()
    reps = tables["reps"].select("rep_id", "team").to_pandas()
    window = pd.Timedelta(days=window_days)

    cf = acts[acts["activity_type"].isin(list(customer_facing))]
    cf = cf.reset_index(drop=True)
    credited = pd.Series(pd.NA, index=actions.index, dtype="object")
    for key in LEVELS:
        pending = actions[credited.isna() & actions[key].notna()]
        right = cf.loc[cf[key].notna(), ["ts", key, "activity_id"]].sort_values("ts", kind="stable")
        left = pending[["ts", key]].reset_index().sort_values("ts", kind="stable")
        matched = pd.merge_asof(
            left,
            right,
            on="ts",
            by=key,
            direction="backward",
            tolerance=window,
            allow_exact_matches=True,
        ).dropna(subset=["activity_id"])
        credited.loc[matched["index"].to_numpy()] = matched["activity_id"].to_numpy()

    earned = (
        actions.assign(activity_id=credited)
        .dropna(subset=["activity_id"])
        .groupby("activity_id")
        .agg(n=("action_id", "size"), w=("weight", "sum"))
    )
    cf = cf.merge(earned, left_on="activity_id", right_index=True, how="left")
    cf = cf.merge(reps, on="rep_id", how="left")
    local = cf["ts"].dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize()
    cf["week"] = (local - pd.to_timedelta(local.dt.day_of_week, unit="D")).dt.date
    cf["hours"] = cf["duration_min"] / 60
    cf["responded"] = cf["n"].notna()
    cf["w"] = cf["w"].fillna(0.0)
    out = (
        cf.groupby(["team", "week"], dropna=False)
        .agg(
            activities=("activity_id", "size"),
            hours=("hours", "sum"),
            responded=("responded", "sum"),
            response_weight=("w", "sum"),
        )
        .reset_index()
    )
    return canonical(pl.from_pandas(out))


def canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Same column order, types and row order for every implementation."""
    return frame.select(
        pl.col("team").cast(pl.String),
        pl.col("week").cast(pl.Date),
        pl.col("activities").cast(pl.Int64),
        pl.col("hours").cast(pl.Float64),
        pl.col("responded").cast(pl.Int64),
        pl.col("response_weight").cast(pl.Float64),
    ).sort("team", "week", nulls_last=True)
