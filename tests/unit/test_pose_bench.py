"""Claims about the pose bench's verdicts (simulations/bench/pose.py)."""

import pytest

from simulations.bench.pose import judge

pytestmark = pytest.mark.unit


def summary(body, dual, recall_single, recall_multi, ap_ms_single, ap_ss_multi):
    return {"ap_small": {"body_center": body, "dual_center": dual},
            "recall_small": {"single_scale_train": recall_single, "multiscale_train": recall_multi},
            "ap_small_multiscale_train_single_test": ap_ms_single,
            "ap_small_single_train_multi_test": ap_ss_multi}


def test_bands_use_the_issue_margins_on_the_mean_over_seeds():
    verdict = judge({0: summary(0.50, 0.54, 0.60, 0.64, 0.50, 0.505),
                     1: summary(0.50, 0.52, 0.60, 0.62, 0.50, 0.52)})
    # dual − body − 0.03: +0.01 and −0.01 → mean 0: passes
    assert verdict["dual_beats_body"]["per_seed"] == {0: 0.01, 1: -0.01}
    assert verdict["dual_beats_body"]["pass"]
    assert verdict["dual_beats_body"]["k_of_n"] == "1 of 2"  # the mean passes, seed 1 alone does not
    assert verdict["multiscale_train_recall"]["pass"]
    # 0.50 − 0.505 + 0.01 = 0.005 and 0.50 − 0.52 + 0.01 = −0.01: mean −0.0025 fails
    assert not verdict["multiscale_train_vs_multiscale_test"]["pass"]


def test_a_dual_center_model_no_better_than_body_only_fails():
    verdict = judge({0: summary(0.5, 0.5, 0.6, 0.7, 0.5, 0.5)})
    assert not verdict["dual_beats_body"]["pass"]
