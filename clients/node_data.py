"""Where a node's data come from: its own disk, or a demo partition.

A real client (`fedvault node --data-dir PATH`) reads its own data, and the server never
sends any: an image folder (flat root/<class>/, or root/train/ + root/test/) read at the
run's data.image-size / data.channels or else at its first image's, or an .npz file (x, y,
optionally x_test, y_test: methods/common/npz.py). Simulated nodes and demo nodes
(`--partition i/n`) cut their shard of the run's data set locally, with the run's seed, so
every node computes the same split without talking to anyone.

A node's held-out split (what it evaluates the global model on under federated
evaluation, docs/runs.md#evaluation): its own test data when it has some (the npz's
x_test/y_test, the folder's test/), else, when the run's evaluation is federated or auto,
a stratified 20 % carve of its data (a partition node: of its shard) seeded by the run's
seed, so the node carves the same examples every round and never trains on them. Under
evaluation=server nothing is carved and a node trains on all its training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from methods.base import Method, RunSpec
from methods.common.datasets import (
    MNIST_MEAN,
    MNIST_STD,
    NUMBERED_CLASSES,
    ArrayDataset,
    DatasetError,
    image_folder_splits,
    numbered_class_names,
)
from methods.common.npz import read_npz
from methods.common.partition import HELD_OUT_FRACTION, stratified_holdout

# Node-config keys (kebab-case, as Flower's --node-config).
PARTITION_ID = "partition-id"
NUM_PARTITIONS = "num-partitions"
DATA_DIR = "data-dir"  # an image folder or an .npz file (the key predates npz files)
# Set only by the pool wrapper of a simulation (clients/pool.py): the logical client played.
POOL_CLIENT = "pool-client"


@dataclass(frozen=True)
class NodeData:
    train: ArrayDataset
    held_out: ArrayDataset | None  # never trained on; None: the node holds nothing out


@dataclass(frozen=True)
class NodeFacts:
    """What a node's NodeInfo declares about its data under a run's config."""

    num_examples: int
    data_shape: tuple[int, ...]  # one example's (C, H, W); () when not declared
    num_classes: int
    num_held_out: int


def describe_node(node_config: Mapping) -> tuple[int, int, str]:
    """(partition id, number of partitions, data source) from the node config."""
    if node_config.get(DATA_DIR):
        return -1, -1, f"dir:{node_config[DATA_DIR]}"
    if PARTITION_ID not in node_config or NUM_PARTITIONS not in node_config:
        raise ValueError(
            "node config needs either data-dir=PATH or partition-id=i num-partitions=n"
        )
    return int(node_config[PARTITION_ID]), int(node_config[NUM_PARTITIONS]), "partition"


def node_facts(spec: RunSpec, node_config: Mapping) -> NodeFacts:
    """This node's training examples, their shape and classes, and its held-out examples
    under `spec` (its NodeInfo declares them; the server bounds each reply's num-examples
    by them and compares the data with its own test set, server/evaluation.py)."""
    from methods.registry import get_method  # the registry imports every method

    data = node_data(get_method(spec.method_name), spec, node_config)
    return NodeFacts(len(data.train), data.train.example_shape, data.train.num_classes,
                     len(data.held_out) if data.held_out is not None else 0)


def node_example_count(spec: RunSpec, node_config: Mapping) -> int:
    """How many training examples this node holds under `spec`."""
    return node_facts(spec, node_config).num_examples


def node_train_data(method: Method, spec: RunSpec, node_config: Mapping) -> ArrayDataset:
    return node_data(method, spec, node_config).train


def node_eval_data(method: Method, spec: RunSpec, node_config: Mapping) -> ArrayDataset:
    """The held-out split a federated evaluation request is answered on."""
    if spec.federation.evaluation == "server":
        # a node trains on all its data under evaluation=server: nothing is held out
        raise ValueError("this run evaluates on the server (evaluation=server); a node "
                         "evaluates only under evaluation=federated or auto")
    held_out = node_data(method, spec, node_config).held_out
    assert held_out is not None  # node_data carves one whenever evaluation is not "server"
    return held_out


def node_data(method: Method, spec: RunSpec, node_config: Mapping) -> NodeData:
    pid, num_partitions, _ = describe_node(node_config)
    if pid < 0:
        data = _own_data(spec, str(node_config[DATA_DIR]))
    else:
        if not 0 <= pid < num_partitions:
            raise ValueError(f"partition-id {pid} is outside [0, {num_partitions})")
        full = method.fit_dataset(spec)
        shards = _shards(method, spec, num_partitions, full)
        data = NodeData(full.subset(shards[pid]), None)
    if data.held_out is None and spec.federation.evaluation != "server":
        return _carve(data.train, spec.federation.seed)
    return data


def _carve(train: ArrayDataset, seed: int) -> NodeData:
    try:
        keep, held_out = stratified_holdout(train.y, HELD_OUT_FRACTION, seed)
    except ValueError as err:
        raise DatasetError(f"this node cannot hold out a split for federated evaluation: "
                           f"{err}; give it its own test data (npz x_test/y_test, a folder's "
                           f"test/) or more examples") from err
    return NodeData(train.subset(keep), train.subset(held_out))


def _shards(method, spec, num_partitions, full):
    # Cached per process: simulated clients share a Ray actor across rounds. The
    # whole config is in the key: a method's partition may depend on its own keys.
    key = (method.name, spec.to_json(), num_partitions, len(full))
    if key not in _SHARD_CACHE:
        _SHARD_CACHE[key] = method.node_partition(spec, full.y, num_partitions)
    return _SHARD_CACHE[key]


_SHARD_CACHE: dict = {}


def _own_data(spec: RunSpec, path: str) -> NodeData:
    if Path(path).is_file():
        arrays = read_npz(path)
        return NodeData(arrays.train, arrays.test)
    data = spec.data
    # `class_names` keeps labels global: a shard holding only digits 3 and 7 must not
    # relabel them 0 and 1. A run of a named set with numbered labels names them as
    # write_image_folder writes them; any other run, data.class-names or the folder's own.
    names = data.class_names or (numbered_class_names(NUMBERED_CLASSES[data.dataset])
                                 if data.dataset in NUMBERED_CLASSES else ())
    return _own_folder(path, data.channels, data.image_size, names,
                       _NORMALISATION.get(data.dataset))


@lru_cache(maxsize=4)
def _own_folder(root, channels, size, class_names, normalize) -> NodeData:
    splits = image_folder_splits(root, channels=channels, size=size, class_names=class_names,
                                 normalize=normalize)
    if "train" not in splits:
        raise DatasetError(f"this node's image folder {root} has a test/ but no train/ split; "
                           f"expected {root}/train/<class_name>/*.png")
    return NodeData(splits["train"], splits.get("test"))


# A node's own images get the same normalisation as the data set the run's
# model was designed for, so its updates are compatible with everyone else's.
_NORMALISATION = {"mnist5k": (MNIST_MEAN, MNIST_STD)}
