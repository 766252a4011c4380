"""A real JupyterHub on loopback in front of the apps (deploy/jupyterhub/jupyterhub_config.py).

The hub (``jupyterhub`` and ``jupyterhub-idle-culler`` from PyPI, ``configurable-http-proxy``
from npm, all installed by ``make test``) signs a viewer in with its dummy authenticator, starts
the viewer's single-user server, and the app is drawn in Chromium through the hub's proxy. A
request without the hub's login gets no page and starts no server, and the idle culler stops
the server after the viewer leaves.

Run alone:  .venv/bin/pytest tests/test_jupyterhub.py -m hub
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser_support import ARTIFACTS, CHROMIUM, free_port

from effortlens.processes import dies_with_this_process

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "deploy" / "jupyterhub" / "jupyterhub_config.py"
CHP = REPO / ".venv" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
CHART = ".vega-embed svg, .vega-embed canvas"
CULL_IDLE = 30

pytestmark = [
    pytest.mark.browser,
    pytest.mark.hub,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test)"),
    pytest.mark.skipif(
        shutil.which("jupyterhub", path=str(Path(sys.executable).parent)) is None,
        reason="needs the hub extra (make test installs it)",
    ),
    pytest.mark.skipif(
        not CHP.exists() and shutil.which("configurable-http-proxy") is None,
        reason="needs configurable-http-proxy from npm (make hub-deps)",
    ),
]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(url: str, *, headers: dict | None = None):
    """(status, location, body) without following redirects."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers.get("Location"), response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Location"), err.read()


def _kernel_processes(hub) -> list:
    """The kernels under this test's hub (its single-user servers' children)."""
    import psutil

    try:
        tree = psutil.Process(hub["pid"]).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    kernels = []
    for proc in tree:
        try:
            if "ipykernel" in " ".join(proc.cmdline()):
                kernels.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return kernels


def _unix_socket_folders(hub) -> set[Path]:
    """Check that every kernel of the hub talks over Unix sockets in a private folder: the
    server's own (not $HOME/.local/share/jupyter/runtime, shared and as long as the user name)."""
    from browser_support import private_unix_sockets

    kernels = _kernel_processes(hub)
    assert kernels, "no kernel under the hub"
    return {private_unix_sockets(k, folder_prefix="el_kernels_") for k in kernels}


@pytest.fixture(scope="module")
def hub(tmp_path_factory, small_planted):
    state = tmp_path_factory.mktemp("jupyterhub-test")
    port, api_port, proxy_api = free_port(), free_port(), free_port()
    admin_token = secrets.token_hex(16)
    password = secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "EFFORTLENS_HUB_AUTHENTICATOR": "dummy",
        "EFFORTLENS_HUB_PASSWORD": password,
        "EFFORTLENS_HUB_PORT": str(port),
        "EFFORTLENS_HUB_API_PORT": str(api_port),
        "EFFORTLENS_HUB_PROXY_API_PORT": str(proxy_api),
        "EFFORTLENS_HUB_STATE": str(state),
        "EFFORTLENS_HUB_CULL_IDLE": str(CULL_IDLE),
        "EFFORTLENS_DATA": str(small_planted),
        # an API token for this test, as a service with the admin role would have
        "JUPYTERHUB_TEST_ADMIN_TOKEN": admin_token,
    }
    if CHP.exists():
        env["EFFORTLENS_HUB_CHP"] = str(CHP)
    # the test's own admin service (a real deployment adds none)
    (state / "test_service.py").write_text(
        "import os\n"
        "c.JupyterHub.services.append({'name': 'test-admin',"
        " 'api_token': os.environ['JUPYTERHUB_TEST_ADMIN_TOKEN']})\n"
        "c.JupyterHub.load_roles.append({'name': 'test-admin', 'scopes': ['admin:users',"
        " 'admin:servers', 'list:users', 'read:users'], 'services': ['test-admin']})\n"
    )
    log_path = ARTIFACTS / "jupyterhub.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("jupyterhub")), "-f", str(CONFIG)],
        cwd=state,
        env={**env, "EFFORTLENS_HUB_EXTRA_CONFIG": str(state / "test_service.py")},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=dies_with_this_process(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited:\n{log_path.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"jupyterhub not up:\n{log_path.read_text()[-4000:]}")
            try:
                if _get(url + "/hub/api/")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        yield {
            "url": url,
            "password": password,
            "token": admin_token,
            "log": log_path,
            "pid": proc.pid,
            "socket_folders": set(),
        }
    finally:
        _stop_with_children(proc)
        log.close()


def _stop_with_children(proc: subprocess.Popen) -> None:
    """Stop the hub (which stops the single-user servers), then any descendant left behind."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=20)


def _user(hub, name: str) -> dict:
    status, _, body = _get(
        f"{hub['url']}/hub/api/users/{name}", headers={"Authorization": f"token {hub['token']}"}
    )
    assert status == 200, body
    return json.loads(body)


def test_without_the_hub_login_there_is_no_page_and_no_server(hub):
    kernels = len(_kernel_processes(hub))
    for path in (
        "/user/alice/voila/render/01_return_on_effort.ipynb",
        "/user/alice/voila/tree",
        "/user/alice/api/kernels",
        "/hub/spawn",
        "/hub/home",
    ):
        status, location, body = _get(hub["url"] + path)
        assert status in (302, 403, 404), (path, status)
        assert b"vega" not in body and b"Return on effort" not in body
        if status == 302:
            assert "/hub/login" in location or "/hub/user" in location or "/hub/" in location
    status, _, _ = _get(f"{hub['url']}/hub/api/users", headers={})
    assert status == 403
    time.sleep(1)
    assert len(_kernel_processes(hub)) == kernels


def test_a_viewer_signs_in_and_opens_an_app_through_the_hub(hub, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1800})
    page = context.new_page()
    try:
        page.goto(hub["url"] + "/hub/login", timeout=60_000)
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", hub["password"])
        page.click("input[type=submit], button[type=submit]")
        # the hub starts alice's server, then sends her to the app (Spawner.default_url)
        page.wait_for_url("**/user/alice/voila/render/**", timeout=180_000, wait_until="commit")
        page.wait_for_selector(CHART, timeout=300_000)
        assert "Return on effort" in page.inner_text("body")
        # the app's kernel talks to alice's server over Unix sockets in the server's own folder
        # (TCP ports are chosen free and bound a moment later: "Address already in use")
        hub["socket_folders"] |= _unix_socket_folders(hub)
        page.screenshot(path=str(ARTIFACTS / "jupyterhub-app.png"))
        assert _user(hub, "alice")["servers"][""]["ready"]
        # the apps list (Voila's tree with the EffortLens template) is there too
        page.goto(hub["url"] + "/user/alice/voila/tree", timeout=60_000)
        assert "Pattern session" in page.inner_text("body")
        # a signed-in viewer cannot write a notebook into workbooks/ for /voila/render/ to run
        status, text = page.evaluate(
            """async () => {
                const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
                const notebook = {cells: [], metadata: {}, nbformat: 4, nbformat_minor: 5};
                const r = await fetch("/user/alice/api/contents/evil.ipynb", {
                    method: "PUT",
                    headers: {"Content-Type": "application/json", "X-XSRFToken": xsrf},
                    body: JSON.stringify({type: "notebook", format: "json", content: notebook}),
                });
                return [r.status, await r.text()];
            }"""
        )
        assert status == 403 and "read-only" in text, (status, text[:300])
    finally:
        context.close()


def test_the_idle_culler_stops_the_server_after_the_viewer_leaves(hub):
    assert "" in _user(hub, "alice")["servers"], "the previous test left a server"
    deadline = time.monotonic() + CULL_IDLE + 120
    while time.monotonic() < deadline:
        if not _user(hub, "alice")["servers"]:
            break
        time.sleep(5)
    assert not _user(hub, "alice")["servers"], "the idle culler did not stop the server"
    assert hub["socket_folders"], "the previous test saw no kernel"
    for folder in hub["socket_folders"]:
        assert not folder.exists(), f"the stopped server left {folder} behind"
    assert "idle-culler" in hub["log"].read_text()
