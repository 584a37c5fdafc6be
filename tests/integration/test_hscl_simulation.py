"""Claims about HSCL on Flower's Simulation Engine (Ray), through `fedvault simulate hscl`.

One short run (one normal class, ρ = 0.1 only, 1 round per stage: 3 stages): it checks the
federated multi-stage flow and the summary keys, not the bands
(tests/slow/test_hscl_bands.py).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

SHORT = ["--set", "num-server-rounds=1", "--set", "hscl.local-epochs=1",
         "--set", "hscl.normal-classes=1", "--set", "hscl.contaminations=0.1",
         "--set", "hscl.score-views=1"]


def test_simulate_hscl_trains_every_stage_federated_and_reports_the_issue_summary(fedvault_cli, tmp_path):
    out = tmp_path / "run"
    fedvault_cli("simulate", "hscl", "--out", str(out), "--seed", "1", *SHORT, timeout=300, check=True)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("auroc", "auroc_baseline_contrastive", "auroc_baseline_supervised"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert set(summary["auroc_by_contamination"]) == {"0.1"}
    # Digit 1 is easy: even one federated epoch of either contrastive objective beats chance.
    assert summary["auroc"] > 0.6 and summary["auroc_baseline_contrastive"] > 0.6
    assert summary["auroc"] == summary["auroc_by_contamination"]["0.1"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    stages = [r["stage"] for r in records if "stage" in r]
    assert stages == ["hscl-c1-rho0.1", "contrastive-c1-rho0.1", "supervised-c1-rho0.1"]
    assert all(r["replies"] == 3 for r in records if "stage" in r)  # every node trained every stage
    assert summary["client_contamination_rates"]["0.1"] == pytest.approx([0.05, 0.1, 0.15])
