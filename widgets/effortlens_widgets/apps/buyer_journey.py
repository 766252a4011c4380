"""Buyer journey: where deals leak or stall, and which stages lack buyer verification."""

from __future__ import annotations

from effortlens_widgets.app import App
from effortlens_widgets.views import Journey


def buyer_journey_app(**kwargs) -> App:
    """The buyer-journey page."""
    return App(
        title="Buyer journey",
        question="Where do deals leak or stall — and which stages lack buyer verification?",
        views=[Journey],
        filters=("period", "team", "segment", "role", "rep"),
        daily_counts=("activities",),  # the roll-up only says which days and types have effort
        daily_rep_codes=True,  # its views never join the roll-up's reps (test_state_memory)
        **kwargs,
    )
