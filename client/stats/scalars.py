"""Deferred scalars: values that stay on their device until the background thread reads them."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from fadewatch.stats.backend import is_torch

__all__ = ["Ratio", "Collector", "host_float"]


class Ratio(NamedTuple):
    """num / den + offset, read on the host; undefined (None) where den == 0."""

    num: Any
    den: Any
    offset: float = 0.0


def host_float(x: Any) -> float:
    """One number from a python number, a 1-element array or a (host) tensor."""
    if is_torch(x):
        x = x.detach().cpu().numpy()
    return float(np.asarray(x, dtype=np.float64).reshape(-1)[0])


class Collector:
    """Builds a StepStats' fields: None for undefined values, None + a name in `nonfinite` for NaN/Inf."""

    def __init__(self) -> None:
        self.scalars: dict[str, float | None] = {}
        self.histograms: dict[str, dict] = {}
        self.samples: list[dict] = []
        self.nonfinite: list[str] = []

    def put(self, name: str, value: Any, defined: bool = True) -> None:
        if value is None or not defined:
            self.scalars[name] = None
            return
        v = host_float(value)
        if math.isfinite(v):
            self.scalars[name] = v + 0.0  # -0.0 reads as 0.0
        else:
            self.scalars[name] = None
            if name not in self.nonfinite:
                self.nonfinite.append(name)

    def count(self, name: str, value: Any) -> None:
        """A count of non-finite input values: reported, and when above 0 the step is flagged."""
        n = int(host_float(value))
        self.scalars[name] = float(n)
        if n and name not in self.nonfinite:
            self.nonfinite.append(name)

    def ratio(self, name: str, num: Any, den: Any, offset: float = 0.0) -> None:
        num, den = host_float(num), host_float(den)
        if math.isfinite(den) and den == 0.0:
            self.put(name, None, defined=False)
            return
        with np.errstate(all="ignore"):
            self.put(name, np.float64(num) / np.float64(den) + offset)
