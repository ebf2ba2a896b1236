"""The hook's connections never race the server's keep-alive timeout.

uvicorn closes a connection idle for 5 s; a client that kept it as long would now and then
send a batch just as the server hangs up and get a ReadError (bench/soak.py found it under
load; a trainer stepping every ~5 s meets it on a few percent of its batches).
"""

from __future__ import annotations

import random
import threading
import time

import uvicorn

from fadewatch.api_client import KEEPALIVE_EXPIRY_S, ApiClient

CLIENTS = 64
POSTS = 3


def test_the_client_drops_idle_connections_before_the_server_does():
    assert KEEPALIVE_EXPIRY_S < uvicorn.Config(app=None).timeout_keep_alive


def test_batches_sent_as_the_server_would_close_the_connection_all_arrive(live_server):
    gap = uvicorn.Config(app=None).timeout_keep_alive
    errors: list[str] = []

    def trainer(index: int) -> None:
        api = ApiClient(live_server.url)
        rng = random.Random(index)
        try:
            run_id = api.create_run("keepalive", f"run-{index}").body["id"]
            for step in range(POSTS):
                # Each batch goes out within 50 ms of the moment the server hangs up.
                time.sleep(gap + rng.uniform(-0.05, 0.05))
                reply = api.post_steps(run_id, [b'{"step":%d,"scalars":{"x":1.0}}' % step])
                if reply.kind != "ok":
                    errors.append(reply.error)
        finally:
            api.close()

    threads = [threading.Thread(target=trainer, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
