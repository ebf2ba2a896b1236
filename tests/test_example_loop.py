"""examples/plain_grpo_loop.py runs as documented against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plain_grpo_loop.py"


def test_plain_grpo_loop_logs_its_steps(live_server, tmp_path):
    env = {**os.environ, "FADEWATCH_URL": live_server.url, "FADEWATCH_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(EXAMPLE), "25"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "every step stored by the server: True" in proc.stdout
    run = live_server.find_run("examples", "plain-grpo")
    assert run is not None and run["status"] == "finished" and run["step_count"] == 25
    assert live_server.stored_steps(run["id"], "entropy/mean") == list(range(25))
    assert live_server.stored_steps(run["id"], "sign/balance")
    assert live_server.stored_steps(run["id"], "geometry/rank1_frac") == [10, 20]
