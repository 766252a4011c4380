"""Serving the EffortLens workbooks to a team: Voilà with login, bounded and culled kernels.

``effortlens serve`` (and ``make serve``) run :func:`effortlens_serve.app.main`; ``make run`` runs
the same server on loopback without login. This package imports Jupyter Server and Voilà, so it
lives apart from ``effortlens`` (pure Polars) and ``effortlens_widgets`` (the apps).
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``effortlens serve`` with ``argv`` (see ``effortlens serve --help``)."""
    from effortlens_serve.app import main as _main

    return _main(argv)
