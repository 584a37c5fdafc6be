"""Ask-AC: Liu, Chen, Song et al., "Ask-AC: An Initiative Advisor-in-the-Loop Actor-Critic
Framework", IEEE Transactions on Systems, Man, and Cybernetics: Systems, 2023
(arXiv:2207.01955). Official code: github.com/liushunyu/Ask-AC.

An actor-critic learner that may *ask* an advisor for the action (action requester,
π' over {ask} ∪ A, §IV-A) and is pushed to ask where its critic's error spikes (adaptive
state selector, §IV-B), compared with continuous advisor monitoring (CM) and vanilla PPO
on a non-stationary CartPole whose pole length changes 0.5 → 1.0 → 2.0. Equations:
methods/askac/losses.py; the rollout and update order: methods/askac/learner.py.

Federated mapping (design notes §8(e), not shipped): each client is one environment variant (its
pole-length factor) with its own scripted advisor; the full policy/value network,
ask head included, is FedAvg-aggregated; each compared learner is one stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from methods.askac.cartpole import run_episodes
from methods.askac.config import PHASES, AskACConfig
from methods.askac.learner import Learner
from methods.askac.nets import COUNTERS, AskActorCritic
from methods.askac.summary import summarize_stages
from methods.base import Method, RunSpec, Stage, StageResult
from methods.common.datasets import ArrayDataset


class AskAC(Method):
    name = "askac"
    config_cls = AskACConfig
    paper = "Liu et al., IEEE TSMC 2023, arXiv:2207.01955"
    workflow = "stages"
    cpu_only = True  # its learner builds its batches from a numpy CartPole (docs/gpu.md)

    def build_model(self, spec: RunSpec) -> nn.Module:
        return AskActorCritic(spec.method.hidden)

    # --- data: a client's "examples" are its optimiser steps ----------------------
    def train_dataset(self, spec: RunSpec) -> ArrayDataset:
        """Per client: rollouts × phases × epochs units, each x = (client, pole factor)."""
        cfg, clients = spec.method, spec.federation.num_clients
        units = cfg.rollouts_per_round * len(PHASES[cfg.variant]) * cfg.ppo_epochs
        client = np.repeat(np.arange(clients), units)
        scale = np.array([cfg.pole_scale(int(c), clients) for c in client])
        x = np.stack([client, scale], axis=1).astype(np.float32).reshape(-1, 1, 1, 2)
        return ArrayDataset(x, client.astype(np.int64), clients, "askac-units")

    def node_partition(self, spec: RunSpec, labels: np.ndarray, num_partitions: int) -> list[np.ndarray]:
        """Node i is environment variant i mod num-clients (all its units)."""
        variants = int(labels.max()) + 1
        return [np.flatnonzero(labels == i % variants) for i in range(num_partitions)]

    def test_dataset(self, spec: RunSpec) -> ArrayDataset:
        """Greedy episodes: row i plays level i mod L on client variant (i // L) mod n."""
        return _episodes(spec, 0, "askac-episodes")

    def fit_dataset(self, spec: RunSpec) -> ArrayDataset:
        """All the units: they count optimiser steps on fresh rollouts, none can be held out."""
        return self.train_dataset(spec)

    def validation_dataset(self, spec: RunSpec) -> ArrayDataset | None:
        """Greedy episodes like the test's, from other starting states (their episode ids,
        which seed each start, follow the test's): the environment is the training data, so
        a validation split is more episodes of it, never the test's."""
        if not spec.data.validation_fraction:
            return None
        return _episodes(spec, VALIDATION_EPISODES_FROM, "askac-validation-episodes")

    # --- local step -------------------------------------------------------------
    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        learner = model.__dict__.get("_learner")
        if learner is None:  # first step of the round: this client's environment variant
            x, _ = batch
            seed = int(torch.randint(0, 2**31 - 1, ()).item())  # the loop seeded torch per round
            learner = Learner(spec.method, float(x[0].flatten()[1]), np.random.default_rng(seed))
            model.__dict__["_learner"] = learner
        return learner.loss(model)

    def local_lr(self, model: nn.Module, spec: RunSpec) -> float:
        """The official linear lr schedule, averaged over this round's rollouts (the shared
        loop's optimiser keeps one lr per round; the clip ε follows each rollout)."""
        cfg, done = spec.method, float(model.env_steps)
        factors = [cfg.schedule_factor(done + (r + 1) * cfg.rollout_steps - 1)
                   for r in range(cfg.rollouts_per_round)]
        return cfg.lr * max(float(np.mean(factors)), 1e-6)  # Adam needs lr > 0

    @torch.no_grad()
    def evaluate(self, model: nn.Module, dataset: ArrayDataset) -> dict[str, float]:
        """Greedy (standard head) return per level, and the clients' averaged counters."""
        model.eval()
        rows = dataset.x.reshape(len(dataset), -1)

        def greedy(obs: np.ndarray) -> np.ndarray:
            _, std_logits, _ = model(torch.from_numpy(obs))
            return std_logits.argmax(-1).numpy()

        rng = np.random.default_rng(rows[:, 2].astype(np.int64).tolist())
        returns = run_episodes(greedy, rows[:, 1].astype(np.float64), rng)
        figures = {f"return_level{lv + 1}": float(returns[dataset.y == lv].mean())
                   for lv in np.unique(dataset.y)}
        figures["return_mean"] = float(returns.mean())
        figures.update({name: float(getattr(model, name)) for name in COUNTERS})
        return figures

    # --- stages: Ask-AC and the learners it is compared with ---------------------
    def stages(self, spec: RunSpec) -> list[Stage]:
        cfg = spec.method
        rounds = len(cfg.pole_lengths) * cfg.rounds_per_level
        return [Stage(v, {"variant": v}, rounds=rounds) for v in cfg.compare]

    def summarize(self, spec: RunSpec, results: Mapping[str, StageResult],
                  out_dir: Path) -> dict[str, Any]:
        return summarize_stages({name: r.history for name, r in results.items()}, spec.method)


# The first episode id of the validation episodes: far past any test episode's id.
VALIDATION_EPISODES_FROM = 1_000_000


def _episodes(spec: RunSpec, first: int, name: str) -> ArrayDataset:
    """Row i plays level i mod L on client variant (i // L) mod n; its episode id is
    `first` + i (evaluate seeds the start state by it)."""
    cfg, clients = spec.method, spec.federation.num_clients
    levels = len(cfg.pole_lengths)
    rows = np.arange(levels * cfg.eval_episodes)
    level = rows % levels
    length = [cfg.pole_lengths[lv] * cfg.pole_scale(int(r // levels) % clients, clients)
              for lv, r in zip(level, rows)]
    x = np.stack([level, length, rows + first], axis=1).astype(np.float32).reshape(-1, 1, 1, 3)
    return ArrayDataset(x, level.astype(np.int64), levels, name)
