"""Helpers of the alert tests: channels, runs, step records, and an independent signature check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
from pathlib import Path

import httpx

__all__ = ["new_secret", "add_webhook", "new_run", "send_steps", "standard_webhooks_valid", "steps_of",
           "documented_receiver"]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def add_webhook(api: httpx.Client, project: str, url: str, secret: str, name: str = "hook") -> dict:
    r = api.post(f"/projects/{project}/channels", json={"name": name, "kind": "webhook", "url": url, "secret": secret})
    assert r.status_code == 201, r.text
    return r.json()


def new_run(api: httpx.Client, project: str, name: str) -> int:
    r = api.post("/runs", json={"project": project, "name": name})
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


def steps_of(stream: dict[str, list[float]], start: int = 0) -> list[dict]:
    """Step records from columns of scalars; NaN and inf go out as the wire format's flags."""
    n = len(next(iter(stream.values())))
    records = []
    for i in range(n):
        scalars, nonfinite = {}, []
        for key, values in stream.items():
            v = values[i]
            if v is None:
                continue
            if math.isfinite(v):
                scalars[key] = v
            else:
                nonfinite.append(key)
        records.append({"step": start + i, "scalars": scalars, **({"nonfinite": nonfinite} if nonfinite else {})})
    return records


def send_steps(api: httpx.Client, run_id: int, records: list[dict]) -> dict:
    r = api.post(f"/runs/{run_id}/steps", json={"records": records})
    assert r.status_code == 200, r.text
    return r.json()


def standard_webhooks_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Verification as the Standard Webhooks spec writes it, independently of the server's code."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(sig, expected)
        for version, _, sig in (part.partition(",") for part in headers["webhook-signature"].split())
    )


def documented_receiver(secret: str):
    """The verification snippet of docs/alerts.md, run as written, with `secret` as its SECRET."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    section = text.split("### Verifying webhook signatures", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/alerts.md", "exec"), namespace)
    namespace["SECRET"] = secret
    return namespace["receive"]
