"""The server's YAML rule file (`fadewatch server --rules FILE`): read and validated at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fadewatch.server.alerts.evaluation.rules import FileRule, brief

__all__ = ["RulesFileError", "parse_rules", "load_rules_file"]


class RulesFileError(ValueError):
    """The rule file cannot be read or does not validate."""


def parse_rules(data: Any, where: str = "rules") -> list[FileRule]:
    """Rules from a YAML document: `{rules: [...]}` or a bare list."""
    items = data.get("rules") if isinstance(data, dict) else data
    if isinstance(data, dict) and set(data) - {"rules"}:
        raise RulesFileError(f"{where}: unknown top-level keys {sorted(set(data) - {'rules'})}; expected `rules:`")
    if items is None:
        return []
    if not isinstance(items, list):
        raise RulesFileError(f"{where}: `rules` must be a list of rules")
    rules, seen = [], set()
    for i, item in enumerate(items):
        try:
            rule = FileRule.model_validate(item)
        except ValidationError as exc:
            raise RulesFileError(f"{where}: rule {i + 1}: {brief(exc)}") from None
        key = (rule.name, tuple(rule.projects or ()))
        if key in seen:
            raise RulesFileError(f"{where}: rule {rule.name!r} appears twice for the same projects")
        seen.add(key)
        rules.append(rule)
    return rules


def load_rules_file(path: str | Path) -> list[FileRule]:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesFileError(f"cannot read rule file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise RulesFileError(f"{path} is not valid YAML: {exc}") from None
    return parse_rules(data, str(path))
