"""The dynamic attention unit and the sparse candidate sets of DynaST's cascade.

Liu et al., ECCV 2022 (arXiv:2207.06124), §3.2-3.3 and the official code
(models/networks/dynast_transformer.py, github.com/Huage001/DynaST @42bf8a7):

  A = softmax(Q Kᵀ / s)                    attention over the candidate keys (Eq. 2)
  M = 1[Q_p K_pᵀ / d_p > 0]                the dynamic pruning mask (Eq. 3; straight-through,
                                           sigmoid-derivative backward)
  Â = A ⊙ M  (not renormalised)            so each query keeps a dynamic number of keys
  c_i = Σ_j Â_ij,  y = Â V + (1 − c) ⊙ H(q) + q   → PositionalNorm → residual MLP (Eq. 4)

Q = f([q/‖q‖, pos]), K = g([k/‖k‖, pos]). The dense 8×8 layers use s = √dim; the sparse
layers compare cosine similarities at a temperature (code: 0.01). Simplifications (README):
H(q) is a linear map of the query features instead of SPADE(q, S) (our query features are
computed from S alone), and the ResBlock is a token-wise residual MLP.

Queries and keys are token sequences (B, N, D) over a row-major H×W grid. `candidates`
(B, N, C) lists, per query, the key indices it may attend to; None means all keys (dense).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


def straight_through_mask(scores: torch.Tensor) -> torch.Tensor:
    """1[scores > 0] forward, d sigmoid(scores) backward (the code's pruning estimator)."""
    soft = torch.sigmoid(scores)
    return (scores > 0).to(scores.dtype) + soft - soft.detach()


def gather_tokens(tokens: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """tokens (B, Nk, D) at candidates (B, N, C) → (B, N, C, D)."""
    b, n, c = candidates.shape
    index = candidates.reshape(b, n * c, 1).expand(-1, -1, tokens.shape[-1])
    return tokens.gather(1, index).reshape(b, n, c, tokens.shape[-1])


def child_candidates(coarse_topk: torch.Tensor, coarse_hw: tuple[int, int]) -> torch.Tensor:
    """Inter-scale candidates: the 4 children (2× grid) of each of a query's parent's top-k keys.

    coarse_topk (B, Hc·Wc, k) key indices on the coarse grid → (B, 4·Hc·Wc, 4k) indices on the
    fine grid; the fine query at (y, x) inherits the keys of its parent (y//2, x//2).
    """
    hc, wc = coarse_hw
    ky, kx = coarse_topk // wc, coarse_topk % wc
    children = [(2 * ky + dy) * (2 * wc) + 2 * kx + dx for dy in (0, 1) for dx in (0, 1)]
    per_parent = torch.cat(children, dim=-1)  # (B, Hc·Wc, 4k)
    grid = per_parent.reshape(per_parent.shape[0], hc, 1, wc, 1, -1)
    fine = grid.expand(-1, -1, 2, -1, 2, -1).reshape(per_parent.shape[0], 4 * hc * wc, -1)
    return fine


def neighbour_candidates(topk: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Inner-scale candidates: each top-k key and its 4 grid neighbours (clamped): (B, N, 5k)."""
    h, w = hw
    ky, kx = topk // w, topk % w
    moves = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
    return torch.cat([(ky + dy).clamp(0, h - 1) * w + (kx + dx).clamp(0, w - 1)
                      for dy, dx in moves], dim=-1)


@dataclass
class AttentionOutput:
    y: torch.Tensor          # (B, N, D) the updated query features
    topk: torch.Tensor       # (B, N, k) key indices with the largest attention (empty if k = 0)
    warp: torch.Tensor       # (B, N, 3) the exemplar image warped by A
    kept: torch.Tensor       # (B, N) Σ_j M_ij: keys each query keeps (dynamic count)
    entries: int             # attention entries computed (B·N·C)


class DynamicAttention(nn.Module):
    """One dynamic attention layer (Eq. 2-4) over dense or candidate keys."""

    def __init__(self, dim: int, pos_dim: int, prune_dim: int, temperature: float | None) -> None:
        super().__init__()
        self.query = nn.Linear(dim + pos_dim, dim)
        self.key = nn.Linear(dim + pos_dim, dim)
        self.value = nn.Linear(dim, dim)
        self.prune_query = nn.Linear(dim + pos_dim, prune_dim)
        self.prune_key = nn.Linear(dim + pos_dim, prune_dim)
        self.hallucinate = nn.Linear(dim, dim)  # H(q): what a query without matches produces
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.LeakyReLU(0.2), nn.Linear(2 * dim, dim))
        # None: dense scaled dot product (s = √dim); else cosine logits / temperature.
        self.temperature = temperature
        self.prune_dim = prune_dim

    def forward(self, q: torch.Tensor, q_pos: torch.Tensor, k: torch.Tensor, k_pos: torch.Tensor,
                v: torch.Tensor, image: torch.Tensor, top_k: int,
                candidates: torch.Tensor | None = None) -> AttentionOutput:
        qn = torch.cat([F.normalize(q, dim=-1), q_pos], -1)
        kn = torch.cat([F.normalize(k, dim=-1), k_pos], -1)
        query, key, value = self.query(qn), self.key(kn), self.value(v)
        pq, pk = self.prune_query(qn), self.prune_key(kn)
        if self.temperature is not None:
            query, key = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
        if candidates is None:  # (B, N, Nk)
            logits = query @ key.transpose(1, 2)
            prune = pq @ pk.transpose(1, 2) / self.prune_dim
        else:  # (B, N, C): one gather of everything a candidate key carries
            d, p = key.shape[-1], pk.shape[-1]
            picked = gather_tokens(torch.cat([key, pk, value, image], -1), candidates)
            logits = (query.unsqueeze(2) * picked[..., :d]).sum(-1)
            prune = (pq.unsqueeze(2) * picked[..., d:d + p]).sum(-1) / self.prune_dim
        scale = self.temperature if self.temperature is not None else query.shape[-1] ** 0.5
        attention = torch.softmax(logits / scale, dim=-1)
        mask = straight_through_mask(prune)
        sparse = attention * mask  # Â: not renormalised
        confidence = sparse.sum(-1, keepdim=True)
        if candidates is None:
            attended, warp = sparse @ value, attention @ image
        else:
            attended = (sparse.unsqueeze(-1) * picked[..., d + p:-3]).sum(2)
            warp = (attention.unsqueeze(-1) * picked[..., -3:]).sum(2)
        y = attended + (1 - confidence) * self.hallucinate(q) + q
        y = F.layer_norm(y, y.shape[-1:])  # PositionalNorm: per position, over channels
        y = y + self.mlp(y)
        topk = torch.empty(0, dtype=torch.long)
        if top_k > 0:  # the next sparse layer's keys (top_k = 0: no sparse layer follows)
            best = attention.detach().topk(min(top_k, attention.shape[-1]), dim=-1).indices
            topk = best if candidates is None else candidates.gather(-1, best)
        return AttentionOutput(y, topk, warp, (mask > 0.5).sum(-1).detach(), logits.numel())
