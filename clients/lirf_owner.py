"""The LIRF owner node: deposit, commit, withdraw, and the audit of its own D_r.

Ye et al., ECCV 2022 (arXiv:2207.08224), message flow of the design notes §2.7 (not shipped).
The node that owns D_r trains the target's shallow part and the deposit module
T_r on D_r only (with `anchor-samples`, also on some of its preserved-class samples;
methods/lirf/losses.py, through the shared training loop) and
replies with the target's shallow part, T_r's SHA-256 and the public half of a key pair
made for this deposit — never T_r itself. T_r is kept here (clients/lirf_store.py,
sparse, with the private key), first as *pending*; it becomes *committed* when the server
shows the receipt it has durably checkpointed (two-phase commit, server/lirf.py).
To withdraw, this node signs the server's fresh challenge with that key (proof of
possession, methods/lirf/possession.py); the committed module is then uploaded, sparse
(a copy: the module stays until the server confirms the recovered model is committed,
then it is released with its key).

The membership audit of D_r runs here too: the server sends its own test examples'
losses (the non-members, its data); this node computes its members' losses and
replies with the AUC, a ROC curve of at most MAX_ROC_POINTS points, D_r's accuracy
and size. No per-sample value of D_r leaves the node.

Sample-level deposit: the node trains on D_r and its other samples of D_r's classes
(methods/lirf/data.py), so that T forgets the samples and keeps the classes.

The deposit training and the audit's forward passes run on the node's device
(clients/node_device.py, as the train phase does; the deposit reply names it); the nets
are built from the server's arrays on the CPU and then moved. What is kept (the store)
and what is sent are CPU numpy arrays (methods/lirf/method.py arrays_of), so a module
deposited on a GPU node is withdrawn as it is anywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, MetricRecord, RecordDict

from clients.lirf_store import STATE_DIR, ModuleStore, module_store  # noqa: F401 (re-exported)
from clients.node_data import node_train_data
from clients.node_device import device_record, node_device
from clients.tasks import local_seed, node_key
from clients.training import train_locally
from methods.base import RunSpec
from methods.common.datasets import ArrayDataset
from methods.lirf.data import anchored_deposit_set, deposit_indices, sample_deposit_set
from methods.lirf.method import arrays_of
from methods.lirf.metrics import membership_auc, membership_roc, predictions
from methods.lirf.possession import new_key_pair, sign, withdrawal_message
from methods.lirf.pruning import conv_sparsity, make_permanent
from methods.lirf.sparse import nbytes, pack
from methods.lirf.withdraw import DEPOSIT, SHALLOW, module_sha256
from methods.registry import get_method
from protos import fedvault_pb2 as pb
from protos.codec import decode, encode
from protos.contract import (ARRAYS, COMMITTED, CONFIG, DEPOSIT_ACCURACY, DEPOSIT_CLASSES,
                            DEPOSIT_ID, DEPOSIT_REQUEST, LIRF_RUN_ID, MAX_ROC_POINTS, METRICS,
                            MIA_AUC, MODULE_BYTES_DENSE, MODULE_BYTES_SPARSE, MODULE_SHA256,
                            NONMEMBER_LABELS, NONMEMBER_LOSSES, NUM_EXAMPLES, OWNER_PUBLIC_KEY,
                            RECEIPT, RELEASED, ROC_FPR, ROC_TPR, SAMPLE_STEPS, WITHDRAW_CHALLENGE,
                            WITHDRAW_REQUEST, WITHDRAW_SIGNATURE)
from protos.records import from_array_record, to_array_record


# --- phases ---------------------------------------------------------------------


def _owner_data(spec: RunSpec, node_config: Mapping) -> ArrayDataset:
    """The node's own training data (the phase-0 layout, D_r included)."""
    spec = dataclasses.replace(spec, method=dataclasses.replace(spec.method, fedavg_data="all"))
    return node_train_data(get_method(spec.method_name), spec, node_config)


def _deposit_data(spec: RunSpec, content: RecordDict, context: Context):
    """(request, the owner's data, D_r's indices into it, D_r's classes); reads labels only."""
    request = decode(pb.DepositRequest, content[CONFIG][DEPOSIT_REQUEST])
    data = _owner_data(spec, context.node_config)
    indices, classes = deposit_indices(data.y, level=request.level, classes=request.classes,
                                       sample_ids=request.sample_ids, num_classes=data.num_classes)
    return request, data, indices, classes


def _deposit_set(spec: RunSpec, content: RecordDict, context: Context):
    """(request, D_r's images, classes): images only of D_r (the audit's members)."""
    request, data, indices, classes = _deposit_data(spec, content, context)
    return request, data.subset(indices), classes


def _training_set(spec: RunSpec, content: RecordDict, context: Context, seed: int):
    """(request, what the deposit trains on, classes): D_r at the class level (and
    `anchor-samples` of the owner's preserved-class samples, drawn by `seed`); D_r and the
    owner's other samples of its classes at the sample level."""
    request, data, indices, classes = _deposit_data(spec, content, context)
    if request.level == "class" and spec.method.anchor_samples:
        rng = np.random.default_rng(seed)
        return request, anchored_deposit_set(data, indices, classes,
                                             spec.method.anchor_samples, rng), classes
    if request.level == "class":
        return request, data.subset(indices), classes  # never a preserved image
    return request, sample_deposit_set(data, indices, classes), classes


def deposit_spec(spec: RunSpec) -> RunSpec:
    """The shared loop's hyper-parameters for the deposit training."""
    cfg = spec.method
    deposit = dataclasses.replace(cfg, local_epochs=cfg.deposit_epochs, lr=cfg.deposit_lr,
                                  batch_size=cfg.deposit_batch_size,
                                  weight_decay=cfg.deposit_weight_decay)
    return dataclasses.replace(spec, method=deposit)


def deposit_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict,
                  context: Context) -> RecordDict:
    """Train T's shallow part and T_r; keep T_r pending with a new signing key; return T's
    shallow part, T_r's hash and the key's public half."""
    device = node_device(spec, context.node_config)  # and 1 CPU thread on the CPU
    method = get_method(spec.method_name)
    seed = local_seed(spec, header.round, node_key(context.node_config))
    request, train_set, classes = _training_set(spec, content, context, seed)
    net = method.build_deposit_net(spec, from_array_record(content[ARRAYS]), classes)
    training = deposit_spec(spec)
    metrics = train_locally(method, net, train_set, training, seed=seed, device=device)
    make_permanent(net.deposit)
    module = arrays_of(net.deposit)
    private_key, public_key = new_key_pair()
    sha = module_store(spec, context).put_pending(request.deposit_id, module, private_key)
    target_shallow = {SHALLOW + k: v for k, v in arrays_of(net.target.shallow).items()}
    return RecordDict({
        ARRAYS: to_array_record(target_shallow),
        METRICS: MetricRecord({
            **metrics, "module-sparsity": conv_sparsity(net.deposit),
            MODULE_BYTES_DENSE: nbytes(module), MODULE_BYTES_SPARSE: nbytes(pack(module)),
            SAMPLE_STEPS: training.method.local_epochs * len(train_set)}),
        CONFIG: ConfigRecord({MODULE_SHA256: sha, OWNER_PUBLIC_KEY: public_key,
                              DEPOSIT_CLASSES: [int(c) for c in classes],
                              **device_record(device)}),
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
    """This node asks for the deposit back, signing the server's challenge if it holds the
    deposit's key (the server decides whether it may; without the key it asks unsigned)."""
    config = content[CONFIG]
    deposit_id, node_id = str(config[DEPOSIT_ID]), int(context.node_id)
    store = module_store(spec, context)
    key = store.signing_key(deposit_id) if store.slot(deposit_id) == "committed" else None
    signature = b""
    if key is not None:
        message = withdrawal_message(str(config[LIRF_RUN_ID]), deposit_id,
                                     module_sha256(store.committed(deposit_id)), node_id,
                                     bytes(config[WITHDRAW_CHALLENGE]))
        signature = sign(key, message)
    request = pb.WithdrawRequest(deposit_id=deposit_id, requester_node_id=node_id)
    return RecordDict({CONFIG: ConfigRecord({WITHDRAW_REQUEST: encode(request),
                                             WITHDRAW_SIGNATURE: signature})})


def withdraw_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict,
                   context: Context) -> RecordDict:
    """Upload a copy of the committed module the receipt names, sparse as it is stored."""
    receipt = _receipt(content)
    module = module_store(spec, context).committed(receipt.deposit_id)
    sha = module_sha256(module)
    if sha != receipt.module_sha256:
        raise ValueError(f"the stored module of {receipt.deposit_id!r} does not match the receipt")
    return RecordDict({
        ARRAYS: to_array_record({DEPOSIT + k: v for k, v in pack(module).items()}),
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

    Only aggregates leave: the AUC, a bounded ROC curve, D_r's accuracy and size. The
    model's losses are computed on the node's device; the attack's figures on the CPU
    (sklearn, methods/lirf/metrics.py)."""
    device = node_device(spec, context.node_config)  # and 1 CPU thread on the CPU
    nonmember_losses, nonmember_labels = _nonmembers(content[CONFIG])  # before reading D_r
    _, d_r, classes = _deposit_set(spec, content, context)
    model = _audited_model(spec, from_array_record(content[ARRAYS]), classes).to(device)
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
    model = method.net_for(spec, arrays)  # shaped by the arrays: no data set is read here
    method.load_shared_state(model, arrays)
    return model
