"""One run, start to finish: run directory, federation, workflow, summary.

`run_job` is what both entry points call: the ServerApp that `flwr run`
starts (server/app.py) and the in-process simulation of `fedvault simulate`.
"""

from __future__ import annotations

import importlib.metadata
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from flwr.serverapp import Grid

from methods.base import RunSpec
from methods.common.device import device_label, limit_cpu_threads, resolve_device
from methods.resolve import parse_run_spec
from methods.registry import get_method
from server.pool import check_pool_transport, federation_for
from server.rounds import initial_arrays
from server.workflows import WORKFLOWS
from server.plots import plot_run
from server.run_dir import MetricsSink, RunDirectory
from server.tracking import attach_tracker, check_tracking

@dataclass
class Job:
    """What to run and where; `resume` continues the run in `run_dir`."""

    spec: RunSpec | None
    run_dir: str
    scenario: str = ""
    resume: bool = False
    deployment: dict[str, Any] = field(default_factory=lambda: {"transport": "simulation"})
    progress: Callable[[dict[str, Any]], None] = lambda record: None
    # Readers of the run's metrics stream besides metrics.jsonl (the CLI's console; the
    # tracker is added from the config): server/run_dir.py MetricsSink.
    sinks: list[MetricsSink] = field(default_factory=list)
    # The run's own result, set by run_job: the summary, or why it failed. The CLI's exit
    # code comes from these (a summary.json left by an earlier attempt proves nothing).
    result: dict[str, Any] | None = None
    error: str | None = None


def _versions() -> dict[str, str]:
    return {
        "flwr": importlib.metadata.version("flwr"),  # recorded as installed, never assumed
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def server_device(spec: RunSpec) -> torch.device:
    """Where the server evaluates the global model (server/rounds.py resolves the same);
    ConfigError when this machine has not got the device the run asks for."""
    return resolve_device(spec.federation.device, cpu_only=get_method(spec.method_name).cpu_only)


def open_run(job: Job) -> tuple[RunDirectory, RunSpec, dict[str, Any]]:
    """The run directory, the spec and the starting state (fresh or from the checkpoint).
    A device this machine lacks is refused before anything is written."""
    if job.resume:
        run, arrays, state = RunDirectory.open_for_resume(job.run_dir)  # or refused, untouched
        spec = parse_run_spec(run.config()["run"])
        check_pool_transport(spec, job.deployment.get("transport", "simulation"))
        server_device(spec)
        check_tracking(spec)
        run.drop_unterminated_lines()
        run.truncate_metrics_after(int(state["round"]))
        run.log_event(f"resumed from the checkpoint of round {state['round']}")
        return run, spec, {**state, "arrays": arrays}
    assert job.spec is not None
    check_pool_transport(job.spec, job.deployment.get("transport", "simulation"))
    server_device(job.spec)
    check_tracking(job.spec)
    config = {
        "scenario": job.scenario,
        "run": job.spec.to_flat(),
        "seed": job.spec.federation.seed,
        "secure_aggregation": job.spec.secagg.enabled,  # the server sees only sums of updates
        "versions": _versions(),
        "deployment": job.deployment,
    }
    run = RunDirectory.create(job.run_dir, config)
    method = get_method(job.spec.method_name)
    state = {"round": 0, "wall_seconds": 0.0, "arrays": initial_arrays(method, job.spec)}
    return run, job.spec, state


def run_job(grid: Grid, job: Job) -> dict[str, Any]:
    job.result, job.error = None, None
    try:
        job.result = _run_job(grid, job)
    except BaseException as exc:
        job.error = f"{type(exc).__name__}: {exc}"
        raise
    return job.result


def _run_job(grid: Grid, job: Job) -> dict[str, Any]:
    started = time.perf_counter()
    run, spec, state = open_run(job)
    method = get_method(spec.method_name)
    device = server_device(spec)
    limit_cpu_threads(device)  # on the CPU: the ServerApp shares 2 cores with the clients
    fed = federation_for(grid, spec, run)
    prior_seconds = float(state.get("wall_seconds", 0.0))
    run.sinks += job.sinks
    attach_tracker(spec, run)
    try:
        fed.discover()
        workflow = WORKFLOWS[method.workflow]

        def progress(record: dict[str, Any]) -> None:
            state["wall_seconds"] = prior_seconds + time.perf_counter() - started
            job.progress(record)

        figures = workflow(fed, method, spec, run, state, progress)
    except Exception as exc:
        run.log_event(f"run failed: {type(exc).__name__}: {exc}")
        raise
    finally:  # a failed run's curves so far are worth a look too
        run.close_sinks()
        plot_run(run)
    summary = {
        **figures,
        "method": spec.method_name,
        "scenario": job.scenario or run.config().get("scenario", ""),
        "seed": spec.federation.seed,
        "rounds": int(state["round"]),
        "num_clients": fed.client_count(),
        "wall_seconds": prior_seconds + time.perf_counter() - started,
        "device": device_label(device),  # the server's; config.json's run.device is the request
        "node_devices": dict(sorted(fed.devices.items())),  # as the nodes reported them
        "secure_aggregation": spec.secagg.enabled,
        # which split every figure above was measured on (data.evaluate-on)
        "evaluated_on": spec.data.evaluate_on,
        **run.config().get("deployment", {}),
    }
    run.write_summary(summary)
    return summary
