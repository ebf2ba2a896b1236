"""Shared fixtures: real SQLite and PostgreSQL databases, real servers on free ports.

PostgreSQL tests run against FADEWATCH_TEST_DATABASE_URL (default: the local server) in a
fresh database created for this test session and dropped at its end. A missing
PostgreSQL fails those tests: they are never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.browser import browser, dashboard_server, page  # noqa: F401 (fixtures)
from tests.support.pg_cluster import PrivateCluster
from tests.support.servers import LiveServer, ThreadedServer

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TABLES = ("alert_delivery_attempts", "alert_notifications", "alert_events", "alert_states", "alert_silences", "alert_channels", "alert_rules", "scalar_blocks", "histogram_blocks", "histograms", "steps", "layouts", "api_tokens", "runs", "projects")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Nothing a test does lands in the user's real ~/.fadewatch."""
    home = tmp_path_factory.mktemp("fadewatch-dir")
    monkeypatch.setenv("FADEWATCH_DIR", str(home))
    monkeypatch.delenv("FADEWATCH_TOKEN", raising=False)
    monkeypatch.delenv("FADEWATCH_DATABASE_URL", raising=False)
    monkeypatch.delenv("FADEWATCH_URL", raising=False)
    monkeypatch.delenv("FADEWATCH_MODE", raising=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    from fadewatch.server.db import make_engine
    from fadewatch.server.migrate import upgrade

    admin_url = make_url(os.environ.get("FADEWATCH_TEST_DATABASE_URL", DEFAULT_PG))
    name = f"fadewatch_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL at {admin_url.render_as_string(hide_password=True)} is required for "
            f"these tests (set FADEWATCH_TEST_DATABASE_URL): {exc}"
        )
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of this test session alone, which fault tests stop and restart."""
    missing = PrivateCluster.available()
    if missing:
        pytest.fail(f"the fault tests need the PostgreSQL cluster tools ({missing})")
    cluster = PrivateCluster()
    try:
        cluster.create()
    except Exception as exc:
        try:
            cluster.drop()
        except Exception:  # noqa: BLE001 - report the first failure, not this one
            pass
        pytest.fail(f"could not create a private PostgreSQL cluster: {exc}")
    yield cluster
    cluster.drop()


def _truncate(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """Each storage and API test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        from fadewatch.server.db import make_engine
        from fadewatch.server.migrate import upgrade

        url = f"sqlite:///{tmp_path / 'fadewatch.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return url
    url = request.getfixturevalue("postgres_url")
    _truncate(url)
    return url


@pytest.fixture
def make_settings(tmp_path):
    from fadewatch.server.settings import ServerSettings

    def build(**overrides) -> ServerSettings:
        return ServerSettings(dir=tmp_path, **overrides)

    return build


@pytest.fixture
def server(db_url, make_settings) -> Iterator[ThreadedServer]:
    """A real HTTP server (uvicorn on a free port) over the parametrised database."""
    from fadewatch.server.app import create_app, prepare_database

    settings = make_settings(database_url=db_url)
    srv = ThreadedServer(create_app(settings, prepare_database(settings))).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as client:
        yield client


@pytest.fixture
def live_server(tmp_path) -> Iterator[LiveServer]:
    """`fadewatch server` as a subprocess on SQLite: can be killed and started again."""
    srv = LiveServer(tmp_path / "live").start()
    yield srv
    srv.stop()


FAST_DELIVERY = dict(
    alert_allow_loopback_targets=True, alert_delivery_poll_s=0.05, alert_delivery_backoff_base_s=0.05,
    alert_delivery_backoff_max_s=0.2, alert_delivery_timeout_s=5.0,
)


@pytest.fixture
def alert_server(db_url, make_settings) -> Iterator[ThreadedServer]:
    """A real server whose channels may post to loopback receivers, retrying within milliseconds."""
    from fadewatch.server.app import create_app, prepare_database

    settings = make_settings(database_url=db_url, **FAST_DELIVERY)
    srv = ThreadedServer(create_app(settings, prepare_database(settings))).start()
    yield srv
    srv.stop()


@pytest.fixture
def alert_api(alert_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{alert_server.url}/api/v1", timeout=30) as client:
        yield client
