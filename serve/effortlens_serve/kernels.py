"""Bounded kernels for the served apps: culling of idle kernels and a limit on viewer kernels.

The kernel manager below is an ordinary Jupyter Server ``AsyncMappingKernelManager`` with two
additions, so it works under Voilà's preheated pool (which wraps whatever class it is given):

- kernels idle with a page still open are culled after a second, longer timeout
  (``cull_connected_timeout``), while Jupyter Server's own ``cull_idle_timeout`` reclaims the
  kernels whose page was closed;
- :class:`ViewerSlots` counts the kernels handed to viewers (pool kernels excluded) so that the
  page handler can answer "busy, try again in a minute" beyond a limit instead of starting one
  more kernel on a machine that has no room for it.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jupyter_core.utils import ensure_async
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Float, Integer, TraitError

#: The viewer slot of the page request being served (set by the page handler).
CURRENT_SLOT: contextvars.ContextVar[Slot | None] = contextvars.ContextVar(
    "effortlens_slot", default=None
)


#: Set while Voilà hands out a preheated kernel: the refills it then schedules inherit it.
_REFILL: contextvars.ContextVar[bool] = contextvars.ContextVar("effortlens_refill", default=False)


async def wait_until_quiet(
    *,
    busy_above: float,
    max_wait: float,
    poll: float = 5.0,
    load: Callable[[], float] = lambda: os.getloadavg()[0],
    cpus: int | None = None,
) -> float:
    """Wait while the 1-minute load average per CPU is above ``busy_above`` (at most
    ``max_wait`` seconds); the seconds waited.

    A refill kernel costs seconds of CPU to start and render its app: started in the middle of
    a rush, it takes them from the viewers whose pages are drawing.

    Examples
    --------
    >>> await wait_until_quiet(busy_above=1.0, max_wait=600)  # doctest: +SKIP
    0.0
    """
    cpus = cpus or os.cpu_count() or 1
    start = time.monotonic()
    while time.monotonic() - start < max_wait and load() / cpus > busy_above:
        await asyncio.sleep(poll)
    return time.monotonic() - start


@dataclass
class Slot:
    """One admitted viewer: the kernel it was given, once known."""

    number: int
    kernel_id: str | None = None


@dataclass
class ViewerSlots:
    """The viewers admitted to a server and the kernels they hold.

    A slot is taken when a page request is admitted, learns its kernel id when the kernel is
    started (or taken from the preheated pool), and is freed when that kernel is gone (shut
    down by the page's close beacon, culled, or dead) or when the request failed before a
    kernel was given.
    """

    limit: int
    _slots: dict[int, Slot] = field(default_factory=dict)
    _numbers: itertools.count = field(default_factory=itertools.count)

    def reconcile(self, kernel_manager) -> None:
        """Free the slots whose kernel no longer exists."""
        for number, slot in list(self._slots.items()):
            if slot.kernel_id is not None and slot.kernel_id not in kernel_manager:
                del self._slots[number]

    def in_use(self, kernel_manager) -> int:
        self.reconcile(kernel_manager)
        return len(self._slots)

    def try_take(self, kernel_manager) -> Slot | None:
        """A new slot, or ``None`` when the limit is reached (``limit <= 0``: no limit)."""
        if self.limit > 0 and self.in_use(kernel_manager) >= self.limit:
            return None
        slot = Slot(next(self._numbers))
        self._slots[slot.number] = slot
        return slot

    def release_if_unused(self, slot: Slot) -> None:
        if slot.kernel_id is None:
            self._slots.pop(slot.number, None)


def claim_kernel(kernel_id: str) -> None:
    """Record ``kernel_id`` as the kernel of the page request being served, if any."""
    slot = CURRENT_SLOT.get()
    if slot is not None and slot.kernel_id is None:
        slot.kernel_id = kernel_id


class EffortLensKernelManager(AsyncMappingKernelManager):
    """Jupyter Server's kernel manager, with a second culling timeout for open pages.

    ``cull_idle_timeout`` (Jupyter Server's) culls kernels with no page connected (twice that
    for a viewer's kernel whose page has not connected yet);
    ``cull_connected_timeout`` culls kernels idle that long even with a page still open (a tab
    left open overnight), 0 to never do so.
    """

    cull_connected_timeout = Integer(
        0,
        config=True,
        help="Cull kernels idle this many seconds even with a page connected (0: never).",
    )

    refill_busy_above = Float(
        1.0,
        config=True,
        help="Start a pool refill only when the 1-minute load average per CPU is at most this.",
    )
    refill_max_wait = Integer(
        600, config=True, help="Start a pool refill after this many seconds even if busy."
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._handed_at: dict[str, float] = {}  # viewer kernels: when their page was served
        self._connected: set[str] = set()  # kernels a page has connected to
        # Voilà's preheated pool hands out kernels through get_rendered_notebook (defined by
        # the class Voilà derives from this one): note which viewer got which kernel, and
        # mark the refills it schedules.
        rendered = getattr(self, "get_rendered_notebook", None)
        if rendered is not None:

            async def get_rendered_notebook(*args, **kw):
                token = _REFILL.set(True)
                try:
                    result = await rendered(*args, **kw)
                finally:
                    _REFILL.reset(token)
                claim_kernel(result[2])
                self._handed_at[result[2]] = time.monotonic()
                return result

            self.get_rendered_notebook = get_rendered_notebook
        # A refill waits for a quiet machine (after Voilà's own fill delay): in a rush of 20
        # viewers the 20 refills took 80 CPU seconds from the pages being drawn.
        initialize = getattr(self, "_initialize", None)
        if initialize is not None:

            async def _initialize(*args, **kw):
                if _REFILL.get():
                    waited = await wait_until_quiet(
                        busy_above=self.refill_busy_above, max_wait=self.refill_max_wait
                    )
                    if waited >= 1:
                        self.log.info("Pool refill waited %.0f s for a quiet machine", waited)
                return await initialize(*args, **kw)

            self._initialize = _initialize

    async def start_kernel(self, *args, **kwargs):
        kernel_id = await super().start_kernel(*args, **kwargs)
        env = kwargs.get("env") or {}
        if env.get("VOILA_PREHEAT") != "True":  # a viewer's own kernel, not a pool refill
            claim_kernel(kernel_id)
            self._handed_at[kernel_id] = time.monotonic()
        return kernel_id

    async def shutdown_kernel(self, kernel_id, *args, **kwargs):
        self._handed_at.pop(kernel_id, None)
        self._connected.discard(kernel_id)
        return await ensure_async(super().shutdown_kernel(kernel_id, *args, **kwargs))

    async def cull_kernel_if_idle(self, kernel_id):
        kernel = self._kernels.get(kernel_id)
        if kernel is None:
            return None
        try:
            kernel.last_activity  # noqa: B018
        except (KeyError, TraitError):
            # still starting: Jupyter Server sets it once the kernel is up, and its culler
            # otherwise logs a traceback for every kernel of a filling pool
            return None
        connections = self._kernel_connections.get(kernel_id, 0)
        if connections:
            self._connected.add(kernel_id)
        elif kernel_id not in self._connected and kernel_id in self._handed_at:
            # Its page has not connected yet: on a busy machine a page can take longer than
            # the idle timeout to start its scripts, and culling the kernel then leaves the
            # viewer with a page that never draws. Give it twice the timeout.
            if time.monotonic() - self._handed_at[kernel_id] < 2 * self.cull_idle_timeout:
                return None
        last = kernel.last_activity
        if connections and self.cull_connected_timeout > 0 and last is not None:
            idle = (datetime.now(UTC) - last).total_seconds()
            if idle > self.cull_connected_timeout and kernel.execution_state != "busy":
                self.log.warning(
                    "Culling kernel %s with %d page(s) open after %d s of inactivity.",
                    kernel_id,
                    connections,
                    idle,
                )
                await ensure_async(self.shutdown_kernel(kernel_id))
                return None
        return await ensure_async(super().cull_kernel_if_idle(kernel_id))
