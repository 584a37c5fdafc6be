"""A real local Flower federation over gRPC on 127.0.0.1: one SuperLink, N
SuperNodes, runs submitted with the `flwr` CLI. Used by `fedvault deploy` and by
the integration tests.

Everything binds to 127.0.0.1 only (Flower's Fleet API default is 0.0.0.0),
every port is freshly picked, and all Flower state (config.toml, apps/, the
SQLite DB, Ray's temp dir) lives under `workdir`, so two federations (two test
jobs, two engineers) never share anything. By default the federation uses TLS
and SuperNode authentication, as a real deployment would.

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

from simulations.processes import LOCALHOST, ProcessGroup, free_port, wait_for_port
from simulations.tls import TlsFiles, generate_node_keypair, generate_tls

ConfigValue = str | int | float | bool

CONNECTION = "fedvault-local"
# Flower's CLI may print a banner or warnings before its JSON document.
_JSON_START = re.compile(r"^\{", re.MULTILINE)


def _bin(name: str) -> str:
    """A Flower executable from this interpreter's environment (the venv),
    so a non-activated `.venv/bin/python -m pytest` still finds the right one."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


# ---- TOML values (Flower parses --node-config and -c files as TOML) ----------


_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def toml_value(value: ConfigValue) -> str:
    """One TOML scalar. Strings become basic strings with JSON-style escapes."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # "1e-05", "inf", "nan" are all valid TOML floats
    if isinstance(value, str):
        # JSON escapes are valid TOML escapes, except that TOML also forbids a
        # raw DEL and a surrogate \u escape (hence ensure_ascii=False).
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    raise TypeError(f"config values must be str, int, float or bool, got {type(value)}")


def format_node_config(config: Mapping[str, ConfigValue]) -> str:
    """The `--node-config` string for `config`, quoted the way 1.39 parses it.

    flwr 1.39 (`flwr.common.config.parse_config_args`) splits the string with
    the regex `(\\S+?)=('[^']*'|"[^"]*"|\\S+)` and parses each value as TOML,
    so a string must be quoted (`data-dir='/tmp/x'`), may contain spaces only
    inside quotes, and must not contain the quote character that encloses it.
    A TOML literal string ('...') needs no escapes, so it is preferred.
    """
    parts = []
    for key, value in config.items():
        if not _KEY.match(key):
            raise ValueError(f"node-config key {key!r} must match {_KEY.pattern}")
        if isinstance(value, str):
            if any(c in value for c in "\n\r") or ("'" in value and '"' in value):
                raise ValueError(f"node-config value {value!r} cannot be passed to Flower")
            value_text = f"'{value}'" if "'" not in value else toml_value(value)
        else:
            value_text = toml_value(value)
        parts.append(f"{key}={value_text}")
    text = " ".join(parts)
    if text.endswith(".toml"):  # Flower would read a one-item config ending so as a file
        raise ValueError("a node config may not end with '.toml'")
    return text


def write_run_config(path: Path, overrides: Mapping[str, ConfigValue]) -> Path:
    """Write run-config overrides as a TOML file for `flwr run -c <file>`.

    Keys are quoted, so dotted keys (`lirf.deposit-classes`) stay one flat key
    exactly as Flower flattens nested tables; no shell quoting is involved.
    """
    lines = [f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in overrides.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_connection(
    flwr_home: Path, name: str, address: str, root_certificates: Path | None
) -> Path:
    """Write `$FLWR_HOME/config.toml` with one named SuperLink connection.

    `address` is the SuperLink's --host:--port (Control API), not the Fleet
    port. Without root certificates the connection is marked insecure.
    """
    lines = ["[superlink]", f"default = {toml_value(name)}", "", f"[superlink.{name}]"]
    lines.append(f"address = {toml_value(address)}")
    if root_certificates is None:
        lines.append("insecure = true")
    else:
        lines.append(f"root-certificates = {toml_value(str(Path(root_certificates).resolve()))}")
    flwr_home.mkdir(parents=True, exist_ok=True)
    path = flwr_home / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- commands -----------------------------------------------------------------


def superlink_command(
    *, control_port: int, fleet_port: int, database: Path, tls: TlsFiles | None
) -> list[str]:
    """flower-superlink on 127.0.0.1 with the gRPC Fleet API and no per-run `uv sync`."""
    cmd = [
        _bin("flower-superlink"),
        "--host", LOCALHOST,
        "--port", str(control_port),
        "--fleet-api-type", "grpc-rere",
        "--fleet-api-address", f"{LOCALHOST}:{fleet_port}",
        "--database", str(database),
        "--disable-runtime-dependency-installation",
    ]  # fmt: skip
    if tls is None:
        return cmd + ["--insecure"]
    return cmd + [
        "--ssl-ca-certfile", str(tls.ca_cert),
        "--ssl-certfile", str(tls.server_cert),
        "--ssl-keyfile", str(tls.server_key),
        "--enable-supernode-auth",
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
) -> list[str]:
    """flower-supernode connecting to the Fleet API at `superlink` (HOST:PORT).

    `port` is the node's own local Runtime API port (127.0.0.1), which must be
    unique per host. `fedvault node` builds its exec line with this function.
    """
    if insecure and (root_certificates is not None or auth_key is not None):
        raise ValueError("insecure nodes take neither root certificates nor an auth key")
    cmd = [executable or _bin("flower-supernode"), "--superlink", superlink]
    cmd += ["--port", str(port)]
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
    port: int  # this node's local Runtime API port
    node_config: Mapping[str, ConfigValue]
    root_certificates: Path | None
    auth_key: Path | None
    insecure: bool


def default_node_config(index: int, num_nodes: int) -> dict[str, ConfigValue]:
    return {"partition-id": index, "num-partitions": num_nodes}


def default_node_command(launch: NodeLaunch) -> list[str]:
    return supernode_command(
        launch.superlink,
        launch.port,
        launch.node_config,
        root_certificates=launch.root_certificates,
        auth_key=launch.auth_key,
        insecure=launch.insecure,
    )


def parse_json_output(stdout: str) -> dict:
    """The JSON document a `flwr ... --format json` command printed."""
    match = _JSON_START.search(stdout)
    if match is None:
        raise ValueError(f"no JSON in flwr output:\n{stdout}")
    return json.JSONDecoder().raw_decode(stdout[match.start() :])[0]


def federation_env(workdir: Path, flwr_home: Path, base: Mapping[str, str] | None = None) -> dict:
    """Environment for every child: Flower and Ray state inside `workdir`, quiet, no installs."""
    env = dict(os.environ if base is None else base)
    env.update(
        FLWR_HOME=str(flwr_home),
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        RAY_TMPDIR=str(workdir / "ray"),
        PYTHONUNBUFFERED="1",  # logs arrive while the process runs, not at exit
    )
    # The SuperLink and SuperNodes spawn flower-superexec, flwr-serverapp and
    # flwr-clientapp by bare name: the venv's bin/ must come first on PATH.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    return env


class FederationError(RuntimeError):
    """A federation process or `flwr` command failed; the message quotes its output."""


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
        self.num_nodes = num_nodes
        self.secure = secure
        self.node_config = node_config
        self.node_command = node_command
        self.connection = connection
        self.startup_timeout = startup_timeout
        self.flwr_home = self.workdir / "flwr-home"
        self.env = federation_env(self.workdir, self.flwr_home)
        self.group = ProcessGroup(self.workdir / "logs", env=self.env, grace=grace)
        self.tls: TlsFiles | None = None
        self.control_port = 0
        self.fleet_port = 0
        self.node_ids: list[int] = []  # SuperLink-assigned ids of registered nodes (secure mode)

    @property
    def superlink_address(self) -> str:
        """Control/Runtime API address: what `flwr` connects to."""
        return f"{LOCALHOST}:{self.control_port}"

    @property
    def fleet_address(self) -> str:
        """Fleet API address: what SuperNodes connect to."""
        return f"{LOCALHOST}:{self.fleet_port}"

    # -- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> LocalFederation:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalFederation:
        """Start the SuperLink, register and start the nodes, wait until all are online."""
        self.group.__enter__()  # SIGINT/SIGTERM now stop every child
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

    def stop(self) -> None:
        """Stop every process started (and everything they spawned). Idempotent."""
        self.group.stop()

    def _start_superlink(self) -> None:
        if self.secure:
            self.tls = generate_tls(self.workdir / "certs")
        self.control_port, self.fleet_port = free_port(), free_port()
        cmd = superlink_command(
            control_port=self.control_port,
            fleet_port=self.fleet_port,
            database=self.workdir / "state.db",
            tls=self.tls,
        )
        proc = self.group.start("superlink", cmd, cwd=self.workdir)
        log = self.group.log_path("superlink")
        for port in (self.control_port, self.fleet_port):
            wait_for_port(port, timeout=self.startup_timeout, process=proc, log=log)

    def _register_nodes(self) -> list[Path]:
        """One key pair per node, registered in parallel (each `flwr` call costs
        ~2.5 s of mostly import time); returns the private key paths."""
        pairs = [
            generate_node_keypair(self.workdir / "keys" / f"node-{i}")
            for i in range(self.num_nodes)
        ]
        workers = max(1, min(self.num_nodes, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            self.node_ids = list(
                pool.map(lambda i: self.register_node(pairs[i][1], name=f"node-{i}"),
                         range(self.num_nodes))
            )  # fmt: skip
        return [private for private, _ in pairs]

    def _start_node(self, index: int, auth_key: Path | None) -> None:
        launch = NodeLaunch(
            index=index,
            num_nodes=self.num_nodes,
            superlink=self.fleet_address,
            port=free_port(),
            node_config=dict(self.node_config(index, self.num_nodes)),
            root_certificates=self.tls.ca_cert if self.tls else None,
            auth_key=auth_key,
            insecure=not self.secure,
        )
        self.group.start(f"node-{index}", list(self.node_command(launch)), cwd=self.workdir)

    # -- the flwr CLI --------------------------------------------------------------

    def flwr(self, *args: str, timeout: float = 60.0, check: bool = True) -> str:
        """Run `flwr ARGS` against this federation's FLWR_HOME; return its stdout."""
        cmd = [_bin("flwr"), *args]
        try:
            done = subprocess.run(
                cmd, env=self.env, cwd=self.workdir, capture_output=True, text=True,
                timeout=timeout, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired as err:
            raise FederationError(f"{' '.join(cmd)} timed out after {timeout:.0f} s") from err
        if check and done.returncode != 0:
            raise FederationError(
                f"{' '.join(cmd)} exited with {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def register_node(self, public_key: Path, *, name: str) -> int:
        """Register a SuperNode public key with the SuperLink; return the node id."""
        out = self.flwr(
            "supernode", "register", str(public_key), self.connection,
            "--name", name, "--format", "json",
        )  # fmt: skip
        return int(parse_json_output(out)["node-id"])

    def online_nodes(self) -> list[int]:
        """Ids of the SuperNodes the SuperLink currently sees as online."""
        out = self.flwr("supernode", "ls", self.connection, "--format", "json")
        nodes = parse_json_output(out).get("nodes", [])
        return [int(n["node-id"]) for n in nodes if n.get("status") == "online"]

    def wait_for_nodes(self, count: int, *, timeout: float = 60.0) -> float:
        """Block until `count` nodes are online; return the seconds waited."""
        start = time.monotonic()
        while len(self.online_nodes()) < count:
            alive = self.group.alive()
            dead = [name for name in self.group.pids() if name not in alive]
            if dead:
                raise FederationError(f"{dead} exited during start-up; see {self.group.log_dir}")
            if time.monotonic() - start > timeout:
                raise FederationError(f"fewer than {count} nodes online after {timeout:.0f} s")
            time.sleep(0.5)
        return time.monotonic() - start

    def submit(self, app_dir: str | os.PathLike[str], overrides: Mapping[str, ConfigValue] | None = None) -> int:
        """Submit the Flower app in `app_dir` as a run; return its run id."""
        args = ["run", str(Path(app_dir).resolve()), self.connection, "--format", "json"]
        if overrides:
            path = self.workdir / "run-config" / f"overrides-{time.time_ns()}.toml"
            args += ["-c", str(write_run_config(path, overrides))]
        return int(parse_json_output(self.flwr(*args, timeout=120.0))["run-id"])

    def status(self, run_id: int) -> str:
        """The run's status, e.g. `running`, `finished:completed`, `finished:failed`."""
        out = self.flwr("ls", self.connection, "--run-id", str(run_id), "--format", "json")
        return str(parse_json_output(out)["runs"][0]["status"])

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
        """The run's ServerApp log as the SuperLink stored it."""
        return self.flwr("log", str(run_id), self.connection, "--show", check=False)
