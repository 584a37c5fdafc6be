"""Claims about Attention Diversification on Flower's Simulation Engine (Ray), through
`fedvault simulate attn-div`.

One short run (one split, one round per stage, 64 images per domain): it checks the
federated stage flow and the summary keys, not the bands
(tests/slow/test_attn_div_bands.py).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

SHORT = ["attn-div.splits=3", "attn-div.domain-rounds=1", "attn-div.warm-rounds=1",
         "attn-div.final-rounds=1", "attn-div.train-per-domain=64", "attn-div.test-per-domain=100",
         "attn-div.local-epochs=1", "attn-div.domain-local-epochs=1"]
STAGES = ["domains-3", "erm-warm-3", "erm-3", "intra-warm-3", "intra-3", "i2adr-3"]


def test_simulate_attn_div_runs_every_stage_federated_and_reports_the_issue_summary(fedvault_cli, tmp_path):
    out = tmp_path / "run"
    sets = [arg for item in SHORT for arg in ("--set", item)]
    fedvault_cli("simulate", "attn-div", "--out", str(out), "--seed", "1", *sets, timeout=300, check=True)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["target_accuracy"]) == {"erm", "intra", "i2adr"}
    assert set(summary["attention_diversity"]) == {"erm", "intra"}
    assert all(0.0 <= v <= 1.0 for v in summary["target_accuracy"].values())
    assert all(0.0 < v <= 1.0 for v in summary["attention_diversity"].values())
    assert summary["num_clients"] == 3 and summary["transport"] == "simulation"
    split = summary["splits"]["distorted"]
    assert split["target_accuracy"] == summary["target_accuracy"]  # one split: the mean is the split
    assert len(split["domain_models_accuracy"]["source"]) == 3
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records] == STAGES
    assert all(r["replies"] == 3 for r in records)  # every source domain trained in every stage
