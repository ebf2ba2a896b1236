"""A tiny TRL GRPO setup built in code: word-level tokenizer, 2-layer Llama, digit prompts.

Nothing is downloaded. Used by the TRL integration tests and bench/integration_overhead.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["WORDS", "build_tokenizer", "build_model", "build_dataset", "digit_reward", "length_reward",
           "make_trainer"]

WORDS = [str(d) for d in range(10)] + ["+", "=", "add", "sum", "of", "and", "is", "the", "answer"]


def build_tokenizer():
    """A word-level tokenizer over WORDS with pad, eos and unk tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    tok.padding_side = "left"
    return tok


def build_model(tokenizer, seed: int = 0, hidden_size: int = 32, layers: int = 2):
    """A randomly initialised Llama (2 layers of width 32 by default) that trains in seconds on a CPU."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    return LlamaForCausalLM(config)


def build_dataset(n: int = 16, seed: int = 0):
    """Prompts "add 3 + 4 =": the reward checks the digits of the answer."""
    import random

    from datasets import Dataset

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randrange(5), rng.randrange(5)
        rows.append({"prompt": f"add {a} + {b} =", "target": str(a + b)})
    return Dataset.from_list(rows)


def digit_reward(completions: list[str], target: list[str], **_: Any) -> list[float]:
    """1 when the completion's first word is the right sum; 0.5 for any digit; 0 otherwise."""
    out = []
    for text, want in zip(completions, target):
        words = text.split()
        first = words[0] if words else ""
        out.append(1.0 if first == want else 0.5 if first.isdigit() else 0.0)
    return out


def length_reward(completions: list[str], **_: Any) -> list[float]:
    """Prefers short completions: 1 / (1 + words)."""
    return [1.0 / (1.0 + len(text.split())) for text in completions]


def make_trainer(output_dir: Path, *, trainer: str = "grpo", max_steps: int = 3, reward_funcs=None,
                 dataset_size: int = 16, seed: int = 0, hidden_size: int = 32, layers: int = 2,
                 trainer_class=None, **config: Any):
    """A GRPOTrainer (or RLOOTrainer) on the tiny model; ``config`` overrides the trainer's config.

    ``trainer_class``: a subclass of the trainer to build instead.
    """
    import trl

    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed, hidden_size, layers)
    base = dict(output_dir=str(output_dir), per_device_train_batch_size=4, num_generations=4,
                max_completion_length=6, max_steps=max_steps, learning_rate=1e-3, logging_steps=1,
                report_to=[], save_strategy="no", use_cpu=True, seed=seed, temperature=1.0,
                disable_tqdm=True, dataloader_num_workers=0)
    base.update(config)
    if trainer == "grpo":
        args, cls = trl.GRPOConfig(**base), trl.GRPOTrainer
    elif trainer == "rloo":
        args, cls = trl.RLOOConfig(**base), trl.RLOOTrainer
    else:
        raise ValueError(f"unknown trainer {trainer!r}")
    cls = trainer_class or cls
    if args.beta:
        # TRL builds the KL reference model from the policy's path: give it a local one.
        path = Path(output_dir) / "tiny-model"
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        model = str(path)
    return cls(model=model, reward_funcs=reward_funcs or [digit_reward], args=args,
               train_dataset=build_dataset(dataset_size, seed), processing_class=tokenizer)
