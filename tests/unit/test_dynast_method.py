"""Claims about DynaST's data and federated mapping (methods/dynast), fast."""

import numpy as np
import pytest
import torch

from methods.resolve import parse_run_spec
from methods.dynast.dolls import NUM_LABELS, make_pairs, split_pair
from methods.registry import get_method

pytestmark = pytest.mark.unit


def test_a_pair_is_one_doll_in_two_poses_with_one_hot_maps():
    x, y = make_pairs((0, 1), 3, seed=5)
    assert x.shape == (6, 2 * (3 + NUM_LABELS), 32, 32) and y.tolist() == [0, 0, 0, 1, 1, 1]
    target, s, exemplar, s_r = split_pair(x)
    assert np.array_equal(s.sum(1), np.ones((6, 32, 32))) and np.array_equal(s_r.sum(1), np.ones((6, 32, 32)))
    assert 0.0 <= x[:, :3].min() and x[:, :3].max() <= 1.0
    assert not np.array_equal(s, s_r)  # the poses differ
    # The same identity: the exemplar's torso pixels share colours with the target's torso.
    torso_target = target[0][:, s[0, 1] > 0]
    torso_exemplar = exemplar[0][:, s_r[0, 1] > 0]
    assert np.abs(torso_target.mean(1) - torso_exemplar.mean(1)).max() < 0.15


def test_each_node_holds_one_texture_family():
    method = get_method("dynast")
    spec = parse_run_spec({"method": "dynast", "num-clients": "3", "dynast.pairs-per-family": "4"})
    labels = method.train_dataset(spec).y
    shards = method.node_partition(spec, labels, 3)
    assert [sorted(set(labels[s].tolist())) for s in shards] == [[0], [1], [2]]
    six = method.node_partition(spec, labels, 6)  # two nodes per family split it
    assert sorted(np.concatenate(six).tolist()) == list(range(len(labels)))


def test_cascade_computes_a_small_fraction_of_the_dense_attention_entries():
    method = get_method("dynast")
    test = method.test_dataset(parse_run_spec({"method": "dynast"})).subset(np.arange(2))
    entries = {}
    for variant in ("cascade", "dense", "coarse_only"):
        spec = parse_run_spec({"method": "dynast", "dynast.variant": variant})
        torch.manual_seed(0)
        entries[variant] = method.evaluate(method.build_model(spec), test)
    # 8×8: 2 dense layers of 64×64; 16², 32²: 16 + 20 candidates per query (top-k 4).
    assert entries["cascade"]["attention_entries"] == 2 * 64 * 64 + (256 + 1024) * (16 + 20)
    assert entries["dense"]["attention_entries_32"] == 2 * 1024 * 1024
    assert entries["coarse_only"]["attention_entries"] == 2 * 64 * 64
