"""Draw the events of one chunk of reps: deals and their stages, activities, buyer actions.

Part of :mod:`effortlens.sample`. Every step is vectorised over all events of the chunk;
the only Python loops run over the six stages. Times are handled as whole UTC seconds in
``numpy`` and become ``Datetime("us", "UTC")`` only when the tables are built.

Order of drawing, so that every buyer response has a true cause (:func:`generate_chunk` runs
these steps; each draws from the chunk's generator in this order, so the order is part of
the data):

1. each rep's working days get a Poisson number of activities, each with a type and a local
   time in business hours (:func:`_draw_activities`);
2. each rep's deals are created (:func:`_draw_deals`) and walked through the stages, leaving,
   skipping, stalling (:func:`_walk_stages`);
3. customer-facing activities are placed on a deal open that day (or on an account of the
   rep's book) and a contact (:func:`_place_on_deals`, :func:`_place_on_contacts`), and get
   a duration;
4. each customer-facing activity is answered with a probability that carries the planted
   effects, after a lag of hours to days, always within the attribution window
   (:func:`_draw_responses`);
5. buyer-initiated actions land on accounts with no activity in the 14 days before
   (:func:`_draw_initiated`);
6. stage entries are backed, with a per-stage probability, by a buyer action on the deal
   (relabelled as a verifier type): the latest response before the entry, or the next one,
   the entry then moving to just after it (:func:`_back_stages`, see
   :func:`effortlens.sample.backing.back_entries`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl

from effortlens.sample.arrays import (
    Actions,
    Activities,
    Chunk,
    Context,
    Deals,
    Initiated,
    Responses,
    Stages,
    is_verifier_type,
    take,
)
from effortlens.sample.backing import back_entries
from effortlens.sample.draw import DAY, book_rank, categorical
from effortlens.sample.plan import (
    ACTIVITY_TYPES,
    BASE_MIX,
    CALL,
    CUSTOMER_FACING_SHARE,
    EMAIL,
    HOUR_WEIGHTS,
    INTERNAL_MIX,
    N_CUSTOMER_FACING,
    STAGE_VERIFIER,
    expected_open_days,
    volume_factor,
)
from effortlens.sample.tables import (
    actions_table,
    activities_table,
    opportunities_table,
    responses_table,
    stage_table,
)
from effortlens.schema import OUTCOMES
from effortlens.settings import ACTION_TYPES

TOUCHES_PER_DEAL_DAY = 0.8  # most touches an open deal gets on a working day
ON_DEAL_SHARE = np.array([0.8, 0.45])  # of customer-facing activities, by role (AE, SDR)
STUCK_TOUCH_WEIGHT = 0.3  # a stalled deal is touched less often
NEW_DEAL_DAYS, NEW_DEAL_TOUCH_WEIGHT = 10, 2.0  # a new deal is touched more often
LAG_MEDIAN_S = int(3.5 * 3600)
LAG_SIGMA = 1.15
LAG_MAX_S = int(13.5 * DAY)
BUYER_INITIATED_SHARE = 0.10
DEAL_AMOUNT = np.array([12_000.0, 45_000.0, 180_000.0])  # median by segment
OPEN, WON, LOST, NO_DECISION = (OUTCOMES.index(o) for o in ("open", "won", "lost", "no_decision"))


def _action_p(weights: dict[str, float]) -> np.ndarray:
    """Probabilities over :data:`ACTION_TYPES` from relative ``weights`` (others: zero)."""
    p = np.array([weights.get(a, 0.0) for a in ACTION_TYPES])
    return p / p.sum()


#: Response type mix on a deal, off a deal, and of buyer-initiated actions (reply most common).
#: Most verifiers come from stage backing, which relabels the response behind a stage entry.
ON_DEAL_ACTIONS = _action_p(
    {
        "reply": 60,
        "meeting_accepted": 17,
        "content_engaged": 14,
        "meeting_held": 3,
        "referral": 3,
        "proposal_requested": 1.5,
        "mutual_plan": 1,
        "verbal_commit": 0.5,
    }
)
OFF_DEAL_ACTIONS = _action_p(
    {"reply": 55, "meeting_accepted": 20, "content_engaged": 17, "referral": 5, "meeting_held": 3}
)
INITIATED_ACTIONS = _action_p(
    {"content_engaged": 45, "reply": 30, "meeting_accepted": 15, "referral": 10}
)


# --- the chunk ------------------------------------------------------------------------------


def generate_chunk(
    ctx: Context, reps: np.ndarray, rng: np.random.Generator, offsets: dict
) -> Chunk:
    """Draw every event of the reps ``reps`` (a contiguous range of global rep indices).

    ``offsets`` holds the first activity, action and opportunity number of this chunk; it
    is advanced past the numbers used here.
    """
    acts = _draw_activities(ctx, reps, rng)
    deals = _draw_deals(ctx, reps, rng)
    stages = _walk_stages(ctx, deals, rng)
    deal = _place_on_deals(ctx, reps, acts, deals, stages, rng)
    account, contact = _place_on_contacts(ctx, reps, acts, deals, deal, rng)
    duration = _draw_durations(ctx, acts, rng)
    acts = replace(acts, deal=deal, account=account, contact=contact, duration=duration)
    acts = take(acts, np.lexsort((acts.ts, acts.rep)))
    responses = _draw_responses(ctx, reps, acts, rng)
    initiated = _draw_initiated(ctx, reps, acts, len(responses.answered), rng)
    actions = _merge_actions(acts, responses, initiated)
    stages, actions = _back_stages(ctx, deals, stages, actions, rng)
    amount_missing = (stages.outcome == OPEN) & (rng.random(len(deals.rep)) < 0.12)

    numbers = {
        "activity": offsets["activity"] + np.arange(len(acts.ts)),
        "action": offsets["action"] + np.arange(len(actions.ts)),
        "opportunity": offsets["opportunity"] + np.arange(len(deals.rep)),
    }
    for kind, used in numbers.items():
        offsets[kind] += len(used)
    g_act = reps[acts.rep]
    n_all = ctx.org.n_reps
    return Chunk(
        activities=activities_table(ctx, reps, acts, numbers),
        buyer_actions=actions_table(ctx, actions, numbers),
        opportunities=opportunities_table(ctx, deals, stages, amount_missing, numbers),
        stage_history=stage_table(ctx, stages, numbers),
        truth_responses=responses_table(ctx, actions, numbers),
        customer_facing=np.bincount(g_act[acts.is_cf], minlength=n_all),
        calls=np.bincount(g_act[acts.type == CALL], minlength=n_all),
    )


# --- 1. activities --------------------------------------------------------------------------


def _draw_activities(ctx: Context, reps: np.ndarray, rng: np.random.Generator) -> Activities:
    """A Poisson number of activities per rep-day while employed, with types and local times."""
    org, cal = ctx.org, ctx.cal
    n_days, n_reps = cal.n_days, len(reps)
    volume = volume_factor(org)[reps]
    day = np.arange(n_days)
    employed = (day[None, :] >= org.hire_day[reps][:, None]) & (
        day[None, :] < org.exit_day[reps][:, None]
    )
    lam = org.daily_rate * volume[:, None] * cal.weight[None, :] * employed
    cell = np.repeat(np.arange(n_reps * n_days), rng.poisson(lam).ravel())
    a_rep, a_day = cell // n_days, cell % n_days
    n_act = len(cell)

    cf_share = CUSTOMER_FACING_SHARE * org.customer_facing_factor[reps] / volume
    mix = BASE_MIX[None, :] * np.ones((n_reps, 1))
    mix[:, CALL] *= org.call_boost[reps]
    mix = mix / mix.sum(axis=1, keepdims=True) * cf_share[:, None]
    probs = np.hstack([mix, INTERNAL_MIX[None, :] * (1 - cf_share)[:, None]])
    cum = np.cumsum(probs, axis=1)
    a_type = np.minimum(
        (rng.random(n_act)[:, None] > cum[a_rep]).sum(axis=1), len(ACTIVITY_TYPES) - 1
    )
    hours = np.array(list(HOUR_WEIGHTS))
    hour_p = np.array(list(HOUR_WEIGHTS.values()), dtype=float)
    a_local = hours[categorical(rng, hour_p / hour_p.sum(), n_act)] * 3600 + rng.integers(
        0, 3600, n_act
    )
    return Activities(
        rep=a_rep,
        day=a_day,
        type=a_type,
        local=a_local,
        ts=cal.to_utc(a_day, a_local),
        is_cf=a_type < N_CUSTOMER_FACING,
    )


def _cf_per_day(ctx: Context, reps: np.ndarray) -> np.ndarray:
    """Customer-facing activities per full-weight working day of each rep in ``reps``."""
    org = ctx.org
    return org.daily_rate * CUSTOMER_FACING_SHARE * org.customer_facing_factor[reps]


# --- 2. deals and their walk through the stages ---------------------------------------------


def _draw_deals(ctx: Context, reps: np.ndarray, rng: np.random.Generator) -> Deals:
    """Enough deals per rep to carry the on-deal share of their touches, in creation order."""
    org, cal = ctx.org, ctx.cal
    n_days = cal.n_days
    seg_of, role_of = org.segment[reps], org.role[reps]
    open_needed = ON_DEAL_SHARE[role_of] * _cf_per_day(ctx, reps) / TOUCHES_PER_DEAL_DAY
    open_days = expected_open_days(ctx.model, ctx.stage_scale)[seg_of]
    lo = np.minimum(org.hire_day[reps], n_days)
    hi = np.maximum(np.minimum(org.exit_day[reps], n_days) - 3, lo)
    n_deals = rng.poisson(1.15 * open_needed / open_days * (hi - lo))
    d_rep = np.repeat(np.arange(len(reps)), n_deals)
    d_day = cal.draw_days(rng, lo[d_rep], hi[d_rep])
    d_created = cal.to_utc(d_day, rng.integers(9 * 3600, 17 * 3600, len(d_rep)))
    order = np.argsort(d_created, kind="stable")
    d_rep, d_day, d_created = d_rep[order], d_day[order], d_created[order]
    n_deal = len(d_rep)
    g_rep = reps[d_rep]
    d_acc = org.book_start[g_rep] + book_rank(rng, org.book_size[g_rep])
    d_contact_offset = rng.integers(0, 1 << 30, n_deal)
    d_contacts = np.minimum(rng.integers(1, 4, n_deal), org.contact_count[d_acc])
    d_amount = np.round(DEAL_AMOUNT[org.segment[g_rep]] * rng.lognormal(0, 0.5, n_deal), -2)
    return Deals(
        rep=d_rep,
        global_rep=g_rep,
        day=d_day,
        created=d_created,
        account=d_acc,
        contact_offset=d_contact_offset,
        contacts=d_contacts,
        amount=d_amount,
    )


def _walk_stages(ctx: Context, deals: Deals, rng: np.random.Generator) -> Stages:
    """Walk every deal through the stages at once: leave, skip, stall, win, or stay open."""
    org, cal, model = ctx.org, ctx.cal, ctx.model
    n_days, horizon = cal.n_days, cal.horizon
    n_deal = len(deals.rep)
    exit_day = org.exit_day[deals.global_rep]
    exit_s = np.where(exit_day < n_days, cal.day_start(np.minimum(exit_day, n_days)), horizon)
    limit = np.minimum(exit_s, horizon).astype(float)
    outcome = np.full(n_deal, OPEN)
    close = np.full(n_deal, -1, dtype=np.int64)
    stuck_from = np.full(n_deal, np.iinfo(np.int64).max)
    stage = np.zeros(n_deal, dtype=np.int64)
    t = deals.created.astype(float)
    active = np.ones(n_deal, dtype=bool)
    e_deal, e_stage, e_t = [], [], []
    last_stage = len(model.leave_prob) - 1
    seg_duration = model.segment_duration[org.segment[deals.global_rep]]
    while active.any():
        idx = np.flatnonzero(active)
        k, tt = stage[idx], t[idx]
        e_deal.append(idx)
        e_stage.append(k)
        e_t.append(tt)
        median = model.stage_median_days[k] * ctx.stage_scale * seg_duration[idx] * DAY
        leave = tt + median * np.exp(model.duration_sigma * rng.standard_normal(len(idx)))
        stuck = rng.random(len(idx)) < model.stuck_prob[k]
        leave[stuck] = np.inf
        stuck_from[idx[stuck]] = tt[stuck].astype(np.int64)
        cut = leave >= limit[idx]
        by_exit = cut & (exit_s[idx] < horizon)
        outcome[idx[by_exit]] = LOST
        close[idx[by_exit]] = exit_s[idx[by_exit]]
        go = ~cut
        leaves = go & (rng.random(len(idx)) < model.leave_prob[k])
        lost_kind = np.where(rng.random(len(idx)) < 0.5, LOST, NO_DECISION)
        final = leaves | (go & (k == last_stage))
        outcome[idx[final]] = np.where(leaves, lost_kind, WON)[final]
        close[idx[final]] = leave[final].astype(np.int64)
        advance = go & ~final
        skip = advance & (k + 2 < last_stage) & (rng.random(len(idx)) < model.skip_prob)
        active[:] = False
        active[idx[advance]] = True
        stage[idx[advance]] = (k + 1 + skip)[advance]
        t[idx[advance]] = leave[advance]
    return Stages(
        outcome=outcome,
        close=close,
        stuck_from=stuck_from,
        exit_s=exit_s,
        e_deal=np.concatenate(e_deal),
        e_stage=np.concatenate(e_stage),
        e_t=np.concatenate(e_t).astype(np.int64),
    )


# --- 3. where each activity lands -------------------------------------------------------------


def _place_on_deals(
    ctx: Context,
    reps: np.ndarray,
    acts: Activities,
    deals: Deals,
    stages: Stages,
    rng: np.random.Generator,
) -> np.ndarray:
    """The deal of each activity (-1: none): customer-facing ones go to a deal open that day.

    Each open deal-day has a weight (new deals more, stalled deals less); an activity lands on
    a deal with a probability that grows with the weight open that day, then on one of those
    deals in proportion to its weight.
    """
    cal = ctx.cal
    n_days, horizon = cal.n_days, cal.horizon
    n_act = len(acts.ts)
    role_of = ctx.org.role[reps]
    cf_per_day = _cf_per_day(ctx, reps)
    end_s = np.where(stages.close >= 0, stages.close, horizon)
    end_day = np.minimum(cal.local_day(end_s), n_days)
    span = np.maximum(0, end_day - deals.day - 1)
    dd_deal = np.repeat(np.arange(len(deals.rep)), span)
    first = np.repeat(np.cumsum(span) - span, span)
    dd_day = np.repeat(deals.day + 1, span) + (np.arange(len(dd_deal)) - first)
    dd_stuck_day = cal.local_day(np.minimum(stages.stuck_from, horizon))
    dd_w = np.where(dd_day - deals.day[dd_deal] <= NEW_DEAL_DAYS, NEW_DEAL_TOUCH_WEIGHT, 1.0)
    stalled = (stages.stuck_from[dd_deal] < horizon) & (dd_day >= dd_stuck_day[dd_deal])
    dd_w[stalled] = STUCK_TOUCH_WEIGHT
    key = deals.rep[dd_deal] * n_days + dd_day
    order = np.argsort(key, kind="stable")
    key, dd_deal, dd_w = key[order], dd_deal[order], dd_w[order]
    cw = np.concatenate([[0.0], np.cumsum(dd_w)])
    a_key = acts.rep * n_days + acts.day
    k_lo = np.searchsorted(key, a_key, side="left")
    k_hi = np.searchsorted(key, a_key, side="right")
    weight = cw[k_hi] - cw[k_lo]
    p_on = np.minimum(
        ON_DEAL_SHARE[role_of[acts.rep]], weight * TOUCHES_PER_DEAL_DAY / cf_per_day[acts.rep]
    )
    on = acts.is_cf & (weight > 0) & (rng.random(n_act) < p_on)
    a_deal = np.full(n_act, -1, dtype=np.int64)
    pick = cw[k_lo[on]] + rng.random(on.sum()) * weight[on]
    j = np.clip(np.searchsorted(cw, pick, side="right") - 1, k_lo[on], k_hi[on] - 1)
    a_deal[on] = dd_deal[j]
    return a_deal


def _place_on_contacts(
    ctx: Context,
    reps: np.ndarray,
    acts: Activities,
    deals: Deals,
    a_deal: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Account and contact of each customer-facing activity (-1 for internal work).

    On a deal: the deal's account and one of its few contacts; off a deal: an account of the
    rep's book (a few get most touches) and any of its contacts.
    """
    org = ctx.org
    n_act = len(acts.ts)
    on = a_deal >= 0
    a_acc = np.full(n_act, -1, dtype=np.int64)
    a_con = np.full(n_act, -1, dtype=np.int64)
    deal = a_deal[on]
    d_acc = deals.account
    a_acc[on] = d_acc[deal]
    a_con[on] = (
        org.contact_start[d_acc[deal]]
        + (deals.contact_offset[deal] + rng.integers(0, 1 << 20, len(deal)) % deals.contacts[deal])
        % org.contact_count[d_acc[deal]]
    )
    off = acts.is_cf & ~on
    g_off = reps[acts.rep[off]]
    acc = org.book_start[g_off] + book_rank(rng, org.book_size[g_off])
    a_acc[off] = acc
    a_con[off] = (
        org.contact_start[acc] + rng.integers(0, 1 << 20, len(acc)) % org.contact_count[acc]
    )
    return a_acc, a_con


def _draw_durations(ctx: Context, acts: Activities, rng: np.random.Generator) -> np.ndarray:
    """Minutes per activity around the settings' defaults (customer-facing ones scaled)."""
    mean_duration = np.array([ctx.settings.default_duration_min[t] for t in ACTIVITY_TYPES])
    mean_duration[:N_CUSTOMER_FACING] *= ctx.cf_duration_scale
    return np.maximum(
        1.0, np.round(mean_duration[acts.type] * rng.lognormal(-0.1, 0.45, len(acts.ts)), 1)
    )


# --- 4. responses -----------------------------------------------------------------------------


def _response_probability(
    ctx: Context, reps: np.ndarray, acts: Activities, c: np.ndarray
) -> np.ndarray:
    """Probability that each activity ``c`` (customer-facing, by contact then time) is answered.

    Type, segment, role and rep rates; in planted data the timing, cadence and sequence
    effects; and the intervention's effect for participants after its start.
    """
    org, cal, model = ctx.org, ctx.cal, ctx.model
    same = np.concatenate([[False], acts.contact[c][1:] == acts.contact[c][:-1]])
    gap = np.where(same, np.concatenate([[0], np.diff(acts.ts[c])]), np.iinfo(np.int64).max)
    prev_type = np.where(same, np.concatenate([[-1], acts.type[c][:-1]]), -1)
    g = reps[acts.rep[c]]
    p = (
        model.base_rate[acts.type[c]]
        * model.segment_rate[org.segment[g]]
        * model.role_rate[org.role[g]]
        * org.rate_factor[g]
    )
    if model.planted:
        sweet = np.isin(cal.weekday[acts.day[c]], model.best_weekdays) & np.isin(
            acts.local[c] // 3600, model.best_hours
        )
        silent = same & (gap >= model.silence_days * DAY)  # a first touch is not a silence
        follow_up = (
            (acts.type[c] == EMAIL)
            & (prev_type == CALL)
            & (gap <= model.sequence_within_days * DAY)
        )
        p = p * np.where(sweet, model.timing_multiplier, 1.0)
        p = p * np.where(silent, model.cadence_multiplier, 1.0)
        p = p * np.where(follow_up, model.sequence_multiplier, 1.0)
    return p + model.effect * (org.treated[g] & (acts.ts[c] >= ctx.intervention_start))


def _draw_responses(
    ctx: Context, reps: np.ndarray, acts: Activities, rng: np.random.Generator
) -> Responses:
    """Which customer-facing activities are answered, when, and with which action type.

    Answers come after a log-normal lag within the period; buyers answer between 07:00 and
    20:00 their time, so night answers move to the next morning.
    """
    cal = ctx.cal
    n_days, horizon = cal.n_days, cal.horizon
    c = np.flatnonzero(acts.is_cf)
    c = c[np.lexsort((acts.ts[c], acts.contact[c]))]
    p = _response_probability(ctx, reps, acts, c)
    answered = c[rng.random(len(c)) < np.clip(p, 0.0, 0.95)]

    lag = np.exp(np.log(LAG_MEDIAN_S) + LAG_SIGMA * rng.standard_normal(len(answered)))
    r_ts = acts.ts[answered] + np.clip(lag, 120, LAG_MAX_S).astype(np.int64)
    keep = r_ts < horizon
    answered, r_ts = answered[keep], r_ts[keep]
    r_day = cal.local_day(r_ts)
    hour = (r_ts + cal.utc_offset[r_day] - cal.naive_midnight[r_day]) // 3600
    morning = 7 * 3600 + rng.integers(0, 2 * 3600, len(r_ts))
    r_ts = np.where(hour < 7, cal.to_utc(r_day, morning), r_ts)
    r_ts = np.where(hour >= 20, cal.to_utc(np.minimum(r_day + 1, n_days), morning), r_ts)
    keep = r_ts < horizon
    answered, r_ts = answered[keep], r_ts[keep]
    on_deal = categorical(rng, ON_DEAL_ACTIONS, len(answered))
    off_deal = categorical(rng, OFF_DEAL_ACTIONS, len(answered))
    r_type = np.where(acts.deal[answered] >= 0, on_deal, off_deal)
    return Responses(answered=answered, ts=r_ts, type=r_type)


# --- 5. buyer-initiated actions ---------------------------------------------------------------


def _draw_initiated(
    ctx: Context, reps: np.ndarray, acts: Activities, n_answered: int, rng: np.random.Generator
) -> Initiated:
    """About 10% of all actions, on the chunk's accounts with no touch in the window before."""
    org, cal = ctx.org, ctx.cal
    n_days = cal.n_days
    window_s = ctx.settings.attribution_window_days * DAY
    n_initiated = round(n_answered * BUYER_INITIATED_SHARE / (1 - BUYER_INITIATED_SHARE))
    acc_lo = org.book_start[reps[0]]
    acc_hi = org.book_start[reps[-1]] + org.book_size[reps[-1]]
    n_cand = 4 * n_initiated + 50
    cand_acc = rng.integers(acc_lo, acc_hi, n_cand)
    cand_day = cal.draw_days(rng, np.zeros(n_cand, dtype=np.int64), np.full(n_cand, n_days))
    cand_ts = cal.to_utc(cand_day, rng.integers(8 * 3600, 18 * 3600, n_cand))
    cand = pl.DataFrame({"acc": cand_acc, "ts": cand_ts, "i": np.arange(n_cand)}).sort("ts")
    touches = pl.DataFrame({"acc": acts.account[acts.is_cf], "last": acts.ts[acts.is_cf]})
    cand = (
        cand.join_asof(
            touches.sort("last"),
            left_on="ts",
            right_on="last",
            by="acc",
            strategy="backward",
            check_sortedness=False,
        )
        .filter(pl.col("last").is_null() | (pl.col("ts") - pl.col("last") > window_s + 3600))
        .sort("i")
        .head(n_initiated)
    )
    b_acc = cand["acc"].to_numpy()
    b_con = (
        org.contact_start[b_acc] + rng.integers(0, 1 << 20, len(b_acc)) % org.contact_count[b_acc]
    )
    return Initiated(
        account=b_acc,
        ts=cand["ts"].to_numpy(),
        contact=b_con,
        type=categorical(rng, INITIATED_ACTIONS, len(b_acc)),
    )


def _merge_actions(acts: Activities, responses: Responses, initiated: Initiated) -> Actions:
    """Responses and buyer-initiated actions as one list in time order."""
    answered = responses.answered
    none = np.full(len(initiated.ts), -1)
    actions = Actions(
        ts=np.concatenate([responses.ts, initiated.ts]),
        source=np.concatenate([answered, none]),
        deal=np.concatenate([acts.deal[answered], none]),
        account=np.concatenate([acts.account[answered], initiated.account]),
        contact=np.concatenate([acts.contact[answered], initiated.contact]),
        type=np.concatenate([responses.type, initiated.type]),
    )
    return take(actions, np.lexsort((actions.source, actions.ts)))


# --- 6. stage entries backed by buyer actions -------------------------------------------------


def _back_stages(
    ctx: Context, deals: Deals, stages: Stages, actions: Actions, rng: np.random.Generator
) -> tuple[Stages, Actions]:
    """Back stage entries with buyer actions on the deal, relabelled as the stage's verifier.

    The entries come back sorted by deal, then time, with their picks; the action that
    opened a deal (picked before the deal existed) now belongs to the deal.
    """
    horizon = ctx.cal.horizon
    stages = _take_entries(stages, np.lexsort((stages.e_t, stages.e_deal)))
    e_deal, e_stage = stages.e_deal, stages.e_stage
    wanted = rng.random(len(stages.e_t)) < ctx.model.verify_prob[e_stage]
    deal_close = np.where(stages.close >= 0, stages.close, np.minimum(stages.exit_s, horizon))
    e_pick, e_t = back_entries(
        actions.deal,
        actions.ts,
        actions.account,
        e_deal,
        stages.e_t,
        wanted,
        deal_close[e_deal],
        deals.account[e_deal],
        rng.random(len(stages.e_t)),
    )
    x_deal, x_type = actions.deal.copy(), actions.type.copy()
    first_pick = np.flatnonzero((e_pick >= 0) & np.concatenate([[True], e_deal[1:] != e_deal[:-1]]))
    x_deal[e_pick[first_pick]] = e_deal[first_pick]
    chosen = e_pick >= 0
    verifier = is_verifier_type(ctx.settings)
    relabel = e_pick[chosen]
    stage_type = np.array([ACTION_TYPES.index(v) for v in STAGE_VERIFIER])[e_stage[chosen]]
    x_type[relabel] = np.where(verifier[x_type[relabel]], x_type[relabel], stage_type)
    return replace(stages, e_t=e_t, e_pick=e_pick), replace(actions, deal=x_deal, type=x_type)


def _take_entries(stages: Stages, order: np.ndarray) -> Stages:
    """``stages`` with its entries (not its deals) reordered."""
    return replace(
        stages,
        e_deal=stages.e_deal[order],
        e_stage=stages.e_stage[order],
        e_t=stages.e_t[order],
    )
