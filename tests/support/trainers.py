"""Training loops in threads for the fault tests: each logs steps to one fadewatch run."""

from __future__ import annotations

import threading
import time

import httpx

from tests.support.polling import wait_until

__all__ = ["Trainer", "acknowledged", "stored_once", "stop_all"]


class Trainer:
    """Logs ``loss`` every ``pace`` seconds until ``stop()``; notes the slowest ``log()`` call."""

    def __init__(self, run, pace: float = 0.01):
        self.run = run
        self.pace = pace
        self.loss = 1.0  # the test may change it mid-run (to make an alert rule fire)
        self.logged = 0
        self.slowest_log = 0.0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"trainer-{run.name}", daemon=True)

    def start(self) -> Trainer:
        self._thread.start()
        return self

    def _main(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.perf_counter()
                self.run.log(self.logged, loss=self.loss)
                self.slowest_log = max(self.slowest_log, time.perf_counter() - started)
                self.logged += 1
                self._stop.wait(self.pace)  # the "training" between two logged steps
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            self.error = exc

    def wait_logged(self, count: int, timeout: float = 20.0) -> None:
        wait_until(lambda: self.logged >= count or self.error, timeout=timeout,
                   what=f"{self.run.name} to log {count} steps (at {self.logged})")
        assert self.error is None, self.error

    def halt(self) -> None:
        """Stop training without checking anything (cleanup after a failure)."""
        self._stop.set()
        self._thread.join(timeout=10)

    def stop(self) -> int:
        """Stop training; the number of steps logged (0 .. n-1)."""
        self.halt()
        assert not self._thread.is_alive(), f"{self.run.name}: log() blocked"
        assert self.error is None, f"{self.run.name}: log() raised {self.error!r}"
        return self.logged


def stop_all(trainers, *servers) -> None:
    """Teardown: stop the training threads, finish their runs without waiting long, stop the servers."""
    for t in trainers:
        t.halt()
        t.run.finish(timeout=1)
    for server in servers:
        server.stop()


def acknowledged(run) -> int:
    """Steps of ``run`` the server has confirmed as stored (they are 0 .. n-1: none dropped)."""
    return run.health()["sent"]


def stored_once(url: str, project: str, name: str, settled: bool = True) -> list[int]:
    """The run's stored steps, read back over the API, after checking none is stored twice.

    ``settled``: the run no longer posts, so its step count must match the steps read.
    """
    with httpx.Client(base_url=f"{url}/api/v1", timeout=10) as api:
        runs = api.get("/runs", params={"project": project}).json()["runs"]
        run = next((r for r in runs if r["name"] == name), None)
        assert run is not None, f"run {project}/{name} not on the server"
        r = api.get(f"/runs/{run['id']}/series", params={"keys": "loss", "max_points": 20_000})
        r.raise_for_status()
    steps = r.json()["series"]["loss"]["steps"]
    assert len(steps) == len(set(steps)), f"{project}/{name}: a step is stored twice"
    if settled:
        assert len(steps) == run["step_count"], (len(steps), run["step_count"])
    return steps
