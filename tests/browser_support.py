"""Helpers for the browser tests: a real Voilà server on a free port, and Debian's Chromium.

The server is started exactly as ``make run`` starts it (``voila workbooks`` from the
repository root, so ``voila.json`` applies), only on another port and with another
``EFFORTLENS_DATA``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from effortlens.processes import dies_with_this_process

REPO = Path(__file__).resolve().parents[1]
#: Screenshots and Voilà logs: a temporary folder per test session, never the repository
#: (tests/conftest.py names it in ``$EFFORTLENS_TEST_ARTIFACTS`` and prints it at the end).
ARTIFACTS = Path(
    os.environ.get("EFFORTLENS_TEST_ARTIFACTS")
    or tempfile.mkdtemp(prefix="effortlens-test-artifacts-")
)

sys.path.insert(0, str(REPO / "bench"))
# Debian's Chromium and its flags: one home, shared with the load test
from load_test import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

#: What a page shows when it broke (a traceback, a widget or cell that failed): no test page may
#: show any of these; each test adds the messages of its own that must not appear either.
PAGE_FAILURES = (
    "Traceback",
    "Error displaying widget",
    "There was an error when executing cell",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def voila_server(
    data_dir: Path, *, log_path: Path, timeout: float = 120.0, notebooks: str | Path = "workbooks"
):
    """Serve ``notebooks`` (``workbooks/``) with ``EFFORTLENS_DATA=data_dir``; yield the base URL.

    The server runs in its own process group and is stopped, with its kernels, on exit.
    """
    templates = str(REPO / "share" / "jupyter")  # the landing template voila.json names
    env = {
        **os.environ,
        "EFFORTLENS_DATA": str(data_dir),
        "JUPYTER_PATH": os.pathsep.join(filter(None, [templates, os.environ.get("JUPYTER_PATH")])),
    }
    with voila_process(notebooks, log_path=log_path, timeout=timeout, env=env) as (url, _):
        yield url


@contextmanager
def voila_process(
    notebooks: str | Path,
    *,
    log_path: Path,
    timeout: float = 120.0,
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
):
    """Plain ``voila notebooks`` started in ``cwd`` with ``env`` (default this process's);
    yield (base URL, process) once it answers. Its own process group, stopped with its
    kernels on exit."""
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "voila", str(notebooks), f"--port={port}", "--no-browser"],
            cwd=cwd,
            env=dict(os.environ) if env is None else env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=dies_with_this_process(),
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, server, timeout=timeout, log_path=log_path)
            yield url, server
        finally:
            _stop(server)


def _wait_until_up(url: str, server: subprocess.Popen, *, timeout: float, log_path: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"voila exited with {server.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url + "/", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"voila did not answer on {url} within {timeout} s:\n{log_path.read_text()}")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def wait_for_state(page, expression: str, *, arg=None, timeout: float = 120_000, what: str):
    """Wait until the JavaScript function ``expression`` (given ``arg``) is true on ``page``.

    The way to synchronise with a page: its parts are widgets synced by messages of their own,
    in an order no test should assume, so a test waits for the final state its assertions
    read (never a fixed sleep). If that state does not come within ``timeout`` ms, fail
    saying ``what`` was awaited and what the page shows.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(expression, arg=arg, timeout=timeout)
    except PlaywrightTimeout as err:
        shown = page.inner_text("body")[:1500]
        raise AssertionError(
            f"not within {timeout / 1000:.0f} s: {what}; the page shows:\n{shown}"
        ) from err


def wait_for_text(page, texts, *, timeout: float = 120_000, selector: str = "body") -> None:
    """Wait until the text of ``selector`` holds every one of ``texts``."""
    wait_for_state(
        page,
        "([sel, texts]) => { const el = document.querySelector(sel);"
        " return !!el && texts.every(t => el.innerText.includes(t)); }",
        arg=[selector, list(texts)],
        timeout=timeout,
        what=f"{selector} showing {list(texts)}",
    )


def wait_for_upload(page, count: int, *, timeout: float = 120_000) -> None:
    """Wait until the page's upload button has read ``count`` files and sent them.

    ipywidgets' ``FileUpload`` reads the chosen files asynchronously, then in one go sets its
    value, says "(count)" on its button and sends the files to the kernel: pressing Load
    before that loads no upload at all.
    """
    wait_for_state(
        page,
        "n => [...document.querySelectorAll('button.widget-upload')]"
        ".some(b => b.innerText.trim().endsWith(`(${n})`))",
        arg=count,
        timeout=timeout,
        what=f"the upload button saying it holds {count} file(s)",
    )


def launch_chromium(playwright):
    """Debian's Chromium driven by Playwright (never a browser of Playwright's own)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def private_unix_sockets(kernel, *, folder_prefix: str) -> Path:
    """Check that ``kernel`` (a psutil process) talks to its server over Unix sockets bound in
    a folder named ``folder_prefix…`` that only this user can enter; that folder.

    Its only TCP port is then ipykernel's pipe for forked children's output, which ZeroMQ binds
    itself (no window between choosing a port and binding it)."""
    import json
    import stat

    command = kernel.cmdline()
    connection_file = Path(command[command.index("-f") + 1])
    info = json.loads(connection_file.read_text("utf-8"))
    assert info["transport"] == "ipc", info
    folder = connection_file.parent
    assert Path(info["ip"]).parent == folder and folder.name.startswith(folder_prefix), info
    assert folder.stat().st_uid == os.getuid()
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0, "others can enter the folder"
    bound = {c.laddr for c in kernel.net_connections(kind="unix")}
    for channel in ("shell", "iopub", "stdin", "control", "hb"):
        socket_path = f"{info['ip']}-{info[channel + '_port']}"
        assert stat.S_ISSOCK(Path(socket_path).stat().st_mode), socket_path
        assert socket_path in bound, (socket_path, bound)
    return folder
