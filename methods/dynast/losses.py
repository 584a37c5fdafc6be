"""DynaST's generator objective at small scale (Liu et al., ECCV 2022, arXiv:2207.06124, §3.4;
code: models/pix2pix_model.py::compute_generator_loss).

  L_G = λ_rec ‖ŷ − X‖₁ + λ_warp Σ_l ‖warp_l − AvgPool_l(X)‖₁

The warp term is the code's per-block warping loss (×1000 there; self_ref=1 pairs, so the
ground truth of every block's warped exemplar is the target X pooled to the block's scale).
The reconstruction L1 stands in for the paper's VGG feature-matching and perceptual terms,
and the hinge GAN is off: both documented deviations of the CPU design (design notes §7(c),
not shipped; methods/dynast/README.md).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def warp_loss(warps: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Σ_l mean |warp_l − AvgPool(X) at warp_l's size| over every attention block l."""
    return sum(F.l1_loss(w, F.adaptive_avg_pool2d(target, w.shape[-1])) for w in warps)


def generator_loss(output: torch.Tensor, warps: list[torch.Tensor], target: torch.Tensor,
                   recon_weight: float, warp_weight: float) -> torch.Tensor:
    """λ_rec ‖ŷ − X‖₁ + λ_warp Σ_l ‖warp_l − AvgPool_l(X)‖₁ (means over pixels and channels)."""
    return recon_weight * F.l1_loss(output, target) + warp_weight * warp_loss(warps, target)
