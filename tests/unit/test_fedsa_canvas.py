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
    # The server's validation canvases: 20 training digits per class, paired like the probe.
    assert np.bincount(split.val.left).tolist() == [20] * 10
    assert len(split.nodes) == 6
    # The remaining 3,750 digits are shared out, each paired within its node into 2×|share|.
    assert sum(len(n) for n in split.nodes) == 2 * (4000 - 50 - 200)
    assert all(600 <= len(n) / 2 <= 650 for n in split.nodes)


def test_without_a_validation_split_the_nodes_keep_every_other_digit(split):
    old = canvas_split(resolve("fedsa", {"seed": "0", "fedsa.val-per-class": "0"}))
    assert old.val is None and sum(len(n) for n in old.nodes) == 2 * (4000 - 50)
    assert np.array_equal(old.probe.x, split.probe.x)  # carving validation moves no probe


def test_nodes_probe_validation_and_test_hold_disjoint_digits(split):
    groups = [_halves(n) for n in split.nodes] + [_halves(split.probe), _halves(split.test),
                                                   _halves(split.val)]
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


def test_color32_canvases_are_cifar_shaped_with_the_same_protocol():
    split = canvas_split(resolve("fedsa", {"fedsa.canvas": "color32"}))
    assert split.test.x.shape == (500, 3, 32, 32) and split.test.x.dtype == np.float32
    assert np.bincount(split.probe.left).tolist() == [5] * 10
    assert np.bincount(split.val.left).tolist() == [20] * 10
    assert sum(len(n) for n in split.nodes) == 2 * (1200 - 50 - 200)
    halves = [{h.tobytes() for h in g.x[:, :, :, :16]}
              for g in (*split.nodes, split.probe, split.val, split.test)]
    assert all(not a & b for i, a in enumerate(halves) for b in halves[i + 1:])
    # A class is its colour pattern, but 5 labels per class are far from enough: the nearest
    # class mean of all node halves tells most test canvases apart, that of the probe not.

    def nearest_mean_accuracy(x, y):
        means = np.stack([x[y == c][:, :, :, :16].mean(axis=0) for c in range(10)])
        dist = ((split.test.x[:, None, :, :, :16] - means[None]) ** 2).sum(axis=(2, 3, 4))
        return (dist.argmin(1) == split.test.left).mean()

    nodes = nearest_mean_accuracy(np.concatenate([n.x for n in split.nodes]),
                                  np.concatenate([n.left for n in split.nodes]))
    assert nodes > 0.8 and nearest_mean_accuracy(split.probe.x, split.probe.left) < nodes - 0.2
