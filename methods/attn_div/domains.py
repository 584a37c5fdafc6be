"""Four source/target domains rendered from real MNIST-5k digits by documented style shifts.

The paper evaluates on PACS / OfficeHome (not available offline); the design notes §2(c)
(not shipped) replace them with four RGB domains built from the bundled MNIST-5k images:

- 0 clean:      the grey digit, white on black.
- 1 inverted:   black digit on a background of a random per-image tint.
- 2 photo:      |photo − digit| over a random crop of scikit-learn's bundled photos
                (china.jpg, flower.jpg), as in MNIST-M.
- 3 distorted:  rotated by U(−35°, 35°), stroke thickened by a 3×3 max filter, Gaussian
                noise σ = 0.2.

Each domain's training images are a disjoint quarter of the 4,000 training digits (so no
digit image appears in two domains); its test images are the 1,000 test digits in its
style. Styling is seeded per (domain, split), independent of the run's seed: every node
and the server render identical pixels.
"""

from __future__ import annotations

import functools

import numpy as np

from methods.common.datasets import MNIST_MEAN, MNIST_STD, ArrayDataset, load_mnist5k

DOMAIN_NAMES = ("clean", "inverted", "photo", "distorted")
_QUARTER = 1000  # 4000 training digits / 4 domains


def _grey_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-5k back in [0, 1]: (N, 28, 28) float32 and labels."""
    data = load_mnist5k(split)
    return np.clip(data.x[:, 0] * MNIST_STD + MNIST_MEAN, 0.0, 1.0), data.y


def _clean(g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.repeat(g[:, None], 3, axis=1)


def _inverted(g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    tint = rng.uniform(0.25, 1.0, size=(len(g), 3, 1, 1))
    return (1.0 - g[:, None]) * tint


@functools.lru_cache(maxsize=1)
def _photos() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    return [np.asarray(img, np.float32) / 255.0 for img in load_sample_images().images]


def _photo(g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    photos, out = _photos(), np.empty((len(g), 3, 28, 28), np.float32)
    for i, digit in enumerate(g):
        photo = photos[rng.integers(len(photos))]
        top, left = rng.integers(0, photo.shape[0] - 84), rng.integers(0, photo.shape[1] - 84)
        # an 84×84 crop averaged 3×3 → 28×28: texture at the digit's scale
        crop = photo[top:top + 84, left:left + 84].reshape(28, 3, 28, 3, 3).mean(axis=(1, 3))
        out[i] = np.abs(crop.transpose(2, 0, 1) - digit[None])
    return out


def _distorted(g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage

    angles = rng.uniform(-35.0, 35.0, size=len(g))
    thick = np.stack([ndimage.maximum_filter(ndimage.rotate(d, a, reshape=False, order=1), size=3)
                      for d, a in zip(g, angles)])
    noisy = thick[:, None] + rng.normal(0.0, 0.2, size=(len(g), 3, 28, 28))
    return np.clip(noisy, 0.0, 1.0)


_STYLES = (_clean, _inverted, _photo, _distorted)


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    import torch

    small = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(rgb.astype(np.float32)), size)
    return small.numpy()


@functools.lru_cache(maxsize=16)
def render_domain(domain: int, split: str, count: int, size: int) -> ArrayDataset:
    """`count` images of `domain` (3×size×size, scaled to [−1, 1]) with their digit labels."""
    grey, labels = _grey_digits(split)
    if split == "train":  # a fixed disjoint quarter per domain
        order = np.random.default_rng(0).permutation(len(labels))
        idx = order[domain * _QUARTER: domain * _QUARTER + count]
    else:
        idx = np.arange(count)
    rng = np.random.default_rng(1000 * domain + (split == "test"))
    rgb = _resize(_STYLES[domain](grey[idx], rng), size)
    x = ((rgb - 0.5) / 0.5).astype(np.float32)
    x.flags.writeable = False
    y = labels[idx].astype(np.int64)
    y.flags.writeable = False
    return ArrayDataset(x, y, 10, f"mnist5k-{DOMAIN_NAMES[domain]}")
