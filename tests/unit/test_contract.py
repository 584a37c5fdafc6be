"""Claims about the wire contract (protos/contract.py): one spelling on both sides."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from clients.node_data import describe_node
from clients.phases import PHASES as NODE_PHASES
from clients.private_train import ledger_reply
from clients.tasks import node_key as own_node_key
from protos import contract
from protos.contract import INFO, LEDGER_ENTRY, LEDGER_EXTRA, PHASES
from server.federation import NodeRecord

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_the_node_dispatches_exactly_the_contract_phases():
    assert len(set(PHASES)) == len(PHASES) == 13
    assert set(NODE_PHASES) == set(PHASES)
    assert INFO not in PHASES  # the handshake has its own handler (clients/app.py)


def test_the_proto_lists_the_same_phases_as_the_contract():
    proto = (ROOT / "protos" / "fedvault.proto").read_text()
    header = proto[proto.index("message RoundHeader"):proto.index("string phase = 3;")]
    comment = " ".join(line for line in header.splitlines() if line.strip().startswith("//"))
    assert set(re.findall(r'"([a-z-]+)"', comment)) == set(PHASES) | {INFO}


@pytest.mark.parametrize("node_config", [
    {"partition-id": 3, "num-partitions": 8},
    {"data-dir": "/srv/shard"},
])
def test_server_and_node_name_a_node_alike(node_config):
    pid, num_partitions, source = describe_node(node_config)  # what its NodeInfo states
    record = NodeRecord(node_id=42, partition_id=pid, num_partitions=num_partitions,
                        data_source=source)
    assert record.key == own_node_key(node_config)


def test_partition_nodes_are_named_by_partition_and_others_by_data_source():
    assert contract.node_key(3, "partition") == contract.partition_key(3) == "p3"
    assert contract.node_key(-1, "dir:/srv/shard") == "dir:/srv/shard"
    assert contract.partition_of("p12") == 12
    assert contract.partition_of("n7") is None and contract.partition_of("p") is None


def test_a_dp_reply_carries_its_entry_and_every_ledger_extra_field():
    entry = {"noise_multiplier": 1.1, "sample_rate": 0.1, "steps": 10, "epsilon": 0.5,
             "delta": 1e-5, "clip_fraction": 0.2, "accountant": "rdp"}
    extra = {key.replace("-", "_"): 1.0 for key in LEDGER_EXTRA}
    reply = ledger_reply(1, {**entry, **extra, "train_seconds": 3.0})
    assert set(reply) == {LEDGER_ENTRY, *LEDGER_EXTRA}  # nothing else leaves the node


_PHASE_ARGUMENT_CALLS = {"header_config", "round_header", "exchange", "ask"}


def test_workflows_name_phases_by_contract_constants_not_strings():
    """Every call that sends or receives a phase spells it from protos/contract.py."""
    names = set(PHASES) | {INFO}
    bare = []
    for path in sorted([*ROOT.glob("server/**/*.py"), *ROOT.glob("clients/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in _PHASE_ARGUMENT_CALLS:
                continue
            # (a Flower message_type such as "train" is not a phase)
            for arg in [*node.args, *(k.value for k in node.keywords if k.arg == "phase")]:
                if isinstance(arg, ast.Constant) and arg.value in names:
                    bare.append(f"{path.relative_to(ROOT)}:{node.lineno} {arg.value!r}")
    assert not bare, bare
