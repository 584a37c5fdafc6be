"""The Attention Diversification claims, over seeds 0-2 with the scenario's
small-scale protocol (design notes §2(c), not shipped): each seed is a real `fedvault simulate
attn-div` run. Bands, not exact numbers (methods/attn_div/README.md has the measured table).

None of the three bands holds at this budget (2026-11-27: I2 − ERM −0.010 on the mean,
ordering on 1 of 3 seeds, Intra's diversity below ERM's on every seed): each is a strict
xfail, still asserted, so the day one starts to pass the test says so.
"""

from __future__ import annotations

import pytest

from simulations.bench.attn_div import DEFAULT_SEEDS, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("bench") / "attn-div.json", seeds=list(DEFAULT_SEEDS))


def test_every_run_finished(bench):
    assert bench["failed_runs"] == []


KNOWN_FAIL = pytest.mark.xfail(strict=True, reason="does not reproduce at this budget: the photo "
                               "split orders as the paper, the distorted split reverses (README)")


@pytest.mark.parametrize("name", [pytest.param(n, marks=KNOWN_FAIL) for n in
                                  ("i2_minus_erm_mean", "ordering", "intra_diversity_gt_erm")])
def test_band_holds(bench, name):
    verdict = bench["bands"][name]
    assert verdict["pass"], f"{name}: {verdict['per_seed']}"
