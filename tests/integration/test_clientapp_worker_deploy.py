"""Claims about `fedvault node`'s long-lived ClientApp worker in a real deployment
(3 SuperNodes, TLS + SuperNode authentication, `fedvault deploy`'s path): the run
completes, each node's messages are all served by ONE worker process (its pid, logged
per task), no `flwr-clientapp` process is ever started, and nothing outlives the run."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from server.scenario import resolve
from simulations.deploy.worker_log import parse_task_lines
from simulations.deploy.faults import cmdline
from simulations.deploy.local_federation import LocalFederation
from simulations.deploy.processes import all_processes, descendants
from simulations.deploy.scenario import APP_DIR, deploy, fedvault_node_command, run_config

pytestmark = pytest.mark.integration

NODES = 3
SMALL = {"num-clients": str(NODES), "num-server-rounds": "3", "fedavg.local-epochs": "1",
         "data.dataset": "digits", "round-timeout": "120", "node-wait-timeout": "120"}


@pytest.mark.slow  # 70 s; tests/integration/test_deploy.py checks the one-worker claim in CI
def test_each_node_serves_every_message_of_a_tls_deployment_from_one_worker_process(tmp_path):
    feds: list[LocalFederation] = []
    clientapps: set[str] = set()  # any flwr-clientapp process seen below a node

    def look(record: dict) -> None:  # at each round's record: what runs below the nodes
        fed = feds[0]
        for name, pid in fed.group.pids().items():
            if name.startswith("node-"):
                clientapps.update(cmdline(p.pid) for p in descendants(pid, all_processes())
                                  if "flwr-clientapp" in cmdline(p.pid))

    try:
        status = deploy("fedavg", resolve("fedavg", SMALL), SMALL, nodes=NODES,
                        run_dir=tmp_path / "run", on_started=feds.append, on_record=look,
                        keep_temp=True)
        fed = feds[0]
        assert status == "finished:completed", (tmp_path / "run" / "events.log").read_text()
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["tls"] is True and summary["node_auth"] is True and summary["rounds"] == 3
        assert not fed.group.survivors(), "a process outlived the deployment"
        logs = {i: fed.group.log_path(f"node-{i}").read_text() for i in range(NODES)}
    finally:
        for fed in feds:
            shutil.rmtree(fed.workdir, ignore_errors=True)
    assert clientapps == set(), clientapps
    for i, log in logs.items():
        tasks = parse_task_lines(log)
        pids = Counter(task.pid for task in tasks)
        # NodeInfo, then one training request per round: all from the same process
        assert len(tasks) >= 4 and len(pids) == 1, (i, [(t.pid, t.type) for t in tasks])
        assert [task.n for task in tasks] == list(range(1, len(tasks) + 1))
        assert {task.status for task in tasks} == {"COMPLETED"}
        [worker_pid] = pids
        assert f"ClientApp worker pid {worker_pid}" in log  # the one its supervisor started
        assert sum(task.figures["load"] > 0.05 for task in tasks) <= 1  # the app loaded once


def _app_copy(root: Path) -> Path:
    """This Flower app under `root` with one more file: the same code, another FAB hash."""
    app = root / "app"
    app.mkdir(parents=True)
    shutil.copy2(APP_DIR / "pyproject.toml", app / "pyproject.toml")
    for package in ("server", "clients", "methods", "protos", "simulations"):
        shutil.copytree(APP_DIR / package, app / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (app / "FAB_MARKER.md").write_text("a second FAB of the same app\n")
    return app


@pytest.mark.slow
def test_a_run_of_new_code_is_served_by_a_fresh_interpreter_and_completes(tmp_path):
    """Two runs on the same nodes, the second from another FAB: each node's worker hands
    its first task of the new FAB to a fresh interpreter (same pid, exec) with the task's
    token, which serves that run to its end."""
    overrides = "num-server-rounds=1;num-clients=2;fedavg.local-epochs=1;data.dataset=digits"
    with LocalFederation(tmp_path / "fed", 2, node_command=fedvault_node_command) as fed:
        for app_dir, run_dir in ((APP_DIR, tmp_path / "first"), (_app_copy(tmp_path), tmp_path / "second")):
            config = run_config("fedavg", {}, run_dir, secure=True)
            config["overrides"] = overrides
            status = fed.wait(fed.submit(app_dir, config), timeout=600)
            assert status == "finished:completed", (run_dir / "events.log").read_text()
        logs = [fed.group.log_path(f"node-{i}").read_text() for i in range(2)]
        group = fed.group
    assert not group.survivors()
    for log in logs:
        tasks = parse_task_lines(log)
        assert "re-executing to serve it with fresh modules" in log
        runs = [task.run_id for task in tasks]
        second = runs.index(runs[-1])  # the second run's first task: message 1 of a new interpreter
        assert tasks[second].n == 1 and tasks[second].pid == tasks[0].pid
        assert {task.status for task in tasks} == {"COMPLETED"} and second >= 2
