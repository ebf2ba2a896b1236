"""fadewatch for OpenRLHF 0.11: one line in the Ray job's runtime environment.

    ray job submit --runtime-env-json='{"worker_process_setup_hook": "fadewatch.integrations.openrlhf.setup"}' \\
        -- python3 -m openrlhf.cli.train_ppo_ray ...

Ray runs ``setup()`` in every worker process of the job. It registers patches that run when
the process imports OpenRLHF's trainer modules, which only the PPO trainer's process does:

- ``RemoteExperienceMaker.make_experience_batch``: its result, the step's experiences with
  their advantages, rewards, action masks, log-probabilities and sequences, is kept by
  reference;
- ``BasePPOTrainer.train_step`` (the sync and the async trainer): when it returns, the step
  (OpenRLHF's global step) is logged with those experiences and OpenRLHF's metrics; when it
  raises, the run is marked failed.

The run is named after ``logger.wandb.project`` / ``logger.wandb.run_name`` and its config is
OpenRLHF's arguments. It is finished at the trainer's last step, or when its process exits.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import fadewatch
from fadewatch.integrations.common import VersionRange, installed_version, numeric_scalars, patch_on_import
from fadewatch.notices import Notices, logger

__all__ = ["SUPPORTED_OPENRLHF", "OpenRLHFWatcher", "experience_arguments", "setup"]

# Read against the source of OpenRLHF 0.11.2: RemoteExperienceMaker.make_experience_batch,
# Experience, BasePPOTrainer.train_step and the fit loops that call it.
SUPPORTED_OPENRLHF = VersionRange("openrlhf", "0.11", "0.12")
_EXPERIENCE_MAKER = "openrlhf.trainer.ppo_utils.experience_maker"
_TRAINER = "openrlhf.trainer.ppo_trainer"
_RESERVED = {"advantages", "rewards", "group_ids", "entropy", "mask", "completions", "logprobs", "step"}

_setup_lock = threading.Lock()
_installed = False


def experience_arguments(experiences: list[Any], group_size: int, tokenizer: Any = None) -> dict[str, Any]:
    """``run.log`` arguments from the experiences of one step, in rollout order.

    ``group_size`` is ``rollout.n_samples_per_prompt``: OpenRLHF generates the samples of a prompt
    one after another, so a sample's group is its index in the rollout batch divided by it.
    """
    import torch
    from torch.nn.functional import pad

    width = max(int(e.action_mask.shape[1]) for e in experiences)
    index = torch.tensor([i for e in experiences for i in e.index])
    order = torch.argsort(index, stable=True)

    def cat(values: list[Any]) -> Any:
        if any(v is None for v in values):
            return None
        if values[0].ndim == 1:
            return torch.cat(values)[order]
        return torch.cat([pad(v, (0, width - v.shape[1])) for v in values])[order]

    out: dict[str, Any] = {
        "advantages": cat([e.advantages for e in experiences]),
        "mask": cat([e.action_mask for e in experiences]),
        "group_ids": (index[order] // group_size).numpy(),
        "rewards": cat([e.rewards for e in experiences]),
        "logprobs": cat([e.action_log_probs for e in experiences]),
        "entropy": cat([_entropy(e) for e in experiences]),
    }
    texts = _responses(experiences, tokenizer)
    if texts is not None:
        out["completions"] = [texts[i] for i in order.tolist()]
    return {k: v for k, v in out.items() if v is not None}


def _entropy(experience: Any) -> Any:
    """A per-token entropy a custom actor put on the experience; OpenRLHF's own forward has none."""
    value = getattr(experience, "entropy", None)
    if value is None:
        value = (experience.info or {}).get("entropy")
    if value is None or getattr(value, "shape", None) != experience.action_mask.shape:
        return None
    return value


def _responses(experiences: list[Any], tokenizer: Any) -> list[Any] | None:
    """The response tokens of each sample (action_mask marks them in sequences[:, 1:]), decoded."""
    rows = []
    for e in experiences:
        following = e.sequences[:, 1:]
        if following.shape != e.action_mask.shape:
            return None
        rows.extend(ids[m.bool()].tolist() for ids, m in zip(following, e.action_mask))
    if tokenizer is None:
        return rows
    return tokenizer.batch_decode(rows, skip_special_tokens=True)


def _config(args: Any) -> Any:
    """OpenRLHF's nested argument namespaces as a dict."""
    if hasattr(args, "__dict__") and not isinstance(args, type):
        return {k: _config(v) for k, v in vars(args).items() if not k.startswith("_")}
    return args


class OpenRLHFWatcher:
    """The fadewatch run of this process's OpenRLHF trainer, made at its first step."""

    def __init__(self) -> None:
        self.run: fadewatch.Run | None = None
        self.failure: str | None = None
        self.errors = 0
        self._experiences: list[Any] | None = None
        self._tokenizer: Any = None
        self._notices = Notices()
        self._lock = threading.Lock()
        self._said_no_entropy = False

    def on_experiences(self, maker: Any, experiences: list[Any]) -> None:
        with self._lock:
            self._experiences, self._tokenizer = experiences, getattr(maker, "tokenizer", None)

    def on_step(self, trainer: Any, step: int, status: dict[str, Any]) -> None:
        try:
            self._log(trainer, int(step), status)
        except Exception as exc:  # noqa: BLE001 - never break training
            self.errors += 1
            self._notices.error("openrlhf-log", "fadewatch: could not log OpenRLHF step %s (%r)", step, exc)

    def _log(self, trainer: Any, step: int, status: dict[str, Any]) -> None:
        with self._lock:
            experiences, self._experiences = self._experiences, None
        args = trainer.args
        if self.run is None:
            wandb = getattr(getattr(args, "logger", None), "wandb", None)
            self.run = fadewatch.init(project=getattr(wandb, "project", None) or "openrlhf",
                                      name=getattr(wandb, "run_name", None), config=_config(args))
        if self.run.finished:
            return
        arrays = {}
        if experiences:
            arrays = experience_arguments(experiences, int(args.rollout.n_samples_per_prompt), self._tokenizer)
            if "entropy" not in arrays and not self._said_no_entropy:
                self._said_no_entropy = True
                logger.warning("fadewatch: OpenRLHF's experiences carry no per-token entropy (its actor returns "
                               "log-probabilities only); steps are logged without entropy")
        scalars = {("openrlhf/" + k if k in _RESERVED else k): v for k, v in numeric_scalars(status).items()}
        self.run.log(step, **arrays, **scalars)
        last = getattr(trainer, "max_steps", None)
        if last is not None and step >= last:
            self.run.finish()

    def on_failure(self, exc: BaseException) -> None:
        run = self.run
        if run is None or run.finished:
            return
        self.failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        logger.error("fadewatch: OpenRLHF training of run %s/%s failed (%s); marking the run failed",
                     run.project, run.name, self.failure)
        try:
            run.finish(status="failed", error=exc)
        except Exception as err:  # noqa: BLE001
            self.errors += 1
            logger.warning("fadewatch: could not finish the run (%r)", err)


WATCHER = OpenRLHFWatcher()


def _patch_experience_maker(module: Any) -> None:
    cls = module.RemoteExperienceMaker
    original = cls.make_experience_batch
    if getattr(original, "__fadewatch__", False):
        return

    @functools.wraps(original)
    def make_experience_batch(self, *args: Any, **kwargs: Any) -> Any:
        experiences = original(self, *args, **kwargs)
        WATCHER.on_experiences(self, experiences)
        return experiences

    make_experience_batch.__fadewatch__ = True
    cls.make_experience_batch = make_experience_batch


def _patch_trainer(module: Any) -> None:
    cls = module.BasePPOTrainer
    original = cls.train_step
    if getattr(original, "__fadewatch__", False):
        return

    @functools.wraps(original)
    def train_step(self, rollout_samples: Any, global_step: int, *args: Any, **kwargs: Any) -> Any:
        try:
            status, step = original(self, rollout_samples, global_step, *args, **kwargs)
        except BaseException as exc:  # Ctrl-C included: the run says how training ended
            WATCHER.on_failure(exc)
            raise
        WATCHER.on_step(self, step, status)
        return status, step

    train_step.__fadewatch__ = True
    cls.train_step = train_step


def _patch_failed(module: Any, exc: Exception) -> None:
    logger.error("fadewatch: could not hook %s (%r); OpenRLHF trains without fadewatch", module.__name__, exc)


def _if_supported(patch: Any, module: Any) -> None:
    """Apply ``patch`` when the installed OpenRLHF is one the hook was checked against; else say
    so, once, in the process that trains (the one importing the trainer modules)."""
    version = installed_version("openrlhf")
    if version is not None and SUPPORTED_OPENRLHF.contains(version):
        patch(module)
    elif module.__name__ == _TRAINER:
        logger.error("fadewatch: the OpenRLHF integration supports %s, found openrlhf %s; OpenRLHF trains "
                     "without fadewatch", SUPPORTED_OPENRLHF, version)


def setup() -> None:
    """Hook OpenRLHF in this process (Ray ``worker_process_setup_hook``). Never raises; idempotent.

    Nothing is imported here: the patches run when (and if) the process imports OpenRLHF's
    trainer modules.
    """
    global _installed
    with _setup_lock:
        if _installed:
            return
        _installed = True
        try:
            patch_on_import({_EXPERIENCE_MAKER: functools.partial(_if_supported, _patch_experience_maker),
                             _TRAINER: functools.partial(_if_supported, _patch_trainer)}, _patch_failed)
        except Exception as exc:  # noqa: BLE001 - OpenRLHF must train whatever happens here
            logger.error("fadewatch: could not hook OpenRLHF (%r); it trains without fadewatch", exc)
