"""Example outputs as a PNG grid: content | style | AdaIN | GNN at each k (issue 8).

A person judges style transfer by looking: every run writes out_dir/examples/grid.png,
one row per held-out (content, style) pair, plus one PNG per row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

UPSCALE = 2  # 64-px images are small on a screen; nearest-neighbour keeps pixels honest
GAP = 2


def _tile_row(images: list[np.ndarray]) -> np.ndarray:
    """3×S×S images in [0, 1] → one S×(n·S + gaps)×3 uint8 row with white gaps."""
    size = images[0].shape[1]
    gap = np.ones((size, GAP, 3), dtype=np.float32)
    parts = []
    for image in images:
        parts += [np.asarray(image, dtype=np.float32).transpose(1, 2, 0), gap]
    row = np.concatenate(parts[:-1], axis=1)
    return (np.clip(row, 0, 1) * 255).round().astype(np.uint8)


def write_examples(out_dir: Path, columns: dict[str, np.ndarray], rows: int) -> list[Path]:
    """columns: name → N×3×S×S images (left to right); writes grid.png and row_<i>.png."""
    from PIL import Image

    folder = Path(out_dir) / "examples"
    folder.mkdir(parents=True, exist_ok=True)
    tiles = [_tile_row([images[i] for images in columns.values()]) for i in range(rows)]
    written = []
    for i, tile in enumerate(tiles):
        path = folder / f"row_{i}.png"
        _save(Image, tile, path)
        written.append(path)
    spacer = np.full((GAP, tiles[0].shape[1], 3), 255, dtype=np.uint8)
    grid = np.concatenate([part for tile in tiles for part in (tile, spacer)][:-1], axis=0)
    _save(Image, grid, folder / "grid.png")
    (folder / "columns.txt").write_text(" | ".join(columns) + "\n")
    return [folder / "grid.png", *written]


def _save(image_module, array: np.ndarray, path: Path) -> None:
    image = image_module.fromarray(array)
    image.resize((image.width * UPSCALE, image.height * UPSCALE), image_module.NEAREST).save(path)
