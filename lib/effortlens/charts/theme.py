"""The EffortLens chart theme: colour-blind-safe, light, readable; registered and enabled on import.

Colours are the Okabe–Ito palette (Okabe & Ito 2008), distinguishable with every common
colour-vision deficiency, plus a neutral grey. Chart builders name colours by meaning
(``PALETTE["positive"]``) so a view reads the same everywhere: blue for the measure itself,
green for better than peers / buyer response, vermillion for worse / waste, grey for context
(peer medians, control limits, trailing means).

Examples
--------
>>> import altair as alt
>>> import effortlens.charts.theme as theme
>>> alt.theme.active
'effortlens'
>>> theme.PALETTE["positive"]
'#009E73'
"""

from __future__ import annotations

import altair as alt
import polars as pl

#: Okabe–Ito colours by name.
OKABE_ITO: dict[str, str] = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "bluish_green": "#009E73",
    "vermillion": "#D55E00",
    "sky_blue": "#56B4E9",
    "reddish_purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}

#: Colours by meaning; chart builders use these names.
PALETTE: dict[str, str] = {
    "primary": OKABE_ITO["blue"],  # the measure itself
    "secondary": OKABE_ITO["sky_blue"],  # a second series of the same kind
    "positive": OKABE_ITO["bluish_green"],  # buyer response, better than peers
    "negative": OKABE_ITO["vermillion"],  # no impact, worse than peers, leakage
    "warning": OKABE_ITO["orange"],  # needs a look: blockage, low volume
    "highlight": OKABE_ITO["reddish_purple"],  # the selected rep or group
    "neutral": "#8C8C8C",  # context: peer medians, trailing means, control limits
    "text": "#222222",
    "grid": "#E6E6E6",
    "background": "#FFFFFF",
}

#: Order of colours for categories (teams, activity types…): most distinct first.
CATEGORY: list[str] = [
    OKABE_ITO[name]
    for name in (
        "blue",
        "orange",
        "bluish_green",
        "vermillion",
        "sky_blue",
        "reddish_purple",
        "yellow",
        "black",
    )
]

#: Sequential ramp (light to dark blue) for heatmaps of rates; diverging for lifts around 1.
SEQUENTIAL: list[str] = ["#F7FBFF", "#C6DBEF", "#6BAED6", "#2171B5", "#08306B"]
DIVERGING: list[str] = ["#D55E00", "#F4B183", "#F7F7F7", "#8ECFC0", "#009E73"]

FONT = "'Source Sans 3', 'Segoe UI', 'Helvetica Neue', Arial, sans-serif"


@alt.theme.register("effortlens", enable=True)
def effortlens_theme() -> alt.theme.ThemeConfig:
    """The EffortLens theme: white background, Okabe–Ito categories, 12–16 px type."""
    axis = {
        "labelColor": PALETTE["text"],
        "titleColor": PALETTE["text"],
        "labelFontSize": 12,
        "titleFontSize": 13,
        "titleFontWeight": 600,
        "gridColor": PALETTE["grid"],
        "domainColor": "#BBBBBB",
        "tickColor": "#BBBBBB",
    }
    return {
        "background": PALETTE["background"],
        "config": {
            "font": FONT,
            "view": {"stroke": None, "continuousWidth": 560, "continuousHeight": 300},
            "axis": axis,
            "axisBand": {"grid": False},
            "legend": {
                "labelFontSize": 12,
                "titleFontSize": 13,
                "titleFontWeight": 600,
                "labelColor": PALETTE["text"],
                "titleColor": PALETTE["text"],
                "symbolType": "circle",
            },
            "title": {
                "fontSize": 16,
                "fontWeight": 600,
                "color": PALETTE["text"],
                "anchor": "start",
                "subtitleColor": "#555555",
                "subtitleFontSize": 12,
            },
            "header": {"labelFontSize": 12, "titleFontSize": 13, "labelColor": PALETTE["text"]},
            "range": {
                "category": CATEGORY,
                "ordinal": SEQUENTIAL,
                "ramp": SEQUENTIAL,
                "heatmap": SEQUENTIAL,
                "diverging": DIVERGING,
            },
            "line": {"strokeWidth": 2.2, "color": PALETTE["primary"]},
            "bar": {"color": PALETTE["primary"]},
            "point": {"filled": True, "size": 50, "color": PALETTE["primary"]},
            "area": {"color": PALETTE["primary"], "opacity": 0.25},
            "rule": {"color": PALETTE["neutral"]},
            "text": {"fontSize": 12, "color": PALETTE["text"]},
        },
    }


#: Most rows a chart takes inline (Altair's own limit for the frames it converts); charts are
#: fed aggregates, never events.
MAX_ROWS = 5000


def aggregated(frame: pl.DataFrame, *, limit: int = MAX_ROWS) -> pl.DataFrame:
    """``frame`` if it is small enough to chart inline (``limit`` rows; a chart that writes its
    rows as text itself may take more); a ``ValueError`` otherwise.

    Examples
    --------
    >>> aggregated(pl.DataFrame({"team": ["A"]})).height
    1
    """
    if frame.height > limit:
        raise ValueError(
            f"charts take aggregated frames of at most {limit} rows, got {frame.height}: "
            "aggregate first (effortlens.roe.roe_by, effortlens.habits.response_by_timing, …)"
        )
    return frame


#: Where :func:`with_data` records a chart's layout and datasets (outside Altair's properties).
_LAYOUT = "_effortlens_layout"
#: Where a layout keeps its own spec once made (by :func:`chart_spec`).
_SPEC = "_effortlens_spec"


def placeholder(name: str) -> alt.NamedData:
    """The data of a chart layout: the dataset ``name`` that :func:`with_data` fills.

    Examples
    --------
    >>> placeholder("bars").to_dict()
    {'name': 'bars'}
    """
    return alt.NamedData(name=name)


def with_data(layout: alt.TopLevelMixin, **frames: pl.DataFrame | str) -> alt.TopLevelMixin:
    """``layout`` drawing ``frames``: a chart whose data are the named datasets ``frames``.

    A frame may also come as text already written (e.g. JSON rows, for thousands of rows:
    see :func:`effortlens.charts.deviance.funnel_plot_chart`); the layout's data then names
    its format (``alt.NamedData(name=..., format={"type": "json"})``).

    A chart builder makes its layout (marks, encodings, titles: everything but the data, whose
    places are :func:`placeholder` names) once per set of options and caches it; each call
    then only converts its frames, the way Altair would inline them. Building an Altair chart
    costs 5-35 ms (Altair rebuilds its schema lookup table for conditions and shorthands);
    a copy of a layout with new datasets costs well under a millisecond, and
    :func:`chart_spec` turns it into its Vega-Lite spec from the layout's spec, made once.
    The result is an ordinary Altair chart (``to_dict()``, ``properties()``, layering work);
    the layout is never changed.

    Examples
    --------
    >>> layout = alt.Chart(placeholder("main")).mark_bar().encode(x="n:Q", y="team:N")
    >>> chart = with_data(layout, main=pl.DataFrame({"team": ["A"], "n": [3]}))
    >>> chart.to_dict()["datasets"]
    {'main': [{'team': 'A', 'n': 3}]}
    >>> chart_spec(chart)["datasets"]["main"]
    [{'team': 'A', 'n': 3}]
    """
    transform = alt.data_transformers.get()  # what Altair applies to a frame it inlines
    # a str is a dataset already written as text (its placeholder names the format)
    datasets = {
        name: frame if isinstance(frame, str) else transform(frame)["values"]
        for name, frame in frames.items()
    }
    # a shallow copy with its own top-level properties (the layers, encodings… are shared
    # and never changed): Altair's own copy would rebuild and revalidate the whole chart
    chart = object.__new__(type(layout))
    chart.__dict__.update(layout.__dict__)
    chart.__dict__.pop(_SPEC, None)
    chart.__dict__["_kwds"] = {**layout._kwds, "datasets": datasets}  # noqa: SLF001
    chart.__dict__[_LAYOUT] = (layout, datasets)
    return chart


def chart_spec(chart: alt.TopLevelMixin) -> dict:
    """``chart``'s Vega-Lite spec, as ``chart.to_dict(validate=False)`` gives it.

    For a chart of :func:`with_data` it is the layout's spec (made on first use and kept on
    the layout) with this chart's datasets: no Altair work per chart. The spec shares its
    parts with the layout's: read it, do not change it.

    Examples
    --------
    >>> layout = alt.Chart(placeholder("main")).mark_point().encode(x="n:Q")
    >>> spec = chart_spec(with_data(layout, main=pl.DataFrame({"n": [1, 2]})))
    >>> spec["data"], spec["datasets"]
    ({'name': 'main'}, {'main': [{'n': 1}, {'n': 2}]})
    """
    kept = chart.__dict__.get(_LAYOUT)
    if kept is None:
        return chart.to_dict(validate=False)
    layout, datasets = kept
    template = layout.__dict__.get(_SPEC)
    if template is None:
        template = layout.to_dict(validate=False)
        template.pop("datasets", None)
        layout.__dict__[_SPEC] = template
    return {**template, "datasets": datasets}
