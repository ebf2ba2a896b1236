"""The alerts page: alerts with their events and delivery log; rules, channels, silences managed there."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.support.dashboard import make_run, post_steps, step_record
from tests.support.polling import wait_until

PROJECT = "alerts-page"


class Receiver:
    """A webhook endpoint on a free loopback port that keeps what it is sent."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def api(dashboard_server):
    with httpx.Client(base_url=f"{dashboard_server.url}/api/v1", timeout=30) as client:
        yield client


def _tab(page, name: str) -> None:
    page.click(f".fw-tab >> text={name}")


def test_alerts_page_lists_alerts_and_manages_rules_channels_and_silences(page, api, dashboard_server, receiver):
    run_id = make_run(api, "collapsing-run", project=PROJECT)
    rule = {"detector": "threshold", "metric": "loss", "op": ">", "value": 10, "severity": "critical"}
    assert api.put(f"/projects/{PROJECT}/rules/loss_exploded", json=rule).status_code in (200, 201)
    post_steps(api, run_id, [step_record(s) for s in range(5)] + [step_record(5, loss=99.0)])

    page.goto(f"{dashboard_server.url}/alerts?project={PROJECT}")
    row = page.locator("#alerts-table-el tr", has_text="loss_exploded")
    row.wait_for()
    assert "collapsing-run" in row.inner_text() and "critical" in row.inner_text() and "firing" in row.inner_text()
    row.locator("text=Details").click()
    page.wait_for_selector("#alerts-detail-card >> text=Events and delivery log")
    events = page.inner_text("#alerts-events-el")
    assert "firing" in events and "5" in events
    # The diagnosis card its messages carry, and its episodes with their first firing step.
    card = page.inner_text("#alerts-diagnosis")
    for label in ("Regime", "Tripped by", "Forecast", "Sign axis"):
        assert label in card
    assert "loss 99" in card and "balanced" in card
    assert "#1" in page.inner_text("#alerts-episodes-el") and "firing" in page.inner_text("#alerts-episodes-el")

    # Channels: add a signed webhook, send it a test message.
    _tab(page, "Channels")
    page.fill("#channel-name", "team-hook")
    page.click("#channel-kind")
    page.get_by_role("option", name="webhook").click()
    page.fill("#channel-url", receiver.url)
    page.fill("#channel-secret", "whsec_" + base64.b64encode(b"k" * 32).decode())
    page.click("#channel-save")
    page.wait_for_selector("#alerts-msg >> text=Channel team-hook added.")
    channel_row = page.locator("#channels-table-el tr", has_text="team-hook")
    channel_row.wait_for()
    channel_row.locator("text=Send test").click()
    page.wait_for_selector("#alerts-msg >> text=Test message delivered")
    wait_until(lambda: len(receiver.received) >= 1, what="the test message at the receiver")

    # Rules: add a threshold rule from the form; it fires, and its message reaches the channel.
    _tab(page, "Rules")
    page.fill("#rule-name", "kl_high")
    page.fill("#rule-metric", "kl")
    page.fill("#rule-value", "0.5")
    page.click("#rule-save")
    page.wait_for_selector("#alerts-msg >> text=Rule kl_high saved.")
    rule_row = page.locator("#rules-table-el tr", has_text="kl_high")
    rule_row.wait_for()
    assert "kl > 0.5" in rule_row.inner_text() and "api" in rule_row.inner_text()
    post_steps(api, run_id, [step_record(6, kl=2.0)])
    wait_until(lambda: any(m.get("rule") == "kl_high" or "kl_high" in json.dumps(m) for m in receiver.received),
               timeout=20, what="the kl_high firing message at the receiver")
    rule_row.locator("text=Disable").click()
    page.wait_for_selector("#alerts-msg >> text=Rule kl_high disabled.")
    page.locator("#rules-table-el tr", has_text="kl_high").locator("text=disabled").wait_for()
    assert api.get(f"/projects/{PROJECT}/rules/kl_high").json()["enabled"] is False

    # Its alert shows the delivery to the channel.
    _tab(page, "Alerts")
    page.locator("#alerts-table-el tr", has_text="kl_high").locator("text=Details").click()
    page.wait_for_selector("#alerts-detail-card >> text=team-hook")
    page.wait_for_selector("#alerts-events-el >> text=delivered")

    # Silences: add one, then expire it.
    _tab(page, "Silences")
    page.fill("#silence-matchers", "rule=heavy_tails, run~collapsing-*")
    page.fill("#silence-comment", "known noise")
    page.click("#silence-save")
    page.wait_for_selector("#alerts-msg >> text=Silence added.")
    silence_row = page.locator("#silences-table-el tr", has_text="known noise")
    silence_row.wait_for()
    assert "rule=heavy_tails" in silence_row.inner_text() and "run~collapsing-*" in silence_row.inner_text()
    silence_row.locator("text=Expire now").click()
    page.wait_for_selector("#alerts-msg >> text=Silence expired.")
    page.wait_for_selector("#silences-table-el", state="detached")
    assert api.get(f"/projects/{PROJECT}/silences").json()["silences"] == []


def test_alerts_page_explains_refused_input(page, api, dashboard_server):
    make_run(api, "some-run", project="alerts-refused")
    page.goto(f"{dashboard_server.url}/alerts?project=alerts-refused&tab=channels")
    page.fill("#channel-name", "bad")
    page.fill("#channel-url", "http://10.1.2.3/hook")
    page.click("#channel-save")
    page.wait_for_selector("#alerts-msg .fw-error >> text=The server refused")
    _tab(page, "Silences")
    page.fill("#silence-matchers", "no operator here")
    page.click("#silence-save")
    page.wait_for_selector("#alerts-msg >> text=cannot read 'no operator here'")
