"""Ownership, proven by capture: every reply of a LIRF run is held against the owner's
deposit module, which must reach the server only when the owner withdraws it."""

import numpy as np
import pytest
from flwr.app import ArrayRecord

from protos.records import from_array_record
from tests.unit.test_lirf_workflow import DEPOSIT_ID, PhaseGrid, _run, _store

pytestmark = pytest.mark.unit


def _tensors(reply) -> list[np.ndarray]:
    """Every array a reply carries, in any of its ArrayRecords."""
    return [a for record in reply.content.values() if isinstance(record, ArrayRecord)
            for a in from_array_record(record).values()]


def _holds(tensors, module) -> bool:
    return any(t.shape == m.shape and np.array_equal(t, m) for t in tensors
               for m in _carrying(module).values())


def _carrying(module: dict) -> dict:
    """The module's tensors that can tell it apart. Left out: scalars (a BatchNorm counter
    matches by chance) and the bias of a conv that a BatchNorm follows: BatchNorm removes
    any per-channel constant, so that bias gets no gradient from the loss, and in T and T_r
    alike it is T_0's bias under the same weight decay. On some CPUs the two are equal to
    the last bit (the BatchNorm backward's rounding is exactly 0 there) without either
    reply carrying anything of D_r."""
    return {name: m for name, m in module.items() if m.size > 1 and not (
        name.endswith(".0.bias") and name[:-len("0.bias")] + "1.running_mean" in module)}


def test_the_deposit_module_reaches_the_server_only_in_the_owners_withdraw_reply(tmp_path):
    path, captured, module = tmp_path / "run", [], {}

    def capture(node_id, reply):
        phase = grid.phases[-1][0]  # the in-process grid runs one request at a time
        if phase == "deposit":
            module.update(_store(path).read("pending", DEPOSIT_ID))  # T_r, as the owner keeps it
        captured.append((phase, node_id, _tensors(reply)))
        return reply

    grid = PhaseGrid(3, tamper=capture)
    summary = _run(path, grid)
    assert summary["receipt"]["status"] == "withdrawn" and module
    phases = [phase for phase, _, _ in captured]
    first_withdraw = phases.index("withdraw")
    leaks = [(p, n) for p, n, tensors in captured[:first_withdraw] if _holds(tensors, module)]
    assert leaks == [], f"deposit module tensors sent before withdrawal: {leaks}"
    # Positive control: the capture does see the module once the owner hands it over.
    _, node, tensors = captured[first_withdraw]
    assert node == 1000 and _holds(tensors, module)
