"""Claims about the LTL method: locality, the frozen teacher, its stages and its summary."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from methods.base import StageResult
from methods.config import ConfigError
from methods.ltl.method import LTL, weight_noise
from methods.resolve import parse_run_spec

pytestmark = pytest.mark.unit

TINY = {"method": "ltl", "data.dataset": "digits", "ltl.widths": "4,4,4", "ltl.hidden": "8",
        "ltl.time-steps": "3"}


def _spec(**extra):
    return parse_run_spec({**TINY, **{f"ltl.{k}": v for k, v in extra.items()}})


def _batch(n=16):
    data = LTL().train_dataset(_spec()).subset(np.arange(n))
    return torch.tensor(data.x) * 3.0, torch.tensor(data.y)  # ×3: enough drive to fire


@pytest.mark.parametrize("local, reaches_first_layer", [(True, False), (False, True)])
def test_the_output_loss_reaches_hidden_layers_only_end_to_end(local, reaches_first_layer):
    torch.manual_seed(0)
    student = LTL().build_model(_spec(variant="bptt"))
    x, y = _batch()
    _, logits = student.simulate(x, local=local)
    torch.nn.functional.cross_entropy(logits, y).backward()
    grad = student.layers[0].weight.grad
    assert (grad is not None and grad.abs().sum() > 0) == reaches_first_layer
    assert student.readout.weight.grad.abs().sum() > 0


def test_an_ltl_step_trains_the_student_and_leaves_the_teacher_frozen():
    method, spec = LTL(), _spec()
    torch.manual_seed(0)
    pair = method.build_model(spec)
    pair.train()
    assert not pair.teacher.training and pair.student.training
    before = {k: v.copy() for k, v in method.shared_state(pair).items()}  # views of the tensors
    params = [p for p in pair.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=0.01)
    method.train_step(pair, _batch(), spec).backward()
    optimizer.step()
    after = method.shared_state(pair)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed and all(k.startswith("student.") for k in changed)
    assert all(a.dtype == np.float32 for a in after.values())  # FedAvg keeps every dtype


def test_ltl_and_bptt_start_from_the_same_student_and_ltl_embeds_the_trained_teacher():
    method, spec = LTL(), _spec()
    stages = {s.name: s for s in method.stages(spec)}
    teacher_spec = spec.for_stage(stages["teacher"])
    trained_teacher = {k: v + 1.0 for k, v in method.stage_arrays(teacher_spec, stages["teacher"], {}).items()}
    finished = {"teacher": StageResult([], trained_teacher)}
    ltl = method.stage_arrays(spec.for_stage(stages["ltl"]), stages["ltl"], finished)
    bptt = method.stage_arrays(spec.for_stage(stages["bptt"]), stages["bptt"], finished)
    assert {f"student.{k}" for k in bptt} == {k for k in ltl if k.startswith("student.")}
    assert all(np.array_equal(ltl[f"student.{k}"], v) for k, v in bptt.items())
    assert all(np.array_equal(ltl[f"teacher.{k}"], v) for k, v in trained_teacher.items())


def test_weight_noise_scales_only_student_weights_reproducibly():
    arrays = {"student.layers.0.weight": np.ones((100, 100), np.float32),
              "student.layers.0.bias": np.ones(100, np.float32),
              "teacher.blocks.0.0.weight": np.ones((10, 10), np.float32)}
    noisy = weight_noise(arrays, 0.2, seed=3)
    w = noisy["student.layers.0.weight"]
    assert w.dtype == np.float32 and abs(w.std() - 0.2) < 0.01 and abs(w.mean() - 1.0) < 0.01
    assert np.array_equal(noisy["student.layers.0.bias"], arrays["student.layers.0.bias"])
    assert np.array_equal(noisy["teacher.blocks.0.0.weight"], arrays["teacher.blocks.0.0.weight"])
    assert np.array_equal(weight_noise(arrays, 0.2, seed=3)["student.layers.0.weight"], w)


def test_summary_reports_the_first_epoch_within_three_points_and_both_curves(tmp_path):
    spec = _spec(**{"noise-std": "0"})
    teacher_arrays = {"blocks.0.0.weight": np.zeros(2, np.float32)}
    ltl_arrays = {"teacher.blocks.0.0.weight": np.zeros(2, np.float32)}
    results = {
        "teacher": StageResult([{"accuracy": 0.9}, {"accuracy": 0.98}], teacher_arrays),
        "ltl": StageResult([{"accuracy": a} for a in (0.3, 0.94, 0.95, 0.97)], ltl_arrays),
        "bptt": StageResult([{"accuracy": a} for a in (0.5, 0.9, 0.93)], {}),
    }
    summary = LTL().summarize(spec, results, tmp_path)
    assert summary["teacher_accuracy"] == 0.98 and summary["snn_accuracy"] == 0.97
    assert summary["epochs_to_within_3pts"] == 3  # 0.95 >= 0.98 − 0.03 (0.94 is not)
    assert summary["ltl_accuracy_at_epoch"] == {"1": 0.3, "2": 0.94, "3": 0.95, "4": 0.97}
    assert summary["bptt_accuracy_at_epoch"]["3"] == 0.93
    assert summary["teacher_max_drift"] == 0.0
    two_epochs = replace(spec, method=replace(spec.method, local_epochs=2))
    assert LTL().summarize(two_epochs, results, tmp_path)["epochs_to_within_3pts"] == 6


def test_bad_variant_and_rounds_are_config_errors():
    with pytest.raises(ConfigError, match="variant"):
        _spec(variant="ann")
    with pytest.raises(ConfigError, match="rounds"):
        _spec(**{"bptt-rounds": "0"})
