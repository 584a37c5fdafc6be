"""Frozen encoder, patch-graph attention and decoder of the GNN style transfer
(Jing et al., "Learning Graph Neural Networks for Image Style Transfer", ECCV 2022,
arXiv:2207.11681; design notes §6(a), not shipped: our reading, marked [inferred] there).

Forward pass of `StyleTransferNet` (S = image side, F = S/4):
  φ(c), φ(s)  frozen encoder: relu1 (S), relu2 (S/2), relu3 (F×F, C channels)
  nodes       content: every 3×3 patch of φ₃(c) (F² nodes); style: every 3×3 patch of φ₃ of
              the style image at each scale in `style_scales` (cross-scale matching, our
              stand-in for the paper's deformable graph convolution)
  edges       each content node ← its top-k style nodes by cosine of instance-normalised patches
  attention   GATv2 form, per head h: e_ij = aₕᵀ LeakyReLU(W_c h_i + W_s h_j),
              α_ij = softmax_{j∈N(i)} e_ij (Eq. of §6(a)2; GATv2 rather than GAT because
              GAT's aᵀ[W_c h_i ‖ W_s h_j] ranks the neighbours of every i the same way)
  message     m_i = mean_h Σ_j α_ij h_j, h_j the raw style patch: the output is built from
              style patches (the "semi-parametric" part); k = 1 is a patch swap
  fold        patches back to F×F with overlap averaging → AdaIN to φ₃(s)'s statistics → D
The AdaIN baseline skips the graph: t = AdaIN(φ₃(c), φ₃(s)) → D.

The encoder is a seeded random conv net (no pretrained VGG offline), frozen and kept out
of the module's parameters and state dict: FedAvg never sees it, and every node and the
server build the identical one from `encoder_seed`.
"""

from __future__ import annotations

import functools
from itertools import pairwise

import torch
from torch import nn
from torch.nn import functional as F

from methods.style_gnn.losses import adain, fold_patches, instance_norm, patches


class FrozenEncoder(nn.Module):
    """conv3×3-ReLU (relu1) → avgpool → conv-ReLU (relu2) → avgpool → conv-ReLU (relu3)."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        chans = (3, *widths)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, padding_mode="reflect")
                                   for a, b in pairwise(chans))
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, h = [], x - 0.5  # pixels in [0, 1], centred
        for i, conv in enumerate(self.convs):
            if i:
                h = F.avg_pool2d(h, 2)
            h = F.relu(conv(h))
            feats.append(h)
        return feats


@functools.lru_cache(maxsize=4)
def frozen_encoder(widths: tuple[int, ...], seed: int) -> FrozenEncoder:
    """The one encoder/loss net of a run: built under its own seed, never trained."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        encoder = FrozenEncoder(widths)
    encoder.requires_grad_(False)
    return encoder.eval()


class PatchGraphAttention(nn.Module):
    """Heterogeneous message passing style → content over a top-k patch graph."""

    def __init__(self, node_dim: int, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads, self.hidden = heads, hidden
        self.w_content = nn.Linear(node_dim, heads * hidden)  # W_c
        self.w_style = nn.Linear(node_dim, heads * hidden, bias=False)  # W_s
        self.attention = nn.Parameter(torch.randn(heads, hidden) / hidden ** 0.5)  # a

    def forward(self, content: torch.Tensor, style: list[torch.Tensor], k: int) -> torch.Tensor:
        """content N×C×F×F, style [N×C×Fs×Fs per scale] → message features N×C×F×F."""
        n, _, height, width = content.shape
        q_nodes = patches(instance_norm(content))  # N×Lc×D (normalised: match structure)
        s_nodes = torch.cat([patches(instance_norm(s)) for s in style], 1)  # N×Ls×D
        values = torch.cat([patches(s) for s in style], 1)  # raw style patches, N×Ls×D
        k = min(k, s_nodes.shape[1])
        with torch.no_grad():  # edges are a discrete choice; gradients flow through α
            cosine = F.normalize(q_nodes, dim=2) @ F.normalize(s_nodes, dim=2).transpose(1, 2)
            neighbours = cosine.topk(k, dim=2).indices  # N×Lc×k
        keys = self.w_style(s_nodes).view(n, -1, self.heads, self.hidden)  # N×Ls×H×d
        query = self.w_content(q_nodes).view(n, -1, 1, self.heads, self.hidden)  # N×Lc×1×H×d
        gathered = _gather(keys, neighbours)  # N×Lc×k×H×d
        scores = (F.leaky_relu(query + gathered, 0.2) * self.attention).sum(-1)  # N×Lc×k×H
        alpha = scores.softmax(dim=2).mean(3)  # heads averaged, N×Lc×k
        message = (alpha.unsqueeze(3) * _gather(values, neighbours)).sum(2)  # N×Lc×D
        return fold_patches(message, height, width)


def _gather(nodes: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """nodes N×L×... and index N×Lc×k → N×Lc×k×... (per-sample neighbour lookup)."""
    n, lc, k = index.shape
    flat = index.reshape(n, lc * k)
    rows = nodes[torch.arange(n).unsqueeze(1), flat]
    return rows.view(n, lc, k, *nodes.shape[2:])


class Decoder(nn.Module):
    """F×F×C features → S×S RGB in [0, 1]: two ×2 upsampling blocks (the note's design)."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.body = nn.Sequential(
            nn.Conv2d(w3, w2, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(w2, w1, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(w1, w1, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
            nn.Conv2d(w1, 3, 3, padding=1, padding_mode="reflect"), nn.Sigmoid())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)


class StyleTransferNet(nn.Module):
    """The GNN model (variant "gnn") or the AdaIN baseline ("adain"): same encoder and decoder."""

    def __init__(self, *, variant: str, widths: tuple[int, ...], encoder_seed: int, hidden: int,
                 heads: int, k: int, style_scales: tuple[float, ...]) -> None:
        super().__init__()
        self._encoder = (frozen_encoder(tuple(widths), encoder_seed),)  # a tuple: not a submodule
        self.variant, self.k, self.style_scales = variant, k, tuple(style_scales)
        node_dim = widths[-1] * 9
        self.graph = PatchGraphAttention(node_dim, hidden, heads) if variant == "gnn" else None
        self.decoder = Decoder(tuple(widths))

    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self._encoder[0](images)

    def target(self, content: torch.Tensor, style: torch.Tensor,
               style_feats: list[torch.Tensor] | None = None) -> torch.Tensor:
        """t: the features the decoder turns into the stylised image."""
        with torch.no_grad():
            content_top = self.encode(content)[-1]
            style_top = (style_feats or self.encode(style))[-1]
            scaled = [style_top] + [self.encode(F.interpolate(
                style, scale_factor=s, mode="bilinear", align_corners=False,
                antialias=True))[-1] for s in self.style_scales if s != 1.0]
        if self.graph is None:
            return adain(content_top, style_top)
        return adain(self.graph(content_top, scaled, self.k), style_top)

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.target(content, style))
