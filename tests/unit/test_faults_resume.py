"""Resume keeps each method's own server state: after a server crash, FedSA's selection
history and final student equal the uninterrupted run's (LIRF's receipts:
tests/unit/test_lirf_workflow.py::test_a_crash_after_the_deposit_checkpoint_is_finished_on_resume).

The nodes survive the crash here, as SuperNodes do when a deployment's ServerApp dies:
FedSA's translators are node-private state, so a resume that also re-creates the nodes
(a fresh simulation) keeps the checkpointed history verbatim but may draw differently
afterwards (tests/unit/test_fedsa_workflow.py::test_a_resumed_run_continues_after_its_last_checkpoint).
"""

import pytest

from server.runner import Job, run_job
from tests.inprocess_grid import InProcessGrid, partition_nodes
from tests.unit.test_fedsa_workflow import ServerCrash, _current_phase, _run

pytestmark = pytest.mark.unit
ROUNDS = {"num-server-rounds": "3"}


def test_fedsa_selection_history_after_a_server_crash_and_resume_equals_the_uninterrupted_one(tmp_path):
    full, _ = _run(tmp_path, InProcessGrid(partition_nodes(6)), name="full", **ROUNDS)
    grid, selects = InProcessGrid(partition_nodes(6)), {"n": 0}

    def crash_in_round_2(node_id, reply):
        selects["n"] += _current_phase(grid) == "select"
        if selects["n"] > 6:  # six teachers answered round 1's selection; round 2's kills it
            raise ServerCrash("the server died in round 2")
        return reply

    grid.tamper = crash_in_round_2
    with pytest.raises(ServerCrash):
        _run(tmp_path, grid, name="killed", **ROUNDS)
    grid.tamper = None
    resumed = run_job(grid, Job(spec=None, run_dir=str(tmp_path / "killed"), resume=True))
    assert resumed["selected"] == full["selected"] and len(full["selected"]) == 3
    assert resumed["accuracy"] == pytest.approx(full["accuracy"], abs=1e-9)
    assert "resumed from the checkpoint of round 1" in (tmp_path / "killed" / "events.log").read_text()
