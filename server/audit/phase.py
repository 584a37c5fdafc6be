"""The audit as a federated phase: white-box canaries read during the rounds, and the
end-of-run "audit" request whose replies hold scores only (AuditScores payloads).

White-box (Dirac) canaries (Nasr et al., "Tight Auditing of Differentially Private
Machine Learning", USENIX Security 2023; Steinke et al. 2023 §5): node k's canary i
is a virtual example whose clipped gradient is C·e_{j_i} on a coordinate of one
weight matrix that no other canary uses. The server sees every client update, so it
scores canary i by Y_i = −Σ_rounds Δw_{j_i}: an IN canary pushes its weight down by
lr·C/B each time it joins a batch. The coins come from methods/audit_plan.py on the
server's side, not from the node.

Outputs in RUN_DIR/audit/: scores.npz (1-D score and coin arrays, per node) and
phase.json (what each node answered; both: server/audit/scores.py), then the report
(server/audit/report.py).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
from flwr.app import Message, RecordDict

from methods.audit_plan import WhiteboxPlan, whitebox_plan
from methods.base import RunSpec
from protos import fedvault_pb2 as pb
from protos.codec import PayloadError, decode
from protos.contract import ARRAYS, AUDIT_SCORES, CONFIG, METRICS, Phase, partition_key
from protos.records import header_config, to_array_record
from server.audit.report import write_report
from server.audit.scores import AUDIT_DIR, save_scores
from server.federation import Federation, NodeRecord
from server.run_dir import RunDirectory

class WhiteboxReader:
    """Accumulates Y_i = −Σ Δw_{j_i} for every node's Dirac canaries, round after round."""

    def __init__(self, spec: RunSpec, arrays: Mapping[str, np.ndarray], saved: Mapping[str, list]):
        self.spec = spec
        self.shapes = {k: tuple(v.shape) for k, v in arrays.items()}
        self.scores: dict[str, np.ndarray] = {k: np.asarray(v, float) for k, v in saved.items()}

    def plan(self, record: NodeRecord) -> WhiteboxPlan:
        return whitebox_plan(
            self.shapes,
            self.spec.audit,
            seed=self.spec.federation.seed,
            partition_id=record.partition_id,
            num_nodes=record.num_partitions,
        )

    def observe(
        self,
        replies: list[Message],
        arrays: Mapping[str, np.ndarray],
        record_of: Callable[[int], NodeRecord | None],
    ) -> None:
        for reply in replies:
            record = record_of(reply.metadata.src_node_id)
            if record is None or record.partition_id < 0:
                continue  # only partition nodes have a slot the server knows
            plan = self.plan(record)
            update = reply.content[ARRAYS][plan.param].numpy().reshape(-1)[plan.coords]
            delta = update - np.asarray(arrays[plan.param]).reshape(-1)[plan.coords]
            key = partition_key(record.partition_id)
            self.scores[key] = self.scores.get(key, np.zeros(len(plan.coords))) - delta

    def saved(self) -> dict[str, list[float]]:
        return {k: v.tolist() for k, v in self.scores.items()}


def _audit_request(
    spec: RunSpec, rnd: int, arrays: Mapping[str, np.ndarray], node_id: int
) -> Message:
    content = RecordDict(
        {ARRAYS: to_array_record(arrays), CONFIG: header_config(spec, rnd, Phase.AUDIT)}
    )
    return Message(content, dst_node_id=node_id, message_type="query")


def _check_scores(reply: Message) -> str | None:
    try:
        payloads = [decode(pb.AuditScores, p) for p in reply.content[CONFIG][AUDIT_SCORES]]
    except (KeyError, PayloadError) as exc:
        return f"audit reply without valid AuditScores ({exc})"
    if sorted(p.kind for p in payloads) != ["confidence", "loss"]:
        return "audit reply must hold one 'loss' and one 'confidence' AuditScores"
    return None


def run_audit_phase(
    fed: Federation,
    spec: RunSpec,
    run: RunDirectory,
    arrays: Mapping[str, np.ndarray],
    rnd: int,
    prepare: Callable[[int, list[Message]], list[Message]],
    whitebox: WhiteboxReader | None,
) -> dict[str, Any]:
    """Ask every live node for its scores, store them, render the report."""
    nodes = fed.alive()
    messages = prepare(rnd, [_audit_request(spec, rnd, arrays, n.node_id) for n in nodes])
    replies = fed.exchange(messages, rnd, Phase.AUDIT, _check_scores)
    out = run.path / AUDIT_DIR
    out.mkdir(exist_ok=True)
    scores, phase = _collect(fed, replies)
    if whitebox is not None:
        for record in nodes:
            key = partition_key(record.partition_id)
            if key in whitebox.scores:
                plan = whitebox.plan(record)
                scores[f"{key}|whitebox|score"] = whitebox.scores[key]
                scores[f"{key}|whitebox|in"] = plan.canary_in
                phase["whitebox"] = {"param": plan.param}
    save_scores(out, scores, phase)
    report = write_report(run.path, out)
    run.log_event(
        f"audit: {len(replies)} of {len(nodes)} nodes scored; verdict {report['verdict']}"
    )
    return {
        "audit_report": str((out / "report.html").resolve()),
        "audit_verdict": report["verdict"],
    }


def _collect(fed: Federation, replies: list[Message]) -> tuple[dict[str, np.ndarray], dict]:
    scores: dict[str, np.ndarray] = {}
    phase: dict[str, Any] = {"nodes": {}}
    for reply in replies:
        node_id = reply.metadata.src_node_id
        key = fed.node_key(node_id)
        for payload in reply.content[CONFIG][AUDIT_SCORES]:
            s = decode(pb.AuditScores, payload)
            scores[f"{key}|{s.kind}|member"] = np.asarray(s.member_scores, float)
            scores[f"{key}|{s.kind}|nonmember"] = np.asarray(s.nonmember_scores, float)
            scores[f"{key}|{s.kind}|canary"] = np.asarray(s.canary_scores, float)
            scores[f"{key}|canary|in"] = np.asarray(s.canary_included, bool)
        metrics = reply.content[METRICS]
        phase["nodes"][key] = {"node_id": node_id, **{k: float(v) for k, v in metrics.items()}}
    return scores, phase
