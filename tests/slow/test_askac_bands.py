"""The Ask-AC claim, reproduced over seeds 0-1 with the scenario's full size
(`fedvault bench ask-ac`: one `fedvault simulate ask-ac` run per seed, ≈ 4-6 min each on
a loaded 2-core box). Bands, not exact numbers."""

from __future__ import annotations

import pytest

from simulations.bench.askac import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("bench") / "ask-ac.json", seeds=[0, 1])


def test_every_run_finished(bench):
    assert bench["failed_runs"] == []


@pytest.mark.parametrize("name", ["later-levels", "queries", "greedy-vs-vanilla"])
def test_band_holds(bench, name):
    verdict = bench["bands"][name]
    assert verdict["pass"], f"{name}: {verdict['rule']} per seed {verdict['per_seed']}"
