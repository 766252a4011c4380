"""Reproduce the "stalled page" of issue 11: an app page served with its text but no app.

Each trial starts a fresh server exactly as the browser tests do (``voila workbooks`` from the
repository root, so ``voila.json`` applies; ``EFFORTLENS_SERVED=1`` on the hostile data set of
tests/hostile_data.py, with a fresh build cache), optionally with CPU hogs beside it, and opens
the return-on-effort page at once, while the nine preheated kernels are still executing their
notebooks (the moment the browser test opens it). It reads the page's HTML (no browser needed:
the app is the widget-view output of the page's last code cell) and, with ``--browser``, also
opens it in Chromium and waits for a chart, a note or an error.

A trial is a *stall* when the page's HTML holds no widget view (the app's output was dropped
by the server) or, in the browser, when nothing of the app appears within the wait.

    .venv/bin/python bench/stall_repro.py --trials 6 --hogs 2 [--browser] [--extra ARG ...]

``--extra`` passes arguments to ``voila`` (e.g. ``--extra=--VoilaExecutor.iopub_timeout=4``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: ``--measure-lag``: Voila with nbclient's one wait for a cell's outputs after its reply
#: timed and let run to the end (600 s), each wait logged as "EL-LAG <s> <cell's first line>".
LAG_PATCH = """
import asyncio, sys, time, types
import nbclient.client as client

async def _timed_wait_for(aw, timeout):
    start = time.monotonic()
    cell = sys._getframe(1).f_locals.get("cell")
    first = (cell.source.splitlines() or [""])[0][:60] if cell is not None else "?"
    try:
        return await asyncio.wait_for(aw, 600)
    finally:
        print(f"EL-LAG {time.monotonic() - start:.2f} {first}", file=sys.stderr, flush=True)

proxy = types.ModuleType("asyncio")
proxy.__dict__.update(asyncio.__dict__)
proxy.wait_for = _timed_wait_for
client.asyncio = proxy
from voila.app import main
sys.exit(main())
"""
CHART = ".vega-embed svg, .vega-embed canvas"


def hostile_data(folder: Path) -> Path:
    from hostile_data import hostile_copy

    from effortlens.sample import generate

    source = folder / "tiny_planted"
    generate(source, size="tiny", mode="planted", seed=11)
    root = folder / "roots"
    hostile_copy(source, root / "hostile")
    (root / "another" / "export").mkdir(parents=True)
    return root


def start_server(
    root: Path, port: int, log: Path, extra: list[str], cache: Path, *, measure_lag: bool = False
):
    env = {
        **os.environ,
        "EFFORTLENS_DATA": str(root / "hostile"),
        "EFFORTLENS_SERVED": "1",
        "EFFORTLENS_DATA_ROOTS": str(root),
        "EFFORTLENS_CACHE": str(cache),
        "JUPYTER_PATH": str(REPO / "share" / "jupyter"),
    }
    out = open(log, "wb")  # noqa: SIM115 (closed with the server)
    proc = subprocess.Popen(
        [
            sys.executable,
            *(["-c", LAG_PATCH] if measure_lag else ["-m", "voila"]),
            "workbooks",
            f"--port={port}",
            "--no-browser",
            *extra,
        ],
        cwd=REPO,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/", timeout=5):
                return proc, url
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(log.read_text())


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def widget_views(page: str) -> int:
    """How many widget-view outputs the page's HTML carries."""
    n = 0
    pattern = r'<script type="application/vnd.voila.cell-output\+json">(.*?)</script>'
    for block in re.findall(pattern, page, re.S):
        try:
            output = json.loads(block)
        except ValueError:
            continue
        n += WIDGET_VIEW in (output.get("data") or {})
    return n


def trial(args, number: int, root: Path, work: Path) -> dict:
    stamp = time.strftime("%H%M%S")
    log = work / f"voila-{stamp}-{number}.log"
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))  # a fresh build, as in a test run
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(args.hogs)]
    result = {"trial": number, "log": str(log), "load_before": os.getloadavg()[0]}
    proc = None
    try:
        proc, url = start_server(
            root, args.port, log, args.extra, cache, measure_lag=args.measure_lag
        )
        started = time.monotonic()
        page_url = f"{url}/voila/render/01_return_on_effort.ipynb"
        if args.browser:
            result.update(browser_open(page_url, args.wait))
        else:
            with urllib.request.urlopen(page_url, timeout=600) as response:
                html = response.read().decode("utf-8")
            result["widget_views"] = widget_views(html)
            result["stall"] = result["widget_views"] == 0
        result["seconds"] = round(time.monotonic() - started, 1)
    finally:
        result["load_after"] = os.getloadavg()[0]
        for hog in hogs:
            hog.kill()
            hog.wait()
        if proc is not None:
            stop(proc)
        shutil.rmtree(cache, ignore_errors=True)
    text = log.read_text(errors="replace")
    result["iopub_timeouts"] = text.count("Timeout waiting for IOPub output")
    lags = [float(m) for m in re.findall(r"^EL-LAG ([0-9.]+) ", text, re.M)]
    if lags:
        result["lag_max_s"] = max(lags)
        result["lags_over_4s"] = sum(lag > 4 for lag in lags)
        result["waits"] = len(lags)
    return result


def browser_open(page_url: str, wait: float) -> dict:
    from load_test import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2400})
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            page.goto(page_url, timeout=600_000, wait_until="commit")
            try:
                page.wait_for_selector(f"{CHART}, .el-note, .el-error", timeout=wait * 1000)
                stall = False
            except Exception:
                stall = True
            # (the live page no longer holds the outputs' JSON: Voila's script consumed it)
            return {
                "stall": stall,
                "websocket_started": any("Starting WebSocket" in c for c in console),
            }
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--hogs", type=int, default=2, help="busy-loop processes beside the server")
    p.add_argument("--port", type=int, default=8910)
    p.add_argument("--browser", action="store_true", help="open the page in Chromium too")
    p.add_argument("--wait", type=float, default=150, help="browser: seconds to wait for the app")
    p.add_argument("--extra", action="append", default=[], help="an argument for voila")
    p.add_argument(
        "--measure-lag",
        action="store_true",
        help="time how long each cell's outputs trail its reply at the server (none dropped)",
    )
    p.add_argument("--work", help="folder for data, logs and caches (default: a temp folder)")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="effortlens-stall-"))
    work.mkdir(parents=True, exist_ok=True)
    root = work / "roots" if (work / "roots" / "hostile").is_dir() else hostile_data(work)
    results = []
    for number in range(1, args.trials + 1):
        result = trial(args, number, root, work)
        results.append(result)
        print(json.dumps(result), flush=True)
    stalls = sum(r["stall"] for r in results)
    print(
        f"stalls: {stalls} of {len(results)}; trials with an IOPub timeout: "
        f"{sum(r['iopub_timeouts'] > 0 for r in results)}; logs in {work}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
