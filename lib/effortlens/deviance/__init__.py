"""Positive deviance: who outperforms peers just like them, and what they do differently.

Everything works on generic *(successes, trials)* per rep, so the same code serves

- **response rate**: responded customer-facing activities / customer-facing activities
  (:func:`response_counts`, from the enriched activities), and
- **win rate**: won / closed (won + lost + no_decision) deals the rep owns
  (:func:`win_counts`, from opportunities alone, so it works on pipeline-only data).

Method (:func:`peer_deviance`)
------------------------------
- **Peer groups**: reps sharing the settings' peer keys (segment and role). A group with
  fewer than ``settings.min_peer_reps`` (5) reps with volume is too small to say what is
  usual in it; its reps are compared within a broader group instead (the last key dropped:
  the segment, then all reps), and ``peer_group``/``peer_basis`` name the grouping used.
- **Centre** (leave-one-out, random effects): each rep is compared with the *other* reps of
  its group, so a rep never pulls its own centre towards itself. The others enter with
  weights ``1 / v_j``, ``v_j = p (1 - p) (1 + (n_j - 1) rho) / n_j``: with over-dispersion a
  very busy rep weighs at most ``1 / (p (1 - p) rho)``, so with heavy-tailed volumes no single
  large rep sets the centre (with ``rho = 0`` this is the pooled rate of the others). The
  centre's own variance, ``1 / sum(w_j)``, is part of every limit and p-value.
- **Over-dispersion** (Spiegelhalter 2005, *Handling over-dispersion of performance
  indicators*). Reps differ for many reasons besides skill and buyers cluster within reps,
  so plain binomial limits would make most reps "outliers" on large volumes. The
  between-rep variation is one intra-class correlation ``rho`` (the beta-binomial's, shared
  by all groups), estimated once, robustly and against the same leave-one-out centre: ``rho``
  solves ``mean(min(z_i^2, k^2)) = E[min(Z^2, k^2)]`` (``k = 1.5``, Huber-type), so a
  deviant far outside the limits weighs no more than a rep at 1.5 standard deviations and
  cannot hide by widening every limit; the same Huber weights keep it from shifting its
  peers' centres. ``rho = 0`` when the spread is no more than chance.
- **Shrinkage** (empirical Bayes): a beta prior with mean = the rep's centre and
  ``alpha + beta = 1 / rho - 1``; the shrunk rate is
  ``(successes + alpha) / (trials + alpha + beta)``; with ``rho = 0`` every rep shrinks to
  the centre.
- **Control limits** at 95% and 99.8% for each rep: exact quantiles of the beta-binomial
  whose variance is the rep's own (``rho``) plus its centre's, for volumes up to
  :data:`EXACT_MAX_VOLUME` (scipy's ``ppf`` to the count, computed from one table of the
  count probabilities per block of reps); above, the moment-matched beta distribution of the
  rate.
- **p-value** from the same distribution (two-sided, exact where the limits are);
  ``z`` is its signed normal score, so ``|z| > 3.09`` exactly when the rate lies outside the
  99.8% limits. **q-value**: Benjamini–Hochberg over the eligible reps (volume at least
  ``min_volume``, with peers to compare with).
- **Deviants** (the flag rule): an eligible rep whose rate lies outside the 99.8% limits
  *and* whose q-value is at most :data:`FDR` (5%): ``positive`` above, ``negative`` below.
  The q-value keeps the share of false flags among the flags near 5% however many reps are
  tested; the limits keep each flag a large departure.
- **Power**: ``detectable`` says whether the 99.8% limits would catch a rep at half or
  double its centre. Where they would not (a few closed deals, a small or mixed group: win
  rates especially), a rep inside the limits is *not known* to be ordinary, and the page
  says so instead of "within chance".

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
from effortlens.deviance.differs import PRACTICE_COLUMNS as PRACTICE_COLUMNS
from effortlens.deviance.differs import practice_cells as practice_cells
from effortlens.deviance.differs import practice_facts as practice_facts
from effortlens.deviance.differs import practice_gaps as practice_gaps
from effortlens.deviance.differs import practice_in as practice_in
from effortlens.deviance.differs import sorted_gaps as sorted_gaps
from effortlens.deviance.differs import what_differs as what_differs
from effortlens.deviance.differs import what_differs_in as what_differs_in
from effortlens.deviance.funnel import EXACT_MAX_VOLUME as EXACT_MAX_VOLUME
from effortlens.deviance.funnel import HUBER_K as HUBER_K
from effortlens.deviance.funnel import LIMIT_LEVELS as LIMIT_LEVELS
from effortlens.deviance.funnel import funnel_limits as funnel_limits
from effortlens.deviance.funnel import limits_and_p_values as limits_and_p_values
from effortlens.deviance.funnel import overdispersion as overdispersion
from effortlens.deviance.peers import DIRECTIONS as DIRECTIONS
from effortlens.deviance.peers import FDR as FDR
from effortlens.deviance.peers import RATE_METRICS as RATE_METRICS
from effortlens.deviance.peers import WIN_RATE_MIN_VOLUME as WIN_RATE_MIN_VOLUME
from effortlens.deviance.peers import ResponseCountIndex as ResponseCountIndex
from effortlens.deviance.peers import deviants_table as deviants_table
from effortlens.deviance.peers import peer_deviance as peer_deviance
from effortlens.deviance.peers import rank_deviants as rank_deviants
from effortlens.deviance.peers import rep_deviance as rep_deviance
from effortlens.deviance.peers import response_count_index as response_count_index
from effortlens.deviance.peers import response_counts_between as response_counts_between
from effortlens.measures import response_counts as response_counts
from effortlens.measures import win_counts as win_counts
from effortlens.vocabulary import CLOSED_OUTCOMES as CLOSED_OUTCOMES

__all__ = [
    "CLOSED_OUTCOMES",
    "DIRECTIONS",
    "EXACT_MAX_VOLUME",
    "FOLLOW_UP_DAYS",
    "LIMIT_LEVELS",
    "PRACTICE_COLUMNS",
    "RATE_METRICS",
    "ResponseCountIndex",
    "HUBER_K",
    "FDR",
    "WIN_RATE_MIN_VOLUME",
    "deviants_table",
    "funnel_limits",
    "limits_and_p_values",
    "overdispersion",
    "peer_deviance",
    "practice_cells",
    "practice_facts",
    "practice_gaps",
    "practice_in",
    "rank_deviants",
    "rep_deviance",
    "response_count_index",
    "response_counts_between",
    "response_counts",
    "sorted_gaps",
    "what_differs",
    "what_differs_in",
    "win_counts",
]
