"""Claims about federated evaluation and the server's test set against the nodes' data.

Whole runs go through the real ServerApp workflow and ClientApp in this process
(tests/inprocess_grid.py): seconds each, no Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flwr.app import MetricRecord, RecordDict

from clients.evaluation import evaluate_task
from clients.node_data import node_data
from methods.common.datasets import load_digits, load_mnist5k, write_image_folder
from methods.config import ConfigError
from methods.registry import get_method
from methods.resolve import parse_run_spec
from protos import fedvault_pb2 as pb
from protos.codec import PayloadError, decode, encode
from protos.contract import ACCURACY, LOSS, METRICS, NUM_EXAMPLES
from server.evaluation import (
    INCOMPATIBLE,
    OTHER_KIND,
    SAME,
    check_evaluation,
    check_evaluation_reply,
    compare_data,
)
from server.federation import FederationError
from server.runner import Job, run_job
from simulations.cli.preflight import check_runnable
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit


def spec(**keys):
    flat = {"num-server-rounds": "1", "node-wait-timeout": "2", "fedavg.local-epochs": "1"}
    return parse_run_spec({**flat, **keys})


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines() if (run_dir / "metrics.jsonl").exists() else []
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("node, server, verdict", [
    ((1, 8, 8), (1, 8, 8), SAME),
    ((1, 8, 8), (1, 28, 28), OTHER_KIND),  # the model pools adaptively; the server's score would not mean much
    ((3, 32, 32), (1, 28, 28), INCOMPATIBLE),  # other channels: the model cannot take them
    ((5, 1, 1), (6, 1, 1), INCOMPATIBLE),  # other features
    ((3, 1, 1), (3, 8, 8), INCOMPATIBLE),  # rows against images
])
def test_data_compare_by_channels_size_and_classes(node, server, verdict):
    assert compare_data(node, 10, server, 10) == verdict
    assert compare_data(server, 11, server, 10) == INCOMPATIBLE  # labels the model has no output for
    assert compare_data(server, 4, server, 10) == SAME  # a shard lacking classes is fine


def reply(**metrics) -> RecordDict:
    return RecordDict({METRICS: MetricRecord(metrics)})


@pytest.mark.parametrize("metrics, why", [
    ({NUM_EXAMPLES: 20, ACCURACY: 0.5, LOSS: 1.2}, None),
    ({NUM_EXAMPLES: 21, ACCURACY: 0.5, LOSS: 1.2}, "integer in [1, 20]"),
    ({NUM_EXAMPLES: 0, ACCURACY: 0.5, LOSS: 1.2}, "integer in [1, 20]"),
    ({NUM_EXAMPLES: 20.0, ACCURACY: 0.5, LOSS: 1.2}, "integer in [1, 20]"),
    ({NUM_EXAMPLES: 20, ACCURACY: 1.5, LOSS: 1.2}, "in [0, 1]"),
    ({NUM_EXAMPLES: 20, ACCURACY: float("nan"), LOSS: 1.2}, "in [0, 1]"),
    ({NUM_EXAMPLES: 20, ACCURACY: 0.5, LOSS: float("inf")}, "finite number >= 0"),
    ({NUM_EXAMPLES: 20, ACCURACY: 0.5}, "finite number >= 0"),
    ({NUM_EXAMPLES: 20, ACCURACY: 0.5, LOSS: 1.2, "losses": [0.1, 0.2]}, "unexpected metrics"),
])
def test_an_evaluation_reply_is_checked_before_it_counts(metrics, why):
    found = check_evaluation_reply(reply(**metrics), max_examples=20)
    assert found is None if why is None else why in found
    assert "no 'metrics' record" in check_evaluation_reply(RecordDict({}), 20)


def test_node_info_carries_the_data_shape_and_refuses_a_malformed_one():
    info = pb.NodeInfo(partition_id=-1, num_partitions=-1, data_shape=[3, 32, 32], num_classes=10,
                       num_held_out=7)
    back = decode(pb.NodeInfo, encode(info))
    assert (list(back.data_shape), back.num_classes, back.num_held_out) == ([3, 32, 32], 10, 7)
    for shape in ([3, 32], [0, 8, 8], [1, 8, 1 << 21]):
        with pytest.raises(PayloadError, match="data_shape"):
            encode(pb.NodeInfo(partition_id=-1, num_partitions=-1, data_shape=shape))


def test_federated_figures_are_the_example_weighted_mean_of_the_valid_node_replies(tmp_path):
    def tamper(node_id, message):  # partition 2 claims a 150 % accuracy
        if node_id == 1002 and message.metadata.message_type == "evaluate":
            message.content[METRICS] = MetricRecord({**dict(message.content[METRICS]), ACCURACY: 1.5})
        return message

    run = tmp_path / "run"
    grid = InProcessGrid(partition_nodes(3), tamper=tamper)
    run_job(grid, Job(spec=spec(**{"num-clients": "3", "data.dataset": "digits",
                                   "evaluation": "federated"}), run_dir=str(run)))
    (record,) = records(run)
    assert record["evaluation"] == "federated" and [n["node"] for n in record["per_node"]] == ["p0", "p1"]
    examples = np.array([n["examples"] for n in record["per_node"]])
    for key in ("accuracy", "loss"):
        mean = np.dot(examples, [n[key] for n in record["per_node"]]) / examples.sum()
        assert record[key] == pytest.approx(mean)
    assert "round 1 evaluate: node 1002 (partition 2) update rejected: accuracy must be a number" in (
        run / "events.log").read_text()
    held_out = [m for node, m in grid.replies if m.metadata.message_type == "evaluate"]
    assert len(held_out) == 3  # the round's sampled nodes, each asked once


def _digit_nodes(tmp_path: Path, channels_of_three: bool = False) -> list[dict]:
    """Two nodes' own image folders of 8×8 sklearn digits (RGB when asked)."""
    train = load_digits("train")
    dirs = []
    for i in range(2):
        part = train.subset(np.arange(i * 150, (i + 1) * 150))
        if channels_of_three:
            part = type(part)(np.repeat(part.x, 3, axis=1), part.y, part.num_classes, part.name)
        dirs.append(write_image_folder(part, tmp_path / f"node{i}"))
    return [{"data-dir": str(d)} for d in dirs]


def test_server_evaluation_refuses_nodes_whose_data_are_of_another_kind(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(FederationError, match=(
            r"evaluation=server would score the global model on data of another kind: node 1000 "
            r"\(dir:.*node0\) holds 1×8×8 data with 10 classes \(and 1 more node\), the server's "
            r"test set is 1×28×28 data with 10 classes \(mnist5k\); set evaluation=federated or auto")):
        run_job(InProcessGrid(_digit_nodes(tmp_path)), Job(spec=spec(**{"num-clients": "2"}),
                                                            run_dir=str(run)))
    assert records(run) == []  # refused before round 1
    assert "run failed: FederationError: evaluation=server would score" in (run / "events.log").read_text()


def test_a_validation_split_is_refused_when_a_node_trains_on_its_own_data(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(FederationError, match=r"data.validation-fraction holds out .* node 1000 "
                                              r"\(dir:.*node0\) trains on its own data"):
        run_job(InProcessGrid(_digit_nodes(tmp_path)),
                Job(spec=spec(**{"num-clients": "2", "data.dataset": "digits",
                                 "data.validation-fraction": "0.1"}), run_dir=str(run)))
    assert records(run) == []  # refused before round 1


def test_auto_evaluation_switches_to_the_nodes_and_says_so(tmp_path, capsys):
    run = tmp_path / "run"
    summary = run_job(InProcessGrid(_digit_nodes(tmp_path)),
                      Job(spec=spec(**{"num-clients": "2", "evaluation": "auto"}), run_dir=str(run)))
    line = "evaluation=auto: node 1000"
    assert line in (run / "events.log").read_text() and line in capsys.readouterr().out
    (record,) = records(run)
    assert summary["evaluation"] == record["evaluation"] == "federated"
    assert sum(n["examples"] for n in record["per_node"]) == 60  # 20 % of each node's 150 digits


def test_nodes_whose_data_the_model_cannot_take_are_refused_whatever_the_evaluation(tmp_path):
    with pytest.raises(FederationError, match=r"holds 3×8×8 data with 10 classes, which the run's "
                                              r"model cannot take"):
        run_job(InProcessGrid(_digit_nodes(tmp_path, channels_of_three=True)),
                Job(spec=spec(**{"num-clients": "2", "evaluation": "federated"}),
                    run_dir=str(tmp_path / "run")))


def test_a_node_evaluates_only_when_the_run_evaluates_on_the_nodes():
    method = get_method("fedavg")
    served = spec(**{"num-clients": "2", "data.dataset": "digits"})
    arrays = method.shared_state(method.build_model(served))
    with pytest.raises(ValueError, match="evaluates on the server"):
        evaluate_task(served, arrays, {"partition-id": 0, "num-partitions": 2})
    node = {"partition-id": 0, "num-partitions": 2}
    figures = evaluate_task(spec(**{"num-clients": "2", "data.dataset": "digits",
                                    "evaluation": "federated"}), arrays, node)
    shard = len(node_data(method, served, node).train)  # all of it: nothing held out
    assert abs(figures[NUM_EXAMPLES] - 0.2 * shard) <= 0.5
    assert 0 <= figures[ACCURACY] < 0.5 and figures[LOSS] > 1.5  # an untrained model


@pytest.mark.parametrize("keys, message", [
    ({"method": "lirf", "evaluation": "federated"}, "needs a round-loop method"),
    ({"num-clients": "700", "data.dataset": "digits", "data.partitioner": "iid",
      "evaluation": "auto"}, "cannot hold out 20% of its shard"),
])
def test_preflight_refuses_what_federated_evaluation_cannot_do(keys, message):
    with pytest.raises(ConfigError, match=message):  # `fedvault simulate`: exit 2, one line
        check_runnable(parse_run_spec(keys))
    fine = parse_run_spec({"data.dataset": "digits", "evaluation": "federated"})
    check_evaluation(fine, get_method("fedavg"), load_digits("train"), load_digits("test"))


def test_preflight_refuses_a_test_split_of_another_kind_unless_the_nodes_evaluate():
    run = parse_run_spec({"data.dataset": "digits"})
    train, test = load_digits("train"), load_mnist5k("test")  # 8×8 against 28×28
    with pytest.raises(ConfigError, match="training split is 1×8×8 data with 10 classes but the "
                                          "test split is 1×28×28 .*set evaluation=federated"):
        check_evaluation(run, get_method("fedavg"), train, test)
    federated = parse_run_spec({"data.dataset": "digits", "evaluation": "federated"})
    check_evaluation(federated, get_method("fedavg"), train, test)
