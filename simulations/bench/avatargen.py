"""`fedvault bench avatargen`: the AvatarGen claims over seeds, with bands.

Each seed is one `fedvault simulate avatargen` run in its own process (Flower's Simulation
Engine; two nodes with their own people and pose windows; three federated stages with
identical schedules: avatargen, density, pose_agnostic_baseline). Bands (design notes
§4(d), methods/avatargen/README.md), each required on every seed:

- animatable_beats_pose_agnostic: keypoint error ≥ 30% lower than the pose-agnostic
  baseline's, or mask IoU ≥ 0.1 higher
- sdf_depth_below_density: depth_error.sdf < depth_error.density
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from simulations.bench.runs import band, scenario_bench

SCENARIO = "avatargen"
DEFAULT_SEEDS = (0, 1, 2)
KEYPOINT_REDUCTION, IOU_GAIN = 0.30, 0.10

RULES = {
    "animatable_beats_pose_agnostic": (
        "every seed: 1 - keypoint_error.avatargen / keypoint_error.pose_agnostic_baseline >= 0.30 "
        "or mask_iou.avatargen - mask_iou.pose_agnostic_baseline >= 0.10"),
    "sdf_depth_below_density": "every seed: depth_error.sdf < depth_error.density",
}


def margins(summary: dict[str, Any]) -> dict[str, float]:
    kp, iou, depth = summary["keypoint_error"], summary["mask_iou"], summary["depth_error"]
    return {"keypoint_reduction": 1 - kp["avatargen"] / kp["pose_agnostic_baseline"],
            "iou_gain": iou["avatargen"] - iou["pose_agnostic_baseline"],
            "depth_sdf": depth["sdf"], "depth_density": depth["density"]}


def judge(summaries: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    per_seed = {seed: {k: round(v, 4) for k, v in margins(s).items()} for seed, s in summaries.items()}
    animatable = {s: {"keypoint_reduction": m["keypoint_reduction"], "iou_gain": m["iou_gain"]}
                  for s, m in per_seed.items()}
    depth = {s: {"sdf": m["depth_sdf"], "density": m["depth_density"]} for s, m in per_seed.items()}
    return {
        "animatable_beats_pose_agnostic": band(
            RULES["animatable_beats_pose_agnostic"], animatable,
            seed_ok=lambda m: m["keypoint_reduction"] >= KEYPOINT_REDUCTION or m["iou_gain"] >= IOU_GAIN),
        "sdf_depth_below_density": band(RULES["sdf_depth_below_density"], depth,
                                        seed_ok=lambda m: m["sdf"] < m["density"]),
    }


def table(summaries: dict[int, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The README's figures per seed (and their mean)."""
    rows = {}
    for seed, s in summaries.items():
        rows[str(seed)] = {
            **{f"keypoint_error.{k}": v for k, v in s["keypoint_error"].items()},
            **{f"mask_iou.{k}": v for k, v in s["mask_iou"].items()},
            **{f"depth_error.{k}": v for k, v in s["depth_error"].items()},
            "keypoint_error_regressor_on_real": s["keypoint_error_regressor_on_real"]}
    if rows:
        keys = next(iter(rows.values())).keys()
        rows["mean"] = {k: statistics.fmean(r[k] for r in rows.values()) for k in keys}
    return rows


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    seeds = list(seeds or DEFAULT_SEEDS)
    result = scenario_bench(SCENARIO, seeds, judge, out=out)
    result["figures"] = table({s: r for s, r in result["summaries"].items() if "error" not in r})
    return result
