"""A small synthetic run directory for report tests: no training, seconds to build.

config.json from the dp-fedavg scenario, a ledger whose ε are the server accountant's
own (so check A1 passes), metrics.jsonl, summary.json and audit/scores.npz + phase.json
with white-box canaries (optionally black-box canaries and MIA scores too). Tests then
edit one file to plant one problem.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from server.audit import accounting
from server.audit.scores import AUDIT_DIR, PHASE_FILE, SCORES_FILE
from server.ledger import LEDGER_FILE
from server.run_dir import RunDirectory
from server.scenario import resolve

NODES = ("p0", "p1")


def ledger_lines(sigma: float, q: float, steps: int, rounds: int, clip: float = 0.05) -> list[dict]:
    """Every node's lines, ε per round from the server's RDP (the node's accountant: rdp)."""
    curve = accounting.epsilon_curve([(sigma, q, steps)] * rounds, 1e-5, "rdp")
    n = round(1 / q) * 32
    return [
        {
            "round": r + 1, "node": node, "node_id": 1000 + k, "level": "sample",
            "accountant": "rdp", "noise_multiplier": sigma, "sample_rate": q, "steps": steps,
            "epsilon": curve[r], "epsilon_next": curve[min(r + 1, rounds - 1)], "delta": 1e-5,
            "clip_fraction": clip, "epochs": 1, "batch_size": 32, "max_grad_norm": 1.0,
            "num_examples": n, "expected_batch_size": q * n, "poisson": True,
            "sampler": "UniformWithReplacementSampler", "model_compatible": True,
        }
        for r in range(rounds)
        for k, node in enumerate(NODES)
    ]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(x) + "\n" for x in records))


def _scores(whitebox: int, blackbox: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    scores: dict[str, np.ndarray] = {}
    for node in NODES:
        coins = rng.random(whitebox) < 0.5
        scores[f"{node}|whitebox|in"] = coins
        scores[f"{node}|whitebox|score"] = rng.normal(size=whitebox)  # an honest, noisy run
        if blackbox:
            scores[f"{node}|canary|in"] = rng.random(blackbox) < 0.5
            scores[f"{node}|confidence|canary"] = rng.normal(size=blackbox)
            for kind in ("loss", "confidence"):
                scores[f"{node}|{kind}|member"] = -rng.exponential(size=200)
                scores[f"{node}|{kind}|nonmember"] = -rng.exponential(size=200)
    return scores


def make_run(
    path: Path,
    *,
    dp: bool = True,
    sigma: float = 1.2,
    q: float = 1 / 16,
    steps: int = 16,
    rounds: int = 10,
    whitebox: int = 500,
    blackbox: int = 0,
    accuracy: float = 0.9,
    summary: dict[str, Any] | None = None,
) -> Path:
    overrides = {
        "num-clients": "2",
        "num-server-rounds": str(rounds),
        "data.dataset": "digits",
        "dp.enabled": str(dp).lower(),
        "dp.accountant": "rdp",
        "dp.target-epsilon": "20",
    }
    spec = resolve("dp-fedavg", overrides)
    config = {"run": spec.to_flat(), "scenario": "dp-fedavg", "seed": 0, "versions": {}}
    run = RunDirectory.create(path, config)
    if dp:
        write_jsonl(path / LEDGER_FILE, ledger_lines(sigma, q, steps, rounds))
    write_jsonl(
        path / "metrics.jsonl",
        [{"round": r + 1, "phase": "train", "accuracy": accuracy} for r in range(rounds)],
    )
    run.write_summary(summary or {})
    audit = path / AUDIT_DIR
    audit.mkdir()
    np.savez(audit / SCORES_FILE, **_scores(whitebox, blackbox, np.random.default_rng(7)))
    (audit / PHASE_FILE).write_text(json.dumps({"nodes": {}}))
    return path


def status(report: dict, check_id: str) -> str:
    return next(c["status"] for c in report["checks"] if c["id"] == check_id)


def detail(report: dict, check_id: str) -> str:
    return next(c["detail"] for c in report["checks"] if c["id"] == check_id)
