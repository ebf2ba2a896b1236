"""Pieces the framework integrations share: version ranges, scalar names, version lookup, and
patches that run when a framework's module is imported."""

from __future__ import annotations

import importlib.abc
import re
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Any

from fadewatch.errors import UsageError

__all__ = ["VersionRange", "installed_version", "numeric_scalars", "patch_on_import", "scalar_name"]

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


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a patch right after a module's own code, the first time it is imported."""

    def __init__(self, patches: dict[str, Callable[[Any], None]], on_failure: Callable[[Any, Exception], None]):
        self.patches, self.on_failure = patches, on_failure

    def find_spec(self, name, path=None, target=None):
        if name not in self.patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        patch, loader = self.patches.pop(name), spec.loader
        exec_module = loader.exec_module

        def exec_then_patch(module):
            exec_module(module)
            _apply(patch, module, self.on_failure)

        loader.exec_module = exec_then_patch
        return spec


def _apply(patch: Callable[[Any], None], module: Any, on_failure: Callable[[Any, Exception], None]) -> None:
    try:
        patch(module)
    except Exception as exc:  # noqa: BLE001 - a failed patch must not break the framework
        on_failure(module, exc)


def patch_on_import(patches: dict[str, Callable[[Any], None]], on_failure: Callable[[Any, Exception], None]) -> None:
    """Apply ``patches`` (module name -> patch) to modules already imported, and to the others
    right after their first import in this process. A patch that raises goes to ``on_failure``."""
    patches = dict(patches)
    for name in list(patches):
        if name in sys.modules:
            _apply(patches.pop(name), sys.modules[name], on_failure)
    if patches:
        sys.meta_path.insert(0, _AfterImport(patches, on_failure))
