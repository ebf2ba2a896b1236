"""Targets are checked on the address they resolve to at the moment of sending, and the request
goes to that very address: a name that turns private between save and send is refused."""

from __future__ import annotations

import httpx
import pytest

from fadewatch.server.alerts.delivery.sender import send
from fadewatch.server.alerts.delivery.ssrf import TargetRefused, address_class, resolve_target
from fadewatch.server.settings import ServerSettings
from tests.support.alerting import new_run, new_secret, send_steps, standard_webhooks_valid, steps_of
from tests.support.polling import wait_until
from tests.support.receiver import Receiver


@pytest.mark.parametrize("address, kind", [
    ("8.8.8.8", "public"), ("2606:4700:4700::1111", "public"), ("127.0.0.1", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("10.0.0.1", "private"), ("172.16.5.4", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "private"), ("fe80::1", "private"), ("fc00::1", "private"),
    ("100.64.0.1", "private"), ("0.0.0.0", "private"), ("224.0.0.1", "private"), ("64:ff9b::a00:1", "private"),
    ("2002:c0a8:0101::1", "private"), ("::7f00:1", "loopback"), ("::a00:1", "private"), ("::", "private"),
    ("::ffff:0:a00:1", "private"), ("::ffff:a9fe:a9fe", "private"), ("64:ff9b:1::a00:1", "private"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fff6", "private"), ("fec0::1", "private"), ("fe80::1%eth0", "private"),
    ("2001:db8::1", "private"), ("3fff::1", "private"), ("5f00::1", "private"), ("192.0.0.8", "private"),
    ("198.18.0.1", "private"), ("240.0.0.1", "private"), ("255.255.255.255", "private"),
])
def test_address_classes(address, kind):
    assert address_class(address) == kind


def test_a_name_is_refused_if_any_of_its_addresses_is_private():
    def resolver(host, port):
        return ["93.184.216.34", "10.0.0.7"]

    with pytest.raises(TargetRefused, match="10.0.0.7, a private address"):
        resolve_target("https://hooks.example.test/x", resolver=resolver)
    target, address = resolve_target("https://hooks.example.test/x", resolver=lambda h, p: ["93.184.216.34"])
    assert address == "93.184.216.34" and target.port == 443


@pytest.mark.parametrize("host", [
    "localhost", "127.1", "2130706433", "0x7f000001", "017700000001", "0", "[::]", "[::ffff:127.0.0.1]",
    "[fe80::1%25eth0]",
])
def test_other_spellings_of_inside_addresses_resolve_inside_and_are_refused(host):
    # The system's own resolver, as in production: these all reach this host or its network.
    with pytest.raises(TargetRefused, match="(loopback|private) address"):
        resolve_target(f"http://{host}:8080/hook")


def test_redirects_are_never_followed(alert_api):
    """A public receiver could answer 302 to an inside address: neither the test button nor the
    delivery worker follows it, so the inside address never sees a request."""
    with Receiver() as inside:
        redirect = [(302, {"Location": f"{inside.url}/stolen"})] * 5
        with Receiver(script=redirect) as outside:
            channel = alert_api.post("/projects/r/channels", json={
                "name": "redirecting", "kind": "webhook", "url": f"{outside.url}/in", "secret": new_secret()}).json()
            tried = alert_api.post(f"/projects/r/channels/{channel['id']}/test").json()
            assert tried["outcome"] == "failed" and tried["status_code"] == 302
            run = new_run(alert_api, "r", "redirected")
            send_steps(alert_api, run, steps_of({"adv/mean": [float("inf")]}))
            wait_until(lambda: len(outside.received) >= 2, timeout=20, what="the worker's attempt")
            (alert,) = alert_api.get("/alerts", params={"project": "r"}).json()["alerts"]
            wait_until(lambda: "HTTP 302" in alert_api.get(f"/alerts/{alert['id']}").text, timeout=20,
                       what="the redirect in the delivery log")
        assert inside.received == []


def test_delivery_checks_the_address_at_send_time_and_connects_to_it():
    secret = new_secret()
    rebinding = {"hooks.example.test": ["127.0.0.1"]}

    def resolver(host, port):
        return rebinding[host]

    with Receiver() as rx, httpx.Client() as client:
        url = f"http://hooks.example.test:{rx.port}/in?team=rl"
        common = dict(kind="webhook", url=url, secret=secret, message_id="msg_1", body='{"a": 1}', resolver=resolver)
        refused = send(client, ServerSettings(), **common)
        assert refused.outcome == "failed" and "loopback address" in refused.error
        assert rx.received == []

        allowed = send(client, ServerSettings(alert_allow_loopback_targets=True), **common)
        assert allowed.outcome == "delivered" and allowed.status_code == 200
        (got,) = rx.received
    assert got.path == "/in?team=rl"
    assert got.headers["host"] == f"hooks.example.test:{rx.port}"
    assert standard_webhooks_valid(secret, got.headers, got.body) and got.body == b'{"a": 1}'


def test_an_unresolvable_name_is_retried_later_not_given_up():
    def resolver(host, port):
        raise OSError("temporary failure in name resolution")

    with httpx.Client() as client:
        out = send(client, ServerSettings(), kind="slack", url="https://hooks.slack.test/services/x", secret=None,
                   message_id="m", body="{}", resolver=resolver)
    assert out.outcome == "retry" and "cannot resolve" in out.error
