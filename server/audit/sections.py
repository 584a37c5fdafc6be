"""The report's text: one list of sections in reading order, rendered twice (report.md
and report.html by server/audit/render.py). Every audit is shown with its own ε̂, its own
ceiling and its own positive control, never another audit's.
"""

from __future__ import annotations

from typing import Any

from protos.contract import RNG_RUN_SEED

Section = tuple[str, str, list[str], list[list[str]]]  # title, paragraph, header, rows

# Fixed on purpose: what a reader must know before any number (design notes §6,
# "Releases"; not shipped). Paragraphs are separated by <br>.
GUARANTEE_SCOPE = (
    "Unit of privacy: one training record of one node, add/remove-one adjacency, "
    "sample-level DP-SGD on the node (Poisson sampling, per-example clipping to C, Gaussian "
    "noise). ε is stated per node (node k's records are (ε_k, δ)-DP; the nodes' data are "
    "disjoint) and the run's ε is the max over nodes. Every reply the server received "
    "counts, including updates it rejected: the server saw them. DP replies carry no "
    "training loss (it is computed without noise). (dp.level=client: the unit is one node's "
    "whole data, each release accounted without amplification, and the server sees the raw "
    "updates: no protection against the server.)"
    "<br>Outside the guarantee (they leave the node without noise or accounting): the "
    "per-node example counts (num-examples, used for the FedAvg weights; they include the "
    "audit's IN canaries), the end-of-run audit phase's scores, the noise probe, the node's "
    "NodeInfo (with its example count, data shape and class count), federated evaluation "
    "replies (evaluation=federated or auto: accuracy, loss and count of the node's held-out "
    "examples, which it never trains on, so they leave the training records' ε as it is but "
    "are themselves released without noise), and timing; also hyper-parameter tuning on the "
    "same data."
    "<br>Randomness: the DP-SGD noise and the Poisson sampling come from torch generators "
    "seeded each round with 64 secret bits from the node's OS CSPRNG (not from the run "
    "seed the server sends), unless the ledger says rng = \"run-seed\" (a test-only switch: "
    "the server can replay that noise, so the run is not private against it). The "
    "generator itself is a Mersenne Twister, not a CSPRNG stream (Opacus' secure_mode "
    "needs torchcsprng, which has no release for this Python/torch)."
    "<br>Threat model: the server sees every client update (no secure aggregation); the "
    "white-box canary audit uses exactly that view."
)
SECURE_AGGREGATION_SCOPE = (
    "<br>Threat model: secure aggregation (Flower's SecAgg+) was on. The server saw each "
    "round's weighted mean of the surviving nodes' updates, never one node's update; it "
    "still saw each node's example count, its DP ledger entry and its other reply metrics "
    "in the clear. This holds against a server that follows the protocol: Flower's SecAgg+ "
    "has no consistency check, so a server that tells some nodes a neighbour dropped and "
    "others that it lives could unmask that neighbour's update. The ε above does not rely "
    "on secure aggregation: each node's update is already DP on its own."
)


def f(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _control(audit: dict) -> str:
    control = audit.get("positive_control", {})
    if not control.get("measured"):
        return "not measured"
    return f"σ: {f(control['sigma_factor_1'])}, σ/10: {f(control['sigma_factor_0.1'])}"


def _audit_line(audit: dict) -> str:
    """ε̂ with this audit's own ceiling and control, for the verdict card."""
    if not audit.get("applicable"):
        return "not run"
    return (
        f"ε̂ {f(audit.get('epsilon_lower_bound'))} (its ceiling {f(audit.get('max_measurable'))}; "
        f"positive control {_control(audit)})"
    )


def _verdict(report: dict) -> list[list[str]]:
    acct, run = report["accounting"], report["run"]
    claim = (
        f"Each record of node k is (ε_k, δ={acct['delta']:g})-DP ({acct['level']} level, "
        f"{acct['accountant']} accountant); max ε_k = {acct['epsilon']:.4f} "
        f"(budget {acct['budget']:g})."
        if acct.get("private")
        else "The run is not differentially private: there is no formal guarantee."
    )
    mia = report["mia"]
    rows = [["verdict", report["verdict"]]]
    if report["training"]["warning"]:
        rows.append(["model", report["training"]["warning"]])
    return rows + [
        ["guarantee", claim],
        ["test accuracy", f(run["accuracy"])],
        ["black-box canaries", _audit_line(report["canary_audit"])],
        ["white-box canaries", _audit_line(report["whitebox_canary_audit"])],
        [
            "MIA AUC, TPR@0.1% / 1% FPR",
            f"{f(mia.get('auc'))}, "
            + " / ".join(f(mia.get("tpr_at_fpr", {}).get(k)) for k in ("0.001", "0.01")),
        ],
        ["MIA (Clopper–Pearson)", _audit_line(mia)],
    ]


def _scope(report: dict) -> str:
    scope = GUARANTEE_SCOPE
    if report["run"].get("secure_aggregation"):
        scope = scope.replace(GUARANTEE_SCOPE[GUARANTEE_SCOPE.index("<br>Threat model"):],
                              SECURE_AGGREGATION_SCOPE)
    replayable = report["ledger"]["rng"].get(RNG_RUN_SEED)
    if not replayable:
        return scope
    return scope + (
        f"<br>THIS LEDGER SAYS rng = \"run-seed\" for {', '.join(replayable)}: "
        "their noise is not secret from the server (check A17)."
    )


def _guarantee(report: dict) -> Section:
    acct = report["accounting"]
    rows = [
        [
            k,
            *(f(c[key]) for key in ("n", "batch_size", "q", "sigma", "C", "rounds", "steps")),
            f(c["epsilon"]),
            f(c["epsilon_server_rdp"]),
            f(c["epsilon_server_pld"]),
            f(c["epsilon_at_delta"].get("1e-06")),
            ", ".join(map(str, c.get("rejected_rounds", []))) or "none",
        ]
        for k, c in sorted(acct.get("per_client", {}).items())
    ]
    text = (
        "ε re-derived by the server from ledger.jsonl with dp-accounting (RDP and PLD) beside "
        "the node's own Opacus figure; rejected updates count."
    )
    if acct.get("lines_left_out"):
        text += (
            f" {acct['lines_left_out']} ledger lines are incomplete or not finite and are left "
            "out of this re-derivation (check A15): the ε here understates the spend."
        )
    header = ["node", "n", "B", "q", "σ", "C", "rounds", "steps", "ε node", "ε RDP", "ε PLD"]
    return "3. Formal guarantee per node", text, header + ["ε at δ=1e-6", "rejected"], rows


def _audits(report: dict) -> Section:
    rows = [
        [
            name,
            f(a.get("m")),
            f(a.get("in")),
            f(a.get("epsilon_lower_bound")),
            f"{f(a.get('correct'))}/{f(a.get('guesses'))}",
            f"{f(a.get('k_plus'))}, {f(a.get('k_minus'))}",
            f(a.get("grid_size")),
            f(a.get("max_measurable")),
            _control(a),
            a.get("outcome", ""),
        ]
        for name, a in (
            ("black-box (mislabeled, confidence)", report["canary_audit"]),
            ("white-box (Dirac gradient)", report["whitebox_canary_audit"]),
        )
        if a.get("applicable")
    ]
    text = (
        "Steinke, Nasr, Jagielski (NeurIPS 2023): ε̂ holds with probability >= 1 − s; "
        "Bonferroni over the (k₊, k₋) grid. Ceiling = the largest ε̂ this audit can show with "
        "its own m and grid (every guess right): what it could show, not what it shows. "
        "Positive control (white-box): the same audit on an ideal simulation of the same "
        "canaries, coins, (σ, q, steps) and C, with the claimed σ and with σ/10 (a 10× noise "
        "bug); median of a few seeded repetitions. Black-box audits of the last model land far "
        "below ε: that is expected, not a flaw."
    )
    header = ["canaries", "m", "IN", "ε̂", "correct/guesses", "k₊, k₋", "grid", "ceiling"]
    return "5. One-run canary audits", text, header + ["positive control", "outcome"], rows


def _mia(report: dict) -> Section:
    mia = report["mia"]
    rows = [
        [k, f(a["auc"])]
        + [f(a["tpr_at_fpr"][x]) for x in ("0.001", "0.01", "0.1")]
        + [
            f(a["advantage"]),
            f(a["epsilon_lower_bound"]),
            f(a.get("max_measurable")),
            _control(mia),
            ", ".join(f"{n} {v:.3f}" for n, v in sorted(a["per_client"].items())),
        ]
        for k, a in mia.get("attacks", {}).items()
    ]
    text = (
        "Members: scored training examples; non-members: each node's held-out examples. "
        "ε̂ from Clopper–Pearson bounds on TPR/FPR; ceiling = the ε̂ of a perfect separation "
        "with the same counts."
    )
    if mia.get("applicable"):
        text += f" Outcome: {mia['outcome']}."
    header = ["attack", "AUC", "TPR@0.1%", "TPR@1%", "TPR@10%", "advantage", "ε̂", "ceiling"]
    return "6. Membership inference", text, header + ["positive control", "AUC per node"], rows


def _probe(report: dict) -> Section:
    rows = [
        [k, f(v["sigma_ledger"]), f(v["ratio"]), f(v["chi2"]), f(v["dof"]), f(v["p_value"])]
        for k, v in sorted(report["noise_probe"].items())
    ]
    text = (
        "One DP step with zero per-example gradients: the update is pure noise; "
        "ratio = applied noise / noise the ledger claims (1 when right)."
    )
    return "7. Noise calibration probe", text, ["node", "σ ledger", "ratio", "χ²", "dof", "p"], rows


def _unlearning(report: dict) -> Section:
    unlearning = report["unlearning"]
    rows = [
        [m, f(v["mia_auc"]), f(v["pre_acc"]), f(v["dep_acc"])]
        for m, v in unlearning.get("stages", {}).items()
    ]
    header = ["model", "MIA AUC (deposited vs never-seen)", "acc. kept classes", "acc. deposited"]
    return "8. Unlearning", unlearning.get("reason", ""), header, rows


def _provenance(report: dict) -> Section:
    run = report["run"]
    rows = [
        ["schema", report["schema"]],
        ["run directory", run["dir"]],
        ["scenario / method / seed", f"{run['scenario']} / {run['method']} / {run['seed']}"],
        ["config sha256", run["config_sha256"]],
        *[[k, v] for k, v in sorted(run["versions"].items())],
    ]
    return "11. Provenance", "", ["", ""], rows


def _ledger(report: dict) -> Section:
    ledger = report["ledger"]
    text = (
        f"{ledger['lines']} lines, {ledger['used']} used for accounting (checks A15–A17 list "
        f"the others); {len(ledger['rejected_but_counted'])} rejected updates counted toward ε."
    )
    return "4. Ledger integrity", text, [], []


HOW_TO_READ = (
    "The accountant's ε is an upper bound if code and proof are right; audits give "
    "statistical lower bounds. A lower bound above the upper bound is an implementation bug "
    "(check A6); a lower bound far below it is normal, and says little unless the audit's "
    "positive control shows it could have seen more (A7)."
)


def sections(report: dict) -> list[Section]:
    """(title, paragraph, table header, table rows) in reading order."""
    checks = [[c["id"], c["name"], c["status"], c["detail"]] for c in report["checks"]]
    return [
        ("1. Verdict", "", ["", ""], _verdict(report)),
        ("2. What the guarantee covers", _scope(report), [], []),
        _guarantee(report),
        _ledger(report),
        _audits(report),
        _mia(report),
        _probe(report),
        _unlearning(report),
        ("9. Checks", "", ["id", "check", "status", "detail"], checks),
        ("10. Privacy events", "<br>".join(report["events"]) or "none", [], []),
        _provenance(report),
        ("12. How to read", HOW_TO_READ, [], []),
    ]
