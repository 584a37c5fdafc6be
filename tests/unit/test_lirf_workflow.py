"""Claims about LIRF's server workflow (server/lirf.py) on an in-process grid (no Ray):
that the deposit forgets and the withdrawal recovers (directions with margins, on digits),
who may withdraw (proof of possession), what the server ever holds (of the membership
audit: aggregates only), and that a crash at any step leaves a consistent checkpoint from
which `--resume` finishes the run."""

import json


import pytest
import torch
from flwr.app import RecordDict

import server.lirf as lirf_server
from clients.lirf_owner import ModuleStore
from methods.lirf.possession import new_key_pair, sign, withdrawal_message
from methods.lirf.withdraw import DEPOSIT
from methods.registry import get_method
from protos import fedvault_pb2 as pb
from protos.codec import decode
from protos.contract import (ARRAYS, CONFIG, LIRF_RUN_ID, MAX_ROC_POINTS, METRICS, MIA_AUC,
                            MODULE_SHA256, NONMEMBER_LABELS, NONMEMBER_LOSSES, ROC_FPR, ROC_TPR,
                            WITHDRAW_CHALLENGE, WITHDRAW_SIGNATURE)
from protos.records import to_array_record
from server.federation import FederationError
from server.run_dir import RunDirectory
from server.runner import Job, run_job
from server.scenario import resolve
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit
DEPOSIT_ID = "lirf-s0-p0"
FAST = {"data.dataset": "digits", "num-clients": "3", "num-server-rounds": "1",
        "lirf.local-epochs": "1", "lirf.deposit-epochs": "1", "lirf.retrain-baseline": "false",
        "node-wait-timeout": "2"}


class Crash(Exception):
    """A server process dying at an inconvenient moment."""


class PhaseGrid(InProcessGrid):
    """Records the phase of each request; optionally dies before delivering one."""

    def __init__(self, n: int, crash_on: str | None = None, **kw) -> None:
        super().__init__(partition_nodes(n), **kw)
        self.crash_on, self.phases = crash_on, []

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        for msg in messages:
            phase = _phase(msg)
            if phase == self.crash_on:
                self.crash_on = None
                raise Crash(phase)
            self.phases.append((phase, msg.metadata.dst_node_id))
        return super().send_and_receive(messages, timeout=timeout)


def _phase(msg) -> str:
    if msg.metadata.message_type == "query.info":
        return "info"
    return decode(pb.RoundHeader, msg.content[CONFIG]["header"]).phase


def _audit_replies(grid) -> list:
    return [r for _, r in grid.replies
            if not r.has_error() and MIA_AUC in (r.content.get(METRICS) or {})]


def _run(path, grid, **over):
    torch.set_num_threads(1)
    spec = resolve("lirf", {**FAST, **over})
    return run_job(grid, Job(spec=spec, run_dir=str(path), scenario="lirf"))


def _resume(path, grid):
    return run_job(grid, Job(spec=None, run_dir=str(path), resume=True))


def _checkpoint(path):
    arrays, state = RunDirectory(path).load_checkpoint()
    return arrays, state["lirf"]


def _store(path) -> ModuleStore:
    return ModuleStore(RecordDict(), path / "nodes" / "p0")


# Enough training for directions to show on digits (T_0 ≈ 0.93 / 0.78), still seconds.
TRAINED = {"num-server-rounds": "3", "lirf.local-epochs": "2", "lirf.deposit-epochs": "10",
           "lirf.retrain-baseline": "true", "data.validation-fraction": "0.1",
           "lirf.withdraw-requesters": "1,0"}


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    path = tmp_path_factory.mktemp("honest") / "run"
    grid = PhaseGrid(3)
    summary = _run(path, grid, **TRAINED)
    return path, grid, summary


def test_the_deposit_forgets_the_deposit_classes_and_the_withdrawal_brings_them_back(honest):
    _, _, summary = honest
    original, target, recovered = summary["original"], summary["target"], summary["recovered"]
    assert original["dep_acc"] > 0.6 and original["pre_acc"] > 0.85  # T_0 knows them
    assert target["dep_acc"] < original["dep_acc"] - 0.3  # forgotten ...
    assert original["pre_acc"] - target["pre_acc"] < 0.05  # ... the rest kept
    assert target["F"] == pytest.approx(original["dep_acc"] - target["dep_acc"]) and target["H"] > 0.5
    assert recovered["dep_acc"] > original["dep_acc"] - 0.05  # back, from T and T_r alone
    assert recovered["avg_acc"] > target["avg_acc"] + 0.05
    assert summary["retrain"]["dep_acc"] < 0.05  # never saw the deposit classes
    validation = summary["validation"]  # the same directions on held-out training data
    assert set(validation) == {"original", "target", "recovered", "retrain"}
    assert validation["target"]["dep_acc"] < validation["original"]["dep_acc"] - 0.2
    assert validation["target"]["F"] == pytest.approx(
        validation["original"]["dep_acc"] - validation["target"]["dep_acc"])


def test_a_run_reports_the_issue_summary(honest):
    path, _, summary = honest
    assert set(summary["mia_auc"]) >= {"original", "target", "retrain"}
    assert summary["deposit_seconds"] > 0 and summary["retrain_seconds"] > 0
    assert summary["deposit_module_on_server"] is False
    assert summary["receipt"]["status"] == "withdrawn"
    assert summary["receipt"]["classes"] == [0, 1, 2]
    assert len(bytes.fromhex(summary["receipt"]["owner_public_key"])) == 32
    assert 0.5 < summary["deposit_module_bytes_sparse"] / summary["deposit_module_bytes_dense"] < 0.65
    records = (path / "metrics.jsonl").read_text().splitlines()
    phases = [json.loads(line)["phase"] for line in records]
    assert phases == ["train"] * 3 + ["original", "deposit", "withdraw", "retrain"]
    assert (path / "retrain" / "checkpoint").is_dir()


def test_the_retrain_baseline_keeps_its_per_round_figures_and_the_work_done(honest):
    path, _, summary = honest
    spec = resolve("lirf", {**FAST, **TRAINED})
    labels = get_method("lirf").fit_dataset(spec).y  # less the validation split
    preserved, deposited = int((labels >= 3).sum()), int((labels < 3).sum())
    history = summary["retrain_history"]
    assert [h["round"] for h in history] == [1, 2, 3]
    assert [h["sample_steps"] for h in history] == [2 * preserved * r for r in (1, 2, 3)]
    seconds = [h["seconds"] for h in history]
    assert 0 < seconds[0] < seconds[1] < seconds[2] == pytest.approx(summary["retrain_seconds"])
    assert history[-1]["pre_acc"] == summary["retrain"]["pre_acc"]  # the same final model
    assert history[-1]["dep_acc"] == summary["retrain"]["dep_acc"]
    assert history[0]["pre_acc"] < history[-1]["pre_acc"]
    assert summary["deposit_sample_steps"] == 10 * deposited  # 10 epochs over D_r


def test_the_audit_sends_test_losses_out_and_brings_back_only_the_auc_and_roc(honest):
    path, grid, summary = honest
    requests = [m for m in grid.sent if _phase(m) == "lirf-audit"]
    replies = _audit_replies(grid)
    assert len(requests) == len(replies) == 4  # original, target, recovered, retrain
    for msg in requests:  # the server's own test examples: every one, with its label
        config = msg.content[CONFIG]
        assert len(config[NONMEMBER_LOSSES]) == len(config[NONMEMBER_LABELS]) > MAX_ROC_POINTS
    for reply in replies:  # D_r outnumbers the bound: a per-sample list would exceed it
        values = [v for record in reply.content.values() for v in record.values()]
        assert ARRAYS not in reply.content and not any(isinstance(v, bytes) for v in values)
        assert all(len(v) <= MAX_ROC_POINTS for v in values if isinstance(v, list))
        assert reply.content[METRICS]["num-examples"] > MAX_ROC_POINTS
    assert set(summary["mia_roc"]) == set(summary["mia_auc"])
    for curve in summary["mia_roc"].values():
        assert curve[0] == [0.0, 0.0] and curve[-1] == [1.0, 1.0] and len(curve) <= MAX_ROC_POINTS
    records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert not any("mia_roc" in record for record in records)  # a curve, not a figure


def test_an_audit_reply_listing_every_member_is_rejected_and_logged(tmp_path):
    path = tmp_path / "run"

    def per_member(node_id, reply):  # a curve with one point per member of D_r
        metrics = None if reply.has_error() else reply.content.get(METRICS)
        if metrics is not None and MIA_AUC in metrics:
            steps = torch.linspace(0, 1, 200).tolist()
            metrics[ROC_FPR], metrics[ROC_TPR] = steps, steps
        return reply

    with pytest.raises(FederationError, match="lirf-audit"):
        _run(path, PhaseGrid(3, tamper=per_member))
    events = (path / "events.log").read_text()
    assert "lirf-audit" in events and "update rejected: the ROC curve has 200" in events
    assert not (path / "summary.json").exists()


def test_a_non_owner_withdraw_is_refused_logged_and_never_served(honest):
    path, grid, summary = honest
    owner, other = 1000, 1001  # InProcessGrid numbers partitions 0, 1, 2 from 1000
    assert summary["withdraw_refusals"] == 1
    events = (path / "events.log").read_text()
    assert "node 1001 (partition 1) refused" in events and "no proof of possession" in events
    assert ("withdraw-request", other) in grid.phases  # it asked ...
    uploads = [node for phase, node in grid.phases if phase == "withdraw"]
    assert uploads == [owner]  # ... but only the owner was asked for the module
    assert summary["receipt"]["withdrawn_by_node_id"] == owner


def _request_of(grid, node_id):
    """The withdraw-request message the grid last sent to `node_id` (its challenge)."""
    msg = next(m for m in reversed(grid.sent) if m.metadata.dst_node_id == node_id)
    return msg.content[CONFIG]


def _module_sha(grid) -> str:
    return next(r.content[CONFIG][MODULE_SHA256] for _, r in grid.replies
                if not r.has_error() and MODULE_SHA256 in (r.content.get(CONFIG) or {}))


def test_a_signature_by_another_key_is_refused_and_the_deposit_stays(tmp_path):
    path, thief_key = tmp_path / "run", new_key_pair()[0]

    def forge(node_id, reply):  # partition 1 signs this very challenge, with its own key
        config = reply.content.get(CONFIG) or {}
        if node_id == 1001 and WITHDRAW_SIGNATURE in config:
            request = _request_of(grid, node_id)
            config[WITHDRAW_SIGNATURE] = sign(thief_key, withdrawal_message(
                request[LIRF_RUN_ID], DEPOSIT_ID, _module_sha(grid), node_id,
                request[WITHDRAW_CHALLENGE]))
        return reply

    grid = PhaseGrid(3, tamper=forge)
    summary = _run(path, grid, **{"lirf.withdraw-requesters": "1"})
    assert summary["receipt"]["status"] == "committed" and "recovered" not in summary
    assert "signature does not verify" in (path / "events.log").read_text()
    assert _store(path).slot(DEPOSIT_ID) == "committed"
    assert "withdraw" not in dict(grid.phases)


def test_a_replayed_signature_of_an_earlier_challenge_is_refused(tmp_path):
    path, seen = tmp_path / "run", []

    def replay(node_id, reply):  # the owner's first signature is stolen, then replayed
        config = reply.content.get(CONFIG) or {}
        if WITHDRAW_SIGNATURE in config:
            seen.append(config[WITHDRAW_SIGNATURE])
            config[WITHDRAW_SIGNATURE] = seen[0] if len(seen) > 1 else b"\0" * 64
        return reply

    summary = _run(path, PhaseGrid(3, tamper=replay), **{"lirf.withdraw-requesters": "0,0"})
    assert len(seen) == 2 and seen[0] != seen[1]  # a fresh challenge each time
    assert summary["withdraw_refusals"] == 2 and summary["receipt"]["status"] == "committed"
    assert (path / "events.log").read_text().count("signature does not verify") == 2


def test_the_checkpoint_holds_the_receipt_and_the_owner_released_its_module(honest):
    path, _, summary = honest
    arrays, lirf = _checkpoint(path)
    receipt = decode(pb.DepositReceipt, bytes.fromhex(lirf["receipt"]))
    assert receipt.owner_node_id == 1000
    assert receipt.module_sha256 == summary["receipt"]["module_sha256"]
    assert any(k.startswith(DEPOSIT) for k in arrays)  # the global model is T̃
    assert _store(path).slot(DEPOSIT_ID) is None


def test_refusing_every_request_keeps_the_deposit_with_its_owner(tmp_path):
    summary = _run(tmp_path / "run", PhaseGrid(3), **{"lirf.withdraw-requesters": "2"})
    assert "recovered" not in summary and summary["receipt"]["status"] == "committed"
    assert _store(tmp_path / "run").slot(DEPOSIT_ID) == "committed"
    assert summary["accuracy"] == summary["target"]["avg_acc"]


def test_a_module_smuggled_into_the_deposit_reply_is_detected(tmp_path):
    path = tmp_path / "run"

    def smuggle(node_id, reply):  # the owner replies with T_r in place of T's shallow part
        config = reply.content.get(CONFIG, {})
        if ARRAYS in reply.content and "deposit-classes" in config:  # the deposit reply
            module = _store(path).read("pending", DEPOSIT_ID)
            reply.content[ARRAYS] = to_array_record({f"shallow.{k}": v for k, v in module.items()})
        return reply

    summary = _run(path, PhaseGrid(3, tamper=smuggle))
    assert summary["deposit_module_on_server"] is True


def test_a_crash_before_the_deposit_checkpoint_leaves_t0_and_no_receipt(tmp_path, monkeypatch):
    path, save = tmp_path / "run", lirf_server.save_state

    def dying_save(run, state):
        if state["lirf"].get("receipt"):
            raise Crash("before the commit point")
        save(run, state)

    monkeypatch.setattr(lirf_server, "save_state", dying_save)
    with pytest.raises(Crash):
        _run(path, PhaseGrid(3))
    arrays, lirf = _checkpoint(path)
    assert lirf["stage"] == "deposit" and "receipt" not in lirf
    assert not any(k.startswith(DEPOSIT) for k in arrays)
    assert _store(path).slot(DEPOSIT_ID) == "pending"  # never used without a receipt
    monkeypatch.setattr(lirf_server, "save_state", save)
    summary = _resume(path, PhaseGrid(3))  # fresh nodes: the owner's store is on its disk
    assert summary["receipt"]["status"] == "withdrawn" and "recovered" in summary
    assert _store(path).slot(DEPOSIT_ID) is None


def test_a_crash_after_the_deposit_checkpoint_is_finished_on_resume(tmp_path):
    path = tmp_path / "run"
    with pytest.raises(Crash):
        _run(path, PhaseGrid(3, crash_on="deposit-commit"))
    _, lirf = _checkpoint(path)
    assert lirf["receipt_status"] == "committed" and lirf["owner_committed"] is False
    assert _store(path).slot(DEPOSIT_ID) == "pending"
    grid = PhaseGrid(3)
    summary = _resume(path, grid)
    assert [p for p, _ in grid.phases if p != "info"][:2] == ["deposit-commit", "withdraw-request"]
    assert summary["receipt"]["status"] == "withdrawn" and "deposit" not in dict(grid.phases)


def test_a_crash_during_withdraw_keeps_the_target_and_the_owners_module(tmp_path, monkeypatch):
    path, save = tmp_path / "run", lirf_server.save_state

    def dying_save(run, state):
        if state["lirf"].get("receipt_status") == "withdrawn":
            raise Crash("after the upload, before the commit point")
        save(run, state)

    monkeypatch.setattr(lirf_server, "save_state", dying_save)
    with pytest.raises(Crash):
        _run(path, PhaseGrid(3))
    arrays, lirf = _checkpoint(path)
    assert lirf["receipt_status"] == "committed" and lirf["stage"] == "withdraw"
    assert not any(k.startswith(DEPOSIT) for k in arrays)  # still T
    assert _store(path).slot(DEPOSIT_ID) == "committed"  # the upload was a copy
    monkeypatch.setattr(lirf_server, "save_state", save)
    summary = _resume(path, PhaseGrid(3))
    assert summary["receipt"]["status"] == "withdrawn"
    assert _store(path).slot(DEPOSIT_ID) is None


def test_a_resume_with_new_node_ids_still_withdraws_by_proof_of_possession(tmp_path):
    # A resumed Ray simulation draws new node ids: the owner is found by its partition and
    # proves it holds the deposit with the key on its disk; no node id is trusted.
    path = tmp_path / "run"
    with pytest.raises(Crash):
        _run(path, PhaseGrid(3, crash_on="deposit-commit"))
    grid = PhaseGrid(3, first_node_id=2000)
    summary = _resume(path, grid)
    assert summary["receipt"]["status"] == "withdrawn" and "recovered" in summary
    assert summary["receipt"]["owner_node_id"] == 1000
    assert summary["receipt"]["withdrawn_by_node_id"] == 2000
    assert [n for p, n in grid.phases if p in ("deposit-commit", "withdraw")] == [2000, 2000]
    assert "node 2000 (partition 0) proved possession" in (path / "events.log").read_text()
    assert _store(path).slot(DEPOSIT_ID) is None  # released after the withdraw commit
