"""The pruned deposit module T_r stored and sent sparse: only its nonzero values travel.

After pruning (pruning.py: 50 % of each conv weight zeroed) half of T_r is zeros. Each
array is packed in the smallest of three forms:

    KEY                          dense, as it is (small or dense arrays: biases, BN)
    KEY@bitmap, KEY@values,      one bit per element (np.packbits, row-major) and the
    KEY@shape                    nonzero elements in order: ~0.53 of dense at 50 % zeros
    KEY@index, KEY@values,       flat uint32 positions of the nonzero elements and their
    KEY@shape                    values: smaller below ~3 % density

"Nonzero" is read off the bytes, so −0.0 and NaN payloads are kept as values and the
round trip is exact bit for bit (the module's SHA-256, over the dense arrays, is what
the receipt binds). `unpack` is total on untrusted input: the server unpacks what a
node uploads against the shapes and dtypes it expects and refuses anything else.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

BITMAP, INDEX, VALUES, SHAPE = "@bitmap", "@index", "@values", "@shape"
_SUFFIXES = (BITMAP, INDEX, VALUES, SHAPE)
_INDEX_DTYPE = np.dtype("<u4")


def _nonzero(flat: np.ndarray) -> np.ndarray:
    """Which elements have any nonzero byte (−0.0 counts: exactness over sparsity)."""
    raw = np.frombuffer(flat.tobytes(), dtype=np.uint8).reshape(len(flat), flat.itemsize)
    return raw.any(axis=1)


def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each array in its smallest form (see the module docstring)."""
    packed: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if any(s in key for s in _SUFFIXES):
            raise ValueError(f"array name {key!r} holds a reserved suffix")
        value = np.asarray(value)
        flat = np.ascontiguousarray(value).reshape(-1)
        if value.ndim == 0 or flat.size >= 2**32:
            packed[key] = value
            continue
        keep = _nonzero(flat)
        shape = np.asarray(value.shape, dtype=np.int64)
        forms = {
            "dense": {key: value},
            "bitmap": {key + BITMAP: np.packbits(keep), key + VALUES: flat[keep],
                       key + SHAPE: shape},
            "index": {key + INDEX: np.flatnonzero(keep).astype(_INDEX_DTYPE),
                      key + VALUES: flat[keep], key + SHAPE: shape},
        }
        packed.update(min(forms.values(), key=nbytes))
    return packed


def unpack(packed: Mapping[str, np.ndarray],
           expected: Mapping[str, tuple[tuple[int, ...], np.dtype]] | None = None
           ) -> dict[str, np.ndarray]:
    """The dense arrays of `pack`'s output. `expected` (name → (shape, dtype)): the arrays
    that must come out, checked before anything is allocated; ValueError on any mismatch."""
    names = sorted({_base(k) for k in packed})
    if expected is not None and set(names) != set(expected):
        raise ValueError(f"packed arrays {names[:3]}... do not match the expected "
                         f"{sorted(expected)[:3]}...")
    dense = {}
    for name in names:
        want = None if expected is None else (tuple(expected[name][0]), np.dtype(expected[name][1]))
        value = _unpack_one(packed, name, want)
        if want is not None and (value.shape, value.dtype) != want:
            raise ValueError(f"{name}: {value.dtype}{value.shape} instead of {want[1]}{want[0]}")
        dense[name] = value
    return dense


def nbytes(arrays: Mapping[str, np.ndarray]) -> int:
    return int(sum(np.asarray(a).nbytes for a in arrays.values()))


def _base(key: str) -> str:
    for suffix in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def _unpack_one(packed: Mapping[str, np.ndarray], name: str,
                want: tuple[tuple[int, ...], np.dtype] | None) -> np.ndarray:
    parts = {s: packed[name + s] for s in _SUFFIXES if name + s in packed}
    if name in packed:
        if parts:
            raise ValueError(f"{name}: both dense and packed")
        return np.asarray(packed[name])
    if set(parts) not in ({BITMAP, VALUES, SHAPE}, {INDEX, VALUES, SHAPE}):
        raise ValueError(f"{name}: packed as {sorted(parts)}, not bitmap or index form")
    shape, values = np.asarray(parts[SHAPE]), np.asarray(parts[VALUES])
    if shape.dtype != np.int64 or shape.ndim != 1 or (shape < 0).any() or values.ndim != 1:
        raise ValueError(f"{name}: malformed shape or values")
    shape = tuple(int(d) for d in shape)
    if want is not None and shape != want[0]:  # before allocating what a sender claims
        raise ValueError(f"{name}: shape {shape} instead of {want[0]}")
    size = int(np.prod(shape, dtype=np.int64))
    positions = _bitmap_positions(parts, size, name) if BITMAP in parts else (
        _index_positions(parts, size, name))
    if len(positions) != len(values):
        raise ValueError(f"{name}: {len(positions)} positions for {len(values)} values")
    flat = np.zeros(size, dtype=values.dtype)
    flat[positions] = values
    return flat.reshape(shape)


def _bitmap_positions(parts: Mapping[str, np.ndarray], size: int, name: str) -> np.ndarray:
    bitmap = np.asarray(parts[BITMAP])
    if bitmap.dtype != np.uint8 or bitmap.shape != ((size + 7) // 8,):
        raise ValueError(f"{name}: the bitmap does not cover {size} elements")
    bits = np.unpackbits(bitmap)
    if bits[size:].any():
        raise ValueError(f"{name}: bits set beyond the array's end")
    return np.flatnonzero(bits[:size])


def _index_positions(parts: Mapping[str, np.ndarray], size: int, name: str) -> np.ndarray:
    positions = np.asarray(parts[INDEX])
    wide = positions.astype(np.int64)
    if positions.dtype != _INDEX_DTYPE or positions.ndim != 1 or (
            len(wide) and (wide[-1] >= size or (np.diff(wide) <= 0).any())):
        raise ValueError(f"{name}: indices must be increasing uint32 below {size}")
    return wide
