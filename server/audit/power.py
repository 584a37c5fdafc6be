"""Measured power of the white-box canary audit: a positive control, and how each audit's
outcome is worded.

A ceiling (the ε̂ reached if every guess were right) is not power: an audit that could
"in principle" reach ε may still see nothing against a broken implementation. The
positive control measures instead what the report's own audit finds against an *ideal
white-box observation of the same design* (Nasr et al., "Tight Auditing of
Differentially Private Machine Learning", USENIX Security 2023: Dirac gradient canaries
read from the model updates; Steinke, Nasr, Jagielski, NeurIPS 2023: one run):

- node k's m_k canaries with the run's own coins (`p<k>|whitebox|in`);
- its ledger's (σ, q, steps) per round and its clipping norm C;
- an IN canary joins each of the node's T steps with probability q and then adds exactly
  C to its coordinate; every step adds N(0, (σ_ctrl·C)²) there. Score of an IN canary:
  C · (steps joined) + N(0, Σ_rounds T_r·(σ_ctrl·C)²); of an OUT canary: the noise alone.

The report's own one-run audit (canary.audit_epsilon: one_run_audit's ε̂, same δ,
significance and (k₊, k₋) grid) then runs on these scores at σ_ctrl = σ (how tight the
audit can be against a correct implementation) and at σ_ctrl = σ/10 (what it would show
against a 10× noise bug). A fixed seed keeps the report
reproducible; the median over a few repetitions keeps one lucky draw out of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from server.audit.canary import audit_epsilon

SIGMA_FACTORS = (1.0, 0.1)
REPETITIONS = 5
SEED = 20230615  # fixed: the report must come out the same each time it is built
NOT_MEASURED = "positive control: not measured"


def factor_key(factor: float) -> str:
    return f"sigma_factor_{factor:g}"


@dataclass(frozen=True)
class NodeDesign:
    """What the control needs of one node: its coins, its steps and noise, its C."""

    node: str
    coins: np.ndarray
    history: list[tuple[float, float, int]]  # (σ, q, steps) per round
    clip: float


def node_designs(
    scores: Mapping[str, np.ndarray], lines: list[dict], default_clip: float
) -> list[NodeDesign]:
    """One design per node with white-box coins, from the ledger lines the report uses.
    A node without ledger lines never trained: its IN canaries joined no step (T = 0)."""
    nodes = sorted({k.split("|")[0] for k in scores if k.endswith("|whitebox|in")})
    designs = []
    for node in nodes:
        own = [x for x in lines if x["node"] == node]
        clip = own[-1].get("max_grad_norm") if own else None
        history = [_step(x) for x in own]
        coins = np.asarray(scores[f"{node}|whitebox|in"], bool)
        clip = float(clip) if _finite_positive(clip) else default_clip
        designs.append(NodeDesign(node, coins, history, clip))
    return designs


def _step(line: dict) -> tuple[float, float, int]:
    return float(line["noise_multiplier"]), float(line["sample_rate"]), int(line["steps"])


def _finite_positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _simulated(design: NodeDesign, rng: np.random.Generator, factors) -> dict[float, np.ndarray]:
    """One draw of the node's scores at every σ factor. The inclusion counts and the
    standard normal draws are shared across factors (common random numbers), so the
    factors differ by the noise scale alone."""
    m = len(design.coins)
    joined = np.zeros(m)
    variance = np.zeros(len(factors))
    for sigma, q, steps in design.history:
        joined += rng.binomial(steps, min(max(q, 0.0), 1.0), size=m)
        variance += steps * (np.asarray(factors) * sigma * design.clip) ** 2
    signal = design.clip * joined * design.coins
    z = rng.standard_normal(m)
    return {f: signal + math.sqrt(v) * z for f, v in zip(factors, variance)}


def positive_control(
    designs: list[NodeDesign],
    delta: float,
    significance: float,
    *,
    factors: tuple[float, ...] = SIGMA_FACTORS,
    repetitions: int = REPETITIONS,
    seed: int = SEED,
) -> dict[str, Any]:
    """The median ε̂ of the report's one-run audit on simulated ideal white-box scores,
    per σ factor, pooled over nodes as the real audit pools them."""
    coins = np.concatenate([d.coins for d in designs]) if designs else np.zeros(0, bool)
    runs: dict[float, list[float]] = {f: [] for f in factors}
    for rep in range(repetitions):
        rng = np.random.default_rng([seed, rep])
        draws = [_simulated(d, rng, factors) for d in designs]
        for f in factors:
            y = np.concatenate([d[f] for d in draws]) if draws else np.zeros(0)
            runs[f].append(audit_epsilon(y, coins, delta, significance))
    out: dict[str, Any] = {factor_key(f): float(np.median(runs[f])) for f in factors}
    out.update(
        measured=True,
        statistic="median",
        repetitions=repetitions,
        seed=seed,
        by_repetition={factor_key(f): runs[f] for f in factors},
        design="ideal white-box simulation of the run's canaries, coins, (σ, q, steps) and C",
    )
    return out


def whitebox_control(
    scores: Mapping[str, np.ndarray], lines: list[dict], default_clip: float, delta: float, s: float
) -> dict[str, Any]:
    """The white-box section's positive control, or why there is none."""
    if not lines:
        return {"measured": False, "reason": "no DP-SGD ledger: no (σ, q, steps) to simulate"}
    if any(x.get("level", "sample") != "sample" for x in lines):
        return {"measured": False, "reason": "the control simulates DP-SGD (sample level) only"}
    return positive_control(node_designs(scores, lines, default_clip), delta, s)


def outcome(epsilon_hat: float | None, claim: float | None, control: Mapping[str, Any]) -> str:
    """One audit's result in words: only its own ε̂ and its own positive control."""
    if epsilon_hat is None:
        return "not run"
    a = f"{epsilon_hat:.3f}"
    if claim is None:
        return f"no DP: ε̂ = {a} shows what this audit detects"
    if not math.isfinite(claim):
        text = f"no finite ε claim to test (ε = {claim}); ε̂ = {a}"
    elif epsilon_hat > claim:
        text = f"refuted: ε̂ = {a} > ε = {claim:.3f}"
    else:
        text = f"not refuted: ε̂ = {a} ≤ ε = {claim:.3f}"
    if not control.get("measured"):
        return f"{text}; {NOT_MEASURED}"
    x = control[factor_key(0.1)]
    return (
        f"{text}; against the same canaries with σ/10 this audit reaches ε̂ = {x:.3f}, "
        f"so it could refute a claim of ε below {x:.3f}"
    )
