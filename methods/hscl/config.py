"""HSCL's configuration (Wang et al., "Hierarchical Semi-Supervised Contrastive Learning
for Contamination-Resistant Anomaly Detection", ECCV 2022, arXiv:2207.11789).

Paper symbols: τ (NT-Xent temperature), k (samples per convex combination), r (scale of
the sample-to-sample logits), the 0.4 weight threshold; defaults follow the official
code (training/contrastive_loss.py::convex_contrastive_with_polluted).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import LocalTrainingConfig
from methods.config import ConfigError

VARIANTS = ("hscl", "contrastive", "supervised")


@dataclass(frozen=True)
class HSCLConfig(LocalTrainingConfig):
    """HSCL and its two baselines (CSI-lite contrastive, supervised BCE) on one-class MNIST."""

    local_epochs: int = 2
    """Epochs over the client's pool per round (E)."""
    batch_size: int = 48
    """Images per mini-batch; each gives 2 views × 4 rotations = 8 embeddings."""
    lr: float = 1e-3
    """Adam learning rate (paper: 1e-3)."""
    weight_decay: float = 1e-6
    """Adam weight decay (paper: 1e-6)."""
    optimizer: str = "adam"
    """adam (the paper's) | sgd; read by the shared loop (clients/training.make_optimizer)."""
    variant: str = "hscl"
    """hscl: L_sim + L_shift + L_HSCL | contrastive: CSI-lite, L_sim + L_shift | supervised:
    BCE on the labeled normals vs labeled anomalies only."""
    supervised_epochs: int = 20
    """Local epochs per round of the supervised baseline: it sees only the ~6% labeled
    images (one or two mini-batches per epoch), so it needs more passes to converge."""
    normal_class: int = 0
    """The digit that is normal in this stage (set per stage from `normal_classes`)."""
    normal_classes: tuple[int, ...] = (0, 3, 8)
    """Normal classes the scenario runs one stage set for; the summary averages over them."""
    contamination: float = 0.1
    """ρ: mean fraction of anomalies among each client's unlabeled data (set per stage)."""
    contaminations: tuple[float, ...] = (0.0, 0.1, 0.2)
    """The ρ values of `auroc_by_contamination`; the claims are judged at 0.1 (and 0 vs 0.2)."""
    contamination_spread: float = 0.5
    """Client i of n gets ρ·(1 + s·(2i/(n−1) − 1)): different rates, mean ρ (s = this)."""
    labeled_normal_fraction: float = 0.05
    """Fraction of the normal images whose label is known (paper: 5%)."""
    labeled_anomaly_fraction: float = 0.05
    """Labeled anomalies as a fraction of the labeled+normal pool (paper: 5%), spread evenly
    over the other classes."""
    labeled_anomaly_classes: tuple[int, ...] = ()
    """The digits the labeled anomalies are drawn from; () = every digit but the normal one.
    Fewer digits leave test anomalies of kinds no label showed (the HSCL README's diagnosis
    of why the supervised baseline wins); the labeled count stays the same."""
    image_size: int = 14
    """Side of the (average-pooled) MNIST images."""
    widths: tuple[int, ...] = (16, 32, 64)
    """Channels of the three conv blocks of the encoder f."""
    projection_dim: int = 64
    """Dimension of the SimCLR embedding z and of the prototype p."""
    prototype_scale: float = 0.01
    """Initial scale of p relative to the code's Xavier init (1.0 = the code's); small so
    that Adam can turn p's direction within our few hundred steps (see nets.py)."""
    temperature: float = 0.5
    """τ of NT-Xent (paper/code: 0.5)."""
    weight_threshold: float = 0.4
    """Unlabeled samples with w_i ≤ this never enter the sample-to-sample anchors (code: 0.4)."""
    mix_k: int = 2
    """k: embeddings per convex combination (code: 2)."""
    logit_scale: float = 2.0
    """r: scale of the sample-to-sample cosine logits (code: 2)."""
    score_views: int = 2
    """Augmented views averaged per rotation when the final models are scored (paper: 10)."""
    stats_momentum: float = 0.9
    """EMA momentum of the score-normalising statistics each client keeps while training."""

    def validate(self) -> None:
        super().validate()
        problems = []
        if self.variant not in VARIANTS:
            problems.append(f"variant must be one of {', '.join(VARIANTS)} (got {self.variant!r})")
        if self.supervised_epochs < 1:
            problems.append("supervised-epochs must be >= 1")
        if self.optimizer not in ("adam", "sgd"):
            problems.append("optimizer must be adam or sgd")
        if not 0 <= self.normal_class <= 9 or not self.normal_classes or any(
                not 0 <= c <= 9 for c in self.normal_classes):
            problems.append("normal-class and normal-classes must be digits 0..9")
        if not 0.0 <= self.contamination < 0.5 or any(not 0.0 <= c < 0.5 for c in self.contaminations):
            problems.append("contamination(s) must lie in [0, 0.5)")
        if not 0.0 <= self.contamination_spread <= 1.0:
            problems.append("contamination-spread must lie in [0, 1]")
        if not (0 < self.labeled_normal_fraction < 1 and 0 < self.labeled_anomaly_fraction < 1):
            problems.append("labeled fractions must lie in (0, 1)")
        if any(not 0 <= c <= 9 or c == self.normal_class or c in self.normal_classes
               for c in self.labeled_anomaly_classes):
            problems.append("labeled-anomaly-classes must be digits 0..9 other than "
                            "normal-class and normal-classes")
        if len(self.widths) != 3 or min(self.widths) < 1:
            problems.append("widths must be three positive channel counts")
        if self.image_size not in (7, 14, 28) or self.mix_k < 1 or self.score_views < 1:
            problems.append("image-size must be 7, 14 or 28; mix-k and score-views >= 1")
        if self.prototype_scale <= 0:
            problems.append("prototype-scale must be > 0")
        if self.temperature <= 0 or self.logit_scale <= 0 or not 0 <= self.stats_momentum < 1:
            problems.append("temperature and logit-scale must be > 0, stats-momentum in [0, 1)")
        if problems:
            raise ConfigError("; ".join(problems))
