"""Charts of return on effort: weekly trend with rolling mean, ROE by slice, no-impact effort.

Each builder takes the aggregated frame of the matching :mod:`effortlens.roe` function and
returns an Altair chart; nothing is displayed.

Examples
--------
>>> from effortlens.roe import roe_trend
>>> roe_trend_chart(roe_trend(enriched.daily, by=["team"]), by="team")  # doctest: +SKIP
"""

from __future__ import annotations

import functools

import altair as alt
import polars as pl

import effortlens.charts.theme  # noqa: F401  (registers and enables the project theme)
from effortlens.charts.theme import PALETTE, aggregated, placeholder, with_data
from effortlens.roe import METRIC_LABELS

#: Metrics that are shares, shown as percentages.
_SHARES = {"response_rate", "no_impact_share"}
_RATIOS = ("response_rate", "roe_per_100", "roe_per_hour", "no_impact_share")
#: The two parts of a no-impact bar, in stacking order.
_OUTCOMES = ["no buyer action", "earned a buyer action"]


def _format(metric: str) -> str:
    return ".1%" if metric in _SHARES else ",.2f" if metric == "roe_per_hour" else ",.1f"


def _metric(metric: str) -> str:
    if metric not in _RATIOS:
        raise ValueError(f"metric must be one of {list(_RATIOS)}, got {metric!r}")
    return metric


def roe_trend_chart(
    trend: pl.DataFrame,
    *,
    metric: str = "roe_per_100",
    period: str = "week",
    by: str | None = None,
    title: str | None = None,
) -> alt.LayerChart:
    """A metric per period (thin line and dots) under its rolling mean (thick line).

    Parameters
    ----------
    trend
        :func:`effortlens.roe.roe_trend` output (with ``rolling_`` columns).
    metric
        ``roe_per_100``, ``response_rate``, ``roe_per_hour`` or ``no_impact_share``.
    period
        The period column of ``trend`` (``week``, ``day``, ``month``, ``quarter``).
    by
        The slice column ``trend`` was computed by, one colour per slice; ``None`` for one line.
    title
        Chart title; default names the metric.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> t = pl.DataFrame({"week": [dt.date(2024, 3, 4)], "roe_per_100": [12.0],
    ...     "rolling_roe_per_100": [12.0], "activities": [50], "rolling_activities": [50]})
    >>> roe_trend_chart(t).to_dict()["layer"][0]["mark"]["type"]
    'line'
    """
    metric = _metric(metric)
    return with_data(_trend_layout(metric, period, by, title), trend=aggregated(trend))


@functools.lru_cache(maxsize=64)
def _trend_layout(metric: str, period: str, by: str | None, title: str | None) -> alt.LayerChart:
    """:func:`roe_trend_chart` without its data (made once per set of options)."""
    label = METRIC_LABELS[metric]
    fmt = _format(metric)
    colour = (
        alt.Color(f"{by}:N", title=by.replace("_", " ").capitalize())
        if by
        else alt.value(PALETTE["primary"])
    )
    tooltip = [
        alt.Tooltip(f"{period}:T", title=period.capitalize(), format="%Y-%m-%d"),
        *([alt.Tooltip(f"{by}:N")] if by else []),
        alt.Tooltip(f"{metric}:Q", title=label, format=fmt),
        alt.Tooltip(f"rolling_{metric}:Q", title=f"{label}, rolling", format=fmt),
        alt.Tooltip("activities:Q", title="Customer-facing activities", format=","),
        alt.Tooltip("rolling_activities:Q", title="Activities in the rolling window", format=","),
    ]
    base = alt.Chart(placeholder("trend")).encode(
        x=alt.X(f"{period}:T", title=None),
        color=colour,
        tooltip=tooltip,
    )
    y_axis = alt.Axis(format=".0%" if metric in _SHARES else fmt)
    per_period = base.mark_line(strokeWidth=1, opacity=0.45, point=True).encode(
        y=alt.Y(f"{metric}:Q", title=label, axis=y_axis)
    )
    rolling = base.mark_line(strokeWidth=3).encode(y=alt.Y(f"rolling_{metric}:Q"))
    return alt.layer(per_period, rolling).properties(
        title=alt.Title(
            title or f"{label} by {period}",
            subtitle="thin: each period · thick: rolling mean (ratio of sums)",
        )
    )


def roe_by_chart(
    table: pl.DataFrame,
    *,
    by: str,
    metric: str = "roe_per_100",
    title: str | None = None,
    select: str | None = None,
) -> alt.LayerChart:
    """Horizontal bars of a metric per slice, best first, with the overall value as a rule.

    Parameters
    ----------
    table
        :func:`effortlens.roe.roe_by` output with one slice column ``by``.
    by
        The slice column (``rep_id``, ``team``, ``activity_type``…).
    metric
        ``roe_per_100``, ``response_rate``, ``roe_per_hour`` or ``no_impact_share``.
    title
        Chart title; default names the metric and the slice.
    select
        A column of ``table``: clicking a bar then sets the point selection ``picked`` to that
        bar's value of the column (e.g. ``rep_id`` behind bars labelled by ``rep_name``).

    Examples
    --------
    >>> import polars as pl
    >>> from effortlens.roe import roe_by
    >>> acts = pl.DataFrame({"team": ["A", "B"], "is_customer_facing": [True, True],
    ...     "hours": [1.0, 1.0], "responded": [True, False], "response_weight": [2.0, 0.0]})
    >>> spec = roe_by_chart(roe_by(acts, by=["team"]), by="team").to_dict()
    >>> spec["layer"][0]["mark"]["type"], spec["layer"][1]["mark"]["type"]
    ('bar', 'rule')
    """
    metric = _metric(metric)
    frame = aggregated(table)
    totals = frame.select(
        pl.col("activities").sum(),
        pl.col("responded").sum(),
        pl.col("hours").sum(),
        pl.col("response_weight").sum(),
    ).row(0, named=True)
    n, hours, weight = totals["activities"], totals["hours"], totals["response_weight"]
    overall = {
        "response_rate": totals["responded"] / n if n else None,
        "roe_per_100": 100 * weight / n if n else None,
        "roe_per_hour": weight / hours if hours else None,
        "no_impact_share": 1 - totals["responded"] / n if n else None,
    }[metric]
    return with_data(
        _by_layout(by, metric, title, select),
        bars=frame,
        overall=pl.DataFrame({"overall": [overall]}, schema={"overall": pl.Float64}),
    )


@functools.lru_cache(maxsize=64)
def _by_layout(by: str, metric: str, title: str | None, select: str | None) -> alt.LayerChart:
    """:func:`roe_by_chart` without its data (made once per set of options)."""
    label = METRIC_LABELS[metric]
    fmt = _format(metric)
    bars = (
        alt.Chart(placeholder("bars"))
        .mark_bar(color=PALETTE["primary"])
        .encode(
            x=alt.X(f"{metric}:Q", title=label, axis=alt.Axis(format=fmt)),
            y=alt.Y(f"{by}:N", title=None, sort="-x"),
            tooltip=[
                alt.Tooltip(f"{by}:N", title=by.replace("_", " ").capitalize()),
                alt.Tooltip(f"{metric}:Q", title=label, format=fmt),
                alt.Tooltip("activities:Q", title="Customer-facing activities", format=","),
                alt.Tooltip("hours:Q", title="Customer-facing hours", format=",.1f"),
                alt.Tooltip("response_rate:Q", title="Response rate", format=".1%"),
                alt.Tooltip("roe_per_100:Q", title="ROE per 100 activities", format=",.1f"),
                alt.Tooltip("roe_per_hour:Q", title="ROE per hour", format=",.2f"),
            ],
        )
    )
    if select is not None:
        picked = alt.selection_point(name="picked", fields=[select], on="click")
        bars = bars.add_params(picked).encode(
            opacity=alt.condition(picked, alt.value(1.0), alt.value(0.55))
        )
    rule = (
        alt.Chart(placeholder("overall"))
        .mark_rule(color=PALETTE["neutral"], strokeDash=[4, 3], strokeWidth=2)
        .encode(
            x="overall:Q",
            tooltip=[alt.Tooltip("overall:Q", title=f"{label}, all shown", format=fmt)],
        )
    )
    return alt.layer(bars, rule).properties(
        title=alt.Title(
            title or f"{label} by {by.replace('_', ' ')}",
            subtitle="dashed line: all slices shown together",
        ),
        height=alt.Step(22),
    )


def no_impact_chart(
    table: pl.DataFrame,
    *,
    by: str,
    measure: str = "activities",
    title: str | None = None,
) -> alt.Chart:
    """Stacked bars per slice: effort that earned a buyer action against effort that did not.

    Parameters
    ----------
    table
        :func:`effortlens.roe.roe_by` output with one slice column ``by``.
    by
        The slice column.
    measure
        ``"activities"`` or ``"hours"``.
    title
        Chart title; default names the measure and the slice.

    Examples
    --------
    >>> import polars as pl
    >>> from effortlens.roe import roe_by
    >>> acts = pl.DataFrame({"team": ["A", "A"], "is_customer_facing": [True, True],
    ...     "hours": [1.0, 2.0], "responded": [True, False], "response_weight": [2.0, 0.0]})
    >>> spec = no_impact_chart(roe_by(acts, by=["team"]), by="team", measure="hours").to_dict()
    >>> spec["mark"]["type"], spec["encoding"]["color"]["scale"]["range"]
    ('bar', ['#D55E00', '#009E73'])
    """
    if measure not in ("activities", "hours"):
        raise ValueError(f"measure must be 'activities' or 'hours', got {measure!r}")
    frame = aggregated(table)
    no_impact = "no_impact_activities" if measure == "activities" else "no_impact_hours"
    earned = pl.col(measure) - pl.col(no_impact)
    outcome_order = _OUTCOMES
    long = (
        frame.select(
            pl.col(by),
            pl.col(no_impact).cast(pl.Float64).alias(outcome_order[0]),
            earned.cast(pl.Float64).alias(outcome_order[1]),
            pl.col(measure).cast(pl.Float64).alias("total"),
        )
        .unpivot(index=[by, "total"], variable_name="outcome", value_name="amount")
        .with_columns(
            share=pl.when(pl.col("total") > 0).then(pl.col("amount") / pl.col("total")),
            order=pl.col("outcome").replace_strict(
                {o: i for i, o in enumerate(outcome_order)}, return_dtype=pl.Int8
            ),
        )
    )
    return with_data(_no_impact_layout(by, measure, title), outcomes=long)


@functools.lru_cache(maxsize=64)
def _no_impact_layout(by: str, measure: str, title: str | None) -> alt.Chart:
    """:func:`no_impact_chart` without its data (made once per set of options)."""
    outcome_order = _OUTCOMES
    unit = "activities" if measure == "activities" else "hours"
    return (
        alt.Chart(placeholder("outcomes"))
        .mark_bar()
        .encode(
            x=alt.X("amount:Q", title=f"Customer-facing {unit}", stack="zero"),
            y=alt.Y(f"{by}:N", title=None, sort=alt.EncodingSortField("total", order="descending")),
            color=alt.Color(
                "outcome:N",
                title=None,
                scale=alt.Scale(
                    domain=outcome_order, range=[PALETTE["negative"], PALETTE["positive"]]
                ),
                legend=alt.Legend(orient="top"),
            ),
            order=alt.Order("order:Q"),
            tooltip=[
                alt.Tooltip(f"{by}:N", title=by.replace("_", " ").capitalize()),
                alt.Tooltip("outcome:N", title="Outcome"),
                alt.Tooltip("amount:Q", title=unit.capitalize(), format=",.1f"),
                alt.Tooltip("share:Q", title="Share", format=".1%"),
            ],
        )
        .properties(
            title=alt.Title(title or f"No-impact effort: {unit} by {by.replace('_', ' ')}"),
            height=alt.Step(22),
        )
    )
