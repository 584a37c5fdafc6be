"""The report's figures (PNG), report.md and a self-contained report.html.

The HTML embeds every figure as base64 PNG and holds no script or external link:
it opens offline, in any browser, and can be archived as one file.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from server.audit.scores import mia_nodes, pooled_canaries, pooled_mia
from server.audit.sections import sections
from server.figures import embedded_figure, png_bytes  # Agg: renders headless

_STATUS_COLOUR = {"PASS": "#1a7f37", "WARN": "#b26b00", "FAIL": "#c62828", "N/A": "#666"}


def _save(fig, out: Path, name: str, figures: dict[str, bytes]) -> None:
    figures[name] = png_bytes(fig)
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
        clipped = np.asarray(c["clip_fraction_by_round"], dtype=float)  # None → NaN: a gap
        right.plot(c["rounds_trained"], clipped, marker=".", label=node)
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
        colour = dots.get_facecolor()[0] if len(points) else None  # m < 10: no grid point
        ax.axhline(
            audit["max_measurable"],
            ls=":",
            lw=1,
            color=colour,
            label=f"{name} ceiling (its own m and grid)",
        )
        control = audit.get("positive_control", {})
        if control.get("measured"):
            ax.axhline(
                control["sigma_factor_0.1"],
                ls="--",
                lw=1,
                color=colour,
                label=f"{name} positive control, σ/10",
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
    if not mia_nodes(scores) or not len(y):
        return
    members, nonmembers = pooled_mia(scores, "loss")
    if not all(np.isfinite(a).all() for a in (y, members, nonmembers)):
        return  # a diverged model's NaN scores have no histogram (check A18 says why)
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


# --- text: server/audit/sections.py, rendered twice (markdown and HTML) -------------------
def render_markdown(report: dict) -> str:
    lines = [f"# Privacy audit report — {report['verdict']}", ""]
    if report["training"]["warning"]:  # first: it voids every empirical figure below
        lines += [f"> **WARNING: {report['training']['warning']}**", ""]
    for title, text, header, rows in sections(report):
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
    if report["training"]["warning"]:  # first: it voids every empirical figure below
        body.append(f'<p class="warning">WARNING: {html.escape(report["training"]["warning"])}</p>')
    for title, text, header, rows in sections(report):
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
    body += [embedded_figure(name, png) for name, png in sorted(figures.items())]
    style = (
        "body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
        "padding:3px 7px;font-size:13px;text-align:left}.badge{color:#fff;padding:2px 10px;"
        "border-radius:4px}img.figure{max-width:100%;border:1px solid #ddd}"
        ".warning{background:#fff3cd;border:2px solid #b26b00;padding:.6em;font-weight:bold}"
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
