"""Habits and patterns: which timings, cadences and sequences pay, which are wasted effort."""

from __future__ import annotations

from effortlens_widgets.app import App
from effortlens_widgets.views import Habits


def habits_app(**kwargs) -> App:
    """The habits-and-patterns page."""
    return App(
        title="Habits and patterns",
        question="Which timings, cadences and sequences pay — and which are wasted effort?",
        views=[Habits],
        daily_counts=("activities",),  # the habits read touches; the roll-up, which days
        daily_rep_codes=True,  # its views never join the roll-up's reps (test_state_memory)
        **kwargs,
    )
