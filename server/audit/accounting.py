"""Server-side (ε, δ) accounting with Google's dp-accounting: not the nodes' Opacus.

The nodes account with Opacus (PRV or RDP); the server re-derives every ε from the
ledger's (σ, q, steps) with an independent implementation: RDP of the Poisson
subsampled Gaussian (Mironov, Talwar, Zhang 2019) and privacy loss distributions
(PLD; Koskela et al. 2020, Doroshenko et al. 2022), PLD being the counterpart of
Opacus' PRV (Gopi, Lee, Wutschitz, NeurIPS 2021). Both are upper bounds for the
add/remove-one relation. Check A1 compares node and server figures.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Sequence

import numpy as np
from dp_accounting import dp_event, pld
from dp_accounting.rdp import rdp_privacy_accountant as rdp

Step = tuple[float, float, int]  # (σ, q, steps); q = 1 means no subsampling

# PLD grid: 1e-3 gives the same ε as 1e-4 to 4 digits at 1/10 of the time.
_PLD_DISCRETIZATION = 1e-3
# The counterpart of each node accountant on the server.
SERVER_METHOD = {"prv": "pld", "rdp": "rdp"}

logging.getLogger("absl").setLevel(logging.ERROR)  # RDP's convergence chatter


@functools.lru_cache(maxsize=256)
def _rdp_per_step(sigma: float, q: float) -> np.ndarray:
    """RDP of one Poisson-subsampled Gaussian step at every order (the costly part: cached;
    dp-accounting 0.6.0 is pinned, so its module-level function is a stable API here)."""
    return np.asarray(
        rdp._compute_rdp_poisson_subsampled_gaussian(q, sigma, rdp.DEFAULT_RDP_ORDERS)
    )


def _event(sigma: float, q: float) -> dp_event.DpEvent:
    gaussian = dp_event.GaussianDpEvent(sigma)
    return gaussian if q >= 1.0 else dp_event.PoissonSampledDpEvent(q, gaussian)


def _check(method: str) -> None:
    if method not in ("rdp", "pld"):
        raise ValueError(f"unknown server accountant {method!r} (rdp | pld)")


def epsilon_curve(history: Sequence[Step], delta: float, method: str) -> list[float]:
    """ε at δ after each prefix of `history` (one value per entry, e.g. per round)."""
    _check(method)
    curve: list[float] = []
    total = np.zeros(len(rdp.DEFAULT_RDP_ORDERS))
    accountant, composed = (
        pld.PLDAccountant(value_discretization_interval=_PLD_DISCRETIZATION),
        False,
    )
    for sigma, q, steps in history:
        if method == "rdp":
            total = total + steps * _rdp_per_step(float(sigma), float(q))
            curve.append(
                float(rdp.compute_epsilon(rdp.DEFAULT_RDP_ORDERS, total, delta)[0])
                if total.any()
                else 0.0
            )
        else:
            if steps > 0:
                accountant.compose(_event(sigma, q), int(steps))
                composed = True
            curve.append(float(accountant.get_epsilon(delta)) if composed else 0.0)
    return curve


def epsilon(history: Sequence[Step], delta: float, method: str) -> float:
    """ε at δ of the composition of every (σ, q, steps) in `history`."""
    curve = epsilon_curve(history, delta, method)
    return curve[-1] if curve else 0.0


def epsilon_at_deltas(history: Sequence[Step], deltas: Sequence[float], method: str) -> list[float]:
    """ε(δ) of the whole `history` at several δ, composing once."""
    _check(method)
    history = [h for h in history if h[2] > 0]
    if not history:
        return [0.0] * len(deltas)
    if method == "rdp":
        total = sum(steps * _rdp_per_step(float(s), float(q)) for s, q, steps in history)
        return [float(rdp.compute_epsilon(rdp.DEFAULT_RDP_ORDERS, total, d)[0]) for d in deltas]
    accountant = pld.PLDAccountant(value_discretization_interval=_PLD_DISCRETIZATION)
    for sigma, q, steps in history:
        accountant.compose(_event(sigma, q), int(steps))
    return [float(accountant.get_epsilon(d)) for d in deltas]


def noise_for(
    target_epsilon: float, delta: float, q: float, steps: int, method: str, tolerance: float = 0.01
) -> float:
    """The smallest σ (within `tolerance` in ε) whose ε after `steps` stays <= the target."""
    low, high = 0.05, 1.0
    while epsilon([(high, q, steps)], delta, method) > target_epsilon:
        low, high = high, 2 * high
        if high > 1e4:
            raise ValueError(f"no σ reaches ε={target_epsilon} in {steps} steps")
    for _ in range(60):
        mid = (low + high) / 2
        eps = epsilon([(mid, q, steps)], delta, method)
        if eps > target_epsilon:
            low = mid
        else:
            high = mid
            if target_epsilon - eps < tolerance:
                break
    return high


def relative_difference(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12) if math.isfinite(a + b) else math.inf
