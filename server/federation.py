"""The server's view of the federation: who is there, who is sampled, who answered.

Wraps Flower's Grid with the concerns every workflow shares:
- wait (bounded) for the expected nodes and learn each node's partition, so
  sampling is reproducible from the seed whatever ids Flower hands out;
- send with an explicit timeout, so a dead node costs at most one timeout;
- log every missing, failed or rejected reply to events.log with the node and
  round, and stop cleanly when fewer than `min-nodes` nodes remain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from methods.base import RunSpec
from protos import fedvault_pb2 as pb
from protos.codec import PayloadError, decode, encode
from protos.records import CONFIG, HEADER, read_error, round_header
from server.run_dir import RunDirectory


class FederationError(RuntimeError):
    """The federation cannot continue (too few nodes); the message says why."""


@dataclass(frozen=True)
class NodeRecord:
    node_id: int
    partition_id: int
    num_partitions: int
    data_source: str
    hosts_teacher: bool = False
    teacher_task: str = ""

    @property
    def label(self) -> str:
        where = f"partition {self.partition_id}" if self.partition_id >= 0 else self.data_source
        return f"node {self.node_id} ({where})"

    def sort_key(self) -> tuple:
        return (self.partition_id, self.data_source, self.node_id)


class SampledGrid:
    """A Grid whose connected nodes are exactly the sampled ones.

    Flower strategies sample inside `configure_train`; handing them this view
    makes them address the nodes our seeded sampler chose.
    """

    def __init__(self, node_ids: list[int]) -> None:
        self._node_ids = list(node_ids)

    def get_node_ids(self) -> list[int]:
        return list(self._node_ids)


Check = Callable[[Message], "str | None"]


class Federation:
    def __init__(self, grid: Grid, spec: RunSpec, run: RunDirectory) -> None:
        self.grid = grid
        self.spec = spec
        self.run = run
        self.nodes: dict[int, NodeRecord] = {}
        self.lost: set[int] = set()
        self.bytes_received = 0
        self.bytes_sent = 0

    # --- membership -------------------------------------------------------------
    def discover(self) -> None:
        """Wait until the expected nodes are connected and known (bounded)."""
        fed = self.spec.federation
        deadline = time.monotonic() + fed.node_wait_timeout
        while True:
            self.refresh()
            expected = self.expected_size()
            if len(self.nodes) >= expected:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if len(self.nodes) < fed.min_nodes:
            raise FederationError(
                f"only {len(self.nodes)} node(s) connected within {fed.node_wait_timeout:.0f} s; "
                f"the run needs at least min-nodes={fed.min_nodes}"
            )
        self.run.log_event(
            f"expected {expected} nodes, {len(self.nodes)} connected within "
            f"{fed.node_wait_timeout:.0f} s; continuing with them"
        )

    def expected_size(self) -> int:
        """Simulated and demo nodes know the federation size from their node config."""
        sizes = {n.num_partitions for n in self.nodes.values() if n.num_partitions > 0}
        return max(sizes) if sizes else self.spec.federation.num_clients

    def refresh(self) -> None:
        """Learn about newly connected nodes (a restarted node rejoins this way)."""
        connected = set(self.grid.get_node_ids())
        new = sorted(connected - set(self.nodes) - self.lost)
        if not new:
            return
        messages = [self._info_request(nid) for nid in new]
        for reply in self.grid.send_and_receive(messages, timeout=self.spec.federation.round_timeout):
            record = self._node_record(reply)
            if record is not None:
                self.nodes[record.node_id] = record

    def _info_request(self, node_id: int) -> Message:
        header = encode(round_header(self.spec, 0, "info"))
        content = RecordDict({CONFIG: ConfigRecord({HEADER: header})})
        return Message(content, dst_node_id=node_id, message_type="query.info")

    def _node_record(self, reply: Message) -> NodeRecord | None:
        node_id = reply.metadata.src_node_id
        if reply.has_error():
            self.run.log_event(f"info: node {node_id} failed: {reply.error.reason}")
            return None
        try:
            info = decode(pb.NodeInfo, reply.content[CONFIG]["info"])
        except (KeyError, PayloadError) as exc:
            self.run.log_event(f"info: node {node_id} sent an invalid NodeInfo: {exc}")
            return None
        return NodeRecord(
            node_id, info.partition_id, info.num_partitions, info.data_source,
            info.hosts_teacher, info.teacher_task,
        )

    def alive(self) -> list[NodeRecord]:
        connected = set(self.grid.get_node_ids())
        nodes = [n for i, n in self.nodes.items() if i in connected and i not in self.lost]
        return sorted(nodes, key=NodeRecord.sort_key)

    def sample(self, rnd: int, fraction: float | None = None) -> list[int]:
        """Seeded sample of live nodes for round `rnd`; errors when too few remain."""
        fed = self.spec.federation
        self.refresh()
        alive = self.alive()
        if len(alive) < fed.min_nodes:
            raise FederationError(
                f"round {rnd}: {len(alive)} reachable node(s) left, fewer than min-nodes={fed.min_nodes}"
            )
        fraction = fed.fraction_train if fraction is None else fraction
        count = max(1, int(round(fraction * len(alive))))
        rng = np.random.default_rng([fed.seed, rnd])
        chosen = rng.choice(len(alive), size=count, replace=False)
        return [alive[i].node_id for i in sorted(chosen)]

    def label(self, node_id: int) -> str:
        record = self.nodes.get(node_id)
        return record.label if record else f"node {node_id}"

    # --- exchange -----------------------------------------------------------------
    def exchange(
        self, messages: Iterable[Message], rnd: int, phase: str, check: Check | None = None
    ) -> list[Message]:
        """Send, wait at most round-timeout, and return the valid replies in partition order."""
        messages = list(messages)
        timeout = self.spec.federation.round_timeout
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        answered = {r.metadata.src_node_id for r in replies}
        for msg in messages:
            if msg.metadata.dst_node_id not in answered:
                self.lost.add(msg.metadata.dst_node_id)
                self.run.log_event(
                    f"round {rnd} {phase}: {self.label(msg.metadata.dst_node_id)} sent no reply "
                    f"within {timeout:.0f} s; dropped from the federation"
                )
        valid = [r for r in replies if self._accept(r, rnd, phase, check)]
        return sorted(valid, key=lambda r: self._order(r.metadata.src_node_id))

    def _order(self, node_id: int) -> tuple:
        record = self.nodes.get(node_id)
        return record.sort_key() if record else (1 << 30, "", node_id)

    def _accept(self, reply: Message, rnd: int, phase: str, check: Check | None) -> bool:
        who = self.label(reply.metadata.src_node_id)
        if reply.has_error():
            self.run.log_event(f"round {rnd} {phase}: {who} failed: {reply.error.reason}")
            return False
        try:
            error = read_error(reply.content)
        except PayloadError as exc:
            error, reason = None, f"undecodable error payload ({exc})"
            self.run.log_event(f"round {rnd} {phase}: {who} rejected: {reason}")
            return False
        if error is not None:
            self.run.log_event(f"round {rnd} {phase}: {who} reported an error: {error.reason}")
            return False
        reason = check(reply) if check else None
        if reason:
            self.run.log_event(f"round {rnd} {phase}: {who} update rejected: {reason}")
            return False
        return True
