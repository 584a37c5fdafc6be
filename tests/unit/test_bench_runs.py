"""The shared verdict of the claim benchmarks (simulations/bench/runs.py scenario_bench)."""

from __future__ import annotations

import pytest

from simulations.bench import runs as bench_runs
from simulations.bench.runs import band, scenario_bench

pytestmark = pytest.mark.unit


def _bench(monkeypatch, tmp_path, bands, summaries=None):
    summaries = summaries or {0: {"figure": 1.0}, 1: {"figure": 1.0}}
    monkeypatch.setattr(bench_runs, "simulate_scenario", lambda _s, seed, *a, **k: summaries[seed])
    return scenario_bench("demo", sorted(summaries), lambda ok: bands, out=tmp_path / "demo.json")


def test_an_informational_band_is_reported_but_does_not_decide_the_verdict(monkeypatch, tmp_path):
    result = _bench(monkeypatch, tmp_path, {
        "claim": band("the issue's band", {0: 1.0, 1: 1.0}, seed_ok=lambda v: v > 0),
        "note_only": band("a note's figure", {0: 0.0, 1: 0.0}, seed_ok=lambda v: v > 0,
                          informational=True)})
    assert result["pass"]
    assert result["bands"]["note_only"] == {
        "rule": "a note's figure", "per_seed": {0: 0.0, 1: 0.0}, "mean": 0.0,
        "seed_pass": {0: False, 1: False}, "k_of_n": "0 of 2", "passed_seeds": 0, "seeds": 2,
        "pass": False, "informational": True}


def test_a_failed_band_fails_the_bench_whatever_the_informational_ones_say(monkeypatch, tmp_path):
    result = _bench(monkeypatch, tmp_path, {
        "claim": band("the issue's band", {0: 0.0, 1: 1.0}, seed_ok=lambda v: v > 0),
        "note_only": band("a note's figure", {0: 1.0, 1: 1.0}, seed_ok=lambda v: v > 0,
                          informational=True)})
    assert not result["pass"]
    assert result["bands"]["claim"]["k_of_n"] == "1 of 2"
    assert "informational" not in result["bands"]["claim"]


def test_a_band_on_the_mean_keeps_its_verdict_and_still_counts_seeds():
    verdict = band("mean gain >= 0.01", {0: 0.05, 1: -0.01, 2: 0.0}, passed=True,
                   seed_ok=lambda gain: gain >= 0.01)
    assert verdict["pass"] and verdict["k_of_n"] == "1 of 3"
    assert verdict["mean"] == pytest.approx(0.04 / 3)
    nested = band("r", {0: {"a": 1.0, "b": [1.0, 3.0]}, 1: {"a": 3.0, "b": [3.0, 5.0]}},
                  seed_ok=lambda v: True)
    assert nested["mean"] == {"a": 2.0, "b": [2.0, 4.0]}
    assert band("r", {0: None, 1: 4}, seed_ok=lambda v: v is not None)["mean"] is None


def test_a_seed_whose_run_failed_counts_as_not_passed(monkeypatch, tmp_path, capsys):
    summaries = {0: {"figure": 1.0}, 1: {"error": "exit 1"}, 2: {"figure": 2.0}}
    result = _bench(monkeypatch, tmp_path, {
        "claim": band("figure > 0", {0: 1.0, 2: 2.0}, seed_ok=lambda v: v > 0)}, summaries)
    claim = result["bands"]["claim"]
    assert (claim["k_of_n"], claim["passed_seeds"], claim["seeds"]) == ("2 of 3", 2, 3)
    assert claim["seed_pass"] == {0: True, 1: False, 2: True}
    assert result["failed_runs"] == [1] and not result["pass"]
    assert "claim: PASS  2 of 3 seeds  mean 1.5  figure > 0" in capsys.readouterr().err
