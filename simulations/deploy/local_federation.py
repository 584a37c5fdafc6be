"""A real local Flower federation over gRPC: one SuperLink and N SuperNodes on
127.0.0.1, runs submitted with the `flwr` CLI (for `fedvault deploy` and tests).

Everything binds to 127.0.0.1 only (Flower's Fleet API default is 0.0.0.0),
every port is freshly picked, and all Flower state (config.toml, apps/, the
SQLite DB, Ray's temp dir) lives under `workdir`, so two federations share
nothing. TLS and SuperNode authentication are on by default, as in production.

    with LocalFederation(workdir, num_nodes=2) as fed:
        run_id = fed.submit(app_dir, {"num-server-rounds": 1})
        status = fed.wait(run_id, timeout=120)   # "finished:completed"
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from simulations.deploy.processes import LOCALHOST, ProcessGroup, free_port, wait_for_port
from simulations.deploy.tls import TlsFiles, generate_node_keypair, generate_tls

ConfigValue = str | int | float | bool

CONNECTION = "fedvault-local"
_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def _bin(name: str) -> str:
    """A Flower executable from this interpreter's environment (the venv), so a
    non-activated `.venv/bin/python -m pytest` still runs the right Flower."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


# ---- config files and strings (Flower parses all of them as TOML) -------------


def toml_value(value: ConfigValue) -> str:
    """One TOML scalar. Strings become basic strings with JSON-style escapes."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # "1e-05", "inf", "nan" are valid TOML floats too
    if isinstance(value, str):
        # JSON escapes are TOML's; TOML forbids a raw DEL and surrogate \u escapes.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    raise TypeError(f"config values must be str, int, float or bool, got {type(value)}")


def format_node_config(config: Mapping[str, ConfigValue]) -> str:
    """The `--node-config` string for `config`, quoted the way flwr 1.39 parses it.

    1.39 (`flwr.common.config.parse_config_args`) splits it with the regex
    `(\\S+?)=('[^']*'|"[^"]*"|\\S+)` and parses each value as TOML: a string
    must be quoted (`data-dir='/tmp/x'`), may hold spaces only inside quotes,
    and cannot hold the quote that encloses it. A TOML literal string ('...')
    needs no escapes, so it is preferred. (A config string ending in `.toml`
    would be read as a file; a quoted last value never ends so.)
    """
    parts = []
    for key, value in config.items():
        if not _KEY.match(key):
            raise ValueError(f"node-config key {key!r} must match {_KEY.pattern}")
        if isinstance(value, str) and (
            ("'" in value and '"' in value) or any(ord(c) < 32 or ord(c) == 127 for c in value)
        ):
            raise ValueError(f"node-config value {value!r} cannot be passed to Flower")
        if isinstance(value, str) and "'" not in value:
            parts.append(f"{key}='{value}'")
        else:
            parts.append(f"{key}={toml_value(value)}")
    return " ".join(parts)


def write_run_config(path: Path, overrides: Mapping[str, ConfigValue]) -> Path:
    """Write run-config overrides as a TOML file for `flwr run -c <file>`.

    Keys are quoted, so a dotted key (`lirf.deposit-classes`) stays one flat
    key, exactly as Flower flattens nested tables; no shell quoting involved.
    """
    lines = [f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in overrides.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_connection(flwr_home: Path, name: str, address: str, ca_cert: Path | None) -> Path:
    """Write `$FLWR_HOME/config.toml` with `name` as the default SuperLink connection.

    `address` is the SuperLink's --host:--port (Control API), not the Fleet
    port; without a CA certificate the connection is `insecure = true`.
    """
    ca = None if ca_cert is None else toml_value(str(Path(ca_cert).resolve()))
    security = "insecure = true" if ca is None else f"root-certificates = {ca}"
    path = flwr_home / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"[superlink]\ndefault = {toml_value(name)}\n\n[superlink.{name}]\n"
        f"address = {toml_value(address)}\n{security}\n",
        encoding="utf-8",
    )
    return path


class DeploymentError(RuntimeError):
    """A federation process or `flwr` command failed; the message says why."""


def parse_json_output(stdout: str) -> dict:
    """The JSON document `flwr ... --format json` printed, after any other lines."""
    match = re.search(r"^\{", stdout, re.MULTILINE)
    if match is None:
        raise DeploymentError(f"no JSON in flwr output:\n{stdout}")
    return json.JSONDecoder().raw_decode(stdout[match.start() :])[0]


def federation_env(workdir: Path, flwr_home: Path) -> dict[str, str]:
    """Environment for every child: Flower and Ray state inside `workdir`, quiet, no installs."""
    env = dict(os.environ)
    env.update(
        FLWR_HOME=str(flwr_home),
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        RAY_TMPDIR=str(workdir / "ray"),
        PYTHONUNBUFFERED="1",  # logs arrive while a process runs, not when it exits
    )
    # The SuperLink and SuperNodes spawn flower-superexec, flwr-serverapp and
    # flwr-clientapp by bare name: the venv's bin/ must come first on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


# ---- commands -----------------------------------------------------------------


def superlink_command(
    *, control_port: int, fleet_port: int, database: Path, tls: TlsFiles | None
) -> list[str]:
    """flower-superlink on 127.0.0.1 with the gRPC Fleet API and no per-run `uv sync`."""
    cmd = [
        _bin("flower-superlink"), "--host", LOCALHOST, "--port", str(control_port),
        "--fleet-api-type", "grpc-rere", "--fleet-api-address", f"{LOCALHOST}:{fleet_port}",
        "--database", str(database), "--disable-runtime-dependency-installation",
    ]  # fmt: skip
    if tls is None:
        return cmd + ["--insecure"]
    return cmd + [
        "--ssl-ca-certfile", str(tls.ca_cert), "--ssl-certfile", str(tls.server_cert),
        "--ssl-keyfile", str(tls.server_key), "--enable-supernode-auth",
    ]  # fmt: skip


def supernode_command(
    superlink: str,
    port: int,
    node_config: Mapping[str, ConfigValue],
    *,
    root_certificates: Path | None = None,
    auth_key: Path | None = None,
    insecure: bool = False,
    executable: str | None = None,
    isolation: str = "subprocess",
) -> list[str]:
    """flower-supernode connecting to the Fleet API at `superlink` (HOST:PORT).

    `port` is the node's own Runtime API port on 127.0.0.1 (unique per host).
    `fedvault node` builds its SuperNode's command line with this function: with
    `isolation="process"` the SuperNode starts no ClientApp process of its own and
    fedvault's worker serves its Runtime API (simulations/deploy/node_supervisor.py).
    """
    if insecure and (root_certificates is not None or auth_key is not None):
        raise ValueError("insecure nodes take neither root certificates nor an auth key")
    if isolation not in ("subprocess", "process"):
        raise ValueError(f"isolation must be 'subprocess' or 'process', got {isolation!r}")
    cmd = [executable or _bin("flower-supernode"), "--superlink", superlink, "--port", str(port)]
    if isolation == "process":  # the Runtime API explicitly on loopback: only the worker dials it
        cmd += ["--isolation", "process", "--host", LOCALHOST]
    if node_config:
        cmd += ["--node-config", format_node_config(node_config)]
    if insecure:
        return cmd + ["--insecure"]
    if root_certificates is not None:
        cmd += ["--root-certificates", str(root_certificates)]
    if auth_key is not None:
        cmd += ["--auth-supernode-private-key", str(auth_key)]
    return cmd


@dataclass(frozen=True)
class NodeLaunch:
    """What a node command hook needs to start node `index`."""

    index: int
    num_nodes: int
    superlink: str  # Fleet API HOST:PORT
    port: int  # this node's Runtime API port (free, on 127.0.0.1)
    node_config: Mapping[str, ConfigValue]
    root_certificates: Path | None
    auth_key: Path | None  # registered private key (secure mode)
    insecure: bool


def default_node_config(index: int, num_nodes: int) -> dict[str, ConfigValue]:
    return {"partition-id": index, "num-partitions": num_nodes}


def default_node_command(launch: NodeLaunch) -> list[str]:
    return supernode_command(
        launch.superlink, launch.port, launch.node_config, insecure=launch.insecure,
        root_certificates=launch.root_certificates, auth_key=launch.auth_key,
    )  # fmt: skip


# ---- the federation -------------------------------------------------------------


class LocalFederation:
    """SuperLink + `num_nodes` SuperNodes on 127.0.0.1, stopped whatever happens.

    `node_config(i, n)` gives node i's `--node-config` values; `node_command`
    builds node i's argv from a `NodeLaunch` (default: `flower-supernode`;
    fedvault passes one that runs `fedvault node ...`).
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        num_nodes: int,
        *,
        secure: bool = True,
        node_config: Callable[[int, int], Mapping[str, ConfigValue]] = default_node_config,
        node_command: Callable[[NodeLaunch], Sequence[str]] = default_node_command,
        connection: str = CONNECTION,
        startup_timeout: float = 60.0,
        grace: float = 10.0,
    ) -> None:
        if num_nodes < 1:
            raise ValueError("num_nodes must be at least 1")
        self.workdir = Path(workdir).resolve()
        self.num_nodes, self.secure, self.connection = num_nodes, secure, connection
        self.node_config, self.node_command = node_config, node_command
        self.startup_timeout = startup_timeout
        self.tls: TlsFiles | None = None  # set by start() in secure mode
        self.flwr_home = self.workdir / "flwr-home"
        self.env = federation_env(self.workdir, self.flwr_home)
        self.group = ProcessGroup(self.workdir / "logs", env=self.env, grace=grace)
        self.control_port = self.fleet_port = 0
        self.node_ids: list[int] = []  # ids the SuperLink assigned at registration

    @property
    def superlink_address(self) -> str:  # Control/Runtime API: what `flwr` connects to
        return f"{LOCALHOST}:{self.control_port}"

    @property
    def fleet_address(self) -> str:  # Fleet API: what SuperNodes connect to
        return f"{LOCALHOST}:{self.fleet_port}"

    def __enter__(self) -> LocalFederation:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every process started (and everything they spawned). Idempotent."""
        self.group.stop()

    def start(self) -> LocalFederation:
        """Start the SuperLink, register and start the nodes, wait until all are online."""
        self.group.__enter__()  # from here on SIGINT/SIGTERM stop every child
        try:
            for sub in ("flwr-home", "ray", "logs"):
                (self.workdir / sub).mkdir(parents=True, exist_ok=True)
            self._start_superlink()
            ca = self.tls.ca_cert if self.tls else None
            write_connection(self.flwr_home, self.connection, self.superlink_address, ca)
            keys = self._register_nodes() if self.secure else [None] * self.num_nodes
            for i, key in enumerate(keys):
                self._start_node(i, key)
            self.wait_for_nodes(self.num_nodes, timeout=self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_superlink(self) -> None:
        if self.secure:
            self.tls = generate_tls(self.workdir / "certs")
        self.control_port, self.fleet_port = free_port(), free_port()
        cmd = superlink_command(control_port=self.control_port, fleet_port=self.fleet_port,
                                database=self.workdir / "state.db", tls=self.tls)  # fmt: skip
        proc = self.group.start("superlink", cmd, cwd=self.workdir)
        log = self.group.log_path("superlink")
        for port in (self.control_port, self.fleet_port):
            wait_for_port(port, timeout=self.startup_timeout, process=proc, log=log)

    def _register_nodes(self) -> list[Path]:
        """One key pair per node, registered in parallel (each `flwr` call costs
        ~2.5 s, mostly imports); returns the private key paths."""
        names = [f"node-{i}" for i in range(self.num_nodes)]
        pairs = [generate_node_keypair(self.workdir / "keys" / name) for name in names]
        with ThreadPoolExecutor(max_workers=min(self.num_nodes, os.cpu_count() or 1)) as pool:
            self.node_ids = list(pool.map(self.register_node, [pub for _, pub in pairs], names))
        return [private for private, _ in pairs]

    def restart_node(self, index: int, *, timeout: float = 180.0) -> str:
        """Start node `index` again after it died: same key (so, under node auth, the
        same node id), same node config. Returns the new process's name.

        The SuperLink refuses to activate a node id it still counts as online (exit
        code 305), so this first waits, at most `timeout`, until the dead node's
        heartbeats have expired (about a minute in Flower 1.39)."""
        key = self.workdir / "keys" / f"node-{index}" if self.secure else None
        deadline = time.monotonic() + timeout
        while self.secure and self.node_ids[index] in self.online_nodes():
            if time.monotonic() > deadline:
                raise DeploymentError(f"node-{index} still online {timeout:.0f} s after it died")
            time.sleep(1.0)
        prefix = f"node-{index}-restart-"
        restarts = sum(name.startswith(prefix) for name in self.group.pids())
        return self._start_node(index, key, name=f"{prefix}{restarts + 1}")

    def _start_node(self, index: int, auth_key: Path | None, name: str | None = None) -> str:
        launch = NodeLaunch(
            index=index, num_nodes=self.num_nodes, superlink=self.fleet_address,
            port=free_port(), node_config=dict(self.node_config(index, self.num_nodes)),
            root_certificates=self.tls.ca_cert if self.tls else None,
            auth_key=auth_key, insecure=not self.secure,
        )  # fmt: skip
        name = name or f"node-{index}"
        self.group.start(name, list(self.node_command(launch)), cwd=self.workdir)
        return name

    # -- the flwr CLI --------------------------------------------------------------

    def flwr(self, *args: str, timeout: float = 60.0, check: bool = True) -> str:
        """Run `flwr ARGS` against this federation's FLWR_HOME; return its stdout.

        It runs in the process group: stopping the federation stops it too.
        """
        cmd = [_bin("flwr"), *args]
        try:
            done = self.group.run(cmd, timeout=timeout, cwd=self.workdir)
        except subprocess.TimeoutExpired as err:
            raise DeploymentError(f"{' '.join(cmd)} timed out after {timeout:.0f} s") from err
        if check and done.returncode != 0:
            output = f"{done.stdout}\n{done.stderr}"
            raise DeploymentError(f"{' '.join(cmd)} exited with {done.returncode}\n{output}")
        return done.stdout

    def _flwr_json(self, *args: str, timeout: float = 60.0) -> dict:
        """`flwr ARGS --format json`; in JSON mode Flower reports most errors
        as {"success": false, "error-message": ...} and exits 0."""
        doc = parse_json_output(self.flwr(*args, "--format", "json", timeout=timeout, check=False))
        if not doc.get("success", True):
            raise DeploymentError(f"flwr {' '.join(args)}: {doc.get('error-message', doc)}")
        return doc

    def register_node(self, public_key: Path, name: str) -> int:
        """Register a SuperNode public key with the SuperLink; return the node id."""
        args = ("supernode", "register", str(public_key), self.connection, "--name", name)
        return int(self._flwr_json(*args)["node-id"])

    def online_nodes(self) -> list[int]:
        """Ids of the SuperNodes the SuperLink currently sees as online."""
        nodes = self._flwr_json("supernode", "ls", self.connection).get("nodes", [])
        return [int(n["node-id"]) for n in nodes if n.get("status") == "online"]

    def wait_for_nodes(self, count: int, *, timeout: float = 60.0) -> float:
        """Block until `count` nodes are online; return the seconds waited."""
        start = time.monotonic()
        while len(self.online_nodes()) < count:
            if dead := sorted(set(self.group.pids()) - set(self.group.alive())):
                raise DeploymentError(f"{dead} exited during start-up; see {self.group.log_dir}")
            if time.monotonic() - start > timeout:
                raise DeploymentError(f"fewer than {count} nodes online after {timeout:.0f} s")
            time.sleep(0.5)
        return time.monotonic() - start

    def submit(
        self,
        app_dir: str | os.PathLike[str],
        run_config_overrides: Mapping[str, ConfigValue] | None = None,
    ) -> int:
        """Submit the Flower app in `app_dir` as a run; return its run id."""
        args = ["run", str(Path(app_dir).resolve()), self.connection]
        if run_config_overrides:
            path = self.workdir / "run-config" / f"overrides-{time.time_ns()}.toml"
            args += ["-c", str(write_run_config(path, run_config_overrides))]
        return int(self._flwr_json(*args, timeout=120.0)["run-id"])

    def status(self, run_id: int) -> str:
        """The run's status, e.g. `running`, `finished:completed`, `finished:failed`."""
        doc = self._flwr_json("ls", self.connection, "--run-id", str(run_id))
        return str(doc["runs"][0]["status"])

    def wait(self, run_id: int, timeout: float = 300.0, *, poll: float = 1.0) -> str:
        """Poll until the run is `finished:*` and return that status.

        `flwr run --stream` exits 0 even when the run fails, hence the polling.
        On timeout the run is stopped and TimeoutError raised.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.group.track()  # record flwr-serverapp / flwr-clientapp children
            status = self.status(run_id)
            if status.startswith("finished:"):
                return status
            if time.monotonic() > deadline:
                self.flwr("stop", str(run_id), self.connection, check=False)
                raise TimeoutError(f"run {run_id} still {status!r} after {timeout:.0f} s")
            time.sleep(poll)

    def logs(self, run_id: int) -> str:
        """The run's ServerApp log as stored by the SuperLink (`flwr log --show`)."""
        return self.flwr("log", str(run_id), self.connection, "--show", check=False)
