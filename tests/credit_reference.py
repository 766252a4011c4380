"""The habit credit's expectation-maximisation written plainly from its definition: the test
reference of :func:`effortlens.touch_build.credit_em` (the one fit the event path and the
build use), which computes the same sums in chunks, in small integers and in place.

The model: each buyer action on a contact was caused either by one of the touches before it
(its candidate pairs) or by the background. A touch of cell *c* and hour band *b* causes
actions at ``rate[c]`` in all, spread over the lag since it by the density ``density[b]``
(piecewise constant over the lag bins of ``LAG_EDGES_HOURS``); the background causes them at
``background`` per unit of ``background_exposure``. Each iteration:

- E step: a pair's share of its action (its *credit*) is its touch's rate x the density at
  its lag, over the sum of those of all the action's pairs plus the background;
- M step: a cell's rate is its credits over its touches' exposure (the part of each touch's
  lag density the data covers: a touch near the end of the data counts only the hours left);
  a band's density is its credits per lag bin (plus 1e-9) per hour, normalised to 1; the
  background is its expected share of all actions over the exposure.

It stops after ``iterations``, or once no rate, lag-bin probability (density x width) or the
background changes by ``tolerance`` or more (the rates and background relative to the larger
of their old and new value, a rate's floored at 1e-12 of the largest rate). Sums over pairs
or touches add their terms in order (``numpy.add.at``), as a bincount does.
"""

from __future__ import annotations

import numpy as np

from effortlens.habits import LAG_EDGES_HOURS


def reference_credit_em(
    cell, band, left, action, touch, lag, n_actions, exposure, *, iterations, tolerance=1e-9
):
    """Per cell the rate, per candidate pair its credit (as ``credit_em`` returns them), of
    the touches' cells, bands and hours ``left`` in their window, the candidate pairs'
    ``action``, ``touch`` and ``lag`` (hours), for ``n_actions`` and the background's
    ``exposure``."""
    edges = np.asarray(LAG_EDGES_HOURS, dtype=np.float64)
    widths = np.diff(edges)
    bins = len(widths)
    bands = int(band.max()) + 1 if len(band) else 1
    cells = int(cell.max()) + 1 if len(cell) else 1
    actions = max(n_actions, int(action.max()) + 1 if len(action) else 0)
    exposure_scale = max(exposure, 1e-9)

    def ordered_sum(index, values, size):
        out = np.zeros(size)
        np.add.at(out, index, values)
        return out

    # what the iterations do not change: each pair's touch cell, band and lag bin; where each
    # touch's window is cut by the end of the data (``bins``: not cut)
    pair_cell = cell[touch]
    pair_band = band[touch]
    lag_bin = np.clip(np.searchsorted(edges, lag, side="right") - 1, 0, bins - 1)
    cut_bin = np.clip(np.searchsorted(edges, left, side="right") - 1, 0, bins)
    is_cut = cut_bin < bins
    cut_at = np.minimum(cut_bin, bins - 1)

    density = np.full((bands, bins), 1 / edges[-1])
    rate = np.full(cells, max(len(action), 1) / max(len(cell), 1))
    background = 0.1 * n_actions / exposure_scale
    credit = np.zeros(len(action))
    for _ in range(iterations):
        old_rate, old_density, old_background = rate, density, background
        # E step
        weight = rate[pair_cell] * density[pair_band, lag_bin]
        total = ordered_sum(action, weight, actions) + background
        credit = weight / total[action]
        background_share = background / total
        # M step: the rates over the exposure the data covers
        below = np.cumsum(density * widths, axis=1)  # the density's mass up to each edge
        below = np.concatenate([np.zeros((bands, 1)), below], axis=1)
        covered = below[band, cut_bin] + np.where(
            is_cut, (left - edges[cut_at]) * density[band, cut_at], 0.0
        )
        covered = np.clip(covered, 1e-9, 1.0)
        credited = ordered_sum(pair_cell, credit, cells)
        exposed = ordered_sum(cell, covered, cells)
        rate = np.where(exposed > 0, credited / np.maximum(exposed, 1e-12), 0.0)
        mass = ordered_sum(pair_band * bins + lag_bin, credit, bands * bins).reshape(bands, bins)
        density = (mass + 1e-9) / widths
        density = density / (density * widths).sum(axis=1, keepdims=True)
        background = background_share.sum() / exposure_scale
        # the stopping rule
        floor = max(1e-12 * float(rate.max(initial=0.0)), np.finfo(np.float64).tiny)
        tiny = np.finfo(np.float64).tiny
        moved = max(
            float((np.abs(rate - old_rate) / np.maximum(np.maximum(rate, old_rate), floor)).max()),
            float((np.abs(density - old_density) * widths).max()),
            abs(background - old_background) / max(background, old_background, tiny),
        )
        if moved < tolerance:
            break
    return rate, credit
