"""Issue 8's claims for DynaST, reproduced over seeds 0 and 1 with the full small-scale
scenario (`fedvault bench dynast`, ~11 min). Bands, not exact numbers (methods/dynast/README.md).

"Recon L1 lower than coarse-only" does not hold at this budget (measured 0.1257 vs 0.1243:
the decoder has not started to learn in 60 local steps per node). It is a strict xfail: the
band stays asserted and the test reports the day it starts to pass.
"""

from __future__ import annotations

import pytest

from simulations.bench_dynast import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("bench") / "dynast.json", seeds=[0, 1])


def test_every_run_finished(bench):
    assert bench["failed_runs"] == []


KNOWN_FAIL = pytest.mark.xfail(strict=True, reason="recon L1 does not separate at this scale "
                               "(README: run 1, 0.1257 vs 0.1243)")


@pytest.mark.parametrize("name", [pytest.param("cascade_beats_coarse_only", marks=KNOWN_FAIL),
                                  "cascade_near_dense",
                                  "sparse_attention_fraction", "dynamic_keys_per_query"])
def test_band_holds(bench, name):
    verdict = bench["bands"][name]
    assert verdict["pass"], f"{name}: {verdict['rule']} {verdict['per_seed']}"
