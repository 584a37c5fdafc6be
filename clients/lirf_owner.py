"""The LIRF owner node: deposit, commit, withdraw, and the audit of its own D_r.

Ye et al., ECCV 2022 (arXiv:2207.08224), message flow of the design notes §2.7 (not shipped).
The node that owns D_r trains the target's shallow part and the deposit module
T_r on D_r only (methods/lirf/losses.py, through the shared training loop) and
replies with the target's shallow part and T_r's SHA-256 — never T_r itself.
T_r is kept here, first as *pending*; it becomes *committed* when the server
shows the receipt it has durably checkpointed (two-phase commit, server/lirf.py).
At withdrawal the committed module is uploaded (a copy: the module stays until
the server confirms the recovered model is committed, then it is released).

The membership audit of D_r runs here too: the server sends its own test examples'
losses (the non-members, its data); this node computes its members' losses and
replies with the AUC, a ROC curve of at most MAX_ROC_POINTS points, D_r's accuracy
and size. No per-sample value of D_r leaves the node.

Storage: a directory when the node has one (node config `state-dir`, or
`lirf.node-state-dir` for simulated nodes), written atomically and surviving a
restart; otherwise Flower's per-node `context.state` (the run's lifetime).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord, RecordDict

from clients.node_data import node_train_data
from clients.tasks import local_seed, node_key
from clients.training import train_locally
from methods.base import RunSpec
from methods.common.datasets import ArrayDataset
from methods.lirf.data import deposit_indices
from methods.lirf.method import arrays_of
from methods.lirf.metrics import membership_auc, membership_roc, predictions
from methods.lirf.pruning import conv_sparsity, make_permanent
from methods.lirf.withdraw import DEPOSIT, SHALLOW, module_sha256
from methods.registry import get_method
from protos import fedvault_pb2 as pb
from protos.codec import decode, encode
from protos.contract import (ARRAYS, COMMITTED, CONFIG, DEPOSIT_ACCURACY, DEPOSIT_CLASSES,
                            DEPOSIT_ID, DEPOSIT_REQUEST, MAX_ROC_POINTS, METRICS, MIA_AUC,
                            MODULE_SHA256, NONMEMBER_LABELS, NONMEMBER_LOSSES, NUM_EXAMPLES,
                            RECEIPT, RELEASED, ROC_FPR, ROC_TPR, WITHDRAW_REQUEST)
from protos.records import from_array_record, to_array_record

STATE_DIR = "state-dir"  # node config key
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")


# --- the node's deposit modules ---------------------------------------------------


class ModuleStore:
    """Deposit modules by id, in slot "pending" or "committed"."""

    def __init__(self, state: RecordDict, directory: Path | None) -> None:
        self.state = state
        self.directory = directory

    def put_pending(self, deposit_id: str, arrays: Mapping[str, np.ndarray]) -> str:
        """Keep a freshly trained module (replacing an uncommitted one); returns its hash."""
        self._write("pending", deposit_id, arrays)
        return module_sha256(arrays)

    def commit(self, deposit_id: str, sha256: str) -> None:
        """pending → committed, only for the module the receipt names (idempotent)."""
        current = self._read("committed", deposit_id)
        if current is not None and module_sha256(current) == sha256:
            return  # a repeated commit after a server restart
        pending = self._read("pending", deposit_id)
        if pending is None or module_sha256(pending) != sha256:
            raise ValueError(f"no pending deposit module {deposit_id!r} matches the receipt")
        self._write("committed", deposit_id, pending)
        self._delete("pending", deposit_id)

    def committed(self, deposit_id: str) -> dict[str, np.ndarray]:
        arrays = self._read("committed", deposit_id)
        if arrays is None:
            raise KeyError(f"this node holds no committed deposit module {deposit_id!r}")
        return arrays

    def release(self, deposit_id: str) -> None:
        """Forget the module once its knowledge is back in the global model (idempotent)."""
        self._delete("committed", deposit_id)

    def read(self, slot: str, deposit_id: str) -> dict[str, np.ndarray] | None:
        return self._read(slot, deposit_id)

    def slot(self, deposit_id: str) -> str | None:
        for slot in ("committed", "pending"):
            if self._read(slot, deposit_id) is not None:
                return slot
        return None

    # Two backends behind three calls: files (atomic rename) or Flower's context.state.
    def _path(self, slot: str, deposit_id: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{deposit_id}.{slot}.npz"

    def _key(self, slot: str, deposit_id: str) -> str:
        if not _SAFE_ID.fullmatch(deposit_id):
            raise ValueError(f"invalid deposit id {deposit_id!r}")
        return f"lirf-{slot}:{deposit_id}"

    def _write(self, slot: str, deposit_id: str, arrays: Mapping[str, np.ndarray]) -> None:
        key = self._key(slot, deposit_id)
        if self.directory is None:
            self.state[key] = to_array_record(arrays)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
        path = self._path(slot, deposit_id)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(buffer.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # a crash leaves the old file or the new one, never half

    def _read(self, slot: str, deposit_id: str) -> dict[str, np.ndarray] | None:
        key = self._key(slot, deposit_id)
        if self.directory is None:
            record = self.state.get(key)
            return from_array_record(record) if isinstance(record, ArrayRecord) else None
        path = self._path(slot, deposit_id)
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def _delete(self, slot: str, deposit_id: str) -> None:
        key = self._key(slot, deposit_id)
        if self.directory is None:
            self.state.pop(key, None)
        else:
            self._path(slot, deposit_id).unlink(missing_ok=True)


def module_store(spec: RunSpec, context: Context) -> ModuleStore:
    root = context.node_config.get(STATE_DIR)
    if root:
        return ModuleStore(context.state, Path(str(root)) / "lirf")
    if spec.method.node_state_dir:
        where = Path(spec.method.node_state_dir) / node_key(context.node_config)
        return ModuleStore(context.state, where)
    return ModuleStore(context.state, None)


# --- phases ---------------------------------------------------------------------


def _owner_data(spec: RunSpec, node_config: Mapping) -> ArrayDataset:
    """The node's own training data (the phase-0 layout, D_r included)."""
    spec = dataclasses.replace(spec, method=dataclasses.replace(spec.method, fedavg_data="all"))
    return node_train_data(get_method(spec.method_name), spec, node_config)


def _deposit_set(spec: RunSpec, content: RecordDict, context: Context):
    request = decode(pb.DepositRequest, content[CONFIG][DEPOSIT_REQUEST])
    data = _owner_data(spec, context.node_config)
    indices, classes = deposit_indices(data.y, level=request.level, classes=request.classes,
                                       sample_ids=request.sample_ids, num_classes=data.num_classes)
    return request, data.subset(indices), classes  # labels were read, images only of D_r


def deposit_spec(spec: RunSpec) -> RunSpec:
    """The shared loop's hyper-parameters for the deposit training."""
    cfg = spec.method
    deposit = dataclasses.replace(cfg, local_epochs=cfg.deposit_epochs, lr=cfg.deposit_lr,
                                  batch_size=cfg.deposit_batch_size,
                                  weight_decay=cfg.deposit_weight_decay)
    return dataclasses.replace(spec, method=deposit)


def deposit_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict,
                  context: Context) -> RecordDict:
    """Train T's shallow part and T_r on D_r; keep T_r pending; return T's shallow part."""
    torch.set_num_threads(1)
    method = get_method(spec.method_name)
    request, d_r, classes = _deposit_set(spec, content, context)
    net = method.build_deposit_net(spec, from_array_record(content[ARRAYS]), classes)
    seed = local_seed(spec, header.round, node_key(context.node_config))
    metrics = train_locally(method, net, d_r, deposit_spec(spec), seed=seed)
    make_permanent(net.deposit)
    sparsity = conv_sparsity(net.deposit)
    sha = module_store(spec, context).put_pending(request.deposit_id, arrays_of(net.deposit))
    target_shallow = {SHALLOW + k: v for k, v in arrays_of(net.target.shallow).items()}
    return RecordDict({
        ARRAYS: to_array_record(target_shallow),
        METRICS: MetricRecord({**metrics, "module-sparsity": sparsity}),
        CONFIG: ConfigRecord({MODULE_SHA256: sha, DEPOSIT_CLASSES: [int(c) for c in classes]}),
    })


def _receipt(content: RecordDict) -> pb.DepositReceipt:
    return decode(pb.DepositReceipt, content[CONFIG][RECEIPT])


def deposit_commit_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict,
                         context: Context) -> RecordDict:
    receipt = _receipt(content)
    module_store(spec, context).commit(receipt.deposit_id, receipt.module_sha256)
    return RecordDict({CONFIG: ConfigRecord({COMMITTED: receipt.deposit_id})})


def withdraw_request_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict,
                           context: Context) -> RecordDict:
    """This node asks for the deposit back (the server decides whether it may)."""
    request = pb.WithdrawRequest(deposit_id=str(content[CONFIG][DEPOSIT_ID]),
                                 requester_node_id=int(context.node_id))
    return RecordDict({CONFIG: ConfigRecord({WITHDRAW_REQUEST: encode(request)})})


def withdraw_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict,
                   context: Context) -> RecordDict:
    """Upload a copy of the committed module the receipt names."""
    receipt = _receipt(content)
    module = module_store(spec, context).committed(receipt.deposit_id)
    sha = module_sha256(module)
    if sha != receipt.module_sha256:
        raise ValueError(f"the stored module of {receipt.deposit_id!r} does not match the receipt")
    return RecordDict({
        ARRAYS: to_array_record({DEPOSIT + k: v for k, v in module.items()}),
        CONFIG: ConfigRecord({MODULE_SHA256: sha}),
    })


def withdraw_commit_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict,
                          context: Context) -> RecordDict:
    receipt = _receipt(content)
    module_store(spec, context).release(receipt.deposit_id)
    return RecordDict({CONFIG: ConfigRecord({RELEASED: receipt.deposit_id})})


def audit_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict,
                context: Context) -> RecordDict:
    """The loss-threshold membership audit of the given model on D_r, run on this node.

    Only aggregates leave: the AUC, a bounded ROC curve, D_r's accuracy and size."""
    torch.set_num_threads(1)
    nonmember_losses, nonmember_labels = _nonmembers(content[CONFIG])  # before reading D_r
    _, d_r, classes = _deposit_set(spec, content, context)
    model = _audited_model(spec, from_array_record(content[ARRAYS]), classes)
    pred, member_losses = predictions(model, d_r.x, d_r.y)
    nonmembers = nonmember_losses[np.isin(nonmember_labels, classes)]  # never-seen, same classes
    fpr, tpr = membership_roc(member_losses, nonmembers, max_points=MAX_ROC_POINTS)
    return RecordDict({
        CONFIG: ConfigRecord({DEPOSIT_CLASSES: [int(c) for c in classes]}),
        METRICS: MetricRecord({
            MIA_AUC: membership_auc(member_losses, nonmembers),
            ROC_FPR: [float(v) for v in fpr], ROC_TPR: [float(v) for v in tpr],
            DEPOSIT_ACCURACY: float((pred == d_r.y).mean()), NUM_EXAMPLES: len(d_r)}),
    })


def _nonmembers(config: ConfigRecord) -> tuple[np.ndarray, np.ndarray]:
    """The server's test losses and labels; a malformed request fails as a bad request."""
    losses = np.asarray(config[NONMEMBER_LOSSES], dtype=np.float64)
    labels = np.asarray(config[NONMEMBER_LABELS], dtype=np.int64)
    if losses.ndim != 1 or losses.shape != labels.shape or not np.isfinite(losses).all():
        raise ValueError(f"{NONMEMBER_LOSSES} must be finite and aligned with "
                         f"{NONMEMBER_LABELS}")
    return losses, labels


def _audited_model(spec: RunSpec, arrays: dict[str, np.ndarray], classes) -> torch.nn.Module:
    method = get_method(spec.method_name)
    if any(k.startswith(DEPOSIT) for k in arrays):  # a recovered model T̃
        return method.build_recovered(spec, arrays, classes)
    model = method.build_model(spec)
    method.load_shared_state(model, arrays)
    return model
