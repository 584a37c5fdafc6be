"""Content photos, style families and the (content, style) pairs nodes train on.

Small-scale stand-in for MS-COCO content and WikiArt style (design notes §6(c), not shipped),
all offline: content = 64×64 crops of scikit-learn's sample photo china.jpg (halved to
320×213) with flips and colour jitter; style = six families: crops of flower.jpg and five
procedural coloured textures (stripes at several angles and frequencies, checkers, dots,
smooth noise, oriented Gabor strokes), each drawn with its own random palette.

Train crops come from the left 70% of each photo, the server's test crops from the right
30%, so no test image is ever a node's. A pair travels through the shared loop as one
float32 array (6×S×S: content RGB, then style RGB, values in [0, 1]); its label is the
style family, which `node_partition` uses to give each node its own families (non-IID).
"""

from __future__ import annotations

import functools

import numpy as np

FAMILIES = ("flower-photo", "stripes", "checkers", "dots", "noise", "strokes")
TRAIN_FRACTION = 0.7  # of each photo's width; the rest is the held-out test region


@functools.lru_cache(maxsize=2)
def sample_photo(name: str) -> np.ndarray:
    """scikit-learn's bundled photo at half size, H×W×3 float32 in [0, 1] (read-only)."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    image = Image.fromarray(load_sample_image(name))
    image = image.resize((image.width // 2, image.height // 2), Image.BILINEAR)
    photo = np.asarray(image, dtype=np.float32) / 255.0
    photo.flags.writeable = False
    return photo


def photo_crop(photo: np.ndarray, size: int, split: str, rng: np.random.Generator) -> np.ndarray:
    """A random size×size crop (3×S×S) from the split's region of the photo."""
    height, width = photo.shape[:2]
    cut = int(width * TRAIN_FRACTION)
    lo, hi = (0, cut - size) if split == "train" else (cut, width - size)
    x0, y0 = rng.integers(lo, hi + 1), rng.integers(0, height - size + 1)
    return np.ascontiguousarray(photo[y0:y0 + size, x0:x0 + size].transpose(2, 0, 1))


def jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal flip, brightness, contrast and saturation (content augmentation)."""
    if rng.random() < 0.5:
        image = image[:, :, ::-1]
    grey = image.mean(0, keepdims=True)
    image = grey + rng.uniform(0.7, 1.3) * (image - grey)  # saturation
    image = image.mean() + rng.uniform(0.8, 1.2) * (image - image.mean())  # contrast
    return np.clip(image + rng.uniform(-0.1, 0.1), 0.0, 1.0)


def _palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    while np.abs(a - b).sum() < 0.8:  # two clearly different colours
        b = rng.uniform(0, 1, 3)
    return a, b


def _smooth_noise(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Value noise: a cells×cells random grid, bicubically upsampled to size×size, in [0, 1]."""
    from PIL import Image

    grid = (rng.uniform(0, 255, (cells, cells))).astype(np.uint8)
    up = np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), dtype=np.float32)
    return (up - up.min()) / max(up.max() - up.min(), 1e-6)


def texture(family: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One procedural texture of `family` (3×S×S): a scalar pattern in [0, 1] mixed between
    two random colours."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.08, 0.35), rng.uniform(0, 2 * np.pi)
    u = xs * np.cos(angle) + ys * np.sin(angle)
    v = -xs * np.sin(angle) + ys * np.cos(angle)
    if family == "stripes":
        pattern = 0.5 + 0.5 * np.sin(freq * u + phase)
    elif family == "checkers":
        pattern = ((np.floor(freq * u / np.pi) + np.floor(freq * v / np.pi)) % 2).astype(np.float32)
    elif family == "dots":
        pattern = np.clip(1.5 - 1.8 * np.hypot(np.sin(freq * u / 2), np.sin(freq * v / 2)), 0, 1)
    elif family == "noise":
        pattern = _smooth_noise(size, int(rng.integers(4, 12)), rng)
    elif family == "strokes":  # oriented Gabor-like strokes over smooth noise along the strokes
        pattern = 0.5 + 0.5 * np.sin(freq * u + 6 * _smooth_noise(size, 5, rng)) * np.exp(
            -((np.sin(0.05 * v + phase)) ** 2))
    else:
        raise ValueError(f"unknown texture family {family!r}")
    a, b = _palette(rng)
    image = a[:, None, None] * pattern[None] + b[:, None, None] * (1 - pattern[None])
    return image.astype(np.float32)


def style_image(family: int, size: int, split: str, rng: np.random.Generator) -> np.ndarray:
    name = FAMILIES[family]
    if name == "flower-photo":
        return photo_crop(sample_photo("flower.jpg"), size, split, rng)
    return texture(name, size, rng)


@functools.lru_cache(maxsize=8)
def style_pairs(split: str, count_per_family: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pairs N×6×S×S float32, family labels N int64), read-only; deterministic in the seed.

    Train: `count_per_family` pairs per family, grouped by family. Test: `count_per_family`
    is the total and the families take turns, so every family is evaluated.
    """
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    china = sample_photo("china.jpg")
    total = count_per_family * len(FAMILIES) if split == "train" else count_per_family
    if split == "train":
        families = np.repeat(np.arange(len(FAMILIES)), count_per_family)
    else:
        families = np.arange(total) % len(FAMILIES)
    pairs = np.empty((total, 6, size, size), dtype=np.float32)
    for i, family in enumerate(families):
        content = photo_crop(china, size, split, rng)
        pairs[i, :3] = jitter(content, rng) if split == "train" else content
        pairs[i, 3:] = style_image(int(family), size, split, rng)
    labels = families.astype(np.int64)
    pairs.flags.writeable = False
    labels.flags.writeable = False
    return pairs, labels


def family_shards(labels: np.ndarray, num_nodes: int) -> list[np.ndarray]:
    """Node i holds every pair of the families f with f mod n = i (its own style families)."""
    return [np.flatnonzero(labels % num_nodes == i) for i in range(num_nodes)]
