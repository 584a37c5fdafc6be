"""Claims about the pose method on Flower's Simulation Engine (Ray), through `fedvault simulate pose`.

One tiny run (1 round per stage, 32 images per camera): it checks the federated
three-stage flow and the summary keys, not the bands
(tests/slow/test_pose_bands.py runs the bench for those).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

TINY = ["--set", "num-server-rounds=1", "--set", "pose.images-per-camera=32",
        "--set", "pose.test-images=16", "--set", "pose.local-epochs=1"]


def test_simulate_pose_trains_three_federated_stages_and_reports_the_issue_summary(
        fedvault_cli, tmp_path):
    out = tmp_path / "run"
    fedvault_cli("simulate", "pose", "--out", str(out), "--seed", "3", *TINY, timeout=400,
                 check=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_clients"] == 2 and summary["transport"] == "simulation"
    assert set(summary["ap_small"]) == {"body_center", "dual_center"}
    assert {"single_scale_train", "multiscale_train"} <= set(summary["recall_small"])
    figures = [*summary["ap_small"].values(), *summary["recall_small"].values(),
               summary["ap_small_multiscale_train_single_test"],
               summary["ap_small_single_train_multi_test"]]
    assert all(0.0 <= f <= 1.0 for f in figures)
    # scales 0.5, 1, 2 cost 0.25 + 1 + 4 single-scale passes (up to the tiny net's padding)
    assert summary["inference_cost_ratio"] == pytest.approx(1 / 5.25, rel=0.05)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records] == ["dual_multiscale", "body_multiscale",
                                             "dual_single_scale"]
    assert all(r["replies"] == 2 for r in records)  # both cameras trained in every stage
    for stage in ("dual_multiscale", "body_multiscale", "dual_single_scale"):
        assert (out / "checkpoint" / f"stage-{stage}.npz").is_file()
