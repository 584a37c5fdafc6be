"""What the LIRF server accepts from a node (server/lirf.py): every reply is untrusted input.

Each check returns None for an acceptable reply, else the reason, which the federation
logs to events.log as a rejected update (Federation.exchange).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from flwr.app import Message

from methods.lirf.metrics import roc_problem
from methods.lirf.possession import KEY_BYTES, verifies, withdrawal_message
from methods.lirf.sparse import unpack
from methods.lirf.withdraw import DEPOSIT, SHALLOW, shallow_part
from protos import fedvault_pb2 as pb
from protos.codec import PayloadError, decode
from protos.contract import (ARRAYS, CONFIG, DEPOSIT_ACCURACY, DEPOSIT_CLASSES, MAX_ROC_POINTS,
                            METRICS, MIA_AUC, MODULE_BYTES_DENSE, MODULE_BYTES_SPARSE,
                            MODULE_SHA256, OWNER_PUBLIC_KEY, ROC_FPR, ROC_TPR, SAMPLE_STEPS)
from protos.records import from_array_record
from server.rounds import MAX_UPDATE_FACTOR
from server.validation import check_update

Check = Callable[[Message], "str | None"]


def deposit_check(original: dict[str, np.ndarray], num_classes: int) -> Check:
    """The owner's deposit reply: T's shallow part, T_r's hash, a public key, its figures."""
    template = {SHALLOW + k: v for k, v in shallow_part(original).items()}
    max_bytes = int(MAX_UPDATE_FACTOR * sum(a.nbytes for a in template.values())) + 4096

    def check(reply: Message) -> str | None:
        reason = check_update(reply.content, template, max_bytes=max_bytes)
        if reason:
            return reason
        config, metrics = reply.content.get(CONFIG) or {}, reply.content.get(METRICS) or {}
        sha, key = config.get(MODULE_SHA256), config.get(OWNER_PUBLIC_KEY)
        if not isinstance(sha, str) or len(sha) != 64:
            return "reply has no module-sha256"
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            return f"reply has no {OWNER_PUBLIC_KEY} of {KEY_BYTES} bytes"
        counts = [metrics.get(k) for k in (MODULE_BYTES_DENSE, MODULE_BYTES_SPARSE, SAMPLE_STEPS)]
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            return (f"{MODULE_BYTES_DENSE}, {MODULE_BYTES_SPARSE} and {SAMPLE_STEPS} must be "
                    f"counts (got {counts})")
        return classes_problem(config.get(DEPOSIT_CLASSES), num_classes)

    return check


def module_check(template: dict[str, np.ndarray]) -> Check:
    """The withdraw upload: the module, packed sparse under "deposit.", that unpacks to
    the shallow part's names, shapes and dtypes, all finite."""
    def check(reply: Message) -> str | None:
        try:
            unpack_module(reply, template)
        except ValueError as exc:
            return f"the uploaded module is malformed: {exc}"
        return None

    return check


def unpack_module(reply: Message, template: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The dense module of a withdraw upload (ValueError: not the module's shape)."""
    arrays = from_array_record(reply.content[ARRAYS]) if ARRAYS in reply.content else {}
    if not arrays or not all(k.startswith(DEPOSIT) for k in arrays):
        raise ValueError(f"no arrays, or arrays outside {DEPOSIT!r}")
    expected = {k: (v.shape, v.dtype) for k, v in template.items()}
    module = unpack({k[len(DEPOSIT):]: v for k, v in arrays.items()}, expected)
    bad = [k for k, v in module.items() if np.issubdtype(v.dtype, np.floating)
           and not np.isfinite(v).all()]
    if bad:
        raise ValueError(f"array {bad[0]} is not finite")
    return module


def payload_check(message_cls, key: str) -> Check:
    def check(reply: Message) -> str | None:
        config = reply.content.get(CONFIG)
        try:
            decode(message_cls, config[key] if config is not None else b"")
        except (KeyError, TypeError, PayloadError) as exc:
            return f"no valid {message_cls.DESCRIPTOR.name} under {key!r}: {exc}"
        return None

    return check


def audit_check(num_classes: int) -> Check:
    """The owner's audit reply: aggregates only, each in its range."""
    def check(reply: Message) -> str | None:
        metrics = reply.content.get(METRICS) or {}
        config = reply.content.get(CONFIG) or {}
        return (fraction_problem(metrics, MIA_AUC) or fraction_problem(metrics, DEPOSIT_ACCURACY)
                or roc_problem(metrics.get(ROC_FPR), metrics.get(ROC_TPR),
                               max_points=MAX_ROC_POINTS)
                or classes_problem(config.get(DEPOSIT_CLASSES), num_classes))

    return check


def fraction_problem(record, key: str) -> str | None:
    value = record.get(key)
    if isinstance(value, float) and 0.0 <= value <= 1.0:  # NaN fails the comparison
        return None
    return f"{key} is not a number in [0, 1] ({str(value)[:40]})"


def classes_problem(classes, num_classes: int) -> str | None:
    if isinstance(classes, list) and classes and all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c < num_classes
            for c in classes):
        return None
    return f"reply names no valid deposit classes ({str(classes)[:80]})"


def withdraw_refusal(request: pb.WithdrawRequest, signature, sender: int,
                     receipt: pb.DepositReceipt, public_key: bytes, challenge: bytes,
                     run_id: str) -> str | None:
    """Why a withdraw request must be refused (None: its sender proved it holds the
    deposit's key by signing this request's challenge; methods/lirf/possession.py)."""
    if request.deposit_id != receipt.deposit_id:
        return f"no receipt for deposit {request.deposit_id!r}"
    if request.requester_node_id != sender:
        return f"node {sender} asked in the name of node {request.requester_node_id}"
    if not isinstance(signature, bytes) or not signature:
        return f"node {sender} gave no proof of possession (no signature)"
    message = withdrawal_message(run_id, receipt.deposit_id, receipt.module_sha256, sender,
                                 challenge)
    if not verifies(public_key, signature, message):
        return (f"node {sender}'s signature does not verify under the receipt's key for this "
                f"challenge (another key, or a signature replayed from an earlier challenge)")
    return None
