"""Claims about LTL on Flower's Simulation Engine (Ray), through `fedvault simulate ltl`.

One short run (a narrow net, T = 4, 1-3 rounds per stage): it checks the federated stage
flow and the summary keys, not the bands (tests/slow/test_ltl_bands.py).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

SHORT = ["ltl.teacher-rounds=3", "ltl.teacher-lr=0.005", "ltl.student-rounds=2",
         "ltl.bptt-rounds=1", "ltl.time-steps=4", "ltl.widths=8,8,8", "ltl.hidden=32"]
ISSUE_KEYS = {"teacher_accuracy", "snn_accuracy", "epochs_to_within_3pts",
              "bptt_accuracy_at_epoch", "ltl_accuracy_at_epoch"}


def test_simulate_ltl_runs_every_stage_federated_and_reports_the_issue_summary(fedvault_cli, tmp_path):
    out = tmp_path / "run"
    sets = [arg for item in SHORT for arg in ("--set", item)]
    fedvault_cli("simulate", "ltl", "--out", str(out), "--seed", "1", *sets, timeout=300, check=True)
    summary = json.loads((out / "summary.json").read_text())
    assert ISSUE_KEYS <= set(summary)
    assert summary["num_clients"] == 2 and summary["transport"] == "simulation"
    assert summary["teacher_accuracy"] > 0.5  # 3 FedAvg rounds of a narrow CNN (chance: 0.1)
    assert list(summary["ltl_accuracy_at_epoch"]) == ["1", "2"]
    assert list(summary["bptt_accuracy_at_epoch"]) == ["1"]
    assert summary["snn_accuracy"] == summary["ltl_accuracy_at_epoch"]["2"]
    within = summary["epochs_to_within_3pts"]
    assert within is None or summary["ltl_accuracy_at_epoch"][str(within)] >= summary["teacher_accuracy"] - 0.03
    # The teacher rode along with the student for 2 rounds of FedAvg and did not learn.
    assert summary["teacher_max_drift"] < 1e-5
    assert 0.0 <= summary["noisy_accuracy"] <= 1.0 and 0.0 <= summary["recalibrated_accuracy"] <= 1.0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records] == ["teacher"] * 3 + ["ltl", "ltl", "bptt", "recalibrate"]
    assert all(r["replies"] == 2 for r in records)  # both nodes trained every stage
