"""EffortLens: what sales effort achieves with buyers. The Polars core, no Jupyter needed.

The public names of every module are available from the package itself; they are imported on
first use, so ``import effortlens`` stays fast (the statistics modules pull in SciPy).

Examples
--------
>>> import effortlens as el
>>> data = el.load_any("sample_data/generated/default")  # doctest: +SKIP
>>> enriched = el.enrich(data)  # doctest: +SKIP
>>> el.roe_by(enriched.daily, by=["team"])  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from effortlens.schema import TABLES as TABLES
from effortlens.schema import TableSchema as TableSchema
from effortlens.schema import conform as conform
from effortlens.settings import Settings as Settings
from effortlens.settings import SettingsError as SettingsError
from effortlens.settings import load_settings as load_settings

#: Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    # loading
    "DataError": "effortlens.loading.report",
    "LoadReport": "effortlens.loading.report",
    "LoadedData": "effortlens.loading.pipeline",
    "RawTable": "effortlens.loading.table",
    "load_folder": "effortlens.loading.pipeline",
    "validate_tables": "effortlens.loading.pipeline",
    "load_any": "effortlens.adapters",
    "detect_format": "effortlens.adapters",
    "mapping_template": "effortlens.adapters",
    "load_mapping": "effortlens.adapters",
    "MappingError": "effortlens.adapters",
    "generate": "effortlens.sample",
    "ensure_sample": "effortlens.sample",
    # enrichment and slicing
    "Enriched": "effortlens.enrich",
    "enrich": "effortlens.enrich",
    "Filter": "effortlens.filters",
    "filter_enriched": "effortlens.filters",
    "build_pseudonyms": "effortlens.anonymise",
    "anonymise_frame": "effortlens.anonymise",
    # metrics
    "with_rates": "effortlens.measures",
    "response_counts": "effortlens.measures",
    "win_counts": "effortlens.measures",
    "deal_rates": "effortlens.measures",
    "roe_by": "effortlens.roe",
    "roe_trend": "effortlens.roe",
    "roe_table": "effortlens.roe",
    "silent_streaks": "effortlens.roe",
    "streak_facts": "effortlens.roe",
    "streaks_from_facts": "effortlens.roe",
    "rep_deviance": "effortlens.deviance",
    "deviants_table": "effortlens.deviance",
    "what_differs": "effortlens.deviance",
    "rank_deviants": "effortlens.deviance",
    "peer_deviance": "effortlens.deviance",
    "flow_table": "effortlens.flow",
    "blocked_deals": "effortlens.flow",
    "stage_flags": "effortlens.flow",
    "response_by_timing": "effortlens.habits",
    "response_by_cadence": "effortlens.habits",
    "sequence_lift": "effortlens.habits",
    "habits_table": "effortlens.habits",
    "habit_effects": "effortlens.habits",
    "rank_habits": "effortlens.habits",
    "touch_facts": "effortlens.habits",
    "touch_habits": "effortlens.habits",
    "intervention_effect": "effortlens.interventions",
    "intervention_weekly": "effortlens.interventions",
    "organisation_table": "effortlens.organisation",
    "selling_time_weekly": "effortlens.organisation",
    "variance_share": "effortlens.organisation",
    "mirror_weeks": "effortlens.mirror",
    "rep_mirror": "effortlens.mirror",
    # findings: the sentences pages, CLI and pattern session share
    "Finding": "effortlens.findings",
    "team_findings": "effortlens.findings",
    "habits_findings": "effortlens.findings",
    "deviance_findings": "effortlens.findings",
    "journey_findings": "effortlens.findings",
    "roe_headline": "effortlens.findings",
    "findings_text": "effortlens.findings",
    "findings_html": "effortlens.findings",
}

__all__ = sorted(
    ["TABLES", "Settings", "SettingsError", "TableSchema", "conform", "load_settings", *_LAZY]
)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'effortlens' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
