"""Voilà settings that depend on the machine: installed as ``<prefix>/etc/jupyter/voila.py``,
beside the copy of ``voila.json`` (which holds the rest), so every ``voila`` of the environment
reads them, from any folder.

Kernels talk to Voilà over Unix sockets where the system has them, in the folder Voilà makes
for each server's connection files (only this user can enter it): over TCP, a kernel's ports
are chosen free and bound by the kernel a moment later, and another process can take one in
between ("ZMQError: Address already in use"). See
:func:`effortlens_serve.app.kernel_transport`; ``effortlens serve`` sets the same.
"""

from effortlens_serve.app import kernel_transport

c = get_config()  # noqa: F821 (given by the configuration loader)
c.KernelManager.transport = kernel_transport()
