"""What a FedSA teacher node may send, and the meter every reply passes (server/fedsa.py).

Each phase's reply has a schema (REPLY_SCHEMA); `foreign_content` names anything
beyond it — an extra record, an array that is not the student's, a list-valued
metric — which the workflow logs and reports as `teacher_weights_sent`.
`ReplyMeter` wraps the Grid so every reply is measured (serialized bytes) and
inspected before the Federation sees it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common.serde import recorddict_to_proto

from protos.contract import ARRAYS, CONFIG, ERROR, METRICS, SIMILARITY, Phase

# What a teacher node's reply may hold in each phase: {record key: record type}.
REPLY_SCHEMA = {
    Phase.TEACHER: {METRICS: MetricRecord},
    Phase.SELECT: {CONFIG: ConfigRecord},
    Phase.DISTILL: {ARRAYS: ArrayRecord, METRICS: MetricRecord},
}


def reply_bytes(reply: Message) -> int:
    """Serialized size of what a node sent (its RecordDict, or a Flower error's reason)."""
    if reply.has_error():
        return len(reply.error.reason.encode())
    return recorddict_to_proto(reply.content).ByteSize()


def foreign_content(reply: Message, phase: str, template: dict[str, np.ndarray]) -> list[str]:
    """What a teacher node's reply holds beyond its phase's schema (empty = nothing)."""
    if reply.has_error():
        return []
    allowed = {ERROR: ConfigRecord} if ERROR in reply.content else REPLY_SCHEMA[phase]
    found = []
    for key, record in reply.content.items():
        if not isinstance(record, allowed.get(key, ())):
            found.append(f"record {key!r} ({type(record).__name__})")
        elif isinstance(record, ArrayRecord):
            found += [f"array {name!r} {tuple(a.shape)}" for name, a in record.items()
                      if name not in template or tuple(a.shape) != template[name].shape]
        elif isinstance(record, MetricRecord):  # scalars only: a list could carry a tensor
            found += [f"list-valued metric {name!r}" for name, value in record.items()
                      if isinstance(value, list)]
        elif key == CONFIG and set(record) != {SIMILARITY}:
            found.append(f"config keys {sorted(set(record) - {SIMILARITY})}")
    return found


class ReplyMeter:
    """A Grid proxy that meters and inspects every reply before the Federation sees it."""

    def __init__(self, grid, inspect: Callable[[Message], None]) -> None:
        self.grid = grid
        self.inspect = inspect

    def get_node_ids(self):
        return self.grid.get_node_ids()

    def send_and_receive(self, messages, *, timeout=None):
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        for reply in replies:
            self.inspect(reply)
        return replies
