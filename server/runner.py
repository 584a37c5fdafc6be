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
from methods.resolve import parse_run_spec
from methods.registry import get_method
from server.federation import Federation
from server.rounds import initial_arrays
from server.workflows import WORKFLOWS
from server.run_dir import RunDirectory

@dataclass
class Job:
    """What to run and where; `resume` continues the run in `run_dir`."""

    spec: RunSpec | None
    run_dir: str
    scenario: str = ""
    resume: bool = False
    deployment: dict[str, Any] = field(default_factory=lambda: {"transport": "simulation"})
    progress: Callable[[dict[str, Any]], None] = lambda record: None
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


def open_run(job: Job) -> tuple[RunDirectory, RunSpec, dict[str, Any]]:
    """The run directory, the spec and the starting state (fresh or from the checkpoint)."""
    if job.resume:
        run, arrays, state = RunDirectory.open_for_resume(job.run_dir)  # or refused, untouched
        spec = parse_run_spec(run.config()["run"])
        run.drop_unterminated_lines()
        run.truncate_metrics_after(int(state["round"]))
        run.log_event(f"resumed from the checkpoint of round {state['round']}")
        return run, spec, {**state, "arrays": arrays}
    assert job.spec is not None
    config = {
        "scenario": job.scenario,
        "run": job.spec.to_flat(),
        "seed": job.spec.federation.seed,
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
    torch.set_num_threads(1)  # the ServerApp shares 2 cores with the clients
    method = get_method(spec.method_name)
    fed = Federation(grid, spec, run)
    prior_seconds = float(state.get("wall_seconds", 0.0))
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
    summary = {
        **figures,
        "method": spec.method_name,
        "scenario": job.scenario or run.config().get("scenario", ""),
        "seed": spec.federation.seed,
        "rounds": int(state["round"]),
        "num_clients": fed.size(),
        "wall_seconds": prior_seconds + time.perf_counter() - started,
        **run.config().get("deployment", {}),
    }
    run.write_summary(summary)
    return summary
