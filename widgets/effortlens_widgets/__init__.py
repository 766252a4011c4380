"""Reusable ipywidgets components for EffortLens workbooks; all data comes from ``effortlens``."""

from __future__ import annotations

import effortlens_widgets._startup  # noqa: F401  (first: keeps kernel starts fast)
from effortlens_widgets.data_source import (
    DATA_ENV,
    DataSourceLoader,
    default_data_dir,
    load_data,
    settings_for,
)
from effortlens_widgets.load_report import LoadReportView

__all__ = [
    "DATA_ENV",
    "DataSourceLoader",
    "LoadReportView",
    "default_data_dir",
    "load_data",
    "settings_for",
]
