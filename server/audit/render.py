"""The report's figures (PNG), report.md and a self-contained report.html.

The HTML embeds every figure as base64 PNG and holds no script or external link:
it opens offline, in any browser, and can be archived as one file.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the server renders headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from server.audit.phase import pooled_canaries, pooled_mia  # noqa: E402

_STATUS_COLOUR = {"PASS": "#1a7f37", "WARN": "#b26b00", "FAIL": "#c62828", "N/A": "#666"}


def _save(fig, out: Path, name: str, figures: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    figures[name] = buffer.getvalue()
    (out / name).write_bytes(figures[name])


def _epsilon_figure(report: dict, out: Path, figures: dict) -> None:
    acct = report["accounting"]
    if not acct.get("private"):
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for node, c in sorted(acct["per_client"].items()):
        (line,) = left.plot(
            c["rounds_trained"], c["epsilon_by_round"], marker="o", label=f"{node} (node)"
        )
        left.plot(
            c["rounds_trained"],
            c["epsilon_server_by_round"],
            ls="--",
            color=line.get_color(),
            label=f"{node} (server {c['server_accountant']})",
        )
        right.plot(c["rounds_trained"], c["clip_fraction_by_round"], marker=".", label=node)
    left.axhline(acct["budget"], color="k", lw=1, ls=":", label="budget")
    left.set(xlabel="round", ylabel=f"ε at δ={acct['delta']:g}", title="privacy spent per node")
    right.set(
        xlabel="round", ylabel="fraction of examples clipped", ylim=(-0.02, 1.02), title="clipping"
    )
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    _save(fig, out, "epsilon_by_round.png", figures)


def _audit_figure(report: dict, out: Path, figures: dict) -> None:
    audits = {"black-box": report["canary_audit"], "white-box": report["whitebox_canary_audit"]}
    audits = {k: a for k, a in audits.items() if a.get("applicable")}
    if not audits:
        return
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, audit in audits.items():
        points = np.asarray(audit["by_guesses"], float).reshape(-1, 3)
        dots = ax.scatter(points[:, 0], points[:, 2], s=14, label=f"{name} (m={audit['m']})")
        ax.axhline(
            audit["max_measurable"],
            ls=":",
            lw=1,
            color=dots.get_facecolor()[0],
            label=f"{name} max measurable",
        )
    eps = report["accounting"].get("epsilon")
    if eps is not None:
        ax.axhline(eps, color="k", lw=1.5, label=f"accountant ε={eps:.2f}")
    ax.set(
        xscale="log",
        xlabel="guesses r = k₊ + k₋",
        ylabel="ε̂ (lower bound)",
        title="one-run canary audit",
    )
    ax.legend(fontsize=7)
    _save(fig, out, "one_run_audit.png", figures)


def _roc_figure(report: dict, out: Path, figures: dict) -> None:
    mia = report["mia"]
    if not mia.get("applicable"):
        return
    fig, (lin, log) = plt.subplots(1, 2, figsize=(11, 4))
    for kind, attack in mia["attacks"].items():
        fpr, tpr = np.asarray(attack["roc"]["fpr"]), np.asarray(attack["roc"]["tpr"])
        for ax in (lin, log):
            ax.plot(fpr, tpr, label=f"{kind} (AUC {attack['auc']:.3f})")
    grid = np.logspace(-4, 0, 200)
    for ax in (lin, log):
        ax.plot(grid, grid, color="grey", lw=1, ls=":", label="chance")
    profile = report["accounting"].get("profile")
    if profile:
        bound = np.minimum(np.min([np.exp(e) * grid + d for d, e in profile], axis=0), 1.0)
        log.plot(grid, bound, color="k", lw=1.2, ls="--", label="DP profile bound")
    lin.set(xlabel="FPR", ylabel="TPR", title="membership inference ROC")
    log.set(
        xscale="log",
        yscale="log",
        xlim=(1e-4, 1),
        ylim=(1e-4, 1.05),
        xlabel="FPR",
        ylabel="TPR",
        title="log-log ROC",
    )
    lin.legend(fontsize=7)
    log.legend(fontsize=7)
    _save(fig, out, "roc.png", figures)


def _histogram_figure(scores: dict, out: Path, figures: dict) -> None:
    y, coins = pooled_canaries(scores, "confidence")
    if not len(y):
        return
    members, nonmembers = pooled_mia(scores, "loss")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    bins = np.linspace(min(members.min(), nonmembers.min()), 0, 40)
    left.hist(members, bins=bins, alpha=0.6, density=True, label="members")
    left.hist(nonmembers, bins=bins, alpha=0.6, density=True, label="non-members")
    left.set(xlabel="−loss", title="LOSS scores")
    bins = np.linspace(y.min(), y.max(), 40)
    right.hist(y[coins], bins=bins, alpha=0.6, label="canaries IN")
    right.hist(y[~coins], bins=bins, alpha=0.6, label="canaries OUT")
    right.set(xlabel="logit-scaled confidence of the canary label", title="canary scores")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    _save(fig, out, "score_hist.png", figures)


def write_figures(report: dict, scores: dict, out: Path) -> dict[str, bytes]:
    figures: dict[str, bytes] = {}
    _epsilon_figure(report, out, figures)
    _audit_figure(report, out, figures)
    _roc_figure(report, out, figures)
    _histogram_figure(scores, out, figures)
    return figures


# --- text: one list of sections, rendered twice (markdown and HTML) ---------------------------
def _f(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _sections(report: dict) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, paragraph, table header, table rows) in reading order."""
    acct, run, mia = report["accounting"], report["run"], report["mia"]
    black, white = report["canary_audit"], report["whitebox_canary_audit"]
    claim = (
        f"Each record of node k is (ε_k, δ={acct['delta']:g})-DP ({acct['level']} level, "
        f"{acct['accountant']} accountant); max ε_k = {acct['epsilon']:.4f} "
        f"(budget {acct['budget']:g})."
        if acct.get("private")
        else "The run is not differentially private: there is no formal guarantee."
    )
    verdict = [
        ["verdict", report["verdict"]],
        ["guarantee", claim],
        ["test accuracy", _f(run["accuracy"])],
        [
            "canary ε̂ black-box / white-box",
            f"{_f(black.get('epsilon_lower_bound'))} / {_f(white.get('epsilon_lower_bound'))}"
            f" (max measurable {_f(black.get('max_measurable'))})",
        ],
        [
            "MIA AUC, TPR@0.1% / 1% FPR",
            f"{_f(mia.get('auc'))}, "
            + " / ".join(_f(mia.get("tpr_at_fpr", {}).get(k)) for k in ("0.001", "0.01")),
        ],
    ]
    scope = (
        "Unit: one record of one node (sample level) or one node's data (client level); "
        "relation add/remove-one; releases: every model update the node sends. The server "
        "sees every client update (no secure aggregation): the white-box audit uses that. "
        "Not covered: hyper-parameter tuning, evaluation metrics, run metadata."
    )
    guarantee = [
        [
            k,
            _f(c["n"]),
            _f(c["batch_size"]),
            _f(c["q"]),
            _f(c["sigma"]),
            _f(c["C"]),
            _f(c["rounds"]),
            _f(c["steps"]),
            _f(c["epsilon"]),
            _f(c["epsilon_server_rdp"]),
            _f(c["epsilon_server_pld"]),
            _f(c["epsilon_at_delta"].get("1e-06")),
        ]
        for k, c in sorted(acct.get("per_client", {}).items())
    ]
    audits = [
        [
            name,
            _f(a.get("m")),
            _f(a.get("in")),
            _f(a.get("epsilon_lower_bound")),
            _f(a.get("guesses")),
            _f(a.get("correct")),
            _f(a.get("k_plus")),
            _f(a.get("k_minus")),
            _f(a.get("grid_size")),
            _f(a.get("max_measurable")),
        ]
        for name, a in (
            ("black-box (mislabeled, confidence)", black),
            ("white-box (Dirac gradient)", white),
        )
        if a.get("applicable")
    ]
    attacks = [
        [k, _f(a["auc"])]
        + [_f(a["tpr_at_fpr"][f]) for f in ("0.001", "0.01", "0.1")]
        + [
            _f(a["advantage"]),
            _f(a["epsilon_lower_bound"]),
            ", ".join(f"{n} {v:.3f}" for n, v in sorted(a["per_client"].items())),
        ]
        for k, a in mia.get("attacks", {}).items()
    ]
    probe = [
        [k, _f(v["sigma_ledger"]), _f(v["ratio"]), _f(v["chi2"]), _f(v["dof"]), _f(v["p_value"])]
        for k, v in sorted(report["noise_probe"].items())
    ]
    checks = [[c["id"], c["name"], c["status"], c["detail"]] for c in report["checks"]]
    provenance = [
        ["schema", report["schema"]],
        ["run directory", run["dir"]],
        ["scenario / method / seed", f"{run['scenario']} / {run['method']} / {run['seed']}"],
        ["config sha256", run["config_sha256"]],
        *[[k, v] for k, v in sorted(run["versions"].items())],
    ]
    return [
        ("1. Verdict", "", ["", ""], verdict),
        ("2. Threat model and scope", scope, [], []),
        (
            "3. Formal guarantee per node",
            "ε re-derived by the server from ledger.jsonl with "
            "dp-accounting (RDP and PLD) beside the node's own Opacus figure.",
            [
                "node",
                "n",
                "B",
                "q",
                "σ",
                "C",
                "rounds",
                "steps",
                "ε node",
                "ε RDP",
                "ε PLD",
                "ε at δ=1e-6",
            ],
            guarantee,
        ),
        (
            "4. One-run canary audit",
            "Steinke, Nasr, Jagielski (NeurIPS 2023): ε̂ holds with "
            "probability >= 1 − s; Bonferroni over the (k₊, k₋) grid. Black-box audits of the last "
            "model land far below ε: that is expected, not a flaw.",
            ["canaries", "m", "IN", "ε̂", "guesses r", "correct v", "k₊", "k₋", "grid", "max ε̂"],
            audits,
        ),
        (
            "5. Membership inference",
            "Members: scored training examples; non-members: each "
            "node's held-out examples. ε̂ from Clopper–Pearson bounds on TPR/FPR.",
            ["attack", "AUC", "TPR@0.1%", "TPR@1%", "TPR@10%", "advantage", "ε̂", "AUC per node"],
            attacks,
        ),
        (
            "6. Noise calibration probe",
            "One DP step with zero per-example gradients: the update is "
            "pure noise; ratio = applied noise / noise the ledger claims (1 when right).",
            ["node", "σ ledger", "ratio", "χ²", "dof", "p"],
            probe,
        ),
        (
            "7. Unlearning",
            report["unlearning"].get("reason", ""),
            ["model", "MIA AUC (deposited vs never-seen)", "acc. kept classes", "acc. deposited"],
            [
                [m, _f(v["mia_auc"]), _f(v["pre_acc"]), _f(v["dep_acc"])]
                for m, v in report["unlearning"].get("stages", {}).items()
            ],
        ),
        ("8. Checks", "", ["id", "check", "status", "detail"], checks),
        ("9. Privacy events", "<br>".join(report["events"]) or "none", [], []),
        ("10. Provenance", "", ["", ""], provenance),
        (
            "11. How to read",
            "The accountant's ε is an upper bound if code and proof are right; "
            "audits give statistical lower bounds. A lower bound above the upper bound is an "
            "implementation bug (check A6); a lower bound far below it is normal.",
            [],
            [],
        ),
    ]


def render_markdown(report: dict) -> str:
    lines = [f"# Privacy audit report — {report['verdict']}", ""]
    for title, text, header, rows in _sections(report):
        lines += [f"## {title}", ""]
        if text:
            lines += [text.replace("<br>", "  \n"), ""]
        if rows:
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += [
                "| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows
            ]
            lines.append("")
    lines += ["## Figures", ""] + [f"![{name}]({name})" for name in report.get("figures", [])]
    return "\n".join(lines) + "\n"


def render_html(report: dict, figures: dict[str, bytes]) -> str:
    colour = _STATUS_COLOUR.get(report["verdict"], "#333")
    body = [
        f'<h1>Privacy audit report <span class="badge" style="background:{colour}">'
        f"{report['verdict']}</span></h1>"
    ]
    for title, text, header, rows in _sections(report):
        body.append(f"<h2>{html.escape(title)}</h2>")
        if text:
            body.append("<p>" + "<br>".join(html.escape(t) for t in text.split("<br>")) + "</p>")
        if rows:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            body.append(
                f"<table><tr>{head}</tr>"
                + "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
                + "</table>"
            )
    body.append("<h2>Figures</h2>")
    for name, png in sorted(figures.items()):
        data = base64.b64encode(png).decode()
        body.append(
            f'<figure><img class="figure" alt="{name}" src="data:image/png;base64,{data}">'
            f"<figcaption>{name}</figcaption></figure>"
        )
    style = (
        "body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
        "padding:3px 7px;font-size:13px;text-align:left}.badge{color:#fff;padding:2px 10px;"
        "border-radius:4px}img.figure{max-width:100%;border:1px solid #ddd}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Privacy audit report</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )


def _cell(value: str) -> str:
    text = html.escape(str(value))
    colour = _STATUS_COLOUR.get(str(value))
    return (
        f'<td style="color:{colour};font-weight:bold">{text}</td>' if colour else f"<td>{text}</td>"
    )
