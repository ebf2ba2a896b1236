"""The dashboard's pages in a real browser, cold and warm, and the bytes of a live refresh.

Workload (bench/_dashboard_data.py): PostgreSQL holding 200 runs × 1,000 steps, one run of
100,000 steps and 1,000 runs of 10 steps, every record one the real hook wrote, posted over
the HTTP API to one `fadewatch server`. Each page is opened in headless Chromium
(1400 × 900) and timed from navigation to its first screen drawn:

    runs page        the table's rows with their trend images
    run page         every chart in the first screen holding its data (none still "loading")
    compare          every chart in the first screen holding all the compared runs

"cold" is the first load in a fresh browser context (empty cache: Plotly's script is
fetched and compiled); "warm" the median of the next loads in that context, each begun
once the one before has finished loading (no request for 500 ms), as a reader's next page
would be. Then a feeder posts one step a second to the 1,000-step run that the page shows,
and every byte the page moves is counted (requests and answers, compressed, headers included) per refresh.

    .venv/bin/python bench/dashboard.py                       # builds a scratch database, drops it after
    .venv/bin/python bench/dashboard.py --keep-db fw_dash     # builds it once, reuses it on the next runs

Needs Debian's chromium at /usr/bin/chromium (`make install` puts it there).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _dashboard_data import EXPECTED_RUNS, build, find_runs, held_runs, hook_records  # noqa: E402
from _servers import DEFAULT_PG, fadewatch_server, scratch_postgres  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 900}
COMPARED = 16

# The charts of the first screen hold their data; nothing there still says "loading".
FIRST_SCREEN_CHARTS = """(least) => {
  const shown = [...document.querySelectorAll('.js-plotly-plot')]
    .filter(g => g.getBoundingClientRect().top < window.innerHeight);
  if (shown.length < least) return false;
  return shown.every(g => g.data && g.data.length && g._fullLayout &&
    !((g.layout.annotations || []).some(a => (a.text || '').includes('loading'))));
}"""
RUNS_TABLE = """() => {
  const rows = document.querySelectorAll('#runs-table-el tbody tr');
  if (rows.length < 50) return false;
  return [...document.querySelectorAll('#runs-table-el img')].every(i => i.complete);
}"""
COMPARE_CHARTS = """(runs) => {
  const shown = [...document.querySelectorAll('#compare-graphs .js-plotly-plot')]
    .filter(g => g.getBoundingClientRect().top < window.innerHeight);
  return shown.length >= 2 && shown.every(g => g.data && g.data.filter(t => (t.x || []).length).length >= runs);
}"""


@contextlib.contextmanager
def database(keep: str | None):
    """A scratch database dropped afterwards, or the kept one named `keep` (created if missing)."""
    if not keep:
        with scratch_postgres() as url:
            yield url
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(os.environ.get("FADEWATCH_TEST_DATABASE_URL", DEFAULT_PG))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": keep}):
            conn.execute(text(f'CREATE DATABASE "{keep}"'))
    admin.dispose()
    yield admin_url.set(database=keep).render_as_string(hide_password=False)


def time_page(browser, url: str, check: str, arg, loads: int) -> tuple[float, list[float]]:
    """Seconds to the first screen: the cold load in a fresh context, then `loads` warm ones."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    times = []
    for _ in range(loads + 1):
        page.goto("about:blank")
        page.goto(url, wait_until="commit")
        page.wait_for_function(check, arg=arg, polling="raf", timeout=120_000)
        times.append(page.evaluate("performance.now()") / 1000)
        # The rest of the page loads after its first screen: the next load starts once that is
        # in (no request for 500 ms), so it does not share the server with this one's tail.
        page.wait_for_load_state("networkidle", timeout=60_000)
    context.close()
    return times[0], times[1:]


class Traffic:
    """Bytes the page exchanges with the dashboard, and its refresh ticks, from DevTools events."""

    def __init__(self, page, clock: str):
        self.sent = self.received = 0
        self.ticks: set[int] = set()
        self.clock = clock
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
            if f'"{self.clock}.n_intervals"' in body:
                try:
                    tick = next(i["value"] for i in orjson.loads(body)["inputs"] if i.get("id") == self.clock)
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


def feed(url: str, run_id: int, template: dict, first_step: int, stop: threading.Event) -> int:
    """One new step a second, like a training loop logging every step; returns the last step."""
    step = first_step
    with httpx.Client(base_url=f"{url}/api/v1", timeout=30) as api:
        while not stop.is_set():
            step += 1
            api.post(f"/runs/{run_id}/steps", json={"records": [{**template, "step": step, "time": time.time()}]}
                     ).raise_for_status()
            stop.wait(1.0)
    return step


def live_refresh(browser, url: str, run_id: int, last_step: int, template: dict, seconds: float) -> str:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    traffic = Traffic(page, "run-series-interval")
    page.goto(f"{url}/runs/{run_id}")
    page.wait_for_function(FIRST_SCREEN_CHARTS, arg=3, polling="raf", timeout=120_000)
    page.wait_for_timeout(3000)  # the first full loads of every live section are in
    traffic.reset()
    stop = threading.Event()
    result: dict = {}
    feeder = threading.Thread(target=lambda: result.setdefault("last", feed(url, run_id, template, last_step, stop)))
    feeder.start()
    page.wait_for_timeout(seconds * 1000)
    stop.set()
    feeder.join()
    page.wait_for_function("s => (document.getElementById('run-meta') || {}).textContent.includes(s)",
                           arg=f"step {result['last']:,}", timeout=30_000)
    ticks = max(len(traffic.ticks), 1)
    total = traffic.sent + traffic.received
    context.close()
    return (f"{total / ticks / 1000:.1f} KB per refresh ({traffic.received / ticks / 1000:.1f} KB received, "
            f"{traffic.sent / ticks / 1000:.1f} KB sent; {ticks} refreshes in {seconds:.0f} s, 1 new step/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep-db", metavar="NAME", help="build the dataset into this database once and keep it")
    parser.add_argument("--loads", type=int, default=5, help="warm loads to time after the cold one")
    parser.add_argument("--live-seconds", type=float, default=30.0)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, database(args.keep_db) as db_url, \
            fadewatch_server(db_url, Path(tmp)) as url:
        held = held_runs(url)
        if held == 0:
            seconds = build(url, Path(tmp))
            print(f"dataset: {EXPECTED_RUNS:,} runs posted in {seconds:.0f} s")
        elif held != EXPECTED_RUNS:
            raise SystemExit(f"the database holds {held} runs, not the benchmark's {EXPECTED_RUNS}: drop it")
        runs = find_runs(url)
        long_id, fleet = runs["long"][0], runs["fleet"]
        pages = [
            ("runs page (1,201 runs)", f"{url}/", RUNS_TABLE, None),
            ("run page, 1,000 steps", f"{url}/runs/{fleet[0]}", FIRST_SCREEN_CHARTS, 3),
            ("run page, 100,000 steps", f"{url}/runs/{long_id}", FIRST_SCREEN_CHARTS, 3),
            (f"compare of {COMPARED} runs", f"{url}/compare?runs={','.join(map(str, fleet[:COMPARED]))}",
             COMPARE_CHARTS, COMPARED),
        ]
        rows = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for name, page_url, check, arg in pages:
                cold, warm = time_page(browser, page_url, check, arg, args.loads)
                rows.append((name, cold, warm))
                print(f"  {name}: cold {cold:.2f} s, warm {statistics.median(warm):.2f} s", flush=True)
            template = hook_records(1, Path(tmp) / "live")[0]
            last = httpx.get(f"{url}/api/v1/runs/{fleet[3]}", timeout=30).json()["last_step"]
            live = live_refresh(browser, url, fleet[3], last, template, args.live_seconds)
            browser.close()
        print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; warm: median of {args.loads}\n")
        print("| page | warm | cold | warm loads (min–max) |\n|---|---|---|---|")
        for name, cold, warm in rows:
            print(f"| {name} | {statistics.median(warm):.2f} s | {cold:.2f} s | {min(warm):.2f}–{max(warm):.2f} s |")
        print(f"\nlive refresh of a run page: {live}")


if __name__ == "__main__":
    main()
