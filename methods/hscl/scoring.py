"""Normality scores and AUROC (Wang et al., ECCV 2022, §3.5; CSI's ensemble score).

s(x) = Σ_k [ w_sim,k · ‖z̄_k‖·cos(z̄_k(x), d_k) + w_shi,k · ℓ_k(x_k) ], k over the 4
rotations, z̄_k the mean of the embeddings g(f(·)) of `views` augmentations of the k-rotated
image (as CSI's get_scores: raw features dotted with a unit direction), ℓ_k its rotation
head's logit for rotation k, w_sim,k = 1/max(1, mean‖g(f(x_k))‖) and
w_shi,k = 1/max(1, mean ℓ_k) on the training data (the model's buffers; the max is ours). The direction d_k is
the prototype p for HSCL; for the CSI-lite baseline, which has no prototype, it is the
mean training direction of z_k (a federated stand-in for CSI's max-cosine to a bank of
training features, which would mean shipping client features to the scorer).
The supervised baseline scores by its normality logit. Higher = more normal.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from methods.hscl.nets import NUM_ROTATIONS, HSCLNet, augment

# The weights 1/mean only ever scale a term down: a barely trained rotation head (mean
# correct logit ≈ 0.05 after a few federated epochs) would otherwise have its noise
# amplified 20× and drown the similarity term (measured: AUROC 0.59 instead of 0.76).
_MIN_STAT = 1.0


@torch.no_grad()
def normality_scores(model: HSCLNet, x: torch.Tensor, *, views: int = 0, seed: int = 0,
                     chunk: int = 500) -> torch.Tensor:
    """Scores of images x (N×1×H×W); views=0 scores the clean image (deterministic)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([_scores(model, x[i: i + chunk], views, generator)
                      for i in range(0, len(x), chunk)])


def _scores(model: HSCLNet, x: torch.Tensor, views: int, generator: torch.Generator) -> torch.Tensor:
    if model.variant == "supervised":
        return model(x)["binary"]
    score = torch.zeros(len(x))
    for k in range(NUM_ROTATIONS):
        rotated = torch.rot90(x, k, dims=(2, 3))
        batches = [augment(rotated, generator=generator) for _ in range(views)] or [rotated]
        outs = [model(b) for b in batches]
        z_mean = torch.stack([o["z"] for o in outs]).mean(0)
        logit = torch.stack([o["shift"][:, k] for o in outs]).mean(0)
        direction = model.prototype if model.variant == "hscl" else model.centre[k]
        # ‖z̄‖·cos(z̄, d) / mean‖z‖ (CSI: raw features dotted with a unit axis): an O(1) term
        score += z_mean @ F.normalize(direction, dim=0) / model.z_norm[k].clamp_min(_MIN_STAT)
        score += logit / model.shift_logit[k].clamp_min(_MIN_STAT)
    return score


def auroc(normal: np.ndarray, scores: np.ndarray) -> float:
    """AUROC of `scores` separating normal (1) from anomalous (0); 0.5 if one class is absent."""
    from sklearn.metrics import roc_auc_score

    normal = np.asarray(normal)
    if normal.min() == normal.max():
        return 0.5  # undefined; the chance level keeps per-round records finite on tiny subsets
    return float(roc_auc_score(normal, np.asarray(scores)))
