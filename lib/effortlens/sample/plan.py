"""The sample company and its rules: who works where, and which patterns are planted.

Part of :mod:`effortlens.sample`. Everything here is decided once per data set, before any
event is drawn, from one seeded ``numpy`` generator; :mod:`effortlens.sample.events` then
draws activities, deals and buyer actions rep by rep following these rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from effortlens.settings import ACTIVITY_TYPES as CANONICAL_ACTIVITY_TYPES

PERIOD_START = date(2025, 1, 6)  # a Monday; the data never depends on "today"
SEGMENTS: tuple[str, ...] = ("SMB", "Mid-Market", "Enterprise")
ROLES: tuple[str, ...] = ("AE", "SDR")
REGIONS: tuple[str, ...] = (
    "East",
    "West",
    "Central",
    "North",
    "South",
    "Pacific",
    "Mountain",
    "Atlantic",
    "Gulf",
    "Lakes",
)
#: Activity types in the order the generator indexes them (the canonical order without
#: ``other``); the first six are customer-facing.
ACTIVITY_TYPES: tuple[str, ...] = tuple(t for t in CANONICAL_ACTIVITY_TYPES if t != "other")
N_CUSTOMER_FACING = 6
CALL, EMAIL = 1, 0
#: Customer-facing mix of an ordinary rep (shares of customer-facing activities).
BASE_MIX = np.array([0.40, 0.22, 0.12, 0.06, 0.04, 0.16])
INTERNAL_MIX = np.array([0.6, 0.4])  # internal, admin
CUSTOMER_FACING_SHARE = 0.86  # of an ordinary rep's activities
#: Local hour weights of activities (hours not listed get none).
HOUR_WEIGHTS = {
    7: 3,
    8: 7,
    9: 10,
    10: 11,
    11: 10,
    12: 6,
    13: 8,
    14: 10,
    15: 10,
    16: 8,
    17: 5,
    18: 2,
}
WEEKEND_WEIGHT = 0.04
#: Customer-facing hours per week of an ordinary rep, of 40 contracted (about 31%).
SELLING_HOURS_PER_WEEK = 12.4
DEVIANT_CALL_SHARE = 0.50
#: The intervention every data set holds (with a known effect in planted data).
INTERVENTION = {
    "intervention_id": "INT-01",
    "name": "Buyer-first follow-up coaching",
    "practice": "follow-ups that answer the buyer's own questions from the last conversation",
}
#: Verifier action type that backs the entry into each stage when a response is relabelled.
STAGE_VERIFIER = (
    "meeting_held",
    "meeting_held",
    "meeting_held",
    "proposal_requested",
    "mutual_plan",
    "verbal_commit",
)

FIRST_NAMES = (
    "Avery",
    "Blake",
    "Casey",
    "Dana",
    "Eli",
    "Farah",
    "Gabe",
    "Hana",
    "Ines",
    "Jonah",
    "Kara",
    "Liam",
    "Maya",
    "Noor",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Umar",
    "Vera",
    "Wes",
    "Xena",
    "Yusuf",
    "Zoe",
    "Aidan",
    "Bianca",
    "Caleb",
    "Dev",
    "Elena",
    "Felix",
    "Grace",
    "Hugo",
    "Iris",
    "Jade",
    "Kofi",
    "Lena",
    "Marco",
    "Nia",
    "Oscar",
    "Paula",
    "Rafael",
    "Sofia",
    "Theo",
    "Uma",
    "Victor",
    "Wren",
    "Yara",
    "Zane",
    "Amara",
    "Boris",
    "Chloe",
    "Diego",
    "Emeka",
    "Freya",
    "Gita",
    "Henrik",
    "Ivy",
    "Jamal",
    "Keiko",
    "Luca",
    "Mira",
    "Nadia",
)
LAST_NAMES = (
    "Adams",
    "Baker",
    "Chen",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kim",
    "Lopez",
    "Moreau",
    "Nguyen",
    "Okafor",
    "Patel",
    "Quist",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Vargas",
    "Weber",
    "Xu",
    "Young",
    "Zimmer",
    "Abbott",
    "Brooks",
    "Castro",
    "Dubois",
    "Ellis",
    "Flores",
    "Gupta",
    "Hughes",
    "Ivanov",
    "Jones",
    "Khan",
    "Larsen",
    "Mendes",
    "Novak",
    "Ortiz",
    "Price",
    "Reyes",
    "Schmidt",
    "Torres",
    "Usman",
    "Vogel",
    "Walsh",
    "Yilmaz",
    "Zhou",
    "Alvarez",
    "Bauer",
    "Cruz",
    "Dimitrov",
    "Eriksen",
    "Fontaine",
    "Greene",
    "Hoffman",
    "Ibrahim",
    "Jovanovic",
    "Kowalski",
    "Lindqvist",
    "Mahmoud",
    "Nakamura",
)


@dataclass(frozen=True)
class Model:
    """The behavioural rules of one mode ("planted" or "null")."""

    planted: bool
    base_rate: np.ndarray  # response probability per customer-facing type
    segment_rate: np.ndarray
    role_rate: np.ndarray
    positive_rate: float = 2.1
    negative_rate: float = 0.45
    best_weekdays: tuple[int, ...] = (2, 3, 4)
    best_hours: tuple[int, ...] = (8, 9)
    timing_multiplier: float = 1.6
    silence_days: int = 21
    cadence_multiplier: float = 0.3
    sequence_within_days: int = 2
    sequence_multiplier: float = 2.0
    effect: float = 0.08
    leave_prob: np.ndarray = field(default_factory=lambda: np.full(6, 0.15))
    stage_median_days: np.ndarray = field(default_factory=lambda: np.full(6, 14.0))
    stuck_prob: np.ndarray = field(default_factory=lambda: np.zeros(6))
    verify_prob: np.ndarray = field(default_factory=lambda: np.full(6, 0.9))
    segment_duration: np.ndarray = field(default_factory=lambda: np.ones(3))
    skip_prob: float = 0.07
    duration_sigma: float = 0.6


def model_for(mode: str) -> Model:
    """The rules for ``mode``; "dirty" data follows the planted rules."""
    if mode == "null":
        return Model(
            planted=False,
            base_rate=np.full(N_CUSTOMER_FACING, 0.17),
            segment_rate=np.ones(3),
            role_rate=np.ones(2),
            effect=0.0,
        )
    return Model(
        planted=True,
        base_rate=np.array([0.14, 0.18, 0.32, 0.30, 0.28, 0.08]),
        segment_rate=np.array([1.1, 1.0, 0.85]),
        role_rate=np.array([1.0, 0.85]),
        leave_prob=np.array([0.12, 0.12, 0.45, 0.12, 0.12, 0.15]),
        stage_median_days=np.array([10.0, 14.0, 18.0, 14.0, 35.0, 10.0]),
        stuck_prob=np.array([0.0, 0.0, 0.0, 0.0, 0.3, 0.0]),
        verify_prob=np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.12]),
        segment_duration=np.array([0.7, 1.0, 1.5]),
    )


@dataclass(frozen=True)
class Calendar:
    """The data period, day by day, in the settings' time zone."""

    start: date
    n_days: int
    timezone: str
    weekday: np.ndarray  # ISO weekday of each day, 1 = Monday
    weight: np.ndarray  # relative amount of work done that day
    cum_weight: np.ndarray  # cum_weight[i] = weight of days before day i (length n_days + 1)
    naive_midnight: np.ndarray  # seconds since epoch of local midnight, read as if it were UTC
    utc_offset: np.ndarray  # UTC offset (s) at local noon, for days 0..n_days

    @property
    def end(self) -> date:
        """Last day of the period (inclusive)."""
        return self.start + timedelta(days=self.n_days - 1)

    @property
    def horizon(self) -> int:
        """The instant the period ends (UTC seconds): local midnight after the last day."""
        return int(self.naive_midnight[self.n_days] - self.utc_offset[self.n_days])

    def to_utc(self, day: np.ndarray, local_seconds: np.ndarray) -> np.ndarray:
        """UTC seconds of ``local_seconds`` after local midnight of ``day`` (business hours)."""
        return self.naive_midnight[day] + local_seconds - self.utc_offset[day]

    def day_start(self, day: np.ndarray) -> np.ndarray:
        """UTC seconds of local midnight of ``day``."""
        return self.naive_midnight[day] - self.utc_offset[day]

    def local_day(self, utc: np.ndarray) -> np.ndarray:
        """Local day index of UTC instants (may fall outside the period)."""
        approx = (utc + self.utc_offset[0] - self.naive_midnight[0]) // 86400
        offset = self.utc_offset[np.clip(approx, 0, self.n_days)]
        return (utc + offset - self.naive_midnight[0]) // 86400

    def draw_days(self, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """One day per (lo, hi) range, drawn with the days' work weights; hi is exclusive."""
        a = self.cum_weight[lo]
        b = self.cum_weight[hi]
        u = a + rng.random(len(a)) * (b - a)
        day = np.searchsorted(self.cum_weight, u, side="right") - 1
        return np.clip(day, lo, np.maximum(hi - 1, lo))


def make_calendar(weeks: int, timezone: str) -> Calendar:
    """The calendar of ``weeks`` weeks from :data:`PERIOD_START` in ``timezone``.

    Examples
    --------
    >>> cal = make_calendar(2, "America/New_York")
    >>> cal.n_days, cal.end.isoformat(), int(cal.weekday[0])
    (14, '2025-01-19', 1)
    """
    n_days = 7 * weeks
    zone = ZoneInfo(timezone)
    days = [PERIOD_START + timedelta(days=i) for i in range(n_days + 1)]
    weekday = np.array([d.isoweekday() for d in days[:n_days]])
    weight = np.where(weekday >= 6, WEEKEND_WEIGHT, 1.0)
    cum_weight = np.concatenate([[0.0], np.cumsum(weight)])
    epoch = date(1970, 1, 1)
    naive_midnight = np.array([(d - epoch).days * 86400 for d in days], dtype=np.int64)
    utc_offset = np.array(
        [int(datetime.combine(d, time(12), zone).utcoffset().total_seconds()) for d in days],
        dtype=np.int64,
    )
    return Calendar(
        PERIOD_START, n_days, timezone, weekday, weight, cum_weight, naive_midnight, utc_offset
    )


@dataclass
class Org:
    """The reps, their books of accounts, and who carries which planted trait."""

    rep_id: list[str]
    rep_name: list[str]
    team: np.ndarray  # team index
    team_names: list[str]
    team_region: list[str]
    team_manager: list[str]
    segment: np.ndarray  # index into SEGMENTS
    role: np.ndarray  # index into ROLES
    hire_date: list[date]
    hire_day: np.ndarray  # first day with activity (0 for reps hired before the period)
    exit_day: np.ndarray  # first day without activity (n_days if still employed)
    exit_reason: list[str | None]
    positive: np.ndarray  # bool
    negative: np.ndarray  # bool
    treated: np.ndarray  # bool
    low_team: int | None
    customer_facing_factor: np.ndarray  # multiplies customer-facing volume
    internal_factor: np.ndarray  # multiplies internal/admin volume
    rate_factor: np.ndarray  # multiplies response probability
    call_boost: np.ndarray  # multiplies the weight of calls in the mix
    book_start: np.ndarray  # first account index of each rep's book
    book_size: np.ndarray
    contact_start: np.ndarray  # per account
    contact_count: np.ndarray  # per account
    daily_rate: float = 0.0  # activities per rep per full-weight day, before factors

    @property
    def n_reps(self) -> int:
        """Number of reps."""
        return len(self.rep_id)

    def peer_group(self, i: int) -> tuple[str, str]:
        """Segment and role of rep ``i``."""
        return SEGMENTS[self.segment[i]], ROLES[self.role[i]]


def _split(n: int, parts: int) -> list[int]:
    """Sizes of ``parts`` near-equal parts of ``n``."""
    return [len(a) for a in np.array_split(np.arange(n), parts)]


def build_org(n_reps: int, cal: Calendar, *, model: Model, rng: np.random.Generator) -> Org:
    """Lay out teams, roles, tenure, exits, deviants and intervention participants."""
    n_days = cal.n_days
    planted = model.planted
    segment, role, team = [], [], []
    team_names, team_region = [], []
    for s, seg_size in enumerate(_split(n_reps, len(SEGMENTS))):
        n_teams = max(2, round(seg_size / 10))
        for t, size in enumerate(_split(seg_size, n_teams)):
            region = REGIONS[t % len(REGIONS)]
            if n_teams > len(REGIONS):
                region = f"{region} {t // len(REGIONS) + 1}"
            team_names.append(f"{SEGMENTS[s]} {region}")
            team_region.append(region)
            n_ae = math.ceil(size * 2 / 3)
            for k in range(size):
                segment.append(s)
                role.append(0 if k < n_ae else 1)
                team.append(len(team_names) - 1)
    segment, role, team = np.array(segment), np.array(role), np.array(team)
    n_teams = len(team_names)

    width = max(3, len(str(n_reps)))
    rep_id = [f"R{i + 1:0{width}d}" for i in range(n_reps)]
    combos = rng.permutation(len(FIRST_NAMES) * len(LAST_NAMES))
    names = [
        f"{FIRST_NAMES[c // len(LAST_NAMES)]} {LAST_NAMES[c % len(LAST_NAMES)]}" for c in combos
    ]
    rep_name = names[:n_reps]
    team_manager = names[n_reps : n_reps + n_teams]
    if len(names) < n_reps + n_teams:  # very large sizes: names repeat with a number
        rep_name = [f"{names[i % len(names)]} {i // len(names) + 1}" for i in range(n_reps)]
        team_manager = [f"{names[i % len(names)]} (mgr {i})" for i in range(n_teams)]

    hire_offset = rng.integers(90, 2500, n_reps)
    hire_date = [PERIOD_START - timedelta(days=int(d)) for d in hire_offset]
    hire_day = np.zeros(n_reps, dtype=np.int64)
    exit_day = np.full(n_reps, n_days, dtype=np.int64)
    exit_reason: list[str | None] = [None] * n_reps
    taken = np.zeros(n_reps, dtype=bool)  # already given a tenure event

    # exits: the low-selling team loses the most people voluntarily (planted only)
    n_exit = max(3, round(0.12 * n_reps))
    low_team = int(rng.integers(n_teams)) if planted else None
    voluntary, involuntary = [], []
    if planted:
        members = np.flatnonzero(team == low_team)
        n_low = min(len(members) - 2, max(2, round(0.35 * len(members))))
        voluntary += list(rng.choice(members, n_low, replace=False))
        rest = max(0, n_exit - n_low)
        n_inv = rest // 3
        others = [t for t in rng.permutation(n_teams) if t != low_team]
        n_vol = min(rest - n_inv, len(others))
        n_inv = rest - n_vol
        for t in others[:n_vol]:
            voluntary.append(int(rng.choice(np.flatnonzero(team == t))))
        pool = np.setdiff1d(np.flatnonzero(team != low_team), voluntary)
        involuntary += list(rng.choice(pool, n_inv, replace=False))
    else:
        chosen = rng.choice(n_reps, n_exit, replace=False)
        n_inv = n_exit // 4
        involuntary += list(chosen[:n_inv])
        voluntary += list(chosen[n_inv:])
    exit_lo, exit_hi = max(42, n_days // 4), n_days - 14
    for reason, reps in (("voluntary", voluntary), ("involuntary", involuntary)):
        for i in reps:
            exit_day[i] = int(rng.integers(exit_lo, exit_hi))
            exit_reason[i] = reason
            taken[i] = True

    n_hire = max(2, round(0.1 * n_reps))
    hires = rng.choice(np.flatnonzero(~taken), n_hire, replace=False)
    hire_hi = max(15, n_days - 84)
    for i in hires:
        hire_day[i] = int(rng.integers(14, hire_hi))
        hire_date[i] = PERIOD_START + timedelta(days=int(hire_day[i]))
        taken[i] = True
    full_tenure = ~taken

    positive = np.zeros(n_reps, dtype=bool)
    negative = np.zeros(n_reps, dtype=bool)
    group = segment * len(ROLES) + role
    if planted:
        n_pos = 2 if n_reps < 48 else (3 if n_reps < 400 else 4)
        n_neg = 1 if n_reps < 48 else 2
        eligible = full_tenure & (team != low_team)
        groups = [
            g
            for g in rng.permutation(len(SEGMENTS) * len(ROLES))
            if g % len(ROLES) == 0 and (group == g).sum() >= 6 and (eligible & (group == g)).any()
        ]
        for k in range(n_pos + n_neg):
            g = groups[k % len(groups)]
            pool = np.flatnonzero(eligible & (group == g) & ~positive & ~negative)
            pick = int(rng.choice(pool))
            (positive if k < n_pos else negative)[pick] = True

    treated = np.zeros(n_reps, dtype=bool)
    for g in range(len(SEGMENTS) * len(ROLES)):
        members = np.flatnonzero(group == g)
        pool = np.flatnonzero((group == g) & full_tenure & ~positive & ~negative)
        n_t = min(int(0.25 * len(members) + 0.5), len(members) - 1, len(pool))
        if n_t > 0:
            treated[rng.choice(pool, n_t, replace=False)] = True

    low = team == low_team if planted else np.zeros(n_reps, dtype=bool)
    customer_facing_factor = np.where(low, 0.35, 1.0)
    internal_factor = np.where(low, 3.0, 1.0)
    rate_factor = np.select([positive, negative], [model.positive_rate, model.negative_rate], 1.0)
    share = DEVIANT_CALL_SHARE
    boost = (share / (1 - share)) * (1 - BASE_MIX[CALL]) / BASE_MIX[CALL]
    call_boost = np.where(positive, boost, 1.0)

    book_size = np.where(role == 0, 60, 120)
    book_start = np.concatenate([[0], np.cumsum(book_size)[:-1]])
    contact_count = rng.integers(2, 7, int(book_size.sum()))
    contact_start = np.concatenate([[0], np.cumsum(contact_count)[:-1]])

    return Org(
        rep_id=rep_id,
        rep_name=rep_name,
        team=team,
        team_names=team_names,
        team_region=team_region,
        team_manager=team_manager,
        segment=segment,
        role=role,
        hire_date=hire_date,
        hire_day=hire_day,
        exit_day=exit_day,
        exit_reason=exit_reason,
        positive=positive,
        negative=negative,
        treated=treated,
        low_team=low_team,
        customer_facing_factor=customer_facing_factor,
        internal_factor=internal_factor,
        rate_factor=rate_factor,
        call_boost=call_boost,
        book_start=book_start,
        book_size=book_size,
        contact_start=contact_start,
        contact_count=contact_count,
    )


def volume_factor(org: Org) -> np.ndarray:
    """Each rep's activity volume relative to an ordinary rep's."""
    cf = CUSTOMER_FACING_SHARE
    return cf * org.customer_facing_factor + (1 - cf) * org.internal_factor


def employed_weight(org: Org, cal: Calendar) -> np.ndarray:
    """Sum of the day weights each rep was employed in the period."""
    lo = np.minimum(org.hire_day, cal.n_days)
    hi = np.minimum(org.exit_day, cal.n_days)
    return cal.cum_weight[hi] - cal.cum_weight[lo]


def calibrate(org: Org, cal: Calendar, n_activities: int) -> None:
    """Set the daily activity rate so the expected total is ``n_activities``."""
    org.daily_rate = n_activities / float((volume_factor(org) * employed_weight(org, cal)).sum())


def duration_scale(org: Org, cal: Calendar, durations: dict[str, float]) -> float:
    """Scale of customer-facing durations that gives an ordinary rep ~31% selling time."""
    per_week = org.daily_rate * CUSTOMER_FACING_SHARE * cal.weight[:7].sum()
    mean = sum(BASE_MIX[k] * durations[t] for k, t in enumerate(ACTIVITY_TYPES[:6]))
    return SELLING_HOURS_PER_WEEK * 60 / (per_week * mean)


def expected_open_days(model: Model, scale: float) -> np.ndarray:
    """Expected days a deal stays open, per segment (no truncation, stuck deals ignored)."""
    n = len(model.leave_prob)
    reach = np.zeros(n)
    reach[0] = 1.0
    for k in range(n - 1):
        move = reach[k] * (1 - model.leave_prob[k])
        skip = model.skip_prob if k + 2 < n - 1 else 0.0
        reach[k + 1] += move * (1 - skip)
        if skip:
            reach[k + 2] += move * skip
    mean_dur = model.stage_median_days * math.exp(model.duration_sigma**2 / 2) * scale
    return float((reach * mean_dur).sum()) * model.segment_duration
