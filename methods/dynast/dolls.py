"""Procedural paper dolls: one textured figure in two poses (design notes §7(c), not shipped).

The small-scale stand-in for DeepFashion's same-person/other-pose pairs (DynaST's
supervised self_ref=1 setting): an identity (per-part colours, texture period and
phase, background colour) is drawn in pose P1 (ground truth X with its 11-part map S)
and in pose P2 (exemplar R with map S_R). Poses come from the random poses of
methods/common/poses.py; every body part is a thick capsule whose texture lives in
the part's own (along, across) coordinates, so it moves with the limb and a correct
warp can carry it from R to X.

Texture families (what distinguishes clients, non-IID): 0 stripes across the limb,
1 checkers, 2 a smooth two-colour gradient along the limb.

A pair travels through the shared loop as one float32 array (30×32×32):
X (3) | S one-hot (12: background + 11 parts) | R (3) | S_R (12); images in [0, 1].
"""

from __future__ import annotations

import functools

import numpy as np

from methods.common.poses import random_pose

SIZE = 32
# Capsules (keypoint a, keypoint b, radius in units of the figure height h), in drawing
# order: later parts occlude earlier ones. Keypoints follow methods/common/poses.py;
# -1 stands for the mid-hip point.
PARTS = (
    ("torso", 1, -1, 0.11), ("hips", 8, 9, 0.07),
    ("l_thigh", 8, 10, 0.055), ("r_thigh", 9, 11, 0.055),
    ("l_shin", 10, 12, 0.045), ("r_shin", 11, 13, 0.045),
    ("head", 0, 1, 0.085),
    ("l_upper_arm", 2, 4, 0.045), ("r_upper_arm", 3, 5, 0.045),
    ("l_forearm", 4, 6, 0.04), ("r_forearm", 5, 7, 0.04),
)
NUM_LABELS = len(PARTS) + 1  # + background
FAMILIES = ("stripes", "checkers", "gradient")
PAIR_CHANNELS = 2 * (3 + NUM_LABELS)


def random_identity(family: int, rng: np.random.Generator) -> dict:
    """What stays fixed between the two poses of one doll."""
    return {"family": family, "colours": rng.uniform(0.05, 0.95, size=(len(PARTS), 2, 3)),
            "period": rng.uniform(2.5, 5.0, size=len(PARTS)),
            "phase": rng.uniform(0, 2 * np.pi, size=len(PARTS)),
            "background": rng.uniform(0.3, 0.7) * np.ones(3) + rng.normal(0, 0.05, 3)}


def _texture(family: int, along: np.ndarray, across: np.ndarray, length: float,
             period: float, phase: float) -> np.ndarray:
    """Mixing weight (0..1) of a part's second colour at part coordinates (pixels)."""
    wave = 2 * np.pi / period
    if family == 0:
        return (np.sin(wave * along + phase) > 0).astype(np.float32)
    if family == 1:
        return (np.sin(wave * along + phase) * np.sin(wave * across) > 0).astype(np.float32)
    return np.clip(along / max(length, 1e-6), 0, 1)


def render(identity: dict, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image 3×32×32 in [0, 1], part labels 32×32 with 0 = background) of a posed doll."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    image = np.broadcast_to(identity["background"][:, None, None], (3, SIZE, SIZE)).copy()
    labels = np.zeros((SIZE, SIZE), np.int64)
    h = float(pose[:, 1].max() - pose[:, 1].min())
    mid_hip = pose[8:10].mean(0)
    for part, (_, ia, ib, radius) in enumerate(PARTS):
        a = pose[ia] if ia >= 0 else mid_hip
        b = pose[ib] if ib >= 0 else mid_hip
        d = b - a
        length = float(np.hypot(*d))
        unit = d / max(length, 1e-6)
        rel_x, rel_y = xs - a[0], ys - a[1]
        along = rel_x * unit[0] + rel_y * unit[1]
        across = rel_x * -unit[1] + rel_y * unit[0]
        t = np.clip(along, 0, length)
        inside = np.hypot(rel_x - t * unit[0], rel_y - t * unit[1]) <= radius * h
        mix = _texture(identity["family"], along, across, length,
                       identity["period"][part], identity["phase"][part])
        first, second = identity["colours"][part]
        colour = first[:, None, None] * (1 - mix) + second[:, None, None] * mix
        image[:, inside] = colour[:, inside]
        labels[inside] = part + 1
    return np.clip(image, 0, 1).astype(np.float32), labels


def posed(rng: np.random.Generator) -> np.ndarray:
    """A random pose of a figure ≈ 26 px tall, its middle near the image centre."""
    h = rng.uniform(22.0, 27.0)
    pose = random_pose(h, rng)
    return pose + (SIZE / 2 + rng.uniform(-2, 2, size=2)) - pose.mean(0)


def one_hot(labels: np.ndarray) -> np.ndarray:
    return (labels[None] == np.arange(NUM_LABELS)[:, None, None]).astype(np.float32)


def make_pair(identity: dict, rng: np.random.Generator) -> np.ndarray:
    """One packed pair X | S | R | S_R (30×32×32): the same doll in two random poses."""
    x, s = render(identity, posed(rng))
    r, s_r = render(identity, posed(rng))
    return np.concatenate([x, one_hot(s), r, one_hot(s_r)])


def split_pair(batch):
    """(X, S, R, S_R) of a packed N×30×32×32 batch (numpy or torch: slicing only)."""
    c = 3 + NUM_LABELS
    return batch[:, :3], batch[:, 3:c], batch[:, c:c + 3], batch[:, c + 3:]


@functools.lru_cache(maxsize=8)
def make_pairs(families: tuple[int, ...], per_family: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_family` pairs of new identities for each family: (N×30×32×32, family labels), read-only."""
    rng = np.random.default_rng(seed)
    x = np.stack([make_pair(random_identity(f, rng), rng) for f in families for _ in range(per_family)])
    y = np.repeat(np.asarray(families, np.int64), per_family)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y
