"""Ask-AC's CartPole, advisor, rollouts (who acts, what is counted) and summary figures."""

import numpy as np
import pytest
import torch

from methods.askac.cartpole import CartPoles, advisor_action, run_episodes
from methods.askac.config import AskACConfig
from methods.askac.learner import Learner
from methods.askac.nets import AskActorCritic
from methods.askac.summary import federation_total, level_returns

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("length, x_dot, theta_dot", [(0.5, 0.195122, -0.292683),
                                                      (2.0, 0.185144, -0.073171)])
def test_one_push_from_rest_matches_the_cartpole_equations(length, x_dot, theta_dot):
    # temp = 10/1.1; θ̈ = −temp / (l·(4/3 − 0.1/1.1)); ẍ = temp − 0.05·θ̈/1.1; Euler τ = 0.02.
    env = CartPoles(np.array([length]), np.random.default_rng(0))
    env.state[:] = 0.0
    env.step(np.array([1]))
    assert env.state[0].tolist() == pytest.approx([0.0, x_dot, 0.0, theta_dot], abs=1e-6)


def test_the_scripted_advisor_balances_every_level_and_a_constant_push_does_not():
    lengths = np.array([0.4, 0.5, 1.0, 2.0, 2.4])
    assert run_episodes(advisor_action, lengths, np.random.default_rng(0)).tolist() == [500.0] * 5
    always_right = run_episodes(lambda obs: np.ones(len(obs), dtype=np.int64), lengths,
                                np.random.default_rng(0))
    assert always_right.max() < 100


def _rollout(variant: str, **overrides):
    cfg = AskACConfig(variant=variant, rollout_steps=128, **overrides)
    torch.manual_seed(0)
    model = AskActorCritic()
    learner = Learner(cfg, 1.0, np.random.default_rng(0))
    return model, learner.collect(model)


def test_cm_queries_the_advisor_every_step_but_stores_the_learners_own_actions():
    model, r = _rollout("cm")
    assert float(model.advisor_queries) == 128 and float(model.env_steps) == 128
    assert (r.advice >= 0).all()
    assert (r.actions != r.advice).any()  # PPO sees the sampled action, not the executed one
    # The advisor acted: no episode fails within 128 steps.
    assert float(model.train_return) == 128


def test_askac_queries_exactly_when_it_samples_ask_and_stores_the_advice_shifted():
    model, r = _rollout("askac")
    asked = r.actions == 0
    assert 0 < int(asked.sum()) < 128  # an untrained ask head asks about half the time
    assert float(model.advisor_queries) == int(asked.sum())
    assert ((r.advice >= 1) == asked).all()  # advice a*+1 in A' on asked states only


def test_vanilla_never_queries():
    model, r = _rollout("vanilla")
    assert float(model.advisor_queries) == 0 and (r.advice == -1).all()


def test_the_pole_length_follows_the_shared_step_counter():
    cfg = AskACConfig(rounds_per_level=1, rollouts_per_round=1, rollout_steps=16)
    learner = Learner(cfg, 1.2, np.random.default_rng(0))
    assert [learner._pole_length(s) for s in (0, 15, 16, 32, 999)] == pytest.approx(
        [0.6, 0.6, 1.2, 2.4, 2.4])


def test_an_update_block_runs_selector_then_ppo_then_imitation_steps():
    cfg = AskACConfig(rollout_steps=32, ppo_epochs=2)
    torch.manual_seed(0)
    model, learner = AskActorCritic(), Learner(cfg, 1.0, np.random.default_rng(0))
    phases = []
    for _ in range(7):
        before = learner.unit
        learner.loss(model)
        phases.append(learner.phases[(before % 6) // 2])
    assert phases == ["select", "select", "ppo", "ppo", "imitate", "imitate", "select"]
    assert float(model.env_steps) == 64  # the 7th step started a second rollout
    assert float(model.selector_momentum) > 0


def test_federation_totals_weight_each_rounds_mean_increment_by_its_replies():
    history = [{"advisor_queries": 10.0, "replies": 3}, {"advisor_queries": 14.0, "replies": 2}]
    assert federation_total(history, "advisor_queries") == 10 * 3 + 4 * 2


def test_level_returns_take_the_last_window_of_each_level_and_greedy_at_its_end():
    cfg = AskACConfig(pole_lengths=(0.5, 1.0), rounds_per_level=3, rollouts_per_round=1,
                      rollout_steps=1000, train_window_steps=2000)
    history = [{"train_return": float(r), "return_level1": 10.0 * r, "return_level2": 100.0 * r}
               for r in range(1, 7)]
    assert level_returns(history, cfg) == {"train": [2.5, 5.5], "greedy": [30.0, 600.0]}


def test_the_official_schedule_falls_to_zero_at_every_level_end_from_one_over_k():
    cfg = AskACConfig(rounds_per_level=1, rollouts_per_round=1, rollout_steps=100)
    assert [cfg.schedule_factor(t) for t in (0, 50, 99, 100, 150, 200, 250)] == pytest.approx(
        [1.0, 0.5, 0.01, 0.5, 0.25, 1 / 3, 1 / 6])
    assert AskACConfig(schedule="constant").schedule_factor(12345) == 1.0


def test_the_shared_loop_clips_the_gradient_norm_the_config_names():
    from types import SimpleNamespace

    from clients.training import _plain_backward

    weight = torch.nn.Parameter(torch.zeros(4))
    model = torch.nn.Module()
    model.weight = weight
    method = SimpleNamespace(train_step=lambda m, batch, spec: (m.weight * 10.0).sum())
    spec = SimpleNamespace(method=AskACConfig(max_grad_norm=0.5))
    _plain_backward(method, model, spec)(())
    assert float(weight.grad.norm()) == pytest.approx(0.5)  # 20 before clipping
