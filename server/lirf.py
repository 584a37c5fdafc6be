"""LIRF's server workflow (Method.workflow = "lirf"); the algorithm is methods/lirf/.

Ye et al., "Learning with Recoverable Forgetting", ECCV 2022, arXiv:2207.08224;
message flow of the design notes §2.7 (not shipped). Stages, each ending in a checkpoint:

    phase0    FedAvg over all nodes (server/rounds.py's loop) → T_0
    original  evaluate T_0; the owner audits its D_r (membership inference: the server
              sends its test losses, the non-members; only the AUC and a bounded ROC
              curve come back, never a per-sample value of D_r)
    deposit   the owner trains on D_r only (sample level: and its other samples of D_r's
              classes) and returns T's shallow part, T_r's hash and a public key;
              T = target shallow ∘ frozen deep part; receipt checkpointed
    withdraw  polled requesters sign a fresh challenge; only a node whose signature
              verifies under the receipt's key is served (proof of possession, whatever
              its node id); it uploads T_r, sparse; T̃ = logit concatenation (Eq. of
              §3.4), no data, no training
    retrain   FedAvg from scratch without D_r, phase 0's schedule (run dir retrain/,
              server/lirf_retrain.py), with per-round figures

Atomicity (two-phase commit; the checkpoint's atomic rename is the commit point):
the owner keeps a new T_r *pending*; the server writes T, the receipt and the
figures in one checkpoint, then tells the owner to commit (after a restart it
tells it again until it acknowledges). A crash before that checkpoint leaves
T_0 and no receipt; the pending T_r is never used and the repeated deposit
replaces it. Withdrawal mirrors it: the owner uploads a copy, the server
checkpoints T̃ with the receipt marked withdrawn, then the owner releases T_r.
Each model is also measured on the validation split (`data.validation-fraction`),
carved from the training data, beside the test set (under `data.evaluate-on=validation`
its main figures are those), on the server's device (the run's
`device`; the owner's deposit and audit run on the owner's). Reply checks: server/lirf_checks.py;
summary.json: server/lirf_report.py.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.app import Message, RecordDict

from methods.base import Method, RunSpec
from methods.common.device import resolve_device
from methods.lirf.config import parse_sample_ids
from methods.lirf.metrics import forgetting, harmonic, predictions, split_accuracy
from methods.lirf.possession import new_challenge
from methods.lirf.withdraw import (DEPOSIT, module_digests, module_sha256, recovered_arrays,
                                   shallow_part, with_shallow)
from protos import fedvault_pb2 as pb
from protos.codec import decode, encode
from protos.contract import (ARRAYS, CONFIG, DEPOSIT_ACCURACY, DEPOSIT_CLASSES, DEPOSIT_ID,
                            DEPOSIT_REQUEST, LIRF_RUN_ID, METRICS, MIA_AUC, MODULE_BYTES_DENSE,
                            MODULE_BYTES_SPARSE, MODULE_SHA256, NONMEMBER_LABELS,
                            NONMEMBER_LOSSES, OWNER_PUBLIC_KEY, RECEIPT, ROC_FPR, ROC_TPR,
                            SAMPLE_STEPS, WITHDRAW_CHALLENGE, WITHDRAW_REQUEST,
                            WITHDRAW_SIGNATURE, Phase)
from protos.records import from_array_record, header_config, to_array_record
from server.federation import Federation, FederationError
from server.lirf_checks import (audit_check, deposit_check, module_check, payload_check,
                                unpack_module, withdraw_refusal)
from server.lirf_report import CURVE, run_summary
from server.lirf_retrain import HISTORY, fedavg, retrain_baseline
from server.rounds import save_state
from server.run_dir import RunDirectory


def run_lirf(fed: Federation, method: Method, spec: RunSpec, run: RunDirectory,
             state: dict[str, Any], progress: Callable) -> dict[str, Any]:
    return LIRFWorkflow(fed, method, spec, run, state, progress).run_stages()


def node_spec(spec: RunSpec, run: RunDirectory) -> RunSpec:
    """Simulated nodes keep LIRF state durably in <run dir>/nodes; real ones in `state-dir`."""
    transport = run.config().get("deployment", {}).get("transport", "simulation")
    if spec.method.node_state_dir or transport != "simulation":
        return spec
    where = str((run.path / "nodes").resolve())
    return dataclasses.replace(spec, method=dataclasses.replace(spec.method, node_state_dir=where))


class LIRFWorkflow:
    def __init__(self, fed: Federation, method: Method, spec: RunSpec, run: RunDirectory,
                 state: dict[str, Any], progress: Callable) -> None:
        self.fed, self.method, self.run, self.state = fed, method, run, state
        self.progress = progress
        self.spec = node_spec(spec, run)
        self.cfg = self.spec.method
        # where the server assesses each model (server/runner.py resolved it before the run)
        self.device = resolve_device(spec.federation.device, cpu_only=method.cpu_only)
        self.test = method.evaluation_dataset(spec)
        # the figures kept aside on validation; none when the main figures are already on it
        self.validation = (None if spec.data.evaluate_on == "validation"
                           else method.validation_dataset(spec))
        # run_id: what a withdrawal signature is bound to (drawn once, checkpointed)
        self.lirf = state.setdefault("lirf", {"stage": "phase0", "received": [], "refusals": 0})
        self.lirf.setdefault("run_id", secrets.token_hex(16))  # also for an older checkpoint
        self.stage_started = time.perf_counter()

    def run_stages(self) -> dict[str, Any]:
        stages = {"phase0": self.phase0, "original": self.original, "deposit": self.deposit,
                  "withdraw": self.withdraw, "retrain": self.retrain}
        while self.lirf["stage"] != "done":
            self.stage_started = time.perf_counter()
            stages[self.lirf["stage"]]()
        self.confirm_pending()
        return self.summary()

    # --- stages ---------------------------------------------------------------------
    def phase0(self) -> None:
        fedavg(self.fed, self.method, self.spec, self.run, self.state, self.progress)
        self.lirf["phase0_seconds"] = sum(m.get("seconds", 0.0) for m in self.run.metrics()
                                          if m.get("phase") == Phase.TRAIN)
        self.lirf["stage"] = "original"
        save_state(self.run, self.state)

    def original(self) -> None:
        rnd = self.state["round"] + 1
        self.lirf["original"] = self.assess("original", self.state["arrays"], rnd)
        self.advance("deposit", rnd, "original", self.lirf["original"])

    def deposit(self) -> None:
        rnd = self.state["round"] + 1
        original, request = self.state["arrays"], self.deposit_request()
        owner = self.node_of(self.cfg.owner_partition)
        if owner is None:
            raise FederationError(f"deposit: the owner (partition {self.cfg.owner_partition}) "
                                  f"is not connected")
        started = time.perf_counter()
        reply = self.ask(owner, rnd, Phase.DEPOSIT, {DEPOSIT_REQUEST: encode(request)}, original,
                         message_type="train",
                         check=deposit_check(original, self.test.num_classes))
        seconds = time.perf_counter() - started
        if reply is None:
            raise FederationError("deposit: the owner sent no valid reply (see events.log)")
        config, metrics = reply.content[CONFIG], reply.content[METRICS]
        target = with_shallow(original, shallow_part(from_array_record(reply.content[ARRAYS])))
        receipt = pb.DepositReceipt(
            deposit_id=request.deposit_id, owner_node_id=reply.metadata.src_node_id,
            classes=list(config[DEPOSIT_CLASSES]), sample_ids=list(request.sample_ids),
            module_sha256=str(config[MODULE_SHA256]), created_unix=time.time())
        figures = self.assess("target", target, rnd, list(receipt.classes))
        self.state["arrays"] = target
        self.lirf.update(
            target=figures, receipt=encode(receipt).hex(), receipt_status="committed",
            owner_public_key=bytes(config[OWNER_PUBLIC_KEY]).hex(), owner_committed=False,
            deposit_seconds=seconds, deposit_sample_steps=int(metrics[SAMPLE_STEPS]),
            module_bytes=[int(metrics[MODULE_BYTES_DENSE]), int(metrics[MODULE_BYTES_SPARSE])],
            deposit_report=dict(metrics))
        self.advance("withdraw", rnd, "deposit", {**figures, "deposit_seconds": seconds})
        self.confirm_pending()

    def withdraw(self) -> None:
        rnd, receipt = self.state["round"] + 1, self.receipt()
        node = self.authorised_requester(receipt, rnd) if self.confirm_pending() else None
        if node is None:
            self.run.log_event(f"round {rnd} withdraw: no authorised request; the deposit "
                               f"{receipt.deposit_id} stays with its owner")
            self.advance("retrain", rnd, "withdraw", {"withdrawn": False})
            return
        recovered = recovered_arrays(self.state["arrays"], self.fetch_module(node, receipt, rnd))
        figures = self.assess("recovered", recovered, rnd, list(receipt.classes))
        self.state["arrays"] = recovered
        self.lirf.update(recovered=figures, receipt_status="withdrawn", owner_released=False,
                         withdrawn_by=node)
        self.advance("retrain", rnd, "withdraw", figures)
        self.confirm_pending()

    def retrain(self) -> None:
        self.confirm_pending()
        if not self.cfg.retrain_baseline:
            self.lirf["stage"] = "done"
            save_state(self.run, self.state)
            return
        rnd = self.state["round"] + 1
        spec = dataclasses.replace(self.spec, method=dataclasses.replace(
            self.cfg, fedavg_data="preserved"))
        receipt = self.receipt() if self.lirf.get("receipt") else None
        classes = list(receipt.classes) if receipt else list(self.cfg.deposit_classes)

        def per_round(arrays: dict[str, np.ndarray]) -> dict[str, float]:
            pred, _ = predictions(self.model_of(arrays, classes), self.test.x, self.test.y)
            figures = split_accuracy(pred, self.test.y, classes)
            return {"pre_acc": figures["pre_acc"], "dep_acc": figures["dep_acc"]}

        arrays, seconds, history = retrain_baseline(self.fed, self.method, spec, self.run.path,
                                                    self.progress, per_round)
        figures = self.assess("retrain", arrays, rnd, receipt and classes)
        self.lirf.update(retrain=figures, retrain_seconds=seconds, **{HISTORY: history})
        self.advance("done", rnd, "retrain", {**figures, "retrain_seconds": seconds})

    # --- steps ----------------------------------------------------------------------
    def advance(self, stage: str, rnd: int, phase: str, figures: dict[str, Any]) -> None:
        """Log the stage's record and checkpoint the new state (the commit point)."""
        figures = {k: v for k, v in figures.items() if k != CURVE}
        record = {"round": rnd, "phase": phase, "accuracy": figures.get("avg_acc"), **figures,
                  "seconds": time.perf_counter() - self.stage_started}
        self.run.log_metrics(record)
        self.state["round"] = rnd
        self.lirf["stage"] = stage
        self.progress(record)
        save_state(self.run, self.state)

    def confirm_pending(self) -> bool:
        """Tell the owner what the checkpoint holds; True when it has acknowledged."""
        status = self.lirf.get("receipt_status")
        acknowledge = {"committed": ("owner_committed", Phase.DEPOSIT_COMMIT),
                       "withdrawn": ("owner_released", Phase.WITHDRAW_COMMIT)}
        flag, phase = acknowledge.get(status, (None, None))
        if flag is None or self.lirf.get(flag):
            return True
        receipt = self.receipt()
        node = self.holder(receipt)
        reply = None if node is None else self.ask(node, self.state["round"], phase,
                                                   {RECEIPT: encode(receipt)}, record=False)
        if reply is None:
            self.run.log_event(f"{phase}: the receipt's owner (node {receipt.owner_node_id}, "
                               f"partition {self.cfg.owner_partition}) did not acknowledge; "
                               f"asked again later")
            return False
        self.lirf[flag] = True
        save_state(self.run, self.state)
        return True

    def holder(self, receipt: pb.DepositReceipt) -> int | None:
        """The node that keeps T_r: the one that deposited (or withdrew) it if still
        connected, else the owner partition's node (a resumed simulation's nodes have new
        ids; a node that does not hold the module only answers with an error)."""
        self.fed.refresh()
        known = self.lirf.get("withdrawn_by", receipt.owner_node_id)
        if known in {n.node_id for n in self.fed.alive()}:
            return known
        return self.node_of(self.cfg.owner_partition)

    def authorised_requester(self, receipt: pb.DepositReceipt, rnd: int) -> int | None:
        """Poll the requesters in order, each with a fresh challenge; the first whose
        signature verifies under the receipt's key is served, the others are refused."""
        if "owner_public_key" not in self.lirf:  # deposited before receipts bound a key
            self.run.log_event(f"round {rnd} withdraw: the receipt binds no owner key; no "
                               f"request can prove possession")
            return None
        public_key = bytes.fromhex(self.lirf["owner_public_key"])
        for partition in self.cfg.withdraw_requesters or (self.cfg.owner_partition,):
            node = self.node_of(partition)
            if node is None:
                self.run.log_event(f"round {rnd} withdraw: partition {partition} is not connected")
                continue
            challenge = new_challenge()
            reply = self.ask(node, rnd, Phase.WITHDRAW_REQUEST,
                             {DEPOSIT_ID: receipt.deposit_id, LIRF_RUN_ID: self.lirf["run_id"],
                              WITHDRAW_CHALLENGE: challenge},
                             check=payload_check(pb.WithdrawRequest, WITHDRAW_REQUEST))
            if reply is None:
                continue
            config = reply.content[CONFIG]
            request = decode(pb.WithdrawRequest, config[WITHDRAW_REQUEST])
            reason = withdraw_refusal(request, config.get(WITHDRAW_SIGNATURE), node, receipt,
                                      public_key, challenge, self.lirf["run_id"])
            if reason is None:
                if node != receipt.owner_node_id:
                    self.run.log_event(f"round {rnd} withdraw: {self.fed.label(node)} proved "
                                       f"possession of deposit {receipt.deposit_id} (deposited "
                                       f"by node {receipt.owner_node_id})")
                return node
            self.lirf["refusals"] += 1
            self.run.log_event(f"round {rnd} withdraw: request of deposit {request.deposit_id} "
                               f"from {self.fed.label(node)} refused: {reason}")
        return None

    def fetch_module(self, node: int, receipt: pb.DepositReceipt,
                     rnd: int) -> dict[str, np.ndarray]:
        template = shallow_part(self.state["arrays"])
        reply = self.ask(node, rnd, Phase.WITHDRAW, {RECEIPT: encode(receipt)},
                         check=module_check(template), record=False)
        if reply is None:
            raise FederationError("withdraw: the owner did not upload the module (see events.log)")
        module = unpack_module(reply, template)
        if module_sha256(module) != receipt.module_sha256:
            raise FederationError("withdraw: the uploaded module does not match the receipt")
        return module

    def assess(self, name: str, arrays: dict[str, np.ndarray], rnd: int,
               classes=None) -> dict[str, Any]:
        """Test-set accuracies, the owner's membership audit, and (kept aside) the
        validation figures of one model. Sample level: dep_acc is on the deposited samples
        themselves (the owner's audit), heldout_acc on test samples of their classes."""
        model = self.model_of(arrays, classes)
        pred, losses = predictions(model, self.test.x, self.test.y)
        audit = self.audit(arrays, rnd, losses)
        classes = list(classes if classes is not None else audit["classes"])
        figures = split_accuracy(pred, self.test.y, classes)
        if self.cfg.level == "sample":
            figures = {"pre_acc": figures["pre_acc"], "dep_acc": audit["accuracy"],
                       "heldout_acc": figures["dep_acc"], "avg_acc": figures["avg_acc"]}
        if name == "target":
            figures["F"] = forgetting(self.lirf["original"]["dep_acc"], figures["dep_acc"])
            figures["H"] = harmonic(figures["pre_acc"], figures["F"])
        if self.validation is not None:
            self.lirf.setdefault("validation", {})[name] = self.validate(name, model, classes)
        return {**figures, "mia_auc": audit["auc"], CURVE: audit["roc"]}

    def validate(self, name: str, model: Any, classes: list[int]) -> dict[str, float]:
        """Pre/Dep (and for T: F, H) on the validation split: held out of the training
        data, so a hyper-parameter chosen on it never looked at the test set."""
        pred, _ = predictions(model, self.validation.x, self.validation.y)
        figures = split_accuracy(pred, self.validation.y, classes)
        if name == "target":
            figures["F"] = forgetting(self.lirf["validation"]["original"]["dep_acc"],
                                      figures["dep_acc"])
            figures["H"] = harmonic(figures["pre_acc"], figures["F"])
        return figures

    def model_of(self, arrays: dict[str, np.ndarray], classes) -> Any:
        """The model of `arrays` on the server's device (built on the CPU, then moved)."""
        if any(k.startswith(DEPOSIT) for k in arrays):  # T̃: assessed with its receipt's classes
            return self.method.build_recovered(self.spec, arrays, list(classes)).to(self.device)
        model = self.method.build_model(self.spec)
        self.method.load_shared_state(model, arrays)
        return model.to(self.device)

    def audit(self, arrays: dict[str, np.ndarray], rnd: int,
              test_losses: np.ndarray) -> dict[str, Any]:
        """The owner's audit of D_r against the server's test examples (the non-members).

        All test losses travel with their labels: at the sample level only the owner knows
        D_r's classes before its first reply, and it keeps the test examples of those."""
        owner = self.node_of(self.cfg.owner_partition)
        nonmembers = {NONMEMBER_LOSSES: [float(v) for v in test_losses],
                      NONMEMBER_LABELS: [int(c) for c in self.test.y]}
        reply = None if owner is None else self.ask(
            owner, rnd, Phase.LIRF_AUDIT, {DEPOSIT_REQUEST: encode(self.deposit_request()),
                                       **nonmembers}, arrays,
            message_type="evaluate", check=audit_check(self.test.num_classes))
        if reply is None:
            raise FederationError("lirf-audit: the owner sent no valid audit (see events.log)")
        metrics = reply.content[METRICS]
        return {"auc": float(metrics[MIA_AUC]),
                "roc": [[fpr, tpr] for fpr, tpr in zip(metrics[ROC_FPR], metrics[ROC_TPR])],
                "accuracy": float(metrics[DEPOSIT_ACCURACY]),
                "classes": list(reply.content[CONFIG][DEPOSIT_CLASSES])}

    def ask(self, node: int, rnd: int, phase: str, extra: dict, arrays=None, *,
            message_type: str = "query", check=None, record: bool = True) -> Message | None:
        """One request to one node; with `record`, what came back is noted (module check)."""
        content = RecordDict({CONFIG: header_config(self.spec, rnd, phase, **extra)})
        if arrays is not None:
            content[ARRAYS] = to_array_record(arrays)

        def noting(reply: Message) -> str | None:
            if record:  # before the check: a rejected reply was still received
                self.note_received(phase, reply)
            return check(reply) if check else None

        msg = Message(content, dst_node_id=node, message_type=message_type)
        replies = self.fed.exchange([msg], rnd, phase, noting)
        return replies[0] if replies else None

    def note_received(self, phase: str, reply: Message) -> None:
        for record in reply.content.array_records.values():
            arrays = from_array_record(record)
            self.lirf["received"].append({
                "phase": phase, "deposit_keys": any(k.startswith(DEPOSIT) for k in arrays),
                "digests": sorted(module_digests(arrays))})

    # --- state ----------------------------------------------------------------------
    def deposit_request(self) -> pb.DepositRequest:
        """Deterministic per run: a repeated deposit after a crash reuses the id."""
        deposit_id = f"lirf-s{self.spec.federation.seed}-p{self.cfg.owner_partition}"
        if self.cfg.level == "class":
            return pb.DepositRequest(deposit_id=deposit_id, level="class",
                                     classes=list(self.cfg.deposit_classes))
        return pb.DepositRequest(deposit_id=deposit_id, level="sample",
                                 sample_ids=list(parse_sample_ids(self.cfg.deposit_samples)))

    def receipt(self) -> pb.DepositReceipt:
        return decode(pb.DepositReceipt, bytes.fromhex(self.lirf["receipt"]))

    def node_of(self, partition: int) -> int | None:
        self.fed.refresh()
        return next((n.node_id for n in self.fed.alive() if n.partition_id == partition), None)

    def summary(self) -> dict[str, Any]:
        receipt = self.receipt() if self.lirf.get("receipt") else None
        return run_summary(self.lirf, self.cfg, receipt)
