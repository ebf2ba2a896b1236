"""Per-step statistics of RL post-training: sign and difficulty axes, entropy, diversity, geometry.

Three calls split the work so that the training thread never waits:

    inputs = prepare(advantages=adv, rewards=r, group_ids=uid, entropy=ent, mask=mask)  # O(N) checks
    red = reduce(inputs).to_host_async()    # vectorised math on the data's device, async copy
    stats = finalize(red)                   # background thread: floats and histogram dicts
"""

from fadewatch.stats.config import HistogramSpec, StatsConfig
from fadewatch.stats.geometry import HeadWatcher
from fadewatch.stats.inputs import StepInputs, prepare
from fadewatch.stats.pipeline import Reduced, StepStats, compute, finalize, reduce
from fadewatch.stats.scalars import Ratio

__all__ = ["HeadWatcher", "HistogramSpec", "Ratio", "Reduced", "StatsConfig", "StepInputs",
           "StepStats", "compute", "finalize", "prepare", "reduce"]
