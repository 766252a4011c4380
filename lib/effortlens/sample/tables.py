"""The canonical tables of one chunk, built from the arrays the event steps drew.

Part of :mod:`effortlens.sample`. Ids are a prefix and a zero-padded number (widths from the
context, so that every chunk's ids sort alike); ``numbers`` holds the chunk's activity, action
and opportunity numbers.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from effortlens.sample.arrays import Actions, Activities, Context, Deals, Stages, is_verifier_type
from effortlens.sample.draw import ids, timestamps
from effortlens.sample.plan import ACTIVITY_TYPES
from effortlens.schema import OUTCOMES, conform
from effortlens.settings import ACTION_TYPES


def _rep_ids(ctx: Context, global_reps: np.ndarray) -> pl.Series:
    """The rep id of each global rep index."""
    if len(global_reps) == 0:
        return pl.Series([], dtype=pl.String)
    return pl.Series(ctx.org.rep_id)[global_reps]


def _opportunity_ids(ctx: Context, deal: np.ndarray, numbers: dict) -> pl.Series:
    """Opportunity ids of deal indices (-1: null)."""
    number = np.where(deal >= 0, numbers["opportunity"][deal], -1)
    return ids("OPP", number, ctx.widths["opportunity"])


def activities_table(
    ctx: Context, reps: np.ndarray, acts: Activities, numbers: dict
) -> pl.DataFrame:
    """The canonical ``activities`` table of the chunk."""
    w = ctx.widths
    activities = pl.DataFrame(
        {
            "activity_id": ids("ACT", numbers["activity"], w["activity"]),
            "rep_id": _rep_ids(ctx, reps[acts.rep]),
            "ts": timestamps(acts.ts),
            "activity_type": np.array(ACTIVITY_TYPES)[acts.type],
            "account_id": ids("ACC", acts.account, w["account"]),
            "opportunity_id": _opportunity_ids(ctx, acts.deal, numbers),
            "contact_id": ids("CON", acts.contact, w["contact"]),
            "duration_min": acts.duration,
        }
    )
    return conform(activities, "activities").collect()


def actions_table(ctx: Context, actions: Actions, numbers: dict) -> pl.DataFrame:
    """The canonical ``buyer_actions`` table of the chunk."""
    w = ctx.widths
    weights = np.array([ctx.settings.action_weights[a] for a in ACTION_TYPES])
    buyer_actions = pl.DataFrame(
        {
            "action_id": ids("BA", numbers["action"], w["action"]),
            "ts": timestamps(actions.ts),
            "account_id": ids("ACC", actions.account, w["account"]),
            "opportunity_id": _opportunity_ids(ctx, actions.deal, numbers),
            "contact_id": ids("CON", actions.contact, w["contact"]),
            "action_type": np.array(ACTION_TYPES)[actions.type],
            "is_verifier": is_verifier_type(ctx.settings)[actions.type],
            "weight": weights[actions.type],
        }
    )
    return conform(buyer_actions, "buyer_actions").collect()


def opportunities_table(
    ctx: Context, deals: Deals, stages: Stages, amount_missing: np.ndarray, numbers: dict
) -> pl.DataFrame:
    """The canonical ``opportunities`` table; some open deals have no amount yet."""
    w = ctx.widths
    close = stages.close
    n_deal = len(deals.rep)
    opportunities = pl.DataFrame(
        {
            "opportunity_id": ids("OPP", numbers["opportunity"], w["opportunity"]),
            "account_id": ids("ACC", deals.account, w["account"]),
            "rep_id": _rep_ids(ctx, deals.global_rep),
            "created_ts": timestamps(deals.created),
            "amount": pl.Series(np.where(amount_missing, np.nan, deals.amount)).fill_nan(None),
            "currency": pl.Series(["USD"] * n_deal, dtype=pl.String),
            "close_ts": timestamps(np.maximum(close, 0), close >= 0),
            "outcome": np.array(OUTCOMES)[stages.outcome],
        }
    )
    return conform(opportunities, "opportunities").collect()


def stage_table(ctx: Context, stages: Stages, numbers: dict) -> pl.DataFrame:
    """The canonical ``stage_history`` table, with the backing action of each entry."""
    w = ctx.widths
    pick = stages.e_pick
    stage_history = pl.DataFrame(
        {
            "opportunity_id": ids("OPP", numbers["opportunity"][stages.e_deal], w["opportunity"]),
            "stage": np.array(ctx.settings.stages)[stages.e_stage],
            "entered_ts": timestamps(stages.e_t),
            "verifier_action_id": ids(
                "BA", np.where(pick >= 0, numbers["action"][np.maximum(pick, 0)], -1), w["action"]
            ),
            "derived": np.zeros(len(stages.e_stage), dtype=bool),  # recorded stage changes
        }
    )
    return conform(stage_history, "stage_history").collect()


def responses_table(ctx: Context, actions: Actions, numbers: dict) -> pl.DataFrame:
    """``action_id`` -> the ``activity_id`` it truly answers (null when buyer-initiated)."""
    w = ctx.widths
    source = actions.source
    activity = np.where(source >= 0, numbers["activity"][np.maximum(source, 0)], -1)
    return pl.DataFrame(
        {
            "action_id": ids("BA", numbers["action"], w["action"]),
            "activity_id": ids("ACT", activity, w["activity"]),
        }
    )
