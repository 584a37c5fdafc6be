"""Random human poses: 14 COCO-style keypoints of a person of a given height.

Shared by the pose method's stick figures (methods/pose/figures.py) and DynaST's paper
dolls (methods/dynast/dolls.py), so neither method imports the other.
"""

from __future__ import annotations

import numpy as np

NUM_KEYPOINTS = 14
KEYPOINTS = ("head_top", "neck", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist",
             "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle")


def random_pose(h: float, rng: np.random.Generator) -> np.ndarray:
    """14×2 keypoints of a person of height ≈ h, head top at the origin, y pointing down."""
    neck = np.array([0.0, 0.2 * h])
    points = {0: np.zeros(2), 1: neck}
    for side, sign in ((0, -1.0), (1, 1.0)):
        shoulder = neck + [sign * 0.11 * h, 0.03 * h]
        hip = neck + [sign * 0.07 * h, 0.33 * h]
        upper = rng.uniform(-0.5, 2.6)  # angle from straight down, outward positive (rad)
        elbow = shoulder + 0.17 * h * np.array([sign * np.sin(upper), np.cos(upper)])
        fore = upper + rng.uniform(0.0, 2.0)
        wrist = elbow + 0.15 * h * np.array([sign * np.sin(fore), np.cos(fore)])
        thigh = rng.uniform(-0.25, 0.7)
        knee = hip + 0.24 * h * np.array([sign * np.sin(thigh), np.cos(thigh)])
        shin = thigh - rng.uniform(0.0, 1.0)
        ankle = knee + 0.23 * h * np.array([sign * np.sin(shin), np.cos(shin)])
        for index, point in zip((2, 4, 6, 8, 10, 12), (shoulder, elbow, wrist, hip, knee, ankle)):
            points[index + side] = point
    pose = np.stack([points[k] for k in range(NUM_KEYPOINTS)])
    lean = rng.uniform(-0.2, 0.2)  # the whole body leans about its hips
    rot = np.array([[np.cos(lean), -np.sin(lean)], [np.sin(lean), np.cos(lean)]])
    pivot = pose[8:10].mean(0)
    return (pose - pivot) @ rot.T + pivot
