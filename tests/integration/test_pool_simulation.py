"""A pooled run in Flower's real Simulation Engine (Ray): 2 virtual SuperNodes play 6
logical clients and train the clients an unpooled run trains (docs/performance.md#pooled-clients)."""

from __future__ import annotations

import json

import pytest

from server.runner import Job, run_job
from server.scenario import resolve
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.integration

SETTINGS = {"num-clients": "6", "fraction-train": "0.34", "num-server-rounds": "2",
            "data.dataset": "digits", "data.partitioner": "iid", "fedavg.local-epochs": "1"}


def _rounds(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_simulated_nodes_play_six_clients_as_six_nodes_would(fedvault_cli, tmp_path):
    sets = [a for key, value in SETTINGS.items() for a in ("--set", f"{key}={value}")]
    proc = fedvault_cli("simulate", "fedavg", "--out", str(tmp_path / "pooled"), *sets,
                        "--set", "pool-nodes=2", check=True)
    assert "2 simulated nodes playing 6 clients" in proc.stdout
    pooled = _rounds(tmp_path / "pooled")

    plain_run = tmp_path / "plain"  # the unpooled reference: one node per client, in process
    run_job(InProcessGrid(partition_nodes(6)),
            Job(spec=resolve("fedavg", SETTINGS), run_dir=str(plain_run), scenario="fedavg"))
    plain = _rounds(plain_run)

    assert [r["nodes"] for r in pooled] == [r["nodes"] for r in plain]
    assert len({n for r in pooled for n in r["nodes"]}) > 2  # more clients than pool nodes
    for mine, theirs in zip(pooled, plain):
        assert mine["accuracy"] == pytest.approx(theirs["accuracy"], abs=0.01)
    summary = json.loads((tmp_path / "pooled" / "summary.json").read_text())
    assert summary["num_clients"] == 6

