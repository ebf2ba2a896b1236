"""Schemathesis against the server's own OpenAPI: every operation, in open mode and with a token.

Each operation gets a bounded number of generated requests (valid and invalid ones) sent
over HTTP to a real server on SQLite. Every answer must be under 500 and documented: its
status code, content type and body as the OpenAPI says. `bench/fuzz.py` runs the same
with many more examples.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.support.fuzzing import CHECKS, PROJECT, seed_run, steer_path_parameters
from tests.support.servers import ThreadedServer

# Examples per operation and mode: 32 operations, two modes, about a minute on two quiet cores.
MAX_EXAMPLES = 10


def _target(tmp_path_factory, mode: str) -> tuple[ThreadedServer, dict[str, str], int]:
    """A server on a SQLite file of its own (alert delivery off: nothing leaves the machine)."""
    from fadewatch.server.app import create_app, prepare_database
    from fadewatch.server.settings import ServerSettings
    from fadewatch.server.store import tokens

    tmp = tmp_path_factory.mktemp(f"fuzz-{mode}")
    settings = ServerSettings(dir=tmp, database_url=f"sqlite:///{tmp / 'fuzz.db'}", alert_delivery_enabled=False,
                              alert_delivery_timeout_s=1.0)
    database = prepare_database(settings)
    headers = {}
    if mode == "token":
        with database.transaction() as session:
            secret, _ = tokens.create(session, PROJECT, "write", name="fuzz")
        headers = {"Authorization": f"Bearer {secret}"}
    server = ThreadedServer(create_app(settings, database)).start()
    return server, headers, seed_run(server.url, headers)


def _schema(target):
    server, _, run_id = target
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        return steer_path_parameters(path_parameters, PROJECT, [run_id])

    return schema


@pytest.fixture(scope="module")
def open_target(tmp_path_factory) -> Iterator[tuple[ThreadedServer, dict[str, str], int]]:
    """Local open mode: no token exists, every request is allowed."""
    target = _target(tmp_path_factory, "open")
    yield target
    target[0].stop()


@pytest.fixture(scope="module")
def token_target(tmp_path_factory) -> Iterator[tuple[ThreadedServer, dict[str, str], int]]:
    """A write token of one project: other projects answer 403, no token 401."""
    target = _target(tmp_path_factory, "token")
    yield target
    target[0].stop()


@pytest.fixture(scope="module")
def open_schema(open_target):
    return _schema(open_target)


@pytest.fixture(scope="module")
def token_schema(token_target):
    return _schema(token_target)


@pytest.fixture(autouse=True)
def _node_id(request):
    # schemathesis' pytest plugin reads Node._nodeid, which pytest 9 no longer sets.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def _call(case, target) -> None:
    server, headers, _ = target
    case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS, timeout=30)


@schemathesis.pytest.from_fixture("open_schema").parametrize()
@FUZZ
def test_open_mode(case, open_target):
    _call(case, open_target)


@schemathesis.pytest.from_fixture("token_schema").parametrize()
@FUZZ
def test_with_a_token(case, token_target):
    _call(case, token_target)
