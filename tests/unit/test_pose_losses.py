"""Claims about the pose method's losses and targets (methods/pose/losses.py, targets.py),
on toys small enough to compute by hand."""

import math

import pytest
import torch

from methods.pose.figures import NUM_KEYPOINTS
from methods.pose.losses import center_loss, heatmap_loss, offset_loss
from methods.pose.targets import CenterTargets, People, center_targets, rescale

pytestmark = pytest.mark.unit


def one_person(height=20.0, center=(33.0, 29.0)) -> People:
    """A person whose 14 joints lie on a vertical line through `center`, all visible."""
    ys = torch.linspace(-height / 2, height / 2, NUM_KEYPOINTS) + center[1]
    joints = torch.stack([torch.full((NUM_KEYPOINTS,), center[0]), ys], -1)
    return People(torch.tensor([[True]]), torch.tensor([[height]]), joints[None, None],
                  torch.ones(1, 1, NUM_KEYPOINTS, dtype=torch.bool))


def test_heatmap_loss_weights_cells_near_a_center_ten_times():
    target = torch.zeros(1, 1, 2, 2)
    target[0, 0, 0, 0] = 0.5
    pred = torch.zeros(1, 1, 2, 2)
    pred[0, 0, 1, 1] = 0.2  # a background cell: weight 1
    # ((0.5)² · 10 + (0.2)² · 1) / 4 cells · 100 = (2.5 + 0.04) / 4 · 100
    assert heatmap_loss(pred, target, weight=100.0).item() == pytest.approx(63.5)


def test_offset_loss_is_smooth_l1_in_person_heights_weighted_per_person():
    k2 = 2 * NUM_KEYPOINTS
    target = CenterTargets(heatmap=torch.zeros(1, 1, 1, 2), offsets=torch.zeros(1, k2, 1, 2),
                           log_height=torch.zeros(1, 1, 1, 2), mask=torch.zeros(1, k2, 1, 2),
                           weight=torch.zeros(1, 1, 1, 2))
    target.mask[0, :, 0, 0] = 1.0  # one owned cell, every joint visible
    target.weight[0, 0, 0, 0] = 0.5  # 1/√(4 cells of its person)
    target.log_height[0, 0, 0, 0] = math.log(20.0)
    offsets = torch.zeros(1, k2, 1, 2)
    offsets[0, 0, 0, 0] = 0.3  # |error| 0.3 ≥ β: 0.3 − β/2 = 0.25
    offsets[0, 1, 0, 0] = 0.05  # |error| 0.05 < β: 0.5 · 0.05² / β = 0.0125
    offsets[0, 2, 0, 1] = 9.0  # an unowned cell: not supervised
    log_height = torch.full((1, 1, 1, 2), math.log(20.0))
    log_height[0, 0, 0, 0] += 0.2  # |error| 0.2 ≥ β: 0.2 − β/2 = 0.15
    # joints: weight 0.5 · (0.25 + 0.0125) / 28 supervised; log h: 0.5 · 0.15 / 1 owned cell
    expected = 0.5 * 0.2625 / k2 + 0.5 * 0.15
    assert offset_loss(offsets, log_height, target, beta=0.1).item() == pytest.approx(expected)


def test_targets_put_the_peak_at_the_center_and_offsets_that_decode_to_the_joints():
    people = one_person(height=20.0, center=(34.0, 29.0))
    t = center_targets(people, "body")
    # The body center (34, 29) lies between the centers (33, 29) and (35, 29) of cells
    # (14, 16) and (14, 17): half a cell from each, σ = 0.08 · 20 = 1.6 cells.
    assert divmod(int(t.heatmap.flatten().argmax()), 32) in {(14, 16), (14, 17)}
    assert t.heatmap.max().item() == pytest.approx(math.exp(-0.5 ** 2 / (2 * 1.6 ** 2)))
    # Radius max(1, 0.15 · 20) = 3 cells around column 16.5, row 14: 6 + 2·6 + 2·4 cells.
    rows, cols = torch.nonzero(t.weight[0, 0] > 0, as_tuple=True)
    assert len(rows) == 26
    # At every owned cell, cell + h · offset gives back the joints exactly.
    joints = people.keypoints[0, 0]
    for r, c in zip(rows.tolist(), cols.tolist()):
        offsets = t.offsets[0, :, r, c].view(NUM_KEYPOINTS, 2)
        decoded = torch.tensor([2 * c + 1.0, 2 * r + 1.0]) + offsets * 20.0
        torch.testing.assert_close(decoded, joints, atol=1e-4, rtol=0)
        assert t.log_height[0, 0, r, c].item() == pytest.approx(math.log(20.0))
        # one person owning n cells: each weighs 1/√n
        assert t.weight[0, 0, r, c].item() == pytest.approx(1 / math.sqrt(len(rows)))


def test_head_center_is_the_mean_of_head_top_and_neck():
    people = one_person()
    center, _ = people.centers("head")
    torch.testing.assert_close(center[0, 0], people.keypoints[0, 0, :2].mean(0))
    people.visible[0, 0, 1] = False  # neck out of frame: no head center to learn
    assert not people.centers("head")[1].item()


def test_rescale_moves_the_image_and_its_joints_together():
    image = torch.zeros(1, 3, 64, 64)
    image[0, :, 20, 40] = 1.0  # a bright pixel whose center is (40.5, 20.5)
    people = one_person(height=10.0, center=(40.5, 20.5))
    scale, shift = torch.tensor([0.5]), torch.tensor([[3.0, -2.0]])
    zoomed, moved = rescale(image, people, scale, shift)
    expected = 0.5 * (torch.tensor([40.5, 20.5]) - 32) + 32 + torch.tensor([3.0, -2.0])
    row, col = divmod(int(zoomed[0, 0].argmax()), 64)
    assert abs(col + 0.5 - expected[0].item()) <= 0.5 and abs(row + 0.5 - expected[1].item()) <= 0.5
    torch.testing.assert_close(moved.keypoints[0, 0].mean(0), expected)
    assert moved.height.item() == pytest.approx(5.0)


def test_rescale_hides_joints_that_leave_the_frame():
    people = one_person(height=40.0, center=(60.0, 32.0))
    _, moved = rescale(torch.zeros(1, 3, 64, 64), people, torch.tensor([1.5]), torch.zeros(1, 2))
    assert not moved.visible[0, 0].any()  # x = 1.5·(60 − 32) + 32 = 74: outside
    assert not moved.present[0, 0]


def test_body_only_ignores_the_head_branch_and_dual_trains_both():
    people = one_person()
    outputs = {k: (torch.zeros(1, 1, 32, 32), torch.zeros(1, 28, 32, 32), torch.zeros(1, 1, 32, 32))
               for k in ("body", "head")}
    body = center_loss(outputs["body"], center_targets(people, "body"), 100.0, 1.0)
    head = center_loss(outputs["head"], center_targets(people, "head"), 100.0, 1.0)
    assert body.item() > 0 and head.item() > 0
