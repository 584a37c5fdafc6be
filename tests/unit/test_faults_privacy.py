"""Privacy under faults: a SuperNode that crashes and restarts mid-run (its context.state,
and with it its accountant, is gone) keeps composing ε from the server's ledger."""

from itertools import pairwise

import pytest
from flwr.app import Context, RecordDict

from server.ledger import LEDGER_FILE, read_ledger
from server.runner import Job, run_job
from server.scenario import resolve
from tests.inprocess_grid import InProcessGrid
from tests.unit.test_ledger import FAST, _nodes

pytestmark = pytest.mark.unit


def _restart_after_round_1(grid: InProcessGrid, node_id: int) -> None:
    """Node `node_id` crashes after round 1 and comes back with an empty state."""
    original, trains = grid.send_and_receive, {"n": 0}

    def send(messages, timeout=None):
        messages = list(messages)
        replies = original(messages, timeout=timeout)
        if any(m.metadata.message_type == "train" for m in messages):
            trains["n"] += 1
            if trains["n"] == 1:
                old = grid.contexts[node_id]
                grid.contexts[node_id] = Context(run_id=1, node_id=node_id, node_config=old.node_config,
                                                 state=RecordDict(), run_config={})
        return replies

    grid.send_and_receive = send


def _epsilons(tmp_path, name, grid):
    run_job(grid, Job(spec=resolve("dp-fedavg", FAST), run_dir=str(tmp_path / name), scenario="dp-fedavg"))
    lines = read_ledger(tmp_path / name / LEDGER_FILE)
    return {node: [x["epsilon"] for x in lines if x["node"] == node] for node in ("p0", "p1")}


def test_a_restarted_node_keeps_its_ledger_and_epsilon_never_goes_backwards(tmp_path):
    full = _epsilons(tmp_path, "full", InProcessGrid(_nodes()))
    grid = InProcessGrid(_nodes())
    _restart_after_round_1(grid, 1000)
    restarted = _epsilons(tmp_path, "restarted", grid)
    assert restarted["p0"] == pytest.approx(full["p0"], rel=1e-9)  # as if it never crashed
    for eps in restarted.values():
        assert len(eps) == 3 and all(b > a for a, b in pairwise(eps))
