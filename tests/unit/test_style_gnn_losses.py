"""Claims about the GNN style transfer's losses and measures, on hand-computed toys
(methods/style_gnn/losses.py; Jing et al., ECCV 2022, arXiv:2207.11681)."""

from __future__ import annotations

import pytest
import torch

from methods.style_gnn.losses import (
    EPS,
    adain,
    content_loss,
    fold_patches,
    mean_pixel_l2,
    patch_nn_distance,
    patches,
    structure_loss,
    style_loss,
)
from methods.style_gnn.method import diversity_by_k

pytestmark = pytest.mark.unit


def test_adain_moves_content_to_the_style_statistics_keeping_its_shape():
    content = torch.tensor([1.0, 3.0]).view(1, 1, 1, 2)  # mean 2, std 1
    style = torch.tensor([2.0, 6.0]).view(1, 1, 1, 2)  # mean 4, std 2
    out = adain(content, style)
    # (x − 2)/√(1+ε)·√(4+ε) + 4 = [2, 6] up to ε
    assert out.flatten().tolist() == pytest.approx([2.0, 6.0], abs=1e-4)


def test_content_loss_is_the_mean_squared_feature_distance():
    a = torch.zeros(1, 2, 1, 2)
    b = torch.tensor([1.0, 1.0, 2.0, 0.0]).view(1, 2, 1, 2)
    assert content_loss(a, b).item() == pytest.approx((1 + 1 + 4 + 0) / 4)


def test_style_loss_sums_mean_and_std_mismatch_over_layers():
    out = torch.tensor([0.0, 2.0]).view(1, 1, 1, 2)  # μ 1, σ √(1+ε)
    flat = torch.tensor([1.0, 1.0]).view(1, 1, 1, 2)  # μ 1, σ √ε
    one_layer = (torch.tensor(1 + EPS).sqrt() - torch.tensor(EPS).sqrt()).item() ** 2
    assert style_loss([out], [flat]).item() == pytest.approx(one_layer, rel=1e-4)
    assert style_loss([out, out], [flat, flat]).item() == pytest.approx(2 * one_layer, rel=1e-4)
    assert style_loss([out], [out]).item() == 0.0


def test_folding_the_patches_of_a_map_gives_the_map_back():
    x = torch.randn(2, 3, 5, 4)
    nodes = patches(x)
    assert nodes.shape == (2, 5 * 4, 3 * 9)
    torch.testing.assert_close(fold_patches(nodes, 5, 4), x)


def test_patch_nn_distance_is_zero_on_the_style_itself_and_one_for_orthogonal_features():
    style = torch.zeros(1, 2, 4, 4)
    style[:, 0] = 1.0  # every patch points along channel 0
    orthogonal = torch.zeros(1, 2, 4, 4)
    orthogonal[:, 1] = 1.0
    assert patch_nn_distance(style, style).item() == pytest.approx(0.0, abs=1e-6)
    assert patch_nn_distance(orthogonal, style).item() == pytest.approx(1.0, abs=1e-6)


def test_structure_loss_ignores_per_channel_statistics_but_not_layout():
    x = torch.randn(1, 3, 6, 6)
    rescaled = 3.0 * x + 2.0  # what a style's statistics may do
    assert structure_loss(rescaled, x).item() == pytest.approx(0.0, abs=1e-4)
    assert structure_loss(x.flip(-1), x).item() > 0.1


def test_mean_pixel_l2_is_the_mean_rgb_euclidean_distance():
    a = torch.zeros(1, 3, 2, 2)
    b = torch.zeros(1, 3, 2, 2)
    b[0, :, 0, 0] = torch.tensor([0.3, 0.4, 0.0])  # one of 4 pixels off by 0.5
    assert mean_pixel_l2(a, b).item() == pytest.approx(0.5 / 4)


def test_diversity_by_k_averages_each_k_against_the_others():
    base = torch.zeros(1, 3, 1, 1)
    outputs = {1: base, 3: base + 0.1, 8: base + 0.3}  # per-channel offsets → L2 = √3·offset
    div = diversity_by_k(outputs)
    s3 = 3 ** 0.5
    assert div["1"] == pytest.approx((0.1 + 0.3) * s3 / 2)
    assert div["3"] == pytest.approx((0.1 + 0.2) * s3 / 2)
    assert div["8"] == pytest.approx((0.3 + 0.2) * s3 / 2)
