"""The HSCL claims, reproduced over seeds 0 and 1 with the full small-scale
scenario (`fedvault bench hscl`; ≈ 4-8 min per seed on the loaded 2-core box). Bands, not
exact numbers.

HSCL ≥ supervised + 0.01 does not hold at this scale (measured mean gap −0.116: on MNIST
two labeled anomalies of each other digit already train a 0.93-0.97 AUROC classifier; see
methods/hscl/README.md). It is kept as a strict xfail: the band stays asserted, and the
test reports it the day it starts to pass.
"""

from __future__ import annotations

import pytest

from simulations.bench.hscl import run

pytestmark = pytest.mark.slow

KNOWN_FAIL = pytest.mark.xfail(strict=True, reason="supervised BCE wins on MNIST-5k at this "
                               "scale (README: measured gap −0.116)")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("bench") / "hscl.json", seeds=[0, 1])


def test_every_run_finished(bench):
    assert bench["failed_runs"] == []


@pytest.mark.parametrize("name", ["hscl_beats_contrastive",
                                  pytest.param("hscl_beats_supervised", marks=KNOWN_FAIL),
                                  "smaller_contamination_drop"])
def test_band_holds(bench, name):
    verdict = bench["bands"][name]
    assert verdict["pass"], f"{name}: {verdict['rule']} {verdict['per_seed']}"
