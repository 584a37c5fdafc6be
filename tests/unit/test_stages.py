"""Claims about the multi-stage workflow (server/stages.py), on an in-process grid."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
from torch import nn

from methods.base import Stage, StageResult
from methods.fedavg.method import FedAvgConfig, FedAvgMethod
from methods.registry import _REGISTRY, register
from methods.resolve import parse_run_spec, run_spec_from_json
from server.runner import Job, run_job
from server.stages import check_stages
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit

NAME = "staged-toy"
FAST = {"method": NAME, "num-clients": "2", "num-server-rounds": "1", "data.partitioner": "iid",
        "data.dataset": "digits", "node-wait-timeout": "2", f"{NAME}.local-epochs": "1"}


@dataclass(frozen=True)
class ToyConfig(FedAvgConfig):
    """FedAvg with a label-smoothing knob the stages change."""

    smoothing: float = 0.0
    """Label smoothing of the cross-entropy."""


class StagedToy(FedAvgMethod):
    """Stage `plain` trains from scratch; `smooth` continues from it with label smoothing."""

    name = NAME
    config_cls = ToyConfig
    workflow = "stages"

    def stages(self, spec):
        return [Stage("plain", rounds=2), Stage("smooth", {"smoothing": 0.2}, rounds=1, init_from="plain")]

    def train_step(self, model, batch, spec):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y, label_smoothing=spec.method.smoothing)

    def summarize(self, spec, results, out_dir):
        (out_dir / "toy.txt").write_text("written by summarize")
        return {"accuracy_plain": results["plain"].final["accuracy"],
                "accuracy_smooth": results["smooth"].final["accuracy"],
                "plain_rounds": [r["round"] for r in results["plain"].history],
                "smooth_rounds": [r["round"] for r in results["smooth"].history],
                "plain_sum": float(sum(np.abs(a).sum() for a in results["plain"].arrays.values()))}


@pytest.fixture(autouse=True)
def toy_method():
    register(StagedToy())
    yield
    _REGISTRY.pop(NAME)


def _job(path, resume=False):
    if resume:
        return Job(spec=None, run_dir=str(path), resume=True)
    return Job(spec=parse_run_spec(FAST), run_dir=str(path), scenario=NAME)


def test_stages_run_in_order_numbered_across_stages_and_summarized(tmp_path):
    summary = run_job(InProcessGrid(partition_nodes(2)), _job(tmp_path / "run"))
    assert summary["plain_rounds"] == [1, 2] and summary["smooth_rounds"] == [3]
    assert summary["rounds"] == 3
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["round"], r["stage"]) for r in records] == [(1, "plain"), (2, "plain"), (3, "smooth")]
    assert (tmp_path / "run" / "toy.txt").is_file()
    assert (tmp_path / "run" / "checkpoint" / "stage-plain.npz").is_file()


def test_a_later_stage_starts_from_the_earlier_stage_and_its_overrides_reach_the_clients(tmp_path):
    grid = InProcessGrid(partition_nodes(2))
    run_job(grid, _job(tmp_path / "run"))
    from protos.records import read_header

    smoothing = {read_header(m).round: run_spec_from_json(read_header(m).config_json).method.smoothing
                 for m in grid.sent if read_header(m).phase == "train"}
    assert smoothing == {1: 0.0, 2: 0.0, 3: 0.2}
    # Round 3 was sent the global model that ended stage `plain`.
    from protos.contract import ARRAYS
    from protos.records import from_array_record

    sent_r3 = from_array_record(next(m for m in grid.sent if read_header(m).round == 3).content[ARRAYS])
    from server.run_dir import RunDirectory

    plain = RunDirectory(tmp_path / "run").load_stage("plain")
    assert all(np.array_equal(sent_r3[k], plain[k]) for k in plain)


def test_resume_inside_a_later_stage_reaches_the_uninterrupted_result(tmp_path):
    full = run_job(InProcessGrid(partition_nodes(2)), _job(tmp_path / "a"))

    class Crash(RuntimeError):
        pass

    def crash_in_stage_two(record):
        if record.get("stage") == "smooth":
            raise Crash  # before round 3's checkpoint: the server dies mid-stage

    job = _job(tmp_path / "b")
    job.progress = crash_in_stage_two
    with pytest.raises(Crash):
        run_job(InProcessGrid(partition_nodes(2)), job)
    resumed = run_job(InProcessGrid(partition_nodes(2), first_node_id=7000), _job(tmp_path / "b", True))
    for key in ("accuracy_plain", "accuracy_smooth", "plain_sum", "smooth_rounds"):
        assert resumed[key] == pytest.approx(full[key], abs=1e-9), key


def test_bad_stage_lists_are_refused():
    with pytest.raises(ValueError, match="unique"):
        check_stages([Stage("a"), Stage("a")])
    with pytest.raises(ValueError, match="earlier stage"):
        check_stages([Stage("a", init_from="b"), Stage("b")])


def test_stage_model_is_the_stage_s_final_model_built_with_its_overrides(monkeypatch):
    method, spec = StagedToy(), parse_run_spec(FAST)
    built_with = []
    build = method.build_model
    monkeypatch.setattr(method, "build_model", lambda s: built_with.append(s.method) or build(s))
    arrays = {k: np.full_like(v, 0.5) for k, v in method.shared_state(build(spec)).items()}
    model = method.stage_model(spec, "smooth", {"smooth": StageResult([], arrays)})
    assert [c.smoothing for c in built_with] == [0.2]
    assert not model.training
    assert all(np.array_equal(v, arrays[k]) for k, v in method.shared_state(model).items())
