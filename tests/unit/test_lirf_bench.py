"""The LIRF bench's band checks (simulations/bench/lirf.py) on hand-made summaries, its
class sets drawn at random per seed, and its per-set "k of n seeds"."""

import pytest
from typer.testing import CliRunner

from simulations.bench import lirf as bench_lirf
from simulations.bench.lirf import CLASS_SETS, bands, drawn_sets, row

pytestmark = pytest.mark.unit


def _summary(**over):
    summary = {
        "original": {"pre_acc": 0.96, "dep_acc": 0.93, "avg_acc": 0.95},
        "target": {"pre_acc": 0.955, "dep_acc": 0.20, "F": 0.73, "H": 0.83},
        "recovered": {"pre_acc": 0.94, "dep_acc": 0.94, "avg_acc": 0.95},
        "retrain": {"pre_acc": 0.97, "dep_acc": 0.0},
        "mia_auc": {"original": 0.53, "target": 0.52, "retrain": 0.52},
        "deposit_seconds": 3.0, "retrain_seconds": 18.0, "phase0_seconds": 25.0,
        "deposit_module_on_server": False,
    }
    for key, value in over.items():
        model, _, field = key.partition("__")
        if field:
            summary[model] = {**summary[model], field: value}
        else:
            summary[key] = value
    return summary


def test_a_run_inside_every_band_passes_all_of_them():
    assert all(b["pass"] for b in bands(_summary()).values())
    assert row(_summary())["target.H"] == 0.83


@pytest.mark.parametrize("over, band", [
    ({"target__dep_acc": 0.31}, "target_dep_acc"),
    ({"target__pre_acc": 0.93}, "target_pre_drop"),
    ({"target__H": 0.77}, "target_H"),
    ({"recovered__dep_acc": 0.90}, "recovered_dep_diff"),
    ({"recovered__pre_acc": 0.92}, "recovered_pre_diff"),
    ({"retrain_seconds": 8.9}, "retrain_over_deposit_seconds"),
    ({"deposit_module_on_server": True}, "deposit_module_on_server"),
])
def test_each_band_fails_on_its_own_violation(over, band):
    verdicts = bands(_summary(**over))
    assert not verdicts[band]["pass"]
    assert all(v["pass"] for name, v in verdicts.items() if name != band)


def test_recovered_must_stay_within_the_band_both_ways_as_the_issue_says():
    verdicts = bands(_summary(recovered__dep_acc=0.945, recovered__pre_acc=0.985))
    assert verdicts["recovered_dep_diff"]["pass"] and verdicts["recovered_pre_diff"]["pass"]
    verdicts = bands(_summary(recovered__dep_acc=0.99))  # T̃ beats T_0 by 0.06 on D_r's classes
    assert not verdicts["recovered_dep_diff"]["pass"]
    assert verdicts["recovered_dep_diff"]["value"] == pytest.approx(0.06)


def test_a_difference_of_exactly_the_band_counts_as_within():
    # 196/200 vs 192/200: four test images, exactly 0.02, not 0.020000000000000018
    verdicts = bands(_summary(original__dep_acc=192 / 200, recovered__dep_acc=196 / 200))
    assert verdicts["recovered_dep_diff"]["pass"]
    assert not bands(_summary(original__dep_acc=192 / 200,
                              recovered__dep_acc=197 / 200))["recovered_dep_diff"]["pass"]


def test_each_seed_draws_its_own_reproducible_sets_of_two_or_three_classes():
    # the sets the docstring (and docs/results.md) name: a change of generator shows here
    assert drawn_sets(0) == ["0,4,6", "4,6,7", "2,3,9"]
    assert drawn_sets(1) == ["1,9", "1,7,8", "1,3,6"]
    many = drawn_sets(5, count=40)
    assert len(set(many)) == 40 and not set(many) & set(CLASS_SETS)
    assert {len(s.split(",")) for s in many} == {2, 3}


def test_the_bench_runs_fixed_and_drawn_sets_and_counts_seeds_per_set(monkeypatch):
    seen = []

    def fake_simulate(seed, classes, run_dir, extra=()):
        seen.append((seed, classes))
        if (seed, classes) == (1, "4,5"):
            return {"error": "exit 1"}
        return _summary(target__dep_acc=0.35 if (seed, classes) == (2, "0,1,2") else 0.20)

    monkeypatch.setattr(bench_lirf, "simulate", fake_simulate)
    result = bench_lirf.run(seeds=[0, 1, 2], sets=3)
    assert sorted(seen) == sorted((s, c) for s in (0, 1, 2) for c in [*CLASS_SETS, *drawn_sets(s)])
    assert result["sets"]["1"] == ["0,1,2", "4,5", "1,9", "1,7,8", "1,3,6"]
    fixed = result["by_set"]["0,1,2"]["target_dep_acc"]
    assert (fixed["k_of_n"], fixed["seed_pass"]) == ("2 of 3", {0: True, 1: True, 2: False})
    assert fixed["mean"] == pytest.approx(0.25)
    assert result["by_set"]["4,5"]["target_H"]["k_of_n"] == "2 of 3"  # the crashed run counts
    assert result["by_set"]["1,9"]["target_H"]["k_of_n"] == "2 of 2"  # drawn by seeds 1 and 2
    assert result["by_band"]["target_dep_acc"]["all_runs"]["k_of_n"] == "13 of 15"
    assert result["by_band"]["target_dep_acc"]["drawn_sets"]["k_of_n"] == "9 of 9"
    assert result["failed_runs"] == ["4,5/s1"] and not result["pass"]


@pytest.mark.parametrize("args, needle", [
    (["bench", "lirf", "--sets", "three"], "--sets expects an integer between 0 and 163"),
    (["bench", "lirf", "--sets", "-1"], "--sets must be between 0 and 163"),
    (["bench", "ltl", "--sets", "3"], "--sets applies to bench lirf / lirf-choose only, not 'ltl'"),
    (["bench", "lirf", "--grid", "alpha=0.7,0.8"], "--grid applies to bench lirf-choose only, not 'lirf'"),
    (["bench", "lirf-choose", "--grid", "alpha=0.7,2"], "--grid alpha=2: "),
])
def test_a_bad_sets_option_exits_2_with_one_line_before_any_run(monkeypatch, args, needle):
    from simulations.cli.app import cli

    from simulations.bench import lirf_choose

    monkeypatch.setattr(bench_lirf, "simulate", lambda *a, **k: pytest.fail("a run started"))
    monkeypatch.setattr(lirf_choose, "simulate_one", lambda *a, **k: pytest.fail("a run started"))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output and result.output.count("\n") == 1
