"""The alerting settings of a project through the API: rules, channels, silences.

Thin calls over the dashboard's client; project names go into paths quoted, since a
project may be named with any text.
"""

from __future__ import annotations

from urllib.parse import quote

from fadewatch.api_client import ApiClient

__all__ = [
    "rules", "put_rule", "set_rule_enabled", "delete_rule",
    "channels", "create_channel", "set_channel_enabled", "delete_channel", "test_channel",
    "silences", "create_silence", "expire_silence", "parse_matchers",
]


def _p(project: str) -> str:
    return f"/projects/{quote(project, safe='')}"


def rules(api: ApiClient, project: str) -> list[dict]:
    return api.get(_p(project) + "/rules")["rules"]


def put_rule(api: ApiClient, project: str, name: str, body: dict) -> dict:
    """Create or replace the project's rule `name`."""
    return api.request("PUT", f"{_p(project)}/rules/{quote(name, safe='')}", json=body)


def set_rule_enabled(api: ApiClient, project: str, name: str, enabled: bool) -> dict:
    action = "enable" if enabled else "disable"
    return api.request("POST", f"{_p(project)}/rules/{quote(name, safe='')}/{action}")


def delete_rule(api: ApiClient, project: str, name: str) -> None:
    api.request("DELETE", f"{_p(project)}/rules/{quote(name, safe='')}")


def channels(api: ApiClient, project: str) -> list[dict]:
    return api.get(_p(project) + "/channels")["channels"]


def create_channel(api: ApiClient, project: str, body: dict) -> dict:
    return api.request("POST", _p(project) + "/channels", json=body)


def set_channel_enabled(api: ApiClient, project: str, channel_id: int, enabled: bool) -> dict:
    return api.request("PATCH", f"{_p(project)}/channels/{int(channel_id)}", json={"enabled": enabled})


def delete_channel(api: ApiClient, project: str, channel_id: int) -> None:
    api.request("DELETE", f"{_p(project)}/channels/{int(channel_id)}")


def test_channel(api: ApiClient, project: str, channel_id: int) -> dict:
    """Send a test message now; how the receiver answered."""
    return api.request("POST", f"{_p(project)}/channels/{int(channel_id)}/test")


def silences(api: ApiClient, project: str, include_expired: bool = False) -> list[dict]:
    return api.get(_p(project) + "/silences", include_expired=str(include_expired).lower())["silences"]


def create_silence(api: ApiClient, project: str, body: dict) -> dict:
    return api.request("POST", _p(project) + "/silences", json=body)


def expire_silence(api: ApiClient, project: str, silence_id: int) -> dict:
    return api.request("DELETE", f"{_p(project)}/silences/{int(silence_id)}")


def parse_matchers(text: str) -> list[dict]:
    """`rule=heavy_tails, run~ablation-*` (commas or new lines) as the API's matchers.

    Operators: `=`, `!=`, `~` (glob) and `!~`; raises ValueError naming a part it cannot read.
    """
    out = []
    for part in (p.strip() for p in text.replace("\n", ",").split(",")):
        if not part:
            continue
        for op in ("!~", "!=", "~", "="):
            name, found, value = part.partition(op)
            if found and name.strip():
                out.append({"name": name.strip(), "op": op, "value": value.strip()})
                break
        else:
            raise ValueError(f"cannot read {part!r}: write label=value, label!=value, label~glob or label!~glob")
    if not out:
        raise ValueError("give at least one matcher, e.g. rule=heavy_tails")
    return out
