"""Losses of bottom-up pose regression from anatomical centers.

Cheng et al., "Bottom-up 2D pose estimation via dual anatomical centers for
small-scale persons", arXiv:2208.11975 §3: the training objective is, for every
center kind c (body; body and head for dual centers),

    L = Σ_c  L_heat(Ĉ_c, C_c) + λ · L_off(Ô_c, O_c)                                  (1)

in the DEKR form (Geng et al., CVPR 2021, Eqs. 3–4) with the paper's human-scale
normalisation: offsets are regressed divided by the person's height h, so the
smooth-L1 error is measured in person heights whatever the person's size. The exact
equation numbers of 2208.11975 were not retrieved (design notes §3, not shipped: "[inferred,
DEKR-style]"); the weights are the note's working settings:

    L_heat = w_h · mean( (Ĉ − C)² · (1 + 9·1[C > 0.05]) )                            (2)
    L_off  = Σ_cells ω_p · Σ_k m_k · smoothL1_β(Ô_k − (J_k − x)/h) / Σ m
           + Σ_cells ω_p · smoothL1_β(log ĥ − log h) / Σ_cells 1[owned]                (3)

with ω_p = 1/√(cells of person p), m_k the visible joints at the person's cells, β = 0.1.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from methods.pose.targets import CenterTargets


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, weight: float = 100.0) -> torch.Tensor:
    """Eq. (2): the weighted L2 of a center heatmap; cells near a center count 10×."""
    emphasis = 1.0 + 9.0 * (target > 0.05).float()
    return weight * ((pred - target) ** 2 * emphasis).mean()


def offset_loss(offsets: torch.Tensor, log_height: torch.Tensor, target: CenterTargets,
                beta: float = 0.1) -> torch.Tensor:
    """Eq. (3): scale-normalised smooth-L1 of the offsets, plus that of log h, at owned cells.

    log h has a term of its own, as heavy as all joints together: every decoded joint is
    center + h·offset, so an error in h scales the whole pose (with log h as one channel
    among 29, small persons came out 2.6× too tall after 200 steps).
    """
    weight = target.weight
    owned = (weight > 0).float()
    joints = F.smooth_l1_loss(offsets, target.offsets, beta=beta, reduction="none")
    height = F.smooth_l1_loss(log_height, target.log_height, beta=beta, reduction="none")
    return ((joints * target.mask * weight).sum() / target.mask.sum().clamp(min=1.0)
            + (height * owned * weight).sum() / owned.sum().clamp(min=1.0))


def center_loss(outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], target: CenterTargets,
                heat_weight: float, offset_weight: float) -> torch.Tensor:
    """One center kind's term of Eq. (1)."""
    heat, offsets, log_height = outputs
    return (heatmap_loss(heat, target.heatmap, heat_weight)
            + offset_weight * offset_loss(offsets, log_height, target))
