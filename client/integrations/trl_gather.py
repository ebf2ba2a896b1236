"""Every process's rollouts of an optimizer step, sent to the main process only.

A collective: every process calls ``ToMain.send`` once per optimizer step, whatever happened
to it locally, and the calls it makes depend only on what all processes agreed on, so no
failure on one process leaves the others waiting in a collective:

1. all-gather of a 9-number header per process (has it rollouts, how many, how wide, which
   parts, its loss): every process learns the same plan;
2. when nobody has rollouts, stop here (every process knows it);
3. each process packs its rollouts into two padded buffers, and the main process makes room
   for all of them; an all-reduce of "this went well" lets every process stop together if
   one of them failed (out of memory, say);
4. two gathers to the main process: the rollout indices, then every number of the rollouts.

Only the main process receives the rollouts (the memory of a gather, not an all-gather).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ToMain"]

# header: ok, rows, token width, advantage width (0: one per rollout), rewards?, entropy?, logprobs?, loss?, loss
_HEADER = 9


class ToMain:
    """Sends each process's chunk of rollouts to the main process (rank 0)."""

    def __init__(self, accelerator: Any, on_error: Callable[[str, BaseException], None]):
        self.accelerator = accelerator
        self.on_error = on_error  # (what, exception): counted and logged by the watcher

    def send(self, chunk: dict[str, Any] | None, loss: Any) -> tuple[list[dict[str, Any]], float | None]:
        """The chunks of every process (on the main process; [] elsewhere) and the mean loss."""
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            # processes without a torch.distributed group (XLA, say): the main process logs its own part
            self.on_error("gathering rollouts (no torch.distributed process group: other processes' "
                          "rollouts are left out)", RuntimeError("torch.distributed is not initialized"))
            mean_loss = float(loss) if loss is not None else None
            return ([chunk] if chunk is not None and self.accelerator.is_main_process else []), mean_loss
        device = self.accelerator.device
        try:
            header = _header(chunk, loss, device)
        except Exception as exc:  # noqa: BLE001 - take part with nothing rather than not at all
            self.on_error("describing this process's rollouts", exc)
            chunk, header = None, torch.zeros(_HEADER, dtype=torch.float64, device=device)
        world = dist.get_world_size()
        try:
            headers = [torch.empty_like(header) for _ in range(world)]
            dist.all_gather(headers, header)
            table = torch.stack(headers).cpu().tolist()
        except Exception as exc:  # noqa: BLE001
            self.on_error("exchanging the step's headers between processes", exc)
            return [], None
        losses = [row[8] for row in table if row[7]]
        mean_loss = sum(losses) / len(losses) if losses else None
        plan = _Plan(table)
        if plan.rows == 0:
            return [], mean_loss
        main = self.accelerator.is_main_process
        ok = torch.ones(1, dtype=torch.int64, device=device)
        try:
            ints, floats = plan.pack(chunk if table[dist.get_rank()][0] else None, device)
            received = ([torch.empty_like(ints) for _ in range(world)],
                        [torch.empty_like(floats) for _ in range(world)]) if main else (None, None)
        except Exception as exc:  # noqa: BLE001
            self.on_error("packing the step's rollouts", exc)
            ok.zero_()
            ints = floats = None
        try:
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
            if not ok.item():
                return [], mean_loss  # some process could not take part: all of them skip this step
            dist.gather(ints, received[0], dst=0)
            dist.gather(floats, received[1], dst=0)
        except Exception as exc:  # noqa: BLE001
            self.on_error("gathering the step's rollouts on the main process", exc)
            return [], mean_loss
        if not main:
            return [], mean_loss
        return [plan.unpack(i, f, int(row[1])) for i, f, row in zip(*received, table) if row[0]], mean_loss


def _header(chunk: dict[str, Any] | None, loss: Any, device: Any) -> Any:
    import torch

    values = [0.0] * _HEADER
    if chunk is not None:
        adv = chunk["advantages"]
        values[:7] = [1.0, float(len(chunk["rows"])), float(chunk["mask"].shape[1]),
                      float(adv.shape[1]) if adv.ndim == 2 else 0.0, float(chunk["rewards"] is not None),
                      float(chunk["entropy"] is not None), float(chunk["logprobs"] is not None)]
    header = torch.tensor(values, dtype=torch.float64, device=device)
    if loss is not None:
        header[7] = 1.0
        header[8] = loss.detach().to(torch.float64).reshape(())  # stays on the device: no sync here
    return header


class _Plan:
    """The shape of the exchange, the same on every process (made from the gathered headers)."""

    def __init__(self, table: list[list[float]]):
        senders = [row for row in table if row[0]]
        self.rows = int(max((row[1] for row in senders), default=0))
        self.width = int(max((max(row[2], row[3]) for row in senders), default=0))
        self.adv_tokens = any(row[3] for row in senders)  # per-token advantages (some trainer subclasses)
        # a part some process lacks is left out for all of them
        self.parts = [name for i, name in ((4, "rewards"), (5, "entropy"), (6, "logprobs"))
                      if senders and all(row[i] for row in senders)]

    def columns(self) -> list[tuple[str, int]]:
        cols = [("advantages", self.width if self.adv_tokens else 1), ("mask", self.width)]
        return cols + [(p, 1 if p == "rewards" else self.width) for p in self.parts]

    def pack(self, chunk: dict[str, Any] | None, device: Any) -> tuple[Any, Any]:
        import torch

        ints = torch.zeros(self.rows, 2, dtype=torch.int64)
        floats = torch.zeros(self.rows, sum(w for _, w in self.columns()), dtype=torch.float32, device=device)
        if chunk is not None:
            n = len(chunk["rows"])
            ints[:n, 0], ints[:n, 1] = chunk["rows"], chunk["passes"]
            start = 0
            for name, width in self.columns():
                value = chunk[name].to(device=device, dtype=torch.float32)
                if value.ndim == 1:
                    value = value.unsqueeze(1).expand(-1, width)
                floats[:n, start:start + value.shape[1]] = value
                start += width
        return ints.to(device), floats

    def unpack(self, ints: Any, floats: Any, n: int) -> dict[str, Any]:
        host = ints[:n].cpu()
        out: dict[str, Any] = {"rows": host[:, 0], "passes": host[:, 1]}
        start = 0
        for name, width in self.columns():
            value = floats[:n, start:start + width]
            out[name] = value[:, 0] if width == 1 else value
            start += width
        out["rewards"] = out["rewards"].cpu().double() if "rewards" in out else None
        for name in ("entropy", "logprobs"):
            out.setdefault(name, None)
        return out
