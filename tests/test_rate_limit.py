"""Rate limits: a token bucket per token (per address when open), 429 with Retry-After,
which the client rides out without losing a step; the defaults never touch a trainer."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

import fadewatch
from fadewatch.server.http.rate_limit import RateLimiter
from tests.support.polling import wait_until
from tests.support.servers import ThreadedServer
from tests.support.tokens import create_token
from tests.test_client_fakes import fresh_client_state  # noqa: F401 (autouse fixture)


@pytest.fixture
def start_server(tmp_path, make_settings) -> Iterator:
    started: list[ThreadedServer] = []

    def start(**overrides) -> ThreadedServer:
        from fadewatch.server.app import create_app, prepare_database

        settings = make_settings(database_url=f"sqlite:///{tmp_path / 'limits.db'}", **overrides)
        started.append(ThreadedServer(create_app(settings, prepare_database(settings))).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


def _count_429(server: ThreadedServer) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(float(v) for v in re.findall(r'^fadewatch_http_requests_total\{.*status="429".*\} (\S+)$', text, re.M))


def test_token_bucket_refills_at_the_rate_and_says_how_long_to_wait():
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0], max_keys=2)
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]
    assert limiter.acquire("a") == pytest.approx(0.5)
    assert limiter.retry_after(0.5) == "1" and limiter.retry_after(2.2) == "3"
    assert limiter.acquire("b") is None  # buckets are per key
    now[0] = 0.5
    assert limiter.acquire("a") is None and limiter.acquire("a") == pytest.approx(0.5)
    now[0] = 100.0
    assert [limiter.acquire("a") for _ in range(4)][-1] is not None  # never more than the burst
    limiter.acquire("c")
    assert len(limiter._buckets) == 2  # the least recently seen key is forgotten first


def test_past_its_burst_a_token_gets_429_with_retry_after_and_others_go_on(start_server, tmp_path):
    server = start_server(rate_limit_per_s=0.2, rate_limit_burst=3)
    db = f"sqlite:///{tmp_path / 'limits.db'}"
    a, b = create_token(db, "a"), create_token(db, "b")
    with httpx.Client(base_url=f"{server.url}/api/v1", headers={"Authorization": f"Bearer {a}"}) as ca, \
            httpx.Client(base_url=f"{server.url}/api/v1", headers={"Authorization": f"Bearer {b}"}) as cb:
        assert [ca.get("/runs").status_code for _ in range(3)] == [200, 200, 200]
        limited = ca.get("/runs")
        assert limited.status_code == 429 and "rate limit" in limited.json()["detail"]
        assert 1 <= int(limited.headers["retry-after"]) <= 5
        assert ca.post("/runs", json={"project": "a", "name": "r"}).status_code == 429  # writes too
        assert cb.get("/runs").status_code == 200  # another token has its own bucket
        assert httpx.get(f"{server.url}/readyz").status_code == 200  # probes are never limited
    # Guessing tokens is limited per address.
    with httpx.Client(base_url=f"{server.url}/api/v1", headers={"Authorization": "Bearer fw_guess"}) as guess:
        assert [guess.get("/runs").status_code for _ in range(4)] == [401, 401, 401, 429]


def test_the_client_rides_out_429s_and_stores_every_step_once(start_server, tmp_path):
    server = start_server(rate_limit_per_s=2, rate_limit_burst=2)
    run = fadewatch.init(project="limited", name="slow-down", url=server.url, dir=tmp_path,
                         batch_size=5, batch_interval=0.05)
    for step in range(40):
        run.log(step, loss=float(step))
    assert run.finish(timeout=60), run.health()
    health = run.health()
    assert health["dropped"] == 0 and health["stored"] == 40 and health["failed_batches"] > 0
    assert _count_429(server) > 0
    with httpx.Client(base_url=f"{server.url}/api/v1") as api:
        # This test's reads share the trainer's address, so its bucket, in open mode.
        def read(path, **params):
            return wait_until(lambda: (r := api.get(path, params=params)).status_code == 200 and r.json(),
                              timeout=10, what=f"GET {path} past the rate limit")

        (stored,) = read("/runs", project="limited")["runs"]
        series = read(f"/runs/{stored['id']}/series", keys="loss")["series"]["loss"]
    assert series["steps"] == list(range(40)) and stored["status"] == "finished"


def test_default_limits_never_touch_a_trainer_logging_flat_out(start_server, tmp_path):
    server = start_server()
    runs = [fadewatch.init(project="busy", name=f"r{i}", url=server.url, dir=tmp_path / str(i),
                           batch_size=10, batch_interval=0.01) for i in range(4)]
    for step in range(300):
        for run in runs:
            run.log(step, loss=float(step))
    for run in runs:
        assert run.finish(timeout=60), run.health()
        assert run.health()["failed_batches"] == 0 and run.health()["stored"] == 300
    assert _count_429(server) == 0
