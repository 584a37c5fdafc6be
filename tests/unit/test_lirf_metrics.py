"""LIRF's metrics against the paper's Table 1 (Ye et al., ECCV 2022) and the MIA audit."""

import numpy as np
import pytest

from methods.lirf.metrics import forgetting, harmonic, membership_auc, split_accuracy

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("dep_original, pre_target, dep_target, f, h", [
    (94.60, 93.41, 15.00, 79.60, 85.95),  # CIFAR-10, deposit T
    (48.60, 51.64, 1.18, 47.42, 49.44),  # CUB-200, deposit T
])
def test_f_and_h_reproduce_table_1(dep_original, pre_target, dep_target, f, h):
    assert forgetting(dep_original, dep_target) == pytest.approx(f, abs=0.005)
    assert harmonic(pre_target, forgetting(dep_original, dep_target)) == pytest.approx(h, abs=0.005)


def test_h_is_zero_without_forgetting_like_t0_in_table_1():
    assert harmonic(93.77, forgetting(94.60, 94.60)) == 0.0
    assert harmonic(0.0, 0.0) == 0.0


def test_avg_accuracy_weights_classes_by_their_test_share_as_in_table_1():
    # CIFAR-10, T̃: 7 preserved classes at 94.56 %, 3 deposited at 97.92 % → Avg 95.57 %.
    y = np.repeat(np.arange(10), 10_000)
    pred = y.copy()
    for cls in range(10):
        wrong = round(10_000 * (1 - (0.9792 if cls < 3 else 0.9456)))
        pred[cls * 10_000: cls * 10_000 + wrong] = (cls + 1) % 10
    figures = split_accuracy(pred, y, (0, 1, 2))
    assert figures["pre_acc"] == pytest.approx(0.9456, abs=1e-4)
    assert figures["dep_acc"] == pytest.approx(0.9792, abs=1e-4)
    assert figures["avg_acc"] == pytest.approx(0.9557, abs=1e-4)


def test_membership_auc_is_one_when_every_member_has_lower_loss_and_half_when_alike():
    assert membership_auc([0.01, 0.02], [1.0, 2.0, 3.0]) == 1.0
    assert membership_auc([1.0, 2.0], [0.1, 0.2]) == 0.0
    same = np.random.default_rng(0).exponential(size=4000)
    assert membership_auc(same[:2000], same[2000:]) == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError):
        membership_auc([], [1.0])
