"""Issue 7's claims for bottom-up pose with dual centers, over seeds 0 and 1 with the
`pose` scenario (notes/methods.md §3): each seed is a real `fedvault simulate pose` run
(three federated stages). Bands on the mean over seeds, not exact numbers.

None of the three bands holds at this budget (methods/pose/README.md, 2026-11-27: dual
−0.060 / −0.025, multi-scale recall −0.258 / −0.219, multi-scale vs 3-scale test −0.245 /
−0.224 below the band): each is a strict xfail, still asserted, so the day one starts to
pass the test says so.
"""

from __future__ import annotations

import pytest

from simulations.bench_pose import RULES, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("bench") / "pose.json", seeds=[0, 1])


def test_every_run_finished(bench):
    assert bench["failed_runs"] == []


KNOWN_FAIL = pytest.mark.xfail(strict=True, reason="does not reproduce at this budget: small "
                               "persons' predicted height is 1.5-2.4x too large (README)")


@pytest.mark.parametrize("band", [pytest.param(name, marks=KNOWN_FAIL) for name in sorted(RULES)])
def test_band_holds(bench, band):
    verdict = bench["bands"][band]
    assert verdict["pass"], f"{band}: {verdict['rule']} per seed {verdict['per_seed']}"
