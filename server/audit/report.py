"""The Privacy Audit Report of one run directory (schema fl-privacy-audit/1.0).

Inputs: config.json, ledger.jsonl (read strictly: server/audit/ledger_checks.py),
metrics.jsonl, summary.json, events.log and audit/scores.npz + audit/phase.json (written
by the audit phase). Sections: run, training (did the model learn at all), ledger
(integrity), accounting (formal guarantee per node, re-derived by the server's own
accountant), canary_audit (black-box one-run audit), whitebox_canary_audit (with its
measured positive control, server/audit/power.py), mia, noise_probe, unlearning,
checks, verdict. Each audit carries its own ε̂, its own ceiling and its own positive
control, and an `outcome` sentence built from those alone. `write_report` adds
report.md, a self-contained report.html and the PNG figures (server/audit/render.py).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import chi2

from methods.base import RunSpec
from methods.resolve import parse_run_spec
from protos.contract import NOISE_PROBE_DOF, NOISE_PROBE_SUM_SQ
from server.audit import accounting
from server.audit.canary import one_run_audit
from server.audit.checks import run_checks, verdict
from server.audit.ledger_checks import LEDGER_CHECKS, UnreadableFileError, inspect, read_strict
from server.audit.mia import attack_summary
from server.audit.scores import (
    AUDIT_DIR,
    PHASE_FILE,
    SCORES_FILE,
    load_scores,
    mia_nodes,
    pooled_canaries,
    pooled_mia,
)
from server.audit.power import NOT_MEASURED, outcome, whitebox_control
from server.audit.training import read_summary, training_section
from server.ledger import LEDGER_FILE
from server.run_dir import RunDirectory

SCHEMA = "fl-privacy-audit/1.0"
PROFILE_DELTAS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 5e-2, 1e-1, 0.2)
SAMPLING_KEYS = (
    "poisson", "sampler", "expected_batch_size", "grad_sample_mode", "model_compatible"
)


class ReportError(ValueError):
    """The directory is not a run this report can read."""


def _history(lines: list[dict]) -> list[tuple[float, float, int]]:
    return [(float(x["noise_multiplier"]), float(x["sample_rate"]), int(x["steps"])) for x in lines]


def node_guarantee(lines: list[dict], delta: float) -> dict[str, Any]:
    """Section 3 of the report for one node: its figures, and ε re-derived by the server."""
    last, history = lines[-1], _history(lines)
    method = accounting.SERVER_METHOD.get(last["accountant"], last["accountant"])
    other = "rdp" if method == "pld" else "pld"
    n = _count(last.get("num_examples"))
    by_round = accounting.epsilon_curve(history, delta, method)
    deltas = sorted({1e-5, 1e-6, *([1 / (10 * n)] if n else [])})
    return {
        "level": last.get("level", "sample"),
        "accountant": last["accountant"],
        "server_accountant": method,
        "n": n,
        "batch_size": last.get("batch_size"),
        "q": last["sample_rate"],
        "sigma": last["noise_multiplier"],
        "C": last.get("max_grad_norm"),
        "rounds": len(lines),
        "steps": sum(h[2] for h in history),
        "epsilon": float(last["epsilon"]),
        "delta": delta,
        "epsilon_server": by_round[-1],
        f"epsilon_server_{method}": by_round[-1],
        f"epsilon_server_{other}": accounting.epsilon(history, delta, other),
        "epsilon_at_delta": dict(
            zip((f"{d:.2g}" for d in deltas), accounting.epsilon_at_deltas(history, deltas, method))
        ),
        "epsilon_by_round": [float(x["epsilon"]) for x in lines],
        "epsilon_server_by_round": by_round,
        "rounds_trained": [int(x["round"]) for x in lines],
        "clip_fraction_by_round": [_fraction(x.get("clip_fraction")) for x in lines],
        "rejected_rounds": [int(x["round"]) for x in lines if x.get("accepted") is False],
        "history": [list(h) for h in history],
        "sampling": {k: last.get(k) for k in SAMPLING_KEYS},
    }


def _count(value: Any) -> int:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    return int(value) if ok and value >= 0 else 0


def _fraction(value: Any) -> float | None:
    """A clip fraction, or None when the line has no usable one (A14 says so)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    return float(value) if ok else None


def _accounting(spec: RunSpec, ledger: list[dict], left_out: int) -> dict[str, Any]:
    """Section 3 from the usable ledger lines; `left_out` lines (check A15) are not in it."""
    dp = spec.dp
    if not dp.enabled:
        return {"private": False}
    nodes = sorted({x["node"] for x in ledger})
    per_client = {k: node_guarantee([x for x in ledger if x["node"] == k], dp.delta) for k in nodes}
    worst = max(per_client, key=lambda k: per_client[k]["epsilon"], default=None)
    curve = []
    if worst is not None:
        history = [tuple(h) for h in per_client[worst]["history"]]
        method = per_client[worst]["server_accountant"]
        curve = list(
            zip(PROFILE_DELTAS, accounting.epsilon_at_deltas(history, PROFILE_DELTAS, method))
        )
    return {
        "private": True,
        "level": dp.level,
        "accountant": dp.accountant,
        "delta": dp.delta,
        "target_epsilon": dp.target_epsilon,
        "budget": dp.budget,
        "epsilon": max((c["epsilon"] for c in per_client.values()), default=0.0),
        "worst_node": worst,
        "profile": curve,
        "per_client": per_client,
        "lines_left_out": left_out,
    }


def _one_run(scores: dict, kind: str, delta: float, s: float, description: str) -> dict[str, Any]:
    y, coins = pooled_canaries(scores, kind)
    if len(y) == 0:
        return {
            "applicable": False,
            "reason": "no canaries of this kind in the run",
            "epsilon_lower_bound": 0.0,
            "outcome": "not run: no canaries of this kind",
        }
    audit = one_run_audit(y, coins, delta, s)
    return {
        "applicable": True,
        "canary_type": description,
        "in": int(coins.sum()),
        **audit.to_json(),
    }


def _with_outcome(section: dict, claim: float | None, control: dict) -> dict:
    """An audit's section with its own positive control and the outcome worded from it."""
    if not section.get("applicable"):
        return section
    eps = section["epsilon_lower_bound"]
    return {**section, "positive_control": control, "outcome": outcome(eps, claim, control)}


def _audits(spec: RunSpec, scores: dict, ledger: list[dict], acct: dict) -> dict[str, Any]:
    """The black-box and white-box one-run audits and the MIA, each with its outcome."""
    delta, s = spec.dp.delta, spec.audit.significance
    claim = acct["epsilon"] if acct.get("private") else None
    unmeasured = {"measured": False, "reason": NOT_MEASURED}
    white = _one_run(
        scores, "whitebox", delta, s, "Dirac gradient canaries read from client updates"
    )
    if white.get("applicable"):
        # the audit reads accepted replies only: rejected ones count for ε, not for the scores
        read = [x for x in ledger if x.get("accepted") is not False] if acct.get("private") else []
        control = whitebox_control(scores, read, spec.dp.max_grad_norm, delta, s)
        white = _with_outcome(white, claim, control)
    black = _one_run(
        scores, "confidence", delta, s, "mislabeled examples, black-box logit-scaled confidence"
    )
    return {
        "canary_audit": _with_outcome(black, claim, unmeasured),
        "whitebox_canary_audit": white,
        "mia": _with_outcome(_mia(scores, delta, s), claim, unmeasured),
    }


def _mia(scores: dict, delta: float, s: float) -> dict[str, Any]:
    nodes = mia_nodes(scores)
    if not nodes:
        return {
            "applicable": False,
            "auc": None,
            "tpr_at_fpr": {},
            "outcome": "not run: no member/non-member scores",
        }
    if not all(np.isfinite(scores[k]).all() for k in scores if "member" in k.split("|")[-1]):
        return {
            "applicable": False,
            "auc": None,
            "tpr_at_fpr": {},
            "reason": "non-finite member/non-member scores (a diverged model?)",
            "outcome": "not run: non-finite scores",
        }
    attacks = {}
    for kind in ("loss", "confidence"):
        members, nonmembers = pooled_mia(scores, kind)
        attacks[kind] = attack_summary(members, nonmembers, delta, s)
        attacks[kind]["per_client"] = {
            n: attack_summary(
                scores[f"{n}|{kind}|member"], scores[f"{n}|{kind}|nonmember"], delta, s
            )["auc"]
            for n in nodes
        }
    best = max(attacks, key=lambda k: attacks[k]["auc"])
    return {
        "applicable": True,
        "attack": best,
        "auc": attacks[best]["auc"],
        "tpr_at_fpr": attacks[best]["tpr_at_fpr"],
        "epsilon_lower_bound": max(a["epsilon_lower_bound"] for a in attacks.values()),
        "max_measurable": max(a["max_measurable"] for a in attacks.values()),
        "attacks": attacks,
        "lira": {"applicable": False, "reason": "no shadow federations"},
    }


def _noise_probe(phase: dict, accounting_section: dict) -> dict[str, Any]:
    """Check A13's figures: χ² = Σ(Δw·B/C)² / σ_ledger² against χ²_d, two-sided."""
    out = {}
    per_client = accounting_section.get("per_client", {})
    for node, figures in phase.get("nodes", {}).items():
        if NOISE_PROBE_SUM_SQ not in figures or node not in per_client:
            continue
        sigma, dof = per_client[node]["sigma"], figures[NOISE_PROBE_DOF]
        if not sigma > 0:
            continue  # σ = 0 claims no noise at all: check A4 fails it
        stat = figures[NOISE_PROBE_SUM_SQ] / sigma**2
        p = 2 * min(chi2.cdf(stat, dof), chi2.sf(stat, dof))
        out[node] = {
            "chi2": stat,
            "dof": dof,
            "ratio": float(np.sqrt(stat / dof)),
            "p_value": float(min(p, 1.0)),
            "sigma_ledger": sigma,
        }
    return out


def build_report(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The report as a dict (report.json) and the scores it was computed from."""
    run = RunDirectory(run_dir)
    try:
        config = run.config()
        spec = parse_run_spec(config["run"])
    except (OSError, KeyError, ValueError) as exc:
        raise ReportError(f"{run_dir} is not a readable fedvault run directory: {exc}") from exc
    audit_dir = run.path / AUDIT_DIR
    has_scores = (audit_dir / SCORES_FILE).is_file() and (audit_dir / PHASE_FILE).is_file()
    try:  # unreadable lines are errors, never skipped: the report fails closed
        ledger, ledger_section = inspect(read_strict(run.path / LEDGER_FILE))
        metrics = [obj for _, obj in read_strict(run.path / "metrics.jsonl")]
        summary = read_summary(run.path)
    except UnreadableFileError as exc:
        raise ReportError(str(exc)) from exc
    try:
        scores, phase = load_scores(audit_dir) if has_scores else ({}, {})
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ReportError(f"{audit_dir}: unreadable audit scores ({exc})") from exc
    acct = _accounting(spec, ledger, len(ledger_section["incomplete"]))
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "run": _run_section(run, config, spec, metrics),
        "training": training_section(summary, config, metrics),
        "ledger": ledger_section,
        "accounting": acct,
        **_audits(spec, scores, ledger, acct),
        "noise_probe": _noise_probe(phase, acct),
        "unlearning": _unlearning(summary),
        "events": _privacy_events(run.path),
        "audit_phase": {"ran": has_scores, "nodes": sorted(phase.get("nodes", {}))},
    }
    checks = run_checks(report, spec, scores) + [c(report, spec, scores) for c in LEDGER_CHECKS]
    report["checks"] = sorted(checks, key=lambda c: int(c["id"][1:]))
    report["verdict"] = verdict(report["checks"])
    return report, scores


def _run_section(run: RunDirectory, config: dict, spec: RunSpec, metrics: list[dict]) -> dict:
    last = metrics[-1] if metrics else {}
    return {
        "dir": str(run.path.resolve()),
        "scenario": config.get("scenario", ""),
        "method": spec.method_name,
        "seed": spec.federation.seed,
        "rounds": _count(last.get("round")),
        "accuracy": last.get("accuracy"),
        "versions": config.get("versions", {}),
        "config_sha256": hashlib.sha256(
            json.dumps(config["run"], sort_keys=True).encode()
        ).hexdigest(),
        "dp": {k: v for k, v in spec.to_flat().items() if k.startswith("dp.")},
        "audit": {k: v for k, v in spec.to_flat().items() if k.startswith("audit.")},
        "secure_aggregation": spec.secagg.enabled,
    }


UNLEARNING_STAGES = ("original", "target", "recovered", "retrain")  # server/lirf.py's models


def _unlearning(summary: dict[str, Any]) -> dict[str, Any]:
    """Section 6 from a LIRF run's summary: LOSS-attack AUC of the deposited set D_r
    against never-seen examples of the same classes, before (original) and after the
    deposit (target), after withdrawal (recovered), and for a retrain without D_r."""
    auc = summary.get("mia_auc")
    if not isinstance(auc, dict) or not summary.get("receipt"):
        return {"applicable": False, "reason": "the run deposited no knowledge (no LIRF deposit)"}
    stages = {
        m: {
            "mia_auc": auc[m],
            **{k: summary.get(m, {}).get(k) for k in ("pre_acc", "dep_acc", "avg_acc")},
        }
        for m in UNLEARNING_STAGES
        if m in auc
    }
    return {
        "applicable": True,
        "receipt": summary["receipt"],
        "stages": stages,
        "reason": "MIA on the deposited set vs never-seen examples, per model",
    }


def _privacy_events(path: Path) -> list[str]:
    events = path / "events.log"
    if not events.is_file():
        return []
    keys = ("stops training", "audit", "no node may train", "resumed")
    return [line for line in events.read_text().splitlines() if any(k in line for k in keys)]


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Build the report and write report.json, report.md, report.html and the figures."""
    from server.audit.render import render_html, render_markdown, write_figures

    report, scores = build_report(run_dir)
    out = Path(out_dir) if out_dir else Path(run_dir) / AUDIT_DIR
    out.mkdir(parents=True, exist_ok=True)
    figures = write_figures(report, scores, out)
    report["figures"] = sorted(figures)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=float))
    (out / "report.md").write_text(render_markdown(report))
    (out / "report.html").write_text(render_html(report, figures))
    return report
