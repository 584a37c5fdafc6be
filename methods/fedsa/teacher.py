"""A teacher checkpoint on a node's disk (`fedvault node --teacher CKPT`).

One .npz: the teacher's state dict plus a JSON description. Read with
allow_pickle=False: a checkpoint is data, never code. It is read on its node
only; nothing in it is ever sent. It is written from CPU copies and read into a
model on the CPU, which the node then moves to its device: a checkpoint saved on a
GPU node loads on a CPU one.

The description names the architecture (architectures.py) and how to build it:

    arch           "canvas-cnn" (the default, for checkpoints written before the key
                   existed) | "resnet" | "package.module:builder" (the user's own,
                   importable on the node and marked with @model_builder)
    num_classes, in_channels (1 if absent)
    widths, norm   for the built-in architectures
    kwargs         extra keyword arguments of a user builder (a JSON object)
    gradcam-layer, hint-layer   optional: this teacher's layers (dotted names), used
                   when the run's fedsa.gradcam-layer / fedsa.hint-layer are empty
    task           free text, never sent
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from methods.fedsa.architectures import build_network, num_outputs

_META = "__teacher__"


def teacher_meta(model: nn.Module, task: str, norm: str = "batch", widths: tuple[int, ...] = (),
                 *, arch: str = "canvas-cnn", in_channels: int = 1,
                 **extra: Any) -> dict[str, Any]:
    """The description saved beside the weights; `extra` adds kwargs, gradcam-layer, … ."""
    return {"task": task, "arch": arch, "widths": list(widths), "norm": norm,
            "in_channels": in_channels, "num_classes": num_outputs(model), **extra}


def build_teacher(meta: dict[str, Any]) -> nn.Module:
    """A fresh model of the described architecture (weights are loaded by the caller)."""
    return build_network(str(meta.get("arch", "canvas-cnn")),
                         in_channels=int(meta.get("in_channels", 1)),
                         num_classes=int(meta["num_classes"]), widths=tuple(meta.get("widths", ())),
                         norm=str(meta.get("norm", "batch")), kwargs=dict(meta.get("kwargs", {})),
                         key="teacher checkpoint arch")


def save_teacher(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    blob = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays, **{_META: blob})


def load_teacher(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data[_META]).decode())
            state = {k: torch.from_numpy(data[k].copy()) for k in data.files if k != _META}
        model = build_teacher(meta)
        model.load_state_dict(state, strict=True)
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise ValueError(f"teacher checkpoint {path} is unreadable: {exc}") from exc
    return model.eval(), meta
