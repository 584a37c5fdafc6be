"""Claims about the pose method's data: cameras as nodes, packed annotations."""

import numpy as np
import pytest

from methods.resolve import parse_run_spec
from methods.pose.figures import pack, unpack
from methods.pose.method import PoseMethod, camera_heights

pytestmark = pytest.mark.unit


def test_each_camera_node_holds_only_people_of_its_own_scale_band():
    method = PoseMethod()
    spec = parse_run_spec({"method": "pose", "num-clients": "2", "pose.images-per-camera": "6"})
    data = method.train_dataset(spec)
    far, near = method.node_partition(spec, data.y, 2)
    assert len(far) == len(near) == 6 and not set(far) & set(near)
    (lo0, hi0), (lo1, hi1) = camera_heights(12.0, 40.0, 0, 2), camera_heights(12.0, 40.0, 1, 2)
    assert lo0 == pytest.approx(12.0) and hi1 == pytest.approx(40.0) and hi0 == pytest.approx(lo1)
    for shard, (lo, hi) in ((far, (lo0, hi0)), (near, (lo1, hi1))):
        present, height, _, _ = unpack(data.x[shard, 3])
        assert ((height[present] >= lo - 1e-4) & (height[present] <= hi + 1e-4)).all()


def test_annotations_survive_packing_beside_the_image():
    rng = np.random.default_rng(0)
    people = [(float(h), rng.uniform(0, 64, (14, 2)), rng.random(14) > 0.3) for h in (7.5, 30.0)]
    present, height, joints, visible = unpack(pack(people)[None])
    assert present[0].tolist() == [True, True, False, False]
    np.testing.assert_allclose(height[0, :2], [7.5, 30.0])
    for p, (_, pose, vis) in enumerate(people):
        np.testing.assert_allclose(joints[0, p], pose, rtol=1e-6)
        assert visible[0, p].tolist() == vis.tolist()


def test_limb_width_floor_changes_only_people_under_15_px():
    from methods.pose.figures import render_image

    def draw(heights, floor):
        return render_image(np.random.default_rng(4), heights, floor)[0]

    # 0.06·h ≥ 0.9 from h = 15 px: above it the floor draws nothing different
    np.testing.assert_array_equal(draw((20.0, 30.0), 0.9), draw((20.0, 30.0), 0.0))
    # below it the limbs are thinner, so some pixels change visibly
    assert (np.abs(draw((6.0, 9.0), 0.0) - draw((6.0, 9.0), 0.9)) > 0.05).sum() > 5
