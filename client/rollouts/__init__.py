"""Rollouts for the inspector: whole groups of each step, chosen, decoded and fitted to a budget.

``run.log(step, ..., prompts=texts, completions=ids, tokenizer=tok)`` keeps, per step, a
stratified sample of whole groups (by the sign of their advantages and their difficulty
bin, the groups of most |A| mass first) within ``RolloutConfig.step_bytes``, and the run
within ``RolloutConfig.run_bytes``. The training thread launches the choice and one copy
of the chosen rows; decoding and fitting happen on the background thread.
"""

from fadewatch.rollouts.config import RolloutConfig, RunBudget

__all__ = ["RolloutConfig", "RunBudget"]
