"""The run page of a long run in a real browser: time to first complete render, bytes per refresh.

Workload: one run of 100,000 steps (43 scalars, 2 histograms of 80 and 64 bins per step,
2 sampled completions), ingested over the HTTP API, then its page opened in headless
Chromium. "Complete" means every chart on the page holds its data (or its final "not
logged" state): nothing still says "loading". Then a feeder posts one new step a second,
as a training loop does, and every byte the page moves per refresh is counted (requests
and answers, compressed, headers included).

    .venv/bin/python bench/dashboard.py                        # SQLite, 100,000 steps
    .venv/bin/python bench/dashboard.py --db postgresql --steps 20000 --loads 3

Needs Debian's chromium at /usr/bin/chromium (`make install` puts it there).
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _servers import fadewatch_server, scratch_postgres  # noqa: E402
from streams import RunShape, records  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Every chart drawn, none of them still showing the placeholder of a page being loaded.
COMPLETE = """() => {
  const graphs = [...document.querySelectorAll('.js-plotly-plot')];
  if (graphs.length < 15 || !document.querySelector('#run-samples table, #run-samples p')) return false;
  return graphs.every(g => g.data && !((g.layout.annotations || []).some(a => (a.text || '').includes('loading'))));
}"""


def ingest(url: str, steps: int) -> tuple[int, float]:
    with httpx.Client(base_url=f"{url}/api/v1", timeout=300) as api:
        run_id = api.post("/runs", json={"project": "bench", "name": f"long-{steps}",
                                         "config": {"steps": steps, "estimator": "grpo"}}).json()["id"]
        started = time.perf_counter()
        for batch in records(RunShape(steps=steps), batch_size=2000):
            body = gzip.compress(orjson.dumps({"records": batch}), 1)
            r = api.post(f"/runs/{run_id}/steps", content=body,
                         headers={"content-type": "application/json", "content-encoding": "gzip"})
            r.raise_for_status()
        return run_id, time.perf_counter() - started


def server_cpu_seconds(url: str) -> float:
    """CPU time used so far by the process listening on the server's port (Linux /proc)."""
    port = httpx.URL(url).port
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd).strip("socket:[]") in inodes for fd in (proc / "fd").iterdir()):
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return float("nan")


def render_times(page, url: str, loads: int) -> tuple[float, list[float], list[float], list[float]]:
    """Seconds from navigation to a complete page: the first (cold cache) load, then warm ones;
    with the CPU seconds the browser's page and the server spent on each warm load."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    times, browser_cpu, server_cpu = [], [], []
    for i in range(loads + 1):
        page.goto("about:blank")
        before = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        served = server_cpu_seconds(url)
        page.goto(url, wait_until="commit")
        page.wait_for_function(COMPLETE, polling="raf", timeout=120_000)
        times.append(page.evaluate("performance.now()") / 1000)
        after = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        if i:
            browser_cpu.append(after["TaskDuration"] - before.get("TaskDuration", 0.0))
            server_cpu.append(server_cpu_seconds(url) - served)
    return times[0], times[1:], browser_cpu, server_cpu


class Traffic:
    """Bytes the page exchanges with the dashboard, and its refresh ticks, from DevTools events."""

    def __init__(self, page):
        self.sent = self.received = 0
        self.ticks: set[int] = set()
        self.lock = threading.Lock()
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.on("Network.requestWillBeSent", self._request)
        cdp.on("Network.loadingFinished", self._finished)

    def _request(self, event):
        req = event["request"]
        body = req.get("postData") or ""
        with self.lock:
            self.sent += len(body.encode()) + sum(len(k) + len(v) + 4 for k, v in req.get("headers", {}).items())
            if '"run-interval.n_intervals"' in body and '"changedPropIds"' in body:
                try:
                    inputs = orjson.loads(body)["inputs"]
                    tick = next(i["value"] for i in inputs if i.get("id") == "run-interval")
                    self.ticks.add(int(tick))
                except (ValueError, KeyError, StopIteration, TypeError):
                    pass

    def _finished(self, event):
        with self.lock:
            self.received += int(event.get("encodedDataLength", 0))

    def reset(self):
        with self.lock:
            self.sent = self.received = 0
            self.ticks = set()


def feed(url: str, run_id: int, first_step: int, seconds: float, stop: threading.Event) -> int:
    """One new step a second, like a training loop logging every step; returns the last step."""
    rng_shape = RunShape(steps=first_step + int(seconds) + 10)
    step = first_step
    with httpx.Client(base_url=f"{url}/api/v1", timeout=30) as api:
        for batch in records(rng_shape, batch_size=1, start=first_step):
            if stop.is_set():
                break
            api.post(f"/runs/{run_id}/steps", json={"records": batch}).raise_for_status()
            step = batch[0]["step"]
            stop.wait(1.0)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--loads", type=int, default=5, help="warm page loads to time after the cold one")
    parser.add_argument("--live-seconds", type=float, default=30.0)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, \
            (scratch_postgres() if args.db == "postgresql" else nullcontext(f"sqlite:///{tmp}/bench.db")) as db_url, \
            fadewatch_server(db_url, Path(tmp)) as url:
        run_id, seconds = ingest(url, args.steps)
        print(f"ingest: {args.steps:,} steps with 2 histograms each in {seconds:.1f} s "
              f"({args.steps / seconds:,.0f} steps/s) on {args.db}")
        page_url = f"{url}/runs/{run_id}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            cold, warm, browser_cpu, server_cpu = render_times(page, page_url, args.loads)
            print(f"run page, first complete render: cold cache {cold:.2f} s; warm cache median "
                  f"{statistics.median(warm):.2f} s (min {min(warm):.2f}, max {max(warm):.2f}, n={len(warm)}); "
                  f"CPU per warm load: page {statistics.median(browser_cpu):.2f} s, "
                  f"server {statistics.median(server_cpu):.2f} s; load average {os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} cores")

            traffic = Traffic(page)
            page.goto(page_url)
            page.wait_for_function(COMPLETE, polling="raf", timeout=120_000)
            traffic.reset()
            stop = threading.Event()
            result: dict = {}
            feeder = threading.Thread(target=lambda: result.setdefault(
                "last", feed(url, run_id, args.steps, args.live_seconds, stop)))
            feeder.start()
            page.wait_for_timeout(args.live_seconds * 1000)
            stop.set()
            feeder.join()
            last = result["last"]
            page.wait_for_function(
                "s => (document.getElementById('run-meta') || {}).textContent.includes(s)",
                arg=f"step {last:,}", timeout=30_000)
            ticks = max(len(traffic.ticks), 1)
            total = traffic.sent + traffic.received
            print(f"live refresh: {ticks} refreshes in {args.live_seconds:.0f} s, new steps up to {last:,} shown; "
                  f"{total / ticks / 1000:.1f} KB per refresh ({traffic.received / ticks / 1000:.1f} KB received, "
                  f"{traffic.sent / ticks / 1000:.1f} KB sent)")
            browser.close()


if __name__ == "__main__":
    main()
