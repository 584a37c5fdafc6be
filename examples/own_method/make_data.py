"""Write a small image folder of my own: data/train/<digit>/*.png and data/test/<digit>/*.png.

The images are scikit-learn's bundled 8×8 handwritten digits (1,797 of them), scaled to
28×28 grayscale PNGs, so the example runs offline. A real user points `data.root` at their
own folder of the same layout instead: one subdirectory per class, the class names sorted
in label order.

    python make_data.py [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data")
    out = parser.parse_args().out
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; remove it first")
    digits = load_digits()
    pixels = (digits.images / 16.0 * 255.0).round().astype(np.uint8)  # 0..16 → 0..255
    splits = train_test_split(pixels, digits.target, test_size=0.25, random_state=0,
                              stratify=digits.target)
    for split, images, labels in (("train", splits[0], splits[2]), ("test", splits[1], splits[3])):
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = out / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).resize((28, 28), Image.Resampling.BILINEAR).save(folder / f"{i:04d}.png")
        print(f"{split}: {len(labels)} images in {out / split}")


if __name__ == "__main__":
    main()
