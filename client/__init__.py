"""fadewatch: live FADE diagnostics for RL post-training of language models.

    import fadewatch
    run = fadewatch.init(project="math-grpo", name="qwen7b-fade", config=cfg)
    run.log(step, advantages=adv, rewards=r, group_ids=uid, entropy=ent, mask=mask, loss=loss,
            prompts=prompt_texts, completions=completion_ids, tokenizer=tok)   # rollouts: optional
    run.finish()

    fadewatch.watch(trainer, project="math-grpo")   # a TRL GRPOTrainer, in one line
"""

from fadewatch.errors import FadewatchError, ServerError, UsageError
from fadewatch.integrations import watch
from fadewatch.registry import finish, init, log
from fadewatch.rollouts import RolloutConfig
from fadewatch.runs import Run
from fadewatch.settings import Settings, get_settings

__version__ = "0.1.0"

__all__ = [
    "FadewatchError",
    "RolloutConfig",
    "Run",
    "ServerError",
    "Settings",
    "UsageError",
    "__version__",
    "finish",
    "get_settings",
    "init",
    "log",
    "run",
    "watch",
]


def __getattr__(name: str):
    # `fadewatch.run` is the current run (or None), read at access time.
    if name == "run":
        from fadewatch.registry import current_run

        return current_run()
    raise AttributeError(f"module 'fadewatch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"run"})
