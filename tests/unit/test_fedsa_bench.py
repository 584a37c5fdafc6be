"""Claims about `fedvault bench fedsa` (bands, validation and test per variant) and
`fedvault bench fedsa-choose` (adapt-backbone-lr chosen on validation only)."""

import copy

import pytest

from simulations.bench import BENCHES
from simulations.bench.fedsa import evaluate, markdown
from simulations.bench.fedsa_choose import choose, run as choose_and_run

pytestmark = pytest.mark.unit

SEEDS = [0, 1, 2]


def _summary(accuracy, scratch=0.40, precision=1.0, gap=0.03, share=1.0, val=None,
             val_scratch=None):
    return {"accuracy": accuracy, "accuracy_scratch": scratch, "selection_precision": precision,
            "similarity_gap": gap, "relevant_share": share,
            "val_accuracy": accuracy - 0.02 if val is None else val,
            "val_accuracy_scratch": scratch - 0.01 if val_scratch is None else val_scratch}


def _runs():
    return {
        "topk": {s: _summary(0.50 + 0.01 * s, scratch=0.40 + 0.01 * s) for s in SEEDS},
        "sampled": {s: _summary(0.47 + 0.01 * s, scratch=0.40 + 0.01 * s, share=0.5)
                    for s in SEEDS},
        "random": {s: _summary(0.48, scratch=0.40 + 0.01 * s, share=0.5) for s in SEEDS},
    }


def test_the_benches_are_registered():
    assert BENCHES["fedsa"] == "simulations.bench.fedsa:run"
    assert BENCHES["fedsa-choose"] == "simulations.bench.fedsa_choose:run"


def test_good_runs_pass_every_band_and_report_validation_beside_test():
    result = evaluate(_runs(), SEEDS)
    assert result["pass"] and all(b["pass"] for b in result["bands"].values())
    assert result["bands"]["G2"]["k_of_n"] == "3 of 3"
    assert result["table"]["scratch"]["per_seed"] == pytest.approx({0: 0.40, 1: 0.41, 2: 0.42})
    assert result["table"]["scratch"]["val"]["per_seed"] == pytest.approx({0: 0.39, 1: 0.40,
                                                                            2: 0.41})
    assert result["table"]["topk"]["mean"] == pytest.approx(0.51)
    assert result["table"]["topk"]["val_gain"][1] == pytest.approx(0.51 - 0.02 - 0.40)
    assert result["bands"]["G2"]["per_seed"][1] == pytest.approx(0.10)
    table = markdown(result["table"], SEEDS)
    row = ("| topk | 49.0 ± 1.0 | 48.0 / 49.0 / 50.0 | 51.0 ± 1.0 | 50.0 / 51.0 / 52.0 "
           "| +10.0 / +10.0 / +10.0 | 1.00 / 1.00 / 1.00 |")
    assert row in table
    scratch = ("| scratch | 40.0 ± 1.0 | 39.0 / 40.0 / 41.0 | 41.0 ± 1.0 | 40.0 / 41.0 / 42.0 "
               "| – | – |")
    assert scratch in table


def test_selection_against_random_is_counted_per_seed_on_both_splits():
    # random: 0.48 in every seed; topk 0.50 / 0.51 / 0.52 → topk wins on test in 3 of 3
    # seeds; on validation (0.48 / 0.49 / 0.50 vs 0.46) also 3 of 3.
    runs = _runs()
    runs["random"][2] = _summary(0.60, scratch=0.42, share=0.5)  # random wins seed 2
    versus = evaluate(runs, SEEDS)["selection_vs_baselines"]["topk - random"]
    assert versus["test"]["k_of_n"] == "2 of 3" and versus["val"]["k_of_n"] == "2 of 3"
    assert versus["test"]["per_seed"][2] == pytest.approx(0.52 - 0.60)


@pytest.mark.parametrize("change, band, count", [
    (lambda r: r["topk"][1].update(selection_precision=0.5), "G1", "2 of 3"),
    (lambda r: r["topk"][2].update(similarity_gap=-0.001), "G1", "2 of 3"),
    (lambda r: r["topk"][0].update(accuracy=0.44), "G2", "2 of 3"),  # +0.04 < +0.05 in one seed
    (lambda r: r["topk"].pop(2), "G2", "2 of 3"),  # a missing seed cannot pass
])
def test_one_bad_seed_fails_its_band(change, band, count):
    runs = copy.deepcopy(_runs())
    change(runs)
    result = evaluate(runs, SEEDS)
    assert not result["bands"][band]["pass"] and not result["pass"]
    assert result["bands"][band]["k_of_n"] == count


def test_a_mean_gain_below_five_points_fails_g2_mean():
    runs = {v: {s: dict(r, accuracy=r["accuracy_scratch"] + 0.04) for s, r in by_seed.items()}
            for v, by_seed in _runs().items()}
    verdict = evaluate(runs, SEEDS)["bands"]["G2-mean"]
    assert not verdict["pass"] and verdict["k_of_n"] == "0 of 3"


def test_a_failed_run_or_disagreeing_scratch_fails_the_bench():
    runs = copy.deepcopy(_runs())
    runs["random"][0] = {"error": "exit 1"}
    assert evaluate(runs, SEEDS)["failed_runs"] == ["random/seed 0"]
    assert not evaluate(runs, SEEDS)["pass"]
    runs = copy.deepcopy(_runs())
    runs["random"][1]["accuracy_scratch"] = 0.3
    assert not evaluate(runs, SEEDS)["scratch_consistent"] and not evaluate(runs, SEEDS)["pass"]


def _gains(*gains):
    return {s: _summary(0.5, val=0.4 + g, val_scratch=0.4) for s, g in enumerate(gains)}


def test_the_choice_is_the_largest_median_validation_gain():
    # The mean would pick 1.0 (one lucky seed); the median picks 0.1.
    chosen = choose({0.0: _gains(0.01, 0.02, 0.00), 0.1: _gains(0.04, 0.05, 0.03),
                     1.0: _gains(0.30, 0.01, 0.00)})
    assert chosen["chosen"] == 0.1 and chosen["median_val_gain"][0.1] == pytest.approx(0.04)
    assert choose({0.0: _gains(0.02), 1.0: _gains(0.02)})["chosen"] == 0.0  # tie: first listed
    failed = {0.0: {0: {"error": "exit 1"}}, 1.0: _gains(-0.01)}
    assert choose(failed)["chosen"] == 1.0


def test_choose_then_run_reads_validation_only_and_reuses_the_chosen_topk_runs(tmp_path):
    """A 1-seed smoke of the whole bench with a stand-in for `fedvault simulate`: the test
    figures of the trials are poison, so a choice made on them would pick another value."""
    calls = []

    def fake_simulate(seed, sets, run_dir):
        calls.append(sets)
        lr = float(next(s for s in sets if s.startswith("fedsa.adapt-backbone-lr=")).split("=")[1])
        val = {0.0: 0.45, 0.1: 0.50, 1.0: 0.44}[lr]
        test = {0.0: 0.90, 0.1: 0.40, 1.0: 0.90}[lr]
        return _summary(test, scratch=0.35, val=val, val_scratch=0.38)

    result = choose_and_run(out=tmp_path / "choose.json", seeds=[0], simulate_run=fake_simulate)
    assert result["choice"]["chosen"] == 0.1
    topk_runs = [sets for sets in calls if "fedsa.selection=topk" in sets]
    assert len(topk_runs) == 3  # one per candidate; the chosen one is reused, not rerun
    assert len(calls) == 3 + 4 and all("fedsa.adapt-backbone-lr=0.1" in sets for sets in calls[3:])
    assert set(result["table"]) == {"scratch", "sampled", "topk", "random", "all", "oracle"}
    assert result["bands"]["G2"]["k_of_n"] == "1 of 1" and result["failed_trials"] == []
    assert "| topk | 50.0 ± 0.0 | 50.0 | 40.0 ± 0.0 | 40.0 | +5.0 |" in result["markdown"]
