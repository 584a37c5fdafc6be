"""LTL's networks: the ANN teacher and the LIF spiking student of the same topology.

Yang et al., "Training Spiking Neural Networks with Local Tandem Learning", NeurIPS 2022
(arXiv:2210.04532), §3; code: Aries231/Local_tandem_learning_rule, models/cifar10/vgg11.py
(`CNN_ReluX`, `SpikingCNN`, `SpikingE2E`), shrunk as in the design notes §1(c) (not shipped):
conv(C→w0, s1) → conv(w0→w1, s2) → conv(w1→w2, s2) → FC(hidden) → FC(classes).

LIF neuron with hard reset (the paper's LIF model, `mem_update` of the code):
    m_t = λ·m_{t−1}·(1 − s_{t−1}) + W·x_t,   s_t = H(m_t − θ),   λ = exp(−1/τ)
with the boxcar surrogate ∂s/∂m = 1[|m − θ| < width].
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SpikeFn(torch.autograd.Function):
    """Heaviside spike forward, boxcar surrogate gradient backward."""

    @staticmethod
    def forward(ctx, membrane, threshold: float, width: float):
        ctx.save_for_backward(membrane)
        ctx.threshold, ctx.width = threshold, width
        return (membrane > threshold).to(membrane.dtype)

    @staticmethod
    def backward(ctx, grad_spike):
        (membrane,) = ctx.saved_tensors
        window = ((membrane - ctx.threshold).abs() < ctx.width).to(grad_spike.dtype)
        return grad_spike * window, None, None


def lif_step(membrane: torch.Tensor | None, spikes: torch.Tensor | None, drive: torch.Tensor, *,
             decay: float, threshold: float, width: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One LIF update: m_t = λ·m_{t−1}·(1 − s_{t−1}) + drive, s_t = H(m_t − θ) (hard reset).

    The reset keeps its gradient, as the code's `mem_update`. None: the first step (m_0 = 0).
    """
    if membrane is not None:
        drive = decay * membrane * (1.0 - spikes) + drive
    return drive, SpikeFn.apply(drive, threshold, width)


def relux(x: torch.Tensor, max_value: float = 2.0) -> torch.Tensor:
    """ReLUX(2) = clip(x, 0, 2): the teacher's bounded activation (matches rates in [0, 1] after scaling)."""
    return x.clamp(0.0, max_value)


def _hidden_layers(in_channels: int, image_size: tuple[int, int], widths, hidden) -> list[nn.Module]:
    # Spatial size after the stride-2 convs (kernel 3, padding 1): n → ⌈n/2⌉ → ⌈n/4⌉.
    h, w = (math.ceil(n / 4) for n in image_size)
    return [
        nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1),
        nn.Conv2d(widths[0], widths[1], 3, stride=2, padding=1),
        nn.Conv2d(widths[1], widths[2], 3, stride=2, padding=1),
        nn.Sequential(nn.Flatten(), nn.Linear(widths[2] * h * w, hidden)),
    ]


class TeacherCNN(nn.Module):
    """The ANN teacher: every hidden layer is BatchNorm + ReLUX(2); dropout 0.2 before FCs."""

    def __init__(self, in_channels: int, num_classes: int, image_size: tuple[int, int],
                 widths=(32, 64, 64), hidden: int = 128) -> None:
        super().__init__()
        layers = _hidden_layers(in_channels, image_size, widths, hidden)
        norms = [nn.BatchNorm2d(c, eps=1e-4) for c in widths] + [nn.BatchNorm1d(hidden, eps=1e-4)]
        for norm in norms:
            # The step counter is unused (momentum is set); as int64 FedAvg would turn it into a
            # float and the next round's replies would be rejected for their dtype.
            norm.num_batches_tracked = torch.zeros((), dtype=torch.float32)
        layers[3].insert(1, nn.Dropout(0.2))
        self.blocks = nn.ModuleList(nn.Sequential(layer, norm) for layer, norm in zip(layers, norms))
        self.readout = nn.Sequential(nn.Dropout(0.2), nn.Linear(hidden, num_classes))

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(a_1..a_4 hidden activations, logits) — the a_l are LTL's layer targets."""
        activations = []
        for block in self.blocks:
            x = relux(block(x))
            activations.append(x)
        return activations, self.readout(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N×C×H×W → N×classes
        return self.features(x)[1]


class SpikingCNN(nn.Module):
    """The LIF student: the teacher's topology without BatchNorm, simulated for T steps.

    The input is analog and presented at every step (direct encoding); the output is the
    time-averaged readout o = (1/T)·Σ_t W_out·s_L(t) (no output spikes), as in the code.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: tuple[int, int],
                 widths=(32, 64, 64), hidden: int = 128, *, time_steps: int = 8,
                 threshold: float = 0.6, tau: float = 10.0, surrogate_width: float = 0.2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_hidden_layers(in_channels, image_size, widths, hidden))
        self.readout = nn.Linear(hidden, num_classes)
        self.time_steps, self.threshold, self.width = time_steps, threshold, surrogate_width
        self.decay = math.exp(-1.0 / tau)

    def simulate(self, x: torch.Tensor, *, local: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(r_1..r_4 firing rates, o time-averaged logits) over T steps.

        `local`: each layer's input is detach(s_{l−1}), so a layer learns only from its own
        loss (LTL, losses.py); else gradients flow end to end through time (BPTT).
        """
        state: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.layers)
        counts = [torch.zeros(())] * len(self.layers)
        logits = torch.zeros(())
        for _ in range(self.time_steps):
            current = x
            for i, layer in enumerate(self.layers):
                membrane, spikes = lif_step(*(state[i] or (None, None)), layer(current),
                                            decay=self.decay, threshold=self.threshold,
                                            width=self.width)
                state[i] = (membrane, spikes)
                counts[i] = counts[i] + spikes
                current = spikes.detach() if local else spikes
            logits = logits + self.readout(current)
        return [c / self.time_steps for c in counts], logits / self.time_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.simulate(x, local=False)[1]


class TandemPair(nn.Module):
    """The student with its frozen teacher beside it: what an LTL client trains.

    The teacher travels with the student so every node computes its own targets; it has
    no trainable parameters and stays in eval mode (BatchNorm running statistics, no
    dropout) whatever mode the shared loop sets.
    """

    def __init__(self, student: SpikingCNN, teacher: TeacherCNN) -> None:
        super().__init__()
        self.student, self.teacher = student, teacher
        self.teacher.requires_grad_(False)
        self.teacher.eval()

    def train(self, mode: bool = True) -> TandemPair:
        self.student.train(mode)
        self.teacher.eval()
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)
