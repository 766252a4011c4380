"""What the event steps of the sample generator pass between them, one array per field.

Part of :mod:`effortlens.sample`: :mod:`~effortlens.sample.events` draws these arrays and
:mod:`~effortlens.sample.tables` turns them into the canonical tables. Every array has one
element per event (activity, deal, stage entry or buyer action); indices are chunk-local.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import polars as pl

from effortlens.sample.plan import Calendar, Model, Org
from effortlens.settings import ACTION_TYPES, Settings


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


@dataclass(frozen=True)
class Activities:
    """Activities: chunk-local rep, local day, type, local seconds, UTC seconds, and so on."""

    rep: np.ndarray
    day: np.ndarray
    type: np.ndarray
    local: np.ndarray
    ts: np.ndarray
    is_cf: np.ndarray
    deal: np.ndarray | None = None  # deal index, -1 off any deal
    account: np.ndarray | None = None  # account index, -1 for internal work
    contact: np.ndarray | None = None
    duration: np.ndarray | None = None  # minutes


@dataclass(frozen=True)
class Deals:
    """Deals in creation order: owner (chunk-local and global), day, time, account, amount."""

    rep: np.ndarray
    global_rep: np.ndarray
    day: np.ndarray
    created: np.ndarray
    account: np.ndarray
    contact_offset: np.ndarray
    contacts: np.ndarray
    amount: np.ndarray


@dataclass(frozen=True)
class Stages:
    """How each deal ended, and its stage entries (deal, stage, UTC seconds)."""

    outcome: np.ndarray
    close: np.ndarray  # UTC seconds, -1 while open
    stuck_from: np.ndarray  # UTC seconds a stalled deal stopped moving (int64 max if never)
    exit_s: np.ndarray  # UTC seconds the owner left (the horizon if they stayed)
    e_deal: np.ndarray
    e_stage: np.ndarray
    e_t: np.ndarray
    e_pick: np.ndarray | None = None  # the buyer action backing each entry, -1 none


@dataclass(frozen=True)
class Responses:
    """Answered activities (indices), when the answer came, and its action type."""

    answered: np.ndarray
    ts: np.ndarray
    type: np.ndarray


@dataclass(frozen=True)
class Initiated:
    """Buyer-initiated actions: account, UTC seconds, contact, action type."""

    account: np.ndarray
    ts: np.ndarray
    contact: np.ndarray
    type: np.ndarray


@dataclass(frozen=True)
class Actions:
    """All buyer actions in time order; ``source`` is the answered activity, -1 if initiated."""

    ts: np.ndarray
    source: np.ndarray
    deal: np.ndarray
    account: np.ndarray
    contact: np.ndarray
    type: np.ndarray


def take(arrays, order: np.ndarray):
    """``arrays`` (one of the dataclasses above) with every array field reordered."""
    return replace(arrays, **{f.name: getattr(arrays, f.name)[order] for f in fields(arrays)})


def is_verifier_type(settings: Settings) -> np.ndarray:
    """Per :data:`ACTION_TYPES`: whether the settings count it as a verifier."""
    verifiers = set(settings.verifiers)
    return np.array([a in verifiers for a in ACTION_TYPES])
