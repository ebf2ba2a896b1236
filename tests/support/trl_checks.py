"""Reading back what a watched TRL training stored, and what TRL itself recorded, for asserts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.support.servers import LiveServer

__all__ = ["Stored", "TrlRecorder", "load_tables"]


class Stored:
    """One run on a LiveServer: its record, scalar series, histograms and rollouts."""

    def __init__(self, server: LiveServer, project: str, name: str):
        self.server = server
        self.run = server.find_run(project, name)
        assert self.run is not None, f"run {project}/{name} is not on the server"
        self.id = self.run["id"]

    def series(self, key: str) -> dict[int, float | None]:
        with self.server.client() as c:
            body = c.get(f"/runs/{self.id}/series", params={"keys": key, "max_points": 10000}).json()
        points = body["series"].get(key, {"steps": [], "values": []})
        return dict(zip(points["steps"], points["values"]))

    def histogram(self, name: str) -> dict[int, dict]:
        with self.server.client() as c:
            body = c.get(f"/runs/{self.id}/histograms", params={"name": name, "max_steps": 10000}).json()
        return {step: {"count": body["count"][i], "mean": body["mean"][i], "min": body["min"][i],
                       "max": body["max"][i]} for i, step in enumerate(body["steps"])}

    def keys(self) -> list[str]:
        with self.server.client() as c:
            return c.get(f"/runs/{self.id}/keys").json()

    def rollouts(self) -> dict[int, list[dict]]:
        """The kept rollouts of every step, as the API returns them (whole groups, in order)."""
        out: dict[int, list[dict]] = {}
        cursor = None
        with self.server.client() as c:
            while True:
                page = c.get(f"/runs/{self.id}/rollouts", params={"order": "asc", "limit": 1000,
                                                                  **({"cursor": cursor} if cursor else {})}).json()
                for r in page["rollouts"]:
                    out.setdefault(r["step"], []).append(r)
                cursor = page["next_cursor"]
                if cursor is None:
                    return out


class TrlRecorder:
    """A TrainerCallback-like recorder of TRL's own table of rollouts at each optimizer step.

    TRL keeps the rollouts of its latest generation batch (gathered from every process) in
    ``trainer._logs``: completions, advantages and each reward function's rewards.
    """

    def __init__(self, trainer, weights: dict[str, float]):
        from transformers import TrainerCallback

        recorder = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                recorder.record(state.global_step)

        self.trainer, self.weights, self.tables = trainer, weights, {}
        trainer.add_callback(_Callback())

    def record(self, step: int) -> None:
        logs = self.trainer._logs
        reward = sum(w * np.asarray(logs["rewards"][name], dtype=np.float64) for name, w in self.weights.items())
        self.tables[step] = {"advantage": np.asarray(logs["advantages"], dtype=np.float64), "reward": reward,
                             "completion": np.asarray([str(c) for c in logs["completion"]])}

    def dump(self, path: Path) -> None:
        Path(path).write_text(json.dumps({step: {k: v.tolist() for k, v in table.items()}
                                          for step, table in self.tables.items()}))


def load_tables(path: Path) -> dict[int, dict[str, np.ndarray]]:
    return {int(step): {k: np.asarray(v) for k, v in table.items()}
            for step, table in json.loads(Path(path).read_text()).items()}
