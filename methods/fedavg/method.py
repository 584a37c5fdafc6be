"""FedAvg: McMahan et al., "Communication-Efficient Learning of Deep Networks
from Decentralized Data", AISTATS 2017 (Algorithm 1).

Each sampled client runs E epochs of SGD on its shard; the server replaces the
global weights by the example-weighted mean w ← Σ_k (n_k / n) w_k (Eq. in §2).
The aggregation is Flower's FedAvg strategy; this module only says what a
client trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from methods.base import LocalTrainingConfig, Method, RunSpec
from methods.common.nets import SmallCNN


class TabularMLP(nn.Module):
    """features → 64 → 64 → classes, ReLU: FedAvg's model for tabular rows (N×F×1×1).

    SmallCNN's 3×3 convolutions and 2×2 pools need an image; a row of F features has
    none. No normalisation layer, so DP-SGD's per-example gradients stay defined."""

    def __init__(self, features: int, num_classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),  # N×F×1×1 → N×F
            nn.Linear(features, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N×F×1×1 → N×classes
        return self.layers(x)


@dataclass(frozen=True)
class FedAvgConfig(LocalTrainingConfig):
    """FedAvg adds nothing to the shared local-training hyper-parameters."""


class FedAvgMethod(Method):
    name = "fedavg"
    config_cls = FedAvgConfig
    paper = "McMahan et al., AISTATS 2017, arXiv:1602.05629"

    def build_model(self, spec: RunSpec) -> nn.Module:
        reference = self.test_dataset(spec)
        channels, height, width = reference.example_shape
        if height == width == 1:  # tabular rows (npz N×F are N×F×1×1): no space to convolve
            return TabularMLP(features=channels, num_classes=reference.num_classes)
        return SmallCNN(in_channels=channels, num_classes=reference.num_classes)

    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    def per_sample_loss(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        # lets DP-SGD use ghost clipping (1.9x a plain epoch vs 2.8x for hooks, bench dp-overhead)
        x, y = batch
        return nn.functional.cross_entropy(model(x), y, reduction="none")
