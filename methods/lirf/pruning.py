"""Magnitude pruning of the deposit module T_r (Ye et al., ECCV 2022, §3.2: T_r is
initialised from a pruned copy of T_0's shallow part).

Per-layer unstructured L1 masks on the conv weights: pruning must keep T_r's
output channels, which the frozen deep part consumes (design notes §2.2, not shipped).
torch's pruning reparametrisation multiplies the mask into every forward pass,
so the masks hold during deposit training; `make_permanent` bakes them in.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def magnitude_prune(module: nn.Module, ratio: float) -> None:
    """Zero the `ratio` smallest-magnitude weights of every conv layer (masks stay on)."""
    if ratio <= 0:
        return
    for conv in _convs(module):
        prune.l1_unstructured(conv, "weight", amount=ratio)


def make_permanent(module: nn.Module) -> None:
    """Replace weight_orig × mask by the plain (sparse) weight; a no-op when unpruned."""
    for conv in _convs(module):
        if prune.is_pruned(conv):
            prune.remove(conv, "weight")
            with torch.no_grad():  # a negative weight × 0 is −0.0: make it a plain zero,
                conv.weight.add_(0.0)  # which the sparse store (sparse.py) need not keep


def conv_sparsity(module: nn.Module) -> float:
    """Fraction of conv weights that are exactly zero."""
    convs = _convs(module)
    total = sum(c.weight.numel() for c in convs)
    zeros = sum(int((c.weight == 0).sum()) for c in convs)
    return zeros / total if total else 0.0
