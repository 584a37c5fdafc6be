"""LTL's losses (Yang et al., NeurIPS 2022, arXiv:2210.04532): the offline LTL loss.

The offline local tandem loss (§3 of the paper; its equation number was not retrieved),
as `utils/classification.py::training_snn` of the code computes it:
    L = CE(o, y) + Σ_l c_l · MSE(r_l, clip(a_l / P_p(a_l), 0, 1))
r_l = (1/T)·Σ_t s_l(t) is layer l's firing rate, a_l the teacher's activation on the same
batch, P_p its p-th percentile over the whole batch tensor (p = 99.9). With each layer fed
detach(s_{l−1}) the sum decouples: layer l's weights see only its own MSE term, the readout
only the CE term. The BPTT baseline is the CE term alone, end to end.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

# A layer whose teacher activations are all zero has no scale; its target is all zeros.
_MIN_SCALE = 1e-12


def percentile(values: torch.Tensor, p: float) -> torch.Tensor:
    """The p-th percentile of all entries: the k-th smallest, k = 1 + round(p/100·(n−1)) (code's `percentile`)."""
    flat = values.detach().reshape(-1)
    k = 1 + round(0.01 * p * (flat.numel() - 1))
    return flat.kthvalue(k).values


def normalised_target(activation: torch.Tensor, p: float = 99.9) -> torch.Tensor:
    """â_l = clip(a_l / P_p(a_l), 0, 1): the teacher's activation as a target firing rate."""
    scale = percentile(activation, p).clamp_min(_MIN_SCALE)
    return (activation.detach() / scale).clamp(0.0, 1.0)


def tandem_loss(rates: Sequence[torch.Tensor], logits: torch.Tensor, y: torch.Tensor,
                teacher_activations: Sequence[torch.Tensor], *, p: float = 99.9,
                local_weight: float = 1.0) -> torch.Tensor:
    """The offline LTL loss L = CE(o, y) + Σ_l c_l·MSE(r_l, â_l), one c_l = `local_weight` for every layer."""
    if len(rates) != len(teacher_activations):
        raise ValueError(f"{len(rates)} student layers but {len(teacher_activations)} teacher targets")
    loss = F.cross_entropy(logits, y)
    for rate, activation in zip(rates, teacher_activations):
        loss = loss + local_weight * F.mse_loss(rate, normalised_target(activation, p))
    return loss
