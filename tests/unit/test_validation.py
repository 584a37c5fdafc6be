"""Claims about the rejection of bad client updates."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

from protos.records import to_array_record
from server.validation import check_update

pytestmark = pytest.mark.unit

TEMPLATE = {"w": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)}


def reply(arrays, examples=10):
    return RecordDict({"arrays": to_array_record(arrays), "metrics": MetricRecord({"num-examples": examples})})


def test_a_well_formed_update_is_accepted():
    assert check_update(reply(TEMPLATE), TEMPLATE, max_bytes=10_000) is None


@pytest.mark.parametrize(
    "arrays,needle",
    [
        ({"w": np.full((2, 3), np.nan, np.float32), "b": np.zeros(3, np.float32)}, "NaN"),
        ({"w": np.full((2, 3), np.inf, np.float32), "b": np.zeros(3, np.float32)}, "NaN or infinite"),
        ({"w": np.zeros((3, 2), np.float32), "b": np.zeros(3, np.float32)}, "shape"),
        ({"w": np.zeros((2, 3), np.float64), "b": np.zeros(3, np.float32)}, "dtype"),
        ({"w": np.zeros((2, 3), np.float32)}, "missing"),
        ({**TEMPLATE, "extra": np.zeros(1, np.float32)}, "unexpected"),
    ],
)
def test_bad_updates_are_rejected_with_a_reason(arrays, needle):
    reason = check_update(reply(arrays), TEMPLATE, max_bytes=10_000)
    assert reason is not None and needle in reason


def test_oversized_update_is_rejected():
    assert "exceeds" in check_update(reply(TEMPLATE), TEMPLATE, max_bytes=10)


def test_missing_example_count_is_rejected():
    content = RecordDict({"arrays": to_array_record(TEMPLATE), "metrics": MetricRecord({"loss": 1.0})})
    assert "num-examples" in check_update(content, TEMPLATE, max_bytes=10_000)


def test_garbage_array_bytes_are_rejected_not_crashing():
    record = ArrayRecord({
        "w": Array(dtype="float32", shape=(2, 3), stype="numpy.ndarray", data=b"\x00garbage"),
        "b": Array(np.zeros(3, np.float32)),
    })
    content = RecordDict({"arrays": record, "metrics": MetricRecord({"num-examples": 3})})
    assert check_update(content, TEMPLATE, max_bytes=10_000) is not None


# --- num-examples is untrusted input (input hardening) ---------------------

@pytest.mark.parametrize("examples", [[3, 4], [1.0], 2.5, float("nan"), float("inf"), 0, -3])
def test_an_example_count_that_is_not_a_positive_integer_is_rejected_not_crashing(examples):
    reason = check_update(reply(TEMPLATE, examples), TEMPLATE, max_bytes=10_000)
    assert reason is not None and "num-examples" in reason


def test_an_example_count_beyond_what_the_node_holds_is_rejected():
    reason = check_update(reply(TEMPLATE, 1e15), TEMPLATE, max_bytes=10_000, max_examples=600)
    assert reason is not None and "exceeds 600" in reason
    assert check_update(reply(TEMPLATE, 600), TEMPLATE, max_bytes=10_000, max_examples=600) is None
