"""Claims about the run's validation split (`data.validation-fraction`, methods/base.py) and
`data.evaluate-on`, in every method, and about `fedvault choose` (simulations/bench/choose.py)."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from methods.base import Method
from methods.config import ConfigError
from methods.registry import get_method
from server.scenario import resolve
from simulations.bench.choose import Metric, MissingFigure, choose, run, split_sets
from simulations.cli.app import cli

pytestmark = pytest.mark.unit
SPLIT = {"data.validation-fraction": "0.1"}
SMALL = {"pose": {"pose.images-per-camera": "100", "pose.test-images": "20"}}  # seconds, not 25 s
# the methods whose validation rows are carved out of their training rows (the others
# build validation rows at the held-out poses or domains, or play other episodes)
CARVED = ("fedavg", "lirf", "ltl", "style-gnn", "dynast", "pose")


@pytest.mark.parametrize("name", CARVED)
def test_the_split_is_carved_out_of_the_training_data_stratified_and_seeded(name):
    spec = resolve(name, {**SPLIT, **SMALL.get(name, {})})
    method = get_method(spec.method_name)
    full, fit, held = (method.train_dataset(spec), method.fit_dataset(spec),
                       method.validation_dataset(spec))
    assert len(fit) + len(held) == len(full) and len(held) == round(0.1 * len(full))
    counts = np.bincount(full.y)
    assert np.all(np.abs(np.bincount(held.y, minlength=len(counts)) - 0.1 * counts) <= 1)
    seen = {x.tobytes() for x in fit.x}
    assert not any(x.tobytes() in seen for x in held.x)  # no node trains on a held-out row
    again = method.validation_dataset(resolve(name, {**SPLIT, **SMALL.get(name, {})}))
    assert np.array_equal(again.x, held.x)  # a node that is a fresh process each round agrees
    other_seed = method.validation_dataset(resolve(name, {**SPLIT, **SMALL.get(name, {}), "seed": "1"}))
    assert not np.array_equal(other_seed.x, held.x)
    no_split = resolve(name, SMALL.get(name, {}))
    assert method.validation_dataset(no_split) is None and len(method.fit_dataset(no_split)) == len(full)


def test_hscl_holds_out_by_digit_and_labels_the_split_as_its_test_set():
    spec = resolve("hscl", SPLIT)
    method = get_method("hscl")
    held = method.validation_dataset(spec)
    assert held.num_classes == 2 and 0 < held.y.mean() < 0.2  # 1 = the normal digit, about 1 in 10
    fit = method.fit_dataset(spec)
    shards = method.node_partition(spec, fit.y, spec.federation.num_clients)
    assert max(int(s.max()) for s in shards) < len(fit)  # the shards index the rows left to train on


def test_attn_div_validates_on_its_source_domains_only_labelled_by_digit():
    spec = resolve("attn-div", SPLIT)
    method = get_method("attn-div")
    held = Method.validation_dataset(method, spec)  # the 40 domain × digit labels
    target = spec.method.target_domain
    split = method.validation_dataset(spec)
    assert split.num_classes == 10 and len(split) == int(np.sum(held.y // 10 != target))
    assert len(split) < len(held)  # the target domain's held-out images are left out


def test_ask_ac_validates_on_other_episodes_than_the_test_and_trains_on_every_unit():
    spec = resolve("ask-ac", SPLIT)
    method = get_method(spec.method_name)
    test, held = method.test_dataset(spec), method.validation_dataset(spec)
    episode = lambda d: set(d.x.reshape(len(d), -1)[:, 2].astype(int))  # noqa: E731
    assert len(held) == len(test) and not episode(held) & episode(test)
    assert len(method.fit_dataset(spec)) == len(method.train_dataset(spec))


def test_avatargen_validates_at_the_poses_of_held_out_training_images():
    spec = resolve("avatargen", {**SPLIT, "avatargen.images-per-node": "20"})
    method = get_method("avatargen")
    held = method.validation_dataset(spec)
    full = method.train_dataset(spec)
    assert len(held) == round(0.1 * len(full)) and held.name == "avatargen-validation"
    poses = {row.tobytes() for row in full.x[:, 3]}
    assert all(row.tobytes() in poses for row in held.x[:, 3])  # the same packed poses


@pytest.mark.parametrize("name", [*CARVED, "hscl", "attn-div", "ask-ac"])
def test_evaluate_on_validation_measures_the_validation_split_and_reads_no_test_figure(name, monkeypatch):
    spec = resolve(name, {**SPLIT, **SMALL.get(name, {}), "data.evaluate-on": "validation"})
    method = get_method(spec.method_name)
    expected = method.validation_dataset(spec)
    monkeypatch.setattr(type(method), "test_dataset", lambda self, s: pytest.fail("test read"))
    assert method.evaluation_dataset(spec).x.tobytes() == expected.x.tobytes()


@pytest.mark.parametrize("items, complaint", [
    ({"data.evaluate-on": "validation"}, "needs a validation split"),
    ({"data.evaluate-on": "train"}, "data.evaluate-on must be one of test, validation"),
    ({"data.validation-fraction": "1"}, "validation-fraction"),
    ({"data.validation-fraction": "-0.1"}, "validation-fraction"),
    ({**SPLIT, "data.evaluate-on": "validation", "evaluation": "federated"}, "set evaluation=server"),
])
def test_bad_split_settings_are_refused_in_one_line(items, complaint):
    with pytest.raises(ConfigError, match=complaint):
        resolve("fedavg", items)


def test_fedsa_keeps_its_own_validation_canvases_and_refuses_the_generic_split():
    with pytest.raises(ConfigError, match="fedsa.val-per-class"):
        resolve("fedsa", SPLIT)


def test_a_round_loop_run_on_validation_records_validation_figures_and_says_so(tmp_path, monkeypatch):
    from server.runner import Job, run_job
    from tests.inprocess_grid import InProcessGrid, partition_nodes

    torch.set_num_threads(1)
    items = {"data.dataset": "digits", "num-clients": "3", "num-server-rounds": "1",
             "node-wait-timeout": "2"}
    test_run = run_job(InProcessGrid(partition_nodes(3)),
                       Job(spec=resolve("fedavg", {**items, **SPLIT}), run_dir=str(tmp_path / "t")))
    monkeypatch.setattr(type(get_method("fedavg")), "test_dataset",
                        lambda self, s: pytest.fail("the test split was read for a figure"),
                        raising=False)
    # build_model reads the test split's shape: give it the validation split's instead
    monkeypatch.setattr(type(get_method("fedavg")), "build_model",
                        lambda self, s: _small_cnn(self, s))
    spec = resolve("fedavg", {**items, **SPLIT, "data.evaluate-on": "validation"})
    val_run = run_job(InProcessGrid(partition_nodes(3)), Job(spec=spec, run_dir=str(tmp_path / "v")))
    assert test_run["evaluated_on"] == "test" and val_run["evaluated_on"] == "validation"
    # the same training (the split is held out in both), measured on two different splits
    assert val_run["accuracy"] != test_run["accuracy"]
    rounds = [json.loads(line) for line in (tmp_path / "v" / "metrics.jsonl").read_text().splitlines()]
    assert [r["accuracy"] for r in rounds if "accuracy" in r][-1] == val_run["accuracy"]


def _small_cnn(method, spec):
    from methods.common.nets import SmallCNN

    held = method.validation_dataset(spec)
    return SmallCNN(in_channels=held.example_shape[0], num_classes=held.num_classes)


# --- fedvault choose ------------------------------------------------------------------

def test_the_choice_is_the_best_mean_on_validation_ties_to_the_earlier_value():
    assert choose({"a": [0.5, 0.7], "b": [0.6, 0.6], "c": [0.9, 0.1]}, "max") == "a"
    assert choose({"a": [0.2], "b": [0.1], "c": []}, "min") == "b"
    with pytest.raises(ValueError):
        choose({"a": [], "b": []}, "max")


def test_a_metric_is_a_summary_path_or_a_difference_of_two():
    summary = {"acc": {"ltl": 0.9, "bptt": 0.8}, "flag": True, "levels": [1.0, 2.0]}
    assert Metric.parse("acc.ltl - acc.bptt").of(summary) == pytest.approx(0.1)
    assert Metric.parse("levels.1").of(summary) == 2.0
    with pytest.raises(MissingFigure, match="levels has no '2'; it has 0..1"):
        Metric.parse("levels.2").of(summary)
    with pytest.raises(MissingFigure, match="acc has no 'erm'; it has bptt, ltl"):
        Metric.parse("acc.erm").of(summary)
    with pytest.raises(MissingFigure, match="not a finite number"):
        Metric.parse("flag").of(summary)
    for bad in ("acc;rm", "a - b - c", ""):
        with pytest.raises(ConfigError):
            Metric.parse(bad)


def test_every_value_runs_on_validation_and_only_the_chosen_one_on_test(tmp_path):
    calls = []

    def runner(scenario, seed, run_dir, items):
        calls.append((seed, tuple(items)))
        value = float(next(i for i in items if i.startswith("ltl.lr=")).split("=")[1])
        on = next(i for i in items if i.startswith("data.evaluate-on=")).split("=")[1]
        if on == "validation":
            return {"snn_accuracy": {0.001: 0.80, 0.01: 0.85}[value] + seed / 100}
        return {"snn_accuracy": 0.5 + seed / 100}

    result = run("ltl", "ltl.lr", ["0.001", "0.01"], Metric.parse("snn_accuracy"),
                 seeds=[0, 1], sets=["num-clients=2"], out=tmp_path / "c.json", runner=runner)
    assert result["chosen"] == "0.01" and result["pass"]
    assert result["validation_mean"] == {"0.001": pytest.approx(0.805), "0.01": pytest.approx(0.855)}
    tests = [items for _, items in calls if "data.evaluate-on=test" in items]
    assert len(calls) == 6 and len(tests) == 2 and all("ltl.lr=0.01" in t for t in tests)
    assert all("data.validation-fraction=0.1" in items and "num-clients=2" in items
               for _, items in calls)  # the test runs hold out the same split
    assert result["test_mean"] == pytest.approx(0.505)
    assert split_sets("k", "v", 0.2, "test", []) == [
        "k=v", "data.validation-fraction=0.2", "data.evaluate-on=test"]


def test_a_seed_that_failed_for_one_value_is_left_out_of_every_value_s_mean(tmp_path):
    def runner(scenario, seed, run_dir, items):
        value = next(i for i in items if i.startswith("k.v="))
        if seed == 1 and value == "k.v=b":
            return {"error": "exit 1: it crashed"}
        if seed == 2:
            return {"m": None}  # there, but not a number (an LTL epoch never reached)
        return {"m": {"k.v=a": [0.5, 0.9][seed], "k.v=b": [0.6, 0.0][seed]}[value]}

    result = run("x", "k.v", ["a", "b"], Metric.parse("m"), seeds=[0, 1, 2], runner=runner,
                 out=tmp_path / "c.json")
    assert result["compared_on_seeds"] == [0]  # seed 1 (b crashed) and 2 (no number) left out
    assert result["chosen"] == "b" and result["validation_mean"] == {"a": 0.5, "b": 0.6}
    assert "not a finite number" in result["validation"]["a"]["2"]["error"]
    assert result["failed_runs"] == 5 and not result["pass"]  # 3 on validation, 2 on test
    with pytest.raises(MissingFigure):  # a path the first finished summary lacks: bad input
        run("x", "k.v", ["a", "b"], Metric.parse("n"), seeds=[0], runner=runner)


def test_keys_that_move_together_are_one_candidate_each(tmp_path):
    seen = []

    def runner(scenario, seed, run_dir, items):
        seen.append([i for i in items if i.startswith("ltl.")])
        return {"m": 1.0 if "ltl.lr=0.01" in items else 0.0}

    result = run("ltl", "ltl.lr,ltl.batch-size", ["0.001/16", "0.01/32"], Metric.parse("m"),
                 seeds=[0], runner=runner, out=tmp_path / "c.json")
    assert result["chosen"] == "0.01/32"
    assert seen == [["ltl.lr=0.001", "ltl.batch-size=16"], ["ltl.lr=0.01", "ltl.batch-size=32"],
                    ["ltl.lr=0.01", "ltl.batch-size=32"]]  # the last: the chosen pair on test
    with pytest.raises(ConfigError, match="gives 1 value"):
        split_sets("ltl.lr,ltl.batch-size", "0.01", 0.1, "test", [])


@pytest.mark.parametrize("key, values, complaint", [
    ("ltl.lr,ltl.batch-size", "0.01/16,0.1", "gives 1 value(s) for the 2 keys"),
    ("ltl.lr,ltl.lr", "0.01/0.1,0.1/0.2", "distinct keys"),
    ("ltl.lr,ltl.batch-size", "0.01/16,0.01 / 16", "two or more distinct candidates"),
    ("ltl.lr,seed", "0.01/1,0.1/2", "cannot give seed"),
    ("ltl.lr,ltl.batch-size", "0.01/16,0.1/0", "batch"),
])
def test_several_keys_are_checked_before_any_run(key, values, complaint, tmp_path):
    result = CliRunner().invoke(cli, ["choose", "ltl", "--key", key, "--values", values,
                                      "--metric", "snn_accuracy", "--out", str(tmp_path / "c.json")])
    assert result.exit_code == 2, result.output
    assert complaint in result.output and result.output.count("\n") == 1


@pytest.mark.parametrize("args, complaint", [
    (["--values", "0.01,0.1", "--seeds", "0,0"], "--seeds must be distinct"),
    (["--values", "0.01,0.1", "--set", "seed=3"], "cannot give seed"),
    (["--values", "0.01,0.1", "--set", "data.evaluate-on=test"], "cannot give seed"),
    (["--values", "0.01"], "two or more distinct candidates"),
    (["--values", "0.01,0.01"], "two or more distinct candidates"),
    (["--values", "0.01,0.1", "--goal", "up"], "--goal must be one of max, min"),
    (["--values", "0.01,0.1", "--set", "ltl.lr=1"], "no --set also gives"),
    (["--values", "0.01,-1"], "ltl.lr"),
    (["--values", "0.01,0.1", "--validation-fraction", "1.5"], "--validation-fraction"),
    (["--values", "0.01,0.1", "--metric", "a;b"], "--metric"),
])
def test_choose_refuses_bad_input_before_any_run(args, complaint, tmp_path):
    argv = ["choose", "ltl", "--key", "ltl.lr", "--metric", "snn_accuracy",
            "--out", str(tmp_path / "c.json"), *args]
    if "--metric" in args:
        argv = [a for i, a in enumerate(argv) if not (i in (5, 6))]  # the test's own metric
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2, result.output
    assert complaint in result.output and not (tmp_path / "c.json").exists()


def test_lirf_s_old_split_key_is_read_as_the_run_s_so_an_older_run_still_resumes():
    from methods.resolve import parse_run_spec

    spec = parse_run_spec({"method": "lirf", "lirf.validation-fraction": 0.1})
    assert spec.data.validation_fraction == 0.1
    both = {"method": "lirf", "lirf.validation-fraction": 0.1, "data.validation-fraction": 0.1}
    assert parse_run_spec(both).data.validation_fraction == 0.1  # the same value: no conflict
    assert parse_run_spec({**both, "data.validation-fraction": "0.10"}).data.validation_fraction == 0.1
    with pytest.raises(ConfigError, match="both given.*give data.validation-fraction only"):
        parse_run_spec({**both, "data.validation-fraction": 0.2})


def test_choose_refuses_an_out_whose_runs_directory_holds_an_earlier_study(tmp_path):
    (tmp_path / "c-runs" / "val-0-0.01-s0").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["choose", "ltl", "--key", "ltl.lr", "--values", "0.01,0.1",
                                      "--metric", "snn_accuracy", "--out", str(tmp_path / "c.json")])
    assert result.exit_code == 2 and "already holds runs" in result.output


def test_lirf_on_validation_measures_each_model_once(tmp_path):
    from server.runner import Job, run_job
    from tests.inprocess_grid import InProcessGrid, partition_nodes

    torch.set_num_threads(1)
    tiny = {"data.dataset": "digits", "num-clients": "3", "num-server-rounds": "1",
            "lirf.local-epochs": "1", "lirf.deposit-epochs": "1", "node-wait-timeout": "2",
            "lirf.retrain-baseline": "false", **SPLIT}
    runs = {}
    for on in ("test", "validation"):
        spec = resolve("lirf", {**tiny, "data.evaluate-on": on})
        runs[on] = run_job(InProcessGrid(partition_nodes(3)),
                           Job(spec=spec, run_dir=str(tmp_path / on)))
    # on test, the validation figures are kept aside; on validation they are the main ones
    assert runs["validation"]["validation"] == {} and runs["test"]["validation"]
    for model in ("original", "target", "recovered"):
        aside = runs["test"]["validation"][model]
        assert {k: runs["validation"][model][k] for k in aside} == aside
