"""A user's own data as NumPy arrays: one `.npz` file (tabular or pre-processed data).

Keys: `x` and `y`, optionally `x_test` and `y_test`, nothing else (a misspelt `x_tst`
would otherwise be ignored silently). `x` is N×F (tabular), N×H×W (one channel) or
N×C×H×W, any integer or float dtype, read as float32 as given: standardise features
before saving. Tabular rows become N×F×1×1 (features on the channel axis, the layout
every loader shares; fedavg builds an MLP for it). `y` holds N integer labels; the class
count is the largest label of either split plus one.

Without `x_test`/`y_test` the test split is a fixed stratified 20 % carve (seed 0, not
the run's seed: the server, every node and every run see the same split, like the
bundled sets' fixed splits), and the training split is the rest.

The file is untrusted input: it is read with allow_pickle=False (an object array cannot
run code on load), and every key, dtype, shape, value (NaN, inf) and label is checked;
anything else is a DatasetError naming the file and what is valid.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from methods.common.arrays import ArrayDataset, DatasetError, frozen
from methods.common.partition import stratified_holdout

NPZ_KEYS = ("x", "y", "x_test", "y_test")
NPZ_LAYOUT = ("a NumPy .npz file (np.savez) with x (N×F, N×H×W or N×C×H×W numbers) and y "
              "(N integer labels), optionally x_test and y_test of the same kinds")
NPZ_TEST_FRACTION = 0.2
NPZ_SPLIT_SEED = 0
MAX_CLASSES = 10_000  # a label of 10**9 would otherwise build a 10**9-way output layer


@dataclass(frozen=True)
class NpzArrays:
    """What the file holds: its training rows and, when it has them, its own test rows."""

    train: ArrayDataset
    test: ArrayDataset | None


def read_npz(path: str | Path) -> NpzArrays:
    """The validated contents of an .npz file (cached while the file is unchanged)."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise DatasetError(f"npz file {path} {what}; expected {NPZ_LAYOUT}")
    stat = path.stat()
    return _read(path.resolve(), (stat.st_size, stat.st_mtime_ns))


def load_npz(path: str | Path, split: str) -> ArrayDataset:
    """The file's `split` ("train" or "test"): x/y and x_test/y_test, else the fixed carve."""
    arrays = read_npz(path)
    if arrays.test is not None:
        return arrays.train if split == "train" else arrays.test
    path = Path(path).expanduser()
    stat = path.stat()
    return _carved(path.resolve(), (stat.st_size, stat.st_mtime_ns))[split]


@functools.lru_cache(maxsize=4)
def _read(path: Path, stamp: tuple) -> NpzArrays:
    with path.open("rb") as head:
        magic = head.read(6)
    if magic == b"\x93NUMPY":  # np.save's lone array, not an archive of them
        raise DatasetError(f"{path} holds a single array (np.save), not an archive of them; "
                           f"expected {NPZ_LAYOUT}")
    if magic[:2] != b"PK":  # every .npz is a zip archive
        raise DatasetError(f"{path} is not an .npz (zip) archive; expected {NPZ_LAYOUT}")
    try:
        with np.load(path, allow_pickle=False) as archive:  # a zip: an NpzFile
            keys = set(archive.files)
            _check_keys(path, keys)
            raw = {key: archive[key] for key in NPZ_KEYS if key in keys}
    except DatasetError:
        raise
    except ValueError as err:
        if "allow_pickle" not in str(err):
            raise DatasetError(f"{path} is not a readable .npz ({err}); expected "
                               f"{NPZ_LAYOUT}") from err
        # numpy suggests allow_pickle=True: unpickling runs code, so it stays refused
        raise DatasetError(f"{path} holds an array of Python objects (pickled), which is never "
                           f"loaded; expected {NPZ_LAYOUT}") from err
    except Exception as err:  # a truncated zip, a corrupt member: all refused
        raise DatasetError(f"{path} is not a readable .npz ({type(err).__name__}: {err}); "
                           f"expected {NPZ_LAYOUT}") from err
    x = _features(path, "x", raw["x"])
    y = _labels(path, "y", raw["y"], "x", len(x))
    test = None
    if "x_test" in raw:
        x_test = _features(path, "x_test", raw["x_test"])
        y_test = _labels(path, "y_test", raw["y_test"], "x_test", len(x_test))
        if x_test.shape[1:] != x.shape[1:]:
            raise DatasetError(f"{path}: x_test rows must have the shape of x's rows "
                               f"{_row_shape(raw['x'])}, got {_row_shape(raw['x_test'])}")
        test = (x_test, y_test)
    num_classes = int(max(y.max(), test[1].max() if test else 0)) + 1
    frozen(x, y, *(test or ()))
    name = f"npz:{path.name}"
    return NpzArrays(ArrayDataset(x, y, num_classes, name),
                     ArrayDataset(*test, num_classes, name) if test else None)


@functools.lru_cache(maxsize=4)
def _carved(path: Path, stamp: tuple) -> dict[str, ArrayDataset]:
    train = _read(path, stamp).train
    try:
        keep, held_out = stratified_holdout(train.y, NPZ_TEST_FRACTION, NPZ_SPLIT_SEED)
    except ValueError as err:
        raise DatasetError(f"{path}: cannot carve a test split ({err}); add x_test and "
                           f"y_test") from err
    return {"train": train.subset(keep), "test": train.subset(held_out)}


def _check_keys(path: Path, keys: set[str]) -> None:
    unknown = sorted(keys - set(NPZ_KEYS))
    missing = [k for k in ("x", "y") if k not in keys]
    if ("x_test" in keys) != ("y_test" in keys):
        missing.append("y_test" if "x_test" in keys else "x_test")
    if unknown or missing:
        found = ", ".join(sorted(keys)) or "none"
        raise DatasetError(f"{path}: keys must be x, y and optionally x_test with y_test; found "
                           f"{found} ({'unknown: ' + ', '.join(unknown) if unknown else ''}"
                           f"{'; ' if unknown and missing else ''}"
                           f"{'missing: ' + ', '.join(missing) if missing else ''})")


def _row_shape(array: np.ndarray) -> str:
    return "×".join(map(str, array.shape[1:])) or "scalar"


def _features(path: Path, key: str, array: np.ndarray) -> np.ndarray:
    """N×F, N×H×W or N×C×H×W numbers → finite float32 N×C×H×W."""
    if array.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: {key} must hold numbers (bool, integer or float), got "
                           f"dtype {array.dtype}")
    if array.ndim not in (2, 3, 4) or len(array) == 0 or 0 in array.shape:
        raise DatasetError(f"{path}: {key} must be a non-empty N×F, N×H×W or N×C×H×W array, "
                           f"got shape {array.shape}")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: refused below
        x = array.astype(np.float32)
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise DatasetError(f"{path}: {key} holds {bad} NaN or infinite values (or values "
                           f"beyond float32's range); every feature must be a finite number")
    if x.ndim == 2:
        return x[:, :, None, None]
    return x[:, None] if x.ndim == 3 else x


def _labels(path: Path, key: str, array: np.ndarray, rows_of: str, rows: int) -> np.ndarray:
    if array.dtype.kind not in "iu":
        raise DatasetError(f"{path}: {key} must hold integer class labels, got dtype "
                           f"{array.dtype} (cast them, e.g. y.astype(np.int64))")
    if array.shape != (rows,):
        raise DatasetError(f"{path}: {key} must be 1-D with one label per row of {rows_of} "
                           f"({rows}), got shape {array.shape}")
    if array.min() < 0 or array.max() >= MAX_CLASSES:
        raise DatasetError(f"{path}: {key} labels must lie in [0, {MAX_CLASSES}), got "
                           f"[{array.min()}, {array.max()}]")
    return array.astype(np.int64)
