"""What one served page costs the browser: CPU seconds, main-thread time, widget models.

Serves the apps as ``bench/load_test.py`` does (``effortlens serve`` on loopback with a token,
preheated kernels) and opens one page at a time in Debian's headless Chromium, each in a fresh
browser context (a cold cache, as a first visit), and measures per page

- the wall time from navigation to the first interactive chart (or ``--ready``'s selector);
- the CPU seconds of the Chromium process tree until then, and until the page has settled
  (no more than 0.03 CPU s in half a second, at most 30 s);
- Chrome's own counters (``Performance.getMetrics`` over the DevTools protocol): time in main
  thread tasks, script, layout and style, DOM nodes, JS heap;
- the bytes the page's websocket received (the widget state) and the widget models the page's
  kernel holds (counted in a kernel of its own by building the same app, when asked with
  ``--count-models``: every model of the kernel is sent to the page).

    .venv/bin/python bench/page_cost.py --runs 3
    .venv/bin/python bench/page_cost.py --plain label --runs 3

Pages are measured one after the other on an otherwise idle browser; the machine's 1-minute
load average is printed beside each page (the machine is shared: CPU seconds are the evidence).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_test import (  # noqa: E402
    CHART,
    CHROMIUM,
    CHROMIUM_ARGS,
    PLAIN_PAGES,
    REPO,
    VIEWPORT,
    browser_cpu_seconds,
    plain_workbooks,
    sample_data,
    served,
)

METRICS = (
    "TaskDuration",
    "ScriptDuration",
    "LayoutDuration",
    "RecalcStyleDuration",
    "Nodes",
    "JSHeapUsedSize",
)


def _settle(step: float = 0.5, quiet: float = 0.03, limit: float = 30.0) -> float:
    """Wait until the browsers use at most ``quiet`` CPU s in ``step`` s; the time waited."""
    t0 = time.monotonic()
    last = browser_cpu_seconds()
    while time.monotonic() - t0 < limit:
        time.sleep(step)
        now = browser_cpu_seconds()
        if now - last <= quiet:
            break
        last = now
    return time.monotonic() - t0


def measure_pages(
    *,
    notebook: str,
    runs: int,
    ready: str = CHART,
    workbooks: Path | None = None,
    port: int | None = None,
    timeout_s: float = 120.0,
) -> list[dict]:
    """Open ``notebook`` ``runs`` times, one page at a time; the figures of each page."""
    from playwright.sync_api import sync_playwright

    token = secrets.token_urlsafe(12)
    args = ["--pool", "0", "--pool-app", f"{notebook}={runs}", "--cull-idle", "60"]
    if workbooks:
        args += ["--workbooks", str(workbooks)]
    log = REPO / "test-artifacts" / "page-cost.log"
    pages = []
    with served(
        data=sample_data(),
        token=token,
        log_path=log,
        args=args,
        timeout=600,
        wait_for_pool=notebook,
        port=port,
    ) as (url, _proc):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for _ in range(runs):
                    pages.append(_one_page(browser, url, token, notebook, ready, timeout_s))
            finally:
                browser.close()
    return pages


def _one_page(browser, url, token, notebook, ready, timeout_s) -> dict:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    received = {"bytes": 0, "frames": 0}

    def on_socket(ws):
        def frame(payload):
            received["frames"] += 1
            received["bytes"] += len(payload)

        ws.on("framereceived", frame)

    page.on("websocket", on_socket)
    page.goto("about:blank")
    _settle(limit=5)
    load = os.getloadavg()[0]
    cpu0, t0 = browser_cpu_seconds(), time.monotonic()
    page.goto(f"{url}/voila/render/{notebook}?token={token}", wait_until="commit")
    page.wait_for_selector(ready, timeout=timeout_s * 1000)
    ready_s, ready_cpu = time.monotonic() - t0, browser_cpu_seconds() - cpu0
    _settle()
    settled_cpu = browser_cpu_seconds() - cpu0
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    charts = page.locator(CHART).count()
    largest = page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".map(e => [e.name.split('?')[0].split('/').slice(-3).join('/'), e.decodedBodySize || 0])"
        ".sort((a, b) => b[1] - a[1]).slice(0, 12)"
    )
    scripts = page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".filter(e => e.initiatorType === 'script' || e.name.endsWith('.js'))"
        ".reduce((a, e) => [a[0] + 1, a[1] + (e.decodedBodySize || 0)], [0, 0])"
    )
    page.close(run_before_unload=True)
    time.sleep(1.0)  # the close beacon goes out
    context.close()
    return {
        "load_avg": round(load, 1),
        "ready_s": round(ready_s, 2),
        "cpu_to_ready_s": round(ready_cpu, 2),
        "cpu_settled_s": round(settled_cpu, 2),
        "charts": charts,
        "ws_kb": round(received["bytes"] / 1024, 1),
        "ws_frames": received["frames"],
        "js_files": scripts[0],
        "js_mb": round(scripts[1] / 1e6, 2),
        "largest_kb": [[name, round(size / 1024)] for name, size in largest],
        **{k: round(metrics.get(k, 0), 3) for k in METRICS},
    }


def count_models(notebook: str) -> dict:
    """The widget models a kernel running ``notebook``'s app holds (all are sent to a page),
    by class; built in this process from the notebook's code cells."""
    import collections

    import nbformat
    from ipywidgets import Widget

    before = set(Widget._active_widgets)  # noqa: SLF001
    nb = nbformat.read(REPO / "workbooks" / notebook, as_version=4)
    scope: dict = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, notebook, "exec"), scope)  # noqa: S102 - our own notebook
    new = [w for k, w in Widget._active_widgets.items() if k not in before]  # noqa: SLF001
    kinds = collections.Counter(type(w).__name__ for w in new)
    state = sum(len(json.dumps(w.get_state(), default=str)) for w in new)
    return {"models": len(new), "state_kb": round(state / 1024), "by_class": dict(kinds)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--notebook", default="01_return_on_effort.ipynb")
    p.add_argument("--plain", choices=sorted(PLAIN_PAGES), help="a plain Voila page instead")
    p.add_argument("--ready", help="selector of a drawn page (default: a chart)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--port", type=int)
    p.add_argument("--count-models", action="store_true", help="also count the app's models")
    args = p.parse_args(argv)
    ready, workbooks, notebook = args.ready or CHART, None, args.notebook
    if args.plain:
        folder = Path(tempfile.mkdtemp(prefix="effortlens-plain-"))
        workbooks, notebook, plain_ready = plain_workbooks(args.plain, folder)
        ready = args.ready or plain_ready
    pages = measure_pages(
        notebook=notebook, runs=args.runs, ready=ready, workbooks=workbooks, port=args.port
    )
    out = {"notebook": notebook, "pages": pages}
    for key in ("cpu_to_ready_s", "cpu_settled_s", "ready_s", "TaskDuration", "ScriptDuration"):
        out[f"median_{key}"] = round(statistics.median(pg[key] for pg in pages), 2)
    if args.count_models and not args.plain:
        out["kernel"] = count_models(notebook)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
