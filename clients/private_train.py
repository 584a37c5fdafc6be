"""The "private-train" phase: the standard train phase with the run's privacy concerns.

The server sends it instead of "train" when `dp.enabled` or `audit.enabled`
(server/privacy_hooks.py). It is the same `train_task`, plus:
- sample-level DP: DP-SGD through clients/privacy.py, the accountant history kept in
  `context.state` (or taken back from the server's ledger after a restart), and the
  round's LedgerEntry in the reply under "privacy";
- audit: canaries planted and non-members held out of the training data, and
  white-box canaries planted into the clipped gradient sums (DP runs).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from flwr.app import ConfigRecord, Context, MetricRecord, RecordDict

from clients.audit_scores import audited_training_data
from clients.dp_policy import NodePolicy
from clients.node_data import describe_node
from clients.node_device import device_record, node_device
from clients.tasks import local_seed, node_key, train_task
from methods.audit_plan import WhiteboxPlan, whitebox_plan
from methods.base import Method, RunSpec
from methods.registry import get_method
from protos import fedvault_pb2 as pb
from protos.codec import encode
from protos.contract import ARRAYS, CONFIG, LEDGER_ENTRY, LEDGER_EXTRA, METRICS, PRIVACY
from protos.records import from_array_record, ledger_entries, to_array_record


def private_train_phase(
    spec: RunSpec, header: pb.RoundHeader, content: RecordDict, context: Context
) -> RecordDict:
    method = get_method(spec.method_name)
    arrays = from_array_record(content[ARRAYS])
    shape = audited_training_data(spec, context.node_config) if spec.audit.enabled else None
    whitebox = _whitebox(spec, arrays, context.node_config)
    privacy = None
    if spec.dp.enabled and spec.dp.level == "sample":
        privacy = _private_training(spec, method, header.round, content, context, whitebox)
    trained, metrics = train_task(
        spec, header.round, arrays, context.node_config,
        privacy=privacy, shape_data=shape, whitebox=whitebox,
    )
    reply = RecordDict({ARRAYS: to_array_record(trained), METRICS: MetricRecord(metrics),
                        CONFIG: device_record(node_device(spec, context.node_config))})
    if privacy is not None:
        from clients.privacy import save_history

        save_history(context.state, privacy.history, spec.dp.accountant)
        reply[PRIVACY] = ledger_reply(header.round, privacy.report)
    return reply


def _private_training(
    spec: RunSpec,
    method: Method,
    rnd: int,
    content: RecordDict,
    context: Context,
    whitebox: WhiteboxPlan | None,
):
    from clients.privacy import PrivateTraining, load_history  # Opacus: DP runs only

    server = [(e.noise_multiplier, e.sample_rate, int(e.steps)) for e in ledger_entries(content)]
    history = load_history(context.state, server, spec.dp.accountant)
    policy = NodePolicy.of(context.node_config)
    return PrivateTraining(
        spec,
        method,
        history=history,
        seed=local_seed(spec, rnd, "dp/" + node_key(context.node_config)),
        whitebox=whitebox,
        max_epsilon=policy.max_epsilon,
        check_sigma=lambda sigma: policy.check_sigma(sigma, rnd),
    )


def _whitebox(
    spec: RunSpec, arrays: Mapping[str, np.ndarray], node_config: Mapping[str, Any]
) -> WhiteboxPlan | None:
    """White-box canaries need the server to know the node's slot: partition nodes only."""
    pid, num_partitions, _ = describe_node(node_config)
    if not spec.audit.enabled or spec.audit.whitebox_canaries == 0 or pid < 0:
        return None
    shapes = {k: tuple(v.shape) for k, v in arrays.items()}
    return whitebox_plan(
        shapes, spec.audit, seed=spec.federation.seed, partition_id=pid, num_nodes=num_partitions
    )


def ledger_reply(rnd: int, report: Mapping[str, Any]) -> ConfigRecord:
    """This round's LedgerEntry (typed, validated) plus the figures the audit checks."""
    entry = pb.LedgerEntry(
        round=rnd,
        noise_multiplier=report["noise_multiplier"],
        sample_rate=report["sample_rate"],
        steps=report["steps"],
        epsilon=report["epsilon"],
        delta=report["delta"],
        clip_fraction=report["clip_fraction"],
        accountant=report["accountant"],
    )
    wire = ((k.replace("_", "-"), v) for k, v in report.items())
    extra = {k: v for k, v in wire if k in LEDGER_EXTRA}
    return ConfigRecord({LEDGER_ENTRY: encode(entry), **extra})
