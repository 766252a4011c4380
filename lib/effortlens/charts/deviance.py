"""Charts of positive deviance: the funnel plot with control limits, and what differs.

Examples
--------
>>> from effortlens.deviance import rep_deviance, what_differs
>>> from effortlens.charts.deviance import funnel_plot_chart, what_differs_chart
>>> table = rep_deviance(enriched)  # doctest: +SKIP
>>> funnel_plot_chart(table, min_volume=enriched.settings.min_volume)  # doctest: +SKIP
>>> what_differs_chart(what_differs(enriched.activities, table))  # doctest: +SKIP
"""

from __future__ import annotations

import functools

import altair as alt
import numpy as np
import polars as pl

import effortlens.charts.theme  # noqa: F401  (registers and enables the project theme)
from effortlens.charts.theme import (
    PALETTE,
    aggregated,
    chart_spec,
    placeholder,
    with_data,
)
from effortlens.deviance import funnel_limits

DIRECTION_LABELS: dict[str, str] = {
    "positive": "above peers",
    "negative": "below peers",
    "none": "within the limits",
}
_LIMIT_LEVELS = {"95": "95% limits", "998": "99.8% limits"}

FEATURE_LABELS: dict[str, str] = {
    "activity_type_share": "activity type",
    "weekday_share": "weekday",
    "hour_share": "hour of day",
    "follow_up_share": "follow-ups",
    "median_days_between_touches": "days between touches (median)",
    "sequence": "sequence",
}
_MEASURE_LABELS = {
    "cohen_h": "Cohen's h of the shares",
    "cohen_h_beyond_mix": "Cohen's h of the order beyond the type mix",
    "cohen_d_log_days": "Cohen's d of log(1 + days)",
}


#: Most rows the funnel plot takes: a point per rep plus its limit lines, written as JSON text
#: (:func:`_json_rows`, not through Altair's converter and its 5,000-row limit). An enterprise
#: of 5,000 reps (the generator's 100M sample) is 5,072 rows: under the charts' 5,000-row limit
#: its deviance page drew no plot.
MAX_FUNNEL_ROWS = 20_000


def _limit_lines(reps: pl.DataFrame) -> pl.DataFrame:
    """The funnel lines in wide form: one row per group and volume with its four limits
    (:func:`effortlens.deviance.funnel_limits`; the chart folds them into lines), on a grid of
    volumes small enough that the lines and every rep fit the charts' row limit."""
    groups = max(reps["peer_group"].n_unique(), 1)
    room = (MAX_FUNNEL_ROWS - reps.height) // groups  # a row per group and volume
    return funnel_limits(reps, points=int(min(60, max(12, room))), at_reps=False)


#: The limit columns of :func:`_limit_lines`, folded into lines by the chart.
_LIMIT_COLUMNS = [f"{side}_{tag}" for tag in _LIMIT_LEVELS for side in ("lower", "upper")]
#: The funnel plot's rows: a rep's point (``kind`` "rep") or a volume of its group's lines
#: (``kind`` "limit"), each with the other's columns null. The types are those of the rep
#: columns of a :func:`effortlens.deviance.peer_deviance` table and of the lines.
_FUNNEL_SCHEMA: dict[str, pl.DataType] = {
    "peer_group": pl.String(),
    "rep_id": pl.String(),
    "rep_name": pl.String(),
    "volume": pl.Int64(),
    **dict.fromkeys(("rate", "shrunk_rate", "peer_rate", "z", "p_value"), pl.Float64()),
    "direction": pl.String(),
    "kind": pl.String(),
    **dict.fromkeys(_LIMIT_COLUMNS, pl.Float64()),
}


def _column(values: pl.Series | None, dtype: pl.DataType, rows: int) -> pl.Series:
    """``values`` as ``dtype``, or ``rows`` nulls of it: by Series operations, not a Polars
    query (each costs a millisecond or more on a busy machine, more than the rows)."""
    if values is None:
        return pl.Series([None], dtype=dtype)[np.zeros(rows, dtype=np.int64)]
    return values if values.dtype == dtype else values.cast(dtype)


def _funnel_rows(points: dict[str, pl.Series], lines: pl.DataFrame) -> pl.DataFrame:
    """The reps' ``points`` (their columns of :data:`_FUNNEL_SCHEMA`) and the ``lines`` as
    one frame of :data:`_FUNNEL_SCHEMA`, each part's missing columns null (the two frames
    concatenated diagonally), made of Series."""
    kind = pl.Series(["limit"], dtype=pl.String)[np.zeros(lines.height, dtype=np.int64)]
    line_columns = {"kind": kind, **{name: lines.get_column(name) for name in lines.columns}}
    parts = [
        {name: _column(part.get(name), dtype, rows) for name, dtype in _FUNNEL_SCHEMA.items()}
        for part, rows in ((points, len(points["kind"])), (line_columns, lines.height))
    ]
    return pl.DataFrame(parts[0]).vstack(pl.DataFrame(parts[1]))


def _json_rows(frame: pl.DataFrame) -> str:
    """``frame`` as the JSON text of its rows (nulls where a value is missing or not finite).

    The funnel plot's ~4,000 rows as one string: Altair's rows of Python dictionaries cost the
    kernel ~20 ms, ipywidgets' search of them for binary buffers ~25 ms and the message's
    JSON encoding ~30 ms at every draw; Polars writes the text in ~2 ms, and Vega-Lite parses
    it (the dataset's ``format`` says JSON) into the same rows.
    """
    columns = {}
    for name, values in frame.to_dict().items():
        if values.dtype.is_float():  # by numpy: a null is NaN there, and stays null
            numbers = values.to_numpy()
            if not np.isfinite(numbers).all():
                finite = np.where(np.isfinite(numbers), numbers, np.nan)
                values = pl.Series(name, finite, dtype=values.dtype, nan_to_null=True)
        columns[name] = values
    return pl.DataFrame(columns).write_json()


def funnel_plot_chart(
    deviance: pl.DataFrame,
    *,
    peer_group: str | None = None,
    min_volume: int | None = None,
    log_volume: bool = False,
    title: str = "Each rep against peers just like them",
) -> alt.LayerChart | alt.FacetChart:
    """Funnel plot: each rep's rate against volume, with the peer rate and control limits.

    Reps outside the 99.8% limits with enough volume are coloured as deviants. One panel per
    peer group (each has its own peer rate and limits). Clicking a rep selects it (the
    selection parameter ``picked_rep`` holds its ``rep_id``).

    Parameters
    ----------
    deviance
        A :func:`effortlens.deviance.peer_deviance` table.
    peer_group
        Show this peer group only.
    min_volume
        Draw the minimum volume as a vertical rule.
    log_volume
        Volume on a log scale (for very unequal volumes).

    Examples
    --------
    >>> funnel_plot_chart(rep_deviance(enriched), peer_group="SMB · AE")  # doctest: +SKIP
    """
    # the reps drawn by numpy and Series (no Polars query: see _column)
    with np.errstate(invalid="ignore"):
        drawn = deviance.get_column("volume").to_numpy() > 0  # a null volume is NaN: not drawn
    if peer_group is not None:
        drawn &= np.array(
            [g == peer_group for g in deviance.get_column("peer_group").to_list()], dtype=bool
        )
    reps = deviance[np.flatnonzero(drawn)]
    labels = [None if d is None else DIRECTION_LABELS[d] for d in reps["direction"].to_list()]
    points = {
        name: reps.get_column(name)
        for name in ("peer_group", "rep_id", "volume", "rate", "shrunk_rate", "peer_rate")
    }
    points |= {name: reps.get_column(name) for name in ("z", "p_value") if name in reps.columns}
    points["rep_name"] = reps.get_column("rep_name" if "rep_name" in reps.columns else "rep_id")
    points["direction"] = pl.Series(labels, dtype=pl.String)
    points["kind"] = pl.Series(["rep"], dtype=pl.String)[np.zeros(reps.height, dtype=np.int64)]
    data = aggregated(_funnel_rows(points, _limit_lines(reps)), limit=MAX_FUNNEL_ROWS)
    # up to three panels a row (two groups fill two): one layout for any number of groups
    columns = 3 if reps["peer_group"].n_unique() > 1 else None
    layout = _funnel_layout(min_volume, log_volume, title, columns)
    return with_data(layout, funnel=_json_rows(data))


#: The funnel plot's dataset: JSON text (:func:`_json_rows`), filled by ``with_data``.
_FUNNEL_DATA = alt.NamedData(name="funnel", format=alt.JsonDataFormat(type="json"))


@functools.lru_cache(maxsize=32)
def _funnel_layout(
    min_volume: int | None, log_volume: bool, title: str, columns: int | None
) -> alt.LayerChart | alt.FacetChart:
    """:func:`funnel_plot_chart` without its data (made once per set of options); ``columns``
    of peer-group panels, ``None`` for one panel. The panels' layers are made once for both.

    A page draws every group first, then one group (a rep's, a team's) when the filter asks:
    the one-panel layout and its spec are made with the first faceted one, so that such a
    filter change does not pay Altair's copies of the layers (~65 ms).
    """
    chart = alt.layer(*_funnel_layers(min_volume, log_volume), data=_FUNNEL_DATA)
    if columns is None:
        return chart.properties(title=title)
    chart_spec(with_data(_funnel_layout(min_volume, log_volume, title, None)))  # made, kept
    return (
        chart.properties(width=300, height=240)
        .facet(facet=alt.Facet("peer_group:N", title=None), columns=columns)
        .resolve_scale(x="independent")
        .properties(title=title)
    )


@functools.lru_cache(maxsize=8)
def _funnel_layers(min_volume: int | None, log_volume: bool) -> tuple[alt.Chart, ...]:
    """The funnel plot's layers (limit lines, peer rate, reps, minimum volume), never changed:
    a layer or facet chart is made of copies."""
    x = alt.X(
        "volume:Q",
        title="volume (trials)",
        scale=alt.Scale(type="log") if log_volume else alt.Undefined,
    )
    y_axis = alt.Axis(format="%")
    y_scale = alt.Scale(zero=False)
    is_rep = alt.datum.kind == "rep"
    # the limits come a row per volume (four columns): folded here into one line each
    level_of = " : ".join(
        f"indexof(datum.limit, '_{tag}') >= 0 ? '{label}'" for tag, label in _LIMIT_LEVELS.items()
    )
    lines = (
        alt.Chart()
        .transform_filter(alt.datum.kind == "limit")
        .transform_fold(_LIMIT_COLUMNS, as_=["limit", "value"])
        .transform_filter("isValid(datum.value)")
        .transform_calculate(side="split(datum.limit, '_')[0]", level=f"{level_of} : null")
        .mark_line(color=PALETTE["neutral"], strokeWidth=1.2)
        .encode(
            x=x,
            y=alt.Y("value:Q", title="rate", axis=y_axis, scale=y_scale),
            detail="limit:N",
            strokeDash=alt.StrokeDash(
                "level:N",
                title="control limits",
                scale=alt.Scale(domain=list(_LIMIT_LEVELS.values()), range=[[4, 3], [1, 0]]),
                legend=alt.Legend(symbolType="stroke"),
            ),
            tooltip=[
                alt.Tooltip("peer_group:N", title="peer group"),
                alt.Tooltip("level:N", title="limit"),
                alt.Tooltip("side:N", title="side"),
                alt.Tooltip("volume:Q", title="volume", format=","),
                alt.Tooltip("value:Q", title="limit", format=".1%"),
            ],
        )
    )
    centre = (
        alt.Chart()
        .transform_filter(is_rep)
        .mark_rule(color=PALETTE["neutral"], strokeWidth=2)
        .encode(
            y="mean(peer_rate):Q",
            tooltip=[
                alt.Tooltip("peer_group:N", title="peer group"),
                alt.Tooltip("mean(peer_rate):Q", title="peer rate", format=".1%"),
            ],
        )
    )
    picked = alt.selection_point(name="picked_rep", fields=["rep_id"], on="click", empty=False)
    dots = (
        alt.Chart()
        .transform_filter(is_rep)
        .mark_circle(size=70, opacity=0.85)
        .encode(
            x=x,
            y=alt.Y("rate:Q", title="rate", axis=y_axis, scale=y_scale),
            color=alt.Color(
                "direction:N",
                title="rate (99.8% limits)",
                scale=alt.Scale(
                    domain=list(DIRECTION_LABELS.values()),
                    range=[PALETTE["positive"], PALETTE["negative"], PALETTE["neutral"]],
                ),
            ),
            stroke=alt.condition(picked, alt.value(PALETTE["highlight"]), alt.value(None)),
            tooltip=[
                alt.Tooltip("rep_name:N", title="rep"),
                alt.Tooltip("rep_id:N", title="rep id"),
                alt.Tooltip("peer_group:N", title="peer group"),
                alt.Tooltip("volume:Q", title="volume", format=","),
                alt.Tooltip("rate:Q", title="rate", format=".1%"),
                alt.Tooltip("shrunk_rate:Q", title="rate shrunk to peers", format=".1%"),
                alt.Tooltip("peer_rate:Q", title="peer rate", format=".1%"),
                alt.Tooltip("z:Q", title="z", format=".2f"),
                alt.Tooltip("p_value:Q", title="p-value", format=".2g"),
                alt.Tooltip("direction:N", title="against peers"),
            ],
        )
        .add_params(picked)
    )
    layers = [lines, centre, dots]
    if min_volume is not None:
        layers.append(
            alt.Chart()
            .transform_filter(is_rep)
            .transform_aggregate(reps="count()")
            .mark_rule(strokeDash=[2, 2], color=PALETTE["neutral"])
            .encode(x=alt.datum(min_volume), tooltip=alt.value(f"minimum volume {min_volume:,}"))
        )
    return tuple(layers)


def _formatted(value: str) -> pl.Expr:
    """A practice value in words: a share in %, a lift as ×, days as days."""
    v = pl.col(value)
    return (
        pl.when(pl.col("measure") == "cohen_h")
        .then(pl.format("{}%", (v * 100).round(1)))
        .when(pl.col("measure") == "cohen_h_beyond_mix")
        .then(pl.format("{}× the mix", v.round(2)))
        .otherwise(pl.format("{} days", v.round(1)))
    )


def what_differs_chart(
    differs: pl.DataFrame,
    *,
    top: int = 12,
    title: str = "What the deviants do differently from their peers",
) -> alt.Chart:
    """Horizontal bars of the standardised differences in practice, largest first.

    Parameters
    ----------
    differs
        :func:`effortlens.deviance.what_differs` output (ranked).
    top
        How many practices to show.

    Examples
    --------
    >>> what_differs_chart(what_differs(enriched.activities, table), top=8)  # doctest: +SKIP
    """
    data = aggregated(
        differs.sort("rank")
        .head(top)
        .with_columns(
            practice=pl.format(
                "{}: {}",
                pl.col("feature").replace(FEATURE_LABELS),
                pl.col("level"),
            ),
            deviants=_formatted("deviant_value"),
            peers=_formatted("peer_value"),
            measure_label=pl.col("measure").replace(_MEASURE_LABELS),
            side=pl.when(pl.col("effect_size") > 0)
            .then(pl.lit("more among deviants"))
            .otherwise(pl.lit("less among deviants")),
        )
    )
    return with_data(_differs_layout(title), differs=data)


@functools.lru_cache(maxsize=32)
def _differs_layout(title: str) -> alt.LayerChart:
    """:func:`what_differs_chart` without its data (made once per title)."""
    bars = (
        alt.Chart(placeholder("differs"))
        .mark_bar()
        .encode(
            x=alt.X("effect_size:Q", title="standardised difference (deviants − peers)"),
            y=alt.Y(
                "practice:N",
                sort=alt.EncodingSortField("rank", op="min", order="ascending"),
                title=None,
                axis=alt.Axis(labelLimit=360),
            ),
            color=alt.Color(
                "side:N",
                title=None,
                scale=alt.Scale(
                    domain=["more among deviants", "less among deviants"],
                    range=[PALETTE["positive"], PALETTE["negative"]],
                ),
            ),
            tooltip=[
                alt.Tooltip("practice:N", title="practice"),
                alt.Tooltip("deviants:N", title="deviants"),
                alt.Tooltip("peers:N", title="their peers"),
                alt.Tooltip("effect_size:Q", title="standardised difference", format="+.2f"),
                alt.Tooltip("measure_label:N", title="measured as"),
                alt.Tooltip("deviant_base:Q", title="deviants' observations", format=",.0f"),
                alt.Tooltip("peer_base:Q", title="peers' observations", format=",.0f"),
                alt.Tooltip("rank:Q", title="rank"),
            ],
        )
    )
    zero = (
        alt.Chart(placeholder("differs"))
        .transform_aggregate(practices="count()")
        .mark_rule()
        .encode(x=alt.datum(0.0))
    )
    return (bars + zero).properties(title=title)
