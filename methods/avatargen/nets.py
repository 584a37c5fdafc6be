"""AvatarGen's generator and discriminator, small (design notes §4(c), not shipped).

Generator (Zhang et al., arXiv:2208.00561, Sec. 3.2, Fig. 2): a mapping network z → w; for a
ray sample x_o at pose θ, inverse skinning (body.inverse_skinning) gives x̄, a deformation
MLP adds the pose-dependent Δx(x̄, θ, w), and a conditional field MLP at x_c = x̄ + Δx gives
(δd, rgb) with the SDF d = d_proxy + δd (Eq. 3; d_proxy = body.posed_proxy_sdf, the
canonical capsules' SDF without inverse-LBS ghosts) and σ = (1/α)·Sigmoid(−d/α) (Eq. 4),
α learnable. The EG3D tri-plane is replaced by a conditional MLP (the note's option), no
super-resolution. Variants (the scenario's stages):
  avatargen       the above
  density         the same warp, a free density σ = softplus(field) (no SDF, no proxy)
  pose_agnostic   no inverse skinning: the field lives in observation space, conditioned on
                  θ as a vector; SDF = sphere(0.5) + δd (StyleSDF's initialisation)
Discriminator: a 3-layer CNN with a projection head on (θ, camera) (Miyato & Koyama 2018).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from methods.avatargen import body
from methods.avatargen.render import composite, ray_points, sdf_density

POSE_DIM = body.NUM_BONES * 3
FREQS = (1.0, 2.0, 4.0)
SPHERE_RADIUS = 0.5
DENSITY_SCALE, DENSITY_BIAS = 20.0, -4.0  # free density starts faint: σ ≈ 0.36 everywhere


def encode(x: torch.Tensor) -> torch.Tensor:
    """NeRF positional encoding [x, sin(2^k πx), cos(2^k πx)]."""
    scaled = torch.cat([x * f * math.pi for f in FREQS], -1)
    return torch.cat([x, scaled.sin(), scaled.cos()], -1)


def mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.Softplus(beta=10))  # smooth: the eikonal loss differentiates it
    return nn.Sequential(*layers)


class Generator(nn.Module):
    def __init__(self, variant: str, z_dim: int, width: int, latent: int,
                 alpha: float = 0.05) -> None:
        super().__init__()
        self.variant, self.z_dim = variant, z_dim
        self.mapping = mlp([z_dim, width, latent])
        self.pose_embed = nn.Linear(POSE_DIM, 16)
        pos = 3 + 6 * len(FREQS)
        cond = latent + (16 if variant == "pose_agnostic" else 0)
        self.field = mlp([pos + cond, width, width, 4])
        # δd starts at 0: the initial surface is the prior's (proxy or sphere), as in StyleSDF.
        nn.init.zeros_(self.field[-1].weight[0]), nn.init.zeros_(self.field[-1].bias[:1])
        self.deform = mlp([3 + 16 + latent, width, 3])
        nn.init.zeros_(self.deform[-1].weight), nn.init.zeros_(self.deform[-1].bias)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha)))

    def sdf(self, x: torch.Tensor, w: torch.Tensor, pose: torch.Tensor,
            prior: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Field at points x (B, N, 3) (canonical, or observation for pose_agnostic); `prior`
        overrides the prior SDF at x (the posed proxy at the points' observation positions)."""
        cond = [w] if self.variant != "pose_agnostic" else [w, pose]
        cond = torch.cat(cond, -1)[:, None].expand(-1, x.shape[1], -1)
        out = self.field(torch.cat([encode(x), cond], -1))
        delta, rgb = out[..., 0], torch.sigmoid(out[..., 1:])
        if prior is None and self.variant == "pose_agnostic":
            prior = x.norm(dim=-1) - SPHERE_RADIUS
        elif prior is None:
            prior = body.proxy_sdf(x)
        return {"d": prior + delta, "delta_d": delta, "d_prior": prior, "rgb": rgb}

    def canonical(self, x_o: torch.Tensor, theta: torch.Tensor, w: torch.Tensor,
                  pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_c = LBS⁻¹(x_o) + Δx(x̄, θ, w) and Δx."""
        x_bar = body.inverse_skinning(x_o, theta)
        cond = torch.cat([pose, w], -1)[:, None].expand(-1, x_bar.shape[1], -1)
        delta_x = self.deform(torch.cat([x_bar, cond], -1))
        return x_bar + delta_x, delta_x

    def forward(self, theta: torch.Tensor, azimuth: torch.Tensor, z: torch.Tensor,
                size: int, samples: int) -> dict[str, torch.Tensor]:
        """Render (image, opacity, depth) at pose θ and camera φ, plus the regularisers' inputs."""
        w = self.mapping(z)
        pose = self.pose_embed(theta.reshape(len(theta), -1))
        x = ray_points(azimuth, size, samples)
        out: dict[str, torch.Tensor] = {"w": w, "pose": pose}
        prior = None
        if self.variant != "pose_agnostic":
            prior = body.posed_proxy_sdf(x, theta)
            x, out["delta_x"] = self.canonical(x, theta, w, pose)
        field = self.sdf(x, w, pose, prior)
        if self.variant == "density":
            sigma = DENSITY_SCALE * F.softplus(field["delta_d"] + DENSITY_BIAS)
        else:
            sigma = sdf_density(field["d"], self.log_alpha.exp())
        out.update(field)
        out.update(composite(sigma, field["rgb"], size, samples))
        return out


class Discriminator(nn.Module):
    """CNN features φ(x); logit = ψ(φ) + ⟨embed(θ, φ_cam), φ⟩ (projection conditioning)."""

    def __init__(self, width: int, size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 3, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(),
            nn.Linear(2 * width * math.ceil(size / 8) ** 2, 128), nn.LeakyReLU(0.2))
        self.out = nn.Linear(128, 1)
        self.embed = nn.Linear(POSE_DIM + 2, 128)

    def forward(self, image: torch.Tensor, theta: torch.Tensor, azimuth: torch.Tensor) -> torch.Tensor:
        phi = self.features(image)
        cond = torch.cat([theta.reshape(len(theta), -1), azimuth.sin()[:, None],
                          azimuth.cos()[:, None]], -1)
        return self.out(phi)[:, 0] + (self.embed(cond) * phi).sum(-1) / math.sqrt(phi.shape[1])

    def frozen(self, image: torch.Tensor, theta: torch.Tensor, azimuth: torch.Tensor) -> torch.Tensor:
        """D with its parameters detached: the generator's loss moves G only, so one optimiser
        step on L_D + L_G is a simultaneous G/D update."""
        params = {k: v.detach() for k, v in self.named_parameters()}
        return functional_call(self, params, (image, theta, azimuth))


class AvatarGAN(nn.Module):
    """G and D in one module: both train at every client and both are FedAvg'ed."""

    def __init__(self, variant: str, z_dim: int, width: int, latent: int, d_width: int,
                 size: int, samples: int, alpha: float = 0.05) -> None:
        super().__init__()
        self.generator = Generator(variant, z_dim, width, latent, alpha)
        self.discriminator = Discriminator(d_width, size)
        self.size, self.samples = size, samples  # not state: travels with the built model
