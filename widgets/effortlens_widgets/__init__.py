"""Reusable ipywidgets components for EffortLens workbooks; they call ``effortlens`` for all data."""

from __future__ import annotations
