"""The evaluate phase: a node measures the global model on its own held-out split.

Federated evaluation (docs/runs.md#evaluation): the server sends the round's global
arrays; the node loads them into a fresh model, evaluates with the method's own
`Method.evaluate` on its held-out split (clients/node_data.py: examples it never trains
on), and replies with three figures only: how many examples, accuracy and mean loss.
Nothing per example leaves the node.
"""

from __future__ import annotations

import math

from flwr.app import Context, MetricRecord, RecordDict

from clients.node_data import node_eval_data
from clients.node_device import node_device
from methods.base import RunSpec
from methods.registry import get_method
from protos import fedvault_pb2 as pb
from protos.contract import ACCURACY, ARRAYS, LOSS, METRICS, NUM_EXAMPLES
from protos.records import from_array_record


def evaluate_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict,
                   context: Context) -> RecordDict:
    figures = evaluate_task(spec, from_array_record(content[ARRAYS]), context.node_config)
    return RecordDict({METRICS: MetricRecord(figures)})


def evaluate_task(spec: RunSpec, arrays, node_config) -> dict[str, float | int]:
    """{NUM_EXAMPLES, ACCURACY, LOSS} of the global `arrays` on this node's held-out split."""
    method = get_method(spec.method_name)
    held_out = node_eval_data(method, spec, node_config)
    device = node_device(spec, node_config)
    model = method.build_model(spec)
    method.load_shared_state(model, arrays)
    figures = method.evaluate(model.to(device), held_out)
    accuracy, loss = figures.get("accuracy"), figures.get("loss")
    if not isinstance(accuracy, (int, float)) or not isinstance(loss, (int, float)):
        raise ValueError(f"{spec.method_name}'s evaluate gives {sorted(figures)}, not accuracy "
                         f"and loss: federated evaluation needs both")
    if not math.isfinite(loss):  # the server would reject it; say why here, with the round
        raise ValueError(f"the global model's loss on this node's held-out split is {loss} "
                         f"(training diverged?)")
    return {NUM_EXAMPLES: len(held_out), ACCURACY: float(accuracy), LOSS: float(loss)}
