"""Claims about real gRPC deployments: SuperLink + SuperNodes as processes on 127.0.0.1.

`fedvault node` runs each SuperNode beside its long-lived ClientApp worker; the TLS test
below also checks that one worker process served every message of its node
(tests/integration/test_clientapp_worker_deploy.py, slow, adds 3 nodes, 3 rounds and a
watch for any `flwr-clientapp` process)."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from methods.common.datasets import MNIST_MEAN, MNIST_STD, load_mnist5k, write_image_folder
from server.scenario import resolve
from simulations.deploy.local_federation import LocalFederation, NodeLaunch
from simulations.deploy.scenario import APP_DIR, deploy, run_config
from simulations.deploy.faults import kill_node_mid_round
from simulations.deploy.worker_log import parse_task_lines

pytestmark = pytest.mark.integration


def test_killed_supernode_is_logged_and_the_run_still_completes(tmp_path):
    overrides = {"num-server-rounds": "2", "num-clients": "3", "round-timeout": "30",
                 "fedavg.local-epochs": "1"}
    spec = resolve("fedavg", overrides)
    run_dir, stamp, feds = tmp_path / "run", {}, []

    def on_started(fed):
        feds.append(fed)
        threading.Thread(target=kill_node_mid_round, args=(fed, "node-1", stamp), daemon=True).start()

    status = deploy("fedavg", spec, overrides, nodes=3, run_dir=run_dir, on_started=on_started)
    ended = time.monotonic()
    assert status == "finished:completed"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["transport"] == "grpc-rere" and summary["tls"] is True and summary["node_auth"] is True
    assert summary["rounds"] == 2 and 0.0 < summary["accuracy"] <= 1.0
    events = (run_dir / "events.log").read_text()
    assert "(partition 1) sent no reply within 30 s" in events
    # The run ended within the round timeout (plus the work of the last round and shut-down).
    assert ended - stamp["killed_at"] < 30 + 120
    assert not feds[0].group.survivors(), "a Flower process outlived the deployment"


def _node_dirs(tmp_path: Path) -> list[Path]:
    """Two nodes' own image folders, made from disjoint halves of MNIST-5k's training split."""
    train = load_mnist5k("train")
    dirs = []
    for i, half in enumerate((slice(0, 600), slice(600, 1200))):
        part = train.subset(list(range(half.start, half.stop)))
        dirs.append(write_image_folder(part, tmp_path / f"node{i}-data", normalize=(MNIST_MEAN, MNIST_STD)))
    return dirs


def test_fedvault_nodes_train_on_their_own_local_directories_over_tls(tmp_path):
    data_dirs = _node_dirs(tmp_path)

    def node_command(launch: NodeLaunch) -> list[str]:
        return [sys.executable, "-m", "simulations.cli", "node", "--superlink", launch.superlink,
                "--port", str(launch.port), "--data-dir", str(data_dirs[launch.index]),
                "--root-certificates", str(launch.root_certificates), "--auth-key", str(launch.auth_key)]

    run_dir = tmp_path / "run"
    with LocalFederation(tmp_path / "fed", 2, node_command=node_command) as fed:
        overrides = "num-server-rounds=1;num-clients=2;fedavg.local-epochs=1;node-wait-timeout=30"
        config = run_config("fedavg", {}, run_dir, secure=True)
        config["overrides"] = overrides
        status = fed.wait(fed.submit(APP_DIR, config), timeout=400)
        group = fed.group
    assert status == "finished:completed", (run_dir / "events.log").read_text() if (run_dir / "events.log").exists() else ""
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_clients"] == 2 and summary["tls"] and summary["node_auth"]
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert record["replies"] == 2 and record["examples"] == 1200  # 600 images in each node's folder
    assert record["accuracy"] > 0.2  # one round, one epoch: well above chance (0.1)
    assert not group.survivors()
    for i in range(2):  # NodeInfo, training, evaluation: all served by one worker process
        tasks = parse_task_lines(group.log_path(f"node-{i}").read_text())
        assert len(tasks) >= 2 and len({task.pid for task in tasks}) == 1, tasks
        assert {task.status for task in tasks} == {"COMPLETED"}
