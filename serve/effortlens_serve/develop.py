"""Link the ``effortlens`` Voilà template into this environment, for editable installs.

``pip install .`` copies the template into ``<prefix>/share/jupyter/voila/templates`` (the
``data-files`` of pyproject.toml), where ``voila`` and JupyterLab's Voilà preview look for
templates. An editable install (``pip install -e .``) installs no data files, so, as
``jupyter labextension develop`` does for JupyterLab extensions, this links the checkout's
template there instead (edits to it then show at once)::

    python -m effortlens_serve.develop
"""

from __future__ import annotations

import sys
from pathlib import Path

TEMPLATE = Path("share", "jupyter", "voila", "templates", "effortlens")


def link_template(*, checkout: Path | None = None, prefix: Path | None = None) -> Path:
    """Symlink ``<checkout>/share/.../effortlens`` to ``<prefix>/share/.../effortlens``.

    An existing link is replaced; an installed copy (from ``pip install .``) is left alone.

    Examples
    --------
    >>> link_template()  # doctest: +SKIP
    PosixPath('/home/analyst/effortlens/.venv/share/jupyter/voila/templates/effortlens')
    """
    checkout = checkout or Path(__file__).resolve().parents[2]
    source = checkout / TEMPLATE
    if not source.is_dir():
        raise FileNotFoundError(f"no template at {source}: not a source checkout")
    target = Path(prefix or sys.prefix) / TEMPLATE
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
    elif target.exists():
        return target  # a real installed copy
    target.symlink_to(source, target_is_directory=True)
    return target


if __name__ == "__main__":
    print(f"linked {link_template()}")
