"""`fedvault node`: one real client, i.e. a Flower SuperNode with fedvault's node config.

The node's data come from its own disk (`--data-dir`, an image folder or an .npz file) or,
for demos, from a partition of a bundled data set (`--partition i/n`) cut
locally; a teacher checkpoint (`--teacher`) stays on this host.

By default (`--isolation process`) the node is two processes under one supervisor, whose
PID is this command's (it execs simulations/deploy/node_supervisor.py once the arguments
are checked): a SuperNode in Flower's `--isolation process` and a long-lived ClientApp
worker that imports torch, Flower and fedvault once and serves every message
(simulations/deploy/clientapp_worker.py). SIGTERM/SIGINT to the PID stop both.
`--isolation subprocess` is Flower's default instead: the process execs flower-supernode
(its PID is the SuperNode's), whose SuperExec starts one flwr-clientapp per message.

A run of a user's own method (`method = "mymethod:TinyCNN"`) needs that module on this
host too: `--method-path DIR` (repeatable) names where it lies. The ClientApp processes
(the worker, or each flwr-clientapp) inherit the environment, so the directories travel
in METHOD_PATH_ENV (methods/user_method.py reads it).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from clients.dp_policy import ALLOW_AUDIT, MAX_EPSILON, MIN_NOISE_MULTIPLIER, REQUIRE_DP
from clients.node_device import NODE_DEVICE
from methods.common.device import resolve_device
from methods.config import ConfigError
from methods.user_method import METHOD_PATH_ENV, PATH_ONLY_ENV, add_method_path, exported_method_path
from simulations.deploy.local_federation import supernode_command
from simulations.deploy.node_supervisor import supervisor_command
from simulations.deploy.processes import free_port

ISOLATIONS = ("process", "subprocess")  # process: fedvault's long-lived worker (the default)


class NodeArgumentError(ValueError):
    """A bad `fedvault node` argument (the CLI exits 2)."""


@dataclass(frozen=True)
class NodeOptions:
    superlink: str
    root_certificates: Path | None = None
    auth_key: Path | None = None
    insecure: bool = False
    data_dir: Path | None = None
    partition: str | None = None
    teacher: Path | None = None
    state_dir: Path | None = None
    port: int | None = None
    # the node's own privacy floor (clients/dp_policy.py): enforced on this host
    require_dp: bool = False
    min_noise_multiplier: float = 0.0
    max_epsilon: float = 0.0
    allow_audit: bool = False
    # directories holding a user's method module (`mymethod:TinyCNN`), searched first
    method_path: tuple[Path, ...] = ()
    # this node's own device (clients/node_device.py): overrides the run config's `device`
    device: str | None = None
    # "process": one long-lived ClientApp worker; "subprocess": a flwr-clientapp per message
    isolation: str = "process"


def parse_partition(text: str) -> tuple[int, int]:
    index, sep, total = text.partition("/")
    try:
        i, n = int(index), int(total)
    except ValueError:
        raise NodeArgumentError(f"--partition expects i/n (e.g. 0/3), got {text!r}") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise NodeArgumentError(f"--partition {text!r}: need 0 <= i < n")
    return i, n


def node_config(opts: NodeOptions) -> dict[str, str | int | float]:
    """The SuperNode's --node-config: where this node's data and private state live."""
    if (opts.data_dir is None) == (opts.partition is None):
        raise NodeArgumentError("give exactly one of --data-dir DIR or --partition i/n")
    config: dict[str, str | int] = {}
    if opts.data_dir is not None:
        # an image folder, or a NumPy .npz file (x, y[, x_test, y_test]; methods/common/npz.py)
        if not (opts.data_dir.is_dir() or (opts.data_dir.is_file()
                                           and opts.data_dir.suffix.lower() == ".npz")):
            raise NodeArgumentError(f"--data-dir {opts.data_dir} does not exist or is neither an "
                                    f"image folder nor an .npz file")
        config["data-dir"] = str(opts.data_dir.resolve())
    else:
        config["partition-id"], config["num-partitions"] = parse_partition(opts.partition)
    for key, path in (("teacher", opts.teacher), ("state-dir", opts.state_dir)):
        if path is not None:
            if key == "teacher" and not path.is_file():
                raise NodeArgumentError(f"--teacher {path} does not exist")
            config[key] = str(path.resolve())
    if opts.device is not None:
        try:  # on this host, before the SuperNode starts: a device it lacks exits 2 here
            resolve_device(opts.device, key="--device")
        except ConfigError as exc:
            raise NodeArgumentError(str(exc)) from None
        config[NODE_DEVICE] = opts.device
    return {**config, **_policy_config(opts)}


def _policy_config(opts: NodeOptions) -> dict[str, str | int | float]:
    for flag, value in (("--min-noise-multiplier", opts.min_noise_multiplier),
                        ("--max-epsilon", opts.max_epsilon)):
        if not math.isfinite(value) or value < 0:
            raise NodeArgumentError(f"{flag} must be a finite number >= 0, got {value}")
    config: dict[str, str | int | float] = {}  # numbers travel as TOML numbers
    if opts.require_dp or opts.min_noise_multiplier or opts.max_epsilon:
        config[REQUIRE_DP] = 1
    if opts.min_noise_multiplier:
        config[MIN_NOISE_MULTIPLIER] = float(opts.min_noise_multiplier)
    if opts.max_epsilon:
        config[MAX_EPSILON] = float(opts.max_epsilon)
    if opts.allow_audit:
        config[ALLOW_AUDIT] = 1
    return config


def node_argv(opts: NodeOptions) -> list[str]:
    if opts.insecure and (opts.root_certificates or opts.auth_key):
        raise NodeArgumentError("--insecure cannot be combined with --root-certificates/--auth-key")
    for flag, path in (("--root-certificates", opts.root_certificates), ("--auth-key", opts.auth_key)):
        if path is not None and not path.is_file():
            raise NodeArgumentError(f"{flag} {path} does not exist")
    if not opts.insecure and opts.root_certificates is None:
        raise NodeArgumentError("TLS needs --root-certificates CA (or --insecure for a trusted network)")
    if opts.isolation not in ISOLATIONS:
        raise NodeArgumentError(f"--isolation must be one of {', '.join(ISOLATIONS)}, "
                                f"got {opts.isolation!r}")
    return supernode_command(
        opts.superlink,
        opts.port or free_port(),
        node_config(opts),
        root_certificates=opts.root_certificates,
        auth_key=opts.auth_key,
        insecure=opts.insecure,
        isolation=opts.isolation,
    )


def method_path_value(opts: NodeOptions) -> str:
    """METHOD_PATH_ENV for the node's ClientApps: --method-path first, then any inherited."""
    for directory in reversed(opts.method_path):  # each goes in front: keep their order
        if not directory.is_dir():
            raise NodeArgumentError(f"--method-path {directory} is not a directory")
        add_method_path(directory)
    return exported_method_path()


def exec_node(opts: NodeOptions) -> None:
    """Check the arguments, then replace this process: by the node supervisor (process
    isolation) or by flower-supernode itself (subprocess isolation)."""
    argv = node_argv(opts)
    method_path = method_path_value(opts)
    precheck(opts)
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ[PATH_ONLY_ENV] = "1"  # the server's run config cannot name other modules
    if method_path:
        os.environ[METHOD_PATH_ENV] = method_path
    if opts.isolation == "process":
        argv = supervisor_command(argv, int(argv[argv.index("--port") + 1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def precheck(opts: NodeOptions) -> None:
    """Say why the Fleet API is unreachable before Flower's silent retry loop starts: a
    certificate problem stops the node (retrying cannot fix it); a closed port is only
    reported, since the SuperLink may still be starting (simulations/deploy/fleet_check.py)."""
    from simulations.deploy.fleet_check import check_fleet

    try:
        problem = check_fleet(opts.superlink, None if opts.insecure else opts.root_certificates)
    except ValueError as exc:
        raise NodeArgumentError(str(exc)) from None
    if problem is not None and problem.fatal:
        raise NodeArgumentError(problem.message)
    if problem is not None:
        print(f"fedvault node: {problem.message}; the node keeps retrying", file=sys.stderr,
              flush=True)
