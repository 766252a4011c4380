"""Voilà settings for every ``voila`` of the environment, from any folder: installed as
``<prefix>/etc/jupyter/voila.py``. Only settings that are right for any Voilà app: the look and
the preheated kernels stay in the repository's ``voila.json`` (``voila workbooks`` from the
repository) and in ``effortlens serve``, since preheating here would start a kernel for every
notebook of any folder another app serves.

- The executor's waits (:data:`effortlens_serve.app.EXECUTOR_TIMEOUTS`): nbclient's 4 s wait
  for a cell's output dropped apps from pages on a busy machine.
- Kernels talk to Voilà over Unix sockets where the system has them, in the folder Voilà makes
  for each server's connection files (only this user can enter it): over TCP, a kernel's ports
  are chosen free and bound by the kernel a moment later, and another process can take one in
  between ("ZMQError: Address already in use"). See
  :func:`effortlens_serve.app.kernel_transport`; ``effortlens serve`` sets the same.
"""

from effortlens_serve.app import EXECUTOR_TIMEOUTS, kernel_transport

c = get_config()  # noqa: F821 (given by the configuration loader)
for name, seconds in EXECUTOR_TIMEOUTS.items():
    setattr(c.VoilaExecutor, name, seconds)
c.KernelManager.transport = kernel_transport()
