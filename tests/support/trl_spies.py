"""What a watched TRL training logged, next to what its loss trained on, for the matrix tests.

``LossSpy`` wraps the trainer's loss before ``fadewatch.watch`` does, so it sees every
micro-batch exactly as TRL hands it to the loss: the rollouts' indices (the hook's tag), the
advantages and the number of completion tokens. ``LogSpy`` records every ``run.log`` call of
the hook. ``check_records`` holds the assertions every configuration must pass.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from fadewatch.integrations.trl_batch import ROLLOUT_KEY

__all__ = ["LogSpy", "LossSpy", "check_records", "loo_advantages"]


class LossSpy:
    """Every rollout the loss trained on: index -> (advantage, completion tokens), and the passes."""

    def __init__(self, trainer):
        self.rollouts: dict[int, tuple[float, int]] = {}
        self.trained: Counter = Counter()  # index -> times trained on
        original = trainer._compute_loss

        def spy(model, inputs, *args, **kwargs):
            rows = inputs[ROLLOUT_KEY].tolist()
            adv = inputs["advantages"].detach().cpu().double().numpy()
            mask = inputs["completion_mask"]
            if inputs.get("tool_mask") is not None:
                mask = mask * inputs["tool_mask"]
            tokens = mask.sum(1).tolist()
            for row, a, t in zip(rows, adv, tokens):
                self.rollouts[row] = (float(a), int(t))
                self.trained[row] += 1
            return original(model, inputs, *args, **kwargs)

        trainer._compute_loss = spy

    def dump(self, path: Path) -> None:
        Path(path).write_text(json.dumps({"rollouts": self.rollouts, "trained": self.trained}))

    @classmethod
    def load(cls, *paths: Path) -> LossSpy:
        spy = cls.__new__(cls)
        spy.rollouts, spy.trained = {}, Counter()
        for path in paths:
            data = json.loads(Path(path).read_text())
            spy.rollouts.update({int(k): tuple(v) for k, v in data["rollouts"].items()})
            spy.trained.update({int(k): v for k, v in data["trained"].items()})
        return spy


class LogSpy:
    """The hook's ``run.log`` calls: step -> its arrays (as numpy) and scalars."""

    def __init__(self, run):
        self.calls: dict[int, dict] = {}
        original = run.log

        def spy(step, **kwargs):
            self.calls[step] = {k: _host(v) for k, v in kwargs.items()}
            return original(step, **kwargs)

        run.log = spy

    def records(self) -> dict[int, dict]:
        """The calls that carried rollouts."""
        return {s: c for s, c in self.calls.items() if "advantages" in c}

    def dump(self, path: Path) -> None:
        Path(path).write_text(json.dumps({s: {k: v.tolist() if isinstance(v, np.ndarray) else v
                                              for k, v in c.items()} for s, c in self.records().items()}))

    @staticmethod
    def load(path: Path) -> dict[int, dict]:
        data = json.loads(Path(path).read_text())
        return {int(s): {k: np.asarray(v) if isinstance(v, list) and k != "completions" else v
                         for k, v in c.items()} for s, c in data.items()}


def _host(value):
    if hasattr(value, "detach"):
        return value.detach().cpu().double().numpy()
    if isinstance(value, np.ndarray):
        return value
    return value


def rows_of(record: dict, group_size: int) -> list[int]:
    """The rollout indices of a record whose groups are whole, in the record's order."""
    return [g * group_size + k for g in sorted(set(record["group_ids"].tolist())) for k in range(group_size)]


def check_records(records: dict[int, dict], loss: LossSpy, group_size: int, stored=None) -> None:
    """Whole groups in every record; the advantages logged are the loss's, row by row; the
    entropy covers every completion token of the record. With ``stored`` (tests.support.
    trl_checks.Stored), the server's group counts agree with the number of rollouts."""
    assert records, "no step carried rollouts"
    for step, record in records.items():
        sizes = Counter(record["group_ids"].tolist())
        assert set(sizes.values()) == {group_size}, (step, sizes)
        assert list(record["group_ids"]) == sorted(record["group_ids"]), step  # generation order
        rows = rows_of(record, group_size)
        assert all(row in loss.rollouts for row in rows), (step, "logged a rollout the loss never saw")
        np.testing.assert_allclose(record["advantages"], [loss.rollouts[r][0] for r in rows], atol=1e-6,
                                   err_msg=f"step {step}")
        assert record["entropy"].shape == record["mask"].shape
        assert record["mask"].sum() == sum(loss.rollouts[r][1] for r in rows), step
    if stored is not None:
        n_groups, adv = stored.series("difficulty/n_groups"), stored.histogram("advantages")
        entropy = stored.histogram("entropy")
        assert sorted(adv) == sorted(records) == sorted(n_groups)
        for step, record in records.items():
            assert n_groups[step] * group_size == adv[step]["count"] == len(record["group_ids"]), step
            assert entropy[step]["count"] == record["mask"].sum(), step


def loo_advantages(rewards: np.ndarray, group_size: int) -> np.ndarray:
    """RLOO's advantages from rewards: each reward less the mean of the others in its group."""
    grouped = rewards.reshape(-1, group_size)
    baseline = (grouped.sum(1, keepdims=True) - grouped) / (group_size - 1)
    return (grouped - baseline).reshape(-1)
