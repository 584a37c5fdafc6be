"""Plain functions behind the ClientApp handlers (testable without Flower)."""

from __future__ import annotations

import zlib
from typing import Any, Mapping

import numpy as np
import torch

from clients.node_data import describe_node, node_train_data
from clients.training import train_locally
from methods.base import RunSpec
from methods.registry import get_method


def local_seed(spec: RunSpec, rnd: int, node_key: str) -> int:
    """A per-(run, round, node) seed: reruns and resumed runs train identically."""
    return zlib.crc32(f"{spec.federation.seed}/{rnd}/{node_key}".encode())


def node_key(node_config: Mapping[str, Any]) -> str:
    pid, _, source = describe_node(node_config)
    return f"p{pid}" if pid >= 0 else source


def train_task(
    spec: RunSpec,
    rnd: int,
    arrays: Mapping[str, np.ndarray],
    node_config: Mapping[str, Any],
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Load the global weights, train locally, return (shared arrays, metrics)."""
    torch.set_num_threads(1)  # 2 threads were 5-10x slower on the 2-core hosts
    method = get_method(spec.method_name)
    data = node_train_data(method, spec, node_config)
    model = method.build_model(spec)
    method.load_shared_state(model, arrays)
    metrics = train_locally(method, model, data, spec, seed=local_seed(spec, rnd, node_key(node_config)))
    return method.shared_state(model), metrics
