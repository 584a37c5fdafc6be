"""The one local training loop every method's client runs.

A method contributes only `train_step` (the loss of one batch); batching,
seeding, the optimizer and (when enabled) DP-SGD are handled here once.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader

from methods.base import Method, RunSpec
from methods.common.datasets import ArrayDataset


def make_loader(dataset: ArrayDataset, batch_size: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset.to_torch(), batch_size=batch_size, shuffle=True, generator=generator)


def make_optimizer(model: torch.nn.Module, spec: RunSpec) -> torch.optim.Optimizer:
    cfg = spec.method
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


def train_locally(
    method: Method,
    model: torch.nn.Module,
    dataset: ArrayDataset,
    spec: RunSpec,
    *,
    seed: int,
) -> dict[str, float]:
    """Run `local_epochs` of SGD on `dataset`; returns the reply's metrics."""
    torch.manual_seed(seed)  # dropout / random labels inside train_step
    loader = make_loader(dataset, spec.method.batch_size, seed)
    optimizer = make_optimizer(model, spec)
    model.train()
    started, total_loss, steps = time.perf_counter(), 0.0, 0
    for _ in range(spec.method.local_epochs):
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = method.train_step(model, batch, spec)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            steps += 1
    return {
        "num-examples": len(dataset),
        "train-loss": total_loss / max(steps, 1),
        "steps": steps,
        "train-seconds": time.perf_counter() - started,
    }
