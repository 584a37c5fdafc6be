"""The audit's design, derived from the run seed alone: which examples are canaries,
which are held out, and each canary's secret coin.

One-run auditing (Steinke, Nasr, Jagielski, "Privacy Auditing with One (1) Training
Run", NeurIPS 2023, Algorithm 1): m canaries, coins S_i ∈ {IN, OUT} uniform, canary i
is trained on iff S_i = IN. Nodes and the server derive the same plan from
(seed, node) without talking, so the server holds the coins of the white-box canaries
it reads back from client updates, and no example ever leaves a node.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from methods.privacy_config import AuditConfig
from protos.contract import partition_key


@dataclass(frozen=True)
class NodeAuditPlan:
    """Index sets into one node's own data (its shard or its data directory)."""

    train: np.ndarray
    """Examples trained on with their true label (the MIA members are drawn from these)."""
    holdout: np.ndarray
    """Never trained on: the MIA non-members."""
    members: np.ndarray
    """The subset of `train` whose scores the audit reads."""
    canary_base: np.ndarray
    """Examples whose image becomes a canary; never trained on with their true label."""
    canary_label: np.ndarray
    """The canary's label: always wrong, so only training on it can make it likely."""
    canary_in: np.ndarray
    """The secret coins: True = the canary joins the training data."""


def _rng(seed: int, node_key: str, purpose: str) -> np.random.Generator:
    return np.random.default_rng(
        [seed, zlib.crc32(node_key.encode()), zlib.crc32(purpose.encode())]
    )


def canaries_per_node(total: int, num_nodes: int) -> int:
    return math.ceil(total / max(num_nodes, 1))


def node_audit_plan(
    labels: np.ndarray,
    num_classes: int,
    cfg: AuditConfig,
    *,
    seed: int,
    node_key: str,
    num_nodes: int,
) -> NodeAuditPlan:
    """Split one node's examples into canaries, held-out non-members and training data."""
    n = len(labels)
    rng = _rng(seed, node_key, "black-box")
    order = rng.permutation(n)
    m = min(canaries_per_node(cfg.canaries, num_nodes), n // 4)  # keep most data for training
    n_out = max(1, int(round(cfg.holdout_fraction * n)))
    canary_base, holdout, train = order[:m], order[m : m + n_out], np.sort(order[m + n_out :])
    shift = rng.integers(1, num_classes, size=m)  # 1..C-1: never the true label
    canary_label = (labels[canary_base] + shift) % num_classes
    canary_in = rng.random(m) < 0.5
    members = np.sort(rng.choice(train, size=min(cfg.mia_examples, len(train)), replace=False))
    holdout = np.sort(holdout[: cfg.mia_examples])
    return NodeAuditPlan(
        train, holdout, members, canary_base, canary_label.astype(np.int64), canary_in
    )


def whitebox_target(shapes: Mapping[str, tuple[int, ...]]) -> str:
    """The weight matrix the Dirac canaries live in: the largest 2-D weight (a Linear layer's)."""
    matrices = [
        (int(np.prod(s)), k) for k, s in shapes.items() if len(s) == 2 and k.endswith("weight")
    ]
    if not matrices:
        raise ValueError("the model has no 2-D weight matrix to hold white-box canaries")
    return max(matrices)[1]  # ties broken by name: deterministic on both sides


@dataclass(frozen=True)
class WhiteboxPlan:
    """Node k's Dirac canaries: distinct coordinates of one weight matrix, and their coins."""

    param: str
    coords: np.ndarray  # flat indices into `param`, disjoint across nodes
    canary_in: np.ndarray


def whitebox_plan(
    shapes: Mapping[str, tuple[int, ...]],
    cfg: AuditConfig,
    *,
    seed: int,
    partition_id: int,
    num_nodes: int,
) -> WhiteboxPlan:
    """The same plan on the node (which plants) and on the server (which reads it back)."""
    param = whitebox_target(shapes)
    size = int(np.prod(shapes[param]))
    per_node = min(canaries_per_node(cfg.whitebox_canaries, num_nodes), size // max(num_nodes, 1))
    # One permutation for the federation, node k takes slice k: coordinates never collide.
    order = np.random.default_rng([seed, zlib.crc32(b"white-box")]).permutation(size)
    coords = order[partition_id * per_node : (partition_id + 1) * per_node]
    coins = _rng(seed, partition_key(partition_id), "white-box").random(len(coords)) < 0.5
    return WhiteboxPlan(param, coords, coins)
