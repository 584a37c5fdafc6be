"""Image folders: root/<class_name>/*.png, read at the user's size and channel count.

Either flat (root/<class>/: all training data) or split (root/train/<class>/ and
root/test/<class>/). The format is the user's: `channels` 1 or 3 and `size` (H, W) when
given, else those of the first training image (first class directory in sorted order,
its first file), so every image of both splits is read alike. Labels index the class
names: the caller's list when given (the federation's, so a shard lacking classes keeps
labels that agree with the other nodes'), else the sorted class directories of both
splits together (a test split lacking a class keeps the training split's labels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from methods.common.arrays import ArrayDataset, DatasetError, Normalize, mean_std, normalized

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
IMAGE_FOLDER_LAYOUT = "root/<class_name>/*.png|jpg|jpeg|bmp (one subdirectory per class)"
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "F")  # PIL modes read as one channel


def _class_dirs(root: Path, classes: Sequence[str] | None) -> tuple[list, tuple[str, ...]]:
    """[(label, directory)] for the class directories present, and all class names."""
    dirs = _subdirectories(root)
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


def _subdirectories(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist; expected {IMAGE_FOLDER_LAYOUT}")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise DatasetError(f"image folder {root} has no class subdirectories; "
                           f"expected {IMAGE_FOLDER_LAYOUT}")
    return dirs


def _image_files(class_dir: Path) -> list[Path]:
    files = sorted(p for p in class_dir.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"class directory {class_dir} holds no images; expected "
                           f"{IMAGE_FOLDER_LAYOUT}")
    return files


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


def first_image_format(root: str | Path) -> tuple[int, tuple[int, int]]:
    """(channels, (H, W)) of the folder's first training image (its first test image when
    it has only a test/ split): the default format."""
    from PIL import Image

    base = Path(root).expanduser()
    folder = next((base / s for s in ("train", "test") if (base / s).is_dir()), base)
    first = _image_files(_subdirectories(folder)[0])[0]
    try:
        with Image.open(first) as image:
            width, height = image.size
            return (1 if image.mode in GRAYSCALE_MODES else 3), (height, width)
    except Exception as err:  # as in _read_image
        raise DatasetError(f"cannot read image {first}: {err}; expected "
                           f"{IMAGE_FOLDER_LAYOUT}") from err


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
        files = _image_files(class_dir)
        images += [_read_image(f, mode, size) for f in files]
        labels += [label] * len(files)
    x = normalized(np.stack(images).astype(np.float32), normalize)
    return ArrayDataset(x, np.asarray(labels, dtype=np.int64), len(names),
                        f"image-folder:{root.name}", names)


def image_folder_splits(root: str | Path, *, channels: int = 0, size: Sequence[int] = (),
                        class_names: Sequence[str] = (), normalize: Normalize | None = None,
                        ) -> dict[str, ArrayDataset]:
    """{"train": .., "test": ..} of a split folder (the splits it has), {"train": ..} of a
    flat one.

    channels 0 and size () take the first training image's; a one-int size is square.
    """
    base = Path(root).expanduser()
    split_layout = (base / "train").is_dir() or (base / "test").is_dir()
    first_channels, first_size = first_image_format(base)
    channels = channels or first_channels
    size = first_size if not size else (size[0], size[-1])
    if not split_layout:
        return {"train": load_image_folder(base, channels=channels, size=size,
                                           normalize=normalize, classes=class_names or None)}
    splits = [s for s in ("train", "test") if (base / s).is_dir()]
    names = class_names or sorted({d.name for s in splits for d in _subdirectories(base / s)})
    return {s: load_image_folder(base / s, channels=channels, size=size, normalize=normalize,
                                 classes=names) for s in splits}


def class_names_of(dataset: ArrayDataset) -> tuple[str, ...]:
    if dataset.class_names is not None:
        return dataset.class_names
    return numbered_class_names(dataset.num_classes)


def numbered_class_names(num_classes: int) -> tuple[str, ...]:
    # Zero-padded so that sorted directory names keep label order ("10" < "2" otherwise).
    width = len(str(num_classes - 1))
    return tuple(f"{i:0{width}d}" for i in range(num_classes))


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
    mean, std = mean_std(normalize) if normalize is not None else (0.0, 1.0)
    pixels = np.clip(np.rint((dataset.x * std + mean) * 255.0), 0, 255).astype(np.uint8)
    for i, (image, label) in enumerate(zip(pixels, dataset.y)):
        (root / names[label]).mkdir(parents=True, exist_ok=True)
        array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        Image.fromarray(array).save(root / names[label] / f"{i:06d}.png")
    return root
