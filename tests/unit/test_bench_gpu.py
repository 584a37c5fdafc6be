"""Claims about `fedvault bench gpu` on a machine without a GPU: it says so and passes, and
its measuring path (run on the CPU twice, in process, on a tiny config) reports what a
GPU machine's run would."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from server.runner import Job, run_job
from server.scenario import parse_overrides, resolve
from simulations.bench.gpu import NO_CUDA, run
from simulations.cli.app import cli
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit

TINY = ("num-clients=2", "data.dataset=digits", "data.partitioner=iid", "fedavg.local-epochs=1")


def test_without_cuda_it_says_so_measures_nothing_and_exits_0(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(cli, ["bench", "gpu"])
    assert result.exit_code == 0, result.output
    assert NO_CUDA in result.output
    assert json.loads(result.output[result.output.index("{"):]) == {
        "bench": "gpu", "available": False, "pass": True, "note": NO_CUDA}


def test_the_measuring_path_reports_round_times_accuracy_and_devices(tmp_path):
    runs = []

    def simulate_in_process(scenario, seed, run_dir: Path, sets):
        """What `fedvault simulate SCENARIO --seed S --out RUN_DIR --set ...` does, minus Ray."""
        runs.append(list(sets))
        spec = resolve(scenario, {**parse_overrides(list(sets)), "seed": str(seed)})
        grid = InProcessGrid(partition_nodes(spec.federation.num_clients))
        return run_job(grid, Job(spec=spec, run_dir=str(run_dir), scenario=scenario))

    result = run(out=tmp_path / "gpu.json", devices=("cpu", "cpu"), rounds=2,
                 scenarios={"fedavg": TINY}, simulate=simulate_in_process)
    assert runs == [["device=cpu", "num-server-rounds=2", *TINY]] * 2
    assert result["pass"] and result["available"] and result["card"] is None
    first, second = result["scenarios"]["fedavg"]["runs"]
    for figures in (first, second):
        assert figures["ok"] and figures["rounds"] == 2 and figures["round_seconds"] > 0
        assert figures["server_device"] == "cpu" and figures["node_devices"] == ["cpu"]
        assert figures["accuracy"] > 0.3  # digits, 2 rounds: ~0.8; chance is 0.1
    assert first["accuracy"] == second["accuracy"]  # same seed, same device: the same run
    speedup = result["scenarios"]["fedavg"]["speedup"]
    assert speedup == pytest.approx(first["round_seconds"] / second["round_seconds"])


def test_a_run_that_did_not_use_the_device_it_was_asked_for_fails_the_bench(tmp_path):
    def simulate_on_the_cpu_anyway(scenario, seed, run_dir, sets):
        (run_dir / "metrics.jsonl").parent.mkdir(parents=True)
        record = {"phase": "train", "seconds": 1.0}
        (run_dir / "metrics.jsonl").write_text(json.dumps(record) + "\n")
        return {"device": "cpu", "node_devices": {"p0": "cpu"}, "accuracy": 0.9}

    result = run(out=tmp_path / "gpu.json", devices=("cpu", "cuda"), scenarios={"fedavg": ()},
                 simulate=simulate_on_the_cpu_anyway)
    runs = result["scenarios"]["fedavg"]["runs"]
    assert [r["ok"] for r in runs] == [True, False] and not result["pass"]
