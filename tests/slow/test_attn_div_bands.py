"""Issue 7's claims for Attention Diversification, over seeds 0-2 with the scenario's
small-scale protocol (notes/methods.md §2(c)): each seed is a real `fedvault simulate
attn-div` run. Bands, not exact numbers (methods/attn_div/README.md has the measured table)."""

from __future__ import annotations

import pytest

from simulations.bench_attn_div import DEFAULT_SEEDS, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("bench") / "attn-div.json", seeds=list(DEFAULT_SEEDS))


def test_every_run_finished(bench):
    assert bench["failed_runs"] == []


@pytest.mark.parametrize("name", ["i2_minus_erm_mean", "ordering", "intra_diversity_gt_erm"])
def test_band_holds(bench, name):
    verdict = bench["bands"][name]
    assert verdict["pass"], f"{name}: {verdict['per_seed']}"
