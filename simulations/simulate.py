"""`fedvault simulate`: Flower's Simulation Engine (Ray), in this process.

The ServerApp runs in a thread of this process and writes the run directory;
ClientApps run in Ray actors, one CPU each. Ray can be an existing cluster:
`--ray-address` (or RAY_ADDRESS) is passed to `ray.init`.

Shared by the CLI (cli/) and the benchmarks (bench/), so it sits beside both rather
than in either: the subpackages import each other one way only (cli → bench, deploy;
bench → deploy).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
from typing import Any

from clients.app import app as client_app
from clients.pool import pooled_app
from methods.user_method import METHOD_PATH_ENV, exported_method_path
from methods.base import RunSpec
from methods.common.device import resolve_device
from methods.config import ConfigError
from methods.registry import get_method
from protos.contract import Phase
from server.app import make_server_app
from server.quiet_logs import quiet_library_logs, quiet_workers
from server.runner import Job

def simulation_env() -> None:
    """Offline, quiet, and nothing left behind in the user's home; the user's method found.

    Ray's workers inherit this process's environment when Ray starts here, but not its
    sys.path (measured: a directory put on sys.path before ray.init is not on a worker's,
    while one named in the environment is). So the scenario file's directory, which
    server/scenario.py put on sys.path, goes to the workers through METHOD_PATH_ENV. (On an
    existing cluster, `--ray-address`, the module must be importable on each Ray node.)"""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_TMPDIR", tempfile.gettempdir())
    if method_path := exported_method_path():
        os.environ[METHOD_PATH_ENV] = method_path


def private_local_ray() -> None:
    """Token authentication for the Ray this process starts (not for `--ray-address`).

    A local Ray's GCS and raylets listen on every interface of the machine (measured with
    Ray 2.55: `ss -ltnp` shows gcs_server and raylet on `*:PORT`), and anyone who reaches
    them can run code as this user. With RAY_AUTH_MODE=token (Ray's own authentication)
    they refuse every caller without this process's secret token, which its workers
    inherit through the environment. One token per process, set once and kept: Ray reads
    it when it first starts, and a later run in the same process must present the same.
    A RAY_AUTH_MODE the user set is left as it is."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    os.environ["RAY_AUTH_MODE"] = "token"


def backend_config(ray_address: str | None, num_cpus_per_client: float,
                   num_cpus: int | None = None, num_gpus_per_client: float = 0.0) -> dict[str, Any]:
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
        "client_resources": {"num_cpus": num_cpus_per_client, "num_gpus": num_gpus_per_client},
        "init_args": init_args,
    }


def run_in_process(job: Job, num_nodes: int, *, ray_address: str | None = None,
                   verbose: bool = False, num_cpus: int | None = None, client=None,
                   resources: tuple[float, float] = (1.0, 0.0)) -> None:
    """Run the job on `num_nodes` virtual SuperNodes; returns when the run ends.

    `client` replaces fedvault's ClientApp (benches wrap it); `num_cpus` caps Ray's CPUs;
    `resources` is each ClientApp's (CPUs, GPU share): `client_resources` of the run.
    Every simulated node can be a pool node (clients/pool.py): it plays a logical client
    only when the server names one, which it does only under `pool-nodes`.
    """
    from flwr.simulation import run_simulation

    simulation_env()
    if not ray_address:
        private_local_ray()
    if not verbose:
        logging.getLogger("flwr").setLevel(logging.WARNING)
        quiet_library_logs()  # Flower's run_simulation deprecation, Ray's GPU tip: why there
    with contextlib.nullcontext() if verbose else quiet_workers():  # Ray's actors: quiet_logs.py
        run_simulation(
            server_app=make_server_app(job),
            client_app=pooled_app(client or client_app),
            num_supernodes=num_nodes,
            backend_config=backend_config(ray_address, resources[0], num_cpus, resources[1]),
            verbose_logging=verbose,
        )


def simulated_nodes(spec: RunSpec) -> int:
    """The virtual SuperNodes a simulation registers: the pool, else one per client."""
    return spec.federation.pool_nodes or spec.federation.num_clients


def client_resources(spec: RunSpec, ray_address: str | None = None) -> tuple[float, float]:
    """Each ClientApp's (CPUs, GPU share) for Ray, from the run's `num-cpus` and `num-gpus`;
    ConfigError (before Ray starts) for what this machine cannot give.

    Ray hides the GPUs from an actor that reserved none (CUDA_VISIBLE_DEVICES=""), so a run
    whose device resolves to CUDA with num-gpus=0 would train on the CPU or fail: the GPUs
    are then shared among the clients that run at once (CPUs / num-cpus of them), which is
    what `auto` promises. On a cluster (`ray_address`) this host's hardware proves nothing:
    the keys are passed on as they are.
    """
    import torch

    fed = spec.federation
    if ray_address:
        return fed.num_cpus, fed.num_gpus
    cpus = os.cpu_count() or 1
    if fed.num_cpus > cpus:
        raise ConfigError(f"num-cpus={fed.num_cpus:g}: this machine has {cpus} CPUs; no client "
                          "could start")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if fed.num_gpus > gpus:
        raise ConfigError(f"num-gpus={fed.num_gpus:g} needs CUDA devices; this machine has "
                          f"{gpus} (docs/gpu.md)")
    device = resolve_device(fed.device, cpu_only=get_method(spec.method_name).cpu_only)
    if device.type == "cuda" and device.index:  # an actor sees only its own GPU, as cuda:0
        raise ConfigError(f"device={fed.device}: in a simulation Ray gives each client its "
                          "GPU; use device=cuda or auto (cuda:<i> is for fedvault node --device)")
    if device.type == "cuda" and fed.num_gpus == 0:
        at_once = max(1, int(cpus // fed.num_cpus))
        return fed.num_cpus, min(1.0, gpus / at_once)
    return fed.num_cpus, fed.num_gpus


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
