"""LIRF's metrics (Ye et al., ECCV 2022, §4.1; arithmetic checked on Table 1) and a
loss-based membership-inference audit.

- Pre / Dep Acc: accuracy on preserved- / deposit-class test data; Avg Acc: all.
- F = DepAcc(T_0) − DepAcc(T)                       (Table 1: 94.60 − 15.00 = 79.60)
- H = 2·PreAcc(T)·F / (PreAcc(T) + F)               (Table 1: 85.95)
- membership inference (Yeom et al., CSF 2018): score = −loss; AUC of deposited
  (member) against never-seen (non-member) samples; 0.5 = indistinguishable.
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
    """(predicted labels, per-sample cross-entropy) of `model` in eval mode."""
    model.eval()
    preds, losses = [], []
    for start in range(0, len(y), batch):
        xb = torch.tensor(x[start:start + batch])
        yb = torch.tensor(y[start:start + batch])
        logits = model(xb)
        preds.append(logits.argmax(1).numpy())
        losses.append(F.cross_entropy(logits, yb, reduction="none").numpy())
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

    members, nonmembers = np.asarray(member_losses), np.asarray(nonmember_losses)
    if not len(members) or not len(nonmembers):
        raise ValueError("membership AUC needs at least one member and one non-member")
    labels = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    return float(roc_auc_score(labels, -np.concatenate([members, nonmembers])))
