"""EffortLens: what sales effort achieves with buyers. The Polars core, no Jupyter needed."""

from __future__ import annotations

from effortlens.schema import TABLES, TableSchema, conform
from effortlens.settings import Settings, SettingsError, load_settings

__all__ = ["TABLES", "Settings", "SettingsError", "TableSchema", "conform", "load_settings"]
__version__ = "0.1.0"
