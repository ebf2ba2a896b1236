"""The demo's figures: entropy, pass@1 and pass@G at the start and end of each run, and
the step where each alert fired, read back through the server's alerts API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fadewatch.api_client import ApiClient

__all__ = ["RunFigures", "Trace", "fetch_alerts", "format_table"]

WINDOW = 10  # steps averaged for the "start" and "end" figures


@dataclass
class Trace:
    """Per-step entropy, pass@1 and pass@G of one run (what the summary needs, nothing more)."""

    entropy: list[float] = field(default_factory=list)
    pass_at_1: list[float] = field(default_factory=list)
    pass_at_G: list[float] = field(default_factory=list)

    def add(self, scalars: dict[str, float]) -> None:
        self.entropy.append(scalars["entropy"])
        self.pass_at_1.append(scalars["success_rate"])
        self.pass_at_G.append(scalars["pass_at_G"])

    def recent(self, n: int = WINDOW) -> dict[str, float]:
        """Means over the last n steps (single steps are noisy with 16 prompts)."""
        return {"entropy": _mean(self.entropy[-n:]), "pass@1": _mean(self.pass_at_1[-n:]),
                "pass@G": _mean(self.pass_at_G[-n:])}


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


@dataclass
class RunFigures:
    """What one estimator's run did: start and end means over WINDOW steps, alerts by rule."""

    estimator: str
    run_id: int | None
    steps: int
    entropy: tuple[float | None, float | None]
    pass_at_1: tuple[float | None, float | None]
    pass_at_G: tuple[float | None, float | None]
    alerts: dict[str, int] = field(default_factory=dict)  # rule -> step it first fired

    @classmethod
    def of(cls, estimator: str, run_id: int | None, trace: Trace, alerts: dict[str, int]) -> RunFigures:
        def ends(xs: list[float]) -> tuple[float | None, float | None]:
            return _mean(xs[:WINDOW]), _mean(xs[-WINDOW:])

        return cls(estimator, run_id, len(trace.entropy), ends(trace.entropy), ends(trace.pass_at_1),
                   ends(trace.pass_at_G), dict(alerts))

    def as_dict(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "run_id": self.run_id, "steps": self.steps,
                "entropy": list(self.entropy), "pass@1": list(self.pass_at_1),
                "pass@G": list(self.pass_at_G), "alerts": self.alerts}


def fetch_alerts(url: str, token: str | None, run_ids: list[int], timeout: float = 5.0) -> dict[int, dict[str, int]]:
    """{run id: {rule: step it first fired}} for the given runs, from GET /api/v1/alerts.

    Rules still pending (not yet fired) are left out. Raises a ServerError (fadewatch.errors)
    when the server cannot be read.
    """
    out: dict[int, dict[str, int]] = {rid: {} for rid in run_ids}
    if not run_ids:
        return out
    with ApiClient(url, token, timeout=timeout) as api:
        for rid in run_ids:
            for alert in api.alerts(run_id=rid, state=["firing", "resolved"], limit=500):
                step = alert.get("fired_step")
                if step is None:
                    continue
                rule = alert["rule"]
                out[rid][rule] = min(step, out[rid].get(rule, step))
    return out


def _pair(values: tuple[float | None, float | None]) -> str:
    a, b = values
    return "   -        " if a is None or b is None else f"{a:4.2f} -> {b:4.2f}"


def format_table(figures: list[RunFigures], highlight: str = "entropy_collapse") -> str:
    """A plain-text table of the figures, one line per run."""
    lines = [f"{'estimator':<12} {'entropy':<13} {'pass@1':<13} {'pass@G':<13} alerts (rule@step)"]
    for f in figures:
        fired = sorted(f.alerts.items(), key=lambda kv: (kv[0] != highlight, kv[1]))
        alerts = ", ".join(f"{rule}@{step}" for rule, step in fired) or "none"
        lines.append(f"{f.estimator:<12} {_pair(f.entropy):<13} {_pair(f.pass_at_1):<13} "
                     f"{_pair(f.pass_at_G):<13} {alerts}")
    return "\n".join(lines)
