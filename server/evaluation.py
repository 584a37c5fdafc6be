"""Who measures the global model after each round, and how the nodes' figures combine.

`evaluation` (FederationConfig): `server` scores each round's global model on the run's
test split (server/rounds.py GlobalEvaluator); `federated` sends it to the round's
sampled nodes, each scores it on its own held-out split (clients/evaluation.py), and
the server validates each reply and weights the figures by examples; `auto` is server
unless the nodes' data are of another kind than the server's test set, and then
federated.

Before round 1 `choose_evaluation` compares what each node reading its own data
(`--data-dir`) declared in its NodeInfo (one example's C×H×W, the classes its labels
need) with the server's test set; partition nodes too for a round-loop method (workflow
"rounds": its training and test splits should be of one kind), not for a multi-phase
method, whose stages may cut their shards of other data than they test on.
- Other channels or features, or labels beyond the model's classes: the run's model
  (built from the server's test set) cannot take those data at all, so the run is refused
  whatever the evaluation, with one line naming the node and both kinds of data.
- Images of another size only: the model can train on them (fedavg's SmallCNN pools
  adaptively), but the server's score would be of data of another kind (two nodes on 8×8
  sklearn digits scored 0.19 on MNIST-5k). `server` refuses the run, `auto` switches to
  federated and says so in events.log and on the console, `federated` goes on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Message, MessageType, RecordDict

from methods.base import Method, RunSpec
from methods.common.arrays import ArrayDataset
from methods.common.partition import HELD_OUT_FRACTION, stratified_holdout
from methods.config import ConfigError
from protos.contract import ACCURACY, ARRAYS, CONFIG, LOSS, METRICS, NUM_EXAMPLES, Phase
from protos.records import header_config, to_array_record
from server.federation import UNDECLARED_EXAMPLES, Federation, FederationError, NodeRecord
from server.run_dir import RunDirectory

SAME, OTHER_KIND, INCOMPATIBLE = "same", "other kind", "incompatible"
EVALUATION_KEYS = {NUM_EXAMPLES, ACCURACY, LOSS}  # all an evaluate reply may carry


def compare_data(node_shape: tuple[int, ...], node_classes: int,
                 shape: tuple[int, ...], num_classes: int) -> str:
    """SAME, OTHER_KIND (images of another size) or INCOMPATIBLE (the model cannot take them)."""
    tabular = node_shape[1:] == (1, 1) or shape[1:] == (1, 1)  # an MLP takes exactly F features
    if node_shape[0] != shape[0] or node_classes > num_classes or (tabular and node_shape != shape):
        return INCOMPATIBLE
    return SAME if tuple(node_shape) == tuple(shape) else OTHER_KIND


def _kind(shape: tuple[int, ...], num_classes: int) -> str:
    return f"{'×'.join(map(str, shape))} data with {num_classes} classes"


def choose_evaluation(fed: Federation, method: Method, spec: RunSpec, test: ArrayDataset,
                      run: RunDirectory) -> str:
    """"server" or "federated" for this run; FederationError (one line) when it cannot run."""
    mode = spec.federation.evaluation
    own = [node for node in fed.nodes.values() if node.own_data]
    if spec.data.validation_fraction and own:
        raise FederationError(
            f"data.validation-fraction holds out part of the server's copy of the training data, "
            f"but {own[0].label} trains on its own data (--data-dir), which the split cannot "
            f"reach: it may train on validation rows. Use partition nodes (--partition, or a "
            f"simulation) or set data.validation-fraction=0")
    if mode != "server" and method.workflow != "rounds":
        raise FederationError(
            f"evaluation={mode} needs a round-loop method (workflow 'rounds', e.g. fedavg); "
            f"{spec.method_name} runs workflow {method.workflow!r}: use evaluation=server")
    server_kind = f"{_kind(test.example_shape, test.num_classes)} ({test.name})"
    other_kind: list[NodeRecord] = []
    for node in sorted(fed.nodes.values(), key=NodeRecord.sort_key):
        if not node.data_shape or not (node.own_data or method.workflow == "rounds"):
            continue  # nothing declared, or a shard a multi-phase method cuts its own way
        verdict = compare_data(node.data_shape, node.num_classes, test.example_shape,
                               test.num_classes)
        if verdict == INCOMPATIBLE:
            raise FederationError(
                f"{node.label} holds {node.data_text()}, which the run's model cannot take: it "
                f"is built for the server's test set, {server_kind}; set data.dataset/data.root "
                f"(or data.channels, data.class-names) to describe the nodes' data")
        if verdict == OTHER_KIND:
            other_kind.append(node)
    if not other_kind or mode == "federated":
        return mode
    others = len(other_kind) - 1
    more = f" (and {others} more node{'s' if others > 1 else ''})" if others else ""
    what = (f"{other_kind[0].label} holds {other_kind[0].data_text()}{more}, the server's test "
            f"set is {server_kind}")
    if mode == "server":
        raise FederationError(
            f"evaluation=server would score the global model on data of another kind: {what}; "
            f"set evaluation=federated or auto (each node scores it on its own held-out data) "
            f"or data.image-size to read the nodes' images at the server's size")
    text = (f"evaluation=auto: {what}; switching to federated evaluation (each sampled node "
            f"scores the global model on its own held-out split)")
    run.log_event(text)
    print(f"[fedvault] {text}", flush=True)
    return "federated"


def check_evaluation_reply(content: RecordDict, max_examples: int) -> str | None:
    """Why an evaluate reply is refused (None: it is valid). Replies are untrusted input."""
    metrics = content.metric_records.get(METRICS)
    if metrics is None:
        return f"no {METRICS!r} record"
    extra = sorted(set(metrics) - EVALUATION_KEYS)
    if extra:
        return f"unexpected metrics {extra}: an evaluate reply carries {sorted(EVALUATION_KEYS)} only"
    examples, accuracy, loss = (metrics.get(k) for k in (NUM_EXAMPLES, ACCURACY, LOSS))
    if isinstance(examples, bool) or not isinstance(examples, int) or not 1 <= examples <= max_examples:
        return f"{NUM_EXAMPLES} must be an integer in [1, {max_examples}], got {examples!r}"
    if not isinstance(accuracy, float) or not 0.0 <= accuracy <= 1.0:
        return f"{ACCURACY} must be a number in [0, 1], got {accuracy!r}"
    if not isinstance(loss, float) or not math.isfinite(loss) or loss < 0:
        return f"{LOSS} must be a finite number >= 0, got {loss!r}"
    return None


class FederatedEvaluator:
    """One evaluate exchange per round over the round's sampled nodes; example-weighted means."""

    def __init__(self, fed: Federation, spec: RunSpec) -> None:
        self.fed = fed
        self.spec = spec

    def held_out_bound(self, node_id: int) -> int:
        """The most examples an evaluate reply of this node may claim: what its NodeInfo
        declared it holds out, else a bound no data set fedvault loads reaches."""
        record = self.fed.nodes.get(node_id)
        return (record.num_held_out if record is not None else 0) or UNDECLARED_EXAMPLES

    def __call__(self, rnd: int, arrays: dict[str, np.ndarray], node_ids: list[int]
                 ) -> dict[str, Any]:
        weights = to_array_record(arrays)  # one record, shared by every request
        config = header_config(self.spec, rnd, Phase.EVALUATE)
        messages = [Message(RecordDict({ARRAYS: weights, CONFIG: ConfigRecord(dict(config))}),
                            dst_node_id=node_id, message_type=MessageType.EVALUATE)
                    for node_id in node_ids if node_id not in self.fed.lost]
        replies = self.fed.exchange(messages, rnd, Phase.EVALUATE, self._check)
        per_node = [{"node": self.fed.tag(reply.metadata.src_node_id),
                     "examples": int(reply.content[METRICS][NUM_EXAMPLES]),
                     "accuracy": float(reply.content[METRICS][ACCURACY]),
                     "loss": float(reply.content[METRICS][LOSS])} for reply in replies]
        figures: dict[str, Any] = {"evaluation": "federated", "per_node": per_node}
        if not per_node:
            self.fed.run.log_event(f"round {rnd} {Phase.EVALUATE}: no valid evaluation reply; "
                                   f"this round has no accuracy")
            return {"accuracy": None, "loss": None, **figures}
        total = sum(entry["examples"] for entry in per_node)
        return {key: sum(e["examples"] * e[key] for e in per_node) / total
                for key in ("accuracy", "loss")} | figures

    def _check(self, reply: Message) -> str | None:
        return check_evaluation_reply(reply.content,
                                      self.held_out_bound(reply.metadata.src_node_id))


def check_evaluation(spec: RunSpec, method: Method, train: ArrayDataset,
                     test: ArrayDataset) -> None:
    """choose_evaluation's refusals for a simulation, before anything starts (ConfigError):
    its nodes are partitions of `train`; under federated or auto each must be able to hold
    out HELD_OUT_FRACTION of its shard and still train on the rest."""
    mode = spec.federation.evaluation
    if mode != "server" and method.workflow != "rounds":
        raise ConfigError(f"evaluation={mode} needs a round-loop method (workflow 'rounds', e.g. "
                          f"fedavg); {spec.method_name} runs workflow {method.workflow!r}")
    if method.workflow == "rounds":
        verdict = compare_data(train.example_shape, train.num_classes, test.example_shape,
                               test.num_classes)
        if verdict == INCOMPATIBLE or (verdict == OTHER_KIND and mode == "server"):
            raise ConfigError(
                f"data: the training split is {_kind(train.example_shape, train.num_classes)} but "
                f"the test split is {_kind(test.example_shape, test.num_classes)}"
                + ("; set evaluation=federated or auto" if verdict == OTHER_KIND else ""))
    if mode == "server":
        return
    for i, shard in enumerate(method.node_partition(spec, train.y, spec.federation.num_clients)):
        try:
            stratified_holdout(train.y[shard], HELD_OUT_FRACTION, spec.federation.seed)
        except ValueError as exc:
            raise ConfigError(f"evaluation={mode}: node {i} cannot hold out "
                              f"{HELD_OUT_FRACTION:.0%} of its shard ({exc}); lower num-clients="
                              f"{spec.federation.num_clients}") from exc
