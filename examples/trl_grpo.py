"""GRPO with Hugging Face TRL, watched by fadewatch: the one line is `fadewatch.watch(trainer, ...)`.

Runs on a CPU in seconds: a 2-layer Llama initialised at random and a word-level tokenizer
built here (nothing is downloaded) learn to answer "add 3 + 4 =". Start a server first
(`fadewatch server`), or set FADEWATCH_MODE=offline and upload later with `fadewatch sync`.

    pip install 'fadewatch[trl]'
    python examples/trl_grpo.py --steps 20
"""

from __future__ import annotations

import argparse
import random
import tempfile

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from trl import GRPOConfig, GRPOTrainer

import fadewatch

WORDS = [str(d) for d in range(10)] + ["add", "+", "=", "the", "answer", "is"]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>", padding_side="left")


def correct_sum(completions: list[str], answer: list[str], **_) -> list[float]:
    """1 when the first word of the completion is the sum."""
    return [1.0 if (text.split() or [""])[0] == want else 0.0 for text, want in zip(completions, answer)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--project", default="examples")
    args = parser.parse_args()

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, pad_token_id=0, eos_token_id=1, bos_token_id=1))
    rng = random.Random(0)
    pairs = [(rng.randrange(5), rng.randrange(5)) for _ in range(args.steps * 2)]
    dataset = Dataset.from_list([{"prompt": f"add {a} + {b} =", "answer": str(a + b)} for a, b in pairs])

    with tempfile.TemporaryDirectory() as output_dir:
        trainer = GRPOTrainer(
            model=model, reward_funcs=[correct_sum], train_dataset=dataset, processing_class=tokenizer,
            args=GRPOConfig(output_dir=output_dir, max_steps=args.steps, per_device_train_batch_size=8,
                            num_generations=4, max_completion_length=6, learning_rate=1e-3,
                            report_to=[], save_strategy="no", use_cpu=True, logging_steps=5))
        watcher = fadewatch.watch(trainer, project=args.project, name="trl-grpo-tiny")  # the one line
        trainer.train()
    print(f"logged {watcher.run.health()['logged']} steps to {args.project}/trl-grpo-tiny")


if __name__ == "__main__":
    main()
