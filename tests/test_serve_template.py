"""Plain ``voila`` and JupyterLab's Voila preview find the ``effortlens`` template as installed.

``pip install .`` and ``pip install -e .`` put the template into
``<prefix>/share/jupyter/voila/templates`` (hatchling's ``shared-data`` in pyproject.toml). No
test here sets ``JUPYTER_PATH``: the template must be found the standard way.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from browser_support import free_port

from effortlens.processes import dies_with_this_process

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from load_test import stop  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = Path("share", "jupyter", "voila", "templates", "effortlens")
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _env(data: Path) -> dict:
    env = {**os.environ, "EFFORTLENS_DATA": str(data)}
    env.pop("JUPYTER_PATH", None)
    return env


def _serve(cmd: list[str], env: dict, log: Path):
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=open(log, "wb"),  # noqa: SIM115  (closed with the process)
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=dies_with_this_process(),
    )


def _get(url: str, proc, log: Path, *, timeout: float = 240) -> str:
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            with urllib.request.urlopen(url, timeout=180) as response:
                return response.read().decode()
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{url}: {err.code}\n{log.read_text()[-3000:]}") from err
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(log.read_text())


def _source_copy(tmp_path: Path) -> Path:
    """What a build reads, copied: no build may write beside the checkout's sources."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("lib", "widgets", "serve", "share"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    return source


def test_an_editable_install_puts_the_template_where_voila_looks(tmp_path):
    source = _source_copy(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "-e",
            str(source),
        ],
        check=True,
        timeout=300,
    )
    installed = venv / "share" / "jupyter" / "voila" / "templates" / "effortlens"
    for name in ("conf.json", "tree.html", "index.html.j2"):
        assert (installed / name).read_bytes() == (source / TEMPLATE / name).read_bytes(), name
    # and the editable packages are the checkout's own
    found = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import effortlens_serve; print(effortlens_serve.__file__)",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    assert Path(found).is_relative_to(source)


def test_the_wheel_installs_the_template_where_voila_looks(tmp_path):
    source = _source_copy(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
        + ["-w", str(tmp_path / "dist"), str(source)],
        check=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("effortlens-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("conf.json", "tree.html", "index.html.j2"):
        assert any(
            n.endswith(f".data/data/share/jupyter/voila/templates/effortlens/{name}") for n in names
        ), name
    assert any(n.startswith("effortlens_serve/") for n in names)


def test_the_template_is_found_in_this_environment():
    from jupyter_core.paths import jupyter_path

    found = [p for p in jupyter_path("voila", "templates") if Path(p, "effortlens").is_dir()]
    assert found, "pip install -e . installs it (hatchling shared-data)"


def test_plain_voila_serves_the_landing_page_and_an_app(tmp_path, tiny_planted):
    port = free_port()
    log = tmp_path / "voila-tree.log"
    # exactly `voila workbooks` from the repository root (voila.json applies), without a pool
    proc = _serve(
        [str(BIN / "voila"), "workbooks", f"--port={port}", "--no-browser"]
        + ["--VoilaConfiguration.preheat_kernel=False"],
        _env(tiny_planted),
        log,
    )
    try:
        html = _get(f"http://127.0.0.1:{port}/", proc, log)
        assert "Pick a question" in html and "Pattern session" in html  # the EffortLens template
    finally:
        stop(proc)
    port = free_port()
    log = tmp_path / "voila-one.log"
    proc = _serve(
        [str(BIN / "voila"), "workbooks/01_return_on_effort.ipynb", f"--port={port}"]
        + ["--no-browser"],
        _env(tiny_planted),
        log,
    )
    try:
        html = _get(f"http://127.0.0.1:{port}/", proc, log)
        assert "application/vnd.jupyter.widget-view+json" in html
        assert "Traceback" not in html
        # nothing from a CDN (the lab template's Font Awesome links are dropped by ours)
        assert re.findall(r'(?:href|src)="(https?://[^"]+)"', html) == []
    finally:
        stop(proc)


def test_jupyterlab_voila_preview_renders_an_app(tmp_path, tiny_planted):
    """The preview is Voila's server extension in JupyterLab's server, at /voila/render/."""
    port = free_port()
    log = tmp_path / "lab.log"
    token = "preview-test-token"
    proc = _serve(
        [str(BIN / "jupyter"), "server", f"--port={port}", "--no-browser"]
        + [f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False"]
        + (["--allow-root"] if os.getuid() == 0 else []),
        _env(tiny_planted),
        log,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        app = "workbooks/01_return_on_effort.ipynb"
        html = _get(f"{base}/voila/render/{app}?token={token}", proc, log)
        assert "application/vnd.jupyter.widget-view+json" in html
        assert "Traceback" not in html
        # nothing from a CDN (the lab template's Font Awesome links are dropped by ours)
        assert re.findall(r'(?:href|src)="(https?://[^"]+)"', html) == []
        tree = _get(f"{base}/voila/tree/workbooks?token={token}", proc, log)
        assert "Pattern session" in tree  # the EffortLens landing page, from the installed template
    finally:
        stop(proc)
