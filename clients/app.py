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

from clients.node_data import describe_node
from clients.phases import PHASES
from methods.base import RunSpec
from protos import fedvault_pb2 as pb
from protos.codec import encode
from protos.records import CONFIG, error_content, read_header

app = ClientApp()

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
    if header.phase not in PHASES:
        raise ValueError(f"unknown phase {header.phase!r}; this node knows {sorted(PHASES)}")
    spec = _run_spec(header.config_json)
    return PHASES[header.phase](spec, header, msg.content, context)


@lru_cache(maxsize=8)
def _run_spec(config_json: str) -> RunSpec:
    # Every request of a run carries the same config: parse it once per process (the
    # spec is frozen, so sharing it is safe); a few runs' worth are kept.
    return RunSpec.from_json(config_json)


@app.query("info")
def info(msg: Message, context: Context) -> Message:
    def work() -> RecordDict:
        pid, num_partitions, source = describe_node(context.node_config)
        payload = pb.NodeInfo(partition_id=pid, num_partitions=num_partitions, data_source=source)
        return RecordDict({CONFIG: ConfigRecord({"info": encode(payload)})})

    return _guarded(msg, work)


@app.train()
def train(msg: Message, context: Context) -> Message:
    return _guarded(msg, lambda: _dispatch(msg, context))


@app.query()
def query(msg: Message, context: Context) -> Message:
    return _guarded(msg, lambda: _dispatch(msg, context))


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    return _guarded(msg, lambda: _dispatch(msg, context))
