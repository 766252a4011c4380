"""Draw the events of one chunk of reps: deals and their stages, activities, buyer actions.

Private to :mod:`effortlens.sample`. Every step is vectorised over all events of the chunk;
the only Python loops run over the six stages. Times are handled as whole UTC seconds in
``numpy`` and become ``Datetime("us", "UTC")`` only when the tables are built.

Order of drawing, so that every buyer response has a true cause:

1. each rep's working days get a Poisson number of activities, each with a type and a local
   time in business hours;
2. each rep's deals are created and walked through the stages (leaving, skipping, stalling);
3. customer-facing activities are placed on a deal open that day (or on an account of the
   rep's book) and a contact;
4. each customer-facing activity is answered with a probability that carries the planted
   effects, after a lag of hours to days (always within the attribution window);
5. buyer-initiated actions land on accounts with no activity in the 14 days before;
6. stage entries are backed, with a per-stage probability, by a buyer action on the deal
   (relabelled as a verifier type): the latest response before the entry, or the next one,
   the entry then moving to just after it (see ``_back_entries``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from effortlens._sample_plan import (
    ACTIVITY_TYPES,
    BASE_MIX,
    CALL,
    CUSTOMER_FACING_SHARE,
    EMAIL,
    HOUR_WEIGHTS,
    INTERNAL_MIX,
    N_CUSTOMER_FACING,
    STAGE_VERIFIER,
    Calendar,
    Model,
    Org,
    expected_open_days,
    volume_factor,
)
from effortlens.schema import OUTCOMES, conform
from effortlens.settings import ACTION_TYPES, Settings

DAY = 86400
TOUCHES_PER_DEAL_DAY = 0.8  # most touches an open deal gets on a working day
ON_DEAL_SHARE = np.array([0.8, 0.45])  # of customer-facing activities, by role (AE, SDR)
STUCK_TOUCH_WEIGHT = 0.3  # a stalled deal is touched less often
NEW_DEAL_DAYS, NEW_DEAL_TOUCH_WEIGHT = 10, 2.0  # a new deal is touched more often
MOVE_DAYS = 10  # a stage entry waits at most this long for the buyer action that backs it
LAG_MEDIAN_S = int(3.5 * 3600)
LAG_SIGMA = 1.15
LAG_MAX_S = int(13.5 * DAY)
BUYER_INITIATED_SHARE = 0.10
DEAL_AMOUNT = np.array([12_000.0, 45_000.0, 180_000.0])  # median by segment
OPEN, WON, LOST, NO_DECISION = (OUTCOMES.index(o) for o in ("open", "won", "lost", "no_decision"))


def _action_p(weights: dict[str, float]) -> np.ndarray:
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


@dataclass(frozen=True)
class Context:
    """What every chunk shares: rules, calendar, settings and id layout."""

    org: Org
    cal: Calendar
    model: Model
    settings: Settings
    intervention_start: int  # UTC seconds
    cf_duration_scale: float
    stage_scale: float
    widths: dict[str, int]


@dataclass
class Chunk:
    """The tables of one chunk and the counts the truth file needs."""

    activities: pl.DataFrame
    buyer_actions: pl.DataFrame
    opportunities: pl.DataFrame
    stage_history: pl.DataFrame
    truth_responses: pl.DataFrame
    customer_facing: np.ndarray  # per rep (global index), customer-facing activities
    calls: np.ndarray


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    """``prefix`` + zero-padded number; negative numbers become nulls."""
    s = pl.Series("n", numbers, dtype=pl.Int64)
    return (
        pl.select(
            pl.when(s >= 0).then(pl.concat_str(pl.lit(prefix), s.cast(pl.String).str.zfill(width)))
        )
        .to_series()
        .alias(prefix)
    )


def _timestamps(seconds: np.ndarray, valid: np.ndarray | None = None) -> pl.Series:
    s = pl.from_epoch(pl.Series("s", seconds, dtype=pl.Int64), time_unit="s")
    s = s.dt.replace_time_zone("UTC")
    if valid is not None:
        s = pl.select(pl.when(pl.Series(valid)).then(s)).to_series()
    return s


def _categorical(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    return np.searchsorted(np.cumsum(p)[:-1], rng.random(n), side="right")


def _book_rank(rng: np.random.Generator, size: np.ndarray) -> np.ndarray:
    """An account rank in a book of ``size`` accounts; a few accounts get most of the touches."""
    out = np.zeros(len(size), dtype=np.int64)
    for n in np.unique(size):
        sel = size == n
        cdf = np.cumsum(1.0 / (np.arange(n) + 2.0))
        out[sel] = np.searchsorted(cdf / cdf[-1], rng.random(sel.sum()), side="right")
    return np.minimum(out, size - 1)


def generate_chunk(
    ctx: Context, reps: np.ndarray, rng: np.random.Generator, offsets: dict
) -> Chunk:
    """Draw every event of the reps ``reps`` (a contiguous range of global rep indices)."""
    org, cal, model = ctx.org, ctx.cal, ctx.model
    n_days = cal.n_days
    n_reps = len(reps)
    seg_of = org.segment[reps]
    role_of = org.role[reps]

    # --- 1. activities per rep-day, their types and local times
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
    a_local = hours[_categorical(rng, hour_p / hour_p.sum(), n_act)] * 3600 + rng.integers(
        0, 3600, n_act
    )
    a_ts = cal.to_utc(a_day, a_local)
    is_cf = a_type < N_CUSTOMER_FACING

    # --- 2. deals: creation, then a walk through the stages
    cf_per_day = org.daily_rate * CUSTOMER_FACING_SHARE * org.customer_facing_factor[reps]
    open_needed = ON_DEAL_SHARE[role_of] * cf_per_day / TOUCHES_PER_DEAL_DAY
    open_days = expected_open_days(model, ctx.stage_scale)[seg_of]
    lo = np.minimum(org.hire_day[reps], n_days)
    hi = np.maximum(np.minimum(org.exit_day[reps], n_days) - 3, lo)
    n_deals = rng.poisson(1.15 * open_needed / open_days * (hi - lo))
    d_rep = np.repeat(np.arange(n_reps), n_deals)
    d_day = cal.draw_days(rng, lo[d_rep], hi[d_rep])
    d_created = cal.to_utc(d_day, rng.integers(9 * 3600, 17 * 3600, len(d_rep)))
    order = np.argsort(d_created, kind="stable")
    d_rep, d_day, d_created = d_rep[order], d_day[order], d_created[order]
    n_deal = len(d_rep)
    g_rep = reps[d_rep]
    d_acc = org.book_start[g_rep] + _book_rank(rng, org.book_size[g_rep])
    d_contact_offset = rng.integers(0, 1 << 30, n_deal)
    d_contacts = np.minimum(rng.integers(1, 4, n_deal), org.contact_count[d_acc])
    d_amount = np.round(DEAL_AMOUNT[org.segment[g_rep]] * rng.lognormal(0, 0.5, n_deal), -2)

    horizon = cal.horizon
    exit_day = org.exit_day[g_rep]
    exit_s = np.where(exit_day < n_days, cal.day_start(np.minimum(exit_day, n_days)), horizon)
    limit = np.minimum(exit_s, horizon).astype(float)
    outcome = np.full(n_deal, OPEN)
    close = np.full(n_deal, -1, dtype=np.int64)
    stuck_from = np.full(n_deal, np.iinfo(np.int64).max)
    stage = np.zeros(n_deal, dtype=np.int64)
    t = d_created.astype(float)
    active = np.ones(n_deal, dtype=bool)
    e_deal, e_stage, e_t = [], [], []
    last_stage = len(model.leave_prob) - 1
    seg_duration = model.segment_duration[org.segment[g_rep]]
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
    e_deal, e_stage = np.concatenate(e_deal), np.concatenate(e_stage)
    e_t = np.concatenate(e_t).astype(np.int64)

    # --- 3. customer-facing activities go to a deal open that day, else to the rep's book
    end_s = np.where(close >= 0, close, horizon)
    end_day = np.minimum(cal.local_day(end_s), n_days)
    span = np.maximum(0, end_day - d_day - 1)
    dd_deal = np.repeat(np.arange(n_deal), span)
    first = np.repeat(np.cumsum(span) - span, span)
    dd_day = np.repeat(d_day + 1, span) + (np.arange(len(dd_deal)) - first)
    dd_stuck_day = cal.local_day(np.minimum(stuck_from, horizon))
    dd_w = np.where(dd_day - d_day[dd_deal] <= NEW_DEAL_DAYS, NEW_DEAL_TOUCH_WEIGHT, 1.0)
    dd_w[(stuck_from[dd_deal] < horizon) & (dd_day >= dd_stuck_day[dd_deal])] = STUCK_TOUCH_WEIGHT
    key = d_rep[dd_deal] * n_days + dd_day
    order = np.argsort(key, kind="stable")
    key, dd_deal, dd_w = key[order], dd_deal[order], dd_w[order]
    cw = np.concatenate([[0.0], np.cumsum(dd_w)])
    a_key = a_rep * n_days + a_day
    k_lo = np.searchsorted(key, a_key, side="left")
    k_hi = np.searchsorted(key, a_key, side="right")
    weight = cw[k_hi] - cw[k_lo]
    p_on = np.minimum(
        ON_DEAL_SHARE[role_of[a_rep]], weight * TOUCHES_PER_DEAL_DAY / cf_per_day[a_rep]
    )
    on = is_cf & (weight > 0) & (rng.random(n_act) < p_on)
    a_deal = np.full(n_act, -1, dtype=np.int64)
    pick = cw[k_lo[on]] + rng.random(on.sum()) * weight[on]
    j = np.clip(np.searchsorted(cw, pick, side="right") - 1, k_lo[on], k_hi[on] - 1)
    a_deal[on] = dd_deal[j]

    a_acc = np.full(n_act, -1, dtype=np.int64)
    a_con = np.full(n_act, -1, dtype=np.int64)
    deal = a_deal[on]
    a_acc[on] = d_acc[deal]
    a_con[on] = (
        org.contact_start[d_acc[deal]]
        + (d_contact_offset[deal] + rng.integers(0, 1 << 20, len(deal)) % d_contacts[deal])
        % org.contact_count[d_acc[deal]]
    )
    off = is_cf & ~on
    g_off = reps[a_rep[off]]
    acc = org.book_start[g_off] + _book_rank(rng, org.book_size[g_off])
    a_acc[off] = acc
    a_con[off] = (
        org.contact_start[acc] + rng.integers(0, 1 << 20, len(acc)) % org.contact_count[acc]
    )

    mean_duration = np.array([ctx.settings.default_duration_min[t] for t in ACTIVITY_TYPES])
    mean_duration[:N_CUSTOMER_FACING] *= ctx.cf_duration_scale
    a_duration = np.maximum(
        1.0, np.round(mean_duration[a_type] * rng.lognormal(-0.1, 0.45, n_act), 1)
    )

    order = np.lexsort((a_ts, a_rep))
    a_rep, a_day, a_type, a_local, a_ts = (x[order] for x in (a_rep, a_day, a_type, a_local, a_ts))
    a_deal, a_acc, a_con, a_duration, is_cf = (
        x[order] for x in (a_deal, a_acc, a_con, a_duration, is_cf)
    )
    a_number = offsets["activity"] + np.arange(n_act)

    # --- 4. responses: each customer-facing activity is answered with probability p
    c = np.flatnonzero(is_cf)
    c = c[np.lexsort((a_ts[c], a_con[c]))]
    same = np.concatenate([[False], a_con[c][1:] == a_con[c][:-1]])
    gap = np.where(same, np.concatenate([[0], np.diff(a_ts[c])]), np.iinfo(np.int64).max)
    prev_type = np.where(same, np.concatenate([[-1], a_type[c][:-1]]), -1)
    g = reps[a_rep[c]]
    p = (
        model.base_rate[a_type[c]]
        * model.segment_rate[org.segment[g]]
        * model.role_rate[org.role[g]]
        * org.rate_factor[g]
    )
    if model.planted:
        sweet = np.isin(cal.weekday[a_day[c]], model.best_weekdays) & np.isin(
            a_local[c] // 3600, model.best_hours
        )
        silent = same & (gap >= model.silence_days * DAY)  # a first touch is not a silence
        follow_up = (
            (a_type[c] == EMAIL) & (prev_type == CALL) & (gap <= model.sequence_within_days * DAY)
        )
        p = p * np.where(sweet, model.timing_multiplier, 1.0)
        p = p * np.where(silent, model.cadence_multiplier, 1.0)
        p = p * np.where(follow_up, model.sequence_multiplier, 1.0)
    p = p + model.effect * (org.treated[g] & (a_ts[c] >= ctx.intervention_start))
    answered = c[rng.random(len(c)) < np.clip(p, 0.0, 0.95)]

    lag = np.exp(np.log(LAG_MEDIAN_S) + LAG_SIGMA * rng.standard_normal(len(answered)))
    r_ts = a_ts[answered] + np.clip(lag, 120, LAG_MAX_S).astype(np.int64)
    keep = r_ts < horizon
    answered, r_ts = answered[keep], r_ts[keep]
    # buyers answer between 07:00 and 20:00 their time: night answers move to the morning
    r_day = cal.local_day(r_ts)
    hour = (r_ts + cal.utc_offset[r_day] - cal.naive_midnight[r_day]) // 3600
    morning = 7 * 3600 + rng.integers(0, 2 * 3600, len(r_ts))
    r_ts = np.where(hour < 7, cal.to_utc(r_day, morning), r_ts)
    r_ts = np.where(hour >= 20, cal.to_utc(np.minimum(r_day + 1, n_days), morning), r_ts)
    keep = r_ts < horizon
    answered, r_ts = answered[keep], r_ts[keep]
    r_on_deal = a_deal[answered] >= 0
    r_type = np.where(
        r_on_deal,
        _categorical(rng, ON_DEAL_ACTIONS, len(answered)),
        _categorical(rng, OFF_DEAL_ACTIONS, len(answered)),
    )

    # --- 5. buyer-initiated actions: accounts with no touch in the 14 days before
    window_s = ctx.settings.attribution_window_days * DAY
    n_initiated = round(len(answered) * BUYER_INITIATED_SHARE / (1 - BUYER_INITIATED_SHARE))
    acc_lo = org.book_start[reps[0]]
    acc_hi = org.book_start[reps[-1]] + org.book_size[reps[-1]]
    n_cand = 4 * n_initiated + 50
    cand = pl.DataFrame(
        {
            "acc": rng.integers(acc_lo, acc_hi, n_cand),
            "ts": cal.to_utc(
                cal.draw_days(rng, np.zeros(n_cand, dtype=np.int64), np.full(n_cand, n_days)),
                rng.integers(8 * 3600, 18 * 3600, n_cand),
            ),
            "i": np.arange(n_cand),
        }
    ).sort("ts")
    touches = pl.DataFrame({"acc": a_acc[is_cf], "last": a_ts[is_cf]}).sort("last")
    cand = (
        cand.join_asof(
            touches,
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
    b_ts = cand["ts"].to_numpy()
    b_con = (
        org.contact_start[b_acc] + rng.integers(0, 1 << 20, len(b_acc)) % org.contact_count[b_acc]
    )
    b_type = _categorical(rng, INITIATED_ACTIONS, len(b_acc))

    x_ts = np.concatenate([r_ts, b_ts])
    x_src = np.concatenate([answered, np.full(len(b_ts), -1)])
    x_deal = np.concatenate([a_deal[answered], np.full(len(b_ts), -1)])
    x_acc = np.concatenate([a_acc[answered], b_acc])
    x_con = np.concatenate([a_con[answered], b_con])
    x_type = np.concatenate([r_type, b_type])
    order = np.lexsort((x_src, x_ts))
    x_ts, x_src, x_deal, x_acc, x_con, x_type = (
        x[order] for x in (x_ts, x_src, x_deal, x_acc, x_con, x_type)
    )
    x_number = offsets["action"] + np.arange(len(x_ts))

    # --- 6. stage entries backed by a response of the buyer on the deal
    order = np.lexsort((e_t, e_deal))
    e_deal, e_stage, e_t = e_deal[order], e_stage[order], e_t[order]
    wanted = rng.random(len(e_t)) < model.verify_prob[e_stage]
    deal_close = np.where(close >= 0, close, np.minimum(exit_s, horizon))
    e_pick, e_t = _back_entries(
        x_deal,
        x_ts,
        x_acc,
        e_deal,
        e_t,
        wanted,
        deal_close[e_deal],
        d_acc[e_deal],
        rng.random(len(e_t)),
    )
    # the action that opened a deal (picked before it existed) now belongs to the deal
    first_pick = np.flatnonzero((e_pick >= 0) & np.concatenate([[True], e_deal[1:] != e_deal[:-1]]))
    x_deal[e_pick[first_pick]] = e_deal[first_pick]
    chosen = e_pick >= 0
    verifiers = set(ctx.settings.verifiers)
    is_verifier_type = np.array([a in verifiers for a in ACTION_TYPES])
    relabel = e_pick[chosen]
    stage_type = np.array([ACTION_TYPES.index(v) for v in STAGE_VERIFIER])[e_stage[chosen]]
    x_type[relabel] = np.where(is_verifier_type[x_type[relabel]], x_type[relabel], stage_type)

    # --- tables
    w = ctx.widths
    opp_number = offsets["opportunity"] + np.arange(n_deal)
    action_ids = _ids("BA", x_number, w["action"])
    weights = np.array([ctx.settings.action_weights[a] for a in ACTION_TYPES])
    activities = pl.DataFrame(
        {
            "activity_id": _ids("ACT", a_number, w["activity"]),
            "rep_id": pl.Series(org.rep_id)[reps[a_rep]]
            if n_act
            else pl.Series([], dtype=pl.String),
            "ts": _timestamps(a_ts),
            "activity_type": np.array(ACTIVITY_TYPES)[a_type],
            "account_id": _ids("ACC", a_acc, w["account"]),
            "opportunity_id": _ids(
                "OPP", np.where(a_deal >= 0, opp_number[a_deal], -1), w["opportunity"]
            ),
            "contact_id": _ids("CON", a_con, w["contact"]),
            "duration_min": a_duration,
        }
    )
    buyer_actions = pl.DataFrame(
        {
            "action_id": action_ids,
            "ts": _timestamps(x_ts),
            "account_id": _ids("ACC", x_acc, w["account"]),
            "opportunity_id": _ids(
                "OPP", np.where(x_deal >= 0, opp_number[x_deal], -1), w["opportunity"]
            ),
            "contact_id": _ids("CON", x_con, w["contact"]),
            "action_type": np.array(ACTION_TYPES)[x_type],
            "is_verifier": is_verifier_type[x_type],
            "weight": weights[x_type],
        }
    )
    is_open = outcome == OPEN
    amount_missing = is_open & (rng.random(n_deal) < 0.12)
    opportunities = pl.DataFrame(
        {
            "opportunity_id": _ids("OPP", opp_number, w["opportunity"]),
            "account_id": _ids("ACC", d_acc, w["account"]),
            "rep_id": pl.Series(org.rep_id)[g_rep] if n_deal else pl.Series([], dtype=pl.String),
            "created_ts": _timestamps(d_created),
            "amount": pl.Series(np.where(amount_missing, np.nan, d_amount)).fill_nan(None),
            "currency": pl.Series(["USD"] * n_deal, dtype=pl.String),
            "close_ts": _timestamps(np.maximum(close, 0), close >= 0),
            "outcome": np.array(OUTCOMES)[outcome],
        }
    )
    stage_history = pl.DataFrame(
        {
            "opportunity_id": _ids("OPP", opp_number[e_deal], w["opportunity"]),
            "stage": np.array(ctx.settings.stages)[e_stage],
            "entered_ts": _timestamps(e_t),
            "verifier_action_id": _ids(
                "BA", np.where(e_pick >= 0, x_number[np.maximum(e_pick, 0)], -1), w["action"]
            ),
        }
    )
    truth_responses = pl.DataFrame(
        {
            "action_id": action_ids,
            "activity_id": _ids(
                "ACT", np.where(x_src >= 0, a_number[np.maximum(x_src, 0)], -1), w["activity"]
            ),
        }
    )
    offsets["activity"] += n_act
    offsets["action"] += len(x_ts)
    offsets["opportunity"] += n_deal

    n_all = org.n_reps
    g_act = reps[a_rep]
    return Chunk(
        activities=conform(activities, "activities").collect(),
        buyer_actions=conform(buyer_actions, "buyer_actions").collect(),
        opportunities=conform(opportunities, "opportunities").collect(),
        stage_history=conform(stage_history, "stage_history").collect(),
        truth_responses=truth_responses,
        customer_facing=np.bincount(g_act[is_cf], minlength=n_all),
        calls=np.bincount(g_act[a_type == CALL], minlength=n_all),
    )


def _back_entries(x_deal, x_ts, x_acc, e_deal, e_t, wanted, e_close, e_acc, u):
    """Back the ``wanted`` stage entries with a buyer action; return the picks and entry times.

    Entries are taken in order within each deal (entries sorted by deal, then time), and each
    buyer action backs at most one entry:

    - the deal's creation (its first entry) takes the latest action in the 14 days before on
      its account that is on no deal yet (the meeting that opened the deal; the caller links
      it to the deal), else the deal's first response within 21 days after creation (and
      within 7 days after the next entry);
    - a later entry takes the deal's latest response since the previous entry and pick; if
      there is none, the seller moves the stage to just after the next response, when that
      comes within ``MOVE_DAYS`` and before the deal's next event.

    Entries not wanted stay unbacked, where they were drawn.
    """
    e_t = e_t.copy()
    n = len(e_t)
    pick = np.full(n, -1, dtype=np.int64)
    first = np.concatenate([[True], e_deal[1:] != e_deal[:-1]])
    ordinal = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))
    has_next = np.concatenate([e_deal[:-1] == e_deal[1:], [False]])
    number = np.arange(len(x_ts))
    on_deal = pl.DataFrame({"deal": x_deal, "rts": x_ts, "ri": number}).filter(
        pl.Series(x_deal >= 0)
    )
    off_deal = pl.DataFrame({"acc": x_acc, "rts": x_ts, "ri": number}).filter(pl.Series(x_deal < 0))
    on_deal, off_deal = on_deal.sort("rts"), off_deal.sort("rts")
    lower = np.full(n, np.iinfo(np.int64).min)  # actions at or before this are used up
    for j in range(int(ordinal.max(initial=-1)) + 1):
        at = np.flatnonzero((ordinal == j) & wanted)
        frame = pl.DataFrame(
            {
                "deal": e_deal[at],
                "acc": e_acc[at],
                "t": e_t[at],
                "lo": lower[at],
                "bound": np.where(has_next[at], e_t[np.minimum(at + 1, n - 1)], e_close[at]),
                "close": e_close[at],
                "k": at,
            }
        )
        if j == 0:
            found = (
                _asof(frame, off_deal, "backward", pl.col("t"), by="acc")
                .filter(pl.col("rts") >= pl.col("t") - 14 * DAY)
                .sort("t", "k")
                .unique("ri", keep="first", maintain_order=True)
            )
            rest = frame.filter(~pl.col("k").is_in(found["k"].implode()))
            after = _asof(rest, on_deal, "forward", pl.col("t") - 1).filter(
                pl.col("rts")
                < pl.min_horizontal(
                    pl.col("t") + 21 * DAY,
                    pl.max_horizontal("bound", pl.col("t") + 7 * DAY),
                    "close",
                )
            )
            found = pl.concat([found.select(after.columns), after])
            moved = found.clear()
        else:
            found = _asof(frame, on_deal, "backward", pl.col("t")).filter(
                pl.col("rts") > pl.col("lo")
            )
            rest = frame.filter(~pl.col("k").is_in(found["k"].implode()))
            moved = _asof(rest, on_deal, "forward", pl.max_horizontal("t", "lo")).filter(
                pl.col("rts")
                < pl.min_horizontal(pl.col("t") + MOVE_DAYS * DAY, pl.col("bound") - 3600)
            )
        for picked in (found, moved):
            pick[picked["k"].to_numpy()] = picked["ri"].to_numpy()
        k, rts = moved["k"].to_numpy(), moved["rts"].to_numpy()
        room = moved["bound"].to_numpy() - rts
        e_t[k] = rts + np.minimum(3600 + (u[k] * 7 * 3600).astype(np.int64), room // 2)
        done = np.flatnonzero(has_next & (ordinal == j))
        used = np.where(pick[done] >= 0, x_ts[np.maximum(pick[done], 0)], np.iinfo(np.int64).min)
        lower[done + 1] = np.maximum(np.maximum(lower[done], e_t[done]), used)
    return pick, e_t


def _asof(entries, responses, strategy: str, at: pl.Expr, by: str = "deal") -> pl.DataFrame:
    """Each entry's nearest action on its deal at/before (backward) or after (forward) ``at``."""
    left = entries.with_columns(at=at).sort("at")
    return left.join_asof(
        responses,
        left_on="at",
        right_on="rts",
        by=by,
        strategy=strategy,
        allow_exact_matches=strategy == "backward",
        check_sortedness=False,
    ).filter(pl.col("ri").is_not_null())
