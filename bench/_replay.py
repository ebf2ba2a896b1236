"""Replaying corpus streams: through the server's own ingest service (fadewatch's default rules,
in the transaction that stores the steps, exactly as a server evaluates them) and through
rlwatch 0.5.1's default detectors and its alert manager (cooldown and rate limit).

Both return, per rule or detector: the episodes (first and last step), and the notifications
sent. fadewatch's notifications are the events its engine would send (an event is sent unless
an inhibition or silence mutes it); rlwatch's are the alerts its manager lets through.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

__all__ = ["FadewatchReplay", "rlwatch_replay", "BATCH"]

BATCH = 25  # steps per ingest request, as a hook sends them


class FadewatchReplay:
    """One SQLite database and ingest service; each stream goes into a run of its own."""

    def __init__(self, file_rules=None):
        from fadewatch.server.alerts.evaluation.engine import AlertContext
        from fadewatch.server.app import prepare_database
        from fadewatch.server.http.metrics import ServerMetrics
        from fadewatch.server.ingest import IngestService
        from fadewatch.server.settings import ServerSettings

        self._tmp = tempfile.TemporaryDirectory()
        self.db = prepare_database(ServerSettings(dir=Path(self._tmp.name),
                                                  database_url=f"sqlite:///{Path(self._tmp.name) / 'replay.db'}"))
        self.metrics = ServerMetrics()
        self.service = IngestService(self.db, AlertContext(file_rules=list(file_rules or [])), self.metrics)
        self._n = 0

    def close(self) -> None:
        self.db.engine.dispose()
        self._tmp.cleanup()

    def run(self, rows: list[dict], window: int) -> dict[str, dict]:
        """{rule: {"episodes": [(fired, resolved | None)], "notifications": n, "fired": [..]}}."""
        from sqlalchemy import func, select

        from fadewatch.server.alerts.models import AlertEvent, AlertState
        from fadewatch.server.auth import OPEN
        from fadewatch.server.schemas import RunCreate, StepRecord
        from fadewatch.server.store import alerts as store
        from fadewatch.server.store import runs

        self._n += 1
        with self.db.write_transaction() as session:
            run_id = runs.create_or_resume(session, RunCreate(project="corpus", name=f"r{self._n}"), OPEN)[0].id
        failures = self.metrics.alert_evaluation_failures._value.get()
        watched = [r for r in rows if r["step"] < window]
        for i in range(0, len(watched), BATCH):
            records = [StepRecord(step=r["step"], scalars=r["scalars"], nonfinite=r["nonfinite"])
                       for r in watched[i:i + BATCH]]
            self.service.ingest(run_id, records, OPEN)
        if self.metrics.alert_evaluation_failures._value.get() != failures:
            raise RuntimeError("alert evaluation failed during the replay (see the log)")
        out: dict[str, dict] = {}
        with self.db.transaction() as session:
            states = session.execute(select(AlertState.id, AlertState.rule).where(AlertState.run_id == run_id)).all()
            for alert_id, rule in states:
                episodes = store.episodes_of(session, alert_id)
                sent = session.scalar(select(func.count()).select_from(AlertEvent)
                                      .where(AlertEvent.alert_id == alert_id, AlertEvent.muted.is_(None)))
                out[rule] = {"episodes": [(e.fired_step, e.resolved_step) for e in episodes],
                             "notifications": int(sent or 0)}
        return out


RLWATCH = ("entropy_collapse", "kl_explosion", "reward_hacking", "advantage_variance", "loss_nan",
           "gradient_norm_spike", "reward_mean_drift")


def rlwatch_replay(rows: list[dict], window: int) -> dict[str, dict] | None:
    """rlwatch's default detectors on the same steps; None without rlwatch."""
    try:
        import numpy as np
        from rlwatch.alerts import AlertManager
        from rlwatch.config import RLWatchConfig
        from rlwatch.detectors import DetectorSuite
    except ImportError:
        return None
    config = RLWatchConfig()
    suite, manager = DetectorSuite(config), AlertManager(config.alerts)
    out = {name: {"episodes": [], "notifications": 0} for name in RLWATCH}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for r in rows:
            if r["step"] >= window:
                break
            s = r["scalars"]
            rewards = np.asarray(r["rewards"]) if r.get("rewards") else None
            nonfinite = set(r["nonfinite"] or ())
            loss = s.get("loss", s.get("train/loss"))
            if nonfinite & {"loss", "train/loss"}:  # what the trainer logged: the hook flags it, rlwatch reads it
                loss = float("nan")
            for alert in suite.check_step(
                r["step"], entropy=s.get("entropy/mean"), kl_divergence=s.get("kl", s.get("train/kl")),
                reward_mean=s.get("reward/mean"), reward_std=s.get("reward/std"), rewards=rewards,
                advantage_std=s.get("adv/std"), loss=loss,
                grad_norm=s.get("train/grad_norm"),
            ):
                row = out.setdefault(alert.detector, {"episodes": [], "notifications": 0})
                if manager.send(alert):  # what its channels would receive: each alert is one message
                    row["notifications"] += 1
                    row["episodes"].append((alert.step, alert.step))
    return out
