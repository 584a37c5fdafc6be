"""Claims about `fedvault node` argument handling (no process is started)."""

import re
from pathlib import Path

import pytest

from simulations.node import NodeArgumentError, NodeOptions, node_argv, parse_partition

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
