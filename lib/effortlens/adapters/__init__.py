"""Real CRM data: Salesforce and HubSpot exports, and any CSV through an editable mapping.

Point :func:`load_any` at a folder: it recognises the format from the header lines
(:func:`detect_format`), reads the exports into EffortLens's canonical tables and validates
them through the same pipeline as canonical files, so the load report and the quarantine look
the same whatever the source. For anything else, :func:`mapping_template` writes a TOML
mapping pre-filled from the headers; the user corrects it and loads with ``mapping=``.

Modules:

- the sources: :mod:`~effortlens.adapters.salesforce` (split by what it reads:
  ``salesforce_objects``, ``salesforce_activities``, ``salesforce_deals``,
  ``salesforce_users``), :mod:`~effortlens.adapters.hubspot` (``hubspot_objects``,
  ``hubspot_activities``, ``hubspot_deals``, ``hubspot_owners``),
  :mod:`~effortlens.adapters.generic` (any CSV through a :mod:`~effortlens.adapters.mapping`,
  whose first draft :mod:`~effortlens.adapters.template` writes);
  :mod:`~effortlens.adapters.detect` tells them apart and :mod:`~effortlens.adapters.source`
  is the one entry point;
- what every source shares, in the order a row meets it: :mod:`~effortlens.adapters.reading`
  (export files as sheets of text, and the :class:`~effortlens.adapters.reading.Context` an
  adapter reads with), :mod:`~effortlens.adapters.values` (vocabularies, amounts, automatic
  replies), :mod:`~effortlens.adapters.matching` (typed values matched to known words),
  :mod:`~effortlens.adapters.times` (date and time columns),
  :mod:`~effortlens.adapters.salesforce_ids`, :mod:`~effortlens.adapters.task_types` (the
  type of an untyped task, by a chain of evidence), :mod:`~effortlens.adapters.currency` (the
  export's own conversion rates), :mod:`~effortlens.adapters.pieces` (rows routed to canonical
  tables, set aside with a reason, validated together through :mod:`effortlens.loading`),
  :mod:`~effortlens.adapters.derivation` (reps and stage history an export does not hold) and
  :mod:`~effortlens.adapters.accounting` (the load report per source file, derived records
  apart).

True/false values are read by :func:`effortlens.loading.boolean`, as in canonical files.

Examples
--------
>>> from effortlens.adapters import detect_format, load_any
>>> from effortlens.settings import load_settings
>>> # data = load_any("exports/", settings=load_settings())
>>> # print(data.report.to_text())
"""

from __future__ import annotations

from effortlens.adapters.accounting import (
    FileReport,
    SourceReport,
    stage_history_source,
)
from effortlens.adapters.detect import Detection, detect_format
from effortlens.adapters.mapping import Mapping, MappingError, load_mapping
from effortlens.adapters.pieces import ADAPTER_REASONS
from effortlens.adapters.salesforce_ids import salesforce_id18
from effortlens.adapters.source import (
    detect_command_text,
    load_any,
    load_command_text,
    mapping_template_text,
)
from effortlens.adapters.template import mapping_template

__all__ = [
    "ADAPTER_REASONS",
    "Detection",
    "FileReport",
    "Mapping",
    "MappingError",
    "SourceReport",
    "detect_command_text",
    "detect_format",
    "load_any",
    "load_command_text",
    "load_mapping",
    "mapping_template",
    "mapping_template_text",
    "salesforce_id18",
    "stage_history_source",
]
