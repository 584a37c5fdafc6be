"""My own method for fedvault: a tiny CNN of mine on my own image folder.

fedvault finds this file because the scenario beside it names it (`method =
"mymethod:TinyCNN"`): the scenario file's directory is searched first. Everything a
method needs comes from one import line, as for fedvault's built-in FedAvg.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from methods import LocalTrainingConfig, Method, RunSpec


@dataclass(frozen=True)
class TinyCNNConfig(LocalTrainingConfig):
    """My keys, under [tinycnn] in the scenario; lr, batch-size, local-epochs, momentum and
    weight-decay come from LocalTrainingConfig."""

    width: int = 8
    """Channels of the first convolution (the second has twice as many)."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing, in [0, 1)."""

    def validate(self) -> None:
        super().validate()
        # A ValueError here is reported as bad input (exit 2), naming this file.
        if self.width < 1:
            raise ValueError(f"tinycnn.width must be >= 1 (got {self.width})")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"tinycnn.label-smoothing must be in [0, 1) (got {self.label_smoothing})")


class TinyCNN(Method):
    name = "tinycnn"  # the config section: [tinycnn], --set tinycnn.width=16
    config_cls = TinyCNNConfig
    paper = "my own"

    def build_model(self, spec: RunSpec) -> nn.Module:
        data = self.test_dataset(spec)  # my images' shape and class count
        channels, height, width = data.x.shape[1:]
        k = spec.method.width
        return nn.Sequential(
            nn.Conv2d(channels, k, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # k × H/2 × W/2
            nn.Conv2d(k, 2 * k, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 2k × H/4 × W/4
            nn.Flatten(),
            nn.Linear(2 * k * (height // 4) * (width // 4), data.num_classes),  # logits
        )

    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        x, y = batch  # x: B × C × H × W floats, y: B class indices
        return nn.functional.cross_entropy(model(x), y, label_smoothing=spec.method.label_smoothing)
