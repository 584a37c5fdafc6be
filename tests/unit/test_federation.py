"""Claims about the server's federation view and the round loop (no Ray: in-process grid)."""

import json

import numpy as np
import pytest
from protos.records import ARRAYS, from_array_record, to_array_record
from server.federation import Federation, FederationError
from server.run_dir import RunDirectory
from server.runner import Job, run_job
from server.scenario import resolve
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit

FAST = {"num-clients": "3", "num-server-rounds": "2", "fedavg.local-epochs": "1",
        "data.partitioner": "iid", "data.dataset": "digits", "node-wait-timeout": "2"}


def _job(tmp_path, **over):
    return Job(spec=resolve("fedavg", {**FAST, **over}), run_dir=str(tmp_path / "run"), scenario="fedavg")


def test_sampling_is_reproducible_from_the_seed_whatever_the_node_ids(tmp_path):
    spec = resolve("fedavg", {**FAST, "num-clients": "6", "fraction-train": "0.5"})
    picks = []
    for first in (1000, 5000):
        fed = Federation(InProcessGrid(partition_nodes(6), first_node_id=first), spec,
                         RunDirectory.create(tmp_path / f"r{first}", {}))
        fed.discover()
        picks.append([fed.nodes[n].partition_id for n in fed.sample(3)])
    assert picks[0] == picks[1] and len(picks[0]) == 3


def test_a_run_writes_the_run_directory(tmp_path):
    summary = run_job(InProcessGrid(partition_nodes(3)), _job(tmp_path, **{"fedavg.local-epochs": "4"}))
    run = tmp_path / "run"
    assert {"config.json", "metrics.jsonl", "summary.json"} <= {p.name for p in run.iterdir()}
    assert (run / "checkpoint" / "latest.npz").is_file()
    assert summary["rounds"] == 2 and summary["num_clients"] == 3
    assert [m["round"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [1, 2]
    assert summary["accuracy"] > 0.5


def test_a_dead_node_is_logged_and_the_round_completes_without_it(tmp_path):
    grid = InProcessGrid(partition_nodes(3))
    dead = sorted(grid.contexts)[1]
    grid_calls = {"n": 0}
    original = grid.send_and_receive

    def kill_after_discovery(messages, timeout=None):
        grid_calls["n"] += 1
        if grid_calls["n"] > 1:
            grid.dead.add(dead)
        return original(messages, timeout=timeout)

    grid.send_and_receive = kill_after_discovery
    summary = run_job(grid, _job(tmp_path))
    events = (tmp_path / "run" / "events.log").read_text()
    assert f"node {dead} (partition 1) sent no reply" in events
    assert summary["rounds"] == 2


def test_too_few_nodes_is_a_clean_error_not_a_hang(tmp_path):
    grid = InProcessGrid(partition_nodes(3), dead=[1000, 1001, 1002])
    with pytest.raises(FederationError, match="min-nodes"):
        run_job(grid, _job(tmp_path, **{"min-nodes": "2"}))


def test_a_nan_update_is_rejected_before_aggregation(tmp_path):
    def poison(node_id, reply):
        if node_id != 1000 or ARRAYS not in reply.content:
            return reply
        arrays = {k: np.full_like(v, np.nan) for k, v in from_array_record(reply.content[ARRAYS]).items()}
        reply.content[ARRAYS] = to_array_record(arrays)
        return reply

    summary = run_job(InProcessGrid(partition_nodes(3), tamper=poison), _job(tmp_path))
    events = (tmp_path / "run" / "events.log").read_text()
    assert "node 1000 (partition 0) update rejected" in events and "NaN" in events
    assert np.isfinite(summary["loss"])


def test_resume_continues_to_the_same_model_as_an_uninterrupted_run(tmp_path):
    full = run_job(InProcessGrid(partition_nodes(3)), _job(tmp_path / "a"))
    # Interrupted: one round, then resume with the original round count.
    first = _job(tmp_path / "b", **{"num-server-rounds": "1"})
    run_job(InProcessGrid(partition_nodes(3)), first)
    run_dir = tmp_path / "b" / "run"
    config = json.loads((run_dir / "config.json").read_text())
    config["run"]["num-server-rounds"] = 2  # as if the server died after round 1 of 2
    (run_dir / "config.json").write_text(json.dumps(config))
    resumed = run_job(InProcessGrid(partition_nodes(3), first_node_id=7000),
                      Job(spec=None, run_dir=str(run_dir), resume=True))
    assert resumed["rounds"] == 2
    assert resumed["accuracy"] == pytest.approx(full["accuracy"], abs=1e-9)
    assert "resumed from the checkpoint of round 1" in (run_dir / "events.log").read_text()
