"""Losses and measures of the GNN style transfer (Jing et al., "Learning Graph Neural
Networks for Image Style Transfer", ECCV 2022, arXiv:2207.11681; design notes §6, not shipped).

- AdaIN(x, y) = σ(y)·(x − μ(x))/σ(x) + μ(y) per channel (Huang & Belongie 2017, Eq. 8),
  the statistics alignment after the graph's message passing and the baseline itself.
- Content loss (§6(a) step 4): L_c = ‖φ₃(D(t)) − t‖² (mean squared), t the decoder's target
  features, φ₃ the frozen encoder's last layer (relu4_1 in the paper, relu3 here).
- Style loss: L_s = Σ_l ‖μ(φ_l(D(t))) − μ(φ_l(s))‖² + ‖σ(φ_l(D(t))) − σ(φ_l(s))‖² over the
  encoder's three layers (mean squared, as AdaIN's code); the step minimises L_c + λ_s·L_s.
- Evaluation: `patch_nn_distance` = mean over the output's 3×3 feature patches of
  1 − max_j cos(patch, style patch j) (claim (d)1); `structure_loss` = ‖IN(φ₃(o)) − IN(φ₃(c))‖²
  (the content loss judged against the content photo, with the per-channel statistics that
  stylisation is meant to change normalised away); `mean_pixel_l2` for the diversity claim.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

EPS = 1e-5


def mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and std of N×C×H×W features, shaped N×C×1×1."""
    mean = x.mean((2, 3), keepdim=True)
    std = (x.var((2, 3), keepdim=True, unbiased=False) + EPS).sqrt()
    return mean, std


def instance_norm(x: torch.Tensor) -> torch.Tensor:
    mean, std = mean_std(x)
    return (x - mean) / std


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """AdaIN: content features with the style features' per-channel mean and std."""
    mean, std = mean_std(style)
    return instance_norm(content) * std + mean


def content_loss(output_features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_c = mean squared distance of φ₃(D(t)) to the target features t."""
    return F.mse_loss(output_features, target)


def style_loss(output_features: list[torch.Tensor], style_features: list[torch.Tensor]) -> torch.Tensor:
    """L_s = Σ_l MSE(μ_l(out), μ_l(style)) + MSE(σ_l(out), σ_l(style))."""
    total = output_features[0].new_zeros(())
    for out, style in zip(output_features, style_features):
        (mu_o, sd_o), (mu_s, sd_s) = mean_std(out), mean_std(style)
        total = total + F.mse_loss(mu_o, mu_s) + F.mse_loss(sd_o, sd_s)
    return total


def patches(features: torch.Tensor, size: int = 3) -> torch.Tensor:
    """N×C×H×W → N×(H·W)×(C·size²): every stride-1 size×size patch (zero padded) as a node."""
    return F.unfold(features, size, padding=size // 2).transpose(1, 2)


def fold_patches(nodes: torch.Tensor, height: int, width: int, size: int = 3) -> torch.Tensor:
    """Inverse of `patches` with overlap averaging: N×(H·W)×(C·size²) → N×C×H×W."""
    kwargs = {"output_size": (height, width), "kernel_size": size, "padding": size // 2}
    summed = F.fold(nodes.transpose(1, 2), **kwargs)
    ones = torch.ones(1, nodes.shape[2], nodes.shape[1], dtype=nodes.dtype)
    return summed / F.fold(ones, **kwargs)


def patch_nn_distance(output_features: torch.Tensor, style_features: torch.Tensor) -> torch.Tensor:
    """Per sample: mean over output patches of the cosine distance to the nearest style patch."""
    out = F.normalize(patches(output_features), dim=2)
    style = F.normalize(patches(style_features), dim=2)
    nearest = (out @ style.transpose(1, 2)).max(dim=2).values
    return (1 - nearest).mean(1)


def structure_loss(output_features: torch.Tensor, content_features: torch.Tensor) -> torch.Tensor:
    """Per sample: MSE between the instance-normalised features of output and content photo."""
    diff = instance_norm(output_features) - instance_norm(content_features)
    return diff.square().mean((1, 2, 3))


def mean_pixel_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per sample: mean over pixels of the Euclidean norm of the RGB difference (pixels in [0, 1])."""
    return (a - b).square().sum(1).sqrt().mean((1, 2))
