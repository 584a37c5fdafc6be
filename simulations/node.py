"""`fedvault node`: one real client, i.e. a Flower SuperNode with fedvault's node config.

The node's data come from its own disk (`--data-dir`, an image folder) or,
for demos, from a partition of a bundled data set (`--partition i/n`) cut
locally; a teacher checkpoint (`--teacher`) stays on this host. The process
execs flower-supernode, so its PID is the SuperNode's and signals reach it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from simulations.deploy import supernode_command
from simulations.processes import free_port


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


def parse_partition(text: str) -> tuple[int, int]:
    index, sep, total = text.partition("/")
    try:
        i, n = int(index), int(total)
    except ValueError:
        raise NodeArgumentError(f"--partition expects i/n (e.g. 0/3), got {text!r}") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise NodeArgumentError(f"--partition {text!r}: need 0 <= i < n")
    return i, n


def node_config(opts: NodeOptions) -> dict[str, str | int]:
    """The SuperNode's --node-config: where this node's data and private state live."""
    if (opts.data_dir is None) == (opts.partition is None):
        raise NodeArgumentError("give exactly one of --data-dir DIR or --partition i/n")
    config: dict[str, str | int] = {}
    if opts.data_dir is not None:
        if not opts.data_dir.is_dir():
            raise NodeArgumentError(f"--data-dir {opts.data_dir} does not exist")
        config["data-dir"] = str(opts.data_dir.resolve())
    else:
        config["partition-id"], config["num-partitions"] = parse_partition(opts.partition)
    for key, path in (("teacher", opts.teacher), ("state-dir", opts.state_dir)):
        if path is not None:
            if key == "teacher" and not path.is_file():
                raise NodeArgumentError(f"--teacher {path} does not exist")
            config[key] = str(path.resolve())
    return config


def node_argv(opts: NodeOptions) -> list[str]:
    if opts.insecure and (opts.root_certificates or opts.auth_key):
        raise NodeArgumentError("--insecure cannot be combined with --root-certificates/--auth-key")
    for flag, path in (("--root-certificates", opts.root_certificates), ("--auth-key", opts.auth_key)):
        if path is not None and not path.is_file():
            raise NodeArgumentError(f"{flag} {path} does not exist")
    if not opts.insecure and opts.root_certificates is None:
        raise NodeArgumentError("TLS needs --root-certificates CA (or --insecure for a trusted network)")
    return supernode_command(
        opts.superlink,
        opts.port or free_port(),
        node_config(opts),
        root_certificates=opts.root_certificates,
        auth_key=opts.auth_key,
        insecure=opts.insecure,
    )


def exec_node(opts: NodeOptions) -> None:
    argv = node_argv(opts)
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.execvp(argv[0], argv)
