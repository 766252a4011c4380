"""Charts of the buyer journey: the stage funnel, time in stage, verification by stage.

Each builder takes a :func:`effortlens.flow.flow_table` (one row per stage, or per stage and
``by`` group when ``by`` is given) and returns a chart; nothing is displayed.

Examples
--------
>>> from effortlens.flow import flow_table
>>> from effortlens.charts.flow import stage_funnel_chart
>>> stage_funnel_chart(flow_table(enriched))  # doctest: +SKIP
"""

from __future__ import annotations

import functools

import altair as alt
import polars as pl

import effortlens.charts.theme  # noqa: F401  (registers and enables the project theme)
from effortlens.charts.theme import PALETTE, aggregated, placeholder, with_data

_STAGE_STEP = alt.Step(80)  # width per stage, so that stage names fit side by side
_GROUP_STEP = alt.Step(26)  # width per group within a stage, when groups stand side by side


def _width(by: str | None) -> alt.Step:
    return _STAGE_STEP if by is None else _GROUP_STEP


#: How the deals that reached a stage ended up, in stacking order.
FATES: dict[str, str] = {
    "converted": "moved on or won",
    "lost": "lost here",
    "no_decision": "no decision here",
    "lost_stage_unknown": "lost, stage unknown",
    "open": "still open here",
}


def _stage_order(flow: pl.DataFrame) -> tuple[str, ...]:
    return tuple(flow.sort("stage_index")["stage"].unique(maintain_order=True).to_list())


def _one_row_per_stage(flow: pl.DataFrame, by: str | None) -> None:
    keys = ["stage"] if by is None else [by, "stage"]
    if flow.select(keys).is_duplicated().any():
        raise ValueError(
            "the flow table has several rows per stage: pass by= the column it was split by"
        )


def stage_funnel_chart(
    flow: pl.DataFrame,
    *,
    by: str | None = None,
    title: str = "Where deals move on, leak or wait, stage by stage",
) -> alt.Chart | alt.FacetChart:
    """Stacked bars per stage: the deals that reached it, split by what became of them.

    Parameters
    ----------
    flow
        :func:`effortlens.flow.flow_table` output.
    by
        The column the table was split by (one panel per value).

    Examples
    --------
    >>> stage_funnel_chart(flow_table(enriched, by="team"), by="team")  # doctest: +SKIP
    """
    _one_row_per_stage(flow, by)
    keys = [by] if by else []
    wide = flow.with_columns(lost=pl.col("leaked") - pl.col("no_decision"))
    if "lost_stage_unknown" not in wide.columns:  # a flow table from before the column
        wide = wide.with_columns(lost_stage_unknown=pl.lit(0, dtype=pl.UInt32))
    long = (
        wide.unpivot(
            index=[*keys, "stage", "stage_index", "reached", "skipped", "conversion", "leakage"],
            on=list(FATES),
            variable_name="fate_key",
            value_name="deals",
        )
        .with_columns(
            fate=pl.col("fate_key").replace_strict(FATES, return_dtype=pl.String),
            fate_order=pl.col("fate_key").replace_strict(
                {k: i for i, k in enumerate(FATES)}, return_dtype=pl.Int8
            ),
            share=pl.when(pl.col("reached") > 0).then(pl.col("deals") / pl.col("reached")),
        )
        .filter(pl.col("reached") > 0)
    )
    return with_data(_funnel_layout(by, _stage_order(flow), title), funnel=aggregated(long))


@functools.lru_cache(maxsize=64)
def _funnel_layout(by: str | None, stages: tuple[str, ...], title: str) -> alt.TopLevelMixin:
    chart = (
        alt.Chart(placeholder("funnel"))
        .mark_bar()
        .encode(
            x=alt.X("stage:N", sort=list(stages), title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("deals:Q", title="deals that reached the stage", stack="zero"),
            color=alt.Color(
                "fate:N",
                title=None,
                sort=list(FATES.values()),
                scale=alt.Scale(
                    domain=list(FATES.values()),
                    range=[
                        PALETTE["positive"],
                        PALETTE["negative"],
                        PALETTE["warning"],
                        "#C8C8C8",  # lost at a stage the export does not give
                        PALETTE["neutral"],
                    ],
                ),
            ),
            order=alt.Order("fate_order:Q"),
            tooltip=[
                *([alt.Tooltip(f"{by}:N", title=by)] if by else []),
                alt.Tooltip("stage:N", title="stage"),
                alt.Tooltip("fate:N", title="what happened"),
                alt.Tooltip("deals:Q", title="deals", format=","),
                alt.Tooltip("share:Q", title="share of deals that reached it", format=".1%"),
                alt.Tooltip("reached:Q", title="reached the stage", format=","),
                alt.Tooltip("skipped:Q", title="of which skipped it", format=","),
                alt.Tooltip("conversion:Q", title="conversion", format=".1%"),
                alt.Tooltip("leakage:Q", title="leakage", format=".1%"),
            ],
        )
    )
    chart = chart.properties(width=_STAGE_STEP)
    if by:
        return chart.facet(row=alt.Row(f"{by}:N", title=None)).properties(title=title)
    return chart.properties(title=title)


def _grouped(by: str | None) -> dict:
    """Encodings that place groups side by side within a stage."""
    if by is None:
        return {}
    return {"xOffset": alt.XOffset(f"{by}:N"), "color": alt.Color(f"{by}:N", title=by)}


def time_in_stage_chart(
    flow: pl.DataFrame,
    *,
    by: str | None = None,
    title: str = "How long deals stay in each stage (median bar, p90 tick)",
) -> alt.LayerChart:
    """Median days in each stage as bars, the p90 as a tick above each bar.

    Medians and p90s are Kaplan–Meier estimates with open deals censored; a stage whose
    median was not reached shows no bar.

    Parameters
    ----------
    flow
        :func:`effortlens.flow.flow_table` output.
    by
        The column the table was split by (groups side by side).

    Examples
    --------
    >>> time_in_stage_chart(flow_table(enriched))  # doctest: +SKIP
    """
    _one_row_per_stage(flow, by)
    data = aggregated(flow.filter(pl.col("entered") > 0))
    return with_data(_time_layout(by, _stage_order(flow), title), stays=data)


@functools.lru_cache(maxsize=64)
def _time_layout(by: str | None, stages: tuple[str, ...], title: str) -> alt.LayerChart:
    x = alt.X("stage:N", sort=list(stages), title=None, axis=alt.Axis(labelAngle=0))
    tooltip = [
        *([alt.Tooltip(f"{by}:N", title=by)] if by else []),
        alt.Tooltip("stage:N", title="stage"),
        alt.Tooltip("entered:Q", title="entries", format=","),
        alt.Tooltip("median_days:Q", title="median days", format=".1f"),
        alt.Tooltip("p90_days:Q", title="p90 days", format=".1f"),
        alt.Tooltip("blocked_after_days:Q", title="blocked after (days)", format=".1f"),
        alt.Tooltip("blocked:Q", title="open deals blocked now", format=","),
    ]
    base = alt.Chart().encode(x=x, tooltip=tooltip, **_grouped(by))
    bars = base.mark_bar(**({} if by else {"color": PALETTE["primary"]})).encode(
        y=alt.Y("median_days:Q", title="days in stage")
    )
    ticks = base.mark_tick(thickness=2, **({} if by else {"color": PALETTE["negative"]})).encode(
        y="p90_days:Q"
    )
    # where fewer than 90% of stays have ended, Kaplan-Meier gives no p90: say so
    open_ended = (
        base.transform_filter("datum.p90_days == null && datum.median_days != null")
        .mark_text(dy=-8, fontSize=11, color=PALETTE["negative"])
        .encode(y="median_days:Q", text=alt.value("p90 not reached"))
    )
    return alt.layer(bars, ticks, open_ended, data=placeholder("stays")).properties(
        title=title, width=_width(by)
    )


#: Where a verified move's buyer evidence comes from, in stacking order.
EVIDENCE: dict[str, str] = {
    "verified_recorded": "recorded verifier",
    "verified_by_action": "buyer verifier action only",
}


def verification_chart(
    flow: pl.DataFrame,
    *,
    by: str | None = None,
    title: str = "Stage moves backed by buyer evidence",
) -> alt.LayerChart:
    """Verification rate of the moves into each stage, split by where the evidence comes from
    (a recorded ``verifier_action_id``, or only a buyer verifier action found before the
    move), with the rate over all stages as a dashed line.

    Parameters
    ----------
    flow
        :func:`effortlens.flow.flow_table` output.
    by
        The column the table was split by (groups side by side, colour by group, shade by
        source of evidence).

    Examples
    --------
    >>> verification_chart(flow_table(enriched))  # doctest: +SKIP
    """
    _one_row_per_stage(flow, by)
    keys = [by] if by else []
    moved = flow.filter(pl.col("moves") > 0).with_columns(
        verified_by_action=pl.col("verified") - pl.col("verified_recorded"),
        overall_rate=pl.col("verified").sum() / pl.col("moves").sum(),
    )
    data = aggregated(
        moved.unpivot(
            index=[
                *keys,
                "stage",
                "stage_index",
                "moves",
                "verified",
                "verification_rate",
                "overall_rate",
            ],
            on=list(EVIDENCE),
            variable_name="source_key",
            value_name="backed",
        ).with_columns(
            evidence=pl.col("source_key").replace_strict(EVIDENCE, return_dtype=pl.String),
            evidence_order=pl.col("source_key").replace_strict(
                {k: i for i, k in enumerate(EVIDENCE)}, return_dtype=pl.Int8
            ),
            share=pl.col("backed") / pl.col("moves"),
        )
    )
    return with_data(_verification_layout(by, _stage_order(flow), title), moves=data)


@functools.lru_cache(maxsize=64)
def _verification_layout(by: str | None, stages: tuple[str, ...], title: str) -> alt.LayerChart:
    x = alt.X("stage:N", sort=list(stages), title=None, axis=alt.Axis(labelAngle=0))
    shades = alt.Scale(domain=list(EVIDENCE.values()), range=[1.0, 0.45])
    if by:
        colour = {"color": alt.Color(f"{by}:N", title=by), "xOffset": alt.XOffset(f"{by}:N")}
    else:
        colour = {
            "color": alt.Color(
                "evidence:N",
                title="evidence",
                legend=alt.Legend(labelLimit=240),
                scale=alt.Scale(
                    domain=list(EVIDENCE.values()), range=[PALETTE["primary"], PALETTE["secondary"]]
                ),
            )
        }
    bars = (
        alt.Chart()
        .mark_bar()
        .encode(
            x=x,
            y=alt.Y(
                "share:Q",
                title="moves backed by buyer evidence",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
                stack="zero",
            ),
            opacity=alt.Opacity(
                "evidence:N", title="evidence", scale=shades, legend=alt.Legend(labelLimit=240)
            )
            if by
            else alt.Undefined,
            order=alt.Order("evidence_order:Q"),
            tooltip=[
                *([alt.Tooltip(f"{by}:N", title=by)] if by else []),
                alt.Tooltip("stage:N", title="stage"),
                alt.Tooltip("evidence:N", title="evidence"),
                alt.Tooltip("backed:Q", title="moves backed this way", format=","),
                alt.Tooltip("moves:Q", title="moves into the stage", format=","),
                alt.Tooltip("verified:Q", title="backed by buyer evidence", format=","),
                alt.Tooltip("verification_rate:Q", title="verification rate", format=".1%"),
            ],
            **colour,
        )
    )
    overall = (
        alt.Chart()
        .mark_rule(strokeDash=[4, 4], color=PALETTE["neutral"])
        .encode(
            y="mean(overall_rate):Q",
            tooltip=[alt.Tooltip("mean(overall_rate):Q", title="all stages", format=".1%")],
        )
    )
    return alt.layer(bars, overall, data=placeholder("moves")).properties(
        title=title, width=_width(by)
    )
