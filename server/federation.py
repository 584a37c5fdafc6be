"""The server's view of the federation: who is there, who is sampled, who answered.

Wraps Flower's Grid with the concerns every workflow shares:
- wait (bounded) for the expected nodes and learn each node's partition, so
  sampling is reproducible from the seed whatever ids Flower hands out;
- send with an explicit timeout, so a dead node costs at most one timeout;
- log every missing, failed or rejected reply to events.log with the node and
  round, and stop cleanly when fewer than `min-nodes` nodes remain.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid
from flwr.superlink.grid import HttpGrid

from methods.base import RunSpec
from methods.common.device import reported_label
from protos import fedvault_pb2 as pb
from protos.codec import PayloadError, decode, encode
from protos.contract import CONFIG, DEVICE, HEADER, INFO, NODE_INFO, node_key, partition_key
from protos.records import read_error, round_header
from server.run_dir import RunDirectory

# Above this many planned clients the federation is not enumerated: sampling draws from
# the sorted node ids and only the sampled nodes are asked for their NodeInfo, so
# 10,000 virtual clients cost no 10,000 info round trips and no 10,000 records
# (docs/performance.md). Smaller federations keep partition-ordered sampling, which a resumed run
# reproduces whatever ids Flower hands out; a lazy one reproduces it for the same ids.
FULL_DISCOVERY_MAX_NODES = 256
# Flower 1.39's deployed grid (HttpGrid) sleeps 3 s between pulls, so a round whose
# replies are in after 0.3 s still waits 3 s. Poll it from 50 ms, doubling to 0.5 s.
# (Simulation's InMemoryGrid already polls every 0.1 s and keeps Flower's loop.)
PULL_INTERVALS = (0.05, 0.5)


# The fallback bound on a reply's num-examples (see Federation.example_bound) when no node
# declared a count: above every data set fedvault loads (CIFAR-10: 50,000 training images).
UNDECLARED_EXAMPLES = 1_000_000


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
    num_examples: int = 0
    """The training examples the node declared in its NodeInfo; 0 = not declared."""
    data_shape: tuple[int, ...] = ()
    """One training example's (C, H, W) as the node declared it; () = not declared."""
    num_classes: int = 0
    """The classes the node's labels need (its largest label + 1, or its class list); 0 = not declared."""
    num_held_out: int = 0
    """The examples the node holds out for federated evaluation; 0 = none or not declared."""

    @property
    def own_data(self) -> bool:
        """A node reading its own data (`--data-dir`), not a partition of the run's data set."""
        return self.partition_id < 0

    def data_text(self) -> str:
        """"1×8×8 data with 10 classes": what the node declared it holds."""
        return f"{'×'.join(map(str, self.data_shape))} data with {self.num_classes} classes"

    @property
    def label(self) -> str:
        where = f"partition {self.partition_id}" if self.partition_id >= 0 else self.data_source
        return f"node {self.node_id} ({where})"

    @property
    def key(self) -> str:
        """The node's name on both sides of the wire (ledger, audit): contract.node_key."""
        return node_key(self.partition_id, self.data_source)

    @property
    def tag(self) -> str:
        """Short name in metrics.jsonl: `p<i>` for a partition, else `node-<Flower node id>`."""
        pid = self.partition_id
        return partition_key(pid) if pid >= 0 else f"node-{self.node_id}"

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
        self._probes: dict[str, int] = {}  # message id of a pending rejoin probe -> node id
        # Lazy: `nodes` holds only the current round's sample (see FULL_DISCOVERY_MAX_NODES).
        self.lazy = spec.federation.num_clients > FULL_DISCOVERY_MAX_NODES
        self.bytes_received = 0
        self.bytes_sent = 0
        self.devices: dict[str, str] = {}  # node key -> the device its last train reply named

    # --- membership -------------------------------------------------------------
    def discover(self) -> None:
        """Wait until the expected nodes are connected and known (bounded)."""
        fed = self.spec.federation
        deadline = time.monotonic() + fed.node_wait_timeout
        announced = False
        while True:
            self.refresh()
            expected = self.expected_size()
            if self.size() >= expected:
                return
            if not announced:  # at once, not after the whole wait
                self._announce_wait(expected)
                announced = True
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if self.size() < fed.min_nodes:
            raise FederationError(
                f"only {self.size()} node(s) connected within {fed.node_wait_timeout:.0f} s; "
                f"the run needs at least min-nodes={fed.min_nodes}"
            )
        self.run.log_event(
            f"expected {expected} nodes, {self.size()} connected within "
            f"{fed.node_wait_timeout:.0f} s; continuing with them"
        )

    def _announce_wait(self, expected: int) -> None:
        """Say what the run waits for, how many nodes are here and how to size the run."""
        fed, here = self.spec.federation, self.size()
        text = (f"waiting up to {fed.node_wait_timeout:.0f} s for {expected} nodes "
                f"(num-clients={fed.num_clients}); {here} connected now. To run with the nodes "
                f"present, add num-clients={here} to the run's overrides (flwr run ... -c "
                f"\"overrides='num-clients={here}'\"; fedvault: --set num-clients={here})")
        print(f"[fedvault] {text}", flush=True)
        self.run.log_event(text)

    def expected_size(self) -> int:
        """Simulated and demo nodes know the federation size from their node config."""
        sizes = {n.num_partitions for n in self.nodes.values() if n.num_partitions > 0}
        return max(sizes) if sizes else self.spec.federation.num_clients

    def size(self) -> int:
        """Nodes the run counts on: the known ones, or (lazy) every connected, live one."""
        if self.lazy:
            return len(set(self.grid.get_node_ids()) - self.lost)
        return len(self.nodes)

    def refresh(self) -> None:
        """Learn about newly connected nodes (a restarted node rejoins this way)."""
        connected = set(self.grid.get_node_ids())
        self._probe_lost(connected)
        if not self.lazy:  # a lazy federation learns nodes when they are sampled
            self._learn(sorted(connected - set(self.nodes) - self.lost))

    def _learn(self, node_ids: list[int]) -> None:
        for record in self._ask_info(node_ids):
            self.nodes[record.node_id] = record

    def _ask_info(self, node_ids: list[int]) -> list[NodeRecord]:
        """The NodeInfo records of the nodes that answer (at most one round timeout)."""
        if not node_ids:
            return []
        messages = [self._info_request(nid) for nid in node_ids]
        replies = self._send_and_receive(messages, self.spec.federation.round_timeout)
        return [r for r in map(self._node_record, replies) if r is not None]

    def client_count(self) -> int:
        """The clients the run counts on (summary.json's num_clients)."""
        return self.size()

    def _probe_lost(self, connected: set[int]) -> None:
        """Let a lost node that answers again rejoin, without ever waiting for it.

        Under node authentication a restarted SuperNode keeps its node id, so it
        is never "new"; and a killed one stays listed as connected until its
        heartbeats expire (about a minute). So each lost, listed node gets one
        NodeInfo request pushed without waiting; the node rejoins once its answer
        is pulled at a later refresh. An error reply (the node is offline) or no
        reply costs nothing and the node is asked again later.
        """
        if self._probes:
            for reply in self.grid.pull_messages(list(self._probes)):
                node_id = self._probes.pop(reply.metadata.reply_to_message_id, None)
                if node_id is None or reply.has_error():
                    continue
                record = self._node_record(reply)
                if record is not None and record.node_id == node_id:
                    self._member_records()[node_id] = record
                    self.lost.discard(node_id)
                    self.run.log_event(f"{record.label} answers again: it rejoins the federation")
        retry = sorted((self.lost & connected) - set(self._probes.values()))
        if retry:
            ids = self.grid.push_messages([self._info_request(n) for n in retry])
            self._probes.update(zip(ids, retry))

    def _member_records(self) -> dict[int, NodeRecord]:
        """Where the records of the federation's members live (a pool keeps its own)."""
        return self.nodes

    def _info_request(self, node_id: int) -> Message:
        header = encode(round_header(self.spec, 0, INFO))
        content = RecordDict({CONFIG: ConfigRecord({HEADER: header})})
        return Message(content, dst_node_id=node_id, message_type=f"query.{INFO}")

    def _node_record(self, reply: Message) -> NodeRecord | None:
        node_id = reply.metadata.src_node_id
        if reply.has_error():
            self.run.log_event(f"info: node {node_id} failed: {reply.error.reason}")
            return None
        try:
            info = decode(pb.NodeInfo, reply.content[CONFIG][NODE_INFO])
        except (KeyError, PayloadError) as exc:
            self.run.log_event(f"info: node {node_id} sent an invalid NodeInfo: {exc}")
            return None
        return NodeRecord(
            node_id, info.partition_id, info.num_partitions, info.data_source,
            info.hosts_teacher, info.teacher_task, int(info.num_examples),
            tuple(int(side) for side in info.data_shape), int(info.num_classes),
            int(info.num_held_out),
        )

    def example_bound(self, node_id: int, spec: RunSpec) -> int:
        """The most `num-examples` a train reply of this node may claim under `spec`: the
        examples it declared in its NodeInfo times the local epochs.

        A node declares its count for the run's config (the info request's header). A
        node that declared none (an older node, or one whose data could not be counted),
        or a round trained under another config (a stage of a multi-stage method, whose
        overrides may change each node's data), falls back to the largest count any node
        of the federation declared, else UNDECLARED_EXAMPLES: bounded, so no reply can
        claim 1e15 examples and set the FedAvg model alone."""
        record = self.nodes.get(node_id)
        declared = record.num_examples if record is not None else 0
        same_data = dataclasses.replace(spec, federation=self.spec.federation) == self.spec
        if not declared or not same_data:
            declared = max((n.num_examples for n in self.nodes.values()), default=0) or UNDECLARED_EXAMPLES
        return int(declared) * max(1, int(getattr(spec.method, "local_epochs", 1)))

    def alive(self) -> list[NodeRecord]:
        connected = set(self.grid.get_node_ids())
        nodes = [n for i, n in self.nodes.items() if i in connected and i not in self.lost]
        return sorted(nodes, key=NodeRecord.sort_key)

    def sample(self, rnd: int, fraction: float | None = None) -> list[int]:
        """Seeded sample of live nodes for round `rnd`; errors when too few remain."""
        fed = self.spec.federation
        self.refresh()
        alive = self._candidates()
        if len(alive) < fed.min_nodes and self._probes:
            alive = self._await_rejoin(fed.min_nodes)
        if len(alive) < fed.min_nodes:
            raise FederationError(
                f"round {rnd}: {len(alive)} reachable node(s) left, fewer than min-nodes={fed.min_nodes}"
            )
        fraction = fed.fraction_train if fraction is None else fraction
        count = max(1, int(round(fraction * len(alive))))
        rng = np.random.default_rng([fed.seed, rnd])
        chosen = rng.choice(len(alive), size=count, replace=False)
        picked = [alive[i] for i in sorted(chosen)]
        if self.lazy:  # records for this round's sample only, none for the others
            self.nodes = {}
            self._learn(picked)
        return picked

    def _await_rejoin(self, needed: int) -> list[int]:
        """Too few live nodes, but lost ones are being asked back (a node that was only
        slow, or restarted): wait for their answers, at most one round timeout."""
        deadline = time.monotonic() + self.spec.federation.round_timeout
        while True:
            self.refresh()
            alive = self._candidates()
            if len(alive) >= needed or not self._probes or time.monotonic() > deadline:
                return alive
            time.sleep(0.5)

    def _candidates(self) -> list[int]:
        """The live node ids a sample is drawn from, in a seed-reproducible order."""
        if self.lazy:
            return sorted(set(self.grid.get_node_ids()) - self.lost)
        return [n.node_id for n in self.alive()]

    def label(self, node_id: int) -> str:
        record = self.nodes.get(node_id)
        return record.label if record else f"node {node_id}"

    def tag(self, node_id: int) -> str:
        record = self.nodes.get(node_id)
        return record.tag if record else f"node-{node_id}"

    def node_key(self, node_id: int) -> str:
        """The node's wire name (NodeRecord.key); `node-<id>` if it never said who it is."""
        record = self.nodes.get(node_id)
        return record.key if record else f"node-{node_id}"

    # --- exchange -----------------------------------------------------------------
    def exchange(
        self,
        messages: Iterable[Message],
        rnd: int,
        phase: str,
        check: Check | None = None,
        on_reject: Callable[[Message, str], None] | None = None,
    ) -> list[Message]:
        """Send, wait at most round-timeout, and return the valid replies in partition order.

        `on_reject(reply, reason)` sees each reply that carried content but failed `check`:
        the server received it even though it aggregates none of it (the DP ledger
        accounts such releases too)."""
        replies = self.relay(messages, rnd, phase)
        valid = [r for r in replies if self.accept(r, rnd, phase, check, on_reject)]
        self.note_devices(valid)
        return self.in_order(valid)

    def note_devices(self, replies: Iterable[Message]) -> None:
        """Record the device each valid reply names (untrusted text: kept only when it
        reads as a device label)."""
        for reply in replies:
            label = reported_label(reply.content.config_records.get(CONFIG, {}).get(DEVICE))
            if label is not None:
                self.devices[self.node_key(reply.metadata.src_node_id)] = label

    def in_order(self, replies: Iterable[Message]) -> list[Message]:
        """Replies in partition order (aggregation and the ledger never depend on arrival)."""
        return sorted(replies, key=lambda r: self._order(r.metadata.src_node_id))

    def relay(self, messages: Iterable[Message], rnd: int, phase: str) -> list[Message]:
        """Send, wait at most round-timeout, and return every reply, errors included; a
        node that sent none is logged and dropped from the federation."""
        messages = list(messages)
        timeout = self.spec.federation.round_timeout
        replies = self._send_and_receive(messages, timeout)
        answered = {r.metadata.src_node_id for r in replies}
        for msg in messages:
            if msg.metadata.dst_node_id not in answered:
                self.lost.add(msg.metadata.dst_node_id)
                self.run.log_event(
                    f"round {rnd} {phase}: {self.label(msg.metadata.dst_node_id)} sent no reply "
                    f"within {timeout:.0f} s; dropped from the federation"
                )
        return replies

    def _send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
        if not isinstance(self.grid, HttpGrid):
            return list(self.grid.send_and_receive(messages, timeout=timeout))
        pending = set(self.grid.push_messages(messages))
        deadline = time.monotonic() + timeout
        replies: list[Message] = []
        wait = PULL_INTERVALS[0]
        while pending:
            got = list(self.grid.pull_messages(pending))
            replies.extend(got)
            pending -= {r.metadata.reply_to_message_id for r in got}
            left = deadline - time.monotonic()
            if not pending or left <= 0:
                break
            time.sleep(min(wait, left))
            wait = min(2 * wait, PULL_INTERVALS[1])
        return replies

    def _order(self, node_id: int) -> tuple:
        record = self.nodes.get(node_id)
        return record.sort_key() if record else (1 << 30, "", node_id)

    def accept(
        self,
        reply: Message,
        rnd: int,
        phase: str,
        check: Check | None,
        on_reject: Callable[[Message, str], None] | None = None,
    ) -> bool:
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
        try:
            reason = check(reply) if check else None
        except Exception as exc:  # noqa: BLE001 - a reply is untrusted input: reject it, not the run
            reason = f"reply could not be checked ({type(exc).__name__}: {exc})"
        if reason:
            self.run.log_event(f"round {rnd} {phase}: {who} update rejected: {reason}")
            if on_reject is not None:
                on_reject(reply, reason)
            return False
        return True
