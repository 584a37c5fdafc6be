"""The shared verdict of the claim benchmarks (simulations/bench/runs.py scenario_bench)."""

from __future__ import annotations

from simulations.bench import runs as bench_runs
from simulations.bench.runs import band, scenario_bench


def _bench(monkeypatch, tmp_path, bands):
    monkeypatch.setattr(bench_runs, "simulate_scenario", lambda *a, **k: {"figure": 1.0})
    return scenario_bench("demo", [0, 1], lambda summaries: bands, out=tmp_path / "demo.json")


def test_an_informational_band_is_reported_but_does_not_decide_the_verdict(monkeypatch, tmp_path):
    result = _bench(monkeypatch, tmp_path, {
        "claim": band("the issue's band", {0: 1.0, 1: 1.0}, True),
        "note_only": band("a note's figure", {0: 0.0, 1: 0.0}, False, informational=True)})
    assert result["pass"]
    assert result["bands"]["note_only"] == {"rule": "a note's figure", "per_seed": {0: 0.0, 1: 0.0},
                                            "pass": False, "informational": True}


def test_a_failed_band_fails_the_bench_whatever_the_informational_ones_say(monkeypatch, tmp_path):
    result = _bench(monkeypatch, tmp_path, {
        "claim": band("the issue's band", {0: 0.0, 1: 0.0}, False),
        "note_only": band("a note's figure", {0: 1.0, 1: 1.0}, True, informational=True)})
    assert not result["pass"]
    assert "informational" not in result["bands"]["claim"]
