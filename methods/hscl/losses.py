"""HSCL's losses (Wang et al., "Hierarchical Semi-Supervised Contrastive Learning for
Contamination-Resistant Anomaly Detection", ECCV 2022, arXiv:2207.11789).

L = L_sim + L_shift + L_HSCL (§3.4), following the official code
(training/contrastive_loss.py::convex_contrastive_with_polluted):

- L_sim (Eq. 1, SimCLR's NT-Xent as in CSI): positives are the two views of the same image
  under the same rotation; every other embedding is a negative.
- L_shift: cross-entropy of the 4-way rotation head (CSI's shifted-instance classifier).
- Sample-to-prototype, L_vec (Eq. 4–5): with z detached (only p learns),
  L_vec = mean_{i∈N∪U} (w_i·(cos(z_i,p) − 1))² + mean_{j∈A} (cos(z_j,p) + 1)²,
  w_i = 1 on labeled normals N, w_i = sg((cos(z_i,p)+1)/2) on unlabeled U.
- Sample-to-sample, L_cc (Eq. 2–3 with normal-to-abnormal negatives, Eq. 6): anchors and
  positives are normalised convex combinations of k embeddings drawn from N ∪ U with
  probability ∝ w_i (w_i ≤ 0.4 set to 0), negatives convex combinations of k labeled
  anomalies; L_cc = mean −log softmax([r·cos(a, p⁺), r·cos(a, n)])₀.
- L_HSCL = L_cc + L_vec, and 0 when a batch lacks labeled normals or labeled anomalies.

The supervised baseline's loss is binary cross-entropy on the labeled images only.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from methods.hscl.data import LABELED_ANOMALY, LABELED_NORMAL, UNLABELED


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """L_sim for 2n normalised embeddings whose i-th and (i+n)-th rows are a positive pair."""
    n = len(z) // 2
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(len(z), dtype=torch.bool), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, targets)


def prototype_weights(z: torch.Tensor, prototype: torch.Tensor, roles: torch.Tensor) -> torch.Tensor:
    """w_i: 1 on labeled normals, sg((cos(z_i,p)+1)/2) on unlabeled, 0 on labeled anomalies."""
    cos = z.detach() @ F.normalize(prototype, dim=0).detach()
    w = torch.where(roles == UNLABELED, (cos + 1) / 2, torch.zeros_like(cos))
    return torch.where(roles == LABELED_NORMAL, torch.ones_like(cos), w)


def prototype_loss(z: torch.Tensor, prototype: torch.Tensor, roles: torch.Tensor) -> torch.Tensor:
    """L_vec (sample-to-prototype): pulls p towards (weighted) normals, away from anomalies."""
    cos = z.detach() @ F.normalize(prototype, dim=0)
    w = prototype_weights(z, prototype, roles)
    normal_like = roles != LABELED_ANOMALY
    loss = (w[normal_like] * (cos[normal_like] - 1)).square().mean()
    return loss + (cos[roles == LABELED_ANOMALY] + 1).square().mean()


def convex_mix(z: torch.Tensor, probs: torch.Tensor, count: int, k: int) -> torch.Tensor:
    """`count` normalised convex combinations of k rows of z drawn ∝ probs (λ ~ U(0,1), normalised)."""
    idx = torch.multinomial(probs, count * k, replacement=True).view(count, k)
    lam = torch.rand(count, k)
    lam = lam / lam.sum(1, keepdim=True)
    return F.normalize((z[idx] * lam.unsqueeze(2)).sum(1), dim=1)


def convex_contrastive_loss(z: torch.Tensor, weights: torch.Tensor, roles: torch.Tensor, *,
                            k: int, scale: float, threshold: float) -> torch.Tensor:
    """L_cc (sample-to-sample with normal-to-abnormal negatives); one anchor per embedding."""
    pool = roles != LABELED_ANOMALY
    w = torch.where(weights > threshold, weights, torch.zeros_like(weights)) * pool
    count = len(z)
    anchor = convex_mix(z, w, count, k)
    positive = convex_mix(z, w, count, k)
    negative = convex_mix(z, (roles == LABELED_ANOMALY).float(), count, k)
    logits = scale * torch.stack([(anchor * positive).sum(1), (anchor * negative).sum(1)], dim=1)
    return F.cross_entropy(logits, torch.zeros(count, dtype=torch.long))


def hscl_loss(z: torch.Tensor, prototype: torch.Tensor, roles: torch.Tensor, *, k: int = 2,
              scale: float = 2.0, threshold: float = 0.4) -> torch.Tensor:
    """L_HSCL = L_cc + L_vec for normalised embeddings z and per-embedding roles."""
    if not ((roles == LABELED_NORMAL).any() and (roles == LABELED_ANOMALY).any()):
        return z.new_zeros(())
    weights = prototype_weights(z, prototype, roles)
    return (convex_contrastive_loss(z, weights, roles, k=k, scale=scale, threshold=threshold)
            + prototype_loss(z, prototype, roles))


def supervised_bce(logits: torch.Tensor, roles: torch.Tensor) -> torch.Tensor:
    """BCE of the normality logit on labeled images (normal = 1, anomaly = 0); unlabeled ignored."""
    labeled = roles != UNLABELED
    if not labeled.any():
        return logits.sum() * 0.0  # keeps the graph: the shared loop calls backward()
    target = (roles[labeled] == LABELED_NORMAL).float()
    return F.binary_cross_entropy_with_logits(logits[labeled], target)
