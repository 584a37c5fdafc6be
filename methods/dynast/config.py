"""DynaST's configuration (`[dynast]` in a scenario, `--set dynast.KEY=VALUE`).

Liu et al., "DynaST: Dynamic Sparse Transformer for Exemplar-Guided Image Generation",
ECCV 2022 (arXiv:2207.06124). Defaults follow the small-scale CPU design of
the design notes §7(c) (not shipped): 32² paper dolls, encoders to 8×8, dense dynamic attention at
8×8, sparse cascade at 16² and 32², top_k 4, prune_dim 8, pos_dim 8, ngf 16,
L1 reconstruction ×10 and warp L1 ×100, GAN off (a documented deviation).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import LocalTrainingConfig
from methods.config import ConfigError

VARIANTS = ("cascade", "coarse_only", "dense")


@dataclass(frozen=True)
class DynaSTConfig(LocalTrainingConfig):
    """The DynaST generator and its two comparison variants (one federated stage each)."""

    lr: float = 2e-3
    """Adam learning rate of the generator."""
    optimizer: str = "adam"
    """Optimizer of the shared loop (the code trains with Adam)."""
    batch_size: int = 8
    """Pairs per mini-batch (the note's CPU design: 8)."""
    variant: str = "cascade"
    """cascade: dense 8×8 + sparse inter/inner-scale layers at 16², 32² (the method) |
    coarse_only: dense 8×8 only, upsampled | dense: dense attention at every scale.
    Set per stage by the method."""
    families: int = 3
    """Texture families (stripes, checkers, gradient); client i holds family i mod families."""
    pairs_per_family: int = 96
    """Training pairs (same doll in two poses) rendered per texture family."""
    test_pairs: int = 48
    """Held-out pairs (new identities, every family) the server evaluates on."""
    ngf: int = 16
    """Encoder width at 32² (doubling at 16² and 8²)."""
    dim: int = 16
    """Channels of the attention features (Q, K, V) at every scale."""
    pos_dim: int = 8
    """Channels of the learned positional embedding (8×8, upsampled to finer scales)."""
    prune_dim: int = 8
    """d_p: channels of the pruning projections Q_p, K_p."""
    coarse_layers: int = 2
    """n_layers: dense dynamic attention layers at 8×8."""
    top_k: int = 4
    """Keys kept per query for the next sparse layer (k)."""
    fine_temperature: float = 0.01
    """Temperature of the sparse layers' cosine logits (code: 0.01)."""
    recon_weight: float = 10.0
    """λ_rec: weight of the L1 reconstruction ‖ŷ − X‖₁ (replaces VGG matching)."""
    warp_weight: float = 100.0
    """λ_warp: weight of every block's warp L1 ‖warp_l − AvgPool(X)‖₁ (code: 1000; 1000 with
    lr 5e-3 learned no warp in our 5 rounds, README run 2)."""

    def validate(self) -> None:
        super().validate()
        problems = []
        if self.variant not in VARIANTS:
            problems.append(f"variant must be one of {', '.join(VARIANTS)} (got {self.variant!r})")
        if self.optimizer not in ("adam", "sgd"):
            problems.append("optimizer must be adam or sgd")
        if self.families < 1 or self.families > 3 or self.pairs_per_family < 1 or self.test_pairs < 1:
            problems.append("families must be 1..3, pairs-per-family and test-pairs >= 1")
        if min(self.ngf, self.dim, self.pos_dim, self.prune_dim, self.coarse_layers) < 1:
            problems.append("ngf, dim, pos-dim, prune-dim and coarse-layers must be >= 1")
        if not 1 <= self.top_k <= 16:
            problems.append("top-k must be in [1, 16] (8×8 coarse keys: 64)")
        if self.fine_temperature <= 0 or self.recon_weight < 0 or self.warp_weight < 0:
            problems.append("fine-temperature must be > 0 and loss weights >= 0")
        if problems:
            raise ConfigError("; ".join(problems))
