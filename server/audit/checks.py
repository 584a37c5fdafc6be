"""The report's checks: PASS, WARN or FAIL (or N/A), each with what it asserts.

Numbered as in the design notes' §6 (not shipped):
A1 ledger re-derivation = reported ε · A2 ε monotone and within budget · A3 δ < 1/n ·
A4 sampling valid · A5 model DP-compatible · A6 every ε̂ <= ε, no ROC point above the
profile bound · A7 audit strong enough · A8 null calibration · A12 no raw data ·
A11 deposited (unlearned) data no longer distinguishable · A13 the noise actually added
matches the σ the ledger claims · A14 clipping binds · A18 the model trained.
A15-A17 (ledger integrity) live in server/audit/ledger_checks.py.
Any FAIL makes `fedvault audit` exit 1.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from scipy.stats import binom

from methods.base import RunSpec
from server.audit.canary import null_calibration
from server.audit.mia import profile_violations
from server.audit.scores import pooled_canaries, pooled_mia

PASS, WARN, FAIL, NA = "PASS", "WARN", "FAIL", "N/A"
# Node (Opacus PRV/RDP) vs server (dp-accounting PLD/RDP): when both are right they differ
# by the PRV's own error (it returns the top of an interval of width 0.01 in ε) plus
# 0.1-0.6 % of ε; a fresh accountant each round is off by 27 % after 3 rounds.
A1_RELATIVE, A1_ABSOLUTE = 0.02, 0.02
A13_MIN_P = 1e-3
A11_AUC_BAND = 0.05
_RAW_KEYS = {"x", "images", "image", "inputs", "pixels", "labels", "raw", "examples_data"}


def _check(cid: str, name: str, status: str, detail: str) -> dict[str, str]:
    return {"id": cid, "name": name, "status": status, "detail": detail}


def a1_rederivation(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    name = "ledger re-derivation matches the reported ε"
    per_client = report["accounting"].get("per_client", {})
    if not per_client:
        return _check("A1", name, NA, "no DP ledger (the run is not private)")
    worst, where = 0.0, ""
    for node, c in per_client.items():
        for rnd, rep, srv in zip(
            c["rounds_trained"], c["epsilon_by_round"], c["epsilon_server_by_round"]
        ):
            # the difference in units of the allowed one: > 1 fails
            excess = abs(rep - srv) / max(A1_RELATIVE * srv, A1_ABSOLUTE)
            excess = excess if math.isfinite(excess) else math.inf  # NaN fails closed
            if excess > worst:
                worst, where = excess, f"{node} round {rnd}: reported {rep:.4f}, server {srv:.4f}"
    return _check(
        "A1",
        name,
        PASS if worst <= 1.0 else FAIL,
        f"largest difference {worst:.2f}× the tolerance (max({A1_RELATIVE:.0%} of ε, "
        f"{A1_ABSOLUTE})); {where or 'all equal'}",
    )


def a2_monotone_budget(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    name = "ε monotone per node and within budget"
    acct = report["accounting"]
    if not acct.get("private"):
        return _check(
            "A2", name, WARN, "the run is not differentially private: no formal guarantee"
        )
    problems = [
        n
        for n, c in acct["per_client"].items()
        if any(b < a - 1e-9 for a, b in zip(c["epsilon_by_round"], c["epsilon_by_round"][1:]))
    ]
    over = not acct["epsilon"] <= acct["budget"] + 1e-6  # NaN fails closed
    detail = (
        f"max ε {acct['epsilon']:.4f} (node {acct['worst_node']}) vs budget {acct['budget']:g}"
        + (f"; ε decreased for {problems}" if problems else "")
    )
    return _check("A2", name, FAIL if problems or over else PASS, detail)


def a3_delta(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    name = "δ < 1/n for every node"
    per_client = report["accounting"].get("per_client", {})
    if not per_client:
        return _check("A3", name, NA, "not a DP run")
    delta = report["accounting"]["delta"]
    bad = {k: c["n"] for k, c in per_client.items() if c["n"] and delta >= 1 / c["n"]}
    tight = all(delta <= 1 / (10 * c["n"]) for c in per_client.values() if c["n"])
    detail = f"δ={delta:g}; " + (f"δ >= 1/n for {bad}" if bad else "δ < 1/n for all")
    detail += "" if tight else " (recommended: δ <= 1/(10n))"
    return _check("A3", name, WARN if bad else PASS, detail)


def a4_sampling(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    name = "sampling as accounted (Poisson, q·n ≈ B, n >= 50, σ > 0)"
    acct = report["accounting"]
    if not acct.get("private"):
        return _check("A4", name, NA, "not a DP run")
    problems, warnings = [], []
    for node, c in acct["per_client"].items():
        if c["sigma"] <= 0:
            problems.append(f"{node}: σ={c['sigma']}")
        if c["level"] == "sample":
            smp = c["sampling"]
            if not smp.get("poisson") or smp.get("sampler") != "UniformWithReplacementSampler":
                problems.append(f"{node}: sampler {smp.get('sampler')} is not Poisson")
            if c["n"] < 50:
                problems.append(f"{node}: n={c['n']} < 50")
            if c["batch_size"] and not 0.5 <= c["q"] * c["n"] / c["batch_size"] <= 1.0 + 1e-9:
                warnings.append(f"{node}: q·n={c['q'] * c['n']:.1f} vs B={c['batch_size']}")
    status = FAIL if problems else WARN if warnings else PASS
    return _check("A4", name, status, "; ".join(problems + warnings) or "all nodes")


def a5_compatible(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    name = "model DP-compatible (validator clean, no BatchNorm)"
    per_client = report["accounting"].get("per_client", {})
    sample = {k: c for k, c in per_client.items() if c["level"] == "sample"}
    if not sample:
        return _check("A5", name, NA, "no DP-SGD on the nodes")
    bad = [k for k, c in sample.items() if not c["sampling"].get("model_compatible")]
    return _check(
        "A5",
        name,
        FAIL if bad else PASS,
        f"not compatible: {bad}" if bad else "Opacus ModuleValidator clean on every node",
    )


def a6_lower_le_upper(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    name = "every ε̂ <= ε (one-run audits, MIA) and no ROC point above the profile bound"
    acct = report["accounting"]
    if not acct.get("private"):
        return _check("A6", name, NA, "no ε to compare with (not a DP run)")
    eps = acct["epsilon"]
    bounds = {
        "black-box canaries": report["canary_audit"].get("epsilon_lower_bound", 0.0),
        "white-box canaries": report["whitebox_canary_audit"].get("epsilon_lower_bound", 0.0),
        "MIA (Clopper-Pearson)": report["mia"].get("epsilon_lower_bound") or 0.0,
    }
    over = {k: v for k, v in bounds.items() if v > eps + 1e-9}
    violations = 0
    if report["mia"].get("applicable"):
        for kind in ("loss", "confidence"):
            members, nonmembers = pooled_mia(scores, kind)
            violations += profile_violations(
                members, nonmembers, acct["profile"], spec.audit.significance
            )
    detail = ", ".join(f"{k} {v:.3f}" for k, v in bounds.items()) + f" vs ε {eps:.3f}"
    detail += f"; {violations} ROC thresholds above the profile bound"
    return _check("A6", name, FAIL if over or violations else PASS, detail)


def a7_power(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    """Passes on measured power only: the white-box positive control at σ/10 must refute
    the claim. A ceiling (every guess right) says what an audit could show, not what it
    shows; black-box canaries and the MIA have no measured control (notes, Lessons)."""
    name = "audit strong enough to test the claim (measured positive control)"
    acct = report["accounting"]
    if not acct.get("private"):
        return _check("A7", name, NA, "no DP claim to test (the run is not private)")
    eps, white = acct["epsilon"], report["whitebox_canary_audit"]
    control = white.get("positive_control", {})
    others = "black-box canaries and MIA: positive control not measured (do not count)"
    if not control.get("measured"):
        why = control.get("reason") or white.get("reason", "no white-box canaries")
        detail = f"audit under-powered: no measured control ({why}); {others}"
        return _check("A7", name, WARN, detail)
    tenth, full = control["sigma_factor_0.1"], control["sigma_factor_1"]
    detail = (
        f"white-box control: ε̂ = {tenth:.3f} with σ/10, {full:.3f} with σ (median of "
        f"{control['repetitions']}), claimed ε = {eps:.3f}, ceiling {white['max_measurable']:.3f} "
        f"with m={white['m']}; {others}"
    )
    mia = report["mia"]
    if mia.get("applicable") and not mia["attacks"][mia["attack"]]["resolvable"]["0.001"]:
        detail += "; TPR@0.1% FPR not resolvable (< 1000 non-members)"
    if tenth > eps:  # NaN ε fails closed: the comparison is False
        return _check("A7", name, PASS, detail)
    return _check("A7", name, WARN, "audit under-powered: " + detail)


def a8_null(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    name = "null calibration: re-randomised coins give ε̂ = 0"
    results = []
    for kind in ("confidence", "whitebox"):
        y, coins = pooled_canaries(scores, kind)
        if len(y):
            trials = 40
            zero = null_calibration(y, coins, spec.dp.delta, spec.audit.significance, trials)
            # FAIL only when the false-positive share is implausible at s (binomial, 1 %)
            p = binom.sf(round((1 - zero) * trials) - 1, trials, spec.audit.significance)
            results.append((kind, zero, p))
    if not results:
        return _check("A8", name, NA, "no canaries")
    bad = [r for r in results if r[2] < 0.01]
    detail = ", ".join(f"{k}: ε̂=0 in {z:.0%} of trials" for k, z, _ in results)
    return _check("A8", name, FAIL if bad else PASS, detail)


def a11_unlearning(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    name = "deposited data indistinguishable from never-seen data after the deposit"
    section = report["unlearning"]
    if not section.get("applicable") or "target" not in section["stages"]:
        return _check("A11", name, NA, section.get("reason", "no deposit"))
    auc = section["stages"]["target"]["mia_auc"]
    # No per-example counts in the summary, so a band instead of a confidence interval.
    status = PASS if abs(auc - 0.5) <= A11_AUC_BAND else WARN
    return _check(
        "A11",
        name,
        status,
        f"LOSS-attack AUC after the deposit {auc:.3f} "
        f"(indistinguishable: within 0.5 ± {A11_AUC_BAND}); before: "
        f"{section['stages'].get('original', {}).get('mia_auc', float('nan')):.3f}",
    )


def a12_no_raw_data(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    name = "no raw data in the report or the audit files"
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if str(k).lower() in _RAW_KEYS:
                    found.append(f"{path}.{k}")
                walk(v, f"{path}.{k}")
        elif isinstance(node, list) and len(node) > 1000:
            found.append(f"{path} ({len(node)} items)")

    walk(report, "report")
    found += [k for k, v in scores.items() if np.ndim(v) != 1]  # an image would be >= 2-D
    return _check(
        "A12",
        name,
        FAIL if found else PASS,
        f"suspect fields: {found[:5]}" if found else "only scores, coins and aggregates",
    )


def a13_noise(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    name = "noise actually added matches the ledger's σ (zero-gradient probe, χ²)"
    probe = report["noise_probe"]
    if not probe:
        return _check("A13", name, NA, "no DP-SGD noise probe in this run")
    bad = {k: v for k, v in probe.items() if v["p_value"] <= A13_MIN_P}
    detail = ", ".join(
        f"{k}: ratio {v['ratio']:.4f}, p={v['p_value']:.3g}" for k, v in probe.items()
    )
    return _check("A13", name, FAIL if bad else PASS, detail)


def a14_clipping(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    name = "clipping binds (clip fraction > 0 in some round of each node)"
    nodes = {
        k: c["clip_fraction_by_round"]
        for k, c in report["accounting"].get("per_client", {}).items()
        if c["level"] == "sample"
    }
    if not nodes:
        return _check("A14", name, NA, "no DP-SGD on the nodes")
    never = sorted(k for k, f in nodes.items() if f and all(x == 0 for x in f))
    unmeasured = sorted(
        k for k, f in nodes.items() if not any(x is not None and math.isfinite(x) for x in f)
    )
    problems = []
    if never:
        problems.append(
            f"clipping never bound on {never}: C may be far above the gradient norms, "
            "or the clip measurement is broken"
        )
    if unmeasured:
        problems.append(f"clip fraction not recorded on {unmeasured}")
    detail = "; ".join(problems) or f"clipping bound in some round on all {len(nodes)} nodes"
    return _check("A14", name, WARN if problems else PASS, detail)


def a18_trained(report: dict, spec: RunSpec, scores: dict) -> dict[str, str]:
    name = "the model trained (not diverged, above chance)"
    training = report["training"]
    if training["warning"]:
        return _check("A18", name, WARN, training["warning"])
    if training["final_accuracy"] is None:
        return _check("A18", name, NA, "no final accuracy in metrics.jsonl")
    chance = training["chance"]
    versus = f" vs chance {chance:.4f}" if chance is not None else " (no class count: no chance)"
    return _check("A18", name, PASS, f"final accuracy {training['final_accuracy']:.4f}{versus}")


CHECKS: list[Callable[[dict, RunSpec, dict], dict[str, str]]] = [
    a1_rederivation,
    a2_monotone_budget,
    a3_delta,
    a4_sampling,
    a5_compatible,
    a6_lower_le_upper,
    a7_power,
    a8_null,
    a11_unlearning,
    a12_no_raw_data,
    a13_noise,
    a14_clipping,
    a18_trained,
]


def run_checks(report: dict, spec: RunSpec, scores: dict) -> list[dict[str, str]]:
    return [check(report, spec, scores) for check in CHECKS]


def verdict(checks: list[dict[str, str]]) -> str:
    statuses = {c["status"] for c in checks}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS
