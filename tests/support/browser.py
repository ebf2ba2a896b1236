"""A real headless Chromium (Debian's, driven by Playwright) and a dashboard server for it.

One browser per test session; each test gets a fresh context (cookies, storage) and page,
which records page errors and dialogs so a test can assert that none happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ThreadedServer

__all__ = ["CHROMIUM", "browser", "page", "dashboard_server", "start_dashboard_server"]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        # Never a skip: a missing browser would silently drop every dashboard test.
        pytest.fail(f"the dashboard tests need Debian's chromium at {CHROMIUM}: run `make install`, "
                    "which installs it with apt-get")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    tab.page_errors = []
    tab.dialogs = []
    tab.on("pageerror", lambda exc: tab.page_errors.append(str(exc)))

    def on_dialog(dialog):
        tab.dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    yield tab
    context.close()
    assert tab.page_errors == [], f"errors in the page: {tab.page_errors}"


def start_dashboard_server(data_dir: Path, **overrides) -> ThreadedServer:
    """`fadewatch server` in this process on a free port: API and dashboard, SQLite, fast refresh."""
    from fadewatch.server.app import create_app, prepare_database
    from fadewatch.server.settings import ServerSettings

    options = {"dashboard_refresh_s": 0.5, "alert_allow_loopback_targets": True, **overrides}
    settings = ServerSettings(dir=data_dir, database_url=f"sqlite:///{data_dir / 'dashboard.db'}", **options)
    return ThreadedServer(create_app(settings, prepare_database(settings))).start()


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory) -> Iterator[ThreadedServer]:
    server = start_dashboard_server(tmp_path_factory.mktemp("dashboard"))
    yield server
    server.stop()
