"""examples/trl_grpo.py runs as shipped and logs what it says it logs (the plain loop: test_example_loop.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: str, tmp_path: Path, *args: str) -> list[dict]:
    env = {**os.environ, "FADEWATCH_MODE": "offline", "FADEWATCH_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    records = []
    for path in sorted((tmp_path / "spool").glob("*/*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines()]
    return records


@pytest.mark.slow
def test_trl_grpo_example(tmp_path):
    records = _run("trl_grpo.py", tmp_path, "--steps", "3")
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        assert {"sign/balance", "train/loss", "train/reward_std"} <= set(r["scalars"])
        assert r["histograms"]["advantages"]["count"] == 8 and r["rollouts"]
