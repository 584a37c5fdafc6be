"""Example images of a DynaST run: per variant, rows of
map | exemplar | warped exemplar | output | ground truth (a person would rather
look at them than read numbers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from methods.common.datasets import ArrayDataset
from methods.common.images import save_grid
from methods.dynast.dolls import NUM_LABELS, split_pair

ROWS = 6
ZOOM = 4
# One colour per part label (background dark grey), fixed so every figure reads the same.
PALETTE = np.vstack([[0.15, 0.15, 0.15],
                     np.random.default_rng(7).uniform(0.2, 1.0, size=(NUM_LABELS - 1, 3))])


def _hwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).clamp(0, 1).numpy()


@torch.no_grad()
def panels(model: nn.Module, pairs: torch.Tensor) -> list[list[np.ndarray]]:
    """One row per pair: map | exemplar | warped exemplar | output | ground truth (H×W×3)."""
    model.eval()
    out = model(pairs)
    x, s, r, _ = split_pair(pairs)
    columns = [PALETTE[s.argmax(1).numpy()], _hwc(r), _hwc(out.full_warp), _hwc(out.output), _hwc(x)]
    return [list(row) for row in zip(*columns)]


def write_examples(models: dict[str, nn.Module], test: ArrayDataset, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pairs = torch.tensor(test.x[np.linspace(0, len(test) - 1, ROWS).astype(int)])
    for variant, model in models.items():
        save_grid(panels(model, pairs), folder / f"{variant}.png", scale=ZOOM)
