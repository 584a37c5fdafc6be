"""The server's side of the student: pre-fit on the probe set and task adaptation.

Notes §1.5/§3.1: the student is first fitted on the few labelled probe canvases
(CE); after amalgamation it gets a fresh head and all its weights are
fine-tuned on the probe set, then tested on the target test set. The LAST
epoch is reported, never the best (the official code reports the best).

This is the student owner's supervised fit with a cosine schedule, not a
node's local update, so it does not go through clients/training.py.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from methods.base import Method, RunSpec
from methods.common.datasets import ArrayDataset
from methods.fedsa.nets import CanvasCNN


def server_seed(spec: RunSpec, purpose: str) -> int:
    """One seed per (run, purpose): the scratch and the final adaptation share theirs."""
    return zlib.crc32(f"{spec.federation.seed}/server/{purpose}".encode())


def fit_supervised(model: CanvasCNN, data: ArrayDataset, *, epochs: int, lr: float,
                   batch_size: int, seed: int, backbone_lr: float = 1.0) -> float:
    """CE with Adam and a per-epoch cosine schedule (T_max = epochs); the last epoch's mean loss.

    `backbone_lr` scales the learning rate of everything but the head (0 freezes it).
    """
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(data.to_torch(), batch_size=batch_size, shuffle=True, generator=generator)
    head = list(model.head.parameters())
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
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            loss_sum, batches = loss_sum + loss.item(), batches + 1
        schedule.step()
    return loss_sum / max(batches, 1)


def prefit_student(method: Method, spec: RunSpec, arrays: dict[str, np.ndarray],
                   probe: ArrayDataset) -> dict[str, np.ndarray]:
    """The initial student (`arrays`, seeded by the runner) fitted on the probe set."""
    cfg = spec.method
    student = method.build_model(spec)
    method.load_shared_state(student, arrays)
    fit_supervised(student, probe, epochs=cfg.probe_epochs, lr=cfg.probe_lr,
                   batch_size=cfg.probe_batch_size, seed=server_seed(spec, "prefit"))
    return method.shared_state(student)


def adapt_and_test(method: Method, spec: RunSpec, arrays: dict[str, np.ndarray],
                   probe: ArrayDataset, test: ArrayDataset) -> dict[str, float]:
    """Fresh head, fine-tune on the probe set (backbone at adapt-backbone-lr × probe-lr), test:
    the last epoch's accuracy."""
    cfg = spec.method
    student = method.build_model(spec)
    method.load_shared_state(student, arrays)
    seed = server_seed(spec, "adapt")
    torch.manual_seed(seed)  # the same fresh head for the scratch baseline and the final student
    student.head = student.new_head(probe.num_classes)
    loss = fit_supervised(student, probe, epochs=cfg.adapt_epochs, lr=cfg.probe_lr,
                          batch_size=cfg.probe_batch_size, seed=seed,
                          backbone_lr=cfg.adapt_backbone_lr)
    return {**method.evaluate(student, test), "probe_loss": loss}
