"""Flower-record glue shared by the ServerApp and the ClientApp.

Conversions between plain numpy dicts and Flower records, and the round header.

Everything fedvault sends carries a typed `RoundHeader` (protos/) in its
ConfigRecord under HEADER; model weights travel as an ArrayRecord under ARRAYS,
reply figures as a MetricRecord under METRICS. Every key and phase name is in
protos/contract.py.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

from protos import fedvault_pb2 as pb
from protos.codec import decode, encode
from protos.contract import CONFIG, ERROR, ERROR_PAYLOAD, HEADER, LEDGER_HISTORY, PRIVACY


def to_array_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    # reshape: ascontiguousarray turns 0-d arrays (BatchNorm step counters) into shape (1,)
    return ArrayRecord(
        {k: Array(np.ascontiguousarray(v).reshape(np.shape(v))) for k, v in arrays.items()}
    )


def from_array_record(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in record.items()}


def round_header(spec, rnd: int, phase: str) -> pb.RoundHeader:
    return pb.RoundHeader(
        round=rnd,
        phase=phase,
        method=spec.method_name,
        seed=spec.federation.seed,
        config_json=spec.to_json(),
    )


def header_config(spec, rnd: int, phase: str, **extra) -> ConfigRecord:
    """The ConfigRecord every request carries: the typed header plus extras."""
    return ConfigRecord({HEADER: encode(round_header(spec, rnd, phase)), **extra})


def read_header(msg: Message) -> pb.RoundHeader:
    return decode(pb.RoundHeader, msg.content[CONFIG][HEADER])


def error_content(code: int, reason: str, field: str = "") -> RecordDict:
    """A structured error reply a client sends instead of raising."""
    payload = encode(pb.ErrorReply(code=code, reason=reason[:2000], field=field))
    return RecordDict({ERROR: ConfigRecord({ERROR_PAYLOAD: payload})})


def read_error(content: RecordDict) -> pb.ErrorReply | None:
    if ERROR not in content:
        return None
    return decode(pb.ErrorReply, content[ERROR][ERROR_PAYLOAD])


def ledger_entries(content: RecordDict, key: str = LEDGER_HISTORY) -> list[pb.LedgerEntry]:
    """The LedgerEntry payloads under content[PRIVACY][key] ([] when absent)."""
    if PRIVACY not in content or key not in content[PRIVACY]:
        return []
    value = content[PRIVACY][key]
    return [decode(pb.LedgerEntry, item) for item in (value if isinstance(value, list) else [value])]
