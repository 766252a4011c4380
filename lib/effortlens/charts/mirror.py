"""The rep mirror chart: my weeks against my own trailing mean and my peers' median.

Examples
--------
>>> from effortlens.mirror import mirror_weeks
>>> mirror_chart(mirror_weeks(daily, reps=reps, rep_id="r007"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import polars as pl

import effortlens.charts.theme  # noqa: F401  (registers and enables the project theme)
from effortlens.charts.theme import PALETTE, aggregated
from effortlens.roe import METRIC_LABELS

#: The three lines of the mirror, their words, colours and dashes (never colour alone).
SERIES: dict[str, tuple[str, str, list[int]]] = {
    "value": ("This rep", PALETTE["primary"], [1, 0]),
    "own_trailing": ("Own trailing weeks", PALETTE["neutral"], [6, 3]),
    "peer_median": ("Peers' median", PALETTE["warning"], [2, 2]),
}
_SHARES = {"response_rate", "no_impact_share"}


def _labels(metrics: Sequence[str]) -> dict[str, str]:
    """Panel titles; shares are drawn in percent and say so."""
    return {m: METRIC_LABELS[m] + (" (%)" if m in _SHARES else "") for m in metrics}


def mirror_chart(
    weeks: pl.DataFrame,
    *,
    metrics: Sequence[str] = ("response_rate", "roe_per_100", "activities"),
    title: str | None = "My weeks, my past, my peers",
) -> alt.FacetChart:
    """One small panel per metric: the rep's weekly line, own trailing mean and peers' median.

    Parameters
    ----------
    weeks
        :func:`effortlens.mirror.mirror_weeks` output.
    metrics
        Which of its metrics to show, top to bottom.
    title
        Chart title (``None`` for none, e.g. with anonymised names shown elsewhere).

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> w = pl.DataFrame({"week": [dt.date(2024, 3, 4)], "metric": ["response_rate"],
    ...     "value": [0.3], "own_trailing": [0.25], "peer_median": [0.2], "peers": [4]})
    >>> spec = mirror_chart(w, metrics=["response_rate"]).to_dict()
    >>> spec["facet"]["row"]["field"], len(spec["spec"]["layer"])
    ('label', 2)
    """
    unknown = [m for m in metrics if m not in METRIC_LABELS]
    if unknown or not metrics:
        raise ValueError(f"metrics must be among {list(METRIC_LABELS)}, got {list(metrics)}")
    frame = aggregated(weeks.filter(pl.col("metric").is_in(list(metrics))))
    labels = list(_labels(metrics).values())
    long = frame.unpivot(
        index=["week", "metric", "peers"],
        on=list(SERIES),
        variable_name="series",
        value_name="amount",
    ).with_columns(
        pl.col("series").replace_strict({k: v[0] for k, v in SERIES.items()}),
        label=pl.col("metric").replace_strict(_labels(metrics), return_dtype=pl.String),
        # shares are drawn in percent so every panel's axis reads without a format
        amount=pl.when(pl.col("metric").is_in(list(_SHARES)))
        .then(100 * pl.col("amount"))
        .otherwise(pl.col("amount")),
    )
    names = [v[0] for v in SERIES.values()]
    encode = {
        "x": alt.X("week:T", title=None),
        "y": alt.Y("amount:Q", title=None),
        "color": alt.Color(
            "series:N",
            title=None,
            scale=alt.Scale(domain=names, range=[v[1] for v in SERIES.values()]),
            legend=alt.Legend(orient="top", symbolType="stroke", symbolStrokeWidth=3),
        ),
        "strokeDash": alt.StrokeDash(
            "series:N",
            title=None,
            scale=alt.Scale(domain=names, range=[v[2] for v in SERIES.values()]),
            legend=None,
        ),
        "tooltip": [
            alt.Tooltip("week:T", title="Week of", format="%Y-%m-%d"),
            alt.Tooltip("label:N", title="Metric"),
            alt.Tooltip("series:N", title="Line"),
            alt.Tooltip("amount:Q", title="Value", format=",.1f"),
            alt.Tooltip("peers:Q", title="Active peers that week"),
        ],
    }
    lines = alt.Chart().mark_line(strokeWidth=2.4).encode(**encode)
    points = (
        alt.Chart()
        .mark_point(filled=True, size=45)
        .encode(**{k: v for k, v in encode.items() if k != "strokeDash"})
        .transform_filter(alt.datum.series == SERIES["value"][0])
    )
    chart = (
        alt.layer(lines, points, data=long)
        .properties(width=520, height=120)
        .facet(
            row=alt.Row(
                "label:N",
                title=None,
                sort=labels,
                header=alt.Header(
                    labelAngle=0, labelOrient="top", labelAnchor="start", labelFontWeight=600
                ),
            )
        )
        .resolve_scale(y="independent")
    )
    return chart.properties(title=title) if title else chart
