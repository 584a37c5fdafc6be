"""Checks a run's config against its data before anything is written or started.

A config file cannot know that `data.root` is missing, that a CIFAR pickle is
truncated, or that `lirf.deposit-classes=42` names a class the data set lacks;
without this check those surface minutes later inside the ServerApp (exit 1,
a half-written run directory). Here they are ConfigErrors: exit 2, one line.
The same goes for combinations the data make impossible: more clients than
training examples, a batch larger than the data set, a split the partitioner
cannot make (it would fail on every node).
"""

from __future__ import annotations

from methods.base import RunSpec
from methods.common.datasets import DatasetError
from methods.config import ConfigError
from methods.registry import get_method


def check_runnable(spec: RunSpec) -> None:
    """Load the run's data (both splits) and let the method check its config against it."""
    method = get_method(spec.method_name)
    try:
        test = method.test_dataset(spec)
        train = method.train_dataset(spec)
    except DatasetError as exc:
        raise ConfigError(f"data: {exc}") from exc
    method.check_data(spec, test.num_classes)
    check_sizes(spec, len(train), train.name)
    try:  # what every simulated node computes first: refuse a split it cannot make
        method.node_partition(spec, train.y, spec.federation.num_clients)
    except ValueError as exc:
        raise ConfigError(f"data: {spec.data.partitioner} split into num-clients="
                          f"{spec.federation.num_clients} is impossible: {exc}") from exc


def check_sizes(spec: RunSpec, num_train: int, name: str) -> None:
    """Every node needs at least one example, and no batch can exceed the data set."""
    fed, where = spec.federation, f"the {num_train} training examples of {name!r}"
    if fed.num_clients > num_train:
        raise ConfigError(f"num-clients must be in [1, {num_train}] ({where}; "
                          f"got {fed.num_clients})")
    batch_size = getattr(spec.method, "batch_size", None)
    if isinstance(batch_size, int) and batch_size > num_train:
        raise ConfigError(f"{spec.method_name}.batch-size must be in [1, {num_train}] ({where}; "
                          f"got {batch_size})")
