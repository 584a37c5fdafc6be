"""Orthographic cameras and volume rendering of SDF or density fields.

SDF → density (AvatarGen Eq. 4, after StyleSDF / VolSDF): σ(x) = (1/α)·Sigmoid(−d(x)/α).
Compositing (NeRF): a_i = 1 − exp(−σ_i·δ), w_i = a_i·Π_{j<i}(1 − a_j); colour Σ w_i c_i over a
white background, opacity Σ w_i, depth Σ w_i t_i / Σ w_i. Rays are orthographic along the
camera's −z, the camera turned by the azimuth φ about the vertical axis; every ray of every
image in a batch is one tensor, so a render is one batched MLP call.
"""

from __future__ import annotations

import torch

DEPTH_RANGE = 0.8  # samples lie in camera z ∈ [−0.8, 0.8]; t = 0.8 − z is the depth


def pixel_grid(size: int) -> torch.Tensor:
    """(size², 2) pixel centres (x right, y up) in [−1, 1], row-major from the top-left."""
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(-c, c, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], -1)


def depths(samples: int) -> torch.Tensor:
    """(S,) sample depths t along every ray, front to back."""
    return torch.linspace(0.0, 2 * DEPTH_RANGE, samples)


def rotate_y(x: torch.Tensor, azimuth: torch.Tensor) -> torch.Tensor:
    """Turn points x (B, N, 3) by −φ about y: camera frame → world frame."""
    c, s = azimuth.cos()[:, None], azimuth.sin()[:, None]
    return torch.stack([c * x[..., 0] - s * x[..., 2], x[..., 1], s * x[..., 0] + c * x[..., 2]], -1)


def project(points: torch.Tensor, azimuth: torch.Tensor) -> torch.Tensor:
    """World points (B, J, 3) → image coordinates (B, J, 2) in [−1, 1] (inverse of rotate_y)."""
    c, s = azimuth.cos()[:, None], azimuth.sin()[:, None]
    return torch.stack([c * points[..., 0] + s * points[..., 2], points[..., 1]], -1)


def ray_points(azimuth: torch.Tensor, size: int, samples: int) -> torch.Tensor:
    """World sample points (B, size²·S, 3), ray-major (S consecutive samples per ray)."""
    grid, t = pixel_grid(size), depths(samples)
    cam = torch.cat([grid[:, None].expand(-1, samples, -1),
                     (DEPTH_RANGE - t)[None, :, None].expand(len(grid), -1, 1)], -1)
    cam = cam.reshape(1, -1, 3).expand(len(azimuth), -1, -1)
    return rotate_y(cam, azimuth)


def sdf_density(d: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """σ = (1/α)·Sigmoid(−d/α)  (AvatarGen Eq. 4)."""
    return torch.sigmoid(-d / alpha) / alpha


def composite(sigma: torch.Tensor, rgb: torch.Tensor, size: int,
              samples: int) -> dict[str, torch.Tensor]:
    """σ (B, R·S), rgb (B, R·S, 3) → image (B,3,H,W) in [−1,1], opacity and depth (B,H,W)."""
    batch = len(sigma)
    sigma = sigma.reshape(batch, -1, samples)
    rgb = rgb.reshape(batch, -1, samples, 3)
    t = depths(samples).to(sigma)
    delta = 2 * DEPTH_RANGE / (samples - 1)
    a = 1 - torch.exp(-sigma.clamp_min(0) * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(a[..., :1]), 1 - a[..., :-1] + 1e-7], -1), -1)
    w = a * trans
    opacity = w.sum(-1)
    colour = (w[..., None] * rgb).sum(-2) + (1 - opacity[..., None])  # white background
    depth = (w * t).sum(-1) / opacity.clamp_min(1e-6)
    # The surface: where the accumulated opacity first reaches 1/2 (the far plane if never).
    reached = w.cumsum(-1) >= 0.5
    surface = torch.where(reached.any(-1), t[reached.float().argmax(-1)], t[-1])
    image = colour.transpose(1, 2).reshape(batch, 3, size, size) * 2 - 1
    return {"image": image, "opacity": opacity.reshape(batch, size, size),
            "depth": depth.reshape(batch, size, size), "surface": surface.reshape(batch, size, size)}


def first_hit(sdf: torch.Tensor, size: int, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth rendering of an exact SDF sampled densely: (mask, depth) of the first
    sign change along each ray, depth refined linearly between the two samples."""
    batch = len(sdf)
    d = sdf.reshape(batch, -1, samples)
    inside = d < 0
    hit = inside.any(-1)
    idx = inside.float().argmax(-1)
    prev = (idx - 1).clamp_min(0)
    d1, d0 = d.gather(-1, idx[..., None])[..., 0], d.gather(-1, prev[..., None])[..., 0]
    t = depths(samples)
    step = t[1] - t[0]
    frac = torch.where(idx > 0, d0 / (d0 - d1).clamp_min(1e-8), torch.zeros_like(d0))
    depth = torch.where(hit, t[prev] + frac * step, torch.full_like(d0, float(t[-1])))
    return hit.reshape(batch, size, size), depth.reshape(batch, size, size)
