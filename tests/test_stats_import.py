"""fadewatch.stats imports and computes on numpy input where torch cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_stats_work_without_torch():
    script = textwrap.dedent('''
        import sys

        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None

        sys.meta_path.insert(0, NoTorch())
        import numpy as np
        import fadewatch.stats as stats

        s = stats.compute(advantages=np.array([0.5, -0.5, 0.0, 0.0]), rewards=[1, 0, 1, 1],
                          group_ids=2, entropy=np.ones((4, 3)), mask=np.ones((4, 3)),
                          completions=["a b", "a c", "b", "b"])
        assert s.scalars["sign/balance"] == 0.0, s.scalars
        assert s.scalars["diversity/distinct_frac"] == 0.75
        assert "torch" not in sys.modules
        print("ok")
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_public_surface_is_declared():
    import fadewatch.stats as stats

    assert sorted(stats.__all__) == sorted(set(stats.__all__))
    for name in stats.__all__:
        assert hasattr(stats, name), name
    for name in ("StatsConfig", "HistogramSpec", "StepInputs", "prepare", "reduce", "finalize",
                 "StepStats", "HeadWatcher", "compute"):
        assert name in stats.__all__
