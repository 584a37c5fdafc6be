"""The claims for the GNN style transfer, reproduced over seeds 0 and 1 with the full
small-scale scenario (`fedvault bench style-gnn`; ≈ 6 min per seed on the loaded
2-core box). Bands, not exact numbers."""

from __future__ import annotations

import pytest

from simulations.bench.style_gnn import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("bench") / "style-gnn.json", seeds=[0, 1])


def test_every_run_finished(bench):
    assert bench["failed_runs"] == []


@pytest.mark.parametrize("name", ["gnn_closer_to_style", "k_changes_output"])
def test_band_holds(bench, name):
    verdict = bench["bands"][name]
    assert verdict["pass"], f"{name}: {verdict['rule']} {verdict['per_seed']}"
