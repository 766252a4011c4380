"""Helpers for the headless widget tests: what a widget tree shows, read through public API only.

A test reads a page the way a browser would get it: every widget under the page
(``children``, recursively) and the HTML they hold. Nothing here reaches into a widget's
private attributes.
"""

from __future__ import annotations

import ipywidgets as widgets


def walk(widget) -> list:
    """The widget and every widget under it, depth first (what the page draws)."""
    found = [widget]
    for child in getattr(widget, "children", ()) or ():
        found.extend(walk(child))
    return found


def page_html(widget) -> str:
    """The HTML of every ``widgets.HTML`` under ``widget``, one after the other."""
    return "\n".join(w.value for w in walk(widget) if isinstance(w, widgets.HTML))


def shown(widget, kind: type) -> list:
    """The widgets of ``kind`` under ``widget`` (e.g. its buttons, dropdowns, text boxes)."""
    return [w for w in walk(widget) if isinstance(w, kind)]


def app_factories() -> list:
    """Every workbook's app factory, in workbook order (imported when first asked for)."""
    from effortlens_widgets.apps.buyer_journey import buyer_journey_app
    from effortlens_widgets.apps.habits import habits_app
    from effortlens_widgets.apps.interventions import interventions_app
    from effortlens_widgets.apps.organisation import organisation_app
    from effortlens_widgets.apps.pattern_session import pattern_session_app
    from effortlens_widgets.apps.positive_deviance import positive_deviance_app
    from effortlens_widgets.apps.rep_mirror import rep_mirror_app
    from effortlens_widgets.apps.return_on_effort import return_on_effort_app

    return [
        return_on_effort_app,
        positive_deviance_app,
        buyer_journey_app,
        habits_app,
        interventions_app,
        organisation_app,
        rep_mirror_app,
        pattern_session_app,
    ]
