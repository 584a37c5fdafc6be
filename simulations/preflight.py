"""Checks a run's config against its data before anything is written or started.

A config file cannot know that `data.root` is missing, that a CIFAR pickle is
truncated, or that `lirf.deposit-classes=42` names a class the data set lacks;
without this check those surface minutes later inside the ServerApp (exit 1,
a half-written run directory). Here they are ConfigErrors: exit 2, one line.
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
        method.train_dataset(spec)
    except DatasetError as exc:
        raise ConfigError(f"data: {exc}") from exc
    method.check_data(spec, test.num_classes)
