"""The losses of Intra-ADR and I2-ADR (Meng et al., "Attention Diversification for Domain
Generalization", ECCV 2022, arXiv:2210.04206), as the official code computes them
(hikvision-research/DomainGeneralization eda3201, dassl/engine/dg/intra_adr.py, i2_adr.py).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def channel_attention(features: torch.Tensor) -> torch.Tensor:
    """A_c = softmax over the H·W positions of channel c (§3.2): N×C×H×W → N×C×(H·W)."""
    return F.softmax(features.flatten(2), dim=2)


def intra_adr_loss(adr_map: torch.Tensor, top_k: int) -> torch.Tensor:
    """L_intra = 1 − mean_{n,p} M(p), M(p) = mean of the top-k channel values A_c(p) (§3.2, Eq. 2–3).

    Channels peaking at the same few positions leave most positions with small top-k
    values; the loss is lowest when channels peak at many different positions.
    """
    attention = channel_attention(adr_map)                 # N×C×P
    top = attention.topk(top_k, dim=1).values              # N×k×P
    return 1.0 - top.mean(dim=1).mean()


def adr_classification_loss(logits: torch.Tensor, logits_adr: torch.Tensor,
                            labels: torch.Tensor) -> torch.Tensor:
    """L_cls = ½·[CE(W·GAP(F), y) + CE(W·GAP(E(F)), y)] with the shared classifier W (§3.2)."""
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits_adr, labels))


def spatial_attention(features: torch.Tensor) -> torch.Tensor:
    """a(x) = mean_c softmax_{HW}(F_c) (code `at`), N×C×H×W → N×(H·W); sums to 1 per sample."""
    return channel_attention(features).mean(dim=1)


def inter_adr_terms(student_maps: list[torch.Tensor], all_maps: list[list[torch.Tensor]],
                    correct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_dir, L_dvr) of Inter-ADR (§3.3, Eq. 5–7; code `Inter_ADR`).

    `student_maps[s]`: the student's stage-s features (with gradient); `all_maps[m][s]`:
    stage-s features of each of the K+1 models (domain models and the student), `correct`:
    (K+1)×N, whether model m classifies sample n correctly. Per sample, u⁺ / u⁻ is the
    element-wise max of the attention maps of the models that are right / wrong.
      L_dir = Σ_s C_s·mean((a_s ⊙ 1[u⁺>0] − sg(u⁺))²)   (pull towards task-related attention)
      L_dvr = Σ_s C_s·mean((a_s ⊙ 1[u⁻>0])²)            (the domain-related attention energy)
    Softmax maps are positive, so 1[u>0] is "some model is right / wrong" on that sample.
    """
    dir_loss = student_maps[0].new_zeros(())
    dvr_loss = student_maps[0].new_zeros(())
    right, wrong = correct.float(), (~correct).float()          # (K+1)×N
    for s, student in enumerate(student_maps):
        a = spatial_attention(student)                           # N×P
        with torch.no_grad():
            maps = torch.stack([spatial_attention(m[s]) for m in all_maps])  # (K+1)×N×P
            u_pos = (maps * right[..., None]).amax(dim=0)        # 0 where no model is right
            u_neg = (maps * wrong[..., None]).amax(dim=0)
        channels = student.size(1)
        dir_loss = dir_loss + channels * ((a * (u_pos > 0) - u_pos) ** 2).mean()
        dvr_loss = dvr_loss + channels * ((a * (u_neg > 0)) ** 2).mean()
    return dir_loss, dvr_loss


def inter_adr_loss(dir_loss: torch.Tensor, dvr_loss: torch.Tensor, *, dir_weight: float,
                   dvr_weight: float, sign: str) -> torch.Tensor:
    """L_inter = w_dir·L_dir − w_dvr·L_dvr (code: maximises the energy on samples some model
    got wrong) or + w_dvr·L_dvr (`sign="paper"`: the text's "suppression")."""
    direction = -1.0 if sign == "code" else 1.0
    return dir_weight * dir_loss + direction * dvr_weight * dvr_loss


def attention_diversity(features: torch.Tensor) -> torch.Tensor:
    """Per-sample entropy of where the active channels peak, normalised to [0, 1].

    h(p) = share of the channels (with any positive response) whose argmax is p;
    diversity = H(h) / log(H·W): 0 when all channels look at one position, 1 when
    they spread evenly (design notes §2(d) claim 2, not shipped: "channels attend to different
    locations"). N×C×H×W → N.
    """
    h, w = features.shape[2:]
    flat = features.flatten(2)                                   # N×C×P
    active = (flat.amax(dim=2) > 0).float()                      # N×C
    peaks = F.one_hot(flat.argmax(dim=2), h * w).float() * active[..., None]
    hist = peaks.sum(dim=1) / active.sum(dim=1, keepdim=True).clamp_min(1.0)
    return _normalised_entropy(hist)


def attention_entropy(features: torch.Tensor) -> torch.Tensor:
    """Entropy of the spatial attention a(x) = mean_c softmax_{HW}(F_c), normalised to [0, 1]
    (design notes §2(d) claim 2, first reading, not shipped: "entropy of a_5"). N×C×H×W → N."""
    return _normalised_entropy(spatial_attention(features))       # N×P, sums to 1


def _normalised_entropy(p: torch.Tensor) -> torch.Tensor:
    """H(p) / log P of N distributions over P positions (N×P → N; 0·log 0 = 0)."""
    entropy = -(p * p.clamp_min(1e-12).log()).sum(dim=1)
    return entropy / torch.log(torch.tensor(float(p.size(1))))
