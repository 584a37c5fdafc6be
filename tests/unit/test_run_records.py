"""Claims about what a run records about its federation: the transport it really ran
over, which nodes each round aggregated, what it waits for, and an events.log that is
always there (in-process grid; no Flower processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flwr.superlink.grid import HttpGrid

from server.deployment import deployment_facts, superlink_settings
from server.federation import Federation
from server.run_dir import RunDirectory
from server.runner import Job, run_job
from server.scenario import resolve
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
FAST = {"num-clients": "3", "num-server-rounds": "1", "fedavg.local-epochs": "1",
        "data.partitioner": "iid", "data.dataset": "digits", "node-wait-timeout": "1"}


def test_each_round_names_the_nodes_it_aggregated_and_events_log_always_exists(tmp_path):
    job = Job(spec=resolve("fedavg", FAST), run_dir=str(tmp_path / "run"), scenario="fedavg")
    run_job(InProcessGrid(partition_nodes(3)), job)
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert record["nodes"] == ["p0", "p1", "p2"] and record["replies"] == 3
    assert (tmp_path / "run" / "events.log").read_text() == ""  # nothing happened


def test_a_run_short_of_nodes_says_at_once_what_it_waits_for_and_how_to_size_it(tmp_path, capsys):
    grid = InProcessGrid([{"partition-id": 0, "num-partitions": 3},
                          {"partition-id": 1, "num-partitions": 3}])
    run = RunDirectory.create(tmp_path / "run", {})
    Federation(grid, resolve("fedavg", FAST), run).discover()
    said = capsys.readouterr().out
    events = (tmp_path / "run" / "events.log").read_text()
    for text in (said, events):
        assert "waiting up to 1 s for 3 nodes (num-clients=3); 2 connected now" in text
        assert "overrides='num-clients=2'" in text and "--set num-clients=2" in text
    assert "continuing with them" in events


def test_a_simulated_run_records_simulation():
    assert deployment_facts(InProcessGrid([]), {}) == {"transport": "simulation"}


def test_a_run_on_a_real_superlink_is_never_recorded_as_simulation():
    grid = HttpGrid("127.0.0.1:1", insecure=False, token="t")  # never connects here
    facts = deployment_facts(grid, {})
    assert facts["transport"] == "unknown" and facts["tls"] is True  # no SuperLink above us
    assert deployment_facts(HttpGrid("127.0.0.1:1", insecure=True, token="t"), {})["tls"] is False


@pytest.mark.parametrize("argv,facts", [
    (["--ssl-certfile", "s.pem", "--enable-supernode-auth"], ("grpc-rere", True, True)),
    (["--insecure", "--fleet-api-type=grpc-adapter"], ("grpc-adapter", False, False)),
    (["--fleet-api-type", "grpc-rere", "--ssl-keyfile", "k"], ("grpc-rere", True, False)),
])
def test_the_superlinks_command_line_gives_transport_tls_and_node_auth(argv, facts):
    got = superlink_settings(argv)
    assert (got["transport"], got["tls"], got["node_auth"]) == facts


def test_the_superlink_above_the_serverapp_is_found_by_its_command_line(tmp_path):
    # flower-superlink -> (SuperExec) -> flwr-serverapp: here a stand-in two levels up.
    serverapp = tmp_path / "serverapp.py"
    serverapp.write_text("from server.deployment import superlink_argv\nprint(superlink_argv())\n")
    superexec = tmp_path / "superexec.py"
    superexec.write_text(f"import subprocess, sys\nsubprocess.run([sys.executable, {str(serverapp)!r}])\n")
    superlink = tmp_path / "flower-superlink"
    superlink.write_text(f"import subprocess, sys\nsubprocess.run([sys.executable, {str(superexec)!r}])\n")
    done = subprocess.run([sys.executable, str(superlink), "--enable-supernode-auth"],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.strip() == "['--enable-supernode-auth']", done.stderr
