"""Claims about `fedvault node` argument handling (no process is started)."""

import re
from pathlib import Path

import pytest

from simulations.cli.node import NodeArgumentError, NodeOptions, node_argv, parse_partition

pytestmark = pytest.mark.unit


def test_partition_demo_node_gets_partition_node_config(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    argv = node_argv(NodeOptions("127.0.0.1:9092", root_certificates=ca, partition="1/3", port=9999))
    config = argv[argv.index("--node-config") + 1]
    assert "partition-id=1" in config and "num-partitions=3" in config
    assert argv[argv.index("--root-certificates") + 1] == str(ca)


def test_data_dir_node_sends_its_path_not_its_data(tmp_path):
    argv = node_argv(NodeOptions("127.0.0.1:9092", insecure=True, data_dir=tmp_path, port=9999))
    assert str(tmp_path.resolve()) in argv[argv.index("--node-config") + 1]
    assert "--insecure" in argv


@pytest.mark.parametrize("text", ["3", "3/3", "-1/2", "a/b", "1/0"])
def test_bad_partitions_are_refused(text):
    with pytest.raises(NodeArgumentError):
        parse_partition(text)


@pytest.mark.parametrize(
    "opts,needle",
    [
        (dict(insecure=True), "exactly one"),
        (dict(insecure=True, partition="0/2", data_dir=Path("/tmp")), "exactly one"),
        (dict(insecure=True, data_dir=Path("/no/such/dir")), "does not exist"),
        (dict(partition="0/2"), "--root-certificates"),
        (dict(insecure=True, partition="0/2", auth_key=Path("/k")), "cannot be combined"),
        (dict(root_certificates=Path("/no/ca.crt"), partition="0/2"), "does not exist"),
    ],
)
def test_bad_node_options_are_clear_errors(opts, needle):
    with pytest.raises(NodeArgumentError, match=re.escape(needle)):
        node_argv(NodeOptions("127.0.0.1:9092", port=9999, **opts))


def test_a_nodes_privacy_floor_travels_in_its_own_node_config():
    from clients.dp_policy import NodePolicy

    argv = node_argv(NodeOptions("127.0.0.1:9092", insecure=True, partition="0/2", port=9999,
                                 min_noise_multiplier=1.1, max_epsilon=4.0))
    config = argv[argv.index("--node-config") + 1]
    assert "require-dp" in config and "min-noise-multiplier" in config
    from flwr.common.config import parse_config_args  # how the SuperNode reads it

    policy = NodePolicy.of(parse_config_args([config]))
    assert policy.require_dp and policy.min_noise_multiplier == 1.1 and policy.max_epsilon == 4.0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_a_non_finite_or_negative_privacy_floor_is_refused(value):
    with pytest.raises(NodeArgumentError, match="finite number >= 0"):
        node_argv(NodeOptions("127.0.0.1:9092", insecure=True, partition="0/2", port=9999,
                              min_noise_multiplier=value))


def test_a_node_runs_in_process_isolation_by_default_and_keeps_flowers_subprocess_mode(tmp_path):
    default = node_argv(NodeOptions("127.0.0.1:9092", insecure=True, partition="0/2", port=9999))
    assert default[default.index("--isolation") + 1] == "process"
    assert default[default.index("--host") + 1] == "127.0.0.1"  # the worker's API: loopback only
    flowers = node_argv(NodeOptions("127.0.0.1:9092", insecure=True, partition="0/2", port=9999,
                                    isolation="subprocess"))
    assert "--isolation" not in flowers and flowers[flowers.index("--port") + 1] == "9999"


def test_an_unknown_isolation_is_refused():
    with pytest.raises(NodeArgumentError, match="--isolation must be one of process, subprocess"):
        node_argv(NodeOptions("127.0.0.1:9092", insecure=True, partition="0/2", port=9999,
                              isolation="thread"))
