"""Claims about the bands of `fedvault bench fedsa` (simulations/bench/fedsa.py)."""

import copy

import pytest

from simulations.bench import BENCHES
from simulations.bench.fedsa import evaluate, markdown

pytestmark = pytest.mark.unit

SEEDS = [0, 1, 2]


def _summary(accuracy, scratch=0.40, precision=1.0, gap=0.03, share=1.0):
    return {"accuracy": accuracy, "accuracy_scratch": scratch, "selection_precision": precision,
            "similarity_gap": gap, "relevant_share": share}


def _runs():
    return {
        "topk": {s: _summary(0.50 + 0.01 * s, scratch=0.40 + 0.01 * s) for s in SEEDS},
        "sampled": {s: _summary(0.47 + 0.01 * s, scratch=0.40 + 0.01 * s, share=0.5)
                    for s in SEEDS},
        "random": {s: _summary(0.48, scratch=0.40 + 0.01 * s, share=0.5) for s in SEEDS},
    }


def test_the_bench_is_registered():
    assert BENCHES["fedsa"] == "simulations.bench.fedsa:run"


def test_good_runs_pass_every_band():
    result = evaluate(_runs(), SEEDS)
    assert result["pass"] and all(b["pass"] for b in result["bands"].values())
    assert result["table"]["scratch"]["per_seed"] == pytest.approx({0: 0.40, 1: 0.41, 2: 0.42})
    assert result["table"]["topk"]["mean"] == pytest.approx(0.51)
    assert result["bands"]["G2"]["per_seed"][1] == pytest.approx(0.10)
    table = markdown(result["table"], SEEDS)
    row = "| topk | 51.0 ± 1.0 | 50.0 / 51.0 / 52.0 | +10.0 / +10.0 / +10.0 | 1.00 / 1.00 / 1.00 |"
    assert row in table
    assert "| scratch | 41.0 ± 1.0 | 40.0 / 41.0 / 42.0 | – | – |" in table


@pytest.mark.parametrize("change, band", [
    (lambda r: r["topk"][1].update(selection_precision=0.5), "G1"),
    (lambda r: r["topk"][2].update(similarity_gap=-0.001), "G1"),
    (lambda r: r["topk"][0].update(accuracy=0.44), "G2"),  # +0.04 < +0.05 in one seed
    (lambda r: r["topk"].pop(2), "G2"),  # a missing seed cannot pass
])
def test_one_bad_seed_fails_its_band(change, band):
    runs = copy.deepcopy(_runs())
    change(runs)
    result = evaluate(runs, SEEDS)
    assert not result["bands"][band]["pass"] and not result["pass"]


def test_a_mean_gain_below_five_points_fails_g2_mean():
    runs = {v: {s: dict(r, accuracy=r["accuracy_scratch"] + 0.04) for s, r in by_seed.items()}
            for v, by_seed in _runs().items()}
    assert not evaluate(runs, SEEDS)["bands"]["G2-mean"]["pass"]


def test_a_failed_run_or_disagreeing_scratch_fails_the_bench():
    runs = copy.deepcopy(_runs())
    runs["random"][0] = {"error": "exit 1"}
    assert evaluate(runs, SEEDS)["failed_runs"] == ["random/seed 0"]
    assert not evaluate(runs, SEEDS)["pass"]
    runs = copy.deepcopy(_runs())
    runs["random"][1]["accuracy_scratch"] = 0.3
    assert not evaluate(runs, SEEDS)["scratch_consistent"] and not evaluate(runs, SEEDS)["pass"]
