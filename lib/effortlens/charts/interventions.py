"""Chart of a designed intervention: weekly lines of participants and comparison reps.

Examples
--------
>>> from effortlens.interventions import intervention_effect, intervention_weekly
>>> from effortlens.charts.interventions import intervention_chart
>>> weekly = intervention_weekly(enriched, intervention_id="I1")  # doctest: +SKIP
>>> effect = intervention_effect(enriched, intervention_id="I1")  # doctest: +SKIP
>>> intervention_chart(weekly, effect=effect)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

import effortlens.charts.theme  # noqa: F401  (registers and enables the project theme)
from effortlens.charts.theme import PALETTE, aggregated
from effortlens.findings import effect_text as effect_text
from effortlens.interventions import COMPARISON, PARTICIPANTS

_METRIC_TITLES = {
    "response_rate": ("response rate", ".1%"),
    "roe_per_100": ("ROE per 100 activities", ".1f"),
    "activities_per_week": ("activities per rep per week", ".1f"),
}


def intervention_chart(
    weekly: pl.DataFrame,
    *,
    effect: dict[str, Any] | None = None,
    metric: str | None = None,
    title: str = "Participants and comparable reps, before and after the start",
) -> alt.Chart:
    """Weekly lines of both groups, the start marked, the estimate and its CI in the subtitle.

    Parameters
    ----------
    weekly
        :func:`effortlens.interventions.intervention_weekly` output.
    effect
        :func:`effortlens.interventions.intervention_effect` output, shown as text.
    metric
        Name of the metric (for the axis); default ``effect["metric"]``, else response rate.

    Examples
    --------
    >>> intervention_chart(weekly, effect=effect)  # doctest: +SKIP
    """
    data = aggregated(
        weekly.filter(pl.col("value").is_not_null()).with_columns(
            week_from=pl.col("week_start").cast(pl.String)
        )
    )
    metric = metric or (effect or {}).get("metric", "response_rate")
    axis_title, value_format = _METRIC_TITLES.get(metric, (metric, ".2f"))
    lines = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "week_index:Q",
                title="weeks since the start",
                axis=alt.Axis(tickMinStep=1, format="d"),
            ),
            y=alt.Y(
                "value:Q", title=axis_title, axis=alt.Axis(format=value_format.replace(".1", ".0"))
            ),
            color=alt.Color(
                "group:N",
                title=None,
                scale=alt.Scale(
                    domain=[PARTICIPANTS, COMPARISON],
                    range=[PALETTE["primary"], PALETTE["neutral"]],
                ),
            ),
            tooltip=[
                alt.Tooltip("group:N", title="group"),
                alt.Tooltip("week_from:N", title="week from"),
                alt.Tooltip("week_index:Q", title="weeks since start"),
                alt.Tooltip("value:Q", title=axis_title, format=value_format),
                alt.Tooltip("activities:Q", title="activities", format=","),
                alt.Tooltip("reps:Q", title="reps in group"),
            ],
        )
    )
    start = pl.DataFrame(
        {"boundary": [-0.5], "start": [str(effect["start_date"]) if effect else "start"]}
    )
    start_rule = (
        alt.Chart(start)
        .mark_rule(strokeDash=[4, 4])
        .encode(x="boundary:Q", tooltip=[alt.Tooltip("start:N", title="intervention start")])
    )
    start_label = (
        alt.Chart(start)
        .mark_text(align="left", dx=4, baseline="top")
        .encode(x="boundary:Q", y=alt.value(2), text=alt.value("start"))
    )
    subtitle = effect_text(effect) if effect else ""
    return (lines + start_rule + start_label).properties(
        title=alt.TitleParams(title, subtitle=subtitle)
    )
