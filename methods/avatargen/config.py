"""AvatarGen's configuration (`[avatargen]` in a scenario, `--set avatargen.KEY=VALUE`).

Sizes follow the design notes §4(c) (not shipped), shrunk for a shared 2-core CPU (24² renders); the
loss weights are the note's: NS-GAN, R1 γ = 1, eikonal 0.1, minimal surface 0.01, δd prior
0.1 outside the proxy, ‖Δx‖² 1.0. `variant` is what a stage changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import LocalTrainingConfig
from methods.config import ConfigError

VARIANTS = ("avatargen", "density", "pose_agnostic")


@dataclass(frozen=True)
class AvatarGenConfig(LocalTrainingConfig):
    """Generator, discriminator, renderer, loss weights and data sizes (one stage per variant)."""

    lr: float = 5e-4
    """Adam learning rate of G and D (one optimiser: simultaneous G/D steps)."""
    optimizer: str = "adam"
    """Optimizer of the shared loop."""
    batch_size: int = 8
    """Images per local step (real and generated)."""
    variant: str = "avatargen"
    """"avatargen" (inverse LBS + deformation + SDF on the proxy), "density" (same warp, free
    density) or "pose_agnostic" (no inverse LBS, θ only as a conditioning vector)."""
    image_size: int = 24
    """Render and data resolution (pixels per side)."""
    samples: int = 24
    """Samples per ray of the volume renderer."""
    alpha_init: float = 0.02
    """α₀, the initial (learnable) sharpness of σ = (1/α)·Sigmoid(−d/α)."""
    z_dim: int = 16
    """Latent z dimension."""
    latent: int = 32
    """Mapped latent w dimension."""
    width: int = 64
    """Hidden width of the field, deformation and mapping MLPs."""
    d_width: int = 32
    """Channels of the discriminator's first conv layer."""
    r1_gamma: float = 1.0
    """γ of the R1 penalty on real images."""
    eikonal_weight: float = 0.1
    """Weight of E(‖∇d‖ − 1)² (SDF variants)."""
    minimal_surface_weight: float = 0.01
    """Weight of E exp(−100|d|) (SDF variants)."""
    proxy_prior_weight: float = 0.1
    """Weight of E[δd²·1(d_proxy > margin)] (avatargen)."""
    proxy_margin: float = 0.05
    """Distance from the proxy beyond which δd is pushed to 0."""
    deformation_weight: float = 1.0
    """Weight of E‖Δx‖² (warped variants)."""
    eikonal_points: int = 64
    """Random points per image for the eikonal loss."""
    images_per_node: int = 8
    """Procedural images each node holds (the scenario sets its own; the default keeps a
    default-config federation of 10 nodes cheap to generate)."""
    test_poses: int = 48
    """Target poses of the server's evaluation."""
    regressor_steps: int = 300
    """Adam steps of the summary's silhouette keypoint regressor (trained once at the server)."""

    def validate(self) -> None:
        super().validate()
        problems = []
        if self.optimizer not in ("adam", "sgd"):
            problems.append(f"optimizer must be adam or sgd (got {self.optimizer!r})")
        if self.variant not in VARIANTS:
            problems.append(f"variant must be one of {', '.join(VARIANTS)} (got {self.variant!r})")
        if self.image_size < 8 or self.samples < 4 or self.alpha_init <= 0:
            problems.append("image-size must be >= 8, samples >= 4 and alpha-init > 0")
        if min(self.z_dim, self.latent, self.width, self.d_width, self.eikonal_points) < 1:
            problems.append("z-dim, latent, width, d-width and eikonal-points must be >= 1")
        if min(self.images_per_node, self.test_poses, self.regressor_steps) < 1:
            problems.append("images-per-node, test-poses and regressor-steps must be >= 1")
        if min(self.r1_gamma, self.eikonal_weight, self.minimal_surface_weight,
               self.proxy_prior_weight, self.deformation_weight) < 0:
            problems.append("loss weights must be >= 0")
        if problems:
            raise ConfigError("; ".join(problems))
