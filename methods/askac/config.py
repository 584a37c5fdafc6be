"""Ask-AC's configuration (`[askac]` in a scenario, `--set askac.KEY=VALUE`).

Defaults are the official CartPole settings (`utils/default_model.py` of
github.com/liushunyu/Ask-AC: Adam lr 1e-3, n_steps 256, batch 256, 10 epochs, γ 0.99,
λ 0.95, clip 0.2, c_V 0.5, entropy 0) at the small scale of the design notes §8(c) (not shipped).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import LocalTrainingConfig
from methods.config import ConfigError

# Which learner a stage trains (the paper's method, its baselines and its ablation).
VARIANTS = ("askac", "cm", "vanilla", "no-selector")
SCHEDULES = ("linear", "constant")
# The optimiser steps one rollout feeds, in order (the official update: selector epochs,
# then PPO epochs, then imitation epochs, each its own optimiser step).
PHASES = {
    "askac": ("select", "ppo", "imitate"),
    "no-selector": ("ppo", "imitate"),
    "cm": ("ppo", "imitate"),
    "vanilla": ("ppo",),
}


@dataclass(frozen=True)
class AskACConfig(LocalTrainingConfig):
    """Ask-AC on non-stationary CartPole: one stage per compared learner.

    The shared loop's "example" is one optimiser step of the learner: `batch_size` is 1,
    and a round's data set holds rollouts-per-round × |phases| × ppo-epochs such units.
    """

    batch_size: int = 1
    """Units per optimiser step of the shared loop; must be 1 (a unit is one update)."""
    lr: float = 1e-3
    """Adam learning rate (the official linear schedule starts here; ours stays constant)."""
    optimizer: str = "adam"
    """The official optimiser (SB3's PPO uses Adam)."""
    variant: str = "askac"
    """askac | cm (advisor acts every step) | vanilla (PPO, no advisor) | no-selector."""
    compare: tuple[str, ...] = ("vanilla", "cm", "askac")
    """The stages of a run, one federated training per variant, in this order."""
    pole_lengths: tuple[float, ...] = (0.5, 1.0, 2.0)
    """Pole length (`env.unwrapped.length`) of each level, run in sequence (non-stationary)."""
    length_spread: float = 0.2
    """Client k's pole is the level's length × (1 − s + 2s·k/(n−1)): each client is its own variant."""
    rounds_per_level: int = 5
    """Server rounds spent on each level (a stage has len(pole-lengths) × this many rounds)."""
    rollouts_per_round: int = 4
    """Rollouts each client collects per round (its environment steps = this × rollout-steps)."""
    rollout_steps: int = 256
    """Environment steps per rollout (n_steps); also the minibatch size B (batch 256)."""
    ppo_epochs: int = 10
    """Epochs of each update phase per rollout (n_epochs)."""
    gamma: float = 0.99
    """Discount γ."""
    gae_lambda: float = 0.95
    """GAE λ."""
    clip_range: float = 0.2
    """PPO clip ε (the official linear schedule starts here; ours stays constant)."""
    value_coef: float = 0.5
    """c_V, weight of the value loss."""
    ask_coef: float = 0.5
    """Weight of the selector's ask loss (scaled by n/B as in the code)."""
    hidden: int = 64
    """Width of the policy and value trunks ([64, 64])."""
    train_window_steps: int = 2000
    """A level's training return is the mean over its last this-many steps (last 2k steps)."""
    eval_episodes: int = 6
    """Greedy evaluation episodes per level on the server, over the clients' variants."""
    schedule: str = "linear"
    """lr and clip ε: "linear" (the official `linear_schedule` under SB3's progress, see
    `schedule_factor`) or "constant"."""
    max_grad_norm: float = 0.5
    """Gradient-norm clipping of every optimiser step (read by the shared loop); 0 = off."""

    def validate(self) -> None:
        super().validate()
        bad = [v for v in (self.variant, *self.compare) if v not in VARIANTS]
        if bad:
            raise ConfigError(f"askac: unknown variant {bad[0]!r}; valid: {', '.join(VARIANTS)}")
        if not self.compare or len(set(self.compare)) != len(self.compare):
            raise ConfigError("askac.compare must list distinct variants")
        if self.batch_size != 1:
            raise ConfigError("askac.batch-size must be 1 (one unit = one optimiser step)")
        counts = (self.rounds_per_level, self.rollouts_per_round, self.rollout_steps,
                  self.ppo_epochs, self.hidden, self.eval_episodes, self.train_window_steps)
        if min(counts) < 1 or not self.pole_lengths or min(self.pole_lengths) <= 0:
            raise ConfigError("askac: counts must be >= 1 and pole lengths > 0")
        if self.schedule not in SCHEDULES or self.max_grad_norm < 0:
            raise ConfigError(f"askac.schedule must be one of {SCHEDULES}, max-grad-norm >= 0")
        if not 0 <= self.length_spread < 1 or not 0 < self.clip_range < 1:
            raise ConfigError("askac: length-spread must be in [0, 1) and clip-range in (0, 1)")

    @property
    def steps_per_round(self) -> int:
        return self.rollouts_per_round * self.rollout_steps

    @property
    def steps_per_level(self) -> int:
        return self.rounds_per_level * self.steps_per_round

    def pole_scale(self, client: int, num_clients: int) -> float:
        """Client `client`'s pole-length factor (its environment variant)."""
        if num_clients < 2:
            return 1.0
        return 1.0 - self.length_spread + 2 * self.length_spread * client / (num_clients - 1)

    def schedule_factor(self, env_steps: float) -> float:
        """The official lr/clip multiplier once a client has taken `env_steps` steps.

        The official run calls `learn(1e4 steps, reset_num_timesteps=False)` once per level,
        so SB3's progress_remaining = 1 − t/(k·N) on level k (1-based, N steps per level):
        both fall linearly to 0 at the end of every level, from 1/k of their initial value.
        """
        if self.schedule == "constant":
            return 1.0
        return max(0.0, 1.0 - env_steps / ((self.level_at(env_steps) + 1) * self.steps_per_level))

    def level_at(self, env_steps: float) -> int:
        """The level (0-based) a client is on after `env_steps` steps; the last one stays."""
        return min(round(env_steps) // self.steps_per_level, len(self.pole_lengths) - 1)
