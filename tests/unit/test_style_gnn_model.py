"""Claims about the GNN style transfer's model and federated data layout
(methods/style_gnn/{nets,data,method}.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.registry import get_method
from methods.resolve import parse_run_spec
from methods.style_gnn.data import FAMILIES, family_shards, style_pairs
from methods.style_gnn.nets import PatchGraphAttention, StyleTransferNet

pytestmark = pytest.mark.unit


def _net(variant: str = "gnn", k: int = 3) -> StyleTransferNet:
    return StyleTransferNet(variant=variant, widths=(8, 8, 8), encoder_seed=7, hidden=4, heads=2,
                            k=k, style_scales=(1.0, 0.75))


def test_with_one_edge_the_graph_is_a_patch_swap():
    # content == style at one scale: every content patch's nearest style patch is itself,
    # so k = 1 must hand back exactly the style features whatever the attention weights.
    torch.manual_seed(0)
    layer = PatchGraphAttention(node_dim=4 * 9, hidden=5, heads=2)
    features = torch.rand(2, 4, 6, 6)
    torch.testing.assert_close(layer(features, [features], k=1), features)


def test_more_edges_blend_several_style_patches():
    torch.manual_seed(0)
    layer = PatchGraphAttention(node_dim=4 * 9, hidden=5, heads=2)
    features = torch.rand(1, 4, 6, 6)
    assert (layer(features, [features], k=4) - features).abs().max() > 1e-3


def test_the_frozen_encoder_is_identical_everywhere_and_never_shared():
    torch.manual_seed(1)
    a = _net()
    torch.manual_seed(2)
    b = _net()
    x = torch.rand(1, 3, 32, 32)
    for fa, fb in zip(a.encode(x), b.encode(x)):
        torch.testing.assert_close(fa, fb)  # same seed → same encoder, whatever the run's RNG
    assert not any(key.startswith("_encoder") for key in a.state_dict())
    assert all(p.requires_grad for p in a.parameters())  # only trainable parts are parameters


def test_the_adain_baseline_has_no_graph_and_both_produce_images():
    gnn, baseline = _net("gnn"), _net("adain")
    assert baseline.graph is None and not any(k.startswith("graph") for k in baseline.state_dict())
    x = torch.rand(2, 3, 32, 32)
    for model in (gnn, baseline):
        out = model(x, x.flip(0))
        assert out.shape == x.shape and 0.0 <= out.min() and out.max() <= 1.0


def test_nodes_hold_disjoint_pairs_of_their_own_style_families():
    x, labels = style_pairs("train", 4, 32, seed=0)
    assert x.shape == (4 * len(FAMILIES), 6, 32, 32) and 0.0 <= x.min() and x.max() <= 1.0
    shards = family_shards(labels, 3)
    assert sorted(np.concatenate(shards).tolist()) == list(range(len(labels)))
    families = [set(labels[s].tolist()) for s in shards]
    assert all(len(f) == 2 for f in families) and not set.intersection(*families)


def test_test_pairs_cover_every_family_and_differ_from_training_crops():
    train, _ = style_pairs("train", 4, 32, seed=0)
    test, labels = style_pairs("test", 12, 32, seed=0)
    assert set(labels.tolist()) == set(range(len(FAMILIES)))
    # content crops come from disjoint photo regions: no test content equals a train one
    assert min(np.abs(t[:3] - c[:3]).max() for t in test for c in train) > 0


def test_summary_keys_and_example_grid_from_two_tiny_stages(tmp_path):
    from methods.base import StageResult

    method = get_method("style-gnn")
    spec = parse_run_spec({"method": "style-gnn", "style-gnn.encoder-widths": "8,8,8",
                           "style-gnn.hidden": 4, "style-gnn.test-pairs": 6,
                           "style-gnn.image-size": 32})
    results = {stage.name: StageResult([], method.stage_arrays(spec.for_stage(stage), stage, {}))
               for stage in method.stages(spec)}
    summary = method.summarize(spec, results, tmp_path)
    assert set(summary["patch_nn_distance"]) == {"gnn", "adain"} == set(summary["content_loss"])
    assert set(summary["diversity_by_k"]) == {"1", "3", "8"}
    assert all(v > 0 for v in summary["diversity_by_k"].values())  # k changes the output
    assert (tmp_path / "examples" / "grid.png").stat().st_size > 0


def test_train_ks_makes_each_batch_train_at_one_of_the_listed_k():
    method = get_method("style-gnn")
    spec = parse_run_spec({"method": "style-gnn", "style-gnn.encoder-widths": "8,8,8",
                           "style-gnn.hidden": 4, "style-gnn.image-size": 32,
                           "style-gnn.pairs-per-family": 1, "style-gnn.train-ks": "1,8"})
    torch.manual_seed(0)
    model = method.build_model(spec)
    batch = (torch.tensor(method.train_dataset(spec).x[:2]), None)
    seen = set()
    for _ in range(12):
        assert torch.isfinite(method.train_step(model, batch, spec))
        seen.add(model.k)
    assert seen == {1, 8}
