"""Many viewers at once on the served apps: time to first chart, filter changes, clean-up.

Starts ``effortlens serve`` on loopback with a token (as ``make serve`` does), opens N pages at
the same moment in Debian's headless Chromium (one browser context per viewer, so each has its
own login cookie and kernel), and measures

- per viewer (p50, p90, max), the time from navigation to
  - the first chart *visible*: the static preview of the first chart that the page's HTML
    carries (``effortlens_widgets.first_paint``, as painted: its Element Timing entry), or the
    interactive chart if that came first;
  - the first *interactive* chart: a chart drawn by Vega in the browser (``.vega-embed svg``);
- then, in each page in turn, the time a filter change takes to redraw the KPI cards;
- the kernels and memory (server + kernels, RSS) before, at the peak and after the pages close,
  and how long it takes until only the preheated pool is left (close beacon, else culling).

    .venv/bin/python bench/load_test.py --viewers 20 --write-results

Everything is bounded in time (``--deadline``) and runs on 127.0.0.1 only. The exit status is 0
when every target held (all first charts, p90 <= --p90-target, every filter change <=
--filter-target, back to the pool within the culling time), else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from effortlens.processes import dies_with_this_process

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# Debian's Chromium, never a browser of Playwright's own; the one home of these flags (the
# browser tests take them from here, through tests/browser_support.py).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHART = ".vega-embed svg, .vega-embed canvas"
#: The static preview of the first chart in the page's HTML (its <img> carries this
#: ``elementtiming`` identifier; see share/jupyter/voila/templates/effortlens/index.html.j2).
PREVIEW = "el-first-paint"
# When the preview was painted, in ms since the epoch (null without one): the Element Timing
# entry, read after the fact, so a page's busy main thread does not delay the reading itself.
_PREVIEW_PAINTED_JS = """id => new Promise(resolve => {
  const done = entries => {
    const e = entries.find(x => x.identifier === id);
    if (e) resolve(performance.timeOrigin + (e.renderTime || e.loadTime));
    return e;
  };
  new PerformanceObserver((list, obs) => { if (done(list.getEntries())) obs.disconnect(); })
    .observe({ type: "element", buffered: true });
  setTimeout(() => resolve(null), 2000);
})"""
# Where the time to the preview goes, in ms since the epoch: the browser starting the
# navigation, the server's first byte, the whole HTML received (then parsing and painting)
_NAVIGATION_JS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const t = performance.timeOrigin;
  return nav ? [t, t + nav.responseStart, t + nav.responseEnd] : null;
}"""
VIEWPORT = {"width": 1280, "height": 1600}
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Serving: {viewers} viewers at once, {cache} browser cache"


#: Plain Voila pages, to measure what any page costs in this harness (``--plain``): the code of
#: one notebook each and the selector that shows it is ready (the "first chart").
PLAIN_PAGES = {
    "label": (
        'import ipywidgets as widgets\nwidgets.Label("Return on effort")',
        ".widget-label",
    ),
    "chart": (
        "import altair as alt\n"
        "import polars as pl\n"
        "from effortlens_widgets.panels import CHART_EMBED_OPTIONS, enable_offline_charts\n"
        "\n"
        "enable_offline_charts()  # the chart bundle as the apps get it (served once per page)\n"
        'weeks = pl.DataFrame({"week": list(range(1, 27)), "roe": [20 + (i * 7) % 11 for i in '
        "range(26)]})\n"
        'chart = alt.Chart(weeks).mark_line(point=True).encode(x="week:Q", y="roe:Q")\n'
        "alt.JupyterChart(chart, embed_options=CHART_EMBED_OPTIONS)",
        CHART,
    ),
}


def plain_workbooks(kind: str, folder: Path) -> tuple[Path, str, str]:
    """A folder holding one plain Voila notebook of :data:`PLAIN_PAGES` ``kind``: (folder,
    notebook name, ready selector)."""
    import nbformat

    code, ready = PLAIN_PAGES[kind]
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# Plain Voila page: {kind}"),
        nbformat.v4.new_code_cell(code),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    name = f"plain_{kind}.ipynb"
    nbformat.write(nb, folder / name)
    return folder, name, ready


@dataclass
class Figures:
    viewers: int
    notebook: str
    cpus: int
    server_args: list[str]
    ready: str = CHART  # the selector counted as the page's first (interactive) chart
    startup_s: float = 0.0
    first_chart_s: list[float] = field(default_factory=list)  # first interactive chart
    first_visible_s: list[float] = field(default_factory=list)  # preview or interactive chart
    previews_painted: int = 0  # pages whose static preview was painted
    # per viewer: navigation started, first byte of the HTML, whole HTML received (s)
    navigation_s: list[list[float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    busy_pages: int = 0
    filter_change_s: list[float] = field(default_factory=list)
    kernels_before: int = 0
    kernels_peak: int = 0
    kernels_after: int = 0
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_after_mb: float = 0.0
    viewers_gone_s: float | None = None
    back_to_pool_s: float | None = None
    cull_idle_s: int = 0
    load_avg_before: float = 0.0
    load_avg_after_rush: float = 0.0
    status_after: dict = field(default_factory=dict)  # the server's own count at the end
    browser_cache: str = "cold"  # "cold": each viewer a fresh profile; "warm": visited before
    filter_changes: bool = True  # change the Team filter in each page after the rush
    workbooks: str = ""  # the served folder of notebooks ("": the repository's workbooks/)
    rush_cpu_s: dict = field(default_factory=dict)  # CPU seconds from the rush to the charts
    # Voila's close beacons (POST /voila/api/shutdown/<kernel>) as the browser saw them
    beacons: dict = field(default_factory=lambda: {"sent": 0, "failed": []})
    pages_closed_at: float = 0.0  # time.monotonic() when the last page had closed

    def summary(self) -> dict:
        charts = sorted(self.first_chart_s)
        visible = sorted(self.first_visible_s)
        return {
            "first_visible_p50_s": _pct(visible, 50),
            "first_visible_p90_s": _pct(visible, 90),
            "first_visible_max_s": visible[-1] if visible else None,
            "previews_painted": self.previews_painted,
            "navigation_started_p90_s": _pct(sorted(n[0] for n in self.navigation_s), 90),
            "html_first_byte_p90_s": _pct(sorted(n[1] for n in self.navigation_s), 90),
            "html_received_p90_s": _pct(sorted(n[2] for n in self.navigation_s), 90),
            "first_chart_p50_s": _pct(charts, 50),
            "first_chart_p90_s": _pct(charts, 90),
            "first_chart_max_s": charts[-1] if charts else None,
            "charts_drawn": len(charts),
            "filter_change_max_s": max(self.filter_change_s) if self.filter_change_s else None,
            "filter_change_p50_s": _pct(sorted(self.filter_change_s), 50),
        }


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    k = max(0, min(len(values) - 1, round(q / 100 * len(values) + 0.5) - 1))
    return values[k]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kernel_processes(server_pid: int):
    """The server's kernel processes (children running ipykernel), via the process table."""
    import psutil

    try:
        children = psutil.Process(server_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for child in children:
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.Error:
            pass
    return out


def _tree_sum(pid: int, measure) -> float:
    """``measure(process)`` summed over a process and all its descendants (0 once gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            total += measure(proc)
        except psutil.Error:
            pass
    return total


def memory_mb(server_pid: int) -> float:
    """Resident memory of the server and all its descendants, in MB."""
    return _tree_sum(server_pid, lambda proc: proc.memory_info().rss) / 1e6


@contextmanager
def served(
    *,
    data: Path,
    token: str,
    log_path: Path,
    args: list[str],
    timeout: float = 300.0,
    wait_for_pool: str | None = None,
    port: int | None = None,
):
    """``effortlens serve`` on 127.0.0.1 with ``token``; yields (base URL, process).

    With ``wait_for_pool`` (a notebook name), waits until that app's preheated kernels have
    rendered it. ``port`` defaults to a free one.
    """
    port = port or free_port()
    env = {**os.environ, "EFFORTLENS_TOKEN": token}
    env.pop("JUPYTER_PATH", None)  # the template must be found as installed
    cmd = [
        sys.executable,
        "-m",
        "effortlens_serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data",
        str(data),
        *args,
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=dies_with_this_process(),
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited {proc.returncode}:\n{log_path.read_text()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server not ready in {timeout} s:\n{log_path.read_text()}")
                try:
                    state = status(url, token)
                    if not wait_for_pool or _pool_ready(state, wait_for_pool):
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            yield url, proc
        finally:
            stop(proc)


def _pool_ready(state: dict, notebook: str) -> bool:
    ready, size = state["pools"].get(notebook, [0, 0])
    return ready >= size


def status(url: str, token: str) -> dict:
    request = urllib.request.Request(
        url + "/effortlens/api/status", headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


SHUTDOWN = "/voila/api/shutdown/"
_WATCHED: set[int] = set()


def _watch_beacons(context, figures: Figures) -> None:
    """Count the close beacons a browser context sends, and those that failed (once per context;
    a beacon's answer is never reported, its page being gone)."""
    if id(context) in _WATCHED:
        return
    _WATCHED.add(id(context))
    beacons = figures.beacons

    def sent(request):
        if SHUTDOWN in request.url:
            beacons["sent"] += 1

    def failed(request):
        if SHUTDOWN in request.url:
            beacons["failed"].append(str(request.failure)[:80])

    context.on("request", sent)
    context.on("requestfailed", failed)


async def _viewer(
    browser,
    url,
    token,
    notebook,
    start: asyncio.Event,
    timeout_s,
    shared=None,
    figures=None,
    ready: str = CHART,
):
    context = shared or await browser.new_context(viewport=VIEWPORT)
    if figures is not None:
        _watch_beacons(context, figures)
    page = await context.new_page()
    await start.wait()
    t0, t0_epoch = time.monotonic(), time.time()
    try:
        response = await page.goto(
            f"{url}/voila/render/{notebook}?token={token}",
            timeout=timeout_s * 1000,
            wait_until="commit",  # Voila streams the page; the chart is what counts
        )
        if response is not None and response.status == 503:
            return context, page, None, "busy"
        await page.wait_for_selector(ready, timeout=timeout_s * 1000)
        interactive = time.monotonic() - t0
        painted = await page.evaluate(_PREVIEW_PAINTED_JS, PREVIEW)
        preview = None if painted is None else max(0.0, painted / 1000 - t0_epoch)
        marks = await page.evaluate(_NAVIGATION_JS)
        html = None if marks is None else [round(m / 1000 - t0_epoch, 2) for m in marks]
        return context, page, (interactive, preview, html), None
    except Exception as err:  # noqa: BLE001 - any failure is a measured outcome
        text = ""
        try:
            text = (await page.inner_text("body"))[:200]
        except Exception:  # noqa: BLE001
            pass
        return context, page, None, f"{type(err).__name__}: {str(err)[:120]} | page: {text!r}"


async def _filter_change(page, timeout_s: float) -> float:
    """Pick another team in the filter bar; seconds until the KPI cards show the new numbers."""
    box = page.locator(".widget-dropdown").filter(has=page.locator("label", has_text="Team"))
    select = box.locator("select").first
    options = await select.locator("option").all_inner_texts()
    current = await select.evaluate("s => s.options[s.selectedIndex].text")
    choice = next(o for o in options if o != current and o != "(all)")
    before = await page.inner_text(".el-kpis")
    t0 = time.monotonic()
    await select.select_option(label=choice)
    await page.wait_for_function(
        "before => { const el = document.querySelector('.el-kpis');"
        " return el && el.innerText !== before; }",
        arg=before,
        timeout=timeout_s * 1000,
    )
    return time.monotonic() - t0


async def _warm_up(browser, url: str, token: str, figures: Figures, timeout_s: float):
    """One earlier visit in a profile the viewers then share: its HTTP and V8 code caches.

    The 20 browsers of a real team run on 20 machines; here they share the server's two cores,
    and a cold page costs Chromium about 5-9 CPU seconds of parsing and compiling Voila's
    6 MB of JavaScript. A returning viewer's browser has that cached.
    """
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    await page.goto(f"{url}/voila/render/{figures.notebook}?token={token}", wait_until="commit")
    await page.wait_for_selector(figures.ready, timeout=timeout_s * 1000)
    gone = asyncio.ensure_future(page.wait_for_event("close", timeout=60_000))
    await page.close(run_before_unload=True)
    await gone
    # its kernel goes back; wait until the pool is whole again before the rush
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = await asyncio.to_thread(status, url, token)
        if state["viewers"] == 0 and _pool_ready(state, figures.notebook):
            break
        await asyncio.sleep(1.0)
    return context


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process tree (live processes; children reaped count in it)."""

    def cpu(proc) -> float:
        t = proc.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    return _tree_sum(pid, cpu)


def browser_cpu_seconds() -> float:
    """CPU of the Chromium processes this script started (Playwright's driver's children)."""
    import psutil

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "chrom" in proc.name():
                t = proc.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total


async def _drive(url, token, figures: Figures, server_pid: int, *, page_timeout: float):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            shared = None
            if figures.browser_cache == "warm":
                shared = await _warm_up(browser, url, token, figures, page_timeout)
            start = asyncio.Event()
            tasks = [
                asyncio.create_task(
                    _viewer(
                        browser,
                        url,
                        token,
                        figures.notebook,
                        start,
                        page_timeout,
                        shared,
                        figures,
                        figures.ready,
                    )
                )
                for _ in range(figures.viewers)
            ]
            await asyncio.sleep(1.0)  # every context and page is open before the rush
            sampler = asyncio.create_task(_sample_peak(server_pid, figures))
            cpu0 = (browser_cpu_seconds(), _cpu_seconds(server_pid), time.monotonic())
            start.set()
            results = await asyncio.gather(*tasks)
            sampler.cancel()
            figures.rush_cpu_s = {
                "browsers": round(browser_cpu_seconds() - cpu0[0], 1),
                "server_and_kernels": round(_cpu_seconds(server_pid) - cpu0[1], 1),
                "wall": round(time.monotonic() - cpu0[2], 1),
            }
            figures.load_avg_after_rush = round(os.getloadavg()[0], 1)
            for _context, _page, seconds, failure in results:
                if failure == "busy":
                    figures.busy_pages += 1
                elif failure:
                    figures.failures.append(failure)
                else:
                    interactive, preview, html = seconds
                    if html is not None:
                        figures.navigation_s.append(html)
                    figures.first_chart_s.append(round(interactive, 2))
                    if preview is not None:
                        figures.previews_painted += 1
                    visible = interactive if preview is None else min(preview, interactive)
                    figures.first_visible_s.append(round(visible, 2))
            for _context, page, seconds, _failure in results:
                if seconds is None or not figures.filter_changes:
                    continue
                try:
                    figures.filter_change_s.append(round(await _filter_change(page, 30), 3))
                except Exception as err:  # noqa: BLE001
                    figures.failures.append(f"filter change: {type(err).__name__}")
            _sample(server_pid, figures)
            # Voila's close beacon goes out from the page's unload handlers. page.close() with
            # run_before_unload returns before the page has gone, and closing its context
            # cancels a beacon still in flight (a fixed 2 s lost the last page's beacon in a rush
            # of 20 sharing one context: its kernel went by culling): wait for every page to
            # go, then until the server has no viewer left (at most 30 s), as a real browser,
            # which stays open, would let the beacons arrive; then close the contexts.
            for _context, page, _s, _f in results:
                gone = asyncio.ensure_future(page.wait_for_event("close", timeout=60_000))
                await page.close(run_before_unload=True)
                try:
                    await gone
                except Exception as err:  # noqa: BLE001
                    figures.failures.append(f"page close: {type(err).__name__}")
            figures.pages_closed_at = time.monotonic()
            until = figures.pages_closed_at + 30
            while time.monotonic() < until:
                state = await asyncio.to_thread(status, url, token)
                if state["viewers"] == 0:
                    break
                await asyncio.sleep(0.5)
            for context in {id(r[0]): r[0] for r in results}.values():
                await context.close()
        finally:
            await browser.close()


async def _sample_peak(server_pid: int, figures: Figures) -> None:
    while True:
        _sample(server_pid, figures)
        await asyncio.sleep(1.0)


def _sample(server_pid: int, figures: Figures) -> None:
    figures.kernels_peak = max(figures.kernels_peak, len(kernel_processes(server_pid)))
    figures.rss_peak_mb = max(figures.rss_peak_mb, memory_mb(server_pid))


def run_load_test(
    *,
    viewers: int,
    notebook: str = "01_return_on_effort.ipynb",
    data: Path | None = None,
    server_args: list[str] | None = None,
    cull_idle: int = 120,
    page_timeout: float = 120.0,
    log_path: Path | None = None,
    back_to_pool_within: float | None = None,
    browser_cache: str = "cold",
    port: int | None = None,
    workbooks: Path | None = None,
    ready: str = CHART,
    filter_changes: bool = True,
) -> Figures:
    """Serve, rush ``viewers`` pages at once, change a filter in each, close them, wait.

    ``workbooks`` serves another folder of notebooks (``ready``: the selector that shows its
    page is drawn; ``filter_changes=False`` for a page without the filter bar).
    """
    data = data or sample_data()
    token = secrets.token_urlsafe(16)
    args = [
        "--cull-idle",
        str(cull_idle),
        "--cull-interval",
        "5",
        *(["--workbooks", str(workbooks)] if workbooks else []),
        *(server_args or []),
    ]
    figures = Figures(
        viewers=viewers,
        notebook=notebook,
        cpus=os.cpu_count() or 0,
        server_args=args,
        ready=ready,
        filter_changes=filter_changes,
        workbooks=str(workbooks or ""),
    )
    figures.cull_idle_s = cull_idle
    figures.browser_cache = browser_cache
    log_path = log_path or REPO / "test-artifacts" / f"load-test-{viewers}.log"
    t0 = time.monotonic()
    with served(
        data=data,
        token=token,
        log_path=log_path,
        args=args,
        timeout=600,
        wait_for_pool=notebook,
        port=port,
    ) as (url, proc):
        figures.startup_s = round(time.monotonic() - t0, 1)
        time.sleep(2.0)
        pool_kernels = status(url, token)["pool"]
        figures.kernels_before = len(kernel_processes(proc.pid))
        figures.rss_before_mb = round(memory_mb(proc.pid))
        figures.load_avg_before = round(os.getloadavg()[0], 1)
        asyncio.run(_drive(url, token, figures, proc.pid, page_timeout=page_timeout))
        closed = figures.pages_closed_at or time.monotonic()
        # culling time, culling rounds, pool refill (its delay, then a render)
        wait = back_to_pool_within or cull_idle + 5 * 3 + 60
        while time.monotonic() < closed + wait:
            state = status(url, token)
            if figures.viewers_gone_s is None and state["viewers"] == 0:
                figures.viewers_gone_s = round(time.monotonic() - closed, 1)
            settled = state["viewers"] == 0 and _pool_ready(state, notebook)
            if settled and len(kernel_processes(proc.pid)) <= pool_kernels:
                figures.back_to_pool_s = round(time.monotonic() - closed, 1)
                break
            time.sleep(1.0)
        time.sleep(2.0)
        figures.kernels_after = len(kernel_processes(proc.pid))
        figures.status_after = {
            k: v
            for k, v in status(url, token).items()
            if k in ("kernels", "viewers", "pool", "connections")
        }
        figures.rss_after_mb = round(memory_mb(proc.pid))
        figures.rss_peak_mb = round(figures.rss_peak_mb)
    return figures


def sample_data() -> Path:
    folder = REPO / "sample_data" / "generated" / "default"
    if not (folder / "reps.parquet").exists():
        subprocess.run(["make", "sample"], cwd=REPO, check=True)
    return folder


def verdict(figures: Figures, *, p90_target: float, filter_target: float) -> list[str]:
    """The targets missed (empty when all held)."""
    s = figures.summary()
    missed = []
    if figures.failures or figures.busy_pages or s["charts_drawn"] != figures.viewers:
        missed.append(
            f"{s['charts_drawn']}/{figures.viewers} first charts "
            f"({figures.busy_pages} busy, failures: {figures.failures[:3]})"
        )
    # the target is on the first chart a viewer sees (the static preview, or the interactive
    # chart if it came first); the interactive chart's own times are reported beside it
    if s["first_visible_p90_s"] is not None and s["first_visible_p90_s"] > p90_target:
        missed.append(f"first chart visible p90 {s['first_visible_p90_s']} s > {p90_target} s")
    if s["filter_change_max_s"] is not None and s["filter_change_max_s"] > filter_target:
        missed.append(f"slowest filter change {s['filter_change_max_s']} s > {filter_target} s")
    if figures.back_to_pool_s is None:
        missed.append(
            f"still {figures.kernels_after} kernels (pool {figures.kernels_before}) after "
            "the culling time"
        )
    return missed


def markdown(figures: Figures, missed: list[str]) -> str:
    s = figures.summary()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        SECTION.format(viewers=figures.viewers, cache=figures.browser_cache)
        + (f", plain page {figures.notebook}" if figures.workbooks else ""),
        "",
        f"`bench/load_test.py --viewers {figures.viewers}`, {when}, {figures.cpus} cores, "
        f"Chromium on the same machine ({figures.browser_cache} browser cache: "
        + (
            "each viewer a fresh profile, as on a first visit"
            if figures.browser_cache == "cold"
            else "the viewers share a profile that opened the app once before, as on a return visit"
        )
        + (
            f"); app `{figures.notebook}` on the bundled sample; "
            if not figures.workbooks
            else f"); plain Voila page `{figures.notebook}` (drawn: `{figures.ready}`); "
        )
        + f"server options `{' '.join(figures.server_args)}`. Load average (1 min) "
        f"{figures.load_avg_before} before the rush, {figures.load_avg_after_rush} after it "
        "(the machine is shared: other jobs count too).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| viewers opening the app at the same moment | {figures.viewers} |",
        f"| first interactive chart drawn | {s['charts_drawn']} of {figures.viewers} |",
        f"| first chart visible (static preview, or interactive if first) p50 / p90 / max | "
        f"{s['first_visible_p50_s']} / {s['first_visible_p90_s']} / {s['first_visible_max_s']} s |",
        f"| first interactive chart (drawn by Vega) p50 / p90 / max | {s['first_chart_p50_s']} / "
        f"{s['first_chart_p90_s']} / {s['first_chart_max_s']} s |",
        f"| pages whose static preview was painted | {figures.previews_painted} of "
        f"{figures.viewers} |",
        f"| navigation started / HTML's first byte / whole HTML received, p90 | "
        f"{s['navigation_started_p90_s']} / {s['html_first_byte_p90_s']} / "
        f"{s['html_received_p90_s']} s |",
        f"| filter change (Team), median / slowest | {s['filter_change_p50_s']} / "
        f"{s['filter_change_max_s']} s |",
        f"| kernels: preheated pool / peak / after closing | {figures.kernels_before} / "
        f"{figures.kernels_peak} / {figures.kernels_after} |",
        f"| memory (server + kernels, RSS): pool / peak / after | {figures.rss_before_mb:.0f} / "
        f"{figures.rss_peak_mb:.0f} / {figures.rss_after_mb:.0f} MB |",
        f"| CPU from the rush to the last first interactive chart: browsers / server and kernels | "
        f"{figures.rush_cpu_s.get('browsers')} / {figures.rush_cpu_s.get('server_and_kernels')} s "
        f"(in {figures.rush_cpu_s.get('wall')} s on {figures.cpus} cores) |",
        f"| close beacons sent by the pages / failed in the browser | "
        f"{figures.beacons['sent']} / {len(figures.beacons['failed'])} |",
        f"| viewer kernels shut down after the pages closed | {figures.viewers_gone_s} s |",
        f"| back to the pool (refilled) after the pages closed | "
        f"{figures.back_to_pool_s if figures.back_to_pool_s is not None else 'no'} s "
        f"(culling after {figures.cull_idle_s} s idle) |",
        "",
        "All targets held." if not missed else "Targets missed: " + "; ".join(missed) + ".",
        "",
    ]
    return "\n".join(lines)


def write_results(text: str, path: Path = RESULTS) -> None:
    """Replace this benchmark's section of RESULTS.md for as many viewers (or append it)."""
    old = path.read_text("utf-8") if path.exists() else "# EffortLens benchmark results\n"
    title = text.splitlines()[0]
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _m: text + "\n", old) if pattern.search(old) else None
    if new is None:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new.rstrip("\n") + "\n", "utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--viewers", type=int, default=20)
    p.add_argument("--notebook", default="01_return_on_effort.ipynb")
    p.add_argument("--data", type=Path, help="data folder (default: the bundled sample)")
    p.add_argument("--cull-idle", type=int, default=120, help="server culling time (s)")
    p.add_argument("--p90-target", type=float, default=20.0)
    p.add_argument("--filter-target", type=float, default=1.0)
    p.add_argument("--page-timeout", type=float, default=120.0)
    p.add_argument("--deadline", type=float, default=900.0, help="abort the whole run after (s)")
    p.add_argument(
        "--browser-cache",
        choices=["cold", "warm"],
        default="cold",
        help="cold: each viewer a fresh browser profile; warm: one shared profile, visited once",
    )
    p.add_argument("--port", type=int, help="the server's port (default: a free one)")
    p.add_argument(
        "--back-to-pool-within",
        type=float,
        help="seconds to wait, after the pages closed, for the pool to be whole again "
        "(default: the culling time + 75)",
    )
    p.add_argument(
        "--plain",
        choices=sorted(PLAIN_PAGES),
        help="rush a plain Voila page instead of an app (label: one Label widget; chart: one "
        "JupyterChart as the apps draw it), served by the same server: what any page costs here",
    )
    p.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    p.add_argument("server_args", nargs="*", help="more `effortlens serve` options, after --")
    args = p.parse_args(argv)
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("deadline")))
    signal.alarm(int(args.deadline))
    plain = {}
    if args.plain:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="effortlens-plain-"))
        folder, notebook, ready = plain_workbooks(args.plain, folder)
        plain = {"workbooks": folder, "ready": ready, "filter_changes": False}
        args.notebook = notebook  # its pool: --pool-app plain_<kind>.ipynb=N after --
    figures = run_load_test(
        viewers=args.viewers,
        notebook=args.notebook,
        data=args.data,
        server_args=args.server_args,
        cull_idle=args.cull_idle,
        page_timeout=args.page_timeout,
        browser_cache=args.browser_cache,
        port=args.port,
        back_to_pool_within=args.back_to_pool_within,
        **plain,
    )
    signal.alarm(0)
    missed = verdict(figures, p90_target=args.p90_target, filter_target=args.filter_target)
    print(json.dumps({**asdict(figures), **figures.summary()}, indent=2))
    text = markdown(figures, missed)
    print(text)
    if args.write_results:
        write_results(text)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
