"""The `dp` and `audit` sections of a run's config (no Opacus here: methods/ never imports it).

Both are cross-cutting: any method whose workflow is the standard round loop
runs with `dp.enabled=true` or `audit.enabled=true`; no method branches on them.
The keys are `dp.<field>` and `audit.<field>` in kebab-case (`dp.target-epsilon`).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.config import ConfigError

DP_LEVELS = ("sample", "client")
ACCOUNTANTS = ("prv", "rdp")
GRAD_SAMPLE_MODES = ("auto", "hooks", "functorch", "ew", "ghost")


@dataclass(frozen=True)
class DPConfig:
    """Differential privacy of the clients' training (Abadi et al., CCS 2016, Alg. 1)."""

    enabled: bool = False
    """Train with DP; off = the run is not private and the ledger stays empty."""
    level: str = "sample"
    """sample = DP-SGD on each node, each record of node k is (ε_k, δ)-DP; client = Flower's
    central-DP wrapper (clip each update, noise the aggregate), each node's whole data is."""
    target_epsilon: float = 3.0
    """ε each node may have spent at the end of the planned run; σ is chosen for it."""
    delta: float = 1e-5
    """δ of the (ε, δ) guarantee; should be < 1/n_k (the audit warns otherwise)."""
    noise_multiplier: float = 0.0
    """σ (noise std / C). 0 = derive once from target-epsilon for the planned rounds."""
    max_grad_norm: float = 1.0
    """C: per-example (sample level) or per-update (client level) L2 clipping norm."""
    accountant: str = "prv"
    """prv (Gopi et al. 2021, numerically tight) or rdp (Mironov 2017, conservative)."""
    max_epsilon: float = 0.0
    """Per-node budget: a node whose next round would exceed it stops training.
    0 = target-epsilon."""
    grad_sample_mode: str = "auto"
    """Opacus per-sample gradient engine: auto | hooks | functorch | ew | ghost.
    auto = ghost clipping for Linear-heavy models whose method gives per-sample losses."""

    @property
    def budget(self) -> float:
        return self.max_epsilon if self.max_epsilon > 0 else self.target_epsilon

    def validate(self) -> None:
        problems = []
        if self.level not in DP_LEVELS:
            problems.append(f"dp.level must be one of {DP_LEVELS}, got {self.level!r}")
        if self.accountant not in ACCOUNTANTS:
            problems.append(f"dp.accountant must be one of {ACCOUNTANTS}, got {self.accountant!r}")
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            problems.append(
                f"dp.grad-sample-mode must be one of {GRAD_SAMPLE_MODES}, "
                f"got {self.grad_sample_mode!r}"
            )
        if not 0.0 < self.delta < 1.0:
            problems.append(f"dp.delta must be in (0, 1), got {self.delta}")
        if self.target_epsilon <= 0 or self.max_epsilon < 0 or self.noise_multiplier < 0:
            problems.append(
                "dp.target-epsilon must be > 0, dp.max-epsilon and dp.noise-multiplier >= 0"
            )
        if self.max_grad_norm <= 0:
            problems.append(f"dp.max-grad-norm must be > 0, got {self.max_grad_norm}")
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class AuditConfig:
    """The end-of-run privacy audit (server/audit): canaries and membership inference."""

    enabled: bool = False
    """Plant canaries during training and score them (and members/non-members) at the end."""
    canaries: int = 200
    """m: mislabeled black-box canaries over the whole federation, split evenly over the
    nodes; each is trained on iff its secret coin says IN (Steinke et al. 2023, Alg. 1).
    The largest ε̂ an audit can show (its ceiling: every guess right) grows with m: at
    δ=1e-5, s=0.05 and the report's Bonferroni-corrected (k₊, k₋) grid, m=200 → 3.49,
    m=1000 → 4.58 (server/audit/canary.py max_measurable). A ceiling is not power: check
    A7 asks for a measured positive control."""
    whitebox_canaries: int = 1000
    """Dirac gradient canaries over the federation (audited runs with sample-level DP or
    without DP; not under client-level DP): each is a virtual record whose (clipped)
    gradient is C·e_j (C = dp.max-grad-norm), read back from the client updates."""
    holdout_fraction: float = 0.1
    """Fraction of each node's data never trained on: the non-members of the MIA."""
    mia_examples: int = 500
    """At most this many members and as many non-members scored per node."""
    significance: float = 0.05
    """s: the audit's lower bounds hold with probability >= 1 - s."""

    def validate(self) -> None:
        if self.canaries < 0 or self.whitebox_canaries < 0 or self.mia_examples < 1:
            raise ConfigError(
                "audit.canaries and audit.whitebox-canaries must be >= 0, audit.mia-examples >= 1"
            )
        if not 0.0 < self.holdout_fraction < 0.5:
            raise ConfigError(
                f"audit.holdout-fraction must be in (0, 0.5), got {self.holdout_fraction}"
            )
        if not 0.0 < self.significance < 0.5:
            raise ConfigError(f"audit.significance must be in (0, 0.5), got {self.significance}")
