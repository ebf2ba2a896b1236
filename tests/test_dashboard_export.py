"""`fadewatch report` writes a self-contained page; a token-protected server asks for a token."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from tests.support.browser import start_dashboard_server
from tests.support.dashboard import make_run, post_steps, step_record

XSS = "<img src=x onerror=alert(1)>"


def _cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fadewatch.cli", *args], capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_report_is_one_file_that_draws_the_run_offline(browser, dashboard_server, tmp_path):
    with httpx.Client(base_url=f"{dashboard_server.url}/api/v1") as api:
        run_id = make_run(api, XSS, project="reports", config={"note": XSS})
        records = [step_record(s) for s in range(12)]
        records[-1]["samples"] = [{"text": XSS, "group": "g", "reward": 1.0, "advantage": 0.3}]
        post_steps(api, run_id, records)

    out = tmp_path / "run.html"
    done = _cli("report", str(run_id), "-o", str(out), "--url", dashboard_server.url)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    html = out.read_text()
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", html)  # everything inline

    context = browser.new_context(offline=True)
    page = context.new_page()
    requests, dialogs = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(out.as_uri())
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length > 20")
    reward = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .find(g => (g.layout.title || {}).text === 'Reward').data.find(t => t.name === 'mean').y""")
    assert reward == [round(0.2 + s / 100, 6) for s in range(12)]
    assert page.inner_text("h1") == XSS
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
    assert dialogs == []
    context.close()

    missing = _cli("report", "999999", "-o", str(tmp_path / "x.html"), "--url", dashboard_server.url)
    assert missing.returncode != 0 and "run 999999 is not on" in missing.stderr
    down = _cli("report", "1", "--url", "http://127.0.0.1:9")
    assert down.returncode != 0 and "could not read from http://127.0.0.1:9" in down.stderr


def test_token_protected_server_asks_for_a_token_and_keeps_it_in_an_httponly_cookie(page, tmp_path):
    server = start_dashboard_server(tmp_path)
    try:
        made = _cli("token", "create", "--project", "locked", "--scope", "write",
                    "--db", f"sqlite:///{tmp_path / 'dashboard.db'}")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip().splitlines()[0]
        with httpx.Client(base_url=f"{server.url}/api/v1", headers={"Authorization": f"Bearer {token}"}) as api:
            run_id = make_run(api, "secret-run", project="locked")
            post_steps(api, run_id, [step_record(s) for s in range(3)])

        page.goto(server.url)
        page.wait_for_selector("text=This server needs an API token.")
        page.fill("#fw-token-input", token)
        page.click("#fw-token-save")
        page.click("text=Reload the page")
        page.wait_for_selector("#runs-table-el >> text=secret-run")
        cookie = next(c for c in page.context.cookies() if c["name"] == "fadewatch_token")
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""
    finally:
        server.stop()


def test_fadewatch_dashboard_command_serves_the_pages_of_a_remote_server(dashboard_server, tmp_path):
    import os

    from tests.support.polling import wait_until
    from tests.support.servers import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fadewatch.cli", "dashboard", "--api", dashboard_server.url,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "FADEWATCH_DIR": str(tmp_path)})
    try:
        def answers():
            return httpx.get(f"http://127.0.0.1:{port}/_dash-layout", timeout=2).status_code == 200
        wait_until(answers, timeout=60, what="the dashboard alone to answer")
        page = httpx.get(f"http://127.0.0.1:{port}/runs/1")
        assert page.status_code == 200 and "fadewatch" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert f"reading {dashboard_server.url}" in out
