"""Group-relative advantage estimators (GRPO, Dr. GRPO, RLOO, PSR, NSR, W-REINFORCE,
MaxRL, F-GRPO) and the FADE advantage scheduler.

Every estimator takes ``rewards`` ([N] torch tensor on any device, numpy array or list)
and ``group_ids`` ([N] ints or strings, or an int G meaning consecutive blocks of G
rollouts per prompt) and returns [N] advantages in the rewards' dtype (float64 for lists
and integers): a torch tensor on the rewards' device for torch input, a numpy array
otherwise. The arithmetic runs in float64 on the host and at least float32 on a device,
and a group whose rewards are all equal gets exactly 0 in every dtype. Group statistics
are segment sums over group codes; nothing loops over rollouts in Python and nothing syncs
with the GPU (FadeAdvantage reads its batch's mean reward once per call).

    >>> from fadewatch import advantages
    >>> advantages.grpo([1, 0, 0, 0], group_ids=4)
    array([ 1.7320...,  -0.5773..., -0.5773..., -0.5773...])
    >>> fade = advantages.get("fade")           # stateful: one per training run
    >>> adv = fade(rewards, group_ids, entropy=mean_token_entropy)
    >>> fade.alpha, fade.delta

NaN rewards give NaN advantages for their group; the hook's non-finite alert reports it.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from fadewatch.advantages.estimators import dr_grpo, f_grpo, grpo, maxrl, nsr, psr, rloo, w_reinforce
from fadewatch.advantages.fade import FadeAdvantage, fade, fade_alpha, fade_delta
from fadewatch.errors import UsageError

__all__ = [
    "ESTIMATORS",
    "FadeAdvantage",
    "dr_grpo",
    "f_grpo",
    "fade",
    "fade_alpha",
    "fade_delta",
    "get",
    "grpo",
    "maxrl",
    "nsr",
    "psr",
    "rloo",
    "w_reinforce",
]


ESTIMATORS: dict[str, Callable[..., Any]] = {
    "grpo": grpo,
    "dr_grpo": dr_grpo,
    "rloo": rloo,
    "psr": psr,
    "nsr": nsr,
    "w_reinforce": w_reinforce,
    "maxrl": maxrl,
    "f_grpo": f_grpo,
    "fade": FadeAdvantage,  # stateful: the entry is its factory
}


def get(name: str, **params: Any) -> Callable[..., Any]:
    """A ready estimator ``est(rewards, group_ids)`` by name, with its keyword parameters.

    For "fade" this is a fresh ``FadeAdvantage(**params)``; keep one per training run.
    """
    try:
        entry = ESTIMATORS[name]
    except (KeyError, TypeError):
        raise UsageError(
            f"unknown advantage estimator {name!r}; choose one of {', '.join(sorted(ESTIMATORS))}"
        ) from None
    if isinstance(entry, type):
        return entry(**params)
    return functools.partial(entry, **params) if params else entry
