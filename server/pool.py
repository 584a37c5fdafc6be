"""N logical clients on a pool of K simulated nodes (`pool-nodes = K`).

Flower's simulation engine polls every registered node's inbox every 0.1 s, and each
poll scans every stored message: at 10,000 registered nodes a round spends seconds in
that sweep (docs/performance.md). A pooled run registers only K nodes. Each round the
seeded sampler draws the logical clients from range(N), exactly as it draws partitions
in an unpooled run, and each sampled client plays on its own pool node for that round:
the server stamps the client's id into the RoundHeader of every message to that node
(`client`), and the node's pool wrapper (clients/pool.py) gives fedvault's ClientApp the
client's partition and the client's own state.

Within a round the pool node *is* its client: `Federation.nodes` maps the pool node's id
to the client's NodeRecord, so the checks, the DP ledger, metrics and resume all key by
the logical client (`p<i>`) and never by the pool node. An unpooled run of the same
scenario samples the same clients and trains them the same way.

A deployment is unchanged: one SuperNode is one client, and a node that is not a pool
node refuses a header that names a client (clients/app.py).
"""

from __future__ import annotations

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from methods.base import RunSpec
from methods.config import ConfigError
from protos import fedvault_pb2 as pb
from protos.codec import PayloadError, decode, encode
from protos.contract import CONFIG, HEADER, Phase
from protos.records import read_error
from server.federation import Federation, FederationError, NodeRecord
from server.run_dir import RunDirectory


def check_pool_transport(spec: RunSpec, transport: str) -> None:
    """ConfigError for a pooled run outside a simulation: a real node is one client."""
    if spec.federation.pool_nodes and transport != "simulation":
        raise ConfigError(f"pool-nodes={spec.federation.pool_nodes} runs in a simulation "
                          f"(fedvault simulate); this run's transport is {transport}, where "
                          "each SuperNode is one client: set pool-nodes=0")


def federation_for(grid: Grid, spec: RunSpec, run: RunDirectory) -> Federation:
    """The run's view of the federation: pooled when `pool-nodes` is set."""
    return PooledFederation(grid, spec, run) if spec.federation.pool_nodes else Federation(grid, spec, run)


class PooledFederation(Federation):
    def __init__(self, grid: Grid, spec: RunSpec, run: RunDirectory) -> None:
        super().__init__(grid, spec, run)
        self.lazy = False
        self.members: dict[int, NodeRecord] = {}  # the pool nodes, as they describe themselves
        self.playing: dict[int, int] = {}  # pool node id -> the logical client it plays now
        # Clients whose DP training request went unanswered: the pool node may have trained
        # and kept that round's history where the client will not find it again, and the
        # server's ledger lacks the round. They never train again (see `sample`).
        self.unaccounted: set[int] = set()
        self._dp_rounds = spec.dp.enabled and spec.dp.level == "sample"

    def _member_records(self) -> dict[int, NodeRecord]:
        return self.members

    def discover(self) -> None:
        super().discover()
        self._check_nodes_play_clients()

    def _check_nodes_play_clients(self) -> None:
        """One stamped info request before round 1: nodes without the pool wrapper (a
        ServerApp started by `flwr run` in Flower's own simulation) refuse every stamped
        request, and the run would spend all its rounds before saying so."""
        node_id = min(self.members)
        self.playing = {node_id: 0}
        try:
            replies = self._send_and_receive([self._info_request(node_id)],
                                             self.spec.federation.round_timeout)
        finally:
            self.playing = {}
        for reply in replies:  # none: a slow node, which the rounds handle as ever
            try:
                refusal = None if reply.has_error() else read_error(reply.content)
            except PayloadError:
                refusal = pb.ErrorReply(reason="an unreadable error reply")
            error = reply.error.reason if reply.has_error() else refusal and refusal.reason
            if error is not None:
                raise FederationError(
                    f"node {node_id} cannot play a logical client ({error.splitlines()[0]}); "
                    "pool-nodes runs under `fedvault simulate`, whose nodes play the clients "
                    "the server names")

    def refresh(self) -> None:
        connected = set(self.grid.get_node_ids())
        self._probe_lost(connected)
        for record in self._ask_info(sorted(connected - set(self.members) - self.lost)):
            self.members[record.node_id] = record
        if not self.playing:  # before round 1: what the pool nodes hold stands for the clients
            self.nodes = dict(self.members)

    def expected_size(self) -> int:
        return self.spec.federation.pool_nodes

    def size(self) -> int:
        return len(self.members)

    def client_count(self) -> int:
        return self.spec.federation.num_clients

    def _candidates(self) -> list[int]:
        connected = set(self.grid.get_node_ids())
        return sorted(n for n in self.members if n in connected and n not in self.lost)

    def sample(self, rnd: int, fraction: float | None = None) -> list[int]:
        """Draw this round's logical clients and give each one a pool node.

        The draw is the unpooled one (`rng.choice` over the N clients in partition order),
        so a pooled run trains the clients an unpooled run would."""
        fed = self.spec.federation
        wanted = max(1, int(round((fed.fraction_train if fraction is None else fraction)
                                  * fed.num_clients)))
        self.refresh()
        pool = self._candidates()
        if len(pool) < wanted and self._probes:
            pool = self._await_rejoin(wanted)
        count = min(wanted, len(pool))
        if len(pool) < min(fed.min_nodes, fed.pool_nodes):  # min-nodes counts pool nodes here
            raise FederationError(f"round {rnd}: {len(pool)} reachable pool node(s) left, fewer "
                                  f"than min-nodes={fed.min_nodes}")
        if count < wanted:
            self.run.log_event(f"round {rnd}: {len(pool)} reachable pool node(s) for "
                               f"{wanted} sampled clients; {count} clients train")
        rng = np.random.default_rng([fed.seed, rnd])
        clients = sorted(int(c) for c in rng.choice(fed.num_clients, size=count, replace=False))
        if barred := [c for c in clients if c in self.unaccounted]:
            # drawn as in every other run, then left out, as a client over its budget is
            self.run.log_event(f"round {rnd}: client(s) {', '.join(f'p{c}' for c in barred)} "
                               "sampled but not asked: an earlier DP release of theirs went "
                               "unanswered and is missing from the ledger")
            clients = [c for c in clients if c not in self.unaccounted]
        self.playing = dict(zip(pool, clients))
        self.nodes = {}
        facts = {r.node_id: r for r in self._ask_info(list(self.playing))}
        for node_id, client in self.playing.items():
            self.nodes[node_id] = self._client_record(node_id, client, facts.get(node_id))
        return list(self.playing)

    def _client_record(self, node_id: int, client: int, info: NodeRecord | None) -> NodeRecord:
        """Who the pool node plays is the server's assignment; its NodeInfo gives the data
        facts only (none when it did not answer: the federation-wide bound applies)."""
        record = NodeRecord(node_id, client, self.spec.federation.num_clients, "partition")
        if info is None:
            return record
        return NodeRecord(node_id, client, record.num_partitions, "partition",
                          num_examples=info.num_examples, data_shape=info.data_shape,
                          num_classes=info.num_classes, num_held_out=info.num_held_out)

    def relay(self, messages, rnd: int, phase: str) -> list[Message]:
        messages = list(messages)
        replies = super().relay(messages, rnd, phase)
        if self._dp_rounds and phase == Phase.TRAIN:
            answered = {r.metadata.src_node_id for r in replies}
            for msg in messages:
                node_id = msg.metadata.dst_node_id
                if node_id not in answered and node_id in self.playing:
                    self.unaccounted.add(self.playing[node_id])
        return replies

    def _send_and_receive(self, messages: list[Message], timeout: float) -> list[Message]:
        return super()._send_and_receive([self._stamped(m) for m in messages], timeout)

    def _stamped(self, msg: Message) -> Message:
        """The message with the client its pool node plays this round in its header (the
        content is copied: a strategy's messages share one RecordDict)."""
        client = self.playing.get(msg.metadata.dst_node_id)
        if client is None or CONFIG not in msg.content or HEADER not in msg.content[CONFIG]:
            return msg
        header = decode(pb.RoundHeader, msg.content[CONFIG][HEADER])
        header.client = client
        content = RecordDict(dict(msg.content.items()))
        content[CONFIG] = ConfigRecord({**msg.content[CONFIG], HEADER: encode(header)})
        return Message(content, dst_node_id=msg.metadata.dst_node_id,
                       message_type=msg.metadata.message_type)
