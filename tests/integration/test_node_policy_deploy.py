"""Claims about a node's own privacy policy over real gRPC (TLS + node auth, `fedvault node`
SuperNodes): the server cannot switch a node's DP off, and both sides log the refusal."""

from __future__ import annotations

import pytest

from simulations.deploy.local_federation import LocalFederation
from simulations.deploy.scenario import APP_DIR, fedvault_node_command, run_config

pytestmark = pytest.mark.integration

SMALL = {"num-clients": "2", "num-server-rounds": "1", "data.dataset": "digits",
         "round-timeout": "60", "node-wait-timeout": "120"}


def test_nodes_that_require_dp_refuse_a_run_without_it_and_both_sides_log_it(tmp_path):
    run_dir = tmp_path / "run"

    def require_dp(launch):
        return fedvault_node_command(launch, ("--require-dp",))

    with LocalFederation(tmp_path / "fed", 2, node_command=require_dp) as fed:
        run_id = fed.submit(APP_DIR, run_config("fedavg", SMALL, run_dir, True))
        status = fed.wait(run_id, 300)
        node_logs = "".join(fed.group.log_path(f"node-{i}").read_text() for i in range(2))
        group = fed.group
    assert not group.survivors()
    events = (run_dir / "events.log").read_text()
    assert status != "finished:completed"  # no node trained: the run fails, loudly
    assert events.count("node policy refuses round 1 (train): phase 'train' with no DP") == 2
    assert "no node produced a valid update" in events or not (run_dir / "summary.json").exists()
    assert "node policy refuses round 1 (train)" in node_logs  # the node's own log
