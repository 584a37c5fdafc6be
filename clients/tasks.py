"""Plain functions behind the ClientApp handlers (testable without Flower)."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import torch

from clients.node_data import describe_node, node_train_data
from clients.node_device import node_device
from clients.training import train_locally
from methods.base import RunSpec
from methods.common.datasets import ArrayDataset
from methods.registry import get_method
from protos import contract

if TYPE_CHECKING:
    from clients.privacy import PrivateTraining
    from methods.audit_plan import WhiteboxPlan


def local_seed(spec: RunSpec, rnd: int, node_key: str) -> int:
    """A per-(run, round, node) seed: reruns and resumed runs train identically."""
    return zlib.crc32(f"{spec.federation.seed}/{rnd}/{node_key}".encode())


def node_key(node_config: Mapping[str, Any]) -> str:
    """This node's name on the wire (protos/contract.py node_key), from its node config."""
    pid, _, source = describe_node(node_config)
    return contract.node_key(pid, source)


def train_task(
    spec: RunSpec,
    rnd: int,
    arrays: Mapping[str, np.ndarray],
    node_config: Mapping[str, Any],
    *,
    privacy: "PrivateTraining | None" = None,
    shape_data: Callable[[ArrayDataset], ArrayDataset] | None = None,
    whitebox: "WhiteboxPlan | None" = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Load the global weights, train locally, return (shared arrays, metrics).

    `privacy` makes the loop DP-SGD (clients/privacy.py); `shape_data` edits the
    node's training set first (the audit plants canaries and holds out non-members);
    `whitebox` plants the audit's gradient canaries into a run without DP (with DP,
    `privacy` plants them before its noise).
    """
    device = node_device(spec, node_config)  # and 1 CPU thread on the CPU (2 were 5-10x slower)
    method = get_method(spec.method_name)
    data = node_train_data(method, spec, node_config)
    if shape_data is not None:
        data = shape_data(data)
    model = method.build_model(spec)
    method.load_shared_state(model, arrays)
    seed = local_seed(spec, rnd, node_key(node_config))
    canaries = None
    if privacy is None and whitebox is not None:
        from clients.gradient_canaries import GradientCanaries

        canaries = GradientCanaries(
            # no DP, so no guarantee rests on these draws: seeded, so a run without DP
            # (and its resumption) trains the same model every time, canaries included
            whitebox, model, norm=spec.dp.max_grad_norm,
            generator=torch.Generator().manual_seed(seed),
        )
    metrics = train_locally(
        method, model, data, spec, seed=seed, privacy=privacy, canaries=canaries, device=device
    )
    return method.shared_state(model), metrics
