"""The I2-ADR network at CPU scale: a 4-block CNN with MixStyle, the ADR head E and the
shared classifier W (Meng et al., ECCV 2022, arXiv:2210.04206, §3.2–3.3; official code
`models/resnet_ms_adr.py`), plus the bank of K frozen domain models that L_inter needs.

Shapes at the defaults (image 16, widths 32-64-96-128: the note's CNN):
  x 3×16×16 → block1 32×8×8 → MixStyle → block2 64×4×4 → MixStyle → block3 96×4×4
  → block4 = F 128×4×4;  y_ce = W·GAP(F);  E(F) = ReLU(IN(ConvT_2×2,s2(F))) 128×8×8;
  y_adr = W·GAP(E(F)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from methods.common.nets import conv_block


def mixstyle(x: torch.Tensor, p: float, alpha: float) -> torch.Tensor:
    """MixStyle (Zhou et al., ICLR 2021, Eq. 4–5): x̂ = σ_mix·(x−μ)/σ + μ_mix.

    μ_mix = λμ + (1−λ)μ_π, σ_mix likewise, λ ~ Beta(α, α), μ and σ per sample and channel
    and detached. π is a shuffle of the batch: a client holds one domain, so styles mix
    within the client (design notes §2(e), not shipped), not across two domains' batch halves.
    """
    if torch.rand(()) >= p or x.size(0) < 2:
        return x
    mu = x.mean(dim=(2, 3), keepdim=True).detach()
    sigma = (x.var(dim=(2, 3), keepdim=True) + 1e-6).sqrt().detach()
    lam = torch.distributions.Beta(alpha, alpha).sample((x.size(0), 1, 1, 1))
    perm = torch.randperm(x.size(0))
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sigma_mix = lam * sigma + (1 - lam) * sigma[perm]
    return (x - mu) / sigma * sigma_mix + mu_mix


@dataclass
class ADROutput:
    logits: torch.Tensor       # y_ce = W·GAP(F), N×classes
    logits_adr: torch.Tensor   # y_adr = W·GAP(E(F)), N×classes
    adr_map: torch.Tensor      # E(F), N×C×2H×2W
    stage_maps: list[torch.Tensor]  # outputs of blocks 1..4 (the paper's conv2..conv5)


class ADRNet(nn.Module):
    """Backbone + ADR head E + shared classifier W."""

    def __init__(self, widths: tuple[int, ...], num_classes: int = 10,
                 mix_p: float = 0.5, mix_alpha: float = 0.1) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.blocks = nn.ModuleList([conv_block(3, w1, pool=True), conv_block(w1, w2, pool=True),
                                     conv_block(w2, w3, pool=False), conv_block(w3, w4, pool=False)])
        # E(F) = ReLU(IN(ConvT(F))): upsampling gives each channel more positions to peak at.
        self.adr_head = nn.Sequential(nn.ConvTranspose2d(w4, w4, kernel_size=2, stride=2),
                                      nn.InstanceNorm2d(w4, affine=True), nn.ReLU())
        self.classifier = nn.Linear(w4, num_classes)
        self.mix_p, self.mix_alpha = mix_p, mix_alpha
        for m in self.modules():  # ResNet's init: PyTorch's default left this GN+GAP net on a plateau for epochs
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_all(self, x: torch.Tensor, *, mix: bool = True) -> ADROutput:
        maps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if mix and self.training and i < 2:  # MixStyle after blocks 1–2 only
                x = mixstyle(x, self.mix_p, self.mix_alpha)
            maps.append(x)
        adr = self.adr_head(x)
        return ADROutput(self.classifier(x.mean(dim=(2, 3))), self.classifier(adr.mean(dim=(2, 3))),
                         adr, maps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N×3×H×W → N×classes (y_ce)
        return self.forward_all(x).logits


class I2ADRModel(nn.Module):
    """The student plus the K domain models (one per source domain) in one state dict.

    Everything travels together so every stage is plain FedAvg over one array set: the
    domain-model stage trains only `domain_models[k]` on domain k's images (the student
    gets no gradient and stays identical on every client); later stages train only the
    student and keep the domain models frozen (no gradient, so FedAvg of identical copies).
    """

    def __init__(self, widths: tuple[int, ...], num_domain_models: int, **mix) -> None:
        super().__init__()
        self.student = ADRNet(widths, **mix)
        self.domain_models = nn.ModuleList(ADRNet(widths, **mix) for _ in range(num_domain_models))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)
