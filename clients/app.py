"""The ClientApp: handlers unpack a message, call a plain function, pack the reply.

Every request carries the typed RoundHeader with the resolved run config, so a
node needs nothing but its node config (its partition or its data directory).
The header's phase selects the function (clients/phases.py). A failure
becomes a structured ErrorReply that the server logs with the node and round,
instead of an opaque crash.
"""

from __future__ import annotations

import traceback
from functools import lru_cache
from typing import Callable

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from clients.dp_policy import NodePolicy
from clients.node_data import POOL_CLIENT, NodeFacts, describe_node, node_facts
from clients.phases import PHASES
from clients.secure_aggregation import secure_aggregation_mod
from methods.base import RunSpec
from methods.resolve import run_spec_from_json
from protos import fedvault_pb2 as pb
from protos.codec import encode
from protos.contract import CONFIG, INFO, NODE_INFO
from protos.records import error_content, read_header

# SecAgg+ rounds pass through Flower's mod; every other message goes straight to a handler
app = ClientApp(mods=[secure_aggregation_mod])

# ErrorReply codes
BAD_REQUEST = 1
NODE_FAILURE = 2


def _guarded(msg: Message, work: Callable[[], RecordDict]) -> Message:
    try:
        content = work()
    except (ValueError, KeyError) as exc:  # bad config, bad payload, bad data dir
        content = error_content(BAD_REQUEST, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - reported to the server, not hidden
        tail = traceback.format_exc(limit=3)
        content = error_content(NODE_FAILURE, f"{type(exc).__name__}: {exc}\n{tail}")
    return Message(content, reply_to=msg)


def _dispatch(msg: Message, context: Context) -> RecordDict:
    header = read_header(msg)
    check_client(header, context.node_config)
    if header.phase not in PHASES:
        raise ValueError(f"unknown phase {header.phase!r}; this node knows {sorted(PHASES)}")
    spec = run_spec_of(header.config_json)
    # the node's own privacy floor, before any phase touches its records
    NodePolicy.of(context.node_config).check_phase(spec, header.phase, header.round)
    return PHASES[header.phase](spec, header, msg.content, context)


def check_client(header: pb.RoundHeader, node_config) -> None:
    """A header that names a logical client is for a simulated pool node playing that
    client (clients/pool.py); a SuperNode of its own is one client and plays no other."""
    if header.HasField("client") and node_config.get(POOL_CLIENT) != header.client:
        raise ValueError(f"the request names logical client {header.client}, but this node "
                         "is one client of its own: pool-nodes runs in simulation only")


@lru_cache(maxsize=8)
def run_spec_of(config_json: str) -> RunSpec:
    # Every request of a run carries the same config: parse it once per process (the
    # spec is frozen, so sharing it is safe); a few runs' worth are kept.
    return run_spec_from_json(config_json)


@app.query(INFO)  # message type "query.info"
def info(msg: Message, context: Context) -> Message:
    def work() -> RecordDict:
        check_client(read_header(msg), context.node_config)
        pid, num_partitions, source = describe_node(context.node_config)
        facts = _data_facts(msg, context)
        payload = pb.NodeInfo(partition_id=pid, num_partitions=num_partitions, data_source=source,
                              num_examples=facts.num_examples, data_shape=facts.data_shape,
                              num_classes=facts.num_classes, num_held_out=facts.num_held_out)
        return RecordDict({CONFIG: ConfigRecord({NODE_INFO: encode(payload)})})

    return _guarded(msg, work)


UNDECLARED = NodeFacts(num_examples=0, data_shape=(), num_classes=0, num_held_out=0)


def _data_facts(msg: Message, context: Context) -> NodeFacts:
    """The node's data under the run config of the info request (example count, shape,
    classes, held-out count); none declared (the server falls back to a federation-wide
    bound and skips its data check) when they cannot be read, so a node whose data fail to
    load still answers and reports that failure where it trains, with the round."""
    try:
        return node_facts(run_spec_of(read_header(msg).config_json), context.node_config)
    except Exception:  # noqa: BLE001 - the facts are advisory; training reports the cause
        return UNDECLARED


@app.train()
def train(msg: Message, context: Context) -> Message:
    return _guarded(msg, lambda: _dispatch(msg, context))


@app.query()
def query(msg: Message, context: Context) -> Message:
    return _guarded(msg, lambda: _dispatch(msg, context))


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    return _guarded(msg, lambda: _dispatch(msg, context))
