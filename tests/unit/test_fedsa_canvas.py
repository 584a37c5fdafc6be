"""Claims about FedSA's two-digit canvas protocol (methods/fedsa/canvas.py, notes §3.1)."""

import numpy as np
import pytest

from methods.fedsa.canvas import (
    TEACHER_TASKS,
    canvas_split,
    is_relevant,
    pair_digits,
    pool_digits,
    teacher_task_for,
)
from server.scenario import resolve

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def split():
    return canvas_split(resolve("fedsa", {"seed": "0"}))


def _halves(canvases):
    return {h.tobytes() for h in canvases.x[:, :, :, :14]}


def test_a_canvas_is_two_pooled_digits_side_by_side():
    digits = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 1, 28, 28)
    pooled = pool_digits(digits)
    assert pooled.shape == (2, 1, 14, 14)
    assert pooled[0, 0, 0, 0] == pytest.approx(digits[0, 0, :2, :2].mean())
    canvases = pair_digits(pooled, np.array([3, 8]), np.random.default_rng(0), copies=2)
    assert canvases.x.shape == (4, 1, 14, 28)
    for x, left, right in zip(canvases.x, canvases.left, canvases.right):
        assert np.array_equal(x[:, :, :14], pooled[[3, 8].index(left)])
        assert np.array_equal(x[:, :, 14:], pooled[[3, 8].index(right)])
    assert sorted(canvases.left) == [3, 3, 8, 8]  # each digit twice on the left


def test_the_split_follows_the_protocol(split):
    assert split.test.x.shape == (1000, 1, 14, 28)
    assert np.bincount(split.test.left).tolist() == [100] * 10
    assert np.bincount(split.probe.left).tolist() == [5] * 10  # 5 labelled canvases per class
    assert len(split.nodes) == 6
    # The remaining 3,950 digits are shared out, each paired within its node into 2×|share|.
    assert sum(len(n) for n in split.nodes) == 2 * (4000 - 50)
    assert all(640 <= len(n) / 2 <= 680 for n in split.nodes)


def test_nodes_probe_and_test_hold_disjoint_digits(split):
    groups = [_halves(n) for n in split.nodes] + [_halves(split.probe), _halves(split.test)]
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            assert not a & b


def test_the_split_is_reproducible_from_the_seed(split):
    again = canvas_split(resolve("fedsa", {"seed": "0"}))
    other = canvas_split(resolve("fedsa", {"seed": "1"}))
    assert np.array_equal(again.probe.x, split.probe.x)
    assert not np.array_equal(other.probe.x, split.probe.x)
    assert np.array_equal(other.test.x, split.test.x)  # one target test set for all seeds


def test_teacher_tasks_relabel_their_own_half(split):
    node = split.nodes[0]
    low = node.task("L:0-4")
    assert low.num_classes == 5 and set(low.y.tolist()) == {0, 1, 2, 3, 4}
    assert len(low) == (node.left < 5).sum()
    high = node.task("R:5-9")
    assert np.array_equal(np.sort(high.y + 5), np.sort(node.right[node.right >= 5]))
    parity = node.task("L:parity")
    assert parity.num_classes == 2 and np.array_equal(parity.y, node.left % 2)
    with pytest.raises(ValueError, match="unknown teacher task"):
        node.task("L:prime")


def test_three_teachers_are_relevant_and_three_are_distractors():
    tasks = [teacher_task_for(i) for i in range(6)]
    assert tasks == list(TEACHER_TASKS)
    assert [is_relevant(t) for t in tasks] == [True] * 3 + [False] * 3


def test_fedsa_refuses_another_data_set():
    from methods.config import ConfigError

    with pytest.raises(ConfigError, match="mnist5k"):
        canvas_split(resolve("fedsa", {"data.dataset": "digits"}))
