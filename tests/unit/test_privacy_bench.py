"""Claims about `fedvault bench dp-overhead` (simulations/bench_dp.py), on a small sample."""

from __future__ import annotations

import pytest

from simulations import bench_dp
from simulations.bench import BENCHES

pytestmark = pytest.mark.unit


def test_the_bench_is_registered():
    assert BENCHES["dp-overhead"] == "simulations.bench_dp:run"


def test_ghost_clipping_is_what_makes_the_linear_heavy_net_affordable(monkeypatch):
    monkeypatch.setattr(bench_dp, "EXAMPLES", 256)
    monkeypatch.setattr(bench_dp, "MODES", ("hooks", "ghost"))
    result = bench_dp.run(seeds=[0])
    heavy = result["results"]["linear-heavy"]
    assert heavy["chosen"] == "ghost" and heavy["linear_fraction"] > 0.95
    # per-sample gradients of 1 M Linear weights vs per-sample norms only
    assert heavy["modes"]["hooks"]["cpu_seconds"] > 3 * heavy["modes"]["ghost"]["cpu_seconds"]
    assert set(result["checks"]) == {"small-cnn chosen mode", "linear-heavy ghost"}
    assert result["pass"] == all(result["checks"].values())
