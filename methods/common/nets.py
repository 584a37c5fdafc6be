"""Small image networks shared by methods.

Normalisation is GroupNorm, never BatchNorm: per-sample gradients (Opacus
DP-SGD) are undefined under BatchNorm, and FedAvg of BatchNorm running
statistics across label-skewed clients is a known source of drift.
"""

from __future__ import annotations

from torch import nn


def conv_block(c_in: int, c_out: int, *, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1),
        nn.GroupNorm(num_groups=min(8, c_out), num_channels=c_out),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """conv(w1)-pool → conv(w2)-pool → 4×4 pool → fc(hidden) → fc(classes).

    ≈ 0.2 M parameters at the defaults; the adaptive pool makes it take 8×8
    digits, 28×28 MNIST and 32×32 CIFAR alike.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, int] = (32, 64),
        hidden: int = 128,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_block(in_channels, widths[0], pool=True),
            conv_block(widths[0], widths[1], pool=True),
            nn.AdaptiveAvgPool2d((4, 4)),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(widths[1] * 16, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):  # x: N×C×H×W → N×classes
        return self.classifier(self.features(x))
