"""The ServerApp: glue between Flower and `server.runner.run_job`.

`app` is the component `flwr run .` starts (pyproject `[tool.flwr.app]`); it
reads the scenario, overrides, run directory and resume flag from the run
config. `fedvault simulate` builds its own ServerApp around a resolved Job
with `make_server_app`, in process.
"""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from server.deployment import deployment_facts
from server.run_dir import default_run_dir
from server.runner import Job, run_job
from server.scenario import (
    add_scenario_method_path,
    parse_overrides,
    resolve,
    split_override_string,
)


def job_from_run_config(run_config: dict, grid: object = None) -> Job:
    scenario = str(run_config.get("scenario", "fedavg"))
    resume = str(run_config.get("resume", ""))
    # what `fedvault deploy` declared, checked against what this process can observe
    declared = json.loads(str(run_config.get("deployment", "") or "{}"))
    deployment = deployment_facts(grid, declared if isinstance(declared, dict) else {})
    add_scenario_method_path(scenario)  # resolve() does it too; a resume needs it as well
    if resume:
        return Job(spec=None, run_dir=resume, resume=True, deployment=deployment)
    overrides = parse_overrides(split_override_string(str(run_config.get("overrides", ""))))
    spec = resolve(scenario, overrides)
    run_dir = str(run_config.get("run-dir", "")) or str(
        default_run_dir(scenario, spec.federation.seed)
    )
    return Job(spec=spec, run_dir=run_dir, scenario=scenario, deployment=deployment,
               progress=_print_round)


def _print_round(record: dict) -> None:
    figures = " ".join(
        f"{k}={v:.4f}" for k, v in record.items() if isinstance(v, float) and k != "seconds"
    )
    print(f"[fedvault] round {record.get('round')} {record.get('phase')}: {figures}", flush=True)


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    job = job_from_run_config(dict(context.run_config), grid)
    summary = run_job(grid, job)
    print(f"[fedvault] run directory: {Path(job.run_dir).resolve()}", flush=True)
    print(f"[fedvault] summary: {json.dumps(summary, sort_keys=True)}", flush=True)


def make_server_app(job: Job) -> ServerApp:
    """A ServerApp bound to an already resolved job (used in process)."""
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        run_job(grid, job)

    return server_app
