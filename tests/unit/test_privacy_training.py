"""Claims about DP-SGD on a node (clients/privacy.py) and its accountant across rounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import RecordDict
from torch import nn

from clients.privacy import (
    FAULT_NOISE_SCALE_ENV,
    PrivateTraining,
    choose_grad_sample_mode,
    epsilon_of,
    load_history,
    make_dp_compatible,
    noise_multiplier_for,
    planned_steps,
    sample_rate,
    save_history,
)
from clients.noise_probe import noise_probe
from clients.training import train_locally
from methods.audit_plan import WhiteboxPlan
from methods.base import Method
from methods.common.datasets import load_dataset
from methods.registry import get_method
from methods.resolve import parse_run_spec

pytestmark = pytest.mark.unit


def _spec(**extra):
    flat = {
        "data.dataset": "digits",
        "num-server-rounds": 3,
        "fedavg.batch-size": 32,
        "fedavg.lr": 0.5,
        "fedavg.momentum": 0.0,
        "dp.enabled": True,
        "dp.accountant": "rdp",
        "dp.max-epsilon": 1e30,
    }  # tests set σ themselves; one test checks the budget
    return parse_run_spec({**flat, **extra})


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train").subset(range(256))


class PerExample(Method):
    """fedavg's loss with per-example losses: what ghost clipping needs."""

    name, config_cls = "per-example", object

    def build_model(self, spec):
        return get_method("fedavg").build_model(spec)

    def train_step(self, model, batch, spec):
        return self.per_sample_loss(model, batch, spec).mean()

    def per_sample_loss(self, model, batch, spec):
        return nn.functional.cross_entropy(model(batch[0]), batch[1], reduction="none")


def _round(spec, data, history, **kwargs):
    method = kwargs.pop("method", get_method("fedavg"))
    torch.manual_seed(0)
    model = method.build_model(spec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    privacy = PrivateTraining(spec, method, history=history, **kwargs)
    metrics = train_locally(method, model, data, spec, seed=1, privacy=privacy)
    return model, before, privacy, metrics


def test_a_persisted_accountant_composes_rounds_like_one_accountant():
    # σ=1, q=1/16, 16 steps a round (design notes §1.1, not shipped): 2.764, 3.336, 3.798 with
    # the history kept; a fresh engine each round would say 2.764 every round.
    state, spent = RecordDict(), []
    for _ in range(3):
        history = load_history(state, [], "rdp") + [(1.0, 1 / 16, 16)]
        save_history(state, history, "rdp")
        spent.append(epsilon_of(history, 1e-5, "rdp"))
    assert spent == pytest.approx([2.764, 3.336, 3.798], abs=1e-3)


def test_a_node_that_lost_its_state_takes_the_servers_history_and_never_the_shorter_one():
    server = [(1.0, 0.1, 10), (1.0, 0.1, 10)]
    assert load_history(RecordDict(), server, "prv") == server
    state = RecordDict()
    save_history(state, server + [(1.0, 0.1, 10)], "prv")  # the server missed the last reply
    assert len(load_history(state, server, "prv")) == 3
    with pytest.raises(ValueError, match="cannot be composed"):
        load_history(state, server, "rdp")


def test_sigma_for_the_planned_run_spends_the_target_and_no_more():
    spec = _spec(**{"dp.target-epsilon": 2.0})
    n = 1000
    sigma = noise_multiplier_for(spec, n)
    steps = planned_steps(spec, n)
    assert steps == 3 * 1 * 32  # R · E · ⌈n/B⌉
    eps = epsilon_of([(sigma, sample_rate(n, 32), steps)], 1e-5, "rdp")
    assert 1.95 <= eps <= 2.0


def test_dp_training_sends_plain_weights_and_reports_its_ledger_figures(digits):
    spec = _spec()
    model, before, privacy, metrics = _round(spec, digits, [], sigma=1.0)
    state = model.state_dict()
    assert set(state) == set(before)  # no `_module.` prefix
    assert any(not torch.equal(state[k], before[k]) for k in state)
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())  # unwrapped
    report = privacy.report
    assert report["steps"] == metrics["steps"] == 8  # ⌈256/32⌉ Poisson batches
    assert report["sample_rate"] == pytest.approx(1 / 8)
    assert report["poisson"] and report["sampler"] == "UniformWithReplacementSampler"
    assert 0.0 <= report["clip_fraction"] <= 1.0
    assert report["epsilon"] == pytest.approx(epsilon_of([(1.0, 1 / 8, 8)], 1e-5, "rdp"))
    assert report["epsilon_next"] > report["epsilon"]


def test_the_second_round_composes_on_the_first(digits):
    spec = _spec()
    _, _, first, _ = _round(spec, digits, [], sigma=1.0)
    _, _, second, _ = _round(spec, digits, first.history)
    assert second.sigma == 1.0  # σ stays the run's, taken from the history
    assert second.report["epsilon"] == pytest.approx(first.report["epsilon_next"])


def test_a_round_that_would_overspend_the_budget_is_refused(digits):
    spec = _spec(**{"dp.noise-multiplier": 0.3, "dp.max-epsilon": 1.0})
    with pytest.raises(ValueError, match="budget"):
        _round(spec, digits, [])


def test_ghost_clipping_trains_a_method_that_gives_per_example_losses(digits):
    spec = _spec(**{"dp.grad-sample-mode": "ghost"})
    model, before, privacy, _ = _round(spec, digits, [], sigma=1.0, method=PerExample())
    assert privacy.mode == "ghost" and privacy.report["steps"] == 8
    assert 0.0 <= privacy.report["clip_fraction"] <= 1.0
    assert set(model.state_dict()) == set(before)


class MeanOnly(PerExample):
    per_sample_loss = Method.per_sample_loss  # a method that only gives the batch mean


def test_grad_sample_mode_auto_picks_ghost_only_when_it_can_run():
    model = get_method("fedavg").build_model(_spec())  # 87 % of weights in Linear layers
    assert choose_grad_sample_mode("auto", PerExample(), model) == "ghost"
    assert choose_grad_sample_mode("auto", MeanOnly(), model) == "hooks"
    conv_only = nn.Sequential(
        nn.Conv2d(1, 64, 3), nn.Conv2d(64, 64, 3), nn.Flatten(), nn.Linear(1024, 2)
    )
    assert choose_grad_sample_mode("auto", PerExample(), conv_only) == "hooks"
    with pytest.raises(ValueError, match="per-example losses"):
        choose_grad_sample_mode("ghost", MeanOnly(), model)


def test_batchnorm_models_are_reported_incompatible_and_inplace_relu_is_fixed():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True))
    errors = make_dp_compatible(net)
    assert errors and "BatchNorm" in " ".join(errors)
    assert net[2].inplace is False


def test_the_noise_probe_sees_the_noise_the_ledger_claims(monkeypatch):
    spec = _spec()
    method = get_method("fedavg")

    def ratio() -> float:
        out = noise_probe(
            spec,
            method,
            method.build_model(spec),
            sigma=1.2,
            input_shape=(1, 8, 8),
            num_classes=10,
            seed=3,
        )
        return float(np.sqrt(out["noise-probe-sum-sq"] / out["noise-probe-dof"])) / 1.2

    assert ratio() == pytest.approx(1.0, abs=0.02)
    monkeypatch.setenv(FAULT_NOISE_SCALE_ENV, "0.1")  # the test-only fault: 10x too little noise
    assert ratio() == pytest.approx(0.1, abs=0.01)


def test_white_box_canaries_push_only_their_own_coordinates(digits):
    """With zero real gradients, an IN canary's weight moves by -lr·C·(times joined)/B."""
    spec = _spec(**{"fedavg.batch-size": 256})  # one batch of q = 1: every canary joins it
    param = "classifier.1.weight"
    plan = WhiteboxPlan(param, np.array([3, 7, 11, 19]), np.array([True, False, True, False]))

    class Zero(PerExample):
        def per_sample_loss(self, model, batch, spec):
            return (model(batch[0]) * 0.0).sum(dim=1)

    model, before, privacy, _ = _round(spec, digits, [], sigma=1e-9, whitebox=plan, method=Zero())
    moved = (model.state_dict()[param] - before[param]).reshape(-1)[plan.coords].numpy()
    expected = -0.5 * 1.0 / privacy.report["expected_batch_size"]
    assert moved[plan.canary_in] == pytest.approx([expected] * 2, rel=1e-3)
    assert np.abs(moved[~plan.canary_in]).max() < 1e-6
