"""LIRF's networks: a net split into a shallow and a deep part (SplitNet; the protocol's
CNN is one, any other net is cut by arch.py), the recovered net that withdraws by logit
concatenation, and the deposit-training wrapper.

Ye et al., ECCV 2022 (arXiv:2207.08224), §3: T_0 = T_0^(n−) ∘ T_0^(−n); the
target T keeps the frozen deep part T_0^(n−) and retrains the shallow part; the
deposit module T_r replaces the shallow part; withdrawal (Eq. of §3.4)
T̃(x) = g(z_T(x)) ⊕ ḡ(z_{T_r∘T^(n−)}(x)).

The CNN follows the design notes §3 (not shipped): [conv a, norm, ReLU, maxpool] → [conv b,
norm, ReLU] → [conv c, norm, ReLU] → global average pool → linear, on MNIST
average-pooled to 14×14; shallow = blocks 1-2, deep = block 3 + GAP + linear.
BatchNorm by default (the protocol's): with GroupNorm the deposit does not
forget (README, "GroupNorm"). BatchNorm here is safe for FedAvg because the
step counters never travel (method.py) and no DP runs over this net.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from methods.common.nets import conv_block


def _block(c_in: int, c_out: int, *, pool: bool, norm: str) -> nn.Sequential:
    if norm == "group":
        return conv_block(c_in, c_out, pool=pool)
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out),
                               nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SplitNet(nn.Module):
    """T = deep ∘ shallow: any net cut at its split point (arch.py), or the protocol's CNN."""

    def __init__(self, shallow: nn.Sequential, deep: nn.Sequential) -> None:
        super().__init__()
        self.shallow = shallow
        self.deep = deep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deep(self.shallow(x))


class SplitCNN(SplitNet):
    """The protocol's CNN. x: N×C×28×28 → shallow: N×c2×7×7 → deep: N×classes."""

    def __init__(self, in_channels: int, num_classes: int, widths=(16, 32, 32),
                 norm: str = "batch") -> None:
        a, b, c = widths
        shallow = nn.Sequential(
            nn.AvgPool2d(2),  # 28×28 → 14×14, the protocol's input size
            _block(in_channels, a, pool=True, norm=norm),  # → a×7×7
            _block(a, b, pool=False, norm=norm),  # → b×7×7
        )
        deep = nn.Sequential(
            _block(b, c, pool=False, norm=norm),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(c, num_classes),
        )
        super().__init__(shallow, deep)


def deposit_class_mask(classes, num_classes: int) -> torch.Tensor:
    """Boolean (num_classes,) mask of ḡ's classes (the deposit classes); made on the CPU, it
    is a buffer of the nets below, so it moves with them to their device."""
    mask = torch.zeros(num_classes, dtype=torch.bool)
    mask[list(classes)] = True
    return mask


class RecoveredNet(nn.Module):
    """T̃: deposit-class logits from T_r ∘ T^(n−), the others from T. No parameters
    of its own; withdrawal is assembling this module, no data and no training."""

    def __init__(self, target: SplitNet, deposit: nn.Module, deposit_mask: torch.Tensor) -> None:
        super().__init__()
        self.target = target
        self.deposit = deposit
        self.register_buffer("deposit_mask", deposit_mask.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z_target = self.target(x)
        z_deposit = self.target.deep(self.deposit(x))
        return torch.where(self.deposit_mask, z_deposit, z_target)


class DepositNet(nn.Module):
    """What the owner trains: T's shallow part and T_r, both initialised from T_0's
    shallow part; the deep part and the teacher T_0 stay frozen in eval mode."""

    def __init__(self, original: SplitNet, deposit_mask: torch.Tensor) -> None:
        super().__init__()
        self.teacher = copy.deepcopy(original)
        self.target = copy.deepcopy(original)
        self.deposit = copy.deepcopy(original.shallow)
        self.register_buffer("deposit_mask", deposit_mask.clone(), persistent=False)
        for frozen in (self.teacher, self.target.deep):
            frozen.requires_grad_(False)

    def train(self, mode: bool = True) -> DepositNet:
        super().train(mode)
        self.teacher.eval()  # BN statistics of T_0 and of the deep part never move
        self.target.deep.eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every quantity of the deposit objective for one batch."""
        with torch.no_grad():
            h_original = self.teacher.shallow(x)
            z_original = self.teacher.deep(h_original)
        h_target = self.target.shallow(x)
        z_target = self.target.deep(h_target)
        z_deposit = self.target.deep(self.deposit(x))
        z_recovered = torch.where(self.deposit_mask, z_deposit, z_target)
        return {"z_original": z_original, "z_target": z_target, "z_recovered": z_recovered,
                "h_target": h_target, "h_original": h_original}

    def anchor_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(T_0's logits, T_r's path's logits) of anchor rows; T itself is not run."""
        with torch.no_grad():
            z_original = self.teacher(x)
        return z_original, self.target.deep(self.deposit(x))
