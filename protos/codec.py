"""The only place fedvault payloads are encoded and decoded.

Payloads travel inside Flower records as ``bytes``. A peer, a stale build or a
corrupted transfer can put anything there, so ``decode`` is the trust boundary:
it either returns a message whose fields passed its type's validator, or raises
``PayloadError`` naming the message type and the offending field. No other
exception escapes for bad input (``tests/unit/test_protos_fuzz.py`` holds it to
that).

Adding a message type: define it in ``fedvault.proto`` (with ``uint32 version =
1;``), run ``protos/regenerate.sh``, write a validator below and add one line to
``VALIDATORS``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from protos import fedvault_pb2 as pb

__all__ = [
    "CURRENT_VERSION",
    "DEFAULT_MAX_BYTES",
    "VALIDATORS",
    "PayloadError",
    "decode",
    "encode",
]

CURRENT_VERSION = 1
"""The payload version this build writes and the only one it reads."""

DEFAULT_MAX_BYTES = 1_000_000
"""Larger inputs are refused before parsing (pass ``max_bytes`` for big audits)."""

DEPOSIT_LEVELS = ("class", "sample")
MAX_DATA_SIDE = 1 << 20  # NodeInfo.data_shape: far above any image side or feature count
M = TypeVar("M", bound=Message)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class PayloadError(ValueError):
    """A payload that cannot be trusted: unparsable, wrong version or invalid content."""

    def __init__(self, message_type: str, field: str, reason: str) -> None:
        self.message_type = message_type
        self.field = field
        self.reason = reason
        super().__init__(f"{message_type}.{field}: {reason}")


def encode(msg: Message) -> bytes:
    """Validate ``msg`` and serialize it; a zero ``version`` is written as CURRENT_VERSION.

    The caller's message is not modified. Raises PayloadError when the content
    would be refused by ``decode`` on the other side, so bad payloads fail at
    their source.
    """
    validator = _validator_for(type(msg))
    if msg.version == 0:
        stamped = type(msg)()
        stamped.CopyFrom(msg)
        stamped.version = CURRENT_VERSION
        msg = stamped
    _check_version(msg)
    validator(msg)
    return msg.SerializeToString()


def decode(message_cls: type[M], data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> M:
    """Parse ``data`` as ``message_cls`` and validate it, or raise PayloadError."""
    validator = _validator_for(message_cls)
    type_name = message_cls.DESCRIPTOR.name
    if not isinstance(data, bytes):
        raise PayloadError(type_name, "<bytes>", f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise PayloadError(type_name, "<bytes>", f"{len(data)} bytes exceeds limit {max_bytes}")
    msg = message_cls()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise PayloadError(type_name, "<bytes>", f"not a valid protobuf message ({exc})") from None
    _check_version(msg)
    validator(msg)
    return msg


def _validator_for(message_cls: type) -> Callable[[Message], None]:
    # A missing validator is a bug in this build, not bad input: TypeError, not PayloadError.
    try:
        return VALIDATORS[message_cls]
    except (KeyError, TypeError):
        raise TypeError(
            f"{getattr(message_cls, '__name__', message_cls)!s} has no validator in "
            "protos.codec.VALIDATORS; register one before encoding or decoding it"
        ) from None


def _check_version(msg: Message) -> None:
    if msg.version != CURRENT_VERSION:
        reason = f"unsupported version {msg.version} (this build reads {CURRENT_VERSION})"
        _fail(msg, "version", reason)


# ---- field checks (each raises PayloadError naming the field) ----


def _fail(msg: Message, field: str, reason: str) -> None:
    raise PayloadError(msg.DESCRIPTOR.name, field, reason)


def _finite(msg: Message, *fields: str) -> None:
    """Scalar or repeated double fields hold no NaN or infinity."""
    for field in fields:
        value = getattr(msg, field)
        values = [value] if isinstance(value, float) else value
        for i, x in enumerate(values):
            if not math.isfinite(x):
                where = "" if isinstance(value, float) else f" at index {i}"
                _fail(msg, field, f"must be finite, got {x}{where}")


def _in_range(msg: Message, field: str, low: float, high: float = math.inf) -> None:
    value = getattr(msg, field)
    if not low <= value <= high:
        _fail(msg, field, f"must be in [{low}, {high}], got {value}")


def _nonempty(msg: Message, field: str) -> None:
    if not getattr(msg, field):
        _fail(msg, field, "must not be empty")


def _same_length(msg: Message, field: str, other: str) -> None:
    n, m = len(getattr(msg, field)), len(getattr(msg, other))
    if n != m:
        _fail(msg, field, f"has {n} entries but {other} has {m}")


# ---- one validator per message type ----


def _no_checks(msg: Message) -> None:
    """ErrorReply and the like: any content is acceptable."""


def _round_header(msg: pb.RoundHeader) -> None:
    try:
        # NaN/Infinity are not JSON; refuse them rather than let them into the config.
        config = json.loads(msg.config_json, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        _fail(msg, "config_json", f"not valid JSON ({type(exc).__name__}: {str(exc)[:80]})")
    if not isinstance(config, dict):
        _fail(msg, "config_json", f"must be a JSON object, got {type(config).__name__}")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _node_info(msg: pb.NodeInfo) -> None:
    # -1 means unknown for both (a node reading its own data directory).
    _in_range(msg, "num_partitions", -1)
    if msg.partition_id != -1 and not 0 <= msg.partition_id < msg.num_partitions:
        _fail(
            msg,
            "partition_id",
            f"must be -1 (unknown) or in [0, {msg.num_partitions}), got {msg.partition_id}",
        )
    # (C, H, W) or nothing; each side at most MAX_DATA_SIDE, so a declared shape can be
    # compared and printed, never used to size an allocation
    if msg.data_shape and (len(msg.data_shape) != 3
                           or not all(1 <= side <= MAX_DATA_SIDE for side in msg.data_shape)):
        _fail(msg, "data_shape", f"must be empty or (C, H, W) with sides in [1, {MAX_DATA_SIDE}], "
                                 f"got {list(msg.data_shape)}")


def _similarity_report(msg: pb.SimilarityReport) -> None:
    _finite(msg, "similarity")


def _selection_decision(msg: pb.SelectionDecision) -> None:
    _same_length(msg, "weights", "node_ids")
    _finite(msg, "weights")
    if any(w < 0 for w in msg.weights):
        _fail(msg, "weights", "must be non-negative")
    if len(set(msg.node_ids)) != len(msg.node_ids):
        _fail(msg, "node_ids", "must not repeat a node")


def _deposit_request(msg: pb.DepositRequest) -> None:
    _nonempty(msg, "deposit_id")
    if msg.level not in DEPOSIT_LEVELS:
        _fail(msg, "level", f"must be one of {DEPOSIT_LEVELS}, got {msg.level!r}")
    ids_field = "classes" if msg.level == "class" else "sample_ids"
    if not getattr(msg, ids_field):
        _fail(msg, ids_field, f"must name at least one id for level {msg.level!r}")


def _deposit_receipt(msg: pb.DepositReceipt) -> None:
    _nonempty(msg, "deposit_id")
    if not _SHA256_HEX.fullmatch(msg.module_sha256):
        _fail(msg, "module_sha256", "must be 64 lowercase hex digits")
    _finite(msg, "created_unix")


def _withdraw_request(msg: pb.WithdrawRequest) -> None:
    _nonempty(msg, "deposit_id")


def _ledger_entry(msg: pb.LedgerEntry) -> None:
    _finite(msg, "noise_multiplier", "sample_rate", "epsilon", "delta", "clip_fraction")
    _in_range(msg, "noise_multiplier", 0.0)
    _in_range(msg, "epsilon", 0.0)
    for probability in ("sample_rate", "delta", "clip_fraction"):
        _in_range(msg, probability, 0.0, 1.0)


def _audit_scores(msg: pb.AuditScores) -> None:
    _finite(msg, "member_scores", "nonmember_scores", "canary_scores")
    _same_length(msg, "canary_included", "canary_scores")


VALIDATORS: dict[type[Message], Callable[[Message], None]] = {
    pb.RoundHeader: _round_header,
    pb.ErrorReply: _no_checks,
    pb.NodeInfo: _node_info,
    pb.SimilarityReport: _similarity_report,
    pb.SelectionDecision: _selection_decision,
    pb.DepositRequest: _deposit_request,
    pb.DepositReceipt: _deposit_receipt,
    pb.WithdrawRequest: _withdraw_request,
    pb.LedgerEntry: _ledger_entry,
    pb.AuditScores: _audit_scores,
}
"""Message class -> validator. Every type that may be encoded or decoded has one line here."""
