"""Issue 7's claims for bottom-up pose with dual centers, over seeds 0 and 1 with the
`pose` scenario (notes/methods.md §3): each seed is a real `fedvault simulate pose` run
(three federated stages). Bands on the mean over seeds, not exact numbers."""

from __future__ import annotations

import pytest

from simulations.bench_pose import RULES, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("bench") / "pose.json", seeds=[0, 1])


def test_every_run_finished(bench):
    assert bench["failed_runs"] == []


@pytest.mark.parametrize("band", sorted(RULES))
def test_band_holds(bench, band):
    verdict = bench["bands"][band]
    assert verdict["pass"], f"{band}: {verdict['rule']} per seed {verdict['per_seed']}"
