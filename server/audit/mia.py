"""Membership inference from the nodes' scores, and the ε it proves.

Attacks: LOSS (Yeom et al., CSF 2018) and logit-scaled confidence (Carlini et al.,
S&P 2022), thresholded. Metrics: ROC, AUC, TPR at low FPR (Carlini et al. §III:
report TPR at 0.1 % and 1 % FPR on a log scale; TPR@FPR=f needs >= 1/f non-members
to be resolvable).

ε lower bound (Kairouz et al., ICML 2015; Jagielski et al., NeurIPS 2020): (ε, δ)-DP
implies TPR <= e^ε·FPR + δ and 1 − FPR <= e^ε·(1 − TPR) + δ at every threshold. With
Clopper–Pearson intervals at level a = s/(2T) over T thresholds,
ε̂ = max(0, max_τ log((TPR_lo − δ) / FPR_hi), max_τ log((TNR_lo − δ) / FNR_hi)).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.stats import beta
from sklearn.metrics import roc_auc_score, roc_curve

FPR_LEVELS = (0.001, 0.01, 0.1)
_MAX_THRESHOLDS = 200  # the CP correction divides s by T: more thresholds, weaker bound


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, level: float) -> float:
    """The best TPR among thresholds whose FPR is at most `level`."""
    ok = fpr <= level + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def _counts(members: np.ndarray, nonmembers: np.ndarray, thresholds: np.ndarray):
    """(TP, FP) of the rule "member iff score >= τ" for each τ."""
    members, nonmembers = np.sort(members), np.sort(nonmembers)
    tp = len(members) - np.searchsorted(members, thresholds, side="left")
    fp = len(nonmembers) - np.searchsorted(nonmembers, thresholds, side="left")
    return tp, fp


def _thresholds(members: np.ndarray, nonmembers: np.ndarray) -> np.ndarray:
    pooled = np.unique(np.concatenate([members, nonmembers]))
    if len(pooled) > _MAX_THRESHOLDS:  # quantiles: a fixed, data-independent count
        pooled = np.unique(np.quantile(pooled, np.linspace(0, 1, _MAX_THRESHOLDS)))
    return pooled


def clopper_pearson_epsilon(
    members: np.ndarray, nonmembers: np.ndarray, delta: float, significance: float = 0.05
) -> float:
    """ε̂ that holds with probability >= 1 − s over the scored examples."""
    n_in, n_out = len(members), len(nonmembers)
    if n_in == 0 or n_out == 0:
        return 0.0
    thresholds = _thresholds(members, nonmembers)
    a = significance / (2 * len(thresholds))
    tp, fp = _counts(members, nonmembers, thresholds)
    tpr_lo = np.where(tp > 0, beta.ppf(a, np.maximum(tp, 1), n_in - tp + 1), 0.0)
    fpr_hi = np.where(fp < n_out, beta.ppf(1 - a, fp + 1, np.maximum(n_out - fp, 1)), 1.0)
    tn, fn = n_out - fp, n_in - tp
    tnr_lo = np.where(tn > 0, beta.ppf(a, np.maximum(tn, 1), n_out - tn + 1), 0.0)
    fnr_hi = np.where(fn < n_in, beta.ppf(1 - a, fn + 1, np.maximum(n_in - fn, 1)), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = np.where(tpr_lo > delta, np.log((tpr_lo - delta) / fpr_hi), 0.0)
        lower = np.where(tnr_lo > delta, np.log((tnr_lo - delta) / fnr_hi), 0.0)
    best = max(np.nanmax(upper), np.nanmax(lower), 0.0)
    return float(best) if math.isfinite(best) else 0.0


def max_measurable(n_in: int, n_out: int, delta: float, significance: float = 0.05) -> float:
    """This attack's ceiling: the CP ε̂ of members and non-members perfectly separated, with
    as many (distinct) scores as the attack had; no other audit's m or grid enters it."""
    members = np.arange(n_out, n_out + n_in, dtype=float)
    return clopper_pearson_epsilon(members, np.arange(n_out, dtype=float), delta, significance)


def profile_violations(
    members: np.ndarray,
    nonmembers: np.ndarray,
    curve: Sequence[tuple[float, float]],
    significance: float = 0.05,
) -> int:
    """Thresholds whose TPR (CP lower end) exceeds the accountant's profile bound
    TPR <= min_δ [e^{ε(δ)}·FPR_hi + δ] over the (δ, ε(δ)) points of `curve`."""
    if len(members) == 0 or len(nonmembers) == 0 or not curve:
        return 0
    thresholds = _thresholds(members, nonmembers)
    a = significance / (2 * len(thresholds))
    tp, fp = _counts(members, nonmembers, thresholds)
    n_in, n_out = len(members), len(nonmembers)
    tpr_lo = np.where(tp > 0, beta.ppf(a, np.maximum(tp, 1), n_in - tp + 1), 0.0)
    fpr_hi = np.where(fp < n_out, beta.ppf(1 - a, fp + 1, np.maximum(n_out - fp, 1)), 1.0)
    bound = np.min([np.exp(eps) * fpr_hi + d for d, eps in curve], axis=0)
    return int((tpr_lo > np.minimum(bound, 1.0) + 1e-12).sum())


def attack_summary(
    members: np.ndarray, nonmembers: np.ndarray, delta: float, significance: float = 0.05
) -> dict:
    """AUC, TPR at low FPR (with whether it is resolvable), advantage, CP ε̂, ROC points."""
    members, nonmembers = np.asarray(members, float), np.asarray(nonmembers, float)
    labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    pooled = np.r_[members, nonmembers]
    fpr, tpr, _ = roc_curve(labels, pooled)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 400)).astype(int))
    return {
        "auc": float(roc_auc_score(labels, pooled)),
        "tpr_at_fpr": {str(f): tpr_at_fpr(fpr, tpr, f) for f in FPR_LEVELS},
        "resolvable": {str(f): len(nonmembers) >= 1 / f for f in FPR_LEVELS},
        "advantage": float(np.max(tpr - fpr)),
        "epsilon_lower_bound": clopper_pearson_epsilon(members, nonmembers, delta, significance),
        "max_measurable": max_measurable(len(members), len(nonmembers), delta, significance),
        "members": len(members),
        "nonmembers": len(nonmembers),
        "roc": {"fpr": fpr[keep].round(6).tolist(), "tpr": tpr[keep].round(6).tolist()},
    }
