"""Reject bad client updates before they reach aggregation.

A reply is checked against the global model it answers: the same keys, shapes
and dtypes, only finite values, a bounded size, and an example count that is a
positive integer no larger than what the node may hold (FedAvg weighs the update
by it: an unbounded count would let one node set the model alone).
The reason of a rejection is a short sentence that goes to events.log.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
from flwr.app import ArrayRecord, MetricRecord, RecordDict

from protos.contract import ARRAYS, METRICS, NUM_EXAMPLES


def check_update(
    content: RecordDict,
    template: Mapping[str, np.ndarray],
    *,
    max_bytes: int,
    max_examples: int | None = None,
) -> str | None:
    """None when the update may be aggregated, else why not.

    `max_examples`: the most examples this node may claim (Federation.example_bound)."""
    arrays = content.get(ARRAYS)
    metrics = content.get(METRICS)
    if not isinstance(arrays, ArrayRecord):
        return f"reply has no ArrayRecord {ARRAYS!r}"
    if not isinstance(metrics, MetricRecord) or NUM_EXAMPLES not in metrics:
        return f"reply has no MetricRecord {METRICS!r} with {NUM_EXAMPLES!r}"
    reason = _check_examples(metrics[NUM_EXAMPLES], max_examples)
    if reason:
        return reason
    if set(arrays) != set(template):
        missing = sorted(set(template) - set(arrays))[:3]
        extra = sorted(set(arrays) - set(template))[:3]
        return f"array keys differ from the global model (missing {missing}, unexpected {extra})"
    size = sum(len(a.data) for a in arrays.values())
    if size > max_bytes:
        return f"update of {size} bytes exceeds the limit of {max_bytes}"
    for key, ref in template.items():
        reason = _check_array(key, arrays[key], ref)
        if reason:
            return reason
    return None


def _check_examples(count, max_examples: int | None) -> str | None:
    if isinstance(count, bool) or not isinstance(count, (int, float)):
        return f"num-examples must be a number, not {type(count).__name__} ({str(count)[:40]})"
    if not math.isfinite(count) or count != int(count) or count <= 0:
        return f"num-examples must be a positive integer (got {count!r})"
    if max_examples is not None and count > max_examples:
        return (f"num-examples {int(count)} exceeds {max_examples}, what the node may hold "
                "(its declared examples times the local epochs)")
    return None


def _check_array(key: str, array, ref: np.ndarray) -> str | None:
    if tuple(array.shape) != tuple(ref.shape) or array.dtype != str(ref.dtype):
        return (
            f"{key}: shape {tuple(array.shape)} dtype {array.dtype} "
            f"!= expected {tuple(ref.shape)} {ref.dtype}"
        )
    try:
        value = array.numpy()
    except Exception as exc:  # undecodable bytes inside a well-formed record
        return f"{key}: cannot decode array ({exc})"
    if value.shape != ref.shape:
        return f"{key}: decoded shape {value.shape} != expected {ref.shape}"
    if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
        return f"{key}: contains NaN or infinite values"
    return None
