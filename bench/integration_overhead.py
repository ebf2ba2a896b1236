"""Training time with each framework integration and without, and the time spent in the hook.

TRL (the default): the tiny setup of the TRL integration tests (a 2-layer Llama built from a
config, a word-level tokenizer built in code), trained on CPU with one torch thread. verl
and OpenRLHF: their real training steps (RayPPOTrainer.fit(), BasePPOTrainer.train_step)
with the stand-in workers of their integration tests and the same tiny Llama sampling on
the CPU (bench/_hook_harness.py). Runs with and without the hook alternate, so drift in
the machine's load hits both alike. The hook logs to a real `fadewatch server` on SQLite.

    .venv/bin/python bench/integration_overhead.py [--framework trl|verl|openrlhf] [--steps 40] [--repeats 5]

Reports the median wall time per step (and for TRL the CPU time, every thread of the
process, the hook's background threads included) and the time the training thread spends
in the hook at each step; the finish at the end, waiting for the server to store the last
steps, is timed apart. The in-hook time is the steadier figure on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
from _servers import fadewatch_server  # noqa: E402


def one_run(workdir: Path, args: argparse.Namespace, url: str | None, index: int) -> tuple[float, ...]:
    """Seconds of one training: wall and CPU in train(), in the hook's finish, in the hook at step ends."""
    import fadewatch
    from tests.support.tiny_trl import make_trainer

    trainer = make_trainer(workdir / f"run-{index}", max_steps=args.steps, per_device_train_batch_size=args.batch,
                           num_generations=args.group, max_completion_length=args.tokens,
                           gradient_accumulation_steps=args.accumulation, dataset_size=args.steps * args.batch,
                           logging_steps=args.steps, hidden_size=args.hidden, layers=args.layers,
                           **({"steps_per_generation": args.steps_per_generation} if args.steps_per_generation else {}))
    watcher = None
    if url is not None:
        watcher = fadewatch.watch(trainer, project="bench", name=f"overhead-{index}", url=url,
                                  dir=workdir / "spool", finish_timeout=60)
        watcher.run.finish = _timed(watcher.run.finish)
        watcher._step_end = _timed(watcher._step_end)  # the hook's work on the training thread
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train()
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    finish = in_hook = 0.0
    if watcher is not None:
        finish, in_hook = watcher.run.finish.seconds, watcher._step_end.seconds
        assert watcher.errors == 0 and watcher.run.health()["stored"] == args.steps, watcher.run.health()
    return total - finish, cpu, finish, in_hook


def _timed(fn):
    def timed(*a, **k):
        start = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            timed.seconds += time.perf_counter() - start

    timed.seconds = 0.0
    return timed


def hook_runs(args: argparse.Namespace, url: str) -> None:
    """verl or OpenRLHF: steps with the hook and without, alternating; the hook's share of a step."""
    import torch

    import fadewatch
    from _hook_harness import openrlhf_training, time_finish, verl_training

    train = verl_training if args.framework == "verl" else openrlhf_training
    os.environ["FADEWATCH_URL"] = url
    restore = time_finish(fadewatch.Run)
    torch.set_num_threads(1)
    print(f"{args.framework}: {args.steps} steps of {args.prompts} prompts x {args.group} responses, "
          f"{args.repeats} trainings each way")
    train("warm-up", 2, args.prompts, args.group, True)
    runs: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    for i in range(args.repeats):
        runs["without"].append(train(f"without-{i}", args.steps, args.prompts, args.group, False))
        runs["with"].append(train(f"with-{i}", args.steps, args.prompts, args.group, True))
    restore()
    step = {label: statistics.median(r["step"] * 1e3 for r in results) for label, results in runs.items()}
    in_hook = statistics.median(r["in_hook"] * 1e3 for r in runs["with"])
    print(f"wall per step: without the hook {step['without']:.1f} ms, with it {step['with']:.1f} ms")
    print(f"training thread in the hook: median {in_hook:.2f} ms/step ({in_hook / step['without'] * 100:.1f} % of a step)")
    print(f"finish at the end of training: median {statistics.median(r['finish'] for r in runs['with']):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--framework", choices=("trl", "verl", "openrlhf"), default="trl")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per training")
    parser.add_argument("--repeats", type=int, default=5, help="trainings with and without the hook")
    parser.add_argument("--batch", type=int, default=8, help="rollouts per micro-batch")
    parser.add_argument("--group", type=int, default=4, help="rollouts per prompt")
    parser.add_argument("--tokens", type=int, default=12, help="maximum completion length")
    parser.add_argument("--accumulation", type=int, default=2, help="gradient accumulation steps")
    parser.add_argument("--hidden", type=int, default=32, help="the model's width")
    parser.add_argument("--layers", type=int, default=2, help="the model's layers")
    parser.add_argument("--steps-per-generation", type=int, default=None, help="TRL: steps a generation lasts")
    parser.add_argument("--prompts", type=int, default=8, help="verl, OpenRLHF: prompts per step")
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.framework != "trl":
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["FADEWATCH_DIR"] = str(Path(tmp) / "client")
            with fadewatch_server(f"sqlite:///{Path(tmp) / 'server.db'}", Path(tmp) / "server") as url:
                hook_runs(args, url)
        return
    import torch
    import transformers
    import trl

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    rollouts = args.batch * args.accumulation
    print(f"TRL {trl.__version__}, torch {torch.__version__}, Llama {args.layers}x{args.hidden}: {args.steps} steps of {rollouts} rollouts "
          f"(groups of {args.group}, up to {args.tokens} tokens), {args.repeats} trainings each way")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with fadewatch_server(f"sqlite:///{workdir / 'server.db'}", workdir / "server") as url:
            one_run(workdir, args, url, -1)  # warm-up: imports, first server contact
            runs: dict[str, list[tuple[float, ...]]] = {"without": [], "with": []}
            for i in range(args.repeats):
                runs["without"].append(one_run(workdir, args, None, i))
                runs["with"].append(one_run(workdir, args, url, i))
    medians = {}
    for label, results in runs.items():
        wall = [r[0] / args.steps * 1e3 for r in results]
        cpu = [r[1] / args.steps * 1e3 for r in results]
        medians[label] = statistics.median(wall), statistics.median(cpu)
        print(f"{label + ' the hook:':18} wall {medians[label][0]:7.1f} ms/step, CPU {medians[label][1]:7.1f} ms/step "
              f"(wall per run: {', '.join(f'{x:.1f}' for x in wall)})")
    (wall0, cpu0), (wall1, cpu1) = medians["without"], medians["with"]
    # each run with the hook against the run without it just before: load drift cancels out
    paired = [w[0] / p[0] for p, w in zip(runs["without"], runs["with"])]
    in_hook = statistics.median(r[3] / args.steps * 1e3 for r in runs["with"])
    print(f"overhead:          wall {(wall1 / wall0 - 1) * 100:+6.1f} % (median of paired runs "
          f"{(statistics.median(paired) - 1) * 100:+.1f} %),  CPU {(cpu1 / cpu0 - 1) * 100:+6.1f} %")
    print(f"training thread in the hook at step ends: median {in_hook:.2f} ms/step "
          f"({in_hook / wall0 * 100:.1f} % of a step)")
    finishes = [r[2] for r in runs["with"]]
    print(f"finish at the end of training (delivery of the last steps): median {statistics.median(finishes):.2f} s")


if __name__ == "__main__":
    main()
