"""The server's side of the student: pre-fit on the probe set and task adaptation.

Notes §1.5/§3.1: the student is first fitted on the few labelled probe canvases
(CE); after amalgamation it gets a fresh head and all its weights are
fine-tuned on the probe set, then measured on the server's validation canvases
(carved from training digits: what choices read) and, for final figures only,
on the target test set. The LAST epoch is reported, never the best (the
official code reports the best).

This is the student owner's supervised fit with a cosine schedule, not a
node's local update, so it does not go through clients/training.py. Like that loop it
computes where the model is: the caller places the model on its process's device (the
server's, or a node's for its teacher), and each batch follows it there; the loader
draws on the CPU with its CPU generator, so the batches are the same on every device.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from methods.base import Method, RunSpec
from methods.common.datasets import ArrayDataset
from methods.fedsa.architectures import device_of, head_parameters, replace_head


def server_seed(spec: RunSpec, purpose: str) -> int:
    """One seed per (run, purpose): the scratch and the final adaptation share theirs."""
    return zlib.crc32(f"{spec.federation.seed}/server/{purpose}".encode())


def fit_supervised(model: nn.Module, data: ArrayDataset, *, epochs: int, lr: float,
                   batch_size: int, seed: int, backbone_lr: float = 1.0) -> float:
    """CE with Adam and a per-epoch cosine schedule (T_max = epochs); the last epoch's mean loss.

    `backbone_lr` scales the learning rate of everything but the head (0 freezes it).
    Trains on the model's device (module docstring).
    """
    device = device_of(model)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(data.to_torch(), batch_size=batch_size, shuffle=True, generator=generator)
    head = head_parameters(model)
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    groups = [{"params": head, "lr": lr}]
    if backbone_lr > 0:
        groups.append({"params": backbone, "lr": lr * backbone_lr})
    else:
        for param in backbone:
            param.requires_grad_(False)
    optimizer = torch.optim.Adam(groups, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    model.train()
    loss_sum, batches = 0.0, 0
    for _ in range(epochs):
        loss_sum, batches = 0.0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            loss_sum, batches = loss_sum + loss.item(), batches + 1
        schedule.step()
    return loss_sum / max(batches, 1)


def prefit_student(method: Method, spec: RunSpec, arrays: dict[str, np.ndarray],
                   probe: ArrayDataset, *, device: torch.device | None = None
                   ) -> dict[str, np.ndarray]:
    """The initial student (`arrays`, seeded by the runner) fitted on the probe set, on
    `device` (None: the CPU); the arrays come back on the CPU (Method.shared_state)."""
    cfg = spec.method
    student = method.build_model(spec).to(device or "cpu")
    method.load_shared_state(student, arrays)
    fit_supervised(student, probe, epochs=cfg.probe_epochs, lr=cfg.probe_lr,
                   batch_size=cfg.probe_batch_size, seed=server_seed(spec, "prefit"))
    return method.shared_state(student)


def adapt_and_evaluate(method: Method, spec: RunSpec, arrays: dict[str, np.ndarray],
                       probe: ArrayDataset, *, val: ArrayDataset | None = None,
                       test: ArrayDataset | None = None,
                       device: torch.device | None = None) -> dict[str, float]:
    """Fresh head, fine-tune on the probe set (backbone at adapt-backbone-lr × probe-lr), then
    the last epoch's figures: `val_accuracy` on `val`, `accuracy` on `test` (each if given).
    Computed on `device` (None: the CPU)."""
    cfg = spec.method
    student = method.build_model(spec)
    method.load_shared_state(student, arrays)
    seed = server_seed(spec, "adapt")
    torch.manual_seed(seed)  # the same fresh head for the scratch baseline and the final student
    replace_head(student, probe.num_classes)  # drawn on the CPU: the same head on every device
    student.to(device or "cpu")  # after the new head, which is built on the CPU
    loss = fit_supervised(student, probe, epochs=cfg.adapt_epochs, lr=cfg.probe_lr,
                          batch_size=cfg.probe_batch_size, seed=seed,
                          backbone_lr=cfg.adapt_backbone_lr)
    figures = {"probe_loss": loss}
    if val is not None:
        figures.update({f"val_{k}": v for k, v in method.evaluate(student, val).items()})
    if test is not None:
        figures.update(method.evaluate(student, test))
    return figures
