"""Weight geometry of the output head: ||W_t - W_0||_F and the rank-1 fraction of the update."""

from __future__ import annotations

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


class HeadWatcher:
    """Every `every` steps, ||dW||_F and sigma_1(dW)^2 / ||dW||_F^2 for dW = W_now - W_first.

    The first call keeps a copy of W on its own device (as much memory as the head).
    sigma_1 comes from `iters` power iterations on dW^T dW, warm-started from the last
    measurement; dW is formed a block of rows at a time, so no second full-size copy is made.
    Results stay on the device: pass them to ``prepare(scalars=...)`` or ``finalize_now``.

        head = HeadWatcher(model.lm_head, every=50)
        m = head.maybe_measure(step)           # None on most steps
    """

    def __init__(self, head: Any, every: int = 100, iters: int = 20, block_elems: int = 1 << 24,
                 seed: int = 0):
        if int(every) < 1 or int(iters) < 1:
            raise UsageError(f"HeadWatcher needs every >= 1 and iters >= 1, got {every}, {iters}")
        self.weight = _weight(head)
        self.every, self.iters, self.seed = int(every), int(iters), seed
        self.block_rows = max(1, int(block_elems) // max(1, self.weight.shape[1]))
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
        w, w0 = self.weight.detach(), self.w0
        if self._v is None:
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            self._v = torch.randn(w.shape[1], generator=gen, dtype=torch.float32).to(w.device)
        v = self._v / self._v.norm().clamp_min(1e-30)
        blocks = range(0, w.shape[0], self.block_rows)
        with torch.no_grad():
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
        return {"geometry/head_delta_norm": fro2.sqrt(),
                "geometry/rank1_frac": Ratio(torch.minimum(rayleigh, fro2), fro2)}

    @staticmethod
    def finalize_now(measurement: dict[str, Any] | None) -> dict[str, float | None]:
        """The measurement as python floats; waits for the device, so not on the training thread."""
        if not measurement:
            return {}
        from fadewatch.stats.inputs import prepare
        from fadewatch.stats.pipeline import finalize, reduce

        return finalize(reduce(prepare(scalars=measurement)).to_host_async()).scalars
