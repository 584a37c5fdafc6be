"""`fedvault bench wire`: bytes on the wire per round and per phase, for fedavg, fedsa
and lirf, and the payloads' overhead over the raw tensor bytes (docs/performance.md).

Each scenario runs its real server workflow and real ClientApp in this process, on a
grid that hands every message to the ClientApp and weighs it as Flower 1.39 ships it:
a Message travels as its tree of inflatable objects (message, RecordDict, records,
arrays), so its size is the sum of every object's `deflate()` bytes. Raw tensor bytes
are the `nbytes` of the arrays in its ArrayRecords. Byte counts do not depend on the
number of epochs, so the scenarios run with one epoch and few rounds (digits data for
LIRF's five nodes, MNIST-5k as in the scenarios otherwise).

Checks: FedSA's teachers reply with no tensors beyond the student's weights (the issue:
"teachers send only student weights + a scalar"); and fedavg's model updates cost at most
5 % over their raw bytes. Small models pay relatively more: each message carries a fixed
cost (the RoundHeader with the resolved config, object ids, Flower metadata) and each
array its own (.npy header, object header), reported as `fixed_bytes_per_message`.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, Context, Message, RecordDict
from flwr.common.serde import message_from_proto, message_to_proto

from protos.contract import Phase

MAX_OVERHEAD = 0.05  # fedavg's train phase: protobuf + object headers over raw tensor bytes
SCENARIOS: dict[str, dict[str, str]] = {
    "fedavg": {"num-clients": "3", "num-server-rounds": "2", "fedavg.local-epochs": "1"},
    "fedsa": {"num-server-rounds": "2", "fedsa.reselect-every": "1", "fedsa.teacher-epochs": "1",
              "fedsa.probe-epochs": "1", "fedsa.adapt-epochs": "1", "fedsa.batch-size": "256"},
    "lirf": {"data.dataset": "digits", "num-clients": "3", "num-server-rounds": "1",
             "lirf.local-epochs": "1", "lirf.deposit-epochs": "1",
             "lirf.retrain-baseline": "false"},
}


def wire_bytes(msg: Message) -> int:
    """Bytes Flower sends for `msg`: every object of its tree, deflated."""
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

    return sum(len(obj.deflate()) for obj in get_all_nested_objects(msg).values())


def tensor_bytes(content: RecordDict) -> int:
    return sum(arr.numpy().nbytes for record in content.values() if isinstance(record, ArrayRecord)
               for arr in record.values())


def phase_of(msg: Message) -> str:
    from protos.records import read_header

    try:
        return read_header(msg).phase
    except Exception:  # noqa: BLE001 - the info query carries a header too; anything else is named by type
        return msg.metadata.message_type


class MeteredGrid:
    """Every node is fedvault's ClientApp in this process; every message is weighed."""

    def __init__(self, num_nodes: int, first_node_id: int = 1000) -> None:
        from flwr.supercore.task_identity import TaskIdentity

        TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = 1  # as Flower's runtimes
        self.contexts = {first_node_id + i: Context(
            run_id=1, node_id=first_node_id + i, state=RecordDict(), run_config={},
            node_config={"partition-id": i, "num-partitions": num_nodes})
            for i in range(num_nodes)}
        self.tally: dict[tuple[str, str], dict[str, int]] = defaultdict(
            lambda: {"messages": 0, "wire_bytes": 0, "tensor_bytes": 0})

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def _weigh(self, phase: str, direction: str, msg: Message) -> None:
        row = self.tally[(phase, direction)]
        row["messages"] += 1
        row["wire_bytes"] += wire_bytes(msg)
        row["tensor_bytes"] += tensor_bytes(msg.content) if msg.has_content() else 0

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None):
        from clients.app import app as client_app

        replies = []
        for msg in messages:
            # the node gets its own copy, as over the wire (Flower's SecAgg+ mod edits the
            # records it is sent, which its stage's messages share)
            delivered = message_from_proto(message_to_proto(msg))
            phase = phase_of(msg)
            self._weigh(phase, "down", msg)
            reply = client_app(delivered, self.contexts[msg.metadata.dst_node_id])
            self._weigh(phase, "up", reply)
            replies.append(reply)
        return replies


def measure(scenario: str) -> dict[str, Any]:
    import torch

    from server.runner import Job, run_job
    from server.scenario import resolve

    torch.set_num_threads(1)
    spec = resolve(scenario, {**SCENARIOS[scenario], "node-wait-timeout": "2"})
    grid = MeteredGrid(spec.federation.num_clients)
    with tempfile.TemporaryDirectory(prefix="fvwire-") as tmp:
        run_job(grid, Job(spec=spec, run_dir=str(Path(tmp) / "run"), scenario=scenario))
    phases: dict[str, Any] = {}
    for (phase, direction), row in sorted(grid.tally.items()):
        tensors = row["tensor_bytes"]
        overhead = (row["wire_bytes"] - tensors) / tensors if tensors else None
        phases[f"{phase}/{direction}"] = {
            **row, "overhead": overhead,
            "fixed_bytes_per_message": (row["wire_bytes"] - tensors) / row["messages"]}
    rounds = spec.federation.num_server_rounds
    return {"rounds": rounds, "phases": phases, "bytes_per_round": {
        key: row["wire_bytes"] / rounds for key, row in phases.items() if key.startswith(
            tuple(f"{p}/" for p in (Phase.TRAIN, Phase.TEACHER, Phase.DISTILL, Phase.SELECT)))}}


def teacher_replies_only_student_and_scalar(fedsa: dict[str, Any], student_bytes: int) -> bool:
    """FedSA teachers' replies: tensors no bigger than the student's weights per reply."""
    up = [row for key, row in fedsa["phases"].items() if key.endswith("/up")
          and key.split("/")[0] in (Phase.TEACHER, Phase.SELECT, Phase.DISTILL)]
    return all(row["tensor_bytes"] <= row["messages"] * student_bytes for row in up)


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    results = {name: measure(name) for name in SCENARIOS}
    student = _student_bytes()
    overheads = {f"{name}:{key}": row["overhead"] for name, res in results.items()
                 for key, row in res["phases"].items() if row["overhead"] is not None}
    fedavg = max(overheads["fedavg:train/down"], overheads["fedavg:train/up"])
    checks = {
        "fedavg payload overhead <= 5% over raw tensors": {
            "overhead": fedavg, "target": MAX_OVERHEAD, "pass": fedavg <= MAX_OVERHEAD},
        "fedsa teachers send only student weights + a scalar": {
            "student_bytes": student,
            "pass": teacher_replies_only_student_and_scalar(results["fedsa"], student)},
    }
    return {"bench": "wire", "scenarios": results, "overheads": overheads, "checks": checks,
            "pass": all(c["pass"] for c in checks.values())}


def _student_bytes() -> int:
    import torch

    from methods.registry import get_method
    from server.scenario import resolve

    spec = resolve("fedsa", SCENARIOS["fedsa"])
    method = get_method("fedsa")
    torch.manual_seed(0)
    return sum(a.nbytes for a in method.shared_state(method.build_model(spec)).values())
