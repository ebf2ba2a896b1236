"""Real servers for tests: in a thread of the test process, or as a subprocess to kill."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from tests.support.polling import GaveUp, wait_until

__all__ = ["free_port", "ThreadedServer", "LiveServer", "live_server", "torch_threads"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(url: str) -> bool:
    return httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200


class ThreadedServer:
    """A uvicorn server for an app object, on a free loopback port, in a daemon thread."""

    def __init__(self, app, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> ThreadedServer:
        self._thread.start()
        wait_until(lambda: self._server.started, timeout=15, what="the threaded server to start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class LiveServer:
    """`fadewatch server` as a child process, which tests can SIGKILL and start again."""

    def __init__(self, data_dir: Path, db_url: str | None = None, port: int | None = None,
                 env: dict[str, str] | None = None, args: list[str] | None = None):
        self.data_dir = Path(data_dir)
        self.db_url = db_url or f"sqlite:///{self.data_dir / 'server.db'}"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.args = list(args or [])
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir / f"server-{self.port}.log"

    def start(self, timeout: float = 30.0) -> LiveServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "FADEWATCH_DIR": str(self.data_dir), **self.env}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fadewatch.cli", "server", "--port", str(self.port),
             "--db", self.db_url, "--log-level", "warning", *self.args],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        log.close()

        def up() -> bool:
            if self.proc.poll() is not None:
                raise GaveUp(f"server exited with {self.proc.returncode}: {self.log()}")
            return _ready(self.url)

        try:
            wait_until(up, timeout=timeout, interval=0.05, what=f"server on {self.url}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- server log ---\n{self.log()}") from exc
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # Reading back what was stored, for assertions.
    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=10)

    def stored_steps(self, run_id: int, key: str) -> list[int]:
        with self.client() as c:
            r = c.get(f"/runs/{run_id}/series", params={"keys": key, "max_points": 20000})
            r.raise_for_status()
            return r.json()["series"][key]["steps"]

    def find_run(self, project: str, name: str) -> dict | None:
        with self.client() as c:
            runs = c.get("/runs", params={"project": project}).json()["runs"]
        return next((r for r in runs if r["name"] == name), None)


@contextmanager
def live_server(tmp_path_factory, name: str) -> Iterator[LiveServer]:
    """`fadewatch server` on SQLite in a folder of its own, for a module's tests."""
    srv = LiveServer(tmp_path_factory.mktemp(name)).start()
    try:
        yield srv
    finally:
        srv.stop()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch on n CPU threads (a trainer and a server share this machine's cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
