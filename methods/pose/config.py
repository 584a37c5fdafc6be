"""The pose method's configuration (`[pose]` in a scenario, `--set pose.KEY=VALUE`).

Settings follow the small-scale CPU design of the design notes §3(c): 64×64 procedural
stick-figure images, stride-2 (32×32) heads, Adam 2e-3, batch 16, σ = max(0.6, 0.08h)
cells, offset radius max(1, 0.15h) cells, smooth-L1 β = 0.1, peak threshold 0.15.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import LocalTrainingConfig
from methods.config import ConfigError

CENTERS = ("body", "dual")


@dataclass(frozen=True)
class PoseConfig(LocalTrainingConfig):
    """Local training (inherited), data, target, loss and decoding settings."""

    optimizer: str = "adam"
    """Local optimizer of the shared loop: "adam" (the design's) or "sgd"."""
    lr: float = 2e-3
    """Adam learning rate at the start of a stage (the peak of the cosine schedule)."""
    schedule_steps: int = 0
    """Local steps over which the lr falls from `lr` to 0 on a cosine (the note's "Adam
    2e-3 cosine"); every round uses the value at its middle step. 0: the whole stage
    (`PoseMethod.stages` fills in rounds × local steps per round)."""
    batch_size: int = 16
    """Images per local mini-batch."""
    centers: str = "dual"
    """Which anatomical centers regress poses: "body" (the DEKR baseline) or "dual" (head + body)."""
    multiscale_train: bool = True
    """Rescale every training image by s ~ U[scale-min, scale-max] (then crop/pad to 64×64)."""
    scale_min: float = 0.5
    """Lower end of the multi-scale training factor s."""
    scale_max: float = 1.5
    """Upper end of the multi-scale training factor s."""
    images_per_camera: int = 48
    """Procedural training images held by each camera (node); the scenario uses 2400."""
    train_height_min: float = 12.0
    """Smallest person height (pixels) any camera records; cameras split [min, max] by scale."""
    train_height_max: float = 40.0
    """Largest person height (pixels) any camera records."""
    test_images: int = 48
    """Images of the server's pooled test set; the scenario uses 200."""
    test_height_min: float = 6.0
    """Smallest person height (pixels) in the test set (log-uniform in [min, max])."""
    test_height_max: float = 40.0
    """Largest person height (pixels) in the test set."""
    small_height: float = 16.0
    """Persons shorter than this many pixels are "small" (AP_small, recall_small)."""
    heatmap_weight: float = 100.0
    """Scale of the weighted L2 center-heatmap loss (Eq. heatmap loss)."""
    offset_weight: float = 100.0
    """λ: weight of the scale-normalised smooth-L1 offset loss (at 1, the heatmap term
    dominates and the offsets stay untrained: AP50 0.01 vs 0.29 at 100 after 300 steps of a
    non-federated pilot, methods/pose/README.md)."""
    min_limb_width: float = 0.0
    """Thinnest limb drawn (pixels); limbs are 0.06·h wide above it. 0: width ∝ h at every
    size, so a person drawn small looks like a large one shrunk, as in a camera (the
    renderer's default floor, 0.9 px, gives people under 15 px a 15 px person's limbs)."""
    peak_threshold: float = 0.15
    """Center-heatmap peaks below this value are not candidates."""
    nms_oks: float = 0.25
    """OKS above which a lower-scored candidate is suppressed."""
    fuse_distance: float = 0.15
    """Dual centers: a head and a body candidate whose poses differ by less than this
    mean keypoint distance (in person heights) are one person and are fused."""
    test_scales: tuple[float, ...] = (0.5, 1.0, 2.0)
    """Input scales of the multi-scale test (the comparison of claim 2)."""

    def validate(self) -> None:
        super().validate()
        if self.centers not in CENTERS:
            raise ConfigError(f"pose.centers must be one of {CENTERS}, got {self.centers!r}")
        if not 0 < self.scale_min <= self.scale_max:
            raise ConfigError("pose.scale-min must be in (0, scale-max]")
        if not 0 < self.train_height_min <= self.train_height_max:
            raise ConfigError("pose.train-height-min must be in (0, train-height-max]")
        if not 0 < self.test_height_min <= self.test_height_max:
            raise ConfigError("pose.test-height-min must be in (0, test-height-max]")
        if self.schedule_steps < 0 or self.min_limb_width < 0:
            raise ConfigError("pose.schedule-steps and pose.min-limb-width must be >= 0")
        if self.images_per_camera < 1 or self.test_images < 1 or not self.test_scales:
            raise ConfigError("pose.images-per-camera, test-images and test-scales must be >= 1")
