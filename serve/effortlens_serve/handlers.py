"""Request handlers of the served apps: the page handler with its kernel limit, and auth-only
variants of Voilà's few unauthenticated routes.
"""

from __future__ import annotations

import json

import tornado.web
from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import APIHandler
from voila.request_info_handler import RequestInfoSocketHandler
from voila.static_file_handler import AllowListFileHandler
from voila.tornado.handler import TornadoVoilaHandler

from effortlens_serve.kernels import CURRENT_SLOT, ViewerSlots

BUSY_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>EffortLens is busy</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: #f5f7fa;
  color: #1f2933; }}
main {{ max-width: 560px; margin: 12vh auto; background: #fff; border: 1px solid #e4e7eb;
  border-top: 4px solid #e69f00; border-radius: 10px; padding: 24px 28px; }}
h1 {{ font-size: 1.5em; margin: 0 0 8px 0; }}
</style></head>
<body><main class="el-busy">
<h1>EffortLens is busy, try again in a minute</h1>
<p>All {limit} places for viewers are taken right now. A place frees up as soon as someone
closes their page, or after a few minutes of inactivity.</p>
<p><a href="">Try again</a></p>
</main></body></html>
"""


def _slots(handler) -> ViewerSlots:
    return handler.settings["effortlens_slots"]


class EffortLensVoilaHandler(TornadoVoilaHandler):
    """Voilà's page handler with two additions.

    - It sets the ``_xsrf`` cookie. Voilà's page sends that cookie's value with its shutdown
      beacon when the page closes, but nothing on the app page ever set it (only the landing
      page, through its template, did), so the beacon was refused with
      ``403 '_xsrf' argument missing`` and the kernel lived on.
    - Beyond the viewer limit it answers 503 with a "busy, try again in a minute" page and
      starts no kernel, instead of starting one more on a machine with no room for it.
    """

    def should_use_rendered_notebook(self, notebook_data, pool_size, *args, **kwargs):
        """Take a preheated kernel only when one is ready.

        Voila otherwise hands a viewer the pool's next entry even when it is still starting,
        and every entry taken schedules one more: in a rush, each viewer beyond the pool waited
        for a refill kernel while the refills for the next rush competed with them for the CPU.
        A viewer beyond the ready pool now starts a kernel of its own at once, and the pool
        refills after ``VoilaKernelManager.fill_delay``, when the rush is over.
        """
        notebook = self.notebook_path or getattr(self, "_el_path", None)
        pools = getattr(self.kernel_manager, "_pools", {})
        entries = pools.get(notebook, [])
        if not entries or not _ready(entries[0]):
            return False
        return super().should_use_rendered_notebook(notebook_data, pool_size, *args, **kwargs)

    @tornado.web.authenticated
    async def get(self, path=None):
        self.xsrf_token  # noqa: B018  (reading it sets the _xsrf cookie)
        self._el_path = path
        slots = _slots(self)
        slot = slots.try_take(self.kernel_manager)
        if slot is None:
            self.log.warning("Viewer limit (%d) reached: busy page for %s", slots.limit, path)
            self.set_status(503)
            self.set_header("Retry-After", "60")
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            self.finish(BUSY_PAGE.format(limit=slots.limit))
            return
        token = CURRENT_SLOT.set(slot)
        try:
            await super().get(path)
        finally:
            CURRENT_SLOT.reset(token)
            slots.release_if_unused(slot)


class ChartBundleHandler(tornado.web.RequestHandler):
    """The Vega/Altair chart bundle, one file for every chart of every page.

    Kernels of this server get its path in ``EFFORTLENS_CHART_BUNDLE`` and give their charts a
    few-line module that imports it, instead of a 0.9 MB copy each (see
    ``effortlens_widgets.panels.enable_offline_charts``). The name carries the Altair and
    vl-convert versions, so browsers may cache it for good. Public library code: no login.
    """

    def initialize(self, name: str, content: bytes):
        self.name = name
        self.content = content

    def get(self, name: str):
        if name != self.name:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        self.finish(self.content)


class StatusHandler(APIHandler):
    """``GET /effortlens/api/status``: kernels, pool and viewer places (login required)."""

    @tornado.web.authenticated
    async def get(self):
        km = self.kernel_manager
        pools = getattr(km, "_pools", {})
        slots = _slots(self)
        self.finish(
            json.dumps(
                {
                    "kernels": len(km.list_kernel_ids()),
                    "pool": sum(len(p) for p in pools.values()),
                    "pool_ready": sum(_ready(entry) for p in pools.values() for entry in p),
                    # per app: [ready, size]; an app that waits for its viewer's URL (the rep
                    # mirror) renders up to that point and is never "ready" in the pool
                    "pools": {
                        name: [sum(_ready(entry) for entry in p), len(p)]
                        for name, p in pools.items()
                    },
                    "viewers": slots.in_use(km),
                    "viewer_limit": slots.limit,
                    "connections": sum(km._kernel_connections.values()),  # noqa: SLF001 (no public count)
                }
            )
        )


def _ready(entry) -> bool:
    """Whether a preheated pool entry has its kernel started and its notebook rendered.

    A notebook that reads its page's URL (the rep mirror's ``?rep=``, through
    ``voila.utils.get_query_string``) cannot finish before a viewer asks for it: it is ready
    once its kernel waits for that request, having run everything before.
    """
    if not entry.done() or entry.cancelled() or entry.exception() is not None:
        return False
    result = entry.result()
    return result["task"].done() or result["kernel_id"] in RequestInfoSocketHandler._waiters  # noqa: SLF001


class AuthenticatedFileHandler(AllowListFileHandler):
    """Voilà's ``/voila/files`` (images beside the notebooks), for logged-in viewers only."""

    async def prepare(self):
        await _require_user(self)
        return super().prepare()


async def _require_user(handler: tornado.web.RequestHandler) -> None:
    """403 unless the request carries a valid login cookie (the page's own requests, after its
    login; never opened with a token)."""
    provider = handler.settings["identity_provider"]
    if not provider.auth_enabled:
        return
    user = await ensure_async(provider.get_user_cookie(handler))
    if user is None:
        raise tornado.web.HTTPError(403)
