"""Claims about Ask-AC on Flower's Simulation Engine (Ray), through `fedvault simulate ask-ac`.

One short run (1 round per level, one 64-step rollout per client and round): it checks the
federated flow of the three stages and the summary, not the bands
(tests/slow/test_askac_bands.py, `fedvault bench ask-ac`).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

TINY = ["--set", "askac.rounds-per-level=1", "--set", "askac.rollouts-per-round=1",
        "--set", "askac.rollout-steps=64", "--set", "askac.ppo-epochs=2"]


def test_simulate_ask_ac_trains_three_learners_and_reports_the_issue_summary(fedvault_cli, tmp_path):
    out = tmp_path / "run"
    fedvault_cli("simulate", "ask-ac", "--out", str(out), "--seed", "3", *TINY,
                 timeout=300, check=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["transport"] == "simulation" and summary["rounds"] == 9  # 3 stages × 3 levels
    steps = 2 * 3 * 64  # 2 clients × 3 levels × one 64-step rollout
    for key in ("return_askac", "return_continuous_monitoring", "return_vanilla"):
        for kind in ("train", "greedy"):
            values = summary[key][kind]
            assert len(values) == 3 and all(0 < v <= 500 for v in values), (key, kind, values)
    # CM: the advisor acts at every step of every client; vanilla never asks; Ask-AC's
    # untrained ask head asks on some but not all steps.
    assert summary["advisor_queries_cm"] == steps == summary["env_steps_cm"]
    assert summary["advisor_queries_vanilla"] == 0
    assert 0 < summary["advisor_queries_askac"] < steps
    # The advisor balances the pole: CM's training episodes last the whole 64-step rollout.
    assert summary["return_continuous_monitoring"]["train"] == [64.0, 64.0, 64.0]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records] == ["vanilla"] * 3 + ["cm"] * 3 + ["askac"] * 3
    assert all(r["replies"] == 2 for r in records)
