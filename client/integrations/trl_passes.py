"""The main process's assembly of TRL rollouts into whole generation passes.

An optimizer step may train on part of a generation (``steps_per_generation`` larger than
the gradient accumulation), on all of it, or on several generations. Statistics over
groups need whole groups, so rollouts wait here until every rollout of a generation has
been trained on once in the current pass over it; the optimizer step that completes the
pass logs it. With ``num_iterations > 1`` each pass over a generation is logged: the same
rollouts and advantages again, with the policy's entropy and log-probabilities of that
pass. A pass that can no longer complete (training stopped in its middle, or a process
could not send its part) is logged with its whole groups only, and the rollouts of its
partial groups are counted as dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fadewatch.integrations.trl_batch import Generation, concat_chunks

__all__ = ["PassAssembler", "Record"]

_MAX_PENDING = 16  # passes waiting at once; beyond that the oldest is given up (counted)


class Record:
    """One ``run.log``'s rollouts: whole groups, in generation order."""

    def __init__(self, arrays: dict[str, Any], generation: int, pass_index: int, groups: int):
        self.arrays, self.generation, self.pass_index, self.groups = arrays, generation, pass_index, groups


class PassAssembler:
    """Collects chunks of rollouts by (generation, pass) and hands out the complete passes."""

    def __init__(self, group_size: int, generation_of: Callable[[int], Generation | None]):
        self.group_size = group_size
        self.generation_of = generation_of
        self.dropped = 0  # rollouts left out of every record (partial groups, unplaceable rollouts)
        self._pending: dict[tuple[int, int], list[dict[str, Any]]] = {}
        self._counts: dict[tuple[int, int], int] = {}
        self._generations: dict[int, Generation] = {}

    @property
    def pending(self) -> int:
        """Rollouts waiting for the rest of their pass."""
        return sum(self._counts.values())

    def add(self, chunk: dict[str, Any]) -> None:
        """File a chunk's rollouts under their generation and pass."""
        import torch

        rows, passes = chunk["rows"].tolist(), chunk["passes"].tolist()
        places: dict[tuple[int, int], list[int]] = {}
        for i, (row, pass_index) in enumerate(zip(rows, passes)):
            gen = self.generation_of(row)
            if gen is None:
                self.dropped += 1
                continue
            self._generations[gen.offset] = gen
            places.setdefault((gen.offset, pass_index), []).append(i)
        for key, idx in places.items():
            whole = len(idx) == len(rows)
            index = torch.tensor(idx)
            piece = chunk if whole else {k: (v[index] if v is not None else None) for k, v in chunk.items()}
            self._pending.setdefault(key, []).append(piece)
            self._counts[key] = self._counts.get(key, 0) + len(idx)
        while len(self._pending) > _MAX_PENDING:
            self._give_up(min(self._pending))

    def take(self, final: bool = False) -> Record | None:
        """The passes completed since the last call (and older ones that cannot complete any more),
        as one record; with ``final``, everything pending. None when nothing is ready."""
        done = [k for k in self._pending if self._counts[k] >= self._generations[k[0]].size]
        if final:
            ready = sorted(self._pending)
        elif done:
            newest = max(done)
            ready = sorted(k for k in self._pending if k <= newest)  # older incomplete passes: stuck
        else:
            return None
        # the same generation twice in one step (a pass over it and the next one, within one
        # optimizer step, so the same policy): the rollouts are identical, so the latest is kept
        latest: dict[int, tuple[int, int]] = {}
        for key in ready:
            latest[key[0]] = key
        pieces: list[dict[str, Any]] = []
        for key in ready:
            chunks = self._pending.pop(key)
            count = self._counts.pop(key)
            if latest[key[0]] != key:
                continue
            pieces.extend(self._whole_groups(chunks, count, self._generations[key[0]]))
        for offset in [o for o in self._generations if not any(k[0] == o for k in self._pending)]:
            del self._generations[offset]
        if not pieces:
            return None
        gen_offset, pass_index = max(latest.values())
        return self._record(concat_chunks(pieces), gen_offset, pass_index)

    def _give_up(self, key: tuple[int, int]) -> None:
        self._pending.pop(key)
        self.dropped += self._counts.pop(key)

    def _whole_groups(self, chunks: list[dict[str, Any]], count: int, gen: Generation) -> list[dict[str, Any]]:
        """The chunks, less the rollouts of groups that are not all there (counted as dropped)."""
        import torch

        if count >= gen.size:
            return chunks
        groups: dict[int, int] = {}
        for c in chunks:
            for row in c["rows"].tolist():
                groups[row // self.group_size] = groups.get(row // self.group_size, 0) + 1
        whole = {g for g, n in groups.items() if n == self.group_size}
        out = []
        for c in chunks:
            keep = [i for i, row in enumerate(c["rows"].tolist()) if row // self.group_size in whole]
            self.dropped += len(c["rows"]) - len(keep)
            if keep:
                index = torch.tensor(keep)
                out.append({k: (v[index] if v is not None else None) for k, v in c.items()})
        return out

    def _record(self, merged: dict[str, Any], gen_offset: int, pass_index: int) -> Record:
        import torch

        order = torch.argsort(merged["rows"], stable=True)
        rows = merged["rows"][order]
        arrays: dict[str, Any] = {"group_ids": (rows // self.group_size).numpy()}
        for key in ("advantages", "rewards", "mask", "entropy", "logprobs"):
            value = merged.get(key)
            if value is not None:
                arrays[key] = value[order.to(value.device)] if value.device != order.device else value[order]
        texts, prompts = [], []
        for row in rows.tolist():
            gen = self.generation_of(row)
            if gen is None or gen.texts is None:
                texts = None
                break
            texts.append(gen.texts[row - gen.offset])
            prompts.append(None if gen.prompts is None else gen.prompts[row - gen.offset])
        if texts is not None:
            arrays["completions"] = texts
            if None not in prompts:
                arrays["prompts"] = prompts
        generation_index = self._generation_index(gen_offset)
        return Record(arrays, generation_index, pass_index, len(set(arrays["group_ids"].tolist())))

    def _generation_index(self, offset: int) -> int:
        gen = self.generation_of(offset)
        return offset // gen.size if gen is not None and gen.size else 0
