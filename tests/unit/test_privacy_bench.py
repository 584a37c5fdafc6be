"""Claims about `fedvault bench dp-overhead` (simulations/bench/dp.py), on a small sample."""

from __future__ import annotations

import pytest

from simulations.bench import dp as bench_dp
from simulations.bench import BENCHES

pytestmark = pytest.mark.unit


def test_the_bench_is_registered():
    assert BENCHES["dp-overhead"] == "simulations.bench.dp:run"


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


def test_dp_audit_bench_fails_when_the_audit_cannot_see_missing_dp():
    from simulations.bench.dp_audit import _judge

    dp = {0: {"accuracy": 0.88, "epsilon": 2.99, "eps_hat_white-box": 0.6,
              "eps_hat_black-box": 0.0, "eps_hat_mia": 0.1}}
    blind = {0: {"accuracy": 0.95, "epsilon": None, "eps_hat_white-box": 0.0,
                 "eps_hat_black-box": 0.0, "eps_hat_mia": 0.0}}
    bands = _judge(dp, blind)
    assert bands["dp every eps_hat <= eps"]["pass"] and bands["dp accuracy >= 0.85"]["pass"]
    assert not bands["no-dp white-box eps_hat > 0"]["pass"]
    seeing = {0: {**blind[0], "eps_hat_white-box": 3.1}}
    assert _judge(dp, seeing)["no-dp white-box eps_hat > 0"]["pass"]
    over = {0: {**dp[0], "eps_hat_white-box": 3.5}}  # ε̂ above ε: the claim is refuted
    assert not _judge(over, seeing)["dp every eps_hat <= eps"]["pass"]
