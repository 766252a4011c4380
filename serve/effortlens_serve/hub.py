"""Kernels of a JupyterHub single-user server on Unix sockets in a private folder.

``effortlens serve`` and plain ``voila`` start their kernels with ``--KernelManager.transport=ipc``
in the folder Voilà makes for each server (see :func:`effortlens_serve.app.kernel_transport`).
A single-user server of the hub (deploy/jupyterhub) is a Jupyter Server with Voilà as an
extension: its kernels' connection files go to the server's runtime folder
(``$HOME/.local/share/jupyter/runtime``; ``$HOME`` is ``/tmp/<user name>`` under
SimpleLocalProcessSpawner), shared by every server of that home, made without a check of who
owns an existing one, and as long as the user name (a long e-mail name would pass ``sun_path``'s
limit). Jupyter Server hands that folder to its kernel manager, not as a setting, so the hub
names this class instead (``--ServerApp.kernel_manager_class``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

from effortlens_serve.app import kernel_transport, mark_socket_folder, sweep_socket_folders

#: Prefix of each server's socket folder under the system's temporary folder.
FOLDER_PREFIX = "el_kernels_"


class PrivateSocketsKernelManager(AsyncMappingKernelManager):
    """A server's kernels talk to it over Unix sockets in a folder only this user can enter.

    At start, the server makes its own folder with :func:`tempfile.mkdtemp` (mode 0700) under
    the system's temporary folder, puts its kernels' connection files and sockets there, and
    removes it when it stops. TCP (and the server's runtime folder) remain where
    :func:`effortlens_serve.app.kernel_transport` says so: Windows, or a ``$TMPDIR`` so long
    that a socket's path would pass the system's limit.

    Examples
    --------
    A hub's ``Spawner.args`` name it (deploy/jupyterhub/jupyterhub_config.py):
    ``--ServerApp.kernel_manager_class=effortlens_serve.hub.PrivateSocketsKernelManager``;
    it is one of Jupyter Server's kernel managers:

    >>> from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
    >>> issubclass(PrivateSocketsKernelManager, MappingKernelManager)
    True
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.socket_dir: str | None = None
        # mkdtemp's folder name: the prefix and 8 random characters
        planned = os.path.join(tempfile.gettempdir(), FOLDER_PREFIX + "x" * 8)
        if kernel_transport(connection_dir=planned) == "ipc":
            sweep_socket_folders()  # left by servers killed before they could remove them
            self.socket_dir = tempfile.mkdtemp(prefix=FOLDER_PREFIX)
            mark_socket_folder(self.socket_dir)
            self.connection_dir = self.socket_dir
            atexit.register(shutil.rmtree, self.socket_dir, ignore_errors=True)
            self.log.info("Kernels talk over Unix sockets in %s", self.socket_dir)

    def pre_start_kernel(self, kernel_name: str | None, kwargs: Any) -> tuple[Any, str, str]:
        """Each kernel's manager, on ipc in the private folder when the server made one."""
        km, kernel_name, kernel_id = super().pre_start_kernel(kernel_name, kwargs)
        if self.socket_dir is not None:
            # before anything reads ``ip``: its default is then <connection file>-ipc
            km.transport = "ipc"
        return km, kernel_name, kernel_id
