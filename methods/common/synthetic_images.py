"""Generated coloured-pattern classes: CIFAR-shaped images with no download.

Tests and small protocols need colour images of a known shape (3×32×32 like CIFAR)
that a small network can learn but not trivially. Each class is a fixed prototype —
a class colour painted on a blocky random mask, plus a low-frequency texture —
drawn once from `prototype_seed`, so every split and every seed sees the same
classes. A sample is its class prototype shifted by up to `shift` pixels, scaled in
brightness, plus Gaussian pixel noise (`noise`); the seed draws only these.
"""

from __future__ import annotations

import numpy as np

from methods.common.datasets import ArrayDataset

BLOCK = 8  # prototype resolution: one random value per BLOCK×BLOCK pixels


def _blocky(rng: np.random.Generator, channels: int, h: int, w: int) -> np.ndarray:
    low = rng.normal(size=(channels, -(-h // BLOCK), -(-w // BLOCK)))
    return np.kron(low, np.ones((1, BLOCK, BLOCK)))[:, :h, :w]


def color_prototypes(num_classes: int, shape: tuple[int, int, int],
                     prototype_seed: int = 0) -> np.ndarray:
    """num_classes × C × H × W: the classes' noiseless images."""
    channels, h, w = shape
    rng = np.random.default_rng([prototype_seed, 32])
    protos = []
    for _ in range(num_classes):
        colour = rng.uniform(-1.0, 1.0, size=(channels, 1, 1))
        mask = (_blocky(rng, 1, h, w) > 0).astype(np.float64)
        protos.append(colour * mask + 0.5 * _blocky(rng, channels, h, w))
    return np.stack(protos)


def color_pattern_classes(per_class: int, num_classes: int = 10,
                          shape: tuple[int, int, int] = (3, 32, 32), *, seed: int,
                          noise: float = 1.0, shift: int = 3,
                          prototype_seed: int = 0) -> ArrayDataset:
    """per_class samples of each class, ordered by class (float32 N×C×H×W, int64 labels)."""
    protos = color_prototypes(num_classes, shape, prototype_seed)
    rng = np.random.default_rng([seed, 33])
    y = np.repeat(np.arange(num_classes, dtype=np.int64), per_class)
    x = np.empty((len(y), *shape), dtype=np.float32)
    for i, label in enumerate(y):
        dy, dx = rng.integers(-shift, shift + 1, size=2)
        image = np.roll(protos[label], (int(dy), int(dx)), axis=(1, 2))
        x[i] = rng.uniform(0.7, 1.3) * image + rng.normal(0.0, noise, size=shape)
    return ArrayDataset(x, y, num_classes, "color-patterns")
