"""A small ResNet for 32×32 inputs (CIFAR-shaped), with named stages.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, §4.2 (the CIFAR
ResNets: a 3×3 stem, three stages of BasicBlocks at 32×32, 16×16 and 8×8, global
average pooling, one linear layer). With one block per stage it has 8 weighted
layers (stem + 3 × 2 convs + fc): ResNet-8.

Its top-level modules have fixed names so a config can name a layer by dotted path
(methods/common/modules.py `named_module`):

    stem     conv3×3 → norm → ReLU                         C0 × 32 × 32
    layer1   BasicBlock(s), stride 1                        C0 × 32 × 32
    layer2   BasicBlock(s), the first with stride 2         C1 × 16 × 16
    layer3   BasicBlock(s), the first with stride 2         C2 ×  8 ×  8
    pool     global average pool + flatten                  C2
    fc       linear                                         num_classes

Inside a stage, blocks are `layerN.0`, `layerN.1`, …, each with `conv1`, `norm1`,
`conv2`, `norm2` and, where the shape changes, `shortcut` (1×1 conv → norm).
Normalisation is BatchNorm by default; `norm="group"` gives GroupNorm, which DP-SGD
needs (Opacus computes per-sample gradients; BatchNorm mixes samples).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "group")
STAGE_NAMES = ("stem", "layer1", "layer2", "layer3", "pool", "fc")


def resnet_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(num_groups=min(8, channels), num_channels=channels)
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


class BasicBlock(nn.Module):
    """conv3×3 → norm → ReLU → conv3×3 → norm, plus the (projected) input, → ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = resnet_norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = resnet_norm(norm, c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          resnet_norm(norm, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # No in-place operations: a hook may hand out any inner output (Grad-CAM, hints).
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...] = (16, 32, 64),
                 norm: str = "batch", blocks_per_stage: int = 1) -> None:
        super().__init__()
        if len(widths) != 3 or min(widths) < 1 or blocks_per_stage < 1:
            raise ValueError(f"SmallResNet needs three widths >= 1 and blocks_per_stage >= 1, "
                             f"got widths={tuple(widths)}, blocks_per_stage={blocks_per_stage}")
        c0, c1, c2 = widths
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c0, 3, padding=1, bias=False),
                                  resnet_norm(norm, c0), nn.ReLU())
        self.layer1 = self._stage(c0, c0, 1, norm, blocks_per_stage)
        self.layer2 = self._stage(c0, c1, 2, norm, blocks_per_stage)
        self.layer3 = self._stage(c1, c2, 2, norm, blocks_per_stage)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c2, num_classes)
        self.out_channels = c2  # channels of layer3, the last stage

    @staticmethod
    def _stage(c_in: int, c_out: int, stride: int, norm: str, blocks: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(c_in, c_out, stride, norm),
                             *(BasicBlock(c_out, c_out, 1, norm) for _ in range(blocks - 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N×C×H×W → N×classes
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.pool(x))


def small_resnet(in_channels: int, num_classes: int, widths: tuple[int, ...] = (16, 32, 64),
                 norm: str = "batch", blocks_per_stage: int = 1) -> SmallResNet:
    """ResNet-8 at the defaults (one BasicBlock per stage); blocks_per_stage=3 is ResNet-20."""
    return SmallResNet(in_channels, num_classes, tuple(widths), norm, blocks_per_stage)


def resnet8(in_channels: int = 3, num_classes: int = 10, norm: str = "batch") -> SmallResNet:
    return small_resnet(in_channels, num_classes, (16, 32, 64), norm)
