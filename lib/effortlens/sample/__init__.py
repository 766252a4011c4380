"""Deterministic sample data with planted truths, written beside the data in ``truth.json``.

The generator writes the seven canonical tables of a made-up B2B sales company (reps in teams,
segments and roles; their activities, deals, stage history and the buyers' responses) for a
fixed period starting 2025-01-06. The same ``(size, mode, seed)`` always gives byte-identical
files. Buyer actions are drawn as responses to specific seller activities (the true cause of
each is in ``_truth_responses.parquet``), plus about 10% buyer-initiated ones.

Modes:

- ``"planted"``: positive and negative deviants and the practice behind the positive ones, a
  leaky stage, a stalled stage, an unverified stage, an intervention with a known effect, a
  team with low time for selling and the most voluntary exits, and timing, cadence and
  sequence effects. ``truth.json`` says exactly what and where; ``sample_data/README.md``
  explains each for people.
- ``"null"``: the same volumes and structure with nothing planted.
- ``"dirty"``: planted data written as Excel-like CSV with bad rows of every quarantine reason
  injected; the expected quarantine counts are in ``truth.json``.

From the shell: ``python -m effortlens.sample --size tiny --out DIR`` (or ``effortlens sample``).

The modules, in the order the data is made:

- :mod:`~effortlens.sample.sizes`: the named sizes, modes and formats;
- :mod:`~effortlens.sample.plan`: the company, its calendar and the rules of each mode;
- :mod:`~effortlens.sample.events`: the events of a chunk of reps, step by step (with
  :mod:`~effortlens.sample.draw` and :mod:`~effortlens.sample.backing`), passed between the
  steps as :mod:`~effortlens.sample.arrays`;
- :mod:`~effortlens.sample.tables`: the canonical tables of a chunk;
- :mod:`~effortlens.sample.dirty`: the dirty CSV files;
- :mod:`~effortlens.sample.truth`: ``truth.json``;
- :mod:`~effortlens.sample.generator`: :func:`generate` and :func:`ensure_sample`;
- :mod:`~effortlens.sample.command`: the command line.

Examples
--------
>>> import json, tempfile
>>> from pathlib import Path
>>> from effortlens.sample import generate
>>> out = Path(tempfile.mkdtemp())
>>> truth = json.loads(generate(out, size="tiny", seed=3).read_text())
>>> truth["leaky_stage"], truth["n_reps"]
('evaluation', 24)
"""

from __future__ import annotations

from effortlens.sample.command import main as main
from effortlens.sample.generator import RESPONSES_FILE as RESPONSES_FILE
from effortlens.sample.generator import TRUTH_FILE as TRUTH_FILE
from effortlens.sample.generator import ensure_sample as ensure_sample
from effortlens.sample.generator import generate as generate
from effortlens.sample.plan import INTERVENTION as INTERVENTION
from effortlens.sample.sizes import FORMATS as FORMATS
from effortlens.sample.sizes import MODES as MODES
from effortlens.sample.sizes import SIZES as SIZES
from effortlens.sample.sizes import resolve_size as resolve_size
from effortlens.sample.truth import GENERATOR_VERSION as GENERATOR_VERSION

__all__ = [
    "FORMATS",
    "GENERATOR_VERSION",
    "INTERVENTION",
    "MODES",
    "RESPONSES_FILE",
    "SIZES",
    "TRUTH_FILE",
    "ensure_sample",
    "generate",
    "main",
    "resolve_size",
]
