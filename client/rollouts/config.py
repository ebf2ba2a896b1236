"""What the hook keeps of each step's rollouts: the settings, and the per-run cap."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from fadewatch.errors import UsageError
from fadewatch.protocol.rollouts import MAX_STEP_BYTES, RUN_BYTES, STEP_BYTES

__all__ = ["RolloutConfig", "RunBudget"]


@dataclass(frozen=True)
class RolloutConfig:
    """``fadewatch.init(..., rollouts=RolloutConfig(step_bytes=128_000))``; step_bytes=0 keeps none."""

    # JSON bytes of one step's rollouts (prompts, completions, numbers); 0 turns rollouts off.
    step_bytes: int = STEP_BYTES
    # All steps of the run together: past half of it, fewer and fewer steps keep rollouts.
    run_bytes: int = RUN_BYTES
    # Groups considered per step, in the order of choice: what is copied off the device.
    groups: int = 8
    # Long texts are cut in the middle so that at least this many whole groups fit the budget.
    min_groups: int = 4
    # The groups of most |A| mass come first, whatever their stratum.
    top_mass: int = 2
    # Completions per step that also carry per-token entropy and log-probability (for shading).
    token_detail: int = 2
    # Tokens per completion copied off the device: its head and its tail beyond this.
    max_tokens: int = 4_096
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("step_bytes", "run_bytes", "groups", "min_groups", "top_mass", "token_detail", "max_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"RolloutConfig.{name} must be an int >= 0, got {value!r}")
        if self.step_bytes > MAX_STEP_BYTES:
            raise UsageError(f"RolloutConfig.step_bytes is at most {MAX_STEP_BYTES} (the server's limit), "
                             f"got {self.step_bytes}")
        if self.max_tokens < 16:
            raise UsageError(f"RolloutConfig.max_tokens must be at least 16, got {self.max_tokens}")

    @property
    def enabled(self) -> bool:
        return self.step_bytes > 0 and self.run_bytes > 0 and self.groups > 0


class RunBudget:
    """The per-run cap: which steps keep rollouts, and how many bytes they may still use.

    Phase k (k = 0, 1, ...) may spend run_bytes / ((k+1)(k+2)) bytes, keeping rollouts at
    every 2**k-th step: the phases add up to run_bytes, and each lasts longer than the one
    before, so a run of any length keeps rollouts from its whole course within the cap.
    """

    def __init__(self, config: RolloutConfig):
        self.config = config
        self.used = 0
        self.phase = 0
        self._phase_used = 0
        self._calls = 0
        self._lock = threading.Lock()

    def allowance(self) -> int:
        """Bytes the next step may use (0: this step keeps none). Called once per logged step."""
        cfg = self.config
        if not cfg.enabled:
            return 0
        with self._lock:
            keep = self._calls % (1 << self.phase) == 0
            self._calls += 1
            return min(cfg.step_bytes, cfg.run_bytes - self.used) if keep else 0

    def admit(self, nbytes: int) -> bool:
        """Count a step's rollouts against the cap; False (and nothing counted) past it."""
        with self._lock:
            if self.used + nbytes > self.config.run_bytes:
                return False
            self.used += nbytes
            self._phase_used += nbytes
            while self._phase_used >= self._phase_bytes(self.phase) and self.phase < 62:
                self._phase_used -= self._phase_bytes(self.phase)
                self.phase += 1
            return True

    def _phase_bytes(self, k: int) -> float:
        return self.config.run_bytes / ((k + 1) * (k + 2))
