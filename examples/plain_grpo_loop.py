"""A minimal GRPO loop in plain PyTorch, watched by fadewatch.

The task: for a target t, write 4 digits whose sum is t. The policy reads the target and
writes the 4 digits at once (one categorical per position), so the whole loop fits on a
page and runs on a CPU in seconds. Start a server first (`fadewatch server`), then:

    python examples/plain_grpo_loop.py            # FADEWATCH_URL defaults to http://127.0.0.1:8700
"""

import sys

import torch
from torch import nn

import fadewatch

LENGTH, DIGITS, MAX_SUM = 4, 10, 36
PROMPTS, G = 16, 8  # prompts per step, completions per prompt (the GRPO group)


class Policy(nn.Module):
    def __init__(self, hidden: int = 64):
        super().__init__()
        self.body = nn.Sequential(nn.Embedding(MAX_SUM + 1, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, LENGTH * DIGITS)  # the output layer fadewatch watches

    def forward(self, target: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(target)).view(-1, LENGTH, DIGITS)  # logits [N, LENGTH, DIGITS]


def main(steps: int = 60) -> None:
    torch.manual_seed(0)
    policy = Policy()
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    run = fadewatch.init(project="examples", name="plain-grpo", config={"lr": 1e-2, "G": G, "prompts": PROMPTS})
    run.watch_head(policy.head, every=10)
    for step in range(steps):
        target = torch.randint(8, 29, (PROMPTS,)).repeat_interleave(G)  # G rollouts per prompt
        group_ids = torch.arange(PROMPTS).repeat_interleave(G)
        dist = torch.distributions.Categorical(logits=policy(target))
        digits = dist.sample()  # [N, LENGTH], temperature 1
        rewards = (digits.sum(dim=1) == target).float()

        # GRPO: reward minus its group's mean, over the group's std.
        by_group = rewards.view(PROMPTS, G)
        adv = ((by_group - by_group.mean(1, keepdim=True)) / (by_group.std(1, unbiased=False, keepdim=True) + 1e-6))
        adv = adv.view(-1)

        logprobs = dist.log_prob(digits)  # [N, LENGTH]
        loss = -(adv[:, None] * logprobs).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

        run.log(step, advantages=adv, rewards=rewards, group_ids=group_ids,
                entropy=dist.entropy().detach(), logprobs=logprobs.detach(),
                mask=torch.ones_like(digits, dtype=torch.bool), completions=digits,
                loss=loss.item())
    ok = run.finish()
    print(f"logged {steps} steps as run {run.id}; every step stored by the server: {ok}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
