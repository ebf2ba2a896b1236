"""How long `fadewatch demo` takes and how much CPU it uses, and the figures it prints.

Two layouts of the same default demo (psr, grpo, nsr, fade; 300 steps; seed 0):
  in-process   `fadewatch demo` starts its server in a thread of its own process (the default)
  two-process  a `fadewatch server` process is already running; the demo logs to it

For each: wall time from start to exit, the training time the demo reports, and the CPU
seconds of every process involved (their CPU share = CPU seconds / wall time; on a 2-core
machine 2.0 would mean both cores busy).

    .venv/bin/python bench/demo.py                     # both layouts, default demo
    .venv/bin/python bench/demo.py --layout in-process --steps 500
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _servers import fadewatch_server, free_port  # noqa: E402


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _demo(port: int, data_dir: Path, args: argparse.Namespace) -> tuple[float, float, str]:
    """Run the demo to completion; (wall seconds, its CPU seconds, its output)."""
    cmd = [sys.executable, "-m", "fadewatch.cli", "demo", "--port", str(port), "--dir", str(data_dir),
           "--steps", str(args.steps), "--estimators", args.estimators, "--seed", str(args.seed),
           "--exit-when-done"]
    cpu0, t0 = _children_cpu(), time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env={**os.environ, "FADEWATCH_DIR": str(data_dir)})
    wall, cpu = time.monotonic() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"the demo failed ({proc.returncode}):\n{proc.stdout}")
    return wall, cpu, proc.stdout


def _report(layout: str, wall: float, demo_cpu: float, server_cpu: float | None, out: str) -> None:
    trained = re.search(r"Training took (\d+) s", out)
    cpu = demo_cpu + (server_cpu or 0.0)
    print(f"\n== {layout}")
    print(f"wall {wall:.0f} s (training {trained.group(1) if trained else '?'} s), CPU {cpu:.0f} s "
          f"(demo {demo_cpu:.0f}" + (f", server {server_cpu:.0f}" if server_cpu is not None else "")
          + f"), mean CPU share {cpu / wall:.2f} cores")
    table = out[out.find("\nestimator ") + 1:out.find("\nTraining took")]
    print(table.rstrip())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layout", choices=["both", "in-process", "two-process"], default="both")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--estimators", default="psr,grpo,nsr,fade")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"fadewatch demo: {args.steps} steps of {args.estimators}, seed {args.seed}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="fadewatch-bench-demo-") as tmp:
        if args.layout in ("both", "in-process"):
            wall, cpu, out = _demo(free_port(), Path(tmp, "in-process"), args)
            _report("in-process (the default)", wall, cpu, None, out)
        if args.layout in ("both", "two-process"):
            data = Path(tmp, "two-process")
            data.mkdir()
            before = _children_cpu()
            with fadewatch_server(f"sqlite:///{data / 'fadewatch.db'}", data) as url:
                wall, cpu, out = _demo(int(url.rsplit(":", 1)[1]), data, args)
            server_cpu = _children_cpu() - before - cpu
            _report("two-process (demo + a running fadewatch server)", wall, cpu, server_cpu, out)


if __name__ == "__main__":
    main()
