"""Where a node's training data comes from: its own disk, or a demo partition.

A real client (`fedvault node --data-dir DIR`) reads an image folder from its
own disk; the server never sends data. Simulated nodes and demo nodes
(`--partition i/n`) cut their shard of the bundled data set locally, with the
run's seed, so every node computes the same split without talking to anyone.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping

from methods.base import Method, RunSpec
from methods.common.datasets import ArrayDataset, class_names_of, load_image_folder

# Node-config keys (kebab-case, as Flower's --node-config).
PARTITION_ID = "partition-id"
NUM_PARTITIONS = "num-partitions"
DATA_DIR = "data-dir"


def describe_node(node_config: Mapping) -> tuple[int, int, str]:
    """(partition id, number of partitions, data source) from the node config."""
    if node_config.get(DATA_DIR):
        return -1, -1, f"dir:{node_config[DATA_DIR]}"
    if PARTITION_ID not in node_config or NUM_PARTITIONS not in node_config:
        raise ValueError(
            "node config needs either data-dir=DIR or partition-id=i num-partitions=n"
        )
    return int(node_config[PARTITION_ID]), int(node_config[NUM_PARTITIONS]), "partition"


def node_example_count(spec: RunSpec, node_config: Mapping) -> int:
    """How many training examples this node holds under `spec` (its NodeInfo declares
    it; the server bounds each train reply's num-examples by it)."""
    from methods.registry import get_method  # the registry imports every method

    method = get_method(spec.method_name)
    return len(node_train_data(method, spec, node_config))


def node_train_data(method: Method, spec: RunSpec, node_config: Mapping) -> ArrayDataset:
    pid, num_partitions, _ = describe_node(node_config)
    if pid < 0:
        return _local_folder(method, spec, str(node_config[DATA_DIR]))
    if not 0 <= pid < num_partitions:
        raise ValueError(f"partition-id {pid} is outside [0, {num_partitions})")
    full = method.train_dataset(spec)
    shards = _shards(method, spec, num_partitions, full)
    return full.subset(shards[pid])


def _shards(method, spec, num_partitions, full):
    # Cached per process: simulated clients share a Ray actor across rounds. The
    # whole config is in the key: a method's partition may depend on its own keys.
    key = (method.name, spec.to_json(), num_partitions, len(full))
    if key not in _SHARD_CACHE:
        _SHARD_CACHE[key] = method.node_partition(spec, full.y, num_partitions)
    return _SHARD_CACHE[key]


_SHARD_CACHE: dict = {}


def _local_folder(method: Method, spec: RunSpec, root: str) -> ArrayDataset:
    reference = method.test_dataset(spec)  # the model's input shape and class count
    channels, height, width = reference.x.shape[1:]
    return _load_folder(root, channels, (height, width), class_names_of(reference), reference.name)


@lru_cache(maxsize=4)
def _load_folder(root, channels, size, class_names, reference_name):
    # `classes` keeps labels global: a shard holding only digits 3 and 7 must
    # not relabel them 0 and 1.
    return load_image_folder(
        root, channels=channels, size=size, normalize=_NORMALISATION.get(reference_name),
        classes=class_names,
    )


# A node's own images get the same normalisation as the data set the run's
# model was designed for, so its updates are compatible with everyone else's.
_NORMALISATION = {"mnist5k": (0.1307, 0.3081)}
