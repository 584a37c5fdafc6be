"""A vectorised numpy CartPole with a changeable pole length, and the scripted advisor.

The dynamics are gymnasium's `CartPole-v1` (Barto, Sutton & Anderson 1983; Euler
integration, τ = 0.02 s, ±10 N, failure at |x| > 2.4 or |θ| > 12°, 500-step time limit),
written over a batch of environments so one greedy evaluation steps all episodes at once.

Ask-AC's non-stationary CartPole (Liu et al., IEEE TSMC 2023, arXiv:2207.01955, §V-A) sets
`env.unwrapped.length` to 0.5 / 1.0 / 2.0 per level. gymnasium caches
`polemass_length = masspole · length` at construction, so the official code changes only
the `length` in the angular-acceleration denominator; we reproduce that (POLEMASS_LENGTH
stays 0.1 · 0.5) rather than a physically consistent pole.
"""

from __future__ import annotations

import numpy as np

GRAVITY, MASSCART, MASSPOLE = 9.8, 1.0, 0.1
TOTAL_MASS = MASSCART + MASSPOLE
POLEMASS_LENGTH = MASSPOLE * 0.5  # gymnasium's cached value for the default length 0.5
FORCE_MAG, TAU = 10.0, 0.02
X_THRESHOLD, THETA_THRESHOLD = 2.4, 12 * 2 * np.pi / 360
MAX_STEPS = 500
NUM_ACTIONS, OBS_DIM = 2, 4


class CartPoles:
    """`n` CartPole-v1 environments, pole `lengths` (n,), reset from `rng` like gymnasium."""

    def __init__(self, lengths: np.ndarray, rng: np.random.Generator) -> None:
        self.lengths = np.asarray(lengths, dtype=np.float64)
        self.rng = rng
        self.state = np.zeros((len(self.lengths), OBS_DIM))
        self.steps = np.zeros(len(self.lengths), dtype=np.int64)
        self.reset(np.ones(len(self.lengths), dtype=bool))

    def reset(self, where: np.ndarray) -> None:
        """Start new episodes where `where` is true (state ~ U(−0.05, 0.05)⁴)."""
        self.state[where] = self.rng.uniform(-0.05, 0.05, size=(int(where.sum()), OBS_DIM))
        self.steps[where] = 0

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance every environment; returns (reward, terminated, truncated), each (n,)."""
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(np.asarray(actions) == 1, FORCE_MAG, -FORCE_MAG)
        cos, sin = np.cos(theta), np.sin(theta)
        temp = (force + POLEMASS_LENGTH * theta_dot**2 * sin) / TOTAL_MASS
        theta_acc = (GRAVITY * sin - cos * temp) / (
            self.lengths * (4.0 / 3.0 - MASSPOLE * cos**2 / TOTAL_MASS))
        x_acc = temp - POLEMASS_LENGTH * theta_acc * cos / TOTAL_MASS
        self.state = np.stack([x + TAU * x_dot, x_dot + TAU * x_acc,
                               theta + TAU * theta_dot, theta_dot + TAU * theta_acc], axis=1)
        self.steps += 1
        terminated = (np.abs(self.state[:, 0]) > X_THRESHOLD) | (
            np.abs(self.state[:, 2]) > THETA_THRESHOLD)
        truncated = ~terminated & (self.steps >= MAX_STEPS)
        return np.ones(len(self.lengths)), terminated, truncated

    @property
    def obs(self) -> np.ndarray:
        return self.state.astype(np.float32)


def advisor_action(obs: np.ndarray) -> np.ndarray:
    """The scripted advisor of the design notes §8(c): push toward where the pole falls,
    a = 1[θ + 0.5·θ̇ + 0.05·x + 0.1·ẋ > 0]; it balances 500 steps at every level."""
    obs = np.atleast_2d(obs)
    score = obs[:, 2] + 0.5 * obs[:, 3] + 0.05 * obs[:, 0] + 0.1 * obs[:, 1]
    return (score > 0).astype(np.int64)


def run_episodes(policy, lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return of one episode per pole length under `policy(obs (n,4)) -> actions (n,)`."""
    envs = CartPoles(lengths, rng)
    returns = np.zeros(len(lengths))
    alive = np.ones(len(lengths), dtype=bool)
    while alive.any():
        actions = policy(envs.obs)
        reward, terminated, truncated = envs.step(actions)
        returns += reward * alive
        alive &= ~(terminated | truncated)
        envs.reset(~alive)  # finished episodes idle in a fresh state (no overflow), uncounted
    return returns
