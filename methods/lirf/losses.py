"""LIRF's deposit objective (Ye et al., ECCV 2022, arXiv:2207.08224, §3.3).

The paper's L_all = L_kr + λ_kp·L_kp + λ_re·L_re + λ_pt·L_pt (Eqs. 2-6) is
trained, as in the official code (JngwenYe/LIRF train_deposit.py), as

    L = α·τ²·KD(g(z_T/τ), g(z_T0/τ))      preservation L_kp
      + (1−α)·CE(z_T, y_r)                 removal L_kr, y_r uniform over all classes
      + α·τ²·KD(ḡ(z_T̃/τ), ḡ(z_T0/τ))     partial transfer L_pt
      + (1−α)·CE(z_T̃, y)                  easy withdrawal L_re
      − λ_at·L_at(h_T, h_T0)               attention distance (λ_at = 0 in the code)

with KD(a, b) = KL(softmax(b) ‖ softmax(a)), g keeping the preserved-class
logits and ḡ the deposit-class logits, all on x ∈ D_r (design notes §2.3, not shipped).

Sample-level deposit (our extension, inference; the paper deposits classes): the batch
also holds retained samples R of D_r's classes (the owner's other samples of them), with

    + α·τ²·KD(z_T/τ, z_T0/τ) + (1−α)·CE(z_T, y)    on x ∈ R, over all classes

so the removal term pushes T off the deposited samples while R anchors their classes.

Class-level anchors (our extension, `anchor-samples`): the batch also holds A, some of the
owner's preserved-class samples, with

    + α·τ²·KD(z_A/τ, z_T0/τ) + (1−α)·CE(z_A, y),   z_A = ḡ(z_{T_r}) ⊕ g(z_T0)

on x ∈ A, over all classes, in a forward of their own: only T_r learns from A, and T's
BatchNorm statistics see D_r alone, as without anchors. Without them T_r's deposit-class logits ḡ are trained on D_r
only and nothing keeps them low elsewhere: T̃'s lost preserved accuracy went mostly into
the deposit classes (methods/lirf/README.md, "Recovery across deposit sets").
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def kd(student: torch.Tensor, teacher: torch.Tensor, classes: torch.Tensor,
       temperature: float) -> torch.Tensor:
    """τ²·KL(softmax(teacher/τ) ‖ softmax(student/τ)) over the `classes` columns only.

    τ² keeps the gradient scale independent of τ (Hinton et al., 2015).
    """
    log_p = F.log_softmax(student[:, classes] / temperature, dim=1)
    q = F.softmax(teacher[:, classes] / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean") * temperature**2


def random_labels(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """y_r: uniform over all classes, redrawn for every batch (the official code)."""
    return torch.randint(0, num_classes, y.shape, device=y.device)


def attention_map(h: torch.Tensor) -> torch.Tensor:
    """a(h): L2-normalised flattened mean_c h², entries below 0.005 zeroed."""
    a = F.normalize(h.pow(2).mean(dim=1).flatten(1), dim=1)
    return torch.where(a < 0.005, torch.zeros_like(a), a)


def attention_distance(h_target: torch.Tensor, h_original: torch.Tensor) -> torch.Tensor:
    """L_at = MSE(a(h_T), a(h_T0))."""
    return F.mse_loss(attention_map(h_target), attention_map(h_original))


def deposit_loss(out: dict[str, torch.Tensor], y: torch.Tensor, deposit_mask: torch.Tensor,
                 *, temperature: float, alpha: float, lambda_at: float = 0.0,
                 member: torch.Tensor | None = None) -> torch.Tensor:
    """The official objective above; `out` is DepositNet's forward, y the true labels.

    `member` (sample-level deposit): which rows are D_r; the others are retained samples of
    D_r's classes, on which T is distilled from T_0 (all classes) and trained on its label,
    so that T forgets the deposited samples, not their classes. Each part is weighted by
    its share of the batch. None: every row is D_r (class level, the official objective).
    """
    if member is None:
        return _forget_loss(out, y, deposit_mask, temperature, alpha, lambda_at)
    loss = out["z_target"].new_zeros(())
    share = member.float().mean()
    if member.any():
        rows = {k: v[member] for k, v in out.items()}
        loss = loss + share * _forget_loss(rows, y[member], deposit_mask, temperature, alpha,
                                           lambda_at)
    if not member.all():
        retained = ~member
        loss = loss + (1 - share) * _held_to_teacher(
            out["z_target"][retained], out["z_original"][retained], y[retained], temperature, alpha)
    return loss


def anchored_deposit_loss(net: Any, x: torch.Tensor, y: torch.Tensor, anchor: torch.Tensor, *,
                          temperature: float, alpha: float,
                          lambda_at: float = 0.0) -> torch.Tensor:
    """The class level with anchors: the official objective on the D_r rows, in a forward
    of their own (T's and T_r's BatchNorm see D_r alone, as without anchors), plus on the
    `anchor` rows (preserved-class samples) T̃'s anchor term, which trains T_r only: its
    deposit-class logits are held to T_0's, the other logits are T_0's own (T is not run on
    anchors, so its BatchNorm statistics never see them). `net` is a DepositNet. Every row
    weighs 1/batch as in the official objective, so a D_r row's weight per epoch is
    unchanged; anchors add steps to an epoch."""
    share = 1.0 - anchor.float().mean()
    loss = x.new_zeros(())
    if not anchor.all():
        loss = loss + share * _forget_loss(net(x[~anchor]), y[~anchor], net.deposit_mask,
                                           temperature, alpha, lambda_at)
    if anchor.any():
        z_original, z_deposit = net.anchor_logits(x[anchor])
        z = torch.where(net.deposit_mask, z_deposit, z_original)
        loss = loss + (1 - share) * _held_to_teacher(z, z_original, y[anchor], temperature, alpha)
    return loss


def _held_to_teacher(z: torch.Tensor, z_original: torch.Tensor, y: torch.Tensor,
                     temperature: float, alpha: float) -> torch.Tensor:
    """α·τ²·KD(z/τ, z_T0/τ) over all classes + (1−α)·CE(z, y): rows a model must keep as
    T_0 has them (the sample level's retained rows, the class level's anchors)."""
    every_class = torch.ones(z.shape[1], dtype=torch.bool, device=z.device)
    return (alpha * kd(z, z_original, every_class, temperature)
            + (1 - alpha) * F.cross_entropy(z, y))


def _forget_loss(out: dict[str, torch.Tensor], y: torch.Tensor, deposit_mask: torch.Tensor,
                 temperature: float, alpha: float, lambda_at: float) -> torch.Tensor:
    preserved, deposit = ~deposit_mask, deposit_mask
    z_original, z_target, z_recovered = out["z_original"], out["z_target"], out["z_recovered"]
    y_random = random_labels(y, z_target.shape[1])
    loss = (alpha * kd(z_target, z_original, preserved, temperature)
            + (1 - alpha) * F.cross_entropy(z_target, y_random)
            + alpha * kd(z_recovered, z_original, deposit, temperature)
            + (1 - alpha) * F.cross_entropy(z_recovered, y))
    if lambda_at > 0:  # maximise the distance: D_r knowledge must not be distillable from T
        loss = loss - lambda_at * attention_distance(out["h_target"], out["h_original"])
    return loss
