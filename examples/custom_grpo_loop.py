"""A minimal GRPO loop in plain PyTorch, logged with `run.log` (no trainer framework).

The policy answers "a + b" with a short sequence of digit tokens; the reward is 1 when the
first token is the sum. Every step samples G completions per prompt, turns the rewards into
group-normalised advantages, takes a policy-gradient step, and hands fadewatch the raw batch:
advantages, rewards, group ids, per-token entropy and log-probabilities, the mask, and the
completions as token ids.

    python examples/custom_grpo_loop.py --steps 50     # with `fadewatch server` running
"""

from __future__ import annotations

import argparse

import torch

import fadewatch

VOCAB, LENGTH = 19, 4  # tokens 0..18 (sums up to 18); completions of 4 tokens


class Policy(torch.nn.Module):
    """Logits for each completion position, from the two operands."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.embed = torch.nn.Embedding(10, width)
        self.head = torch.nn.Linear(2 * width, LENGTH * VOCAB)

    def forward(self, prompts: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(prompts).flatten(1)
        return self.head(torch.tanh(hidden)).view(-1, LENGTH, VOCAB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    args = parser.parse_args()

    torch.manual_seed(0)
    policy = Policy()
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    run = fadewatch.init(project="examples", name="custom-grpo-loop", config=vars(args))
    run.watch_head(policy.head, every=10)

    for step in range(args.steps):
        prompts = torch.randint(0, 10, (args.prompts, 2)).repeat_interleave(args.group, dim=0)
        dist = torch.distributions.Categorical(logits=policy(prompts))
        completions = dist.sample()                                    # [N, LENGTH] token ids
        logprobs = dist.log_prob(completions)                          # [N, LENGTH]
        rewards = (completions[:, 0] == prompts.sum(1)).float()        # [N]
        grouped = rewards.view(args.prompts, args.group)
        advantages = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)
        mask = torch.ones_like(logprobs)

        loss = -(advantages[:, None] * logprobs * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        run.log(step, advantages=advantages, rewards=rewards, group_ids=args.group,  # consecutive groups of G
                entropy=dist.entropy().detach(), mask=mask, logprobs=logprobs.detach(),
                completions=completions, loss=loss.detach(), lr=optimizer.param_groups[0]["lr"])

    run.finish()
    print(f"solve rate at the last step: {rewards.mean().item():.2f}")


if __name__ == "__main__":
    main()
