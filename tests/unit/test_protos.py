"""Claims about fedvault's typed payloads (protos/fedvault.proto) and their codec."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor

from protos import codec
from protos import fedvault_pb2 as pb
from protos.codec import PayloadError

pytestmark = pytest.mark.unit

PROTOS_DIR = Path(codec.__file__).resolve().parent
SHA = "ab" * 32

# One valid instance per message type (the fuzz tests start from these too).
VALID_EXAMPLES = {
    pb.RoundHeader: pb.RoundHeader(
        round=3, phase="train", method="fedsa", seed=2**63 + 5,
        config_json='{"num-rounds": 5, "lirf": {"deposit-classes": [7, 8, 9]}}',
    ),
    pb.ErrorReply: pb.ErrorReply(code=400, reason="bad deposit", field="deposit_id"),
    pb.NodeInfo: pb.NodeInfo(
        partition_id=2, num_partitions=10, num_examples=500, data_source="mnist",
        hosts_teacher=True, teacher_task="digits-0-4",
    ),
    pb.SimilarityReport: pb.SimilarityReport(
        round=1, similarity=-0.25, num_probe=64, teacher_task="digits-5-9"
    ),
    pb.SelectionDecision: pb.SelectionDecision(
        round=1, mode="top-k", node_ids=[3, 2**64 - 1], weights=[0.75, 0.25]
    ),
    pb.DepositRequest: pb.DepositRequest(deposit_id="d-1", classes=[7, 8, 9], level="class"),
    pb.DepositReceipt: pb.DepositReceipt(
        deposit_id="d-1", owner_node_id=42, classes=[7, 8, 9], sample_ids=[11, 12],
        module_sha256=SHA, created_unix=1.7e9,
    ),
    pb.WithdrawRequest: pb.WithdrawRequest(deposit_id="d-1", requester_node_id=42),
    pb.LedgerEntry: pb.LedgerEntry(
        round=4, noise_multiplier=1.1, sample_rate=0.01, steps=600, epsilon=2.5,
        delta=1e-5, clip_fraction=0.4, accountant="rdp",
    ),
    pb.AuditScores: pb.AuditScores(
        round=5, kind="loss", member_scores=[0.1, 0.2], nonmember_scores=[0.9],
        canary_scores=[0.3, -1.5, 0.0], canary_included=[True, False, True],
    ),
}


def _message_classes_in_file() -> list[type]:
    return [getattr(pb, name) for name in pb.DESCRIPTOR.message_types_by_name]


def _ids(classes) -> list[str]:
    return [cls.DESCRIPTOR.name for cls in classes]


def test_every_message_type_has_a_validator_and_an_example():
    in_file = set(_message_classes_in_file())
    assert set(codec.VALIDATORS) == in_file
    assert set(VALID_EXAMPLES) == in_file


@pytest.mark.parametrize("message_name", list(pb.DESCRIPTOR.message_types_by_name))
def test_every_message_type_starts_with_uint32_version(message_name):
    descriptor = pb.DESCRIPTOR.message_types_by_name[message_name]
    version = descriptor.fields_by_name.get("version")
    assert version is not None, f"{message_name} has no `version` field"
    assert version.number == 1, f"{message_name}.version must be field 1"
    assert version.type == FieldDescriptor.TYPE_UINT32


@pytest.mark.parametrize("cls", list(VALID_EXAMPLES), ids=_ids(VALID_EXAMPLES))
def test_every_message_round_trips(cls):
    original = VALID_EXAMPLES[cls]
    decoded = codec.decode(cls, codec.encode(original))
    expected = cls()
    expected.CopyFrom(original)
    expected.version = codec.CURRENT_VERSION
    assert decoded == expected


def test_encode_stamps_current_version_without_touching_the_callers_message():
    request = pb.WithdrawRequest(deposit_id="d-1")
    data = codec.encode(request)
    assert request.version == 0
    assert codec.decode(pb.WithdrawRequest, data).version == codec.CURRENT_VERSION == 1


@pytest.mark.parametrize("version", [2, 7, 2**32 - 1])
@pytest.mark.parametrize("cls", list(VALID_EXAMPLES), ids=_ids(VALID_EXAMPLES))
def test_unknown_version_is_refused_naming_version(cls, version):
    msg = cls()
    msg.CopyFrom(VALID_EXAMPLES[cls])
    msg.version = version
    with pytest.raises(PayloadError) as info:
        codec.decode(cls, msg.SerializeToString())
    assert info.value.field == "version"
    assert info.value.message_type == cls.DESCRIPTOR.name
    assert f"unsupported version {version} (this build reads 1)" in str(info.value)
    with pytest.raises(PayloadError, match="version"):
        codec.encode(msg)


def test_payload_without_version_is_refused():
    unversioned = pb.DepositRequest(deposit_id="d-1", classes=[1], level="class")
    with pytest.raises(PayloadError, match=r"DepositRequest\.version: unsupported version 0"):
        codec.decode(pb.DepositRequest, unversioned.SerializeToString())


@pytest.mark.parametrize(
    "data, reason",
    [
        ("not bytes", "expected bytes, got str"),
        (bytearray(b"\x08\x01"), "expected bytes, got bytearray"),
        (b"\xff\xff\xff", "not a valid protobuf message"),
        (b"\x08\x01" + b"\x1a\x10abc", "not a valid protobuf message"),  # truncated string
        (b"\x08\x01" + b"\x1a\x02\xc3\x28", "not a valid protobuf message"),  # bad UTF-8
    ],
)
def test_unparsable_input_is_refused_naming_bytes(data, reason):
    with pytest.raises(PayloadError, match=reason) as info:
        codec.decode(pb.ErrorReply, data)
    assert (info.value.message_type, info.value.field) == ("ErrorReply", "<bytes>")


def test_oversized_input_is_refused_before_parsing():
    data = codec.encode(pb.ErrorReply(reason="x" * 100))
    assert codec.decode(pb.ErrorReply, data, max_bytes=len(data)).reason == "x" * 100
    with pytest.raises(PayloadError, match="exceeds limit") as info:
        codec.decode(pb.ErrorReply, data, max_bytes=len(data) - 1)
    assert info.value.field == "<bytes>"


def test_unregistered_message_type_is_a_programming_error():
    with pytest.raises(TypeError, match="no validator"):
        codec.decode(timestamp_pb2.Timestamp, b"")
    with pytest.raises(TypeError, match="no validator"):
        codec.encode(timestamp_pb2.Timestamp())


def _with(cls, **changes) -> Callable[[object], None]:
    def mutate(msg):
        for name, value in changes.items():
            field = getattr(msg, name)
            if isinstance(value, list):
                del field[:]
                field.extend(value)
            else:
                setattr(msg, name, value)

    return mutate


NAN, INF = float("nan"), float("inf")
BAD_CASES = [
    # (message class, change to its valid example, field the error must name)
    (pb.RoundHeader, {"config_json": ""}, "config_json"),
    (pb.RoundHeader, {"config_json": "{not json"}, "config_json"),
    (pb.RoundHeader, {"config_json": "[1, 2]"}, "config_json"),
    (pb.RoundHeader, {"config_json": '{"lr": NaN}'}, "config_json"),
    (pb.RoundHeader, {"config_json": "[" * 50_000}, "config_json"),
    (pb.NodeInfo, {"partition_id": -2}, "partition_id"),
    (pb.NodeInfo, {"partition_id": 10, "num_partitions": 10}, "partition_id"),
    (pb.NodeInfo, {"partition_id": 0, "num_partitions": -1}, "partition_id"),
    (pb.NodeInfo, {"num_partitions": -2, "partition_id": -1}, "num_partitions"),
    (pb.SimilarityReport, {"similarity": NAN}, "similarity"),
    (pb.SimilarityReport, {"similarity": -INF}, "similarity"),
    (pb.SelectionDecision, {"weights": [1.0]}, "weights"),
    (pb.SelectionDecision, {"weights": [0.5, NAN]}, "weights"),
    (pb.SelectionDecision, {"weights": [1.5, -0.5]}, "weights"),
    (pb.SelectionDecision, {"node_ids": [3, 3]}, "node_ids"),
    (pb.DepositRequest, {"deposit_id": ""}, "deposit_id"),
    (pb.DepositRequest, {"level": "model"}, "level"),
    (pb.DepositRequest, {"level": ""}, "level"),
    (pb.DepositRequest, {"classes": []}, "classes"),
    (pb.DepositRequest, {"level": "sample"}, "sample_ids"),
    (pb.DepositReceipt, {"deposit_id": ""}, "deposit_id"),
    (pb.DepositReceipt, {"module_sha256": "abc"}, "module_sha256"),
    (pb.DepositReceipt, {"created_unix": INF}, "created_unix"),
    (pb.WithdrawRequest, {"deposit_id": ""}, "deposit_id"),
    (pb.LedgerEntry, {"noise_multiplier": NAN}, "noise_multiplier"),
    (pb.LedgerEntry, {"noise_multiplier": -0.1}, "noise_multiplier"),
    (pb.LedgerEntry, {"sample_rate": INF}, "sample_rate"),
    (pb.LedgerEntry, {"sample_rate": 1.01}, "sample_rate"),
    (pb.LedgerEntry, {"epsilon": NAN}, "epsilon"),
    (pb.LedgerEntry, {"epsilon": INF}, "epsilon"),
    (pb.LedgerEntry, {"epsilon": -1.0}, "epsilon"),
    (pb.LedgerEntry, {"delta": -1e-9}, "delta"),
    (pb.LedgerEntry, {"delta": NAN}, "delta"),
    (pb.LedgerEntry, {"clip_fraction": 2.0}, "clip_fraction"),
    (pb.LedgerEntry, {"clip_fraction": -INF}, "clip_fraction"),
    (pb.AuditScores, {"member_scores": [0.1, NAN]}, "member_scores"),
    (pb.AuditScores, {"nonmember_scores": [INF]}, "nonmember_scores"),
    (pb.AuditScores, {"canary_scores": [0.1, 0.2, -INF]}, "canary_scores"),
    (pb.AuditScores, {"canary_included": [True]}, "canary_included"),
]


@pytest.mark.parametrize(
    "cls, changes, field",
    BAD_CASES,
    ids=[f"{c.DESCRIPTOR.name}-{f}-{i}" for i, (c, _, f) in enumerate(BAD_CASES)],
)
def test_validator_rejects_bad_field_naming_it(cls, changes, field):
    msg = cls()
    msg.CopyFrom(VALID_EXAMPLES[cls])
    msg.version = codec.CURRENT_VERSION
    _with(cls, **changes)(msg)

    with pytest.raises(PayloadError) as info:
        codec.decode(cls, msg.SerializeToString())
    assert (info.value.message_type, info.value.field) == (cls.DESCRIPTOR.name, field)
    assert str(info.value).startswith(f"{cls.DESCRIPTOR.name}.{field}: ")
    # The sender's side refuses the same payload, so it never leaves the node.
    with pytest.raises(PayloadError) as info:
        codec.encode(msg)
    assert info.value.field == field


GOOD_EDGE_CASES = [
    (pb.NodeInfo, {"partition_id": -1, "num_partitions": -1}),  # a data-dir node
    (pb.NodeInfo, {"partition_id": -1, "num_partitions": 0}),
    (pb.NodeInfo, {"partition_id": 0, "num_partitions": 1}),
    (pb.SelectionDecision, {"node_ids": [], "weights": []}),
    (pb.SelectionDecision, {"node_ids": [1, 2], "weights": [0.0, 0.0]}),
    (pb.DepositRequest, {"level": "sample", "classes": [], "sample_ids": [0]}),
    (pb.RoundHeader, {"config_json": "{}"}),
    (pb.LedgerEntry, {"sample_rate": 1.0, "delta": 0.0, "clip_fraction": 1.0, "epsilon": 0.0}),
    (pb.LedgerEntry, {"noise_multiplier": 0.0, "sample_rate": 0.0, "steps": 0}),
    (pb.AuditScores, {"member_scores": [], "canary_scores": [], "canary_included": []}),
    (pb.ErrorReply, {"code": 0, "reason": "", "field": ""}),
]


@pytest.mark.parametrize(
    "cls, changes", GOOD_EDGE_CASES, ids=[c.DESCRIPTOR.name for c, _ in GOOD_EDGE_CASES]
)
def test_validator_accepts_boundary_values(cls, changes):
    msg = cls()
    msg.CopyFrom(VALID_EXAMPLES[cls])
    _with(cls, **changes)(msg)
    assert codec.decode(cls, codec.encode(msg)).version == codec.CURRENT_VERSION


def test_generated_code_is_reproducible(tmp_path):
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.skip("grpc_tools is not importable (install the dev extra: grpcio-tools)")
    env = {**os.environ, "OUT_DIR": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(PROTOS_DIR / "regenerate.sh")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for name in ("fedvault_pb2.py", "fedvault_pb2.pyi"):
        regenerated = (tmp_path / name).read_bytes()
        committed = (PROTOS_DIR / name).read_bytes()
        assert regenerated == committed, (
            f"protos/{name} is stale or hand-edited; run protos/regenerate.sh and commit"
        )
