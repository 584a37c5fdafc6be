"""Claims about the pose method's learning-rate schedule across federated rounds."""

import math

import pytest
import torch

from methods.resolve import parse_run_spec
from methods.pose.method import PoseMethod, steps_per_round

pytestmark = pytest.mark.unit


def spec_of(**keys):
    return parse_run_spec({"method": "pose", "num-server-rounds": "4",
                           "pose.images-per-camera": "40", "pose.batch-size": "16", **keys})


def test_every_stage_gets_a_cosine_over_its_rounds_times_local_steps():
    spec = spec_of()
    assert steps_per_round(spec.method) == 3  # 40 images in batches of 16: 16, 16, 8
    stages = PoseMethod().stages(spec)
    assert [s.overrides["schedule_steps"] for s in stages] == [12, 12, 12]
    # an explicit horizon is kept
    explicit = PoseMethod().stages(spec_of(**{"pose.schedule-steps": "30"}))
    assert {s.overrides["schedule_steps"] for s in explicit} == {30}


def test_lr_is_the_cosine_at_the_round_middle_of_the_clients_averaged_step_count():
    method = PoseMethod()
    spec = spec_of(**{"pose.schedule-steps": "12", "pose.lr": "0.002"})
    model = method.build_model(spec)
    assert method.local_lr(model, spec) == pytest.approx(0.002 * 0.5 * (1 + math.cos(math.pi * 1.5 / 12)))
    model.local_steps.fill_(6.0)  # FedAvg of two clients after 2 rounds of 3 steps
    assert method.local_lr(model, spec) == pytest.approx(0.002 * 0.5 * (1 + math.cos(math.pi * 7.5 / 12)))
    model.local_steps.fill_(100.0)  # past the horizon: a floor, never 0 (Adam needs lr > 0)
    assert method.local_lr(model, spec) == pytest.approx(0.002 * 1e-3)


def test_a_train_step_advances_the_schedule_by_one_step():
    method = PoseMethod()
    spec = spec_of()
    model = method.build_model(spec)
    data = method.train_dataset(spec)
    batch = (torch.tensor(data.x[:4]), torch.tensor(data.y[:4]))
    method.train_step(model, batch, spec)
    method.train_step(model, batch, spec)
    assert float(model.local_steps) == 2.0
    assert "local_steps" in method.shared_state(model)  # it travels, so FedAvg averages it
