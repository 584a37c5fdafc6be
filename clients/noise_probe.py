"""Check A13's probe on a node: is the noise it adds the noise its ledger claims?

One DP step of the node's own DP-SGD code path (clients/privacy.py, same hooks, same
grad-sample mode) on random inputs whose per-example gradients are all zero: the
update is pure noise. No data is read and nothing is spent.
"""

from __future__ import annotations

import torch
from torch import nn

from clients.privacy import PrivateTraining, choose_grad_sample_mode
from methods.base import Method, RunSpec
from protos.contract import NOISE_PROBE_DOF, NOISE_PROBE_SUM_SQ


def noise_probe(
    spec: RunSpec,
    method: Method,
    model: nn.Module,
    *,
    sigma: float,
    input_shape: tuple[int, ...],
    num_classes: int,
    seed: int,
) -> dict[str, float]:
    """Check A13: one DP step in which every per-example gradient is zero.

    With SGD(lr=1) the update is then pure noise, Δw = N(0, σ²C²)/B per weight, so
    Σ (Δw·B/C)² over the d weights is σ_applied²·χ²_d. The node returns that sum
    and d; the server divides by the σ its ledger claims and tests χ²_d. It runs
    the same code path as training (same hooks), on random inputs: no data, no ε.
    """
    batch_size = spec.method.batch_size
    torch.manual_seed(seed)  # the noise draws: a rerun probes identically
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch_size, *input_shape, generator=generator)
    labels = torch.randint(0, num_classes, (batch_size,), generator=generator)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(inputs, labels), batch_size=batch_size
    )  # q = 1: the whole batch
    mode = choose_grad_sample_mode(spec.dp.grad_sample_mode, method, model)  # as in training
    probe = PrivateTraining(
        spec,
        _ZeroLoss(method),
        history=[],
        sigma=sigma,
        seed=seed,
        grad_sample_mode=mode,
        guard_budget=False,
    )  # no data: nothing spent
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    probe.attach(model, optimizer, loader)
    for batch in probe.loader:
        if probe.backward(batch) is not None:
            probe.optimizer.step()
            break
    probe.module.to_standard_module()
    after = [p.detach() for p in model.parameters() if p.requires_grad]
    scale = batch_size / spec.dp.max_grad_norm
    total = sum(float(((a - b) * scale).pow(2).sum()) for a, b in zip(after, before))
    return {NOISE_PROBE_SUM_SQ: total, NOISE_PROBE_DOF: float(sum(b.numel() for b in before))}


class _ZeroLoss(Method):
    """The probe's loss: the model's output times zero, so every per-example gradient is 0."""

    name = "noise-probe"
    config_cls = object

    def __init__(self, method: Method) -> None:
        self.inner = method

    def build_model(self, spec):  # pragma: no cover - never built
        return self.inner.build_model(spec)

    def train_step(self, model, batch, spec):
        return (model(batch[0]) * 0.0).sum()

    def per_sample_loss(self, model, batch, spec):
        return (model(batch[0]) * 0.0).sum(dim=1)
