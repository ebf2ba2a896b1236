"""Weight geometry of the output head: ||W_t - W_0||_F and the rank-1 fraction of the update."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fadewatch.errors import UsageError
from fadewatch.stats.backend import is_torch
from fadewatch.stats.scalars import Ratio

__all__ = ["HeadWatcher"]


def _weight(head: Any) -> Any:
    if not is_torch(head):
        if hasattr(head, "get_output_embeddings") and head.get_output_embeddings() is not None:
            head = head.get_output_embeddings()
        head = getattr(head, "weight", head)
    if not is_torch(head):
        raise UsageError("HeadWatcher needs the output head: an nn.Linear, an nn.Embedding, a module "
                         f"with a .weight tensor, or the weight tensor itself; got {type(head).__name__}")
    if head.ndim != 2:
        raise UsageError(f"HeadWatcher needs a 2-D weight [vocab, hidden], got shape {list(head.shape)}")
    return head


@contextmanager
def _full_float32(torch: Any) -> Iterator[None]:
    """float32 matmuls in full precision (not TF32) for the launches made inside."""
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


class HeadWatcher:
    """Every `every` steps, ||dW||_F and sigma_1(dW)^2 / ||dW||_F^2 for dW = W_now - W_first.

    The first call keeps a copy of W on its own device (as much memory as the head).
    sigma_1^2 is the largest eigenvalue of the Gram matrix G of dW on its smaller side
    (d x d, d = min(vocab, hidden)), found by squaring G/tr(G) `squarings` times: after
    J squarings the Rayleigh quotient of the result is within a factor d^(1/2^J) of the
    largest eigenvalue whatever the spectral gap (J = 24: 1 + 5e-7 for d = 4096), so the
    rank-1 fraction is exact to float32 rounding (a tolerance of 1e-5). A head with
    d > `gram_max` falls back to `iters` warm-started power iterations (approximate: low by
    a share that shrinks with the gap between the two largest singular values).
    dW is formed a block of rows (or columns) at a time, so no second full-size copy is made.
    Results stay on the device: pass them to ``prepare(scalars=...)`` or ``finalize_now``.

        head = HeadWatcher(model.lm_head, every=50)
        m = head.maybe_measure(step)           # None on most steps
    """

    def __init__(self, head: Any, every: int = 100, iters: int = 20, block_elems: int = 1 << 24,
                 seed: int = 0, squarings: int = 24, gram_max: int = 8192):
        if int(every) < 1 or int(iters) < 1 or int(squarings) < 1:
            raise UsageError(f"HeadWatcher needs every, iters and squarings >= 1, got {every}, {iters}, "
                             f"{squarings}")
        self.weight = _weight(head)
        self.every, self.iters, self.seed = int(every), int(iters), seed
        self.squarings, self.gram_max = int(squarings), int(gram_max)
        self.block_elems = max(1, int(block_elems))
        self.block_rows = max(1, self.block_elems // max(1, self.weight.shape[1]))
        self.w0: Any = None
        self._v: Any = None
        self._last: int | None = None

    def maybe_measure(self, step: int) -> dict[str, Any] | None:
        """Snapshot on the first call; then a measurement once `every` steps have passed."""
        if self.w0 is None:
            self.w0 = self.weight.detach().clone()
            self._last = step
            return None
        if step - self._last < self.every:
            return None
        self._last = step
        return self.measure()

    def measure(self) -> dict[str, Any]:
        """Measure now: kernels are launched, nothing is read back."""
        import torch

        if self.w0 is None:
            raise UsageError("HeadWatcher.measure() before the first maybe_measure() snapshot")
        with torch.no_grad():
            if min(self.weight.shape) > self.gram_max:
                fro2, top = self._power()
            else:
                with _full_float32(torch):
                    fro2, top = self._gram()
        return {"geometry/head_delta_norm": fro2.sqrt(), "geometry/rank1_frac": top}

    def _gram(self) -> tuple[Any, Any]:
        import torch

        w, w0 = self.weight.detach(), self.w0
        rows, cols = w.shape
        dtype = torch.float64 if w.device.type == "cpu" else torch.float32
        tall = rows >= cols
        d = cols if tall else rows
        g = torch.zeros((d, d), dtype=dtype, device=w.device)
        fro2 = torch.zeros((), dtype=torch.float64, device=w.device)
        step = max(1, self.block_elems // d)
        for at in range(0, rows if tall else cols, step):
            part = (w[at:at + step] - w0[at:at + step]) if tall else (w[:, at:at + step] - w0[:, at:at + step])
            part = part.to(dtype)
            fro2 = fro2 + (part * part).sum(dtype=torch.float64)
            g += part.t() @ part if tall else part @ part.t()
        trace = torch.diagonal(g).sum()
        a = g / trace.clamp_min(torch.finfo(dtype).tiny)
        for _ in range(self.squarings):
            a = a @ a
            a = a / torch.diagonal(a).sum().clamp_min(torch.finfo(dtype).tiny)
        # a is now close to the projector on the top eigenvector(s): take its fullest column.
        v = a.index_select(1, torch.diagonal(a).argmax().reshape(1)).reshape(-1)
        v = v / v.norm().clamp_min(torch.finfo(dtype).tiny)
        rayleigh = torch.dot(v, g @ v)
        # Rounding must not push it past 1; a zero update (frozen head) is 0 / 0: undefined.
        return fro2, Ratio(torch.minimum(rayleigh, trace).double(), trace.double())

    def _power(self) -> tuple[Any, Any]:
        import torch

        w, w0 = self.weight.detach(), self.w0
        if self._v is None:
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            self._v = torch.randn(w.shape[1], generator=gen, dtype=torch.float32).to(w.device)
        v = self._v / self._v.norm().clamp_min(1e-30)
        blocks = range(0, w.shape[0], self.block_rows)
        fro2 = torch.zeros((), dtype=torch.float64, device=w.device)
        rayleigh = fro2
        for it in range(self.iters):
            nxt = torch.zeros_like(v)
            for r in blocks:
                d = w[r:r + self.block_rows].float() - w0[r:r + self.block_rows].float()
                if it == 0:
                    fro2 = fro2 + (d * d).sum(dtype=torch.float64)
                nxt += d.t() @ (d @ v)
            # v^T (dW^T dW) v = ||dW v||^2 for the unit v this pass started from.
            rayleigh = torch.dot(v, nxt).double()
            norm = nxt.norm()
            # A zero update (frozen head) keeps the old direction for the next warm start.
            v = torch.where(norm > 0, nxt / norm.clamp_min(1e-30), v)
        self._v = v
        # In exact arithmetic rayleigh <= sigma_1^2 <= fro2; rounding must not push it past 1.
        return fro2, Ratio(torch.minimum(rayleigh, fro2), fro2)

    @staticmethod
    def finalize_now(measurement: dict[str, Any] | None) -> dict[str, float | None]:
        """The measurement as python floats; waits for the device, so not on the training thread."""
        if not measurement:
            return {}
        from fadewatch.stats.inputs import prepare
        from fadewatch.stats.pipeline import finalize, reduce

        return finalize(reduce(prepare(scalars=measurement)).to_host_async()).scalars
