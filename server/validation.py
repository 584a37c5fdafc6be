"""Reject bad client updates before they reach aggregation.

A reply is checked against the global model it answers: the same keys, shapes
and dtypes, only finite values, a bounded size, and an example count that is a
positive integer no larger than what the node may hold (FedAvg weighs the update
by it: an unbounded count would let one node set the model alone).
The reason of a rejection is a short sentence that goes to events.log.
"""

from __future__ import annotations

import io
import math
from typing import Mapping

import flwr.compat.common.recorddict_compat as flower_compat
import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key

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


def check_masked_update(
    content: RecordDict,
    template: Mapping[str, np.ndarray],
    *,
    max_examples: int | None = None,
) -> str | None:
    """None when a SecAgg+ reply may join the masked sum, else why not.

    What the server can check of it: the example count (in the clear, it weighs the
    update) and that the masked vector has the shapes Flower's workflow will add up (the
    factor, then one integer array per global array), so a malformed one is a dropout
    rather than a crash of the sum. Its values are masked: no finiteness or size check
    can see them; `secagg.clipping-range` bounds each coordinate on the node instead."""
    metrics = content.get(METRICS)
    if not isinstance(metrics, MetricRecord) or NUM_EXAMPLES not in metrics:
        return f"reply has no MetricRecord {METRICS!r} with {NUM_EXAMPLES!r}"
    reason = _check_examples(metrics[NUM_EXAMPLES], max_examples)
    if reason:
        return reason
    configs = content.get(RECORD_KEY_CONFIGS)
    vectors = configs.get(Key.MASKED_PARAMETERS) if isinstance(configs, ConfigRecord) else None
    if not isinstance(vectors, list) or not all(isinstance(v, bytes) for v in vectors):
        return f"reply has no masked vector ({RECORD_KEY_CONFIGS}[{Key.MASKED_PARAMETERS}])"
    expected = [(1,)] + [tuple(np.shape(a)) for a in template.values()]
    if len(vectors) != len(expected):
        return f"masked vector has {len(vectors)} arrays, the model {len(expected)}"
    for key, data, shape in zip(["factor", *template], vectors, expected):
        try:
            value = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - untrusted bytes
            return f"{key}: cannot decode masked array ({type(exc).__name__})"
        if value.shape != shape or not np.issubdtype(value.dtype, np.integer):
            return f"{key}: masked array {value.shape} {value.dtype} != expected {shape} integers"
    try:  # the workflow reads every collect reply as a legacy FitRes after the sum
        flower_compat.recorddict_to_fitres(content, keep_input=True)
    except Exception as exc:  # noqa: BLE001 - untrusted content
        return f"reply is not a FitRes Flower can read ({type(exc).__name__}: {exc})"
    return None
