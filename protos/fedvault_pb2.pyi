from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RoundHeader(_message.Message):
    __slots__ = ("version", "round", "phase", "method", "seed", "config_json", "client")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    version: int
    round: int
    phase: str
    method: str
    seed: int
    config_json: str
    client: int
    def __init__(self, version: _Optional[int] = ..., round: _Optional[int] = ..., phase: _Optional[str] = ..., method: _Optional[str] = ..., seed: _Optional[int] = ..., config_json: _Optional[str] = ..., client: _Optional[int] = ...) -> None: ...

class ErrorReply(_message.Message):
    __slots__ = ("version", "code", "reason", "field")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    version: int
    code: int
    reason: str
    field: str
    def __init__(self, version: _Optional[int] = ..., code: _Optional[int] = ..., reason: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("version", "partition_id", "num_partitions", "num_examples", "data_source", "hosts_teacher", "teacher_task", "data_shape", "num_classes", "num_held_out")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    DATA_SOURCE_FIELD_NUMBER: _ClassVar[int]
    HOSTS_TEACHER_FIELD_NUMBER: _ClassVar[int]
    TEACHER_TASK_FIELD_NUMBER: _ClassVar[int]
    DATA_SHAPE_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    NUM_HELD_OUT_FIELD_NUMBER: _ClassVar[int]
    version: int
    partition_id: int
    num_partitions: int
    num_examples: int
    data_source: str
    hosts_teacher: bool
    teacher_task: str
    data_shape: _containers.RepeatedScalarFieldContainer[int]
    num_classes: int
    num_held_out: int
    def __init__(self, version: _Optional[int] = ..., partition_id: _Optional[int] = ..., num_partitions: _Optional[int] = ..., num_examples: _Optional[int] = ..., data_source: _Optional[str] = ..., hosts_teacher: _Optional[bool] = ..., teacher_task: _Optional[str] = ..., data_shape: _Optional[_Iterable[int]] = ..., num_classes: _Optional[int] = ..., num_held_out: _Optional[int] = ...) -> None: ...

class SimilarityReport(_message.Message):
    __slots__ = ("version", "round", "similarity", "num_probe", "teacher_task")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    NUM_PROBE_FIELD_NUMBER: _ClassVar[int]
    TEACHER_TASK_FIELD_NUMBER: _ClassVar[int]
    version: int
    round: int
    similarity: float
    num_probe: int
    teacher_task: str
    def __init__(self, version: _Optional[int] = ..., round: _Optional[int] = ..., similarity: _Optional[float] = ..., num_probe: _Optional[int] = ..., teacher_task: _Optional[str] = ...) -> None: ...

class SelectionDecision(_message.Message):
    __slots__ = ("version", "round", "mode", "node_ids", "weights")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    version: int
    round: int
    mode: str
    node_ids: _containers.RepeatedScalarFieldContainer[int]
    weights: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, version: _Optional[int] = ..., round: _Optional[int] = ..., mode: _Optional[str] = ..., node_ids: _Optional[_Iterable[int]] = ..., weights: _Optional[_Iterable[float]] = ...) -> None: ...

class DepositRequest(_message.Message):
    __slots__ = ("version", "deposit_id", "classes", "sample_ids", "level")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    version: int
    deposit_id: str
    classes: _containers.RepeatedScalarFieldContainer[int]
    sample_ids: _containers.RepeatedScalarFieldContainer[int]
    level: str
    def __init__(self, version: _Optional[int] = ..., deposit_id: _Optional[str] = ..., classes: _Optional[_Iterable[int]] = ..., sample_ids: _Optional[_Iterable[int]] = ..., level: _Optional[str] = ...) -> None: ...

class DepositReceipt(_message.Message):
    __slots__ = ("version", "deposit_id", "owner_node_id", "classes", "sample_ids", "module_sha256", "created_unix")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    MODULE_SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    version: int
    deposit_id: str
    owner_node_id: int
    classes: _containers.RepeatedScalarFieldContainer[int]
    sample_ids: _containers.RepeatedScalarFieldContainer[int]
    module_sha256: str
    created_unix: float
    def __init__(self, version: _Optional[int] = ..., deposit_id: _Optional[str] = ..., owner_node_id: _Optional[int] = ..., classes: _Optional[_Iterable[int]] = ..., sample_ids: _Optional[_Iterable[int]] = ..., module_sha256: _Optional[str] = ..., created_unix: _Optional[float] = ...) -> None: ...

class WithdrawRequest(_message.Message):
    __slots__ = ("version", "deposit_id", "requester_node_id")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    version: int
    deposit_id: str
    requester_node_id: int
    def __init__(self, version: _Optional[int] = ..., deposit_id: _Optional[str] = ..., requester_node_id: _Optional[int] = ...) -> None: ...

class LedgerEntry(_message.Message):
    __slots__ = ("version", "round", "noise_multiplier", "sample_rate", "steps", "epsilon", "delta", "clip_fraction", "accountant")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    NOISE_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    CLIP_FRACTION_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTANT_FIELD_NUMBER: _ClassVar[int]
    version: int
    round: int
    noise_multiplier: float
    sample_rate: float
    steps: int
    epsilon: float
    delta: float
    clip_fraction: float
    accountant: str
    def __init__(self, version: _Optional[int] = ..., round: _Optional[int] = ..., noise_multiplier: _Optional[float] = ..., sample_rate: _Optional[float] = ..., steps: _Optional[int] = ..., epsilon: _Optional[float] = ..., delta: _Optional[float] = ..., clip_fraction: _Optional[float] = ..., accountant: _Optional[str] = ...) -> None: ...

class AuditScores(_message.Message):
    __slots__ = ("version", "round", "kind", "member_scores", "nonmember_scores", "canary_scores", "canary_included")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEMBER_SCORES_FIELD_NUMBER: _ClassVar[int]
    NONMEMBER_SCORES_FIELD_NUMBER: _ClassVar[int]
    CANARY_SCORES_FIELD_NUMBER: _ClassVar[int]
    CANARY_INCLUDED_FIELD_NUMBER: _ClassVar[int]
    version: int
    round: int
    kind: str
    member_scores: _containers.RepeatedScalarFieldContainer[float]
    nonmember_scores: _containers.RepeatedScalarFieldContainer[float]
    canary_scores: _containers.RepeatedScalarFieldContainer[float]
    canary_included: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, version: _Optional[int] = ..., round: _Optional[int] = ..., kind: _Optional[str] = ..., member_scores: _Optional[_Iterable[float]] = ..., nonmember_scores: _Optional[_Iterable[float]] = ..., canary_scores: _Optional[_Iterable[float]] = ..., canary_included: _Optional[_Iterable[bool]] = ...) -> None: ...
