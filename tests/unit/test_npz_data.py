"""Claims about a user's own data: .npz arrays, image folders at any size, and a node's split."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from clients.node_data import node_data, node_facts
from methods.common.datasets import (
    DatasetError,
    load_dataset,
    load_digits,
    write_image_folder,
)
from methods.common.npz import MAX_CLASSES, load_npz, read_npz
from methods.common.partition import partition, stratified_holdout
from methods.config import ConfigError
from methods.fedavg.method import FedAvgMethod, TabularMLP
from methods.common.nets import SmallCNN
from methods.resolve import parse_run_spec

pytestmark = pytest.mark.unit


def tabular(path: Path, n: int = 200, features: int = 5, classes: int = 4, **extra) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = np.arange(n) % classes
    np.savez(path, x=x, y=y, **extra)
    return path


# ---- good files ---------------------------------------------------------------------------

def test_tabular_rows_become_features_on_the_channel_axis_and_x_test_is_the_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x_test = rng.normal(size=(30, 5))
    path = tabular(tmp_path / "t.npz", x_test=x_test, y_test=np.arange(30) % 6)
    train, test = load_npz(path, "train"), load_npz(path, "test")
    assert train.x.shape == (200, 5, 1, 1) and train.x.dtype == np.float32
    assert test.x.shape == (30, 5, 1, 1)
    np.testing.assert_allclose(test.x[:, :, 0, 0], x_test.astype(np.float32))
    assert train.num_classes == test.num_classes == 6  # the largest label of either split + 1


@pytest.mark.parametrize("shape, stored", [((10, 7, 9), (1, 7, 9)), ((10, 3, 4, 4), (3, 4, 4))])
def test_image_arrays_keep_their_layout_and_integer_pixels_read_as_float(tmp_path, shape, stored):
    x = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    np.savez(tmp_path / "i.npz", x=x, y=np.arange(10) % 2)
    data = read_npz(tmp_path / "i.npz").train
    assert data.x.shape[1:] == stored
    assert data.x.reshape(-1)[5] == 5.0


def test_without_x_test_the_test_split_is_a_fixed_stratified_fifth(tmp_path):
    path = tabular(tmp_path / "t.npz", n=200, classes=4)
    train, test = load_npz(path, "train"), load_npz(path, "test")
    assert (len(train), len(test)) == (160, 40)
    assert np.bincount(test.y).tolist() == [10, 10, 10, 10]  # each class its 20 %
    rows = {tuple(r) for r in train.x[:, :, 0, 0]} & {tuple(r) for r in test.x[:, :, 0, 0]}
    assert not rows  # disjoint
    again = load_npz(path, "test")
    np.testing.assert_array_equal(again.x, test.x)  # the same split every time


def test_stratified_holdout_is_seeded_disjoint_and_complete():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    keep, held = stratified_holdout(y, 0.2, seed=3)
    assert len(held) == 20 and np.bincount(y[held]).tolist() == [10, 6, 4]
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(100))
    assert np.array_equal(held, stratified_holdout(y, 0.2, seed=3)[1])
    assert not np.array_equal(held, stratified_holdout(y, 0.2, seed=4)[1])
    with pytest.raises(ValueError, match="too few"):
        stratified_holdout(np.array([0, 1]), 0.2, seed=0)


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "pathological"])
def test_every_partitioner_splits_npz_labels(tmp_path, scheme):
    train = load_dataset("npz", "train", root=str(tabular(tmp_path / "t.npz", n=400)))
    shards = partition(train.y, scheme=scheme, num_clients=4, seed=0, alpha=0.5,
                       classes_per_client=2)
    assert sorted(np.concatenate(shards).tolist()) == list(range(len(train)))
    if scheme == "pathological":
        assert all(len(np.unique(train.y[s])) == 2 for s in shards)


# ---- bad files: each refused with a DatasetError naming the file ---------------------------

def _save(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


X, Y = np.zeros((10, 3), np.float32), np.arange(10) % 2

BAD_FILES = {
    "missing y": (lambda p: _save(p, x=X), "missing: y"),
    "unknown key": (lambda p: _save(p, x=X, y=Y, x_tst=X), "unknown: x_tst"),
    "x_test alone": (lambda p: _save(p, x=X, y=Y, x_test=X), "missing: y_test"),
    "float labels": (lambda p: _save(p, x=X, y=Y.astype(float)), "integer class labels"),
    "negative label": (lambda p: _save(p, x=X, y=Y - 1), r"labels must lie in \[0, "),
    "huge label": (lambda p: _save(p, x=X, y=Y + MAX_CLASSES), r"labels must lie in \[0, "),
    "length mismatch": (lambda p: _save(p, x=X, y=Y[:9]), r"one label per row of x \(10\)"),
    "NaN": (lambda p: _save(p, x=np.where(Y[:, None] == 1, np.nan, X), y=Y), "5 NaN or infinite"),
    "inf": (lambda p: _save(p, x=np.full((10, 3), np.inf), y=Y), "30 NaN or infinite"),
    "float32 overflow": (lambda p: _save(p, x=np.full((10, 3), 1e300), y=Y), "beyond float32"),
    "strings": (lambda p: _save(p, x=np.array([["a"]] * 10), y=Y), "must hold numbers"),
    "1-D x": (lambda p: _save(p, x=np.zeros(10), y=Y), "N×F, N×H×W or N×C×H×W"),
    "empty x": (lambda p: _save(p, x=np.zeros((0, 3)), y=Y[:0]), "non-empty"),
    "test rows differ": (lambda p: _save(p, x=X, y=Y, x_test=np.zeros((4, 2)), y_test=Y[:4]),
                         "x_test rows must have the shape of x's rows 3, got 2"),
    "pickled objects": (lambda p: _save(p, x=np.array([{}] * 10, dtype=object), y=Y),
                        "Python objects"),
    "not a zip": (lambda p: (p.write_text("x,y\n1,0\n"), p)[1], r"not an .npz \(zip\) archive"),
    "truncated": (lambda p: (p.write_bytes(_save(p, x=X, y=Y).read_bytes()[:200]), p)[1],
                  "not a readable .npz"),
    "one .npy": (lambda p: (np.save(p.with_suffix(".npy"), X), os.replace(p.with_suffix(".npy"), p),
                            p)[2], "single array"),
    "one row, no test": (lambda p: _save(p, x=X[:1], y=Y[:1]), "cannot carve a test split"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_npz_is_refused_naming_the_file_and_what_is_valid(tmp_path, case):
    make, message = BAD_FILES[case]
    path = make(tmp_path / "bad.npz")
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset("npz", "test", root=str(path))
    assert str(path.name) in str(caught.value)


@pytest.mark.parametrize("root, message", [("missing.npz", "does not exist"), (".", "is not a file")])
def test_a_missing_npz_path_is_refused(tmp_path, root, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset("npz", "train", root=str(tmp_path / root))


def test_npz_needs_a_root_and_data_keys_are_checked_by_the_config():
    with pytest.raises(DatasetError, match="read from a file"):
        load_dataset("npz", "train")
    assert parse_run_spec({"data.dataset": "npz", "data.image-size": "32,24"}).data.image_size == (32, 24)
    for bad, message in [({"data.image-size": "0"}, "data.image-size must be in"),
                         ({"data.image-size": "1,2,3"}, "H,W or one int"),
                         ({"data.channels": "2"}, "data.channels must be 1, 3 or 0"),
                         ({"data.class-names": "a,a"}, "unique plain directory names"),
                         ({"evaluation": "nodes"}, "evaluation must be one of server, federated, auto")]:
        with pytest.raises(ConfigError, match=message):
            parse_run_spec(bad)


# ---- image folders at the user's size and channels ----------------------------------------

def _rgb_folder(root: Path, size: int, per_class: int = 3) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("cat", "dog") if split == "train" else ("dog",):  # test/ lacks "cat"
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def test_an_rgb_folder_is_read_at_its_own_size_with_labels_shared_by_both_splits(tmp_path):
    root = str(_rgb_folder(tmp_path / "pets", 32))
    train, test = (load_dataset("image-folder", s, root=root) for s in ("train", "test"))
    assert train.x.shape == (6, 3, 32, 32) and test.x.shape == (3, 3, 32, 32)
    assert train.class_names == test.class_names == ("cat", "dog")
    assert set(test.y.tolist()) == {1}  # "dog" keeps its training label though "cat" is absent
    small = load_dataset("image-folder", "train", root=root, channels=1, image_size=(16,))
    assert small.x.shape == (6, 1, 16, 16)


def test_a_grayscale_folder_is_read_at_16x16_as_its_first_image_is(tmp_path):
    from PIL import Image

    digits = load_digits("train").subset(np.arange(20))
    root = write_image_folder(digits, tmp_path / "digits")
    for png in root.rglob("*.png"):
        with Image.open(png) as image:
            image.resize((16, 16)).save(png)
    data = load_dataset("image-folder", "train", root=str(root))
    assert data.x.shape == (20, 1, 16, 16) and data.num_classes == len(np.unique(digits.y))


# ---- a node's own data ---------------------------------------------------------------------

def spec_for(**keys):
    return parse_run_spec({"num-clients": "2", **{k.replace("_", "-"): str(v) for k, v in keys.items()}})


def test_a_node_with_its_own_npz_trains_on_x_and_holds_out_x_test(tmp_path):
    path = tabular(tmp_path / "mine.npz", x_test=np.zeros((7, 5)), y_test=np.zeros(7, int))
    spec = spec_for(evaluation="federated")
    data = node_data(FedAvgMethod(), spec, {"data-dir": str(path)})
    assert (len(data.train), len(data.held_out)) == (200, 7)
    facts = node_facts(spec, {"data-dir": str(path)})
    assert (facts.num_examples, facts.data_shape, facts.num_classes, facts.num_held_out) == (
        200, (5, 1, 1), 4, 7)


def test_a_node_carves_its_held_out_split_only_when_the_nodes_evaluate(tmp_path):
    path = tabular(tmp_path / "mine.npz", n=100)
    config = {"data-dir": str(path)}
    served = node_data(FedAvgMethod(), spec_for(evaluation="server"), config)
    assert len(served.train) == 100 and served.held_out is None
    fed = node_data(FedAvgMethod(), spec_for(evaluation="auto"), config)
    assert (len(fed.train), len(fed.held_out)) == (80, 20)
    rows = {tuple(r) for r in fed.train.x[:, :, 0, 0]}
    assert not rows & {tuple(r) for r in fed.held_out.x[:, :, 0, 0]}  # never trained on


def test_a_partition_node_holds_out_a_fifth_of_its_own_shard(tmp_path):
    spec = parse_run_spec({"num-clients": "3", "evaluation": "federated", "data.dataset": "digits"})
    shard = node_data(FedAvgMethod(), parse_run_spec({"num-clients": "3", "data.dataset": "digits"}),
                      {"partition-id": 1, "num-partitions": 3}).train
    data = node_data(FedAvgMethod(), spec, {"partition-id": 1, "num-partitions": 3})
    assert len(data.train) + len(data.held_out) == len(shard)
    assert len(data.held_out) == round(0.2 * len(shard))


def test_a_node_folder_reads_its_own_size_and_its_test_subfolder(tmp_path):
    root = _rgb_folder(tmp_path / "pets", 12)
    spec = parse_run_spec({"data.dataset": "image-folder", "data.root": "/server/only",
                           "data.class-names": "cat,dog", "evaluation": "federated"})
    data = node_data(FedAvgMethod(), spec, {"data-dir": str(root)})
    assert data.train.x.shape == (6, 3, 12, 12) and data.held_out.x.shape == (3, 3, 12, 12)
    assert set(data.held_out.y.tolist()) == {1}


def test_fedavg_builds_an_mlp_for_tabular_npz_and_a_cnn_for_images(tmp_path):
    path = tabular(tmp_path / "t.npz", features=6, classes=3)
    method = FedAvgMethod()
    mlp = method.build_model(parse_run_spec({"data.dataset": "npz", "data.root": str(path)}))
    assert isinstance(mlp, TabularMLP)
    import torch

    assert mlp(torch.zeros(4, 6, 1, 1)).shape == (4, 3)
    assert isinstance(method.build_model(parse_run_spec({"data.dataset": "digits"})), SmallCNN)
