"""The actor-critic with an ask head (Ask-AC, Liu et al., IEEE TSMC 2023, arXiv:2207.01955).

As the official `ActorCriticAskPolicy` (stable-baselines3 MlpPolicy sizes): a policy trunk
[64, 64] (tanh) feeding an *ask head* (2-way: ask / act) and the *standard head* (|A|-way),
and a separate value trunk [64, 64] → V(s). Orthogonal initialisation as SB3 (gain √2 in the
trunks, 0.01 on the action heads, 1 on the value head).

The counters below are buffers, not parameters: they travel with the model to the server,
which FedAvg-averages them like every array (all clients run the same number of steps per
round, so the mean is exact). The shared reply carries only the loop's fixed metrics, so
this is how environment time, advisor queries and training return reach the server.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from methods.askac.cartpole import NUM_ACTIONS, OBS_DIM

# Buffers (all float64 so step counts stay exact): what they count, per client.
COUNTERS = ("env_steps", "advisor_queries", "train_return", "selector_momentum")


def _mlp(hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(OBS_DIM, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())


class AskActorCritic(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.policy_trunk = _mlp(hidden)
        self.ask_head = nn.Linear(hidden, 2)  # index 0 = ask the advisor, 1 = act myself
        self.standard_head = nn.Linear(hidden, NUM_ACTIONS)
        self.value_trunk = _mlp(hidden)
        self.value_head = nn.Linear(hidden, 1)
        for name in COUNTERS:
            # env_steps: cumulative environment steps; advisor_queries: cumulative queries;
            # train_return: mean return of the last round's finished training episodes;
            # selector_momentum: the selector's running mean m of the critic error (Eq. ask).
            self.register_buffer(name, torch.zeros((), dtype=torch.float64))
        self._init_weights()

    def _init_weights(self) -> None:
        for trunk in (self.policy_trunk, self.value_trunk):
            for layer in trunk:
                if isinstance(layer, nn.Linear):
                    nn.init.orthogonal_(layer.weight, gain=math.sqrt(2))
                    nn.init.zeros_(layer.bias)
        for head, gain in ((self.ask_head, 0.01), (self.standard_head, 0.01), (self.value_head, 1.0)):
            nn.init.orthogonal_(head.weight, gain=gain)
            nn.init.zeros_(head.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """obs (B, 4) → ask logits (B, 2), standard logits (B, |A|), values (B,)."""
        latent = self.policy_trunk(obs)
        values = self.value_head(self.value_trunk(obs)).squeeze(-1)
        return self.ask_head(latent), self.standard_head(latent), values

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.value_trunk(obs)).squeeze(-1)


def numpy_policy(model: AskActorCritic):
    """The model's current weights as a numpy function obs (4,) → (π_ask, π, V).

    Rollouts evaluate one state at a time with fixed weights; numpy does that ~5× faster
    than torch's per-call overhead (35 vs 175 µs), which dominates a CartPole step here.
    """
    def weights(layer: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
        return layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy()

    p1, p2 = weights(model.policy_trunk[0]), weights(model.policy_trunk[2])
    v1, v2 = weights(model.value_trunk[0]), weights(model.value_trunk[2])
    ask, std, val = weights(model.ask_head), weights(model.standard_head), weights(model.value_head)

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max())
        return e / e.sum()

    def policy(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        h = np.tanh(p2[0] @ np.tanh(p1[0] @ obs + p1[1]) + p2[1])
        g = np.tanh(v2[0] @ np.tanh(v1[0] @ obs + v1[1]) + v2[1])
        return softmax(ask[0] @ h + ask[1]), softmax(std[0] @ h + std[1]), float((val[0] @ g + val[1])[0])

    return policy
