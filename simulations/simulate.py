"""`fedvault simulate`: Flower's Simulation Engine (Ray), in this process.

The ServerApp runs in a thread of this process and writes the run directory;
ClientApps run in Ray actors, one CPU each. Ray can be an existing cluster:
`--ray-address` (or RAY_ADDRESS) is passed to `ray.init`.

Shared by the CLI (cli/) and the benchmarks (bench/), so it sits beside both rather
than in either: the subpackages import each other one way only (cli → bench, deploy;
bench → deploy).
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

from clients.app import app as client_app
from protos.contract import Phase
from server.app import make_server_app
from server.runner import Job

def simulation_env() -> None:
    """Offline, quiet, and nothing left behind in the user's home."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_TMPDIR", tempfile.gettempdir())


def backend_config(ray_address: str | None, num_cpus_per_client: float,
                   num_cpus: int | None = None) -> dict[str, Any]:
    """`num_cpus` caps the local Ray's CPUs (benches pin the simulation to one core)."""
    init_args: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": True,
    }
    if ray_address:
        init_args["address"] = ray_address
    elif num_cpus is not None:
        init_args["num_cpus"] = num_cpus
    return {
        "client_resources": {"num_cpus": num_cpus_per_client, "num_gpus": 0.0},
        "init_args": init_args,
    }


def run_in_process(job: Job, num_nodes: int, *, ray_address: str | None = None,
                   verbose: bool = False, num_cpus: int | None = None, client=None) -> None:
    """Run the job on `num_nodes` virtual SuperNodes; returns when the run ends.

    `client` replaces fedvault's ClientApp (benches wrap it); `num_cpus` caps Ray's CPUs.
    """
    from flwr.simulation import run_simulation

    simulation_env()
    if not verbose:
        logging.getLogger("flwr").setLevel(logging.WARNING)
    run_simulation(
        server_app=make_server_app(job),
        client_app=client or client_app,
        num_supernodes=num_nodes,
        backend_config=backend_config(ray_address, 1.0, num_cpus),
        verbose_logging=verbose,
    )


def round_line(record: dict[str, Any], total: int) -> str:
    phase = record.get("phase", Phase.TRAIN)
    if "stage" in record:  # multi-stage methods: rounds run on across stages
        # `last_round` comes with live progress only; a deploy follows metrics.jsonl without it.
        last = f"/{record['last_round']}" if "last_round" in record else ""
        parts = [f"stage {record['stage']}: round {record['round']}{last}"]
    elif phase == Phase.TRAIN:
        parts = [f"round {record['round']}/{total}"]
    else:  # multi-phase workflows (LIRF, FedSA) number their phases after the training rounds
        parts = [f"{phase} (step {record['round']})"]
    for key in ("accuracy", "loss", "train_loss"):
        if isinstance(record.get(key), float):
            parts.append(f"{key} {record[key]:.4f}")
    if "replies" in record:
        parts.append(f"replies {record['replies']}/{record.get('sampled')}")
    parts.append(f"{record.get('seconds', 0):.1f}s")
    line = "  ".join(parts)
    if record.get("warning"):  # e.g. training diverged (server/divergence.py)
        from rich.markup import escape

        line += f"\n[bold yellow]warning:[/] [yellow]{escape(str(record['warning']))}[/]"
    return line
