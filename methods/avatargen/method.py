"""AvatarGen as a federated client-side task: Zhang et al., "AvatarGen: a 3D Generative Model
for Animatable Human Avatars", arXiv:2208.00561 (v1, 2022; extended as arXiv:2211.14589).

A 3D-aware GAN whose generator renders a person at a given body pose θ and camera: ray
samples are warped to a canonical body by inverse skinning of a body proxy (body.py, Sec.
3.2), deformed by Δx, and the field is an SDF on the proxy, d = d_proxy + δd (Eq. 3), volume
rendered with σ = (1/α)·Sigmoid(−d/α) (Eq. 4, render.py); losses.py holds NS-GAN + R1 +
eikonal + minimal surface + δd prior + ‖Δx‖².

Federated mapping (design notes §4(e), not shipped): each node holds its own procedural people and
pose distribution (data.py); G and D train locally (one module, simultaneous updates via
a parameter-detached D in the generator loss, nets.Discriminator.frozen) and FedAvg
averages both. Stages (server/stages.py), identical schedules: avatargen, density (the
same warp, free density field), pose_agnostic (θ only as a conditioning vector).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from methods.avatargen import losses
from methods.avatargen.config import AvatarGenConfig
from methods.avatargen.data import node_images, target_poses, targets_at, unpack_pose
from methods.avatargen.metrics import example_images, keypoint_errors, render_targets
from methods.avatargen.nets import AvatarGAN
from methods.base import Method, RunSpec, Stage, StageResult
from methods.common.datasets import ArrayDataset

STAGES = {"avatargen": {}, "density": {"variant": "density"},
          "pose_agnostic_baseline": {"variant": "pose_agnostic"}}
BOX_LO, BOX_HI = torch.tensor([-0.8, -0.9, -0.4]), torch.tensor([0.8, 0.8, 0.4])  # eikonal points


def regularisers(model: AvatarGAN, out: dict[str, torch.Tensor], cfg: AvatarGenConfig) -> torch.Tensor:
    """The geometry priors of the variant (Sec. 3.4): SDF terms, δd prior, ‖Δx‖²."""
    g = model.generator
    total = torch.zeros(())
    if "delta_x" in out:
        total = total + cfg.deformation_weight * losses.deformation_loss(out["delta_x"])
    if g.variant == "density":
        return total
    total = total + cfg.minimal_surface_weight * losses.minimal_surface_loss(out["d"])
    if g.variant == "avatargen":
        total = total + cfg.proxy_prior_weight * losses.proxy_prior_loss(
            out["delta_d"], out["d_prior"], cfg.proxy_margin)
    batch = len(out["w"])
    x = BOX_LO + (BOX_HI - BOX_LO) * torch.rand(batch, cfg.eikonal_points, 3)
    x.requires_grad_(True)
    d = g.sdf(x, out["w"], out["pose"])["d"]
    return total + cfg.eikonal_weight * losses.eikonal_loss(d, x)


class AvatarGen(Method):
    name = "avatargen"
    config_cls = AvatarGenConfig
    paper = "Zhang et al., AvatarGen: a 3D generative model for animatable human avatars, arXiv:2208.00561"
    workflow = "stages"
    cpu_only = True  # body.py and render.py hold CPU constants (docs/gpu.md)

    def build_model(self, spec: RunSpec) -> nn.Module:
        c = spec.method
        return AvatarGAN(c.variant, c.z_dim, c.width, c.latent, c.d_width, c.image_size, c.samples,
                         c.alpha_init)

    def train_dataset(self, spec: RunSpec) -> ArrayDataset:
        torch.set_num_threads(1)  # rendering the data: 5x slower with 2+ threads on shared cores
        c = spec.method
        return node_images(spec.federation.num_clients, c.images_per_node, c.image_size,
                           spec.federation.seed)

    def node_partition(self, spec: RunSpec, labels: np.ndarray,
                       num_partitions: int) -> list[np.ndarray]:
        # A node holds exactly its own people and poses (nodes cycle over the partitions).
        return [np.flatnonzero(labels % num_partitions == k) for k in range(num_partitions)]

    def test_dataset(self, spec: RunSpec) -> ArrayDataset:
        torch.set_num_threads(1)
        return target_poses(spec.method.test_poses, spec.method.image_size)

    def validation_dataset(self, spec: RunSpec) -> ArrayDataset | None:
        """Evaluation rows at the poses of the held-out training images (each node's share):
        a training row is an image, and evaluate scores renders against the bare proxy's
        mask and depth at the row's pose, so the held-out poses are rendered that way. Their
        arms lie in the nodes' windows, not over the test's whole shoulder range."""
        held = super().validation_dataset(spec)
        if held is None:
            return None
        torch.set_num_threads(1)
        theta, azimuth = unpack_pose(torch.tensor(held.x))
        return targets_at(theta, azimuth, spec.method.image_size, "avatargen-validation")

    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        cfg = spec.method
        x, _ = batch
        theta, azimuth = unpack_pose(x)
        real = x[:, :3].detach().requires_grad_(True)
        z = torch.randn(len(x), cfg.z_dim)
        # Fakes at the real images' poses and cameras: D judges (image, θ, φ) pairs.
        out = model.generator(theta, azimuth, z, model.size, model.samples)
        d = model.discriminator
        real_logits = d(real, theta, azimuth)
        loss_d = losses.discriminator_loss(real_logits, d(out["image"].detach(), theta, azimuth))
        loss_d = loss_d + losses.r1_penalty(real_logits, real, cfg.r1_gamma)
        loss_g = losses.generator_loss(d.frozen(out["image"], theta, azimuth))
        return loss_d + loss_g + regularisers(model, out, cfg)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, dataset: ArrayDataset) -> dict[str, float]:
        """Proxy-mask IoU and depth error of renders at the target poses (metrics.py)."""
        model.eval()
        figures = render_targets(model, dataset)
        return {"mask_iou": figures["mask_iou"], "depth_error": figures["depth_error"]}

    # --- the claims' comparison, federated (workflow "stages") -------------------
    def stages(self, spec: RunSpec) -> list[Stage]:
        return [Stage(name, overrides) for name, overrides in STAGES.items()]

    def summarize(self, spec: RunSpec, results: Mapping[str, StageResult],
                  out_dir: Path) -> dict[str, Any]:
        torch.set_num_threads(1)
        models, at_init = {}, {}
        test = self.evaluation_dataset(spec)
        for name, overrides in STAGES.items():
            stage = Stage(name, overrides)
            model = self.build_model(spec.for_stage(stage))
            # The untrained generator (the stage's own initial arrays): what the body prior
            # gives before any GAN step, so the summary separates prior from training.
            self.load_shared_state(model, self.stage_arrays(spec.for_stage(stage), stage, {}))
            at_init[name] = self.evaluate(model, test)
            self.load_shared_state(model, results[name].arrays)
            models[name] = model.eval()
        kp, regressor_gt = keypoint_errors(models, test, spec.method, spec.federation.seed)
        example_images(models, test, self.train_dataset(spec), out_dir / "examples")
        final = {name: results[name].final for name in STAGES}
        return {
            "keypoint_error": {"avatargen": kp["avatargen"],
                               "pose_agnostic_baseline": kp["pose_agnostic_baseline"],
                               "density": kp["density"]},
            "mask_iou": {name: float(final[name]["mask_iou"]) for name in STAGES},
            "depth_error": {"sdf": float(final["avatargen"]["depth_error"]),
                            "density": float(final["density"]["depth_error"]),
                            "pose_agnostic_baseline": float(final["pose_agnostic_baseline"]["depth_error"])},
            "keypoint_error_regressor_on_real": regressor_gt,
            "at_init": at_init,
            "training": "GAN (NS-GAN + R1, simultaneous G/D steps), not the auto-decoder fallback",
        }
