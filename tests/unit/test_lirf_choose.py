"""Claims about `fedvault bench lirf-choose` (simulations/bench/lirf_choose.py): α is chosen
by validation H of T among the α whose recovered model keeps its preserved accuracy; one tiny in-process smoke run (1 seed, 1 class set, digits)."""

import pytest
import torch

from simulations.bench import BENCHES
from simulations.bench.lirf_choose import ALPHAS, choose_alpha, run

pytestmark = pytest.mark.unit
TINY = {"data.dataset": "digits", "num-clients": "3", "num-server-rounds": "1",
        "lirf.local-epochs": "1", "lirf.deposit-epochs": "1", "node-wait-timeout": "2"}


def test_the_choice_reads_the_mean_validation_h_and_breaks_ties_toward_the_smaller_alpha():
    assert choose_alpha({0.7: [0.80, 0.70], 0.8: [0.76, 0.76], 0.9: [0.90, 0.50]}) == 0.8
    assert choose_alpha({0.9: [0.8], 0.7: [0.8], 0.8: []}) == 0.7
    with pytest.raises(ValueError):
        choose_alpha({0.7: [], 0.8: []})


def test_an_alpha_whose_recovered_model_loses_its_preserved_accuracy_is_not_chosen():
    h = {0.5: [0.90], 0.7: [0.87], 0.8: [0.85]}
    # α = 0.5 has the best H, but its T̃ loses 10 points of preserved accuracy
    assert choose_alpha(h, {0.5: [0.10], 0.7: [0.02], 0.8: [0.01]}) == 0.7
    # none keeps it: the one that loses least
    assert choose_alpha(h, {0.5: [0.10], 0.7: [0.06], 0.8: [0.05]}) == 0.8


def test_a_one_seed_smoke_run_chooses_on_validation_and_reports_test_beside(tmp_path):
    from server.runner import Job, run_job
    from server.scenario import resolve
    from tests.inprocess_grid import InProcessGrid, partition_nodes

    seen = []

    def in_process(seed, classes, alpha, run_dir):
        torch.set_num_threads(1)
        spec = resolve("lirf", {**TINY, "seed": str(seed), "lirf.deposit-classes": classes,
                                "lirf.alpha": str(alpha), "data.validation-fraction": "0.1",
                                "lirf.retrain-baseline": "false"})
        seen.append(spec.method.alpha)
        return run_job(InProcessGrid(partition_nodes(3)), Job(spec=spec, run_dir=str(run_dir)))

    result = run(seeds=[0], class_sets=("0,1,2",), runner=in_process)
    assert seen == list(ALPHAS) and result["pass"] and result["failed_runs"] == 0
    by_alpha = {r["alpha"]: [r["validation"]["H"]] for r in result["runs"]}
    loss = {r["alpha"]: [r["validation"]["recovered_pre_loss"]] for r in result["runs"]}
    assert result["chosen_alpha"] == choose_alpha(by_alpha, loss)
    assert set(result["mean_test"]) == {str(a) for a in ALPHAS}  # reported beside
    assert BENCHES["lirf-choose"] == "simulations.bench.lirf_choose:run"
