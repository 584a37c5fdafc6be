"""Ask-AC's losses (methods/askac/losses.py) on toys computed by hand."""

import math

import numpy as np
import pytest
import torch

from methods.askac.losses import (
    action_log_prob,
    ask_loss,
    ask_policy_probs,
    gae,
    imitation_loss,
    ppo_loss,
    select_unstable,
)

pytestmark = pytest.mark.unit

# π_ask = (0.5, 0.5), π = (0.25, 0.75)  →  π' = (0.5, 0.5·0.25, 0.5·0.75)
ASK_LOGITS = torch.tensor([[0.0, 0.0]])
STD_LOGITS = torch.tensor([[0.0, math.log(3.0)]])


def test_augmented_policy_puts_ask_first_and_scales_the_standard_head_by_acting():
    probs = ask_policy_probs(ASK_LOGITS, STD_LOGITS)
    assert probs.tolist()[0] == pytest.approx([0.5, 0.125, 0.375])
    assert float(probs.sum()) == pytest.approx(1.0)


def test_log_prob_of_ask_uses_the_ask_head_only_and_of_an_action_both_heads():
    two = (ASK_LOGITS.repeat(2, 1), STD_LOGITS.repeat(2, 1))
    with_ask = action_log_prob(*two, torch.tensor([0, 2]), with_ask=True)
    assert with_ask.tolist() == pytest.approx([math.log(0.5), math.log(0.375)], abs=1e-6)
    plain = action_log_prob(*two, torch.tensor([1, 0]), with_ask=False)  # vanilla / CM: over A
    assert plain.tolist() == pytest.approx([math.log(0.75), math.log(0.25)], abs=1e-6)


def test_gae_stops_at_an_episode_end_and_bootstraps_otherwise():
    # γ = 0.9, λ = 0.5. Step 1 ends the episode: δ1 = 1 − 0.25; δ0 = 1 + 0.9·0.25 − 0.5;
    # A0 = δ0 + 0.9·0.5·A1.
    adv, ret = gae(np.ones(2), np.array([0.5, 0.25]), np.array([False, True]), 10.0, 0.9, 0.5)
    assert adv.tolist() == pytest.approx([0.725 + 0.45 * 0.75, 0.75])
    assert ret.tolist() == pytest.approx([0.725 + 0.45 * 0.75 + 0.5, 1.0])
    # No episode end: the last value 10 is bootstrapped, δ1 = 1 + 9 − 0.25.
    adv, _ = gae(np.ones(2), np.array([0.5, 0.25]), np.array([False, False]), 10.0, 0.9, 0.5)
    assert adv[1] == pytest.approx(9.75)


def test_ppo_loss_clips_the_ratio_and_adds_the_weighted_value_error():
    # Advantages (1, 3) normalise to (−1/√2, 1/√2); ratio 1.5 is clipped to 1.2 where that is
    # the minimum (positive advantage) and kept where not (negative advantage).
    old = torch.zeros(2)
    new = torch.full((2,), math.log(1.5))
    a = 1 / math.sqrt(2)
    surrogate = (min(a * 1.5, a * 1.2) + min(-a * 1.5, -a * 1.2)) / 2
    loss = ppo_loss(new, old, torch.tensor([1.0, 3.0]), torch.zeros(2), torch.tensor([1.0, 3.0]),
                    clip=0.2, value_coef=0.5)
    assert float(loss) == pytest.approx(-surrogate + 0.5 * 5.0, abs=1e-5)


def test_selector_asks_on_the_largest_critic_errors_and_more_when_the_error_spikes():
    # First rollout (m = 0): m = 0.1·2 and the rate is its 10 % ceiling → ⌈0.4⌉ = 1 state.
    chosen, m, rate = select_unstable(np.array([1.0, 4.0, 0.0, 3.0]), 0.0)
    assert chosen.tolist() == [1] and m == pytest.approx(0.2) and rate == pytest.approx(0.1)
    # Steady error (δ̄ = m): the rate settles at 1 %.
    steady = np.full(100, 2.0)
    _, m, rate = select_unstable(steady, 2.0)
    assert m == pytest.approx(2.0) and rate == pytest.approx(0.01)
    # A 10× spike (the pole changed): m = 0.9 + 1 = 1.9, rate = 0.1·1/1.9 → 6 of 100 states.
    spike = np.arange(100, dtype=float) / 4.95  # mean 10
    chosen, m, rate = select_unstable(spike, 1.0)
    assert m == pytest.approx(1.9) and rate == pytest.approx(0.1 / 1.9)
    assert sorted(chosen.tolist()) == list(range(94, 100))


def test_ask_loss_is_the_negative_ask_probability_weighted_by_the_selected_share():
    probs = torch.tensor([[0.5, 0.2, 0.3], [0.3, 0.3, 0.4]])
    assert float(ask_loss(probs, batch_size=10)) == pytest.approx(0.5 * 2 / 10 * -(0.5 + 0.3) / 2)


def test_imitation_loss_covers_only_advised_states_and_is_none_without_advice():
    probs = torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    loss = imitation_loss(probs, torch.tensor([1, -1, 0]))
    assert float(loss) == pytest.approx(2 / 3 * -(0.8 + 0.5) / 2)
    assert imitation_loss(probs, torch.tensor([-1, -1, -1])) is None


def test_imitation_gradient_raises_the_advised_action_probability():
    logits = torch.zeros(1, 2, requires_grad=True)
    imitation_loss(logits.softmax(-1), torch.tensor([1])).backward()
    assert logits.grad[0, 1] < 0 < logits.grad[0, 0]  # a descent step raises p(advice)
