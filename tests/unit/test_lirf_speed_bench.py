"""`fedvault bench lirf-speed` at a matched endpoint (simulations/bench/lirf_speed.py), on
made-up LIRF summaries: the first retrain round with the deposit target's preserved
accuracy and at least its forgetting, and the ratios taken there."""

import pytest

from simulations.bench import lirf_speed
from simulations.bench.lirf_speed import figures, matched_round, verdict

pytestmark = pytest.mark.unit


def _summary(history, target=(0.95, 0.20), deposit_seconds=10.0, deposit_steps=1000):
    return {"target": {"pre_acc": target[0], "dep_acc": target[1]},
            "deposit_seconds": deposit_seconds, "deposit_sample_steps": deposit_steps,
            "retrain_seconds": history[-1][2] if history else 0.0,
            "retrain_history": [{"round": r, "pre_acc": pre, "dep_acc": dep, "seconds": sec,
                                 "sample_steps": steps} for r, (pre, dep, sec, steps)
                                in enumerate(history, start=1)]}


# (pre_acc, dep_acc, cumulative seconds, cumulative sample-steps) per retrain round
CLIMB = [(0.80, 0.0, 8.0, 900), (0.94, 0.25, 16.0, 1800), (0.95, 0.10, 24.0, 2700),
         (0.97, 0.0, 32.0, 3600), (0.98, 0.0, 40.0, 4500)]


def test_the_first_round_with_equal_preserved_accuracy_and_forgetting_is_the_endpoint():
    result = figures(_summary(CLIMB))
    # round 2 reaches 0.94 < 0.95; round 3 is the first at 0.95 with dep_acc 0.10 <= 0.20
    assert result["matched_round"] == 3
    assert result["wall_ratio_matched"] == pytest.approx(2.4)
    assert result["compute_ratio"] == pytest.approx(2.7)
    assert result["wall_ratio_full"] == pytest.approx(4.0)
    assert result["retrain_history"][0]["round"] == 1 and result["retrain_rounds"] == 5


def test_retraining_that_forgets_less_than_the_deposit_does_not_match_yet():
    history = [(0.96, 0.30, 5.0, 500), (0.96, 0.20, 10.0, 1000)]
    target = {"pre_acc": 0.95, "dep_acc": 0.20}
    assert matched_round(_summary(history)["retrain_history"], target)["round"] == 2


def test_a_match_at_round_one():
    result = figures(_summary([(0.96, 0.0, 35.0, 3100), (0.97, 0.0, 70.0, 6200)]))
    assert result["matched_round"] == 1
    assert result["wall_ratio_matched"] == pytest.approx(3.5)
    assert result["compute_ratio"] == pytest.approx(3.1)


def test_no_matching_round_fails_with_the_reason():
    result = figures(_summary(CLIMB, target=(0.99, 0.20)))
    assert result["matched_round"] is None and result["wall_ratio_matched"] is None
    assert "no retrain round of 5 reached" in result["reason"]
    assert "best pre_acc 0.98" in result["reason"]
    judged = verdict({0: figures(_summary(CLIMB, deposit_seconds=5.0)), 1: result})
    assert not judged["pass"] and "seed 1: no retrain round" in judged["reason"]
    assert judged["matched_rounds"] == {0: 3, 1: None}
    assert judged["bands"]["wall_ratio_matched"]["k_of_n"] == "1 of 2"


def test_the_verdict_is_the_median_over_seeds_with_k_of_n(monkeypatch):
    runs = {seed: _summary(CLIMB, deposit_seconds=seconds) for seed, seconds in
            ((0, 5.0), (1, 8.0), (2, 10.0))}  # matched wall ratios 4.8, 3.0, 2.4
    monkeypatch.setattr(lirf_speed, "simulate", lambda seed, *a, **k: runs[seed])
    result = lirf_speed.run()
    assert result["seeds"] == [0, 1, 2] and result["pass"] and result["reason"] is None
    assert result["wall_ratio_matched"] == pytest.approx(3.0)
    assert result["compute_ratio"] == pytest.approx(2.7)
    assert result["wall_ratio_full"] == pytest.approx(5.0)
    assert result["bands"]["wall_ratio_matched"]["k_of_n"] == "2 of 3"
    assert result["bands"]["compute_ratio"]["informational"]
    runs[1] = _summary(CLIMB, deposit_seconds=12.0)  # 2.0: the median drops below 3
    assert not lirf_speed.run()["pass"]


def test_a_summary_without_per_round_retrain_metrics_is_an_error_not_a_pass():
    old = {"target": {"pre_acc": 0.95, "dep_acc": 0.2}, "deposit_seconds": 5.0,
           "retrain_seconds": 20.0}
    assert "retrain_history" in figures(old)["error"]
    judged = verdict({0: figures(old)})
    assert not judged["pass"] and judged["failed_runs"] == [0]
