"""Two-digit canvases: the FedSA small-scale protocol (design notes §3.1, not shipped).

A canvas is 1×14×28 = [left digit | right digit], each an MNIST-5k digit
average-pooled 2×2 to 14×14 (already z-scored). The student's new task is the
LEFT digit (10-way). Six teacher nodes each hold a disjoint share of the
training digits, paired within the share into 2×|share| canvases, and a
teacher trained for its own task: three look at the left digit (relevant),
three at the right digit (distractors). Saliency can only tell teachers apart
when their evidence is spatially apart (pitfall 2), hence left vs right.

Every node computes the same split from the run's seed, so no data moves.

`fedsa.canvas = "color32"` builds the same protocol from generated coloured
patterns (methods/common/synthetic_images.py): 3×32×16 halves, so a canvas is
3×32×32 (CIFAR-shaped, for ResNets), nothing downloaded.

Besides the probe set, the server holds a VALIDATION set carved from the
training digits (`val-per-class` per class, paired like the probe): every
choice of hyper-parameter reads it, never the test canvases.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from methods.base import RunSpec
from methods.common.datasets import ArrayDataset, load_mnist5k
from methods.common.partition import partition
from methods.common.synthetic_images import color_pattern_classes
from methods.config import ConfigError

# Partition i of the federation hosts teacher task TEACHER_TASKS[i % 6].
TEACHER_TASKS = ("L:0-4", "L:5-9", "L:parity", "R:0-4", "R:5-9", "R:parity")
NUM_CLASSES = 10  # the student's target task: the left digit
CANVAS_SHAPES = {"mnist5k": (1, 14, 28), "color32": (3, 32, 32)}  # C×H×W of a canvas
COLOR32_TRAIN_PER_CLASS, COLOR32_TEST_PER_CLASS = 120, 50  # generated halves per class
# Pixel noise and shifts that leave 5 labels per class far from enough (nearest class mean
# of the probe: ~0.5 on the left halves, of all node halves: ~0.9), as with the digits.
COLOR32_NOISE, COLOR32_SHIFT = 2.0, 6


def teacher_task_for(partition_id: int) -> str:
    return TEACHER_TASKS[partition_id % len(TEACHER_TASKS)]


def is_relevant(task: str) -> bool:
    """Ground truth for evaluation only: a left-digit teacher helps the left-digit student."""
    return task.startswith("L:")


@dataclass(frozen=True)
class CanvasSet:
    x: np.ndarray  # float32 N×C×H×W: N×1×14×28 (mnist5k) or N×3×32×32 (color32)
    left: np.ndarray  # int64 N, digit in the left half
    right: np.ndarray  # int64 N, digit in the right half

    def __len__(self) -> int:
        return len(self.left)

    def target(self) -> ArrayDataset:
        """The student's task: the left digit, 10 classes."""
        return ArrayDataset(self.x, self.left, NUM_CLASSES, "fedsa-canvas")

    def task(self, name: str) -> ArrayDataset:
        """A teacher's own labelled data: "L:0-4" = left digits 0-4 as 5 classes, etc."""
        side, _, kind = name.partition(":")
        if side not in ("L", "R") or kind not in ("0-4", "5-9", "parity"):
            raise ValueError(f"unknown teacher task {name!r}; known: {', '.join(TEACHER_TASKS)}")
        digit = self.left if side == "L" else self.right
        if kind == "parity":
            return ArrayDataset(self.x, digit % 2, 2, f"canvas-{name}")
        keep = digit < 5 if kind == "0-4" else digit >= 5
        labels = digit[keep] - (0 if kind == "0-4" else 5)
        return ArrayDataset(self.x[keep], labels.astype(np.int64), 5, f"canvas-{name}")


@dataclass(frozen=True)
class CanvasSplit:
    test: CanvasSet  # the target test set (server; read for final figures only)
    probe: CanvasSet  # the server's few labelled canvases
    nodes: tuple[CanvasSet, ...]  # one per partition: a teacher node's private canvases
    val: CanvasSet | None = None  # the server's validation canvases, from training digits


def pool_digits(x: np.ndarray) -> np.ndarray:
    """N×1×28×28 → N×1×14×14 by 2×2 average pooling (linear, so z-scoring survives)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5)).astype(np.float32)


def pair_digits(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, copies: int) -> CanvasSet:
    """Each digit appears `copies` times on the left, beside a random digit of the same pool."""
    lefts = np.tile(np.arange(len(y)), copies)
    rights = np.concatenate([rng.permutation(len(y)) for _ in range(copies)])
    canvas = np.concatenate([x[lefts], x[rights]], axis=3)  # side by side: W doubles
    return CanvasSet(np.ascontiguousarray(canvas), y[lefts], y[rights])


def _stratified_take(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    return np.sort(np.concatenate(picks))


def _halves(canvas: str) -> tuple[ArrayDataset, np.ndarray, ArrayDataset, np.ndarray]:
    """(train halves, their images, test halves, their images) of a canvas kind."""
    if canvas == "color32":
        shape = (3, 32, 16)  # two side by side: 3×32×32
        make = functools.partial(color_pattern_classes, num_classes=NUM_CLASSES, shape=shape,
                                 noise=COLOR32_NOISE, shift=COLOR32_SHIFT)
        train = make(COLOR32_TRAIN_PER_CLASS, seed=1)
        test = make(COLOR32_TEST_PER_CLASS, seed=2)
        return train, train.x, test, test.x
    train, test = load_mnist5k("train"), load_mnist5k("test")  # 4,000 / 1,000 (100 per class)
    return train, pool_digits(train.x), test, pool_digits(test.x)


@functools.lru_cache(maxsize=4)
def _split(seed: int, probe_per_class: int, num_partitions: int, scheme: str, alpha: float,
           classes_per_client: int, canvas: str = "mnist5k", val_per_class: int = 0) -> CanvasSplit:
    train, train_x, test, test_x = _halves(canvas)
    rng = np.random.default_rng([seed, 7])
    probe_idx = _stratified_take(train.y, probe_per_class, rng)
    rest = np.setdiff1d(np.arange(len(train.y)), probe_idx)
    val = None
    if val_per_class:  # its own generator: val-per-class = 0 keeps the split of before
        val_rng = np.random.default_rng([seed, 13])
        val_idx = rest[_stratified_take(train.y[rest], val_per_class, val_rng)]
        rest = np.setdiff1d(rest, val_idx)
        val = pair_digits(train_x[val_idx], train.y[val_idx], val_rng, 1)
    shards = partition(train.y[rest], scheme=scheme, num_clients=num_partitions, seed=seed,
                       alpha=alpha, classes_per_client=classes_per_client)
    nodes = tuple(
        pair_digits(train_x[rest[s]], train.y[rest[s]], np.random.default_rng([seed, 11, i]), 2)
        for i, s in enumerate(shards)
    )
    # The test canvases are paired with a fixed generator: one target test set for every seed.
    test_set = pair_digits(test_x, test.y, np.random.default_rng(0), 1)
    probe = pair_digits(train_x[probe_idx], train.y[probe_idx], rng, 1)
    return CanvasSplit(test_set, probe, nodes, val)


def canvas_split(spec: RunSpec, num_partitions: int | None = None) -> CanvasSplit:
    """The run's canvases; `num_partitions` defaults to the federation size."""
    cfg, data = spec.method, spec.data
    if cfg.canvas == "mnist5k" and data.dataset != "mnist5k":
        raise ConfigError(f"fedsa builds its canvases from mnist5k, not {data.dataset!r} "
                          "(fedsa.canvas = color32 generates 3×32×32 ones instead)")
    return _split(spec.federation.seed, cfg.probe_per_class,
                  num_partitions or spec.federation.num_clients, data.partitioner,
                  data.dirichlet_alpha, data.classes_per_client, cfg.canvas, cfg.val_per_class)
