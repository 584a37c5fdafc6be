"""The node side of the privacy audit: plant canaries while training, return only scores.

While training (`audit.enabled`), a node trains on its data minus its held-out
non-members and minus its canaries' images, plus the canaries whose secret coin
says IN (methods/audit_plan.py). In the final "audit" phase it scores, against the
final model, its members, its non-members and every canary, and returns the
scores and nothing else: never an example, a label or an index.

Scores (higher = more likely trained on), two AuditScores payloads:
- "loss": −ℓ(x, y) for members, non-members and canaries (Yeom et al., CSF 2018);
- "confidence": for members and non-members the label-free top-class confidence
  in logit scale, log(p_max / (1 − p_max)) (Salem et al., NDSS 2019); for canaries
  the logit-scaled confidence of the canary's label, φ = z_y − log Σ_{j≠y} e^{z_j}
  (Carlini et al., S&P 2022, §IV-B), the one-run audit's black-box score
  (Steinke et al. 2023).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, MetricRecord, RecordDict
from torch import nn

from clients.node_data import describe_node, node_train_data
from clients.tasks import local_seed, node_key
from methods.audit_plan import NodeAuditPlan, node_audit_plan
from methods.base import Method, RunSpec
from methods.common.datasets import ArrayDataset
from methods.registry import get_method
from protos import fedvault_pb2 as pb
from protos.codec import encode
from protos.contract import ARRAYS, AUDIT_SCORES, CONFIG, METRICS, NUM_EXAMPLES
from protos.records import from_array_record, ledger_entries


def node_plan(spec: RunSpec, data: ArrayDataset, node_config: Mapping[str, Any]) -> NodeAuditPlan:
    _, num_partitions, _ = describe_node(node_config)
    num_nodes = num_partitions if num_partitions > 0 else spec.federation.num_clients
    return node_audit_plan(
        data.y,
        data.num_classes,
        spec.audit,
        seed=spec.federation.seed,
        node_key=node_key(node_config),
        num_nodes=num_nodes,
    )


def canary_set(data: ArrayDataset, plan: NodeAuditPlan) -> ArrayDataset:
    """Every canary (IN and OUT): the base image with its wrong label."""
    return ArrayDataset(
        data.x[plan.canary_base], plan.canary_label, data.num_classes, data.name, data.class_names
    )


def audited_training_data(
    spec: RunSpec, node_config: Mapping[str, Any]
) -> Callable[[ArrayDataset], ArrayDataset]:
    """`train_task`'s shape_data: regular training examples plus the IN canaries."""

    def shape(data: ArrayDataset) -> ArrayDataset:
        plan = node_plan(spec, data, node_config)
        regular, planted = (
            data.subset(plan.train),
            canary_set(data, plan).subset(np.flatnonzero(plan.canary_in)),
        )
        return ArrayDataset(
            np.concatenate([regular.x, planted.x]),
            np.concatenate([regular.y, planted.y]),
            data.num_classes,
            data.name,
            data.class_names,
        )

    return shape


@torch.no_grad()
def scores(model: nn.Module, dataset: ArrayDataset) -> dict[str, np.ndarray]:
    """Per-example scores (higher = more member-like): −loss, φ of the label, φ of the top class."""
    model.eval()
    if len(dataset) == 0:
        return {k: np.zeros(0) for k in ("loss", "label_confidence", "max_confidence")}
    logits = torch.cat(
        [model(torch.as_tensor(dataset.x[i : i + 512])) for i in range(0, len(dataset), 512)]
    ).double()
    y = torch.as_tensor(dataset.y)
    top = logits.argmax(1)
    loss = nn.functional.cross_entropy(logits, y, reduction="none")
    return {
        "loss": (-loss).numpy(),
        "label_confidence": _logit_confidence(logits, y),
        "max_confidence": _logit_confidence(logits, top),
    }


def _logit_confidence(logits: torch.Tensor, label: torch.Tensor) -> np.ndarray:
    """φ = z_label − log Σ_{j≠label} e^{z_j} = log(p_label / (1 − p_label)), stable."""
    chosen = logits.gather(1, label[:, None]).squeeze(1)
    others = logits.scatter(1, label[:, None], float("-inf")).logsumexp(1)
    return (chosen - others).numpy()


def audit_phase(
    spec: RunSpec, header: pb.RoundHeader, content: RecordDict, context: Context
) -> RecordDict:
    """Score members, non-members and canaries against the final model; scores only."""
    torch.set_num_threads(1)
    method = get_method(spec.method_name)
    data = node_train_data(method, spec, context.node_config)
    plan = node_plan(spec, data, context.node_config)
    model = method.build_model(spec)
    method.load_shared_state(model, from_array_record(content[ARRAYS]))
    member, nonmember = (
        scores(model, data.subset(plan.members)),
        scores(model, data.subset(plan.holdout)),
    )
    canary = scores(model, canary_set(data, plan))
    payloads = [
        encode(
            pb.AuditScores(
                round=header.round,
                kind=kind,
                member_scores=member[example],
                nonmember_scores=nonmember[example],
                canary_scores=canary[planted],
                canary_included=plan.canary_in.tolist(),
            )
        )
        for kind, example, planted in (
            ("loss", "loss", "loss"),
            ("confidence", "max_confidence", "label_confidence"),
        )
    ]
    metrics: dict[str, float] = {NUM_EXAMPLES: float(len(plan.train))}
    if spec.dp.enabled and spec.dp.level == "sample":
        metrics.update(_noise_probe(spec, method, content, context, data, header.round))
    return RecordDict({CONFIG: ConfigRecord({AUDIT_SCORES: payloads}),
                       METRICS: MetricRecord(metrics)})


def _noise_probe(
    spec: RunSpec,
    method: Method,
    content: RecordDict,
    context: Context,
    data: ArrayDataset,
    rnd: int,
) -> dict[str, float]:
    from clients.noise_probe import noise_probe  # Opacus: DP runs only
    from clients.privacy import load_history

    server = [(e.noise_multiplier, e.sample_rate, int(e.steps)) for e in ledger_entries(content)]
    history = load_history(context.state, server, spec.dp.accountant)
    if not history:
        return {}
    return noise_probe(
        spec,
        method,
        method.build_model(spec),
        sigma=history[-1][0],
        input_shape=tuple(data.x.shape[1:]),
        num_classes=data.num_classes,
        seed=local_seed(spec, rnd, "noise-probe/" + node_key(context.node_config)),
    )
