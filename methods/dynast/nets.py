"""DynaST's generator at 32² (Liu et al., ECCV 2022, arXiv:2207.06124, Fig. 2).

   S ──E_s──► q₈, q₁₆, q₃₂          (query features per scale, from the target's part map)
   [R, S_R] ──E_r──► k, v per scale (key and value features, from the exemplar)
   8×8   : `coarse_layers` dense dynamic attention layers (64 tokens), top-k kept
   16², 32²: an inter-scale sparse layer (each query: 4 children of its parent's top-k keys,
           4k candidates) and an inner-scale layer (top-k + 4-neighbours, 5k candidates)
   decoder: bilinear ×2 + conv, merging y₈, y₁₆, y₃₂ → tanh image

Variants (the scenario's stages, identical parameters so one seed gives one init):
  cascade      the method above
  coarse_only  the 8×8 layers only; the fine scales keep their encoder features and the
               full-resolution warp is the 8×8 warp upsampled
  dense        the same layers, but every fine layer attends to all keys of its scale
Every attention layer also warps the exemplar image down-sampled to its scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from methods.dynast.attention import DynamicAttention, child_candidates, neighbour_candidates
from methods.dynast.dolls import NUM_LABELS, split_pair

COARSE = 8
FINE_SIZES = (16, 32)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2))


class Pyramid(nn.Module):
    """Features at 32², 16², 8², each projected to the attention width `dim`."""

    def __init__(self, cin: int, ngf: int, dim: int) -> None:
        super().__init__()
        self.stages = nn.ModuleList([nn.Sequential(_conv(cin, ngf), _conv(ngf, ngf)),
                                     _conv(ngf, 2 * ngf, 2), _conv(2 * ngf, 4 * ngf, 2)])
        self.heads = nn.ModuleList([nn.Conv2d(c, dim, 1) for c in (ngf, 2 * ngf, 4 * ngf)])

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        out = {}
        for stage, head in zip(self.stages, self.heads):
            x = stage(x)
            out[x.shape[-1]] = head(x)
        return out


def tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, H·W, C), row-major."""
    return x.flatten(2).transpose(1, 2)


def grid(t: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H·W, C) → (B, C, H, W)."""
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], size, size)


@dataclass
class Generated:
    output: torch.Tensor                                           # (B, 3, 32, 32) in [0, 1]
    warps: list[torch.Tensor] = field(default_factory=list)        # per layer, (B, 3, s, s)
    kept: list[torch.Tensor] = field(default_factory=list)         # per layer, (B, N) Σ_j M_ij
    entries: dict[int, int] = field(default_factory=dict)          # attention entries computed, per scale

    @property
    def full_warp(self) -> torch.Tensor:
        """The last layer's warp at 32² (upsampled when the last layer is coarser)."""
        return F.interpolate(self.warps[-1], size=FINE_SIZES[-1], mode="bilinear", align_corners=False)


class DynaSTGenerator(nn.Module):
    def __init__(self, ngf: int, dim: int, pos_dim: int, prune_dim: int, coarse_layers: int,
                 top_k: int, fine_temperature: float, variant: str) -> None:
        super().__init__()
        self.variant, self.top_k = variant, top_k
        self.encode_map = Pyramid(NUM_LABELS, ngf, dim)
        self.encode_exemplar = Pyramid(3 + NUM_LABELS, ngf, dim)
        self.position = nn.Parameter(0.1 * torch.randn(1, pos_dim, COARSE, COARSE))
        self.coarse = nn.ModuleList(DynamicAttention(dim, pos_dim, prune_dim, None)
                                    for _ in range(coarse_layers))
        self.fine = nn.ModuleDict({str(s): nn.ModuleList(
            DynamicAttention(dim, pos_dim, prune_dim, fine_temperature) for _ in ("inter", "inner"))
            for s in FINE_SIZES})
        self.decode = nn.ModuleDict({str(s): _conv(2 * dim, dim) for s in FINE_SIZES})
        self.to_image = nn.Conv2d(dim, 3, 3, 1, 1)

    def forward(self, pairs: torch.Tensor) -> Generated:
        _, s, r, s_r = split_pair(pairs)
        queries = self.encode_map(s)
        keys = self.encode_exemplar(torch.cat([r, s_r], 1))
        result = Generated(output=torch.empty(0))
        y, topk = self._attend(self.coarse, COARSE, queries, keys, r, result, None)
        features = grid(y, COARSE)
        for size in FINE_SIZES:
            if self.variant == "coarse_only":
                fine = queries[size]
            else:
                y, topk = self._attend(self.fine[str(size)], size, queries, keys, r, result, topk)
                fine = grid(y, size)
            up = F.interpolate(features, scale_factor=2, mode="bilinear", align_corners=False)
            features = self.decode[str(size)](torch.cat([up, fine], 1))
        result.output = torch.tanh(self.to_image(features)) * 0.5 + 0.5
        return result

    def _attend(self, layers: nn.ModuleList, size: int, queries: dict, keys: dict, exemplar: torch.Tensor,
                result: Generated, coarse_topk: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run one scale's layers; record warps, kept-key counts and entries in `result`."""
        pos = tokens(F.interpolate(self.position, size=size, mode="bilinear", align_corners=False))
        pos = pos.expand(queries[size].shape[0], -1, -1)
        q, k = tokens(queries[size]), tokens(keys[size])
        image = tokens(F.adaptive_avg_pool2d(exemplar, size))
        topk = coarse_topk
        for index, layer in enumerate(layers):
            if size == COARSE or self.variant == "dense":
                candidates = None
            elif index == 0:
                candidates = child_candidates(coarse_topk, (size // 2, size // 2))
            else:
                candidates = neighbour_candidates(topk, (size, size))
            # Only the cascade's sparse layers read the previous layer's top-k keys.
            top_k = self.top_k if self.variant == "cascade" else 0
            out = layer(q, pos, k, pos, k, image, top_k, candidates)
            q, topk = out.y, out.topk
            result.warps.append(grid(out.warp, size))
            result.kept.append(out.kept)
            result.entries[size] = result.entries.get(size, 0) + out.entries
        return q, topk
