"""Claims about AvatarGen on Flower's Simulation Engine (Ray), through `fedvault simulate avatargen`.

One tiny run (1 round per stage, 16 images per node, 16×16 renders): it checks the federated
three-stage flow, the summary keys and the example images, not the bands
(tests/slow/test_avatargen_bands.py runs the bench for those).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

TINY = ["--set", "num-server-rounds=1", "--set", "avatargen.images-per-node=16",
        "--set", "avatargen.test-poses=8", "--set", "avatargen.image-size=16",
        "--set", "avatargen.samples=8", "--set", "avatargen.regressor-steps=20"]
STAGES = ["avatargen", "density", "pose_agnostic_baseline"]


def test_simulate_avatargen_trains_three_federated_stages_and_reports_the_issue_summary(
        fedvault_cli, tmp_path):
    out = tmp_path / "run"
    fedvault_cli("simulate", "avatargen", "--out", str(out), "--seed", "3", *TINY, timeout=400,
                 check=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_clients"] == 2 and summary["transport"] == "simulation"
    assert {"avatargen", "pose_agnostic_baseline"} <= set(summary["keypoint_error"])
    assert {"avatargen", "pose_agnostic_baseline"} <= set(summary["mask_iou"])
    assert {"sdf", "density"} <= set(summary["depth_error"])
    assert all(0.0 <= v <= 1.0 for v in summary["mask_iou"].values())
    # Errors are distances: ≥ 0 and within the frame (2D pixels at 16², depth within 1.6).
    assert all(0.0 <= v < 16 * 2 ** 0.5 for v in summary["keypoint_error"].values())
    assert all(0.0 <= v <= 1.6 for v in summary["depth_error"].values())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records] == STAGES
    assert all(r["replies"] == 2 for r in records)  # both nodes trained in every stage
    for name in [*STAGES, "real"]:
        assert (out / "examples" / f"{name}.png").stat().st_size > 0
