"""One-class MNIST pools with labeled normals, labeled anomalies and contaminated unlabeled data.

The protocol of the official code (datasets/datasets.py::get_subclass_with_mixed_dataset,
Wang et al., ECCV 2022, §4.1): of N normal images 5% are labeled; each of the C−1 other
classes gives round(N·0.05/0.95/(C−1)) labeled anomalies; the unlabeled set holds the
remaining normals plus anomalies at contamination ratio ρ, labels hidden.

Federated mapping: the normals and labeled anomalies are split evenly over the clients,
and client i of n draws its contamination at its own rate ρ_i = ρ·(1 + s·(2i/(n−1) − 1))
(mean ρ), so clients differ in how polluted their unlabeled data are. A client's label
array carries only what it may know — its *role* (labeled normal, labeled anomaly,
unlabeled) — never the hidden class of an unlabeled image.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.nn import functional as F

from methods.common.datasets import ArrayDataset, load_mnist5k

LABELED_NORMAL, LABELED_ANOMALY, UNLABELED = 0, 1, 2
ROLE_NAMES = ("labeled-normal", "labeled-anomaly", "unlabeled")
DIGIT_CLASSES = 10  # MNIST's: what normal-classes name


@functools.lru_cache(maxsize=4)
def pooled_mnist(split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-5k (z-scored) average-pooled to size×size, and its digit labels (read-only)."""
    data = load_mnist5k(split)
    x = torch.from_numpy(np.array(data.x))
    if size != x.shape[-1]:
        x = F.adaptive_avg_pool2d(x, size)
    pixels = x.numpy().astype(np.float32)
    pixels.flags.writeable = False
    return pixels, data.y


def pool_roles(digits: np.ndarray, normal_class: int, seed: int, labeled_normal_fraction: float,
               labeled_anomaly_fraction: float,
               labeled_anomaly_classes: tuple[int, ...] = ()) -> np.ndarray:
    """The role of every training image; independent of ρ so all ρ share one labeled set.
    The labeled anomalies come from `labeled_anomaly_classes` (() = every other digit)."""
    rng = np.random.default_rng([seed, normal_class, 1])
    roles = np.full(len(digits), UNLABELED, dtype=np.int64)
    normals = rng.permutation(np.flatnonzero(digits == normal_class))
    roles[normals[: max(1, round(len(normals) * labeled_normal_fraction))]] = LABELED_NORMAL
    others = [c for c in np.unique(digits) if c != normal_class
              and (not labeled_anomaly_classes or c in labeled_anomaly_classes)]
    frac = labeled_anomaly_fraction
    per_class = max(1, round(len(normals) * frac / (1 - frac) / len(others)))
    for cls in others:
        roles[rng.permutation(np.flatnonzero(digits == cls))[:per_class]] = LABELED_ANOMALY
    return roles


def client_rates(contamination: float, spread: float, num_clients: int) -> list[float]:
    """ρ_i = ρ·(1 + s·(2i/(n−1) − 1)): evenly spread around ρ, mean exactly ρ."""
    if num_clients == 1:
        return [contamination]
    return [contamination * (1 + spread * (2 * i / (num_clients - 1) - 1)) for i in range(num_clients)]


def client_shards(digits: np.ndarray, roles: np.ndarray, *, normal_class: int, contamination: float,
                  spread: float, num_clients: int, seed: int,
                  labeled_only: bool = False) -> list[np.ndarray]:
    """Each client's indices: its normals, labeled anomalies and ρ_i-contamination.

    The contamination draw does not depend on ρ (client i takes the first m_i of a fixed
    permutation), so a client's ρ=0.2 pool contains its ρ=0.1 pool: only the pollution
    changes between the contamination levels of one seed.
    """
    rng = np.random.default_rng([seed, normal_class, 2])
    normal = digits == normal_class
    normal_parts = np.array_split(rng.permutation(np.flatnonzero(normal)), num_clients)
    labeled_anomalies = rng.permutation(np.flatnonzero(roles == LABELED_ANOMALY))
    candidates = rng.permutation(np.flatnonzero(~normal & (roles == UNLABELED)))
    candidate_parts = np.array_split(candidates, num_clients)
    shards = []
    for i, rate in enumerate(client_rates(contamination, spread, num_clients)):
        unlabeled_normals = normal_parts[i][roles[normal_parts[i]] == UNLABELED]
        count = round(len(unlabeled_normals) * rate / (1 - rate))
        parts = [normal_parts[i], labeled_anomalies[i::num_clients], candidate_parts[i][:count]]
        shard = np.sort(np.concatenate(parts))
        if labeled_only:
            shard = shard[roles[shard] != UNLABELED]
        shards.append(shard)
    return shards


@functools.lru_cache(maxsize=16)
def training_pool(normal_class: int, seed: int, size: int, labeled_normal_fraction: float,
                  labeled_anomaly_fraction: float,
                  labeled_anomaly_classes: tuple[int, ...] = ()) -> ArrayDataset:
    """All MNIST-5k training images with their roles as labels (clients take shards)."""
    x, digits = pooled_mnist("train", size)
    roles = pool_roles(digits, normal_class, seed, labeled_normal_fraction, labeled_anomaly_fraction,
                       labeled_anomaly_classes)
    return ArrayDataset(x, roles, len(ROLE_NAMES), f"mnist5k-oneclass-{normal_class}")


@functools.lru_cache(maxsize=16)
def one_class_test(normal_class: int, size: int) -> ArrayDataset:
    """MNIST-5k's test split labelled 1 = normal (the normal digit), 0 = anomaly."""
    x, digits = pooled_mnist("test", size)
    labels = (digits == normal_class).astype(np.int64)
    return ArrayDataset(x, labels, 2, f"mnist5k-oneclass-{normal_class}-test")
