"""A teacher checkpoint on a node's disk (`fedvault node --teacher CKPT`).

One .npz: the teacher's state dict plus a JSON description (task, widths,
classes, norm). Read with allow_pickle=False: a checkpoint is data, never code.
It is read on its node only; nothing in it is ever sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from methods.fedsa.nets import CanvasCNN

_META = "__teacher__"


def teacher_meta(model: CanvasCNN, task: str, norm: str, widths: tuple[int, ...]) -> dict[str, Any]:
    return {"task": task, "widths": list(widths), "norm": norm,
            "num_classes": model.head[-1].out_features}


def build_teacher(meta: dict[str, Any]) -> CanvasCNN:
    return CanvasCNN(tuple(meta["widths"]), int(meta["num_classes"]), str(meta["norm"]))


def save_teacher(path: str | Path, model: CanvasCNN, meta: dict[str, Any]) -> None:
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    blob = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays, **{_META: blob})


def load_teacher(path: str | Path) -> tuple[CanvasCNN, dict[str, Any]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data[_META]).decode())
            state = {k: torch.from_numpy(data[k].copy()) for k in data.files if k != _META}
        model = build_teacher(meta)
        model.load_state_dict(state, strict=True)
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise ValueError(f"teacher checkpoint {path} is unreadable: {exc}") from exc
    return model.eval(), meta
