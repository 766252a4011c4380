"""Charts of habits and patterns: the timing heatmap, response by cadence, sequence lift.

Each builder takes the aggregated frame of the matching :mod:`effortlens.habits` function and
returns an ``alt.Chart``; nothing is displayed.

Examples
--------
>>> from effortlens.habits import response_by_cadence
>>> from effortlens.charts.habits import cadence_chart
>>> cadence_chart(response_by_cadence(enriched.activities))  # doctest: +SKIP
"""

from __future__ import annotations

import functools

import altair as alt
import polars as pl

import effortlens.charts.theme  # noqa: F401  (registers and enables the project theme)
from effortlens.charts.theme import PALETTE, aggregated, placeholder, with_data
from effortlens.habits import wilson_interval
from effortlens.vocabulary import WEEKDAY_NAMES


def timing_heatmap_chart(
    cells: pl.DataFrame,
    *,
    activity_type: str | None = None,
    min_activities: int = 1,
    title: str = "Response rate by weekday and hour",
) -> alt.Chart:
    """Heatmap of response rate, weekday x local hour, one activity type at a time.

    Parameters
    ----------
    cells
        :func:`effortlens.habits.response_by_timing` output (with or without
        ``activity_type``).
    activity_type
        Show only this type. Otherwise, when the frame holds several types, a drop-down in
        the chart picks the type shown.
    min_activities
        Cells with fewer activities are left blank (too few to read a rate from).

    Examples
    --------
    >>> timing_heatmap_chart(response_by_timing(acts), min_activities=20)  # doctest: +SKIP
    """
    data = cells.filter(pl.col("activities") >= min_activities)
    if activity_type is not None:
        data = data.filter(pl.col("activity_type") == activity_type)
    data = aggregated(
        data.with_columns(
            day=pl.col("weekday")
            .cast(pl.Int64)
            .replace_strict(dict(enumerate(WEEKDAY_NAMES, start=1)), return_dtype=pl.String),
        )
    )
    types = (
        sorted(data["activity_type"].unique().to_list()) if "activity_type" in data.columns else []
    )
    layout = _timing_layout(
        title,
        "lift_over_type" in data.columns,
        tuple(types) if activity_type is None and len(types) > 1 else None,
    )
    return with_data(layout, cells=_json_rows(data))


def _json_rows(frame: pl.DataFrame) -> str:
    """``frame`` as the JSON text of its rows (null where a value is missing or not finite),
    as the funnel plot writes its rows: the heatmap's ~500 cells (10m) as Python dictionaries
    cost the kernel ~0.6 ms to make and ~1.3 ms for ipywidgets' search of them for binary
    buffers at every filter change (and their encoding into the message); Polars writes the
    text in ~0.3 ms and Vega-Lite parses it into the same rows (the dataset's format says
    JSON)."""
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    finite = [pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in floats]
    return frame.with_columns(finite).write_json()


#: The heatmap's dataset: JSON text (:func:`_json_rows`), filled by ``with_data``.
_TIMING_DATA = alt.NamedData(name="cells", format=alt.JsonDataFormat(type="json"))


@functools.lru_cache(maxsize=64)
def _timing_layout(title: str, type_lift: bool, picker: tuple[str, ...] | None) -> alt.Chart:
    tooltip = [
        alt.Tooltip("day:N", title="weekday"),
        alt.Tooltip("hour:O", title="hour (local)"),
        alt.Tooltip("activities:Q", title="activities", format=","),
        alt.Tooltip("responded:Q", title="responded", format=","),
        alt.Tooltip("response_rate:Q", title="response rate", format=".1%"),
        alt.Tooltip("lift:Q", title="lift over all touches", format=".2f"),
    ]
    chart = (
        alt.Chart(_TIMING_DATA, title=title, width=alt.Step(30), height=alt.Step(26))
        .mark_rect()
        .encode(
            x=alt.X("hour:O", title="hour of day (local)"),
            y=alt.Y("day:N", title=None, sort=list(WEEKDAY_NAMES)),
            color=alt.Color(
                "response_rate:Q", title="response rate", legend=alt.Legend(format=".0%")
            ),
            tooltip=(
                [
                    alt.Tooltip("activity_type:N", title="activity type"),
                    *tooltip,
                    alt.Tooltip("lift_over_type:Q", title="lift over the type", format=".2f"),
                ]
                if type_lift
                else tooltip
            ),
        )
    )
    if picker is not None:
        pick = alt.param(
            name="activity_type",
            value=picker[0],
            bind=alt.binding_select(options=list(picker), name="activity type "),
        )
        chart = chart.add_params(pick).transform_filter(alt.datum.activity_type == pick)
    return chart


def cadence_chart(
    bins: pl.DataFrame,
    *,
    title: str = "Response by days since the previous touch on the contact",
) -> alt.Chart:
    """Bars of response rate per cadence bin, with 95% intervals and the overall rate.

    Parameters
    ----------
    bins
        :func:`effortlens.habits.response_by_cadence` output (without extra ``by`` columns).

    Examples
    --------
    >>> cadence_chart(response_by_cadence(acts))  # doctest: +SKIP
    """
    data = aggregated(
        bins.sort("bin_order").with_columns(
            *wilson_interval(),
            overall_rate=pl.col("responded").sum() / pl.col("activities").sum(),
        )
    )
    order = tuple(data["cadence_bin"].cast(pl.String).to_list())
    return with_data(_cadence_layout(title, order), bins=data)


@functools.lru_cache(maxsize=64)
def _cadence_layout(title: str, order: tuple[str, ...]) -> alt.LayerChart:
    x = alt.X(
        "cadence_bin:N",
        sort=list(order),
        title="days since the previous touch",
        axis=alt.Axis(labelAngle=0),
    )
    tooltip = [
        alt.Tooltip("cadence_bin:N", title="days since previous touch"),
        alt.Tooltip("activities:Q", title="activities", format=","),
        alt.Tooltip("responded:Q", title="responded", format=","),
        alt.Tooltip("response_rate:Q", title="response rate", format=".1%"),
        alt.Tooltip("rate_low:Q", title="95% interval from", format=".1%"),
        alt.Tooltip("rate_high:Q", title="95% interval to", format=".1%"),
        alt.Tooltip("lift:Q", title="lift over all touches", format=".2f"),
    ]
    base = alt.Chart()
    bars = base.mark_bar(color=PALETTE["primary"]).encode(
        x=x,
        y=alt.Y("response_rate:Q", title="response rate", axis=alt.Axis(format="%")),
        tooltip=tooltip,
    )
    intervals = base.mark_rule(color=PALETTE["text"]).encode(
        x=x, y="rate_low:Q", y2="rate_high:Q", tooltip=tooltip
    )
    overall = base.mark_rule(strokeDash=[4, 4]).encode(
        y="mean(overall_rate):Q",
        tooltip=[alt.Tooltip("mean(overall_rate):Q", title="all touches", format=".1%")],
    )
    return alt.layer(bars, intervals, overall, data=placeholder("bins")).properties(
        title=title, width=alt.Step(64)
    )


def sequence_lift_chart(
    sequences: pl.DataFrame,
    *,
    top: int = 15,
    measure: str = "lift_over_type",
    title: str = "Sequences of touches before a response: lift over chance",
) -> alt.Chart:
    """Horizontal bars of lift for the first ``top`` sequences, with the no-lift line at 1.

    Parameters
    ----------
    sequences
        :func:`effortlens.habits.sequence_lift` output (already ranked).
    top
        How many sequences to show, in the frame's order.
    measure
        ``"lift_over_type"`` (what the earlier touches add to the last one) or ``"lift"``.

    Examples
    --------
    >>> sequence_lift_chart(sequence_lift(acts), top=10)  # doctest: +SKIP
    """
    axis_titles = {
        "lift_over_type": "lift over touches of the same last type",
        "lift": "lift over all touches with such a history",
    }
    if measure not in axis_titles:
        raise ValueError(f"measure must be one of {list(axis_titles)}, got {measure!r}")
    # the bars keep the frame's order through a column, so the layout is the same for any
    # selection (a list of the sequences in the spec would make a new layout per filter)
    data = aggregated(sequences.head(top)).with_row_index("bar_order")
    layout = _sequence_layout(title, measure, axis_titles[measure])
    return with_data(layout, sequences=data, no_lift=_NO_LIFT)


_NO_LIFT = pl.DataFrame({"no_lift": [1.0]})


@functools.lru_cache(maxsize=64)
def _sequence_layout(title: str, measure: str, axis_title: str) -> alt.LayerChart:
    bars = (
        alt.Chart(placeholder("sequences"))
        .mark_bar(color=PALETTE["positive"])
        .encode(
            x=alt.X(f"{measure}:Q", title=axis_title),
            y=alt.Y(
                "sequence:N",
                sort=alt.EncodingSortField(field="bar_order", op="min", order="ascending"),
                title=None,
                axis=alt.Axis(labelLimit=320),
            ),
            tooltip=[
                alt.Tooltip("sequence:N", title="sequence (measured touch last)"),
                alt.Tooltip("support:Q", title="touches", format=","),
                alt.Tooltip("responded:Q", title="responded", format=","),
                alt.Tooltip("response_rate:Q", title="response rate", format=".1%"),
                alt.Tooltip("type_rate:Q", title="same last type, any history", format=".1%"),
                alt.Tooltip("lift_over_type:Q", title="lift over the type", format=".2f"),
                alt.Tooltip("base_rate:Q", title="all touches with such a history", format=".1%"),
                alt.Tooltip("lift:Q", title="lift over all", format=".2f"),
            ],
        )
    )
    no_lift = (
        alt.Chart(placeholder("no_lift"))
        .mark_rule(strokeDash=[4, 4])
        .encode(x="no_lift:Q", tooltip=[alt.Tooltip("no_lift:Q", title="no lift")])
    )
    return (bars + no_lift).properties(title=title)
