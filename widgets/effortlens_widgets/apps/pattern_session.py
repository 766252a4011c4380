"""Pattern session: a guided walk for a trainer and a team through its own patterns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as widgets
import polars as pl
from traitlets import Int, observe, validate

from effortlens.findings import by_section, findings_html, team_findings
from effortlens_widgets._html import error_box, escape
from effortlens_widgets.app import DRAW_PROBLEM, App, View, log_problem
from effortlens_widgets.state import PageState
from effortlens_widgets.views import (
    BySlice,
    Deviance,
    Habits,
    Headline,
    Journey,
    Trend,
    page_coverage,
)


class Recap(View):
    """The session's findings side by side, to choose the one habit to try."""

    def __init__(self, state) -> None:
        """Build the recap on ``state``."""
        super().__init__(state)
        self._html = widgets.HTML()
        self.children = [self._html]

    def render(self, view) -> None:
        """Put the habits, deviance and journey findings of the selection side by side."""
        found = team_findings(view, present=self.state.present, coverage=page_coverage(self.state))
        parts = ['<h3 class="el-panel-title">What we saw</h3>']
        parts += [findings_html(section) for section in by_section(found)]
        self._html.value = "".join(parts)


@dataclass(frozen=True)
class Step:
    """One step of the session: a title, what to say and ask, and the views to show."""

    title: str
    talk: str
    ask: str
    views: tuple[Callable[[PageState], widgets.Widget], ...]


STEPS: tuple[Step, ...] = (
    Step(
        "Where our effort goes",
        "This is all of our customer-facing effort and what buyers did in response. A touch "
        "that earns a reply, a meeting or a request is effort that worked.",
        "Which number surprises you? Is our week-to-week line going up or down?",
        (Headline, Trend),
    ),
    Step(
        "Effort with no answer",
        "Many touches earn no buyer action at all. Compare activity types: which ones earn "
        "buyer action, and which mostly go unanswered?",
        "Which kind of touch would you do less of? Which more?",
        (BySlice,),
    ),
    Step(
        "When buyers answer",
        "Does the same touch work better at some times, or after some gaps, than others? "
        "Read the finding first: it names only the hours and gaps that stand out beyond "
        "chance, and says so when none does.",
        "What would change in your calendar if you used this?",
        (Habits,),
    ),
    Step(
        "Peers who do better",
        "Some of us get far more buyer response than peers with the same segment and role. "
        "Names are hidden: this is about practices, not people.",
        "What do you think the standouts do differently? Write your guess before the next step.",
        (Deviance,),
    ),
    Step(
        "Where deals leak or stall",
        "Deals leak at some stages and wait at others; some stage moves have no buyer evidence "
        "behind them.",
        "Which stage should we ask the buyer for proof before we move a deal on?",
        (Journey,),
    ),
    Step(
        "What we try next",
        "Pick one habit to try for the next four weeks, in pairs. The rep mirror page shows "
        "each of you week by week whether it moves your own meter; the interventions page "
        "will tell us whether it changed anything for the team.",
        "Which one habit will you try, and how will you know it worked?",
        (Recap,),
    ),
)


class PatternSession(widgets.VBox):
    """Next/back through :data:`STEPS`; each step's views are built on first visit."""

    step = Int(0, help="Index of the step on screen (0 is the first; out-of-range is clamped).")

    def __init__(self, state: PageState, *, steps: tuple[Step, ...] = STEPS) -> None:
        """Build the navigation on ``state`` and show the first of ``steps``."""
        self._steps = steps
        super().__init__()
        self.state = state
        self._built: dict[int, widgets.Widget] = {}
        self._header = widgets.HTML()
        self._back = widgets.Button(description="Back", icon="arrow-left")
        self._next = widgets.Button(description="Next", icon="arrow-right", button_style="primary")
        self._back.on_click(lambda _b: self.go(self.step - 1))
        self._next.on_click(lambda _b: self.go(self.step + 1))
        self._progress = widgets.HTML()
        self._body = widgets.Box(layout={"display": "block"})
        nav = widgets.HBox(
            [self._back, self._next, self._progress],
            layout={"align_items": "center"},
        )
        nav.add_class("el-row")
        self.children = [nav, self._header, self._body]
        self._on_step()

    @property
    def views(self) -> list[widgets.Widget]:
        """The views of the steps visited so far, in step order."""
        return [view for index in sorted(self._built) for view in self._built[index].children]

    @property
    def frames(self) -> dict[str, pl.DataFrame]:
        """The frames drawn by the views of the steps visited so far, by name."""
        found: dict[str, pl.DataFrame] = {}
        for view in self.views:
            found.update(getattr(view, "frames", {}))
        return found

    def go(self, index: int) -> None:
        """Show step ``index`` (clamped to the first and last step)."""
        self.step = index

    @validate("step")
    def _valid_step(self, proposal):
        return max(0, min(proposal["value"], len(self._steps) - 1))

    @observe("step")
    def _on_step(self, change=None) -> None:
        index = self.step
        s = self._steps[index]
        self._back.disabled = index == 0
        self._next.disabled = index == len(self._steps) - 1
        self._progress.value = (
            f'<span class="el-muted">Step {index + 1} of {len(self._steps)}</span>'
        )
        self._header.value = (
            f'<div class="el-step"><h2>{index + 1}. {escape(s.title)}</h2>'
            f'<p>{escape(s.talk)}</p><p class="el-ask">Ask the team: {escape(s.ask)}</p></div>'
        )
        if index not in self._built:
            # the previous step's charts come down at once: under this step's title they would
            # read as its own while its views are built (seconds, on a first visit)
            self._body.children = [self._building(index)]
            self._back.disabled = self._next.disabled = True
            try:
                views = [make(self.state) for make in s.views]
                for view in views:
                    view.refresh()  # a view that cannot draw says so in its place
                self._built[index] = widgets.VBox(views)
            except (Exception, pl.exceptions.PanicException) as err:  # never a traceback
                at = log_problem(f"step {index + 1} of the pattern session", err)
                self._body.children = [
                    widgets.HTML(
                        error_box(
                            f"Step {index + 1} could not be built.", DRAW_PROBLEM.format(at=at)
                        )
                    )
                ]
                return
            finally:
                self._back.disabled = index == 0
                self._next.disabled = index == len(self._steps) - 1
        self._body.children = [self._built[index]]

    def _building(self, index: int) -> widgets.Widget:
        """What the body shows while step ``index``'s views are built."""
        note = widgets.HTML(
            f'<div class="el-note el-building">Building step {index + 1}, '
            f"{escape(self._steps[index].title)}…</div>"
        )
        note.add_class("el-building")
        return note


def pattern_session_app(*, anonymise: bool = True, **kwargs) -> App:
    """The guided session; names are hidden unless ``anonymise=False``."""
    return App(
        title="Pattern session",
        question="A guided walk for a trainer and a team through the team's own patterns.",
        views=[PatternSession],
        filters=("period", "team", "segment", "role"),
        anonymise=anonymise,
        daily_rep_codes=True,  # every step's views as with text ids (tests/test_state_memory.py)
        **kwargs,
    )
