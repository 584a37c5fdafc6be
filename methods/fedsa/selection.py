"""FedSA's teacher selection rules (official code, kamal/utils/model_select.py; notes §1.3).

From the similarities sim_i ∈ [0, N_p]:

    τ_i = N_p / sim_i,  q_i = 2 − τ_i,  q̂ = (q − min q) / (max q − min q),
    p = softmax(q̂)

- sampled (the official default): k i.i.d. draws from p WITH replacement; a
  teacher drawn m times weighs m/k in the average.
- topk: the k most similar teachers, weight 1/k each (§3.1 uses uniform weights).
- random: k teachers uniformly without replacement (the official baseline).
- all: every teacher, weight 1/n.
- fixed: the named teachers (the oracle of the benchmark), 1/n each.

Pitfall 1: min-max + softmax caps max p / min p at e, so `sampled` is nearly
flat with few teachers; it is kept faithful, and `topk` is offered beside it.
Teachers are keyed by strings (the server uses "p<partition>"); ties keep the
order of `keys`.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np


def selection_probabilities(similarities: Sequence[float], num_probe: int) -> np.ndarray:
    sim = np.asarray(similarities, dtype=np.float64)
    if sim.ndim != 1 or len(sim) == 0 or not np.isfinite(sim).all() or (sim <= 0).any():
        raise ValueError(f"similarities must be finite and > 0, got {sim.tolist()}")
    q = 2.0 - num_probe / sim
    spread = q.max() - q.min()
    q_hat = (q - q.min()) / spread if spread > 0 else np.zeros_like(q)  # all equal: uniform
    e = np.exp(q_hat - q_hat.max())
    return e / e.sum()


def top_k(keys: Sequence[str], similarities: Sequence[float], k: int) -> list[str]:
    order = sorted(range(len(keys)), key=lambda i: (-similarities[i], i))  # stable on ties
    return [keys[i] for i in order[:k]]


def select_teachers(
    mode: str,
    keys: Sequence[str],
    similarities: Sequence[float],
    *,
    k: int,
    num_probe: int,
    rng: np.random.Generator,
    fixed: Sequence[str] = (),
) -> dict[str, int]:
    """How many times each teacher is drawn (only drawn teachers appear), in `keys` order."""
    keys = list(keys)
    if not keys:
        raise ValueError("no teacher to select from")
    if mode == "sampled":
        p = selection_probabilities(similarities, num_probe)
        drawn = [keys[i] for i in rng.choice(len(keys), size=k, replace=True, p=p)]
    elif mode == "topk":
        drawn = top_k(keys, similarities, k)
    elif mode == "random":
        drawn = [keys[i] for i in rng.choice(len(keys), size=min(k, len(keys)), replace=False)]
    elif mode == "all":
        drawn = keys
    elif mode == "fixed":
        drawn = [key for key in keys if key in set(fixed)]
    else:
        raise ValueError(f"unknown selection mode {mode!r}")
    counts = Counter(drawn)
    return {key: counts[key] for key in keys if counts[key]}


def draw_weights(counts: dict[str, int]) -> dict[str, float]:
    """m/k per teacher: the average counts a teacher once per draw."""
    total = sum(counts.values())
    return {key: m / total for key, m in counts.items()}


def precision_at_k(keys: Sequence[str], similarities: Sequence[float], k: int,
                   relevant: set[str]) -> float:
    """Fraction of relevant teachers among the k most similar."""
    chosen = top_k(keys, similarities, k)
    return sum(key in relevant for key in chosen) / len(chosen)
