"""Claims about DynaST's losses and dynamic attention (methods/dynast), on hand-computed toys."""

import pytest
import torch

from methods.dynast.attention import (
    DynamicAttention,
    child_candidates,
    neighbour_candidates,
    straight_through_mask,
)
from methods.dynast.losses import generator_loss, warp_loss

pytestmark = pytest.mark.unit


def test_warp_loss_compares_every_block_with_the_target_pooled_to_its_scale():
    target = torch.zeros(1, 3, 4, 4)
    target[..., :2, :2] = 1.0  # one bright 2×2 corner: pooled to 2×2 it is one pixel of 1
    coarse = torch.zeros(1, 3, 2, 2)  # misses the bright pixel: |0 − 1| on 1 of 4 pixels
    fine = target.clone()  # exact
    assert warp_loss([coarse, fine], target).item() == pytest.approx(0.25)


def test_generator_loss_weights_reconstruction_and_warp_terms():
    target = torch.zeros(1, 3, 2, 2)
    output = torch.full((1, 3, 2, 2), 0.5)  # recon L1 = 0.5
    warp = torch.full((1, 3, 2, 2), 0.1)  # warp L1 = 0.1
    loss = generator_loss(output, [warp], target, recon_weight=10.0, warp_weight=100.0)
    assert loss.item() == pytest.approx(10 * 0.5 + 100 * 0.1)


def test_pruning_mask_is_a_hard_step_forward_with_the_sigmoid_derivative_backward():
    scores = torch.tensor([-2.0, 0.5, 3.0], requires_grad=True)
    mask = straight_through_mask(scores)
    assert mask.tolist() == [0.0, 1.0, 1.0]
    mask.sum().backward()
    sig = torch.sigmoid(scores.detach())
    assert torch.allclose(scores.grad, sig * (1 - sig))


def test_child_candidates_are_the_four_children_of_the_parents_top_keys():
    # 2×2 coarse grid; every coarse query's single top key is coarse cell 3 = (1, 1).
    topk = torch.full((1, 4, 1), 3)
    fine = child_candidates(topk, (2, 2))
    assert fine.shape == (1, 16, 4)
    # Children of (1, 1) on the 4×4 grid: (2,2)=10, (2,3)=11, (3,2)=14, (3,3)=15, for every query.
    assert all(sorted(row) == [10, 11, 14, 15] for row in fine[0].tolist())
    # A fine query inherits its own parent's keys: make only parent 0's key differ.
    topk[0, 0, 0] = 0
    fine = child_candidates(topk, (2, 2))
    assert sorted(fine[0, 0].tolist()) == [0, 1, 4, 5] and sorted(fine[0, 2].tolist()) == [10, 11, 14, 15]


def test_neighbour_candidates_add_the_four_grid_neighbours_clamped_at_borders():
    topk = torch.tensor([[[4]]])  # (1, 1) on a 3×3 grid: the centre → itself + 4 neighbours
    assert sorted(neighbour_candidates(topk, (3, 3))[0, 0].tolist()) == [1, 3, 4, 5, 7]
    corner = torch.tensor([[[0]]])  # (0, 0): up/left clamp back onto the key itself
    assert sorted(neighbour_candidates(corner, (3, 3))[0, 0].tolist()) == [0, 0, 0, 1, 3]


def test_dynamic_attention_keeps_a_per_query_number_of_keys_and_counts_its_entries():
    torch.manual_seed(0)
    layer = DynamicAttention(dim=8, pos_dim=2, prune_dim=4, temperature=None)
    q, k = torch.randn(2, 6, 8), torch.randn(2, 5, 8)
    pos_q, pos_k, image = torch.randn(2, 6, 2), torch.randn(2, 5, 2), torch.rand(2, 5, 3)
    dense = layer(q, pos_q, k, pos_k, k, image, top_k=2)
    assert dense.entries == 2 * 6 * 5 and dense.topk.shape == (2, 6, 2)
    assert dense.kept.min() >= 0 and dense.kept.max() <= 5
    assert dense.kept.float().std() > 0  # random projections keep different counts per query
    # The warp is a convex combination of exemplar pixels (softmax weights).
    assert dense.warp.min() >= image.min() - 1e-6 and dense.warp.max() <= image.max() + 1e-6
    candidates = torch.tensor([0, 2, 4]).expand(2, 6, 3)
    sparse = layer(q, pos_q, k, pos_k, k, image, top_k=2, candidates=candidates)
    assert sparse.entries == 2 * 6 * 3
    assert set(sparse.topk.unique().tolist()) <= {0, 2, 4}  # top keys come from the candidates


def test_with_all_keys_as_candidates_the_sparse_path_equals_the_dense_path():
    torch.manual_seed(1)
    layer = DynamicAttention(dim=8, pos_dim=2, prune_dim=4, temperature=0.5)
    q, k = torch.randn(1, 4, 8), torch.randn(1, 5, 8)
    pos_q, pos_k, image = torch.randn(1, 4, 2), torch.randn(1, 5, 2), torch.rand(1, 5, 3)
    dense = layer(q, pos_q, k, pos_k, k, image, top_k=3)
    every = torch.arange(5).expand(1, 4, 5)
    sparse = layer(q, pos_q, k, pos_k, k, image, top_k=3, candidates=every)
    assert torch.allclose(dense.y, sparse.y, atol=1e-5)
    assert torch.allclose(dense.warp, sparse.warp, atol=1e-6)
    assert torch.equal(dense.kept, sparse.kept)
