"""A kept-alive connection is closed after `max_requests_per_connection` answers
(server/http/connection_reuse.py), so busy senders spread over the server's processes."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from tests.support.polling import GaveUp, returns, wait_until
from tests.support.records import batch
from tests.support.servers import LiveServer, ThreadedServer


def _client_port(response: httpx.Response) -> int:
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


def _port_keeping_client(url: str) -> tuple[httpx.Client, dict]:
    """A client that notes each answer's local port as its headers arrive (a connection the
    server closes is gone by the time the body has been read)."""
    ports: dict[int, int] = {}

    def note(response: httpx.Response) -> None:
        ports[id(response)] = _client_port(response)

    return httpx.Client(base_url=url, timeout=10, event_hooks={"response": [note]}), ports


def test_a_connection_is_closed_after_its_nth_answer_and_the_client_goes_on_with_a_new_one(make_settings, tmp_path):
    from fadewatch.server.app import create_app, prepare_database

    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'reuse.db'}", max_requests_per_connection=3)
    server = ThreadedServer(create_app(settings, prepare_database(settings))).start()
    try:
        client, port_of = _port_keeping_client(server.url)
        with client:
            answers = [client.get("/healthz") for _ in range(7)]
            # A POST that is answered with an error counts, and closes, the same way.
            refused = client.post("/api/v1/runs", json={"project": ""})
    finally:
        server.stop()
    assert [a.status_code for a in answers] == [200] * 7 and refused.status_code == 422
    closing = [a.headers.get("connection") == "close" for a in answers]
    assert closing == [False, False, True, False, False, True, False]
    ports = [port_of[id(a)] for a in answers] + [port_of[id(refused)]]
    assert ports[0:3] == [ports[0]] * 3 and ports[3:6] == [ports[3]] * 3 and ports[6:8] == [ports[6]] * 2
    assert len({ports[0], ports[3], ports[6]}) == 3


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused_with_the_setting_named(make_settings, limit):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_requests_per_connection"):
        make_settings(max_requests_per_connection=limit)


def test_a_server_given_a_limit_below_one_does_not_start_and_says_why(tmp_path):
    server = LiveServer(tmp_path, env={"FADEWATCH_MAX_REQUESTS_PER_CONNECTION": "0"})
    # The start gives up as soon as the process has exited, long before its deadline.
    with pytest.raises(GaveUp, match="(?i)max_requests_per_connection"):
        returns(lambda: server.start(timeout=3600), timeout=120, what="a start whose server exits")
    assert server.proc.returncode not in (None, 0)


def _serving_worker(workers: list[psutil.Process], server_port: int, client_port: int) -> int | None:
    for worker in workers:
        for conn in worker.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == server_port and conn.raddr and conn.raddr.port == client_port:
                return worker.pid
    return None


def test_busy_kept_alive_senders_are_served_by_both_worker_processes(tmp_path, postgres_url):
    """Without the limit each sender's one connection stays with the process that accepted it."""
    server = LiveServer(tmp_path, db_url=postgres_url, args=["--workers", "2"],
                        env={"FADEWATCH_MAX_REQUESTS_PER_CONNECTION": "2"})
    server.start(timeout=180)
    try:
        parent = psutil.Process(server.proc.pid)

        def spawned() -> list[psutil.Process]:  # the parent's other child tracks multiprocessing's resources
            return [p for p in parent.children() if "spawn_main" in " ".join(p.cmdline())]

        workers = wait_until(lambda: spawned() if len(spawned()) == 2 else None, timeout=60,
                             what="two worker processes")

        def send(run_id: int) -> list[int | None]:
            """30 batches in a row on kept-alive connections; which process held each connection."""
            served_by = []
            with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as api:
                for start in range(0, 30 * 50, 50):
                    answer = api.post(f"/runs/{run_id}/steps", json=batch(range(start, start + 50)))
                    assert answer.status_code == 200, answer.text
                    if answer.headers.get("connection") != "close":  # still open: whose is it?
                        served_by.append(_serving_worker(workers, server.port, _client_port(answer)))
            return served_by

        with server.client() as api:
            run_ids = [api.post("/runs", json={"project": "reuse", "name": uuid.uuid4().hex}).json()["id"]
                       for _ in range(4)]
        with ThreadPoolExecutor(len(run_ids)) as pool:
            served = [pid for one in pool.map(send, run_ids) for pid in one]
        assert None not in served and len(served) == 4 * 15
        assert set(served) == {w.pid for w in workers}
        assert all(server.stored_steps(run_id, "loss") == list(range(1500)) for run_id in run_ids)
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=120)
