"""The in-memory data set every loader returns, and the error every loader raises.

`ArrayDataset` is N×C×H×W float32 with int64 labels. Tabular rows are N×F×1×1: the
features are the channel axis, so every loader, partitioner and node sees one layout
(methods/common/npz.py). Kept apart from the loaders (methods/common/datasets.py,
image_folder.py, npz.py) so each of them can import it without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily: listing or partitioning data must not pay for it
    import torch.utils.data

Normalize = tuple[float | Sequence[float], float | Sequence[float]]


class DatasetError(ValueError):
    """A data set is missing, malformed, or asked for with bad arguments."""


@dataclass(frozen=True)
class ArrayDataset:
    x: np.ndarray  # float32, N×C×H×W (tabular: N×F×1×1)
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

    @property
    def example_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one example: what a model built for this data takes."""
        channels, height, width = self.x.shape[1:]
        return int(channels), int(height), int(width)

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


def frozen(*arrays: np.ndarray) -> None:
    for array in arrays:  # cached, so shared by every caller: a write would corrupt all
        array.flags.writeable = False


def mean_std(normalize: Normalize) -> tuple[np.ndarray, np.ndarray]:
    mean, std = (np.asarray(v, dtype=np.float32).reshape(-1, 1, 1) for v in normalize)
    return mean, std  # shaped C×1×1 (or 1×1×1) to broadcast over N×C×H×W


def normalized(x: np.ndarray, normalize: Normalize | None) -> np.ndarray:
    mean, std = mean_std(normalize) if normalize is not None else (0.0, 1.0)
    return ((x - mean) / std).astype(np.float32)
