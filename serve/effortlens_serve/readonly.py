"""A contents manager that serves the workbooks but never writes, for viewers' servers.

A JupyterHub single-user server is a full Jupyter Server: through its contents API a signed-in
viewer could write a notebook into ``workbooks/`` that ``/voila/render/`` would then run. The
hub configuration (``deploy/jupyterhub/jupyterhub_config.py``) installs this manager so every
write, rename, copy, checkpoint or delete is refused with 403.

Examples
--------
>>> ReadOnlyContentsManager().writable  # doctest: +SKIP
False
"""

from __future__ import annotations

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado.web import HTTPError

_REFUSED = "EffortLens apps are read-only here: the workbooks cannot be changed from a page."


class ReadOnlyContentsManager(AsyncLargeFileManager):
    """Jupyter Server's file contents manager with every write refused (HTTP 403)."""

    writable = False

    def _refuse(self, *args, **kwargs):
        raise HTTPError(403, _REFUSED)

    async def save(self, model, path=""):
        """Refuse: nothing is written."""
        self._refuse()

    async def delete_file(self, path):
        """Refuse: nothing is deleted."""
        self._refuse()

    async def rename_file(self, old_path, new_path):
        """Refuse: nothing is renamed."""
        self._refuse()

    async def new_untitled(self, path="", type="", ext=""):
        """Refuse: nothing is created."""
        self._refuse()

    async def new(self, model=None, path=""):
        """Refuse: nothing is created."""
        self._refuse()

    async def copy(self, from_path, to_path=None):
        """Refuse: nothing is copied."""
        self._refuse()

    async def create_checkpoint(self, path):
        """Refuse: no checkpoint is written."""
        self._refuse()
