"""Claims about nodes that fail and come back (server/federation.py), on an in-process grid."""

import json

import pytest

from server.runner import Job, run_job
from server.scenario import resolve
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit

FAST = {"num-clients": "3", "num-server-rounds": "3", "fedavg.local-epochs": "1",
        "data.partitioner": "iid", "data.dataset": "digits", "node-wait-timeout": "2"}


def _grid_where_a_node_misses_round_1(*, comes_back: bool, down=(1001,)) -> InProcessGrid:
    """Nodes `down` (1001: partition 1) miss round 1's training, then restart (or not)."""
    grid = InProcessGrid(partition_nodes(3))
    original = grid.send_and_receive

    def send(messages, timeout=None):
        messages = list(messages)
        first_train = not grid.sent_train and any(m.metadata.message_type == "train" for m in messages)
        if first_train:
            grid.sent_train = True
            grid.dead.update(down)
        replies = original(messages, timeout=timeout)
        if first_train and comes_back:
            grid.dead.difference_update(down)  # restarted with the same key: the same node id
        return replies

    grid.sent_train = False
    grid.send_and_receive = send
    return grid


def _run(tmp_path, grid):
    job = Job(spec=resolve("fedavg", FAST), run_dir=str(tmp_path / "run"), scenario="fedavg")
    summary = run_job(grid, job)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return summary, [m["replies"] for m in metrics], (tmp_path / "run" / "events.log").read_text()


def test_a_node_that_comes_back_with_its_id_rejoins_and_trains_in_a_later_round(tmp_path):
    grid = _grid_where_a_node_misses_round_1(comes_back=True)
    summary, replies, events = _run(tmp_path, grid)
    assert "round 1 train: node 1001 (partition 1) sent no reply" in events
    assert "node 1001 (partition 1) answers again: it rejoins the federation" in events
    # Round 2 is sampled while its probe is still in flight; from round 3 on it trains again.
    assert replies == [2, 2, 3] and summary["rounds"] == 3
    trained = [m.metadata.dst_node_id for m in grid.sent if m.metadata.message_type == "train"]
    assert trained.count(1001) == 2  # round 1 (lost) and round 3 (back)


def test_a_node_that_stays_down_is_asked_once_and_never_sampled_again(tmp_path):
    grid = _grid_where_a_node_misses_round_1(comes_back=False)
    _, replies, events = _run(tmp_path, grid)
    assert replies == [2, 2, 2] and "rejoins" not in events
    to_dead = [m.metadata.message_type for m in grid.sent if m.metadata.dst_node_id == 1001]
    # info at discovery, round 1's train, one pending rejoin probe: never a second train.
    assert to_dead == ["query.info", "train", "query.info"]


def test_when_every_node_was_lost_the_next_round_waits_for_them_to_answer_again(tmp_path):
    """Nodes that were only slow (or restarted) are not written off: a round that would
    have too few nodes waits, at most one round timeout, for the lost ones' answers."""
    grid = _grid_where_a_node_misses_round_1(comes_back=True, down=(1000, 1001, 1002))
    summary, replies, events = _run(tmp_path, grid)
    assert replies == [0, 3, 3] and summary["rounds"] == 3
    assert "round 1: no valid update; the global model is unchanged" in events
    assert events.count("rejoins the federation") == 3
