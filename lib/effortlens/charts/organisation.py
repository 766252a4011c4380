"""Charts of the organisation: selling time by team, attrition against selling time, and
where the variation in return on effort lies.

Examples
--------
>>> from effortlens.organisation import organisation_table
>>> from effortlens.charts.organisation import selling_time_chart
>>> selling_time_chart(organisation_table(enriched))  # doctest: +SKIP
"""

from __future__ import annotations

import functools

import altair as alt
import polars as pl

import effortlens.charts.theme  # noqa: F401  (registers and enables the project theme)
from effortlens.charts.theme import PALETTE, aggregated, placeholder, with_data

_METRIC_NAMES = {"response_rate": "response rate", "roe_per_100": "ROE per 100 activities"}
_SELLING = "time for selling"
_INTERNAL = "internal load"


def selling_time_chart(
    by_team: pl.DataFrame,
    *,
    title: str = "Share of the working week: selling and internal work",
) -> alt.Chart:
    """Stacked bars per team: time for selling and internal load as shares of working hours.

    Parameters
    ----------
    by_team
        A frame with ``team``, ``selling_time`` and ``internal_load``, such as
        :func:`effortlens.organisation.organisation_table` or
        :func:`effortlens.organisation.selling_time_by` output.

    Examples
    --------
    >>> selling_time_chart(organisation_table(enriched))  # doctest: +SKIP
    """
    teams = aggregated(by_team).sort("selling_time", descending=True, nulls_last=True)
    data = (
        teams.select(
            "team",
            pl.col("selling_time").alias(_SELLING),
            pl.col("internal_load").alias(_INTERNAL),
        )
        .with_row_index("team_order")
        .unpivot(index=["team", "team_order"], variable_name="part", value_name="share")
    )
    return with_data(_selling_layout(title), parts=data)


@functools.lru_cache(maxsize=16)
def _selling_layout(title: str) -> alt.Chart:
    """:func:`selling_time_chart` without its data (made once per title): the teams in the
    data's order (``team_order``), so that one layout serves any teams in any order."""
    return (
        alt.Chart(placeholder("parts"), title=title)
        .mark_bar()
        .encode(
            x=alt.X(
                "share:Q", title="share of working hours", axis=alt.Axis(format="%"), stack="zero"
            ),
            y=alt.Y(
                "team:N",
                sort=alt.EncodingSortField(field="team_order", op="min", order="ascending"),
                title=None,
            ),
            color=alt.Color(
                "part:N",
                title=None,
                scale=alt.Scale(
                    domain=[_SELLING, _INTERNAL], range=[PALETTE["positive"], PALETTE["warning"]]
                ),
            ),
            order=alt.Order("part_order:Q"),
            tooltip=[
                alt.Tooltip("team:N", title="team"),
                alt.Tooltip("part:N", title="part"),
                alt.Tooltip("share:Q", title="share of working hours", format=".1%"),
            ],
        )
        .transform_calculate(part_order=f"datum.part == '{_SELLING}' ? 0 : 1")
    )


def attrition_selling_chart(
    table: pl.DataFrame,
    *,
    title: str = "Voluntary attrition against time for selling, per team",
) -> alt.Chart:
    """Scatter of teams: time for selling (x) against annualised voluntary attrition (y).

    Parameters
    ----------
    table
        :func:`effortlens.organisation.organisation_table` output.

    Examples
    --------
    >>> attrition_selling_chart(organisation_table(enriched))  # doctest: +SKIP
    """
    data = aggregated(table.drop_nulls(["selling_time", "annualised_attrition"]))
    return with_data(_attrition_layout(title), teams=with_labels(data))


#: A label is left off when its dot lies within this share of both axes' spans of a labelled one.
LABEL_CLEARANCE = (0.25, 0.06)  # a name runs ~100 px right of its dot


def with_labels(teams: pl.DataFrame) -> pl.DataFrame:
    """``teams`` with a ``label`` column: the team's name where it can be read, else empty.

    Teams close together on the scatter would print their names over each other. Labels go
    first to the teams that stand out (highest attrition, then least time for selling); a team
    whose dot lies within :data:`LABEL_CLEARANCE` of an already labelled one gets none (its
    tooltip still names it).

    Examples
    --------
    >>> teams = pl.DataFrame({"team": ["A", "B", "C"], "selling_time": [0.30, 0.301, 0.1],
    ...                       "annualised_attrition": [0.0, 0.001, 0.4]})
    >>> with_labels(teams)["label"].to_list()
    ['', 'B', 'C']
    """
    if teams.is_empty():
        return teams.with_columns(label=pl.lit("", dtype=pl.String))
    x, y = teams["selling_time"].to_list(), teams["annualised_attrition"].to_list()
    span_x = (max(x) - min(x)) or 1.0
    span_y = (max(y) - min(y)) or 1.0
    placed: list[tuple[float, float]] = []
    keep = [False] * teams.height
    for i in sorted(range(teams.height), key=lambda i: (-y[i], x[i])):
        near = any(
            abs(x[i] - px) < LABEL_CLEARANCE[0] * span_x
            and abs(y[i] - py) < LABEL_CLEARANCE[1] * span_y
            for px, py in placed
        )
        if not near:
            placed.append((x[i], y[i]))
            keep[i] = True
    names = teams["team"].cast(pl.String)
    return teams.with_columns(
        label=pl.when(pl.Series(keep, dtype=pl.Boolean)).then(names).otherwise(pl.lit(""))
    )


@functools.lru_cache(maxsize=16)
def _attrition_layout(title: str) -> alt.LayerChart:
    """:func:`attrition_selling_chart` without its data (made once per title)."""
    base = alt.Chart(placeholder("teams"), title=title).encode(
        x=alt.X(
            "selling_time:Q",
            title="time for selling (share of working hours)",
            axis=alt.Axis(format="%"),
        ),
        y=alt.Y(
            "annualised_attrition:Q",
            title="voluntary attrition per rep-year",
            axis=alt.Axis(format="%"),
        ),
        tooltip=[
            alt.Tooltip("team:N", title="team"),
            alt.Tooltip("headcount:Q", title="headcount"),
            alt.Tooltip("selling_time:Q", title="time for selling", format=".1%"),
            alt.Tooltip("internal_load:Q", title="internal load", format=".1%"),
            alt.Tooltip("voluntary_exits:Q", title="voluntary exits"),
            alt.Tooltip("attrition_rate:Q", title="exits / headcount", format=".1%"),
            alt.Tooltip("annualised_attrition:Q", title="annualised attrition", format=".1%"),
        ],
    )
    points = base.mark_circle(opacity=0.85, color=PALETTE["primary"]).encode(
        size=alt.Size("headcount:Q", title="headcount")
    )
    labels = base.mark_text(align="left", dx=8).encode(text="label:N")
    return points + labels


def variance_share_chart(
    shares: pl.DataFrame,
    *,
    title: str = "Where return on effort varies: between teams or between reps",
) -> alt.Chart:
    """Stacked bars per metric: share of the variation between teams and within teams.

    Parameters
    ----------
    shares
        :func:`effortlens.organisation.variance_share` output.

    Examples
    --------
    >>> variance_share_chart(variance_share(enriched.daily))  # doctest: +SKIP
    """
    between = "between " + shares["group"].first() + "s" if shares.height else "between groups"
    within = "between reps of a " + shares["group"].first() if shares.height else "within groups"
    data = (
        aggregated(shares)
        .select(
            pl.col("metric").replace(_METRIC_NAMES),
            "n_groups",
            "n_reps",
            "p_value",
            pl.col("share_between").alias(between),
            pl.col("share_within").alias(within),
        )
        .unpivot(
            index=["metric", "n_groups", "n_reps", "p_value"],
            variable_name="part",
            value_name="share",
        )
    )
    return with_data(_variance_layout(title, between, within), shares=data)


@functools.lru_cache(maxsize=16)
def _variance_layout(title: str, between: str, within: str) -> alt.Chart:
    """:func:`variance_share_chart` without its data (made once per title and group)."""
    return (
        alt.Chart(placeholder("shares"), title=title)
        .mark_bar()
        .encode(
            x=alt.X(
                "share:Q",
                title="share of the variation among reps",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            y=alt.Y("metric:N", title=None),
            color=alt.Color(
                "part:N",
                title=None,
                scale=alt.Scale(
                    domain=[between, within], range=[PALETTE["primary"], PALETTE["secondary"]]
                ),
                legend=alt.Legend(labelLimit=300),
            ),
            order=alt.Order("part_order:Q"),
            tooltip=[
                alt.Tooltip("metric:N", title="metric"),
                alt.Tooltip("part:N", title="part"),
                alt.Tooltip("share:Q", title="share", format=".1%"),
                alt.Tooltip("n_groups:Q", title="groups"),
                alt.Tooltip("n_reps:Q", title="reps"),
                alt.Tooltip("p_value:Q", title="p-value (no group effect)", format=".3f"),
            ],
        )
        .transform_calculate(part_order=f"datum.part == '{between}' ? 0 : 1")
    )
