"""Positive deviance: who outperforms peers just like them, and what they do differently."""

from __future__ import annotations

from effortlens_widgets.app import App
from effortlens_widgets.views import Deviance


def positive_deviance_app(**kwargs) -> App:
    """The positive-deviance page."""
    return App(
        title="Positive deviance",
        question="Who outperforms peers just like them — and what do they do differently?",
        views=[Deviance],
        filters=("period", "team", "segment", "role"),
        daily_counts=("activities", "responded"),
        daily_rep_codes=True,  # its views never join the roll-up's reps (test_state_memory)
        **kwargs,
    )
