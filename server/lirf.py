"""LIRF's server workflow (Method.workflow = "lirf"); the algorithm is methods/lirf/.

Ye et al., "Learning with Recoverable Forgetting", ECCV 2022, arXiv:2207.08224;
message flow of the design notes §2.7 (not shipped). Stages, each ending in a checkpoint:

    phase0    FedAvg over all nodes (server/rounds.py's loop) → T_0
    original  evaluate T_0; the owner audits its D_r (membership inference: the server
              sends its test losses, the non-members; only the AUC and a bounded ROC
              curve come back, never a per-sample value of D_r)
    deposit   the owner trains on D_r only and returns T's shallow part and T_r's
              hash; T = target shallow ∘ frozen deep part; receipt checkpointed
    withdraw  polled requesters; only the receipt's owner is served; it uploads
              T_r; T̃ = logit concatenation (Eq. of §3.4), no data, no training
    retrain   FedAvg from scratch without D_r, phase 0's schedule (run dir retrain/)

Atomicity (two-phase commit; the checkpoint's atomic rename is the commit point):
the owner keeps a new T_r *pending*; the server writes T, the receipt and the
figures in one checkpoint, then tells the owner to commit (after a restart it
tells it again until it acknowledges). A crash before that checkpoint leaves
T_0 and no receipt; the pending T_r is never used and the repeated deposit
replaces it. Withdrawal mirrors it: the owner uploads a copy, the server
checkpoints T̃ with the receipt marked withdrawn, then the owner releases T_r.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.app import Message, RecordDict

from methods.base import Method, RunSpec
from methods.lirf.config import parse_sample_ids, round_lr
from methods.lirf.metrics import forgetting, harmonic, predictions, roc_problem, split_accuracy
from methods.lirf.withdraw import (DEPOSIT, module_sha256, recovered_arrays, shallow_part,
                                   with_shallow)
from protos import fedvault_pb2 as pb
from protos.codec import PayloadError, decode, encode
from protos.contract import (ARRAYS, CONFIG, DEPOSIT_ACCURACY, DEPOSIT_CLASSES, DEPOSIT_ID,
                            DEPOSIT_REQUEST, MAX_ROC_POINTS, METRICS, MIA_AUC, MODULE_SHA256,
                            NONMEMBER_LABELS, NONMEMBER_LOSSES, RECEIPT, ROC_FPR, ROC_TPR,
                            WITHDRAW_REQUEST, Phase)
from protos.records import from_array_record, header_config, to_array_record
from server.federation import Federation, FederationError
from server.rounds import MAX_UPDATE_FACTOR, initial_arrays, run_rounds, save_state
from server.run_dir import CHECKPOINT_FILE, RunDirectory
from server.validation import check_update

MODELS = ("original", "target", "recovered", "retrain")
CURVE = "mia_roc"  # [[fpr, tpr], ...] of a model: in summary.json, not a metrics.jsonl figure


def run_lirf(fed: Federation, method: Method, spec: RunSpec, run: RunDirectory,
             state: dict[str, Any], progress: Callable) -> dict[str, Any]:
    return LIRFWorkflow(fed, method, spec, run, state, progress).run_stages()


def refusal(request: pb.WithdrawRequest, sender: int, receipt: pb.DepositReceipt) -> str | None:
    """Why a withdraw request must be refused (None: it comes from the receipt's owner)."""
    if request.deposit_id != receipt.deposit_id:
        return f"no receipt for deposit {request.deposit_id!r}"
    if request.requester_node_id != sender:
        return f"node {sender} asked in the name of node {request.requester_node_id}"
    if sender != receipt.owner_node_id:
        return f"node {sender} is not the owner; the receipt names node {receipt.owner_node_id}"
    return None


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
        self.test = method.test_dataset(spec)
        self.lirf = state.setdefault("lirf", {"stage": "phase0", "received": [], "refusals": 0})
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
        self.fedavg(self.spec, self.run, self.state)
        self.lirf["phase0_seconds"] = sum(m.get("seconds", 0.0) for m in self.run.metrics()
                                          if m.get("phase") == Phase.TRAIN)
        self.lirf["stage"] = "original"
        save_state(self.run, self.state)

    def original(self) -> None:
        rnd = self.state["round"] + 1
        self.lirf["original"] = self.assess(self.state["arrays"], rnd)
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
                         message_type="train", check=self.deposit_check(original))
        seconds = time.perf_counter() - started
        if reply is None:
            raise FederationError("deposit: the owner sent no valid reply (see events.log)")
        config = reply.content[CONFIG]
        target = with_shallow(original, shallow_part(from_array_record(reply.content[ARRAYS])))
        receipt = pb.DepositReceipt(
            deposit_id=request.deposit_id, owner_node_id=reply.metadata.src_node_id,
            classes=list(config[DEPOSIT_CLASSES]), sample_ids=list(request.sample_ids),
            module_sha256=str(config[MODULE_SHA256]), created_unix=time.time())
        figures = self.assess(target, rnd, list(receipt.classes))
        figures["F"] = forgetting(self.lirf["original"]["dep_acc"], figures["dep_acc"])
        figures["H"] = harmonic(figures["pre_acc"], figures["F"])
        self.state["arrays"] = target
        self.lirf.update(target=figures, receipt=encode(receipt).hex(), deposit_seconds=seconds,
                         receipt_status="committed", owner_committed=False,
                         deposit_report=dict(reply.content[METRICS]))
        self.advance("withdraw", rnd, "deposit", {**figures, "deposit_seconds": seconds})
        self.confirm_pending()

    def withdraw(self) -> None:
        rnd, receipt = self.state["round"] + 1, self.receipt()
        if not self.confirm_pending() or self.authorised_requester(receipt, rnd) is None:
            self.run.log_event(f"round {rnd} withdraw: no authorised request; the deposit "
                               f"{receipt.deposit_id} stays with its owner")
            self.advance("retrain", rnd, "withdraw", {"withdrawn": False})
            return
        recovered = recovered_arrays(self.state["arrays"], self.fetch_module(receipt, rnd))
        figures = self.assess(recovered, rnd, list(receipt.classes))
        self.state["arrays"] = recovered
        self.lirf.update(recovered=figures, receipt_status="withdrawn", owner_released=False)
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
        sub_run, sub_state = self.retrain_run(spec)
        self.fedavg(spec, sub_run, sub_state)
        seconds = sum(m.get("seconds", 0.0) for m in sub_run.metrics())
        receipt = self.receipt() if self.lirf.get("receipt") else None
        figures = self.assess(sub_state["arrays"], rnd, receipt and list(receipt.classes))
        self.lirf.update(retrain=figures, retrain_seconds=seconds)
        self.advance("done", rnd, "retrain", {**figures, "retrain_seconds": seconds})

    # --- steps ----------------------------------------------------------------------
    def fedavg(self, spec: RunSpec, run: RunDirectory, state: dict[str, Any]) -> None:
        """server/rounds.py's loop; with a decaying lr, one call per round, so that each
        round's header carries that round's lr to the nodes."""
        rounds = spec.federation.num_server_rounds
        if spec.method.lr_schedule == "constant":
            run_rounds(self.fed, self.method, spec, run, state, self.progress)
            return
        for rnd in range(state["round"] + 1, rounds + 1):
            one = dataclasses.replace(
                spec, federation=dataclasses.replace(spec.federation, num_server_rounds=rnd),
                method=dataclasses.replace(spec.method, lr=round_lr(spec.method, rnd, rounds)))
            run_rounds(self.fed, self.method, one, run, state, self.progress)

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
        self.fed.refresh()
        reply = None if receipt.owner_node_id not in {n.node_id for n in self.fed.alive()} else (
            self.ask(receipt.owner_node_id, self.state["round"], phase,
                     {RECEIPT: encode(receipt)}, record=False))
        if reply is None:
            self.run.log_event(f"{phase}: the receipt's owner, node {receipt.owner_node_id}, "
                               f"did not acknowledge; asked again later")
            return False
        self.lirf[flag] = True
        save_state(self.run, self.state)
        return True

    def authorised_requester(self, receipt: pb.DepositReceipt, rnd: int) -> int | None:
        """Poll the requesters in order; refuse (and log) all but the receipt's owner."""
        for partition in self.cfg.withdraw_requesters or (self.cfg.owner_partition,):
            node = self.node_of(partition)
            if node is None:
                self.run.log_event(f"round {rnd} withdraw: partition {partition} is not connected")
                continue
            reply = self.ask(node, rnd, Phase.WITHDRAW_REQUEST, {DEPOSIT_ID: receipt.deposit_id},
                             check=_payload_check(pb.WithdrawRequest, WITHDRAW_REQUEST))
            if reply is None:
                continue
            request = decode(pb.WithdrawRequest, reply.content[CONFIG][WITHDRAW_REQUEST])
            reason = refusal(request, reply.metadata.src_node_id, receipt)
            if reason is None:
                return node
            self.lirf["refusals"] += 1
            self.run.log_event(f"round {rnd} withdraw: request of deposit {request.deposit_id} "
                               f"from {self.fed.label(node)} refused: {reason}")
        return None

    def fetch_module(self, receipt: pb.DepositReceipt, rnd: int) -> dict[str, np.ndarray]:
        template = {DEPOSIT + k: v for k, v in shallow_part(self.state["arrays"]).items()}
        reply = self.ask(receipt.owner_node_id, rnd, Phase.WITHDRAW, {RECEIPT: encode(receipt)},
                         check=_module_check(template), record=False)
        if reply is None:
            raise FederationError("withdraw: the owner did not upload the module (see events.log)")
        module = {k[len(DEPOSIT):]: v for k, v in from_array_record(reply.content[ARRAYS]).items()}
        if module_sha256(module) != receipt.module_sha256:
            raise FederationError("withdraw: the uploaded module does not match the receipt")
        return module

    def assess(self, arrays: dict[str, np.ndarray], rnd: int, classes=None) -> dict[str, Any]:
        """Test-set accuracies and the owner's membership audit of one model."""
        pred, losses = predictions(self.model_of(arrays, classes), self.test.x, self.test.y)
        audit = self.audit(arrays, rnd, losses)
        classes = list(classes if classes is not None else audit["classes"])
        if self.cfg.level == "class":
            figures = split_accuracy(pred, self.test.y, classes)
        else:  # sample level: never-seen test data vs the deposited samples themselves
            accuracy = float((pred == self.test.y).mean())
            figures = {"pre_acc": accuracy, "dep_acc": audit["accuracy"], "avg_acc": accuracy}
        return {**figures, "mia_auc": audit["auc"], CURVE: audit["roc"]}

    def model_of(self, arrays: dict[str, np.ndarray], classes) -> Any:
        if any(k.startswith(DEPOSIT) for k in arrays):  # T̃: assessed with its receipt's classes
            return self.method.build_recovered(self.spec, arrays, list(classes))
        model = self.method.build_model(self.spec)
        self.method.load_shared_state(model, arrays)
        return model

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
            message_type="evaluate", check=_audit_check(self.test.num_classes))
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
                "digests": [module_sha256(a) for a in (shallow_part(arrays), arrays) if a]})

    def deposit_check(self, original: dict[str, np.ndarray]):
        shallow_keys = {"shallow." + key for key in shallow_part(original)}
        template = {k: v for k, v in original.items() if k in shallow_keys}
        max_bytes = int(MAX_UPDATE_FACTOR * sum(a.nbytes for a in template.values())) + 4096
        num_classes = self.test.num_classes

        def check(reply: Message) -> str | None:
            reason = check_update(reply.content, template, max_bytes=max_bytes)
            config = reply.content.get(CONFIG) or {}
            sha = config.get(MODULE_SHA256)
            if reason:
                return reason
            if not isinstance(sha, str) or len(sha) != 64:
                return "reply has no module-sha256"
            return _classes_problem(config.get(DEPOSIT_CLASSES), num_classes)

        return check

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

    def retrain_run(self, spec: RunSpec) -> tuple[RunDirectory, dict[str, Any]]:
        """The retrain baseline's own run directory (resumed from its checkpoint)."""
        path = self.run.path / "retrain"
        if (path / "checkpoint" / CHECKPOINT_FILE).is_file():
            sub = RunDirectory.open_existing(path)
            arrays, sub_state = sub.load_checkpoint()
            sub.truncate_metrics_after(int(sub_state["round"]))
            return sub, {**sub_state, "arrays": arrays}
        if (path / "config.json").is_file():
            sub = RunDirectory.open_existing(path)
            sub.truncate_metrics_after(0)
        else:
            sub = RunDirectory.create(path, {"baseline": "FedAvg from scratch without D_r",
                                             "run": spec.to_flat()})
        return sub, {"round": 0, "arrays": initial_arrays(self.method, spec)}

    def summary(self) -> dict[str, Any]:
        lirf = self.lirf
        models = {m: {k: v for k, v in lirf[m].items() if k not in ("mia_auc", CURVE)}
                  for m in MODELS if m in lirf}
        final = models.get("recovered") or models.get("target") or {}
        receipt = self.receipt() if lirf.get("receipt") else None
        return {
            **models,
            "accuracy": final.get("avg_acc"),
            "mia_auc": {m: lirf[m]["mia_auc"] for m in MODELS if m in lirf},
            CURVE: {m: lirf[m][CURVE] for m in MODELS if CURVE in lirf.get(m, {})},
            "phase0_seconds": lirf.get("phase0_seconds"),
            "deposit_seconds": lirf.get("deposit_seconds"),
            "retrain_seconds": lirf.get("retrain_seconds"),
            "deposit_module_on_server": receipt is not None and any(
                r["deposit_keys"] or receipt.module_sha256 in r["digests"]
                for r in lirf["received"]),
            "receipt": None if receipt is None else {
                "deposit_id": receipt.deposit_id, "owner_node_id": receipt.owner_node_id,
                "classes": list(receipt.classes), "num_sample_ids": len(receipt.sample_ids),
                "module_sha256": receipt.module_sha256, "status": lirf["receipt_status"]},
            "withdraw_refusals": lirf["refusals"],
            "deposit_report": lirf.get("deposit_report"),
        }


def _payload_check(message_cls, key: str):
    def check(reply: Message) -> str | None:
        config = reply.content.get(CONFIG)
        try:
            decode(message_cls, config[key] if config is not None else b"")
        except (KeyError, TypeError, PayloadError) as exc:
            return f"no valid {message_cls.DESCRIPTOR.name} under {key!r}: {exc}"
        return None

    return check


def _audit_check(num_classes: int):
    """The owner's audit reply is untrusted input: aggregates only, each in its range."""
    def check(reply: Message) -> str | None:
        metrics = reply.content.get(METRICS) or {}
        config = reply.content.get(CONFIG) or {}
        return (_fraction_problem(metrics, MIA_AUC) or _fraction_problem(metrics, DEPOSIT_ACCURACY)
                or roc_problem(metrics.get(ROC_FPR), metrics.get(ROC_TPR),
                               max_points=MAX_ROC_POINTS)
                or _classes_problem(config.get(DEPOSIT_CLASSES), num_classes))

    return check


def _fraction_problem(record, key: str) -> str | None:
    value = record.get(key)
    if isinstance(value, float) and 0.0 <= value <= 1.0:  # NaN fails the comparison
        return None
    return f"{key} is not a number in [0, 1] ({str(value)[:40]})"


def _classes_problem(classes, num_classes: int) -> str | None:
    if isinstance(classes, list) and classes and all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c < num_classes
            for c in classes):
        return None
    return f"reply names no valid deposit classes ({str(classes)[:80]})"


def _module_check(template: dict[str, np.ndarray]):
    def check(reply: Message) -> str | None:
        arrays = from_array_record(reply.content[ARRAYS]) if ARRAYS in reply.content else {}
        if set(arrays) != set(template):
            return "module arrays do not match the model's shallow part"
        bad = [k for k, v in arrays.items() if v.shape != template[k].shape
               or v.dtype != template[k].dtype or not np.isfinite(v).all()]
        return f"module array {bad[0]} has a wrong shape, dtype or value" if bad else None

    return check
