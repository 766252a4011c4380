# JupyterHub in front of the EffortLens apps: the hub signs each viewer in (company SSO through
# its authenticators), starts one single-user server per viewer with Voila's server extension,
# and its idle culler stops the servers nobody uses. Run it from the repository root:
#
#   make hub                      # = .venv/bin/jupyterhub -f deploy/jupyterhub/jupyterhub_config.py
#
# Everything that differs between a laptop trial and a company install is an environment
# variable, read below:
#
#   EFFORTLENS_HUB_AUTHENTICATOR  dummy (a trial; any user name, the shared password below),
#                                 or generic-oauth / azuread / github / ldap for company sign-in
#                                 (install the oauthenticator or ldapauthenticator package and set
#                                 its settings in a jupyterhub_config.d/ file beside this one);
#   EFFORTLENS_HUB_PASSWORD       the shared password of the dummy authenticator (required by it);
#   EFFORTLENS_HUB_ALLOWED_USERS  comma-separated user names allowed in (default: every user the
#                                 authenticator accepts; with SSO, restrict by group there);
#   EFFORTLENS_HUB_IP / _PORT     where the hub's proxy listens (default 127.0.0.1:8000; put TLS
#                                 in front, see README "Serving to a team");
#   EFFORTLENS_HUB_STATE          folder for the hub's database, cookie secret and proxy pid
#                                 (default .cache/jupyterhub);
#   EFFORTLENS_HUB_CULL_IDLE      seconds before the idle culler stops an unused server (3600);
#   EFFORTLENS_HUB_CHP            path of configurable-http-proxy (default: the one `make hub`
#                                 installs into .venv/hub, else the one on PATH);
#   EFFORTLENS_HUB_EXTRA_CONFIG   more config files to load last (os.pathsep-separated);
#   EFFORTLENS_DATA               the data folder every app opens;
#   EFFORTLENS_DATA_ROOTS         folders (os.pathsep-separated) whose subfolders Start here
#                                 offers as a list (default: EFFORTLENS_DATA only).
#
# The single-user servers are local processes of the hub's own user (SimpleLocalProcessSpawner),
# which suits one machine serving read-only apps. For isolation between viewers use
# DockerSpawner, KubeSpawner (Zero to JupyterHub) or SystemdSpawner with the same settings.
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821  (JupyterHub's config loader provides it)

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("EFFORTLENS_HUB_STATE", REPO / ".cache" / "jupyterhub"))
STATE.mkdir(parents=True, exist_ok=True)
CULL_IDLE = int(os.environ.get("EFFORTLENS_HUB_CULL_IDLE", "3600"))

# --- where the hub listens, its state -------------------------------------------------------
c.JupyterHub.ip = os.environ.get("EFFORTLENS_HUB_IP", "127.0.0.1")
c.JupyterHub.port = int(os.environ.get("EFFORTLENS_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("EFFORTLENS_HUB_API_PORT", "8081"))
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
c.ConfigurableHTTPProxy.api_url = (
    f"http://127.0.0.1:{int(os.environ.get('EFFORTLENS_HUB_PROXY_API_PORT', '8001'))}"
)
_chp = os.environ.get("EFFORTLENS_HUB_CHP") or str(
    REPO / ".venv" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
)
if Path(_chp).exists():
    c.ConfigurableHTTPProxy.command = [_chp]
c.JupyterHub.last_activity_interval = min(300, max(10, CULL_IDLE // 4))

# --- who may sign in -------------------------------------------------------------------------
_auth = os.environ.get("EFFORTLENS_HUB_AUTHENTICATOR", "dummy")
if _auth == "dummy":
    _password = os.environ.get("EFFORTLENS_HUB_PASSWORD", "")
    if not _password:
        sys.exit("EFFORTLENS_HUB_PASSWORD must be set for the dummy authenticator")
    c.JupyterHub.authenticator_class = "dummy"
    c.DummyAuthenticator.password = _password
else:
    # "generic-oauth", "azuread", "github", "ldapauthenticator.LDAPAuthenticator", ...: the
    # authenticator's own settings (client id, secret, tenant, allowed groups) go in
    # deploy/jupyterhub/jupyterhub_config.d/*.py, loaded below.
    c.JupyterHub.authenticator_class = _auth
_allowed = [u.strip() for u in os.environ.get("EFFORTLENS_HUB_ALLOWED_USERS", "").split(",")]
if any(_allowed):
    c.Authenticator.allowed_users = {u for u in _allowed if u}
else:
    c.Authenticator.allow_all = True

#: The kernel messages a viewer's page may send: Voila's own list (voila/app.py); never
#: execute_request, so a signed-in viewer cannot run code through the kernel websocket.
ALLOWED_MESSAGE_TYPES = (
    "comm_open",
    "comm_close",
    "comm_msg",
    "comm_info_request",
    "kernel_info_request",
    "shutdown_request",
)

# --- one single-user server per viewer, serving the apps with Voila -------------------------
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]
c.Spawner.notebook_dir = str(REPO / "workbooks")
c.Spawner.default_url = "/voila/render/01_return_on_effort.ipynb"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = {
    "EFFORTLENS_DATA": os.environ.get(
        "EFFORTLENS_DATA", str(REPO / "sample_data" / "generated" / "default")
    ),
    # unset: each server uses the per-user cache directory (never inside the repo)
    **{k: v for k, v in os.environ.items() if k == "EFFORTLENS_CACHE"},
    # served: Start here offers only folders under the data roots, never a typed path
    "EFFORTLENS_SERVED": "1",
    "EFFORTLENS_DATA_ROOTS": os.environ.get("EFFORTLENS_DATA_ROOTS", ""),
    # single-user servers report activity often enough for the culler's timeout
    "JUPYTERHUB_ACTIVITY_INTERVAL": str(min(300, max(10, CULL_IDLE // 4))),
}
c.Spawner.args = [
    # the EffortLens landing-page template and Voila's settings (voila.json at the repo root)
    "--VoilaConfiguration.template=effortlens",
    "--VoilaConfiguration.classic_tree=True",  # the template's landing page (tree.html)
    "--VoilaConfiguration.theme=light",
    "--VoilaConfiguration.strip_sources=True",
    "--VoilaConfiguration.show_tracebacks=False",
    # Voila's executor waits for a cell's outputs as `effortlens serve` does (EXECUTOR_TIMEOUTS,
    # serve/effortlens_serve/app.py): with nbclient's 4 s a loaded server dropped an app's output
    "--VoilaExecutor.iopub_timeout=60",
    "--VoilaExecutor.startup_timeout=180",
    # kernels talk to their server over Unix sockets in a folder each server makes for itself
    # (0700, removed at stop), as under `effortlens serve`: over TCP a kernel's ports are chosen
    # free and bound a moment later, and another process can take one in between ("ZMQError:
    # Address already in use"). TCP remains where effortlens_serve.app.kernel_transport says so.
    "--ServerApp.kernel_manager_class=effortlens_serve.hub.PrivateSocketsKernelManager",
    # kernels inside each viewer's server are reclaimed too (page closed: 10 minutes)
    "--MappingKernelManager.cull_idle_timeout=600",
    "--MappingKernelManager.cull_interval=60",
    # viewers only see apps: no JupyterLab, no terminals, no file browser for them
    "--ServerApp.terminals_enabled=False",
    # viewers run no code: the kernel websocket takes only widget messages (Voila's own list)
    *(f"--MappingKernelManager.allowed_message_types={t}" for t in ALLOWED_MESSAGE_TYPES),
    # and cannot write a notebook into workbooks/ for /voila/render/ to run
    "--ServerApp.contents_manager_class=effortlens_serve.readonly.ReadOnlyContentsManager",
]
if os.getuid() == 0:
    c.Spawner.args.append("--allow-root")

# --- the hub's idle culler stops servers nobody uses ----------------------------------------
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={CULL_IDLE}",
            f"--cull-every={min(600, max(10, CULL_IDLE // 3))}",
        ],
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]

# --- site settings (SSO, spawner) kept beside this file, or named in EFFORTLENS_HUB_EXTRA_CONFIG
_extras = sorted((Path(__file__).parent / "jupyterhub_config.d").glob("*.py"))
_named = os.environ.get("EFFORTLENS_HUB_EXTRA_CONFIG", "")
_extras += [Path(p) for p in _named.split(os.pathsep) if p]
for _extra in _extras:
    exec(compile(_extra.read_text(), str(_extra), "exec"))  # noqa: S102
