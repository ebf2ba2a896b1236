"""The dashboard screenshots in docs/images/, made from real small trainings.

Starts `fadewatch server` on a free port with a scratch database, trains the bundled
digit-sum task by running `fadewatch demo` against it (psr, grpo, nsr and fade through
the real hook), adds a longer synthetic GRPO-style run whose entropy collapses (with the
rollouts the hook keeps of synthetic math problems: bench/_rollout_batches.py), lets the
alert engine raise what it raises (delivered to a local webhook receiver), then shoots
each page in headless Chromium, in the dark and the light theme.

    .venv/bin/python scripts/screenshots.py            # writes docs/images/*.png
    .venv/bin/python scripts/screenshots.py --long-steps 1000 --out shots/
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from _servers import free_port  # noqa: E402
from streams import RunShape, records  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PROJECT = "demo"  # the project `fadewatch demo` logs to


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def start_server(data_dir: Path, port: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "FADEWATCH_DIR": str(data_dir), "FADEWATCH_ALERT_ALLOW_LOOPBACK_TARGETS": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "fadewatch.cli", "server", "--port", str(port),
                             "--log-level", "warning"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start")


def train_demo_runs(url: str, port: int, data_dir: Path) -> dict[str, int]:
    """The default `fadewatch demo` (psr, grpo, nsr, fade), run against this server; ids by estimator."""
    subprocess.run([sys.executable, "-m", "fadewatch.cli", "demo", "--port", str(port), "--dir", str(data_dir),
                    "--exit-when-done"], check=True, env={**os.environ, "FADEWATCH_DIR": str(data_dir)})
    ids = {}
    with httpx.Client(base_url=f"{url}/api/v1") as api:
        for r in api.get("/runs", params={"project": PROJECT}).json()["runs"]:
            ids[r["name"].split("-seed", 1)[0]] = r["id"]
    return ids


def synthetic_run(url: str, steps: int) -> int:
    """A longer GRPO-style run whose entropy collapses late, still running."""
    with httpx.Client(base_url=f"{url}/api/v1", timeout=60) as api:
        run_id = api.post("/runs", json={"project": "math-grpo", "name": "qwen-7b-grpo-lr1e-6",
                                         "config": {"model": "Qwen2.5-7B", "estimator": "grpo", "lr": 1e-6,
                                                    "group_size": 8, "kl_coef": 0.0}}).json()["id"]
        shape = RunShape(steps=steps, collapse=True, difficulty_histograms=True, seed=7, rollout_bytes=65_536)
        for batch in records(shape, batch_size=250):
            api.post(f"/runs/{run_id}/steps", json={"records": batch}).raise_for_status()
    return run_id


def add_channel(url: str, receiver: str) -> None:
    secret = "whsec_" + base64.b64encode(b"screenshots-signing-key-32-bytes").decode()
    for project in (PROJECT, "math-grpo"):
        httpx.post(f"{url}/api/v1/projects/{project}/channels", json={
            "name": "rl-oncall", "kind": "webhook", "url": receiver, "secret": secret}).raise_for_status()


def shoot(url: str, ids: dict[str, int], long_run: int, long_steps: int, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    grpo, psr, nsr, fade = ids["grpo"], ids["psr"], ids["nsr"], ids["fade"]
    demo_metrics = "entropy/mean,pass@1,sign/balance,diversity/distinct_frac"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for theme in ("dark", "light"):
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(url)
            if theme == "light":
                page.click("#fw-theme-toggle")
            page.wait_for_selector(f"#fw-root.theme-{theme}")
            page.wait_for_selector("#runs-table-el")
            page.wait_for_timeout(1500)
            page.screenshot(path=out / f"runs-{theme}.png")

            page.goto(f"{url}/runs/{psr if theme == 'dark' else long_run}")
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length > 15 && "
                                   "!document.body.innerText.includes('loading')")
            page.wait_for_timeout(2000)
            page.screenshot(path=out / f"run-{theme}.png", clip={"x": 0, "y": 0, "width": 1440, "height": 2200},
                            full_page=True)

            page.goto(f"{url}/compare?runs={psr},{grpo},{nsr},{fade}&metrics={demo_metrics}")
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 4")
            page.wait_for_timeout(2000)
            page.screenshot(path=out / f"compare-{theme}.png", full_page=True)
            if theme == "dark":  # docs/demo.md shows these two
                page.screenshot(path=out / "demo-compare.png", full_page=True)
                page.goto(f"{url}/runs/{psr}")
                page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length > 15 && "
                                       "!document.body.innerText.includes('loading')")
                page.wait_for_timeout(2000)
                page.screenshot(path=out / "demo-run.png", full_page=True,
                                clip={"x": 0, "y": 0, "width": 1440, "height": 2200})

            # The rollout inspector: the long run's groups at a middle step, and the demo's
            # digit strings shaded by token entropy (FADE's run, early, while entropy is high).
            page.goto(f"{url}/runs/{long_run}/rollouts?step={long_steps // 2}")
            page.wait_for_selector(".fw-group-card")
            page.wait_for_timeout(1500)
            page.screenshot(path=out / f"rollouts-{theme}.png")
            if theme == "dark":
                page.goto(f"{url}/runs/{fade}/rollouts?step=40")
                page.wait_for_selector(".fw-group-card .fw-token")
                page.wait_for_timeout(1000)
                page.screenshot(path=out / "demo-rollouts.png")

            page.goto(f"{url}/alerts?project=math-grpo")
            page.wait_for_selector("#alerts-table-el")
            page.locator("#alerts-table-el tr", has_text="entropy_collapse").locator("text=Details").click()
            page.wait_for_selector("#alerts-detail-card")
            page.wait_for_timeout(1500)
            page.screenshot(path=out / f"alerts-{theme}.png", full_page=True)
            page.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-steps", type=int, default=3000, help="steps of the synthetic run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc, url = start_server(Path(tmp), port)
        try:
            add_channel(url, f"http://127.0.0.1:{sink.server_address[1]}/hook")
            ids = train_demo_runs(url, port, Path(tmp) / "demo")
            long_run = synthetic_run(url, args.long_steps)
            shoot(url, ids, long_run, args.long_steps, args.out)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            sink.shutdown()
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    main()
