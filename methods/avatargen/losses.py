"""AvatarGen's training losses (Zhang et al., arXiv:2208.00561, Sec. 3.3–3.4; weights of
the design notes §4(c), not shipped).

- NS-GAN (Goodfellow et al. 2014, the non-saturating form used by EG3D / AvatarGen):
  L_D = softplus(D(G(z))) + softplus(−D(x)),  L_G = softplus(−D(G(z)))
- R1 (Mescheder et al. 2018): (γ/2)·E‖∇_x D(x)‖² on real images
- Eikonal (Gropp et al. 2020): E(‖∇_x d(x)‖ − 1)²
- Minimal surface (StyleSDF): E exp(−β·|d(x)|), β = 100
- SMPL prior: E[δd² · 1(d_proxy > margin)], δd kept small off the body
- Deformation prior: E‖Δx‖²
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """NS-GAN L_D = E softplus(D(fake)) + E softplus(−D(real))."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """NS-GAN L_G = E softplus(−D(fake))."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor, gamma: float) -> torch.Tensor:
    """(γ/2)·E‖∇_x D(x)‖² on reals; real_images must require grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return 0.5 * gamma * grad.pow(2).flatten(1).sum(1).mean()


def eikonal_loss(d: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """E(‖∇_x d‖ − 1)²; x must require grad and d be computed from it."""
    (grad,) = torch.autograd.grad(d.sum(), x, create_graph=True)
    return (grad.norm(dim=-1) - 1).pow(2).mean()


def minimal_surface_loss(d: torch.Tensor, beta: float = 100.0) -> torch.Tensor:
    """E exp(−β·|d|): penalises spurious zero-level surfaces."""
    return torch.exp(-beta * d.abs()).mean()


def proxy_prior_loss(delta_d: torch.Tensor, d_proxy: torch.Tensor, margin: float) -> torch.Tensor:
    """E[δd² · 1(d_proxy > margin)]: far from the body the SDF is the proxy's."""
    off_body = (d_proxy > margin).float()
    return (delta_d.pow(2) * off_body).mean()


def deformation_loss(delta_x: torch.Tensor) -> torch.Tensor:
    """E‖Δx‖²."""
    return delta_x.pow(2).sum(-1).mean()
