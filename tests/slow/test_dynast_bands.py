"""The DynaST claims, reproduced over seeds 0 and 1 with the full small-scale
scenario (`fedvault bench dynast`, ~25-50 min on 2 cores). Bands on the mean over seeds, not
exact numbers (methods/dynast/README.md).

"Recon L1 lower than coarse-only" passed on the mean at 15 rounds (0.1008 vs 0.1239) but
holds on 1 of 2 seeds (README, run 3): this test can flip with the decoder's start.
"""

from __future__ import annotations

import pytest

from simulations.bench.dynast import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("bench") / "dynast.json", seeds=[0, 1])


def test_every_run_finished(bench):
    assert bench["failed_runs"] == []


@pytest.mark.parametrize("name", ["cascade_beats_coarse_only", "cascade_near_dense",
                                  "sparse_attention_fraction", "dynamic_keys_per_query"])
def test_band_holds(bench, name):
    verdict = bench["bands"][name]
    assert verdict["pass"], f"{name}: {verdict['rule']} {verdict['per_seed']}"
