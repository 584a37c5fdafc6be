"""Claims about `fedvault bench lirf-choose` (simulations/bench/lirf_choose.py): a setting
(α by default) is chosen by validation H of T among the values whose recovered model keeps
its preserved accuracy; --grid and --sets are checked before anything runs; one tiny
in-process smoke run (1 seed, 1 class set, digits)."""

import pytest
import torch

from simulations.bench import BENCHES
from methods.config import ConfigError
from simulations.bench import parse_options
from simulations.bench.lirf_choose import ALPHAS, VALIDATION_BANDS, choose_value, parse_grid, run

pytestmark = pytest.mark.unit
TINY = {"data.dataset": "digits", "num-clients": "3", "num-server-rounds": "1",
        "lirf.local-epochs": "1", "lirf.deposit-epochs": "1", "node-wait-timeout": "2"}


def test_the_choice_reads_the_mean_validation_h_and_breaks_ties_toward_the_earlier_value():
    assert choose_value({0.7: [0.80, 0.70], 0.8: [0.76, 0.76], 0.9: [0.90, 0.50]}) == 0.8
    assert choose_value({0.7: [0.8], 0.9: [0.8], 0.8: []}) == 0.7
    assert choose_value({0.9: [0.8], 0.7: [0.8]}) == 0.9  # the grid's order, not the size
    with pytest.raises(ValueError):
        choose_value({0.7: [], 0.8: []})


def test_an_alpha_whose_recovered_model_loses_its_preserved_accuracy_is_not_chosen():
    h = {0.5: [0.90], 0.7: [0.87], 0.8: [0.85]}
    # α = 0.5 has the best H, but its T̃ loses 10 points of preserved accuracy
    assert choose_value(h, {0.5: [0.10], 0.7: [0.02], 0.8: [0.01]}) == 0.7
    # none keeps it: the one that loses least
    assert choose_value(h, {0.5: [0.10], 0.7: [0.06], 0.8: [0.05]}) == 0.8


def test_a_one_seed_smoke_run_chooses_on_validation_and_reports_test_beside(tmp_path):
    from server.runner import Job, run_job
    from server.scenario import resolve
    from tests.inprocess_grid import InProcessGrid, partition_nodes

    seen = []

    def in_process(seed, classes, setting, run_dir):
        torch.set_num_threads(1)
        key, value = setting[0].split("=")
        spec = resolve("lirf", {**TINY, "seed": str(seed), "lirf.deposit-classes": classes,
                                key: value, "data.validation-fraction": "0.1",
                                "lirf.retrain-baseline": "false"})
        seen.append(spec.method.alpha)
        return run_job(InProcessGrid(partition_nodes(3)), Job(spec=spec, run_dir=str(run_dir)))

    result = run(seeds=[0], class_sets=("0,1,2",), runner=in_process)
    assert seen == list(ALPHAS) and result["pass"] and result["failed_runs"] == 0
    by_alpha = {r["value"]: [r["validation"]["H"]] for r in result["runs"]}
    loss = {r["value"]: [r["validation"]["recovered_pre_loss"]] for r in result["runs"]}
    assert result["key"] == "alpha" and result["chosen"] == choose_value(by_alpha, loss)
    for r in result["runs"]:  # the bands judged on validation agree with its figures
        assert r["validation_bands"]["target_H"] == (r["validation"]["H"] >= 0.78 - 1e-9)
        assert r["validation_bands"]["recovered_pre_diff"] == (
            abs(r["validation"]["recovered_pre_loss"]) <= 0.03 + 1e-9)
    counts = result["validation_bands"]["0.8"]
    assert set(counts) == set(VALIDATION_BANDS) and counts["target_H"]["runs"] == 1
    assert set(result["mean_test"]) == {str(a) for a in ALPHAS}  # reported beside
    assert BENCHES["lirf-choose"] == "simulations.bench.lirf_choose:run"


def test_the_grid_names_a_lirf_setting_and_valid_distinct_values():
    assert parse_grid("deposit-lr=0.003,0.006") == ("deposit-lr", (0.003, 0.006))
    assert parse_grid("lirf.deposit-epochs=10,20") == ("deposit-epochs", (10, 20))
    for bad, words in (("lr=0.1,0.2", "KEY one of"), ("alpha=0.5", "two or more"),
                       ("alpha=0.5,0.5", "two or more"), ("alpha=0.5,x", "alpha=x"),
                       ("alpha=0.5,1.5", "alpha=1.5: .*alpha in"),
                       ("deposit-lr=inf,0.1", "deposit-lr=inf"),
                       ("temperature=nan,nan", "temperature=nan"),
                       ("deposit-epochs=10,0", "deposit-epochs=0"),
                       ("deposit-epochs=10,1e2", "deposit-epochs=1e2")):
        with pytest.raises(ConfigError, match=words):
            parse_grid(bad)
    assert parse_options("lirf-choose", {"grid": "alpha=0.7,0.8", "sets": "2"}) == {
        "grid": ("alpha", (0.7, 0.8)), "sets": 2}
    with pytest.raises(ConfigError, match="lirf-choose only"):
        parse_options("lirf", {"grid": "alpha=0.7,0.8"})
    # three fixed sets here, two in bench lirf: one fewer set can be drawn (163 hung before)
    assert parse_options("lirf-choose", {"sets": "162"}) == {"sets": 162}
    with pytest.raises(ConfigError, match="between 0 and 162"):
        parse_options("lirf-choose", {"sets": "163"})
    assert parse_options("lirf", {"sets": "163"}) == {"sets": 163}


def test_drawn_sets_join_the_fixed_ones_and_each_run_sets_the_grid_key(tmp_path):
    calls = []

    def fake(seed, classes, setting, run_dir):
        calls.append((seed, classes, tuple(setting)))
        return {"error": "not run"}

    result = run(seeds=[1], grid=("deposit-lr", (0.003, 0.006)), sets=2, runner=fake)
    assert result["sets"] == {"1": ["0,1,2", "4,5", "3,6,8", "1,9", "1,7,8"]}
    assert len(calls) == 10 and calls[0][2] == ("lirf.deposit-lr=0.003",)
    assert not result["pass"] and result["chosen"] is None and result["failed_runs"] == 10
    assert result["validation_bands"]["0.006"]["target_dep_acc"]["k_of_n"] == "0 of 5"
