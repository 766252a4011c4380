"""Validity checks of EffortLens' statistics on data with a known truth.

:mod:`effortlens.validity.dgp` is a second data-generating family, written apart from the
project's sample generator (:mod:`effortlens.sample`), with unequal peer groups,
over-dispersed rep rates, heavy-tailed volumes, common shocks and peer-group-specific time
trends. :mod:`effortlens.validity.harness` runs the metrics on many seeds of both families
and scores them against the truth (recall, false flags, coverage, bias). ``bench/validity.py``
is the full run; ``VALIDITY.md`` holds its results.
"""

from __future__ import annotations
