"""Pieces the framework integrations share: version ranges, scalar names, version lookup."""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

from fadewatch.errors import UsageError

__all__ = ["VersionRange", "installed_version", "scalar_name", "numeric_scalars"]

_NOT_NAME = re.compile(r"[^A-Za-z0-9_\-./@:\[\] ]")


def _release(version: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: "1.17.0.dev0" -> (1, 17, 0)."""
    parts = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.end() != len(piece):
            break
    return tuple(parts)


class VersionRange:
    """A half-open range of versions, ``>=low,<high``, of one distribution."""

    def __init__(self, distribution: str, low: str, high: str):
        self.distribution, self.low, self.high = distribution, low, high

    def __str__(self) -> str:
        return f"{self.distribution}>={self.low},<{self.high}"

    def contains(self, version: str) -> bool:
        release = _release(version)
        return _release(self.low) <= release < _release(self.high)

    def check(self, version: str | None, what: str, override: str) -> None:
        """Raise a UsageError that says what to do when ``version`` is outside the range."""
        if version is None:
            raise UsageError(f"{what} needs {self.distribution}, which is not installed: "
                             f"pip install 'fadewatch[{self.distribution}]'")
        if not self.contains(version):
            raise UsageError(
                f"{what} supports {self}, found {self.distribution} {version}: the trainer internals it "
                f"hooks were checked against that range only. Install a supported version "
                f"(pip install 'fadewatch[{self.distribution}]') or pass {override} to try anyway.")


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def scalar_name(name: object) -> str:
    """A framework's metric name made valid for fadewatch (other characters become "_")."""
    text = _NOT_NAME.sub("_", str(name))[:200]
    return text or "_"


def numeric_scalars(metrics: dict[str, Any], prefix: str = "") -> dict[str, float | None]:
    """The numeric entries of a metrics dict under valid names; NaN and infinities are kept (sent as null)."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[scalar_name(prefix + str(key))] = float(value)
    return out
