"""The claims for bottom-up pose with dual centers, over seeds 0 and 1 with the
`pose` scenario (design notes §3, not shipped): each seed is a real `fedvault simulate pose` run
(three federated stages). Bands on the mean over seeds, not exact numbers.

With the default 10 rounds per stage (methods/pose/README.md, 2026-11-27) dual centers
beat body-only by more than the band on both seeds (+0.058 / +0.045 AP50_s); the two
multi-scale training bands do not hold (recall −0.133 / −0.078 against +0.03 required;
AP50_s 0.15 / 0.19 below the 3-scale test): those two are strict xfails, still asserted,
so the day one starts to pass the test says so.
"""

from __future__ import annotations

import pytest

from simulations.bench.pose import RULES, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("bench") / "pose.json", seeds=[0, 1])


def test_every_run_finished(bench):
    assert bench["failed_runs"] == []


KNOWN_FAIL = pytest.mark.xfail(strict=True, reason="does not reproduce at this budget: the "
                               "single-scale model finds as many small persons (README)")
REPRODUCED = {"dual_beats_body"}


@pytest.mark.parametrize("band", [pytest.param(name, marks=() if name in REPRODUCED else KNOWN_FAIL)
                                  for name in sorted(RULES)])
def test_band_holds(bench, band):
    verdict = bench["bands"][band]
    assert verdict["pass"], f"{band}: {verdict['rule']} per seed {verdict['per_seed']}"
