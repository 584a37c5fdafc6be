"""Example images of a DynaST run: per variant, rows of
map | exemplar | warped exemplar | output | ground truth (issue 8: a person would rather
look at them than read numbers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from methods.common.datasets import ArrayDataset
from methods.dynast.dolls import NUM_LABELS, split_pair

ROWS = 6
ZOOM = 4
# One colour per part label (background dark grey), fixed so every figure reads the same.
PALETTE = np.vstack([[0.15, 0.15, 0.15],
                     np.random.default_rng(7).uniform(0.2, 1.0, size=(NUM_LABELS - 1, 3))])


def _hwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).clamp(0, 1).numpy()


@torch.no_grad()
def panels(model: nn.Module, pairs: torch.Tensor) -> np.ndarray:
    """(rows·32, 5·32, 3) image: map | exemplar | warped exemplar | output | ground truth."""
    model.eval()
    out = model(pairs)
    x, s, r, _ = split_pair(pairs)
    columns = [PALETTE[s.argmax(1).numpy()], _hwc(r), _hwc(out.full_warp), _hwc(out.output), _hwc(x)]
    rows = np.concatenate(columns, axis=2)  # (N, 32, 160, 3)
    return rows.reshape(-1, rows.shape[2], 3)


def write_examples(models: dict[str, nn.Module], test: ArrayDataset, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    pairs = torch.tensor(test.x[np.linspace(0, len(test) - 1, ROWS).astype(int)])
    for variant, model in models.items():
        picture = np.kron(panels(model, pairs), np.ones((ZOOM, ZOOM, 1)))
        plt.imsave(folder / f"{variant}.png", picture)
