"""``effortlens serve``: the workbooks as Voilà apps for a team, with login and bounded kernels.

The server is Voilà's own application (:class:`voila.app.Voila`) with Jupyter Server's identity
provider for the login; this module only chooses the settings, swaps in the page handler that
sets the XSRF cookie and enforces the viewer limit, and refuses unsafe combinations (no login on
an address other people can reach).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import socket
import sys
import threading
from pathlib import Path

from traitlets import Integer
from traitlets.config import Config
from voila.app import Voila
from voila.static_file_handler import AllowListFileHandler
from voila.tornado.handler import TornadoVoilaHandler

from effortlens_serve.handlers import (
    AuthenticatedFileHandler,
    ChartBundleHandler,
    EffortLensVoilaHandler,
    StatusHandler,
)
from effortlens_serve.kernels import ViewerSlots

TOKEN_ENV = "EFFORTLENS_TOKEN"
PASSWORD_FILE_ENV = "EFFORTLENS_PASSWORD_FILE"
KERNEL_MANAGER = "effortlens_serve.kernels.EffortLensKernelManager"
#: How long Voila's notebook executor waits: for a cell's outputs after its "done" reply, and for
#: a kernel to start. Under load a kernel's output can reach the server more than nbclient's 4 s
#: after the reply (nine preheated kernels executing at once on two busy cores), and nbclient
#: then drops it: the app itself vanished from the page, which showed its text and nothing else
#: ("Timeout waiting for IOPub output" in the log). A kernel could also take more than 60 s to
#: start. The repository's voila.json (plain ``voila workbooks``) carries the same values.
EXECUTOR_TIMEOUTS = {"iopub_timeout": 60, "startup_timeout": 180}
#: Longest Unix socket path the kernels' ipc sockets may have (``sun_path``: 108 bytes on Linux,
#: 104 on macOS, minus a margin).
_MAX_SOCKET_PATH = 100
_SWAPS = {
    TornadoVoilaHandler: EffortLensVoilaHandler,
    AllowListFileHandler: AuthenticatedFileHandler,
}


class EffortLensVoila(Voila):
    """Voilà with EffortLens's page handler (XSRF cookie, viewer limit) and a status route."""

    name = "effortlens-serve"
    max_viewers = Integer(
        20, config=True, help="Most kernels handed to viewers at once (0: no limit)."
    )

    def init_settings(self):
        # Voilà has just made its socket folder (start): name this server in it, so that a
        # later start removes it if this server is killed (sweep_socket_folders)
        if self.connection_dir:
            mark_socket_folder(self.connection_dir)
        settings = super().init_settings()
        settings["effortlens_slots"] = ViewerSlots(limit=self.max_viewers)
        settings["compress_response"] = True  # pages and the chart bundle, gzipped
        # an upload reaches the kernel as one websocket message: let one up to the upload
        # limit (EFFORTLENS_UPLOAD_MAX_MB) through, so the page can say the file is too big
        from effortlens.uploads import max_upload_bytes

        settings["websocket_max_message_size"] = max(max_upload_bytes() + (1 << 20), 10 << 20)
        return settings

    def init_handlers(self):
        handlers = []
        for spec in super().init_handlers():
            pattern, cls, *rest = spec
            handlers.append((pattern, _SWAPS.get(cls, cls), *rest))
        root = self.server_url.rstrip("/")
        extra = [(root + "/effortlens/api/status", StatusHandler)]
        if _BUNDLE:
            name, content = _BUNDLE
            extra.append(
                (
                    root + "/effortlens/static/(jupyterchart-[^/]+\\.js)",
                    ChartBundleHandler,
                    {"name": name, "content": content},
                )
            )
        return [*extra, *handlers]


#: (file name, content) of the chart bundle this server serves, set by :func:`main`.
_BUNDLE: tuple[str, bytes] | None = None


def chart_bundle() -> tuple[str, bytes]:
    """The offline Altair chart module (Vega, Vega-Lite, vega-embed) and its versioned name.

    Read from the cache folder's copy (:func:`effortlens.warm.chart_bundle_path`: the file
    ``effortlens build`` and the kernels use), made there by a short-lived child when it is
    missing: vl-convert's JavaScript runtime, once started in a process, stays resident (about
    100 MB and 3 CPU seconds), and the server lives as long as its pages. Made in this process
    only when the cache folder cannot hold the file.
    """
    from effortlens.warm import chart_bundle_path, has_chart_bundle, start_chart_bundle

    path = chart_bundle_path()
    if not has_chart_bundle(path):
        child = start_chart_bundle(path)
        if child is not None:
            child.wait()
    try:
        if has_chart_bundle(path):
            return path.name, path.read_bytes()
    except OSError:
        pass
    import altair as alt
    import vl_convert

    alt.JupyterChart.enable_offline()
    name = f"jupyterchart-{alt.__version__}-{vl_convert.__version__}.js"
    return name, alt.JupyterChart._esm.encode("utf-8")  # noqa: SLF001


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False
        return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def kernel_transport(*, temp_dir: str | None = None, connection_dir: str | None = None) -> str:
    """How the server talks to its kernels: ``"ipc"`` (Unix sockets) where it can, else ``"tcp"``.

    With TCP, each kernel's five ports are chosen free on loopback, closed, and bound again by
    the kernel a moment later: another process can take one in between, and the kernel dies
    ("ZMQError: Address already in use"; seen once in a ``make run`` log, where Voilà restarted
    it). Unix sockets have no such window. Voilà puts them beside the kernels' connection
    files, in a folder it makes for each server with :func:`tempfile.mkdtemp` (only this user
    can enter it) under ``temp_dir`` (the system's temporary folder), and removes when it stops.
    TCP remains where Unix sockets are missing (Windows) or where their paths would exceed
    the system's limit (a long ``$TMPDIR``). ``connection_dir`` names the sockets' folder where
    it is not Voilà's (the JupyterHub single-user servers' one, :mod:`effortlens_serve.hub`).

    Examples
    --------
    >>> kernel_transport(temp_dir="/tmp")  # doctest: +SKIP
    'ipc'
    >>> kernel_transport(temp_dir="/" + "d" * 80)
    'tcp'
    >>> kernel_transport(connection_dir="/" + "d" * 60)
    'tcp'
    """
    import tempfile

    if os.name != "posix":
        return "tcp"
    # Voilà's folder (voila_ + 8 characters), then kernel-<uuid>-ipc-<channel number>
    folder = connection_dir or os.path.join(temp_dir or tempfile.gettempdir(), "voila_" + "x" * 8)
    longest = os.path.join(folder, f"kernel-{'0' * 36}-ipc-99999")
    return "ipc" if len(longest.encode()) <= _MAX_SOCKET_PATH else "tcp"


#: The file naming the server a socket folder belongs to (``voila_…``, ``el_kernels_…``, and
#: its kernels' IPython folder, ``effortlens-ipython-…``): its process id, start time and PID
#: namespace, so that a later start can tell a folder left by a killed server.
SERVER_FILE = "effortlens-server.pid"
#: Prefixes of the socket folders :func:`sweep_socket_folders` looks at.
SOCKET_FOLDER_PREFIXES = ("voila_", "el_kernels_")
#: Prefix of the kernels' IPython folders (:func:`kernel_ipython_dir`).
IPYTHON_FOLDER_PREFIX = "effortlens-ipython-"


def _pid_namespace() -> str:
    """This process's PID namespace (``pid:[4026531836]``), or ``-`` where there is none to
    read (no ``/proc``): process ids are judged only within the namespace they belong to."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "-"


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command's parentheses


def mark_socket_folder(folder: str | os.PathLike) -> None:
    """Name this process as the server of socket folder ``folder`` (:data:`SERVER_FILE`: its
    id, start time and PID namespace).

    Examples
    --------
    >>> mark_socket_folder(tempfile.mkdtemp(prefix="voila_"))  # doctest: +SKIP
    """
    pid = os.getpid()
    record = f"{pid} {_started(pid) or '-'} {_pid_namespace()}\n"
    (Path(folder) / SERVER_FILE).write_text(record, "utf-8")


def _server_gone(record: Path) -> bool:
    """Whether the server a :data:`SERVER_FILE` names has ended (its process is gone, or its
    id now belongs to a process started at another time).

    Only a record of this process's PID namespace is judged: a server of another container
    sharing the temporary folder (as the same user) has ids this process cannot see, so its
    folders stay (as do those of records written before the namespace was recorded, on a
    system that has namespaces)."""
    try:
        pid, *rest = record.read_text("utf-8").split()
        pid = int(pid)
    except (OSError, ValueError):
        return False
    started = [s for s in rest[:1] if s != "-"]
    if (rest[1] if len(rest) > 1 else "-") != _pid_namespace():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process holds the id now
        return True
    return bool(started) and _started(pid) not in (None, started[0])


def _left_by_a_kernel(entry: Path) -> bool:
    """Whether ``entry`` of a socket folder is what a kernel leaves there: a Unix socket or
    its connection file (``kernel-<id>.json``, a regular file, never a link)."""
    import stat

    mode = entry.lstat().st_mode
    if stat.S_ISSOCK(mode):
        return True
    return stat.S_ISREG(mode) and entry.name.startswith("kernel-") and entry.suffix == ".json"


def _own_folders(root: str | os.PathLike | None, prefixes: str | tuple[str, ...]) -> list[Path]:
    """The folders (not links) of this user directly under ``root`` (the system's temporary
    folder) whose names start with ``prefixes``: what the sweeps below may judge."""
    import stat
    import tempfile

    base = Path(root if root is not None else tempfile.gettempdir())
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(prefixes)]
    except OSError:
        return []
    owned = []
    for folder in candidates:
        try:
            info = folder.lstat()
        except OSError:  # gone meanwhile
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
            owned.append(folder)
    return owned


def sweep_socket_folders(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the socket folders under ``root`` (the system's temporary folder) that servers
    killed before they could clean up left behind; the folders removed.

    A server (``effortlens serve``, ``make run``, a hub's single-user server) makes a 0700
    folder for its kernels' Unix sockets and removes it when it stops; a SIGKILL leaves it.
    A folder goes only when it is this user's, is named ``voila_…`` or ``el_kernels_…``,
    holds nothing but sockets, its kernels' connection files (``kernel-….json``) and its
    :data:`SERVER_FILE`, and that file names a server that has ended: another server's live
    folder, or one holding anything else, stays.

    Examples
    --------
    >>> sweep_socket_folders()  # doctest: +SKIP
    [PosixPath('/tmp/voila_k2j4h1x0')]
    """
    removed = []
    for folder in _own_folders(root, SOCKET_FOLDER_PREFIXES):
        try:
            entries = list(folder.iterdir())
            record = folder / SERVER_FILE
            if record not in entries or not _server_gone(record):
                continue
            if not all(e == record or _left_by_a_kernel(e) for e in entries):
                continue
            for entry in entries:
                entry.unlink()
            folder.rmdir()
        except OSError:  # gone meanwhile, or not ours to remove
            continue
        removed.append(folder)
    return removed


def sweep_ipython_folders(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the kernels' IPython folders (:func:`kernel_ipython_dir`) under ``root`` (the
    system's temporary folder) that servers killed before they could clean up left behind;
    the folders removed.

    A folder goes only when it is this user's, is named ``effortlens-ipython-…``, holds
    nothing but its :data:`SERVER_FILE` and its ``profile_default`` folder (a folder, not a
    link), which holds the ``ipython_kernel_config.py`` the server wrote, and that file names
    a server of this PID namespace that has ended (as :func:`sweep_socket_folders` judges).
    What the kernels wrote under ``profile_default`` goes with it; a link there is removed,
    never followed.

    Examples
    --------
    >>> sweep_ipython_folders()  # doctest: +SKIP
    [PosixPath('/tmp/effortlens-ipython-k2j4h1x0')]
    """
    import stat

    removed = []
    for folder in _own_folders(root, IPYTHON_FOLDER_PREFIX):
        try:
            record, profile = folder / SERVER_FILE, folder / "profile_default"
            if set(folder.iterdir()) != {record, profile} or not _server_gone(record):
                continue
            config = (profile / "ipython_kernel_config.py").lstat()
            if not stat.S_ISDIR(profile.lstat().st_mode) or not stat.S_ISREG(config.st_mode):
                continue
            _remove_tree(folder)  # removes links inside, never follows them
        except OSError:  # gone meanwhile, or not ours to remove
            continue
        removed.append(folder)
    return removed


def _remove_tree(folder: Path, *, tries: int = 5, pause_s: float = 0.2) -> None:
    """``shutil.rmtree(folder)``, tried again while it fails: a killed server's kernels run on
    for a moment (they notice their server is gone within a second or two) and may still write
    into their IPython folder while it is being removed."""
    import shutil
    import time

    for _ in range(tries - 1):
        try:
            shutil.rmtree(folder)
            return
        except OSError:
            if not folder.exists():
                return
            time.sleep(pause_s)
    shutil.rmtree(folder)


def hash_password(password: str) -> str:
    """A hash for ``--password-file`` (Jupyter Server's argon2 scheme)."""
    from jupyter_server.auth.security import passwd

    return passwd(password)


def read_password_hash(path: Path) -> str:
    """The one password hash a ``--password-file`` holds (``#`` lines are comments).

    Raises ``SystemExit`` with what to do when the file holds none or several.
    """
    lines = [ln.strip() for ln in path.read_text("utf-8").splitlines()]
    hashes = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(hashes) != 1 or ":" not in hashes[0]:
        raise SystemExit(
            f"effortlens serve: {path} must hold one password hash "
            "(make one with `effortlens serve --hash-password`)"
        )
    return hashes[0]


def _template_path() -> str | None:
    """The source checkout's ``share/jupyter`` when running from one (editable installs)."""
    share = Path(__file__).resolve().parents[2] / "share" / "jupyter"
    return str(share) if (share / "voila" / "templates" / "effortlens").is_dir() else None


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``effortlens serve`` (also ``python -m effortlens_serve``)."""
    p = argparse.ArgumentParser(
        prog="effortlens serve",
        description=(
            "Serve the workbooks as Voilà apps for a team: login required, bounded and culled "
            f"kernels. The login token comes from ${TOKEN_ENV}, else a password hash file "
            f"(--password-file or ${PASSWORD_FILE_ENV}), else a token is generated and printed."
        ),
    )
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--data", help="data folder the apps open (default: $EFFORTLENS_DATA)")
    p.add_argument("--workbooks", default="workbooks", help="folder of the notebooks to serve")
    p.add_argument("--password-file", help="file holding one password hash (see --hash-password)")
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="no login (refused unless --host is a loopback address: `make run`)",
    )
    p.add_argument("--pool", type=int, default=1, help="preheated kernels per app (default 1)")
    p.add_argument(
        "--pool-app",
        action="append",
        default=[],
        metavar="NOTEBOOK=N",
        help="preheated kernels for one app, e.g. 01_return_on_effort.ipynb=8 (repeatable)",
    )
    p.add_argument(
        "--pool-refill-delay",
        type=float,
        default=20,
        help="seconds before a used preheated kernel is replaced (after a rush, default 20)",
    )
    p.add_argument(
        "--pool-refill-max-wait",
        type=int,
        default=600,
        help="a refill waits for a quiet machine (1-minute load average at most 1 per CPU), "
        "at most this many seconds (default 600; 0: no wait)",
    )
    p.add_argument(
        "--max-viewers",
        type=int,
        default=20,
        help="most viewer kernels at once; beyond it a 'busy' page (default 20, 0: no limit)",
    )
    p.add_argument(
        "--cull-idle",
        type=int,
        default=300,
        help="seconds before a kernel whose page is closed is shut down (default 300)",
    )
    p.add_argument(
        "--cull-connected",
        type=int,
        default=3600,
        help="seconds before an idle kernel is shut down even with its page open (0: never)",
    )
    p.add_argument("--cull-interval", type=int, default=30, help="seconds between culling rounds")
    p.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password on stdin (or prompt) and print its hash for --password-file",
    )
    return p


def voila_arguments(args: argparse.Namespace) -> tuple[list[str], Config]:
    """Voilà's command line and the secret part of its configuration for ``args``.

    Secrets (token, password hash) go in the returned :class:`Config`, never on the command line
    where other users of the machine could read them in the process list.
    """
    secret = Config()
    token = os.environ.get(TOKEN_ENV, "")
    password_file = args.password_file or os.environ.get(PASSWORD_FILE_ENV)
    generated = False
    if args.no_auth:
        if not is_loopback(args.host):
            raise SystemExit(
                f"effortlens serve: refusing to serve {args.host} without a login; anyone who "
                "can reach it could open the apps and start kernels. Use a loopback address "
                "(127.0.0.1) for a login-free server, or drop --no-auth."
            )
        secret.Voila.token = ""
    elif token:
        secret.Voila.token = token
    elif password_file:
        secret.Voila.token = ""
        secret.PasswordIdentityProvider.hashed_password = read_password_hash(Path(password_file))
    else:
        token = secrets.token_urlsafe(24)
        secret.Voila.token = token
        generated = True
    if not args.no_auth and not (
        secret.Voila.token or secret.PasswordIdentityProvider.get("hashed_password")
    ):
        raise SystemExit("effortlens serve: no login configured")  # never reached
    argv = [
        args.workbooks,
        f"--Voila.ip={args.host}",
        f"--Voila.port={args.port}",
        "--Voila.port_retries=0",
        "--no-browser",
        f"--EffortLensVoila.max_viewers={args.max_viewers}",
        f"--VoilaConfiguration.multi_kernel_manager_class={KERNEL_MANAGER}",
        f"--VoilaConfiguration.preheat_kernel={args.pool > 0}",
        f"--VoilaConfiguration.default_pool_size={max(args.pool, 0)}",
        f"--MappingKernelManager.cull_idle_timeout={args.cull_idle}",
        f"--MappingKernelManager.cull_interval={args.cull_interval}",
        f"--EffortLensKernelManager.cull_connected_timeout={args.cull_connected}",
        f"--EffortLensKernelManager.refill_max_wait={args.pool_refill_max_wait}",
        f"--KernelManager.transport={kernel_transport()}",
    ]
    pools = {"default": {"pool_size": max(args.pool, 0)}}
    for item in args.pool_app:
        name, _, size = item.rpartition("=")
        if not name or not size.isdigit():
            raise SystemExit(f"effortlens serve: --pool-app wants NOTEBOOK=N, not {item!r}")
        pools[name] = {"pool_size": int(size)}
    preheat = any(p["pool_size"] > 0 for p in pools.values())
    argv[argv.index(f"--VoilaConfiguration.preheat_kernel={args.pool > 0}")] = (
        f"--VoilaConfiguration.preheat_kernel={preheat}"
    )
    secret.VoilaKernelManager.kernel_pools_config = pools
    secret.VoilaKernelManager.fill_delay = float(args.pool_refill_delay)
    for name, seconds in EXECUTOR_TIMEOUTS.items():  # see EXECUTOR_TIMEOUTS
        secret.VoilaExecutor[name] = seconds
    secret.EffortLensServe.generated_token = token if generated else ""
    return argv, secret


def kernel_ipython_dir() -> str:
    """An IPython folder for the apps' kernels, without command history.

    Every kernel of the server would otherwise write each executed cell to the one
    ``~/.ipython/profile_default/history.sqlite``; a rush of kernels then fails with
    "history saving thread ... database is locked" on the pages. App kernels run the same
    cells each time, so they keep no history (in memory only). Removed when the server ends;
    a server killed first leaves it, named by its :data:`SERVER_FILE`, for the next start to
    remove (:func:`sweep_ipython_folders`).
    """
    import atexit
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="effortlens-ipython-"))
    profile = folder / "profile_default"
    profile.mkdir()
    (profile / "ipython_kernel_config.py").write_text("c.HistoryManager.enabled = False\n", "utf-8")
    mark_socket_folder(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return str(folder)


def warm_data(data: str | os.PathLike | None) -> threading.Thread | None:
    """Read the latest build of ``data`` ahead into memory in a background thread
    (:func:`effortlens.warm.warm_latest_build`), so the first viewers' kernels find its files
    there: ``make serve`` runs no ``effortlens build`` (which does the same), and a machine
    restarted since the build has none of them in memory. The thread, or None without data."""
    if not data:
        return None

    def run() -> None:
        try:
            from effortlens.warm import warm_kernel_imports, warm_latest_build

            warm_kernel_imports()  # the kernels' packages, where a larger build pushed them out
            warm_latest_build(data)
        except Exception:  # a read ahead, never a reason to fail the server
            pass

    thread = threading.Thread(target=run, name="effortlens-warm", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    """Serve the apps (or hash a password) as the command line says; the exit status."""
    args = build_parser().parse_args(argv)
    if args.hash_password:
        import getpass

        password = (
            getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
        )
        if not password:
            print("effortlens serve: empty password", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    if not Path(args.workbooks).is_dir():
        print(f"effortlens serve: no folder {args.workbooks!r} of workbooks", file=sys.stderr)
        return 2
    voila_argv, config = voila_arguments(args)
    sweep_socket_folders()  # left by a server killed before it could remove them
    sweep_ipython_folders()
    if not args.no_auth:  # the apps' kernels offer only folders under the data roots
        os.environ.setdefault("EFFORTLENS_SERVED", "1")
    if args.data:
        os.environ["EFFORTLENS_DATA"] = str(Path(args.data).resolve())
    warm_data(os.environ.get("EFFORTLENS_DATA"))
    global _BUNDLE
    _BUNDLE = chart_bundle()
    os.environ["EFFORTLENS_CHART_BUNDLE"] = f"effortlens/static/{_BUNDLE[0]}"
    os.environ["IPYTHONDIR"] = kernel_ipython_dir()
    template = _template_path()
    if template:
        paths = [template, *filter(None, os.environ.get("JUPYTER_PATH", "").split(os.pathsep))]
        os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    url = f"http://{shown_host}:{args.port}/"
    token = config.EffortLensServe.generated_token
    del config["EffortLensServe"]
    if args.no_auth:
        print(f"EffortLens is served at {url} (loopback only, no login)", flush=True)
    elif token:
        print(f"EffortLens is served at {url}?token={token}", flush=True)
        print("  (a new token at each start; set EFFORTLENS_TOKEN to choose one)", flush=True)
    else:
        print(f"EffortLens is served at {url} (login required)", flush=True)
    EffortLensVoila.launch_instance(argv=voila_argv, config=config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
