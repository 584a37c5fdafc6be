"""The audit phase's files: RUN_DIR/audit/scores.npz (1-D score and coin arrays, keyed
"<node>|<kind>|<what>") and phase.json (what each node answered), written by the audit
phase (server/audit/phase.py) and read by the report (server/audit/report.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from server.run_dir import atomic_write

AUDIT_DIR = "audit"
SCORES_FILE = "scores.npz"
PHASE_FILE = "phase.json"


def save_scores(audit_dir: Path, scores: Mapping[str, np.ndarray],
                phase: Mapping[str, Any]) -> None:
    with open(audit_dir / SCORES_FILE, "wb") as fh:
        np.savez(fh, **scores)
    atomic_write(audit_dir / PHASE_FILE, json.dumps(phase, indent=2, sort_keys=True).encode())


def load_scores(audit_dir: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    audit_dir = Path(audit_dir)
    with np.load(audit_dir / SCORES_FILE, allow_pickle=False) as data:
        scores = {k: data[k] for k in data.files}
    return scores, json.loads((audit_dir / PHASE_FILE).read_text())


def pooled_canaries(scores: Mapping[str, np.ndarray], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Every node's canary scores and coins, pooled: kind "confidence" (black-box) or "whitebox"."""
    score_key, coin_key = (
        ("whitebox|score", "whitebox|in")
        if kind == "whitebox"
        else ("confidence|canary", "canary|in")
    )
    nodes = sorted({k.split("|")[0] for k in scores if k.endswith(score_key)})
    if not nodes:
        return np.zeros(0), np.zeros(0, bool)
    return (
        np.concatenate([scores[f"{n}|{score_key}"] for n in nodes]),
        np.concatenate([scores[f"{n}|{coin_key}"] for n in nodes]).astype(bool),
    )


def mia_nodes(scores: Mapping[str, np.ndarray]) -> list[str]:
    return sorted({k.split("|")[0] for k in scores if k.endswith("|loss|member")})


def pooled_mia(scores: Mapping[str, np.ndarray], kind: str) -> tuple[np.ndarray, np.ndarray]:
    nodes = mia_nodes(scores)
    return (
        np.concatenate([scores[f"{n}|{kind}|member"] for n in nodes]),
        np.concatenate([scores[f"{n}|{kind}|nonmember"] for n in nodes]),
    )
