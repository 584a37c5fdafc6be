"""Claims about the one-run canary audit (server/audit/canary.py, Steinke et al. 2023)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from server.audit.canary import (
    epsilon_lower_bound,
    max_measurable,
    null_calibration,
    one_run_audit,
    p_value,
)

pytestmark = pytest.mark.unit


def test_all_guesses_right_without_delta_gives_the_closed_form():
    # r = v = 100, δ = 0: p = q^100 < 0.05 ⇔ q < 0.05^(1/100); ε̂ = log(q / (1 - q)).
    q = 0.05 ** (1 / 100)
    assert epsilon_lower_bound(100, 100, 100, 0.0, 0.05) == pytest.approx(
        math.log(q / (1 - q)), abs=1e-6
    )


@pytest.mark.parametrize("m, expected", [(200, 4.19), (1000, 5.78)])
def test_the_power_of_an_audit_is_capped_by_its_canary_count(m, expected):
    assert epsilon_lower_bound(m, m, m, 1e-5, 0.05) == pytest.approx(expected, abs=0.01)


def test_the_p_value_grows_with_epsilon():
    values = [p_value(eps, 200, 100, 80, 1e-5) for eps in np.linspace(0, 5, 11)]
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_perfectly_separated_canaries_reach_the_audits_ceiling():
    coins = np.random.default_rng(0).random(200) < 0.5
    audit = one_run_audit(coins.astype(float), coins, 1e-5)
    assert audit.epsilon_lower_bound == pytest.approx(max_measurable(200, 1e-5), rel=0.1)
    assert audit.correct == audit.guesses


def test_scores_independent_of_the_coins_prove_nothing():
    rng = np.random.default_rng(1)
    audit = one_run_audit(rng.normal(size=500), rng.random(500) < 0.5, 1e-5)
    assert audit.epsilon_lower_bound == 0.0


def test_identical_scores_prove_nothing_whatever_the_coins():
    coins = np.arange(200) % 2 == 0  # IN canaries first: a stable sort would "find" them
    assert one_run_audit(np.zeros(200), coins, 1e-5).epsilon_lower_bound == 0.0


def test_null_calibration_finds_zero_in_at_least_95_percent_of_redraws():
    rng = np.random.default_rng(2)
    coins = rng.random(300) < 0.5
    scores = coins + rng.normal(0, 0.5, 300)  # informative for the real coins only
    assert one_run_audit(scores, coins, 1e-5).epsilon_lower_bound > 0.5
    assert null_calibration(scores, coins, 1e-5, trials=40) >= 0.9
