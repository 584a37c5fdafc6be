"""`fedvault bench dp-overhead`: what DP-SGD costs per epoch, per grad-sample mode.

For a small CNN (the foundation's SmallCNN, 0.15 M weights) and a Linear-heavy net
(the design notes' §2 "wide" net, not shipped: the DP MNIST CNN trunk + FC 512→1024→512→10,
1.06 M weights, 99 % in Linear layers), `clients.training.train_locally` runs without
DP and with DP-SGD in each Opacus grad-sample mode (hooks, ew, functorch, ghost).

An epoch's cost is the CPU time of a 2-epoch call minus that of a 1-epoch call (process
time: the hosts are shared, wall clock is no measurement here), so the per-round fixed
costs (wrapping the model, the accountant) are left out; median over seeds; ratio to
the non-private epoch. `chosen` is what clients/privacy.py picks for the model (`auto`).
Targets: the chosen mode <= 2.0x for the CNN, ghost <= 2.5x for the Linear-heavy net.
"""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from methods.base import Method, RunSpec
from methods.resolve import parse_run_spec
from methods.common.datasets import load_dataset
from methods.common.nets import SmallCNN

MODES = ("hooks", "ew", "functorch", "ghost")
TARGETS = {"small-cnn": 2.0, "linear-heavy": 2.5}
EXAMPLES = 2000
BATCH_SIZE = 128


class _BenchMethod(Method):
    """A classifier with per-example losses, so every mode (ghost too) can run."""

    config_cls = object

    def __init__(self, name: str, build) -> None:
        self.name, self._build = name, build

    def build_model(self, spec: RunSpec) -> nn.Module:
        return self._build()

    def train_step(self, model, batch, spec):
        return self.per_sample_loss(model, batch, spec).mean()

    def per_sample_loss(self, model, batch, spec):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y, reduction="none")


def _linear_heavy() -> nn.Module:
    # 1×28×28 → conv 16@8×8/2 → 14×14 → pool → 13×13 → conv 32@4×4/2 → 5×5 → pool → 4×4 (512)
    return nn.Sequential(
        nn.Conv2d(1, 16, 8, stride=2, padding=3),
        nn.Tanh(),
        nn.MaxPool2d(2, 1),
        nn.Conv2d(16, 32, 4, stride=2),
        nn.Tanh(),
        nn.MaxPool2d(2, 1),
        nn.Flatten(),
        nn.Linear(512, 1024),
        nn.Tanh(),
        nn.Linear(1024, 512),
        nn.Tanh(),
        nn.Linear(512, 10),
    )


NETS = {"small-cnn": lambda: SmallCNN(1, 10), "linear-heavy": _linear_heavy}


def _call_cpu_seconds(method: Method, spec: RunSpec, data, mode: str | None, seed: int) -> float:
    from clients.privacy import PrivateTraining
    from clients.training import train_locally

    torch.manual_seed(seed)
    model = method.build_model(spec)
    privacy = (
        None
        if mode is None
        else PrivateTraining(spec, method, history=[], sigma=1.0, grad_sample_mode=mode)
    )
    started = time.process_time()
    train_locally(method, model, data, spec, seed=seed, privacy=privacy)
    return time.process_time() - started


def epoch_cpu_seconds(method: Method, data, mode: str | None, seed: int) -> float:
    """CPU seconds of one more epoch of `train_locally`; mode None = not private."""
    one, two = (_spec(epochs) for epochs in (1, 2))
    return _call_cpu_seconds(method, two, data, mode, seed) - _call_cpu_seconds(
        method, one, data, mode, seed
    )


def _spec(epochs: int) -> RunSpec:
    return parse_run_spec(
        {
            "fedavg.batch-size": BATCH_SIZE,
            "fedavg.local-epochs": epochs,
            "fedavg.momentum": 0.0,
            "dp.enabled": True,
            "dp.accountant": "rdp",
            "dp.max-epsilon": 1e9,
        }
    )  # σ=1 is set by hand: no budget here


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # Opacus' per-mode advisories
    seeds = seeds or [0, 1, 2]
    data = load_dataset("mnist5k", "train").subset(range(EXAMPLES))
    results: dict[str, Any] = {}
    for net, build in NETS.items():
        method = _BenchMethod(net, build)
        base = statistics.median(epoch_cpu_seconds(method, data, None, s) for s in seeds)
        figures = {"none": {"cpu_seconds": base, "ratio": 1.0}}
        for mode in MODES:
            seconds = statistics.median(epoch_cpu_seconds(method, data, mode, s) for s in seeds)
            figures[mode] = {"cpu_seconds": seconds, "ratio": seconds / base}
        from clients.privacy import choose_grad_sample_mode, linear_fraction

        chosen = choose_grad_sample_mode("auto", method, build())
        results[net] = {
            "modes": figures,
            "chosen": chosen,
            "chosen_ratio": figures[chosen]["ratio"],
            "linear_fraction": linear_fraction(build()),
            "parameters": sum(p.numel() for p in build().parameters()),
        }
    checks = {
        "small-cnn chosen mode": results["small-cnn"]["chosen_ratio"] <= TARGETS["small-cnn"],
        "linear-heavy ghost": results["linear-heavy"]["modes"]["ghost"]["ratio"]
        <= TARGETS["linear-heavy"],
    }
    return {
        "bench": "dp-overhead",
        "examples": EXAMPLES,
        "batch_size": BATCH_SIZE,
        "seeds": seeds,
        "metric": "CPU seconds per epoch (2-epoch minus 1-epoch call), median over seeds",
        "results": results,
        "targets": TARGETS,
        "checks": checks,
        "pass": all(checks.values()),
    }
