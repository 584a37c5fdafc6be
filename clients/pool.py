"""A simulated pool node: plays the logical client the server names (`pool-nodes`).

server/pool.py stamps the logical client a pool node plays this round into the
RoundHeader of every message to it. This wrapper, which only `fedvault simulate` puts in
front of fedvault's ClientApp, gives that app the client's own view of the node:
- node config: the client's partition (`partition-id` = the client, `num-partitions` =
  num-clients), so data, local seeds and the node key are the client's;
- state: only what this client kept (`context.state` entries under `client-<id>/`), so
  per-client state (the DP accountant's history) is keyed by the logical client, never
  by the pool node. A client that trained on another pool node before finds no history
  here and takes the server ledger's copy, as a restarted node does
  (clients/privacy.py load_history); docs/performance.md#pooled-clients says what that
  means for the guarantee.
A message without a client passes through unchanged when it is the pool's own discovery,
or not a fedvault request at all; any other request of a pooled run must name its client.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

from clients.app import BAD_REQUEST, run_spec_of
from clients.node_data import DATA_DIR, NUM_PARTITIONS, PARTITION_ID, POOL_CLIENT
from protos.contract import CONFIG, HEADER, INFO
from protos.records import error_content, read_header

STATE_PREFIX = "client-"

NodeConfigOf = Callable[[Mapping[str, Any], int, int], dict[str, Any]]


def client_node_config(node_config: Mapping[str, Any], client: int, num_clients: int) -> dict[str, Any]:
    """The node config of logical client `client` of `num_clients`."""
    config = {k: v for k, v in node_config.items() if k != DATA_DIR}
    return {**config, PARTITION_ID: client, NUM_PARTITIONS: num_clients, POOL_CLIENT: client}


def client_state(state: RecordDict, client: int) -> RecordDict:
    """What `client` kept on this pool node, under its own keys."""
    prefix = f"{STATE_PREFIX}{client}/"
    return RecordDict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


def keep_client_state(state: RecordDict, client: int, view: RecordDict) -> None:
    prefix = f"{STATE_PREFIX}{client}/"
    for key in [k for k in state.keys() if k.startswith(prefix)]:
        del state[key]
    for key, value in view.items():
        state[prefix + key] = value


def pooled_app(inner: ClientApp, node_config_of: NodeConfigOf = client_node_config) -> ClientApp:
    """`inner` behind the pool: every message naming a client runs as that client."""
    wrapper = ClientApp()

    def forward(msg: Message, context: Context) -> Message:
        if CONFIG not in msg.content or HEADER not in msg.content[CONFIG]:
            return inner(msg, context)  # not a fedvault request (SecAgg+'s own stages)
        try:
            header = read_header(msg)
            client = int(header.client) if header.HasField("client") else None
            fed = run_spec_of(header.config_json).federation  # parsed once per run, shared
            num_clients, pool_nodes = fed.num_clients, fed.pool_nodes
        except Exception as exc:  # noqa: BLE001 - untrusted bytes: refused, not a crash
            return Message(error_content(BAD_REQUEST, f"{type(exc).__name__}: {exc}"), reply_to=msg)
        if client is None and pool_nodes and msg.metadata.message_type != f"query.{INFO}":
            # only the pool's own discovery runs as the node itself, never a training request
            return Message(error_content(BAD_REQUEST, "a pooled run names the client of every "
                                         "request but the pool's discovery"), reply_to=msg)
        if client is None:
            return inner(msg, context)
        if not 0 <= client < num_clients:
            return Message(error_content(BAD_REQUEST, f"client {client} is outside the run's "
                                            f"num-clients={num_clients}"), reply_to=msg)
        view = client_state(context.state, client)
        played = Context(run_id=context.run_id, node_id=context.node_id,
                         node_config=node_config_of(dict(context.node_config), client, num_clients),
                         state=view, run_config=context.run_config)
        reply = inner(msg, played)
        keep_client_state(context.state, client, view)
        return reply

    for register in (wrapper.train(), wrapper.query(), wrapper.query("info"), wrapper.evaluate()):
        register(forward)
    return wrapper
