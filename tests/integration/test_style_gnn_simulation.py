"""Claims about the GNN style transfer on Flower's Simulation Engine (Ray), through
`fedvault simulate style-gnn`.

One short run (1 round per stage, 4 pairs per style family, 6 test pairs): it checks the
federated two-stage flow, the summary keys and the example images, not the bands
(tests/slow/test_style_gnn_bands.py).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

SHORT = ["num-server-rounds=1", "style-gnn.pairs-per-family=4", "style-gnn.test-pairs=6"]


def test_simulate_style_gnn_trains_both_stages_federated_and_writes_summary_and_examples(
        fedvault_cli, tmp_path):
    out = tmp_path / "run"
    sets = [arg for item in SHORT for arg in ("--set", item)]
    fedvault_cli("simulate", "style-gnn", "--out", str(out), "--seed", "1", *sets,
                 timeout=300, check=True)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("patch_nn_distance", "content_loss"):
        assert set(summary[key]) == {"gnn", "adain"}
        assert all(0.0 <= v < 2.0 for v in summary[key].values()), key  # cosine distance, IN-MSE
    assert set(summary["diversity_by_k"]) == {"1", "3", "8"}
    # each k picks other style patches even after one round: the outputs cannot coincide
    assert all(0.0 < v <= 3 ** 0.5 for v in summary["diversity_by_k"].values())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records if "stage" in r] == ["gnn", "adain"]
    assert all(r["replies"] == 3 for r in records if "stage" in r)  # every node trained
    grid = out / "examples" / "grid.png"
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "examples").glob("row_*.png"))) == 6
