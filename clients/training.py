"""The one local training loop every method's client runs.

A method contributes only `train_step` (the loss of one batch); batching,
seeding, the optimizer and (when enabled) DP-SGD are handled here once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

import torch
from torch.utils.data import DataLoader

from methods.base import Method, RunSpec
from methods.common.datasets import ArrayDataset
from protos.contract import NUM_EXAMPLES, TRAIN_LOSS

if TYPE_CHECKING:  # clients/privacy.py imports Opacus: only DP runs pay for it
    from clients.gradient_canaries import GradientCanaries
    from clients.privacy import PrivateTraining


def make_loader(dataset: ArrayDataset, batch_size: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset.to_torch(), batch_size=batch_size, shuffle=True, generator=generator)


def make_optimizer(model: torch.nn.Module, spec: RunSpec, lr: float | None = None) -> torch.optim.Optimizer:
    cfg = spec.method
    lr = cfg.lr if lr is None else lr  # a method's per-round schedule (Method.local_lr)
    params = [p for p in model.parameters() if p.requires_grad]
    if getattr(cfg, "optimizer", "sgd") == "adam":  # a method whose protocol fixes Adam (FedSA)
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


def train_locally(
    method: Method,
    model: torch.nn.Module,
    dataset: ArrayDataset,
    spec: RunSpec,
    *,
    seed: int,
    privacy: "PrivateTraining | None" = None,
    canaries: "GradientCanaries | None" = None,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Run `local_epochs` of SGD on `dataset`; returns the reply's metrics.

    `device` (clients/node_device.py) moves the model there, in place, and each batch as
    it leaves the loader, so a method's `train_step` sees tensors on one device; None
    leaves the model where it is (the CPU, for the callers that pass none).

    With `privacy` the same loop is DP-SGD: the hook swaps in a Poisson loader and a
    clipping, noising optimizer, runs each backward pass, and afterwards unwraps the
    model (trained in place) and keeps the round's ledger figures in `privacy.report`.
    A DP reply carries no training loss: it is computed from the records without
    noise, and releasing it would fall outside the accounted ε.
    `canaries` (an audited run without DP) plants white-box canaries into each step.
    """
    torch.manual_seed(seed)  # dropout / random labels inside train_step (seeds CUDA too)
    if device is not None:
        model.to(device)  # before the optimizer and Opacus see its parameters
    loader = make_loader(dataset, spec.method.batch_size, seed)
    local_lr = getattr(method, "local_lr", None)  # duck-typed steps (FedSA's hint) have none
    optimizer = make_optimizer(model, spec, local_lr(model, spec) if local_lr else None)
    model.train()
    backward = _plain_backward(method, model, spec)
    if privacy is not None:
        _, optimizer, loader = privacy.attach(model, optimizer, loader)
        backward = privacy.backward
    elif canaries is not None:
        backward = _with_canaries(backward, canaries, 1.0 / len(loader), spec.method.batch_size)
    started, total_loss, losses, steps = time.perf_counter(), 0.0, 0, 0
    for _ in range(spec.method.local_epochs):
        for batch in loader:
            # the loader (Opacus' Poisson one too) draws on the CPU with its CPU generator,
            # so the batches are the same on every device; only then do they move
            if device is not None:
                batch = tuple(t.to(device) for t in batch)
            optimizer.zero_grad(set_to_none=True)
            loss = backward(batch)
            optimizer.step()  # an empty Poisson batch too: a noise-only, accounted step
            steps += 1
            if loss is not None:
                total_loss, losses = total_loss + loss, losses + 1
    if privacy is not None:
        privacy.finish()
    metrics = {
        NUM_EXAMPLES: len(dataset),
        "steps": steps,
        "train-seconds": time.perf_counter() - started,
    }
    if privacy is None:
        metrics[TRAIN_LOSS] = total_loss / max(losses, 1)
    return metrics


def _with_canaries(
    backward: Callable[[tuple], float], canaries: "GradientCanaries", q: float, batch_size: int
) -> Callable[[tuple], float]:
    def planted(batch: tuple) -> float:
        loss = backward(batch)
        canaries.plant_in_mean(q, batch_size)
        return loss

    return planted


def _plain_backward(method: Method, model: torch.nn.Module, spec: RunSpec) -> Callable[[tuple], float]:
    # A method whose protocol clips the gradient norm (Ask-AC's PPO: 0.5) names it in its config.
    max_grad_norm = getattr(spec.method, "max_grad_norm", 0.0)

    def backward(batch: tuple) -> float:
        loss = method.train_step(model, batch, spec)
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        return loss.item()

    return backward
