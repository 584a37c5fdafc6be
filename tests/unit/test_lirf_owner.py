"""Claims about the LIRF owner node (clients/lirf_owner.py): what the deposit reads and
sends, where the module lives, that withdrawal is data- and training-free, and that the
membership audit sends aggregates only."""

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, Context, MetricRecord, RecordDict

import clients.lirf_owner as owner
from methods.common.datasets import ArrayDataset
from methods.lirf.metrics import membership_auc, predictions
from methods.lirf.withdraw import (
    DEPOSIT,
    holds_module,
    module_sha256,
    recovered_arrays,
    shallow_part,
)
from methods.registry import get_method
from methods.resolve import parse_run_spec
from protos import fedvault_pb2 as pb
from protos.codec import encode
from protos.contract import (ARRAYS, CONFIG, DEPOSIT_REQUEST, MAX_ROC_POINTS, METRICS, MIA_AUC,
                            MODULE_SHA256, NONMEMBER_LABELS, NONMEMBER_LOSSES, RECEIPT, ROC_FPR,
                            ROC_TPR)
from protos.records import from_array_record, to_array_record

pytestmark = pytest.mark.unit
SPEC = parse_run_spec({"method": "lirf", "lirf.deposit-epochs": 2, "lirf.deposit-batch-size": 16})
METHOD = get_method("lirf")


@dataclass(frozen=True)
class RecordingDataset(ArrayDataset):
    """The owner's data, instrumented: every read of images is recorded."""

    reads: list = field(default_factory=list, compare=False)

    def subset(self, indices):
        self.reads.append(sorted(int(i) for i in indices))
        return super().subset(indices)

    def to_torch(self):
        self.reads.append("everything")
        return super().to_torch()


def _owner_data() -> RecordingDataset:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 200)
    x = rng.normal(size=(200, 1, 28, 28)).astype(np.float32)
    x[y >= 3] = np.nan  # preserved images: any use of one poisons the model
    return RecordingDataset(x, y.astype(np.int64), 10, "owner")


def _context(node_id=7) -> Context:
    return Context(run_id=1, node_id=node_id, node_config={"partition-id": 0, "num-partitions": 5},
                   state=RecordDict(), run_config={})


def _header(phase: str) -> pb.RoundHeader:
    return pb.RoundHeader(round=16, phase=phase, method="lirf", seed=0, config_json=SPEC.to_json())


def _original() -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    return METHOD.shared_state(METHOD.build_model(SPEC))


@pytest.fixture
def deposited(monkeypatch):
    data, context = _owner_data(), _context()
    monkeypatch.setattr(owner, "node_train_data", lambda method, spec, node_config: data)
    request = pb.DepositRequest(deposit_id="d-1", level="class", classes=[0, 1, 2])
    content = RecordDict({ARRAYS: to_array_record(_original()),
                          CONFIG: ConfigRecord({DEPOSIT_REQUEST: encode(request)})})
    reply = owner.deposit_phase(SPEC, _header("deposit"), content, context)
    return data, context, reply


def test_deposit_reads_only_the_deposit_set_never_preserved_data(deposited):
    data, _, reply = deposited
    d_r = np.flatnonzero(np.isin(data.y, (0, 1, 2))).tolist()
    assert data.reads == [d_r]  # one read, exactly D_r; never the whole shard
    arrays = from_array_record(reply[ARRAYS])
    assert all(np.isfinite(a).all() for a in arrays.values())  # no NaN image was seen
    assert reply["metrics"]["num-examples"] == len(d_r)


def test_deposit_reply_carries_the_target_shallow_part_and_only_the_module_hash(deposited):
    _, context, reply = deposited
    arrays = from_array_record(reply[ARRAYS])
    store = owner.module_store(SPEC, context)
    module = store.read("pending", "d-1")
    sha = reply[CONFIG][MODULE_SHA256]
    assert module is not None and module_sha256(module) == sha and store.slot("d-1") == "pending"
    assert set(arrays) == {f"shallow.{k}" for k in module}  # the target's shallow part
    assert not holds_module(arrays, sha)
    original = shallow_part(_original())
    assert any(not np.array_equal(arrays[f"shallow.{k}"], original[k]) for k in original)
    conv = [k for k in module if k.endswith("weight") and module[k].ndim == 4]
    assert all((module[k] == 0).mean() == pytest.approx(0.5, abs=0.01) for k in conv)  # pruned


@pytest.mark.parametrize("on_disk", [False, True])
def test_store_commits_only_the_receipts_module_and_survives_a_restart(tmp_path, on_disk):
    where = tmp_path / "node" if on_disk else None
    store = owner.ModuleStore(RecordDict(), where)
    module = shallow_part(_original())
    sha = store.put_pending("d-1", module)
    with pytest.raises(ValueError):
        store.commit("d-1", "0" * 64)
    store.commit("d-1", sha)
    store.commit("d-1", sha)  # repeated after a server restart: harmless
    again = owner.ModuleStore(store.state if not on_disk else RecordDict(), where)
    assert again.slot("d-1") == "committed" and module_sha256(again.committed("d-1")) == sha
    again.release("d-1")
    again.release("d-1")
    assert again.slot("d-1") is None
    with pytest.raises(KeyError):
        again.committed("d-1")
    with pytest.raises(ValueError):
        store.put_pending("../escape", module)


def test_withdraw_is_training_free_and_reads_no_data(monkeypatch):
    target = _original()
    torch.manual_seed(1)
    module = shallow_part(METHOD.shared_state(METHOD.build_model(SPEC)))
    context = _context()
    store = owner.module_store(SPEC, context)
    store.commit("d-1", store.put_pending("d-1", module))
    receipt = pb.DepositReceipt(deposit_id="d-1", owner_node_id=7, classes=[0, 1, 2],
                                module_sha256=module_sha256(module), created_unix=1.0)

    def forbidden(*args, **kwargs):
        raise AssertionError("withdrawal touched data or trained")

    for target_obj, name in [(torch.Tensor, "backward"), (torch.autograd, "backward"),
                             (torch.optim.Optimizer, "__init__"), (owner, "node_train_data"),
                             (owner, "_owner_data")]:
        monkeypatch.setattr(target_obj, name, forbidden)
    monkeypatch.setattr("methods.base.load_dataset", forbidden)
    monkeypatch.setattr("methods.common.datasets.load_dataset", forbidden)

    content = RecordDict({CONFIG: ConfigRecord({RECEIPT: encode(receipt)})})
    reply = owner.withdraw_phase(SPEC, _header("withdraw"), content, context)
    uploaded = {k[len(DEPOSIT):]: v for k, v in from_array_record(reply[ARRAYS]).items()}
    recovered = METHOD.build_recovered(SPEC, recovered_arrays(target, uploaded), [0, 1, 2])
    x = torch.randn(6, 1, 28, 28)
    with torch.no_grad():
        out = recovered.eval()(x)
        z_target = recovered.target(x)
        z_deposit = recovered.target.deep(recovered.deposit(x))
    assert torch.equal(out[:, :3], z_deposit[:, :3]) and torch.equal(out[:, 3:], z_target[:, 3:])
    assert store.slot("d-1") == "committed"  # uploaded a copy; released only after the commit


def _audit_request(arrays, test_losses, test_labels) -> RecordDict:
    request = pb.DepositRequest(deposit_id="d-1", level="class", classes=[0, 1, 2])
    return RecordDict({ARRAYS: to_array_record(arrays), CONFIG: ConfigRecord({
        DEPOSIT_REQUEST: encode(request), NONMEMBER_LOSSES: [float(v) for v in test_losses],
        NONMEMBER_LABELS: [int(c) for c in test_labels]})})


def _old_server_auc(member_losses, test_losses, test_labels, classes) -> float:
    """What server/lirf.py computed when D_r's losses travelled (AuditScores, as doubles)."""
    travelled = np.asarray(member_losses.tolist())
    return membership_auc(travelled, test_losses[np.isin(test_labels, classes)])


@pytest.fixture
def audited(monkeypatch):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 10, 500).astype(np.int64)
    data = ArrayDataset(rng.normal(size=(500, 1, 28, 28)).astype(np.float32), y, 10, "owner")
    monkeypatch.setattr(owner, "node_train_data", lambda method, spec, node_config: data)
    test_losses, test_labels = rng.exponential(2.0, 300), rng.integers(0, 10, 300)
    reply = owner.audit_phase(SPEC, _header("lirf-audit"),
                              _audit_request(_original(), test_losses, test_labels), _context())
    model = METHOD.build_model(SPEC)
    METHOD.load_shared_state(model, _original())
    d_r = data.subset(np.flatnonzero(np.isin(y, (0, 1, 2))))
    _, member_losses = predictions(model, d_r.x, d_r.y)
    return reply, member_losses, test_losses, test_labels


def test_the_audit_reply_holds_aggregates_only_never_a_member_loss(audited):
    reply, member_losses, _, _ = audited
    assert len(member_losses) > MAX_ROC_POINTS  # so a list of them could not pass the bound
    assert set(reply) == {CONFIG, METRICS} and isinstance(reply[METRICS], MetricRecord)
    values = [v for record in reply.values() for v in record.values()]
    assert not any(isinstance(v, bytes) for v in values)  # no encoded payload (AuditScores)
    assert all(len(v) <= MAX_ROC_POINTS for v in values if isinstance(v, list))
    sent = {float(x) for v in values for x in (v if isinstance(v, list) else [v])}
    assert sent.isdisjoint(member_losses.astype(float).tolist())
    assert len(reply[METRICS][ROC_FPR]) == len(reply[METRICS][ROC_TPR]) >= 2


def test_the_owners_auc_equals_the_old_server_side_auc_on_the_same_losses(audited):
    reply, member_losses, test_losses, test_labels = audited
    old = _old_server_auc(member_losses, test_losses, test_labels, (0, 1, 2))
    assert reply[METRICS][MIA_AUC] == old


def test_a_malformed_nonmember_list_is_a_bad_request(monkeypatch):
    monkeypatch.setattr(owner, "node_train_data", lambda *a: pytest.fail("read data"))
    content = _audit_request(_original(), [0.5, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="finite"):
        owner.audit_phase(SPEC, _header("lirf-audit"), content, _context())
    content = _audit_request(_original(), [0.5, 0.7], [0])
    with pytest.raises(ValueError, match="aligned"):
        owner.audit_phase(SPEC, _header("lirf-audit"), content, _context())
