"""HSCL's losses (methods/hscl/losses.py) on toys small enough to compute by hand."""

import math

import pytest
import torch

from methods.hscl.data import LABELED_ANOMALY as A
from methods.hscl.data import LABELED_NORMAL as N
from methods.hscl.data import UNLABELED as U
from methods.hscl.losses import (
    convex_contrastive_loss,
    hscl_loss,
    nt_xent,
    prototype_loss,
    prototype_weights,
    supervised_bce,
)

pytestmark = pytest.mark.unit

E1, E2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])


def test_nt_xent_of_two_orthogonal_pairs_is_log_one_plus_two_over_e():
    # Rows 0,2 are one image's views (both e1), rows 1,3 the other's (both e2), τ = 1:
    # each row sees its positive at cos 1 and two negatives at cos 0 → −log(e / (e + 2)).
    z = torch.stack([E1, E2, E1, E2])
    assert nt_xent(z, temperature=1.0).item() == pytest.approx(math.log(1 + 2 / math.e), rel=1e-6)


def test_nt_xent_prefers_views_that_agree():
    agree = torch.stack([E1, E2, E1, E2])
    swapped = torch.stack([E1, E2, E2, E1])  # each row's "positive" is the other image
    assert nt_xent(agree, 0.5) < nt_xent(swapped, 0.5)


def test_prototype_weights_are_one_on_normals_cosine_on_unlabeled_zero_on_anomalies():
    z = torch.stack([E2, -E1, E1])
    w = prototype_weights(z, E1 * 3.0, torch.tensor([N, U, A]))  # p is used normalised
    assert w.tolist() == pytest.approx([1.0, 0.0, 0.0])
    w = prototype_weights(torch.stack([E2]), E1, torch.tensor([U]))
    assert w.item() == pytest.approx(0.5)  # (cos + 1) / 2 with cos = 0


def test_prototype_loss_matches_the_hand_computed_value_and_trains_only_p():
    # N at e1 (cos 1, w 1), U at e2 (cos 0, w 0.5), A at −e1 (cos −1), A at e2 (cos 0), p = e1:
    # mean_{N,U} (w(cos−1))² = (0 + 0.25)/2; mean_A (cos+1)² = (0 + 1)/2 → 0.625.
    z = torch.stack([E1, E2, -E1, E2]).requires_grad_(True)
    p = E1.clone().requires_grad_(True)
    loss = prototype_loss(z, p, torch.tensor([N, U, A, A]))
    assert loss.item() == pytest.approx(0.625)
    loss.backward()
    assert z.grad is None and p.grad is not None and p.grad.abs().sum() > 0


def test_convex_contrastive_loss_skips_low_weight_unlabeled_samples():
    # Only the labeled normal (w 1) may anchor or be a positive: the unlabeled sample's
    # w = 0.3 ≤ 0.4. Anchor = positive = e1, negative = the anomaly −e1, r = 2:
    # −log softmax([2, −2])₀ = log(1 + e^−4), whatever the random draws.
    z = torch.stack([E1, E2, -E1])
    roles = torch.tensor([N, U, A])
    torch.manual_seed(0)
    loss = convex_contrastive_loss(z, torch.tensor([1.0, 0.3, 0.0]), roles, k=2, scale=2.0,
                                   threshold=0.4)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-4)), rel=1e-5)
    # With the threshold below 0.3 the unlabeled e2 joins the anchors: the loss rises.
    torch.manual_seed(0)
    looser = convex_contrastive_loss(z, torch.tensor([1.0, 0.3, 0.0]), roles, k=2, scale=2.0,
                                     threshold=0.2)
    assert looser.item() > loss.item() + 0.05


def test_hscl_loss_is_zero_without_labeled_anomalies_or_normals():
    z = torch.stack([E1, E2, E1])
    assert hscl_loss(z, E1, torch.tensor([N, U, U])).item() == 0.0
    assert hscl_loss(z, E1, torch.tensor([A, U, U])).item() == 0.0
    assert hscl_loss(z, E1, torch.tensor([N, U, A])).item() > 0.0


def test_supervised_bce_uses_only_labeled_images():
    logits = torch.tensor([0.0, 2.0, 5.0], requires_grad=True)
    loss = supervised_bce(logits, torch.tensor([N, A, U]))
    # normal → target 1 at logit 0: log 2; anomaly → target 0 at logit 2: log(1 + e²).
    assert loss.item() == pytest.approx((math.log(2) + math.log(1 + math.e ** 2)) / 2, rel=1e-6)
    loss.backward()
    assert logits.grad[2].item() == 0.0
    empty = supervised_bce(logits, torch.tensor([U, U, U]))
    assert empty.item() == 0.0 and empty.requires_grad
