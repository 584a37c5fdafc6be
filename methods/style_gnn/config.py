"""The GNN style transfer's configuration (`[style-gnn]` in a scenario).

Jing et al., "Learning Graph Neural Networks for Image Style Transfer", ECCV 2022,
arXiv:2207.11681. Sizes follow the small-scale CPU design of the design notes §6(c):
64×64 images, a frozen random conv encoder 64-128-256 (16×16 at its last layer), 3×3
feature patches as graph nodes, style scales {1, 0.75}, one attention layer with 2 heads
of width 128, λ_s = 5.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import LocalTrainingConfig
from methods.config import ConfigError

VARIANTS = ("gnn", "adain")


@dataclass(frozen=True)
class StyleGNNConfig(LocalTrainingConfig):
    """The GNN model and its AdaIN baseline (one federated stage each)."""

    batch_size: int = 4
    """(content, style) pairs per mini-batch (the note: 4)."""
    lr: float = 1e-3
    """Adam learning rate of the attention projections and the decoder."""
    optimizer: str = "adam"
    """adam | sgd; read by the shared loop (clients/training.make_optimizer)."""
    variant: str = "gnn"
    """gnn: patch graph + attention message passing + AdaIN + decoder | adain: the baseline,
    the same encoder and decoder with global statistics only (AdaIN(F_c, F_s)). Set per stage."""
    k: int = 3
    """Edges per content node (top-k style patches by cosine) while training and in the
    headline figures; the test-time diversity knob."""
    train_ks: tuple[int, ...] = ()
    """If set, each training batch draws its k from these (so the decoder learns every k the
    knob will be turned to at test time); empty: train at `k`."""
    eval_ks: tuple[int, ...] = (1, 3, 8)
    """The k of `diversity_by_k` and of the example grid."""
    encoder_widths: tuple[int, ...] = (64, 128, 256)
    """Channels of the frozen encoder's three conv layers (relu1..relu3, pooled ×2 between)."""
    encoder_seed: int = 1234
    """Seed of the frozen random encoder: every node and the server build the same one."""
    hidden: int = 128
    """Width of each attention head's projections W_c, W_s (paper: learned, not retrieved)."""
    heads: int = 2
    """Attention heads; their message outputs are averaged."""
    style_scales: tuple[float, ...] = (1.0, 0.75)
    """Scales the style image is resized to before it becomes nodes (cross-scale matching)."""
    style_weight: float = 5.0
    """λ_s: weight of the mean/std style loss against the content loss (the note: 5)."""
    image_size: int = 64
    """Side of content, style and output images (pixels)."""
    pairs_per_family: int = 64
    """Training (content, style) pairs of each style family (a node holds its families' pairs)."""
    test_pairs: int = 18
    """Held-out (content, style) pairs the server evaluates on (one style per family in turn)."""

    def validate(self) -> None:
        super().validate()
        choices = {"variant": (self.variant, VARIANTS), "optimizer": (self.optimizer, ("adam", "sgd"))}
        problems = [f"{name} must be one of {', '.join(allowed)} (got {value!r})"
                    for name, (value, allowed) in choices.items() if value not in allowed]
        if self.k < 1 or not self.eval_ks or min(self.eval_ks + self.train_ks) < 1:
            problems.append("k and every eval-ks and train-ks must be >= 1")
        if len(self.encoder_widths) != 3 or min(self.encoder_widths) < 1:
            problems.append("encoder-widths must be three positive channel counts")
        if self.hidden < 1 or self.heads < 1 or self.style_weight < 0:
            problems.append("hidden and heads must be >= 1, style-weight >= 0")
        if not self.style_scales or any(not 0.25 <= s <= 1.0 for s in self.style_scales):
            problems.append("style-scales must lie in [0.25, 1]")
        if self.image_size not in (32, 64) or self.pairs_per_family < 1 or self.test_pairs < 2:
            problems.append("image-size must be 32 or 64, pairs-per-family >= 1, test-pairs >= 2")
        if problems:
            raise ConfigError("; ".join(problems))
