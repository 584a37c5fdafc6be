"""FedSA's server workflow (Method.workflow = "fedsa"); the algorithm is methods/fedsa/.

Xie, Yu, Fang, Song et al., FedSA, arXiv:2207.13309 (2022); message flow (design notes §1.7,
not shipped):

    round 0   teacher phase: every node makes sure its private teacher exists;
              the server pre-fits the student on its probe set and adapts a copy
              of it (the probe-only baseline, accuracy_scratch)
    round r   if (r − 1) mod R_sel = 0: selection: probe images + the student's
              Grad-CAM maps go to every teacher node, each returns ONE
              SimilarityReport; the server draws teachers (SelectionDecision)
              distill: the drawn nodes return student weights; FedSAAverage
              averages them with weight m/k per teacher drawn m times
    r % R_sel task adaptation (fresh head, probe fine-tuning) of a copy, measured on the
              server's validation canvases (carved from training digits)
    end       the same adaptation, last epoch measured on validation AND on the test
              canvases: the test split is read for final figures only

Every reply from a teacher node is metered (serialized bytes) and checked
against what its phase may carry (server/fedsa_replies.py); anything else — an
extra record, an array that is not the student's — is logged and makes
`teacher_weights_sent` true.
A node whose similarity is NaN or missing, or whose update has the wrong
shape, is dropped for that round and logged.

The server's own steps (the student's probe fit, its Grad-CAM maps, task adaptation and
evaluation) compute on the server's device (the run's `device`, methods/common/device.py);
the arrays it keeps, sends and checkpoints are CPU numpy arrays as before.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Callable

import numpy as np
import torch
from flwr.app import Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords, aggregate_metricrecords

from methods.base import Method, RunSpec
from methods.common.device import resolve_device
from methods.config import ConfigError
from methods.fedsa.canvas import is_relevant, teacher_task_for
from methods.fedsa.saliency import grad_cam
from methods.fedsa.selection import draw_weights, precision_at_k, select_teachers
from methods.fedsa.student import adapt_and_evaluate, prefit_student
from protos import fedvault_pb2 as pb
from protos.codec import PayloadError, decode, encode
from protos.contract import (ARRAYS, CONFIG, INFO, METRICS, PROBE, PROBE_IMAGES, SIMILARITY,
                            STUDENT_CAM, TEACHER_VAL_ACCURACY, TRAIN_LOSS, Phase, partition_key,
                            partition_of)
from protos.records import from_array_record, header_config, to_array_record
from server.federation import Federation, FederationError, SampledGrid
from server.rounds import MAX_UPDATE_FACTOR, save_state
from server.run_dir import RunDirectory
from server.fedsa_replies import REPLY_SCHEMA, ReplyMeter, foreign_content, reply_bytes
from server.validation import check_update


class FedSAAverage(FedAvg):
    """FedAvg weighted by the server's draw counts (m/k), not by num-examples (§1.7 step 4).

    The weights are the server's own record of the draws (`draws`, node id →
    m), so a node cannot inflate its weight by reporting more examples.
    """

    def __init__(self) -> None:
        super().__init__(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=1,
                         min_evaluate_nodes=0, min_available_nodes=1)
        self.draws: dict[int, int] = {}

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        if not replies:
            return None, None
        contents = [RecordDict({
            ARRAYS: r.content[ARRAYS],
            METRICS: MetricRecord({"draws": float(self.draws[r.metadata.src_node_id]),
                                   TRAIN_LOSS: float(r.content[METRICS].get(TRAIN_LOSS, 0.0))}),
        }) for r in replies]
        mean = from_array_record(aggregate_arrayrecords(contents, "draws"))
        # BatchNorm's integer step counters come back as floats; keep every dtype.
        dtypes = {k: v.dtype for k, v in replies[0].content[ARRAYS].items()}
        arrays = {k: np.rint(v).astype(dtypes[k]) if np.dtype(dtypes[k]).kind in "iu"
                  else v.astype(dtypes[k]) for k, v in mean.items()}
        return to_array_record(arrays), aggregate_metricrecords(contents, "draws")


def _check_teacher_reply(reply: Message) -> str | None:
    metrics = reply.content.get(METRICS)
    if not isinstance(metrics, MetricRecord) or TEACHER_VAL_ACCURACY not in metrics:
        return f"teacher reply has no MetricRecord with {TEACHER_VAL_ACCURACY!r}"
    return None


def teacher_key(fed: Federation, node_id: int) -> str:
    """A node's name in summaries: "p<partition>" (stable across runs), else "n<node id>"."""
    pid = fed.nodes[node_id].partition_id if node_id in fed.nodes else -1
    return partition_key(pid) if pid >= 0 else f"n{node_id}"


def relevance(key: str) -> bool | None:
    """Ground truth of the canvas scenario (evaluation only; the selection never sees it)."""
    pid = partition_of(key)
    return None if pid is None else is_relevant(teacher_task_for(pid))


class FedSAWorkflow:
    def __init__(self, fed: Federation, method: Method, spec: RunSpec, run: RunDirectory,
                 state: dict[str, Any], progress: Callable[[dict[str, Any]], None]) -> None:
        self.fed, self.method, self.spec, self.run = fed, method, spec, run
        self.state, self.progress = state, progress
        self.cfg = spec.method
        # the server's device, as server/runner.py resolved it (and limited CPU threads for)
        self.device = resolve_device(spec.federation.device, cpu_only=method.cpu_only)
        self.probe = method.probe_dataset(spec)
        self.val = method.val_dataset(spec)  # every choice reads this, never the test set
        self.test = method.test_dataset(spec)
        self.strategy = FedSAAverage()
        self.teachers: dict[str, int] = {}  # key → node id, the nodes hosting a ready teacher
        self.phase = INFO
        state.setdefault("bytes_from_teachers", {})
        state.setdefault("foreign_content", [])
        fed.grid = ReplyMeter(fed.grid, self._inspect)

    # --- metering ------------------------------------------------------------------------
    def _inspect(self, reply: Message) -> None:
        if self.phase not in REPLY_SCHEMA:
            return  # the foundation's membership handshake, not a FedSA phase
        meter = self.state["bytes_from_teachers"]
        meter[self.phase] = meter.get(self.phase, 0) + reply_bytes(reply)
        for item in foreign_content(reply, self.phase, self.state["arrays"]):
            who = self.fed.label(reply.metadata.src_node_id)
            self.state["foreign_content"].append(f"{self.phase}: {who}: {item}")
            self.run.log_event(f"{self.phase}: {who} sent unexpected content: {item}")

    def _record(self, record: dict[str, Any]) -> None:
        self.run.log_metrics(record)
        self.progress(record)
        save_state(self.run, self.state)

    # --- round 0 ---------------------------------------------------------------------------
    def host_teachers(self) -> None:
        """Every node readies its teacher; too few for the selection rule is an error now."""
        nodes = [n.node_id for n in self.fed.alive()]
        self._check_enough(len(nodes), "are connected")
        started, self.phase = time.perf_counter(), Phase.TEACHER
        content = RecordDict({CONFIG: header_config(self.spec, 0, Phase.TEACHER)})
        messages = [Message(content, dst_node_id=nid, message_type="query") for nid in nodes]
        replies = self.fed.exchange(messages, 0, Phase.TEACHER, _check_teacher_reply)
        accuracy = {}
        for reply in replies:
            key = teacher_key(self.fed, reply.metadata.src_node_id)
            self.teachers[key] = reply.metadata.src_node_id
            accuracy[key] = float(reply.content[METRICS][TEACHER_VAL_ACCURACY])
        self._check_enough(len(self.teachers), "answered the teacher phase", set(self.teachers))
        self.state["teacher_val_accuracy"] = accuracy
        self._record({"round": 0, "phase": Phase.TEACHER, "teacher_val_accuracy": accuracy,
                      "replies": len(replies), "sampled": len(nodes),
                      "seconds": time.perf_counter() - started})

    def _check_enough(self, available: int, what: str, ready: set[str] | None = None) -> None:
        cfg = self.cfg
        if available == 0:
            raise FederationError(f"no node {what}: FedSA has no teacher (see events.log)")
        if cfg.selection == "fixed" and ready is not None:
            missing = [p for p in cfg.fixed_teachers if partition_key(p) not in ready]
            if missing:
                raise FederationError(
                    f"fixed-teachers {missing} are not among the nodes that {what}")
        elif cfg.selection not in ("all", "fixed") and available < cfg.k:
            raise FederationError(f"selection {cfg.selection!r} needs k={cfg.k} teachers but only "
                                  f"{available} node(s) {what} (see events.log)")

    def prefit(self) -> None:
        """The student's probe fit, and the probe-only baseline from it (same seed, same head)."""
        started = time.perf_counter()
        arrays = prefit_student(self.method, self.spec, self.state["arrays"], self.probe,
                                device=self.device)
        # The probe-only baseline is final as soon as it is fitted: nothing is chosen on it.
        scratch = adapt_and_evaluate(self.method, self.spec, arrays, self.probe, val=self.val,
                                     test=self.test, device=self.device)
        self.state["arrays"] = arrays
        self.state["accuracy_scratch"] = scratch["accuracy"]
        self.state["val_accuracy_scratch"] = scratch.get("val_accuracy")
        self._record({"round": 0, "phase": "prefit", "accuracy_scratch": scratch["accuracy"],
                      "val_accuracy_scratch": scratch.get("val_accuracy"),
                      "seconds": time.perf_counter() - started})

    # --- selection -------------------------------------------------------------------------
    def select(self, rnd: int) -> None:
        started, self.phase = time.perf_counter(), Phase.SELECT
        reports: dict[int, float] = {}
        messages = self._select_messages(rnd)
        self.fed.exchange(messages, rnd, Phase.SELECT, lambda r: self._read_report(r, rnd, reports))
        if not reports:
            raise FederationError(
                f"round {rnd}: no teacher returned a valid similarity (see events.log)")
        # Partition order, not arrival order: the seeded draw must not depend on who answered first.
        keys = [key for key, nid in self.teachers.items() if nid in reports]
        sims = [reports[self.teachers[key]] for key in keys]
        if len(keys) < self.cfg.k and self.cfg.selection in ("topk", "random"):
            self.run.log_event(
                f"round {rnd} select: only {len(keys)} similarities for k={self.cfg.k}")
        rng = np.random.default_rng([self.spec.federation.seed, rnd, 17])
        counts = select_teachers(self.cfg.selection, keys, sims, k=self.cfg.k,
                                 num_probe=len(self.probe), rng=rng,
                                 fixed=[partition_key(p) for p in self.cfg.fixed_teachers])
        self.state["draws"] = counts
        # A run resumed between this selection and its distillation selects round rnd again.
        earlier = [s for s in self.state.get("selected", []) if s["round"] < rnd]
        self.state["selected"] = earlier + [{"round": rnd, "draws": counts}]
        per_probe = {key: sim / len(self.probe) for key, sim in zip(keys, sims)}
        if "similarity" not in self.state:
            self._first_selection(keys, sims, per_probe)
        self._record({"round": rnd, "phase": Phase.SELECT, "similarity": per_probe, "draws": counts,
                      "decision": self._decision(rnd, counts), "replies": len(reports),
                      "sampled": len(messages), "seconds": time.perf_counter() - started})

    def _select_messages(self, rnd: int) -> list[Message]:
        student = self.method.build_model(self.spec).to(self.device)
        self.method.load_shared_state(student, self.state["arrays"])
        images = torch.from_numpy(np.ascontiguousarray(self.probe.x)).to(self.device)
        maps = grad_cam(student, images, self.cfg.student_layer).cpu().numpy()  # S_s: N×(H·W)
        probe = to_array_record({PROBE_IMAGES: self.probe.x, STUDENT_CAM: maps})
        content = RecordDict({CONFIG: header_config(self.spec, rnd, Phase.SELECT), PROBE: probe})
        alive = {n.node_id for n in self.fed.alive()}
        return [Message(content, dst_node_id=nid, message_type="query")
                for nid in self.teachers.values() if nid in alive]

    def _read_report(self, reply: Message, rnd: int, reports: dict[int, float]) -> str | None:
        try:
            report = decode(pb.SimilarityReport, reply.content[CONFIG][SIMILARITY])
        except (KeyError, TypeError, PayloadError) as exc:  # missing, or NaN/∞ (the validator)
            return f"no valid SimilarityReport ({exc})"
        if report.round != rnd or report.num_probe != len(self.probe):
            return (f"SimilarityReport for round {report.round} over {report.num_probe} probes, "
                    f"expected round {rnd} over {len(self.probe)}")
        if not 0.0 < report.similarity <= report.num_probe:
            return f"similarity {report.similarity} outside (0, {report.num_probe}]"
        reports[reply.metadata.src_node_id] = report.similarity
        return None

    def _first_selection(self, keys: list[str], sims: list[float], per_probe: dict) -> None:
        self.state["similarity"] = per_probe
        relevant = {key for key in keys if relevance(key)}
        known = [key for key in keys if relevance(key) is not None]
        if known:
            k = min(self.cfg.k, len(keys))
            self.state["selection_precision"] = precision_at_k(keys, sims, k, relevant)
            rel = [per_probe[key] for key in known if key in relevant]
            other = [per_probe[key] for key in known if key not in relevant]
            if rel and other:
                self.state["similarity_gap"] = float(np.mean(rel) - np.mean(other))

    def _decision(self, rnd: int, counts: dict[str, int]) -> dict[str, Any]:
        weights = draw_weights(counts)
        decision = pb.SelectionDecision(round=rnd, mode=self.cfg.selection,
                                        node_ids=[self.teachers[key] for key in counts],
                                        weights=[weights[key] for key in counts])
        payload = encode(decision)  # validated: finite, non-negative, no repeated node
        return {"weights": weights, "payload": base64.b64encode(payload).decode()}

    # --- distillation ----------------------------------------------------------------------
    def distill(self, rnd: int) -> None:
        started, self.phase = time.perf_counter(), Phase.DISTILL
        alive = {n.node_id for n in self.fed.alive()}
        draws = {self.teachers[key]: m for key, m in self.state["draws"].items()
                 if self.teachers.get(key) in alive}
        if len(draws) < len(self.state["draws"]):
            self.run.log_event(f"round {rnd} distill: drawn teachers lost before the round; "
                               f"averaging the {len(draws)} still connected")
        self.strategy.draws = draws
        arrays = self.state["arrays"]
        max_bytes = int(MAX_UPDATE_FACTOR * sum(a.nbytes for a in arrays.values())) + 4096
        config = header_config(self.spec, rnd, Phase.DISTILL)
        replies: list[Message] = []
        if draws:  # none left: Flower's sampler would wait for a node forever
            messages = self.strategy.configure_train(rnd, to_array_record(arrays), config,
                                                     SampledGrid(list(draws)))
            replies = self.fed.exchange(
                messages, rnd, Phase.DISTILL,
                lambda r: check_update(r.content, arrays, max_bytes=max_bytes))
        loss = None
        if replies:
            aggregated, metrics = self.strategy.aggregate_train(rnd, replies)
            self.state["arrays"] = from_array_record(aggregated)
            loss = float(metrics[TRAIN_LOSS])
        else:
            self.run.log_event(f"round {rnd} distill: no valid update; the student is unchanged")
        self.state["round"] = rnd
        self._record({"round": rnd, "phase": Phase.DISTILL, "train_loss": loss,
                      "replies": len(replies), "sampled": len(draws),
                      "seconds": time.perf_counter() - started})

    def adapt(self, rnd: int, final: bool) -> None:
        """Adapt a copy of the student; validation figures always, test figures when final."""
        if not final and self.val is None:
            return  # nothing may be measured before the end
        started = time.perf_counter()
        figures = adapt_and_evaluate(self.method, self.spec, self.state["arrays"], self.probe,
                                     val=self.val, test=self.test if final else None,
                                     device=self.device)
        record = {"round": rnd, "phase": "adapt", "val_accuracy": figures.get("val_accuracy")}
        self.state["val_accuracy"] = figures.get("val_accuracy")
        if final:
            self.state["accuracy"] = figures["accuracy"]
            record.update(accuracy=figures["accuracy"], loss=figures["loss"])
        self._record({**record, "seconds": time.perf_counter() - started})

    # --- the run ---------------------------------------------------------------------------
    def __call__(self) -> dict[str, Any]:
        self.host_teachers()
        if "accuracy_scratch" not in self.state:
            self.prefit()
        rounds, every = self.spec.federation.num_server_rounds, self.cfg.reselect_every
        for rnd in range(self.state["round"] + 1, rounds + 1):
            if (rnd - 1) % every == 0 or "draws" not in self.state:
                self.select(rnd)
            self.distill(rnd)
            if rnd % every == 0 or rnd == rounds:
                self.adapt(rnd, final=rnd == rounds)
        if "accuracy" not in self.state:  # zero rounds: the student is the pre-fit one
            self.adapt(self.state["round"], final=True)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        s = self.state
        draws = [(key, m) for sel in s.get("selected", []) for key, m in sel["draws"].items()]
        judged = [(relevance(key), m) for key, m in draws if relevance(key) is not None]
        return {
            "accuracy": s["accuracy"],
            "accuracy_scratch": s["accuracy_scratch"],
            "val_accuracy": s.get("val_accuracy"),
            "val_accuracy_scratch": s.get("val_accuracy_scratch"),
            "selection": self.cfg.selection,
            "k": self.cfg.k,
            "selection_precision": s.get("selection_precision"),
            "similarity": s.get("similarity", {}),
            "similarity_gap": s.get("similarity_gap"),
            "selected": s.get("selected", []),
            "relevant_share": (sum(m for rel, m in judged if rel) / sum(m for _, m in judged))
            if judged else None,
            "teacher_tasks": {key: teacher_task_for(partition_of(key)) for key in self.teachers
                              if partition_of(key) is not None},
            "teacher_val_accuracy": s.get("teacher_val_accuracy", {}),
            "bytes_from_teachers": int(sum(s["bytes_from_teachers"].values())),
            "bytes_from_teachers_by_phase": s["bytes_from_teachers"],
            "teacher_weights_sent": bool(s["foreign_content"]),
        }


def run_fedsa(fed: Federation, method: Method, spec: RunSpec, run: RunDirectory,
              state: dict[str, Any], progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    dp = getattr(spec, "dp", None)
    if dp is not None and dp.enabled:
        # The distillation step runs through the shared local loop, where DP-SGD hooks in,
        # but the FedSA phases do not pass it on yet: refuse rather than run non-private.
        raise ConfigError("dp.enabled is not supported by fedsa yet (its distillation step "
                          "does not take the privacy hook); run without dp.enabled")
    if spec.federation.aggregation != "fedavg":
        # FedSA averages its student by draw weights (FedSAAverage), never server/strategy.py:
        # refuse rather than silently ignore a robust rule.
        raise ConfigError(f"aggregation={spec.federation.aggregation!r} is not supported by fedsa "
                          "(it averages its student by draw weights); use aggregation=fedavg")
    # torch's CPU threads: server/runner.py limits them to 1 when the server's device is the CPU
    return FedSAWorkflow(fed, method, spec, run, state, progress)()
