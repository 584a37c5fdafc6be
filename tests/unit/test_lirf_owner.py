"""Claims about the LIRF owner node (clients/lirf_owner.py, clients/lirf_store.py): what the
deposit reads and sends, where the module and its key live (sparse, mode 0600), that a
withdrawal request is signed only by the key's holder, that withdrawal is data- and
training-free, and that the membership audit sends aggregates only."""

import io
import stat
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, Context, MetricRecord, RecordDict

import clients.lirf_owner as owner
from methods.common.datasets import ArrayDataset
from methods.lirf.metrics import membership_auc, predictions
from methods.lirf.possession import new_key_pair, verifies, withdrawal_message
from methods.lirf.sparse import BITMAP, unpack
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
from protos.contract import (ARRAYS, CONFIG, DEPOSIT_ID, DEPOSIT_REQUEST, LIRF_RUN_ID,
                            MAX_ROC_POINTS, METRICS, MIA_AUC, MODULE_BYTES_DENSE,
                            MODULE_BYTES_SPARSE, MODULE_SHA256, NONMEMBER_LABELS,
                            NONMEMBER_LOSSES, OWNER_PUBLIC_KEY, RECEIPT, ROC_FPR, ROC_TPR,
                            SAMPLE_STEPS, WITHDRAW_CHALLENGE, WITHDRAW_REQUEST, WITHDRAW_SIGNATURE)
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
    assert len(reply[CONFIG][OWNER_PUBLIC_KEY]) == 32  # the key's public half; the rest stays
    metrics = reply[METRICS]
    assert metrics[MODULE_BYTES_DENSE] == sum(v.nbytes for v in module.values())
    assert 0.5 * metrics[MODULE_BYTES_DENSE] < metrics[MODULE_BYTES_SPARSE] < (
        0.65 * metrics[MODULE_BYTES_DENSE])
    assert metrics[SAMPLE_STEPS] == 2 * metrics["num-examples"]  # 2 deposit epochs over D_r


@pytest.mark.parametrize("on_disk", [False, True])
def test_store_commits_only_the_receipts_module_and_survives_a_restart(tmp_path, on_disk):
    where = tmp_path / "node" if on_disk else None
    store = owner.ModuleStore(RecordDict(), where)
    module = shallow_part(_original())
    private, _ = new_key_pair()
    sha = store.put_pending("d-1", module, private)
    assert store.signing_key("d-1") is None  # pending: nothing to withdraw yet
    with pytest.raises(ValueError):
        store.commit("d-1", "0" * 64)
    store.commit("d-1", sha)
    store.commit("d-1", sha)  # repeated after a server restart: harmless
    again = owner.ModuleStore(store.state if not on_disk else RecordDict(), where)
    assert again.slot("d-1") == "committed" and module_sha256(again.committed("d-1")) == sha
    assert again.signing_key("d-1") == private
    again.release("d-1")
    again.release("d-1")
    assert again.slot("d-1") is None and again.signing_key("d-1") is None
    with pytest.raises(KeyError):
        again.committed("d-1")
    with pytest.raises(ValueError):
        store.put_pending("../escape", module, private)


def test_on_disk_the_module_is_sparse_and_module_and_key_are_owner_only(tmp_path):
    store = owner.ModuleStore(RecordDict(), tmp_path / "node")
    torch.manual_seed(0)
    net = METHOD.build_deposit_net(SPEC, _original(), [0, 1, 2])
    owner.make_permanent(net.deposit)
    module = {k: v.numpy() for k, v in net.deposit.state_dict().items()}
    store.commit("d-1", store.put_pending("d-1", module, new_key_pair()[0]))
    files = sorted((tmp_path / "node").iterdir())
    assert [f.name for f in files] == ["d-1.committed.key", "d-1.committed.npz"]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    with np.load(files[1]) as stored:
        assert any(k.endswith(BITMAP) for k in stored.files)  # nonzeros and their positions
    dense = io.BytesIO()
    np.savez(dense, **module)  # how the module was stored before: every zero kept
    assert files[1].stat().st_size < 0.85 * dense.getbuffer().nbytes  # npz headers included


def test_withdraw_is_training_free_and_reads_no_data(monkeypatch):
    target = _original()
    torch.manual_seed(1)
    module = shallow_part(METHOD.shared_state(METHOD.build_model(SPEC)))
    context = _context()
    store = owner.module_store(SPEC, context)
    store.commit("d-1", store.put_pending("d-1", module, new_key_pair()[0]))
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
    uploaded = unpack({k[len(DEPOSIT):]: v for k, v in from_array_record(reply[ARRAYS]).items()})
    recovered = METHOD.build_recovered(SPEC, recovered_arrays(target, uploaded), [0, 1, 2])
    x = torch.randn(6, 1, 28, 28)
    with torch.no_grad():
        out = recovered.eval()(x)
        z_target = recovered.target(x)
        z_deposit = recovered.target.deep(recovered.deposit(x))
    assert torch.equal(out[:, :3], z_deposit[:, :3]) and torch.equal(out[:, 3:], z_target[:, 3:])
    assert store.slot("d-1") == "committed"  # uploaded a copy; released only after the commit


def _withdraw_request(context, challenge=b"c" * 32) -> RecordDict:
    content = RecordDict({CONFIG: ConfigRecord({DEPOSIT_ID: "d-1", LIRF_RUN_ID: "run-1",
                                                WITHDRAW_CHALLENGE: challenge})})
    return owner.withdraw_request_phase(SPEC, _header("withdraw-request"), content, context)


def test_a_withdraw_request_is_signed_by_the_deposit_key_and_only_by_its_holder():
    module = shallow_part(_original())
    private, public = new_key_pair()
    holder, other = _context(node_id=7), _context(node_id=8)
    store = owner.module_store(SPEC, holder)
    store.commit("d-1", store.put_pending("d-1", module, private))
    reply = _withdraw_request(holder)[CONFIG]
    message = withdrawal_message("run-1", "d-1", module_sha256(module), 7, b"c" * 32)
    assert verifies(public, reply[WITHDRAW_SIGNATURE], message)
    assert not verifies(public, _withdraw_request(holder, b"d" * 32)[CONFIG][WITHDRAW_SIGNATURE],
                        message)  # each challenge its own signature
    unsigned = _withdraw_request(other)[CONFIG]  # asks, but cannot prove anything
    assert unsigned[WITHDRAW_SIGNATURE] == b"" and WITHDRAW_REQUEST in unsigned


def test_a_sample_level_deposit_reads_d_r_and_the_owners_other_samples_of_its_classes(
        monkeypatch):
    data = _owner_data()  # preserved classes (>= 3) are NaN: a read would poison the model
    monkeypatch.setattr(owner, "node_train_data", lambda method, spec, node_config: data)
    deposit = [int(i) for i in np.flatnonzero(data.y < 3)[::3]]
    request = pb.DepositRequest(deposit_id="d-2", level="sample", sample_ids=deposit)
    spec = parse_run_spec({"method": "lirf", "lirf.level": "sample",
                           "lirf.deposit-samples": ",".join(map(str, deposit)),
                           "lirf.deposit-epochs": 1, "lirf.deposit-batch-size": 16})
    content = RecordDict({ARRAYS: to_array_record(_original()),
                          CONFIG: ConfigRecord({DEPOSIT_REQUEST: encode(request)})})
    reply = owner.deposit_phase(spec, _header("deposit"), content, _context())
    same_classes = np.flatnonzero(np.isin(data.y, np.unique(data.y[deposit])))
    assert data.reads == [same_classes.tolist()]  # one read: D_r and R, nothing preserved
    assert reply[METRICS]["num-examples"] == len(same_classes)
    assert all(np.isfinite(a).all() for a in from_array_record(reply[ARRAYS]).values())


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
