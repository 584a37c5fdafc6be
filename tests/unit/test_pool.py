"""N logical clients on a pool of K simulated nodes (server/pool.py, clients/pool.py).

A pooled run samples and trains the clients an unpooled run of the same scenario would,
keys every per-client record (metrics, DP ledger, node state) by the logical client,
resumes exactly on a pool with other node ids, and is refused where it cannot hold.
"""

import json

import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from clients.app import app as client_app
from clients.pool import client_state, keep_client_state, pooled_app
from methods.config import ConfigError
from protos.codec import decode, encode
from protos import fedvault_pb2 as pb
from protos.contract import CONFIG, ERROR, ERROR_PAYLOAD, HEADER, Phase
from protos.records import round_header
from server.pool import check_pool_transport
from server.runner import Job, run_job
from server.scenario import resolve
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit

FAST = {"num-clients": "6", "fraction-train": "0.34", "num-server-rounds": "3",
        "data.partitioner": "iid", "data.dataset": "digits", "node-wait-timeout": "2",
        "fedavg.local-epochs": "1"}
DP = {"audit.enabled": "false", "num-server-rounds": "2", "dp.accountant": "rdp",
      "dp.noise-multiplier": "3.0"}  # σ given: no calibration search (tens of seconds)


def _pool_grid(k: int, first: int = 5000) -> InProcessGrid:
    return InProcessGrid(partition_nodes(k), first_node_id=first, client=pooled_app(client_app))


def _run(tmp_path, name, grid, scenario="fedavg", **over):
    spec = resolve(scenario, {**FAST, **over})
    run = tmp_path / name
    summary = run_job(grid, Job(spec=spec, run_dir=str(run), scenario=scenario))
    return summary, [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_pooled_run_trains_the_clients_an_unpooled_run_trains(tmp_path):
    plain, plain_rounds = _run(tmp_path, "plain", InProcessGrid(partition_nodes(6)))
    pooled, pooled_rounds = _run(tmp_path, "pooled", _pool_grid(2), **{"pool-nodes": "2"})
    assert [r["nodes"] for r in pooled_rounds] == [r["nodes"] for r in plain_rounds]
    assert [r["accuracy"] for r in pooled_rounds] == [r["accuracy"] for r in plain_rounds]
    assert pooled["num_clients"] == plain["num_clients"] == 6
    # more than two distinct clients trained on the two pool nodes
    assert len({n for r in pooled_rounds for n in r["nodes"]}) > 2


def test_each_message_names_the_client_its_pool_node_plays(tmp_path):
    grid = _pool_grid(2)
    _, rounds = _run(tmp_path, "pooled", grid, **{"pool-nodes": "2"})
    trained = [decode(pb.RoundHeader, m.content[CONFIG][HEADER]) for m in grid.sent
               if m.metadata.message_type == "train"]
    by_round = {}
    for header in trained:
        assert header.HasField("client")
        by_round.setdefault(header.round, []).append(f"p{header.client}")
    assert [sorted(by_round[r["round"]]) for r in rounds] == [sorted(r["nodes"]) for r in rounds]


def test_the_dp_ledger_is_kept_per_logical_client(tmp_path):
    plain, _ = _run(tmp_path, "plain", InProcessGrid(partition_nodes(6)), "dp-fedavg", **DP)
    grid = _pool_grid(2)
    pooled, _ = _run(tmp_path, "pooled", grid, "dp-fedavg", **DP, **{"pool-nodes": "2"})
    assert pooled["epsilon_by_node"] == pytest.approx(plain["epsilon_by_node"])
    assert set(pooled["epsilon_by_node"]) <= {f"p{i}" for i in range(6)}
    # the pool nodes' state holds each client's accountant history under the client's key
    keys = {k for ctx in grid.contexts.values() for k in ctx.state.keys()}
    assert keys and all(k.startswith("client-") for k in keys)
    assert {k.split("/")[0] for k in keys} == {"client-" + key[1:] for key in pooled["epsilon_by_node"]}


def test_a_pooled_run_resumes_exactly_on_a_pool_with_other_node_ids(tmp_path):
    full, full_rounds = _run(tmp_path, "full", _pool_grid(2), **{"pool-nodes": "2"})
    grid = _pool_grid(2)
    train_calls = {"n": 0}
    original = grid.send_and_receive

    def dies_in_round_2(messages, timeout=None):
        messages = list(messages)
        if any(m.metadata.message_type == "train" for m in messages):
            train_calls["n"] += 1
            if train_calls["n"] == 2:
                raise KeyboardInterrupt("the server died in round 2")
        return original(messages, timeout=timeout)

    grid.send_and_receive = dies_in_round_2
    spec = resolve("fedavg", {**FAST, "pool-nodes": "2"})
    run = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        run_job(grid, Job(spec=spec, run_dir=str(run), scenario="fedavg"))
    resumed = run_job(_pool_grid(2, first=9000), Job(spec=None, run_dir=str(run), resume=True))
    rounds = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["nodes"] for r in rounds] == [r["nodes"] for r in full_rounds]
    assert resumed["accuracy"] == full["accuracy"]


def _request(client: int | None, num_clients: int = 6) -> Message:
    spec = resolve("fedavg", {**FAST, "num-clients": str(num_clients)})
    header = round_header(spec, 0, "info")
    if client is not None:
        header.client = client
    content = RecordDict({CONFIG: ConfigRecord({HEADER: encode(header)})})
    return Message(content, dst_node_id=1, message_type="query.info")


def _reason(reply: Message) -> str:
    return decode(pb.ErrorReply, reply.content[ERROR][ERROR_PAYLOAD]).reason


def _context() -> Context:
    return Context(run_id=1, node_id=1, node_config={"partition-id": 0, "num-partitions": 2},
                   state=RecordDict(), run_config={})


def test_a_node_of_its_own_refuses_to_play_a_logical_client():
    reply = client_app(_request(3), _context())
    assert "pool-nodes runs in simulation only" in _reason(reply)
    assert ERROR not in client_app(_request(None), _context()).content


def test_a_pool_node_refuses_a_client_outside_the_run():
    reply = pooled_app(client_app)(_request(6, num_clients=6), _context())
    assert "outside the run's num-clients=6" in _reason(reply)


def test_a_pool_node_keeps_each_clients_state_apart():
    seen = []
    inner = ClientApp()

    @inner.query("info")
    def remember(msg, context):
        seen.append((context.node_config["partition-id"], sorted(context.state.keys())))
        context.state["mine"] = ConfigRecord({"client": context.node_config["partition-id"]})
        return Message(RecordDict(), reply_to=msg)

    pool, context = pooled_app(inner), _context()
    for client in (3, 5, 3):
        pool(_request(client), context)
    assert seen == [(3, []), (5, []), (3, ["mine"])]
    assert sorted(context.state.keys()) == ["client-3/mine", "client-5/mine"]
    assert client_state(context.state, 5)["mine"]["client"] == 5


def test_keeping_a_clients_state_drops_what_it_no_longer_holds():
    state = RecordDict({"client-1/a": ConfigRecord({"x": 1}), "client-12/a": ConfigRecord({"x": 2})})
    keep_client_state(state, 1, RecordDict({"b": ConfigRecord({"y": 3})}))
    assert sorted(state.keys()) == ["client-1/b", "client-12/a"]


@pytest.mark.parametrize("over, needle", [
    ({"pool-nodes": "1"}, "below the 2 clients sampled per round"),
    ({"pool-nodes": "7"}, "exceeds num-clients=6"),
    ({"pool-nodes": "2", "secagg.enabled": "true"}, "secagg.enabled runs one SuperNode per client"),
    ({"pool-nodes": "-1"}, "pool-nodes"),
])
def test_a_pool_that_cannot_hold_is_refused(over, needle):
    with pytest.raises(ConfigError, match=needle):
        resolve("fedavg", {**FAST, **over})


def test_a_pool_is_refused_for_methods_outside_the_round_loop_and_for_the_audit():
    with pytest.raises(ConfigError, match="round-loop methods only"):
        resolve("lirf", {"num-clients": "4", "pool-nodes": "2"})
    with pytest.raises(ConfigError, match="audit.enabled runs one SuperNode per client"):
        resolve("dp-fedavg", {**FAST, "pool-nodes": "2"})


def test_a_pool_is_refused_outside_a_simulation():
    spec = resolve("fedavg", {**FAST, "pool-nodes": "2"})
    check_pool_transport(spec, "simulation")
    with pytest.raises(ConfigError, match="transport is grpc-rere"):
        check_pool_transport(spec, "grpc-rere")
    check_pool_transport(resolve("fedavg", FAST), "grpc-rere")


def test_a_client_whose_dp_release_went_unanswered_never_trains_again(tmp_path):
    """A pool node that times out may have trained and kept the round where its client
    will not look again, and the ledger lacks the round: that client is barred."""
    grid = _pool_grid(3)
    original = grid.send_and_receive
    calls = {"train": 0}

    def first_node_dies_in_round_1(messages, timeout=None):
        messages = list(messages)
        if any(m.metadata.message_type == "train" for m in messages):
            calls["train"] += 1
            if calls["train"] == 1:
                grid.dead.add(min(m.metadata.dst_node_id for m in messages))
        return original(messages, timeout=timeout)

    grid.send_and_receive = first_node_dies_in_round_1
    _, rounds = _run(tmp_path, "pooled", grid, "dp-fedavg",
                     **{**DP, "pool-nodes": "3", "num-server-rounds": "3"})
    assert rounds[0]["nodes"] == ["p5"]  # round 1 drew p2 and p5; p2 played the node that died
    assert all("p2" not in r["nodes"] for r in rounds)
    events = (tmp_path / "pooled" / "events.log").read_text()
    assert "round 3: client(s) p2 sampled but not asked" in events
    ledger = (tmp_path / "pooled" / "ledger.jsonl").read_text()
    assert '"node": "p2"' not in ledger and '"node": "p5"' in ledger


def test_a_pooled_runs_training_request_without_a_client_is_refused():
    spec = resolve("fedavg", {**FAST, "pool-nodes": "2"})
    content = RecordDict({CONFIG: ConfigRecord({HEADER: encode(round_header(spec, 1, Phase.TRAIN))})})
    reply = pooled_app(client_app)(Message(content, dst_node_id=1, message_type="train"), _context())
    assert "names the client of every request" in _reason(reply)


def test_deploy_refuses_a_pool_before_anything_starts(tmp_path):
    from typer.testing import CliRunner

    from simulations.cli.app import cli

    result = CliRunner().invoke(cli, ["deploy", "fedavg", "--nodes", "2", "--out",
                                      str(tmp_path / "run"), "--set", "pool-nodes=2",
                                      "--set", "fraction-train=0.5"])
    assert result.exit_code == 2, result.output
    assert "pool-nodes=2 runs in a simulation" in result.output
    assert not (tmp_path / "run").exists()


def test_a_pooled_run_on_nodes_without_the_pool_wrapper_stops_before_round_1(tmp_path):
    """`flwr run` in Flower's own simulation starts fedvault's bare ClientApp: its nodes
    refuse stamped requests, and the run says so before training, not after every round."""
    from server.federation import FederationError

    grid = InProcessGrid(partition_nodes(2), first_node_id=5000)  # no pool wrapper
    spec = resolve("fedavg", {**FAST, "pool-nodes": "2"})
    with pytest.raises(FederationError, match="cannot play a logical client"):
        run_job(grid, Job(spec=spec, run_dir=str(tmp_path / "run"), scenario="fedavg"))
    assert not any(m.metadata.message_type == "train" for m in grid.sent)
