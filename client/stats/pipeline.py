"""reduce() (vectorised, on the data's device), to_host_async() and finalize() (host)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fadewatch.errors import UsageError
from fadewatch.stats.advantages import finalize_advantages, reduce_advantages
from fadewatch.stats.backend import NumpyOps, TorchOps, is_torch, ops_for
from fadewatch.stats.config import StatsConfig
from fadewatch.stats.diversity import finalize_diversity, reduce_diversity
from fadewatch.stats.groups import (finalize_groups, finalize_rewards, group_structure,
                                    reduce_groups, reduce_rewards)
from fadewatch.stats.inputs import StepInputs, prepare
from fadewatch.stats.scalars import Collector, Ratio
from fadewatch.stats.tokens import (finalize_tokens, reduce_token_advantages, reduce_tokens,
                                    token_view)

__all__ = ["StepStats", "Reduced", "reduce", "finalize", "compute"]


@dataclass
class StepStats:
    """One step's statistics in wire-format shape."""

    scalars: dict[str, float | None] = field(default_factory=dict)
    histograms: dict[str, dict] = field(default_factory=dict)
    rollouts: list[dict] = field(default_factory=list)  # whole groups, in wire form (fadewatch.rollouts)
    nonfinite: list[str] = field(default_factory=list)


class Reduced:
    """Small results of one step (scalars, bin counts, quantiles), possibly still on a GPU."""

    def __init__(self, config: StatsConfig, n: int | None, ng: int | None, raw: dict, meta: dict):
        self.config, self.n, self.ng, self.raw, self.meta = config, n, ng, raw, meta
        self._pending: tuple | None = None

    def to_host_async(self) -> Reduced:
        """Start one non-blocking copy of the CUDA results into pinned memory; record an event.

        A no-op for host results (other accelerators are read in finalize()).
        """
        on_gpu = [k for k, v in self.raw.items() if is_torch(v) and v.device.type == "cuda"]
        if not on_gpu or self._pending is not None:
            return self
        import torch

        def is_float(t: Any) -> bool:
            return t.dtype.is_floating_point or t.dtype == torch.bool

        device = self.raw[on_gpu[0]].device
        layout, bufs = [], {}
        with torch.cuda.device(device):
            # Two packed buffers (integers exact as int64, the rest as float64): two copies.
            for kind, dtype in (("i", torch.int64), ("f", torch.float64)):
                keys = [k for k in on_gpu if is_float(self.raw[k]) == (kind == "f")]
                if not keys:
                    continue
                flat = torch.cat([self.raw[k].reshape(-1).to(device=device, dtype=dtype) for k in keys])
                host = torch.empty(flat.shape, dtype=dtype, pin_memory=True)
                host.copy_(flat, non_blocking=True)
                bufs[kind] = host
                layout += [(k, kind, tuple(self.raw[k].shape)) for k in keys]
            event = torch.cuda.Event()
            event.record()
        for k in on_gpu:
            self.raw[k] = None  # the device tensors may be freed; the copies are queued
        self._pending = (layout, bufs, event)
        return self

    def host(self) -> dict[str, Any]:
        """Every result as numpy / python values; waits for the copy if one is in flight."""
        if self._pending is None:
            self.to_host_async()
        out = {k: v for k, v in self.raw.items() if v is not None}
        if self._pending is not None:
            layout, bufs, event = self._pending
            event.synchronize()
            offsets = {kind: 0 for kind in bufs}
            arrays = {kind: buf.numpy() for kind, buf in bufs.items()}
            for key, kind, shape in layout:
                size = int(np.prod(shape))
                out[key] = arrays[kind][offsets[kind]:offsets[kind] + size].reshape(shape)
                offsets[kind] += size
        for k, v in out.items():
            if is_torch(v):
                out[k] = v.detach().cpu().numpy()
        return out


def _backend(inp: StepInputs) -> NumpyOps | TorchOps:
    def probe(x: Any) -> Any:
        if isinstance(x, (list, tuple)) and x and not isinstance(x[0], (str, bytes)):
            return x[0]
        return x
    dense_ids = inp.completions if inp.completions_kind == "ids" else None
    return ops_for(*(probe(x) for x in (inp.advantages, inp.rewards, inp.entropy, inp.logprobs,
                                        inp.mask, dense_ids)))


def _extras(B: Any, inp: StepInputs, raw: dict, meta: dict) -> None:
    offsets = {}
    for name, v in inp.scalars.items():
        if isinstance(v, Ratio):
            raw[f"x.{name}.num"], raw[f"x.{name}.den"] = _detach(v.num), _detach(v.den)
            offsets[name] = v.offset
        else:
            raw[f"x.{name}"] = _detach(v)
    meta["extras"] = (list(inp.scalars), offsets)


def _detach(v: Any) -> Any:
    return v.detach() if is_torch(v) else v


def reduce(inputs: StepInputs, config: StatsConfig | None = None) -> Reduced:
    """All the heavy math of one step, on the inputs' device; returns only small results."""
    if not isinstance(inputs, StepInputs):
        raise UsageError(f"reduce() takes the StepInputs from prepare(), got {type(inputs).__name__}")
    inp = inputs if config is None else dataclasses.replace(inputs, config=config)
    cfg, n = inp.config, inp.n
    B = _backend(inp)
    raw: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    view = token_view(B, inp)
    adv = adv_tokens = r = s = fin_r = None
    if inp.advantages is not None:
        if inp.adv_token:
            adv_in, adv_tokens = reduce_token_advantages(B, inp, view, raw)
        else:
            adv_in = B.cast(B.asarray(inp.advantages), B.f64)
        adv = reduce_advantages(B, raw, adv_in, cfg)
    if view is not None:
        reduce_tokens(B, inp, view, raw, adv, adv_tokens)
    elif inp.completion_lengths is not None:
        lens = inp.completion_lengths.astype(np.float64)
        raw["len.sum"], raw["len.min"], raw["len.max"] = lens.sum(), lens.min(), lens.max()
    if inp.rewards is not None:
        r = B.cast(B.asarray(inp.rewards), B.f64)
        s, fin_r = reduce_rewards(B, raw, r, cfg)
    g = group_structure(inp)
    if g is not None and s is not None:
        reduce_groups(B, raw, g, s, fin_r, adv, cfg)
    if g is not None and inp.completions is not None:
        reduce_diversity(inp, B, view, g, raw)
    if inp.rollouts is not None:
        from fadewatch.rollouts.choice import reduce_rollouts  # it builds on these modules: imported late

        # The advantages as logged (a non-finite one is shown as missing, and weighs nothing).
        reduce_rollouts(B, inp, g, None if adv is None else adv_in, r, view, raw, meta)
    _extras(B, inp, raw, meta)
    return Reduced(cfg, n, g.ng if g is not None else None, raw, meta)


def finalize(red: Reduced) -> StepStats:
    """Host-side: wait for the copy, turn results into floats (None when undefined) and dicts."""
    h = red.host()
    cfg, n, out = red.config, red.n, Collector()
    if n:
        finalize_advantages(h, out, cfg, n)
        finalize_rewards(h, out, n)
        if red.ng:
            finalize_groups(h, out, cfg)
        finalize_tokens(h, out, cfg, n)
        finalize_diversity(h, out)
    names, offsets = red.meta.get("extras", ([], {}))
    for name in names:
        if name in offsets:
            out.ratio(name, h[f"x.{name}.num"], h[f"x.{name}.den"], offsets[name])
        else:
            out.put(name, h.get(f"x.{name}"))
    rollouts = []
    if "rollouts" in red.meta:
        from fadewatch.rollouts.build import finalize_rollouts

        rollouts = finalize_rollouts(h, red.meta)
    return StepStats(out.scalars, out.histograms, rollouts, out.nonfinite)


def compute(advantages: Any = None, rewards: Any = None, group_ids: Any = None,
            entropy: Any = None, mask: Any = None, logprobs: Any = None,
            completions: Any = None, scalars: dict[str, Any] | None = None,
            config: StatsConfig | None = None, **rollout_inputs: Any) -> StepStats:
    """prepare + reduce + finalize in one call (blocks until the numbers are on the host).

    rollout_inputs: prompts, tokenizer, reward_parts, rollouts (see prepare()).
    """
    inp = prepare(advantages=advantages, rewards=rewards, group_ids=group_ids, entropy=entropy,
                  mask=mask, logprobs=logprobs, completions=completions, scalars=scalars,
                  config=config, **rollout_inputs)
    return finalize(reduce(inp).to_host_async())
