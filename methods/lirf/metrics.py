"""LIRF's metrics (Ye et al., ECCV 2022, §4.1; arithmetic checked on Table 1) and a
loss-based membership-inference audit.

- Pre / Dep Acc: accuracy on preserved- / deposit-class test data; Avg Acc: all.
- F = DepAcc(T_0) − DepAcc(T)                       (Table 1: 94.60 − 15.00 = 79.60)
- H = 2·PreAcc(T)·F / (PreAcc(T) + F)               (Table 1: 85.95)
- membership inference (Yeom et al., CSF 2018): score = −loss; AUC of deposited
  (member) against never-seen (non-member) samples; 0.5 = indistinguishable. The owner
  node runs it (clients/lirf_owner.py), so both sides import it from here.

`predictions` runs the model where it is (the server's or the node's device) and returns
CPU numpy arrays. The figures after it (accuracies, the AUC and ROC curve by sklearn) stay
on the CPU on purpose: they read a few thousand numbers once per model, and sklearn takes
numpy only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def forgetting(dep_acc_original: float, dep_acc_target: float) -> float:
    """F: how much deposit-class accuracy the deposit removed."""
    return dep_acc_original - dep_acc_target


def harmonic(pre_acc_target: float, forgetting_value: float) -> float:
    """H: harmonic mean of preserved accuracy and forgetting (0 when both are 0)."""
    total = pre_acc_target + forgetting_value
    return 2 * pre_acc_target * forgetting_value / total if total > 0 else 0.0


@torch.no_grad()
def predictions(model: nn.Module, x: np.ndarray, y: np.ndarray,
                batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(predicted labels, per-sample cross-entropy) of `model` in eval mode, computed on the
    model's device; numpy arrays on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    preds, losses = [], []
    for start in range(0, len(y), batch):
        xb = torch.tensor(x[start:start + batch]).to(device)  # a copy: cached sets are read-only
        yb = torch.tensor(y[start:start + batch]).to(device)
        logits = model(xb)
        preds.append(logits.argmax(1).cpu().numpy())
        losses.append(F.cross_entropy(logits, yb, reduction="none").cpu().numpy())
    return np.concatenate(preds), np.concatenate(losses)


def split_accuracy(pred: np.ndarray, y: np.ndarray, deposit_classes) -> dict[str, float]:
    """pre_acc (classes not deposited), dep_acc (deposit classes), avg_acc (all)."""
    correct = pred == y
    deposit = np.isin(y, list(deposit_classes))
    return {
        "pre_acc": float(correct[~deposit].mean()) if (~deposit).any() else float("nan"),
        "dep_acc": float(correct[deposit].mean()) if deposit.any() else float("nan"),
        "avg_acc": float(correct.mean()),
    }


def membership_auc(member_losses, nonmember_losses) -> float:
    """ROC AUC of the loss-threshold attack: members are expected to have lower loss."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(*_loss_attack(member_losses, nonmember_losses)))


def membership_roc(member_losses, nonmember_losses, *,
                   max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of the loss-threshold attack from (0, 0) to (1, 1), at most `max_points`.

    Thinned by keeping evenly spaced points of sklearn's curve, ends included: a subsequence
    of a monotone curve stays monotone, and the bound keeps the curve from growing with
    the number of members (one point per distinct loss would describe every member).
    """
    from sklearn.metrics import roc_curve

    if max_points < 2:
        raise ValueError(f"an ROC curve needs at least its two ends, got max_points={max_points}")
    fpr, tpr, _ = roc_curve(*_loss_attack(member_losses, nonmember_losses))
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), max_points)).round().astype(int))
    return fpr[keep], tpr[keep]


def roc_problem(fpr, tpr, *, max_points: int) -> str | None:
    """Why (fpr, tpr) is not an ROC curve of 2..max_points points (None: it is one).

    Total on any input: the server runs it on a node's reply before trusting it."""
    lists = (fpr, tpr)
    if not all(isinstance(v, list) and all(isinstance(x, float) for x in v) for v in lists):
        return "the ROC curve is not two lists of floats"
    if len(fpr) != len(tpr) or not 2 <= len(fpr) <= max_points:
        return f"the ROC curve has {len(fpr)} and {len(tpr)} values, not 2..{max_points} pairs"
    curve = np.asarray(lists, dtype=np.float64)
    if not np.isfinite(curve).all() or (curve < 0).any() or (curve > 1).any():
        return "an ROC point lies outside [0, 1]"
    if (np.diff(curve, axis=1) < 0).any():
        return "the ROC curve is not monotone"
    if curve[:, 0].any() or not (curve[:, -1] == 1).all():
        return "the ROC curve does not run from (0, 0) to (1, 1)"
    return None


def _loss_attack(member_losses, nonmember_losses) -> tuple[np.ndarray, np.ndarray]:
    """(is-member labels, attack scores = −loss) of members followed by non-members."""
    members, nonmembers = np.asarray(member_losses), np.asarray(nonmember_losses)
    if not len(members) or not len(nonmembers):
        raise ValueError("membership AUC needs at least one member and one non-member")
    labels = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    return labels, -np.concatenate([members, nonmembers])
