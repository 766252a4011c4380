"""``effortlens serve``: login on every route, refusal without it, the viewer limit, the close
beacon (XSRF) and culling, checked on a real server by counting its kernel processes.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from load_test import kernel_processes, served, status  # noqa: E402

APP = "01_return_on_effort.ipynb"
TOKEN = "test-token-" + "x" * 20
CULL_IDLE = 8


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _request(url, *, method="GET", data=None, headers=None, opener=None):
    """(status, headers, body) without following redirects."""
    opener = opener or urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=180) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def _kernels(proc) -> int:
    return len(kernel_processes(proc.pid))


@pytest.fixture(scope="module")
def server(tiny_planted, tmp_path_factory):
    """One server: no preheated pool (so any kernel is one a request started), one viewer."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    args = [
        "--pool",
        "0",
        "--max-viewers",
        "1",
        "--cull-idle",
        str(CULL_IDLE),
        "--cull-interval",
        "2",
    ]
    with served(data=tiny_planted, token=TOKEN, log_path=log, args=args, timeout=180) as s:
        yield s


def test_loopback_addresses_are_recognised():
    from effortlens_serve.app import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_no_login_is_refused_on_an_address_others_can_reach(host):
    result = subprocess.run(
        [sys.executable, "-m", "effortlens_serve", "--no-auth", "--host", host, "--port", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "refusing to serve" in result.stderr


def test_the_cli_has_the_serve_command_with_the_same_refusal():
    result = subprocess.run(
        [sys.executable, "-m", "effortlens.cli", "serve", "--no-auth", "--host", "0.0.0.0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "refusing to serve" in result.stderr


def test_a_password_hash_file_is_read_and_checked(tmp_path):
    from jupyter_server.auth.security import passwd_check

    from effortlens_serve.app import hash_password, read_password_hash

    path = tmp_path / "password"
    path.write_text("# made by effortlens serve --hash-password\n" + hash_password("s3cret") + "\n")
    hashed = read_password_hash(path)
    assert passwd_check(hashed, "s3cret") and not passwd_check(hashed, "wrong")
    path.write_text("not a hash\n")
    with pytest.raises(SystemExit):
        read_password_hash(path)


def test_no_route_gives_a_page_or_starts_a_kernel_without_login(server):
    url, proc = server
    assert _kernels(proc) == 0
    fake = "00000000-0000-0000-0000-000000000000"
    routes = [
        ("GET", "/"),
        ("GET", "/voila/tree"),
        ("GET", "/voila/tree/"),
        ("GET", f"/voila/render/{APP}"),
        ("GET", f"/voila/render/{APP}?token=wrong"),
        ("GET", "/voila/api/contents"),
        ("GET", "/voila/api/contents/" + APP),
        ("GET", f"/api/kernels/{fake}"),
        ("DELETE", f"/api/kernels/{fake}"),
        ("GET", f"/api/kernels/{fake}/channels"),
        ("POST", f"/voila/api/shutdown/{fake}"),
        ("GET", f"/voila/query/{fake}"),
        ("GET", "/voila/files/" + APP),
        ("GET", "/voila/files/anything.png"),
        ("GET", "/effortlens/api/status"),
    ]
    for method, path in routes:
        code, headers, body = _request(url + path, method=method)
        assert code in (302, 400, 403, 404, 405), (method, path, code)
        if code == 302:
            assert "/login" in headers["Location"], (path, headers["Location"])
        text = body.decode("utf-8", "replace")
        assert "Return on effort" not in text and "jupyter-widgets" not in text, path
    time.sleep(2)
    assert _kernels(proc) == 0, "a request without login started a kernel"
    # the static assets a login page needs are public, and are not pages
    code, _, body = _request(url + "/login")
    assert code == 200 and b"password" in body.lower()


def _login(url: str):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    return opener, jar


def _xsrf(jar) -> str:
    return next(c.value for c in jar if c.name == "_xsrf")


def test_the_close_beacon_shuts_the_kernel_down_and_the_limit_shows_a_busy_page(server):
    url, proc = server
    opener, jar = _login(url)
    code, _, body = _request(f"{url}/voila/render/{APP}?token={TOKEN}", opener=opener)
    assert code == 200 and b"jupyter-widgets" in body or b"application/vnd" in body
    kernel_id = re.search(rb'"kernelId": "([0-9a-f-]+)"', body).group(1).decode()
    assert _kernels(proc) == 1
    # the app page set the _xsrf cookie that Voila's close beacon sends back
    token = _xsrf(jar)

    # a second viewer beyond the limit of one: a clear busy page, no kernel
    other, _ = _login(url)
    code, headers, body = _request(f"{url}/voila/render/{APP}?token={TOKEN}", opener=other)
    assert code == 503 and headers["Retry-After"] == "60"
    assert b"busy, try again in a minute" in body
    assert _kernels(proc) == 1

    # the beacon Voila sends when the page closes (FormData with _xsrf, cookies, same origin)
    beacon = f"{url}/voila/api/shutdown/{kernel_id}"
    origin = {"Origin": url, "Content-Type": "application/x-www-form-urlencoded"}
    code, _, _ = _request(beacon, method="POST", data=b"_xsrf=", headers=origin, opener=opener)
    assert code == 403, "a beacon without the XSRF value must be refused"
    data = urllib.parse.urlencode({"_xsrf": token}).encode()
    code, _, _ = _request(beacon, method="POST", data=data, headers=origin, opener=opener)
    assert code == 204
    deadline = time.monotonic() + 20
    while _kernels(proc) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _kernels(proc) == 0
    # the place is free again
    code, _, _ = _request(f"{url}/voila/render/{APP}?token={TOKEN}", opener=other)
    assert code == 200


def test_a_kernel_whose_page_is_gone_is_culled(server):
    url, proc = server
    if not _kernels(proc):
        opener, _ = _login(url)
        assert _request(f"{url}/voila/render/{APP}?token={TOKEN}", opener=opener)[0] == 200
    assert _kernels(proc) == 1
    deadline = time.monotonic() + CULL_IDLE + 30
    while _kernels(proc) and time.monotonic() < deadline:
        time.sleep(1)
    assert _kernels(proc) == 0, "the idle kernel was not culled"
    # the server forgets the kernel a moment after its process has gone
    deadline = time.monotonic() + 30
    state = status(url, TOKEN)
    while (state["kernels"] or state["viewers"]) and time.monotonic() < deadline:
        time.sleep(1)
        state = status(url, TOKEN)
    assert state["kernels"] == 0 and state["viewers"] == 0, state


def test_kernels_talk_to_their_server_over_unix_sockets_in_its_own_folder(tiny_planted, tmp_path):
    # With TCP, a kernel's ports are chosen free, closed and bound again by the kernel: another
    # process took one in between once, and a preheated kernel of `make run` died ("ZMQError:
    # Address already in use"). Unix sockets in the server's own folder have no such window.
    from browser_support import private_unix_sockets

    log = tmp_path / "serve.log"
    args = ["--pool", "0", "--pool-app", f"{APP}=1", "--pool-refill-delay", "600"]
    with served(
        data=tiny_planted, token=TOKEN, log_path=log, args=args, timeout=180, wait_for_pool=APP
    ) as (url, proc):
        (preheated,) = kernel_processes(proc.pid)
        opener, _ = _login(url)
        code, _, body = _request(f"{url}/voila/render/{APP}?token={TOKEN}", opener=opener)
        assert code == 200 and b"application/vnd.jupyter.widget-view+json" in body
        (kernel,) = kernel_processes(proc.pid)
        assert kernel.pid == preheated.pid  # the page was served by the preheated kernel
        folder = private_unix_sockets(kernel, folder_prefix="voila_")
    assert not folder.exists(), "the server left its kernels' socket folder behind"
    assert "Address already in use" not in log.read_text()


def test_the_rep_mirror_is_served_by_its_preheated_kernel_on_the_rep_of_its_link(
    tiny_planted, tmp_path
):
    # The mirror's notebook waits in its preheated kernel for the page's URL (``?rep=``): its
    # rendering cannot finish before a viewer asks. The pool counted it as never ready, so
    # every viewer got a cold kernel of their own (43 s at 100M) beside an idle preheated one.
    import polars as pl
    from jupyter_client import BlockingKernelClient

    mirror = "07_rep_mirror.ipynb"
    reps = pl.read_parquet(tiny_planted / "reps.parquet").filter(pl.col("exit_date").is_null())
    rep_id = reps["rep_id"][3]  # not the first rep, which the page shows without a link
    args = ["--pool", "0", "--pool-app", f"{mirror}=1", "--pool-refill-delay", "600"]
    with served(
        data=tiny_planted,
        token=TOKEN,
        log_path=tmp_path / "serve.log",
        args=args,
        timeout=300,
        wait_for_pool=mirror,
    ) as (url, proc):
        (preheated,) = kernel_processes(proc.pid)
        opener, _ = _login(url)
        code, _, body = _request(
            f"{url}/voila/render/{mirror}?rep={rep_id}&token={TOKEN}", opener=opener
        )
        assert code == 200 and b"application/vnd.jupyter.widget-view+json" in body
        (kernel,) = kernel_processes(proc.pid)
        assert kernel.pid == preheated.pid  # no kernel started for the viewer
        # and that kernel shows the rep of the link
        command = kernel.cmdline()
        client = BlockingKernelClient(connection_file=command[command.index("-f") + 1])
        client.load_connection_file()
        client.start_channels()
        try:
            reply = client.execute_interactive(
                "print(app.views[0].rep_id)", timeout=60, output_hook=_stdout_into(out := [])
            )
        finally:
            client.stop_channels()
        assert reply["content"]["status"] == "ok"
        assert "".join(out).strip() == rep_id


def _stdout_into(out: list[str]):
    def hook(message):
        if message["msg_type"] == "stream" and message["content"]["name"] == "stdout":
            out.append(message["content"]["text"])

    return hook


def test_plain_voila_from_another_folder_starts_its_kernels_on_unix_sockets_too(tmp_path):
    # `voila` reads the installed etc/jupyter/voila.py (kernel_transport), from any folder
    import os

    import nbformat
    from browser_support import private_unix_sockets, voila_process

    folder = tmp_path / "notebooks"
    folder.mkdir()
    notebook = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        cells=[nbformat.v4.new_code_cell('print("el-ipc-" + "page")')],
    )
    nbformat.write(notebook, folder / "page.ipynb")
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_PATH", "JUPYTER_CONFIG_DIR")}
    log = tmp_path / "voila.log"
    with voila_process(folder, log_path=log, cwd=tmp_path, env=env) as (url, proc):
        code, _, body = _request(f"{url}/voila/render/page.ipynb")
        assert code == 200 and b"el-ipc-page" in body, log.read_text()[-2000:]
        sockets = private_unix_sockets(kernel_processes(proc.pid)[0], folder_prefix="voila_")
    assert not sockets.exists(), "Voila left its kernels' socket folder behind"


def test_app_kernels_keep_no_command_history(monkeypatch):
    # many kernels writing one history.sqlite fail with "database is locked" on the pages
    from jupyter_client.manager import start_new_kernel

    from effortlens_serve.app import kernel_ipython_dir

    monkeypatch.setenv("IPYTHONDIR", kernel_ipython_dir())
    manager, client = start_new_kernel(kernel_name="python3")
    outputs: list[str] = []
    try:
        reply = client.execute_interactive(
            "hm = get_ipython().history_manager; print(hm.enabled, hm.hist_file)",
            output_hook=lambda msg: outputs.append(msg["content"].get("text", "")),
            timeout=60,
        )
        assert reply["content"]["status"] == "ok"
        enabled, hist_file = "".join(outputs).split()
        assert enabled == "False"
        assert not Path(hist_file).exists()  # nothing written to disk
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


_BUNDLE_PROBE = (
    "import sys\n"
    "from effortlens_serve.app import chart_bundle\n"
    "name, content = chart_bundle()\n"
    "print(name, len(content), 'vl_convert' in sys.modules)\n"
)


def test_the_server_serves_the_cache_folders_chart_module_without_its_runtime(tmp_path):
    # vl-convert's runtime, once started in a process, stays there (~100 MB): the server reads
    # the cache folder's module file, made by a short-lived child when missing
    from effortlens.warm import chart_bundle_path

    env = {**os.environ, "EFFORTLENS_CACHE": str(tmp_path)}
    module = chart_bundle_path(tmp_path)
    assert not module.exists()
    made = subprocess.run(
        [sys.executable, "-c", _BUNDLE_PROBE], env=env, capture_output=True, text=True, check=True
    )
    name, size, runtime = made.stdout.split()
    assert (name, int(size), runtime) == (module.name, module.stat().st_size, "False")
    assert b"vega" in module.read_bytes()

    stand_in = b"// the module of this cache folder\n" * 1000
    module.write_bytes(stand_in)  # read, not made again
    read = subprocess.run(
        [sys.executable, "-c", _BUNDLE_PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert read.stdout.split() == [module.name, str(len(stand_in)), "False"]


def _run_in_own_loop(coroutine):
    # the session's sync Playwright may run an event loop in this thread
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_a_refill_waits_while_the_machine_is_busy_and_no_longer():
    from effortlens_serve.kernels import wait_until_quiet

    loads = iter([9.0, 9.0, 0.5, 9.0])  # load averages on 2 CPUs: busy, busy, quiet
    waited = _run_in_own_loop(
        wait_until_quiet(busy_above=1.0, max_wait=60, poll=0.05, load=lambda: next(loads), cpus=2)
    )
    assert 0.1 <= waited < 5
    assert next(loads) == 9.0  # it stopped asking once the machine was quiet
    # a machine that stays busy is waited for max_wait at most
    waited = _run_in_own_loop(
        wait_until_quiet(busy_above=1.0, max_wait=0.2, poll=0.05, load=lambda: 50.0, cpus=2)
    )
    assert 0.2 <= waited < 2


# --- an output that reaches the server late is still part of the page ----------------------------

#: A cell whose output (and its "idle" status) reaches the server 8 s after its execute_reply:
#: it holds the kernel's IOPub thread before displaying, and lets the kernel send its reply
#: without waiting for that thread (which it otherwise does for up to 10 s). On a loaded
#: machine (nine preheated kernels executing at once, beside the test run) the server read an
#: app's output that late; nbclient's default ``iopub_timeout`` of 4 s then dropped the app from
#: the page, which showed its text and nothing else (issue 11, the "stalled page" of
#: tests/test_security_browser.py).
LATE_OUTPUT_CELL = """\
import sys, time
from IPython.display import HTML, display

sys.stdout.flush_timeout = sys.stderr.flush_timeout = 0.05
get_ipython().kernel.iopub_socket.io_thread.schedule(lambda: time.sleep(8))
display(HTML("<p>el-late-output-" + "arrived</p>"))
"""
LATE_MARKER = "el-late-output-arrived"


def _late_output_folder(folder: Path) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        cells=[
            nbformat.v4.new_markdown_cell("# Late"),
            nbformat.v4.new_code_cell(LATE_OUTPUT_CELL),
        ],
    )
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / "late.ipynb")
    return folder


def test_every_way_of_serving_waits_as_long_for_a_late_output(monkeypatch):
    import json

    from traitlets.config.loader import PyFileConfigLoader

    from effortlens_serve.app import EXECUTOR_TIMEOUTS, build_parser, voila_arguments

    plain = json.loads((REPO / "voila.json").read_text("utf-8"))["VoilaExecutor"]
    _, config = voila_arguments(build_parser().parse_args(["--host", "127.0.0.1", "--no-auth"]))
    served_mode = {name: config.VoilaExecutor[name] for name in EXECUTOR_TIMEOUTS}
    assert plain == served_mode == EXECUTOR_TIMEOUTS
    assert EXECUTOR_TIMEOUTS["iopub_timeout"] >= 30  # nbclient's 4 s dropped apps under load
    # the hub's single-user servers (Voila as a server extension reads no voila.json for this)
    monkeypatch.setenv("EFFORTLENS_HUB_PASSWORD", "unused")
    hub = PyFileConfigLoader(str(REPO / "deploy" / "jupyterhub" / "jupyterhub_config.py"))
    args = hub.load_config().Spawner.args
    for name, seconds in EXECUTOR_TIMEOUTS.items():
        assert f"--VoilaExecutor.{name}={seconds}" in args


def test_plain_voila_started_from_another_folder_waits_as_long_and_changes_nothing_else(
    tmp_path,
):
    # Voila reads voila.json from the current folder and from Jupyter's config path. Started
    # elsewhere, it kept nbclient's 4 s wait for a cell's output: the install puts the waits
    # (and the kernel transport) in <prefix>/etc/jupyter/voila.py, and nothing else, since the
    # environment's other Voila apps read it too (no template, no preheated kernels there)
    import json

    from effortlens_serve.app import EXECUTOR_TIMEOUTS, kernel_transport

    script = (
        "import json\n"
        "from voila.app import Voila\n"
        "app = Voila()\n"
        "app.load_config_file('voila', path=app.config_file_paths)\n"
        "print(json.dumps({name: dict(section) for name, section in app.config.items()}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    expected = {
        "VoilaExecutor": EXECUTOR_TIMEOUTS,
        "KernelManager": {"transport": kernel_transport()},
    }
    assert loaded == expected, (
        "Voila's settings are not installed (or are stale) in <prefix>/etc/jupyter: "
        "reinstall (make test / make run do)"
    )
    assert loaded["VoilaExecutor"]["iopub_timeout"] >= 30


@pytest.mark.parametrize("mode", ["voila", "effortlens serve"])
def test_an_output_that_reaches_the_server_late_is_on_the_page(mode, tiny_planted, tmp_path):
    folder = _late_output_folder(tmp_path / "notebooks")
    log = tmp_path / "server.log"
    if mode == "voila":  # as `voila workbooks` from the repository root (voila.json applies)
        from browser_support import voila_server

        with voila_server(tiny_planted, log_path=log, notebooks=folder) as url:
            code, _, body = _request(f"{url}/voila/render/late.ipynb")
    else:
        args = ["--workbooks", str(folder), "--pool", "1"]
        with served(data=tiny_planted, token=TOKEN, log_path=log, args=args, timeout=180) as s:
            url, _ = s
            code, _, body = _request(f"{url}/voila/render/late.ipynb?token={TOKEN}")
    assert code == 200
    page = body.decode("utf-8")
    assert "Late" in page  # the page itself was served
    assert LATE_MARKER in page, "the cell's output was dropped: " + log.read_text()[-2000:]


def _socket_folder(
    root: Path, name: str, *, pid: int | None, extra: str | None = None, namespace: str = ""
) -> Path:
    """A 0700 folder under ``root`` holding one bound Unix socket, a server record naming
    ``pid`` (none: no record) and ``namespace`` (empty: this process's; ``None``: none, as
    records were written before namespaces) and an ``extra`` regular file."""
    import socket

    from effortlens_serve.app import mark_socket_folder

    folder = root / name
    folder.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "kernel-1-ipc-1"))
    if pid is not None:
        mark_socket_folder(folder)
        _, started, ours = (folder / "effortlens-server.pid").read_text().split()
        fields = [str(pid), started, *([namespace or ours] if namespace is not None else [])]
        (folder / "effortlens-server.pid").write_text(" ".join(fields) + "\n")
    if extra:
        (folder / extra).write_text("{}")
    return folder


def test_socket_folders_of_killed_servers_are_swept_and_no_other(tmp_path):
    import os

    from effortlens_serve.app import sweep_socket_folders

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # its id is free now
    gone = [
        _socket_folder(tmp_path, "voila_gone1234", pid=ended.pid),
        _socket_folder(tmp_path, "el_kernels_gone1234", pid=ended.pid),
        # a kernel's connection file is left beside its sockets by a killed server
        _socket_folder(tmp_path, "voila_conn1234", pid=ended.pid, extra="kernel-1.json"),
    ]
    link = _socket_folder(tmp_path, "voila_link1234", pid=ended.pid)
    (link / "kernel-2.json").symlink_to(tmp_path / "elsewhere.json")
    kept = [
        _socket_folder(tmp_path, "voila_live1234", pid=os.getpid()),  # a running server's
        _socket_folder(tmp_path, "voila_plain123", pid=None),  # plain voila's: no record
        _socket_folder(tmp_path, "voila_file1234", pid=ended.pid, extra="notes.txt"),  # other file
        link,  # a connection file's name on a link: not what a kernel leaves
        _socket_folder(tmp_path, "other_gone1234", pid=ended.pid),
        # a server of another PID namespace (a container sharing /tmp as the same user): its
        # ids are not this process's to judge, nor are those of a record without a namespace
        _socket_folder(tmp_path, "voila_other_ns", pid=ended.pid, namespace="pid:[1]"),
        _socket_folder(tmp_path, "voila_no_ns123", pid=ended.pid, namespace=None),
    ]
    # this process's id, recorded with another start time: the id was reused, the server ended
    reused = _socket_folder(tmp_path, "voila_reused12", pid=os.getpid())
    record = reused / "effortlens-server.pid"
    record.write_text(f"{os.getpid()} 1 {os.readlink('/proc/self/ns/pid')}\n")
    assert sorted(sweep_socket_folders(tmp_path)) == sorted([*gone, reused])
    assert not any(f.exists() for f in [*gone, reused])
    assert all(f.is_dir() for f in kept)
    assert sweep_socket_folders(tmp_path) == []


def _ipython_folder(root: Path, *, ended: bool) -> Path:
    """A kernels' IPython folder made under ``root`` by :func:`kernel_ipython_dir` in another
    process, which then ends without cleaning up (``ended``, as a SIGKILL leaves it) or by
    this one (a live server's; removed when this process ends)."""
    import tempfile

    from effortlens_serve.app import kernel_ipython_dir

    if not ended:
        saved, tempfile.tempdir = tempfile.tempdir, str(root)
        try:
            return Path(kernel_ipython_dir())
        finally:
            tempfile.tempdir = saved
    script = (
        "import os, sys, tempfile\n"
        "tempfile.tempdir = sys.argv[1]\n"
        "from effortlens_serve.app import kernel_ipython_dir\n"
        "print(kernel_ipython_dir(), flush=True)\n"
        "os._exit(0)  # no atexit: as a killed server\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(root)], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def test_ipython_folders_of_killed_servers_are_swept_and_no_other(tmp_path):
    from effortlens_serve.app import SERVER_FILE, sweep_ipython_folders

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("kept")
    gone = [_ipython_folder(tmp_path, ended=True) for _ in range(2)]
    (gone[1] / "profile_default" / "startup").mkdir()  # what a kernel writes there goes too
    (gone[1] / "profile_default" / "startup" / "README").write_text("x")
    (gone[1] / "profile_default" / "link").symlink_to(outside)  # removed, not followed
    live = _ipython_folder(tmp_path, ended=False)  # this process's: a running server's
    other_ns, extra, linked, plain = (_ipython_folder(tmp_path, ended=True) for _ in range(4))
    record = other_ns / SERVER_FILE
    pid, started, _ = record.read_text().split()
    record.write_text(f"{pid} {started} pid:[1]\n")  # another container's server
    (extra / "notes.txt").write_text("mine")  # something else beside the profile
    profile = linked / "profile_default"
    profile.rename(outside / "profile_default")
    profile.symlink_to(outside / "profile_default")  # the profile a link: never followed
    (plain / SERVER_FILE).unlink()  # no record: not a server's to judge
    kept = [live, other_ns, extra, linked, plain]
    assert sorted(sweep_ipython_folders(tmp_path)) == sorted(gone)
    assert not any(f.exists() for f in gone)
    assert all(f.is_dir() for f in kept)
    assert (outside / "keep.txt").read_text() == "kept"
    assert (outside / "profile_default" / "ipython_kernel_config.py").is_file()
    assert sweep_ipython_folders(tmp_path) == []


def test_a_killed_server_leaves_its_socket_folder_and_the_next_start_removes_it(
    tiny_planted, tmp_path, monkeypatch
):
    import os
    import shutil
    import signal
    import tempfile

    from effortlens_serve.app import SERVER_FILE, sweep_ipython_folders, sweep_socket_folders

    temp = Path(tempfile.mkdtemp(prefix="el_sweep_"))  # the servers' temporary folder
    monkeypatch.setenv("TMPDIR", str(temp))
    try:
        log = tmp_path / "serve.log"
        # a preheated kernel (the default pool) leaves its connection file and sockets too
        with served(data=tiny_planted, token=TOKEN, log_path=log, args=["--pool", "1"]) as (
            _,
            proc,
        ):
            (folder,) = [p.parent for p in temp.glob(f"voila_*/{SERVER_FILE}")]
            assert int((folder / SERVER_FILE).read_text().split()[0]) == proc.pid
            deadline = time.monotonic() + 120
            while not list(folder.glob("kernel-*.json")) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert list(folder.glob("kernel-*.json")), "the preheated kernel never started"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        assert folder.is_dir(), "a killed server cleans up nothing"
        assert list(folder.glob("kernel-*.json"))
        (ipython,) = temp.glob("effortlens-ipython-*")  # its kernels' IPython folder too
        assert sweep_socket_folders(temp) == [folder]  # what the next start does first
        assert sweep_ipython_folders(temp) == [ipython]
        assert not ipython.exists()
    finally:
        shutil.rmtree(temp, ignore_errors=True)
