"""A second data-generating family, written apart from :mod:`effortlens.sample`.

The project's own generator plants its patterns in the shape its authors had in mind. This
family is meant to be harder and closer to what real CRM exports look like:

- **unequal peer groups**: from about two dozen reps (SMB AEs) down to two (Enterprise SDRs);
- **over-dispersed rep rates**: each rep's response propensity carries a random effect
  (``rep_sd`` on the logit scale), so reps differ by more than chance even with no deviant;
- **heavy-tailed volumes**: weekly volumes are log-normal across reps (``volume_sigma``), so a
  few reps carry a large share of a group's activities;
- **common shocks**: every week shifts everyone's propensity (``shock_sd``) and volume;
- **peer-group-specific time trends**: SMB drifts down, Enterprise up (``trend`` on the
  logit scale over the period), and most intervention participants are in SMB.

Planted truths (``mode="planted"``), all recorded in the returned ``truth``:

- positive and negative **deviants** with a known rate ratio against their peer group's
  typical rep (1.8x and 2.5x above, 0.5x below);
- an **intervention** whose participants (listed before the start, whatever happens after:
  intention to treat) gain ``effect`` in response probability from the start on;
- a **leaky** stage (evaluation) and a **stalled** stage (negotiation);
- **habits**: Tue/Thu 10:00-11:59 local touches answered 1.5x as often, touches after 15 or
  more days of silence on the contact 0.55x as often.

``mode="null"`` keeps every nuisance feature (dispersion, shocks, trends, unequal groups,
rep-level frailty of deals) and plants nothing: no deviant, zero effect, every stage alike,
no habit.

The buyers' responses are drawn per touch with a log-normal lag; the tables carry no record
of which touch caused which action: the metrics see only what real data would show. The
truth carries the counterfactual buyer actions without the intervention (same random
numbers), so that the harness can compute the value of any estimand exactly.

Examples
--------
>>> from effortlens.validity.dgp import generate_tables
>>> tables, truth = generate_tables(seed=1, mode="null")
>>> sorted(tables)[:3], truth["intervention"]["effect"]
(['activities', 'buyer_actions', 'intervention_participants'], 0.0)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from effortlens.schema import conform

MODES: tuple[str, ...] = ("planted", "null")
STAGES: tuple[str, ...] = (
    "prospect",
    "discovery",
    "evaluation",
    "proposal",
    "negotiation",
    "commit",
)
START = dt.date(2025, 1, 6)  # a Monday
TIMEZONE = "America/New_York"
INTERVENTION_ID = "VAL-01"

#: (segment, role) -> (smallest, largest) number of reps.
GROUP_SIZES: dict[tuple[str, str], tuple[int, int]] = {
    ("SMB", "AE"): (20, 26),
    ("Mid-Market", "AE"): (10, 14),
    ("Enterprise", "AE"): (6, 9),
    ("SMB", "SDR"): (5, 7),
    ("Mid-Market", "SDR"): (3, 4),
    ("Enterprise", "SDR"): (2, 2),
}
SEGMENT_RATE = {"SMB": 0.16, "Mid-Market": 0.21, "Enterprise": 0.27}
ROLE_FACTOR = {"AE": 1.0, "SDR": 0.8}
ROLE_VOLUME = {"AE": 28.0, "SDR": 45.0}
#: Change of the logit over the whole period, per segment (peer-group-specific trends).
SEGMENT_TREND = {"SMB": -0.9, "Mid-Market": 0.0, "Enterprise": 0.9}
#: Share of a segment's reps listed as participants.
PARTICIPANT_SHARE = {"SMB": 0.55, "Mid-Market": 0.15, "Enterprise": 0.15}
ACTIVITY_TYPES = ("email", "call", "meeting", "demo", "proposal", "social")
TYPE_SHARE = (0.50, 0.28, 0.10, 0.05, 0.03, 0.04)
TYPE_FACTOR = (0.8, 1.0, 1.6, 1.5, 1.4, 0.5)
ACTION_TYPES = (
    "reply",
    "meeting_accepted",
    "content_engaged",
    "meeting_held",
    "proposal_requested",
    "referral",
)
ACTION_SHARE = (0.55, 0.20, 0.10, 0.08, 0.04, 0.03)
HOURS = np.arange(7, 19)
HOUR_WEIGHT = np.array([1, 4, 6, 6, 5, 3, 4, 5, 5, 4, 3, 1], dtype=float)
WEEKDAY_WEIGHT = np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.05, 0.03])


@dataclass(frozen=True)
class Family:
    """Knobs of the family (defaults: the audited setting of issue 12).

    Attributes
    ----------
    weeks
        Length of the data in weeks; the intervention starts half-way.
    rep_sd
        Standard deviation of the reps' random effect on the logit of the response
        probability (over-dispersion).
    volume_sigma
        Log-normal sigma of the reps' weekly volumes (heavy tails).
    shock_sd
        Standard deviation of the weekly common shock on the logit.
    trend_scale
        Multiplies :data:`SEGMENT_TREND` (0 turns the group-specific trends off).
    effect
        Intervention effect on the response probability of the participants' touches.
    deviant_ratios
        Rate ratios of the planted deviants.
    """

    weeks: int = 40
    rep_sd: float = 0.15
    volume_sigma: float = 0.8
    shock_sd: float = 0.10
    trend_scale: float = 1.0
    effect: float = 0.05
    deviant_ratios: tuple[float, ...] = (1.8, 2.5, 0.5)
    timing_weekdays: tuple[int, ...] = (2, 4)
    timing_hours: tuple[int, ...] = (10, 11)
    timing_multiplier: float = 1.5
    silence_days: int = 15
    silence_multiplier: float = 0.55
    lag_median_hours: float = 20.0
    lag_sigma: float = 1.1
    buyer_initiated_share: float = 0.08
    opportunity_share: float = 0.5
    leak: float = 0.12
    leaky_stage: str = "evaluation"
    leaky_rate: float = 0.30
    stage_median_days: float = 9.0
    stalled_stage: str = "negotiation"
    stalled_median_days: float = 30.0
    deal_frailty_sd: float = 0.5


def _expit(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.log(p / (1 - p))


def generate_tables(
    *, seed: int, mode: str = "planted", family: Family | None = None
) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    """Canonical tables and their truth for one seed of the family.

    Parameters
    ----------
    seed
        Seed of numpy's PCG64 generator; the same arguments give the same tables.
    mode
        ``"planted"`` or ``"null"`` (every nuisance feature, nothing planted).
    family
        The knobs; default :class:`Family()`.

    Returns
    -------
    tables, truth
        ``tables`` maps the seven canonical table names to frames conformed to
        :mod:`effortlens.schema`; ``truth`` records what was planted (see the module notes)
        and ``counterfactual_actions``, the buyer actions had the intervention had no effect.

    Examples
    --------
    >>> tables, truth = generate_tables(seed=3)
    >>> truth["intervention"]["effect"] > 0, len(truth["deviants"])
    (True, 3)
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    fam = family or Family()
    if mode == "null":
        fam = replace(
            fam,
            effect=0.0,
            deviant_ratios=(),
            timing_multiplier=1.0,
            silence_multiplier=1.0,
            leaky_rate=fam.leak,
            stalled_median_days=fam.stage_median_days,
        )
    rng = np.random.Generator(np.random.PCG64(seed))
    n_days = 7 * fam.weeks
    start_day = 7 * (fam.weeks // 2)

    # ------------------------------------------------------------------ reps and peer groups
    segment, role = [], []
    for (seg, rl), (lo, hi) in GROUP_SIZES.items():
        k = int(rng.integers(lo, hi + 1))
        segment += [seg] * k
        role += [rl] * k
    segment, role = np.array(segment), np.array(role)
    n = len(segment)
    group = np.array([f"{s} · {r}" for s, r in zip(segment, role, strict=True)])
    base_rate = np.array(
        [SEGMENT_RATE[s] * ROLE_FACTOR[r] for s, r in zip(segment, role, strict=True)]
    )
    volume = np.array([ROLE_VOLUME[r] for r in role]) * rng.lognormal(
        -(fam.volume_sigma**2) / 2, fam.volume_sigma, n
    )
    volume = np.clip(volume, 3.0, 400.0)
    rep_effect = rng.normal(0.0, fam.rep_sd, n)
    ratio = np.ones(n)
    # hires and exits (nobody hired after the first eighth, exits in the second half)
    hire_day = np.where(rng.random(n) < 0.1, rng.integers(1, n_days // 8, n), -365)
    exit_day = np.where(rng.random(n) < 0.12, rng.integers(n_days // 2, n_days, n), n_days + 1)

    deviants: dict[str, float] = {}
    rep_id = np.array([f"V{i + 1:03d}" for i in range(n)])
    if fam.deviant_ratios:
        # deviants among full-period reps of groups of five or more, in distinct groups
        big = [g for g in np.unique(group) if (group == g).sum() >= 5]
        chosen_groups = rng.permutation(big)
        for k, r in enumerate(fam.deviant_ratios):
            g = chosen_groups[k % len(chosen_groups)]
            pool = np.flatnonzero(
                (group == g) & (hire_day < 0) & (exit_day > n_days) & (ratio == 1.0)
            )
            i = int(rng.choice(pool))
            ratio[i] = r
            rep_effect[i] = 0.0
            volume[i] = max(volume[i], np.median(volume[group == g]))
            deviants[str(rep_id[i])] = float(r)

    # participants: listed before the start, mostly in SMB (intention to treat)
    employed_before = hire_day <= start_day - 7 * 12
    share = np.array([PARTICIPANT_SHARE[s] for s in segment])
    treated = employed_before & (rng.random(n) < share) & (ratio == 1.0)

    # --------------------------------------------------------------------------- touches
    week_shock = rng.normal(0.0, fam.shock_sd, fam.weeks)
    volume_shock = rng.normal(0.0, 0.15, fam.weeks)
    counts = rng.poisson(volume[:, None] * np.exp(volume_shock)[None, :])  # reps x weeks
    rep_of = np.repeat(np.arange(n), counts.sum(axis=1))
    week_of = np.concatenate([np.repeat(np.arange(fam.weeks), c) for c in counts])
    m = len(rep_of)
    weekday = rng.choice(7, m, p=WEEKDAY_WEIGHT / WEEKDAY_WEIGHT.sum())  # 0 = Monday
    hour = rng.choice(HOURS, m, p=HOUR_WEIGHT / HOUR_WEIGHT.sum())
    minute = rng.integers(0, 60, m)
    day = 7 * week_of + weekday
    keep = (day >= hire_day[rep_of]) & (day < exit_day[rep_of])
    rep_of, week_of, weekday, hour, minute, day = (
        a[keep] for a in (rep_of, week_of, weekday, hour, minute, day)
    )
    m = len(rep_of)
    type_idx = rng.choice(len(ACTIVITY_TYPES), m, p=TYPE_SHARE)
    # each rep has a book of contacts, some touched far more often than others
    n_contacts = np.maximum(6, (volume * fam.weeks / 7).astype(int))
    contact_offset = np.concatenate([[0], np.cumsum(n_contacts)[:-1]])
    contact_weight = rng.lognormal(0.0, 1.0, int(n_contacts.sum()))
    contact_of = np.empty(m, dtype=np.int64)
    for i in range(n):
        rows = np.flatnonzero(rep_of == i)
        w = contact_weight[contact_offset[i] : contact_offset[i] + n_contacts[i]]
        contact_of[rows] = contact_offset[i] + rng.choice(n_contacts[i], len(rows), p=w / w.sum())
    account_of_contact = np.arange(int(n_contacts.sum())) // 3  # three contacts per account
    seconds = ((day * 24 + hour) * 60 + minute) * 60 + rng.integers(0, 60, m)
    order = np.lexsort((seconds, contact_of))
    rep_of, week_of, weekday, hour, day, type_idx, contact_of, seconds = (
        a[order] for a in (rep_of, week_of, weekday, hour, day, type_idx, contact_of, seconds)
    )
    same_contact = np.r_[False, contact_of[1:] == contact_of[:-1]]
    gap_days = np.where(same_contact, (seconds - np.r_[0, seconds[:-1]]) / 86_400, np.inf)

    trend = np.array([SEGMENT_TREND[s] for s in segment]) * fam.trend_scale
    progress = (week_of + 0.5) / fam.weeks - 0.5
    logit = (
        _logit(base_rate[rep_of])
        + rep_effect[rep_of]
        + week_shock[week_of]
        + trend[rep_of] * progress
    )
    p = _expit(logit) * np.array(TYPE_FACTOR)[type_idx] * ratio[rep_of]
    timing = np.isin(weekday + 1, fam.timing_weekdays) & np.isin(hour, fam.timing_hours)
    p = p * np.where(timing, fam.timing_multiplier, 1.0)
    p = p * np.where(gap_days >= fam.silence_days, fam.silence_multiplier, 1.0)
    p0 = np.clip(p, 0.0, 0.9)
    after = day >= start_day
    p1 = np.clip(p0 + fam.effect * (treated[rep_of] & after), 0.0, 0.95)
    u = rng.random(m)
    lag_hours = np.minimum(rng.lognormal(np.log(fam.lag_median_hours), fam.lag_sigma, m), 13.5 * 24)
    action_idx = rng.choice(len(ACTION_TYPES), m, p=ACTION_SHARE)

    zone_start = dt.datetime(START.year, START.month, START.day)
    local = pl.Series("local", seconds * 1_000_000).cast(pl.Duration("us")) + zone_start
    ts = (
        pl.DataFrame({"local": local})
        .select(
            pl.col("local")
            .dt.replace_time_zone(TIMEZONE, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC")
        )
        .to_series()
    )
    fill = ts.is_null()
    if fill.any():  # the skipped hour of the spring change: an hour later
        shifted = (
            (local + dt.timedelta(hours=1))
            .dt.replace_time_zone(TIMEZONE)
            .dt.convert_time_zone("UTC")
        )
        ts = pl.select(pl.when(fill).then(shifted).otherwise(ts)).to_series()
    activity_id = np.array([f"VA{k:07d}" for k in range(m)])
    contact_id = np.char.add("VC", contact_of.astype(str))
    account_id = np.char.add("VK", account_of_contact[contact_of].astype(str))
    activities = pl.DataFrame(
        {
            "activity_id": activity_id,
            "rep_id": rep_id[rep_of],
            "ts": ts,
            "activity_type": np.array(ACTIVITY_TYPES)[type_idx],
            "account_id": account_id,
            "contact_id": contact_id,
        }
    )
    # internal work: not customer-facing, 15% on top
    n_internal = int(0.15 * m)
    pick = rng.integers(0, m, n_internal)
    internal = pl.DataFrame(
        {
            "activity_id": [f"VI{k:07d}" for k in range(n_internal)],
            "rep_id": rep_id[rep_of[pick]],
            "ts": ts.gather(pick)
            + pl.Series(rng.integers(1, 3600, n_internal) * 1_000_000).cast(pl.Duration("us")),
            "activity_type": rng.choice(["internal", "admin"], n_internal),
        }
    )

    def actions_for(prob: np.ndarray, tag: str) -> pl.DataFrame:
        hit = (u < prob) & (seconds + lag_hours * 3600 < n_days * 86_400)
        k = np.flatnonzero(hit)
        return pl.DataFrame(
            {
                "action_id": np.char.add(f"VB{tag}", k.astype(str)),
                "ts": ts.gather(k)
                + pl.Series((lag_hours[k] * 3.6e9).astype(np.int64)).cast(pl.Duration("us")),
                "account_id": account_id[k],
                "contact_id": contact_id[k],
                "action_type": np.array(ACTION_TYPES)[action_idx[k]],
            }
        )

    caused = actions_for(p1, "")
    counterfactual_caused = actions_for(p0, "")
    n_initiated = int(fam.buyer_initiated_share * caused.height)
    who = rng.integers(0, m, n_initiated)
    initiated = pl.DataFrame(
        {
            "action_id": [f"VBI{k}" for k in range(n_initiated)],
            "ts": pl.Series(
                (rng.random(n_initiated) * n_days * 86_400 * 1e6).astype(np.int64)
            ).cast(pl.Duration("us"))
            + dt.datetime(START.year, START.month, START.day, tzinfo=dt.UTC),
            "account_id": account_id[who],
            "contact_id": contact_id[who],
            "action_type": np.array(ACTION_TYPES)[rng.choice(len(ACTION_TYPES), n_initiated)],
        }
    )

    # ------------------------------------------------------------------------ pipeline
    opportunities, stage_history = _pipeline(
        rng,
        fam,
        rep_id=rep_id,
        contact_rep=np.repeat(np.arange(n), n_contacts),
        account_of_contact=account_of_contact,
        n_days=n_days,
        n=n,
    )

    # ---------------------------------------------------------------------------- tables
    start_date = START + dt.timedelta(days=start_day)
    reps = pl.DataFrame(
        {
            "rep_id": rep_id,
            "rep_name": [f"Val Rep {i + 1}" for i in range(n)],
            "team": [f"{s} team" for s in segment],
            "segment": segment,
            "region": "North",
            "role": role,
            "hire_date": [START + dt.timedelta(days=int(d)) for d in hire_day],
            "exit_date": [
                START + dt.timedelta(days=int(d)) if d <= n_days else None for d in exit_day
            ],
            "exit_reason": ["voluntary" if d <= n_days else None for d in exit_day],
        },
        schema_overrides={"exit_date": pl.Date, "exit_reason": pl.String},
    )
    tables = {
        "reps": reps,
        "activities": pl.concat([activities, internal], how="diagonal_relaxed"),
        "buyer_actions": pl.concat([caused, initiated]),
        "opportunities": opportunities,
        "stage_history": stage_history,
        "interventions": pl.DataFrame(
            {
                "intervention_id": [INTERVENTION_ID],
                "name": ["Validity coaching"],
                "start_date": [start_date],
                "end_date": [start_date + dt.timedelta(days=55)],
            }
        ),
        "intervention_participants": pl.DataFrame(
            {"intervention_id": INTERVENTION_ID, "rep_id": rep_id[treated]},
            schema={"intervention_id": pl.String, "rep_id": pl.String},
        ),
    }
    tables = {name: conform(frame, name).collect() for name, frame in tables.items()}
    counterfactual = conform(pl.concat([counterfactual_caused, initiated]), "buyer_actions")
    truth = {
        "family": "validity",
        "mode": mode,
        "seed": seed,
        "n_reps": n,
        "peer_groups": {str(g): int((group == g).sum()) for g in np.unique(group)},
        "deviants": deviants,
        "positive_deviants": [r for r, x in deviants.items() if x > 1],
        "negative_deviants": [r for r, x in deviants.items() if x < 1],
        "rep_sd": fam.rep_sd,
        "intervention": {
            "intervention_id": INTERVENTION_ID,
            "effect": fam.effect,
            "start_date": start_date.isoformat(),
            "treated": [str(r) for r in rep_id[treated]],
        },
        "leaky_stage": fam.leaky_stage if mode == "planted" else None,
        "stalled_stage": fam.stalled_stage if mode == "planted" else None,
        "timing": {
            "best_weekdays": list(fam.timing_weekdays),
            "best_hours": list(fam.timing_hours),
            "multiplier": fam.timing_multiplier,
        }
        if mode == "planted"
        else None,
        "cadence": {"silence_days": fam.silence_days, "multiplier": fam.silence_multiplier}
        if mode == "planted"
        else None,
        "counterfactual_actions": counterfactual.collect(),
    }
    return tables, truth


def _pipeline(
    rng: np.random.Generator,
    fam: Family,
    *,
    rep_id: np.ndarray,
    contact_rep: np.ndarray,
    account_of_contact: np.ndarray,
    n_days: int,
    n: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Deals with a stage path: per stage a log-normal stay, then leak or move on."""
    n_accounts = int(account_of_contact.max()) + 1
    account_rep = np.zeros(n_accounts, dtype=np.int64)
    account_rep[account_of_contact] = contact_rep
    has = rng.random(n_accounts) < fam.opportunity_share
    accounts = np.flatnonzero(has)
    k = len(accounts)
    owner = account_rep[accounts]
    created = rng.random(k) * (n_days - 7)
    frailty = rng.normal(0.0, fam.deal_frailty_sd, n)  # rep-level: deals cluster within reps
    speed = rng.lognormal(0.0, 0.25, n)
    leak = np.array(
        [fam.leaky_rate if s == fam.leaky_stage else fam.leak for s in STAGES], dtype=float
    )
    median = np.array(
        [
            fam.stalled_median_days if s == fam.stalled_stage else fam.stage_median_days
            for s in STAGES
        ]
    )
    t = created.copy()
    alive = np.ones(k, dtype=bool)  # still moving through stages
    outcome = np.full(k, "open", dtype=object)
    close = np.full(k, np.nan)
    entries: list[tuple[np.ndarray, int, np.ndarray]] = []
    for s in range(len(STAGES)):
        idx = np.flatnonzero(alive)
        entries.append((idx, s, t[idx].copy()))
        stay = rng.lognormal(np.log(median[s] * speed[owner[idx]]), 0.6)
        end = t[idx] + stay
        censored = end >= n_days
        alive[idx[censored]] = False
        go = idx[~censored]
        p_leak = _expit(_logit(leak[s]) + frailty[owner[go]])
        leaks = rng.random(len(go)) < p_leak
        lost = go[leaks]
        outcome[lost] = np.where(rng.random(len(lost)) < 0.5, "lost", "no_decision")
        close[lost] = (t[go] + stay[~censored])[leaks]
        alive[lost] = False
        t[go] = t[go] + stay[~censored]
        if s == len(STAGES) - 1:
            won = go[~leaks]
            outcome[won] = "won"
            close[won] = t[won]
            alive[won] = False
    origin = dt.datetime(START.year, START.month, START.day, tzinfo=dt.UTC)

    def stamp(days: np.ndarray) -> pl.Series:
        return pl.Series((days * 86_400e6).astype(np.int64)).cast(pl.Duration("us")) + origin

    opp_id = np.array([f"VO{a:06d}" for a in accounts])
    opportunities = pl.DataFrame(
        {
            "opportunity_id": opp_id,
            "account_id": np.char.add("VK", accounts.astype(str)),
            "rep_id": rep_id[owner],
            "created_ts": stamp(created),
            "amount": rng.lognormal(9.5, 1.0, k).round(0),
            "close_ts": pl.Series(close).fill_nan(None),
            "outcome": outcome.astype(str),
        }
    ).with_columns(
        close_ts=pl.when(pl.col("close_ts").is_not_null()).then(
            pl.lit(origin)
            + pl.duration(microseconds=(pl.col("close_ts") * 86_400e6).cast(pl.Int64))
        )
    )
    stage_history = pl.concat(
        [
            pl.DataFrame(
                {"opportunity_id": opp_id[idx], "stage": STAGES[s], "entered_ts": stamp(when)}
            )
            for idx, s, when in entries
            if len(idx)
        ]
    )
    return opportunities, stage_history
