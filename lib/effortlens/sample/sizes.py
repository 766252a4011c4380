"""The named sizes, modes and formats of the sample generator, and how a size is read.

This module imports nothing heavy, so the command line can offer the choices without loading
the generator.

Examples
--------
>>> resolve_size("small")
('small', {'n_reps': 60, 'weeks': 52, 'n_activities': 100000})
"""

from __future__ import annotations

#: Named sizes: reps, weeks of data and the activities aimed at.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"n_reps": 24, "weeks": 18, "n_activities": 15_000},
    "small": {"n_reps": 60, "weeks": 52, "n_activities": 100_000},
    "default": {"n_reps": 60, "weeks": 78, "n_activities": 300_000},
    "1m": {"n_reps": 200, "weeks": 78, "n_activities": 1_000_000},
    "10m": {"n_reps": 2000, "weeks": 78, "n_activities": 10_000_000},
    # a 5,000-rep enterprise over two years (issue 13's scale target; written chunk by chunk)
    "100m": {"n_reps": 5000, "weeks": 104, "n_activities": 100_000_000},
}
#: What is planted: patterns with known truths, nothing, or planted data written dirty.
MODES: tuple[str, ...] = ("planted", "null", "dirty")
#: File formats of the tables ("dirty" is always CSV).
FORMATS: tuple[str, ...] = ("parquet", "csv")
#: Activities per rep per 78 weeks, for sizes given as a number of activities.
ACTIVITIES_PER_REP = 5_000


def resolve_size(size: str | int) -> tuple[str, dict[str, int]]:
    """The label and parameters of ``size``: a name in :data:`SIZES` or a number of activities.

    Examples
    --------
    >>> resolve_size("tiny")[1]["n_reps"]
    24
    >>> resolve_size(250_000)
    ('250000', {'n_reps': 50, 'weeks': 78, 'n_activities': 250000})
    """
    if isinstance(size, str) and size.strip().lower() in SIZES:
        label = size.strip().lower()
        return label, dict(SIZES[label])
    try:
        n = int(size)
    except (TypeError, ValueError):
        names = ", ".join(SIZES)
        raise ValueError(
            f"size must be one of {names} or a number of activities, got {size!r}"
        ) from None
    if n < 1_000:
        raise ValueError(f"size as a number of activities must be at least 1000, got {n}")
    return str(n), {
        "n_reps": max(24, round(n / ACTIVITIES_PER_REP)),
        "weeks": 78,
        "n_activities": n,
    }
