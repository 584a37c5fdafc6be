"""Example images as one PNG grid: the image methods (style-gnn, dynast, avatargen) write a
few outputs to the run directory, because a person would rather look than read numbers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def save_grid(rows: Sequence[Sequence[np.ndarray]], path: Path, scale: int = 1,
              gap: int = 0) -> None:
    """rows of H×W×3 images in [0, 1] → one PNG: each row's images side by side, rows
    stacked, `gap` white pixels between them, upscaled `scale`× by nearest neighbour (small
    images stay readable and no pixel is invented)."""
    from PIL import Image

    def spaced(parts: list[np.ndarray], axis: int) -> np.ndarray:
        if gap:
            shape = list(parts[0].shape)
            shape[axis] = gap
            white = np.ones(shape, dtype=np.float32)
            parts = [p for part in parts for p in (part, white)][:-1]
        return np.concatenate(parts, axis=axis)

    lines = [spaced([np.asarray(image, dtype=np.float32) for image in row], 1) for row in rows]
    grid = (np.clip(spaced(lines, 0), 0, 1) * 255).round().astype(np.uint8)
    picture = Image.fromarray(grid)
    picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST).save(path)
