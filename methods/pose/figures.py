"""Procedural multi-person images: stick figures with 14 COCO-style keypoints.

The small-scale stand-in for COCO of the design notes §3(c): 64×64 RGB images with
1–4 people whose height h is log-uniform in a camera's range, random joint angles
within anatomical limits, limbs drawn as anti-aliased lines of width ∝ h, an
ellipse head, one colour per person, a smooth-noise background, and occlusion by
drawing order. Each person's ground truth is its 14 keypoints, their in-frame
visibility and h.

A sample travels through the shared loop as one float32 array (4×64×64): the three
image channels, and a fourth "annotation plane" whose first entries hold the
people (`pack` / `unpack`), so per-person targets follow the image through batching.
"""

from __future__ import annotations

import numpy as np

from methods.common.poses import NUM_KEYPOINTS, random_pose

SIZE = 64
MAX_PEOPLE = 4
LIMBS = ((1, 2), (1, 3), (2, 4), (4, 6), (3, 5), (5, 7), (1, 8), (1, 9), (8, 9), (2, 3),
         (8, 10), (10, 12), (9, 11), (11, 13))
# One packed person: present, h, 14 (x, y), 14 visibilities.
PERSON_FIELDS = 2 + 2 * NUM_KEYPOINTS + NUM_KEYPOINTS


def _grid(window: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = window
    ys, xs = np.mgrid[rows, cols].astype(np.float32) + 0.5  # pixel centers
    return xs, ys


def _segment_coverage(a: np.ndarray, b: np.ndarray, width: float, xs: np.ndarray,
                      ys: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a line of `width` pixels from a to b at pixels (xs, ys)."""
    d = b - a
    t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / max(float(d @ d), 1e-6), 0, 1)
    dist = np.hypot(xs - a[0] - t * d[0], ys - a[1] - t * d[1])
    return np.clip(width / 2 + 0.5 - dist, 0.0, 1.0)


def _head_coverage(center: np.ndarray, h: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    rx, ry = max(0.08 * h, 0.6), max(0.1 * h, 0.7)
    r = np.hypot((xs - center[0]) / rx, (ys - center[1]) / ry)
    return np.clip((1.0 - r) * min(rx, ry) + 0.5, 0.0, 1.0)


def _window(pose: np.ndarray, margin: float) -> tuple[slice, slice]:
    """The pixels a person can touch (drawing only there is ~4x faster than everywhere)."""
    lo = np.clip(np.floor(pose.min(0) - margin), 0, SIZE).astype(int)
    hi = np.clip(np.ceil(pose.max(0) + margin), 0, SIZE).astype(int)
    return slice(lo[1], hi[1]), slice(lo[0], hi[0])


def _background(rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import zoom  # scikit-learn's dependency: smooth, cheap upsampling

    coarse = rng.uniform(0.0, 0.45, size=(3, 5, 5))
    smooth = zoom(coarse, (1, SIZE / 5, SIZE / 5), order=1)[:, :SIZE, :SIZE]
    return smooth + rng.normal(0, 0.04, size=(3, SIZE, SIZE))


def render_image(rng: np.random.Generator, height_range: tuple[float, float],
                 min_width: float = 0.9,
                 ) -> tuple[np.ndarray, list[tuple[float, np.ndarray, np.ndarray]]]:
    """One image (3×64×64 in [0,1]) and its people [(h, keypoints 14×2, visible 14)].

    Limbs are max(min_width, 0.06·h) pixels wide (anti-aliased coverage, so sub-pixel
    widths are drawn faint); 0 keeps width ∝ h at every size.
    """
    image = _background(rng)
    people = []
    lo, hi = np.log(height_range[0]), np.log(height_range[1])
    for _ in range(rng.integers(1, MAX_PEOPLE + 1)):
        h = float(np.exp(rng.uniform(lo, hi)))
        pose = random_pose(h, rng)
        pose += rng.uniform(4, SIZE - 4, size=2) - pose.mean(0)  # the body's middle in frame
        colour = rng.uniform(0.55, 1.0, size=3) * rng.permutation([1.0, rng.uniform(0.2, 1), 0.2])
        width = max(min_width, 0.06 * h)
        window = _window(pose, 0.12 * h + width + 1)
        xs, ys = _grid(window)
        cover = _head_coverage(pose[:2].mean(0), h, xs, ys)
        for a, b in LIMBS:
            cover = np.maximum(cover, _segment_coverage(pose[a], pose[b], width, xs, ys))
        patch = image[:, window[0], window[1]]  # a view: later people occlude
        patch[:] = patch * (1 - cover) + colour[:, None, None] * cover
        visible = ((pose >= 0) & (pose < SIZE)).all(1)
        people.append((h, pose, visible))
    return np.clip(image, 0, 1).astype(np.float32), people


def pack(people: list[tuple[float, np.ndarray, np.ndarray]]) -> np.ndarray:
    """The annotation plane (64×64) that carries `people` beside the image."""
    flat = np.zeros(SIZE * SIZE, np.float32)
    for p, (h, pose, visible) in enumerate(people[:MAX_PEOPLE]):
        flat[p * PERSON_FIELDS:(p + 1) * PERSON_FIELDS] = np.concatenate(
            [[1.0, h], pose.reshape(-1), visible.astype(np.float32)])
    return flat.reshape(SIZE, SIZE)


def unpack(planes):
    """(present N×P, h N×P, keypoints N×P×14×2, visible N×P×14) from N×64×64 planes.

    Works on numpy arrays and torch tensors alike (only reshapes and slices).
    """
    rows = planes.reshape(planes.shape[0], -1)[:, :MAX_PEOPLE * PERSON_FIELDS]
    rows = rows.reshape(planes.shape[0], MAX_PEOPLE, PERSON_FIELDS)
    keypoints = rows[..., 2:2 + 2 * NUM_KEYPOINTS].reshape(*rows.shape[:2], NUM_KEYPOINTS, 2)
    return rows[..., 0] > 0.5, rows[..., 1], keypoints, rows[..., 2 + 2 * NUM_KEYPOINTS:] > 0.5


def make_images(count: int, height_range: tuple[float, float], seed: int,
                min_width: float = 0.9) -> np.ndarray:
    """`count` packed samples (N×4×64×64 float32): image channels centred on 0, then annotations."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, 4, SIZE, SIZE), np.float32)
    for i in range(count):
        image, people = render_image(rng, height_range, min_width)
        out[i, :3] = (image - 0.5) / 0.25
        out[i, 3] = pack(people)
    return out
