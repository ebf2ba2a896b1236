"""What ``fadewatch demo`` does: find or start a server, train one policy per advantage
estimator side by side, log every step with the hook, report the figures.

    from fadewatch.demo.session import DemoOptions, run_demo
    result = run_demo(DemoOptions(port=8700, data_dir=Path("~/.fadewatch"), steps=300))

The trainers are interleaved step by step in this one process, with one torch thread, so
every run moves forward together on the dashboard and the demo keeps to about one core
for training (the hook's statistics and the server take the rest of a second one).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

import fadewatch
from fadewatch import advantages
from fadewatch.demo.report import RunFigures, Trace, fetch_alerts, format_table
from fadewatch.demo.serving import DemoServer, ServerUnavailable, probe
from fadewatch.demo.trainer import DemoConfig, StepResult, Trainer, warm_start
from fadewatch.errors import UsageError
from fadewatch.protocol import metrics

__all__ = ["DEFAULT_ESTIMATORS", "DemoOptions", "DemoResult", "run_demo"]

DEFAULT_ESTIMATORS = ("psr", "grpo", "nsr", "fade")
ALERT_POLL_S = 2.0
HEAD_EVERY = 10  # steps between measurements of the output head's geometry


@dataclass
class DemoOptions:
    port: int = 8700
    data_dir: Path = Path("~/.fadewatch")
    steps: int = 300
    estimators: tuple[str, ...] = DEFAULT_ESTIMATORS
    seed: int = 0
    project: str = "demo"
    threads: int = 1
    exit_when_done: bool = False
    progress: bool = True  # tqdm bars on the terminal
    config: DemoConfig = field(default_factory=DemoConfig)

    def check(self) -> None:
        unknown = [e for e in self.estimators if e not in advantages.ESTIMATORS]
        if unknown or not self.estimators:
            raise UsageError(f"estimators: unknown {', '.join(unknown) or '(none given)'}; choose from "
                             f"{', '.join(sorted(advantages.ESTIMATORS))}")
        if len(set(self.estimators)) != len(self.estimators):
            raise UsageError("estimators: each estimator at most once")
        if self.steps < 1:
            raise UsageError(f"steps must be at least 1, got {self.steps}")
        if not 0 < self.port < 65536:
            raise UsageError(f"port must be in 1-65535, got {self.port}")
        if self.threads < 1:
            raise UsageError(f"threads must be at least 1, got {self.threads}")


@dataclass
class DemoResult:
    url: str
    started_server: bool
    figures: list[RunFigures]
    seconds: float  # training wall time, from the first step to the last run finished
    delivered: bool  # every logged step was stored by the server


class _Lane:
    """One estimator: its trainer, its run, its progress bar and the trace for the summary."""

    def __init__(self, estimator: str, opts: DemoOptions, url: str, stamp: str, position: int):
        self.estimator = estimator
        self.trainer = Trainer(estimator, opts.seed, opts.config)
        config = {"estimator": estimator, "seed": opts.seed, "steps": opts.steps,
                  **dataclasses.asdict(opts.config)}
        self.run = fadewatch.init(project=opts.project, name=f"{estimator}-seed{opts.seed}-{stamp}",
                                  config=config, url=url, dir=opts.data_dir, mode="online")
        self.run.watch_head(self.trainer.policy.head, every=HEAD_EVERY)
        self.trace = Trace()
        self.alerts: dict[str, int] = {}
        self.bar = tqdm(total=opts.steps, desc=f"{estimator:>6}", position=position, leave=True,
                        dynamic_ncols=True, disable=not opts.progress, unit="step")

    def step(self) -> None:
        s: StepResult = self.trainer.step()
        extra = {k: v for k, v in s.scalars.items() if k.startswith("fade/")}
        # The hook computes entropy, pass@k and the rest from the raw batch, as in any trainer;
        # prompts, token ids and the task's decoder give the rollout inspector its text.
        self.run.log(s.step, advantages=s.advantages, rewards=s.rewards, group_ids=s.group_ids,
                     entropy=s.entropy, mask=s.mask, logprobs=s.logprobs, completions=s.tokens,
                     prompts=s.prompts, tokenizer=self.trainer.config.task.decode,
                     loss=s.loss, kl=s.scalars["approx_kl"], clip_fraction=s.scalars["clip_fraction"],
                     lr=self.trainer.config.lr,
                     **extra)
        self.trace.add(s.scalars)
        recent = self.trace.recent()
        fired = f" alerts: {', '.join(sorted(self.alerts))}" if self.alerts else ""
        self.bar.set_postfix_str(f"entropy {recent['entropy']:.2f} pass@1 {recent['pass@1']:.2f} "
                                 f"pass@G {recent['pass@G']:.2f}{fired}", refresh=False)
        self.bar.update(1)


def _connect(opts: DemoOptions, echo: Callable[[str], None]) -> tuple[str, DemoServer | None]:
    url = f"http://127.0.0.1:{opts.port}"
    found = probe(url)
    if found == "fadewatch":
        echo(f"Using the fadewatch server already running at {url}")
        return url, None
    if found == "other":
        raise ServerUnavailable(f"port {opts.port} is taken by something that is not a fadewatch server; "
                                "pass another --port")
    server = DemoServer(opts.port, Path(opts.data_dir)).start()
    echo(f"Started a fadewatch server at {url} (SQLite: {server.database_url.removeprefix('sqlite:///')})")
    return url, server


def _poll_alerts(lanes: list[_Lane], url: str, token: str | None) -> None:
    ids = {lane.run.id: lane for lane in lanes if lane.run.id is not None}
    try:
        found = fetch_alerts(url, token, list(ids), timeout=2.0)
    except Exception:  # noqa: BLE001 - the terminal display never stops the training
        return
    for rid, rules in found.items():
        ids[rid].alerts = rules


def run_demo(opts: DemoOptions, echo: Callable[[str], None] = print,
             wait: Callable[[], None] | None = None) -> DemoResult:
    """Run the demo; ``wait`` is called after training when this call started the server
    and ``exit_when_done`` is off (the CLI waits for Ctrl-C there)."""
    opts.check()
    opts.data_dir = Path(opts.data_dir).expanduser()
    threads = torch.get_num_threads()
    torch.set_num_threads(opts.threads)
    try:
        return _run(opts, echo, wait)
    finally:
        torch.set_num_threads(threads)


def _run(opts: DemoOptions, echo: Callable[[str], None], wait: Callable[[], None] | None) -> DemoResult:
    url, server = _connect(opts, echo)
    token = fadewatch.get_settings().token
    lanes: list[_Lane] = []
    try:
        echo(f"Dashboard: {url}/")
        t0 = time.monotonic()
        warm_start(opts.config, opts.seed)
        echo(f"Warm-up: supervised pre-training of the policy ({opts.config.warmup_steps} steps) "
             f"took {time.monotonic() - t0:.1f} s; now {opts.steps} RL steps per estimator")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        lanes = [_Lane(e, opts, url, stamp, i) for i, e in enumerate(opts.estimators)]
        start, polled = time.monotonic(), time.monotonic()
        for _ in range(opts.steps):
            for lane in lanes:
                lane.step()
            if time.monotonic() - polled > ALERT_POLL_S:
                _poll_alerts(lanes, url, token)
                polled = time.monotonic()
        delivered = all([lane.run.finish(timeout=60) for lane in lanes])
        seconds = time.monotonic() - start
        for lane in lanes:
            lane.bar.close()
        figures = _figures(lanes, url, token, echo)
        echo("")
        echo(format_table(figures))
        ids = ",".join(str(f.run_id) for f in figures if f.run_id is not None)
        shown = ",".join([metrics.ENTROPY_MEAN, metrics.SIGN_BALANCE, metrics.DIVERSITY_DISTINCT_FRAC,
                          metrics.pass_at(1), metrics.pass_at(opts.config.group_size), metrics.DIFFICULTY_PEAK])
        echo(f"\nTraining took {seconds:.0f} s. Compare the runs: {url}/compare?runs={ids}&metrics={shown}")
        if not delivered:
            echo("Some steps did not reach the server; they stay in the spool for `fadewatch sync`.")
        if server is not None and not opts.exit_when_done and wait is not None:
            echo(f"The server keeps serving at {url}/ ; Ctrl-C to stop.")
            wait()
        return DemoResult(url, server is not None, figures, seconds, delivered)
    except BaseException:
        for lane in lanes:
            lane.bar.close()
            lane.run.finish(timeout=5, status="failed")
        raise
    finally:
        if server is not None:
            server.stop()


def _figures(lanes: list[_Lane], url: str, token: str | None, echo: Callable[[str], None]) -> list[RunFigures]:
    ids = [lane.run.id for lane in lanes if lane.run.id is not None]
    try:
        alerts = fetch_alerts(url, token, ids)
    except Exception as exc:  # noqa: BLE001 - the figures are still worth printing
        echo(f"(could not read the alerts: {exc})")
        alerts = {}
    return [RunFigures.of(lane.estimator, lane.run.id, lane.trace, alerts.get(lane.run.id, {}))
            for lane in lanes]
