"""Claims about how the server's federation view scales (docs/performance.md): a large
federation is never enumerated; only sampled nodes are messaged or remembered."""

import pytest
from flwr.app import Message, RecordDict
from flwr.superlink.grid import HttpGrid

from server.federation import FULL_DISCOVERY_MAX_NODES, Federation
from server.run_dir import RunDirectory
from server.scenario import resolve
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit

NODES = FULL_DISCOVERY_MAX_NODES + 44  # 300: just past the threshold, cheap to build


def _federation(tmp_path, nodes=NODES, first=1000):
    spec = resolve("fedavg", {"num-clients": str(nodes), "fraction-train": str(10 / nodes),
                              "data.dataset": "digits", "data.partitioner": "iid",
                              "node-wait-timeout": "2"})
    grid = InProcessGrid(partition_nodes(nodes), first_node_id=first)
    return Federation(grid, spec, RunDirectory.create(tmp_path / f"run{first}", {})), grid


def test_a_large_federation_is_discovered_without_messaging_any_node(tmp_path):
    fed, grid = _federation(tmp_path)
    fed.discover()
    assert grid.sent == [] and fed.nodes == {}
    assert fed.lazy and fed.size() == NODES


def test_only_sampled_nodes_are_asked_and_remembered(tmp_path):
    fed, grid = _federation(tmp_path)
    fed.discover()
    for rnd in (1, 2, 3):
        sent_before = len(grid.sent)
        sampled = fed.sample(rnd)
        assert len(sampled) == 10
        assert {m.metadata.dst_node_id for m in grid.sent[sent_before:]} == set(sampled)
        assert set(fed.nodes) == set(sampled)  # nothing kept about earlier or unsampled nodes
        assert {fed.nodes[n].partition_id for n in sampled} == {n - 1000 for n in sampled}


def test_lazy_sampling_is_reproducible_for_the_same_nodes(tmp_path):
    picks = []
    for attempt in range(2):
        fed, _ = _federation(tmp_path / str(attempt))
        fed.discover()
        picks.append([fed.sample(r) for r in (1, 2)])
    assert picks[0] == picks[1] and picks[0][0] != picks[0][1]


def test_a_small_federation_is_still_enumerated_by_partition(tmp_path):
    fed, grid = _federation(tmp_path, nodes=12)
    fed.discover()
    assert not fed.lazy and len(fed.nodes) == 12 and len(grid.sent) == 12


class _SlowPollingGrid(HttpGrid):
    """An HttpGrid (whose own send_and_receive sleeps 3 s between pulls) answering on the 4th pull."""

    def __init__(self, nodes):  # no SuperLink: push and pull are faked below
        self.nodes, self.pulls = nodes, 0

    def get_node_ids(self):
        return list(self.nodes)

    def push_messages(self, messages):
        self.pending = {f"m{i}": m for i, m in enumerate(messages)}
        return list(self.pending)

    def pull_messages(self, message_ids):
        self.pulls += 1
        if self.pulls < 4:
            return []
        replies = []
        for mid in list(message_ids):
            msg = self.pending.pop(mid)
            reply = Message(RecordDict(), reply_to=msg)
            reply.metadata.__dict__["_reply_to_message_id"] = mid
            replies.append(reply)
        return replies


def test_a_deployed_exchange_polls_for_replies_far_more_often_than_flowers_3_s(tmp_path, monkeypatch):
    from server import federation

    waits = []
    monkeypatch.setattr(federation.time, "sleep", waits.append)
    fed, _ = _federation(tmp_path, nodes=12)
    fed.grid = _SlowPollingGrid([1, 2, 3])
    messages = [Message(RecordDict(), dst_node_id=n, message_type="query") for n in (1, 2, 3)]
    replies = fed._send_and_receive(messages, timeout=60)
    assert len(replies) == 3 and fed.grid.pulls == 4
    assert waits == [0.05, 0.1, 0.2]  # doubling from 50 ms, never Flower's 3 s
