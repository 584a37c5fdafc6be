"""A real gRPC federation on 127.0.0.1 (TLS + SuperNode auth) runs a Flower app
to completion and leaves no process behind; an unregistered node is refused.

The Flower app is a throwaway written into tmp_path by the test itself, so these
tests depend on nothing but `simulations.deploy.local_federation` and Flower.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from simulations.deploy.local_federation import LocalFederation, supernode_command
from simulations.deploy.processes import free_port, proc_info
from simulations.deploy.tls import generate_node_keypair

pytestmark = pytest.mark.integration

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "fvprobe"
version = "1.0.0"

[tool.flwr.app]
publisher = "fedvault-tests"

[tool.flwr.app.components]
serverapp = "fvprobe.server_app:app"
clientapp = "fvprobe.client_app:app"

[tool.flwr.app.config]
num-nodes = 1
data-root = ""
"""

# Waits for every node (a run may start before all nodes are seen), sends each
# one train message, and fails the run unless every node answers with its own
# partition id and the string node config it was started with.
SERVER_APP = '''\
import json, time
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()

@app.main()
def main(grid: Grid, context: Context) -> None:
    n, root = int(context.run_config["num-nodes"]), str(context.run_config["data-root"])
    deadline = time.monotonic() + 30
    while len(nodes := list(grid.get_node_ids())) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(nodes)} of {n} nodes connected")
        time.sleep(0.5)
    msgs = [Message(RecordDict({"x": MetricRecord({"x": 1.0})}), dst_node_id=nid,
                    message_type="train") for nid in nodes]
    replies = list(grid.send_and_receive(msgs, timeout=30))
    errors = [r.error.reason for r in replies if r.has_error()]
    if errors or len(replies) != n:
        raise RuntimeError(f"{len(replies)} replies of {n}, errors: {errors}")
    configs = [json.loads(r.content["echo"]["node-config"]) for r in replies]
    seen = sorted(int(c["partition-id"]) for c in configs)
    dirs_ok = all(c["data-dir"] == f"{root}/{c['partition-id']}" for c in configs)
    if seen != list(range(n)) or not dirs_ok:
        raise RuntimeError(f"unexpected node configs: {configs}")
'''

CLIENT_APP = '''\
import json
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()

@app.train()
def train(msg: Message, context: Context) -> Message:
    echo = ConfigRecord({"node-config": json.dumps(dict(context.node_config))})
    metrics = MetricRecord({"num-examples": 1})
    return Message(RecordDict({"metrics": metrics, "echo": echo}), reply_to=msg)
'''


@pytest.fixture
def probe_app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    (app / "fvprobe").mkdir(parents=True)
    (app / "pyproject.toml").write_text(PYPROJECT)
    (app / "fvprobe" / "__init__.py").write_text("")
    (app / "fvprobe" / "server_app.py").write_text(textwrap.dedent(SERVER_APP))
    (app / "fvprobe" / "client_app.py").write_text(textwrap.dedent(CLIENT_APP))
    return app


def processes_mentioning(text: str) -> list[str]:
    """Live (non-zombie) processes whose command line contains `text`: an
    independent check that does not trust the ProcessGroup's own bookkeeping."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        info = proc_info(int(pid))
        if text in cmdline and info is not None and info.state != "Z":
            found.append(f"{pid} {cmdline}")
    return found


# slow (24 s): every deployment test of fedvault (tests/integration/test_deploy.py) runs
# through LocalFederation over TLS and checks that no process outlives it
@pytest.mark.slow
def test_tls_round_trip_completes_and_leaves_no_process(tmp_path: Path, probe_app: Path) -> None:
    workdir = tmp_path / "fed"
    data_root = str(tmp_path / "node data")  # a space: exercises --node-config quoting

    def node_config(i: int, n: int) -> dict:
        return {"partition-id": i, "num-partitions": n, "data-dir": f"{data_root}/{i}"}

    with LocalFederation(workdir, 2, secure=True, node_config=node_config) as fed:
        run_id = fed.submit(probe_app, {"num-nodes": 2, "data-root": data_root})
        status = fed.wait(run_id, timeout=60)
        log = fed.logs(run_id) if status != "finished:completed" else ""

    assert status == "finished:completed", log
    # superlink, 2 nodes, plus descendants (SuperExecs, ServerApp, ClientApps)
    assert len(fed.group.seen_pids()) > 3
    assert fed.group.survivors() == set()
    assert fed.group.alive() == []
    assert processes_mentioning(str(workdir)) == []


def test_unregistered_node_key_is_refused(tmp_path: Path) -> None:
    workdir = tmp_path / "fed"
    with LocalFederation(workdir, 1, secure=True) as fed:
        key, _ = generate_node_keypair(workdir / "keys" / "intruder")  # never registered
        cmd = supernode_command(
            fed.fleet_address, free_port(), {"partition-id": 0, "num-partitions": 1},
            root_certificates=fed.tls.ca_cert, auth_key=key,
        )  # fmt: skip
        intruder = fed.group.start("intruder", cmd)
        returncode = intruder.wait(timeout=30)
        log = fed.group.log_path("intruder").read_text()
        online = fed.online_nodes()

    # Flower 1.39 prints "Exit Code: 305" but the process itself exits with 1.
    assert returncode != 0, log
    assert "[code: 2004]" in log and "Failed to activate SuperNode" in log, log
    assert online == fed.node_ids  # only the registered node got in
    assert fed.group.survivors() == set()
    assert processes_mentioning(str(workdir)) == []
