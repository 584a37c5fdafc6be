"""Fault injection for real local deployments (tests and `fedvault bench faults`).

A node handles one message at a time, so "mid-round" has a precise meaning: SIGKILL
the node while it handles its n-th message (the first answers the server's NodeInfo
query, the second is the first training request). A `fedvault node` (process
isolation) logs when its ClientApp worker starts and finishes each task
(simulations/deploy/clientapp_worker.py); a node in subprocess isolation starts one
`flwr-clientapp` process per message, whose launches are counted instead.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from simulations.deploy.local_federation import LocalFederation
from simulations.deploy.processes import all_processes, descendants
from simulations.deploy.worker_log import parse_task_lines


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill_node_mid_round(
    fed: LocalFederation, name: str, stamp: dict, *, nth_clientapp: int = 2, timeout: float = 300.0
) -> None:
    """SIGKILL node `name` of `fed` (its whole process group: the node, its SuperNode
    and its ClientApp processes, as when its host dies) while it handles its
    `nth_clientapp`-th message (a worker's: or a later one, if the n-th ended between two
    looks 0.1 s apart: its log keeps every task, so none is missed).

    Records `killed_at` (time.monotonic()) and `killed_wall` (time.time()) in
    `stamp`; leaves `stamp` untouched if that message never came in `timeout`.
    """
    pid, log = fed.group.pids()[name], fed.group.log_path(name)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker_handles_nth(log, nth_clientapp) or clientapp_runs_nth(pid, seen, nth_clientapp):
            fed.group.kill(name, signal.SIGKILL, whole_group=True)
            stamp["killed_at"], stamp["killed_wall"] = time.monotonic(), time.time()
            return
        time.sleep(0.1)


def worker_handles_nth(log: Path, n: int) -> bool:
    """Whether the node's ClientApp worker has started its `n`-th task (or a later one)
    and not finished it yet, by the node's log."""
    tasks = parse_task_lines(log.read_text(errors="replace")) if log.exists() else []
    return len(tasks) >= n and tasks[-1].status is None


def clientapp_runs_nth(pid: int, seen: list[str], n: int) -> bool:
    """Whether the `n`-th flwr-clientapp launched below `pid` runs now (subprocess
    isolation); `seen` keeps the launches seen so far, in order."""
    # Count messages, not processes: Flower's SuperExec launches each message's ClientApp
    # with its own `--token`, and under load may launch one token twice (a retry), which
    # made a pid count kill nodes during discovery. One token = one message.
    commands = {p.pid: cmdline(p.pid) for p in descendants(pid, all_processes())}
    running = {launch_key(cmd, child) for child, cmd in commands.items() if "flwr-clientapp" in cmd}
    seen += sorted(running - set(seen))  # a set: two processes of one launch count once
    return len(seen) >= n and seen[n - 1] in running


def launch_key(command: str, pid: int) -> str:
    """The `--token` a ClientApp was launched with (its message), else its pid."""
    args = command.split()
    return args[args.index("--token") + 1] if "--token" in args[:-1] else f"pid:{pid}"
