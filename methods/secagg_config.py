"""The `secagg` section of a run's config: Flower's SecAgg+ around the round loop's updates.

With `secagg.enabled` the server learns only the weighted sum of the sampled nodes'
updates (server/secure_aggregation.py runs Flower's SecAggPlusWorkflow; the nodes run
its secaggplus_mod, clients/secure_aggregation.py). The keys carry Flower's names
(SecAggPlusWorkflow's arguments) in kebab-case: `secagg.num-shares`,
`secagg.reconstruction-threshold`, `secagg.clipping-range`, `secagg.quantization-range`,
`secagg.modulus-range`, `secagg.max-weight`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from methods.config import Bound, ConfigError

MAX_MODULUS = 2**32  # Flower's masks are uint32 arithmetic (SecAggPlusWorkflow's docstring)


@dataclass(frozen=True)
class SecAggConfig:
    """Secure aggregation (Bell et al., CCS 2020: SecAgg+) of each round's updates."""

    enabled: bool = False
    """Mask every update: the server sees only their sum (FedAvg and DP-FedAvg rounds)."""
    num_shares: int = 0
    """Shares each node's secrets are split into, one per neighbour (itself included).
    0 = every sampled node is every node's neighbour (SecAgg's full graph); else >= 3."""
    reconstruction_threshold: int = 0
    """Shares needed to rebuild a secret: the round completes while every node keeps at
    least this many live neighbours, and no fewer than this many nodes can unmask anyone.
    0 = ⌈2/3 of the shares⌉ (at least 2)."""
    clipping_range: float = 8.0
    """Each coordinate of an update (new weights − global weights) is clipped to
    ±clipping-range before it is quantized."""
    quantization_range: int = 2**22
    """Integer levels of [-clipping-range, clipping-range]: the step is 2·range/levels."""
    modulus_range: int = MAX_MODULUS
    """The masks' modulus: a power of 2, above quantization-range, at most 2^32."""
    max_weight: float = 0.0
    """The largest example count a node's update is weighted by (Flower's max_weight).
    0 = the largest a sampled node may claim: its declared examples × local epochs."""

    BOUNDS = {
        "num_shares": Bound(0, 1_000_000),
        "reconstruction_threshold": Bound(0, 1_000_000),
        "clipping_range": Bound(0, open_low=True),
        "quantization_range": Bound(2, MAX_MODULUS),
        "modulus_range": Bound(4, MAX_MODULUS),
        "max_weight": Bound(0),
    }

    def validate(self) -> None:
        problems = []
        if self.num_shares in (1, 2):
            problems.append(f"secagg.num-shares must be 0 (every sampled node) or >= 3 "
                            f"(got {self.num_shares})")
        if self.reconstruction_threshold == 1:
            problems.append("secagg.reconstruction-threshold must be 0 (automatic) or >= 2 "
                            "(got 1: one share would reveal a secret)")
        modulus = self.modulus_range
        if modulus & (modulus - 1) or modulus <= self.quantization_range:
            problems.append(f"secagg.modulus-range must be a power of 2 above "
                            f"secagg.quantization-range={self.quantization_range} (got {modulus})")
        if problems:
            raise ConfigError("; ".join(problems))

    def shares_for(self, sampled: int) -> int:
        """The share count of a round with `sampled` nodes."""
        return sampled if self.num_shares == 0 else min(self.num_shares, sampled)

    def threshold_for(self, sampled: int) -> int:
        """The reconstruction threshold of a round with `sampled` nodes."""
        if self.reconstruction_threshold:
            return self.reconstruction_threshold
        return max(2, math.ceil(2 * self.shares_for(sampled) / 3))
