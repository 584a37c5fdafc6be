"""FedSA's networks: canvas CNNs (student and teachers) and the translator.

"CNN a-b-c" (design notes §3, not shipped): [conv3×3 a, norm, ReLU, maxpool2] →
[conv b, norm, ReLU] → [conv c, norm, ReLU] = A, the last-stage feature map
that Grad-CAM and the hint loss read, then a head pooled on a 1×2 grid (so a
head can tell the left half from the right) and a linear layer.

The translator is the official code's paraphraser (kamal/vision/models/
paraphraser.py): 3 × [1×1 conv → norm → LeakyReLU(0.1)] with channels
C_s → C_s → C_t → C_t (ft_k = 1, so its output matches the teacher's map).
"""

from __future__ import annotations

import torch
from torch import nn


def norm_layer(kind: str, channels: int) -> nn.Module:
    # GroupNorm is the DP-SGD-compatible choice (no cross-sample statistics).
    if kind == "group":
        return nn.GroupNorm(num_groups=min(4, channels), num_channels=channels)
    return nn.BatchNorm2d(channels)


class CanvasCNN(nn.Module):
    def __init__(self, widths: tuple[int, ...], num_classes: int, norm: str = "batch",
                 in_channels: int = 1) -> None:
        super().__init__()
        a, b, c = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, a, 3, padding=1), norm_layer(norm, a), nn.ReLU(),
            nn.MaxPool2d(2),  # 14×28 → 7×14
            nn.Conv2d(a, b, 3, padding=1), norm_layer(norm, b), nn.ReLU(),
            nn.Conv2d(b, c, 3, padding=1), norm_layer(norm, c), nn.ReLU(),
        )
        self.out_channels = c  # C of the map A
        self.head = self.new_head(num_classes)

    def new_head(self, num_classes: int) -> nn.Sequential:
        """A freshly initialised head (task adaptation replaces the old one with it)."""
        return nn.Sequential(nn.AdaptiveAvgPool2d((1, 2)), nn.Flatten(),
                             nn.Linear(self.out_channels * 2, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N×1×14×28 → N×classes
        return self.head(self.features(x))


class Translator(nn.Module):
    """Maps the student's map (C_s channels) into the teacher's (C_t); lives on the node."""

    def __init__(self, student_channels: int, teacher_channels: int, norm: str = "batch") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((student_channels, student_channels),
                            (student_channels, teacher_channels),
                            (teacher_channels, teacher_channels)):
            layers += [nn.Conv2d(c_in, c_out, 1), norm_layer(norm, c_out), nn.LeakyReLU(0.1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)
