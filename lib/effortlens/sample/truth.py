"""``truth.json``: what a generated data set holds and what was planted in it.

Part of :mod:`effortlens.sample`; ``sample_data/README.md`` explains each entry for people.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np

from effortlens.sample.plan import INTERVENTION, Calendar, Model, Org

#: Version of the generator, in ``truth.json``; a change regenerates cached sample data.
GENERATOR_VERSION = 1


def truth_record(
    org: Org,
    cal: Calendar,
    model: Model,
    *,
    mode: str,
    seed: int,
    label: str,
    fmt: str,
    start_day: int,
    n_activities: int,
    customer_facing: np.ndarray,
    calls: np.ndarray,
    expected: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """The contents of ``truth.json``: the data set's arguments and what was planted where.

    Parameters
    ----------
    org, cal, model
        The company, its calendar and the mode's rules.
    mode, seed, label, fmt
        The arguments the data set was generated with (``label`` names the size).
    start_day
        Day index the intervention starts.
    n_activities
        Activities written.
    customer_facing, calls
        Customer-facing activities and calls per rep, for the deviants' practice.
    expected
        Expected quarantine counts per table and reason (dirty mode; else empty).
    """
    planted = model.planted
    positive = [org.rep_id[i] for i in np.flatnonzero(org.positive)]
    negative = [org.rep_id[i] for i in np.flatnonzero(org.negative)]
    treated = np.flatnonzero(org.treated)
    practice = None
    if planted:
        groups = {org.peer_group(i) for i in np.flatnonzero(org.positive)}
        peers = (
            np.array([org.peer_group(i) in groups for i in range(org.n_reps)])
            & ~org.positive
            & ~org.negative
        )
        practice = {
            "feature": "activity_type_share",
            "activity_type": "call",
            "deviant_share": round(
                float(calls[org.positive].sum() / customer_facing[org.positive].sum()), 4
            ),
            "peer_share": round(float(calls[peers].sum() / customer_facing[peers].sum()), 4),
        }
    start = cal.start + timedelta(days=start_day)
    return {
        "mode": mode,
        "seed": seed,
        "size": label,
        "n_reps": org.n_reps,
        "n_activities": int(n_activities),
        "period_start": cal.start.isoformat(),
        "period_end": cal.end.isoformat(),
        "timezone": cal.timezone,
        "positive_deviants": positive,
        "negative_deviants": negative,
        "deviant_practice": practice,
        "leaky_stage": "evaluation" if planted else None,
        "stalled_stage": "negotiation" if planted else None,
        "unverified_stage": "commit" if planted else None,
        "intervention": {
            "intervention_id": INTERVENTION["intervention_id"],
            "name": INTERVENTION["name"],
            "metric": "response_rate",
            "effect": float(model.effect),
            "start_date": start.isoformat(),
            "treated": [org.rep_id[i] for i in treated],
            "peer_groups": [list(g) for g in sorted({org.peer_group(i) for i in treated})],
        },
        "low_selling_team": org.team_names[org.low_team] if planted else None,
        "timing": {
            "best_weekdays": list(model.best_weekdays),
            "best_hours": list(model.best_hours),
            "multiplier": model.timing_multiplier,
        }
        if planted
        else None,
        "cadence": {
            "silence_days": model.silence_days,
            "multiplier": model.cadence_multiplier,
        }
        if planted
        else None,
        "sequence": {
            "sequence": ["call", "email"],
            "within_days": model.sequence_within_days,
            "multiplier": model.sequence_multiplier,
        }
        if planted
        else None,
        "expected_quarantine": expected,
        "format": fmt,
        "generator_version": GENERATOR_VERSION,
    }
