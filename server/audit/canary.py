"""One-run privacy auditing: Steinke, Nasr, Jagielski, "Privacy Auditing with One (1)
Training Run", NeurIPS 2023 (Algorithm 1, Theorem 3.3).

m canaries with secret coins S_i ∈ {IN, OUT}; train once; rank the canaries by a
score Y_i; guess IN for the top k₊ and OUT for the bottom k₋ (r = k₊ + k₋ guesses,
v correct). Under (ε, δ)-DP, with q = e^ε / (1 + e^ε):

    p(ε, δ) = min(1, β + 2mδ·α),   β = P[Bin(r, q) >= v],
    α = max_{i=1..v} P[v > Bin(r, q) >= v − i] / i,

and ε̂ is the largest ε with p(ε, δ) < s. p grows with ε, so ε̂ is found by
bisection. Trying several (k₊, k₋) is multiple testing: each test runs at
s / |grid| (Bonferroni), so the reported ε̂ holds with probability >= 1 − s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

K_PLUS = (10, 20, 50, 100, 200, 500, 1000)
K_MINUS = (0, 10, 50, 100, 200, 500)


def p_value(epsilon: float, m: int, r: int, v: int, delta: float) -> float:
    """p(ε, δ) of Theorem 3.3: how surprising v correct of r guesses is under (ε, δ)-DP."""
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = binom.sf(v - 1, r, q)  # P[Bin >= v]
    alpha = 0.0
    if delta > 0 and v > 0:
        i = np.arange(1, v + 1)
        window = binom.cdf(v - 1, r, q) - binom.cdf(v - i - 1, r, q)  # P[v-i <= Bin < v]
        alpha = float(np.max(window / i))
    return min(1.0, float(beta) + 2 * m * delta * alpha)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, significance: float) -> float:
    """The largest ε that v correct of r guesses refute at level `significance` (0 if none)."""
    if r == 0 or p_value(0.0, m, r, v, delta) >= significance:
        return 0.0
    low, high = 0.0, 1.0
    while high < 50 and p_value(high, m, r, v, delta) < significance:
        low, high = high, 2 * high
    for _ in range(40):  # width 2^-40 of at most 64: far below any digit reported
        mid = (low + high) / 2
        if p_value(mid, m, r, v, delta) < significance:
            low = mid
        else:
            high = mid
    return low


def guess_grid(m: int) -> list[tuple[int, int]]:
    """The pre-registered (k₊, k₋) pairs that fit m canaries."""
    return [(kp, km) for kp in K_PLUS for km in K_MINUS if kp + km <= m]


@dataclass(frozen=True)
class OneRunAudit:
    m: int
    epsilon_lower_bound: float
    guesses: int
    correct: int
    k_plus: int
    k_minus: int
    grid_size: int
    significance: float
    max_measurable: float
    by_guesses: list[tuple[int, int, float]]  # (r, v, ε̂) of every grid point, for the figure

    def to_json(self) -> dict:
        return {
            "m": self.m,
            "epsilon_lower_bound": self.epsilon_lower_bound,
            "guesses": self.guesses,
            "correct": self.correct,
            "k_plus": self.k_plus,
            "k_minus": self.k_minus,
            "grid_size": self.grid_size,
            "correction": "Bonferroni",
            "significance": self.significance,
            "max_measurable": self.max_measurable,
            "by_guesses": [list(t) for t in self.by_guesses],
        }


def max_measurable(m: int, delta: float, significance: float = 0.05) -> float:
    """The largest ε̂ the audit can report with m canaries: every guess of the grid right."""
    grid = guess_grid(m)
    level = significance / max(len(grid), 1)
    return max(
        (epsilon_lower_bound(m, kp + km, kp + km, delta, level) for kp, km in grid), default=0.0
    )


def _ranked(scores: np.ndarray, included: np.ndarray) -> np.ndarray:
    """The coins in decreasing score order; ties broken at random (seeded) so identical
    scores carry no information."""
    order = np.lexsort((np.random.default_rng(0).random(len(scores)), -scores))
    return included[order]


def _correct(ranked: np.ndarray, k_plus: int, k_minus: int) -> int:
    """v: IN among the top k₊ plus OUT among the bottom k₋."""
    m = len(ranked)
    return int(ranked[:k_plus].sum()) + int((~ranked[m - k_minus :]).sum() if k_minus else 0)


def audit_epsilon(
    scores: np.ndarray, included: np.ndarray, delta: float, significance: float = 0.05
) -> float:
    """The ε̂ of `one_run_audit` alone, faster: a grid point is bisected only when it can
    beat the best so far (p(best) < s; p grows with ε, so otherwise its ε̂ <= best).
    For repeated audits (the positive control), where the per-point figure is not needed."""
    scores, included = np.asarray(scores, float), np.asarray(included, bool)
    m, grid = len(scores), guess_grid(len(scores))
    if not grid:
        return 0.0
    level, ranked, best = significance / len(grid), _ranked(scores, included), 0.0
    for k_plus, k_minus in sorted(grid, key=lambda g: -(g[0] + g[1])):  # big r first: best early
        r, v = k_plus + k_minus, _correct(ranked, k_plus, k_minus)
        if p_value(best, m, r, v, delta) < level:
            best = max(best, epsilon_lower_bound(m, r, v, delta, level))
    return best


def one_run_audit(
    scores: np.ndarray,
    included: np.ndarray,
    delta: float,
    significance: float = 0.05,
    *,
    with_ceiling: bool = True,
) -> OneRunAudit:
    """ε̂ (max over the grid, Bonferroni-corrected) from canary scores and their coins."""
    scores, included = np.asarray(scores, float), np.asarray(included, bool)
    m, grid = len(scores), guess_grid(len(scores))
    if not grid:
        return OneRunAudit(m, 0.0, 0, 0, 0, 0, 0, significance, 0.0, [])
    level = significance / len(grid)
    ranked = _ranked(scores, included)
    best, points = (0.0, 0, 0, 0, 0), []
    for k_plus, k_minus in grid:
        v = _correct(ranked, k_plus, k_minus)
        eps = epsilon_lower_bound(m, k_plus + k_minus, v, delta, level)
        points.append((k_plus + k_minus, v, eps))
        if eps > best[0]:
            best = (eps, k_plus + k_minus, v, k_plus, k_minus)
    ceiling = max_measurable(m, delta, significance) if with_ceiling else math.nan
    return OneRunAudit(
        m, best[0], best[1], best[2], best[3], best[4], len(grid), significance, ceiling, points
    )


def null_calibration(
    scores: np.ndarray,
    included: np.ndarray,
    delta: float,
    significance: float = 0.05,
    trials: int = 40,
    seed: int = 0,
) -> float:
    """Check A8: the share of re-randomised coin draws on which the audit finds ε̂ = 0.

    With coins independent of the scores nothing can be learnt, so a sound audit
    must say 0 in at least 1 − s of the trials (jax_privacy#270 found ε̂≈3.5 here).
    """
    rng = np.random.default_rng(seed)
    zero = sum(
        one_run_audit(
            scores, rng.random(len(scores)) < 0.5, delta, significance, with_ceiling=False
        ).epsilon_lower_bound
        == 0.0
        for _ in range(trials)
    )
    return zero / trials
