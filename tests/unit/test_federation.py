"""Claims about the server's federation view and the round loop (no Ray: in-process grid)."""

import json

import numpy as np
import pytest
from methods.common.datasets import load_dataset
from methods.common.partition import iid
from protos.contract import ARRAYS
from protos.records import from_array_record, to_array_record
from server.federation import Federation, FederationError
from server.run_dir import RunDirectory
from server.runner import Job, run_job
from server.scenario import resolve
from tests.inprocess_grid import InProcessGrid, dies_in_round_2, partition_nodes

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
    # Interrupted: the server dies in round 2 of 2 (after round 1's checkpoint), then resumes.
    grid = dies_in_round_2(3)
    with pytest.raises(KeyboardInterrupt):
        run_job(grid, _job(tmp_path / "b"))
    run_dir = tmp_path / "b" / "run"
    assert not (run_dir / "summary.json").exists()
    resumed = run_job(InProcessGrid(partition_nodes(3), first_node_id=7000),
                      Job(spec=None, run_dir=str(run_dir), resume=True))
    assert resumed["rounds"] == 2
    assert resumed["accuracy"] == pytest.approx(full["accuracy"], abs=1e-9)
    assert "resumed from the checkpoint of round 1" in (run_dir / "events.log").read_text()


# --- replies are untrusted input (input hardening) -------------------------

def _claim(examples, node=1000):
    def tamper(node_id, reply):
        if node_id == node and "metrics" in reply.content:
            reply.content["metrics"]["num-examples"] = examples
        return reply
    return tamper


def test_nodes_declare_their_example_count_and_replies_are_bounded_by_it_times_local_epochs(tmp_path):
    grid = InProcessGrid(partition_nodes(3))
    spec = resolve("fedavg", {**FAST, "fedavg.local-epochs": "2"})
    fed = Federation(grid, spec, RunDirectory.create(tmp_path / "r", {}))
    fed.discover()
    declared = {n.partition_id: n.num_examples for n in fed.nodes.values()}
    assert sorted(declared) == [0, 1, 2] and all(c > 0 for c in declared.values())
    assert sum(declared.values()) == len(load_dataset("digits", "train"))  # iid shards of it
    assert fed.example_bound(1000, spec) == 2 * fed.nodes[1000].num_examples


def test_a_node_without_a_declared_count_gets_the_federation_fallback_bound(tmp_path):
    from server.federation import UNDECLARED_EXAMPLES, NodeRecord

    spec = resolve("fedavg", FAST)
    fed = Federation(InProcessGrid(partition_nodes(1)), spec, RunDirectory.create(tmp_path / "r", {}))
    fed.nodes = {1: NodeRecord(1, 0, 2, "partition", num_examples=0)}  # an old node
    assert fed.example_bound(1, spec) == UNDECLARED_EXAMPLES
    fed.nodes[2] = NodeRecord(2, 1, 2, "partition", num_examples=700)
    assert fed.example_bound(1, spec) == 700  # no more than its largest declared peer


def test_a_reply_claiming_1e15_examples_is_rejected_and_cannot_set_the_model_alone(tmp_path):
    summary = run_job(InProcessGrid(partition_nodes(3), tamper=_claim(1e15)), _job(tmp_path))
    run = tmp_path / "run"
    events = (run / "events.log").read_text()
    assert "round 1 train: node 1000 (partition 0) update rejected: num-examples 1000000000000000 exceeds" in events
    shards = [len(s) for s in iid(load_dataset("digits", "train").y, 3, 0)]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # every round aggregates the two honest nodes only, weighted by what they hold
    assert [(r["replies"], r["examples"]) for r in records] == [(2, shards[1] + shards[2])] * 2
    assert summary["rounds"] == 2


@pytest.mark.parametrize("examples", [[1.0, 2.0], [7]])
def test_a_non_scalar_example_count_rejects_that_reply_not_the_run(tmp_path, examples):
    summary = run_job(InProcessGrid(partition_nodes(3), tamper=_claim(examples)), _job(tmp_path))
    events = (tmp_path / "run" / "events.log").read_text()
    assert "round 1 train: node 1000 (partition 0) update rejected: num-examples must be a number" in events
    assert summary["rounds"] == 2


def test_a_check_that_raises_on_a_reply_rejects_that_reply_with_node_and_round(tmp_path):
    spec = resolve("fedavg", FAST)
    grid = InProcessGrid(partition_nodes(2))
    fed = Federation(grid, spec, RunDirectory.create(tmp_path / "r", {}))
    fed.discover()
    first = sorted(fed.nodes)[0]

    def fragile(reply):
        if reply.metadata.src_node_id == first:
            raise TypeError("unhashable type: 'list'")
        return None

    messages = [fed._info_request(n) for n in sorted(fed.nodes)]
    valid = fed.exchange(messages, 4, "train", fragile)
    assert [r.metadata.src_node_id for r in valid] == [sorted(fed.nodes)[1]]
    events = (tmp_path / "r" / "events.log").read_text()
    assert f"round 4 train: node {first} (partition 0) update rejected: reply could not be checked " \
           "(TypeError: unhashable type: 'list')" in events
