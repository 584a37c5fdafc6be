"""Claims about pose decoding and the OKS-AP metric (methods/pose/decode.py, metrics.py)."""

import numpy as np
import pytest
import torch

from methods.common.datasets import ArrayDataset
from methods.pose.decode import Candidates, Decoding, fuse, oks_nms, predict
from methods.pose.figures import NUM_KEYPOINTS, make_images
from methods.pose.method import batch_people, truths_of
from methods.pose.metrics import average_precision, oks
from methods.pose.targets import center_targets

pytestmark = pytest.mark.unit


def pose_at(x0, y0, height=10.0):
    """A person whose joints lie on a diagonal: a box of 0.4·height × height."""
    joints = np.stack([np.linspace(x0, x0 + 0.4 * height, NUM_KEYPOINTS),
                       np.linspace(y0, y0 + height, NUM_KEYPOINTS)], -1)
    return joints, np.ones(NUM_KEYPOINTS, bool)


def test_oks_is_one_for_exact_joints_and_falls_with_the_error():
    joints, visible = pose_at(10, 10)
    assert oks(joints, joints, visible, area=20.0) == pytest.approx(1.0)
    # Every joint 1 px off: exp(−1 / (2 · 20 · (2σ)²)) averaged over the joints.
    expected = np.mean(np.exp(-1 / (2 * 20.0 * (2 * np.array(
        [.079] * 4 + [.072] * 2 + [.062] * 2 + [.107] * 2 + [.087] * 2 + [.089] * 2)) ** 2)))
    assert oks(joints + [1.0, 0.0], joints, visible, area=20.0) == pytest.approx(expected)


def test_ap_counts_a_higher_scored_false_positive_against_precision():
    joints, visible = pose_at(10, 10)
    truths = [(joints[None], visible[None], np.array([10.0]))]
    miss, _ = pose_at(40, 40)
    dets = [(np.stack([miss, joints]), np.array([10.0, 10.0]), np.array([0.9, 0.8]))]
    ap, recall = average_precision(dets, truths, 0.5)
    # ranks: FP (P=0, R=0), TP (P=1/2, R=1): interpolated precision 1/2 at every recall level
    assert ap == pytest.approx(0.5) and recall == 1.0
    ap_alone, _ = average_precision([(joints[None], np.array([10.0]), np.array([0.8]))], truths)
    assert ap_alone == pytest.approx(1.0)


def test_small_person_ap_ignores_large_people_and_large_detections():
    small, visible = pose_at(10, 10, height=8.0)
    large, _ = pose_at(40, 10, height=30.0)
    truths = [(np.stack([small, large]), np.stack([visible, visible]), np.array([8.0, 30.0]))]
    # the large person found first, a spurious large detection, then the small person
    spurious, _ = pose_at(50, 50, height=30.0)
    dets = [(np.stack([large, spurious, small]), np.array([30.0, 30.0, 8.0]),
             np.array([0.9, 0.8, 0.7]))]
    assert average_precision(dets, truths, 0.5, max_height=16.0) == (pytest.approx(1.0), 1.0)
    ap_all, _ = average_precision(dets, truths, 0.5)
    assert ap_all < 1.0  # over all sizes the spurious detection does count


def test_fusion_merges_a_head_and_a_body_candidate_of_one_person_only():
    a, _ = pose_at(10, 10)
    b, _ = pose_at(40, 10)
    body = Candidates(np.stack([a, b]), np.array([10.0, 10.0]), np.array([0.6, 0.5]))
    head = Candidates((a + 0.5)[None], np.array([10.0]), np.array([0.4]))
    fused = fuse(body, head, max_distance=0.15)
    assert len(fused.scores) == 2  # a's two candidates became one; b stays
    merged = int(np.argmax(fused.scores))
    assert fused.scores[merged] == pytest.approx(1 - 0.4 * 0.6)
    np.testing.assert_allclose(fused.joints[merged], a + 0.5 * 0.4)  # score-weighted mean


def test_oks_nms_drops_a_duplicate_and_keeps_a_neighbour():
    a, _ = pose_at(10, 10)
    b, _ = pose_at(30, 10)
    cands = Candidates(np.stack([a, a + 0.2, b]), np.full(3, 10.0), np.array([0.9, 0.8, 0.7]))
    kept = oks_nms(cands, threshold=0.25, top_k=20)
    assert kept.scores.tolist() == [0.9, 0.7]


@pytest.mark.parametrize("centers", ["body", "dual"])
def test_decoding_the_training_targets_recovers_the_ground_truth(centers):
    data = ArrayDataset(make_images(24, (6.0, 40.0), seed=5), np.zeros(24, np.int64), 1, "toy")
    people = batch_people(torch.tensor(data.x[:, 3]))

    class Oracle(torch.nn.Module):  # outputs exactly the targets the net is trained towards
        def forward(self, image):
            targets = {k: center_targets(people, k) for k in ("body", "head")}
            return {k: (t.heatmap, t.offsets, t.log_height) for k, t in targets.items()}

    dets = [(c.joints, c.heights, c.scores)
            for c in predict(Oracle(), torch.tensor(data.x[:, :3]), Decoding(centers))]
    ap, recall = average_precision(dets, truths_of(data), 0.5)
    assert ap >= 0.95 and recall >= 0.95
