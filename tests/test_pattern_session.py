"""The pattern session says it is building a step (never the next step's title over the
previous step's charts) while that step's views are built on its first visit."""

from __future__ import annotations

import ipywidgets as widgets
from widget_support import page_html, shown

from effortlens_widgets.apps.pattern_session import STEPS, PatternSession, Step, pattern_session_app


def _buttons(session) -> dict[str, bool]:
    """Whether Back and Next are disabled."""
    found = shown(session, widgets.Button)
    return {b.description: b.disabled for b in found if b.description in ("Back", "Next")}


def test_a_step_being_built_shows_building_not_the_previous_step(small_planted):
    app = pattern_session_app(data_dir=small_planted)
    seen: list[dict] = []

    class Probe(widgets.HTML):
        """A view that notes what the page shows while it is being built."""

        def __init__(self, state) -> None:
            super().__init__("the probe's chart")
            seen.append({"page": page_html(session), "buttons": _buttons(session)})

        def refresh(self) -> None:
            pass

    steps = (STEPS[0], Step("Probe step", "talk", "ask", (Probe,)), STEPS[1])
    session = PatternSession(app.state, steps=steps)
    first = page_html(session)
    drawn = [page_html(view) for view in session.views]  # the first step's views
    assert [html for html in drawn if html] and "Building" not in first
    session.go(1)
    assert len(seen) == 1
    page = seen[0]["page"]
    assert "2. Probe step" in page and "1. Where our effort goes" not in page
    # the first step's views are gone from the page while the second's are built
    assert [html for html in drawn if html and html in page] == []
    assert "Building step 2, Probe step…" in page
    assert seen[0]["buttons"] == {"Back": True, "Next": True}  # no click queued behind it
    # built: its views, the buttons back
    assert "the probe's chart" in page_html(session)
    assert "Building" not in page_html(session)
    assert _buttons(session) == {"Back": False, "Next": False}
    # a step visited before is shown at once, never "building"
    session.go(0)
    assert page_html(session) == first
    session.go(1)
    assert len(seen) == 1 and "Building" not in page_html(session)


def test_a_step_whose_view_fails_gives_the_buttons_back(small_planted):
    app = pattern_session_app(data_dir=small_planted)

    class Broken(widgets.HTML):
        def __init__(self, state) -> None:
            raise RuntimeError("planted")

    session = PatternSession(app.state, steps=(STEPS[0], Step("Broken", "t", "a", (Broken,))))
    session.go(1)  # no traceback: the step says it could not be built, in words
    page = page_html(session)
    assert "Step 2 could not be built." in page and "Building" not in page
    assert "planted" not in page and "Traceback" not in page
    assert _buttons(session) == {"Back": False, "Next": True}  # the trainer can go back
    session.go(0)
    assert "Step 2 could not be built." not in page_html(session)
