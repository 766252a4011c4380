"""Positive deviance: who outperforms peers just like them, and what they do differently.

Everything works on generic *(successes, trials)* per rep, so the same code serves

- **response rate**: responded customer-facing activities / customer-facing activities
  (:func:`response_counts`, from the enriched activities), and
- **win rate**: won / closed (won + lost + no_decision) deals the rep owns
  (:func:`win_counts`, from opportunities alone, so it works on pipeline-only data).

Method (:func:`peer_deviance`)
------------------------------
- **Peer rate**: the pooled rate of the rep's peer group (all its reps' successes over all
  their trials, the rep included), the centre line of the group's funnel plot. A rep alone in
  a peer group cannot be a deviant.
- **Over-dispersion** (Spiegelhalter 2005, *Handling over-dispersion of performance
  indicators*, additive random effects). Reps differ for many reasons besides skill and
  buyers cluster within reps, so plain binomial limits would make most reps "outliers" on
  large volumes. The between-rep variance is a DerSimonian–Laird moment estimate pooled
  across peer groups, expressed as an intra-class correlation ``rho`` (the beta-binomial's,
  shared by all groups; ``rho = 0`` when the spread is no more than chance). So that the
  deviants do not hide themselves by inflating it, the first estimate winsorises the reps'
  z-scores at the 10th/90th percentile (rescaled by the winsorised normal's second moment,
  so it stays unbiased for normal spread); then ``rho`` is re-estimated from the reps inside
  the 99.8% limits alone, until that set stops changing. (Winsorising alone overstates
  ``rho`` when part of the spread is a real group effect, e.g. reps coached mid-year.)
- **Shrinkage** (empirical Bayes): each group's beta prior has mean = peer rate and
  ``alpha + beta = 1 / rho - 1`` (method of moments); the shrunk rate is
  ``(successes + alpha) / (trials + alpha + beta)``; with ``rho = 0`` every rep shrinks to the
  peer rate.
- **Control limits** at 95% and 99.8% around the peer rate for each volume: exact quantiles of
  the beta-binomial (binomial when ``rho = 0``) from scipy for volumes up to
  :data:`EXACT_MAX_VOLUME`; above, the moment-matched beta distribution of the rate (its
  limit for large volumes, within one count of the exact limits there), which scipy
  evaluates in constant time.
- **Deviants**: reps with at least ``min_volume`` trials whose rate lies outside the 99.8%
  limits: ``positive`` above, ``negative`` below. ``z`` is the normal score under the
  over-dispersed variance; ``p_value`` the two-sided tail probability (exact where the limits
  are).

What differs (:func:`what_differs`)
-----------------------------------
The practice mix of the deviants against the non-deviant reps of their own peer groups,
compared within each peer group and averaged over groups weighted by their deviants:
activity-type, weekday and hour-of-day shares of customer-facing touches; cadence (the share
of a rep's follow-ups on a contact made within 2 days of their previous touch on it, and the
median days between such touches); and sequences (a rep's 2-grams of activity types on a
contact). Sizes are standardised so that they rank together: Cohen's *h* for shares; for
sequences Cohen's *h* of ``P(b | a)`` over ``P(b)``, deviants minus peers, i.e. what the
order adds beyond the type mix; Glass's *delta* (difference over the spread of the peers'
own medians) for median days.

Modules
-------
- :mod:`effortlens.deviance.funnel`: funnel statistics (over-dispersion, control limits,
  p-values, the funnel lines);
- :mod:`effortlens.deviance.peers`: each rep against their peers, and the deviants;
- :mod:`effortlens.deviance.differs`: what the deviants do differently.

The counts come from :mod:`effortlens.measures`. Every public name is importable from here.

Examples
--------
>>> from effortlens.deviance import deviants_table
>>> deviants_table(enriched, metric="win_rate")  # doctest: +SKIP
"""

from __future__ import annotations

from effortlens.deviance.differs import FOLLOW_UP_DAYS as FOLLOW_UP_DAYS
from effortlens.deviance.differs import what_differs as what_differs
from effortlens.deviance.funnel import EXACT_MAX_VOLUME as EXACT_MAX_VOLUME
from effortlens.deviance.funnel import LIMIT_LEVELS as LIMIT_LEVELS
from effortlens.deviance.funnel import WINSOR as WINSOR
from effortlens.deviance.funnel import funnel_limits as funnel_limits
from effortlens.deviance.funnel import overdispersion as overdispersion
from effortlens.deviance.peers import DIRECTIONS as DIRECTIONS
from effortlens.deviance.peers import RATE_METRICS as RATE_METRICS
from effortlens.deviance.peers import WIN_RATE_MIN_VOLUME as WIN_RATE_MIN_VOLUME
from effortlens.deviance.peers import deviants_table as deviants_table
from effortlens.deviance.peers import peer_deviance as peer_deviance
from effortlens.deviance.peers import rank_deviants as rank_deviants
from effortlens.deviance.peers import rep_deviance as rep_deviance
from effortlens.measures import response_counts as response_counts
from effortlens.measures import win_counts as win_counts
from effortlens.vocabulary import CLOSED_OUTCOMES as CLOSED_OUTCOMES

__all__ = [
    "CLOSED_OUTCOMES",
    "DIRECTIONS",
    "EXACT_MAX_VOLUME",
    "FOLLOW_UP_DAYS",
    "LIMIT_LEVELS",
    "RATE_METRICS",
    "WINSOR",
    "WIN_RATE_MIN_VOLUME",
    "deviants_table",
    "funnel_limits",
    "overdispersion",
    "peer_deviance",
    "rank_deviants",
    "rep_deviance",
    "response_counts",
    "what_differs",
    "win_counts",
]
