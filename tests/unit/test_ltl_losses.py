"""Claims about LTL's losses and neuron (methods/ltl/losses.py, nets.py) on hand-computed toys."""

import math

import pytest
import torch

from methods.ltl.losses import normalised_target, percentile, tandem_loss
from methods.ltl.nets import SpikeFn, lif_step

pytestmark = pytest.mark.unit


def test_percentile_is_the_kth_smallest_entry_of_the_whole_tensor():
    values = torch.arange(1001.0).flip(0).reshape(7, 11, 13)  # 0..1000, shuffled in layout
    # k = 1 + round(0.999 · 1000) = 1000 → the 1000th smallest of 0..1000 is 999.
    assert percentile(values, 99.9).item() == 999.0
    assert percentile(values, 100).item() == 1000.0
    assert percentile(values, 0).item() == 0.0


def test_target_divides_by_the_percentile_and_clips_to_unit_rates():
    activation = torch.tensor([0.0, 1.0, 2.0, 4.0])
    # p = 50: k = 1 + round(1.5) = 3 → scale 2.0; 4/2 = 2 is clipped to 1.
    assert normalised_target(activation, 50).tolist() == [0.0, 0.5, 1.0, 1.0]


def test_a_silent_teacher_layer_gives_a_zero_target_not_nan():
    target = normalised_target(torch.zeros(3, 4), 99.9)
    assert torch.equal(target, torch.zeros(3, 4))


def test_tandem_loss_is_cross_entropy_plus_weighted_layer_mse():
    logits = torch.zeros(1, 2)  # CE = ln 2
    rates = [torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 0.0]])]
    teacher = [torch.tensor([[0.0, 2.0]]), torch.tensor([[3.0, 0.0]])]
    # p = 100: layer 1 target [0, 1] → MSE 0.25; layer 2 target [1, 0] → MSE 0; c_l = 2.
    loss = tandem_loss(rates, logits, torch.tensor([1]), teacher, p=100, local_weight=2.0)
    assert loss.item() == pytest.approx(math.log(2) + 2 * 0.25)


def test_tandem_loss_refuses_mismatched_layer_counts():
    with pytest.raises(ValueError, match="2 student layers but 1"):
        tandem_loss([torch.zeros(1)] * 2, torch.zeros(1, 2), torch.tensor([0]), [torch.zeros(1)])


def test_spike_is_heaviside_forward_and_boxcar_surrogate_backward():
    membrane = torch.tensor([0.3, 0.5, 0.7, 0.81], requires_grad=True)
    spikes = SpikeFn.apply(membrane, 0.6, 0.2)
    assert spikes.tolist() == [0.0, 0.0, 1.0, 1.0]
    spikes.sum().backward()
    assert membrane.grad.tolist() == [0.0, 1.0, 1.0, 0.0]  # 1[|m − 0.6| < 0.2]


def test_lif_neuron_integrates_leaks_fires_and_hard_resets():
    decay, drive = math.exp(-0.1), torch.tensor([0.25])
    state, train, membranes = (None, None), [], []
    for _ in range(6):
        state = lif_step(*state, drive, decay=decay, threshold=0.6, width=0.2)
        membranes.append(state[0].item())
        train.append(state[1].item())
    # m1 = 0.25, m2 = 0.25λ + 0.25 = 0.476, m3 = 0.476λ + 0.25 = 0.681 > 0.6 → spike, reset.
    assert membranes[:4] == pytest.approx([0.25, 0.25 * decay + 0.25,
                                           (0.25 * decay + 0.25) * decay + 0.25, 0.25])
    assert train == [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
