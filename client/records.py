"""Step records: the extra scalars of ``run.log``, and their JSON encoding for the wire.

Scalars are read on the training thread only where that costs nothing (Python and numpy
numbers, CPU tensors). Scalars on an accelerator are copied to the host asynchronously
and read by the background worker, so ``log()`` never waits on the device.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import numbers
import sys
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

from fadewatch.errors import UsageError
from fadewatch.protocol.names import METRIC_NAME_RULE, is_metric_name

__all__ = ["DeferredScalars", "check_name", "config_to_json", "encode", "is_tensor", "on_accelerator", "take_scalar"]


def check_name(name: object, what: str = "scalar") -> str:
    """``name`` if it is a metric name (fadewatch.protocol.names), else a UsageError."""
    if not is_metric_name(name):
        raise UsageError(f"{what} name {name!r} is invalid: use {METRIC_NAME_RULE}")
    return name


def is_tensor(value: object) -> bool:
    """A torch tensor, detected without importing torch."""
    return type(value).__module__.split(".", 1)[0] == "torch" and hasattr(value, "device")


def on_accelerator(value: object) -> bool:
    return is_tensor(value) and value.device.type != "cpu"


def take_scalar(name: str, value: object) -> float | None | object:
    """A float (None if not finite) now, or the tensor itself when it lives on an accelerator."""
    if is_tensor(value):
        if value.numel() != 1:
            raise UsageError(f"scalar {name!r} must have one element, got shape {tuple(value.shape)}")
        if value.device.type != "cpu":
            return value
        value = value.detach().reshape(()).item()
    elif isinstance(value, np.ndarray):
        if value.size != 1:
            raise UsageError(f"scalar {name!r} must have one element, got shape {value.shape}")
        value = value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, np.complexfloating):
        try:
            out = float(value)
        except OverflowError:  # an int beyond float range
            return None
        return out if math.isfinite(out) else None
    raise UsageError(f"scalar {name!r} must be a number or a one-element tensor/array, got {type(value).__name__}")


class DeferredScalars:
    """Accelerator scalars: one async host copy per device now, read in the background."""

    def __init__(self, items: dict[str, Any]):
        torch = sys.modules["torch"]
        self._parts: list[tuple[list[str], Any, Any]] = []  # names, host values, event
        by_device: dict[Any, list[tuple[str, Any]]] = {}
        for name, t in items.items():
            by_device.setdefault(t.device, []).append((name, t))
        for device, pairs in by_device.items():
            names = [n for n, _ in pairs]
            if device.type == "cuda":
                with torch.no_grad():
                    stacked = torch.stack([t.detach().reshape(()).double() for _, t in pairs])
                    host = stacked.to("cpu", non_blocking=True)
                event = torch.cuda.Event()
                event.record(torch.cuda.current_stream(device))
                self._parts.append((names, host, event))
            else:  # other accelerators: read (and synchronise) in the background
                self._parts.append((names, [t.detach() for _, t in pairs], None))

    def resolve(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for names, host, event in self._parts:
            if event is not None:
                event.synchronize()
                values = host.tolist()
            else:
                values = [float(t.reshape(()).item()) for t in host]
            for name, v in zip(names, values):
                out[name] = v if math.isfinite(v) else None
        return out


def _default(o: Any) -> Any:
    if isinstance(o, np.ndarray) or isinstance(o, np.generic) or is_tensor(o):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (np.ndarray, np.generic)) or is_tensor(o):
        return _finite(o.tolist())
    return o


def encode(record: Mapping[str, Any]) -> bytes:
    """Compact JSON of one record; NaN and infinities become null (JSON has neither)."""
    try:
        text = json.dumps(record, separators=(",", ":"), allow_nan=False, default=_default)
    except ValueError:
        text = json.dumps(_finite(record), separators=(",", ":"), allow_nan=False, default=_default)
    return text.encode()


def _config_default(o: Any) -> Any:
    if isinstance(o, (np.ndarray, np.generic)) or is_tensor(o):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=repr)
    if isinstance(o, enum.Enum):
        return o.value
    if isinstance(o, PurePath):
        return str(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    return str(o)


def config_to_json(config: Any) -> dict[str, Any] | None:
    """A run's config as a JSON object: mappings, dataclasses, argparse namespaces, ``to_dict()``."""
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    elif hasattr(config, "to_dict") and callable(config.to_dict):
        config = config.to_dict()
    elif not isinstance(config, Mapping) and hasattr(config, "__dict__"):
        config = vars(config)
    if not isinstance(config, Mapping):
        raise UsageError(f"config must be a mapping (or a dataclass/namespace), got {type(config).__name__}")
    try:
        return _finite(json.loads(json.dumps(dict(config), default=_config_default)))
    except (TypeError, ValueError, RecursionError) as exc:
        raise UsageError(f"config cannot be saved as JSON: {exc}") from exc
