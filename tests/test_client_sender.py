"""The sender thread against a fake server: batching, backoff, and every error answer."""

from __future__ import annotations

import json
import random
import threading
import time

import httpx
import pytest

from fadewatch.delivery import Backoff
from tests.support.polling import wait_until
from tests.test_client_fakes import fake_clock, fake_server, fresh_client_state, start_run  # noqa: F401


def _steps_of(body) -> list[int]:
    return [r["step"] for r in body["records"]]


def test_batches_are_gzipped_json_with_the_token(start_run, fake_server):
    run = start_run(token="s3cret")
    for step in range(3):
        run.log(step, loss=step / 2)
    assert run.flush(5)
    post = fake_server.posts()[0]
    assert post["headers"]["content-encoding"] == "gzip"
    assert post["headers"]["authorization"] == "Bearer s3cret"
    record = fake_server.steps[1][1]
    assert record["scalars"] == {"loss": 0.5} and record["nonfinite"] == []
    assert set(record) == {"step", "time", "scalars", "histograms", "rollouts", "nonfinite"}


def test_a_batch_holds_at_most_batch_size_records(start_run, fake_server):
    run = start_run(batch_size=100)
    for step in range(250):
        run.log(step, loss=1.0)
    assert run.flush(10)
    sizes = fake_server.batch_sizes()
    assert sum(sizes) == 250 and max(sizes) <= 100
    assert fake_server.stored_steps() == list(range(250))


def test_small_batches_wait_for_the_interval(start_run, fake_server):
    run = start_run(batch_interval=1.0)
    for step in range(20):
        run.log(step, loss=1.0)
        time.sleep(0.002)
    wait_until(lambda: fake_server.stored_steps() == list(range(20)), timeout=10, what="20 steps")
    times = [p["time"] for p in fake_server.posts()]
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times, times[1:])), times


def test_backoff_doubles_with_jitter_up_to_the_cap(start_run, fake_server):
    failures = 8

    def flaky(request, body):
        if request.url.path.endswith("/steps") and len(fake_server.posts()) <= failures:
            return httpx.Response(503, json={"detail": "busy"})
        return None

    fake_server.respond = flaky
    run = start_run(backoff=Backoff(base=0.5, cap=4.0, rng=random.Random(1)))
    run.log(0, loss=1.0)
    wait_until(lambda: fake_server.stored_steps() == [0], timeout=10, what="delivery after 503s")
    times = [p["time"] for p in fake_server.posts()]
    assert len(times) == failures + 1
    for k, (a, b) in enumerate(zip(times, times[1:])):
        full = min(4.0, 0.5 * 2**k)
        assert full / 2 - 1e-9 <= b - a <= full + 1e-9, (k, b - a)
    health = run.health()
    assert health["failed_batches"] == failures and health["sent"] == 1 and health["replayed"] == 1


@pytest.mark.parametrize("status", [429, 503, 507])
def test_retry_after_is_honoured(start_run, fake_server, status):
    def limited(request, body):
        if request.url.path.endswith("/steps") and len(fake_server.posts()) == 1:
            return httpx.Response(status, headers={"Retry-After": "7"}, json={"detail": "slow down"})
        return None

    fake_server.respond = limited
    run = start_run()
    run.log(0, loss=1.0)
    wait_until(lambda: fake_server.stored_steps() == [0], timeout=10, what="delivery after 429")
    first, second = (p["time"] for p in fake_server.posts())
    assert second - first == pytest.approx(7.0)


def test_413_splits_the_batch_until_it_fits(start_run, fake_server):
    fake_server.respond = lambda req, body: (
        httpx.Response(413, json={"detail": "too large"}) if body and len(body.get("records", ())) > 8 else None)
    run = start_run()
    for step in range(40):
        run.log(step, loss=1.0)
    assert run.flush(10)
    assert fake_server.stored_steps() == list(range(40))
    assert max(fake_server.batch_sizes()) <= 8
    assert run.health()["rejected"] == 0


def test_an_invalid_record_is_put_aside_and_the_rest_stored(start_run, fake_server):
    fake_server.respond = lambda req, body: (
        httpx.Response(422, json={"detail": "bad record"})
        if body and any(r["step"] == 13 for r in body.get("records", ())) else None)
    run = start_run()
    for step in range(30):
        run.log(step, loss=1.0)
    assert run.flush(10)
    assert fake_server.stored_steps() == [s for s in range(30) if s != 13]
    health = run.health()
    assert health["rejected"] == 1 and health["sent"] == 29 and "422" in health["last_error"]
    spool = run.spool_dir
    assert not run.finish(5)  # not everything was delivered ...
    rejected = (spool / "rejected.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in rejected] == [13]  # ... and the spool keeps why


def test_404_recreates_the_run_then_retries(start_run, fake_server):
    state = {"refused": False}

    def forget_once(request, body):
        if request.url.path.endswith("/steps") and not state["refused"]:
            state["refused"] = True
            return httpx.Response(404, json={"detail": "no such run"})
        return None

    fake_server.respond = forget_once
    run = start_run()
    for step in range(5):
        run.log(step, loss=1.0)
    assert run.flush(10)
    assert fake_server.stored_steps() == list(range(5))
    creates = [e for e in fake_server.log if e["method"] == "POST" and e["path"] == "/api/v1/runs"]
    assert len(creates) == 2


def test_bad_token_stops_delivery_once_and_keeps_the_spool(start_run, fake_server, caplog):
    fake_server.respond = lambda req, body: httpx.Response(401, json={"detail": "bad token"})
    run = start_run(token="wrong")
    for step in range(3):
        run.log(step, loss=1.0)
    began = time.monotonic()
    assert not run.flush(10)
    assert time.monotonic() - began < 5  # halted: flush does not wait out its timeout
    health = run.health()
    assert health["halted"] and "401" in health["last_error"]
    assert len(fake_server.log) == 1
    assert "FADEWATCH_TOKEN" in caplog.text
    spool = run.spool_dir
    assert not run.finish(5)
    assert sum(p.read_text().count("\n") for p in spool.glob("0*.jsonl")) == 3


def test_init_does_not_wait_for_an_absent_server(start_run, fake_server):
    calls = {"n": 0}

    def down_at_first(request, body):
        calls["n"] += 1
        if calls["n"] <= 3:
            raise httpx.ConnectError("connection refused")
        return None

    fake_server.respond = down_at_first
    began = time.monotonic()
    run = start_run()
    for step in range(10):
        run.log(step, loss=1.0)
    assert time.monotonic() - began < 1.0
    wait_until(lambda: fake_server.stored_steps() == list(range(10)), timeout=10, what="late delivery")
    health = run.health()
    assert run.id == 1 and health["replayed"] == 10 and health["failed_batches"] == 3


def test_log_never_waits_for_a_hung_server(start_run, fake_server):
    release = threading.Event()

    def hang(request, body):
        if request.url.path.endswith("/steps"):
            release.wait(10)
        return None

    fake_server.respond = hang
    run = start_run()
    run.log(0, loss=1.0)
    wait_until(lambda: fake_server.posts(), timeout=5, what="the first POST")  # sender now stuck in I/O
    began = time.monotonic()
    for step in range(1, 300):
        run.log(step, loss=1.0)
    assert time.monotonic() - began < 1.0
    assert not run.flush(0.3)
    assert run.health()["spooled"] == 300  # safe on disk while the server hangs
    release.set()
    assert run.flush(10)
    assert fake_server.stored_steps() == list(range(300))


def test_sender_survives_a_broken_transport(start_run, fake_server):
    calls = {"n": 0}

    def broken_once(request, body):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("transport bug")
        return None

    fake_server.respond = broken_once
    run = start_run()
    run.log(0, loss=1.0)
    assert run.flush(10)
    assert fake_server.stored_steps() == [0]
    assert "RuntimeError" in (run.health()["last_error"] or "")


def test_finish_sets_the_status_and_removes_the_delivered_spool(start_run, fake_server):
    run = start_run()
    for step in range(5):
        run.log(step, loss=1.0)
    spool = run.spool_dir
    assert run.finish(10, status="failed")
    assert fake_server.runs[1]["status"] == "failed"
    assert not spool.exists()
    assert run.finish() is True  # idempotent


def test_finish_with_the_server_away_keeps_records_and_status_for_sync(start_run, fake_server):
    def down(request, body):
        raise httpx.ConnectError("connection refused")

    fake_server.respond = down
    run = start_run()
    for step in range(7):
        run.log(step, loss=1.0)
    began = time.monotonic()
    assert not run.finish(timeout=0.5)
    assert time.monotonic() - began < 3
    meta = json.loads((run.spool_dir / "run.json").read_text())
    assert meta["status"] == "finished" and not meta["status_sent"]
    assert sum(p.read_text().count("\n") for p in run.spool_dir.glob("0*.jsonl")) == 7


def test_backoff_policy():
    b = Backoff(base=1.0, cap=10.0, rng=random.Random(0))
    delays = [b.next_delay() for _ in range(8)]
    for k, d in enumerate(delays):
        full = min(10.0, 2.0**k)
        assert full / 2 <= d <= full
    assert b.next_delay(retry_after=42.0) == 42.0
    assert b.next_delay(retry_after=1e6) == b.max_retry_after
    b.reset()
    assert b.next_delay() <= 1.0
