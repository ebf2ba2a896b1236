"""Fakes for the client tests: an in-memory ingest server behind httpx.MockTransport, and
a clock whose waits pass at once. The tests at the bottom check the fakes themselves."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

import fadewatch
from fadewatch import registry
from fadewatch.settings import get_settings


class FakeClock:
    """Monotonic time that jumps by each requested wait (waits take ~10 ms of real time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def wait(self, cond: threading.Condition, timeout: float) -> None:
        with self._lock:
            self.now += max(0.0, timeout)
        cond.wait(0.01)


class FakeServer:
    """The run and step API of the ingest server, in memory; ``respond`` can override answers."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.runs: dict[int, dict] = {}
        self.steps: dict[int, dict[int, dict]] = {}
        self.log: list[dict] = []  # one entry per request
        self.respond: Callable[[httpx.Request, dict | None], httpx.Response | None] | None = None
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        raw = request.read()
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        body = json.loads(raw) if raw else None
        entry = {"method": request.method, "path": request.url.path, "body": body,
                 "headers": dict(request.headers), "time": self.clock.monotonic() if self.clock else None}
        with self.lock:
            self.log.append(entry)
        if self.respond is not None:
            answer = self.respond(request, body)
            if answer is not None:
                entry["status"] = answer.status_code
                return answer
        answer = self._default(request, body)
        entry["status"] = answer.status_code
        return answer

    def _default(self, request: httpx.Request, body: dict | None) -> httpx.Response:
        parts = request.url.path.removeprefix("/api/v1/").split("/")
        with self.lock:
            if request.method == "POST" and parts == ["runs"]:
                for rid, run in self.runs.items():
                    if (run["project"], run["name"]) == (body["project"], body["name"]):
                        run["status"] = "running"
                        return httpx.Response(200, json={"id": rid, **run})
                rid = len(self.runs) + 1
                self.runs[rid] = {"project": body["project"], "name": body["name"],
                                  "config": body.get("config"), "status": "running"}
                self.steps[rid] = {}
                return httpx.Response(201, json={"id": rid, **self.runs[rid]})
            if len(parts) >= 2 and parts[0] == "runs" and int(parts[1]) not in self.runs:
                return httpx.Response(404, json={"detail": "no such run"})
            if request.method == "POST" and len(parts) == 3 and parts[2] == "steps":
                stored, dups = 0, []
                steps = self.steps[int(parts[1])]
                for record in body["records"]:
                    if record["step"] in steps:
                        dups.append(record["step"])
                    else:
                        steps[record["step"]] = record
                        stored += 1
                return httpx.Response(200, json={"stored": stored, "duplicates": len(dups), "duplicate_steps": dups})
            if request.method == "PATCH" and len(parts) == 2:
                self.runs[int(parts[1])]["status"] = body["status"]
                return httpx.Response(200, json={"id": int(parts[1]), **self.runs[int(parts[1])]})
        return httpx.Response(404, json={"detail": "not found"})

    # helpers for assertions
    def stored_steps(self, run_id: int = 1) -> list[int]:
        with self.lock:
            return sorted(self.steps.get(run_id, {}))

    def posts(self) -> list[dict]:
        with self.lock:
            return [e for e in self.log if e["path"].endswith("/steps")]

    def batch_sizes(self, ok_only: bool = True) -> list[int]:
        return [len(e["body"]["records"]) for e in self.posts() if not ok_only or e.get("status") == 200]


@pytest.fixture(autouse=True)
def fresh_client_state(monkeypatch) -> Iterator[None]:
    """Settings re-read from the (per-test) environment; runs left open are closed after."""
    get_settings.cache_clear()
    yield
    for run in list(registry._active):
        run.finish(timeout=2)
    get_settings.cache_clear()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_server(fake_clock) -> FakeServer:
    return FakeServer(fake_clock)


@pytest.fixture
def start_run(fake_server, fake_clock) -> Callable[..., fadewatch.Run]:
    """``fadewatch.init`` wired to the fake server and clock."""

    def init(**kw) -> fadewatch.Run:
        kw.setdefault("project", "p")
        kw.setdefault("name", "n")
        kw.setdefault("transport", fake_server.transport)
        kw.setdefault("clock", fake_clock)
        return fadewatch.init(**kw)

    return init


def test_fake_server_creates_resumes_and_stores_once(fake_server):
    server = fake_server
    client = httpx.Client(transport=server.transport, base_url="http://x/api/v1")
    first = client.post("/runs", json={"project": "p", "name": "n", "config": None})
    again = client.post("/runs", json={"project": "p", "name": "n", "config": None})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] == 1
    answer = client.post("/runs/1/steps", json={"records": [{"step": 1}, {"step": 1}]}).json()
    assert answer == {"stored": 1, "duplicates": 1, "duplicate_steps": [1]}
    assert client.post("/runs/9/steps", json={"records": []}).status_code == 404


def test_fake_clock_jumps_by_the_wait(fake_clock):
    clock = fake_clock
    cond = threading.Condition()
    with cond:
        clock.wait(cond, 30.0)
    assert clock.monotonic() == 1030.0
