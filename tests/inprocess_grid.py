"""A Grid stand-in that hands each message to the real ClientApp in this process.

Workflows run against it exactly as against Flower's grids, in seconds and
without Ray (`client` replaces fedvault's ClientApp, as a simulation's pool wrapper does), and every message and reply is recorded for inspection. Nodes
listed in `dead` never answer (a killed SuperNode); `tamper` may rewrite a
node's replies (a malicious or broken client). As over the wire, each node gets its own
copy of a message, and a ClientApp that raises answers with Flower's error reply.
"""

from __future__ import annotations

from typing import Callable, Iterable

from flwr.app import Context, Error, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.supercore.task_identity import TaskIdentity

from clients.app import app as client_app


class InProcessGrid:
    def __init__(
        self,
        node_configs: list[dict],
        *,
        dead: Iterable[int] = (),
        tamper: Callable[[int, Message], Message] | None = None,
        first_node_id: int = 1000,
        client=None,
    ) -> None:
        # The ClientApp expects a task identity in its process (set by Flower's runtimes).
        TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = 1
        self.contexts = {
            first_node_id + i: Context(
                run_id=1, node_id=first_node_id + i, node_config=dict(cfg),
                state=RecordDict(), run_config={},
            )
            for i, cfg in enumerate(node_configs)
        }
        self.dead = set(dead)
        self.tamper = tamper
        self.client = client or client_app  # e.g. clients/pool.py's pool node
        self.sent: list[Message] = []
        self.replies: list[tuple[int, Message]] = []
        self._pushed: dict[str, Message] = {}

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        replies = []
        for msg in messages:
            node_id = msg.metadata.dst_node_id
            self.sent.append(msg)
            if node_id in self.dead:
                continue
            # a copy, as the wire gives each node its own (a handler may edit its message:
            # Flower's SecAgg+ mod pops keys from a record every node's message shares)
            delivered = message_from_proto(message_to_proto(msg))
            try:
                reply = self.client(delivered, self.contexts[node_id])
            except Exception as exc:  # as Flower's runtimes answer a ClientApp that raises
                reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                                      reason=f"{type(exc)}:<'{exc}'>"), reply_to=delivered)
            if self.tamper is not None:
                reply = self.tamper(node_id, reply)
            self.replies.append((node_id, reply))
            replies.append(reply)
        return replies

    # Flower's non-blocking pair: a live node answers at once and the reply waits to be
    # pulled; a dead node's message stays pending (it never answers).
    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = msg.object_id  # as Flower's grids do
            ids.append(msg.metadata.message_id)
            for reply in self.send_and_receive([msg]):
                self._pushed[msg.metadata.message_id] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        return [self._pushed.pop(i) for i in list(message_ids) if i in self._pushed]


def partition_nodes(n: int) -> list[dict]:
    return [{"partition-id": i, "num-partitions": n} for i in range(n)]


def dies_in_round_2(num_nodes: int) -> InProcessGrid:
    """A grid whose server "dies" (KeyboardInterrupt) in round 2, after round 1's checkpoint."""
    grid, calls = InProcessGrid(partition_nodes(num_nodes)), {"n": 0}
    original = grid.send_and_receive

    def send_and_receive(messages, timeout=None):
        calls["n"] += 1  # 1: the nodes' info, 2: round 1, 3: round 2
        if calls["n"] == 3:
            raise KeyboardInterrupt("the server died in round 2")
        return original(messages, timeout=timeout)

    grid.send_and_receive = send_and_receive
    return grid
