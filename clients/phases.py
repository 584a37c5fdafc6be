"""Client-side phases: what a node does for each RoundHeader.phase it receives.

One line per phase of protos/contract.py's PHASES. A phase function takes
(spec, header, content, context) and returns the reply's RecordDict; it is a
plain function, testable without Flower. The ClientApp (clients/app.py) only unpacks, dispatches and packs.
"""

from __future__ import annotations

from typing import Callable

from flwr.app import Context, MetricRecord, RecordDict

from clients.fedsa_host import distill_phase, select_phase, teacher_phase
from clients.audit_scores import audit_phase
from clients.evaluation import evaluate_phase
from clients.private_train import private_train_phase
from clients import lirf_owner
from clients.node_device import device_record, node_device
from clients.tasks import train_task
from methods.base import RunSpec
from protos import fedvault_pb2 as pb
from protos.contract import ARRAYS, CONFIG, METRICS, Phase
from protos.records import from_array_record, to_array_record

PhaseFunction = Callable[[RunSpec, pb.RoundHeader, RecordDict, Context], RecordDict]


def train_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict, context: Context) -> RecordDict:
    arrays, metrics = train_task(
        spec, header.round, from_array_record(content[ARRAYS]), context.node_config
    )
    return RecordDict({ARRAYS: to_array_record(arrays), METRICS: MetricRecord(metrics),
                       CONFIG: device_record(node_device(spec, context.node_config))})


PHASES: dict[str, PhaseFunction] = {
    Phase.TRAIN: train_phase,
    Phase.PRIVATE_TRAIN: private_train_phase,  # DP-SGD ledger / audit canaries (docs/privacy.md)
    Phase.AUDIT: audit_phase,  # privacy audit scores (docs/privacy.md)
    Phase.TEACHER: teacher_phase,  # FedSA
    Phase.SELECT: select_phase,  # FedSA
    Phase.DISTILL: distill_phase,  # FedSA
    Phase.DEPOSIT: lirf_owner.deposit_phase,  # LIRF
    Phase.DEPOSIT_COMMIT: lirf_owner.deposit_commit_phase,  # LIRF
    Phase.WITHDRAW_REQUEST: lirf_owner.withdraw_request_phase,  # LIRF
    Phase.WITHDRAW: lirf_owner.withdraw_phase,  # LIRF
    Phase.WITHDRAW_COMMIT: lirf_owner.withdraw_commit_phase,  # LIRF
    Phase.LIRF_AUDIT: lirf_owner.audit_phase,  # LIRF
    Phase.EVALUATE: evaluate_phase,  # federated evaluation (docs/runs.md#evaluation)
}
