"""Configuration of Attention Diversification (I2-ADR), Meng et al., ECCV 2022 (arXiv:2210.04206).

Defaults follow the official code (hikvision-research/DomainGeneralization, eda3201)
scaled to a 2-core CPU as in the design notes §2(c) (not shipped): loss weights (0.05 / 200 / 1) and
application probabilities (0.33 / 0.2 / 0.2) unchanged; width, resolution, epochs and
top-k shrunk (k ≈ C/32).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import LocalTrainingConfig
from methods.config import ConfigError

VARIANTS = ("erm", "intra", "i2", "domains")
NUM_DOMAINS = 4


@dataclass(frozen=True)
class AttnDivConfig(LocalTrainingConfig):
    """Intra-ADR / I2-ADR on four style-shifted MNIST-5k domains, leave-one-domain-out."""

    local_epochs: int = 2
    """Epochs over the client's domain per round (E)."""
    lr: float = 0.05
    """SGD learning rate of the warm-up rounds (the note's pilot: 0.05)."""
    weight_decay: float = 5e-4
    """L2 penalty (the code's 5e-4)."""
    variant: str = "i2"
    """erm (CE + MixStyle) | intra (Intra-ADR) | i2 (I2-ADR) | domains (train the K domain models)."""
    target_domain: int = 2
    """Held-out domain of this split (0 clean, 1 inverted+tinted, 2 photo background, 3 rotated+thick+noisy)."""
    splits: tuple[int, ...] = (0, 1, 2, 3)
    """Target domains of the leave-one-domain-out splits the scenario runs (one split each)."""
    domain_rounds: int = 1
    """Server rounds of the domain-model stage (the K per-source Intra-ADR models; each domain
    model is averaged over its owner alone, so one round of many epochs is one upload, as in §2(e))."""
    domain_local_epochs: int = 12
    """Local epochs per round of the domain-model stage (the note's 4 left them at 10–66 % on
    their own domain; 12 gave 57–93 %)."""
    warm_rounds: int = 10
    """Rounds at `lr` shared by ERM, Intra-ADR and I2-ADR (the paper's Intra warm-up)."""
    final_rounds: int = 2
    """Rounds at `lr * final_lr_factor`: the I2-ADR stage, and the same budget for ERM and Intra."""
    final_lr_factor: float = 0.0625
    """Learning-rate factor of the final rounds (paper: 0.008 → 5e-4, i.e. 1/16)."""
    train_per_domain: int = 1000
    """Training images per source domain (disjoint MNIST-5k train images; at most 1000)."""
    test_per_domain: int = 500
    """Target-domain test images (MNIST-5k test images in the target style; at most 1000)."""
    image_size: int = 16
    """Side of the RGB images the domains are rendered at (pixels)."""
    widths: tuple[int, ...] = (32, 64, 96, 128)
    """Channels of the four conv blocks; the last is C of F ∈ R^{C×H×W}."""
    top_k: int = 4
    """k of the top-k channel mean M(p) in L_intra (paper 10 of 2048; here ≈ C/32)."""
    intra_weight: float = 0.05
    """Weight of L_intra = 1 − mean_p M(p) (code: 0.05)."""
    intra_prob: float = 0.33
    """Probability a batch gets L_intra in the Intra stage and the domain models (code: 0.33)."""
    i2_intra_prob: float = 0.2
    """Probability a batch gets L_intra in the I2 stage (code: 0.2)."""
    inter_prob: float = 0.2
    """Probability a batch gets L_inter in the I2 stage (code: 0.2)."""
    dir_weight: float = 200.0
    """Weight of the task-related attention term L_dir (code: 200; the scenario uses 20, see README)."""
    dvr_weight: float = 1.0
    """Weight of the domain-related attention term L_dvr (code: 1)."""
    dvr_sign: str = "code"
    """code: L_inter = w_dir·L_dir − w_dvr·L_dvr (the official code); paper: + w_dvr·L_dvr (suppression)."""
    mixstyle_p: float = 0.5
    """Probability MixStyle is applied after blocks 1 and 2 (code: 0.5)."""
    mixstyle_alpha: float = 0.1
    """α of the Beta(α, α) style-mixing weight λ (code: 0.1)."""

    def validate(self) -> None:
        super().validate()
        problems = []
        if self.variant not in VARIANTS:
            problems.append(f"variant must be one of {', '.join(VARIANTS)} (got {self.variant!r})")
        domains = range(NUM_DOMAINS)
        if self.target_domain not in domains or not self.splits or any(s not in domains for s in self.splits):
            problems.append(f"target-domain and splits must lie in 0..{NUM_DOMAINS - 1}")
        if len(set(self.splits)) != len(self.splits):
            problems.append("splits must not repeat a domain")
        if self.dvr_sign not in ("code", "paper"):
            problems.append(f"dvr-sign must be code or paper (got {self.dvr_sign!r})")
        if min(self.domain_rounds, self.warm_rounds, self.final_rounds) < 1:
            problems.append("domain-rounds, warm-rounds and final-rounds must be >= 1")
        if not 1 <= self.train_per_domain <= 1000 or not 1 <= self.test_per_domain <= 1000:
            problems.append("train-per-domain and test-per-domain must lie in 1..1000")
        if len(self.widths) != 4 or not 1 <= self.top_k <= self.widths[-1]:
            problems.append("widths needs 4 entries and top-k must lie in 1..widths[-1]")
        if self.image_size < 8 or self.image_size % 4:
            problems.append("image-size must be a multiple of 4, >= 8")
        if problems:
            raise ConfigError("; ".join(problems))
