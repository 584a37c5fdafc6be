"""Claims about membership-inference metrics and their ε lower bound (server/audit/mia.py)."""

from __future__ import annotations

import numpy as np
import pytest

from server.audit.mia import attack_summary, clopper_pearson_epsilon, profile_violations

pytestmark = pytest.mark.unit


def test_roc_figures_of_a_known_split():
    members, nonmembers = np.array([3.0, 2.0, 1.0, 0.5]), np.array([0.0, -1.0, 0.7, -2.0])
    summary = attack_summary(members, nonmembers, 1e-5)
    assert summary["auc"] == pytest.approx(15 / 16)
    assert summary["tpr_at_fpr"]["0.1"] == pytest.approx(0.75)  # 3 members above every non-member
    assert summary["resolvable"] == {"0.001": False, "0.01": False, "0.1": False}


def test_an_attack_without_signal_proves_no_epsilon():
    rng = np.random.default_rng(0)
    assert clopper_pearson_epsilon(rng.normal(size=2000), rng.normal(size=2000), 1e-5) == 0.0


def test_a_strong_attack_proves_a_large_epsilon_but_not_an_infinite_one():
    rng = np.random.default_rng(1)
    eps = clopper_pearson_epsilon(rng.normal(6, 1, 1000), rng.normal(0, 1, 1000), 1e-5)
    assert 3.0 < eps < np.log(1000)  # bounded by what 1000 non-members can resolve


def test_a_roc_above_the_dp_profile_bound_is_flagged_and_one_below_is_not():
    rng = np.random.default_rng(2)
    members, nonmembers = rng.normal(4, 1, 1000), rng.normal(0, 1, 1000)
    assert profile_violations(members, nonmembers, [(1e-5, 1.0), (1e-2, 0.5)]) > 0
    assert profile_violations(members, nonmembers, [(1e-5, 20.0)]) == 0
