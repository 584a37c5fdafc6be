"""Who holds which data in the LIRF scenario, and which of the owner's samples form D_r.

Class-level (design notes §3.2, not shipped: D_r = all ~1,200 training images of the
deposit classes): the scenario's partitioner splits the preserved classes over
all nodes and the owner node additionally holds every deposit-class sample, so
D_r is a data owner's whole holding of those classes. Sample-level: the usual
partition of everything; D_r = ids into the owner's own shard.

The retrain baseline (`fedavg-data = "preserved"`) is the same layout with D_r
dropped: every node keeps exactly its preserved samples.

What the owner trains on: D_r alone at the class level (the paper: preserved data is never
used; `anchor-samples` > 0 adds that many of the owner's preserved-class samples, flagged,
our extension); at the sample level D_r plus R, the owner's other samples of D_r's classes, flagged
so that the loss forgets D_r and keeps the classes on R (losses.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from methods.common.datasets import ArrayDataset
from methods.lirf.config import LIRFConfig, parse_sample_ids

Partitioner = Callable[[np.ndarray, int], list[np.ndarray]]


def node_indices(cfg: LIRFConfig, labels: np.ndarray, num_partitions: int,
                 partitioner: Partitioner) -> list[np.ndarray]:
    """Each node's sorted indices into the training set (see the module docstring)."""
    if not 0 <= cfg.owner_partition < num_partitions:
        raise ValueError(f"lirf.owner-partition {cfg.owner_partition} is outside "
                         f"[0, {num_partitions})")
    owner = cfg.owner_partition
    if cfg.level == "sample":
        shards = partitioner(labels, num_partitions)
        if cfg.fedavg_data == "preserved":
            ids = np.asarray(parse_sample_ids(cfg.deposit_samples))
            _check_ids(ids, len(shards[owner]))
            shards[owner] = np.delete(shards[owner], ids)
        return shards
    deposit = np.isin(labels, cfg.deposit_classes)
    preserved = np.flatnonzero(~deposit)
    shards = [preserved[s] for s in partitioner(labels[preserved], num_partitions)]
    if cfg.fedavg_data == "all":
        shards[owner] = np.sort(np.concatenate([shards[owner], np.flatnonzero(deposit)]))
    return shards


def deposit_indices(labels: np.ndarray, *, level: str, classes: Sequence[int] = (),
                    sample_ids: Sequence[int] = (),
                    num_classes: int = 0) -> tuple[np.ndarray, tuple[int, ...]]:
    """(D_r's indices into the owner's data, the deposit classes ḡ keeps).

    Reads labels only. Sample-level deposit classes are the classes present in D_r;
    they must leave some class preserved, whose logits T keeps (g in the objective).
    """
    if level == "class":
        indices = np.flatnonzero(np.isin(labels, list(classes)))
        found = tuple(sorted(int(c) for c in classes))
    else:
        indices = np.asarray(sorted({int(i) for i in sample_ids}), dtype=np.int64)
        _check_ids(indices, len(labels))
        found = tuple(sorted(int(c) for c in np.unique(labels[indices])))
    if num_classes and len(found) >= num_classes:
        raise ValueError(f"the deposit covers all {num_classes} classes; LIRF needs preserved "
                         f"classes (deposit fewer classes, or samples of fewer classes)")
    if not len(indices):
        raise ValueError(f"this node holds no sample of the deposit ({level}-level); is it "
                         f"the owner?")
    return indices, found


def _check_ids(ids: np.ndarray, size: int) -> None:
    if len(ids) and (ids.min() < 0 or ids.max() >= size):
        raise ValueError(f"deposit sample ids must lie in [0, {size}) (the owner's data), "
                         f"got [{ids.min()}, {ids.max()}]")


@dataclass(frozen=True)
class DepositSet(ArrayDataset):
    """A sample-level deposit's training data: batches are (x, y, member), member = in D_r."""

    member: np.ndarray | None = None

    def subset(self, indices) -> DepositSet:
        part = super().subset(indices)
        member = self.member[np.asarray(indices, dtype=np.int64)]
        return DepositSet(part.x, part.y, part.num_classes, part.name, part.class_names, member)

    def to_torch(self):
        import torch
        from torch.utils.data import TensorDataset

        return TensorDataset(torch.tensor(self.x), torch.tensor(self.y), torch.tensor(self.member))


def sample_deposit_set(data: ArrayDataset, deposit: np.ndarray,
                       classes: Sequence[int]) -> DepositSet:
    """D_r (rows flagged member) followed by R: the owner's other samples of D_r's classes."""
    retained = np.setdiff1d(np.flatnonzero(np.isin(data.y, list(classes))), deposit)
    return _flagged(data, deposit, retained)


def anchored_deposit_set(data: ArrayDataset, deposit: np.ndarray, classes: Sequence[int],
                         count: int, rng: np.random.Generator) -> DepositSet:
    """D_r (rows flagged member) followed by `count` of the owner's preserved-class samples
    drawn by `rng` (all of them when it holds fewer): the class level's anchors."""
    preserved = np.flatnonzero(~np.isin(data.y, list(classes)))
    if not len(preserved):
        raise ValueError("lirf.anchor-samples: the owner holds no preserved-class sample")
    anchors = np.sort(rng.choice(preserved, size=min(count, len(preserved)), replace=False))
    return _flagged(data, deposit, anchors)


def _flagged(data: ArrayDataset, deposit: np.ndarray, others: np.ndarray) -> DepositSet:
    chosen = data.subset(np.concatenate([deposit, others]))
    member = np.arange(len(chosen)) < len(deposit)
    return DepositSet(chosen.x, chosen.y, chosen.num_classes, chosen.name, chosen.class_names,
                      member)
