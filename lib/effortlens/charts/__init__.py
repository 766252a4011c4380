"""Altair chart builders: ``<name>_chart(frame, ...) -> alt.Chart``, fed aggregated frames only.

Importing any chart module registers and enables the project theme (:mod:`.theme`).
"""
