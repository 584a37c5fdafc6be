"""Fault injection for real local deployments (tests and `fedvault bench faults`).

A SuperNode runs one `flwr-clientapp` process per message it handles, so
"mid-round" has a precise meaning: SIGKILL the node while the ClientApp of its
n-th message runs (the first answers the server's NodeInfo query, the second is
the first training request).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from simulations.deploy.local_federation import LocalFederation
from simulations.deploy.processes import all_processes, descendants


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill_node_mid_round(
    fed: LocalFederation, name: str, stamp: dict, *, nth_clientapp: int = 2, timeout: float = 300.0
) -> None:
    """SIGKILL process `name` of `fed` while its `nth_clientapp`-th ClientApp runs.

    Records `killed_at` (time.monotonic()) and `killed_wall` (time.time()) in
    `stamp`; leaves `stamp` untouched if that ClientApp never started in `timeout`.
    """
    pid = fed.group.pids()[name]
    # Count messages, not processes: Flower's SuperExec launches each message's ClientApp
    # with its own `--token`, and under load may launch one token twice (a retry), which
    # made a pid count kill nodes during discovery. One token = one message.
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        commands = {p.pid: cmdline(p.pid) for p in descendants(pid, all_processes())}
        running = {launch_key(cmd, child) for child, cmd in commands.items() if "flwr-clientapp" in cmd}
        seen += sorted(running - set(seen))  # a set: two processes of one launch count once
        if len(seen) >= nth_clientapp and seen[nth_clientapp - 1] in running:
            fed.group.kill(name, signal.SIGKILL)
            stamp["killed_at"], stamp["killed_wall"] = time.monotonic(), time.time()
            return
        time.sleep(0.1)


def launch_key(command: str, pid: int) -> str:
    """The `--token` a ClientApp was launched with (its message), else its pid."""
    args = command.split()
    return args[args.index("--token") + 1] if "--token" in args[:-1] else f"pid:{pid}"
