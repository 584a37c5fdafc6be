"""Withdrawal by logit concatenation and the arrays that move in LIRF
(Ye et al., ECCV 2022, §3.4: T̃ = g(z_T) ⊕ ḡ(z_{T_r∘T^(n−)}); no data, no training).

Naming: the global model's arrays are SplitCNN's state ("shallow.*", "deep.*");
the deposit module T_r is a shallow part with module-relative keys ("1.0.weight");
the recovered model's arrays are the target's plus the module's under "deposit.".
The module's SHA-256 (over sorted keys, dtypes, shapes and bytes) is what the
receipt binds, so the server can check the module it is given at withdrawal and
that nothing it received before matched it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from methods.lirf.sparse import unpack

SHALLOW = "shallow."
DEPOSIT = "deposit."


def module_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{value.dtype}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def shallow_part(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The shallow part's arrays with module-relative keys."""
    return {k[len(SHALLOW):]: v for k, v in arrays.items() if k.startswith(SHALLOW)}


def with_shallow(arrays: Mapping[str, np.ndarray],
                 shallow: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """T = new shallow part ∘ the frozen deep part of `arrays` (keys must match)."""
    expected = set(shallow_part(arrays))
    if set(shallow) != expected:
        raise ValueError(f"shallow arrays {sorted(shallow)[:3]}... do not match the model's "
                         f"shallow part {sorted(expected)[:3]}...")
    return {**arrays, **{SHALLOW + k: v for k, v in shallow.items()}}


def recovered_arrays(target: Mapping[str, np.ndarray],
                     module: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """T̃'s arrays: the target's plus the deposit module under "deposit."."""
    if set(module) != set(shallow_part(target)):
        raise ValueError("the deposit module's arrays do not match the target's shallow part")
    return {**target, **{DEPOSIT + k: v for k, v in module.items()}}


def split_recovered(arrays: Mapping[str, np.ndarray]) -> tuple[dict, dict]:
    """(target arrays, module arrays) of a recovered model's arrays."""
    target = {k: v for k, v in arrays.items() if not k.startswith(DEPOSIT)}
    module = {k[len(DEPOSIT):]: v for k, v in arrays.items() if k.startswith(DEPOSIT)}
    return target, module


def module_digests(arrays: Mapping[str, np.ndarray]) -> set[str]:
    """The hashes under which a set of received arrays could hold a deposit module: its
    shallow part and the whole set, each as it came and unpacked from the sparse form."""
    digests = set()
    for candidate in (shallow_part(arrays), dict(arrays)):
        if not candidate:
            continue
        digests.add(module_sha256(candidate))
        try:
            digests.add(module_sha256(unpack(candidate)))
        except ValueError:
            pass  # not a packed module
    return digests


def holds_module(arrays: Mapping[str, np.ndarray], receipt_sha256: str) -> bool:
    """Whether a set of received arrays contains the deposit module: a "deposit." key,
    or a shallow part (or the whole set), dense or sparse, whose hash is the receipt's."""
    if any(k.startswith(DEPOSIT) for k in arrays):
        return True
    return receipt_sha256 in module_digests(arrays)
