"""Claim: `fedvault simulate --ray-address` runs its ClientApps on an existing Ray cluster's
worker node, not on the machine the command is started from.

The test starts a real two-node Ray cluster itself, each node with `ray start --block` so
that every Ray process is a descendant of a process the test started, each in its own
network namespace (tests/netns.py: two hosts joined by a bridge; their addresses and every
port Ray opens exist only inside the namespaces; root only, else the test skips and says
why):
- the head (`--num-cpus=0`: Ray can place no ClientApp actor there), where fedvault's
  driver, i.e. the ServerApp, runs too, and
- a worker (`--num-cpus=2`, custom resource `fvworker`), with `PYTHONPATH` naming the
  repository as docs/commands.md says.
Then `python -m simulations.cli simulate` runs a small FedAvg on the cluster and must
complete.

There is no fallback to a second Ray node on 127.0.0.1: `ray start` (Ray 2.55) replaces a
loopback `--address` or `--node-ip-address` with the machine's outward address (its
`resolve_ip_for_localhost`), unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, with which it
refuses to start a worker node; and this test uses no address but its namespaces'.

That the ClientApps ran on the worker is checked three ways: Ray's node table (the head
has no CPU to give); the `ray::ClientAppActor` processes seen while the run goes are all
descendants of the worker's `ray start` and in the worker's network namespace; and Ray's
own per-node logs name ClientAppActor workers under the worker's temp dir, none under the
head's.

Stopping: SIGTERM to both `ray start --block` processes and to everything seen below them,
by PID (ProcessGroup), SIGKILL after 20 s; never `ray stop`, which kills every Ray process
on the machine by name, other runs' included. Afterwards no process carrying this test's
tag is left, and the temp dirs and namespaces are gone.

Marked `slow` as well as `integration`: it took 107-139 s in four runs on the 2-core
development VM (load 3-9 from other work), beyond the ~90 s an integration test may take.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simulations.deploy.processes import ProcessGroup, all_processes, descendants
from tests.conftest import REPO, isolated_env
from tests.netns import Hosts, NetnsUnavailable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKER_CPUS = 2  # one ClientApp actor per CPU (num-cpus=1 per client): a pool of two
START_TIMEOUT, RUN_TIMEOUT = 120.0, 420.0
TAG_VAR = "FEDVAULT_RAY_TEST"  # in every process of this test's cluster: found by it at the end
ACTOR_TITLE = "ray::ClientAppActor"  # Ray's process title of Flower's ClientApp actor
ACTOR_LOG_MARK = ":actor_name:ClientAppActor"  # what Ray writes first in an actor's worker log

# A driver of its own, only to wait until the worker has joined and to read Ray's node
# table (public API: ray.nodes()); prints it as JSON on its last line.
NODE_TABLE = r"""
import json, sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
deadline = time.monotonic() + float(sys.argv[2])
while True:
    alive = [n for n in ray.nodes() if n["Alive"]]
    if len(alive) >= 2 or time.monotonic() > deadline:
        break
    time.sleep(0.5)
ray.shutdown()
print(json.dumps([{"ip": n["NodeManagerAddress"], "id": n["NodeID"],
                   "resources": n["Resources"]} for n in alive]))
"""


@dataclass
class Cluster:
    """The head and the worker: two namespace hosts, each node with its own temp dir."""

    hosts: Hosts
    ray_dir: Path  # short (/tmp/fvray-*): Ray's AF_UNIX socket paths must stay < 107 bytes
    gcs_port: int = 6379  # Ray's default: the head's namespace has its own ports
    pids: dict[str, int] = field(default_factory=dict)  # role -> PID of its `ray start`

    def ip(self, role: str) -> str:
        return self.hosts.address(role)

    @property
    def address(self) -> str:
        return f"{self.ip('head')}:{self.gcs_port}"

    def argv(self, role: str, argv: list[str]) -> list[str]:
        return self.hosts.argv(role, argv)

    def temp_dir(self, role: str) -> Path:
        return self.ray_dir / role[0]  # h, w: short


@pytest.fixture
def cluster(tmp_path):
    env = isolated_env(tmp_path)  # makes the short /tmp/fvray-* dir (RAY_TMPDIR)
    try:
        hosts = Hosts(f"fr{os.getpid() % 100000}", ["head", "worker"]).__enter__()
    except NetnsUnavailable as exc:
        pytest.skip(f"cannot build network namespaces here: {exc} (and a second Ray node on "
                    "127.0.0.1 would get this machine's outward address: see the docstring)")
    try:
        yield Cluster(hosts, Path(env["RAY_TMPDIR"]))
    finally:
        hosts.remove()


def _ray_env(tmp_path: Path, tag: str) -> dict[str, str]:
    env = isolated_env(tmp_path)  # FLWR_HOME, RAY_TMPDIR, telemetry and usage stats off, PATH
    for key in ("RAY_ADDRESS", "FLWR_LOG_LEVEL"):
        env.pop(key, None)
    env[TAG_VAR] = tag
    return env


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _netns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def _tagged(tag: str) -> list[int]:
    """PIDs of live processes that carry this test's tag in their environment."""
    needle = f"{TAG_VAR}={tag}".encode()
    found = []
    for info in all_processes():
        if info.state == "Z":
            continue
        try:
            environ = Path(f"/proc/{info.pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(info.pid)
    return found


def _actor_logs(temp_dir: Path) -> list[Path]:
    """Ray's worker logs on one node that belong to a ClientAppActor."""
    found = []
    for log in temp_dir.glob("session_*/logs/worker-*"):
        try:
            if ACTOR_LOG_MARK in log.read_text(errors="replace"):
                found.append(log)
        except OSError:
            continue
    return found


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"({path} missing)"
    return f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _start_node(cluster: Cluster, group: ProcessGroup, role: str, env: dict[str, str]) -> None:
    ray = str(Path(sys.executable).parent / "ray")
    if role == "head":
        argv = [ray, "start", "--head", "--block", "--port", str(cluster.gcs_port),
                "--num-cpus", "0", "--num-gpus", "0", "--include-dashboard=false"]
    else:
        argv = [ray, "start", "--block", "--address", cluster.address,
                "--num-cpus", str(WORKER_CPUS), "--num-gpus", "0",
                "--resources", json.dumps({"fvworker": WORKER_CPUS})]
    argv += ["--node-ip-address", cluster.ip(role), "--temp-dir", str(cluster.temp_dir(role))]
    proc = group.start(role, cluster.argv(role, argv), env=env, cwd=REPO)
    cluster.pids[role] = proc.pid
    deadline = time.monotonic() + START_TIMEOUT
    while "Ray runtime started" not in group.log_path(role).read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"`ray start` ({role}) did not start:\n{_tail(group.log_path(role))}")
        time.sleep(0.5)


def _node_table(cluster: Cluster, group: ProcessGroup, env: dict[str, str]) -> list[dict]:
    done = group.run(cluster.argv("head", [sys.executable, "-c", NODE_TABLE, cluster.address,
                                           str(START_TIMEOUT)]),
                     timeout=START_TIMEOUT + 60, env=env, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, f"reading Ray's node table failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_simulate_on_a_ray_cluster_runs_the_clients_on_the_worker_node(cluster, tmp_path):
    started = time.monotonic()
    tag = uuid.uuid4().hex
    env = _ray_env(tmp_path, tag)
    print(f"[ray-cluster] head {cluster.ip('head')}, worker {cluster.ip('worker')} (network "
          f"namespaces); Ray temp dirs under {cluster.ray_dir}")
    out = tmp_path / "run"
    group = ProcessGroup(tmp_path / "logs", grace=20.0)
    actors: dict[int, tuple[str, str]] = {}  # pid -> (the `ray start` it runs under, netns)
    actor_paths: set[str] = set()  # the actors' PYTHONPATH (Flower sets it: docs/commands.md)
    try:
        with group:
            # fedvault importable on the worker (docs/commands.md), and a directory only the
            # worker names: Flower replaces the actors' PYTHONPATH with the driver's sys.path
            worker_only = cluster.ray_dir / "worker-only"
            worker_env = {**env, "PYTHONPATH": os.pathsep.join([str(REPO), str(worker_only)])}
            _start_node(cluster, group, "head", env)
            _start_node(cluster, group, "worker", worker_env)
            nodes = _node_table(cluster, group, env)
            print(f"[ray-cluster] nodes after {time.monotonic() - started:.0f} s: {nodes}")

            sim = group.start("simulate", cluster.argv("head", [
                sys.executable, "-m", "simulations.cli", "simulate", "fedavg",
                "--ray-address", cluster.address, "--out", str(out), "--seed", "1",
                "--set", "num-clients=2", "--set", "min-nodes=2", "--set", "num-server-rounds=1",
                "--set", "fedavg.local-epochs=1", "--set", "data.dataset=digits"]),
                env=env, cwd=REPO)  # fmt: skip
            deadline = time.monotonic() + RUN_TIMEOUT
            while sim.poll() is None:
                group.track()
                snapshot = all_processes()
                for role in ("head", "worker"):
                    for info in descendants(cluster.pids[role], snapshot):
                        if info.pid not in actors and _cmdline(info.pid).startswith(ACTOR_TITLE):
                            actors[info.pid] = (role, _netns(info.pid))
                            actor_paths.add(_environ(info.pid).get("PYTHONPATH", ""))
                if time.monotonic() > deadline:
                    pytest.fail(f"the simulation did not end within {RUN_TIMEOUT:.0f} s:\n"
                                f"{_tail(group.log_path('simulate'))}")
                time.sleep(0.3)
            sim_log = group.log_path("simulate").read_text(errors="replace")
            assert sim.returncode == 0, f"simulate exited {sim.returncode}:\n{sim_log[-4000:]}"
            actor_logs = {role: _actor_logs(cluster.temp_dir(role)) for role in ("head", "worker")}
            namespaces = {role: _netns(pid) for role, pid in cluster.pids.items()}
        # (leaving `with group`: SIGTERM to both `ray start --block`, their Ray processes and
        # everything seen below them, SIGKILL after 20 s)
        assert not group.survivors(), "a Ray process outlived `ray start`'s SIGTERM"
    finally:
        group.stop()
        leftovers = _tagged(tag)
        for pid in leftovers:  # (this test's own processes only: they carry its tag)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        print("\n".join(_tail(group.log_path(r), 15) for r in ("head", "worker", "simulate")))
        print(f"[ray-cluster] wall time {time.monotonic() - started:.0f} s")
    assert not leftovers, f"processes of the test's cluster were left running: {leftovers}"

    # The run completed on the cluster: 2 clients, 1 round, a model evaluated, figures drawn.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 1 and summary["num_clients"] == 2, summary
    assert 0.0 < summary["accuracy"] <= 1.0, summary
    assert (out / "plots" / "accuracy.png").is_file()
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert len(record["nodes"]) == 2, record  # both clients' updates counted
    config = json.loads((out / "config.json").read_text())
    assert config["deployment"]["client_num_cpus"] == 1.0, config["deployment"]

    # Ray's node table: the head offers no CPU, the worker (known by its resource) offers 2.
    assert len(nodes) == 2, nodes
    head = [n for n in nodes if "fvworker" not in n["resources"]]
    worker = [n for n in nodes if "fvworker" in n["resources"]]
    assert len(head) == len(worker) == 1, nodes
    assert head[0]["resources"].get("CPU", 0) == 0 and head[0]["ip"] == cluster.ip("head")
    assert worker[0]["resources"]["CPU"] == WORKER_CPUS and worker[0]["ip"] == cluster.ip("worker")

    # The ClientApp actors: every one ran below the worker's `ray start`, in its namespace.
    print(f"[ray-cluster] ClientAppActor processes seen: {actors}; their PYTHONPATH: {actor_paths}")
    assert actors, "no ClientAppActor process was seen during the run"
    assert {role for role, _ in actors.values()} == {"worker"}, actors
    assert namespaces["worker"] != namespaces["head"]
    assert {ns for _, ns in actors.values()} == {namespaces["worker"]}, (actors, namespaces)
    # What docs/commands.md says of PYTHONPATH: the driver's sys.path, not the worker's own.
    assert actor_paths and all(str(REPO) in p.split(os.pathsep) for p in actor_paths), actor_paths
    assert not any(str(worker_only) in p for p in actor_paths), actor_paths
    # Ray's own per-node record: actor worker logs on the worker node, none on the head.
    assert actor_logs["worker"] and not actor_logs["head"], actor_logs

    # Nothing left behind: the temp dirs (Ray's sessions and sockets) and the namespaces.
    shutil.rmtree(cluster.ray_dir)
    assert not cluster.ray_dir.exists()
    cluster.hosts.remove()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert cluster.hosts.prefix + "-" not in listed, listed
