"""Claims about federated evaluation in a real Flower simulation (Ray), via the fedvault CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def tabular_npz(path: Path, n: int = 900, features: int = 6, classes: int = 3) -> Path:
    """Gaussian clusters that overlap: learnable, but not to 100 %, so the nodes differ."""
    rng = np.random.default_rng(7)
    centers = rng.normal(0.0, 1.5, (classes, features))
    y = rng.integers(0, classes, n)
    np.savez(path, x=(centers[y] + rng.normal(0.0, 1.0, (n, features))).astype(np.float32), y=y)
    return path


def test_nodes_evaluate_tabular_npz_and_the_server_weights_their_figures(fedvault_cli, tmp_path):
    out = tmp_path / "run"
    data = tabular_npz(tmp_path / "rows.npz")
    proc = fedvault_cli(
        "simulate", "fedavg", "--out", str(out),
        "--set", "data.dataset=npz", "--set", f"data.root={data}", "--set", "evaluation=federated",
        "--set", "num-clients=3", "--set", "num-server-rounds=2", "--set", "data.partitioner=iid",
        "--set", "fedavg.local-epochs=2", check=True, timeout=300)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == [1, 2]
    for record in records:
        nodes = record["per_node"]
        assert record["evaluation"] == "federated" and [n["node"] for n in nodes] == ["p0", "p1", "p2"]
        # 900 rows: 720 train the federation (the file's fixed 20 % carve is the test split),
        # 240 per node, of which each holds out 48 and trains on 192
        assert [n["examples"] for n in nodes] == [48, 48, 48] and record["examples"] == 3 * 192
        weights = np.array([n["examples"] for n in nodes])
        for key in ("accuracy", "loss"):
            assert record[key] == pytest.approx(np.dot(weights, [n[key] for n in nodes]) / weights.sum())
    assert records[-1]["accuracy"] > 0.6  # chance is 1/3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluation"] == "federated" and summary["accuracy"] == records[-1]["accuracy"]
    assert "round 2/2" in proc.stdout
