"""Claim: docs/multihost.md works as written across hosts, and nobody gets in uninvited.

Four hosts are network namespaces made here (tests/netns.py; root only, else the test
skips and says why): the SuperLink host, two client hosts with their own image folders,
and a stranger that holds `ca.crt`. Every command block of the guide runs, as written,
on its host (tests/multihost_guide.py reads them from the page); only the variables the
guide asks for are set. A run must complete over gRPC with TLS and node authentication,
and each of the stranger's attempts must be refused.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from methods.common.datasets import MNIST_MEAN, MNIST_STD, load_mnist5k, write_image_folder
from simulations.deploy.local_federation import parse_json_output
from simulations.deploy.processes import ProcessGroup
from tests.multihost_guide import Block, Copy, steps
from tests.netns import Hosts, NetnsUnavailable

pytestmark = [pytest.mark.multihost, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
NODES = ("node0", "node1")
ROLES = {"superlink": ("superlink",), "node": NODES, "stranger": ("stranger",)}
IMAGES_PER_NODE = 400
BLOCK_TIMEOUT, RUN_TIMEOUT, START_TIMEOUT = 180.0, 480.0, 120.0
REFUSALS = ("Connection to the SuperLink is unavailable", "[code: 2004]")


@pytest.fixture
def hosts():
    for tool in ("ssh-keygen", "ss"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` is not installed (the guide uses ssh-keygen; the test uses ss)")
    names = ("superlink", *NODES, "stranger")
    try:
        made = Hosts(f"fv{os.getpid() % 100000}", names).__enter__()
    except NetnsUnavailable as exc:
        pytest.skip(f"cannot build network namespaces here: {exc}")
    try:
        yield made
    finally:
        made.remove()


class Walk:
    """Runs the guide's steps on the namespace hosts and keeps a transcript."""

    def __init__(self, hosts: Hosts, root: Path) -> None:
        self.hosts, self.root = hosts, root
        self.dirs = {h: root / h for h in hosts.names}
        self.group = ProcessGroup(root / "logs", grace=10.0)
        self.transcript: list[str] = []
        self.refused: list[tuple[str, str]] = []  # (command, what it printed)
        self.services: list[str] = []  # started and kept running

    def env(self, host: str, node: str) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLWR_", "RAY_"))}
        env.update(
            HOME=str(self.dirs[host]), FLWR_HOME=str(self.dirs[host] / "flwr-home"),
            FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1",
            FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1", PYTHONUNBUFFERED="1",
            PATH=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
            # the guide's variables, and nothing else
            SUPERLINK_HOST=self.hosts.address("superlink"), FEDVAULT_SRC=str(REPO),
            NODE=node, DATA_DIR=str(self.dirs[host] / "data"),
        )  # fmt: skip
        return env

    def argv(self, host: str, block: Block) -> list[str]:
        return self.hosts.argv(host, ["bash", "-e", "-u", "-o", "pipefail", "-c", block.text])

    def note(self, host: str, node: str, block: Block, result: str) -> None:
        who = f"{host}" + (f" (NODE={node})" if node != host else "")
        self.transcript.append(f"--- {who}, docs/multihost.md:{block.line}\n{block.text}{result}")

    def run(self, host: str, block: Block, node: str) -> None:
        """Run a block to its end, its output in a log file: a refused SuperNode's SuperExec
        child outlives it until the SuperNode is reaped, so a pipe would never close."""
        long = "flwr run" in block.text and "refused" not in block.flags
        timeout = RUN_TIMEOUT if long else BLOCK_TIMEOUT
        started, name = time.monotonic(), f"{host}-{len(self.transcript)}"
        proc = self.group.start(name, self.argv(host, block), env=self.env(host, node),
                                cwd=self.dirs[host])
        while proc.poll() is None:
            self.group.track()  # so stop() also ends what it spawned
            if time.monotonic() - started > timeout:
                self.group.kill(name, whole_group=True)
                pytest.fail(f"{host}: {block.text} did not end within {timeout:.0f} s")
            time.sleep(0.2)
        out = self.group.log_path(name).read_text(errors="replace").strip()
        self.note(host, node, block, f"=> exit {proc.returncode} after "
                  f"{time.monotonic() - started:.1f} s\n{_tail(out)}\n")
        if "refused" in block.flags:
            assert proc.returncode != 0, f"the stranger was let in:\n{block.text}\n{out}"
            assert any(r in out for r in REFUSALS), f"refused for another reason:\n{out}"
            why = [ln.strip(" │") for ln in out.splitlines()
                   if any(k in ln for k in ("Exit Code", "[code:", "unavailable"))]
            self.refused.append((block.text.strip(), f"exit {proc.returncode}: {' '.join(why)}"))
        else:
            assert proc.returncode == 0, f"{host}: {block.text}\nexit {proc.returncode}\n{out}"

    def start(self, host: str, block: Block, node: str) -> None:
        self.group.start(host, self.argv(host, block), env=self.env(host, node),
                         cwd=self.dirs[host])
        self.services.append(host)
        self.note(host, node, block, f"=> running (log: logs/{host}.log)\n")

    def copy(self, step: Copy) -> None:
        for src_host in ROLES[step.src_host]:
            for dst_host in ROLES[step.dst_host]:
                node = dst_host if step.dst_host == "node" else src_host
                src = self.dirs[src_host] / step.src.replace("$NODE", node)
                dst = self.dirs[dst_host] / step.dst.replace("$NODE", node)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                self.transcript.append(f"--- copy {src_host}:{src.relative_to(self.dirs[src_host])}"
                                       f" -> {dst_host}:{dst.relative_to(self.dirs[dst_host])}")

    # -- waiting for the services (what an operator watches for) ------------------------
    def wait_superlink(self) -> None:
        def ready() -> bool:
            listening = self.hosts.listening("superlink")
            return "127.0.0.1:9093" in listening and any(a.endswith(":9092") for a in listening)

        self._wait(ready, "the SuperLink to listen on 127.0.0.1:9093 and :9092")

    def flwr_json(self, *args: str) -> dict:
        """`flwr ARGS fedvault --format json` on the SuperLink host (the test's own look)."""
        block = Block("superlink", frozenset(), f"flwr {' '.join(args)} fedvault --format json", 0)
        done = self.group.run(self.argv("superlink", block), timeout=BLOCK_TIMEOUT,
                              env=self.env("superlink", "superlink"), cwd=self.dirs["superlink"])
        return parse_json_output(done.stdout)

    def online(self) -> list[dict]:
        return self.flwr_json("supernode", "ls").get("nodes", [])

    def wait_nodes(self) -> None:
        self._wait(lambda: sum(n.get("status") == "online" for n in self.online()) >= len(NODES),
                   f"{len(NODES)} nodes online")

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if dead := sorted(set(self.services) - set(self.group.alive())):
                logs = "\n".join(_tail(self.group.log_path(d).read_text(errors="replace"))
                                 for d in dead)
                pytest.fail(f"{dead} exited while waiting for {what}:\n{logs}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {START_TIMEOUT:.0f} s")
            time.sleep(1.0)


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _data(root: Path, host: str, images: slice) -> None:
    train = load_mnist5k("train")
    part = train.subset(list(range(images.start, images.stop)))
    write_image_folder(part, root / host / "data", normalize=(MNIST_MEAN, MNIST_STD))


def walk_the_guide(walk: Walk) -> None:
    for step in steps():
        if isinstance(step, Copy):
            walk.copy(step)
            continue
        for host in ROLES[step.host]:
            nodes = NODES if "each-node" in step.flags else (host,)
            for node in nodes:
                if step.service:
                    walk.start(host, step, node)
                else:
                    walk.run(host, step, node)
        if step.service and step.host == "superlink":
            walk.wait_superlink()
        elif step.service and step.host == "node":
            walk.wait_nodes()


def test_the_guide_runs_across_hosts_and_a_stranger_is_refused(hosts, tmp_path):
    started = time.monotonic()
    walk = Walk(hosts, tmp_path)
    for host in hosts.names:
        walk.dirs[host].mkdir()
    for i, node in enumerate(NODES):
        _data(tmp_path, node, slice(i * IMAGES_PER_NODE, (i + 1) * IMAGES_PER_NODE))
    _data(tmp_path, "stranger", slice(3000, 3050))
    try:
        with walk.group:
            walk_the_guide(walk)
            nodes, runs = walk.online(), walk.flwr_json("ls").get("runs", [])
            listening = hosts.listening("superlink")
        assert not walk.group.survivors(), "a process outlived the test"
    finally:
        walk.group.stop()
        print("\n".join(walk.transcript))
    print(f"[multihost] walked docs/multihost.md in {time.monotonic() - started:.0f} s")

    # The run: over gRPC, TLS and node authentication, with both nodes' updates.
    assert [r["status"] for r in runs] == ["finished:completed"], runs  # the stranger's never came
    run_dir = walk.dirs["superlink"] / "runs" / "first"
    summary = json.loads((run_dir / "summary.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    assert config["deployment"] == {"transport": "grpc-rere", "tls": True, "node_auth": True,
                                    "source": "superlink command line"}
    assert (summary["transport"], summary["tls"], summary["node_auth"]) == ("grpc-rere", True, True)
    assert summary["rounds"] == 1 and summary["num_clients"] == len(NODES)
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    registered = sorted(f"node-{n['node-id']}" for n in nodes)
    assert sorted(record["nodes"]) == registered and len(registered) == len(NODES)
    assert record["examples"] == len(NODES) * IMAGES_PER_NODE  # each node's own folder
    # a model came back and was evaluated (one round of one epoch: no claim on its quality)
    assert 0.0 < record["accuracy"] <= 1.0 and math.isfinite(record["train_loss"])
    assert (run_dir / "events.log").is_file()

    # The stranger: nothing reached, nothing registered; the Control API is on loopback only.
    assert len(walk.refused) >= 5
    assert len(nodes) == len(NODES), f"the stranger's key got registered: {nodes}"
    assert "127.0.0.1:9093" in listening and not any(
        a.endswith(":9093") and not a.startswith("127.0.0.1:") for a in listening)
    for command, printed in walk.refused:
        print(f"[stranger] $ {command}\n{printed}")
