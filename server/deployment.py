"""What a run really ran over (config.json's `deployment`, copied into summary.json).

The ServerApp cannot be told this by whoever submits the run and be believed: a
`flwr run` against a real SuperLink carries no `deployment` run-config value, and
recording "simulation" for it was wrong. So the facts are observed where they can be:

- the engine, from the grid Flower hands the ServerApp: an HttpGrid talks to a real
  SuperLink's Runtime API; any other grid is the in-process simulation engine;
- TLS, from that grid's own connection (one `--ssl-*`/`--insecure` switch covers the
  SuperLink's Fleet, Control and Runtime APIs alike);
- the Fleet API type and SuperNode authentication, from the command line of the
  SuperLink this ServerApp runs under (`flwr-serverapp` is a grandchild of
  `flower-superlink` in Flower's default subprocess isolation).

What cannot be observed stays as `fedvault deploy` declared it (it built the
SuperLink's command line itself), else "unknown"; never a guess.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SIMULATION = {"transport": "simulation"}
UNKNOWN = "unknown"


def deployment_facts(grid: object, declared: dict[str, Any]) -> dict[str, Any]:
    from flwr.superlink.grid import HttpGrid

    if not isinstance(grid, HttpGrid):
        return dict(declared or SIMULATION)
    facts = {"transport": UNKNOWN, "tls": UNKNOWN, "node_auth": UNKNOWN, **declared}
    insecure = getattr(grid, "_insecure", None)
    if isinstance(insecure, bool):
        facts["tls"] = not insecure
    argv = superlink_argv()
    if argv is not None:
        facts.update(superlink_settings(argv))
        facts["source"] = "superlink command line"
    else:
        facts["source"] = "run config" if declared else "grid only"
    return facts


def superlink_settings(argv: list[str]) -> dict[str, Any]:
    """Transport, TLS and node authentication from a flower-superlink command line."""
    fleet = "grpc-rere"  # flower-superlink's default --fleet-api-type
    for i, arg in enumerate(argv):
        if arg == "--fleet-api-type" and i + 1 < len(argv):
            fleet = argv[i + 1]
        elif arg.startswith("--fleet-api-type="):
            fleet = arg.split("=", 1)[1]
    return {"transport": fleet, "tls": "--insecure" not in argv,
            "node_auth": "--enable-supernode-auth" in argv}


def superlink_argv(pid: int | None = None, *, depth: int = 4) -> list[str] | None:
    """The argv of the nearest flower-superlink above this process, None if there is none
    (another isolation mode, another host, or no /proc)."""
    import os

    pid = os.getpid() if pid is None else pid
    for _ in range(depth):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat[stat.rindex(")") + 2 :].split()[1])  # ppid
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):
            return None
        argv = [a for a in argv if a]
        names = [Path(a).name for a in argv[:3]]  # the script, or python + the script
        if "flower-superlink" in names:
            return argv[names.index("flower-superlink") + 1 :]
    return None
