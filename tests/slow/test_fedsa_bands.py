"""The FedSA claim, reproduced over seeds 0-2 with the full small-scale protocol.

Each seed is a real `fedvault simulate fedsa --set fedsa.selection=topk` run
(≈ 2-4 min each on 2 cores). Bands, not exact numbers (methods/fedsa/README.md: G1, G2).
"""

from __future__ import annotations

import pytest

from simulations.bench.fedsa import GAIN_MIN, PRECISION_MIN, run

pytestmark = pytest.mark.slow

SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def topk(tmp_path_factory):
    return run(out=tmp_path_factory.mktemp("bench") / "fedsa.json", seeds=SEEDS, variants=("topk",))


def test_every_topk_run_finished(topk):
    assert topk["failed_runs"] == []


@pytest.mark.parametrize("seed", SEEDS)
def test_saliency_ranks_the_relevant_teachers_first(topk, seed):
    summary = topk["runs"]["topk"][seed]
    assert summary["selection_precision"] >= PRECISION_MIN
    assert summary["similarity_gap"] > 0  # left-digit teachers look where the student looks


@pytest.mark.parametrize("seed", SEEDS)
def test_amalgamation_beats_the_probe_only_student(topk, seed):
    summary = topk["runs"]["topk"][seed]
    assert summary["accuracy"] >= summary["accuracy_scratch"] + GAIN_MIN
