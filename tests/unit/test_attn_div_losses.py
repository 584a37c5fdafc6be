"""The Intra-/Inter-ADR losses (methods/attn_div/losses.py) on hand-computed toys."""

import math

import pytest
import torch

from methods.attn_div.losses import (
    adr_classification_loss,
    attention_diversity,
    attention_entropy,
    inter_adr_loss,
    inter_adr_terms,
    intra_adr_loss,
    spatial_attention,
)
from methods.attn_div.nets import mixstyle

pytestmark = pytest.mark.unit

LN3 = math.log(3.0)  # softmax([ln 3, 0]) = [0.75, 0.25]


def _maps(*channel_logits):
    """1×C×1×P features from per-channel logit rows."""
    return torch.tensor([channel_logits], dtype=torch.float32).unsqueeze(2)


def test_intra_loss_is_lower_when_channels_peak_at_different_positions():
    diverse = _maps([LN3, 0.0], [0.0, LN3])     # A = [[.75,.25],[.25,.75]]: M = [.75, .75]
    collapsed = _maps([LN3, 0.0], [LN3, 0.0])   # A = [[.75,.25],[.75,.25]]: M = [.75, .25]
    assert intra_adr_loss(diverse, top_k=1).item() == pytest.approx(0.25)
    assert intra_adr_loss(collapsed, top_k=1).item() == pytest.approx(0.5)
    # k = C averages all channels: every softmax sums to 1 over P = 2 positions → M = ½.
    assert intra_adr_loss(diverse, top_k=2).item() == pytest.approx(0.5)


def test_classification_loss_is_the_mean_of_the_two_cross_entropies():
    labels = torch.tensor([0])
    uniform = torch.zeros(1, 4)                 # CE = ln 4
    confident = torch.tensor([[LN3, 0.0, 0.0, 0.0]])  # p(0) = 3/6 → CE = ln 2
    loss = adr_classification_loss(uniform, confident, labels)
    assert loss.item() == pytest.approx(0.5 * (math.log(4) + math.log(2)))


def test_spatial_attention_is_the_channel_mean_of_the_softmax_maps():
    a = spatial_attention(_maps([LN3, 0.0], [0.0, 0.0]))   # ([.75,.25] + [.5,.5]) / 2
    assert a[0].tolist() == pytest.approx([0.625, 0.375])


def test_inter_terms_pull_towards_right_models_and_measure_energy_where_models_are_wrong():
    student = torch.zeros(2, 1, 1, 2, requires_grad=True)   # a = [.5, .5] for both samples
    right_model = torch.tensor([[[[LN3, 0.0]]], [[[LN3, 0.0]]]])   # a = [.75, .25]
    wrong_model = torch.tensor([[[[0.0, LN3]]], [[[0.0, LN3]]]])   # a = [.25, .75]
    # sample 0: only `right_model` is right; sample 1: nobody is right
    correct = torch.tensor([[False, False], [True, False], [False, False]])
    dir_loss, dvr_loss = inter_adr_terms([student], [[student.detach()], [right_model], [wrong_model]], correct)
    # L_dir: sample 0 → ((.5−.75)² + (.5−.25)²), sample 1 masked out (u⁺ = 0) → mean over 4 = 1/32
    assert dir_loss.item() == pytest.approx(0.0625 * 2 / 4)
    # L_dvr: both samples have a wrong model (u⁻ > 0) → mean(a²) = .25
    assert dvr_loss.item() == pytest.approx(0.25)
    dir_loss.backward()
    assert student.grad is not None and student.grad[1].abs().sum() == 0  # nobody right: no pull


def test_inter_terms_weight_each_stage_by_its_channel_count():
    one = torch.zeros(1, 1, 1, 2)
    two = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[[LN3, 0.0]]]])
    correct = torch.tensor([[False], [True]])
    d1, _ = inter_adr_terms([one], [[one], [target]], correct)
    d2, _ = inter_adr_terms([two], [[two], [target]], correct)
    assert d2.item() == pytest.approx(2 * d1.item())


def test_inter_loss_sign_follows_the_code_or_the_paper():
    d, v = torch.tensor(0.01), torch.tensor(0.3)
    assert inter_adr_loss(d, v, dir_weight=200, dvr_weight=1, sign="code").item() == pytest.approx(2.0 - 0.3)
    assert inter_adr_loss(d, v, dir_weight=200, dvr_weight=1, sign="paper").item() == pytest.approx(2.3)


def test_attention_diversity_is_zero_for_one_peak_and_one_for_evenly_spread_peaks():
    same = torch.zeros(1, 4, 2, 2)
    same[0, :, 0, 0] = 1.0                      # every channel peaks at (0, 0)
    spread = torch.eye(4).reshape(1, 4, 2, 2)   # channel c peaks at position c
    dead = torch.cat([spread, torch.zeros(1, 3, 2, 2)], dim=1)  # silent channels are ignored
    assert attention_diversity(same).item() == pytest.approx(0.0)
    assert attention_diversity(spread).item() == pytest.approx(1.0)
    assert attention_diversity(dead).item() == pytest.approx(1.0)


def test_attention_entropy_is_one_for_a_flat_map_and_matches_a_hand_computed_peak():
    flat = torch.zeros(1, 3, 2, 2)                      # every softmax is uniform over 4 positions
    peaked = _maps([LN3, 0.0], [LN3, 0.0])              # a = [0.75, 0.25] over 2 positions
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2.0)
    assert attention_entropy(flat).item() == pytest.approx(1.0)
    assert attention_entropy(peaked).item() == pytest.approx(expected)


def test_mixstyle_keeps_a_batch_of_one_style_and_is_off_at_p_zero():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 4).repeat(5, 1, 1, 1)  # five samples, one style: mixing changes nothing
    assert torch.allclose(mixstyle(x, p=1.0, alpha=0.1), x, atol=1e-4)
    y = torch.randn(5, 3, 4, 4)
    assert torch.equal(mixstyle(y, p=0.0, alpha=0.1), y)
    assert not torch.allclose(mixstyle(y, p=1.0, alpha=0.1), y)
