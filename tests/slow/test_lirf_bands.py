"""The LIRF claim, reproduced over seeds 0-2 for two deposit class sets with the
full small-scale protocol (design notes §3.2, not shipped). Each (class set, seed) is a real
`fedvault simulate lirf` run (≈ 1-2 min each on 2 cores). Bands, not exact numbers."""

from __future__ import annotations

import pytest

from simulations.bench.lirf import CLASS_SETS, run

pytestmark = pytest.mark.slow

SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("bench") / "lirf.json", seeds=SEEDS)


def test_every_run_finished(bench):
    assert bench["failed_runs"] == []


@pytest.mark.parametrize("classes", CLASS_SETS)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("band", ["target_dep_acc", "target_pre_drop", "target_H",
                                  "recovered_dep_diff", "recovered_pre_diff",
                                  "retrain_over_deposit_seconds", "deposit_module_on_server"])
def test_band_holds(bench, classes, seed, band):
    verdict = bench["runs"][classes][seed]["bands"][band]
    assert verdict["pass"], f"{band} = {verdict['value']} (classes {classes}, seed {seed})"
